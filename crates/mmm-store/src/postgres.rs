//! The PostgreSQL store: one schema of a PostgreSQL database holds the same record as the
//! SQLite file, with numbered migrations in `migrations/postgres/` (the version is kept in the
//! schema's `mmm_store` table) and the same semantics, checked by the same conformance suite.
//!
//! # Location
//! A libpq-style URL, `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?OPTIONS]`
//! (`postgresql://` too). The store lives in one schema, named by the `schema` option
//! (`?schema=nightly`; default [`DEFAULT_SCHEMA`]): lowercase letters, digits and `_`, starting
//! with a letter or `_`, at most 63 bytes. Every other option is handed to the client as is
//! (e.g. `connect_timeout=5`, `application_name=...`). With `create`, the schema and its tables
//! are created as needed; a schema holding tables that are not an mmm store is refused. Messages
//! show the URL with its password hidden.
//!
//! # Threads
//! [`Store`] is synchronous and is called both from the store writer's thread and from inside
//! the runner's tokio tasks, where a client that blocks on a runtime of its own would panic.
//! So each `PostgresStore` owns one thread running a private current-thread tokio runtime that
//! drives its one `tokio_postgres` connection; a call sends its work there and waits for the
//! answer on a channel. That wait blocks the caller exactly as SQLite's mutex and disk do, and
//! works the same from a plain thread and from async code. One connection per store, with its
//! calls serialised (as SQLite's one connection behind a mutex), keeps the transactions apart.
//!
//! # Transactions
//! Writes run in READ COMMITTED transactions; those that read before they write first lock the
//! job's row (`SELECT ... FOR UPDATE`), so two processes changing one job take turns, as under
//! SQLite's `BEGIN IMMEDIATE`. `take_job` is a single conditional `UPDATE`, so of two racing
//! processes exactly one wins. Reads of several queries run in one REPEATABLE READ, read-only
//! transaction: one consistent state. [`Store::apply`] prepares its statements once per
//! connection and sends a whole batch in one pipeline (one round trip between `BEGIN` and
//! `COMMIT`), in order, then checks each statement's result in order, so a batch fails exactly
//! where SQLite's would, and all or nothing.

use std::collections::{HashMap, HashSet};
use std::error::Error;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::{Arc, Mutex as StdMutex, PoisonError};
use std::task::Poll;
use std::thread::JoinHandle;
use std::time::Duration;

use futures_util::future::{MaybeDone, maybe_done, poll_fn};
use tokio::sync::{Mutex, OwnedMutexGuard, oneshot};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Config, GenericClient, IsolationLevel, NoTls, Row, Statement};

use super::copy::{CopyDetails, JobDump};
use super::{
    AttemptRecord, CheckpointRecord, ClaimedItem, DeadLetter, DlqChange, EventRecord, ItemCounts,
    ItemRecord, JobContents, JobRecord, LEASE_EXPIRED_ERROR, Ledger, NewItem, NewJob, Owner,
    RepairAction, Requeued, SnapshotRecord, StoreError, UnfinishedItem, Write,
};
use super::{Claims, DeadLetters, EventReads, Integrity, JobLog, JobReads, Recovery, Transfer};
use super::{ItemPage, ItemPageQuery, PagedItem, StoredSteps};
use mmm_core::job::{AttemptOutcome, EventKind, ItemStatus, JobId, JobStatus};

/// The migrations, in order: entry `i` brings the schema from version `i` to `i + 1`. Numbered
/// as SQLite's, so a version means the same record on both backends.
const MIGRATIONS: &[&str] = &[
    include_str!("migrations/postgres/0001_initial.sql"),
    include_str!("migrations/postgres/0002_resume.sql"),
    include_str!("migrations/postgres/0003_claims.sql"),
    include_str!("migrations/postgres/0004_job_ref.sql"),
];

/// The newest schema version this binary knows; it reads and writes only this version.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// The schema a URL without `?schema=` names.
pub const DEFAULT_SCHEMA: &str = "mmm";

/// The first key of the advisory lock taken while a schema is created or upgraded ("mmm1" in
/// ASCII, as SQLite's `application_id`); the second is a hash of the schema's name.
const MIGRATION_LOCK: i32 = 0x6d6d_6d31;

/// How long connecting may take when the URL sets no `connect_timeout`.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Items per `INSERT` when recording a job's items (each sends three arrays).
const ITEM_CHUNK: usize = 10_000;

/// The columns of `jobs`, in the order [`job_from_row`] reads them.
const JOB_COLUMNS: &str = "id, name, status, phase, spec, spec_hash, source, max_parallel, \
     created_at, started_at, updated_at, finished_at, duration_ms, owner_pid, owner_host, \
     heartbeat_at, origin, input_fingerprint";

/// The columns of `items`, in the order [`item_from_row`] reads them.
const ITEM_COLUMNS: &str = "idx, key, value, status, attempts";

/// The columns of `attempts a JOIN items i`, in the order [`attempt_from_row`] reads them.
const ATTEMPT_COLUMNS: &str = "a.item_idx, i.key, a.number, a.agent, a.started_at, a.ended_at, \
     a.duration_us, a.outcome, a.exit_code, a.error, a.steps, a.stdout_tail, a.stderr_tail";

/// The tables of a store at [`SCHEMA_VERSION`].
const TABLES: &[&str] = &[
    "mmm_store",
    "jobs",
    "items",
    "attempts",
    "events",
    "snapshots",
    "checkpoints",
];

/// The error recorded on an attempt that `mmm repair` closed.
const REPAIRED_ATTEMPT_ERROR: &str =
    "interrupted: the process running it was gone (closed by `mmm repair`)";

/// True when `location` is a PostgreSQL URL (`postgres://` or `postgresql://`).
pub fn is_postgres_url(location: &str) -> bool {
    location.starts_with("postgres://") || location.starts_with("postgresql://")
}

/// A store in one schema of a PostgreSQL database.
pub struct PostgresStore {
    location: Arc<str>,
    schema: String,
    /// The client's configuration, for the listening connection opened on first use.
    config: Config,
    // Dropped before `worker`: the connection closes, then the runtime stops.
    session: Arc<Mutex<Session>>,
    /// `LISTEN mmm_events` on a connection of its own, opened by the first
    /// [`Store::wait_for_events`]; `None` until then.
    listener: StdMutex<Option<Listener>>,
    worker: Worker,
}

/// The listening connection: its client (the connection closes when it drops) and the
/// notifications it received (`SCHEMA JOB` payloads) not yet looked at.
struct Listener {
    _client: Client,
    notifications: tokio::sync::broadcast::Receiver<String>,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("location", &self.location)
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

/// The connection and what belongs to it, used by one call at a time.
struct Session {
    client: Client,
    statements: Statements,
    location: Arc<str>,
}

/// Statements prepared on this connection, by their SQL.
#[derive(Default)]
struct Statements(HashMap<String, Statement>);

impl Statements {
    /// The prepared statement for `sql`, preparing it on first use.
    async fn get(
        &mut self,
        client: &impl GenericClient,
        sql: &str,
    ) -> Result<Statement, tokio_postgres::Error> {
        if let Some(statement) = self.0.get(sql) {
            return Ok(statement.clone());
        }
        let statement = client.prepare(sql).await?;
        self.0.insert(sql.to_string(), statement.clone());
        Ok(statement)
    }
}

/// The thread that runs the connection's private runtime.
struct Worker {
    handle: tokio::runtime::Handle,
    location: Arc<str>,
    stop: Option<oneshot::Sender<()>>,
    /// The task driving the connection, awaited (briefly) after `stop` so that the server gets
    /// a clean goodbye.
    connection: Arc<StdMutex<Option<tokio::task::JoinHandle<()>>>>,
    thread: Option<JoinHandle<()>>,
}

impl Worker {
    /// Starts the thread and its runtime.
    fn start(location: &Arc<str>) -> Result<Worker, StoreError> {
        let (stop, stopped) = oneshot::channel::<()>();
        let (ready, handle) = std::sync::mpsc::sync_channel(1);
        let connection: Arc<StdMutex<Option<tokio::task::JoinHandle<()>>>> = Arc::default();
        let slot = Arc::clone(&connection);
        let thread = std::thread::Builder::new()
            .name("mmm-postgres".to_string())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(_) => return,
                };
                if ready.send(runtime.handle().clone()).is_err() {
                    return;
                }
                runtime.block_on(async move {
                    // A dropped sender means the same as a stop.
                    let _ = stopped.await;
                    let connection = slot.lock().unwrap_or_else(PoisonError::into_inner).take();
                    if let Some(connection) = connection {
                        let _ = tokio::time::timeout(Duration::from_secs(1), connection).await;
                    }
                });
            })
            .map_err(|_| StoreError::Disconnected {
                location: location.to_string(),
            })?;
        let handle = handle.recv().map_err(|_| StoreError::Disconnected {
            location: location.to_string(),
        })?;
        Ok(Worker {
            handle,
            location: Arc::clone(location),
            stop: Some(stop),
            connection,
            thread: Some(thread),
        })
    }

    /// Runs `work` on the connection's runtime and waits for its result.
    fn run<T: Send + 'static>(
        &self,
        work: impl Future<Output = Result<T, StoreError>> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (answer, result) = std::sync::mpsc::sync_channel(1);
        self.handle.spawn(async move {
            let _ = answer.send(work.await);
        });
        // No answer means the task was dropped: the runtime is gone, or the work panicked.
        result.recv().map_err(|_| StoreError::Disconnected {
            location: self.location.to_string(),
        })?
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            // Quick: the connection is already closed (the session is dropped first).
            let _ = thread.join();
        }
    }
}

/// A URL taken apart: the client's configuration, the schema, and the URL for messages.
struct Target {
    config: Config,
    schema: String,
    location: Arc<str>,
}

/// Splits the `schema` option off `location` and parses the rest as the client's URL.
fn parse_location(location: &str) -> Result<Target, StoreError> {
    let shown = super::shown_location(location);
    let invalid = |reason, source| StoreError::InvalidUrl {
        location: shown.clone(),
        reason,
        source,
    };
    let (base, query) = match location.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (location, None),
    };
    let mut schema = None;
    let mut rest = Vec::new();
    for pair in query.into_iter().flat_map(|q| q.split('&')) {
        match pair.split_once('=') {
            Some(("schema", name)) => {
                if schema.replace(name.to_string()).is_some() {
                    return Err(invalid("`schema` is given twice", None));
                }
            }
            _ if pair.is_empty() => {}
            _ => rest.push(pair),
        }
    }
    let schema = schema.unwrap_or_else(|| DEFAULT_SCHEMA.to_string());
    if !is_schema_name(&schema) {
        return Err(invalid(
            "the schema must be lowercase letters, digits and `_`, start with a letter or `_`, \
             and be at most 63 bytes",
            None,
        ));
    }
    let url = if rest.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", rest.join("&"))
    };
    let mut config =
        Config::from_str(&url).map_err(|e| invalid("it does not parse", Some(e.into())))?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    if config.get_application_name().is_none() {
        config.application_name("mmm");
    }
    Ok(Target {
        config,
        schema,
        location: Arc::from(shown),
    })
}

/// A schema name mmm accepts: one that needs no quoting and reads the same in any case.
fn is_schema_name(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= 63
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// A schema name as an SQL identifier (names are checked by [`is_schema_name`]; quoting keeps
/// even a reserved word usable).
fn quoted(schema: &str) -> String {
    format!("\"{}\"", schema.replace('"', "\"\""))
}

/// Maps a client error met while trying to do `operation`.
fn fail<'a>(
    location: &'a str,
    operation: &'static str,
) -> impl FnOnce(tokio_postgres::Error) -> StoreError + 'a {
    move |source| StoreError::ServerStatement {
        location: location.to_string(),
        operation,
        source: source.into(),
    }
}

/// Maps a value that could not be read while trying to do `operation`.
fn invalid<'a>(
    location: &'a str,
    operation: &'static str,
) -> impl FnOnce(Decode) -> StoreError + 'a {
    move |source| StoreError::InvalidRecord {
        path: PathBuf::from(location),
        operation,
        source,
    }
}

/// Why a row could not be read.
type Decode = Box<dyn Error + Send + Sync>;

impl PostgresStore {
    /// Connects to the store at `location` (see the module docs), creating or upgrading its
    /// schema to [`SCHEMA_VERSION`].
    ///
    /// Without `create`, a schema that does not exist or holds no mmm store is
    /// [`StoreError::NotFound`]. A schema with other tables is [`StoreError::ForeignSchema`], a
    /// newer version [`StoreError::SchemaTooNew`], an unreachable server [`StoreError::Connect`].
    /// Two processes creating one store at once create it once (an advisory lock).
    pub fn open(location: &str, create: bool) -> Result<Self, StoreError> {
        let Target {
            config,
            schema,
            location,
        } = parse_location(location)?;
        let worker = Worker::start(&location)?;
        let slot = Arc::clone(&worker.connection);
        let session = worker.run({
            let location = Arc::clone(&location);
            let schema = schema.clone();
            let config = config.clone();
            async move { connect(config, location, schema, create, slot).await }
        })?;
        Ok(PostgresStore {
            location,
            schema,
            config,
            session: Arc::new(Mutex::new(session)),
            listener: StdMutex::new(None),
            worker,
        })
    }

    /// The URL, password hidden.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// The schema holding the store.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// Opens the listening connection: `LISTEN mmm_events`, notifications forwarded to a
    /// channel by the task that drives the connection.
    fn listen(&self) -> Result<Listener, StoreError> {
        let config = self.config.clone();
        let location = Arc::clone(&self.location);
        self.worker.run(async move {
            let (client, mut connection) =
                config
                    .connect(NoTls)
                    .await
                    .map_err(|source| StoreError::Connect {
                        location: location.to_string(),
                        source: source.into(),
                    })?;
            let (sender, notifications) = tokio::sync::broadcast::channel(1_024);
            tokio::spawn(async move {
                while let Some(Ok(message)) = poll_fn(|cx| connection.poll_message(cx)).await {
                    if let tokio_postgres::AsyncMessage::Notification(n) = message {
                        let _ = sender.send(n.payload().to_string());
                    }
                }
            });
            client
                .batch_execute("LISTEN mmm_events")
                .await
                .map_err(fail(&location, "listen for new events"))?;
            Ok(Listener {
                _client: client,
                notifications,
            })
        })
    }

    /// Runs `work` with the connection to itself, on the connection's thread.
    fn call<T, F, Fut>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(OwnedMutexGuard<Session>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, StoreError>> + Send + 'static,
    {
        let session = Arc::clone(&self.session);
        self.worker.run(async move {
            let guard = session.lock_owned().await;
            work(guard).await
        })
    }
}

/// Connects, points `search_path` at the schema and brings the schema up to date.
async fn connect(
    config: Config,
    location: Arc<str>,
    schema: String,
    create: bool,
    slot: Arc<StdMutex<Option<tokio::task::JoinHandle<()>>>>,
) -> Result<Session, StoreError> {
    let (mut client, connection) =
        config
            .connect(NoTls)
            .await
            .map_err(|source| StoreError::Connect {
                location: location.to_string(),
                source: source.into(),
            })?;
    // Errors of the connection surface on the client's next call (as a closed connection).
    let task = tokio::spawn(async move {
        let _ = connection.await;
    });
    *slot.lock().unwrap_or_else(PoisonError::into_inner) = Some(task);
    client
        .batch_execute(&format!("SET search_path TO {}", quoted(&schema)))
        .await
        .map_err(fail(&location, "choose the store's schema"))?;
    migrate(&mut client, &location, &schema, create).await?;
    Ok(Session {
        client,
        statements: Statements::default(),
        location,
    })
}

/// What a schema holds.
enum Found {
    /// No schema of that name.
    NoSchema,
    /// An mmm store at this version (0: an empty schema).
    Version(i64),
}

/// Reads what the schema holds, refusing one that is not an mmm store.
async fn inspect(
    client: &impl GenericClient,
    location: &str,
    schema: &str,
) -> Result<Found, StoreError> {
    let row = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1::text),
                    to_regclass(quote_ident($1::text) || '.mmm_store') IS NOT NULL,
                    (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                     WHERE n.nspname = $1::text AND c.relkind IN ('r', 'p', 'v', 'm', 'f'))",
            &[&schema],
        )
        .await
        .map_err(fail(location, "read the schema version"))?;
    let (exists, marked, relations): (bool, bool, i64) = (row.get(0), row.get(1), row.get(2));
    let foreign = || StoreError::ForeignSchema {
        location: location.to_string(),
        schema: schema.to_string(),
    };
    if !exists {
        return Ok(Found::NoSchema);
    }
    if !marked {
        return if relations == 0 {
            Ok(Found::Version(0))
        } else {
            Err(foreign())
        };
    }
    let sql = format!(
        "SELECT application, version FROM {}.mmm_store",
        quoted(schema)
    );
    let rows = client
        .query(&sql, &[])
        .await
        .map_err(fail(location, "read the schema version"))?;
    match rows.as_slice() {
        [row] => {
            let application: String = row
                .try_get(0)
                .map_err(|e| invalid(location, "read the schema version")(Box::new(e)))?;
            let version: i64 = row
                .try_get(1)
                .map_err(|e| invalid(location, "read the schema version")(Box::new(e)))?;
            if application == "mmm" {
                Ok(Found::Version(version))
            } else {
                Err(foreign())
            }
        }
        _ => Err(foreign()),
    }
}

/// Brings the schema to [`SCHEMA_VERSION`] (creating it with `create`), refusing newer and
/// foreign schemas. All pending migrations run in one transaction under an advisory lock that
/// re-reads the version, so two processes opening a new store at once migrate it once.
async fn migrate(
    client: &mut Client,
    location: &str,
    schema: &str,
    create: bool,
) -> Result<(), StoreError> {
    let not_found = || StoreError::NotFound {
        path: PathBuf::from(location),
    };
    let too_new = |found| StoreError::SchemaTooNew {
        path: PathBuf::from(location),
        found,
        supported: SCHEMA_VERSION,
    };
    match inspect(client, location, schema).await? {
        Found::Version(SCHEMA_VERSION) => return Ok(()),
        Found::Version(found) if found > SCHEMA_VERSION => return Err(too_new(found)),
        Found::NoSchema | Found::Version(0) if !create => return Err(not_found()),
        _ => {}
    }

    let migrate_error = |version| {
        move |source: tokio_postgres::Error| StoreError::MigrateSchema {
            location: location.to_string(),
            version,
            source: source.into(),
        }
    };
    let tx = client
        .transaction()
        .await
        .map_err(fail(location, "start upgrading the schema"))?;
    tx.execute(
        "SELECT pg_advisory_xact_lock($1, hashtext($2::text))",
        &[&MIGRATION_LOCK, &schema],
    )
    .await
    .map_err(fail(location, "lock the schema for an upgrade"))?;
    let found = match inspect(&tx, location, schema).await? {
        Found::Version(found) => found,
        Found::NoSchema => {
            // Only when missing: `CREATE SCHEMA IF NOT EXISTS` would still need the right to
            // create schemas, which a user given an existing schema may not have.
            tx.batch_execute(&format!("CREATE SCHEMA {}", quoted(schema)))
                .await
                .map_err(migrate_error(1))?;
            0
        }
    };
    if found > SCHEMA_VERSION {
        return Err(too_new(found));
    }
    for (from, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let version = from as i64 + 1;
        tx.batch_execute(sql)
            .await
            .map_err(migrate_error(version))?;
        tx.execute("UPDATE mmm_store SET version = $1::bigint", &[&version])
            .await
            .map_err(migrate_error(version))?;
    }
    tx.commit().await.map_err(migrate_error(SCHEMA_VERSION))
}

/// Polls `futures` in order until all are done: each sends its statement on its first poll, so
/// the server runs them in this order, in one pipeline.
async fn in_order<F: Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut futures: Vec<Pin<Box<MaybeDone<F>>>> = futures
        .into_iter()
        .map(|future| Box::pin(maybe_done(future)))
        .collect();
    poll_fn(|cx| {
        let mut done = true;
        for future in &mut futures {
            done &= future.as_mut().poll(cx).is_ready();
        }
        if done { Poll::Ready(()) } else { Poll::Pending }
    })
    .await;
    futures
        .iter_mut()
        .map(|future| {
            future
                .as_mut()
                .take_output()
                .expect("every future was polled to completion just above")
        })
        .collect()
}

/// A parameter owned by a planned statement.
type Param = Box<dyn ToSql + Sync + Send>;

/// What it means when a planned statement changes no row.
#[derive(Debug, Clone, Copy)]
enum Missing {
    /// Nothing: an insert.
    Nothing,
    /// The job is not recorded.
    Job(JobId),
    /// The job has no such item.
    Item(JobId, u64),
    /// The item has no such attempt.
    Attempt(JobId, u64, u32),
}

impl Missing {
    fn error(self) -> Option<StoreError> {
        match self {
            Missing::Nothing => None,
            Missing::Job(job) => Some(job_not_found(job)),
            Missing::Item(job, index) => Some(StoreError::ItemNotFound { job, index }),
            Missing::Attempt(job, index, number) => {
                Some(StoreError::AttemptNotFound { job, index, number })
            }
        }
    }
}

/// One statement of a batch.
struct Planned {
    sql: &'static str,
    params: Vec<Param>,
    missing: Missing,
    operation: &'static str,
}

/// The statements of a batch, in order: first the `updated_at` of every job it touches (in id
/// order, so that two batches lock jobs in the same order), then each write's.
fn plan(writes: &[Write]) -> Vec<Planned> {
    let mut latest: HashMap<JobId, i64> = HashMap::new();
    for write in writes {
        let at = latest.entry(write.job()).or_insert(write.at());
        *at = (*at).max(write.at());
    }
    let mut jobs: Vec<(JobId, i64)> = latest.into_iter().collect();
    jobs.sort_by_key(|(job, _)| job.to_string());
    let mut planned: Vec<Planned> = jobs
        .into_iter()
        .map(|(job, at)| Planned {
            sql: "UPDATE jobs SET updated_at = GREATEST(updated_at, $2::bigint) WHERE id = $1",
            params: vec![Box::new(job.to_string()), Box::new(at)],
            missing: Missing::Job(job),
            operation: "update a job",
        })
        .collect();
    for write in writes {
        plan_one(write, &mut planned);
    }
    // Live readers in other processes (`events::Subscription`) wake on this, sent at commit.
    let mut notified = HashSet::new();
    for write in writes {
        if let Write::Event { job, .. } = write
            && notified.insert(*job)
        {
            planned.push(Planned {
                sql: "SELECT pg_notify('mmm_events', current_schema() || ' ' || $1::text)",
                params: vec![Box::new(job.to_string())],
                missing: Missing::Nothing,
                operation: "notify readers of new events",
            });
        }
    }
    planned
}

/// The statements of one write.
fn plan_one(write: &Write, planned: &mut Vec<Planned>) {
    let mut push = |sql, params: Vec<Param>, missing, operation| {
        planned.push(Planned {
            sql,
            params,
            missing,
            operation,
        });
    };
    match write {
        Write::JobStatus { job, status, at } => push(
            "UPDATE jobs
             SET status = $2::text,
                 started_at = CASE WHEN $3::boolean THEN COALESCE(started_at, $5::bigint)
                                   ELSE started_at END,
                 finished_at = CASE WHEN $4::boolean THEN $5::bigint ELSE NULL END
             WHERE id = $1",
            vec![
                Box::new(job.to_string()),
                Box::new(status.as_str()),
                Box::new(*status == JobStatus::Running),
                Box::new(status.is_finished()),
                Box::new(*at),
            ],
            Missing::Job(*job),
            "record a job status",
        ),
        Write::JobPhase { job, phase, at: _ } => push(
            "UPDATE jobs SET phase = $2::text WHERE id = $1",
            vec![Box::new(job.to_string()), Box::new(phase.as_str())],
            Missing::Job(*job),
            "record a job phase",
        ),
        Write::Heartbeat {
            job,
            at,
            duration_ms,
        } => push(
            "UPDATE jobs SET heartbeat_at = $2::bigint, duration_ms = $3::bigint WHERE id = $1",
            vec![
                Box::new(job.to_string()),
                Box::new(*at),
                Box::new(*duration_ms),
            ],
            Missing::Job(*job),
            "record a heartbeat",
        ),
        Write::AttemptStarted {
            job,
            item_index,
            number,
            agent,
            at,
        } => {
            push(
                "UPDATE items SET status = $3::text
                   WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = $1) AND idx = $2::bigint",
                vec![
                    Box::new(job.to_string()),
                    Box::new(int(*item_index)),
                    Box::new(ItemStatus::Running.as_str()),
                ],
                Missing::Item(*job, *item_index),
                "mark an item running",
            );
            push(
                "INSERT INTO attempts (job_ref, item_idx, number, agent, started_at)
                 VALUES ((SELECT job_ref FROM jobs WHERE id = $1), $2::bigint, $3::bigint, $4::text, $5::bigint)",
                vec![
                    Box::new(job.to_string()),
                    Box::new(int(*item_index)),
                    Box::new(i64::from(*number)),
                    Box::new(agent.clone()),
                    Box::new(*at),
                ],
                Missing::Nothing,
                "record an attempt start",
            );
        }
        Write::AttemptFinished {
            job,
            item_index,
            number,
            ended_at,
            duration_us,
            outcome,
            exit_code,
            error,
            steps,
            stdout_tail,
            stderr_tail,
            item_status,
            counts_against_retries,
        } => {
            let steps = StoredSteps::to_json(steps);
            push(
                "UPDATE attempts
                 SET ended_at = $4::bigint, duration_us = $5::bigint, outcome = $6::text,
                     exit_code = $7::bigint, error = $8::text, steps = $9::jsonb,
                     stdout_tail = $10::text, stderr_tail = $11::text
                 WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = $1)
                   AND item_idx = $2::bigint AND number = $3::bigint
                   AND outcome IS NULL",
                vec![
                    Box::new(job.to_string()),
                    Box::new(int(*item_index)),
                    Box::new(i64::from(*number)),
                    Box::new(*ended_at),
                    Box::new(int(*duration_us)),
                    Box::new(outcome.as_str()),
                    Box::new(exit_code.map(i64::from)),
                    Box::new(error.clone()),
                    Box::new(steps),
                    Box::new(stdout_tail.clone()),
                    Box::new(stderr_tail.clone()),
                ],
                Missing::Attempt(*job, *item_index, *number),
                "record an attempt end",
            );
            push(
                "UPDATE items
                 SET status = $3::text,
                     attempts = attempts + CASE WHEN $4::boolean THEN 1 ELSE 0 END
                 WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = $1) AND idx = $2::bigint",
                vec![
                    Box::new(job.to_string()),
                    Box::new(int(*item_index)),
                    Box::new(item_status.as_str()),
                    Box::new(*counts_against_retries),
                ],
                Missing::Item(*job, *item_index),
                "record an item status",
            );
        }
        Write::Event {
            job,
            at,
            kind,
            item_key,
            payload,
        } => push(
            "INSERT INTO events (job_ref, at, kind, item_key, payload)
             VALUES ((SELECT job_ref FROM jobs WHERE id = $1), $2::bigint, $3::text, $4::text, $5::jsonb)",
            vec![
                Box::new(job.to_string()),
                Box::new(*at),
                Box::new(kind.clone()),
                Box::new(item_key.clone()),
                Box::new(payload.clone()),
            ],
            Missing::Nothing,
            "record an event",
        ),
        Write::Snapshot { job, at, payload } => push(
            "INSERT INTO snapshots (job_ref, at, payload)
               VALUES ((SELECT job_ref FROM jobs WHERE id = $1), $2::bigint, $3::jsonb)",
            vec![
                Box::new(job.to_string()),
                Box::new(*at),
                Box::new(payload.clone()),
            ],
            Missing::Nothing,
            "record a snapshot",
        ),
        Write::InputFingerprint {
            job, fingerprint, ..
        } => push(
            "UPDATE jobs SET input_fingerprint = $2::text WHERE id = $1",
            vec![Box::new(job.to_string()), Box::new(fingerprint.clone())],
            Missing::Job(*job),
            "record the input's fingerprint",
        ),
        Write::Checkpoint {
            job,
            at,
            phase,
            reason,
        } => push(
            "INSERT INTO checkpoints (job_ref, at, phase, reason, last_event_seq,
                                      completed, dead_lettered, skipped)
             SELECT (SELECT job_ref FROM jobs WHERE id = $1), $2::bigint, $3::text, $4::text,
                    (SELECT COALESCE(MAX(seq), 0) FROM events
                      WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = $1)),
                    count(*) FILTER (WHERE status = 'completed'),
                    count(*) FILTER (WHERE status = 'dead_lettered'),
                    count(*) FILTER (WHERE status = 'skipped')
             FROM items WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = $1)",
            vec![
                Box::new(job.to_string()),
                Box::new(*at),
                Box::new(phase.map(|p| p.as_str())),
                Box::new(reason.clone()),
            ],
            Missing::Nothing,
            "record a checkpoint",
        ),
    }
}

/// Starts a read-only REPEATABLE READ transaction: several queries see one state.
async fn begin_read<'c>(
    client: &'c mut Client,
    location: &str,
) -> Result<tokio_postgres::Transaction<'c>, StoreError> {
    client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
        .map_err(fail(location, "start a read transaction"))
}

/// Starts a write transaction.
async fn begin_write<'c>(
    client: &'c mut Client,
    location: &str,
) -> Result<tokio_postgres::Transaction<'c>, StoreError> {
    client
        .transaction()
        .await
        .map_err(fail(location, "start a write transaction"))
}

/// Runs a cached statement and returns its rows.
async fn query(
    statements: &mut Statements,
    client: &impl GenericClient,
    location: &str,
    operation: &'static str,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Vec<Row>, StoreError> {
    let statement = statements
        .get(client, sql)
        .await
        .map_err(fail(location, operation))?;
    client
        .query(&statement, params)
        .await
        .map_err(fail(location, operation))
}

/// Runs a cached statement and returns how many rows it changed.
async fn execute(
    statements: &mut Statements,
    client: &impl GenericClient,
    location: &str,
    operation: &'static str,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<u64, StoreError> {
    let statement = statements
        .get(client, sql)
        .await
        .map_err(fail(location, operation))?;
    client
        .execute(&statement, params)
        .await
        .map_err(fail(location, operation))
}

/// Reads every row with `read`.
fn decode<T>(
    rows: &[Row],
    location: &str,
    operation: &'static str,
    read: impl Fn(&Row) -> Result<T, Decode>,
) -> Result<Vec<T>, StoreError> {
    rows.iter()
        .map(|row| read(row).map_err(invalid(location, operation)))
        .collect()
}

/// Fails with [`StoreError::JobNotFound`] unless the job is recorded; with `lock`, also locks
/// its row until the transaction ends, so that writers of one job take turns.
async fn ensure_job(
    statements: &mut Statements,
    client: &impl GenericClient,
    location: &str,
    job: JobId,
    lock: bool,
) -> Result<(), StoreError> {
    let sql = if lock {
        "SELECT 1 FROM jobs WHERE id = $1 FOR UPDATE"
    } else {
        "SELECT 1 FROM jobs WHERE id = $1"
    };
    let rows = query(
        statements,
        client,
        location,
        "look up a job",
        sql,
        &[&job.to_string()],
    )
    .await?;
    if rows.is_empty() {
        Err(job_not_found(job))
    } else {
        Ok(())
    }
}

/// Item counts by status: of one job, or (with `None`) of every job.
async fn counts(
    statements: &mut Statements,
    client: &impl GenericClient,
    location: &str,
    job: Option<JobId>,
) -> Result<HashMap<JobId, ItemCounts>, StoreError> {
    let operation = "count a job's items";
    let rows =
        match job {
            Some(job) => query(
                statements,
                client,
                location,
                operation,
                "SELECT j.id, i.status, count(*) FROM items i JOIN jobs j ON j.job_ref = i.job_ref
                 WHERE j.id = $1 GROUP BY j.id, i.status",
                &[&job.to_string()],
            )
            .await?,
            None => query(
                statements,
                client,
                location,
                operation,
                "SELECT j.id, i.status, count(*) FROM items i JOIN jobs j ON j.job_ref = i.job_ref
                 GROUP BY j.id, i.status",
                &[],
            )
            .await?,
        };
    let rows = decode(&rows, location, operation, |row| {
        Ok((
            text::<JobId>(row, 0)?,
            text::<ItemStatus>(row, 1)?,
            unsigned(row, 2)?,
        ))
    })?;
    let mut counts: HashMap<JobId, ItemCounts> = HashMap::new();
    for (job, status, n) in rows {
        counts.entry(job).or_default().set(status, n);
    }
    Ok(counts)
}

/// One job with its counts; `None` when it is not recorded.
async fn read_job(
    statements: &mut Statements,
    client: &impl GenericClient,
    location: &str,
    job: JobId,
) -> Result<Option<JobRecord>, StoreError> {
    let sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1");
    let rows = query(
        statements,
        client,
        location,
        "read a job",
        &sql,
        &[&job.to_string()],
    )
    .await?;
    let Some(mut record) = decode(&rows, location, "read a job", job_from_row)?
        .into_iter()
        .next()
    else {
        return Ok(None);
    };
    record.counts = counts(statements, client, location, Some(job))
        .await?
        .remove(&job)
        .unwrap_or_default();
    Ok(Some(record))
}

/// Inserts `items` with indices from `first_index`, a chunk of them per statement. The first
/// item whose key the job already has (or an earlier item has) is
/// [`StoreError::DuplicateItemKey`], as SQLite reports it.
async fn insert_items(
    statements: &mut Statements,
    client: &impl GenericClient,
    location: &str,
    job: JobId,
    first_index: u64,
    items: &[NewItem],
) -> Result<(), StoreError> {
    let duplicate = |offset: usize| StoreError::DuplicateItemKey {
        job,
        index: first_index + offset as u64,
        key: items[offset].key.clone(),
    };
    // A key repeated within `items`: only what comes before it can be inserted.
    let mut seen = HashSet::new();
    let repeat = items
        .iter()
        .position(|item| !seen.insert(item.key.as_str()));
    let insertable = &items[..repeat.unwrap_or(items.len())];
    let id = job.to_string();
    let operation = "record the job's items";
    for (chunk_number, chunk) in insertable.chunks(ITEM_CHUNK).enumerate() {
        let start = chunk_number * ITEM_CHUNK;
        let indices: Vec<i64> = (0..chunk.len())
            .map(|offset| int(first_index + (start + offset) as u64))
            .collect();
        let keys: Vec<&str> = chunk.iter().map(|item| item.key.as_str()).collect();
        let values: Vec<&str> = chunk.iter().map(|item| item.value.as_str()).collect();
        let inserted = execute(
            statements,
            client,
            location,
            operation,
            "INSERT INTO items (job_ref, idx, key, value, status)
             SELECT (SELECT job_ref FROM jobs WHERE id = $1), u.idx, u.key, u.value, 'pending'
             FROM unnest($2::bigint[], $3::text[], $4::text[]) AS u (idx, key, value)
             ON CONFLICT (job_ref, key) DO NOTHING",
            &[&id, &indices, &keys, &values],
        )
        .await?;
        if inserted as usize != chunk.len() {
            // Some key was recorded before: find the first item whose row is not its own.
            let rows = query(
                statements,
                client,
                location,
                operation,
                "SELECT min(u.ord) FROM unnest($2::text[], $3::bigint[]) WITH ORDINALITY
                        AS u (key, idx, ord)
                 JOIN items i ON i.job_ref = (SELECT job_ref FROM jobs WHERE id = $1) AND i.key = u.key AND i.idx <> u.idx",
                &[&id, &keys, &indices],
            )
            .await?;
            let ordinal: Option<i64> = rows.first().and_then(|row| row.get(0));
            let offset = ordinal.map_or(0, |ord| (ord - 1) as usize);
            return Err(duplicate(start + offset));
        }
    }
    match repeat {
        Some(offset) => Err(duplicate(offset)),
        None => Ok(()),
    }
}

/// What a DLQ command does with the items it selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DlqMove {
    /// Back to `pending` with a fresh retry budget.
    Retry,
    /// To `skipped`, given up on.
    Purge,
}

/// Appends an event inside a write transaction.
async fn insert_event(
    statements: &mut Statements,
    client: &impl GenericClient,
    location: &str,
    event: (JobId, i64, &str, Option<&str>, &serde_json::Value),
) -> Result<(), StoreError> {
    let (job, at, kind, item_key, payload) = event;
    // The job's row lock first, held to the commit: events of one job then commit in the order
    // of their sequence numbers, so a follower reading `seq > last` never skips one committed
    // late (a batch of the writer takes the same lock first, see `plan`).
    query(
        statements,
        client,
        location,
        "lock a job",
        "SELECT 1 FROM jobs WHERE id = $1 FOR NO KEY UPDATE",
        &[&job.to_string()],
    )
    .await?;
    execute(
        statements,
        client,
        location,
        "record an event",
        "INSERT INTO events (job_ref, at, kind, item_key, payload)
         VALUES ((SELECT job_ref FROM jobs WHERE id = $1), $2::bigint, $3::text, $4::text, $5::jsonb)",
        &[&job.to_string(), &at, &kind, &item_key, payload],
    )
    .await?;
    Ok(())
}

/// Raises the job's `updated_at` to `at`.
async fn touch_job(
    statements: &mut Statements,
    client: &impl GenericClient,
    location: &str,
    job: JobId,
    at: i64,
) -> Result<(), StoreError> {
    execute(
        statements,
        client,
        location,
        "update a job",
        "UPDATE jobs SET updated_at = GREATEST(updated_at, $2::bigint) WHERE id = $1",
        &[&job.to_string(), &at],
    )
    .await?;
    Ok(())
}

/// Sets the job's status if it is `from` (and `finished_at` as `to` implies); false when the
/// job's status is not `from`.
async fn set_job_status(
    statements: &mut Statements,
    client: &impl GenericClient,
    location: &str,
    job: JobId,
    (from, to): (JobStatus, JobStatus),
    at: i64,
) -> Result<bool, StoreError> {
    let changed = execute(
        statements,
        client,
        location,
        "record a job status",
        "UPDATE jobs
         SET status = $3::text,
             finished_at = CASE WHEN $4::boolean THEN COALESCE(finished_at, $5::bigint)
                                ELSE NULL END
         WHERE id = $1 AND status = $2::text",
        &[
            &job.to_string(),
            &from.as_str(),
            &to.as_str(),
            &to.is_finished(),
            &at,
        ],
    )
    .await?;
    Ok(changed > 0)
}

/// The items named by `keys` (repeats ignored), in input order; every one must exist and be
/// dead-lettered.
async fn named_dead_letters(
    statements: &mut Statements,
    client: &impl GenericClient,
    location: &str,
    job: JobId,
    keys: &[String],
) -> Result<Vec<ItemRecord>, StoreError> {
    let sql = format!(
        "SELECT {ITEM_COLUMNS} FROM items
           WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = $1) AND key = $2::text"
    );
    let (mut found, mut unknown, mut not_dead) = (Vec::new(), Vec::new(), Vec::new());
    let mut seen = HashSet::new();
    for key in keys.iter().filter(|key| seen.insert(key.as_str())) {
        let rows = query(
            statements,
            client,
            location,
            "read an item",
            &sql,
            &[&job.to_string(), key],
        )
        .await?;
        let item = decode(&rows, location, "read an item", item_from_row)?
            .into_iter()
            .next();
        match item {
            None => unknown.push(key.clone()),
            Some(item) if item.status != ItemStatus::DeadLettered => {
                not_dead.push((item.key, item.status));
            }
            Some(item) => found.push(item),
        }
    }
    if !unknown.is_empty() {
        return Err(StoreError::UnknownItems { job, keys: unknown });
    }
    if !not_dead.is_empty() {
        return Err(StoreError::NotDeadLettered {
            job,
            items: not_dead,
        });
    }
    found.sort_by_key(|item| item.index);
    Ok(found)
}

impl PostgresStore {
    /// Runs a snapshot query taking (job, after, limit).
    fn read_snapshots(
        &self,
        job: JobId,
        operation: &'static str,
        sql: &'static str,
        after: i64,
        limit: usize,
    ) -> Result<Vec<SnapshotRecord>, StoreError> {
        self.call(move |mut guard| async move {
            let Session {
                client,
                statements,
                location,
            } = &mut *guard;
            let location: &str = location;
            let tx = begin_read(client, location).await?;
            ensure_job(statements, &tx, location, job, false).await?;
            let rows = query(
                statements,
                &tx,
                location,
                operation,
                sql,
                &[&job.to_string(), &after, &int(limit as u64)],
            )
            .await?;
            let snapshots = decode(&rows, location, operation, snapshot_from_row)?;
            tx.commit()
                .await
                .map_err(fail(location, "end a read transaction"))?;
            Ok(snapshots)
        })
    }

    /// Selects dead-lettered items (all, or those named by `keys`) and moves them as `how`
    /// says, with their events and the job status they imply, in one transaction.
    fn move_dead_lettered(
        &self,
        job: JobId,
        keys: Option<&[String]>,
        at: i64,
        how: DlqMove,
    ) -> Result<DlqChange, StoreError> {
        let keys = keys.map(<[String]>::to_vec);
        self.call(move |mut guard| async move {
            let Session {
                client,
                statements,
                location,
            } = &mut *guard;
            let location: &str = location;
            let tx = begin_write(client, location).await?;
            let id = job.to_string();
            let rows = query(
                statements,
                &tx,
                location,
                "read a job",
                "SELECT status FROM jobs WHERE id = $1 FOR UPDATE",
                &[&id],
            )
            .await?;
            let status_before = decode(&rows, location, "read a job", |row| {
                text::<JobStatus>(row, 0)
            })?
            .into_iter()
            .next()
            .ok_or_else(|| job_not_found(job))?;
            let selected = match &keys {
                None => {
                    let sql = format!(
                        "SELECT {ITEM_COLUMNS} FROM items
                         WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = $1)
                           AND status = $2::text ORDER BY idx"
                    );
                    let operation = "read the dead-lettered items";
                    let rows = query(
                        statements,
                        &tx,
                        location,
                        operation,
                        &sql,
                        &[&id, &ItemStatus::DeadLettered.as_str()],
                    )
                    .await?;
                    decode(&rows, location, operation, item_from_row)?
                }
                Some(keys) => named_dead_letters(statements, &tx, location, job, keys).await?,
            };

            let (kind, to) = match how {
                DlqMove::Retry => ("dlq_retry", ItemStatus::Pending),
                DlqMove::Purge => ("dlq_purged", ItemStatus::Skipped),
            };
            for item in &selected {
                execute(
                    statements,
                    &tx,
                    location,
                    "move an item out of the dead-letter queue",
                    "UPDATE items
                     SET status = $3::text,
                         attempts = CASE WHEN $4::boolean THEN 0 ELSE attempts END
                     WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = $1) AND idx = $2::bigint",
                    &[
                        &id,
                        &int(item.index),
                        &to.as_str(),
                        &(how == DlqMove::Retry),
                    ],
                )
                .await?;
                let payload = serde_json::json!({ "attempts": item.attempts, "status": to });
                insert_event(
                    statements,
                    &tx,
                    location,
                    (job, at, kind, Some(&item.key), &payload),
                )
                .await?;
            }

            let counts = counts(statements, &tx, location, Some(job))
                .await?
                .remove(&job)
                .unwrap_or_default();
            let unfinished = counts.pending + counts.running + counts.failed;
            let status_after = match how {
                _ if selected.is_empty() => status_before,
                DlqMove::Retry if status_before.is_finished() => JobStatus::Interrupted,
                DlqMove::Purge
                    if status_before == JobStatus::CompletedWithFailures
                        && counts.dead_lettered == 0
                        && unfinished == 0 =>
                {
                    JobStatus::Completed
                }
                _ => status_before,
            };
            if status_after != status_before {
                let change = (status_before, status_after);
                set_job_status(statements, &tx, location, job, change, at).await?;
                let payload = serde_json::json!({
                    "from": status_before,
                    "to": status_after,
                    "by": kind,
                });
                let event = (job, at, "job_status_changed", None, &payload);
                insert_event(statements, &tx, location, event).await?;
            }
            if !selected.is_empty() {
                touch_job(statements, &tx, location, job, at).await?;
            }
            tx.commit()
                .await
                .map_err(fail(location, "commit a dead-letter queue change"))?;
            Ok(DlqChange {
                items: selected.into_iter().map(|item| item.key).collect(),
                status_before,
                status_after,
            })
        })
    }
}

impl JobLog for PostgresStore {
    fn create_job(&self, job: &NewJob, items: &[NewItem]) -> Result<(), StoreError> {
        let job = job.clone();
        let items = items.to_vec();
        self.call(move |mut guard| async move {
            let Session {
                client,
                statements,
                location,
            } = &mut *guard;
            let location: &str = location;
            let tx = begin_write(client, location).await?;
            let source = job
                .source
                .as_ref()
                .map(|path| path.to_string_lossy().into_owned());
            let inserted = execute(
                statements,
                &tx,
                location,
                "record a new job",
                "INSERT INTO jobs (id, name, status, spec, spec_hash, source, max_parallel,
                                   created_at, updated_at, owner_pid, owner_host, origin)
                 VALUES ($1, $2::text, $3::text, $4::text, $5::text, $6::text, $7::bigint,
                         $8::bigint, $8::bigint, $9::bigint, $10::text, $11::text)
                 ON CONFLICT (id) DO NOTHING",
                &[
                    &job.id.to_string(),
                    &job.name,
                    &JobStatus::Pending.as_str(),
                    &job.spec,
                    &job.spec_hash,
                    &source,
                    &i64::from(job.max_parallel),
                    &job.created_at,
                    &i64::from(job.owner_pid),
                    &job.owner_host,
                    &job.origin,
                ],
            )
            .await?;
            if inserted == 0 {
                return Err(StoreError::JobExists { job: job.id });
            }
            insert_items(statements, &tx, location, job.id, 0, &items).await?;
            tx.commit()
                .await
                .map_err(fail(location, "commit a new job"))
        })
    }

    fn add_items(&self, job: JobId, items: &[NewItem]) -> Result<(), StoreError> {
        let items = items.to_vec();
        self.call(move |mut guard| async move {
            let Session {
                client,
                statements,
                location,
            } = &mut *guard;
            let location: &str = location;
            let tx = begin_write(client, location).await?;
            ensure_job(statements, &tx, location, job, true).await?;
            let rows = query(
                statements,
                &tx,
                location,
                "find the job's last item",
                "SELECT COALESCE(MAX(idx) + 1, 0) FROM items
                   WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = $1)",
                &[&job.to_string()],
            )
            .await?;
            let next = decode(&rows, location, "find the job's last item", |row| {
                unsigned(row, 0)
            })?
            .into_iter()
            .next()
            .unwrap_or(0);
            insert_items(statements, &tx, location, job, next, &items).await?;
            tx.commit()
                .await
                .map_err(fail(location, "commit the job's items"))
        })
    }

    fn apply(&self, writes: &[Write]) -> Result<(), StoreError> {
        if writes.is_empty() {
            return Ok(());
        }
        let planned = plan(writes);
        self.call(move |mut guard| async move {
            let Session {
                client,
                statements,
                location,
            } = &mut *guard;
            let location: &str = location;
            let tx = begin_write(client, location).await?;
            let mut prepared = Vec::with_capacity(planned.len());
            for step in &planned {
                let statement = statements
                    .get(&tx, step.sql)
                    .await
                    .map_err(fail(location, step.operation))?;
                prepared.push(statement);
            }
            let params: Vec<Vec<&(dyn ToSql + Sync)>> = planned
                .iter()
                .map(|step| {
                    step.params
                        .iter()
                        .map(|param| param.as_ref() as &(dyn ToSql + Sync))
                        .collect()
                })
                .collect();
            let results = in_order(
                prepared
                    .iter()
                    .zip(&params)
                    .map(|(statement, params)| tx.execute(statement, params))
                    .collect(),
            )
            .await;
            for (step, result) in planned.iter().zip(results) {
                let changed = result.map_err(fail(location, step.operation))?;
                if changed == 0
                    && let Some(error) = step.missing.error()
                {
                    return Err(error);
                }
            }
            tx.commit()
                .await
                .map_err(fail(location, "commit a batch of writes"))
        })
    }
}

impl JobReads for PostgresStore {
    fn job(&self, id: JobId) -> Result<JobRecord, StoreError> {
        self.call(move |mut guard| async move {
            let Session {
                client,
                statements,
                location,
            } = &mut *guard;
            let location: &str = location;
            let tx = begin_read(client, location).await?;
            let job = read_job(statements, &tx, location, id).await?;
            tx.commit()
                .await
                .map_err(fail(location, "end a read transaction"))?;
            job.ok_or_else(|| job_not_found(id))
        })
    }

    fn jobs(&self) -> Result<Vec<JobRecord>, StoreError> {
        self.call(move |mut guard| async move {
            let Session {
                client,
                statements,
                location,
            } = &mut *guard;
            let location: &str = location;
            let tx = begin_read(client, location).await?;
            let sql = format!("SELECT {JOB_COLUMNS} FROM jobs ORDER BY id DESC");
            let rows = query(statements, &tx, location, "list the jobs", &sql, &[]).await?;
            let mut jobs = decode(&rows, location, "list the jobs", job_from_row)?;
            let mut counts = counts(statements, &tx, location, None).await?;
            tx.commit()
                .await
                .map_err(fail(location, "end a read transaction"))?;
            for job in &mut jobs {
                job.counts = counts.remove(&job.id).unwrap_or_default();
            }
            Ok(jobs)
        })
    }

    fn resolve_job(&self, prefix: &str) -> Result<JobId, StoreError> {
        // Hyphens are allowed so that a UUID pasted in its usual form is found too.
        let hex: String = prefix
            .chars()
            .filter(|c| *c != '-')
            .collect::<String>()
            .to_ascii_lowercase();
        if hex.is_empty() || hex.len() > 32 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(StoreError::InvalidJobId {
                prefix: prefix.to_string(),
            });
        }
        let ids = self.call(move |mut guard| async move {
            let Session {
                client,
                statements,
                location,
            } = &mut *guard;
            let location: &str = location;
            // `hex` holds only hex digits, so it has no LIKE wildcards of its own.
            let pattern = format!("{hex}%");
            let operation = "look up a job id";
            let rows = query(
                statements,
                &*client,
                location,
                operation,
                "SELECT id FROM jobs WHERE id LIKE $1::text ORDER BY id DESC",
                &[&pattern],
            )
            .await?;
            decode(&rows, location, operation, |row| text::<JobId>(row, 0))
        })?;
        match ids.as_slice() {
            [] => Err(StoreError::JobNotFound {
                job: prefix.to_string(),
            }),
            [id] => Ok(*id),
            _ => Err(StoreError::AmbiguousJob {
                prefix: prefix.to_string(),
                matches: ids.iter().map(JobId::to_string).collect(),
            }),
        }
    }

    fn items(&self, job: JobId, status: Option<ItemStatus>) -> Result<Vec<ItemRecord>, StoreError> {
        self.call(move |mut guard| async move {
            let Session {
                client,
                statements,
                location,
            } = &mut *guard;
            let location: &str = location;
            let tx = begin_read(client, location).await?;
            ensure_job(statements, &tx, location, job, false).await?;
            let operation = "read a job's items";
            let id = job.to_string();
            let rows = match status {
                None => {
                    let sql =
                        format!("SELECT {ITEM_COLUMNS} FROM items
                                   WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = $1) ORDER BY idx");
                    query(statements, &tx, location, operation, &sql, &[&id]).await?
                }
                Some(status) => {
                    let sql = format!(
                        "SELECT {ITEM_COLUMNS} FROM items
                         WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = $1)
                           AND status = $2::text ORDER BY idx"
                    );
                    let params: [&(dyn ToSql + Sync); 2] = [&id, &status.as_str()];
                    query(statements, &tx, location, operation, &sql, &params).await?
                }
            };
            let items = decode(&rows, location, operation, item_from_row)?;
            tx.commit()
                .await
                .map_err(fail(location, "end a read transaction"))?;
            Ok(items)
        })
    }

    fn item(&self, job: JobId, key: &str) -> Result<Option<ItemRecord>, StoreError> {
        let key = key.to_string();
        self.call(move |mut guard| async move {
            let Session {
                client,
                statements,
                location,
            } = &mut *guard;
            let location: &str = location;
            let tx = begin_read(client, location).await?;
            ensure_job(statements, &tx, location, job, false).await?;
            let sql = format!(
                "SELECT {ITEM_COLUMNS} FROM items
                           WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = $1)
                             AND key = $2::text"
            );
            let rows = query(
                statements,
                &tx,
                location,
                "read an item",
                &sql,
                &[&job.to_string(), &key],
            )
            .await?;
            let item = decode(&rows, location, "read an item", item_from_row)?
                .into_iter()
                .next();
            tx.commit()
                .await
                .map_err(fail(location, "end a read transaction"))?;
            Ok(item)
        })
    }

    fn item_keys(&self, job: JobId) -> Result<Vec<String>, StoreError> {
        self.call(move |mut guard| async move {
            let Session {
                client,
                statements,
                location,
            } = &mut *guard;
            let location: &str = location;
            let tx = begin_read(client, location).await?;
            ensure_job(statements, &tx, location, job, false).await?;
            let operation = "read the item keys";
            let rows = query(
                statements,
                &tx,
                location,
                operation,
                "SELECT key FROM items
                   WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = $1) ORDER BY idx",
                &[&job.to_string()],
            )
            .await?;
            let keys = decode(&rows, location, operation, |row| Ok(row.try_get(0)?))?;
            tx.commit()
                .await
                .map_err(fail(location, "end a read transaction"))?;
            Ok(keys)
        })
    }

    fn attempts(
        &self,
        job: JobId,
        item_key: Option<&str>,
    ) -> Result<Vec<AttemptRecord>, StoreError> {
        let item_key = item_key.map(str::to_string);
        self.call(move |mut guard| async move {
            let Session {
                client,
                statements,
                location,
            } = &mut *guard;
            let location: &str = location;
            let tx = begin_read(client, location).await?;
            ensure_job(statements, &tx, location, job, false).await?;
            let operation = "read a job's attempts";
            let sql = format!(
                "SELECT {ATTEMPT_COLUMNS} FROM attempts a
                 JOIN items i ON i.job_ref = a.job_ref AND i.idx = a.item_idx
                 WHERE a.job_ref = (SELECT job_ref FROM jobs WHERE id = $1)
                   AND ($2::text IS NULL OR i.key = $2::text)
                 ORDER BY a.item_idx, a.number"
            );
            let rows = query(
                statements,
                &tx,
                location,
                operation,
                &sql,
                &[&job.to_string(), &item_key],
            )
            .await?;
            let attempts = decode(&rows, location, operation, attempt_from_row)?;
            tx.commit()
                .await
                .map_err(fail(location, "end a read transaction"))?;
            Ok(attempts)
        })
    }

    fn items_page(&self, job: JobId, page: &ItemPageQuery) -> Result<ItemPage, StoreError> {
        let status = page.status.map(|s| s.as_str().to_string());
        let limit = i64::try_from(page.limit).unwrap_or(i64::MAX);
        let offset = i64::try_from(page.offset).unwrap_or(i64::MAX);
        self.call(move |mut guard| async move {
            let Session {
                client,
                statements,
                location,
            } = &mut *guard;
            let location: &str = location;
            let tx = begin_read(client, location).await?;
            ensure_job(statements, &tx, location, job, false).await?;
            let id = job.to_string();
            // Two spellings rather than `($2 IS NULL OR status = $2)`, so that each gets a
            // plan on its own index ((job_ref, idx) and (job_ref, status)).
            let filter = if status.is_some() {
                "i.job_ref = (SELECT job_ref FROM jobs WHERE id = $1) AND i.status = $2::text"
            } else {
                "i.job_ref = (SELECT job_ref FROM jobs WHERE id = $1) AND $2::text IS NULL"
            };
            let operation = "count a job's items";
            let sql = format!("SELECT count(*) FROM items i WHERE {filter}");
            let rows = query(statements, &tx, location, operation, &sql, &[&id, &status]).await?;
            let total = decode(&rows, location, operation, |row| unsigned(row, 0))?
                .first()
                .copied()
                .unwrap_or(0);
            // The last attempt is the one with the highest number (they keep increasing
            // across retries and resumes); the (job_ref, item_idx, number) key finds it.
            let operation = "read a page of a job's items";
            let sql = format!(
                "SELECT i.idx, i.key, i.value, i.status, i.attempts,
                        a.number, a.agent, a.started_at, a.ended_at, a.duration_us, a.outcome,
                        a.exit_code, a.error, a.steps, a.stdout_tail, a.stderr_tail
                 FROM items i
                 LEFT JOIN LATERAL (
                     SELECT * FROM attempts m
                     WHERE m.job_ref = i.job_ref AND m.item_idx = i.idx
                     ORDER BY m.number DESC LIMIT 1
                 ) a ON true
                 WHERE {filter}
                 ORDER BY i.idx LIMIT $3 OFFSET $4"
            );
            let rows = query(
                statements,
                &tx,
                location,
                operation,
                &sql,
                &[&id, &status, &limit, &offset],
            )
            .await?;
            let items = decode(&rows, location, operation, paged_item_from_row)?;
            tx.commit()
                .await
                .map_err(fail(location, "end a read transaction"))?;
            Ok(ItemPage { total, items })
        })
    }

    fn checkpoints(&self, job: JobId) -> Result<Vec<CheckpointRecord>, StoreError> {
        self.call(move |mut guard| async move {
            let Session {
                client,
                statements,
                location,
            } = &mut *guard;
            let location: &str = location;
            let tx = begin_read(client, location).await?;
            ensure_job(statements, &tx, location, job, false).await?;
            let operation = "read the checkpoints";
            let rows = query(
                statements,
                &tx,
                location,
                operation,
                "SELECT id, at, phase, reason, completed, dead_lettered, skipped
                 FROM checkpoints WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = $1) ORDER BY id",
                &[&job.to_string()],
            )
            .await?;
            let checkpoints = decode(&rows, location, operation, |row| {
                Ok(CheckpointRecord {
                    id: row.try_get(0)?,
                    at: row.try_get(1)?,
                    phase: optional_text(row, 2)?,
                    reason: row.try_get(3)?,
                    completed: unsigned(row, 4)?,
                    dead_lettered: unsigned(row, 5)?,
                    skipped: unsigned(row, 6)?,
                })
            })?;
            tx.commit()
                .await
                .map_err(fail(location, "end a read transaction"))?;
            Ok(checkpoints)
        })
    }

    fn ledger(&self, job: JobId) -> Result<Ledger, StoreError> {
        self.call(move |mut guard| async move {
            let Session {
                client,
                statements,
                location,
            } = &mut *guard;
            let location: &str = location;
            let tx = begin_read(client, location).await?;
            ensure_job(statements, &tx, location, job, false).await?;
            let id = job.to_string();
            let operation = "read the resume ledger";
            let rows = query(
                statements,
                &tx,
                location,
                operation,
                "SELECT seq, at, kind, item_key, payload FROM events
                 WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = $1)
                   AND kind IN ('job_resumed', 'input_changed', 'spec_changed', 'spec_from_store')
                 ORDER BY seq",
                &[&id],
            )
            .await?;
            let entries = decode(&rows, location, operation, |row| event_from_row(row, job))?;
            let operation = "count the requeued items";
            let rows = query(
                statements,
                &tx,
                location,
                operation,
                "SELECT CASE kind WHEN 'dlq_retry' THEN 'dlq_retry'
                                  ELSE COALESCE(payload ->> 'reason', 'unknown') END,
                        count(*)
                 FROM events WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = $1)
                   AND kind IN ('item_requeued', 'dlq_retry')
                 GROUP BY 1",
                &[&id],
            )
            .await?;
            let mut requeued: Vec<(String, u64)> = decode(&rows, location, operation, |row| {
                Ok((row.try_get(0)?, unsigned(row, 1)?))
            })?;
            // Byte order, as SQLite sorts, whatever the database's collation.
            requeued.sort();
            tx.commit()
                .await
                .map_err(fail(location, "end a read transaction"))?;
            Ok(Ledger { entries, requeued })
        })
    }
}

impl EventReads for PostgresStore {
    fn events(&self, job: JobId, after: i64, limit: usize) -> Result<Vec<EventRecord>, StoreError> {
        self.call(move |mut guard| async move {
            let Session {
                client,
                statements,
                location,
            } = &mut *guard;
            let location: &str = location;
            let tx = begin_read(client, location).await?;
            ensure_job(statements, &tx, location, job, false).await?;
            let operation = "read a job's events";
            let rows = query(
                statements,
                &tx,
                location,
                operation,
                "SELECT seq, at, kind, item_key, payload FROM events
                 WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = $1) AND seq > $2::bigint
                 ORDER BY seq
                 LIMIT $3::bigint",
                &[&job.to_string(), &after, &int(limit as u64)],
            )
            .await?;
            let events = decode(&rows, location, operation, |row| event_from_row(row, job))?;
            tx.commit()
                .await
                .map_err(fail(location, "end a read transaction"))?;
            Ok(events)
        })
    }

    fn recent_events(&self, job: JobId, limit: usize) -> Result<Vec<EventRecord>, StoreError> {
        self.call(move |mut guard| async move {
            let Session {
                client,
                statements,
                location,
            } = &mut *guard;
            let location: &str = location;
            let tx = begin_read(client, location).await?;
            ensure_job(statements, &tx, location, job, false).await?;
            let operation = "read a job's recent events";
            let rows = query(
                statements,
                &tx,
                location,
                operation,
                "SELECT seq, at, kind, item_key, payload FROM events
                 WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = $1)
                 ORDER BY seq DESC
                 LIMIT $2::bigint",
                &[&job.to_string(), &int(limit as u64)],
            )
            .await?;
            let mut events = decode(&rows, location, operation, |row| event_from_row(row, job))?;
            tx.commit()
                .await
                .map_err(fail(location, "end a read transaction"))?;
            events.reverse();
            Ok(events)
        })
    }

    fn snapshots(
        &self,
        job: JobId,
        after: i64,
        limit: usize,
    ) -> Result<Vec<SnapshotRecord>, StoreError> {
        self.read_snapshots(
            job,
            "read a job's snapshots",
            "SELECT at, payload FROM snapshots
             WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = $1) AND at > $2::bigint
             ORDER BY at
             LIMIT $3::bigint",
            after,
            limit,
        )
    }

    fn latest_snapshot(&self, job: JobId) -> Result<Option<SnapshotRecord>, StoreError> {
        let newest = self.read_snapshots(
            job,
            "read a job's latest snapshot",
            "SELECT at, payload FROM snapshots
             WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = $1) AND at > $2::bigint
             ORDER BY at DESC
             LIMIT $3::bigint",
            i64::MIN,
            1,
        )?;
        Ok(newest.into_iter().next())
    }

    fn wait_for_events(&self, job: JobId, timeout: Duration) {
        let mut slot = self.listener.lock().unwrap_or_else(PoisonError::into_inner);
        if slot.is_none() {
            match self.listen() {
                Ok(listener) => *slot = Some(listener),
                // No listening connection: poll, as on SQLite.
                Err(_) => {
                    drop(slot);
                    std::thread::sleep(timeout);
                    return;
                }
            }
        }
        let Some(listener) = slot.as_mut() else {
            return;
        };
        let wanted = format!("{} {job}", self.schema);
        // Kept between calls, the receiver holds what came while the caller was reading: a
        // notification is never missed between a read and the next wait.
        let mut notifications = listener.notifications.resubscribe();
        std::mem::swap(&mut notifications, &mut listener.notifications);
        let (back, returned) = std::sync::mpsc::sync_channel(1);
        let waited = self.worker.run(async move {
            let deadline = tokio::time::Instant::now() + timeout;
            loop {
                use tokio::sync::broadcast::error::RecvError;
                match tokio::time::timeout_at(deadline, notifications.recv()).await {
                    Ok(Ok(payload)) if payload != wanted => continue,
                    // Ours, or too many to tell (lagged): read again.
                    Ok(Ok(_)) | Ok(Err(RecvError::Lagged(_))) | Err(_) => break,
                    Ok(Err(RecvError::Closed)) => {
                        tokio::time::sleep_until(deadline).await;
                        break;
                    }
                }
            }
            let _ = back.send(notifications);
            Ok(())
        });
        match (waited, returned.try_recv()) {
            (Ok(()), Ok(notifications)) => listener.notifications = notifications,
            // The listening connection broke: open another next time.
            _ => *slot = None,
        }
    }

    fn wakes_on_events(&self) -> bool {
        true
    }
}

impl DeadLetters for PostgresStore {
    fn dead_letters(&self, job: JobId) -> Result<Vec<DeadLetter>, StoreError> {
        self.call(move |mut guard| async move {
            let Session {
                client,
                statements,
                location,
            } = &mut *guard;
            let location: &str = location;
            let tx = begin_read(client, location).await?;
            ensure_job(statements, &tx, location, job, false).await?;
            let id = job.to_string();
            let dead = ItemStatus::DeadLettered.as_str();
            let operation = "read the dead-lettered items";
            let sql = format!(
                "SELECT {ITEM_COLUMNS} FROM items
                   WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = $1) AND status = $2::text
                 ORDER BY idx"
            );
            let rows = query(statements, &tx, location, operation, &sql, &[&id, &dead]).await?;
            let items = decode(&rows, location, operation, item_from_row)?;
            let operation = "read the dead-lettered items' attempts";
            let sql = format!(
                "SELECT {ATTEMPT_COLUMNS} FROM attempts a
                 JOIN items i ON i.job_ref = a.job_ref AND i.idx = a.item_idx
                 WHERE a.job_ref = (SELECT job_ref FROM jobs WHERE id = $1) AND i.status = $2::text
                 ORDER BY a.item_idx, a.number"
            );
            let rows = query(statements, &tx, location, operation, &sql, &[&id, &dead]).await?;
            let attempts = decode(&rows, location, operation, attempt_from_row)?;
            tx.commit()
                .await
                .map_err(fail(location, "end a read transaction"))?;
            let mut by_item: HashMap<u64, Vec<AttemptRecord>> = HashMap::new();
            for attempt in attempts {
                by_item.entry(attempt.item_index).or_default().push(attempt);
            }
            Ok(items
                .into_iter()
                .map(|item| DeadLetter {
                    attempts: by_item.remove(&item.index).unwrap_or_default(),
                    item,
                })
                .collect())
        })
    }

    fn retry_dead_lettered(
        &self,
        job: JobId,
        keys: Option<&[String]>,
        at: i64,
    ) -> Result<DlqChange, StoreError> {
        self.move_dead_lettered(job, keys, at, DlqMove::Retry)
    }

    fn purge_dead_lettered(
        &self,
        job: JobId,
        keys: Option<&[String]>,
        at: i64,
    ) -> Result<DlqChange, StoreError> {
        self.move_dead_lettered(job, keys, at, DlqMove::Purge)
    }
}

impl Claims for PostgresStore {
    fn claim_items(
        &self,
        job: JobId,
        claimer: &str,
        limit: usize,
        lease_until: i64,
        at: i64,
    ) -> Result<Vec<ClaimedItem>, StoreError> {
        let claimer = claimer.to_string();
        self.call(move |mut guard| async move {
            let Session {
                client,
                statements,
                location,
            } = &mut *guard;
            let location: &str = location;
            let id = job.to_string();
            let tx = begin_write(client, location).await?;
            let rows = query(
                statements,
                &tx,
                location,
                "read a job's status",
                // Locked first, as every writer of the job does: the claim may record events.
                "SELECT status = 'running' AND phase IS NOT DISTINCT FROM 'map'
                 FROM jobs WHERE id = $1 FOR NO KEY UPDATE",
                &[&id],
            )
            .await?;
            let Some(row) = rows.first() else {
                return Err(job_not_found(job));
            };
            let open: bool = row.get(0);
            if !open || limit == 0 {
                tx.commit().await.map_err(fail(location, "end a claim"))?;
                return Ok(Vec::new());
            }
            let operation = "find items to claim";
            // SKIP LOCKED: concurrent claimers pass over each other's rows instead of waiting,
            // and each row is re-checked against the WHERE once locked.
            let rows = query(
                statements,
                &tx,
                location,
                operation,
                "SELECT i.idx, i.key, i.value, i.status, i.attempts, i.claimed_by,
                        (SELECT COALESCE(MAX(a.number), 0) FROM attempts a
                         WHERE a.job_ref = i.job_ref AND a.item_idx = i.idx),
                        i.lease_until IS NOT NULL
                 FROM items i
                 WHERE i.job_ref = (SELECT job_ref FROM jobs WHERE id = $1)
                   AND i.status IN ('pending', 'failed', 'running')
                   AND ((i.lease_until IS NULL AND i.status <> 'running')
                        OR i.lease_until < $2::bigint)
                 ORDER BY i.idx LIMIT $3::bigint
                 FOR UPDATE OF i SKIP LOCKED",
                &[&id, &at, &int(limit as u64)],
            )
            .await?;
            let rows = decode(&rows, location, operation, |row| {
                Ok((
                    unsigned(row, 0)?,
                    row.try_get::<_, String>(1)?,
                    row.try_get::<_, String>(2)?,
                    text::<ItemStatus>(row, 3)?,
                    small(row, 4)?,
                    row.try_get::<_, Option<String>>(5)?,
                    small(row, 6)?,
                    row.try_get::<_, bool>(7)?,
                ))
            })?;
            let mut claimed = Vec::with_capacity(rows.len());
            let mut indices = Vec::with_capacity(rows.len());
            for (index, key, value, status, attempts, holder, last_number, leased) in rows {
                if status == ItemStatus::Running {
                    execute(
                        statements,
                        &tx,
                        location,
                        "close an attempt whose lease ran out",
                        "UPDATE attempts SET outcome = 'interrupted', ended_at = $3::bigint,
                             error = $4::text
                         WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = $1) AND item_idx = $2::bigint AND outcome IS NULL",
                        &[&id, &int(index), &at, &LEASE_EXPIRED_ERROR],
                    )
                    .await?;
                    execute(
                        statements,
                        &tx,
                        location,
                        "requeue an item whose lease ran out",
                        "UPDATE items SET status = 'pending'
                           WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = $1) AND idx = $2::bigint",
                        &[&id, &int(index)],
                    )
                    .await?;
                    let payload = serde_json::json!({
                        "reason": "lease_expired", "claimed_by": holder
                    });
                    let event = (
                        job,
                        at,
                        EventKind::ItemRequeued.as_str(),
                        Some(key.as_str()),
                        &payload,
                    );
                    insert_event(statements, &tx, location, event).await?;
                }
                indices.push(int(index));
                claimed.push(ClaimedItem {
                    index,
                    key,
                    value,
                    attempts,
                    last_number,
                    lease_expired: leased,
                });
            }
            if !indices.is_empty() {
                execute(
                    statements,
                    &tx,
                    location,
                    "claim items",
                    "UPDATE items SET claimed_by = $2::text, lease_until = $3::bigint
                     WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = $1) AND idx = ANY($4::bigint[])",
                    &[&id, &claimer, &lease_until, &indices],
                )
                .await?;
            }
            tx.commit().await.map_err(fail(location, "commit a claim"))?;
            Ok(claimed)
        })
    }

    fn renew_claims(&self, job: JobId, claimer: &str, lease_until: i64) -> Result<u64, StoreError> {
        let claimer = claimer.to_string();
        self.call(move |mut guard| async move {
            let Session {
                client,
                statements,
                location,
            } = &mut *guard;
            let location: &str = location;
            let client: &Client = client;
            execute(
                statements,
                client,
                location,
                "renew a lease",
                "UPDATE items SET lease_until = $3::bigint
                 WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = $1) AND claimed_by = $2::text
                   AND status IN ('pending', 'failed', 'running')",
                &[&job.to_string(), &claimer, &lease_until],
            )
            .await
        })
    }

    fn release_claims(&self, job: JobId, claimer: &str) -> Result<u64, StoreError> {
        let claimer = claimer.to_string();
        self.call(move |mut guard| async move {
            let Session {
                client,
                statements,
                location,
            } = &mut *guard;
            let location: &str = location;
            let client: &Client = client;
            execute(
                statements,
                client,
                location,
                "release claimed items",
                "UPDATE items SET claimed_by = NULL, lease_until = NULL
                 WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = $1) AND claimed_by = $2::text AND status <> 'running'",
                &[&job.to_string(), &claimer],
            )
            .await
        })
    }
}

impl Recovery for PostgresStore {
    fn take_job(&self, job: JobId, expected: &Owner, claim: &Owner) -> Result<bool, StoreError> {
        let expected = expected.clone();
        let claim = claim.clone();
        self.call(move |mut guard| async move {
            let Session {
                client,
                statements,
                location,
            } = &mut *guard;
            let location: &str = location;
            let tx = begin_write(client, location).await?;
            ensure_job(statements, &tx, location, job, false).await?;
            let changed = execute(
                statements,
                &tx,
                location,
                "take over a job",
                "UPDATE jobs
                 SET owner_pid = $5::bigint, owner_host = $6::text, heartbeat_at = $7::bigint,
                     status = 'running', finished_at = NULL,
                     updated_at = GREATEST(updated_at, COALESCE($7::bigint, 0))
                 WHERE id = $1
                   AND owner_pid IS NOT DISTINCT FROM $2::bigint
                   AND owner_host IS NOT DISTINCT FROM $3::text
                   AND heartbeat_at IS NOT DISTINCT FROM $4::bigint",
                &[
                    &job.to_string(),
                    &expected.pid.map(i64::from),
                    &expected.host,
                    &expected.heartbeat_at,
                    &claim.pid.map(i64::from),
                    &claim.host,
                    &claim.heartbeat_at,
                ],
            )
            .await?;
            tx.commit()
                .await
                .map_err(fail(location, "commit a job's new owner"))?;
            Ok(changed == 1)
        })
    }

    fn requeue_in_flight(&self, job: JobId, at: i64) -> Result<Requeued, StoreError> {
        self.call(move |mut guard| async move {
            let Session {
                client,
                statements,
                location,
            } = &mut *guard;
            let location: &str = location;
            let tx = begin_write(client, location).await?;
            ensure_job(statements, &tx, location, job, true).await?;
            let id = job.to_string();
            let operation = "find attempts in flight";
            let rows = query(
                statements,
                &tx,
                location,
                operation,
                "SELECT i.key FROM attempts a
                 JOIN items i ON i.job_ref = a.job_ref AND i.idx = a.item_idx
                 WHERE a.job_ref = (SELECT job_ref FROM jobs WHERE id = $1) AND a.outcome IS NULL
                   AND (i.lease_until IS NULL OR i.lease_until < $2::bigint)
                 ORDER BY a.item_idx",
                &[&id, &at],
            )
            .await?;
            let interrupted = decode(&rows, location, operation, |row| Ok(row.try_get(0)?))?;
            // Items a live worker holds under a lease stay with it (scale-out).
            execute(
                statements,
                &tx,
                location,
                "close attempts in flight",
                "UPDATE attempts SET outcome = 'interrupted', ended_at = $2::bigint,
                     error = 'the process running the job stopped during this attempt'
                 WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = $1) AND outcome IS NULL
                   AND item_idx IN (SELECT idx FROM items
                     WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = $1)
                                    AND (lease_until IS NULL OR lease_until < $2::bigint))",
                &[&id, &at],
            )
            .await?;
            execute(
                statements,
                &tx,
                location,
                "requeue running items",
                "UPDATE items SET status = 'pending'
                 WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = $1) AND status = 'running'
                   AND (lease_until IS NULL OR lease_until < $2::bigint)",
                &[&id, &at],
            )
            .await?;
            tx.commit()
                .await
                .map_err(fail(location, "commit the requeue"))?;
            Ok(Requeued { interrupted })
        })
    }

    fn unfinished_items(
        &self,
        job: JobId,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<UnfinishedItem>, StoreError> {
        self.call(move |mut guard| async move {
            let Session {
                client,
                statements,
                location,
            } = &mut *guard;
            let location: &str = location;
            let tx = begin_read(client, location).await?;
            ensure_job(statements, &tx, location, job, false).await?;
            let operation = "read the unfinished items";
            let rows = query(
                statements,
                &tx,
                location,
                operation,
                "SELECT i.idx, i.key, i.value, i.status, i.attempts,
                        (SELECT COALESCE(MAX(a.number), 0) FROM attempts a
                         WHERE a.job_ref = i.job_ref AND a.item_idx = i.idx)
                 FROM items i
                 WHERE i.job_ref = (SELECT job_ref FROM jobs WHERE id = $1) AND i.idx > $2::bigint
                   AND i.status IN ('pending', 'failed', 'running')
                 ORDER BY i.idx LIMIT $3::bigint",
                &[&job.to_string(), &after.map_or(-1, int), &int(limit as u64)],
            )
            .await?;
            let items = decode(&rows, location, operation, |row| {
                Ok(UnfinishedItem {
                    index: unsigned(row, 0)?,
                    key: row.try_get(1)?,
                    value: row.try_get(2)?,
                    status: text(row, 3)?,
                    attempts: small(row, 4)?,
                    last_number: small(row, 5)?,
                })
            })?;
            tx.commit()
                .await
                .map_err(fail(location, "end a read transaction"))?;
            Ok(items)
        })
    }

    fn rewind(&self, job: JobId, checkpoint: i64, at: i64) -> Result<Vec<String>, StoreError> {
        self.call(move |mut guard| async move {
            let Session {
                client,
                statements,
                location,
            } = &mut *guard;
            let location: &str = location;
            let tx = begin_write(client, location).await?;
            ensure_job(statements, &tx, location, job, true).await?;
            let id = job.to_string();
            let rows = query(
                statements,
                &tx,
                location,
                "find the checkpoint",
                "SELECT last_event_seq FROM checkpoints
                   WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = $1) AND id = $2::bigint",
                &[&id, &checkpoint],
            )
            .await?;
            let last_seq: i64 = decode(&rows, location, "find the checkpoint", |row| {
                Ok(row.try_get(0)?)
            })?
            .into_iter()
            .next()
            .ok_or(StoreError::CheckpointNotFound { job, checkpoint })?;
            // Items whose completion (or skip) was recorded after the checkpoint.
            const REWOUND: &str = "SELECT i.idx FROM events e JOIN items i
                                     ON i.job_ref = e.job_ref AND i.key = e.item_key
                                   WHERE e.job_ref = (SELECT job_ref FROM jobs WHERE id = $1)
                                     AND e.seq > $2::bigint
                                     AND e.kind IN ('item_completed', 'item_skipped')
                                     AND i.status IN ('completed', 'skipped')";
            let operation = "find the items to rewind";
            let rows = query(
                statements,
                &tx,
                location,
                operation,
                &format!(
                    "SELECT key FROM items
                       WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = $1)
                         AND idx IN ({REWOUND}) ORDER BY idx"
                ),
                &[&id, &last_seq],
            )
            .await?;
            let keys = decode(&rows, location, operation, |row| Ok(row.try_get(0)?))?;
            execute(
                statements,
                &tx,
                location,
                "mark superseded attempts",
                &format!(
                    "UPDATE attempts SET superseded = TRUE
                     WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = $1)
                       AND outcome = 'succeeded' AND NOT superseded
                       AND item_idx IN ({REWOUND})"
                ),
                &[&id, &last_seq],
            )
            .await?;
            execute(
                statements,
                &tx,
                location,
                "rewind items",
                &format!(
                    "UPDATE items SET status = 'pending', attempts = 0
                     WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = $1)
                       AND idx IN ({REWOUND})"
                ),
                &[&id, &last_seq],
            )
            .await?;
            touch_job(statements, &tx, location, job, at).await?;
            tx.commit()
                .await
                .map_err(fail(location, "commit the rewind"))?;
            Ok(keys)
        })
    }

    fn update_item_values(
        &self,
        job: JobId,
        changes: &[(u64, String)],
        at: i64,
    ) -> Result<Vec<String>, StoreError> {
        let changes = changes.to_vec();
        self.call(move |mut guard| async move {
            let Session {
                client,
                statements,
                location,
            } = &mut *guard;
            let location: &str = location;
            let tx = begin_write(client, location).await?;
            ensure_job(statements, &tx, location, job, true).await?;
            let id = job.to_string();
            let mut requeued = Vec::new();
            for (index, value) in &changes {
                let rows = query(
                    statements,
                    &tx,
                    location,
                    "read an item",
                    "SELECT key, status FROM items
                       WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = $1) AND idx = $2::bigint",
                    &[&id, &int(*index)],
                )
                .await?;
                let (key, status) = decode(&rows, location, "read an item", |row| {
                    Ok((row.try_get::<_, String>(0)?, text::<ItemStatus>(row, 1)?))
                })?
                .into_iter()
                .next()
                .ok_or(StoreError::ItemNotFound { job, index: *index })?;
                let finished = matches!(
                    status,
                    ItemStatus::Completed | ItemStatus::Skipped | ItemStatus::DeadLettered
                );
                execute(
                    statements,
                    &tx,
                    location,
                    "update an item's value",
                    "UPDATE items SET value = $3::text
                       WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = $1) AND idx = $2::bigint",
                    &[&id, &int(*index), value],
                )
                .await?;
                if !finished {
                    continue;
                }
                execute(
                    statements,
                    &tx,
                    location,
                    "mark superseded attempts",
                    "UPDATE attempts SET superseded = TRUE
                     WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = $1) AND item_idx = $2::bigint AND outcome = 'succeeded'",
                    &[&id, &int(*index)],
                )
                .await?;
                execute(
                    statements,
                    &tx,
                    location,
                    "requeue an item",
                    "UPDATE items SET status = 'pending', attempts = 0
                     WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = $1) AND idx = $2::bigint",
                    &[&id, &int(*index)],
                )
                .await?;
                let payload = serde_json::json!({ "reason": "input_changed" });
                let event = (job, at, "item_requeued", Some(key.as_str()), &payload);
                insert_event(statements, &tx, location, event).await?;
                requeued.push(key);
            }
            tx.commit()
                .await
                .map_err(fail(location, "commit the changed items"))?;
            Ok(requeued)
        })
    }
}

impl Integrity for PostgresStore {
    fn probe_write(&self) -> Result<(), StoreError> {
        self.call(move |mut guard| async move {
            let Session {
                client, location, ..
            } = &mut *guard;
            let location: &str = location;
            let tx = begin_write(client, location).await?;
            // A real (no-op) write: a read-only server or a full disk fails here.
            tx.execute("UPDATE mmm_store SET version = version", &[])
                .await
                .map_err(fail(location, "write to the store"))?;
            tx.rollback()
                .await
                .map_err(fail(location, "roll back a probe"))
        })
    }

    fn job_contents(&self, job: JobId) -> Result<JobContents, StoreError> {
        self.call(move |mut guard| async move {
            let Session {
                client,
                statements,
                location,
            } = &mut *guard;
            let location: &str = location;
            let tx = begin_read(client, location).await?;
            let record = read_job(statements, &tx, location, job)
                .await?
                .ok_or_else(|| job_not_found(job))?;
            let id = job.to_string();
            let operation = "read a job's items";
            let sql = format!("SELECT {ITEM_COLUMNS} FROM items
                                 WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = $1) ORDER BY idx");
            let rows = query(statements, &tx, location, operation, &sql, &[&id]).await?;
            let items = decode(&rows, location, operation, item_from_row)?;
            let operation = "read a job's attempts";
            let sql = format!(
                "SELECT {ATTEMPT_COLUMNS} FROM attempts a
                 JOIN items i ON i.job_ref = a.job_ref AND i.idx = a.item_idx
                 WHERE a.job_ref = (SELECT job_ref FROM jobs WHERE id = $1)
                 ORDER BY a.item_idx, a.number"
            );
            let rows = query(statements, &tx, location, operation, &sql, &[&id]).await?;
            let attempts = decode(&rows, location, operation, attempt_from_row)?;
            tx.commit()
                .await
                .map_err(fail(location, "end a read transaction"))?;
            Ok(JobContents {
                job: record,
                items,
                attempts,
            })
        })
    }

    /// PostgreSQL has no `integrity_check`; the equivalents, one line per problem:
    /// - the schema: every table of this version is there, and `mmm_store` says this version;
    /// - indexes left invalid (e.g. by a failed build) and constraints never validated;
    /// - triggers disabled on the store's tables (which switches off foreign-key checks);
    /// - rows that refer to a missing row (what SQLite's `foreign_key_check` finds);
    /// - with the `amcheck` extension installed, `bt_index_check` on every B-tree index; a
    ///   corrupted index is a problem, a missing privilege to run it is not.
    fn storage_problems(&self) -> Result<Vec<String>, StoreError> {
        let schema = self.schema.clone();
        self.call(move |mut guard| async move {
            let Session {
                client, location, ..
            } = &mut *guard;
            let location: &str = location;
            let client: &Client = client;
            storage_problems(client, location, &schema).await
        })
    }

    fn repair(
        &self,
        job: JobId,
        actions: &[RepairAction],
        at: i64,
        payload: serde_json::Value,
    ) -> Result<(), StoreError> {
        let actions = actions.to_vec();
        self.call(move |mut guard| async move {
            let Session {
                client,
                statements,
                location,
            } = &mut *guard;
            let location: &str = location;
            let tx = begin_write(client, location).await?;
            ensure_job(statements, &tx, location, job, true).await?;
            let id = job.to_string();
            let conflict = |what: String| StoreError::RepairConflict { job, what };
            for action in &actions {
                match action {
                    RepairAction::InterruptAttempt { item_index, number } => {
                        let changed = execute(
                            statements,
                            &tx,
                            location,
                            "close an attempt in flight",
                            "UPDATE attempts
                             SET outcome = $4::text, ended_at = $5::bigint,
                                 error = COALESCE(error, $6::text)
                             WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = $1)
                               AND item_idx = $2::bigint AND number = $3::bigint
                               AND outcome IS NULL",
                            &[
                                &id,
                                &int(*item_index),
                                &i64::from(*number),
                                &AttemptOutcome::Interrupted.as_str(),
                                &at,
                                &REPAIRED_ATTEMPT_ERROR,
                            ],
                        )
                        .await?;
                        if changed == 0 {
                            return Err(conflict(format!(
                                "attempt {number} of item {item_index} is no longer in flight"
                            )));
                        }
                    }
                    RepairAction::RequeueItem { item_index, from } => {
                        let changed = execute(
                            statements,
                            &tx,
                            location,
                            "requeue an item",
                            "UPDATE items SET status = $4::text
                             WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = $1) AND idx = $2::bigint AND status = $3::text",
                            &[
                                &id,
                                &int(*item_index),
                                &from.as_str(),
                                &ItemStatus::Pending.as_str(),
                            ],
                        )
                        .await?;
                        if changed == 0 {
                            return Err(conflict(format!("item {item_index} is no longer {from}")));
                        }
                    }
                    RepairAction::SetJobStatus { from, to } => {
                        let change = (*from, *to);
                        if !set_job_status(statements, &tx, location, job, change, at).await? {
                            return Err(conflict(format!("the job is no longer {from}")));
                        }
                    }
                }
            }
            let event = (job, at, "repaired", None, &payload);
            insert_event(statements, &tx, location, event).await?;
            touch_job(statements, &tx, location, job, at).await?;
            tx.commit().await.map_err(fail(location, "commit a repair"))
        })
    }
}

impl Transfer for PostgresStore {
    fn copy_details(&self, job: JobId) -> Result<CopyDetails, StoreError> {
        self.call(move |mut guard| async move {
            let Session {
                client,
                statements,
                location,
            } = &mut *guard;
            let location: &str = location;
            let tx = begin_read(client, location).await?;
            ensure_job(statements, &tx, location, job, false).await?;
            let id = job.to_string();
            let operation = "read superseded attempts";
            let rows = query(
                statements,
                &tx,
                location,
                operation,
                "SELECT item_idx, number FROM attempts
                   WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = $1) AND superseded
                 ORDER BY item_idx, number",
                &[&id],
            )
            .await?;
            let superseded = decode(&rows, location, operation, |row| {
                Ok((unsigned(row, 0)?, small(row, 1)?))
            })?;
            let operation = "read the checkpoints";
            let rows = query(
                statements,
                &tx,
                location,
                operation,
                "SELECT id, last_event_seq FROM checkpoints
                   WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = $1)",
                &[&id],
            )
            .await?;
            let checkpoint_seqs = decode(&rows, location, operation, |row| {
                Ok((row.try_get::<_, i64>(0)?, row.try_get::<_, i64>(1)?))
            })?;
            tx.commit()
                .await
                .map_err(fail(location, "end a read transaction"))?;
            Ok(CopyDetails {
                superseded,
                checkpoint_seqs,
            })
        })
    }

    fn import_job(&self, dump: &JobDump) -> Result<(), StoreError> {
        let dump = dump.clone();
        self.call(move |mut guard| async move {
            let Session {
                client,
                statements,
                location,
            } = &mut *guard;
            let location: &str = location;
            let job = &dump.contents.job;
            let id = job.id.to_string();
            let tx = begin_write(client, location).await?;
            let source = job
                .source
                .as_ref()
                .map(|path| path.to_string_lossy().into_owned());
            let inserted = execute(
                statements,
                &tx,
                location,
                "copy a job",
                "INSERT INTO jobs (id, name, status, phase, spec, spec_hash, source, max_parallel,
                                   created_at, started_at, updated_at, finished_at, duration_ms,
                                   owner_pid, owner_host, heartbeat_at, origin, input_fingerprint)
                 VALUES ($1, $2::text, $3::text, $4::text, $5::text, $6::text, $7::text,
                         $8::bigint, $9::bigint, $10::bigint, $11::bigint, $12::bigint,
                         $13::bigint, $14::bigint, $15::text, $16::bigint, $17::text, $18::text)
                 ON CONFLICT (id) DO NOTHING",
                &[
                    &id,
                    &job.name,
                    &job.status.as_str(),
                    &job.phase.map(|p| p.as_str()),
                    &job.spec,
                    &job.spec_hash,
                    &source,
                    &i64::from(job.max_parallel),
                    &job.created_at,
                    &job.started_at,
                    &job.updated_at,
                    &job.finished_at,
                    &job.duration_ms,
                    &job.owner_pid.map(i64::from),
                    &job.owner_host,
                    &job.heartbeat_at,
                    &job.origin,
                    &job.input_fingerprint,
                ],
            )
            .await?;
            if inserted == 0 {
                return Err(StoreError::JobExists { job: job.id });
            }
            let items = &dump.contents.items;
            for chunk in items.chunks(ITEM_CHUNK) {
                let indices: Vec<i64> = chunk.iter().map(|i| int(i.index)).collect();
                let keys: Vec<&str> = chunk.iter().map(|i| i.key.as_str()).collect();
                let values: Vec<&str> = chunk.iter().map(|i| i.value.as_str()).collect();
                let statuses: Vec<&str> = chunk.iter().map(|i| i.status.as_str()).collect();
                let attempts: Vec<i64> = chunk.iter().map(|i| i64::from(i.attempts)).collect();
                execute(
                    statements,
                    &tx,
                    location,
                    "copy items",
                    "INSERT INTO items (job_ref, idx, key, value, status, attempts)
                     SELECT (SELECT job_ref FROM jobs WHERE id = $1), u.idx, u.key, u.value,
                      u.status, u.attempts
                     FROM unnest($2::bigint[], $3::text[], $4::text[], $5::text[], $6::bigint[])
                          AS u (idx, key, value, status, attempts)",
                    &[&id, &indices, &keys, &values, &statuses, &attempts],
                )
                .await?;
            }
            let superseded: HashSet<(u64, u32)> = dump.superseded.iter().copied().collect();
            for a in &dump.contents.attempts {
                let steps = StoredSteps::to_json(&a.steps);
                execute(
                    statements,
                    &tx,
                    location,
                    "copy attempts",
                    "INSERT INTO attempts (job_ref, item_idx, number, agent, started_at, ended_at,
                                           duration_us, outcome, exit_code, error, steps,
                                           stdout_tail, stderr_tail, superseded)
                     VALUES ((SELECT job_ref FROM jobs WHERE id = $1), $2::bigint, $3::bigint,
                      $4::text, $5::bigint, $6::bigint,
                             $7::bigint, $8::text, $9::bigint, $10::text, $11::jsonb, $12::text,
                             $13::text, $14::boolean)",
                    &[
                        &id,
                        &int(a.item_index),
                        &i64::from(a.number),
                        &a.agent,
                        &a.started_at,
                        &a.ended_at,
                        &a.duration_us.map(int),
                        &a.outcome.map(|o| o.as_str()),
                        &a.exit_code.map(i64::from),
                        &a.error,
                        &steps,
                        &a.stdout_tail,
                        &a.stderr_tail,
                        &superseded.contains(&(a.item_index, a.number)),
                    ],
                )
                .await?;
            }
            let mut new_seqs = Vec::with_capacity(dump.events.len());
            for event in &dump.events {
                let rows = query(
                    statements,
                    &tx,
                    location,
                    "copy events",
                    "INSERT INTO events (job_ref, at, kind, item_key, payload)
                     VALUES ((SELECT job_ref FROM jobs WHERE id = $1), $2::bigint, $3::text, $4::text, $5::jsonb) RETURNING seq",
                    &[&id, &event.at, &event.kind, &event.item_key, &event.payload],
                )
                .await?;
                new_seqs.push(rows.first().map_or(0, |row| row.get::<_, i64>(0)));
            }
            for snapshot in &dump.snapshots {
                execute(
                    statements,
                    &tx,
                    location,
                    "copy snapshots",
                    "INSERT INTO snapshots (job_ref, at, payload)
                       VALUES ((SELECT job_ref FROM jobs WHERE id = $1), $2::bigint, $3::jsonb)",
                    &[&id, &snapshot.at, &snapshot.payload],
                )
                .await?;
            }
            let positions = dump.checkpoint_positions();
            for ((checkpoint, _), position) in dump.checkpoints.iter().zip(positions) {
                execute(
                    statements,
                    &tx,
                    location,
                    "copy checkpoints",
                    "INSERT INTO checkpoints (job_ref, at, phase, reason, last_event_seq,
                                              completed, dead_lettered, skipped)
                     VALUES ((SELECT job_ref FROM jobs WHERE id = $1), $2::bigint, $3::text,
                      $4::text, $5::bigint, $6::bigint,
                             $7::bigint, $8::bigint)",
                    &[
                        &id,
                        &checkpoint.at,
                        &checkpoint.phase.map(|p| p.as_str()),
                        &checkpoint.reason,
                        &position.map_or(0, |p| new_seqs[p]),
                        &int(checkpoint.completed),
                        &int(checkpoint.dead_lettered),
                        &int(checkpoint.skipped),
                    ],
                )
                .await?;
            }
            tx.commit()
                .await
                .map_err(fail(location, "commit a copied job"))
        })
    }

    fn delete_job(&self, job: JobId) -> Result<(), StoreError> {
        self.call(move |mut guard| async move {
            let Session {
                client,
                statements,
                location,
            } = &mut *guard;
            let location: &str = location;
            let id = job.to_string();
            let tx = begin_write(client, location).await?;
            // Everything under the job (items, attempts, events, snapshots, checkpoints) goes
            // with it: ON DELETE CASCADE.
            let deleted = execute(
                statements,
                &tx,
                location,
                "delete a job",
                "DELETE FROM jobs WHERE id = $1",
                &[&id],
            )
            .await?;
            if deleted == 0 {
                return Err(StoreError::JobNotFound { job: id });
            }
            tx.commit()
                .await
                .map_err(fail(location, "commit a job's deletion"))
        })
    }
}

/// The checks of [`Store::storage_problems`] for PostgreSQL.
async fn storage_problems(
    client: &Client,
    location: &str,
    schema: &str,
) -> Result<Vec<String>, StoreError> {
    let mut problems = Vec::new();
    let operation = "check the store's schema";
    let rows = client
        .query(
            "SELECT t FROM unnest($2::text[]) AS t
             WHERE to_regclass(quote_ident($1::text) || '.' || quote_ident(t)) IS NULL",
            &[&schema, &TABLES],
        )
        .await
        .map_err(fail(location, operation))?;
    for row in &rows {
        let table: String = row.get(0);
        problems.push(format!("table {schema}.{table} is missing"));
    }
    if !problems.is_empty() {
        // The other checks read those tables.
        return Ok(problems);
    }
    let rows = client
        .query("SELECT version FROM mmm_store", &[])
        .await
        .map_err(fail(location, operation))?;
    let versions: Vec<i64> = rows.iter().map(|row| row.get(0)).collect();
    if versions != [SCHEMA_VERSION] {
        problems.push(format!(
            "mmm_store records schema versions {versions:?}, expected [{SCHEMA_VERSION}]"
        ));
    }

    let operation = "check the store's indexes and constraints";
    let rows = client
        .query(
            "SELECT c.relname FROM pg_index x
             JOIN pg_class c ON c.oid = x.indexrelid
             JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = $1::text AND NOT (x.indisvalid AND x.indisready)
             ORDER BY 1",
            &[&schema],
        )
        .await
        .map_err(fail(location, operation))?;
    for row in &rows {
        let index: String = row.get(0);
        problems.push(format!("index {index} is invalid; rebuild it with REINDEX"));
    }
    let rows = client
        .query(
            "SELECT c.conname, c.conrelid::regclass::text FROM pg_constraint c
             JOIN pg_namespace n ON n.oid = c.connamespace
             WHERE n.nspname = $1::text AND NOT c.convalidated
             ORDER BY 1",
            &[&schema],
        )
        .await
        .map_err(fail(location, operation))?;
    for row in &rows {
        let (constraint, table): (String, String) = (row.get(0), row.get(1));
        problems.push(format!(
            "constraint {constraint} of table {table} is not validated"
        ));
    }
    let rows = client
        .query(
            "SELECT DISTINCT t.tgrelid::regclass::text FROM pg_trigger t
             JOIN pg_class c ON c.oid = t.tgrelid
             JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = $1::text AND t.tgenabled = 'D'
             ORDER BY 1",
            &[&schema],
        )
        .await
        .map_err(fail(location, operation))?;
    for row in &rows {
        let table: String = row.get(0);
        problems.push(format!(
            "triggers are disabled on table {table}, so its foreign keys are not enforced"
        ));
    }

    let operation = "check the store's references";
    let orphans: [(&str, &str, &str); 5] = [
        (
            "items",
            "jobs",
            "SELECT count(*) FROM items r WHERE NOT EXISTS
             (SELECT 1 FROM jobs p WHERE p.job_ref = r.job_ref)",
        ),
        (
            "attempts",
            "items",
            "SELECT count(*) FROM attempts r WHERE NOT EXISTS
             (SELECT 1 FROM items p WHERE p.job_ref = r.job_ref AND p.idx = r.item_idx)",
        ),
        (
            "events",
            "jobs",
            "SELECT count(*) FROM events r WHERE NOT EXISTS
             (SELECT 1 FROM jobs p WHERE p.job_ref = r.job_ref)",
        ),
        (
            "snapshots",
            "jobs",
            "SELECT count(*) FROM snapshots r WHERE NOT EXISTS
             (SELECT 1 FROM jobs p WHERE p.job_ref = r.job_ref)",
        ),
        (
            "checkpoints",
            "jobs",
            "SELECT count(*) FROM checkpoints r WHERE NOT EXISTS
             (SELECT 1 FROM jobs p WHERE p.job_ref = r.job_ref)",
        ),
    ];
    for (table, parent, sql) in orphans {
        let row = client
            .query_one(sql, &[])
            .await
            .map_err(fail(location, operation))?;
        let count: i64 = row.get(0);
        if count > 0 {
            problems.push(format!(
                "{count} rows of {table} refer to a missing row of {parent}"
            ));
        }
    }

    let operation = "check the store's indexes with amcheck";
    let rows = client
        .query(
            "SELECT n.nspname FROM pg_extension e
             JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'amcheck'",
            &[],
        )
        .await
        .map_err(fail(location, operation))?;
    if let Some(row) = rows.first() {
        let amcheck: String = row.get(0);
        let indexes = client
            .query(
                "SELECT c.oid, c.relname FROM pg_index x
                 JOIN pg_class c ON c.oid = x.indexrelid
                 JOIN pg_namespace n ON n.oid = c.relnamespace
                 JOIN pg_am a ON a.oid = c.relam
                 WHERE n.nspname = $1::text AND a.amname = 'btree' AND x.indisvalid
                 ORDER BY 2",
                &[&schema],
            )
            .await
            .map_err(fail(location, operation))?;
        let check = format!("SELECT {}.bt_index_check($1::oid)", quoted(&amcheck));
        for index in &indexes {
            let (oid, name): (tokio_postgres::types::Oid, String) = (index.get(0), index.get(1));
            if let Err(error) = client.query(&check, &[&oid]).await {
                let corrupted = error.as_db_error().is_some_and(|db| {
                    let code = db.code().code();
                    code == "XX001" || code == "XX002"
                });
                if corrupted {
                    problems.push(format!("index {name} is corrupted: {error}"));
                }
            }
        }
    }
    Ok(problems)
}

fn job_not_found(job: JobId) -> StoreError {
    StoreError::JobNotFound {
        job: job.to_string(),
    }
}

/// A count, position or duration as PostgreSQL's BIGINT. These stay far below `i64::MAX`; the
/// clamp only keeps the conversion total.
fn int(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// Reads a text column with the type's `FromStr` (its canonical spelling).
fn text<T>(row: &Row, index: usize) -> Result<T, Decode>
where
    T: FromStr,
    T::Err: Error + Send + Sync + 'static,
{
    let value: &str = row.try_get(index)?;
    Ok(value.parse()?)
}

/// Reads a text column that may be NULL with the type's `FromStr`.
fn optional_text<T>(row: &Row, index: usize) -> Result<Option<T>, Decode>
where
    T: FromStr,
    T::Err: Error + Send + Sync + 'static,
{
    match row.try_get::<_, Option<&str>>(index)? {
        None => Ok(None),
        Some(value) => Ok(Some(value.parse()?)),
    }
}

/// Reads a non-negative BIGINT column.
fn unsigned(row: &Row, index: usize) -> Result<u64, Decode> {
    let value: i64 = row.try_get(index)?;
    Ok(u64::try_from(value)?)
}

/// Reads a non-negative BIGINT column that may be NULL.
fn optional_unsigned(row: &Row, index: usize) -> Result<Option<u64>, Decode> {
    match row.try_get::<_, Option<i64>>(index)? {
        None => Ok(None),
        Some(value) => Ok(Some(u64::try_from(value)?)),
    }
}

/// Reads a BIGINT column that holds a `u32` (attempt numbers and counts, agents, pids).
fn small(row: &Row, index: usize) -> Result<u32, Decode> {
    let value: i64 = row.try_get(index)?;
    Ok(u32::try_from(value)?)
}

/// Reads a BIGINT column that holds an `i32` (exit codes) and may be NULL.
fn optional_i32(row: &Row, index: usize) -> Result<Option<i32>, Decode> {
    match row.try_get::<_, Option<i64>>(index)? {
        None => Ok(None),
        Some(value) => Ok(Some(i32::try_from(value)?)),
    }
}

/// Reads a JSONB column into `T`.
fn json<T: serde::de::DeserializeOwned>(row: &Row, index: usize) -> Result<T, Decode> {
    let value: serde_json::Value = row.try_get(index)?;
    Ok(serde_json::from_value(value)?)
}

/// Reads a row of [`JOB_COLUMNS`]; the counts are filled in afterwards.
fn job_from_row(row: &Row) -> Result<JobRecord, Decode> {
    Ok(JobRecord {
        id: text(row, 0)?,
        name: row.try_get(1)?,
        status: text(row, 2)?,
        phase: optional_text(row, 3)?,
        spec: row.try_get(4)?,
        spec_hash: row.try_get(5)?,
        source: row.try_get::<_, Option<String>>(6)?.map(PathBuf::from),
        max_parallel: small(row, 7)?,
        created_at: row.try_get(8)?,
        started_at: row.try_get(9)?,
        updated_at: row.try_get(10)?,
        finished_at: row.try_get(11)?,
        duration_ms: row.try_get(12)?,
        owner_pid: match row.try_get::<_, Option<i64>>(13)? {
            None => None,
            Some(pid) => Some(u32::try_from(pid)?),
        },
        owner_host: row.try_get(14)?,
        heartbeat_at: row.try_get(15)?,
        origin: row.try_get(16)?,
        input_fingerprint: row.try_get(17)?,
        counts: ItemCounts::default(),
    })
}

/// Reads a row of [`ITEM_COLUMNS`].
fn item_from_row(row: &Row) -> Result<ItemRecord, Decode> {
    Ok(ItemRecord {
        index: unsigned(row, 0)?,
        key: row.try_get(1)?,
        value: row.try_get(2)?,
        status: text(row, 3)?,
        attempts: small(row, 4)?,
    })
}

/// Reads a row of `seq, at, kind, item_key, payload` from `events`.
fn snapshot_from_row(row: &Row) -> Result<SnapshotRecord, Decode> {
    Ok(SnapshotRecord {
        at: row.try_get(0)?,
        payload: row.try_get(1)?,
    })
}

fn event_from_row(row: &Row, job: JobId) -> Result<EventRecord, Decode> {
    Ok(EventRecord {
        seq: row.try_get(0)?,
        job,
        at: row.try_get(1)?,
        kind: row.try_get(2)?,
        item_key: row.try_get(3)?,
        payload: row.try_get(4)?,
    })
}

/// Reads a row of [`Store::items_page`]'s query: the item's five columns, then its last
/// attempt's (all NULL when it has none).
fn paged_item_from_row(row: &Row) -> Result<PagedItem, Decode> {
    let item = item_from_row(row)?;
    let last_attempt = match row.try_get::<_, Option<i64>>(5)? {
        None => None,
        Some(number) => Some(AttemptRecord {
            item_index: item.index,
            item_key: item.key.clone(),
            number: u32::try_from(number)?,
            agent: row.try_get(6)?,
            started_at: row.try_get(7)?,
            ended_at: row.try_get(8)?,
            duration_us: optional_unsigned(row, 9)?,
            outcome: optional_text::<AttemptOutcome>(row, 10)?,
            exit_code: optional_i32(row, 11)?,
            error: row.try_get(12)?,
            steps: json::<StoredSteps>(row, 13)?.0,
            stdout_tail: row.try_get(14)?,
            stderr_tail: row.try_get(15)?,
        }),
    };
    Ok(PagedItem { item, last_attempt })
}

/// Reads a row of [`ATTEMPT_COLUMNS`].
fn attempt_from_row(row: &Row) -> Result<AttemptRecord, Decode> {
    Ok(AttemptRecord {
        item_index: unsigned(row, 0)?,
        item_key: row.try_get(1)?,
        number: small(row, 2)?,
        agent: row.try_get(3)?,
        started_at: row.try_get(4)?,
        ended_at: row.try_get(5)?,
        duration_us: optional_unsigned(row, 6)?,
        outcome: optional_text::<AttemptOutcome>(row, 7)?,
        exit_code: optional_i32(row, 8)?,
        error: row.try_get(9)?,
        steps: json::<StoredSteps>(row, 10)?.0,
        stdout_tail: row.try_get(11)?,
        stderr_tail: row.try_get(12)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_recognised() {
        assert!(is_postgres_url("postgres://u@h/db"));
        assert!(is_postgres_url("postgresql://h/db?schema=x"));
        for other in [".mmm", "jobs.db", "sqlite://x.db", "postgres:/x", ""] {
            assert!(!is_postgres_url(other), "{other}");
        }
    }

    #[test]
    fn the_schema_option_is_split_off() {
        let target = parse_location("postgres://u@h:5433/db?schema=night_1&connect_timeout=3")
            .expect("a valid URL");
        assert_eq!(target.schema, "night_1");
        assert_eq!(target.config.get_dbname(), Some("db"));
        assert_eq!(target.config.get_ports(), [5433]);
        assert_eq!(
            target.config.get_connect_timeout(),
            Some(&Duration::from_secs(3))
        );
        let target = parse_location("postgresql://h/db").expect("a valid URL");
        assert_eq!(target.schema, DEFAULT_SCHEMA);
        assert_eq!(target.config.get_connect_timeout(), Some(&CONNECT_TIMEOUT));
    }

    #[test]
    fn bad_schemas_and_urls_are_refused_with_the_form_to_use() {
        for bad in [
            "postgres://h/db?schema=Upper",
            "postgres://h/db?schema=a-b",
            "postgres://h/db?schema=",
            "postgres://h/db?schema=1abc",
            "postgres://h/db?schema=a&schema=b",
            "postgres://h/db?nonsense_option=1",
        ] {
            let error = parse_location(bad).err().expect(bad);
            assert!(
                matches!(error, StoreError::InvalidUrl { .. }),
                "{bad}: {error:?}"
            );
            assert!(error.to_string().contains("?schema=NAME"), "{error}");
        }
        let long = format!("postgres://h/db?schema={}", "a".repeat(64));
        assert!(parse_location(&long).is_err());
    }

    #[test]
    fn passwords_are_hidden() {
        assert_eq!(
            crate::shown_location("postgres://me:secret@h:5432/db?schema=x"),
            "postgres://me:***@h:5432/db?schema=x"
        );
        assert_eq!(
            crate::shown_location("postgres://me@h/db"),
            "postgres://me@h/db"
        );
        assert_eq!(crate::shown_location("postgres://h/db"), "postgres://h/db");
        assert_eq!(
            crate::shown_location("postgres://h/db?password=pw&schema=x"),
            "postgres://h/db?password=***&schema=x"
        );
        assert_eq!(crate::shown_location(".mmm"), ".mmm");
        let error = parse_location("postgres://me:secret@h/db?schema=BAD")
            .err()
            .expect("a bad schema");
        assert!(!error.to_string().contains("secret"), "{error}");
    }

    #[test]
    fn batches_touch_jobs_first_in_id_order() {
        let (a, b) = (JobId::new(), JobId::new());
        let writes = [
            Write::Heartbeat {
                job: b,
                at: 5,
                duration_ms: 1,
            },
            Write::Heartbeat {
                job: a,
                at: 7,
                duration_ms: 1,
            },
            Write::Heartbeat {
                job: b,
                at: 9,
                duration_ms: 1,
            },
        ];
        let planned = plan(&writes);
        assert_eq!(planned.len(), 5);
        let touched: Vec<String> = planned[..2]
            .iter()
            .map(|step| match step.missing {
                Missing::Job(job) => job.to_string(),
                other => panic!("expected a job touch, got {other:?}"),
            })
            .collect();
        let mut sorted = vec![a.to_string(), b.to_string()];
        sorted.sort();
        assert_eq!(touched, sorted);
        assert!(
            planned[..2]
                .iter()
                .all(|step| step.sql.contains("GREATEST"))
        );
    }
}
