//! The normalised plan written back in the job file's own vocabulary, for `mmm validate`:
//! every default filled in, so the text can be read as (and loaded as) a job file.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use super::{
    AlertRules, CommandTemplate, Deadline, InputFormat, InputSource, JobPlan, PhaseCommand,
};

/// The job file's top level.
#[derive(Serialize)]
struct JobView<'p> {
    name: &'p str,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    env: &'p BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    setup: Vec<CommandView>,
    map: MapView<'p>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    reduce: Vec<CommandView>,
    alerts: AlertsView,
    #[serde(skip_serializing_if = "Option::is_none")]
    deadline: Option<String>,
}

/// `alerts:` with every rule spelled out (`off` when switched off).
#[derive(Serialize)]
struct AlertsView {
    stuck_after: String,
    failure_rate: String,
    timeout_rate: String,
    throughput_drop: String,
    window: String,
    min_attempts: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    on_alert: Option<String>,
}

impl AlertsView {
    fn new(rules: &AlertRules) -> Self {
        let percent = |rate: Option<f64>| match rate {
            Some(rate) => format!("{}%", rate * 100.0),
            None => "off".to_string(),
        };
        AlertsView {
            stuck_after: rules
                .stuck_after
                .map_or_else(|| "off".to_string(), duration_text),
            failure_rate: percent(rules.failure_rate),
            timeout_rate: percent(rules.timeout_rate),
            throughput_drop: percent(rules.throughput_drop),
            window: duration_text(rules.window),
            min_attempts: rules.min_attempts,
            on_alert: rules.on_alert.clone(),
        }
    }
}

fn deadline_text(deadline: Deadline) -> String {
    match deadline {
        Deadline::After(after) => duration_text(after),
        Deadline::At(ms) => humantime::format_rfc3339_millis(
            std::time::UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64),
        )
        .to_string(),
    }
}

#[derive(Serialize)]
struct MapView<'a> {
    input: InputView,
    #[serde(skip_serializing_if = "Option::is_none")]
    json_path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<String>,
    max_parallel: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    timeout: Option<String>,
    retries: u32,
    backoff: String,
    steps: Vec<CommandView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    isolation: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    on_conflict: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rate: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    budget: Vec<&'a crate::Budget>,
    #[serde(skip_serializing_if = "Option::is_none")]
    throttle_exit_codes: Option<&'a [i32]>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum InputView {
    Path(String),
    Command {
        command: String,
        format: &'static str,
    },
    /// The one-liner's `::: A B C`; no job-file equivalent.
    Inline {
        inline: Vec<String>,
    },
    /// The one-liner's sources (`:::`, `::::`, `-a`, stdin); no job-file equivalent.
    Sources {
        sources: crate::ArgsInput,
    },
}

/// A setup, step or reduce command.
#[derive(Serialize)]
struct CommandView {
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    shell: Option<String>,
    /// A one-liner run without a shell; no job-file equivalent.
    #[serde(skip_serializing_if = "Option::is_none")]
    argv: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    when: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    timeout: Option<String>,
}

impl CommandView {
    fn new(name: &str, command: &CommandTemplate, timeout: Option<Duration>) -> Self {
        let (shell, argv) = match command {
            CommandTemplate::Shell(line) => (Some(line.to_string()), None),
            CommandTemplate::Argv(words) => {
                (None, Some(words.iter().map(ToString::to_string).collect()))
            }
        };
        CommandView {
            name: name.to_string(),
            shell,
            argv,
            when: None,
            timeout: timeout.map(duration_text),
        }
    }

    fn phase(command: &PhaseCommand) -> Self {
        CommandView::new(&command.name, &command.command, command.timeout)
    }
}

fn duration_text(duration: Duration) -> String {
    humantime::format_duration(duration).to_string()
}

fn format_name(format: InputFormat) -> &'static str {
    match format {
        InputFormat::Json => "json",
        InputFormat::Jsonl => "jsonl",
        InputFormat::Lines => "lines",
    }
}

/// The plan as job-file YAML, preceded by a comment naming where it runs.
pub(super) fn to_yaml(plan: &JobPlan) -> String {
    let (input, json_path) = match &plan.map.input {
        InputSource::File {
            path, json_path, ..
        } => (
            InputView::Path(path.display().to_string()),
            json_path.clone(),
        ),
        InputSource::Command {
            command,
            format,
            json_path,
        } => (
            InputView::Command {
                command: command.clone(),
                format: format_name(*format),
            },
            json_path.clone(),
        ),
        InputSource::Inline(items) => (
            InputView::Inline {
                inline: items.clone(),
            },
            None,
        ),
        InputSource::Args(args) => (
            InputView::Sources {
                sources: args.clone(),
            },
            None,
        ),
    };
    let steps = plan
        .map
        .steps
        .iter()
        .map(|step| CommandView {
            when: step.when.as_ref().map(ToString::to_string),
            ..CommandView::new(&step.name, &step.command, step.timeout)
        })
        .collect();
    let view = JobView {
        name: &plan.name,
        env: &plan.env,
        setup: plan.setup.iter().map(CommandView::phase).collect(),
        map: MapView {
            input,
            json_path,
            key: plan.map.key.as_ref().map(ToString::to_string),
            max_parallel: plan.map.max_parallel,
            timeout: plan.map.timeout.map(duration_text),
            retries: plan.map.retries,
            backoff: duration_text(plan.map.backoff),
            steps,
            isolation: (!plan.map.isolation.is_shared()).then(|| plan.map.isolation.as_str()),
            on_conflict: plan.map.on_conflict.as_ref().map(|c| match c {
                CommandTemplate::Shell(line) => line.to_string(),
                CommandTemplate::Argv(words) => words
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(" "),
            }),
            rate: plan.map.rate.map(|r| r.to_string()),
            budget: plan.map.budgets.iter().collect(),
            throttle_exit_codes: (plan.map.throttle_exit_codes
                != crate::DEFAULT_THROTTLE_EXIT_CODES)
                .then_some(&plan.map.throttle_exit_codes[..]),
        },
        reduce: plan.reduce.iter().map(CommandView::phase).collect(),
        alerts: AlertsView::new(&plan.alerts),
        deadline: plan.deadline.map(deadline_text),
    };
    let header = format!("# runs in {}\n", plan.base_dir.display());
    match serde_saphyr::to_string(&view) {
        Ok(yaml) => header + &yaml,
        // Plain structs with string keys always serialize; say so rather than panic.
        Err(error) => format!("{header}# cannot show the plan as YAML: {error}\n"),
    }
}
