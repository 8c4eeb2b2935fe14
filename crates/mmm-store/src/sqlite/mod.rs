//! The embedded SQLite store: one database file in WAL mode, a numbered schema (`migrations/`,
//! version kept in `PRAGMA user_version`), and one connection behind a mutex.
//!
//! Every write method runs in one `BEGIN IMMEDIATE` transaction (`SqliteStore::write`), so a
//! batch is all or nothing and a second process waits (up to [`BUSY_TIMEOUT`]) instead of
//! failing half-way. Reads that take several queries run in one read transaction
//! (`SqliteStore::read`), so they see one consistent state. Timestamps are epoch
//! milliseconds; JSON is stored as text.
//!
//! The files of this folder: opening and the connection's settings (`connection`), the schema
//! and its migrations (`schema`), how SQLite's errors become [`StoreError`]s (`failure`), rows
//! read into records (`rows`), the statements several concerns share (`statements`), then one
//! file per part of [`crate::Store`]: `job_log` (with `writes`, each [`crate::Write`]'s SQL),
//! `job_reads`, `event_reads`, `dead_letters`, `claims`, `recovery`, `integrity`, `transfer`.
//! The rules they follow are `rules`'s; these files hold the SQL.

mod claims;
mod connection;
mod control;
mod dead_letters;
mod event_reads;
mod failure;
mod integrity;
mod job_log;
mod job_reads;
mod limits;
mod logs;
mod recovery;
mod rows;
mod schema;
mod statements;
mod summaries;
mod transfer;
mod writes;

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior};

use crate::StoreError;
use crate::commits::Commits;

pub use connection::{BUSY_TIMEOUT, WAL_AUTOCHECKPOINT_PAGES};
pub use schema::{APPLICATION_ID, SCHEMA_VERSION};

/// A store in one SQLite database file.
pub struct SqliteStore {
    path: PathBuf,
    conn: Mutex<Connection>,
    /// Commits by any handle of this process on the same file (`wait_for_events`).
    commits: Arc<Commits>,
    /// The commit count this handle's last `wait_for_events` returned at.
    commits_seen: AtomicU64,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens the database file at `path`, upgrading its schema to [`SCHEMA_VERSION`].
    ///
    /// With `create`, the parent directory and the file are created when missing; without it, a
    /// missing file is [`StoreError::NotFound`]. A file that is not an SQLite database, is
    /// damaged, belongs to another program or has a newer schema is refused with an error that
    /// names it.
    pub fn open(path: &Path, create: bool) -> Result<Self, StoreError> {
        let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        if create {
            if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
                    path: dir.to_path_buf(),
                    source,
                })?;
            }
            flags |= OpenFlags::SQLITE_OPEN_CREATE;
        } else if std::fs::metadata(path).is_ok_and(|file| file.len() == 0) || !path.exists() {
            // An empty file is a store another process is creating: a reader must not touch
            // it (switching it to WAL would race the creator's own switch).
            return Err(StoreError::NotFound {
                path: path.to_path_buf(),
            });
        }

        let mut conn =
            Connection::open_with_flags(path, flags).map_err(|source| StoreError::Open {
                path: path.to_path_buf(),
                source: source.into(),
            })?;
        connection::configure_new(&conn, path, create)?;
        if !create && schema::check_version(&conn, path)? == 0 {
            // Created but without its schema yet: the creating process writes it.
            return Err(StoreError::NotFound {
                path: path.to_path_buf(),
            });
        }
        schema::migrate(&mut conn, path)?;
        let commits = Commits::of(path);
        Ok(SqliteStore {
            commits_seen: AtomicU64::new(commits.count()),
            commits,
            path: path.to_path_buf(),
            conn: Mutex::new(conn),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The connection. A panic while it was held leaves no transaction open (a dropped
    /// `Transaction` rolls back), so a poisoned lock is still a usable connection.
    fn lock(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Maps a SQLite error met while trying to do `operation` to a [`StoreError`].
    fn fail(&self, operation: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError + '_ {
        move |source| failure::classify(&self.path, operation, source)
    }

    /// Runs `work` in a read transaction, so that its queries see one state.
    fn read<T>(
        &self,
        work: impl FnOnce(&Transaction<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = self.lock();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Deferred)
            .map_err(self.fail("start a read transaction"))?;
        let value = work(&tx)?;
        tx.commit().map_err(self.fail("end a read transaction"))?;
        Ok(value)
    }

    /// Runs `work` in a write transaction and commits it (`commit` says what is committed, for
    /// the error if that fails). The write lock is taken at the start, so the work cannot fail
    /// half-way on another process's lock; an error of the work rolls everything back.
    fn write<T>(
        &self,
        commit: &'static str,
        work: impl FnOnce(&Transaction<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = self.lock();
        let tx = self.begin_write(&mut conn)?;
        let value = work(&tx)?;
        tx.commit().map_err(self.fail(commit))?;
        Ok(value)
    }

    /// Starts a write transaction: takes the write lock now.
    fn begin_write<'c>(&self, conn: &'c mut Connection) -> Result<Transaction<'c>, StoreError> {
        conn.transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(self.fail("start a write transaction"))
    }
}
