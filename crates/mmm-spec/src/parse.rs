//! The job file's schema: walks the YAML node tree, checks every key and value, and builds
//! the [`JobPlan`]. Each check reports the line and column of the offending key or value.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde_json_path::JsonPath;

use super::error::{Location, SpecError, TemplateError};
use super::template::{Placeholder, is_variable_name};
use super::yaml::{self, Entry, Kind, Mark, Node, Style};
use super::{
    AlertRules, CommandTemplate, Deadline, InputFormat, InputSource, Isolation, JobPlan, MapPlan,
    PhaseCommand, StepPlan, Template,
};
use mmm_core::counter::CounterValue;
use mmm_core::limits::{Budget, Rate, is_counter_name};

const TOP_KEYS: &[&str] = &[
    "name", "env", "setup", "map", "reduce", "alerts", "deadline", "logs", "log_cap",
];
const ALERT_KEYS: &[&str] = &[
    "stuck_after",
    "failure_rate",
    "timeout_rate",
    "throughput_drop",
    "window",
    "min_attempts",
    "on_alert",
];
const MAP_KEYS: &[&str] = &[
    "input",
    "json_path",
    "key",
    "max_parallel",
    "timeout",
    "retries",
    "backoff",
    "steps",
    "isolation",
    "on_conflict",
    "rate",
    "budget",
    "throttle_exit_codes",
];
const BUDGET_KEYS: &[&str] = &["counter", "max"];
const ISOLATIONS: &[&str] = &["none", "worktree"];
const STEP_KEYS: &[&str] = &["name", "shell", "when", "timeout"];
const PHASE_KEYS: &[&str] = &["name", "shell", "timeout"];
const INPUT_COMMAND_KEYS: &[&str] = &["command", "format"];
const FORMATS: &[&str] = &["lines", "jsonl", "json"];

/// The default of `backoff:`.
pub(super) const DEFAULT_BACKOFF: Duration = Duration::from_secs(1);

/// The default of `max_parallel:` and `-j`: one agent per CPU.
pub(super) fn default_parallelism() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Reads, parses and validates a job file.
pub(super) fn load(path: &Path) -> Result<JobPlan, SpecError> {
    let text = std::fs::read_to_string(path).map_err(|source| SpecError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    // Absolute, so a job resumed from another directory still finds its files.
    let source = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let base_dir = match source.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut plan = parse_job(path, &text, &base_dir)?;
    plan.source = Some(source);
    Ok(plan)
}

/// Parses and validates job-file text. `path` is only used in messages and for the default
/// name; relative input paths resolve against `base_dir`.
pub(super) fn parse_job(path: &Path, text: &str, base_dir: &Path) -> Result<JobPlan, SpecError> {
    let Some(root) = yaml::parse(path, text)? else {
        return Err(SpecError::Empty {
            path: path.to_path_buf(),
        });
    };
    let checker = Checker {
        path,
        lines: text.lines().collect(),
    };
    checker.job(&root, base_dir)
}

/// True when `dir` (or a folder above it) holds a `.git` entry: a repository or a worktree.
fn in_git_repository(dir: &Path) -> bool {
    let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    dir.ancestors().any(|d| d.join(".git").exists())
}

/// Validates nodes against the schema; knows the file for locations.
struct Checker<'a> {
    path: &'a Path,
    /// The file's lines, to place errors inside block scalars.
    lines: Vec<&'a str>,
}

/// Which placeholders a template may use where it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    /// `setup:`: only variables.
    Setup,
    /// Map steps and `when:`: the item, its key and variables.
    Step,
    /// `key:`: the item and variables (the key does not exist yet).
    Key,
    /// `reduce:`: map counts and variables.
    Reduce,
}

impl Checker<'_> {
    fn at(&self, mark: Mark) -> Location {
        mark.at(self.path)
    }

    fn job(&self, root: &Node, base_dir: &Path) -> Result<JobPlan, SpecError> {
        let entries = self.mapping(root, "the job file", "`name: my-job` then `map:`")?;
        self.known_keys(entries, "the job file", TOP_KEYS)?;

        let name = match get(entries, "name") {
            Some(node) => self.text(node, "name", "`name: thumbnails`")?,
            None => default_name(self.path),
        };
        let env = match get(entries, "env") {
            Some(node) => self.env(node)?,
            None => BTreeMap::new(),
        };
        let setup = match get(entries, "setup") {
            Some(node) => self.phase(node, "setup", &env, Scope::Setup)?,
            None => Vec::new(),
        };
        let Some(map_node) = get(entries, "map") else {
            return Err(SpecError::MissingKey {
                at: self.at(root.mark),
                section: "the job file".to_string(),
                key: "map",
                example: "`map: {input: items.txt, steps: [{shell: echo ${item}}]}`",
            });
        };
        let map = self.map(map_node, &env, base_dir, setup.is_empty())?;
        let reduce = match get(entries, "reduce") {
            Some(node) => self.phase(node, "reduce", &env, Scope::Reduce)?,
            None => Vec::new(),
        };
        let alerts = match get(entries, "alerts") {
            Some(node) => self.alerts(node)?,
            None => AlertRules::default(),
        };
        let deadline = match get(entries, "deadline") {
            Some(node) => Some(self.deadline(node)?),
            None => None,
        };
        let mut logs = crate::LogPolicy::default();
        if let Some(node) = get(entries, "logs") {
            let text = self.text(node, "logs", "`logs: full`")?;
            logs.keep = crate::LogKeep::parse(&text).ok_or_else(|| SpecError::UnknownValue {
                at: self.at(node.mark),
                field: "logs".to_string(),
                value: text.clone(),
                accepted: crate::logs::LOG_KEEPS,
            })?;
        }
        if let Some(node) = get(entries, "log_cap") {
            let text = self.text(node, "log_cap", "`log_cap: 64MiB`")?;
            logs.cap = crate::parse_size(&text).ok_or_else(|| SpecError::BadNumber {
                at: self.at(node.mark),
                field: "log_cap".to_string(),
                value: text.clone(),
                expected: "a size of at least 1 byte, with a unit (B, KiB, MiB, GiB, KB, MB, GB)",
                example: "64MiB",
            })?;
        }
        Ok(JobPlan {
            logs,
            name,
            source: None,
            base_dir: base_dir.to_path_buf(),
            env,
            setup,
            map,
            reduce,
            alerts,
            deadline,
            output: crate::OutputPlan::default(),
        })
    }

    /// `alerts:`: thresholds, each can be `off`.
    fn alerts(&self, node: &Node) -> Result<AlertRules, SpecError> {
        let entries = self.mapping(node, "alerts", "`alerts: {failure_rate: 20%}`")?;
        self.known_keys(entries, "alerts", ALERT_KEYS)?;
        let mut rules = AlertRules::default();
        if let Some(value) = get(entries, "stuck_after") {
            rules.stuck_after = match self.is_off(value) {
                true => None,
                false => Some(self.duration(value, "alerts.stuck_after", false)?),
            };
        }
        for (key, rule) in [
            ("failure_rate", &mut rules.failure_rate),
            ("timeout_rate", &mut rules.timeout_rate),
            ("throughput_drop", &mut rules.throughput_drop),
        ] {
            if let Some(value) = get(entries, key) {
                *rule = match self.is_off(value) {
                    true => None,
                    false => Some(self.percent(value, &format!("alerts.{key}"))?),
                };
            }
        }
        if let Some(value) = get(entries, "window") {
            let window = self.duration(value, "alerts.window", false)?;
            if window > Duration::from_secs(600) {
                return Err(SpecError::BadNumber {
                    at: self.at(value.mark),
                    field: "alerts.window".to_string(),
                    value: humantime::format_duration(window).to_string(),
                    expected: "a duration of at most 10m",
                    example: "5m",
                });
            }
            rules.window = window;
        }
        if let Some(value) = get(entries, "min_attempts") {
            rules.min_attempts = self.number::<u32>(
                value,
                "alerts.min_attempts",
                "a whole number of at least 1",
                "20",
                1,
            )?;
        }
        if let Some(value) = get(entries, "on_alert") {
            rules.on_alert =
                Some(self.text(value, "alerts.on_alert", "`on_alert: ./notify.sh`")?);
        }
        Ok(rules)
    }

    /// `off` or `false` switch a rule off.
    fn is_off(&self, node: &Node) -> bool {
        matches!(&node.kind, Kind::Scalar { text, .. } if text == "off" || text == "false")
    }

    /// `20%` as 0.2.
    fn percent(&self, node: &Node, field: &str) -> Result<f64, SpecError> {
        let text = self.text(node, field, "`20%`")?;
        let value = text
            .trim()
            .strip_suffix('%')
            .and_then(|n| n.trim().parse::<f64>().ok())
            .filter(|n| n.is_finite() && (0.0..=100.0).contains(n));
        value
            .map(|n| n / 100.0)
            .ok_or_else(|| SpecError::BadNumber {
                at: self.at(node.mark),
                field: field.to_string(),
                value: text.clone(),
                expected: "a percentage from 0% to 100%, or off",
                example: "20%",
            })
    }

    /// `deadline: 2h` (after the job was created) or `deadline: 2026-11-30T18:00:00Z`.
    fn deadline(&self, node: &Node) -> Result<Deadline, SpecError> {
        let text = self.text(node, "deadline", "`deadline: 2h`")?;
        if let Ok(after) = humantime::parse_duration(text.trim()) {
            return Ok(Deadline::After(after));
        }
        match humantime::parse_rfc3339_weak(text.trim()) {
            Ok(at) => Ok(Deadline::At(
                at.duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as i64),
            )),
            Err(_) => Err(SpecError::BadNumber {
                at: self.at(node.mark),
                field: "deadline".to_string(),
                value: text,
                expected: "a duration after the job starts or a UTC time",
                example: "2h",
            }),
        }
    }

    fn env(&self, node: &Node) -> Result<BTreeMap<String, String>, SpecError> {
        let entries = self.mapping(node, "env", "`env: {OUT: out}`")?;
        let mut env = BTreeMap::new();
        for entry in entries {
            let reserved = matches!(entry.key.as_str(), "item" | "item_key" | "map");
            if !is_variable_name(&entry.key) || reserved {
                return Err(SpecError::BadEnvName {
                    at: self.at(entry.key_mark),
                    name: entry.key.clone(),
                });
            }
            let field = format!("env.{}", entry.key);
            let value = self.text(&entry.value, &field, "`OUT: out`")?;
            env.insert(entry.key.clone(), value);
        }
        Ok(env)
    }

    /// `setup:` or `reduce:`: a list of `{shell, name?, timeout?}`.
    fn phase(
        &self,
        node: &Node,
        section: &str,
        env: &BTreeMap<String, String>,
        scope: Scope,
    ) -> Result<Vec<PhaseCommand>, SpecError> {
        let items = self.list(node, section, "`- shell: make items.txt`")?;
        let mut commands = Vec::new();
        for (index, item) in items.iter().enumerate() {
            let field = format!("{section}[{}]", index + 1);
            let entries = self.mapping(item, &field, "`- shell: make items.txt`")?;
            self.known_keys(entries, &field, PHASE_KEYS)?;
            let shell = self.required(item, entries, &field, "shell", "`shell: make items.txt`")?;
            let command = self.shell_template(shell, &format!("{field}.shell"), env, scope)?;
            let name = match get(entries, "name") {
                Some(node) => self.text(node, &format!("{field}.name"), "`name: prepare`")?,
                None => field.clone(),
            };
            let timeout = self.optional_duration(entries, &format!("{field}.timeout"))?;
            commands.push(PhaseCommand {
                name,
                command: CommandTemplate::Shell(command),
                timeout,
            });
        }
        Ok(commands)
    }

    fn map(
        &self,
        node: &Node,
        env: &BTreeMap<String, String>,
        base_dir: &Path,
        check_input_exists: bool,
    ) -> Result<MapPlan, SpecError> {
        let entries = self.mapping(node, "map", "`map: {input: items.txt, steps: [...]}`")?;
        self.known_keys(entries, "map", MAP_KEYS)?;

        let input_node = self.required(node, entries, "map", "input", "`input: items.jsonl`")?;
        let json_path = match get(entries, "json_path") {
            Some(value) => Some(self.json_path(value)?),
            None => None,
        };
        let input = self.input(input_node, json_path, entries)?;
        if check_input_exists && let InputSource::File { path, .. } = &input {
            let resolved = base_dir.join(path);
            if !resolved.exists() {
                return Err(SpecError::MissingInputFile {
                    at: self.at(input_node.mark),
                    path: resolved,
                    base_dir: base_dir.to_path_buf(),
                });
            }
        }

        let key = match get(entries, "key") {
            Some(value) => Some(self.plain_template(value, "map.key", Scope::Key)?),
            None => None,
        };
        let max_parallel = match get(entries, "max_parallel") {
            Some(value) => self.number::<usize>(
                value,
                "map.max_parallel",
                "a whole number of at least 1",
                "8",
                1,
            )?,
            None => default_parallelism(),
        };
        let timeout = self.optional_duration(entries, "map.timeout")?;
        let retries = match get(entries, "retries") {
            Some(value) => {
                self.number::<u32>(value, "map.retries", "a whole number, 0 or more", "2", 0)?
            }
            None => 0,
        };
        let backoff = match get(entries, "backoff") {
            Some(value) => self.duration(value, "map.backoff", true)?,
            None => DEFAULT_BACKOFF,
        };
        let steps_node = self.required(
            node,
            entries,
            "map",
            "steps",
            "`steps: [{shell: echo ${item}}]`",
        )?;
        let steps = self.steps(steps_node, env)?;
        let (isolation, on_conflict) = self.isolation(entries, env, base_dir)?;
        let rate = match get(entries, "rate") {
            Some(value) => Some(self.rate(value)?),
            None => None,
        };
        let budgets = match get(entries, "budget") {
            Some(value) => self.budgets(value)?,
            None => Vec::new(),
        };
        let throttle_exit_codes = match get(entries, "throttle_exit_codes") {
            Some(value) => self.throttle_exit_codes(value)?,
            None => super::DEFAULT_THROTTLE_EXIT_CODES.to_vec(),
        };
        Ok(MapPlan {
            input,
            key,
            max_parallel,
            timeout,
            retries,
            backoff,
            steps,
            isolation,
            on_conflict,
            delay: None,
            halt: None,
            rate,
            budgets,
            throttle_exit_codes,
        })
    }

    /// `throttle_exit_codes: [75, 69]`: exit codes from 1 to 255 (an empty list: none).
    fn throttle_exit_codes(&self, node: &Node) -> Result<Vec<i32>, SpecError> {
        let field = "map.throttle_exit_codes";
        let items = self.list(node, field, "`throttle_exit_codes: [75]`")?;
        items
            .iter()
            .map(|item| {
                self.number::<i32>(item, field, "a list of exit codes from 1 to 255", "[75]", 1)
                    .and_then(|code| match code {
                        1..=255 => Ok(code),
                        _ => Err(SpecError::BadNumber {
                            at: self.at(item.mark),
                            field: field.to_string(),
                            value: code.to_string(),
                            expected: "a list of exit codes from 1 to 255",
                            example: "[75]",
                        }),
                    })
            })
            .collect()
    }

    /// `rate: 20/s` (also `/min`, `/h`).
    fn rate(&self, node: &Node) -> Result<Rate, SpecError> {
        let text = self.text(node, "map.rate", "`rate: 20/s`")?;
        Rate::parse(&text).map_err(|_| SpecError::BadNumber {
            at: self.at(node.mark),
            field: "map.rate".to_string(),
            value: text,
            expected: "a number of starts per second, minute or hour (`/s`, `/min`, `/h`)",
            example: "20/min",
        })
    }

    /// `budget: {counter: cost_cents, max: 5000}`, or a list of them (one per counter).
    fn budgets(&self, node: &Node) -> Result<Vec<Budget>, SpecError> {
        let example = "`budget: {counter: cost_cents, max: 5000}`";
        let listed = matches!(node.kind, Kind::Seq(_));
        let nodes = match &node.kind {
            Kind::Seq(items) => items.iter().collect::<Vec<_>>(),
            _ => vec![node],
        };
        let mut budgets: Vec<Budget> = Vec::new();
        for (i, node) in nodes.into_iter().enumerate() {
            let field = match listed {
                true => format!("map.budget[{}]", i + 1),
                false => "map.budget".to_string(),
            };
            let entries = self.mapping(node, &field, example)?;
            self.known_keys(entries, &field, BUDGET_KEYS)?;
            let counter_node =
                self.required(node, entries, &field, "counter", "`counter: cost_cents`")?;
            let counter = self.text(
                counter_node,
                &format!("{field}.counter"),
                "`counter: cost_cents`",
            )?;
            if !is_counter_name(counter.trim()) {
                return Err(SpecError::BadNumber {
                    at: self.at(counter_node.mark),
                    field: format!("{field}.counter"),
                    value: counter,
                    expected: "a counter name (letters, digits, `_`, `-` and `.`)",
                    example: "cost_cents",
                });
            }
            let counter = counter.trim().to_string();
            if budgets.iter().any(|b| b.counter == counter) {
                return Err(SpecError::BadNumber {
                    at: self.at(counter_node.mark),
                    field: format!("{field}.counter"),
                    value: counter,
                    expected: "a counter without a budget yet (one budget per counter)",
                    example: "tokens",
                });
            }
            let max_node = self.required(node, entries, &field, "max", "`max: 50`")?;
            let max_field = format!("{field}.max");
            let text = self.text(max_node, &max_field, "a number such as `50` or `49.5`")?;
            let max = CounterValue::parse(&text)
                .ok()
                .filter(|max| max.get() > 0.0)
                .ok_or_else(|| SpecError::BadNumber {
                    at: self.at(max_node.mark),
                    field: max_field,
                    value: text,
                    expected: "a number above 0",
                    example: "49.5",
                })?;
            budgets.push(Budget { counter, max });
        }
        Ok(budgets)
    }

    /// `isolation:` and `on_conflict:` (which needs worktree isolation). Worktree isolation
    /// outside a git repository is an error now, before anything runs.
    fn isolation(
        &self,
        entries: &[Entry],
        env: &BTreeMap<String, String>,
        base_dir: &Path,
    ) -> Result<(Isolation, Option<CommandTemplate>), SpecError> {
        let isolation = match get(entries, "isolation") {
            None => Isolation::Shared,
            Some(node) => {
                let text = self.text(node, "map.isolation", "`isolation: worktree`")?;
                match text.as_str() {
                    "none" => Isolation::Shared,
                    "worktree" => {
                        if !in_git_repository(base_dir) {
                            return Err(SpecError::NotAGitRepository {
                                at: self.at(node.mark),
                                base_dir: base_dir.to_path_buf(),
                            });
                        }
                        Isolation::Worktree
                    }
                    _ => {
                        return Err(SpecError::UnknownValue {
                            at: self.at(node.mark),
                            field: "map.isolation".to_string(),
                            value: text,
                            accepted: ISOLATIONS,
                        });
                    }
                }
            }
        };
        let on_conflict = match get(entries, "on_conflict") {
            None => None,
            Some(node) if isolation != Isolation::Worktree => {
                return Err(SpecError::OnConflictWithoutWorktree {
                    at: self.at(node.mark),
                });
            }
            Some(node) => Some(CommandTemplate::Shell(self.shell_template(
                node,
                "map.on_conflict",
                env,
                Scope::Step,
            )?)),
        };
        Ok((isolation, on_conflict))
    }

    /// `input:` is a path, or `{command, format?}`.
    fn input(
        &self,
        node: &Node,
        json_path: Option<String>,
        map_entries: &[Entry],
    ) -> Result<InputSource, SpecError> {
        let (source, format) = match &node.kind {
            Kind::Scalar { text, .. } => {
                let path = PathBuf::from(text);
                let format = format_of(&path);
                let json_path = match format {
                    InputFormat::Json => json_path.or_else(|| Some("$[*]".to_string())),
                    _ => json_path,
                };
                let source = InputSource::File {
                    path,
                    format,
                    json_path,
                };
                (source, format)
            }
            Kind::Map(entries) => {
                self.known_keys(entries, "map.input", INPUT_COMMAND_KEYS)?;
                let command_node =
                    self.required(node, entries, "map.input", "command", "`command: ls *.jpg`")?;
                let command =
                    self.text(command_node, "map.input.command", "`command: ls *.jpg`")?;
                let format = match get(entries, "format") {
                    Some(value) => self.format(value)?,
                    None => InputFormat::Lines,
                };
                let json_path = match format {
                    InputFormat::Json => json_path.or_else(|| Some("$[*]".to_string())),
                    _ => json_path,
                };
                let source = InputSource::Command {
                    command,
                    format,
                    json_path,
                };
                (source, format)
            }
            Kind::Seq(_) => {
                return Err(SpecError::WrongType {
                    at: self.at(node.mark),
                    field: "map.input".to_string(),
                    expected: "a file path or `{command: ..., format: ...}`",
                    found: node.describe(),
                    example: "`input: items.jsonl`",
                });
            }
        };
        let given_json_path = map_entries.iter().find(|entry| entry.key == "json_path");
        if let Some(entry) = given_json_path
            && !entry.value.is_null()
            && format != InputFormat::Json
        {
            return Err(SpecError::JsonPathWithoutJson {
                at: self.at(entry.key_mark),
                format: match format {
                    InputFormat::Lines => "lines",
                    _ => "jsonl",
                },
            });
        }
        Ok(source)
    }

    fn format(&self, node: &Node) -> Result<InputFormat, SpecError> {
        let text = self.text(node, "map.input.format", "`format: jsonl`")?;
        match text.as_str() {
            "lines" => Ok(InputFormat::Lines),
            "jsonl" => Ok(InputFormat::Jsonl),
            "json" => Ok(InputFormat::Json),
            _ => Err(SpecError::UnknownValue {
                at: self.at(node.mark),
                field: "map.input.format".to_string(),
                value: text,
                accepted: FORMATS,
            }),
        }
    }

    fn json_path(&self, node: &Node) -> Result<String, SpecError> {
        let expression = self.text(node, "map.json_path", "`json_path: \"$.items[*]\"`")?;
        JsonPath::parse(&expression).map_err(|source| SpecError::BadJsonPath {
            at: self.at(node.mark),
            expression: expression.clone(),
            source,
        })?;
        Ok(expression)
    }

    fn steps(
        &self,
        node: &Node,
        env: &BTreeMap<String, String>,
    ) -> Result<Vec<StepPlan>, SpecError> {
        let items = self.list(node, "map.steps", "`- shell: echo ${item}`")?;
        if items.is_empty() {
            return Err(SpecError::NoSteps {
                at: self.at(node.mark),
            });
        }
        let mut steps: Vec<StepPlan> = Vec::new();
        for (index, item) in items.iter().enumerate() {
            let field = format!("map.steps[{}]", index + 1);
            let entries = self.mapping(item, &field, "`- shell: echo ${item}`")?;
            self.known_keys(entries, &field, STEP_KEYS)?;
            let shell = self.required(item, entries, &field, "shell", "`shell: echo ${item}`")?;
            let command =
                self.shell_template(shell, &format!("{field}.shell"), env, Scope::Step)?;
            let (name, name_mark) = match get(entries, "name") {
                Some(node) => (
                    self.text(node, &format!("{field}.name"), "`name: resize`")?,
                    node.mark,
                ),
                None => (format!("step{}", index + 1), item.mark),
            };
            if let Some(first) = steps.iter().position(|step| step.name == name) {
                return Err(SpecError::DuplicateStepName {
                    at: self.at(name_mark),
                    name,
                    first: first + 1,
                });
            }
            let when = match get(entries, "when") {
                Some(node) => {
                    Some(self.plain_template(node, &format!("{field}.when"), Scope::Step)?)
                }
                None => None,
            };
            let timeout = self.optional_duration(entries, &format!("{field}.timeout"))?;
            steps.push(StepPlan {
                name,
                command: CommandTemplate::Shell(command),
                when,
                timeout,
            });
        }
        Ok(steps)
    }

    // ---- typed values -------------------------------------------------------------------

    fn mapping<'n>(
        &self,
        node: &'n Node,
        field: &str,
        example: &'static str,
    ) -> Result<&'n [Entry], SpecError> {
        match &node.kind {
            Kind::Map(entries) => Ok(entries),
            _ => Err(SpecError::WrongType {
                at: self.at(node.mark),
                field: field.to_string(),
                expected: "a mapping of `key: value`",
                found: node.describe(),
                example,
            }),
        }
    }

    fn list<'n>(
        &self,
        node: &'n Node,
        field: &str,
        example: &'static str,
    ) -> Result<&'n [Node], SpecError> {
        match &node.kind {
            Kind::Seq(items) => Ok(items),
            _ => Err(SpecError::WrongType {
                at: self.at(node.mark),
                field: field.to_string(),
                expected: "a list (lines starting with `- `)",
                found: node.describe(),
                example,
            }),
        }
    }

    /// A scalar's text; numbers and booleans are taken as written.
    fn text(&self, node: &Node, field: &str, example: &'static str) -> Result<String, SpecError> {
        match &node.kind {
            Kind::Scalar { text, .. } if !node.is_null() => Ok(text.clone()),
            _ => Err(SpecError::WrongType {
                at: self.at(node.mark),
                field: field.to_string(),
                expected: "text",
                found: node.describe(),
                example,
            }),
        }
    }

    fn number<T: FromStr + PartialOrd + From<u8>>(
        &self,
        node: &Node,
        field: &str,
        expected: &'static str,
        example: &'static str,
        minimum: u8,
    ) -> Result<T, SpecError> {
        let text = self.text(node, field, "a whole number such as `2`")?;
        match text.trim().parse::<T>() {
            Ok(value) if value >= T::from(minimum) => Ok(value),
            _ => Err(SpecError::BadNumber {
                at: self.at(node.mark),
                field: field.to_string(),
                value: text,
                expected,
                example,
            }),
        }
    }

    fn duration(
        &self,
        node: &Node,
        field: &str,
        zero_allowed: bool,
    ) -> Result<Duration, SpecError> {
        let text = self.text(node, field, "a duration such as `2m`")?;
        let duration =
            humantime::parse_duration(text.trim()).map_err(|source| SpecError::BadDuration {
                at: self.at(node.mark),
                field: field.to_string(),
                value: text.clone(),
                source: Box::new(source),
            })?;
        if duration.is_zero() && !zero_allowed {
            return Err(SpecError::BadNumber {
                at: self.at(node.mark),
                field: field.to_string(),
                value: text,
                expected: "a duration longer than zero",
                example: "5m",
            });
        }
        Ok(duration)
    }

    fn optional_duration(
        &self,
        entries: &[Entry],
        field: &str,
    ) -> Result<Option<Duration>, SpecError> {
        let key = field.rsplit('.').next().unwrap_or(field);
        match get(entries, key) {
            Some(node) => self.duration(node, field, false).map(Some),
            None => Ok(None),
        }
    }

    /// A key that must be present (and not null) in a mapping.
    fn required<'n>(
        &self,
        owner: &Node,
        entries: &'n [Entry],
        section: &str,
        key: &'static str,
        example: &'static str,
    ) -> Result<&'n Node, SpecError> {
        get(entries, key).ok_or_else(|| SpecError::MissingKey {
            at: self.at(owner.mark),
            section: format!("`{section}`"),
            key,
            example,
        })
    }

    fn known_keys(
        &self,
        entries: &[Entry],
        section: &str,
        accepted: &'static [&'static str],
    ) -> Result<(), SpecError> {
        match entries
            .iter()
            .find(|entry| !accepted.contains(&entry.key.as_str()))
        {
            Some(entry) => Err(SpecError::UnknownKey {
                at: self.at(entry.key_mark),
                key: entry.key.clone(),
                section: if section.starts_with("the ") {
                    section.to_string()
                } else {
                    format!("`{section}`")
                },
                accepted,
            }),
            None => Ok(()),
        }
    }

    // ---- templates ----------------------------------------------------------------------

    fn shell_template(
        &self,
        node: &Node,
        field: &str,
        env: &BTreeMap<String, String>,
        scope: Scope,
    ) -> Result<Template, SpecError> {
        let text = self.text(node, field, "`shell: echo ${item}`")?;
        let template = Template::parse_shell(&text, env)
            .map_err(|error| self.bad_template(node, field, error))?;
        self.check_scope(&template, node, field, scope)?;
        Ok(template)
    }

    fn plain_template(
        &self,
        node: &Node,
        field: &str,
        scope: Scope,
    ) -> Result<Template, SpecError> {
        let text = self.text(node, field, "`\"${item.path}\"`")?;
        let template =
            Template::parse_plain(&text).map_err(|error| self.bad_template(node, field, error))?;
        self.check_scope(&template, node, field, scope)?;
        Ok(template)
    }

    fn check_scope(
        &self,
        template: &Template,
        node: &Node,
        field: &str,
        scope: Scope,
    ) -> Result<(), SpecError> {
        for (placeholder, text) in template.placeholders() {
            let allowed = match placeholder {
                Placeholder::Item(_) => matches!(scope, Scope::Step | Scope::Key),
                Placeholder::ItemKey => scope == Scope::Step,
                Placeholder::Map(_) => scope == Scope::Reduce,
                Placeholder::Env(_)
                | Placeholder::Replacement(_)
                | Placeholder::Positional { .. } => true,
            };
            if !allowed {
                return Err(SpecError::OutOfScope {
                    at: self.at(node.mark),
                    field: field.to_string(),
                    placeholder: text.to_string(),
                });
            }
        }
        Ok(())
    }

    fn bad_template(&self, node: &Node, field: &str, error: TemplateError) -> SpecError {
        SpecError::BadTemplate {
            at: self.at(self.offset_mark(node, error.offset())),
            field: field.to_string(),
            source: error,
        }
    }

    /// The file position of the `offset`-th character of a scalar's text, where it can be
    /// known: exactly for single-line plain and quoted values and for `|` blocks; at the
    /// value's start otherwise.
    fn offset_mark(&self, node: &Node, offset: usize) -> Mark {
        let Kind::Scalar { text, style } = &node.kind else {
            return node.mark;
        };
        let before: String = text.chars().take(offset).collect();
        let line_in_text = before.matches('\n').count();
        let column_in_line = before.rsplit('\n').next().map_or(0, |l| l.chars().count());
        match style {
            Style::Plain if !text.contains('\n') => Mark {
                line: node.mark.line,
                column: node.mark.column + offset,
            },
            // Exact unless the text before the offset holds an escape sequence.
            Style::Quoted if !text.contains('\n') => Mark {
                line: node.mark.line,
                column: node.mark.column + 1 + offset,
            },
            Style::Block => {
                // The parser marks a block scalar at its first content line.
                let line = node.mark.line + line_in_text;
                let indent = self
                    .lines
                    .get(line - 1)
                    .map_or(0, |l| l.chars().take_while(|c| *c == ' ').count());
                Mark {
                    line,
                    column: indent + column_in_line + 1,
                }
            }
            _ => node.mark,
        }
    }
}

/// A mapping's value for `key`, treating `key: ~` like an absent key.
fn get<'n>(entries: &'n [Entry], key: &str) -> Option<&'n Node> {
    entries
        .iter()
        .find(|entry| entry.key == key)
        .map(|entry| &entry.value)
        .filter(|value| !value.is_null())
}

/// The job's name when `name:` is absent: the file name without its extension.
fn default_name(path: &Path) -> String {
    path.file_stem()
        .map(|stem| stem.to_string_lossy().into_owned())
        .unwrap_or_else(|| "job".to_string())
}

/// How an input file is read, from its extension.
pub(super) fn format_of(path: &Path) -> InputFormat {
    match path.extension().and_then(|e| e.to_str()) {
        Some("json") => InputFormat::Json,
        Some("jsonl" | "ndjson") => InputFormat::Jsonl,
        _ => InputFormat::Lines,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses job text as `job.yaml` in a fresh directory holding `items.txt`; returns the
    /// error's full message.
    fn error_of(text: &str) -> String {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("items.txt"), "a\n").expect("write items");
        match parse_job(Path::new("job.yaml"), text, dir.path()) {
            Ok(plan) => panic!("expected an error, got {plan:?}"),
            Err(error) => error.to_string(),
        }
    }

    fn line(error: &str) -> &str {
        error.lines().next().unwrap_or_default()
    }

    fn hint(error: &str) -> &str {
        error.lines().nth(1).unwrap_or_default()
    }

    const DESIGN_EXAMPLE: &str = r#"name: thumbnails
env: { OUT: out }
setup:
  - shell: "ls photos/*.jpg | jq -R '{path: .}' > items.jsonl"
map:
  input: items.jsonl          # .json (with json_path), .jsonl, or plain lines; or {command: ...}
  key: "${item.path}"         # stable item key (optional)
  max_parallel: 8
  timeout: 2m                 # per attempt
  retries: 2                  # then the DLQ
  steps:
    - name: resize
      shell: convert ${item.path} -resize 256x256 ${OUT}/$(basename ${item.path})
    - name: upload
      when: "${item.upload}"
      shell: ./upload.sh ${item.path}
reduce:
  - shell: echo "${map.completed} done, ${map.dead_lettered} in DLQ"
"#;

    #[test]
    fn the_unquoted_design_example_is_invalid_yaml() {
        // DESIGN.md's setup line holds `: ` in a plain scalar, which YAML reads as a mapping.
        let text = DESIGN_EXAMPLE.replace('"', "");
        let text = text.replacen("echo ${map", "\"echo ${map", 1);
        let error = error_of(&text.replace("${map.completed}", "x"));
        assert!(
            line(&error).starts_with("job.yaml:4:42: invalid YAML: "),
            "{error}"
        );
    }

    #[test]
    fn the_design_example_parses() {
        let plan = parse_job(Path::new("job.yaml"), DESIGN_EXAMPLE, Path::new("/base"))
            .expect("valid job");
        assert_eq!(plan.name, "thumbnails");
        assert_eq!(plan.env.get("OUT").map(String::as_str), Some("out"));
        assert_eq!(plan.setup[0].name, "setup[1]");
        assert_eq!(plan.map.max_parallel, 8);
        assert_eq!(plan.map.timeout, Some(Duration::from_secs(120)));
        assert_eq!(plan.map.retries, 2);
        assert_eq!(plan.map.backoff, Duration::from_secs(1));
        assert_eq!(
            plan.map.input,
            InputSource::File {
                path: "items.jsonl".into(),
                format: InputFormat::Jsonl,
                json_path: None
            }
        );
        assert_eq!(plan.map.steps.len(), 2);
        assert_eq!(plan.map.steps[1].name, "upload");
        assert!(plan.map.steps[1].when.is_some());
        assert_eq!(plan.reduce[0].name, "reduce[1]");
        assert_eq!(plan.base_dir, Path::new("/base"));
    }

    #[test]
    fn defaults_are_filled_in() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("photos.json"), "[]").expect("write");
        let text = "map:\n  input: photos.json\n  steps:\n    - shell: echo ${item}\n    - shell: echo again\n";
        let plan = parse_job(Path::new("dir/thumbs.yaml"), text, dir.path()).expect("valid job");
        assert_eq!(plan.name, "thumbs");
        assert_eq!(plan.map.max_parallel, default_parallelism());
        assert_eq!(plan.map.retries, 0);
        assert_eq!(plan.map.timeout, None);
        assert_eq!(plan.map.key, None);
        assert_eq!(plan.map.steps[0].name, "step1");
        assert_eq!(plan.map.steps[1].name, "step2");
        assert_eq!(
            plan.map.input,
            InputSource::File {
                path: "photos.json".into(),
                format: InputFormat::Json,
                json_path: Some("$[*]".into())
            }
        );
    }

    #[test]
    fn input_commands_and_formats() {
        let text = "map:\n  input: {command: cat x.json, format: json}\n  json_path: $.a[*]\n  steps: [{shell: echo}]\n";
        let plan =
            parse_job(Path::new("job.yaml"), text, Path::new("/nonexistent")).expect("valid");
        assert_eq!(
            plan.map.input,
            InputSource::Command {
                command: "cat x.json".into(),
                format: InputFormat::Json,
                json_path: Some("$.a[*]".into())
            }
        );
        let text = "map:\n  input:\n    command: ls\n  steps: [{shell: echo}]\n";
        let plan =
            parse_job(Path::new("job.yaml"), text, Path::new("/nonexistent")).expect("valid");
        assert!(matches!(
            plan.map.input,
            InputSource::Command {
                format: InputFormat::Lines,
                json_path: None,
                ..
            }
        ));
        let error =
            error_of("map:\n  input: {command: ls, format: xml}\n  steps: [{shell: echo}]\n");
        assert_eq!(
            line(&error),
            "job.yaml:2:32: `map.input.format` cannot be `xml`"
        );
        let error =
            error_of("map:\n  input: {command: ls, format: jsnl}\n  steps: [{shell: echo}]\n");
        assert!(hint(&error).contains("did you mean `jsonl`?"), "{error}");
    }

    #[test]
    fn rates_and_budgets_parse_and_bad_ones_say_where() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("items.txt"), "a\n").expect("write items");
        let text = "map:\n  input: items.txt\n  rate: 100/min\n  budget:\n    - {counter: cost_cents, max: 5000}\n    - {counter: tokens, max: 200000}\n  steps: [{shell: echo}]\n";
        let plan = parse_job(Path::new("job.yaml"), text, dir.path()).unwrap();
        assert_eq!(plan.map.rate.unwrap().to_string(), "100/min");
        let budgets: Vec<String> = plan.map.budgets.iter().map(|b| b.to_string()).collect();
        assert_eq!(budgets, ["cost_cents=5000", "tokens=200000"]);
        let one = "map:\n  input: items.txt\n  budget: {counter: cost_cents, max: 50}\n  steps: [{shell: echo}]\n";
        let plan = parse_job(Path::new("job.yaml"), one, dir.path()).unwrap();
        assert_eq!(plan.map.budgets.len(), 1);

        let error = error_of("map:\n  input: items.txt\n  rate: 20/d\n  steps: [{shell: echo}]\n");
        assert_eq!(
            line(&error),
            "job.yaml:3:9: `map.rate` must be a number of starts per second, minute or hour (`/s`, `/min`, `/h`), found `20/d`"
        );
        let error = error_of(
            "map:\n  input: items.txt\n  budget: {counter: cost, max: -1.5}\n  steps: [{shell: echo}]\n",
        );
        assert!(
            line(&error).starts_with("job.yaml:3:32: `map.budget.max` must be a number above 0"),
            "{error}"
        );
        let dollars = "map:\n  input: items.txt\n  budget: {counter: cost_usd, max: 49.5}\n  steps: [{shell: echo}]\n";
        let plan = parse_job(Path::new("job.yaml"), dollars, dir.path()).unwrap();
        assert_eq!(plan.map.budgets[0].to_string(), "cost_usd=49.5");
        let error = error_of(
            "map:\n  input: items.txt\n  budget: {counter: cost}\n  steps: [{shell: echo}]\n",
        );
        assert!(line(&error).contains("is missing the key `max`"), "{error}");
        let error = error_of(
            "map:\n  input: items.txt\n  budget: [{counter: a, max: 1}, {counter: a, max: 2}]\n  steps: [{shell: echo}]\n",
        );
        assert!(line(&error).contains("`map.budget[2].counter`"), "{error}");
    }

    #[test]
    fn yaml_syntax_errors_have_positions() {
        let error = error_of("map:\n  input: items.txt\n  steps: [\n");
        assert!(line(&error).starts_with("job.yaml:"), "{error}");
        assert!(line(&error).contains(": invalid YAML: "), "{error}");
        let error = error_of("map:\n  input: items.txt\n  steps:\n  - shell: a\n   name: b\n");
        assert_eq!(
            line(&error),
            "job.yaml:5:4: invalid YAML: while parsing a block mapping, did not find expected key"
        );
        assert!(hint(&error).starts_with("  hint: "), "{error}");
    }

    #[test]
    fn unknown_keys_list_the_accepted_keys_and_suggest_the_closest() {
        let error = error_of("nmae: x\nmap:\n  input: items.txt\n  steps: [{shell: echo}]\n");
        assert_eq!(
            line(&error),
            "job.yaml:1:1: unknown key `nmae` in the job file"
        );
        assert_eq!(
            hint(&error),
            "  hint: did you mean `name`? accepted here: `name`, `env`, `setup`, `map`, `reduce`, `alerts`, `deadline`, `logs`, `log_cap`"
        );
        let error = error_of("map:\n  input: items.txt\n  retry: 3\n  steps: [{shell: echo}]\n");
        assert_eq!(line(&error), "job.yaml:3:3: unknown key `retry` in `map`");
        assert!(hint(&error).contains("did you mean `retries`?"), "{error}");
        let error =
            error_of("map:\n  input: items.txt\n  steps:\n    - shell: echo\n      timout: 5s\n");
        assert_eq!(
            line(&error),
            "job.yaml:5:7: unknown key `timout` in `map.steps[1]`"
        );
        assert!(hint(&error).contains("did you mean `timeout`?"), "{error}");
        let error = error_of(
            "map:\n  input: items.txt\n  steps: [{shell: echo}]\nreduce:\n  - shell: x\n    when: y\n",
        );
        assert_eq!(
            line(&error),
            "job.yaml:6:5: unknown key `when` in `reduce[1]`"
        );
        assert_eq!(
            hint(&error),
            "  hint: accepted here: `name`, `shell`, `timeout`"
        );
        let error = error_of("map:\n  input: {command: ls, fmt: json}\n  steps: [{shell: echo}]\n");
        assert_eq!(
            line(&error),
            "job.yaml:2:24: unknown key `fmt` in `map.input`"
        );
    }

    #[test]
    fn alerts_and_deadline_parse_with_defaults_and_off() {
        let job = |extra: &str| {
            parse_job(
                Path::new("job.yml"),
                &format!(
                    "map:\n  input: {{command: echo a}}\n  steps: [{{shell: 'true'}}]\n{extra}"
                ),
                Path::new("."),
            )
        };
        let plan = job("").unwrap();
        assert_eq!(plan.alerts, AlertRules::default());
        assert_eq!(plan.deadline, None);
        let plan = job(
            "alerts:\n  stuck_after: off\n  failure_rate: 12.5%\n  throughput_drop: false\n  window: 30s\ndeadline: 90m\n",
        )
        .unwrap();
        assert_eq!(plan.alerts.stuck_after, None);
        assert_eq!(plan.alerts.failure_rate, Some(0.125));
        assert_eq!(plan.alerts.throughput_drop, None);
        assert_eq!(plan.alerts.timeout_rate, AlertRules::default().timeout_rate);
        assert_eq!(plan.alerts.window, Duration::from_secs(30));
        assert_eq!(
            plan.deadline,
            Some(Deadline::After(Duration::from_secs(5400)))
        );
        let plan = job("deadline: 2026-11-30T18:00:00Z\n").unwrap();
        assert_eq!(plan.deadline, Some(Deadline::At(1_796_061_600_000)));

        for (extra, needle) in [
            (
                "alerts:\n  failure_rate: 20\n",
                "job.yml:5:17: `alerts.failure_rate` must be a percentage",
            ),
            ("alerts:\n  failure_rate: 120%\n", "must be a percentage"),
            ("alerts:\n  window: 1h\n", "at most 10m"),
            ("alerts:\n  stuck: 1m\n", "unknown key `stuck`"),
            (
                "deadline: soon\n",
                "`deadline` must be a duration after the job starts",
            ),
        ] {
            let error = job(extra).unwrap_err().to_string();
            assert!(error.contains(needle), "{extra:?}: {error}");
        }
    }

    #[test]
    fn wrong_types_point_at_the_value() {
        let error =
            error_of("map:\n  input: items.txt\n  retries: [1]\n  steps: [{shell: echo}]\n");
        assert_eq!(
            line(&error),
            "job.yaml:3:12: `map.retries` must be text, found a list"
        );
        let error = error_of("map:\n  input: items.txt\n  retries: -1\n  steps: [{shell: echo}]\n");
        assert_eq!(
            line(&error),
            "job.yaml:3:12: `map.retries` must be a whole number, 0 or more, found `-1`"
        );
        let error = error_of("map:\n  input: items.txt\n  steps:\n    shell: echo\n");
        assert_eq!(
            line(&error),
            "job.yaml:4:5: `map.steps` must be a list (lines starting with `- `), found a mapping"
        );
        let error = error_of("- a\n- b\n");
        assert_eq!(
            line(&error),
            "job.yaml:1:1: the job file must be a mapping of `key: value`, found a list"
        );
        let error =
            error_of("env: {OUT: [a]}\nmap:\n  input: items.txt\n  steps: [{shell: echo}]\n");
        assert_eq!(
            line(&error),
            "job.yaml:1:12: `env.OUT` must be text, found a list"
        );
    }

    #[test]
    fn bad_values_point_at_the_value() {
        let error =
            error_of("map:\n  input: items.txt\n  timeout: 5 parsecs\n  steps: [{shell: echo}]\n");
        assert!(
            line(&error).starts_with("job.yaml:3:12: `map.timeout` is not a duration: `5 parsecs`"),
            "{error}"
        );
        assert_eq!(
            hint(&error),
            "  hint: write a duration like `30s`, `500ms`, `2m` or `1h30m`"
        );
        let error =
            error_of("map:\n  input: items.txt\n  max_parallel: 0\n  steps: [{shell: echo}]\n");
        assert_eq!(
            line(&error),
            "job.yaml:3:17: `map.max_parallel` must be a whole number of at least 1, found `0`"
        );
        assert_eq!(
            hint(&error),
            "  hint: write a whole number of at least 1, for example `max_parallel: 8`"
        );
        let error = error_of("map:\n  input: items.txt\n  steps: [{shell: echo, timeout: 0s}]\n");
        assert!(
            line(&error).starts_with(
                "job.yaml:3:34: `map.steps[1].timeout` must be a duration longer than zero"
            ),
            "{error}"
        );
        let error = error_of("map:\n  input: x.json\n  json_path: $[\n  steps: [{shell: echo}]\n");
        assert!(
            line(&error).starts_with("job.yaml:3:14: `$[` is not a valid JSONPath"),
            "{error}"
        );
        let error =
            error_of("map:\n  input: items.txt\n  json_path: $[*]\n  steps: [{shell: echo}]\n");
        assert_eq!(
            line(&error),
            "job.yaml:3:3: `json_path` only applies to JSON input, but this input is read as lines"
        );
        let error = error_of("env:\n  2X: a\nmap:\n  input: items.txt\n  steps: [{shell: echo}]\n");
        assert_eq!(line(&error), "job.yaml:2:3: `2X` cannot be an env name");
        let error =
            error_of("env:\n  item: a\nmap:\n  input: items.txt\n  steps: [{shell: echo}]\n");
        assert_eq!(line(&error), "job.yaml:2:3: `item` cannot be an env name");
    }

    #[test]
    fn missing_and_empty_sections() {
        let error = error_of("name: x\n");
        assert_eq!(
            line(&error),
            "job.yaml:1:1: the job file is missing the key `map`"
        );
        let error = error_of("map:\n  input: items.txt\n");
        assert_eq!(
            line(&error),
            "job.yaml:2:3: `map` is missing the key `steps`"
        );
        let error = error_of("map:\n  input: items.txt\n  steps: []\n");
        assert_eq!(line(&error), "job.yaml:3:10: `map.steps` is empty");
        let error = error_of("map:\n  input: items.txt\n  steps:\n    - name: a\n");
        assert_eq!(
            line(&error),
            "job.yaml:4:7: `map.steps[1]` is missing the key `shell`"
        );
        let error = error_of("map:\n  steps: [{shell: echo}]\n");
        assert_eq!(
            line(&error),
            "job.yaml:2:3: `map` is missing the key `input`"
        );
        let error = error_of("");
        assert_eq!(line(&error), "job.yaml:1:1: the job file is empty");
        let error = error_of(
            "map:\n  input: items.txt\n  steps:\n    - {name: a, shell: x}\n    - {name: a, shell: y}\n",
        );
        assert_eq!(
            line(&error),
            "job.yaml:5:14: step name `a` is already used by step 1"
        );
    }

    #[test]
    fn template_errors_point_into_the_value() {
        let error = error_of("map:\n  input: items.txt\n  steps:\n    - shell: echo ${item.x\n");
        assert_eq!(
            line(&error),
            "job.yaml:4:19: bad template in `map.steps[1].shell`: `${` at character 6 is never closed"
        );
        let error =
            error_of("map:\n  input: items.txt\n  steps:\n    - shell: \"echo ${item.x\"\n");
        assert!(line(&error).starts_with("job.yaml:4:20: "), "{error}");
        let error = error_of(
            "map:\n  input: items.txt\n  steps:\n    - shell: |\n        echo a\n        echo ${item.x\n",
        );
        assert!(line(&error).starts_with("job.yaml:6:14: "), "{error}");
        let error =
            error_of("map:\n  input: items.txt\n  key: ${map.total}\n  steps: [{shell: echo}]\n");
        assert_eq!(
            line(&error),
            "job.yaml:3:8: `map.key` uses `${map.total}`, which has no value there"
        );
        let error = error_of(
            "setup:\n  - shell: echo ${item}\nmap:\n  input: items.txt\n  steps: [{shell: echo}]\n",
        );
        assert_eq!(
            line(&error),
            "job.yaml:2:12: `setup[1].shell` uses `${item}`, which has no value there"
        );
        let error =
            error_of("map:\n  input: items.txt\n  steps:\n    - shell: echo `cat ${item}`\n");
        assert!(line(&error).contains("inside backticks"), "{error}");
        let error = error_of("map:\n  input: items.txt\n  steps:\n    - shell: echo ${map.done}\n");
        assert!(line(&error).starts_with("job.yaml:4:19: "), "{error}");
    }

    #[test]
    fn missing_input_file_is_checked_only_without_setup() {
        let error = error_of("map:\n  input: nope.txt\n  steps: [{shell: echo}]\n");
        assert!(
            line(&error).starts_with("job.yaml:2:10: the input file ")
                && line(&error).ends_with("nope.txt does not exist"),
            "{error}"
        );
        let dir = tempfile::tempdir().expect("temp dir");
        let text = "setup:\n  - shell: echo a > nope.txt\nmap:\n  input: nope.txt\n  steps: [{shell: echo}]\n";
        assert!(parse_job(Path::new("job.yaml"), text, dir.path()).is_ok());
    }

    #[test]
    fn load_resolves_against_the_job_directory() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir(dir.path().join("jobs")).expect("mkdir");
        std::fs::write(dir.path().join("jobs/items.txt"), "a\nb\n").expect("write");
        let job = dir.path().join("jobs/j.yaml");
        std::fs::write(&job, "map:\n  input: items.txt\n  steps: [{shell: echo}]\n")
            .expect("write");
        let plan = load(&job).expect("valid job");
        assert_eq!(plan.base_dir, dir.path().join("jobs"));
        assert_eq!(plan.source.as_deref(), Some(job.as_path()));
        let items = plan
            .map
            .load_items(&plan.base_dir, &plan.env)
            .expect("items");
        assert_eq!(items.len(), 2);

        let error = load(&dir.path().join("missing.yaml")).unwrap_err();
        assert!(matches!(error, SpecError::Read { .. }), "{error}");
    }

    #[test]
    fn isolation_and_on_conflict() {
        let dir = tempfile::tempdir().expect("temp dir");
        let job = |extra: &str| {
            parse_job(
                Path::new("job.yml"),
                &format!(
                    "map:\n  input: {{command: echo a}}\n  steps: [{{shell: 'true'}}]\n{extra}"
                ),
                dir.path(),
            )
        };
        assert_eq!(job("").unwrap().map.isolation, Isolation::Shared);
        assert_eq!(
            job("  isolation: none\n").unwrap().map.isolation,
            Isolation::Shared
        );
        let error = job("  isolation: worktree\n").unwrap_err().to_string();
        assert!(
            error.starts_with("job.yml:4:14: `map.isolation: worktree` needs a git repository"),
            "{error}"
        );
        std::fs::create_dir(dir.path().join(".git")).expect("mkdir");
        let plan = job("  isolation: worktree\n  on_conflict: ./resolve.sh ${item}\n").unwrap();
        assert_eq!(plan.map.isolation, Isolation::Worktree);
        assert!(plan.map.on_conflict.is_some());
        let yaml = plan.to_yaml();
        assert!(yaml.contains("isolation: worktree"), "{yaml}");
        assert_eq!(
            parse_job(Path::new("job.yml"), &yaml, dir.path()).expect("reloads"),
            plan
        );
        let mut shared = plan.clone();
        shared.map.isolation = Isolation::Shared;
        shared.map.on_conflict = None;
        assert_ne!(plan.hash(), shared.hash());
        let error = job("  isolation: sandbox\n").unwrap_err().to_string();
        assert!(
            error.contains("`map.isolation` cannot be `sandbox`"),
            "{error}"
        );
        let error = job("  on_conflict: x\n").unwrap_err().to_string();
        assert!(
            error.starts_with(
                "job.yml:4:16: `map.on_conflict` only applies to `isolation: worktree`"
            ),
            "{error}"
        );
    }

    #[test]
    fn locations_are_exposed() {
        let dir = tempfile::tempdir().expect("temp dir");
        let error = parse_job(Path::new("job.yaml"), "map: 3\n", dir.path()).unwrap_err();
        let at = error.location().expect("has a location");
        assert_eq!((at.line, at.column), (1, 6));
    }
}
