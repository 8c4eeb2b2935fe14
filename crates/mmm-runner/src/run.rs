//! One run of a job in this process: what every part of it shares (the job and its plan, the
//! store and its writer, the tracker and metrics, the stop signal, the executor, the clock),
//! and the few things they all do with it: record, flush, call the store off the async
//! workers, show a command's output, build a command's environment.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::watch;

use crate::budget::Budgets;
use crate::control::Steering;
use crate::halting::HaltWatch;
use crate::shown::{Shown, tagged};
use crate::throttle::Aimd;
use crate::{CommandResult, Executor, Output, Role, RunConfig, RunError, StopLevel};
use mmm_core::control::ControlState;
use mmm_core::job::{JobId, now_ms};
use mmm_core::metrics::LiveMetrics;
use mmm_core::tracker::Tracker;
use mmm_spec::{Item, JobPlan};
use mmm_store::writer::StoreWriter;
use mmm_store::{Outages, Store, StoreError, Write};

/// What every part of one run shares, whatever its role.
pub(crate) struct Run<E> {
    pub(crate) job: JobId,
    pub(crate) plan: Arc<JobPlan>,
    pub(crate) store: Arc<dyn Store>,
    /// The batching writer in front of `store`: every record of the run goes through it.
    pub(crate) writer: Arc<StoreWriter>,
    /// Outages of the store, ridden out by every store call of the run.
    pub(crate) outages: Arc<Outages>,
    pub(crate) tracker: Arc<Tracker>,
    pub(crate) metrics: Arc<LiveMetrics>,
    /// Stop requests: the caller's (signals), raised by `--halt now` (see [`HaltWatch`]) and
    /// by a cancel (`mmm cancel`).
    pub(crate) stop: watch::Receiver<StopLevel>,
    /// Where the run's own stop requests go (a cancel); also keeps `stop` open.
    pub(crate) stop_tx: watch::Sender<StopLevel>,
    /// `--halt`.
    pub(crate) halt: HaltWatch,
    /// What the control requests so far ask of the agents (docs/control.md).
    pub(crate) steering: watch::Sender<Steering>,
    /// True while the map's running commands are to be stopped (`mmm pause --suspend`).
    pub(crate) suspended: watch::Sender<bool>,
    /// The job's budgets on counters (the owner's; a worker follows the owner's pause).
    pub(crate) budgets: Budgets,
    /// The effective concurrency under throttling by the API the job calls.
    pub(crate) aimd: Aimd,
    /// Where output to show goes, in the order it is to be shown.
    pub(crate) shown: Shown,
    /// Show each map command's output, not only setup's and reduce's.
    pub(crate) show_map_output: bool,
    pub(crate) executor: Arc<E>,
    /// When this run started (for its duration and the snapshots' spacing).
    pub(crate) started: Instant,
    /// The metrics' clock.
    pub(crate) clock: RunClock,
    /// When this run started, epoch ms of `clock` (for rates and the ETA).
    pub(crate) started_ms: i64,
}

impl<E: Executor> Run<E> {
    /// The run `config` describes, its clocks started now; and its role.
    pub(crate) fn new(config: RunConfig, executor: Arc<E>) -> (Self, Role) {
        let clock = RunClock::start();
        let keep_order = config.plan.output.keep_order;
        let (stop_tx, stop) = watch::channel(*config.stop.borrow());
        tokio::spawn(forward_stop(config.stop, stop_tx.clone()));
        let halt = HaltWatch::new(config.plan.map.halt, stop_tx.clone());
        let steering = Steering::start(
            ControlState::default(),
            config.plan.map.max_parallel,
            config.tracker.agent_capacity(),
        );
        let run = Run {
            job: config.job_id,
            plan: config.plan,
            store: config.store,
            writer: config.writer,
            outages: config.outages,
            tracker: config.tracker,
            metrics: config.metrics,
            stop,
            halt,
            stop_tx,
            steering: watch::Sender::new(steering),
            suspended: watch::Sender::new(false),
            budgets: Budgets::default(),
            aimd: Aimd::default(),
            shown: Shown::new(config.output, keep_order),
            show_map_output: config.show_map_output,
            executor,
            started: Instant::now(),
            clock,
            started_ms: clock.now_ms(),
        };
        (run, config.role)
    }

    /// Has the writer record `writes` in one transaction.
    pub(crate) fn record(&self, writes: Vec<Write>) {
        self.writer.send_group(writes);
    }

    /// True once a stop was requested, `--halt` halted the run, or a drain or a cancel.
    pub(crate) fn stopping(&self) -> bool {
        *self.stop.borrow() != StopLevel::Run
            || self.halt.is_halted()
            || self.steering.borrow().is_ending()
    }

    /// Waits until everything sent to the writer is committed.
    pub(crate) async fn flush(&self) -> Result<(), RunError> {
        self.writer
            .flush()
            .await
            .map_err(|source| RunError::Writer {
                job: self.job,
                source,
            })
    }

    /// Runs a blocking store call off the async workers, riding out an unavailable store
    /// (the call is made again until the store answers, up to the outage limit).
    pub(crate) async fn blocking<T: Send + 'static>(
        &self,
        call: impl Fn(&dyn Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, RunError> {
        riding_outages(self.store.clone(), self.outages.clone(), self.job, call).await
    }

    /// Runs a blocking store call off the async workers once, for a caller that would rather
    /// go on without the answer than wait for an unavailable store.
    pub(crate) async fn blocking_once<T: Send + 'static>(
        &self,
        call: impl FnOnce(&dyn Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, RunError> {
        let store = self.store.clone();
        let job = self.job;
        tokio::task::spawn_blocking(move || call(store.as_ref()))
            .await
            .map_err(|source| RunError::Panicked { job, source })?
            .map_err(|source| RunError::Store { job, source })
    }

    /// Sends a command's output to be shown, if it has any and output is shown.
    pub(crate) fn show(&self, source: &str, result: &CommandResult) {
        if self.shown.is_shown() && (!result.stdout.is_empty() || !result.stderr.is_empty()) {
            self.shown.send(Output {
                source: source.to_string(),
                stdout: result.stdout.clone(),
                stderr: result.stderr.clone(),
            });
        }
    }

    /// Sends a map command's output to be shown (in input order with `-k`), each line after
    /// `tag` and a tab when there is one.
    pub(crate) fn show_item(
        &self,
        index: u64,
        key: &str,
        tag: Option<&str>,
        result: &CommandResult,
    ) {
        if !self.shown.is_shown() || (result.stdout.is_empty() && result.stderr.is_empty()) {
            return;
        }
        let (stdout, stderr) = match tag {
            Some(tag) => (tagged(tag, &result.stdout), tagged(tag, &result.stderr)),
            None => (result.stdout.clone(), result.stderr.clone()),
        };
        self.shown.item_output(
            index,
            Output {
                source: key.to_string(),
                stdout,
                stderr,
            },
        );
    }

    /// The job's `env:` plus the `MMM_*` variables every command gets.
    pub(crate) fn command_env(
        &self,
        item: Option<(&Item, u32)>,
        agent: &str,
        step: &str,
    ) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = self
            .plan
            .env
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        env.push(("MMM_JOB_ID".into(), self.job.to_string()));
        // Which process runs the command: a take-over stops only a dead runner's commands.
        env.push(("MMM_RUNNER_PID".into(), std::process::id().to_string()));
        env.push(("MMM_STEP".into(), step.to_string()));
        if let Some((item, attempt)) = item {
            let raw = match &item.value {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            env.push(("MMM_ITEM".into(), item.value.to_string()));
            env.push(("MMM_ITEM_RAW".into(), raw));
            env.push(("MMM_ITEM_KEY".into(), item.key.clone()));
            env.push(("MMM_AGENT".into(), agent.to_string()));
            env.push(("MMM_ATTEMPT".into(), attempt.to_string()));
        }
        env
    }
}

/// Passes the caller's stop requests on to the run's own stop signal (which `--halt now` and a
/// cancel may also raise), never lowering its level, until either side is gone.
async fn forward_stop(mut from: watch::Receiver<StopLevel>, to: watch::Sender<StopLevel>) {
    loop {
        tokio::select! {
            changed = from.changed() => {
                if changed.is_err() {
                    return;
                }
                let level = *from.borrow_and_update();
                to.send_if_modified(|current| {
                    let raise = level > *current;
                    if raise {
                        *current = level;
                    }
                    raise
                });
            }
            () = to.closed() => return,
        }
    }
}

/// The clock of the live metrics: the wall clock at the run's start plus tokio's monotonic time
/// since. Monotonic, so a stepped system clock cannot fake a stall or a rate; tokio's, so a run
/// on a paused runtime (`tokio::time::pause`, with the test executor's sleeps) has its ETA on
/// virtual time, exact and independent of the machine's load (tests/eta_runner.rs).
#[derive(Debug, Clone, Copy)]
pub(crate) struct RunClock {
    epoch_ms: i64,
    origin: tokio::time::Instant,
}

impl RunClock {
    fn start() -> Self {
        RunClock {
            epoch_ms: now_ms(),
            origin: tokio::time::Instant::now(),
        }
    }

    /// Now, epoch ms.
    pub(crate) fn now_ms(&self) -> i64 {
        self.epoch_ms + self.origin.elapsed().as_millis() as i64
    }
}

/// Runs the blocking store call `call` for `job` off the async workers, made again while the
/// store is unavailable, up to the outages' limit ([`Run::blocking`], the claims').
pub(crate) async fn riding_outages<T: Send + 'static>(
    store: Arc<dyn Store>,
    outages: Arc<Outages>,
    job: JobId,
    call: impl Fn(&dyn Store) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, RunError> {
    tokio::task::spawn_blocking(move || outages.retry(|| call(store.as_ref())))
        .await
        .map_err(|source| RunError::Panicked { job, source })?
        .map_err(|source| RunError::Store { job, source })
}
