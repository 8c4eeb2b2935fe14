//! Continuing a job in this process (`mmm resume`, and `mmm dlq retry` right after its retry):
//! the options, the resume the runner prepares ([`mmm_runner::resume::prepare`]) with what it
//! restored said, then the rest of the job run with live progress.

use std::sync::Arc;
use std::time::Duration;

use mmm_runner::resume::{self, ResumeError, TakeOverError};

use super::{ViewArgs, execute, runtime};
use crate::cli::{Exit, UsageError, output};
use mmm_core::job::JobId;
use mmm_store::Store;

/// How a job continues; `mmm dlq retry` continues a job with the defaults.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct ResumeOptions {
    /// Rewind first: items completed after this checkpoint run again.
    #[arg(long, value_name = "CHECKPOINT")]
    from: Option<i64>,
    /// Run setup again even though the job got past it.
    #[arg(long)]
    rerun_setup: bool,
    /// Go on with the job file as it is now, even though it changed since the job started.
    #[arg(long)]
    accept_changed_spec: bool,
    /// Number of parallel agents [default: as the job had].
    #[arg(short = 'j', long = "jobs", value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100_000))]
    jobs: Option<u32>,
    /// Resume a cancelled job (`mmm cancel`), which is otherwise finished.
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    view: ViewArgs,
}

impl ResumeOptions {
    /// Continue as the job was, with these views.
    pub(crate) fn with_view(view: ViewArgs) -> Self {
        ResumeOptions {
            from: None,
            rerun_setup: false,
            accept_changed_spec: false,
            jobs: None,
            force: false,
            view,
        }
    }
}

/// Takes the job over, says what it restored, and runs the rest of it.
pub(crate) fn continue_job(
    store: Arc<dyn Store>,
    id: JobId,
    args: &ResumeOptions,
    store_location: &str,
) -> anyhow::Result<Exit> {
    let options = resume::ResumeOptions {
        from: args.from,
        rerun_setup: args.rerun_setup,
        accept_changed_spec: args.accept_changed_spec,
        max_parallel: args.jobs.map(|j| j as usize),
        force: args.force,
    };
    let restored = resume::prepare(store.as_ref(), id, &options).map_err(resume_error)?;
    if args.jobs.is_some() {
        // `-j N` overrides what `mmm scale` set.
        store.set_control_agents(id, None)?;
    }
    let control = store.control_state(id)?;
    if !args.view.quiet {
        let c = restored.job.counts;
        let prior = Duration::from_millis(restored.job.duration_ms.max(0) as u64);
        let mut line = format!(
            "mmm: restored {} completed, {} in DLQ, {} skipped; {} interrupted attempts requeued",
            output::count(c.completed),
            output::count(c.dead_lettered),
            output::count(c.skipped),
            output::count(restored.taken.requeued.interrupted.len() as u64),
        );
        if args.from.is_some() {
            line.push_str(&format!(
                "; {} rewound",
                output::count(restored.rewound.len() as u64)
            ));
        }
        line.push_str(&format!(
            "; {} to go; {} already spent",
            output::count(c.pending + c.failed + c.running),
            output::duration(prior)
        ));
        eprintln!("{line}");
        if restored.taken.killed_groups > 0 {
            eprintln!(
                "mmm: stopped {} commands the dead run left running (their items run again)",
                restored.taken.killed_groups
            );
        }
        if let Some(pause) = control.paused {
            eprintln!(
                "mmm: job {short} is paused{} (mmm pause): no item starts until `mmm unpause {short}`",
                if pause.suspend { " with --suspend" } else { "" },
                short = id.short()
            );
        }
        if let Some(agents) = control.agents {
            eprintln!(
                "mmm: job {} runs with {agents} agent(s), as `mmm scale` set (-j N sets another number)",
                id.short()
            );
        }
        if restored.from_stored_text {
            eprintln!("mmm: the job file is gone; using its text as recorded when the job started");
        }
    }
    runtime()?.block_on(execute(
        store,
        Arc::new(restored.plan),
        id,
        restored.start,
        &args.view,
        store_location,
    ))
}

/// What the user reads when a job cannot be resumed, and its exit code: what they can fix
/// (a changed job file, a live owner, a finished job) is a usage error.
fn resume_error(e: ResumeError) -> anyhow::Error {
    match e {
        ResumeError::NoOrigin { .. } => UsageError::new(e.to_string()).into(),
        ResumeError::Spec { source, .. } => anyhow::Error::new(*source),
        ResumeError::SpecChanged {
            job,
            recorded,
            current,
        } => UsageError::new(format!(
            "the job file changed since job {} started:\n{}\nresume with --accept-changed-spec to go on with the file as it is now",
            job.short(),
            line_diff(&pretty(&recorded), &pretty(&current))
        ))
        .into(),
        ResumeError::TakeOver(TakeOverError::Store(s)) | ResumeError::Store(s) => {
            anyhow::Error::new(s)
        }
        ResumeError::TakeOver(other) => UsageError::new(other.to_string()).into(),
    }
}

fn pretty(json: &str) -> String {
    serde_json::from_str::<serde_json::Value>(json)
        .and_then(|v| serde_json::to_string_pretty(&v))
        .unwrap_or_else(|_| json.to_string())
}

/// The lines that differ between two texts, between their common head and tail, as `-`/`+`.
fn line_diff(before: &str, after: &str) -> String {
    let (a, b): (Vec<&str>, Vec<&str>) = (before.lines().collect(), after.lines().collect());
    let head = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let tail = a[head..]
        .iter()
        .rev()
        .zip(b[head..].iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let mut out = String::new();
    for line in &a[head..a.len() - tail] {
        out.push_str(&format!("  - {line}\n"));
    }
    for line in &b[head..b.len() - tail] {
        out.push_str(&format!("  + {line}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_diff_shows_only_what_changed() {
        let d = line_diff("a\nb\nc\nd", "a\nB\nc\nd");
        assert_eq!(d, "  - b\n  + B\n");
        assert_eq!(line_diff("x", "x"), "");
    }
}
