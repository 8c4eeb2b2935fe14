//! A job run in this process with live progress (`mmm run`, `mmm resume`, `mmm dlq retry`):
//! the views, the signals, the commands' output, the runner, then the summary, and the final
//! status turned into the exit code.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use super::branch::report_branch;
use super::{StopNotices, run_config, watch_signals};
use crate::cli::{Exit, output};
use crate::tui::bars::{ProgressMode, ProgressView};
use mmm_core::job::{JobId, JobStatus};
use mmm_runner::{
    self as runner, ClaimOptions, OwnerConfig, ProcessExecutor, Role, Start, StopLevel, claim,
};
use mmm_spec::JobPlan;
use mmm_store::{self as store, Store};

/// How a run is shown and stopped; shared by `mmm run`, `mmm resume` and `mmm dlq retry`.
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
    /// How long the run waits for a store it cannot reach (a PostgreSQL server restarting or
    /// cut off, a SQLite store locked by another process) before it stops, resumable: running
    /// commands go on meanwhile and their results wait to be recorded.
    #[arg(long, default_value = "5m", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub(crate) store_outage_limit: Duration,
    /// Print no progress and no summary: only the commands' own output and errors.
    #[arg(long)]
    pub(crate) quiet: bool,
    /// Worktree isolation: when the map is done, fast-forward BRANCH to the job's integration
    /// branch if it can (it says so when it cannot; nothing is merged by force).
    #[arg(long, value_name = "BRANCH")]
    pub(crate) merge_into: Option<String>,
}

/// Runs (or continues) a job as its owner with live progress and signal handling, prints the
/// summary, and turns the final status into the exit code.
pub(crate) async fn execute(
    store: Arc<dyn Store>,
    plan: Arc<JobPlan>,
    job_id: JobId,
    start: Start,
    view_args: &ViewArgs,
    store_location: &str,
) -> anyhow::Result<Exit> {
    let (stop_tx, stop_rx) = watch::channel(StopLevel::Run);
    let role = Role::Own(OwnerConfig {
        start,
        claims: owner_claims(store_location, &plan),
        heartbeat: Duration::from_secs(1),
        checkpoint_every: view_args.checkpoint_every,
        snapshot_every: view_args.snapshot_every,
    });
    let outage_limit = view_args.store_outage_limit;
    let mut config = run_config(job_id, plan.clone(), store, role, stop_rx, outage_limit)?;
    let (out_tx, mut out_rx) = mpsc::unbounded_channel();
    config.output = Some(out_tx);
    config.show_map_output = plan.source.is_none() || view_args.show_output;
    let mode = if view_args.quiet {
        ProgressMode::None
    } else {
        view_args.progress
    };
    let view = Arc::new(ProgressView::start(
        mode,
        config.tracker.clone(),
        config.metrics.clone(),
        plan.clone(),
        view_args.progress_interval,
    ));
    if !view_args.quiet {
        // A resumed job runs with the agents `mmm scale` set last, if it set some.
        let agents = config
            .store
            .control_state(job_id)
            .ok()
            .and_then(|state| state.agents)
            .map_or(plan.map.max_parallel, |agents| agents as usize);
        view.message(&format!(
            "mmm: job {} ({}) with {} agents; store {}",
            job_id.short(),
            plan.name,
            agents,
            mmm_store::shown_location(store_location)
        ));
    }
    let notices = RunNotices {
        view: view.clone(),
        grace: view_args.grace,
    };
    let signals = tokio::spawn(watch_signals(stop_tx, notices));
    let printer = {
        let view = view.clone();
        tokio::spawn(async move {
            while let Some(out) = out_rx.recv().await {
                view.print_output(&out);
            }
        })
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
    report_branch(
        &summary,
        &plan,
        view_args.merge_into.as_deref(),
        view_args.quiet,
    );
    if let Some(halted) = &summary.halted {
        return Ok(Exit::Halted(halted.exit_code));
    }
    Ok(match summary.status {
        JobStatus::Completed => Exit::Success,
        JobStatus::CompletedWithFailures => Exit::CompletedWithFailures,
        // Cancelled (`mmm cancel`): stopped on request, as an interrupted run.
        JobStatus::Interrupted | JobStatus::Cancelled => Exit::Interrupted,
        _ => Exit::Failure,
    })
}

/// A PostgreSQL store may be shared with `mmm worker`s: the owner claims items through it.
fn owner_claims(store_location: &str, plan: &JobPlan) -> Option<ClaimOptions> {
    store::postgres::is_postgres_url(store_location).then(|| {
        ClaimOptions::new(
            &mmm_store::owner::host_name(),
            plan.map.max_parallel.max(1),
            lease_from_env(),
            None,
        )
    })
}

/// The lease for this process's claims: `MMM_LEASE` (e.g. `2s`), else the default (30 s).
fn lease_from_env() -> Duration {
    std::env::var("MMM_LEASE")
        .ok()
        .and_then(|text| humantime::parse_duration(&text).ok())
        .unwrap_or(claim::DEFAULT_LEASE)
}

/// What a run's signals do, said above the progress view.
struct RunNotices {
    view: Arc<ProgressView>,
    grace: Duration,
}

impl StopNotices for RunNotices {
    fn unwatchable(&self) {
        self.view
            .message("mmm: cannot watch signals; Ctrl-C will not stop the job cleanly");
    }

    fn stopping(&self, level: StopLevel) {
        match level {
            StopLevel::Graceful => self.view.message(&format!(
                "mmm: stopping: no new items; running commands get {} to finish \
                 (Ctrl-C again to kill them now)",
                output::duration(self.grace)
            )),
            _ => self.view.message("mmm: killing running commands now"),
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
    if let Some(halted) = &summary.halted {
        eprintln!(
            "mmm: halted (--halt {}): {}",
            halted.event.policy, halted.event.reason
        );
    }
    // A URL's password is not printed; with one, these commands need it back (or MMM_STORE).
    let store = mmm_store::shown_location(store_location);
    if c.dead_lettered > 0 {
        eprintln!("mmm: failed items and their output: mmm --store {store} jobs {id} --json");
    }
    if summary.status == JobStatus::Interrupted {
        eprintln!("mmm: the job is recorded as interrupted; `mmm --store {store} jobs` lists it");
    }
    if summary.status == JobStatus::Cancelled {
        eprintln!(
            "mmm: the job was cancelled (mmm cancel); `mmm --store {store} resume --force {}` \
             would run the rest",
            summary.job_id.short()
        );
    }
}
