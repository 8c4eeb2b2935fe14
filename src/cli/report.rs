//! `mmm report`: what a step's script runs to report its progress, a message or counters to
//! the mmm job running it, over the pipe named in `MMM_PROGRESS_FD` (protocol in
//! `runner::report` and docs/progress.md).

use std::io::Write;

use super::{Exit, UsageError};
use mmm_runner::report::{FD_VARIABLE, Report, parse_counter, parse_fraction, parse_retry_after};

pub(crate) const AFTER_HELP: &str = "\
Run inside a step of an mmm job: the agent's line in every view shows the progress and the
message, and counters are summed over the job (metrics, snapshots, exports).

Outside an mmm step (MMM_PROGRESS_FD unset) it reports nothing and exits 0, so a script can
also run on its own. Programs that would rather not start a process can write the same lines
to the file descriptor in MMM_PROGRESS_FD themselves:
  progress 40% epoch 4/10
  message loading weights
  counter commits=+1
  throttled 30s
From sh: printf 'progress 40%%\\n' > \"/dev/fd/$MMM_PROGRESS_FD\"

Examples:
  mmm report 40% \"epoch 4/10\"
  mmm report 4/10
  mmm report --message \"downloading shard 3\"
  mmm report --counter commits=+1 --counter files=+12
  mmm report --counter tokens=+1234 --counter cost_usd=+0.0123
  mmm report --throttled --retry-after 30      the API said 429: retry in 30 s (then exit)

A step that reports --throttled (or exits with one of map.throttle_exit_codes, 75 by
default) was throttled: its attempt is retried after the wait, not counted against the
item's retries, and the job lowers its concurrency (docs/api-work.md).";

/// Arguments of `mmm report`.
#[derive(Debug, clap::Args)]
pub(crate) struct ReportArgs {
    /// How far the current step is: 40%, 4/10 or 0.4.
    progress: Option<String>,
    /// What the step is doing, shown beside the progress.
    message: Option<String>,
    /// A message without progress.
    #[arg(long = "message", value_name = "TEXT", conflicts_with = "message")]
    message_only: Option<String>,
    /// Add to a job-wide counter: NAME=+N or NAME=-N, N whole or decimal (cost_usd=+0.0123).
    /// Can be repeated.
    #[arg(long = "counter", value_name = "NAME=N")]
    counters: Vec<String>,
    /// The API this step calls throttled it (e.g. HTTP 429): the attempt is retried later,
    /// not counted against the item's retries, whatever the step's exit code.
    #[arg(long)]
    throttled: bool,
    /// With --throttled: how long the API asked to wait, in seconds (as HTTP's Retry-After
    /// gives it) or as a duration (30s, 2m).
    #[arg(long, value_name = "WAIT", requires = "throttled", value_parser = parse_retry_after)]
    retry_after: Option<std::time::Duration>,
}

pub(crate) fn report(args: ReportArgs) -> anyhow::Result<Exit> {
    let mut reports = Vec::new();
    if let Some(progress) = &args.progress {
        let fraction = parse_fraction(progress).map_err(UsageError::new)?;
        reports.push(Report::Progress {
            fraction,
            message: args.message.clone(),
        });
    }
    if let Some(message) = args.message_only {
        reports.push(Report::Message(message));
    }
    for counter in &args.counters {
        reports.push(parse_counter(counter).map_err(UsageError::new)?);
    }
    if args.throttled {
        reports.push(Report::Throttled {
            retry_after: args.retry_after,
        });
    }
    if reports.is_empty() {
        return Err(UsageError::new(
            "nothing to report: give a progress (40%), --message, --counter or --throttled",
        )
        .into());
    }
    let Ok(fd) = std::env::var(FD_VARIABLE) else {
        eprintln!(
            "mmm report: not inside an mmm step ({FD_VARIABLE} is not set); nothing reported"
        );
        return Ok(Exit::Success);
    };
    let fd: u32 = fd.parse().map_err(|_| {
        UsageError::new(format!(
            "{FD_VARIABLE}={fd} is not a file descriptor number"
        ))
    })?;
    // Opening /dev/fd/N reaches the inherited pipe without unsafe code.
    let path = format!("/dev/fd/{fd}");
    let mut pipe = std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .map_err(|e| anyhow::anyhow!("could not open the report pipe {path}: {e}"))?;
    let text: String = reports.iter().map(|r| r.to_line() + "\n").collect();
    // One write: the lines arrive together, never interleaved with another reporter's.
    pipe.write_all(text.as_bytes())?;
    Ok(Exit::Success)
}
