//! The embedding API: mmm's record, tracker, ETA and views for work a program runs itself (a
//! service draining a queue, a training loop), without job files or commands.
//!
//! # The model
//!
//! A [`Job`] has a name and items, each with a unique key. Its items are known up front
//! ([`JobOptions::items`]) or arrive while it runs ([`Job::add_items`], then
//! [`Job::input_complete`]: until then the total is not known and the ETA says so). The program
//! works the items with a number of *agents* (its workers: threads, tasks, slots; agent `i` is
//! shown as `agent-{i+1}`): for each item an agent calls [`Job::start_item`], optionally
//! [`Job::step`] as the item moves through named steps, [`Job::progress`] and [`Job::message`]
//! while it works, then [`Job::finish_item`] with an [`ItemOutcome`]. A failed item can be
//! tried again ([`ItemOutcome::Failed`] with `retry: true`, then `start_item` of the same key);
//! one given up on goes to the dead-letter queue. [`Job::counter`] adds to named counters.
//!
//! Everything goes to the store (SQLite or PostgreSQL, [`mmm_store::open`]) through the same
//! batching writer the runner uses, and once a second a snapshot records the counts, the
//! agents, the durations and the ETA; so `mmm jobs`, `mmm progress`, `mmm events`,
//! `mmm serve`, `mmm export` and `mmm stats` show the job like any other. An ETA starts from
//! the earlier runs of the job's name (docs/eta.md, "From history"). [`Job::finish`] records the
//! final status; a `Job` dropped without it is recorded `interrupted`.
//!
//! The live numbers are read in-process ([`Job::snapshot`], [`Job::eta`]); the record
//! through the store ([`Job::subscribe`] for the events, `mmm_report::export` for a report).
//!
//! ```
//! use mmm_runner::embed::{ItemOutcome, Job, JobOptions};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = std::env::temp_dir().join(format!("mmm-doc-{}-{}", std::process::id(), line!()));
//! # let location = dir.to_str().unwrap();
//! // A directory (holding mmm.db), a .db file or a postgres:// URL, as `mmm --store` takes.
//! let store = mmm_store::open(location, true)?;
//! let keys: Vec<String> = (0..300).map(|i| format!("photo-{i}")).collect();
//! let job = Job::start(store, JobOptions::new("resize").items(keys.clone()))?;
//! for key in &keys {
//!     let item = job.start_item(0, key)?;
//!     // ... the program's own work on `key` ...
//!     job.finish_item(item, ItemOutcome::Succeeded)?;
//! }
//! assert_eq!(job.counts().completed, 300);
//! let status = job.finish()?;
//! assert_eq!(status.as_str(), "completed");
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok(())
//! # }
//! ```

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mmm_core::counter::CounterValue;
use mmm_core::event::{
    AttemptFailed, AttemptStarted, Event, ItemCompleted, ItemDeadLettered, JobFinished, JobStarted,
};
use mmm_core::job::{AttemptOutcome, ItemStatus, JobId, JobStatus, Phase, now_ms};
use mmm_core::metrics::{Elsewhere, Eta, LiveMetrics, MetricsView};
use mmm_core::snapshot::{AgentRow, Rates, SNAPSHOT_VERSION, Snapshot, WindowSpan};
use mmm_core::tracker::{ItemEnd, Progress, Tracker};
use mmm_store::events::{EventFilter, Subscription};
use mmm_store::writer::{DEFAULT_WINDOW, StoreWriter, WriterError};
use mmm_store::{NewItem, NewJob, StepRecord, Store, StoreError, Write};

/// How often the job records a heartbeat and a snapshot.
const BEAT: Duration = Duration::from_secs(1);

/// How a [`Job`] starts: its name, agents, step names and items.
#[derive(Debug, Clone)]
pub struct JobOptions {
    name: String,
    agents: usize,
    steps: Vec<String>,
    items: Option<Vec<String>>,
}

impl JobOptions {
    /// A job named `name` (what `mmm stats` and the ETA's history group by), one agent, no
    /// named steps, and items that arrive while it runs (see [`JobOptions::items`]).
    pub fn new(name: impl Into<String>) -> JobOptions {
        JobOptions {
            name: name.into(),
            agents: 1,
            steps: Vec::new(),
            items: None,
        }
    }

    /// How many agents work the items (at least 1): agent numbers given to
    /// [`Job::start_item`] are `0..agents`.
    pub fn agents(mut self, agents: usize) -> JobOptions {
        self.agents = agents.max(1);
        self
    }

    /// The names of the steps an item goes through ([`Job::step`]), for per-step durations.
    pub fn steps<S: Into<String>>(mut self, steps: impl IntoIterator<Item = S>) -> JobOptions {
        self.steps = steps.into_iter().map(Into::into).collect();
        self
    }

    /// Every item's key, known up front: the total is known from the start.
    pub fn items<S: Into<String>>(mut self, keys: impl IntoIterator<Item = S>) -> JobOptions {
        self.items = Some(keys.into_iter().map(Into::into).collect());
        self
    }
}

/// Why a call of the embedding API failed.
#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    /// The store refused a read or write.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The store's writer failed: what was sent after its last commit is not recorded.
    #[error(transparent)]
    Writer(#[from] WriterError),
    /// An item key the job does not have.
    #[error("the job has no item `{0}`")]
    UnknownItem(String),
    /// An item key given twice.
    #[error("the job already has an item `{0}`")]
    DuplicateItem(String),
    /// An item that is already done, or already being worked on.
    #[error("item `{0}` is not waiting to be worked on")]
    NotPending(String),
    /// An agent number outside `0..agents`.
    #[error("agent {agent} is not one of the job's {agents} agents")]
    UnknownAgent {
        /// The number given.
        agent: usize,
        /// The job's agents.
        agents: usize,
    },
    /// A step name not among [`JobOptions::steps`].
    #[error("the job has no step `{0}`")]
    UnknownStep(String),
    /// Items added after [`Job::input_complete`] or to a job whose items were given up front.
    #[error("the job's items are complete: no item can be added")]
    InputClosed,
}

/// How an item ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemOutcome {
    /// Done.
    Succeeded,
    /// Failed with `error`. With `retry` it can be started again; without, it goes to the
    /// dead-letter queue (`mmm dlq list`).
    Failed {
        /// What went wrong, shown in the DLQ and the failure clusters.
        error: String,
        /// Whether the item will be tried again.
        retry: bool,
    },
    /// Nothing to do for it.
    Skipped,
}

/// An item an agent is working on: what [`Job::start_item`] returns and [`Job::finish_item`]
/// takes.
#[derive(Debug)]
#[must_use = "an item started must be finished with Job::finish_item"]
pub struct ItemRun {
    index: u64,
    key: String,
    agent: usize,
    attempt: u32,
    started: Instant,
    started_ms: i64,
    /// The steps so far: index among the job's steps and when each began.
    steps: Vec<(usize, Instant)>,
}

impl ItemRun {
    /// The item's key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Which attempt this is (1 for the first).
    pub fn attempt(&self) -> u32 {
        self.attempt
    }
}

/// What the job knows of its items.
#[derive(Debug, Default)]
struct Items {
    index: HashMap<String, u64>,
    status: Vec<ItemStatus>,
    attempts: Vec<u32>,
    open: bool,
}

/// What the job and its heartbeat thread share.
struct Shared {
    id: JobId,
    store: Arc<dyn Store>,
    writer: StoreWriter,
    tracker: Tracker,
    metrics: LiveMetrics,
    steps: Vec<String>,
    agents: usize,
    items: Mutex<Items>,
    started: Instant,
    started_ms: i64,
    stopping: AtomicBool,
}

/// A job the program runs itself (see the module's documentation): items whose keys arrive
/// while it runs, two agents, named steps, a retry.
///
/// ```
/// use mmm_runner::embed::{ItemOutcome, Job, JobOptions};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let dir = std::env::temp_dir().join(format!("mmm-doc-{}-{}", std::process::id(), line!()));
/// let store = mmm_store::open(dir.to_str().unwrap(), true)?;
/// let job = Job::start(store, JobOptions::new("ingest").agents(2).steps(["parse", "load"]))?;
/// job.add_items(["a.csv", "b.csv"])?;
/// job.input_complete(); // the total is known from here on
///
/// let mut a = job.start_item(0, "a.csv")?;
/// job.step(&mut a, "parse")?;
/// job.step(&mut a, "load")?;
/// job.counter("rows", 1_200.0);
/// job.finish_item(a, ItemOutcome::Succeeded)?;
///
/// let b = job.start_item(1, "b.csv")?;
/// job.finish_item(b, ItemOutcome::Failed { error: "timeout".into(), retry: true })?;
/// let b = job.start_item(1, "b.csv")?; // attempt 2
/// assert_eq!(b.attempt(), 2);
/// job.finish_item(b, ItemOutcome::Succeeded)?;
///
/// let counts = job.counts();
/// assert_eq!((counts.completed, counts.retries), (2, 1));
/// assert_eq!(job.finish()?.as_str(), "completed");
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok(())
/// # }
/// ```
pub struct Job {
    shared: Arc<Shared>,
    beat: Option<std::thread::JoinHandle<()>>,
    finished: bool,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job").field("id", &self.shared.id).finish()
    }
}

impl Job {
    /// Records a new job in `store` and starts its heartbeat (a thread recording a snapshot
    /// each second).
    pub fn start(store: Arc<dyn Store>, options: JobOptions) -> Result<Job, EmbedError> {
        let id = JobId::new();
        let created_at = now_ms();
        let keys = options.items.clone().unwrap_or_default();
        let mut items = Items {
            open: options.items.is_none(),
            ..Items::default()
        };
        for key in &keys {
            items.add(key)?;
        }
        let spec = serde_json::json!({
            "name": options.name,
            "embedded": true,
            "steps": options.steps,
        });
        store.create_job(
            &NewJob {
                id,
                name: options.name.clone(),
                spec: spec.to_string(),
                spec_hash: String::new(),
                source: None,
                max_parallel: options.agents as u32,
                created_at,
                owner_pid: std::process::id(),
                owner_host: mmm_store::owner::host_name(),
                origin: None,
            },
            &keys
                .iter()
                .map(|key| NewItem {
                    key: key.clone(),
                    value: serde_json::Value::String(key.clone()).to_string(),
                })
                .collect::<Vec<_>>(),
        )?;
        let tracker = Tracker::new(keys.len() as u64, options.agents);
        tracker.set_input_open(items.open);
        tracker.add_item_keys(keys.iter().cloned().enumerate().map(|(i, k)| (i as u64, k)));
        let metrics = LiveMetrics::new(options.steps.clone(), options.agents);
        metrics.start_from(&crate::history::load(
            store.as_ref(),
            id,
            &options.name,
            false,
        ));
        let writer = StoreWriter::try_spawn(store.clone(), DEFAULT_WINDOW)?;
        writer.send_group(vec![
            Write::JobStatus {
                job: id,
                status: JobStatus::Running,
                at: created_at,
            },
            Write::JobPhase {
                job: id,
                phase: Phase::Map,
                at: created_at,
            },
            Write::event(
                id,
                None,
                Event::JobStarted(JobStarted {
                    name: options.name.clone(),
                }),
            ),
        ]);
        let shared = Arc::new(Shared {
            id,
            store,
            writer,
            tracker,
            metrics,
            steps: options.steps,
            agents: options.agents,
            items: Mutex::new(items),
            started: Instant::now(),
            started_ms: created_at,
            stopping: AtomicBool::new(false),
        });
        let beating = shared.clone();
        let beat = std::thread::Builder::new()
            .name("mmm-embed-beat".into())
            .spawn(move || {
                while !beating.stopping.load(Ordering::Relaxed) {
                    std::thread::park_timeout(BEAT);
                    if !beating.stopping.load(Ordering::Relaxed) {
                        beating.beat();
                    }
                }
            })
            .map_err(|source| EmbedError::Writer(WriterError::Spawn { source }))?;
        Ok(Job {
            shared,
            beat: Some(beat),
            finished: false,
        })
    }

    /// The job's id (what `mmm progress ID` takes).
    pub fn id(&self) -> JobId {
        self.shared.id
    }

    /// Adds items (keys unique within the job) to a job started without
    /// [`JobOptions::items`].
    pub fn add_items<S: Into<String>>(
        &self,
        keys: impl IntoIterator<Item = S>,
    ) -> Result<(), EmbedError> {
        let keys: Vec<String> = keys.into_iter().map(Into::into).collect();
        let mut items = self.shared.lock_items();
        if !items.open {
            return Err(EmbedError::InputClosed);
        }
        let first = items.status.len() as u64;
        let mut added: Vec<String> = Vec::with_capacity(keys.len());
        for key in &keys {
            if let Err(e) = items.add(key) {
                // Nothing of this call is kept: the keys added so far go again.
                for k in added.iter().rev() {
                    items.remove(k);
                }
                return Err(e);
            }
            added.push(key.clone());
        }
        self.shared.tracker.set_total(items.status.len() as u64);
        self.shared
            .tracker
            .add_item_keys((first..).zip(keys.iter().cloned()));
        self.shared.writer.add_items(
            self.shared.id,
            keys.into_iter()
                .map(|key| NewItem {
                    value: serde_json::Value::String(key.clone()).to_string(),
                    key,
                })
                .collect(),
        );
        Ok(())
    }

    /// Says no more items will be added: the total is known, and the ETA can tell.
    pub fn input_complete(&self) {
        self.shared.lock_items().open = false;
        self.shared.tracker.set_input_open(false);
    }

    /// `agent` starts working on item `key` (pending, or failed and to be retried).
    pub fn start_item(&self, agent: usize, key: &str) -> Result<ItemRun, EmbedError> {
        let s = &self.shared;
        s.check_agent(agent)?;
        let (index, attempt) = {
            let mut items = s.lock_items();
            let index = *items
                .index
                .get(key)
                .ok_or_else(|| EmbedError::UnknownItem(key.to_string()))?;
            let i = index as usize;
            if !matches!(items.status[i], ItemStatus::Pending | ItemStatus::Failed) {
                return Err(EmbedError::NotPending(key.to_string()));
            }
            items.status[i] = ItemStatus::Running;
            items.attempts[i] += 1;
            (index, items.attempts[i])
        };
        let at = now_ms();
        s.tracker.attempt_started(agent, index, attempt);
        s.metrics.item_taken(agent, index, at);
        s.writer.send_group(vec![
            Write::AttemptStarted {
                job: s.id,
                item_index: index,
                number: attempt,
                agent: agent_name(agent),
                at,
            },
            Write::event(
                s.id,
                Some(key),
                Event::AttemptStarted(AttemptStarted {
                    attempt,
                    agent: agent_name(agent),
                    item: index,
                }),
            ),
        ]);
        Ok(ItemRun {
            index,
            key: key.to_string(),
            agent,
            attempt,
            started: Instant::now(),
            started_ms: at,
            steps: Vec::new(),
        })
    }

    /// `item` moves on to step `name` (one of [`JobOptions::steps`]); the previous step ends.
    pub fn step(&self, item: &mut ItemRun, name: &str) -> Result<(), EmbedError> {
        let s = &self.shared;
        let step = s
            .steps
            .iter()
            .position(|n| n == name)
            .ok_or_else(|| EmbedError::UnknownStep(name.to_string()))?;
        item.steps.push((step, Instant::now()));
        s.tracker.step_started(item.agent, step);
        s.metrics.step_started(item.agent, step, now_ms());
        Ok(())
    }

    /// How far `item`'s current step is, 0.0..=1.0 (shown on its agent's row).
    pub fn progress(&self, item: &ItemRun, done: f32) {
        self.shared
            .tracker
            .step_progress(item.agent, done.clamp(0.0, 1.0));
    }

    /// A line about what `item`'s agent is doing now (shown on its row).
    pub fn message(&self, item: &ItemRun, message: impl Into<String>) {
        self.shared.tracker.step_message(item.agent, message.into());
    }

    /// Adds `delta` to the job's counter `name` (shown with its rate per second): a count
    /// (`12.0`) or an amount with decimals (`0.0125` dollars). A NaN or infinite `delta` is
    /// ignored, so one bad figure cannot poison the total and its forecast.
    pub fn counter(&self, name: &str, delta: f64) {
        if let Some(delta) = CounterValue::new(delta) {
            self.shared.tracker.add_to_counter(name, delta);
        }
    }

    /// `item` ended: recorded with its duration measured since [`Job::start_item`].
    pub fn finish_item(&self, item: ItemRun, outcome: ItemOutcome) -> Result<(), EmbedError> {
        let duration = item.started.elapsed();
        self.finish_item_in(item, outcome, duration)
    }

    /// `item` ended after `duration` (for work measured by the program itself); the steps
    /// keep their measured share.
    pub fn finish_item_in(
        &self,
        item: ItemRun,
        outcome: ItemOutcome,
        duration: Duration,
    ) -> Result<(), EmbedError> {
        let s = &self.shared;
        let now = Instant::now();
        let at = now_ms();
        let mut steps: Vec<StepRecord> = Vec::new();
        let mut measured: Vec<(usize, Option<Duration>)> = Vec::new();
        for (i, (step, began)) in item.steps.iter().enumerate() {
            let end = item.steps.get(i + 1).map_or(now, |next| next.1);
            let took = end.saturating_duration_since(*began);
            steps.push(StepRecord {
                name: s.steps[*step].clone(),
                skipped: false,
                duration_us: took.as_micros() as u64,
                exit_code: None,
            });
            measured.push((*step, Some(took)));
        }
        let duration_us = duration.as_micros() as u64;
        let steps_us: Vec<Option<u64>> = steps.iter().map(|st| Some(st.duration_us)).collect();
        let agent = agent_name(item.agent);
        let (attempt_outcome, item_status, error, event) = match &outcome {
            ItemOutcome::Succeeded => (
                AttemptOutcome::Succeeded,
                ItemStatus::Completed,
                None,
                // The attempt's row holds the durations; only a shared map's events carry
                // them (`ItemCompleted`), and an embedded job is its program's alone.
                Event::ItemCompleted(ItemCompleted {
                    attempt: item.attempt,
                    agent: agent.clone(),
                    duration_us: None,
                    steps_us: None,
                }),
            ),
            ItemOutcome::Skipped => (
                AttemptOutcome::Succeeded,
                ItemStatus::Skipped,
                None,
                Event::from_parts("item_skipped", serde_json::json!({ "agent": agent })),
            ),
            ItemOutcome::Failed { error, retry: true } => (
                AttemptOutcome::Failed,
                ItemStatus::Failed,
                Some(error.clone()),
                Event::AttemptFailed(AttemptFailed {
                    attempt: Some(item.attempt),
                    agent: Some(agent.clone()),
                    outcome: Some(AttemptOutcome::Failed),
                    error: Some(error.clone()),
                    exit_code: None,
                    infrastructure: false,
                    stopping: None,
                    throttled: false,
                }),
            ),
            ItemOutcome::Failed {
                error,
                retry: false,
            } => (
                AttemptOutcome::Failed,
                ItemStatus::DeadLettered,
                Some(error.clone()),
                Event::ItemDeadLettered(ItemDeadLettered {
                    attempts: item.attempt,
                    agent: agent.clone(),
                    outcome: AttemptOutcome::Failed,
                    error: Some(error.clone()),
                    exit_code: None,
                    duration_us,
                    steps_us,
                }),
            ),
        };
        s.lock_items().status[item.index as usize] = item_status;
        s.tracker.attempt_ended(attempt_outcome);
        match item_status {
            ItemStatus::Failed => {
                s.tracker.retrying(item.agent, item.attempt + 1, None);
                s.tracker
                    .item_finished(item.agent, ItemEnd::Interrupted, None);
                s.metrics.item_released(item.agent);
            }
            ItemStatus::Skipped => {
                s.tracker.item_finished(item.agent, ItemEnd::Skipped, None);
                s.metrics.item_released(item.agent);
            }
            ItemStatus::DeadLettered => {
                s.tracker
                    .item_finished(item.agent, ItemEnd::DeadLettered, None);
                s.metrics.item_finished(item.agent, duration, &measured, at);
            }
            _ => {
                s.tracker
                    .item_finished(item.agent, ItemEnd::Completed, None);
                s.metrics.item_finished(item.agent, duration, &measured, at);
            }
        }
        s.writer.send_group(vec![
            Write::AttemptFinished {
                job: s.id,
                item_index: item.index,
                number: item.attempt,
                ended_at: at.max(item.started_ms),
                duration_us,
                outcome: attempt_outcome,
                exit_code: None,
                error,
                steps,
                stdout_tail: String::new(),
                stderr_tail: String::new(),
                item_status,
                counts_against_retries: true,
            },
            Write::event(s.id, Some(&item.key), event),
        ]);
        if s.writer.is_failed() {
            s.writer.flush_blocking()?;
        }
        Ok(())
    }

    /// The live counts (what the bars show).
    pub fn snapshot(&self) -> Snapshot {
        self.shared.snapshot()
    }

    /// The counts alone.
    pub fn counts(&self) -> Progress {
        self.shared.tracker.progress()
    }

    /// The estimate of the time left, as of now.
    pub fn eta(&self) -> Eta {
        self.shared.refresh();
        self.shared.metrics.eta()
    }

    /// Durations, the ETA, stragglers and failure clusters, as of now.
    pub fn metrics(&self) -> MetricsView {
        self.shared.refresh();
        self.shared.metrics.view()
    }

    /// The job's events as recorded (`mmm events`), from the first, then live as they commit.
    pub fn subscribe(&self, filter: EventFilter) -> Subscription {
        Subscription::new(self.shared.store.clone(), self.shared.id, 0, filter)
    }

    /// Waits until everything reported so far is committed.
    pub fn flush(&self) -> Result<(), EmbedError> {
        Ok(self.shared.writer.flush_blocking()?)
    }

    /// Ends the job: `completed`, or `completed_with_failures` when items are in the DLQ, or
    /// `interrupted` when items are still unfinished (it cannot be resumed by `mmm resume`,
    /// which runs commands: the program continues it by running a new job). Records a last
    /// snapshot and waits for every write to commit.
    pub fn finish(mut self) -> Result<JobStatus, EmbedError> {
        let status = self.shared.final_status();
        self.end(status)?;
        Ok(status)
    }

    fn end(&mut self, status: JobStatus) -> Result<(), EmbedError> {
        self.finished = true;
        let s = &self.shared;
        s.stopping.store(true, Ordering::Relaxed);
        if let Some(beat) = self.beat.take() {
            beat.thread().unpark();
            let _ = beat.join();
        }
        self.shared.beat();
        let s = &self.shared;
        let at = now_ms();
        s.writer.send_group(vec![
            Write::JobStatus {
                job: s.id,
                status,
                at,
            },
            Write::event(
                s.id,
                None,
                Event::JobFinished(JobFinished {
                    status,
                    error: None,
                }),
            ),
        ]);
        Ok(s.writer.flush_blocking()?)
    }
}

impl Drop for Job {
    /// A job dropped without [`Job::finish`] (an early return, a panic) is recorded
    /// `interrupted`, so no view shows it running.
    fn drop(&mut self) {
        if !self.finished {
            let _ = self.end(JobStatus::Interrupted);
        }
    }
}

impl Items {
    fn add(&mut self, key: &str) -> Result<(), EmbedError> {
        if self.index.contains_key(key) {
            return Err(EmbedError::DuplicateItem(key.to_string()));
        }
        self.index.insert(key.to_string(), self.status.len() as u64);
        self.status.push(ItemStatus::Pending);
        self.attempts.push(0);
        Ok(())
    }

    /// Takes back the last key added.
    fn remove(&mut self, key: &str) {
        if self.index.remove(key).is_some() {
            self.status.pop();
            self.attempts.pop();
        }
    }
}

impl Shared {
    fn lock_items(&self) -> std::sync::MutexGuard<'_, Items> {
        self.items.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn check_agent(&self, agent: usize) -> Result<(), EmbedError> {
        if agent < self.agents {
            Ok(())
        } else {
            Err(EmbedError::UnknownAgent {
                agent,
                agents: self.agents,
            })
        }
    }

    fn refresh(&self) {
        let now = now_ms();
        self.metrics.refresh(
            &self.tracker,
            &Elsewhere::default(),
            now,
            now,
            self.started_ms,
        );
    }

    fn snapshot(&self) -> Snapshot {
        let window = 300;
        Snapshot {
            version: SNAPSHOT_VERSION,
            progress: Some(self.tracker.progress()),
            agents: self
                .tracker
                .agents()
                .into_iter()
                .map(|agent| AgentRow {
                    name: Some(agent_name(agent.index)),
                    agent,
                })
                .collect(),
            counters: self.tracker.counters(),
            window: Some(WindowSpan {
                seconds: window,
                counts: self.tracker.window(window as u32),
            }),
            alerts: Vec::new(),
            metrics: Some(self.metrics.view()),
            rates: Some(Rates::of(&self.tracker, self.started.elapsed())),
        }
    }

    /// A heartbeat: the running time and a snapshot.
    fn beat(&self) {
        self.refresh();
        let at = now_ms();
        self.writer.send_group(vec![
            Write::Heartbeat {
                job: self.id,
                at,
                duration_ms: self.started.elapsed().as_millis() as i64,
            },
            Write::Snapshot {
                job: self.id,
                at,
                payload: Box::new(self.snapshot()),
            },
        ]);
    }

    fn final_status(&self) -> JobStatus {
        let items = self.lock_items();
        if items.status.iter().any(|s| {
            matches!(
                s,
                ItemStatus::Pending | ItemStatus::Running | ItemStatus::Failed
            )
        }) {
            JobStatus::Interrupted
        } else if items.status.contains(&ItemStatus::DeadLettered) {
            JobStatus::CompletedWithFailures
        } else {
            JobStatus::Completed
        }
    }
}

/// How an agent is named in the record.
fn agent_name(agent: usize) -> String {
    format!("agent-{}", agent + 1)
}
