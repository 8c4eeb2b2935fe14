//! The job file: parse YAML (errors with file:line:column), validate, normalise into a
//! [`JobPlan`], load the map's items, and render command templates for one item.
//!
//! The runner only ever sees a validated [`JobPlan`]: a YAML job file ([`load`]) and a
//! GNU-parallel-style one-liner ([`from_oneliner`]) both end up here.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;
use sha2::{Digest, Sha256};

mod error;
mod input;
mod logs;
mod normalised;
mod oneliner;
mod parse;
mod streamed;
mod template;
mod yaml;

pub use error::{InputError, InputOrigin, Location, RenderError, SpecError, TemplateError};
pub use logs::{DEFAULT_LOG_CAP, LOG_KEEPS, LogKeep, LogPolicy, parse_size};
pub use mmm_core::alerts::{AlertRules, Deadline};
pub use mmm_core::limits::{Budget, Rate};
pub use oneliner::halt::{BadHalt, HaltOn, HaltPolicy, HaltWhen, Threshold};
pub use oneliner::options::{OneLinerOptions, Tag};
pub use oneliner::sources::{ArgSource, ArgsInput, Delimiter, Records, SourceKind};
pub use streamed::{RecordStream, StreamedInput};
use template::Part;

/// A validated, normalised job: what `mmm validate` prints and what the runner executes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobPlan {
    /// The job's name (`name:`; the file stem when absent; `run` for a one-liner).
    pub name: String,
    /// Where the plan came from: the job file, or none for a one-liner.
    pub source: Option<PathBuf>,
    /// The directory relative paths (input files) resolve against and commands run in.
    pub base_dir: PathBuf,
    /// `env:`: exported to every command, and usable as `${NAME}` in templates.
    pub env: BTreeMap<String, String>,
    /// Commands run once, in order, before the map.
    pub setup: Vec<PhaseCommand>,
    /// The map phase.
    pub map: MapPlan,
    /// Commands run once, in order, after the map (`${map.*}` available).
    pub reduce: Vec<PhaseCommand>,
    /// `alerts:`: when to raise alerts and what to run when one is raised.
    pub alerts: AlertRules,
    /// `deadline:`: when the job should be done; an alert is raised when the ETA is past it.
    pub deadline: Option<Deadline>,
    /// How the map's output is shown (the one-liner's `-k`, `--tag`); not part of what the
    /// job does, so left out of the plan's hash.
    #[serde(skip)]
    pub output: OutputPlan,
    /// `logs:` and `log_cap:`: what the store keeps of each attempt's output; how it is
    /// recorded, not what the job does, so left out of the plan's hash.
    #[serde(skip)]
    pub logs: LogPolicy,
}

/// How the map commands' output is shown.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OutputPlan {
    /// `-k`: each item's output in input order, whatever order items finish in.
    pub keep_order: bool,
    /// `--line-buffer`: each line of output shown as soon as it is whole, lines of items
    /// running together mixed (never half lines), instead of each item's output whole.
    pub line_buffer: bool,
    /// `--tag` / `--tagstring`: rendered for the item and put before each line of its
    /// output, with a tab.
    pub tag: Option<Template>,
}

/// One setup or reduce command.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PhaseCommand {
    /// A display name (`name:`, else `setup[1]` / `reduce[1]`).
    pub name: String,
    /// The command line, run by `sh -c`.
    pub command: CommandTemplate,
    /// Kill the command's process group after this long.
    #[serde(with = "humantime_serde_opt")]
    pub timeout: Option<Duration>,
}

/// The map phase: where items come from and what runs for each.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MapPlan {
    /// Where the items come from.
    pub input: InputSource,
    /// `key:` template for a stable item key; none means position + content hash.
    pub key: Option<Template>,
    /// Number of parallel agents (`max_parallel:`, or `-j`).
    pub max_parallel: usize,
    /// Per-attempt timeout over all steps of the item.
    #[serde(with = "humantime_serde_opt")]
    pub timeout: Option<Duration>,
    /// Retries after the first attempt; an item is tried at most `1 + retries` times.
    pub retries: u32,
    /// Wait before the first retry; doubled for each further retry (capped at 1 minute).
    #[serde(with = "humantime_serde")]
    pub backoff: Duration,
    /// The steps run for each item, in order.
    pub steps: Vec<StepPlan>,
    /// `isolation:`: where the steps run (left out of the plan hash when shared, so plans
    /// recorded before the key existed keep their hash).
    #[serde(skip_serializing_if = "Isolation::is_shared")]
    pub isolation: Isolation,
    /// `on_conflict:`: a shell command run in the agent's worktree when an item's commits
    /// conflict with the integration branch (worktree isolation only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_conflict: Option<CommandTemplate>,
    /// `--delay`: the least time between two starts of a command.
    #[serde(skip_serializing_if = "Option::is_none", with = "humantime_serde_opt")]
    pub delay: Option<Duration>,
    /// `--halt`: when the map stops before every item has run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub halt: Option<HaltPolicy>,
    /// `rate:` / `--rate`: how often attempts may start, across every agent on every host.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate: Option<Rate>,
    /// `budget:` / `--budget`: counters whose reaching their maximum pauses the job.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub budgets: Vec<Budget>,
    /// `throttle_exit_codes:`: a step exiting with one of these was throttled by the API it
    /// calls (retried later, not counted against retries); [`DEFAULT_THROTTLE_EXIT_CODES`]
    /// unless the job file says otherwise (left out of the plan hash then).
    #[serde(skip_serializing_if = "is_default_throttle")]
    pub throttle_exit_codes: Vec<i32>,
}

/// The default of `throttle_exit_codes:`: 75, `EX_TEMPFAIL` of sysexits.h.
pub const DEFAULT_THROTTLE_EXIT_CODES: &[i32] = &[75];

fn is_default_throttle(codes: &[i32]) -> bool {
    codes == DEFAULT_THROTTLE_EXIT_CODES
}

impl MapPlan {
    /// The start rate the runner keeps: `rate:`, else `--delay` as one start per delay, else
    /// none. With both, the slower.
    pub fn start_rate(&self) -> Option<Rate> {
        let delay = self.delay.filter(|d| !d.is_zero()).map(Rate::every);
        match (self.rate, delay) {
            (Some(rate), Some(delay)) if delay.interval() > rate.interval() => Some(delay),
            (Some(rate), _) => Some(rate),
            (None, delay) => delay,
        }
    }
}

/// Where an item's steps run (`map.isolation:`, docs/worktrees.md).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub enum Isolation {
    /// In the job's directory, shared by every agent (`none`, the default).
    #[default]
    #[serde(rename = "none")]
    Shared,
    /// In the agent's own git worktree; each item's commits are merged into the job's
    /// integration branch (`worktree`).
    #[serde(rename = "worktree")]
    Worktree,
}

impl Isolation {
    /// True for the default: no isolation.
    pub fn is_shared(&self) -> bool {
        *self == Isolation::Shared
    }

    /// The job-file word.
    pub fn as_str(self) -> &'static str {
        match self {
            Isolation::Shared => "none",
            Isolation::Worktree => "worktree",
        }
    }
}

/// Where the map's items come from.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum InputSource {
    /// A file: `.json` (with `json_path`), `.jsonl`, or plain lines (one string item per line).
    File {
        /// The path as written, resolved against `base_dir` when loaded.
        path: PathBuf,
        /// How the file is read.
        format: InputFormat,
        /// For `.json`: the RFC 9535 JSONPath selecting the items (default `$[*]`).
        json_path: Option<String>,
    },
    /// A command run by `sh -c` whose standard output holds the items.
    Command {
        /// The command line.
        command: String,
        /// How its output is read (`lines` unless `format: jsonl` / `json`).
        format: InputFormat,
        /// For `json` output: the JSONPath selecting the items.
        json_path: Option<String>,
    },
    /// Items given inline (the one-liner's `::: A B C`), each a JSON string.
    Inline(Vec<String>),
    /// The one-liner's sources (`:::`, `::::`, `-a`, standard input) and how they combine.
    Args(ArgsInput),
}

/// How an input is parsed into items.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum InputFormat {
    /// One JSON document; items selected by JSONPath.
    Json,
    /// One JSON value per non-empty line.
    Jsonl,
    /// One string item per non-empty line.
    Lines,
}

/// One step of the map.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepPlan {
    /// The step's name (`name:`, else `step1`, `step2`, ...).
    pub name: String,
    /// What runs.
    pub command: CommandTemplate,
    /// A condition; when it renders false the step is `skipped`.
    pub when: Option<Template>,
    /// This step's own timeout (the map's per-attempt timeout still applies).
    #[serde(with = "humantime_serde_opt")]
    pub timeout: Option<Duration>,
}

/// A command with placeholders, rendered per item.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CommandTemplate {
    /// A shell line for `sh -c`; substituted values are shell-quoted for their position.
    Shell(Template),
    /// An argument vector executed directly (no shell); each word rendered without quoting.
    Argv(Vec<Template>),
}

/// A parsed template: literal text and placeholders. Its `Display` is the source text.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    source: String,
    parts: Vec<Part>,
}

impl Serialize for Template {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.source)
    }
}

/// What a template can refer to when rendered for one item (or for a reduce command).
#[derive(Debug, Clone, Copy)]
pub struct RenderContext<'a> {
    /// The item, when rendering a map step (`${item...}`, `{}`).
    pub item: Option<&'a serde_json::Value>,
    /// The item's key.
    pub item_key: Option<&'a str>,
    /// The item's 1-based sequence number (`{#}`).
    pub seq: u64,
    /// The agent's slot number, 1-based (`{%}`).
    pub slot: usize,
    /// The job's `env:`.
    pub env: &'a BTreeMap<String, String>,
    /// Map counts, for reduce commands (`${map.completed}` ...).
    pub map: Option<&'a MapCounts>,
}

/// The map's final counts, as `${map.*}` sees them in reduce commands.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MapCounts {
    /// `${map.total}`
    pub total: u64,
    /// `${map.completed}`
    pub completed: u64,
    /// `${map.dead_lettered}` (also `${map.failed}`)
    pub dead_lettered: u64,
    /// `${map.skipped}`
    pub skipped: u64,
}

/// A command ready to spawn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RenderedCommand {
    /// Run with `sh -c`.
    Shell(String),
    /// Execute directly: program then arguments.
    Argv(Vec<String>),
}

/// One item loaded from the input.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    /// The stable key (from `key:`, else position + content hash).
    pub key: String,
    /// The item's value.
    pub value: serde_json::Value,
}

impl Item {
    /// The item at 1-based `position` of an input without `key:`, keyed by its position and a
    /// hash of its value (as [`MapPlan::load_items`] keys it).
    pub fn at_position(position: usize, value: serde_json::Value) -> Item {
        Item {
            key: input::default_key(position, &value),
            value,
        }
    }
}

/// Options of the one-liner `mmm run -j N [--input FILE] -- CMD ... [::: ARGS]`.
#[derive(Debug, Clone, Default)]
pub struct OneLiner {
    /// The command words after `--`, up to `:::`.
    pub command: Vec<String>,
    /// Items after `:::`.
    pub args: Vec<String>,
    /// `--input FILE`: one item per line.
    pub input: Option<PathBuf>,
    /// The GNU parallel options: sources (used instead of `args` and `input` when any is
    /// given), `-k`, `--tag`, ...
    pub options: OneLinerOptions,
    /// `-j N`.
    pub max_parallel: usize,
    /// `--timeout`.
    pub timeout: Option<Duration>,
    /// `--retries`.
    pub retries: u32,
    /// The directory the job runs in.
    pub base_dir: PathBuf,
}

/// Reads, parses and validates a job file.
///
/// Relative input paths resolve against the job file's directory (`base_dir`). When the
/// job has no `setup:` (which could create it), a missing input file is an error now.
pub fn load(path: &std::path::Path) -> Result<JobPlan, SpecError> {
    parse::load(path)
}

/// Parses job-file text kept from an earlier run, as if read from `path` (which may be gone).
pub fn load_text(path: &std::path::Path, text: &str) -> Result<JobPlan, SpecError> {
    let base_dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut plan = parse::parse_job(path, text, &base_dir)?;
    plan.source = Some(path.to_path_buf());
    Ok(plan)
}

/// How a job's plan was built, kept with the job so that a resume builds the same plan again
/// (and can tell when the job file has changed since).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct JobOrigin {
    /// The job file or the one-liner.
    pub source: OriginSource,
    /// Command-line overrides (`-j`, `--timeout`, `--retries`).
    #[serde(default)]
    pub overrides: Overrides,
}

/// Where a plan came from.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum OriginSource {
    /// A job file, with the text it had when the job started.
    File {
        /// Absolute path of the job file.
        path: PathBuf,
        /// Its text when the job started: used when the file is gone.
        text: String,
    },
    /// A one-liner.
    OneLiner {
        /// The command words.
        command: Vec<String>,
        /// Items after `:::`.
        args: Vec<String>,
        /// `--input FILE`.
        input: Option<PathBuf>,
        /// The directory it ran in.
        base_dir: PathBuf,
        /// The GNU parallel options (none in jobs recorded before they existed).
        #[serde(default)]
        options: Box<OneLinerOptions>,
    },
}

/// Command-line settings that override the plan's.
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct Overrides {
    /// `-j N`.
    pub max_parallel: Option<usize>,
    /// `--timeout`, in milliseconds.
    pub timeout_ms: Option<u64>,
    /// `--retries`.
    pub retries: Option<u32>,
    /// `--logs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logs: Option<LogKeep>,
    /// `--log-cap`, in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_cap: Option<u64>,
    /// `--rate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<Rate>,
    /// `--budget COUNTER=MAX`, each replacing the job file's budget of that counter.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub budgets: Vec<Budget>,
}

/// A plan rebuilt from its origin.
#[derive(Debug, Clone)]
pub struct RebuiltPlan {
    /// The plan.
    pub plan: JobPlan,
    /// True when the job file is gone and its stored text was used.
    pub from_stored_text: bool,
}

impl JobOrigin {
    /// The origin of a job file's plan.
    pub fn file(path: &std::path::Path, overrides: Overrides) -> Result<JobOrigin, SpecError> {
        let text = std::fs::read_to_string(path).map_err(|source| SpecError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let path = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        Ok(JobOrigin {
            source: OriginSource::File { path, text },
            overrides,
        })
    }

    /// Builds the plan: from the job file as it is now (or its stored text when it is gone),
    /// or from the one-liner, with the overrides applied.
    pub fn plan(&self) -> Result<RebuiltPlan, SpecError> {
        self.build(true)
    }

    /// Builds the plan as it was recorded: a job file's stored text, never the file as it is
    /// now (a worker on another host runs exactly what the job's owner runs).
    pub fn plan_as_recorded(&self) -> Result<RebuiltPlan, SpecError> {
        self.build(false)
    }

    fn build(&self, read_file: bool) -> Result<RebuiltPlan, SpecError> {
        let o = &self.overrides;
        let timeout = o.timeout_ms.map(Duration::from_millis);
        let (mut plan, from_stored_text) = match &self.source {
            OriginSource::File { path, text } => match read_file && path.exists() {
                true => (load(path)?, false),
                false => (load_text(path, text)?, true),
            },
            OriginSource::OneLiner {
                command,
                args,
                input,
                base_dir,
                options,
            } => {
                let oneliner = OneLiner {
                    command: command.clone(),
                    args: args.clone(),
                    input: input.clone(),
                    options: options.as_ref().clone(),
                    max_parallel: o.max_parallel.unwrap_or(0),
                    timeout,
                    retries: o.retries.unwrap_or(0),
                    base_dir: base_dir.clone(),
                };
                (from_oneliner(oneliner)?, false)
            }
        };
        if let Some(j) = o.max_parallel {
            plan.map.max_parallel = j;
        }
        if timeout.is_some() {
            plan.map.timeout = timeout;
        }
        if let Some(r) = o.retries {
            plan.map.retries = r;
        }
        if let Some(keep) = o.logs {
            plan.logs.keep = keep;
        }
        if let Some(cap) = o.log_cap {
            plan.logs.cap = cap;
        }
        if o.rate.is_some() {
            plan.map.rate = o.rate;
        }
        for budget in &o.budgets {
            plan.map.budgets.retain(|b| b.counter != budget.counter);
            plan.map.budgets.push(budget.clone());
        }
        Ok(RebuiltPlan {
            plan,
            from_stored_text,
        })
    }
}

/// Builds the plan of a one-liner.
///
/// `max_parallel: 0` means one agent per CPU. Items come from `args` (inline) or `input`
/// (one item per line), exactly one of them.
pub fn from_oneliner(oneliner: OneLiner) -> Result<JobPlan, SpecError> {
    oneliner::from_oneliner(oneliner)
}

impl JobPlan {
    /// A stable hash of the normalised plan (hex), stored with the job.
    ///
    /// SHA-256 of the plan as canonical JSON (keys sorted), leaving out `source` and
    /// `base_dir` so that moving the job directory does not change it.
    pub fn hash(&self) -> String {
        let mut value = match serde_json::to_value(self) {
            Ok(value) => value,
            // Serializing plain structs with string keys cannot fail; hash the debug text
            // rather than panic if it ever does.
            Err(_) => serde_json::Value::String(format!("{self:?}")),
        };
        if let Some(object) = value.as_object_mut() {
            object.remove("source");
            object.remove("base_dir");
            // Alerts and the deadline watch the job; they do not change what it does.
            object.remove("alerts");
            object.remove("deadline");
            // How many agents run the job is not part of what it does: `-j` may differ
            // between a run and its resume.
            if let Some(map) = object.get_mut("map").and_then(|m| m.as_object_mut()) {
                map.remove("max_parallel");
            }
        }
        let digest = Sha256::digest(value.to_string().as_bytes());
        digest.iter().map(|byte| format!("{byte:02x}")).collect()
    }

    /// The normalised plan as YAML text, as `mmm validate` prints it.
    ///
    /// It uses the job file's own keys with every default filled in, after a comment line
    /// naming the directory the job runs in; for a job file it loads back to the same plan.
    pub fn to_yaml(&self) -> String {
        normalised::to_yaml(self)
    }
}

impl std::fmt::Display for Template {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.source)
    }
}

mod humantime_serde {
    pub(super) fn serialize<S: serde::Serializer>(
        d: &std::time::Duration,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }
}

mod humantime_serde_opt {
    pub(super) fn serialize<S: serde::Serializer>(
        d: &Option<std::time::Duration>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_str(&humantime::format_duration(*d).to_string()),
            None => s.serialize_none(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::path::Path;

    const JOB: &str = r#"name: thumbs
env: {OUT: out}
setup:
  - shell: mkdir -p ${OUT}
map:
  input: {command: "printf 'a\nb\n'"}
  key: ${item}
  max_parallel: 3
  timeout: 1m 30s
  retries: 1
  steps:
    - name: resize
      shell: |
        convert ${item} \
          ${OUT}/${item}.png
      when: ${item} != skip
      timeout: 10s
reduce:
  - shell: echo "${map.completed} done"
alerts:
  stuck_after: 2m
  failure_rate: 20%
  timeout_rate: off
  window: 1m
  min_attempts: 5
  on_alert: cat > alert.json
deadline: 2026-11-30T18:00:00Z
"#;

    fn plan_in(dir: &Path) -> JobPlan {
        parse::parse_job(Path::new("job.yaml"), JOB, dir).expect("valid job")
    }

    #[test]
    fn to_yaml_shows_defaults_in_job_file_keys_and_loads_back() {
        let dir = tempfile::tempdir().expect("temp dir");
        let plan = plan_in(dir.path());
        let yaml = plan.to_yaml();
        assert!(yaml.starts_with("# runs in "), "{yaml}");
        assert!(yaml.contains("backoff: 1s"), "{yaml}");
        assert!(yaml.contains("timeout: 1m 30s"), "{yaml}");
        assert!(yaml.contains("name: setup[1]"), "{yaml}");
        let again = parse::parse_job(Path::new("job.yaml"), &yaml, dir.path()).expect("reloads");
        assert_eq!(again, plan);
    }

    #[test]
    fn to_yaml_of_a_oneliner() {
        let plan = from_oneliner(OneLiner {
            command: vec!["gzip".into(), "{}".into()],
            args: vec!["a b".into()],
            max_parallel: 2,
            base_dir: "/w".into(),
            ..OneLiner::default()
        })
        .expect("valid");
        let yaml = plan.to_yaml();
        assert!(yaml.contains("argv:"), "{yaml}");
        assert!(yaml.contains("inline:"), "{yaml}");
        assert!(yaml.contains("name: command"), "{yaml}");
    }

    #[test]
    fn hash_is_stable_and_ignores_where_the_job_lives() {
        let a = plan_in(Path::new("/a"));
        let mut b = plan_in(Path::new("/b"));
        b.source = Some("/b/job.yaml".into());
        assert_eq!(a.hash(), b.hash());
        assert_eq!(a.hash().len(), 64);
        assert!(a.hash().chars().all(|c| c.is_ascii_hexdigit()));
        b.map.retries = 5;
        assert_ne!(a.hash(), b.hash());
    }

    /// Valid YAML fragments to splice, so random inputs reach the schema checks too.
    fn fragments() -> impl Strategy<Value = String> {
        prop::sample::select(vec![
            "name: x\n",
            "map:\n",
            "  input: items.txt\n",
            "  steps:\n",
            "    - shell: echo ${item}\n",
            "  timeout: 5 parsecs\n",
            "  max_parallel: 0\n",
            "env: {A: b}\n",
            "setup: []\n",
            "  json_path: $[\n",
            "    - when: ${item.x\n",
            "  key: ${map.total}\n",
            "- a\n",
            "  input: {command: ls, format: json}\n",
            "\t",
            "&a [*a]\n",
            "*b\n",
            "---\n",
            "\"",
            "'",
            "{",
            "[",
            ": ",
            "#",
            "reduce:\n  - shell: x\n",
            "    name: n\n",
            "\u{feff}",
            "%YAML 1.2\n",
        ])
        .prop_map(str::to_string)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn random_text_never_panics(text in "\\PC{0,200}") {
            let _ = parse::parse_job(Path::new("job.yaml"), &text, Path::new("/nonexistent"));
        }

        #[test]
        fn spliced_and_truncated_yaml_never_panics(
            pieces in prop::collection::vec(fragments(), 0..24),
            cut in 0usize..400,
        ) {
            let text: String = pieces.concat();
            let cut = text.char_indices().map(|(i, _)| i).nth(cut).unwrap_or(text.len());
            let result = parse::parse_job(Path::new("job.yaml"), &text[..cut], Path::new("/nonexistent"));
            if let Err(error) = result {
                // Every error names the file, and ends with a hint.
                let message = error.to_string();
                prop_assert!(message.starts_with("job.yaml:"), "{}", message);
                prop_assert!(message.contains("\n  hint: "), "{}", message);
            }
        }

        #[test]
        fn templates_never_panic(text in "[${}\\\\'\"`()#<a-z. \n\\[\\]0-9]{0,40}") {
            let env = BTreeMap::from([("a".to_string(), "v".to_string())]);
            let _ = Template::parse_plain(&text);
            let _ = Template::parse_shell(&text, &env);
            let _ = Template::parse_oneliner_shell(&text);
            let _ = Template::parse_oneliner_word(&text);
        }
    }

    proptest! {
        // Each case runs a real shell, so fewer of them.
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn any_value_reaches_the_shell_literally(value in "[^\\x00]{0,24}") {
            let env = BTreeMap::new();
            let item = serde_json::Value::String(value.clone());
            let ctx = RenderContext { item: Some(&item), item_key: None, seq: 1, slot: 1, env: &env, map: None };
            let template = Template::parse_shell(
                "printf '%s|' ${item} \"${item}\" 'x${item}x'",
                &env,
            ).expect("parses");
            let RenderedCommand::Shell(line) = CommandTemplate::Shell(template).render(&ctx).expect("renders") else {
                panic!("a shell line renders as a shell line");
            };
            let dir = tempfile::tempdir().expect("temp dir");
            let output = std::process::Command::new("sh").arg("-c").arg(&line).current_dir(dir.path()).output().expect("sh runs");
            let expected = format!("{value}|{value}|x{value}x|");
            prop_assert_eq!(String::from_utf8_lossy(&output.stdout), expected);
            prop_assert!(std::fs::read_dir(dir.path()).expect("dir").next().is_none());
        }
    }
}
