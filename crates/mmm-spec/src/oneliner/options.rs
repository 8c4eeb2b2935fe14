//! The GNU parallel options of a one-liner that shape its plan, as recorded with the job so
//! that a resume builds the same plan: the sources and how they combine, `-q`, `-k`,
//! `--tag`/`--tagstring`, `--delay`.

use serde::{Deserialize, Serialize};

use super::halt::HaltPolicy;
use super::sources::ArgsInput;

/// The GNU parallel options of a one-liner.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OneLinerOptions {
    /// The input sources and how they make items; no sources means the legacy `args` and
    /// `input` fields of the one-liner.
    #[serde(default)]
    pub input: ArgsInput,
    /// `-q`: the command words are passed as they are, never through a shell.
    #[serde(default)]
    pub quote: bool,
    /// `-k`: output in input order.
    #[serde(default)]
    pub keep_order: bool,
    /// `--line-buffer`: output line by line as it comes.
    #[serde(default)]
    pub line_buffer: bool,
    /// `--tag` / `--tagstring`.
    #[serde(default)]
    pub tag: Option<Tag>,
    /// `--delay`, in milliseconds.
    #[serde(default)]
    pub delay_ms: Option<u64>,
    /// `--halt`.
    #[serde(default)]
    pub halt: Option<HaltPolicy>,
}

/// What is put before each line of an item's output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tag {
    /// `--tag`: the item's values, separated by spaces.
    Args,
    /// `--tagstring STR`: the text, with replacement strings.
    Text(String),
}
