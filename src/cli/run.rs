//! `mmm run`: build the plan (job file or one-liner), record the job, run it with live
//! progress, print a summary, and turn the final status into the exit code.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use super::wiring::{ViewArgs, execute, open_store, runtime, start_beside_run};
use super::{Exit, UsageError};
use mmm_core::job::JobId;
use mmm_runner::Start;
use mmm_spec::{JobOrigin, OriginSource, Overrides};

pub(crate) const AFTER_HELP: &str = "\
Examples:
  mmm run examples/demo.yml                 run a job file
  mmm run job.yml -j 8                      ... with 8 agents
  mmm run -j 2 -- echo {} ::: a b c         run `echo` once per item, like GNU parallel
  mmm run -j 8 --input urls.txt -- curl -fsS {}
  mmm run -j 4 -- convert {} -resize 50% out/{/} ::: *.jpg

Replacement strings (one-liner): {} item, {/} basename, {//} dirname, {.} without extension,
{/.} basename without extension, {#} sequence number, {%} agent slot. Without any, {} is
appended. Values are passed as data: quoted for the shell, never evaluated. Each command also
gets MMM_ITEM (JSON), MMM_ITEM_RAW, MMM_ITEM_KEY, MMM_JOB_ID, MMM_AGENT, MMM_ATTEMPT,
MMM_STEP and MMM_RUNNER_PID (the mmm process running it).

Ctrl-C (or SIGTERM/SIGHUP) stops dispatching, lets running commands finish for --grace, then
kills their process groups and records the job `interrupted`; a second Ctrl-C kills at once.";

/// Arguments of `mmm run`.
#[derive(Debug, clap::Args)]
pub(crate) struct RunArgs {
    /// The job file (YAML). Omit it to run the command given after `--`.
    file: Option<PathBuf>,
    /// Number of parallel agents [default: map.max_parallel, or the number of CPUs].
    #[arg(short = 'j', long = "jobs", value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100_000))]
    jobs: Option<u32>,
    /// One-liner: read the items from FILE, one per line.
    #[arg(long, value_name = "FILE", conflicts_with = "file")]
    input: Option<PathBuf>,
    /// Per-attempt timeout, e.g. 30s, 2m (overrides map.timeout).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    timeout: Option<Duration>,
    /// Retries after a failed attempt before an item goes to the DLQ (overrides map.retries).
    #[arg(long, value_name = "N")]
    retries: Option<u32>,
    #[command(flatten)]
    view: ViewArgs,
    /// Serve the web dashboard while the job runs (on 127.0.0.1; the URL is printed).
    #[arg(long)]
    dashboard: bool,
    /// The dashboard's port; the next free one is taken when it is busy.
    #[arg(
        long,
        default_value_t = 8080,
        value_name = "PORT",
        requires = "dashboard"
    )]
    port: u16,
    /// One-liner: the command, then `:::` and the items.
    #[arg(last = true, value_name = "CMD")]
    command: Vec<String>,
}

/// Runs `mmm run`.
pub(crate) fn run(store_location: &str, args: RunArgs) -> anyhow::Result<Exit> {
    let origin = build_origin(&args)?;
    let plan = origin.plan()?.plan;
    let store = open_store(store_location, true)?;
    let start = Start::New {
        origin: Some(serde_json::to_string(&origin).context("could not record the job's origin")?),
    };
    if args.dashboard {
        let url = start_beside_run(store_location, args.port)?;
        eprintln!("mmm: dashboard at {url}");
    }
    runtime()?.block_on(async {
        execute(
            store,
            Arc::new(plan),
            JobId::new(),
            start,
            &args.view,
            store_location,
        )
        .await
    })
}

/// How the plan is built: the job file or the one-liner, with the command-line overrides.
fn build_origin(args: &RunArgs) -> anyhow::Result<JobOrigin> {
    let overrides = Overrides {
        max_parallel: args.jobs.map(|j| j as usize),
        timeout_ms: args.timeout.map(|t| t.as_millis() as u64),
        retries: args.retries,
    };
    match &args.file {
        Some(file) => {
            if !args.command.is_empty() {
                return Err(UsageError::new(format!(
                    "give either a job file ({}) or a command after `--`, not both",
                    file.display()
                ))
                .into());
            }
            Ok(JobOrigin::file(file, overrides)?)
        }
        None => {
            if args.command.is_empty() {
                return Err(UsageError::new(
                    "nothing to run: give a job file (mmm run job.yml) or a command \
                     (mmm run -j 4 -- echo {} ::: a b c); see mmm run --help",
                )
                .into());
            }
            let (command, items) = split_items(&args.command);
            let base_dir =
                std::env::current_dir().context("could not read the current directory")?;
            Ok(JobOrigin {
                source: OriginSource::OneLiner {
                    command,
                    args: items,
                    input: args.input.clone(),
                    base_dir,
                },
                overrides,
            })
        }
    }
}

/// Splits `CMD ... ::: A B C` into the command and the items.
fn split_items(words: &[String]) -> (Vec<String>, Vec<String>) {
    match words.iter().position(|w| w == ":::") {
        Some(at) => (words[..at].to_vec(), words[at + 1..].to_vec()),
        None => (words.to_vec(), Vec::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_follow_the_triple_colon() {
        let words: Vec<String> = ["echo", "{}", ":::", "a", "b"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let (cmd, items) = split_items(&words);
        assert_eq!(cmd, vec!["echo", "{}"]);
        assert_eq!(items, vec!["a", "b"]);
        let (cmd, items) = split_items(&words[..2]);
        assert_eq!((cmd.len(), items.len()), (2, 0));
    }
}
