//! The runner: executes a [`JobPlan`] as setup -> map over N agents -> reduce, recording every
//! state change through the [`StoreWriter`] and keeping the [`Tracker`] current.
//!
//! Agents are tokio tasks that take the next item from a shared cursor. Each item is tried up
//! to `1 + retries` times with exponential backoff; an item whose attempts are exhausted goes
//! to the DLQ with every attempt's exit code, error and output tail. A command that cannot
//! even be rendered for an item (a `${item.field}` it lacks) is not retried: it would fail the
//! same way every time. A stop request ([`StopLevel`]) ends dispatching; attempts cut short
//! are recorded `interrupted` and do not count against retries.

mod alerting;
pub mod claim;
mod isolated;
mod others;
pub mod process;
mod queue;
pub mod report;
pub mod resume;
mod sampler;
pub mod worktree;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::{mpsc, watch};

pub use claim::{ClaimOptions, ClaimStats};
use mmm_core::alerts::Alert;
use mmm_core::event::EventKind;
use mmm_core::job::{AttemptOutcome, ItemStatus, JobId, JobStatus, Phase, now_ms};
use mmm_core::tracker::{AgentSnapshot, ItemEnd, Tracker};
use mmm_spec::{Item, JobPlan, MapCounts, PhaseCommand, RenderContext, StepPlan};
use mmm_store::writer::StoreWriter;
use mmm_store::{NewItem, NewJob, StepRecord, Store, StoreError, Write};
pub use process::{CommandRequest, CommandResult, Executor, Exit, ProcessExecutor, StopLevel};

/// How many unfinished items a resume keeps queued in memory at most (plus one page).
const QUEUED_ITEMS: usize = 4_096;

/// The longest wait between two attempts of an item.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// Output of a command that is to be shown to the user.
#[derive(Debug, Clone)]
pub struct Output {
    /// Whose output: an item key, or a setup/reduce command's name.
    pub source: String,
    /// Standard output.
    pub stdout: Vec<u8>,
    /// Standard error.
    pub stderr: Vec<u8>,
}

/// Everything a run needs besides the executor.
pub struct RunConfig {
    /// The job's id (chosen by the caller so it can be shown before the run starts).
    pub job_id: JobId,
    /// What to run.
    pub plan: Arc<JobPlan>,
    /// The store, for the record of the job and its items.
    pub store: Arc<dyn Store>,
    /// The batching writer in front of `store`.
    pub writer: Arc<StoreWriter>,
    /// Live state, shared with the views.
    pub tracker: Arc<Tracker>,
    /// Durations, ETA, stragglers and failure clusters, shared with the views.
    pub metrics: Arc<mmm_core::metrics::LiveMetrics>,
    /// Stop requests from signal handlers.
    pub stop: watch::Receiver<StopLevel>,
    /// Where output to show goes; setup and reduce output always, map output when
    /// `show_map_output` is set.
    pub output: Option<mpsc::UnboundedSender<Output>>,
    /// Show each map command's output (the one-liner does, like GNU parallel).
    pub show_map_output: bool,
    /// How often the owner heartbeat and a snapshot are recorded.
    pub heartbeat: Duration,
    /// How often a checkpoint is recorded during the map (besides phase boundaries).
    pub checkpoint_every: Duration,
    /// The shortest time between two snapshots; long runs space them out further (see
    /// [`SNAPSHOT_SPAN`]).
    pub snapshot_every: Duration,
    /// A new job, or the continuation of a recorded one, or joining one as a worker.
    pub start: Start,
    /// Scale-out: claim items through the store (a PostgreSQL store shared with workers)
    /// instead of queueing them in memory; `None` for one process per job (SQLite).
    pub claims: Option<ClaimOptions>,
}

/// Whether a run records a new job or continues one.
#[derive(Debug, Clone)]
pub enum Start {
    /// Record a new job; `origin` is how its plan was built (`spec::JobOrigin` as JSON).
    New {
        /// Kept with the job for resumes.
        origin: Option<String>,
    },
    /// Continue a recorded job: its owner is already this process
    /// (see [`resume::take_over`]).
    Resume(Resume),
    /// Join a running job's map as a worker (`mmm worker`, with [`RunConfig::claims`]): run
    /// the items it claims; record attempts, item and agent events, nothing about the job
    /// itself (status, phase, heartbeat, snapshots and reduce are the owner's).
    Join,
}

/// What a resume starts from.
#[derive(Debug, Clone)]
pub struct Resume {
    /// The phase the job was in when it stopped.
    pub phase: Option<Phase>,
    /// Run setup again even though the job stopped after it.
    pub rerun_setup: bool,
    /// Time the earlier runs spent.
    pub prior_duration: Duration,
    /// Load the input again: add new items, report vanished ones.
    pub reload_input: bool,
    /// The job's counts when the resume started.
    pub counts: mmm_store::ItemCounts,
}

/// One item for an agent: where it is, what it is, and the attempts it already had.
#[derive(Debug, Clone)]
pub struct Work {
    /// Position in the input (the item's index in the store).
    pub index: u64,
    /// The item.
    pub item: Item,
    /// Attempts that counted against the retry budget so far.
    pub attempts_used: u32,
    /// The number the next attempt gets.
    pub next_number: u32,
}

/// How a run ended.
#[derive(Debug, Clone)]
pub struct RunSummary {
    /// The job.
    pub job_id: JobId,
    /// Its final status.
    pub status: JobStatus,
    /// Item counts from the store.
    pub counts: mmm_store::ItemCounts,
    /// Wall time of this run.
    pub duration: Duration,
    /// Why the job failed, when it did (setup, input or reduce).
    pub error: Option<String>,
    /// Claim figures, when the items were claimed through the store.
    pub claims: Option<ClaimStats>,
}

/// Why a run could not go on. The job is left as the store last recorded it: resumable.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The store refused a write or a read.
    #[error("the store failed while running job {job}; the job is left resumable")]
    Store {
        /// The job.
        job: JobId,
        /// The cause.
        #[source]
        source: StoreError,
    },
    /// A blocking task of the runner panicked (a bug: please report it).
    #[error("a task of the runner panicked: {0}")]
    Panicked(String),
    /// The batching writer failed.
    #[error("the store writer failed while running job {job}; the job is left resumable")]
    Writer {
        /// The job.
        job: JobId,
        /// The cause.
        #[source]
        source: mmm_store::writer::WriterError,
    },
}

/// Runs a job from its first record to its final status.
pub async fn run<E: Executor>(config: RunConfig, executor: Arc<E>) -> Result<RunSummary, RunError> {
    let started = Instant::now();
    let clock = RunClock::start();
    let job = config.job_id;
    let plan = config.plan.clone();
    let store_err = |source| RunError::Store { job, source };
    let prior = match &config.start {
        Start::New { origin } => {
            let new_job = NewJob {
                id: job,
                name: plan.name.clone(),
                spec: serde_json::to_string(&*plan).unwrap_or_default(),
                spec_hash: plan.hash(),
                source: plan.source.clone(),
                max_parallel: plan.map.max_parallel as u32,
                created_at: now_ms(),
                owner_pid: std::process::id(),
                owner_host: mmm_store::owner::host_name(),
                origin: origin.clone(),
            };
            config.store.create_job(&new_job, &[]).map_err(store_err)?;
            Duration::ZERO
        }
        Start::Resume(resume) => resume.prior_duration,
        Start::Join => Duration::ZERO,
    };
    let run = Arc::new(Run {
        config,
        executor,
        started,
        prior,
        watch: std::sync::Mutex::new(None),
        clock,
        started_ms: clock.now_ms(),
        claim_stats: std::sync::Mutex::new(None),
        isolated: std::sync::OnceLock::new(),
        others: std::sync::Mutex::new(None),
    });
    let (kind, payload) = match &run.config.start {
        Start::New { .. } => (EventKind::JobStarted, json!({ "name": plan.name })),
        Start::Resume(r) => (
            EventKind::JobResumed,
            json!({ "phase": r.phase, "prior_duration_ms": r.prior_duration.as_millis() as u64 }),
        ),
        Start::Join => (EventKind::JobStarted, serde_json::Value::Null),
    };
    let heartbeat = if run.joining() {
        None
    } else {
        run.record(vec![
            Write::JobStatus {
                job,
                status: JobStatus::Running,
                at: now_ms(),
            },
            Write::event(job, kind, None, payload),
        ]);
        Some(run.spawn_heartbeat())
    };
    let outcome = run.phases().await;
    if let Some(heartbeat) = heartbeat {
        heartbeat.abort();
    }
    let watch = run.watch.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Some(mut watch) = watch {
        watch.close(&run);
    }
    run.finish(outcome).await
}

/// How the phases ended, before the final record.
enum PhasesEnd {
    Done,
    Interrupted,
    Failed(String),
}

/// The clock of the live metrics: the wall clock at the run's start plus tokio's monotonic time
/// since. Monotonic, so a stepped system clock cannot fake a stall or a rate; tokio's, so a run
/// on a paused runtime (`tokio::time::pause`, with the test executor's sleeps) has its ETA on
/// virtual time, exact and independent of the machine's load (tests/eta_runner.rs).
#[derive(Debug, Clone, Copy)]
struct RunClock {
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

    fn now_ms(&self) -> i64 {
        self.epoch_ms + self.origin.elapsed().as_millis() as i64
    }
}

struct Run<E> {
    config: RunConfig,
    executor: Arc<E>,
    started: Instant,
    /// Time spent by earlier runs of the job (a resume).
    prior: Duration,
    /// The alert rules' state, judged by the heartbeat; closed when the run ends.
    watch: std::sync::Mutex<Option<alerting::Watch>>,
    /// The metrics' clock.
    clock: RunClock,
    /// When this run started, epoch ms of `clock` (for rates and the ETA).
    started_ms: i64,
    /// Claim figures of the map, when items were claimed through the store.
    claim_stats: std::sync::Mutex<Option<ClaimStats>>,
    /// The worktree pool and merge queue (`map.isolation: worktree`), set when the map starts.
    isolated: std::sync::OnceLock<isolated::Isolated>,
    /// Scale-out, the owner: the other processes' agents, followed in the event log from the
    /// map's start (see `others.rs`).
    others: std::sync::Mutex<Option<others::Others>>,
}

impl<E: Executor> Run<E> {
    fn job(&self) -> JobId {
        self.config.job_id
    }

    fn plan(&self) -> &JobPlan {
        &self.config.plan
    }

    fn record(&self, writes: Vec<Write>) {
        self.config.writer.send_group(writes);
    }

    /// True for a worker joining someone else's job.
    fn joining(&self) -> bool {
        matches!(self.config.start, Start::Join)
    }

    fn stopping(&self) -> bool {
        *self.config.stop.borrow() != StopLevel::Run
            || self.isolated().is_some_and(isolated::Isolated::is_broken)
    }

    /// Total time spent on the job: earlier runs plus this one.
    fn total_duration(&self) -> Duration {
        self.prior + self.started.elapsed()
    }

    fn spawn_heartbeat(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let run = self.clone();
        tokio::spawn(async move {
            let (job, tracker) = (run.job(), &run.config.tracker);
            let mut tick = tokio::time::interval(run.config.heartbeat);
            let mut last_checkpoint = Instant::now();
            let mut last_snapshot: Option<Instant> = None;
            let mut sampler = sampler::Sampler::new();
            let watch = alerting::Watch::new(&run).await;
            *run.watch.lock().unwrap_or_else(|e| e.into_inner()) = Some(watch);
            loop {
                tick.tick().await;
                let at = now_ms();
                // Reading /proc takes a few ms: off the async workers.
                sampler = {
                    let tracker = tracker.clone();
                    tokio::task::spawn_blocking(move || {
                        sampler.sample(&tracker);
                        sampler
                    })
                    .await
                    .unwrap_or_else(|_| sampler::Sampler::new())
                };
                run.fold_others().await;
                run.config.metrics.refresh(
                    tracker,
                    &run.elsewhere(),
                    run.clock.now_ms(),
                    now_ms(),
                    run.started_ms,
                );
                let agents = tracker.agents();
                let active = run
                    .watch
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .as_mut()
                    .map(|watch| watch.look(&run, &agents))
                    .unwrap_or_default();
                let snapshot = run.snapshot(agents, active);
                let mut writes = vec![Write::Heartbeat {
                    job,
                    at,
                    duration_ms: run.total_duration().as_millis() as i64,
                }];
                let spacing = run
                    .config
                    .snapshot_every
                    .max(run.started.elapsed() / SNAPSHOT_SPAN);
                if last_snapshot.is_none_or(|last| last.elapsed() >= spacing) {
                    last_snapshot = Some(Instant::now());
                    writes.push(Write::Snapshot {
                        job,
                        at,
                        payload: snapshot,
                    });
                }
                if last_checkpoint.elapsed() >= run.config.checkpoint_every {
                    last_checkpoint = Instant::now();
                    writes.extend(checkpoint(job, Some(Phase::Map), "interval"));
                }
                run.config.writer.send_group(writes);
            }
        })
    }

    /// What a snapshot records: the tracker's state, the metrics and the active alerts; the
    /// agents are this process's, then (scale-out) the other processes' ones, each with its
    /// name.
    fn snapshot(&self, agents: Vec<AgentSnapshot>, alerts: Vec<Alert>) -> serde_json::Value {
        let tracker = &self.config.tracker;
        let rules = &self.plan().alerts;
        let prefix = self
            .config
            .claims
            .as_ref()
            .and_then(|c| c.agent_prefix.as_deref());
        let own = agents.len();
        let mut named: Vec<(String, AgentSnapshot)> = agents
            .into_iter()
            .map(|a| (agent_name(prefix, a.index), a))
            .collect();
        if let Some(others) = self
            .others
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
        {
            named.extend(others.agents(own, now_ms()));
        }
        let agents: Vec<serde_json::Value> = named
            .into_iter()
            .map(|(name, agent)| {
                let mut row = serde_json::to_value(agent).unwrap_or_default();
                row["name"] = json!(name);
                row
            })
            .collect();
        json!({
            "progress": tracker.progress(),
            "agents": agents,
            "counters": tracker.counters(),
            "window": {
                "seconds": rules.window.as_secs(),
                "counts": tracker.window(rules.window.as_secs() as u32),
            },
            "alerts": alerts,
            "metrics": self.config.metrics.view(),
            "rates": rates(tracker, self.started.elapsed()),
        })
    }

    async fn phases(self: &Arc<Self>) -> Result<PhasesEnd, RunError> {
        let plan = self.config.plan.clone();
        let job = self.job();
        let (run_setup, run_map) = match &self.config.start {
            Start::New { .. } => (true, true),
            Start::Join => (false, true),
            // Setup and reduce are rerun when the job stopped in them (docs/resume.md).
            Start::Resume(r) => (
                r.rerun_setup || matches!(r.phase, None | Some(Phase::Setup)),
                r.phase != Some(Phase::Reduce),
            ),
        };
        if let Err(message) = self.check_isolation().await {
            return Ok(PhasesEnd::Failed(message));
        }
        if run_setup {
            if let Some(end) = self.run_phase(Phase::Setup, &plan.setup, None).await {
                return Ok(end);
            }
            self.record(checkpoint(job, Some(Phase::Setup), "setup done").into());
        }
        if self.stopping() {
            return Ok(PhasesEnd::Interrupted);
        }
        if run_map && self.config.claims.is_some() {
            if let Some(end) = self.claimed_map().await? {
                return Ok(end);
            }
            if self.joining() {
                return Ok(PhasesEnd::Done);
            }
            self.record(checkpoint(job, Some(Phase::Map), "map done").into());
        } else if run_map {
            self.record(vec![Write::JobPhase {
                job,
                phase: Phase::Map,
                at: now_ms(),
            }]);
            if let Err(message) = self.open_isolation().await {
                return Ok(PhasesEnd::Failed(message));
            }
            let queue = Arc::new(queue::WorkQueue::default());
            let feed = self.feed(&queue);
            let map = self.map(Arc::new(Source::Queue(queue.clone())));
            tokio::pin!(feed, map);
            let fed = tokio::select! {
                fed = &mut feed => {
                    map.await;
                    fed
                }
                // Agents end before the queue is closed only when the job stops (a stop
                // request, a store failure): what the feed still had to add is moot.
                () = &mut map => Ok(Ok(())),
            };
            self.close_isolation().await;
            if let Err(message) = fed? {
                return Ok(PhasesEnd::Failed(message));
            }
            if self.stopping() {
                return Ok(PhasesEnd::Interrupted);
            }
            // Sent after every write of the map, so committed after them (or with them).
            self.record(checkpoint(job, Some(Phase::Map), "map done").into());
        }
        // The counts the reduce sees: read once the map's writes are committed.
        self.flush().await?;
        let counts = self
            .config
            .store
            .job(job)
            .map_err(|source| RunError::Store { job, source })?;
        let map_counts = MapCounts {
            total: counts.counts.total(),
            completed: counts.counts.completed,
            dead_lettered: counts.counts.dead_lettered,
            skipped: counts.counts.skipped,
        };
        if let Some(end) = self
            .run_phase(Phase::Reduce, &plan.reduce, Some(&map_counts))
            .await
        {
            return Ok(end);
        }
        Ok(PhasesEnd::Done)
    }

    async fn flush(&self) -> Result<(), RunError> {
        self.config
            .writer
            .flush()
            .await
            .map_err(|source| RunError::Writer {
                job: self.job(),
                source,
            })
    }

    /// Loads the input (after setup, which may write it) in a blocking task.
    async fn load_input(&self) -> Result<Result<Vec<Item>, String>, RunError> {
        let plan = self.config.plan.clone();
        let loaded =
            tokio::task::spawn_blocking(move || plan.map.load_items(&plan.base_dir, &plan.env))
                .await
                .map_err(|e| RunError::Panicked(e.to_string()))?;
        Ok(loaded.map_err(|e| format!("could not load the map's input: {e}")))
    }

    /// Runs a blocking store call off the async workers.
    async fn blocking<T: Send + 'static>(
        &self,
        call: impl FnOnce(&dyn Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, RunError> {
        let store = self.config.store.clone();
        let job = self.job();
        tokio::task::spawn_blocking(move || call(store.as_ref()))
            .await
            .map_err(|e| RunError::Panicked(e.to_string()))?
            .map_err(|source| RunError::Store { job, source })
    }

    /// Fills the agents' queue, then closes it: every item of a new job (loaded, recorded);
    /// for a resume, the unfinished items page by page (agents start on the first page), then
    /// the items that are new in the input. `Ok(Err(message))` when the input itself is at
    /// fault (the job fails); `Err` when the store is.
    async fn feed(&self, queue: &queue::WorkQueue) -> Result<Result<(), String>, RunError> {
        let fed = self.feed_items(queue).await;
        queue.close();
        fed
    }

    async fn feed_items(&self, queue: &queue::WorkQueue) -> Result<Result<(), String>, RunError> {
        let job = self.job();
        let tracker = &self.config.tracker;
        let resume = match &self.config.start {
            Start::Resume(r) if r.counts.total() > 0 => Some(r.clone()),
            _ => None,
        };
        let Some(resume) = resume else {
            let items = match self.load_and_record().await? {
                Ok(items) => items,
                Err(message) => return Ok(Err(message)),
            };
            queue.push_all(items.into_iter().enumerate().map(|(i, item)| Work {
                index: i as u64,
                item,
                attempts_used: 0,
                next_number: 1,
            }));
            return Ok(Ok(()));
        };
        self.restore_counts(&resume).await?;
        // A small first page so the agents start at once; then larger ones.
        let mut after = None;
        let mut page = 256;
        loop {
            // Keep at most a few pages in memory, however many items are left.
            queue.wait_below(QUEUED_ITEMS).await;
            let rows = self
                .blocking(move |s| s.unfinished_items(job, after, page))
                .await?;
            let Some(last) = rows.last() else { break };
            after = Some(last.index);
            let full = rows.len() == page;
            tracker.add_item_keys(rows.iter().map(|u| (u.index, u.key.clone())));
            queue.push_all(rows.into_iter().map(|u| {
                let value =
                    serde_json::from_str(&u.value).unwrap_or(serde_json::Value::String(u.value));
                Work {
                    index: u.index,
                    item: Item { key: u.key, value },
                    attempts_used: u.attempts,
                    next_number: u.last_number + 1,
                }
            }));
            if !full {
                break;
            }
            page = 2_048;
        }
        Ok(Ok(()))
    }

    /// A resume: brings the record up to date with the input (when it may have changed) and
    /// the tracker with the record's counts.
    async fn restore_counts(&self, resume: &Resume) -> Result<(), RunError> {
        let job = self.job();
        let tracker = &self.config.tracker;
        let c = match resume.reload_input && self.update_from_input().await? {
            true => self.blocking(move |s| s.job(job)).await?.counts,
            false => resume.counts,
        };
        tracker.set_total(c.total());
        tracker.preload(c.completed, c.dead_lettered, c.skipped);
        Ok(())
    }

    /// A new job (or one stopped before its items were recorded): loads its items, has the
    /// store writer record them, and tells the tracker. The agents need not wait for the
    /// record: their writes come after it. `Ok(Err(message))` when the input is at fault.
    async fn load_and_record(&self) -> Result<Result<Vec<Item>, String>, RunError> {
        let job = self.job();
        let tracker = &self.config.tracker;
        {
            let items = match self.load_input().await? {
                Ok(items) => items,
                Err(message) => return Ok(Err(message)),
            };
            let rows: Vec<NewItem> = items
                .iter()
                .map(|item| NewItem {
                    key: item.key.clone(),
                    value: item.value.to_string(),
                })
                .collect();
            self.config.writer.add_items(job, rows);
            tracker.set_total(items.len() as u64);
            tracker.add_item_keys(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, it)| (i as u64, it.key.clone())),
            );
            self.record(vec![Write::event(
                job,
                EventKind::ItemsLoaded,
                None,
                json!({ "count": items.len() }),
            )]);
            Ok(Ok(items))
        }
    }

    /// The map when items are claimed through the store (scale-out): the owner records the
    /// items (or brings a resumed record up to date) first; then the agents claim until every
    /// item is finished by someone. `Some(end)` when the job ends here.
    async fn claimed_map(self: &Arc<Self>) -> Result<Option<PhasesEnd>, RunError> {
        let job = self.job();
        let options = self
            .config
            .claims
            .clone()
            .expect("claimed_map runs only with claim options");
        match &self.config.start {
            Start::Join => {
                let c = self.blocking(move |s| s.job(job)).await?.counts;
                self.config.tracker.set_total(c.total());
            }
            Start::Resume(r) if r.counts.total() > 0 => self.restore_counts(r).await?,
            _ => {
                if let Err(message) = self.load_and_record().await? {
                    return Ok(Some(PhasesEnd::Failed(message)));
                }
            }
        }
        if !self.joining() {
            // The counts are read (restored, or none yet): other processes' items count from
            // here on, from the event log.
            let after = self
                .blocking(move |s| s.recent_events(job, 1))
                .await?
                .last()
                .map_or(0, |e| e.seq);
            let prefix = options.agent_prefix.clone();
            let own = (0..self.plan().map.max_parallel.max(1))
                .map(|agent| agent_name(prefix.as_deref(), agent));
            *self.others.lock().unwrap_or_else(|e| e.into_inner()) =
                Some(others::Others::new(after, own));
            self.record(vec![Write::JobPhase {
                job,
                phase: Phase::Map,
                at: now_ms(),
            }]);
            // Claims hand out items only once the record says the map runs.
            self.flush().await?;
        }
        let claims = Arc::new(claim::Claims::new(
            self.config.store.clone(),
            job,
            options,
            self.config.stop.clone(),
        ));
        let renewal = claims.spawn_renewal();
        self.map(Arc::new(Source::Claims(claims.clone()))).await;
        renewal.abort();
        // Attempts ended are committed before what was not started is given back.
        self.flush().await?;
        let released = claims.release().await;
        *self.claim_stats.lock().unwrap_or_else(|e| e.into_inner()) = Some(claims.stats());
        if let Some(source) = claims.take_failure() {
            return Err(RunError::Store { job, source });
        }
        released.map_err(|source| RunError::Store { job, source })?;
        if self.stopping() {
            return Ok(Some(PhasesEnd::Interrupted));
        }
        Ok(None)
    }

    /// Scale-out, the owner: folds what other processes' agents did since the last look into
    /// the tracker and the metrics (`others.rs`), so that the owner's snapshots show the whole
    /// job. The job's counts are read first: every item they count finished has its event
    /// in the log read after them, so the tracker is at least at those counts; items it still
    /// lacks finished before the log was followed (the gap at a resume) and count as
    /// restored, never in a rate.
    async fn fold_others(&self) {
        let job = self.job();
        let Some(mut after) = self
            .others
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(others::Others::after)
        else {
            return;
        };
        let Ok(record) = self.blocking(move |s| s.job(job)).await else {
            return;
        };
        const PAGE: usize = 10_000;
        loop {
            let Ok(events) = self.blocking(move |s| s.events(job, after, PAGE)).await else {
                return;
            };
            let mut guard = self.others.lock().unwrap_or_else(|e| e.into_inner());
            let Some(others) = guard.as_mut() else { return };
            let offset = self.clock.now_ms() - now_ms();
            others.fold(&events, &self.config.tracker, &self.config.metrics, offset);
            after = others.after();
            self.config
                .tracker
                .set_elsewhere(others.working() as u64, others.in_flight());
            if events.len() < PAGE {
                break;
            }
        }
        let (c, p) = (record.counts, self.config.tracker.progress());
        self.config.tracker.preload(
            c.completed.saturating_sub(p.completed),
            c.dead_lettered.saturating_sub(p.dead_lettered),
            c.skipped.saturating_sub(p.skipped),
        );
    }

    /// What the other processes' agents are doing, for the ETA (nothing without scale-out).
    /// Their times are the other hosts' wall clocks (their events'), so measured against the
    /// wall clock, not the run's.
    fn elsewhere(&self) -> mmm_core::metrics::Elsewhere {
        self.others
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|o| o.elsewhere(self.config.tracker.agent_count(), now_ms()))
            .unwrap_or_default()
    }

    /// Loads the input again and brings the record up to date before any item is queued:
    /// records the items that are new in it, gives items whose value changed under the same
    /// key their new value (requeuing them if they had finished), and reports the items that
    /// vanished from it. True when the record changed. If the input cannot be loaded, the
    /// recorded items are enough to go on.
    async fn update_from_input(&self) -> Result<bool, RunError> {
        let job = self.job();
        let items = match self.load_input().await? {
            Ok(items) => items,
            Err(message) => {
                self.record(vec![Write::event(
                    job,
                    EventKind::InputUnavailable,
                    None,
                    json!({ "error": message }),
                )]);
                return Ok(false);
            }
        };
        let known = self.blocking(move |s| s.items(job, None)).await?;
        let by_key: std::collections::HashMap<&str, &mmm_store::ItemRecord> =
            known.iter().map(|i| (i.key.as_str(), i)).collect();
        let present: std::collections::HashSet<&str> =
            items.iter().map(|i| i.key.as_str()).collect();
        let vanished: Vec<String> = known
            .iter()
            .filter(|k| !present.contains(k.key.as_str()))
            .map(|k| k.key.clone())
            .collect();
        let mut changed: Vec<(u64, String)> = Vec::new();
        let mut new_rows: Vec<NewItem> = Vec::new();
        for item in &items {
            match by_key.get(item.key.as_str()) {
                None => new_rows.push(NewItem {
                    key: item.key.clone(),
                    value: item.value.to_string(),
                }),
                Some(record) => {
                    let stored: serde_json::Value =
                        serde_json::from_str(&record.value).unwrap_or(serde_json::Value::Null);
                    if stored != item.value {
                        changed.push((record.index, item.value.to_string()));
                    }
                }
            }
        }
        if new_rows.is_empty() && vanished.is_empty() && changed.is_empty() {
            return Ok(false);
        }
        let (added, changed_count) = (new_rows.len() as u64, changed.len());
        self.flush().await?;
        let requeued = self
            .blocking(move |s| s.update_item_values(job, &changed, now_ms()))
            .await?;
        if !new_rows.is_empty() {
            self.blocking(move |s| s.add_items(job, &new_rows)).await?;
        }
        let plan = self.plan();
        self.record(vec![
            Write::event(
                job,
                EventKind::InputChanged,
                None,
                json!({
                    "new_items": added,
                    "vanished_items": vanished.len(),
                    "vanished_examples": vanished.iter().take(10).collect::<Vec<_>>(),
                    "changed_items": changed_count,
                    "requeued_items": requeued.len(),
                }),
            ),
            Write::InputFingerprint {
                job,
                at: now_ms(),
                fingerprint: plan.map.input_fingerprint(&plan.base_dir),
            },
        ]);
        self.flush().await?;
        Ok(true)
    }

    /// Runs setup or reduce commands in order. `None` when they all succeeded.
    async fn run_phase(
        &self,
        phase: Phase,
        commands: &[PhaseCommand],
        map: Option<&MapCounts>,
    ) -> Option<PhasesEnd> {
        if commands.is_empty() {
            return None;
        }
        let job = self.job();
        self.record(vec![
            Write::JobPhase {
                job,
                phase,
                at: now_ms(),
            },
            Write::event(
                job,
                EventKind::PhaseStarted,
                None,
                json!({ "phase": phase }),
            ),
        ]);
        for command in commands {
            if self.stopping() {
                return Some(PhasesEnd::Interrupted);
            }
            let ctx = RenderContext {
                item: None,
                item_key: None,
                seq: 0,
                slot: 0,
                env: &self.plan().env,
                map,
            };
            let rendered = match command.command.render(&ctx) {
                Ok(r) => r,
                Err(e) => {
                    return Some(PhasesEnd::Failed(format!(
                        "{phase} command `{}` could not be rendered: {e}",
                        command.name
                    )));
                }
            };
            let request = CommandRequest {
                command: rendered,
                env: self.command_env(None, "", &command.name),
                cwd: self.plan().base_dir.clone(),
                timeout: command.timeout,
                keep_output: true,
                observer: None,
            };
            let result = self.executor.run(request, self.config.stop.clone()).await;
            self.show(&command.name, &result);
            self.record(vec![Write::event(
                job,
                EventKind::PhaseCommandFinished,
                None,
                json!({
                    "phase": phase,
                    "command": command.name,
                    "exit": result.exit.describe(),
                    "exit_code": result.exit.code(),
                    "duration_ms": result.duration.as_millis() as u64,
                    "stdout_tail": process::tail_text(&result.stdout),
                    "stderr_tail": process::tail_text(&result.stderr),
                }),
            )]);
            match result.exit {
                Exit::Code(0) => {}
                Exit::Interrupted => return Some(PhasesEnd::Interrupted),
                exit => {
                    return Some(PhasesEnd::Failed(format!(
                        "{phase} command `{}` {}",
                        command.name,
                        exit.describe()
                    )));
                }
            }
        }
        self.record(vec![Write::event(
            job,
            EventKind::PhaseFinished,
            None,
            json!({ "phase": phase }),
        )]);
        None
    }

    fn show(&self, source: &str, result: &CommandResult) {
        if let Some(out) = &self.config.output
            && (!result.stdout.is_empty() || !result.stderr.is_empty())
        {
            let _ = out.send(Output {
                source: source.to_string(),
                stdout: result.stdout.clone(),
                stderr: result.stderr.clone(),
            });
        }
    }

    /// The job's `env:` plus the `MMM_*` variables every command gets.
    fn command_env(
        &self,
        item: Option<(&Item, u32)>,
        agent: &str,
        step: &str,
    ) -> Vec<(String, String)> {
        let plan = self.plan();
        let mut env: Vec<(String, String)> = plan
            .env
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        env.push(("MMM_JOB_ID".into(), self.job().to_string()));
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

    async fn map(self: &Arc<Self>, source: Arc<Source>) {
        let job = self.job();
        if !self.joining() {
            self.record(vec![Write::event(
                job,
                EventKind::PhaseStarted,
                None,
                json!({ "phase": Phase::Map }),
            )]);
        }
        let agents = self.plan().map.max_parallel.max(1);
        let mut tasks = tokio::task::JoinSet::new();
        for agent in 0..agents {
            let agent_run = AgentRun {
                run: self.clone(),
                source: source.clone(),
                agent,
            };
            tasks.spawn(agent_run.work());
        }
        while tasks.join_next().await.is_some() {}
        if !self.stopping() && !self.config.writer.is_failed() && !self.joining() {
            self.record(vec![Write::event(
                job,
                EventKind::PhaseFinished,
                None,
                json!({ "phase": Phase::Map }),
            )]);
        }
    }

    async fn finish(&self, outcome: Result<PhasesEnd, RunError>) -> Result<RunSummary, RunError> {
        let job = self.job();
        let end = outcome?;
        let claims = *self.claim_stats.lock().unwrap_or_else(|e| e.into_inner());
        if self.joining() {
            // A worker records nothing about the job itself: its owner does.
            self.flush().await?;
            let record = self.blocking(move |s| s.job(job)).await?;
            return Ok(RunSummary {
                job_id: job,
                status: record.status,
                counts: record.counts,
                duration: self.started.elapsed(),
                error: None,
                claims,
            });
        }
        let counts = {
            self.flush().await?;
            self.config
                .store
                .job(job)
                .map_err(|source| RunError::Store { job, source })?
                .counts
        };
        let (status, error) = match end {
            PhasesEnd::Interrupted => (JobStatus::Interrupted, None),
            PhasesEnd::Failed(message) => (JobStatus::Failed, Some(message)),
            PhasesEnd::Done if counts.dead_lettered > 0 => (JobStatus::CompletedWithFailures, None),
            PhasesEnd::Done => (JobStatus::Completed, None),
        };
        let at = now_ms();
        let duration = self.started.elapsed();
        // A last snapshot, so that whoever reads the newest one of a finished job sees its
        // final counts and metrics (no ETA left over from the last heartbeat).
        let tracker = &self.config.tracker;
        self.fold_others().await;
        self.config.metrics.refresh(
            tracker,
            &self.elsewhere(),
            self.clock.now_ms(),
            at,
            self.started_ms,
        );
        let snapshot = self.snapshot(tracker.agents(), Vec::new());
        self.record(vec![
            Write::Snapshot {
                job,
                at,
                payload: snapshot,
            },
            Write::Heartbeat {
                job,
                at,
                duration_ms: self.total_duration().as_millis() as i64,
            },
            Write::JobStatus { job, status, at },
            Write::event(
                job,
                EventKind::JobFinished,
                None,
                json!({ "status": status, "error": error }),
            ),
        ]);
        self.flush().await?;
        Ok(RunSummary {
            job_id: job,
            status,
            counts,
            duration,
            error,
            claims,
        })
    }
}

/// Where agents take their items from.
enum Source {
    /// One process per job: an in-memory queue the feeder fills.
    Queue(Arc<queue::WorkQueue>),
    /// Scale-out: claimed through the store.
    Claims(Arc<claim::Claims>),
}

impl Source {
    /// The next item, and how long it waited in the in-memory queue (not measured for
    /// claimed items: their wait is in the store, across hosts).
    async fn next(&self, tracker: &Tracker) -> Option<(Work, Option<Duration>)> {
        match self {
            Source::Queue(queue) => queue
                .next()
                .await
                .map(|(work, waited)| (work, Some(waited))),
            Source::Claims(claims) => {
                let work = claims.next().await?;
                tracker.add_item_keys([(work.index, work.item.key.clone())]);
                Some((work, None))
            }
        }
    }

    fn agent_prefix(&self) -> Option<&str> {
        match self {
            Source::Queue(_) => None,
            Source::Claims(claims) => claims.options().agent_prefix.as_deref(),
        }
    }
}

/// One agent working through items.
struct AgentRun<E> {
    run: Arc<Run<E>>,
    source: Arc<Source>,
    agent: usize,
}

/// What one attempt came to.
struct AttemptEnd {
    outcome: AttemptOutcome,
    all_skipped: bool,
    retryable: bool,
    /// Failed for reasons that are not the item's (git trouble under worktree isolation):
    /// retried without counting against the item.
    infrastructure: bool,
    exit_code: Option<i32>,
    error: Option<String>,
    steps: Vec<StepRecord>,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    duration: Duration,
}

impl<E: Executor> AgentRun<E> {
    fn name(&self) -> String {
        agent_name(self.source.agent_prefix(), self.agent)
    }

    async fn work(self) {
        let job = self.run.job();
        self.run.record(vec![Write::event(
            job,
            EventKind::AgentStarted,
            None,
            json!({ "agent": self.name() }),
        )]);
        loop {
            if self.run.stopping() || self.run.config.writer.is_failed() {
                break;
            }
            let Some((work, waited)) = self.source.next(&self.run.config.tracker).await else {
                break;
            };
            // The item's duration for the ETA counts from here to its end (see `item_measured`).
            let taken = tokio::time::Instant::now();
            let metrics = &self.run.config.metrics;
            metrics.item_taken(self.agent, work.index, self.run.clock.now_ms());
            if let Some(waited) = waited {
                metrics.queue_wait(waited);
            }
            self.item(&work, taken).await;
            // Skipped or interrupted items leave no duration but must leave the in-flight set.
            metrics.item_released(self.agent);
        }
        self.run.config.tracker.agent_finished(self.agent);
        self.run.record(vec![Write::event(
            job,
            EventKind::AgentFinished,
            None,
            json!({ "agent": self.name() }),
        )]);
    }

    async fn item(&self, work: &Work, taken: tokio::time::Instant) {
        let run = &self.run;
        let job = run.job();
        let (index, item) = (work.index as usize, &work.item);
        let map = &run.plan().map;
        let tracker = &run.config.tracker;
        let mut number = work.next_number;
        let mut used = work.attempts_used;
        // Infrastructure failures in a row (worktree isolation): retried, never counted.
        let mut infrastructure = 0;
        loop {
            tracker.attempt_started(self.agent, index as u64, number);
            let mut writes = vec![Write::AttemptStarted {
                job,
                item_index: index as u64,
                number,
                agent: self.name(),
                at: now_ms(),
            }];
            // An item's first attempt has no `attempt_started` event on a map this process
            // runs alone: its attempt row holds the same facts (agent, start), and most items
            // have no other attempt, so the event would be a third of a large job's store
            // (docs/events.md). A shared map (scale-out) logs it: it is how the job's owner
            // sees other processes' items in flight (runner/others.rs).
            if number > 1 || run.config.claims.is_some() {
                writes.push(Write::event(
                    job,
                    EventKind::AttemptStarted,
                    Some(&item.key),
                    json!({ "attempt": number, "agent": self.name(), "item": index }),
                ));
            }
            run.record(writes);
            let end = self.attempt(index, item, number).await;
            if end.infrastructure && !run.stopping() {
                infrastructure += 1;
                self.record_attempt(index, number, &end, ItemStatus::Pending, false, None);
                if infrastructure >= isolated::INFRA_LIMIT {
                    self.give_up_on_git(&item.key, &end);
                }
                run.config.metrics.between_attempts(self.agent);
                if infrastructure >= isolated::INFRA_LIMIT || !self.backoff(infrastructure).await {
                    tracker.item_finished(self.agent, ItemEnd::Interrupted, None);
                    return;
                }
                number += 1;
                continue;
            }
            if end.outcome == AttemptOutcome::Interrupted {
                self.record_attempt(index, number, &end, ItemStatus::Pending, false, None);
                tracker.item_finished(self.agent, ItemEnd::Interrupted, None);
                return;
            }
            if end.outcome == AttemptOutcome::Succeeded {
                let (status, tracked, kind) = if end.all_skipped {
                    (
                        ItemStatus::Skipped,
                        ItemEnd::Skipped,
                        EventKind::ItemSkipped,
                    )
                } else {
                    (
                        ItemStatus::Completed,
                        ItemEnd::Completed,
                        EventKind::ItemCompleted,
                    )
                };
                let mut payload = json!({ "attempt": number, "agent": self.name() });
                if !end.all_skipped {
                    self.item_measured(taken, &end, &mut payload);
                }
                // Counted before the store can have it: the owner of a scale-out job never
                // finds in the store's counts an item its tracker lacks (`others.rs`).
                tracker.item_finished(self.agent, tracked, None);
                let event = Write::event(job, kind, Some(&item.key), payload);
                self.record_attempt(index, number, &end, status, true, Some(event));
                return;
            }
            used += 1;
            if end.retryable && used <= map.retries {
                let event = Write::event(
                    job,
                    EventKind::AttemptFailed,
                    Some(&item.key),
                    json!({
                        "attempt": number, "agent": self.name(), "outcome": end.outcome,
                        "error": end.error, "exit_code": end.exit_code,
                    }),
                );
                self.record_attempt(index, number, &end, ItemStatus::Failed, true, Some(event));
                tracker.retrying(self.agent, number + 1, end.exit_code);
                run.config.metrics.between_attempts(self.agent);
                if !self.backoff(used).await {
                    // Stopped while waiting: the item stays `failed`, to be retried on resume.
                    tracker.item_finished(self.agent, ItemEnd::Interrupted, end.exit_code);
                    return;
                }
                number += 1;
                continue;
            }
            let mut payload = json!({
                "attempts": number, "agent": self.name(), "outcome": end.outcome,
                "error": end.error, "exit_code": end.exit_code,
            });
            self.item_measured(taken, &end, &mut payload);
            tracker.item_finished(self.agent, ItemEnd::DeadLettered, end.exit_code);
            let event = Write::event(job, EventKind::ItemDeadLettered, Some(&item.key), payload);
            self.record_attempt(
                index,
                number,
                &end,
                ItemStatus::DeadLettered,
                true,
                Some(event),
            );
            return;
        }
    }

    /// Feeds a finished item's durations to the metrics: the steps of its last attempt, and
    /// the item's whole time since the agent took it (its cycle: every attempt, the backoff
    /// between them, the recording, a worktree's merge), which is what the ETA's queue of
    /// items over N agents needs (docs/eta.md). Puts them in its event's `payload` too
    /// (`duration_us`, `steps_us`: what the owner of a scale-out job folds into its metrics
    /// when another process ran the item, see `others.rs`).
    fn item_measured(
        &self,
        taken: tokio::time::Instant,
        end: &AttemptEnd,
        payload: &mut serde_json::Value,
    ) {
        let steps: Vec<(usize, Option<Duration>)> = end
            .steps
            .iter()
            // Only the plan's steps (not a worktree's `on_conflict` run after them).
            .take(self.run.plan().map.steps.len())
            .enumerate()
            .map(|(i, s)| {
                (
                    i,
                    (!s.skipped).then(|| Duration::from_micros(s.duration_us)),
                )
            })
            .collect();
        let cycle = taken.elapsed();
        payload["duration_us"] = json!(cycle.as_micros() as u64);
        payload["steps_us"] = steps
            .iter()
            .map(|(_, d)| d.map(|d| d.as_micros() as u64))
            .collect();
        self.run
            .config
            .metrics
            .item_finished(self.agent, cycle, &steps, self.run.clock.now_ms());
    }

    /// Waits before attempt `number + 1`. False when a stop request came first.
    async fn backoff(&self, number: u32) -> bool {
        let base = self.run.plan().map.backoff;
        let wait = base
            .checked_mul(1u32 << (number - 1).min(16))
            .unwrap_or(MAX_BACKOFF)
            .min(MAX_BACKOFF);
        let mut stop = self.run.config.stop.clone();
        tokio::select! {
            _ = tokio::time::sleep(wait) => !self.run.stopping(),
            _ = stop.wait_for(|level| *level != StopLevel::Run) => false,
        }
    }

    /// Records the end of an attempt and the item's new status, with `event` (the item's
    /// event, if any) in the same group, so that they land in one transaction: a reader never
    /// sees the status without its event (the owner of a scale-out job counts other processes'
    /// items from their events, `others.rs`).
    fn record_attempt(
        &self,
        index: usize,
        number: u32,
        end: &AttemptEnd,
        item_status: ItemStatus,
        counts_against_retries: bool,
        event: Option<Write>,
    ) {
        self.run.config.tracker.attempt_ended(end.outcome);
        if matches!(
            end.outcome,
            AttemptOutcome::Failed | AttemptOutcome::TimedOut
        ) {
            let stderr = process::tail_text(&end.stderr);
            let output = if stderr.trim().is_empty() {
                end.error.clone().unwrap_or_default()
            } else {
                stderr
            };
            let key = self
                .run
                .config
                .tracker
                .item_key(index as u64)
                .unwrap_or_default();
            self.run
                .config
                .metrics
                .attempt_failed(&mmm_core::metrics::Failure {
                    item_key: &key,
                    item_value: None,
                    kind: mmm_core::metrics::FailureKind::from_attempt(
                        Some(end.outcome),
                        end.exit_code,
                    ),
                    output: &output,
                    at_ms: now_ms(),
                });
        }
        let mut writes = vec![Write::AttemptFinished {
            job: self.run.job(),
            item_index: index as u64,
            number,
            ended_at: now_ms(),
            duration_us: end.duration.as_micros() as u64,
            outcome: end.outcome,
            exit_code: end.exit_code,
            error: end.error.clone(),
            steps: end.steps.clone(),
            stdout_tail: process::tail_text(&end.stdout),
            stderr_tail: process::tail_text(&end.stderr),
            item_status,
            counts_against_retries,
        }];
        writes.extend(event);
        self.run.record(writes);
    }

    /// Runs the item's steps once.
    async fn attempt(&self, index: usize, item: &Item, number: u32) -> AttemptEnd {
        let run = &self.run;
        let plan = run.plan();
        let started = Instant::now();
        let deadline = plan.map.timeout.map(|t| started + t);
        let agent_name = self.name();
        let ctx = RenderContext {
            item: Some(&item.value),
            item_key: Some(&item.key),
            seq: index as u64 + 1,
            slot: self.agent + 1,
            env: &plan.env,
            map: None,
        };
        let mut end = AttemptEnd {
            outcome: AttemptOutcome::Succeeded,
            all_skipped: true,
            retryable: true,
            infrastructure: false,
            exit_code: None,
            error: None,
            steps: Vec::with_capacity(plan.map.steps.len()),
            stdout: Vec::new(),
            stderr: Vec::new(),
            duration: Duration::ZERO,
        };
        // Worktree isolation: the steps run in the agent's worktree, reset to the branch tip.
        let mut cwd = plan.base_dir.clone();
        let mut worktree_base = None;
        if run.isolated().is_some() {
            match self.prepare_worktree(index as u64).await {
                isolated::Prepared::Ready { path, base } => {
                    cwd = path;
                    worktree_base = Some(base);
                }
                isolated::Prepared::Landed => return isolated::landed_end(),
                isolated::Prepared::Failed(message) => {
                    end.outcome = AttemptOutcome::Interrupted;
                    end.infrastructure = true;
                    end.error = Some(message);
                    end.duration = started.elapsed();
                    return end;
                }
            }
        }
        for (step_index, step) in plan.map.steps.iter().enumerate() {
            if run.stopping() {
                end.outcome = AttemptOutcome::Interrupted;
                end.error = Some("the job was stopped before this step".into());
                break;
            }
            match self.prepare_step(step, &ctx) {
                Err(message) => {
                    end.outcome = AttemptOutcome::Failed;
                    end.retryable = false;
                    end.error = Some(message);
                    break;
                }
                Ok(None) => {
                    end.steps.push(StepRecord {
                        name: step.name.clone(),
                        skipped: true,
                        duration_us: 0,
                        exit_code: None,
                    });
                    continue;
                }
                Ok(Some(command)) => {
                    let timeout = step_timeout(step.timeout, deadline);
                    if timeout == Some(Duration::ZERO) {
                        end.outcome = AttemptOutcome::TimedOut;
                        end.error = Some(format!(
                            "the attempt's timeout ran out before step `{}`",
                            step.name
                        ));
                        break;
                    }
                    run.config.tracker.step_started(self.agent, step_index);
                    run.config
                        .metrics
                        .step_started(self.agent, step_index, run.clock.now_ms());
                    end.all_skipped = false;
                    let mut env = run.command_env(Some((item, number)), &agent_name, &step.name);
                    if let Some(isolated) = run.isolated().filter(|_| worktree_base.is_some()) {
                        env.push(("MMM_WORKTREE".into(), cwd.display().to_string()));
                        env.push(("MMM_BRANCH".into(), isolated.branch().to_string()));
                    }
                    let request = CommandRequest {
                        command,
                        env,
                        cwd: cwd.clone(),
                        timeout,
                        keep_output: run.config.show_map_output,
                        observer: Some(process::Observer(Arc::new(AgentObserver {
                            tracker: run.config.tracker.clone(),
                            writer: run.config.writer.clone(),
                            job: run.job(),
                            agent: self.agent,
                            item_key: item.key.clone(),
                            step: step.name.clone(),
                            last_message_event: std::sync::Mutex::new(None),
                            bad_reports: std::sync::atomic::AtomicU32::new(0),
                        }))),
                    };
                    let result = run.executor.run(request, run.config.stop.clone()).await;
                    if run.config.show_map_output {
                        run.show(&item.key, &result);
                    }
                    end.steps.push(StepRecord {
                        name: step.name.clone(),
                        skipped: false,
                        duration_us: result.duration.as_micros() as u64,
                        exit_code: result.exit.code(),
                    });
                    append_tail(&mut end.stdout, &result.stdout);
                    append_tail(&mut end.stderr, &result.stderr);
                    end.exit_code = result.exit.code();
                    if !result.exit.is_success() {
                        end.outcome = match result.exit {
                            Exit::TimedOut => AttemptOutcome::TimedOut,
                            Exit::Interrupted => AttemptOutcome::Interrupted,
                            _ => AttemptOutcome::Failed,
                        };
                        end.error =
                            Some(format!("step `{}` {}", step.name, result.exit.describe()));
                        break;
                    }
                }
            }
        }
        if end.outcome == AttemptOutcome::Succeeded
            && let Some(base) = &worktree_base
        {
            self.merge_item(index as u64, item, number, base, &mut end)
                .await;
        }
        end.duration = started.elapsed();
        end
    }

    /// Decides the step's condition and renders its command: `Ok(None)` when it is skipped.
    fn prepare_step(
        &self,
        step: &StepPlan,
        ctx: &RenderContext<'_>,
    ) -> Result<Option<mmm_spec::RenderedCommand>, String> {
        if let Some(when) = &step.when {
            match when.evaluate_condition(ctx) {
                Ok(false) => return Ok(None),
                Ok(true) => {}
                Err(e) => {
                    return Err(format!(
                        "step `{}`: `when:` could not be decided: {e}",
                        step.name
                    ));
                }
            }
        }
        step.command
            .render(ctx)
            .map(Some)
            .map_err(|e| format!("step `{}` could not be rendered: {e}", step.name))
    }
}

/// Passes what a running map command does and reports to the tracker and the event log.
struct AgentObserver {
    tracker: Arc<Tracker>,
    writer: Arc<StoreWriter>,
    job: JobId,
    agent: usize,
    item_key: String,
    step: String,
    /// When a message was last recorded as an event: at most one a second per command, so
    /// a chatty step cannot flood the store (the tracker always has the latest).
    last_message_event: std::sync::Mutex<Option<Instant>>,
    bad_reports: std::sync::atomic::AtomicU32,
}

/// The least time between two `step_reported` events of one command for messages.
const MESSAGE_EVENT_INTERVAL: Duration = Duration::from_secs(1);

impl AgentObserver {
    fn record(&self, payload: serde_json::Value) {
        self.writer.send(Write::event(
            self.job,
            EventKind::StepReported,
            Some(&self.item_key),
            payload,
        ));
    }

    fn message_event_due(&self) -> bool {
        let mut last = self
            .last_message_event
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let due = last.is_none_or(|at| at.elapsed() >= MESSAGE_EVENT_INTERVAL);
        if due {
            *last = Some(Instant::now());
        }
        due
    }
}

impl process::CommandObserver for AgentObserver {
    fn process(&self, pid: Option<u32>) {
        self.tracker.command_process(self.agent, pid);
    }

    fn output(&self) {
        self.tracker.command_active(self.agent);
    }

    fn report(&self, report: report::Report) {
        match report {
            report::Report::Progress { fraction, message } => {
                self.tracker.step_progress(self.agent, fraction);
                if let Some(message) = message {
                    self.tracker.step_message(self.agent, message.clone());
                    if self.message_event_due() {
                        self.record(json!({
                            "step": self.step, "progress": fraction, "message": message
                        }));
                    }
                }
            }
            report::Report::Message(message) => {
                self.tracker.step_message(self.agent, message.clone());
                if self.message_event_due() {
                    self.record(json!({ "step": self.step, "message": message }));
                }
            }
            // Counters are always recorded: their events are the durable record of the sums.
            report::Report::Counter { name, delta } => {
                self.tracker.add_to_counter(&name, delta);
                self.tracker.command_active(self.agent);
                self.record(json!({ "step": self.step, "counter": name, "delta": delta }));
            }
        }
    }

    fn bad_report(&self, line: &str, error: &str) {
        use std::sync::atomic::Ordering;
        // Said once per command: a broken reporter would otherwise flood the log.
        if self.bad_reports.fetch_add(1, Ordering::Relaxed) == 0 {
            self.record(json!({ "step": self.step, "ignored_line": line, "error": error }));
        }
    }
}

/// The step's own timeout, shortened to what is left of the attempt's.
fn step_timeout(step: Option<Duration>, deadline: Option<Instant>) -> Option<Duration> {
    let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
    match (step, left) {
        (Some(s), Some(l)) => Some(s.min(l)),
        (s, l) => s.or(l),
    }
}

/// Appends `more` to `tail`, keeping it bounded.
fn append_tail(tail: &mut Vec<u8>, more: &[u8]) {
    tail.extend_from_slice(more);
    let limit = process::TAIL_BYTES;
    if tail.len() > limit {
        let cut = tail.len() - limit;
        tail.drain(..cut);
    }
}

/// Snapshots are spaced at least `elapsed / SNAPSHOT_SPAN` apart: a run keeps about
/// `SNAPSHOT_SPAN * (1 + ln(elapsed / SNAPSHOT_SPAN s))` of them at one a second (10,000 after
/// 50 hours), so the record of a long job stays small while charts keep their shape.
pub const SNAPSHOT_SPAN: u32 = 1_800;

/// How far back "throughput now" looks.
pub const THROUGHPUT_WINDOW_SECONDS: u32 = 60;

/// Throughput now (items finished per second over the last [`THROUGHPUT_WINDOW_SECONDS`]
/// whole seconds, or since the run started when that is shorter), the run's average, and the
/// share of finished items that completed. Items restored by a resume never count in a rate.
fn rates(tracker: &Tracker, elapsed: Duration) -> serde_json::Value {
    let p = tracker.progress();
    let seconds = THROUGHPUT_WINDOW_SECONDS.min(tracker.second().max(1));
    let recent = tracker.window(seconds);
    let average = if elapsed.as_secs_f64() > 0.0 {
        p.done_this_run() as f64 / elapsed.as_secs_f64()
    } else {
        0.0
    };
    let judged = p.completed + p.dead_lettered;
    json!({
        "throughput_now": recent.finished as f64 / f64::from(seconds),
        "throughput_now_window_s": seconds,
        "throughput_average": average,
        "success_rate": (judged > 0).then(|| p.completed as f64 / judged as f64),
        "failed_attempts": p.failed_attempts,
        "retries": p.retries,
        // Custom counters per second over this run (commits/s under worktree isolation).
        "counters_per_second": tracker
            .counters()
            .into_iter()
            .map(|(name, value)| {
                let rate = match elapsed.as_secs_f64() {
                    s if s > 0.0 => value as f64 / s,
                    _ => 0.0,
                };
                (name, rate)
            })
            .collect::<std::collections::BTreeMap<_, _>>(),
    })
}

/// The name of agent `agent` (0-based): `PREFIX/N` (a worker), else `agent-N`.
fn agent_name(prefix: Option<&str>, agent: usize) -> String {
    match prefix {
        Some(prefix) => format!("{prefix}/{}", agent + 1),
        None => format!("agent-{}", agent + 1),
    }
}

/// A checkpoint and its event.
fn checkpoint(job: JobId, phase: Option<Phase>, reason: &str) -> [Write; 2] {
    [
        Write::Checkpoint {
            job,
            at: now_ms(),
            phase,
            reason: reason.to_string(),
        },
        Write::event(
            job,
            EventKind::Checkpoint,
            None,
            json!({ "phase": phase, "reason": reason }),
        ),
    ]
}
