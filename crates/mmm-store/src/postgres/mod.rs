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
//! [`crate::Store`] is synchronous and is called both from the store writer's thread and from inside
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
//! transaction: one consistent state. Every method runs its work through one helper,
//! `PostgresStore::transaction` (read, write, probe or autocommit), which begins and ends the
//! transaction around it. [`crate::JobLog::apply`] prepares its statements once per
//! connection and sends a whole batch in one pipeline (one round trip between `BEGIN` and
//! `COMMIT`), in order, then checks each statement's result in order, so a batch fails exactly
//! where SQLite's would, and all or nothing.
//!
//! # Lost connections
//! A call that finds the connection broken (the server restarted, the network failed) opens a
//! new one first; when that fails too the call's error is unavailable
//! ([`StoreError::is_unavailable`]) and its caller may wait and call again ([`crate::Outages`]).
//! `apply` and `add_items` note their transaction's id, so that a retry of writes whose commit
//! the connection lost learns from the server whether they were committed (`uncertain`).
//!
//! # Files
//! The connection's thread (`worker`), the URL taken apart (`url`), the connection and its
//! prepared statements (`session`), the transaction helper (`transaction`), the schema and its
//! migrations (`schema`), rows read into records (`rows`), the statements several concerns
//! share (`statements`), a batch of writes planned as one pipeline (`batch`), then one file per
//! part of [`crate::Store`]: `job_log`, `job_reads`, `event_reads`, `dead_letters`, `claims`,
//! `recovery`, `integrity`, `transfer`; writes whose commit is in doubt (`uncertain`). The rules they follow are `rules`'s; these
//! files hold the SQL.

mod batch;
mod claims;
mod control;
mod dead_letters;
mod event_reads;
mod integrity;
mod job_log;
mod job_reads;
mod limits;
mod logs;
mod recovery;
mod rows;
mod schema;
mod session;
mod statements;
mod summaries;
mod transaction;
mod transfer;
mod uncertain;
mod url;
mod worker;

use std::sync::{Arc, Mutex as StdMutex};

use tokio::sync::Mutex;
use tokio_postgres::Config;

use crate::StoreError;
use event_reads::Listener;
use session::Session;
use worker::Worker;

pub use crate::location::is_postgres_url;
pub use schema::SCHEMA_VERSION;
pub use url::DEFAULT_SCHEMA;

/// A store in one schema of a PostgreSQL database.
pub struct PostgresStore {
    location: Arc<str>,
    schema: String,
    /// The client's configuration, for the listening connection opened on first use.
    config: Config,
    // Dropped before `worker`: the connection closes, then the runtime stops.
    session: Arc<Mutex<Session>>,
    /// How to open the connection again when it broke.
    reconnect: Arc<session::Reconnect>,
    /// A write whose commit the connection lost, until it is known.
    in_doubt: uncertain::InDoubt,
    /// `LISTEN mmm_events` on a connection of its own, opened by the first
    /// [`crate::EventReads::wait_for_events`]; `None` until then.
    listener: StdMutex<Option<Listener>>,
    worker: Worker,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("location", &self.location)
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// Connects to the store at `location` (see the module docs), creating or upgrading its
    /// schema to [`SCHEMA_VERSION`].
    ///
    /// Without `create`, a schema that does not exist or holds no mmm store is
    /// [`StoreError::NotFound`]. A schema with other tables is [`StoreError::ForeignSchema`], a
    /// newer version [`StoreError::SchemaTooNew`], an unreachable server [`StoreError::Connect`].
    /// Two processes creating one store at once create it once (an advisory lock).
    pub fn open(location: &str, create: bool) -> Result<Self, StoreError> {
        let url::Target {
            config,
            schema,
            location,
        } = url::parse_location(location)?;
        let worker = Worker::start(&location)?;
        let slot = worker.connection_slot();
        let session = worker.run({
            let location = Arc::clone(&location);
            let schema = schema.clone();
            let config = config.clone();
            async move { session::connect(config, location, schema, create, slot).await }
        })?;
        let reconnect = Arc::new(session::Reconnect {
            config: config.clone(),
            location: Arc::clone(&location),
            schema: schema.clone(),
            slot: worker.connection_slot(),
        });
        Ok(PostgresStore {
            location,
            schema,
            config,
            session: Arc::new(Mutex::new(session)),
            reconnect,
            in_doubt: uncertain::InDoubt::default(),
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
}
