//! `mmm run`: build the plan (job file or one-liner), record the job, run it with live
//! progress, print a summary, and turn the final status into the exit code.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{mpsc, watch};

use super::{Exit, UsageError, output};
use crate::tui::bars::{ProgressMode, ProgressView};
use mmm_core::job::{JobId, JobStatus};
use mmm_core::metrics::LiveMetrics;
use mmm_core::tracker::Tracker;
use mmm_runner::{self as runner, OwnerConfig, ProcessExecutor, Role, RunConfig, Start, StopLevel};
use mmm_spec::{JobOrigin, JobPlan, OriginSource, Overrides};
use mmm_store::{self as store, writer::StoreWriter};

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

/// How a run is shown and stopped; shared by `mmm run` and `mmm resume`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct ViewArgs {
    /// Show each map command's output when it finishes (one-liners always do).
    #[arg(long)]
    show_output: bool,
    /// How progress is shown: bars on a terminal and plain lines otherwise (auto), or force one.
    #[arg(long, value_enum, default_value = "auto", value_name = "MODE")]
    progress: ProgressMode,
    /// Time between plain progress lines.
    #[arg(long, default_value = "10s", value_name = "DURATION", value_parser = humantime::parse_duration)]
    progress_interval: Duration,
    /// After Ctrl-C, how long running commands may finish before their groups are killed.
    #[arg(long, default_value = "3s", value_name = "DURATION", value_parser = humantime::parse_duration)]
    grace: Duration,
    /// Time between checkpoints during the map (besides one at each phase boundary).
    #[arg(long, default_value = "30s", value_name = "DURATION", value_parser = humantime::parse_duration)]
    checkpoint_every: Duration,
    /// Shortest time between two snapshots of metrics and agent states in the store (for
    /// charts, replay and `mmm progress`); runs longer than 30 minutes space them out more.
    #[arg(long, default_value = "1s", value_name = "DURATION", value_parser = humantime::parse_duration)]
    snapshot_every: Duration,
    /// Print no progress and no summary: only the commands' own output and errors.
    #[arg(short, long)]
    pub(crate) quiet: bool,
    /// Worktree isolation: when the map is done, fast-forward BRANCH to the job's integration
    /// branch if it can (it says so when it cannot; nothing is merged by force).
    #[arg(long, value_name = "BRANCH")]
    pub(crate) merge_into: Option<String>,
}

/// Runs `mmm run`.
pub(crate) fn run(store_location: &str, args: RunArgs) -> anyhow::Result<Exit> {
    let origin = build_origin(&args)?;
    let plan = origin.plan()?.plan;
    let store = store::open(store_location, true).with_context(|| {
        format!(
            "could not open the store at {}",
            mmm_store::shown_location(store_location)
        )
    })?;
    let start = Start::New {
        origin: Some(serde_json::to_string(&origin).context("could not record the job's origin")?),
    };
    if args.dashboard {
        let url = super::serve::start_beside_run(store_location, args.port)?;
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

pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("could not start the async runtime")
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

/// Runs (or continues) a job with live progress and signal handling, prints the summary,
/// and turns the final status into the exit code.
pub(crate) async fn execute(
    store: Arc<dyn store::Store>,
    plan: Arc<JobPlan>,
    job_id: JobId,
    start: Start,
    view_args: &ViewArgs,
    store_location: &str,
) -> anyhow::Result<Exit> {
    let tracker = Arc::new(Tracker::new(0, plan.map.max_parallel.max(1)));
    let metrics = Arc::new(LiveMetrics::new(
        plan.map.steps.iter().map(|s| s.name.clone()).collect(),
        plan.map.max_parallel.max(1),
    ));
    let writer = Arc::new(StoreWriter::spawn(store.clone(), Duration::from_millis(5)));
    let (stop_tx, stop_rx) = watch::channel(StopLevel::Run);
    let (out_tx, mut out_rx) = mpsc::unbounded_channel();
    let mode = if view_args.quiet {
        ProgressMode::None
    } else {
        view_args.progress
    };
    let view = Arc::new(ProgressView::start(
        mode,
        tracker.clone(),
        metrics.clone(),
        plan.clone(),
        view_args.progress_interval,
    ));
    if !view_args.quiet {
        view.message(&format!(
            "mmm: job {} ({}) with {} agents; store {}",
            job_id.short(),
            plan.name,
            plan.map.max_parallel,
            mmm_store::shown_location(store_location)
        ));
    }
    let signals = tokio::spawn(watch_signals(stop_tx, view.clone(), view_args.grace));
    let printer = {
        let view = view.clone();
        tokio::spawn(async move {
            while let Some(out) = out_rx.recv().await {
                view.print_output(&out);
            }
        })
    };
    let config = RunConfig {
        job_id,
        plan: plan.clone(),
        store,
        writer: writer.clone(),
        tracker,
        metrics,
        stop: stop_rx,
        output: Some(out_tx),
        show_map_output: plan.source.is_none() || view_args.show_output,
        role: Role::Own(OwnerConfig {
            start,
            // A PostgreSQL store may be shared with `mmm worker`s: claim items through it.
            claims: store::postgres::is_postgres_url(store_location).then(|| {
                runner::ClaimOptions::new(
                    &mmm_store::owner::host_name(),
                    plan.map.max_parallel.max(1),
                    super::worker::lease_from_env(),
                    None,
                )
            }),
            heartbeat: Duration::from_secs(1),
            checkpoint_every: view_args.checkpoint_every,
            snapshot_every: view_args.snapshot_every,
        }),
    };
    let executor = Arc::new(ProcessExecutor {
        stop_grace: view_args.grace,
        ..ProcessExecutor::default()
    });
    let result = runner::run(config, executor).await;
    signals.abort();
    // The runner dropped its output sender: the printer ends once it has printed everything.
    let _ = printer.await;
    if let Ok(view) = Arc::try_unwrap(view) {
        view.finish();
    }
    let summary = result?;
    if !view_args.quiet {
        print_summary(&summary, &plan, store_location);
    }
    super::clean::report_branch(
        &summary,
        &plan,
        view_args.merge_into.as_deref(),
        view_args.quiet,
    );
    Ok(match summary.status {
        JobStatus::Completed => Exit::Success,
        JobStatus::CompletedWithFailures => Exit::CompletedWithFailures,
        JobStatus::Interrupted => Exit::Interrupted,
        _ => Exit::Failure,
    })
}

/// First signal: graceful stop; second: kill now.
async fn watch_signals(stop: watch::Sender<StopLevel>, view: Arc<ProgressView>, grace: Duration) {
    let streams = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    );
    let (mut int, mut term, mut hup) = match streams {
        (Ok(a), Ok(b), Ok(c)) => (a, b, c),
        _ => {
            view.message("mmm: cannot watch signals; Ctrl-C will not stop the job cleanly");
            return;
        }
    };
    let mut received = 0;
    loop {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
            _ = hup.recv() => {}
        }
        received += 1;
        if received == 1 {
            let _ = stop.send(StopLevel::Graceful);
            view.message(&format!(
                "mmm: stopping: no new items; running commands get {} to finish \
                 (Ctrl-C again to kill them now)",
                output::duration(grace)
            ));
        } else {
            let _ = stop.send(StopLevel::Immediate);
            view.message("mmm: killing running commands now");
        }
    }
}

fn print_summary(summary: &runner::RunSummary, plan: &JobPlan, store_location: &str) {
    let c = &summary.counts;
    let id = summary.job_id.short();
    eprintln!(
        "mmm: job {id} ({}) {} in {}",
        plan.name,
        summary.status,
        output::duration(summary.duration)
    );
    eprintln!(
        "mmm: {} items: {} completed, {} in DLQ, {} skipped, {} not run",
        output::count(c.total()),
        output::count(c.completed),
        output::count(c.dead_lettered),
        output::count(c.skipped),
        output::count(c.pending + c.running + c.failed),
    );
    if let Some(error) = &summary.error {
        eprintln!("mmm: {error}");
    }
    // A URL's password is not printed; with one, these commands need it back (or MMM_STORE).
    let store = mmm_store::shown_location(store_location);
    if c.dead_lettered > 0 {
        eprintln!("mmm: failed items and their output: mmm --store {store} jobs {id} --json");
    }
    if summary.status == JobStatus::Interrupted {
        eprintln!("mmm: the job is recorded as interrupted; `mmm --store {store} jobs` lists it");
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
