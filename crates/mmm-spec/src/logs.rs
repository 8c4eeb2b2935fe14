//! `logs:` and `log_cap:`: what is kept of each attempt's output in the store (docs/logs.md),
//! and the sizes they are written in (`64MiB`, `1.5 GB`, `4096`).

use serde::{Deserialize, Serialize};

/// How much of each attempt's output the store keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogPolicy {
    /// What is kept.
    pub keep: LogKeep,
    /// The most output bytes kept per attempt; past it the middle (`full`) or the beginning
    /// (`tail`) is dropped and the log says how much.
    pub cap: u64,
}

/// The default cap per attempt: 64 MiB.
pub const DEFAULT_LOG_CAP: u64 = 64 * 1024 * 1024;

impl Default for LogPolicy {
    fn default() -> Self {
        LogPolicy {
            keep: LogKeep::Full,
            cap: DEFAULT_LOG_CAP,
        }
    }
}

/// `logs: full | tail | none`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogKeep {
    /// Everything up to the cap; past it, the first and last halves of the cap.
    Full,
    /// Only the last `cap` bytes.
    Tail,
    /// No log: only the last 4 KiB of each stream the attempt's record keeps (what the DLQ
    /// shows).
    None,
}

/// The words `logs:` accepts.
pub const LOG_KEEPS: &[&str] = &["full", "tail", "none"];

impl LogKeep {
    /// Reads `full`, `tail` or `none`.
    pub fn parse(text: &str) -> Option<LogKeep> {
        match text.trim() {
            "full" => Some(LogKeep::Full),
            "tail" => Some(LogKeep::Tail),
            "none" => Some(LogKeep::None),
            _ => None,
        }
    }

    /// The word for it.
    pub fn as_str(self) -> &'static str {
        match self {
            LogKeep::Full => "full",
            LogKeep::Tail => "tail",
            LogKeep::None => "none",
        }
    }
}

/// Reads a size: bytes, or a number with `B`, `K`/`KB`/`KiB`, `M`/`MB`/`MiB`, `G`/`GB`/`GiB`,
/// `T`/`TB`/`TiB` (decimal for `KB`, binary for `K` and `KiB`). `None` for anything else or
/// for zero.
pub fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let factor: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kib" => 1024.0,
        "kb" => 1e3,
        "m" | "mib" => 1024.0 * 1024.0,
        "mb" => 1e6,
        "g" | "gib" => 1024.0 * 1024.0 * 1024.0,
        "gb" => 1e9,
        "t" | "tib" => 1024.0_f64.powi(4),
        "tb" => 1e12,
        _ => return None,
    };
    let bytes = (number * factor).round();
    (bytes >= 1.0 && bytes < u64::MAX as f64).then_some(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_in_the_units_people_write() {
        assert_eq!(parse_size("4096"), Some(4096));
        assert_eq!(parse_size("64MiB"), Some(64 * 1024 * 1024));
        assert_eq!(parse_size("64 MiB"), Some(64 * 1024 * 1024));
        assert_eq!(parse_size("1.5G"), Some(1_610_612_736));
        assert_eq!(parse_size("2GB"), Some(2_000_000_000));
        assert_eq!(parse_size("100k"), Some(102_400));
        for bad in ["", "0", "MiB", "12 parsecs", "-5", "1e3"] {
            assert_eq!(parse_size(bad), None, "{bad}");
        }
    }
}
