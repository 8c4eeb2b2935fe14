//! [`StoreError`]: everything the store can fail with, each variant saying what to do next,
//! and [`BackendError`], what the database client of a backend reported, kept as the source.

use std::path::PathBuf;

use mmm_core::job::{ItemStatus, JobId, JobStatus};

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
    /// `--store` names a kind of store whose backend this build leaves out (a cargo feature of
    /// mmm-store, on by default).
    #[error(
        "`{location}` is a {backend} store, but this mmm was built without {backend} support \
         (the `{feature}` feature of mmm-store); build mmm with that feature to open it"
    )]
    BackendNotBuilt {
        /// The location as given, password hidden.
        location: String,
        /// The backend, as messages name it (`SQLite`, `PostgreSQL`).
        backend: &'static str,
        /// The cargo feature that brings it.
        feature: &'static str,
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
        source: BackendError,
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
        source: BackendError,
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
        source: BackendError,
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
        source: BackendError,
    },
    /// A statement failed in a store file for another reason.
    #[error("could not {operation} in the store {}; run `mmm check`", path.display())]
    Statement {
        /// The database file.
        path: PathBuf,
        /// What was being done.
        operation: &'static str,
        /// What SQLite reported.
        #[source]
        source: BackendError,
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
    /// A stored log chunk could not be decoded.
    #[error("a log chunk in the store cannot be read ({why}); it may be damaged")]
    DamagedLog {
        /// What is wrong with it.
        why: String,
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
    /// A control request to a job that is not running (`mmm pause`, `scale`, ...).
    #[error(
        "job {} is {status}, not running: only a running job can be {verb}{}",
        job.short(),
        match status {
            JobStatus::Interrupted => format!("; `mmm resume {}` runs it again", job.short()),
            _ => String::new(),
        }
    )]
    JobNotRunning {
        /// The job.
        job: JobId,
        /// Its status.
        status: JobStatus,
        /// What the request would have done, e.g. `paused`.
        verb: &'static str,
    },
    /// A control request no job can follow (a scale out of range).
    #[error("job {}: {source}", job.short())]
    ControlRefused {
        /// The job.
        job: JobId,
        /// Why.
        #[source]
        source: mmm_core::control::ControlRefusal,
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
        source: Option<BackendError>,
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
        source: BackendError,
    },
    /// The connection to a store's server broke, or the server is shutting down or starting
    /// up: the store is unavailable for now, and the same call may succeed once it is back
    /// (`StoreError::is_unavailable`).
    #[error(
        "lost the connection to the PostgreSQL store {location} while trying to {operation}; \
         check that the server runs and is reachable"
    )]
    Unavailable {
        /// The URL, password hidden.
        location: String,
        /// What was being done.
        operation: &'static str,
        /// What the client reported.
        #[source]
        source: BackendError,
    },
    /// The store stayed unavailable for longer than a run waits (`--store-outage-limit`).
    #[error(
        "the store was unavailable for longer than {} (--store-outage-limit), so the job \
         stopped; nothing recorded was lost: `mmm resume` it once the store is back",
        humantime::format_duration(*limit)
    )]
    OutageTooLong {
        /// How long a run waits.
        limit: std::time::Duration,
        /// The last call's error.
        #[source]
        source: Box<StoreError>,
    },
    /// A statement failed on a store's server.
    #[error(
        "could not {operation} in the PostgreSQL store {location}; check that the server is \
         reachable, then run `mmm check`"
    )]
    ServerStatement {
        /// The URL, password hidden.
        location: String,
        /// What was being done.
        operation: &'static str,
        /// What PostgreSQL reported.
        #[source]
        source: BackendError,
    },
    /// Creating or upgrading a store's schema on a server failed; nothing of it was changed.
    #[error(
        "could not bring the PostgreSQL store {location} to schema version {version}; it was \
         left unchanged: check that the user may create tables in the schema, then try again"
    )]
    MigrateSchema {
        /// The URL, password hidden.
        location: String,
        /// The version being applied.
        version: i64,
        /// What PostgreSQL reported.
        #[source]
        source: BackendError,
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

/// What a backend's database client reported: the `#[source]` of a [`StoreError`] that a
/// database failure caused. Shown as the client shows it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackendError {
    /// SQLite's error (the `sqlite` backend).
    #[cfg(feature = "sqlite")]
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    /// PostgreSQL's error, or its client's (the `postgres` backend).
    #[cfg(feature = "postgres")]
    #[error(transparent)]
    Postgres(#[from] tokio_postgres::Error),
}

impl StoreError {
    /// True when the store could not be reached or used for now and the same call may succeed
    /// later: a PostgreSQL server that is down, restarting or cut off, or a SQLite store locked
    /// by another process past the busy timeout. A caller that can wait rides it out
    /// ([`crate::Outages`]); nothing of a failed call was kept, except that a write whose
    /// commit was under way may have been committed (the store's `apply` and `add_items` find
    /// out when they are called again with the same writes).
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            StoreError::Unavailable { .. } | StoreError::Connect { .. } | StoreError::Busy { .. }
        )
    }

    /// [`StoreError::JobNotFound`] for a job looked up by its whole id.
    pub(crate) fn job_not_found(job: JobId) -> StoreError {
        StoreError::JobNotFound {
            job: job.to_string(),
        }
    }
}
