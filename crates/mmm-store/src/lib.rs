//! The store: the durable record of every job, item, attempt, event and snapshot, and the
//! single source of truth for every process that reads a job (DESIGN.md "Data flow").
//!
//! [`Store`] is the abstraction the runner and the readers use; [`sqlite::SqliteStore`] is the
//! embedded implementation and [`postgres::PostgresStore`] the shared one (a `postgres://` URL,
//! see [`open`]). [`writer::StoreWriter`] batches the runner's writes into few
//! transactions on a thread of its own, so the runner never waits on the disk per item.

pub mod audit;
mod commits;
pub mod copy;
pub mod events;
pub mod health;
pub mod job_state;
pub mod owner;
pub mod postgres;
pub mod resumable;
pub mod sqlite;
pub mod writer;

use std::path::PathBuf;

use serde::Serialize;

use mmm_core::event::{Event, Repaired};
use mmm_core::job::{AttemptOutcome, ItemStatus, JobId, JobStatus, Phase};
pub use mmm_core::repair::RepairAction;
use mmm_core::snapshot::Snapshot;
pub use owner::Owner;

/// Everything the store can fail with. Each variant says what to do next.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// `open` without `create`, and no store exists there.
    #[error("no store at {}; run a job first (or pass --store PATH)", path.display())]
    NotFound {
        /// The database file that was looked for.
        path: PathBuf,
    },
    /// `--store` names something this build cannot open (e.g. a `sqlite://` URL).
    #[error(
        "`{location}` is not a store location mmm can open; give a directory (default `.mmm`), \
         a file ending in .db, .sqlite or .sqlite3, or a PostgreSQL URL \
         (postgres://USER@HOST:PORT/DATABASE?schema=NAME)"
    )]
    UnsupportedLocation {
        /// The location as given.
        location: String,
    },
    /// The store's directory could not be created.
    #[error("could not create the store directory {}; check the path and its permissions", path.display())]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The database file could not be opened or configured.
    #[error("could not open the store {}; check the path and its permissions", path.display())]
    Open {
        /// The database file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: rusqlite::Error,
    },
    /// The file is not an SQLite database, or SQLite found it damaged (e.g. truncated).
    #[error(
        "the store {} is not an mmm store or is damaged; run `mmm check` (or move the file aside \
         to start a new store)",
        path.display()
    )]
    Damaged {
        /// The database file.
        path: PathBuf,
        /// What SQLite reported.
        #[source]
        source: rusqlite::Error,
    },
    /// The file is a valid SQLite database that some other program made.
    #[error(
        "{} is an SQLite database but not an mmm store; pass another --store location",
        path.display()
    )]
    ForeignDatabase {
        /// The database file.
        path: PathBuf,
    },
    /// The store was written by a newer mmm; reading it could misread it.
    #[error(
        "the store {} has schema version {found}, but this mmm knows versions up to {supported}; \
         upgrade mmm to read it",
        path.display()
    )]
    SchemaTooNew {
        /// The database file.
        path: PathBuf,
        /// The version found in the file.
        found: i64,
        /// The newest version this binary knows.
        supported: i64,
    },
    /// Upgrading the schema failed; the store is left at its previous version.
    #[error(
        "could not upgrade the store {} to schema version {version}; it was left unchanged, run \
         `mmm check`",
        path.display()
    )]
    Migrate {
        /// The database file.
        path: PathBuf,
        /// The version being applied.
        version: i64,
        /// The cause.
        #[source]
        source: rusqlite::Error,
    },
    /// Another process held the store's lock for longer than the busy timeout.
    #[error(
        "the store {} stayed locked by another process while trying to {operation}; try again",
        path.display()
    )]
    Busy {
        /// The database file.
        path: PathBuf,
        /// What was being done.
        operation: &'static str,
        /// What SQLite reported.
        #[source]
        source: rusqlite::Error,
    },
    /// A query or statement failed for another reason.
    #[error("could not {operation} in the store {}; run `mmm check`", path.display())]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// What was being done.
        operation: &'static str,
        /// What SQLite reported.
        #[source]
        source: rusqlite::Error,
    },
    /// A stored value this version of mmm cannot read (unknown status, bad id or JSON).
    #[error(
        "the store {} holds a value this mmm cannot read (while trying to {operation}); it may \
         be damaged or written by a newer mmm: run `mmm check`",
        path.display()
    )]
    InvalidRecord {
        /// The database file.
        path: PathBuf,
        /// What was being done, e.g. `list the jobs`.
        operation: &'static str,
        /// Why it could not be read.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// No job has this id (or id prefix).
    #[error("no job matches `{job}`; run `mmm jobs` to list the jobs in the store")]
    JobNotFound {
        /// The id or prefix as given.
        job: String,
    },
    /// `--from` named a checkpoint the job does not have.
    #[error("job {job} has no checkpoint {checkpoint}; `mmm checkpoints {job}` lists them")]
    CheckpointNotFound {
        /// The job.
        job: JobId,
        /// The checkpoint id given.
        checkpoint: i64,
    },
    /// Several jobs start with this prefix.
    #[error(
        "`{prefix}` matches several jobs ({}); give more of the id",
        matches.join(", ")
    )]
    AmbiguousJob {
        /// The prefix as given.
        prefix: String,
        /// The ids that match, newest first.
        matches: Vec<String>,
    },
    /// A job id prefix with characters other than hex digits.
    #[error("`{prefix}` is not a job id; job ids are hex digits, run `mmm jobs` to list them")]
    InvalidJobId {
        /// The prefix as given.
        prefix: String,
    },
    /// `create_job` for an id that is already recorded.
    #[error("job {job} is already in the store; a new job needs a new id")]
    JobExists {
        /// The job.
        job: JobId,
    },
    /// `create_job` with two items of the same key.
    #[error(
        "item {index} of job {job} has the key `{key}`, which an earlier item already has; \
         item keys must be unique (check the spec's `key:`)"
    )]
    DuplicateItemKey {
        /// The job.
        job: JobId,
        /// The later item's position.
        index: u64,
        /// The repeated key.
        key: String,
    },
    /// A write names an item the job does not have.
    #[error("job {job} has no item {index}; the write was not recorded (run `mmm check {job}`)")]
    ItemNotFound {
        /// The job.
        job: JobId,
        /// The item's position.
        index: u64,
    },
    /// `AttemptFinished` for an attempt that was never started.
    #[error(
        "job {job} has no attempt {number} of item {index}; the write was not recorded (run \
         `mmm check {job}`)"
    )]
    AttemptNotFound {
        /// The job.
        job: JobId,
        /// The item's position.
        index: u64,
        /// The attempt's number.
        number: u32,
    },
    /// Item keys given on the command line that the job does not have.
    #[error(
        "job {} has no item with the key{} {}; `mmm dlq list {}` lists its dead-lettered items",
        job.short(),
        if keys.len() == 1 { "" } else { "s" },
        quoted(keys),
        job.short()
    )]
    UnknownItems {
        /// The job.
        job: JobId,
        /// The keys not found, as given.
        keys: Vec<String>,
    },
    /// Items named for a DLQ command that are not dead-lettered.
    #[error(
        "{} {} of job {} {} not in the dead-letter queue; `mmm dlq list {}` lists the items that are",
        if items.len() == 1 { "item" } else { "items" },
        items.iter().map(|(key, status)| format!("`{key}` ({status})")).collect::<Vec<_>>().join(", "),
        job.short(),
        if items.len() == 1 { "is" } else { "are" },
        job.short()
    )]
    NotDeadLettered {
        /// The job.
        job: JobId,
        /// Each item's key and its current status.
        items: Vec<(String, ItemStatus)>,
    },
    /// A repair found the record changed since it was read; nothing was changed.
    #[error(
        "job {job} changed while it was being repaired ({what}); nothing was changed, run \
         `mmm repair {}` again",
        job.short()
    )]
    RepairConflict {
        /// The job.
        job: JobId,
        /// The change that no longer applied.
        what: String,
    },
    /// A `postgres://` URL that cannot be used as given.
    #[error(
        "`{location}` is not a usable PostgreSQL store URL ({reason}); write it as \
         postgres://USER@HOST:PORT/DATABASE?schema=NAME"
    )]
    InvalidUrl {
        /// The URL as given, password hidden.
        location: String,
        /// What is wrong with it.
        reason: &'static str,
        /// The URL parser's own error, when it had one.
        #[source]
        source: Option<tokio_postgres::Error>,
    },
    /// The PostgreSQL server could not be reached, or refused the connection.
    #[error(
        "could not connect to the PostgreSQL store {location}; check that the server runs and \
         accepts this URL's host, port, user and database (e.g. `pg_isready -h HOST -p PORT`)"
    )]
    Connect {
        /// The URL, password hidden.
        location: String,
        /// What the client reported.
        #[source]
        source: tokio_postgres::Error,
    },
    /// A statement failed in PostgreSQL (or the connection broke while it ran).
    #[error(
        "could not {operation} in the PostgreSQL store {location}; check that the server is \
         reachable, then run `mmm check`"
    )]
    Postgres {
        /// The URL, password hidden.
        location: String,
        /// What was being done.
        operation: &'static str,
        /// What PostgreSQL reported.
        #[source]
        source: tokio_postgres::Error,
    },
    /// Creating or upgrading a PostgreSQL store's schema failed; nothing of it was changed.
    #[error(
        "could not bring the PostgreSQL store {location} to schema version {version}; it was \
         left unchanged: check that the user may create tables in the schema, then try again"
    )]
    PostgresMigrate {
        /// The URL, password hidden.
        location: String,
        /// The version being applied.
        version: i64,
        /// What PostgreSQL reported.
        #[source]
        source: tokio_postgres::Error,
    },
    /// The schema holds tables, but it is not an mmm store.
    #[error(
        "schema `{schema}` of the PostgreSQL store {location} holds tables that are not an mmm \
         store; give mmm a schema of its own with `?schema=NAME` in the URL"
    )]
    ForeignSchema {
        /// The URL, password hidden.
        location: String,
        /// The schema.
        schema: String,
    },
    /// The thread that drives the PostgreSQL connection is gone.
    #[error(
        "the connection to the PostgreSQL store {location} stopped unexpectedly; run the \
         command again (and `mmm check` if a job was running)"
    )]
    Disconnected {
        /// The URL, password hidden.
        location: String,
    },
}

/// Keys as a message lists them: `a`, `b`, at most ten and a count of the rest.
fn quoted(keys: &[String]) -> String {
    const SHOWN: usize = 10;
    let mut text = keys
        .iter()
        .take(SHOWN)
        .map(|key| format!("`{key}`"))
        .collect::<Vec<_>>()
        .join(", ");
    if keys.len() > SHOWN {
        text.push_str(&format!(" and {} more", keys.len() - SHOWN));
    }
    text
}

/// A job as first recorded, before anything runs.
#[derive(Debug, Clone)]
pub struct NewJob {
    /// The job's id.
    pub id: JobId,
    /// The plan's name.
    pub name: String,
    /// The normalised plan, as JSON text.
    pub spec: String,
    /// Hash of the normalised plan.
    pub spec_hash: String,
    /// The job file, if any.
    pub source: Option<PathBuf>,
    /// Number of agents.
    pub max_parallel: u32,
    /// Creation time, epoch ms.
    pub created_at: i64,
    /// Owning process id.
    pub owner_pid: u32,
    /// Owning host name.
    pub owner_host: String,
    /// How the plan was built (`spec::JobOrigin` as JSON), so a resume can build it again.
    pub origin: Option<String>,
}

/// One item as first recorded.
#[derive(Debug, Clone)]
pub struct NewItem {
    /// Stable key, unique within the job.
    pub key: String,
    /// The item's value, JSON text.
    pub value: String,
}

/// Counts of a job's items by status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ItemCounts {
    /// Items not started (or requeued).
    pub pending: u64,
    /// Items with an attempt in flight.
    pub running: u64,
    /// Items done.
    pub completed: u64,
    /// Items whose last attempt failed and that will be retried.
    pub failed: u64,
    /// Items in the DLQ.
    pub dead_lettered: u64,
    /// Items whose every step was skipped.
    pub skipped: u64,
}

impl ItemCounts {
    /// Done (completed, dead-lettered, skipped) over the total, 0..=100; 0 for no items.
    pub fn percent(&self) -> f64 {
        let total = self.total();
        if total == 0 {
            return 0.0;
        }
        let done = self.completed + self.dead_lettered + self.skipped;
        (done as f64 * 100.0 / total as f64).min(100.0)
    }

    /// Every item of the job.
    pub fn total(&self) -> u64 {
        self.pending
            + self.running
            + self.completed
            + self.failed
            + self.dead_lettered
            + self.skipped
    }
}

/// A job as recorded, with its item counts.
#[derive(Debug, Clone, Serialize)]
pub struct JobRecord {
    /// The job's id.
    pub id: JobId,
    /// The plan's name.
    pub name: String,
    /// Current status.
    pub status: JobStatus,
    /// The phase running or last run.
    pub phase: Option<Phase>,
    /// The normalised plan, JSON text.
    pub spec: String,
    /// Hash of the normalised plan.
    pub spec_hash: String,
    /// The job file, if any.
    pub source: Option<PathBuf>,
    /// Number of agents.
    pub max_parallel: u32,
    /// Epoch ms.
    pub created_at: i64,
    /// Epoch ms of the first start.
    pub started_at: Option<i64>,
    /// Epoch ms of the last recorded change.
    pub updated_at: i64,
    /// Epoch ms when the job reached a finished status.
    pub finished_at: Option<i64>,
    /// Time spent running, summed over every run of the job, in ms.
    pub duration_ms: i64,
    /// Owning process id.
    pub owner_pid: Option<u32>,
    /// Owning host.
    pub owner_host: Option<String>,
    /// Epoch ms of the owner's last heartbeat.
    pub heartbeat_at: Option<i64>,
    /// How the plan was built (`spec::JobOrigin` as JSON).
    pub origin: Option<String>,
    /// The map input's fingerprint when its items were recorded (`MapPlan::input_fingerprint`).
    pub input_fingerprint: Option<String>,
    /// Item counts by status.
    pub counts: ItemCounts,
}

/// An item as recorded.
#[derive(Debug, Clone, Serialize)]
pub struct ItemRecord {
    /// Position in the input, 0-based.
    pub index: u64,
    /// Stable key.
    pub key: String,
    /// The item's value, JSON text.
    pub value: String,
    /// Current status.
    pub status: ItemStatus,
    /// Attempts made that count against retries.
    pub attempts: u32,
}

/// How one step of an attempt went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct StepRecord {
    /// The step's name.
    pub name: String,
    /// `ran` or `skipped`.
    pub skipped: bool,
    /// Measured wall time, microseconds.
    pub duration_us: u64,
    /// Exit code, when it ran and exited.
    pub exit_code: Option<i32>,
}

/// An attempt's steps as the backends store them: one array per step, `[name, duration_us,
/// exit_code]`, with a fourth element `true` when the step was skipped, e.g.
/// `[["resize",5740,0],["upload",0,null,true]]`. Objects with field names (`StepRecord`'s
/// JSON, what stores before schema version 4 hold) took 52 bytes for a one-step attempt of
/// a one-liner; this takes 19 (docs/PERFORMANCE.md, "Store size per item"). Reading takes
/// either form, row by row.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct StoredSteps(pub(crate) Vec<StepRecord>);

impl StoredSteps {
    /// The stored form of `steps`.
    pub(crate) fn to_json(steps: &[StepRecord]) -> serde_json::Value {
        serde_json::Value::Array(
            steps
                .iter()
                .map(|step| {
                    let mut fields = vec![
                        serde_json::Value::from(step.name.as_str()),
                        serde_json::Value::from(step.duration_us),
                        serde_json::Value::from(step.exit_code),
                    ];
                    if step.skipped {
                        fields.push(serde_json::Value::Bool(true));
                    }
                    serde_json::Value::Array(fields)
                })
                .collect(),
        )
    }
}

impl<'de> serde::Deserialize<'de> for StoredSteps {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        /// One step in either stored form; a ran step's array has no fourth element.
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Step {
            Ran(String, u64, Option<i32>),
            Flagged(String, u64, Option<i32>, bool),
            Named(StepRecord),
        }
        let steps = Vec::<Step>::deserialize(deserializer)?;
        Ok(StoredSteps(
            steps
                .into_iter()
                .map(|step| match step {
                    Step::Ran(name, duration_us, exit_code) => StepRecord {
                        name,
                        skipped: false,
                        duration_us,
                        exit_code,
                    },
                    Step::Flagged(name, duration_us, exit_code, skipped) => StepRecord {
                        name,
                        skipped,
                        duration_us,
                        exit_code,
                    },
                    Step::Named(step) => step,
                })
                .collect(),
        ))
    }
}

/// One attempt as recorded.
#[derive(Debug, Clone, Serialize)]
pub struct AttemptRecord {
    /// The item's position.
    pub item_index: u64,
    /// The item's key.
    pub item_key: String,
    /// 1-based attempt number for the item.
    pub number: u32,
    /// The agent's name (e.g. `agent-1`).
    pub agent: String,
    /// Epoch ms.
    pub started_at: i64,
    /// Epoch ms; none while in flight.
    pub ended_at: Option<i64>,
    /// Measured wall time in microseconds; none while in flight.
    pub duration_us: Option<u64>,
    /// None while in flight.
    pub outcome: Option<AttemptOutcome>,
    /// The failing (or last) step's exit code.
    pub exit_code: Option<i32>,
    /// A one-line reason for a failure.
    pub error: Option<String>,
    /// Per-step durations.
    pub steps: Vec<StepRecord>,
    /// Bounded tail of standard output.
    pub stdout_tail: String,
    /// Bounded tail of standard error.
    pub stderr_tail: String,
}

/// One event as recorded. Its JSON is `{seq, job, at, item_key, kind, payload}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventRecord {
    /// Store-wide increasing sequence number.
    pub seq: i64,
    /// The job.
    pub job: JobId,
    /// Epoch ms.
    pub at: i64,
    /// The item, for item events.
    pub item_key: Option<String>,
    /// The event: its kind and payload (`kind` and `payload` in JSON).
    #[serde(flatten)]
    pub event: Event,
}

/// A recorded snapshot: the job's metrics and agent states at one moment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SnapshotRecord {
    /// Epoch ms.
    pub at: i64,
    /// What the runner recorded (progress, agents, metrics, alerts, counters).
    pub payload: Snapshot,
}

/// Which page of a job's items [`Store::items_page`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ItemPageQuery {
    /// Only items with this status; every item when `None`.
    pub status: Option<ItemStatus>,
    /// Items to skip, in input order, before the page starts.
    pub offset: u64,
    /// Most items the page holds.
    pub limit: usize,
}

/// One page of a job's items, read in one consistent state.
#[derive(Debug, Clone)]
pub struct ItemPage {
    /// Every item matching the query's status, not only those on the page.
    pub total: u64,
    /// The page's items, in input order.
    pub items: Vec<PagedItem>,
}

/// An item of an [`ItemPage`], with its last attempt.
#[derive(Debug, Clone)]
pub struct PagedItem {
    /// The item.
    pub item: ItemRecord,
    /// Its attempt with the highest number (error and output tails included); `None` when it
    /// never ran.
    pub last_attempt: Option<AttemptRecord>,
}

/// A change to record. A batch of these is applied in one transaction.
#[derive(Debug, Clone)]
pub enum Write {
    /// Set the job's status (and `started_at`/`finished_at` as it implies).
    JobStatus {
        job: JobId,
        status: JobStatus,
        at: i64,
    },
    /// Set the job's current phase.
    JobPhase { job: JobId, phase: Phase, at: i64 },
    /// The owner is alive; total run time so far (all runs) is `duration_ms`.
    Heartbeat {
        job: JobId,
        at: i64,
        duration_ms: i64,
    },
    /// An attempt began: insert it (in flight) and mark the item `running`.
    AttemptStarted {
        job: JobId,
        item_index: u64,
        number: u32,
        agent: String,
        at: i64,
    },
    /// An attempt ended: complete its row and set the item's status; when
    /// `counts_against_retries`, the item's attempt count grows by one.
    AttemptFinished {
        job: JobId,
        item_index: u64,
        number: u32,
        ended_at: i64,
        duration_us: u64,
        outcome: AttemptOutcome,
        exit_code: Option<i32>,
        error: Option<String>,
        steps: Vec<StepRecord>,
        stdout_tail: String,
        stderr_tail: String,
        item_status: ItemStatus,
        counts_against_retries: bool,
    },
    /// Append an event.
    Event {
        job: JobId,
        at: i64,
        item_key: Option<String>,
        event: Event,
    },
    /// Record the fingerprint of the input the items were loaded from.
    InputFingerprint {
        job: JobId,
        at: i64,
        fingerprint: Option<String>,
    },
    /// Record a checkpoint: where the job stands now (its last attempt and its counts).
    Checkpoint {
        job: JobId,
        at: i64,
        phase: Option<Phase>,
        /// Why: `phase:map`, `interval`, ...
        reason: String,
    },
    /// Append a snapshot of the job's metrics and agent states.
    Snapshot {
        job: JobId,
        at: i64,
        /// Boxed: a snapshot is large, the other writes are small.
        payload: Box<Snapshot>,
    },
}

impl Write {
    /// The job the write is about.
    pub fn job(&self) -> JobId {
        match self {
            Write::JobStatus { job, .. }
            | Write::JobPhase { job, .. }
            | Write::Heartbeat { job, .. }
            | Write::AttemptStarted { job, .. }
            | Write::AttemptFinished { job, .. }
            | Write::Event { job, .. }
            | Write::Snapshot { job, .. }
            | Write::Checkpoint { job, .. }
            | Write::InputFingerprint { job, .. } => *job,
        }
    }

    /// An event of `kind` now, about the job or one of its items.
    pub fn event(job: JobId, item_key: Option<&str>, event: Event) -> Write {
        Write::Event {
            job,
            at: mmm_core::job::now_ms(),
            item_key: item_key.map(str::to_string),
            event,
        }
    }

    /// When the change happened, epoch ms (`ended_at` for a finished attempt).
    pub fn at(&self) -> i64 {
        match self {
            Write::JobStatus { at, .. }
            | Write::JobPhase { at, .. }
            | Write::Heartbeat { at, .. }
            | Write::AttemptStarted { at, .. }
            | Write::Event { at, .. }
            | Write::Snapshot { at, .. }
            | Write::Checkpoint { at, .. }
            | Write::InputFingerprint { at, .. } => *at,
            Write::AttemptFinished { ended_at, .. } => *ended_at,
        }
    }
}

/// The store abstraction. Implementations must pass `tests/store_conformance.rs`.
pub trait Store: Send + Sync {
    /// Records a new job and all its items, in one transaction.
    fn create_job(&self, job: &NewJob, items: &[NewItem]) -> Result<(), StoreError>;
    /// Appends items to a job (their indices follow the existing ones), in one transaction.
    fn add_items(&self, job: JobId, items: &[NewItem]) -> Result<(), StoreError>;
    /// Applies a batch of writes in one transaction: all or nothing.
    fn apply(&self, writes: &[Write]) -> Result<(), StoreError>;
    /// One job, with counts.
    fn job(&self, id: JobId) -> Result<JobRecord, StoreError>;
    /// Every job, newest first, with counts.
    fn jobs(&self) -> Result<Vec<JobRecord>, StoreError>;
    /// The job whose id starts with `prefix` (an error when none or several match).
    fn resolve_job(&self, prefix: &str) -> Result<JobId, StoreError>;
    /// The job's items in input order, optionally only those with one status.
    fn items(&self, job: JobId, status: Option<ItemStatus>) -> Result<Vec<ItemRecord>, StoreError>;
    /// The job's attempts in order, optionally only one item's.
    fn attempts(
        &self,
        job: JobId,
        item_key: Option<&str>,
    ) -> Result<Vec<AttemptRecord>, StoreError>;
    /// Events of the job with `seq > after`, oldest first, at most `limit`.
    fn events(&self, job: JobId, after: i64, limit: usize) -> Result<Vec<EventRecord>, StoreError>;
    /// At most `limit` of the job's snapshots taken after `after` (epoch ms), oldest first.
    fn snapshots(
        &self,
        job: JobId,
        after: i64,
        limit: usize,
    ) -> Result<Vec<SnapshotRecord>, StoreError>;
    /// Proves the store takes writes now: opens a write transaction (taking the write lock)
    /// and rolls it back, changing nothing. For health checks.
    fn probe_write(&self) -> Result<(), StoreError>;
    /// The job's newest `limit` events, oldest first.
    fn recent_events(&self, job: JobId, limit: usize) -> Result<Vec<EventRecord>, StoreError>;
    /// The job's newest snapshot, if any.
    fn latest_snapshot(&self, job: JobId) -> Result<Option<SnapshotRecord>, StoreError>;

    // Paged reads, for views that show a window of a large job (the dashboard's items table).

    /// A page of the job's items in input order (`offset`, `limit`, optionally one status),
    /// each with its last attempt, and the number of items matching in all; the page, the
    /// attempts and the total come from one read transaction, and the store reads only the
    /// page's rows and their last attempts (plus an index count), however large the job.
    fn items_page(&self, job: JobId, query: &ItemPageQuery) -> Result<ItemPage, StoreError>;

    /// Makes `claim` the job's owner and sets it `running`, if its owner is still `expected`
    /// (a compare-and-swap: of two processes racing for a job, exactly one gets `true`).
    fn take_job(&self, job: JobId, expected: &Owner, claim: &Owner) -> Result<bool, StoreError>;
    /// After a crash: attempts still in flight become `interrupted` (ended at `at`) and
    /// `running` items go back to `pending`, in one transaction.
    fn requeue_in_flight(&self, job: JobId, at: i64) -> Result<Requeued, StoreError>;
    /// Items that still have to run (pending, failed or running), in input order, with the
    /// attempts they used and the number of their last attempt: at most `limit` of them, from
    /// the first with an index above `after` (a page; `None` starts at the beginning).
    fn unfinished_items(
        &self,
        job: JobId,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<UnfinishedItem>, StoreError>;
    /// Every item key of the job, in input order.
    fn item_keys(&self, job: JobId) -> Result<Vec<String>, StoreError>;
    /// The job's checkpoints, oldest first.
    fn checkpoints(&self, job: JobId) -> Result<Vec<CheckpointRecord>, StoreError>;
    /// Sends items completed (or skipped) after checkpoint `id` back to `pending`, marking
    /// their attempts superseded and giving them a fresh retry budget. Returns their keys.
    fn rewind(&self, job: JobId, checkpoint: i64, at: i64) -> Result<Vec<String>, StoreError>;
    /// Gives items new values (`(index, value JSON)`: their input changed under the same key),
    /// in one transaction. Items that had finished go back to `pending` with a fresh retry
    /// budget, their succeeded attempts marked superseded, and an `item_requeued` event with
    /// reason `input_changed`. Returns the keys of the items requeued.
    fn update_item_values(
        &self,
        job: JobId,
        changes: &[(u64, String)],
        at: i64,
    ) -> Result<Vec<String>, StoreError>;
    /// The job's resume ledger: its resumes and input or spec changes, and how many items
    /// ran again for each reason.
    fn ledger(&self, job: JobId) -> Result<Ledger, StoreError>;
    /// One item of the job by its key; `None` when the job has no such item.
    fn item(&self, job: JobId, key: &str) -> Result<Option<ItemRecord>, StoreError>;
    /// The job's dead-lettered items in input order, each with every attempt, read in one
    /// consistent state.
    fn dead_letters(&self, job: JobId) -> Result<Vec<DeadLetter>, StoreError>;
    /// Moves dead-lettered items back to `pending` with a fresh retry budget
    /// (`items.attempts = 0`; attempt rows are kept and numbers keep increasing), records a
    /// `dlq_retry` event per item and reopens a finished job as `interrupted`, in one
    /// transaction. `keys`: the items to move (default: every dead-lettered item); an unknown
    /// key is [`StoreError::UnknownItems`], one not dead-lettered [`StoreError::NotDeadLettered`],
    /// and then nothing is changed.
    fn retry_dead_lettered(
        &self,
        job: JobId,
        keys: Option<&[String]>,
        at: i64,
    ) -> Result<DlqChange, StoreError>;
    /// Gives up on dead-lettered items: marks them `skipped`, keeping their attempts, records a
    /// `dlq_purged` event per item and, when nothing is left to do or in the DLQ, turns a
    /// `completed_with_failures` job into `completed`, in one transaction. `keys` as for
    /// [`Store::retry_dead_lettered`].
    fn purge_dead_lettered(
        &self,
        job: JobId,
        keys: Option<&[String]>,
        at: i64,
    ) -> Result<DlqChange, StoreError>;
    /// The job, all its items and all its attempts, read in one consistent state (for
    /// `mmm check` and `mmm repair`).
    fn job_contents(&self, job: JobId) -> Result<JobContents, StoreError>;
    /// The backend's own integrity checks (SQLite: `integrity_check`, `foreign_key_check`;
    /// PostgreSQL: schema, indexes, constraints, triggers, references and, with `amcheck`,
    /// B-tree checks: see [`postgres::PostgresStore`]); one line per problem, empty when the
    /// storage is sound.
    fn storage_problems(&self) -> Result<Vec<String>, StoreError>;
    /// Applies the repair's actions and records it as a `repaired` event, in one
    /// transaction. Each action applies only if the record still holds what it expects;
    /// otherwise nothing is changed and the result is [`StoreError::RepairConflict`].
    fn repair(&self, job: JobId, repair: &Repaired, at: i64) -> Result<(), StoreError>;

    /// Scale-out: claims at most `limit` items of the job for `claimer`, in input order, with
    /// a lease until `lease_until` (epoch ms), in one transaction; concurrent claimers never
    /// get the same item (PostgreSQL: `FOR UPDATE SKIP LOCKED`; SQLite: `BEGIN IMMEDIATE`).
    /// Only a `running` job in its map phase hands out items. Claimable: a `pending` or
    /// `failed` item with no lease or one that ran out before `at`, and a `running` item whose
    /// lease ran out (its claimer died): its attempt in flight is closed `interrupted` (not
    /// counted against retries) and an `item_requeued` event with reason `lease_expired` is
    /// recorded. Claiming does not change an item's status (`AttemptStarted` does).
    fn claim_items(
        &self,
        job: JobId,
        claimer: &str,
        limit: usize,
        lease_until: i64,
        at: i64,
    ) -> Result<Vec<ClaimedItem>, StoreError>;
    /// Extends the lease of every unfinished item `claimer` holds in the job to `lease_until`;
    /// returns how many.
    fn renew_claims(&self, job: JobId, claimer: &str, lease_until: i64) -> Result<u64, StoreError>;
    /// Gives back every item `claimer` holds in the job that has no attempt in flight (their
    /// lease is cleared, so others may claim them at once); returns how many.
    fn release_claims(&self, job: JobId, claimer: &str) -> Result<u64, StoreError>;

    /// What only the backend knows of a job, for copying it ([`copy::dump_job`]).
    fn copy_details(&self, job: JobId) -> Result<copy::CopyDetails, StoreError>;
    /// Records a job copied from another store ([`copy::JobDump`]), in one transaction;
    /// [`StoreError::JobExists`] when this store has it already.
    fn import_job(&self, dump: &copy::JobDump) -> Result<(), StoreError>;
    /// Removes the job and everything recorded about it, in one transaction (`mmm store
    /// migrate`, once the job is safely in another store); [`StoreError::JobNotFound`] when
    /// this store does not have it.
    fn delete_job(&self, job: JobId) -> Result<(), StoreError>;

    /// Waits at most `timeout` for the job to record new events; may return early without
    /// any. PostgreSQL wakes on `NOTIFY mmm_events` (sent when a batch with events of the job
    /// commits, from any host); SQLite wakes when a batch commits through a handle of this
    /// process, and otherwise sleeps `timeout` (readers in other processes poll).
    fn wait_for_events(&self, job: JobId, timeout: std::time::Duration) {
        let _ = job;
        std::thread::sleep(timeout);
    }

    /// True when [`Store::wait_for_events`] wakes as events commit in any process, from any
    /// host (PostgreSQL), so a reader may wait on it instead of polling; false when a reader in
    /// another process than the writer's must poll (SQLite).
    fn wakes_on_events(&self) -> bool {
        false
    }
}

/// An item handed to a claimer by [`Store::claim_items`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedItem {
    /// Position in the input.
    pub index: u64,
    /// Stable key.
    pub key: String,
    /// The item's value, JSON text.
    pub value: String,
    /// Attempts that counted against the retry budget.
    pub attempts: u32,
    /// The number of its last attempt (0 when it never ran).
    pub last_number: u32,
    /// True when it was taken from a claimer whose lease ran out (its attempt in flight, if
    /// any, was closed `interrupted`).
    pub lease_expired: bool,
}

/// The error recorded on an attempt closed because its claimer's lease ran out.
pub const LEASE_EXPIRED_ERROR: &str =
    "interrupted: the worker running it stopped renewing its lease (it died or lost the store)";

/// Why a job's items ran again, across its resumes (`mmm jobs JOB` shows it).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Ledger {
    /// `job_resumed`, `input_changed`, `spec_changed` and `spec_from_store` events, in order.
    pub entries: Vec<EventRecord>,
    /// Items requeued per reason: `interrupted`, `rewound`, `dlq_retry`.
    pub requeued: Vec<(String, u64)>,
}

/// What [`Store::requeue_in_flight`] changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Requeued {
    /// Keys of the items whose in-flight attempt was marked `interrupted`.
    pub interrupted: Vec<String>,
}

/// An item that still has to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnfinishedItem {
    /// Position in the input.
    pub index: u64,
    /// Stable key.
    pub key: String,
    /// The item's value, JSON text.
    pub value: String,
    /// `pending` or `failed` (after [`Store::requeue_in_flight`], never `running`).
    pub status: ItemStatus,
    /// Attempts that counted against the retry budget.
    pub attempts: u32,
    /// The number of its last attempt (0 when it never ran).
    pub last_number: u32,
}

/// A checkpoint as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckpointRecord {
    /// Increasing id, what `--from` takes.
    pub id: i64,
    /// Epoch ms.
    pub at: i64,
    /// The phase then.
    pub phase: Option<Phase>,
    /// Why it was taken.
    pub reason: String,
    /// Items completed then.
    pub completed: u64,
    /// Items in the DLQ then.
    pub dead_lettered: u64,
    /// Items skipped then.
    pub skipped: u64,
}

/// The file name of the SQLite database inside a store directory.
pub const DATABASE_FILE: &str = "mmm.db";

/// The store location used when none is given.
pub const DEFAULT_LOCATION: &str = ".mmm";

/// `location` as mmm shows it in messages: a URL's password (in its user part or a
/// `password=` option) replaced by `***`. Paths are shown as given.
pub fn shown_location(location: &str) -> String {
    let Some((scheme, rest)) = location.split_once("://") else {
        return location.to_string();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some((user_info, host)) => match user_info.split_once(':') {
            Some((user, _password)) => format!("{user}:***@{host}"),
            None => authority.to_string(),
        },
        None => authority.to_string(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let options: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=***"),
                    _ => pair.to_string(),
                })
                .collect();
            format!("{path}?{}", options.join("&"))
        }
        None => tail.to_string(),
    };
    format!("{scheme}://{authority}{tail}")
}

/// Opens the store at `location`, from `--store` / `MMM_STORE` (default `.mmm`).
///
/// `location` is either
/// - a PostgreSQL URL (`postgres://` or `postgresql://`, libpq's URL form): the store is the
///   schema named by its `schema` query parameter (default [`postgres::DEFAULT_SCHEMA`]) in
///   that database, e.g. `postgres://postgres@127.0.0.1:5432/test?schema=nightly`; see
///   [`postgres::PostgresStore::open`];
/// - or a directory holding [`DATABASE_FILE`], or a file used directly when it ends in `.db`,
///   `.sqlite` or `.sqlite3` or already exists as a file.
///
/// With `create`, the directory and the database (or the schema) are created as needed; without
/// it, a missing store is [`StoreError::NotFound`]. Other URLs are
/// [`StoreError::UnsupportedLocation`].
pub fn open(location: &str, create: bool) -> Result<std::sync::Arc<dyn Store>, StoreError> {
    if postgres::is_postgres_url(location) {
        let store = postgres::PostgresStore::open(location, create)?;
        return Ok(std::sync::Arc::new(store));
    }
    let path = database_path(location)?;
    let store = sqlite::SqliteStore::open(&path, create)?;
    Ok(std::sync::Arc::new(store))
}

/// The SQLite database file that `location` names (see [`open`]); touches nothing but
/// metadata. Any URL, PostgreSQL's included, is [`StoreError::UnsupportedLocation`] here.
pub fn database_path(location: &str) -> Result<PathBuf, StoreError> {
    if location.is_empty() || location.contains("://") {
        return Err(StoreError::UnsupportedLocation {
            location: location.to_string(),
        });
    }
    let path = PathBuf::from(location);
    let named_as_file = path
        .extension()
        .and_then(|ext| ext.to_str())
        .is_some_and(|ext| matches!(ext, "db" | "sqlite" | "sqlite3"));
    if named_as_file || path.is_file() {
        Ok(path)
    } else {
        Ok(path.join(DATABASE_FILE))
    }
}

/// A dead-lettered item with every attempt made for it, oldest first.
#[derive(Debug, Clone, Serialize)]
pub struct DeadLetter {
    /// The item.
    pub item: ItemRecord,
    /// Its attempts, by number.
    pub attempts: Vec<AttemptRecord>,
}

/// What `retry_dead_lettered` or `purge_dead_lettered` changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DlqChange {
    /// The keys of the items moved, in input order.
    pub items: Vec<String>,
    /// The job's status before.
    pub status_before: JobStatus,
    /// The job's status after.
    pub status_after: JobStatus,
}

/// A job's whole record, read in one consistent state.
#[derive(Debug, Clone)]
pub struct JobContents {
    /// The job, with counts.
    pub job: JobRecord,
    /// Every item, in input order.
    pub items: Vec<ItemRecord>,
    /// Every attempt, by item position then number.
    pub attempts: Vec<AttemptRecord>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_stored_as_arrays_and_read_in_either_form() {
        let steps = vec![
            StepRecord {
                name: "resize".into(),
                skipped: false,
                duration_us: 5_740,
                exit_code: Some(0),
            },
            StepRecord {
                name: "upload".into(),
                skipped: true,
                duration_us: 0,
                exit_code: None,
            },
            StepRecord {
                name: "killed".into(),
                skipped: false,
                duration_us: 9,
                exit_code: None,
            },
        ];
        let stored = StoredSteps::to_json(&steps).to_string();
        assert_eq!(
            stored,
            r#"[["resize",5740,0],["upload",0,null,true],["killed",9,null]]"#
        );
        let read: StoredSteps = serde_json::from_str(&stored).unwrap();
        assert_eq!(read.0, steps);
        // As stores before schema version 4 hold them: objects, every field named.
        let old = serde_json::to_string(&steps).unwrap();
        assert!(old.contains(r#""skipped":false"#), "{old}");
        let read: StoredSteps = serde_json::from_str(&old).unwrap();
        assert_eq!(read.0, steps);
        let empty: StoredSteps = serde_json::from_str("[]").unwrap();
        assert!(empty.0.is_empty());
        assert!(serde_json::from_str::<StoredSteps>(r#"[["x","slow",0]]"#).is_err());
    }

    #[test]
    fn locations_map_to_database_files() {
        assert_eq!(
            database_path(".mmm").unwrap(),
            PathBuf::from(".mmm").join(DATABASE_FILE)
        );
        assert_eq!(
            database_path("state/dir").unwrap(),
            PathBuf::from("state/dir/mmm.db")
        );
        for file in ["jobs.db", "a/b.sqlite", "c.sqlite3"] {
            assert_eq!(database_path(file).unwrap(), PathBuf::from(file));
        }
        for unsupported in [
            "postgres://host/db",
            "postgresql://u@h/db",
            "file:///x.db",
            "",
        ] {
            assert!(matches!(
                database_path(unsupported),
                Err(StoreError::UnsupportedLocation { .. })
            ));
        }
    }

    #[test]
    fn writes_name_their_job_and_time() {
        let job = JobId::new();
        let write = Write::Heartbeat {
            job,
            at: 7,
            duration_ms: 3,
        };
        assert_eq!((write.job(), write.at()), (job, 7));
    }
}
