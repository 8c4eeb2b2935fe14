//! The embedded SQLite store: one database file in WAL mode, a numbered schema (`migrations/`,
//! version kept in `PRAGMA user_version`), and one connection behind a mutex.
//!
//! Every write method runs in one `BEGIN IMMEDIATE` transaction, so a batch is all or nothing
//! and a second process waits (up to [`BUSY_TIMEOUT`]) instead of failing half-way. Reads that
//! take several queries run in one read transaction, so they see one consistent state.
//! Timestamps are epoch milliseconds; JSON is stored as text.

use std::collections::{HashMap, HashSet};
use std::error::Error;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rusqlite::types::{Type, ValueRef};
use rusqlite::{
    Connection, ErrorCode, OpenFlags, OptionalExtension, Row, Transaction, TransactionBehavior,
    params,
};

use super::copy::{CopyDetails, JobDump};
use super::{
    AttemptRecord, CheckpointRecord, ClaimedItem, DeadLetter, DlqChange, EventRecord, ItemCounts,
    ItemRecord, JobContents, JobRecord, LEASE_EXPIRED_ERROR, Ledger, NewItem, NewJob, Owner,
    RepairAction, Requeued, SnapshotRecord, StoreError, UnfinishedItem, Write,
};
use super::{Claims, DeadLetters, EventReads, Integrity, JobLog, JobReads, Recovery, Transfer};
use super::{ItemPage, ItemPageQuery, PagedItem, StoredSteps};
use mmm_core::job::{AttemptOutcome, EventKind, ItemStatus, JobId, JobStatus, Phase};

/// The migrations, in order: entry `i` brings the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    include_str!("migrations/0001_initial.sql"),
    include_str!("migrations/0002_resume.sql"),
    include_str!("migrations/0003_claims.sql"),
    include_str!("migrations/0004_job_ref.sql"),
];

/// The schema at [`SCHEMA_VERSION`], made in one go for a new store (see the file's header).
const SCHEMA: &str = include_str!("schema.sql");

/// The newest schema version this binary knows; it reads and writes only this version.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// `PRAGMA application_id` of an mmm store ("mmm1" in ASCII), set by the first migration.
pub const APPLICATION_ID: i64 = 0x6d6d_6d31;

/// How long a statement waits for another process's lock before failing.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Room for every statement this file prepares, so the hot ones stay prepared.
const STATEMENT_CACHE_CAPACITY: usize = 64;

/// The write-ahead log is folded into the database once it holds this many pages (1 MiB),
/// instead of SQLite's 1,000. Closing the store syncs what the log holds since its last fold and
/// deletes the file: with a quarter of the log, a 500-item `mmm run` ends 3-4 ms sooner after
/// its last command, for folds four times as frequent (each a quarter as long) while the job
/// runs (docs/PERFORMANCE.md, "Seventh look").
pub const WAL_AUTOCHECKPOINT_PAGES: i64 = 256;

/// `LIMIT n`, written into a statement's text rather than bound: SQLite prepares a statement
/// whose LIMIT is a bound parameter again on every run (its plan may depend on the value), so
/// a cached read of the dashboard was compiled anew each time. Statements are cached by text,
/// one per limit in use.
fn limit_clause(limit: usize) -> String {
    format!("LIMIT {}", i64::try_from(limit).unwrap_or(i64::MAX))
}

/// A job's events after a sequence number (`?1` the job's id, `?2` the number), oldest first.
fn events_after_sql(limit: usize) -> String {
    format!(
        "SELECT seq, at, kind, item_key, payload FROM events
         WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = ?1) AND seq > ?2
         ORDER BY seq {}",
        limit_clause(limit)
    )
}

/// The columns of `jobs`, in the order [`job_from_row`] reads them.
const JOB_COLUMNS: &str = "id, name, status, phase, spec, spec_hash, source, max_parallel, \
     created_at, started_at, updated_at, finished_at, duration_ms, owner_pid, owner_host, \
     heartbeat_at, origin, input_fingerprint";

/// The columns of `attempts a JOIN items i`, in the order `attempts` reads them.
const ATTEMPT_COLUMNS: &str = "a.item_idx, i.key, a.number, a.agent, a.started_at, a.ended_at, \
     a.duration_us, a.outcome, a.exit_code, a.error, a.steps, a.stdout_tail, a.stderr_tail";

/// A store in one SQLite database file.
pub struct SqliteStore {
    path: PathBuf,
    conn: Mutex<Connection>,
    /// Commits by any handle of this process on the same file (`wait_for_events`).
    commits: Arc<super::commits::Commits>,
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
    /// Inserts `items` with indices from `first_index`, with one prepared statement.
    fn insert_items(
        &self,
        tx: &rusqlite::Transaction<'_>,
        job: JobId,
        first_index: u64,
        items: &[NewItem],
    ) -> Result<(), StoreError> {
        let id = job.to_string();
        let sql = "INSERT INTO items (job_ref, idx, key, value, status)
                     VALUES ((SELECT job_ref FROM jobs WHERE id = ?1), ?2, ?3, ?4, ?5)
                   ON CONFLICT (job_ref, key) DO NOTHING";
        let mut insert = tx
            .prepare_cached(sql)
            .map_err(self.fail("record the job's items"))?;
        let pending = ItemStatus::Pending.as_str();
        for (offset, item) in items.iter().enumerate() {
            let index = first_index + offset as u64;
            let inserted = insert
                .execute(params![id, int(index), item.key, item.value, pending])
                .map_err(self.fail("record the job's items"))?;
            expect_change(inserted, || StoreError::DuplicateItemKey {
                job,
                index,
                key: item.key.clone(),
            })?;
        }
        Ok(())
    }

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
        configure_new(&conn, path, create)?;
        if !create && check_version(&conn, path)? == 0 {
            // Created but without its schema yet: the creating process writes it.
            return Err(StoreError::NotFound {
                path: path.to_path_buf(),
            });
        }
        migrate(&mut conn, path)?;
        let commits = super::commits::Commits::of(path);
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
        move |source| classify(&self.path, operation, source)
    }

    /// Starts a write transaction: takes the write lock now, so the batch cannot fail half-way
    /// on another process's lock.
    fn begin_write<'c>(&self, conn: &'c mut Connection) -> Result<Transaction<'c>, StoreError> {
        conn.transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(self.fail("start a write transaction"))
    }

    /// Starts a read transaction, so that several queries see one state.
    fn begin_read<'c>(&self, conn: &'c mut Connection) -> Result<Transaction<'c>, StoreError> {
        conn.transaction_with_behavior(TransactionBehavior::Deferred)
            .map_err(self.fail("start a read transaction"))
    }

    /// Bumps `updated_at` of every job the batch touches, to the latest time of its writes.
    /// Fails with [`StoreError::JobNotFound`] for an unknown job, before anything else is done.
    fn touch_jobs(&self, tx: &Transaction<'_>, writes: &[Write]) -> Result<(), StoreError> {
        let mut latest: HashMap<JobId, i64> = HashMap::new();
        for write in writes {
            let at = latest.entry(write.job()).or_insert(write.at());
            *at = (*at).max(write.at());
        }
        let mut touch = tx
            .prepare_cached("UPDATE jobs SET updated_at = MAX(updated_at, ?2) WHERE id = ?1")
            .map_err(self.fail("prepare to update a job"))?;
        for (job, at) in latest {
            let changed = touch
                .execute(params![job.to_string(), at])
                .map_err(self.fail("update a job"))?;
            if changed == 0 {
                return Err(StoreError::JobNotFound {
                    job: job.to_string(),
                });
            }
        }
        Ok(())
    }

    /// Applies one write inside the batch's transaction.
    fn apply_one(&self, tx: &Transaction<'_>, write: &Write) -> Result<(), StoreError> {
        match write {
            Write::JobStatus { job, status, at } => {
                let sql = "UPDATE jobs
                           SET status = ?2,
                               started_at = CASE WHEN ?3 THEN COALESCE(started_at, ?5)
                                                 ELSE started_at END,
                               finished_at = CASE WHEN ?4 THEN ?5 ELSE NULL END
                           WHERE id = ?1";
                let changed = tx
                    .prepare_cached(sql)
                    .and_then(|mut update| {
                        update.execute(params![
                            job.to_string(),
                            status.as_str(),
                            *status == JobStatus::Running,
                            status.is_finished(),
                            at,
                        ])
                    })
                    .map_err(self.fail("record a job status"))?;
                expect_change(changed, || job_not_found(*job))
            }
            Write::JobPhase { job, phase, at: _ } => {
                let changed = tx
                    .prepare_cached("UPDATE jobs SET phase = ?2 WHERE id = ?1")
                    .and_then(|mut update| update.execute(params![job.to_string(), phase.as_str()]))
                    .map_err(self.fail("record a job phase"))?;
                expect_change(changed, || job_not_found(*job))
            }
            Write::Heartbeat {
                job,
                at,
                duration_ms,
            } => {
                let sql = "UPDATE jobs SET heartbeat_at = ?2, duration_ms = ?3 WHERE id = ?1";
                let changed = tx
                    .prepare_cached(sql)
                    .and_then(|mut update| {
                        update.execute(params![job.to_string(), at, duration_ms])
                    })
                    .map_err(self.fail("record a heartbeat"))?;
                expect_change(changed, || job_not_found(*job))
            }
            Write::AttemptStarted {
                job,
                item_index,
                number,
                agent,
                at,
            } => {
                let changed = tx
                    .prepare_cached("UPDATE items SET status = ?3
                                       WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = ?1) AND idx = ?2")
                    .and_then(|mut update| {
                        update.execute(params![
                            job.to_string(),
                            int(*item_index),
                            ItemStatus::Running.as_str(),
                        ])
                    })
                    .map_err(self.fail("mark an item running"))?;
                expect_change(changed, || StoreError::ItemNotFound {
                    job: *job,
                    index: *item_index,
                })?;
                let sql = "INSERT INTO attempts (job_ref, item_idx, number, agent, started_at)
                           VALUES ((SELECT job_ref FROM jobs WHERE id = ?1), ?2, ?3, ?4, ?5)";
                tx.prepare_cached(sql)
                    .and_then(|mut insert| {
                        insert.execute(params![
                            job.to_string(),
                            int(*item_index),
                            number,
                            agent,
                            at
                        ])
                    })
                    .map_err(self.fail("record an attempt start"))?;
                Ok(())
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
                let steps = StoredSteps::to_json(steps).to_string();
                let sql = "UPDATE attempts
                           SET ended_at = ?4, duration_us = ?5, outcome = ?6, exit_code = ?7,
                               error = ?8, steps = ?9, stdout_tail = ?10, stderr_tail = ?11
                           WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = ?1)
                             AND item_idx = ?2 AND number = ?3
                             AND outcome IS NULL";
                let changed = tx
                    .prepare_cached(sql)
                    .and_then(|mut update| {
                        update.execute(params![
                            job.to_string(),
                            int(*item_index),
                            number,
                            ended_at,
                            int(*duration_us),
                            outcome.as_str(),
                            exit_code,
                            error,
                            steps,
                            stdout_tail,
                            stderr_tail,
                        ])
                    })
                    .map_err(self.fail("record an attempt end"))?;
                expect_change(changed, || StoreError::AttemptNotFound {
                    job: *job,
                    index: *item_index,
                    number: *number,
                })?;
                let sql = "UPDATE items
                           SET status = ?3,
                               attempts = attempts + CASE WHEN ?4 THEN 1 ELSE 0 END
                           WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = ?1) AND idx = ?2";
                let changed = tx
                    .prepare_cached(sql)
                    .and_then(|mut update| {
                        update.execute(params![
                            job.to_string(),
                            int(*item_index),
                            item_status.as_str(),
                            counts_against_retries,
                        ])
                    })
                    .map_err(self.fail("record an item status"))?;
                expect_change(changed, || StoreError::ItemNotFound {
                    job: *job,
                    index: *item_index,
                })
            }
            Write::Event {
                job,
                at,
                kind,
                item_key,
                payload,
            } => {
                let sql = "INSERT INTO events (job_ref, at, kind, item_key, payload)
                           VALUES ((SELECT job_ref FROM jobs WHERE id = ?1), ?2, ?3, ?4, ?5)";
                tx.prepare_cached(sql)
                    .and_then(|mut insert| {
                        insert.execute(params![
                            job.to_string(),
                            at,
                            kind,
                            item_key,
                            payload.to_string(),
                        ])
                    })
                    .map_err(self.fail("record an event"))?;
                Ok(())
            }
            Write::Snapshot { job, at, payload } => {
                tx.prepare_cached(
                    "INSERT INTO snapshots (job_ref, at, payload)
                       VALUES ((SELECT job_ref FROM jobs WHERE id = ?1), ?2, ?3)",
                )
                .and_then(|mut insert| {
                    insert.execute(params![job.to_string(), at, payload.to_string()])
                })
                .map_err(self.fail("record a snapshot"))?;
                Ok(())
            }
            Write::InputFingerprint {
                job, fingerprint, ..
            } => {
                let sql = "UPDATE jobs SET input_fingerprint = ?2 WHERE id = ?1";
                let changed = tx
                    .prepare_cached(sql)
                    .and_then(|mut update| update.execute(params![job.to_string(), fingerprint]))
                    .map_err(self.fail("record the input's fingerprint"))?;
                expect_change(changed, || job_not_found(*job))
            }
            Write::Checkpoint {
                job,
                at,
                phase,
                reason,
            } => {
                let sql = "INSERT INTO checkpoints (job_ref, at, phase, reason, last_event_seq,
                                                    completed, dead_lettered, skipped)
                           SELECT (SELECT job_ref FROM jobs WHERE id = ?1), ?2, ?3, ?4,
                                  (SELECT COALESCE(MAX(seq), 0) FROM events
                                    WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = ?1)),
                                  COALESCE(SUM(status = 'completed'), 0),
                                  COALESCE(SUM(status = 'dead_lettered'), 0),
                                  COALESCE(SUM(status = 'skipped'), 0)
                           FROM items WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = ?1)";
                tx.prepare_cached(sql)
                    .and_then(|mut insert| {
                        insert.execute(params![
                            job.to_string(),
                            at,
                            phase.map(|p| p.as_str()),
                            reason
                        ])
                    })
                    .map_err(self.fail("record a checkpoint"))?;
                Ok(())
            }
        }
    }

    /// Fails with [`StoreError::JobNotFound`] unless the job is recorded.
    fn ensure_job(&self, conn: &Connection, job: JobId) -> Result<(), StoreError> {
        let found = conn
            .prepare_cached("SELECT 1 FROM jobs WHERE id = ?1")
            .and_then(|mut select| {
                select
                    .query_row(params![job.to_string()], |_| Ok(()))
                    .optional()
            })
            .map_err(self.fail("look up a job"))?;
        found.ok_or_else(|| job_not_found(job))
    }

    /// The job's item counts by status.
    fn counts(&self, conn: &Connection, job: JobId) -> Result<ItemCounts, StoreError> {
        let sql = "SELECT status, COUNT(*) FROM items
                     WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = ?1) GROUP BY status";
        let mut select = conn
            .prepare_cached(sql)
            .map_err(self.fail("count a job's items"))?;
        let rows = select
            .query_map(params![job.to_string()], |row| {
                Ok((text::<ItemStatus>(row, 0)?, unsigned(row, 1)?))
            })
            .map_err(self.fail("count a job's items"))?;
        let mut counts = ItemCounts::default();
        for row in rows {
            let (status, n) = row.map_err(self.fail("count a job's items"))?;
            counts.set(status, n);
        }
        Ok(counts)
    }
}

impl JobLog for SqliteStore {
    fn create_job(&self, job: &NewJob, items: &[NewItem]) -> Result<(), StoreError> {
        let mut conn = self.lock();
        let tx = self.begin_write(&mut conn)?;
        let id = job.id.to_string();
        let sql = "INSERT INTO jobs (id, name, status, spec, spec_hash, source, max_parallel,
                                     created_at, updated_at, owner_pid, owner_host, origin)
                   VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8, ?9, ?10, ?11)
                   ON CONFLICT (id) DO NOTHING";
        let source = job.source.as_ref().map(|path| path.to_string_lossy());
        let inserted = tx
            .execute(
                sql,
                params![
                    id,
                    job.name,
                    JobStatus::Pending.as_str(),
                    job.spec,
                    job.spec_hash,
                    source,
                    job.max_parallel,
                    job.created_at,
                    job.owner_pid,
                    job.owner_host,
                    job.origin,
                ],
            )
            .map_err(self.fail("record a new job"))?;
        expect_change(inserted, || StoreError::JobExists { job: job.id })?;

        self.insert_items(&tx, job.id, 0, items)?;
        tx.commit().map_err(self.fail("commit a new job"))
    }

    fn add_items(&self, job: JobId, items: &[NewItem]) -> Result<(), StoreError> {
        let mut conn = self.lock();
        let tx = self.begin_write(&mut conn)?;
        let id = job.to_string();
        let next: Option<i64> = tx
            .query_row(
                "SELECT (SELECT COALESCE(MAX(idx) + 1, 0) FROM items
                   WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = ?1))
                 FROM jobs WHERE id = ?1",
                params![id],
                |row| row.get(0),
            )
            .optional()
            .map_err(self.fail("find the job's last item"))?;
        let next = next.ok_or(StoreError::JobNotFound {
            job: job.to_string(),
        })?;
        self.insert_items(&tx, job, next as u64, items)?;
        tx.commit().map_err(self.fail("commit the job's items"))
    }

    fn apply(&self, writes: &[Write]) -> Result<(), StoreError> {
        if writes.is_empty() {
            return Ok(());
        }
        let mut conn = self.lock();
        let tx = self.begin_write(&mut conn)?;
        self.touch_jobs(&tx, writes)?;
        for write in writes {
            self.apply_one(&tx, write)?;
        }
        tx.commit().map_err(self.fail("commit a batch of writes"))?;
        self.commits.committed();
        Ok(())
    }
}

impl JobReads for SqliteStore {
    fn job(&self, id: JobId) -> Result<JobRecord, StoreError> {
        let mut conn = self.lock();
        let tx = self.begin_read(&mut conn)?;
        let sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?1");
        let job = tx
            .prepare_cached(&sql)
            .and_then(|mut select| {
                select
                    .query_row(params![id.to_string()], job_from_row)
                    .optional()
            })
            .map_err(self.fail("read a job"))?;
        let mut job = job.ok_or_else(|| job_not_found(id))?;
        job.counts = self.counts(&tx, id)?;
        tx.commit().map_err(self.fail("end a read transaction"))?;
        Ok(job)
    }

    fn jobs(&self) -> Result<Vec<JobRecord>, StoreError> {
        let mut conn = self.lock();
        let tx = self.begin_read(&mut conn)?;
        let sql = format!("SELECT {JOB_COLUMNS} FROM jobs ORDER BY id DESC");
        let mut jobs = tx
            .prepare_cached(&sql)
            .and_then(|mut select| {
                select
                    .query_map([], job_from_row)?
                    .collect::<Result<Vec<_>, _>>()
            })
            .map_err(self.fail("list the jobs"))?;
        for job in &mut jobs {
            job.counts = self.counts(&tx, job.id)?;
        }
        tx.commit().map_err(self.fail("end a read transaction"))?;
        Ok(jobs)
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
        let conn = self.lock();
        // `hex` holds only hex digits, so it has no GLOB wildcards of its own.
        let ids = conn
            .prepare_cached("SELECT id FROM jobs WHERE id GLOB ?1 || '*' ORDER BY id DESC")
            .and_then(|mut select| {
                select
                    .query_map(params![hex], |row| text::<JobId>(row, 0))?
                    .collect::<Result<Vec<_>, _>>()
            })
            .map_err(self.fail("look up a job id"))?;
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
        let mut conn = self.lock();
        let tx = self.begin_read(&mut conn)?;
        self.ensure_job(&tx, job)?;
        let read = |row: &Row<'_>| {
            Ok(ItemRecord {
                index: unsigned(row, 0)?,
                key: row.get(1)?,
                value: row.get(2)?,
                status: text(row, 3)?,
                attempts: row.get(4)?,
            })
        };
        let items = match status {
            None => tx
                .prepare_cached(
                    "SELECT idx, key, value, status, attempts FROM items
                     WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = ?1) ORDER BY idx",
                )
                .and_then(|mut select| {
                    select
                        .query_map(params![job.to_string()], read)?
                        .collect::<Result<Vec<_>, _>>()
                }),
            Some(status) => tx
                .prepare_cached(
                    "SELECT idx, key, value, status, attempts FROM items
                     WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = ?1) AND status = ?2 ORDER BY idx",
                )
                .and_then(|mut select| {
                    select
                        .query_map(params![job.to_string(), status.as_str()], read)?
                        .collect::<Result<Vec<_>, _>>()
                }),
        }
        .map_err(self.fail("read a job's items"))?;
        tx.commit().map_err(self.fail("end a read transaction"))?;
        Ok(items)
    }

    fn item(&self, job: JobId, key: &str) -> Result<Option<ItemRecord>, StoreError> {
        let mut conn = self.lock();
        let tx = self.begin_read(&mut conn)?;
        self.ensure_job(&tx, job)?;
        let item = tx
            .prepare_cached(&format!(
                "SELECT {ITEM_COLUMNS} FROM items
                   WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = ?1) AND key = ?2"
            ))
            .and_then(|mut select| {
                select
                    .query_row(params![job.to_string(), key], item_from_row)
                    .optional()
            })
            .map_err(self.fail("read an item"))?;
        tx.commit().map_err(self.fail("end a read transaction"))?;
        Ok(item)
    }

    fn item_keys(&self, job: JobId) -> Result<Vec<String>, StoreError> {
        let mut conn = self.lock();
        let tx = self.begin_read(&mut conn)?;
        self.ensure_job(&tx, job)?;
        let keys = tx
            .prepare(
                "SELECT key FROM items
                        WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = ?1) ORDER BY idx",
            )
            .and_then(|mut select| {
                select
                    .query_map(params![job.to_string()], |row| row.get::<_, String>(0))?
                    .collect::<Result<Vec<_>, _>>()
            })
            .map_err(self.fail("read the item keys"))?;
        tx.commit().map_err(self.fail("end a read transaction"))?;
        Ok(keys)
    }

    fn attempts(
        &self,
        job: JobId,
        item_key: Option<&str>,
    ) -> Result<Vec<AttemptRecord>, StoreError> {
        let mut conn = self.lock();
        let tx = self.begin_read(&mut conn)?;
        self.ensure_job(&tx, job)?;
        let read = attempt_from_row;
        let attempts = match item_key {
            None => tx
                .prepare_cached(&format!(
                    "SELECT {ATTEMPT_COLUMNS} FROM attempts a
                     JOIN items i ON i.job_ref = a.job_ref AND i.idx = a.item_idx
                     WHERE a.job_ref = (SELECT job_ref FROM jobs WHERE id = ?1)
                     ORDER BY a.item_idx, a.number"
                ))
                .and_then(|mut select| {
                    select
                        .query_map(params![job.to_string()], read)?
                        .collect::<Result<Vec<_>, _>>()
                }),
            Some(key) => tx
                .prepare_cached(&format!(
                    "SELECT {ATTEMPT_COLUMNS} FROM attempts a
                     JOIN items i ON i.job_ref = a.job_ref AND i.idx = a.item_idx
                     WHERE a.job_ref = (SELECT job_ref FROM jobs WHERE id = ?1) AND i.key = ?2
                     ORDER BY a.item_idx, a.number"
                ))
                .and_then(|mut select| {
                    select
                        .query_map(params![job.to_string(), key], read)?
                        .collect::<Result<Vec<_>, _>>()
                }),
        }
        .map_err(self.fail("read a job's attempts"))?;
        tx.commit().map_err(self.fail("end a read transaction"))?;
        Ok(attempts)
    }

    fn items_page(&self, job: JobId, query: &ItemPageQuery) -> Result<ItemPage, StoreError> {
        let mut conn = self.lock();
        let tx = self.begin_read(&mut conn)?;
        self.ensure_job(&tx, job)?;
        let id = job.to_string();
        let status = query.status.map(ItemStatus::as_str);
        let offset = i64::try_from(query.offset).unwrap_or(i64::MAX);
        // Two spellings rather than `(?2 IS NULL OR status = ?2)`, so that each uses its index
        // ((job_ref, idx) and (job_ref, status)).
        let filter = if status.is_some() {
            "i.job_ref = (SELECT job_ref FROM jobs WHERE id = ?1) AND i.status = ?2"
        } else {
            "i.job_ref = (SELECT job_ref FROM jobs WHERE id = ?1) AND ?2 IS NULL"
        };
        let total: i64 = tx
            .prepare_cached(&format!("SELECT count(*) FROM items i WHERE {filter}"))
            .and_then(|mut select| select.query_row(params![id, status], |row| row.get(0)))
            .map_err(self.fail("count a job's items"))?;
        // The last attempt is the one with the highest number (they keep increasing across
        // retries and resumes); the (job_ref, item_idx, number) key finds it.
        let items = tx
            .prepare_cached(&format!(
                "SELECT i.idx, i.key, i.value, i.status, i.attempts,
                        a.number, a.agent, a.started_at, a.ended_at, a.duration_us, a.outcome,
                        a.exit_code, a.error, a.steps, a.stdout_tail, a.stderr_tail
                 FROM items i
                 LEFT JOIN attempts a ON a.job_ref = i.job_ref AND a.item_idx = i.idx
                   AND a.number = (SELECT max(m.number) FROM attempts m
                                   WHERE m.job_ref = i.job_ref AND m.item_idx = i.idx)
                 WHERE {filter}
                 ORDER BY i.idx {} OFFSET ?3",
                limit_clause(query.limit)
            ))
            .and_then(|mut select| {
                select
                    .query_map(params![id, status, offset], paged_item_from_row)?
                    .collect::<Result<Vec<_>, _>>()
            })
            .map_err(self.fail("read a page of a job's items"))?;
        tx.commit().map_err(self.fail("end a read transaction"))?;
        Ok(ItemPage {
            total: u64::try_from(total).unwrap_or(0),
            items,
        })
    }

    fn checkpoints(&self, job: JobId) -> Result<Vec<CheckpointRecord>, StoreError> {
        let mut conn = self.lock();
        let tx = self.begin_read(&mut conn)?;
        self.ensure_job(&tx, job)?;
        let checkpoints = tx
            .prepare(
                "SELECT id, at, phase, reason, completed, dead_lettered, skipped
                 FROM checkpoints WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = ?1) ORDER BY id",
            )
            .and_then(|mut select| {
                select
                    .query_map(params![job.to_string()], |row| {
                        Ok(CheckpointRecord {
                            id: row.get(0)?,
                            at: row.get(1)?,
                            phase: optional_text::<Phase>(row, 2)?,
                            reason: row.get(3)?,
                            completed: unsigned(row, 4)?,
                            dead_lettered: unsigned(row, 5)?,
                            skipped: unsigned(row, 6)?,
                        })
                    })?
                    .collect::<Result<Vec<_>, _>>()
            })
            .map_err(self.fail("read the checkpoints"))?;
        tx.commit().map_err(self.fail("end a read transaction"))?;
        Ok(checkpoints)
    }

    fn ledger(&self, job: JobId) -> Result<Ledger, StoreError> {
        let mut conn = self.lock();
        let tx = self.begin_read(&mut conn)?;
        self.ensure_job(&tx, job)?;
        let id = job.to_string();
        let entries = tx
            .prepare(
                "SELECT seq, at, kind, item_key, payload FROM events
                 WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = ?1)
                   AND kind IN ('job_resumed', 'input_changed', 'spec_changed', 'spec_from_store')
                 ORDER BY seq",
            )
            .and_then(|mut select| {
                select
                    .query_map(params![id], |row| event_from_row(row, job))?
                    .collect::<Result<Vec<_>, _>>()
            })
            .map_err(self.fail("read the resume ledger"))?;
        let requeued = tx
            .prepare(
                "SELECT CASE kind WHEN 'dlq_retry' THEN 'dlq_retry'
                                  ELSE COALESCE(json_extract(payload, '$.reason'), 'unknown') END,
                        COUNT(*)
                 FROM events WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = ?1)
                   AND kind IN ('item_requeued', 'dlq_retry')
                 GROUP BY 1 ORDER BY 1",
            )
            .and_then(|mut select| {
                select
                    .query_map(params![id], |row| Ok((row.get(0)?, unsigned(row, 1)?)))?
                    .collect::<Result<Vec<_>, _>>()
            })
            .map_err(self.fail("count the requeued items"))?;
        tx.commit().map_err(self.fail("end a read transaction"))?;
        Ok(Ledger { entries, requeued })
    }
}

impl EventReads for SqliteStore {
    fn events(&self, job: JobId, after: i64, limit: usize) -> Result<Vec<EventRecord>, StoreError> {
        let mut conn = self.lock();
        let tx = self.begin_read(&mut conn)?;
        self.ensure_job(&tx, job)?;
        let events = tx
            .prepare_cached(&events_after_sql(limit))
            .and_then(|mut select| {
                select
                    .query_map(params![job.to_string(), after], |row| {
                        event_from_row(row, job)
                    })?
                    .collect::<Result<Vec<_>, _>>()
            })
            .map_err(self.fail("read a job's events"))?;
        tx.commit().map_err(self.fail("end a read transaction"))?;
        Ok(events)
    }

    fn recent_events(&self, job: JobId, limit: usize) -> Result<Vec<EventRecord>, StoreError> {
        let mut conn = self.lock();
        let tx = self.begin_read(&mut conn)?;
        self.ensure_job(&tx, job)?;
        let sql = format!(
            "SELECT seq, at, kind, item_key, payload FROM events
             WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = ?1)
             ORDER BY seq DESC {}",
            limit_clause(limit)
        );
        let mut events = tx
            .prepare_cached(&sql)
            .and_then(|mut select| {
                select
                    .query_map(params![job.to_string()], |row| event_from_row(row, job))?
                    .collect::<Result<Vec<_>, _>>()
            })
            .map_err(self.fail("read a job's recent events"))?;
        tx.commit().map_err(self.fail("end a read transaction"))?;
        events.reverse();
        Ok(events)
    }

    fn snapshots(
        &self,
        job: JobId,
        after: i64,
        limit: usize,
    ) -> Result<Vec<SnapshotRecord>, StoreError> {
        let mut conn = self.lock();
        let tx = self.begin_read(&mut conn)?;
        self.ensure_job(&tx, job)?;
        let sql = format!(
            "SELECT at, payload FROM snapshots
             WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = ?1) AND at > ?2
             ORDER BY at {}",
            limit_clause(limit)
        );
        let snapshots = tx
            .prepare_cached(&sql)
            .and_then(|mut select| {
                select
                    .query_map(params![job.to_string(), after], |row| {
                        Ok(SnapshotRecord {
                            at: row.get(0)?,
                            payload: json_column(row, 1)?,
                        })
                    })?
                    .collect::<Result<Vec<_>, _>>()
            })
            .map_err(self.fail("read a job's snapshots"))?;
        tx.commit().map_err(self.fail("end a read transaction"))?;
        Ok(snapshots)
    }

    fn latest_snapshot(&self, job: JobId) -> Result<Option<SnapshotRecord>, StoreError> {
        let mut conn = self.lock();
        let tx = self.begin_read(&mut conn)?;
        self.ensure_job(&tx, job)?;
        let sql = "SELECT at, payload FROM snapshots
                     WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = ?1) ORDER BY at DESC LIMIT 1";
        let row = tx
            .prepare_cached(sql)
            .and_then(|mut select| {
                select
                    .query_map(params![job.to_string()], |row| {
                        Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?))
                    })?
                    .next()
                    .transpose()
            })
            .map_err(self.fail("read a job's latest snapshot"))?;
        tx.commit().map_err(self.fail("end a read transaction"))?;
        // Parsed after the connection is released: a 1,000-agent snapshot is a quarter of a
        // megabyte of JSON, and the dashboard's event reads wait for this connection.
        drop(conn);
        row.map(|(at, text)| {
            let payload = serde_json::from_str(&text).map_err(|e| {
                self.fail("read a job's latest snapshot")(
                    rusqlite::Error::FromSqlConversionFailure(1, Type::Text, Box::new(e)),
                )
            })?;
            Ok(SnapshotRecord { at, payload })
        })
        .transpose()
    }

    fn wait_for_events(&self, _job: JobId, timeout: Duration) {
        self.commits.wait(&self.commits_seen, timeout);
    }
}

impl DeadLetters for SqliteStore {
    fn dead_letters(&self, job: JobId) -> Result<Vec<DeadLetter>, StoreError> {
        let mut conn = self.lock();
        let tx = self.begin_read(&mut conn)?;
        self.ensure_job(&tx, job)?;
        let dead = ItemStatus::DeadLettered.as_str();
        let items = tx
            .prepare_cached(&format!(
                "SELECT {ITEM_COLUMNS} FROM items
                   WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = ?1)
                     AND status = ?2 ORDER BY idx"
            ))
            .and_then(|mut select| {
                select
                    .query_map(params![job.to_string(), dead], item_from_row)?
                    .collect::<Result<Vec<_>, _>>()
            })
            .map_err(self.fail("read the dead-lettered items"))?;
        let attempts = tx
            .prepare_cached(&format!(
                "SELECT {ATTEMPT_COLUMNS} FROM attempts a
                 JOIN items i ON i.job_ref = a.job_ref AND i.idx = a.item_idx
                 WHERE a.job_ref = (SELECT job_ref FROM jobs WHERE id = ?1) AND i.status = ?2
                 ORDER BY a.item_idx, a.number"
            ))
            .and_then(|mut select| {
                select
                    .query_map(params![job.to_string(), dead], attempt_from_row)?
                    .collect::<Result<Vec<_>, _>>()
            })
            .map_err(self.fail("read the dead-lettered items' attempts"))?;
        tx.commit().map_err(self.fail("end a read transaction"))?;
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

impl Claims for SqliteStore {
    fn claim_items(
        &self,
        job: JobId,
        claimer: &str,
        limit: usize,
        lease_until: i64,
        at: i64,
    ) -> Result<Vec<ClaimedItem>, StoreError> {
        let mut conn = self.lock();
        let tx = self.begin_write(&mut conn)?;
        self.ensure_job(&tx, job)?;
        let id = job.to_string();
        let open: bool = tx
            .query_row(
                "SELECT status = 'running' AND phase IS 'map' FROM jobs WHERE id = ?1",
                params![id],
                |row| row.get(0),
            )
            .map_err(self.fail("read a job's status"))?;
        if !open || limit == 0 {
            tx.commit().map_err(self.fail("end a claim"))?;
            return Ok(Vec::new());
        }
        // INDEXED BY: without it the planner walks the primary key in order (it also gives
        // `ORDER BY idx`), reading every finished item of the job before the first unfinished.
        let rows = tx
            .prepare_cached(&format!(
                "SELECT i.idx, i.key, i.value, i.status, i.attempts, i.claimed_by,
                        (SELECT COALESCE(MAX(a.number), 0) FROM attempts a
                         WHERE a.job_ref = i.job_ref AND a.item_idx = i.idx),
                        i.lease_until IS NOT NULL
                 FROM items i INDEXED BY items_unfinished
                 WHERE i.job_ref = (SELECT job_ref FROM jobs WHERE id = ?1)
                   AND i.status IN ('pending', 'failed', 'running')
                   AND ((i.lease_until IS NULL AND i.status <> 'running') OR i.lease_until < ?2)
                 ORDER BY i.idx {}",
                limit_clause(limit)
            ))
            .and_then(|mut select| {
                select
                    .query_map(params![id, at], |row| {
                        Ok((
                            unsigned(row, 0)?,
                            row.get::<_, String>(1)?,
                            row.get::<_, String>(2)?,
                            text::<ItemStatus>(row, 3)?,
                            row.get::<_, u32>(4)?,
                            row.get::<_, Option<String>>(5)?,
                            row.get::<_, u32>(6)?,
                            row.get::<_, bool>(7)?,
                        ))
                    })?
                    .collect::<Result<Vec<_>, _>>()
            })
            .map_err(self.fail("find items to claim"))?;
        let mut claimed = Vec::with_capacity(rows.len());
        for (index, key, value, status, attempts, holder, last_number, leased) in rows {
            if status == ItemStatus::Running {
                tx.execute(
                    "UPDATE attempts SET outcome = 'interrupted', ended_at = ?3, error = ?4
                     WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = ?1) AND item_idx = ?2 AND outcome IS NULL",
                    params![id, int(index), at, LEASE_EXPIRED_ERROR],
                )
                .map_err(self.fail("close an attempt whose lease ran out"))?;
                tx.execute(
                    "UPDATE items SET status = 'pending'
                       WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = ?1) AND idx = ?2",
                    params![id, int(index)],
                )
                .map_err(self.fail("requeue an item whose lease ran out"))?;
                insert_event(
                    &tx,
                    job,
                    at,
                    EventKind::ItemRequeued.as_str(),
                    Some(&key),
                    &serde_json::json!({ "reason": "lease_expired", "claimed_by": holder }),
                )
                .map_err(self.fail("record an event"))?;
            }
            tx.execute(
                "UPDATE items SET claimed_by = ?3, lease_until = ?4
                 WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = ?1) AND idx = ?2",
                params![id, int(index), claimer, lease_until],
            )
            .map_err(self.fail("claim an item"))?;
            claimed.push(ClaimedItem {
                index,
                key,
                value,
                attempts,
                last_number,
                lease_expired: leased,
            });
        }
        tx.commit().map_err(self.fail("commit a claim"))?;
        Ok(claimed)
    }

    fn renew_claims(&self, job: JobId, claimer: &str, lease_until: i64) -> Result<u64, StoreError> {
        let mut conn = self.lock();
        let tx = self.begin_write(&mut conn)?;
        let changed = tx
            .execute(
                "UPDATE items SET lease_until = ?3
                 WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = ?1) AND claimed_by = ?2
                   AND status IN ('pending', 'failed', 'running')",
                params![job.to_string(), claimer, lease_until],
            )
            .map_err(self.fail("renew a lease"))?;
        tx.commit().map_err(self.fail("commit a lease"))?;
        Ok(changed as u64)
    }

    fn release_claims(&self, job: JobId, claimer: &str) -> Result<u64, StoreError> {
        let mut conn = self.lock();
        let tx = self.begin_write(&mut conn)?;
        let changed = tx
            .execute(
                "UPDATE items SET claimed_by = NULL, lease_until = NULL
                 WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = ?1) AND claimed_by = ?2 AND status <> 'running'",
                params![job.to_string(), claimer],
            )
            .map_err(self.fail("release claimed items"))?;
        tx.commit().map_err(self.fail("commit a release"))?;
        Ok(changed as u64)
    }
}

impl Recovery for SqliteStore {
    fn take_job(&self, job: JobId, expected: &Owner, claim: &Owner) -> Result<bool, StoreError> {
        let mut conn = self.lock();
        let tx = self.begin_write(&mut conn)?;
        self.ensure_job(&tx, job)?;
        let sql = "UPDATE jobs
                   SET owner_pid = ?5, owner_host = ?6, heartbeat_at = ?7, status = 'running',
                       finished_at = NULL, updated_at = MAX(updated_at, COALESCE(?7, 0))
                   WHERE id = ?1 AND owner_pid IS ?2 AND owner_host IS ?3 AND heartbeat_at IS ?4";
        let changed = tx
            .execute(
                sql,
                params![
                    job.to_string(),
                    expected.pid,
                    expected.host,
                    expected.heartbeat_at,
                    claim.pid,
                    claim.host,
                    claim.heartbeat_at,
                ],
            )
            .map_err(self.fail("take over a job"))?;
        tx.commit().map_err(self.fail("commit a job's new owner"))?;
        Ok(changed == 1)
    }

    fn requeue_in_flight(&self, job: JobId, at: i64) -> Result<Requeued, StoreError> {
        let mut conn = self.lock();
        let tx = self.begin_write(&mut conn)?;
        self.ensure_job(&tx, job)?;
        let id = job.to_string();
        let interrupted = tx
            .prepare(
                "SELECT i.key FROM attempts a JOIN items i ON i.job_ref = a.job_ref AND i.idx = a.item_idx
                 WHERE a.job_ref = (SELECT job_ref FROM jobs WHERE id = ?1) AND a.outcome IS NULL
                   AND (i.lease_until IS NULL OR i.lease_until < ?2)
                 ORDER BY a.item_idx",
            )
            .and_then(|mut select| {
                select
                    .query_map(params![id, at], |row| row.get::<_, String>(0))?
                    .collect::<Result<Vec<_>, _>>()
            })
            .map_err(self.fail("find attempts in flight"))?;
        // Items a live worker holds under a lease stay with it (scale-out).
        tx.execute(
            "UPDATE attempts SET outcome = 'interrupted', ended_at = ?2,
                 error = 'the process running the job stopped during this attempt'
             WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = ?1) AND outcome IS NULL
               AND item_idx IN (SELECT idx FROM items
                 WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = ?1)
                                AND (lease_until IS NULL OR lease_until < ?2))",
            params![id, at],
        )
        .map_err(self.fail("close attempts in flight"))?;
        tx.execute(
            "UPDATE items SET status = 'pending'
             WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = ?1) AND status = 'running'
               AND (lease_until IS NULL OR lease_until < ?2)",
            params![id, at],
        )
        .map_err(self.fail("requeue running items"))?;
        tx.commit().map_err(self.fail("commit the requeue"))?;
        Ok(Requeued { interrupted })
    }

    fn unfinished_items(
        &self,
        job: JobId,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<UnfinishedItem>, StoreError> {
        let mut conn = self.lock();
        let tx = self.begin_read(&mut conn)?;
        self.ensure_job(&tx, job)?;
        let sql = format!(
            "SELECT i.idx, i.key, i.value, i.status, i.attempts,
                    (SELECT COALESCE(MAX(a.number), 0) FROM attempts a
                     WHERE a.job_ref = i.job_ref AND a.item_idx = i.idx)
             FROM items i INDEXED BY items_unfinished
             WHERE i.job_ref = (SELECT job_ref FROM jobs WHERE id = ?1) AND i.idx > ?2
               AND i.status IN ('pending', 'failed', 'running')
             ORDER BY i.idx {}",
            limit_clause(limit)
        );
        let items = tx
            .prepare_cached(&sql)
            .and_then(|mut select| {
                select
                    .query_map(params![job.to_string(), after.map_or(-1, int)], |row| {
                        Ok(UnfinishedItem {
                            index: unsigned(row, 0)?,
                            key: row.get(1)?,
                            value: row.get(2)?,
                            status: text(row, 3)?,
                            attempts: row.get(4)?,
                            last_number: row.get(5)?,
                        })
                    })?
                    .collect::<Result<Vec<_>, _>>()
            })
            .map_err(self.fail("read the unfinished items"))?;
        tx.commit().map_err(self.fail("end a read transaction"))?;
        Ok(items)
    }

    fn rewind(&self, job: JobId, checkpoint: i64, at: i64) -> Result<Vec<String>, StoreError> {
        let mut conn = self.lock();
        let tx = self.begin_write(&mut conn)?;
        self.ensure_job(&tx, job)?;
        let id = job.to_string();
        let last_seq: Option<i64> = tx
            .query_row(
                "SELECT last_event_seq FROM checkpoints
                   WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = ?1) AND id = ?2",
                params![id, checkpoint],
                |row| row.get(0),
            )
            .optional()
            .map_err(self.fail("find the checkpoint"))?;
        let last_seq = last_seq.ok_or(StoreError::CheckpointNotFound { job, checkpoint })?;
        // Items whose completion (or skip) was recorded after the checkpoint.
        let rewound = "SELECT i.idx FROM events e JOIN items i
                         ON i.job_ref = e.job_ref AND i.key = e.item_key
                       WHERE e.job_ref = (SELECT job_ref FROM jobs WHERE id = ?1) AND e.seq > ?2
                         AND e.kind IN ('item_completed', 'item_skipped')
                         AND i.status IN ('completed', 'skipped')";
        let keys = tx
            .prepare(&format!(
                "SELECT key FROM items
                   WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = ?1)
                     AND idx IN ({rewound}) ORDER BY idx"
            ))
            .and_then(|mut select| {
                select
                    .query_map(params![id, last_seq], |row| row.get::<_, String>(0))?
                    .collect::<Result<Vec<_>, _>>()
            })
            .map_err(self.fail("find the items to rewind"))?;
        tx.execute(
            &format!(
                "UPDATE attempts SET superseded = 1
                 WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = ?1)
                   AND outcome = 'succeeded' AND superseded = 0
                   AND item_idx IN ({rewound})"
            ),
            params![id, last_seq],
        )
        .map_err(self.fail("mark superseded attempts"))?;
        tx.execute(
            &format!(
                "UPDATE items SET status = 'pending', attempts = 0
                 WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = ?1) AND idx IN ({rewound})"
            ),
            params![id, last_seq],
        )
        .map_err(self.fail("rewind items"))?;
        tx.execute(
            "UPDATE jobs SET updated_at = MAX(updated_at, ?2) WHERE id = ?1",
            params![id, at],
        )
        .map_err(self.fail("rewind the job"))?;
        tx.commit().map_err(self.fail("commit the rewind"))?;
        Ok(keys)
    }

    fn update_item_values(
        &self,
        job: JobId,
        changes: &[(u64, String)],
        at: i64,
    ) -> Result<Vec<String>, StoreError> {
        let mut conn = self.lock();
        let tx = self.begin_write(&mut conn)?;
        self.ensure_job(&tx, job)?;
        let id = job.to_string();
        let mut requeued = Vec::new();
        for (index, value) in changes {
            let row: Option<(String, ItemStatus)> = tx
                .prepare_cached(
                    "SELECT key, status FROM items
                                   WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = ?1)
                                     AND idx = ?2",
                )
                .and_then(|mut select| {
                    select
                        .query_row(params![id, int(*index)], |r| Ok((r.get(0)?, text(r, 1)?)))
                        .optional()
                })
                .map_err(self.fail("read an item"))?;
            let (key, status) = row.ok_or(StoreError::ItemNotFound { job, index: *index })?;
            let finished = matches!(
                status,
                ItemStatus::Completed | ItemStatus::Skipped | ItemStatus::DeadLettered
            );
            tx.prepare_cached(
                "UPDATE items SET value = ?3
                                 WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = ?1)
                                   AND idx = ?2",
            )
            .and_then(|mut update| update.execute(params![id, int(*index), value]))
            .map_err(self.fail("update an item's value"))?;
            if !finished {
                continue;
            }
            tx.prepare_cached(
                "UPDATE attempts SET superseded = 1
                 WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = ?1) AND item_idx = ?2 AND outcome = 'succeeded'",
            )
            .and_then(|mut update| update.execute(params![id, int(*index)]))
            .map_err(self.fail("mark superseded attempts"))?;
            tx.prepare_cached(
                "UPDATE items SET status = 'pending', attempts = 0
                   WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = ?1) AND idx = ?2",
            )
            .and_then(|mut update| update.execute(params![id, int(*index)]))
            .map_err(self.fail("requeue an item"))?;
            tx.prepare_cached(
                "INSERT INTO events (job_ref, at, kind, item_key, payload)
                 VALUES ((SELECT job_ref FROM jobs WHERE id = ?1), ?2, 'item_requeued', ?3, '{\"reason\":\"input_changed\"}')",
            )
            .and_then(|mut insert| insert.execute(params![id, at, key]))
            .map_err(self.fail("record an event"))?;
            requeued.push(key);
        }
        tx.commit().map_err(self.fail("commit the changed items"))?;
        Ok(requeued)
    }
}

impl Integrity for SqliteStore {
    fn probe_write(&self) -> Result<(), StoreError> {
        let mut conn = self.lock();
        let tx = self.begin_write(&mut conn)?;
        // A no-op write, so a read-only file fails here rather than later.
        tx.execute("UPDATE jobs SET id = id WHERE 0", [])
            .map_err(self.fail("write to the store"))?;
        tx.rollback().map_err(self.fail("roll back a probe"))
    }

    fn job_contents(&self, job: JobId) -> Result<JobContents, StoreError> {
        let mut conn = self.lock();
        let tx = self.begin_read(&mut conn)?;
        let mut record = tx
            .prepare_cached(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?1"))
            .and_then(|mut select| {
                select
                    .query_row(params![job.to_string()], job_from_row)
                    .optional()
            })
            .map_err(self.fail("read a job"))?
            .ok_or_else(|| job_not_found(job))?;
        record.counts = self.counts(&tx, job)?;
        let items = tx
            .prepare_cached(&format!(
                "SELECT {ITEM_COLUMNS} FROM items
                   WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = ?1) ORDER BY idx"
            ))
            .and_then(|mut select| {
                select
                    .query_map(params![job.to_string()], item_from_row)?
                    .collect::<Result<Vec<_>, _>>()
            })
            .map_err(self.fail("read a job's items"))?;
        let attempts = tx
            .prepare_cached(&format!(
                "SELECT {ATTEMPT_COLUMNS} FROM attempts a
                 JOIN items i ON i.job_ref = a.job_ref AND i.idx = a.item_idx
                 WHERE a.job_ref = (SELECT job_ref FROM jobs WHERE id = ?1)
                 ORDER BY a.item_idx, a.number"
            ))
            .and_then(|mut select| {
                select
                    .query_map(params![job.to_string()], attempt_from_row)?
                    .collect::<Result<Vec<_>, _>>()
            })
            .map_err(self.fail("read a job's attempts"))?;
        tx.commit().map_err(self.fail("end a read transaction"))?;
        Ok(JobContents {
            job: record,
            items,
            attempts,
        })
    }

    fn storage_problems(&self) -> Result<Vec<String>, StoreError> {
        let conn = self.lock();
        let mut problems = Vec::new();
        let lines = conn
            .prepare("PRAGMA integrity_check")
            .and_then(|mut check| {
                check
                    .query_map([], |row| row.get::<_, String>(0))?
                    .collect::<Result<Vec<_>, _>>()
            })
            .map_err(self.fail("check the database's integrity"))?;
        problems.extend(lines.into_iter().filter(|line| line != "ok"));
        let violations = conn
            .prepare("PRAGMA foreign_key_check")
            .and_then(|mut check| {
                check
                    .query_map([], |row| {
                        Ok((
                            row.get::<_, String>(0)?,
                            row.get::<_, Option<i64>>(1)?,
                            row.get::<_, String>(2)?,
                        ))
                    })?
                    .collect::<Result<Vec<_>, _>>()
            })
            .map_err(self.fail("check the database's foreign keys"))?;
        problems.extend(violations.into_iter().map(|(table, rowid, parent)| {
            let row = rowid.map_or_else(String::new, |id| format!(" row {id}"));
            format!("{table}{row} refers to a missing row of {parent}")
        }));
        Ok(problems)
    }

    fn repair(
        &self,
        job: JobId,
        actions: &[RepairAction],
        at: i64,
        payload: serde_json::Value,
    ) -> Result<(), StoreError> {
        let mut conn = self.lock();
        let tx = self.begin_write(&mut conn)?;
        self.ensure_job(&tx, job)?;
        let id = job.to_string();
        let conflict = |what: String| StoreError::RepairConflict { job, what };
        for action in actions {
            match action {
                RepairAction::InterruptAttempt { item_index, number } => {
                    let sql = "UPDATE attempts
                               SET outcome = ?4, ended_at = ?5,
                                   error = COALESCE(error, ?6)
                               WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = ?1)
                                 AND item_idx = ?2 AND number = ?3
                                 AND outcome IS NULL";
                    let changed = tx
                        .execute(
                            sql,
                            params![
                                id,
                                int(*item_index),
                                number,
                                AttemptOutcome::Interrupted.as_str(),
                                at,
                                REPAIRED_ATTEMPT_ERROR,
                            ],
                        )
                        .map_err(self.fail("close an attempt in flight"))?;
                    expect_change(changed, || {
                        conflict(format!(
                            "attempt {number} of item {item_index} is no longer in flight"
                        ))
                    })?;
                }
                RepairAction::RequeueItem { item_index, from } => {
                    let changed = tx
                        .execute(
                            "UPDATE items SET status = ?4
                             WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = ?1) AND idx = ?2 AND status = ?3",
                            params![
                                id,
                                int(*item_index),
                                from.as_str(),
                                ItemStatus::Pending.as_str()
                            ],
                        )
                        .map_err(self.fail("requeue an item"))?;
                    expect_change(changed, || {
                        conflict(format!("item {item_index} is no longer {from}"))
                    })?;
                }
                RepairAction::SetJobStatus { from, to } => {
                    self.set_job_status(&tx, job, *from, *to, at)?
                        .then_some(())
                        .ok_or_else(|| conflict(format!("the job is no longer {from}")))?;
                }
            }
        }
        insert_event(&tx, job, at, "repaired", None, &payload)
            .map_err(self.fail("record a repair"))?;
        tx.execute(
            "UPDATE jobs SET updated_at = MAX(updated_at, ?2) WHERE id = ?1",
            params![id, at],
        )
        .map_err(self.fail("update a job"))?;
        tx.commit().map_err(self.fail("commit a repair"))
    }
}

impl Transfer for SqliteStore {
    fn copy_details(&self, job: JobId) -> Result<CopyDetails, StoreError> {
        let mut conn = self.lock();
        let tx = self.begin_read(&mut conn)?;
        self.ensure_job(&tx, job)?;
        let id = job.to_string();
        let superseded = tx
            .prepare_cached(
                "SELECT item_idx, number FROM attempts
                   WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = ?1) AND superseded = 1
                 ORDER BY item_idx, number",
            )
            .and_then(|mut select| {
                select
                    .query_map(params![id], |row| Ok((unsigned(row, 0)?, row.get(1)?)))?
                    .collect::<Result<Vec<_>, _>>()
            })
            .map_err(self.fail("read superseded attempts"))?;
        let checkpoint_seqs = tx
            .prepare_cached(
                "SELECT id, last_event_seq FROM checkpoints
                               WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = ?1)",
            )
            .and_then(|mut select| {
                select
                    .query_map(params![id], |row| Ok((row.get(0)?, row.get(1)?)))?
                    .collect::<Result<Vec<_>, _>>()
            })
            .map_err(self.fail("read the checkpoints"))?;
        tx.commit().map_err(self.fail("end a read transaction"))?;
        Ok(CopyDetails {
            superseded,
            checkpoint_seqs,
        })
    }

    fn import_job(&self, dump: &JobDump) -> Result<(), StoreError> {
        let mut conn = self.lock();
        let tx = self.begin_write(&mut conn)?;
        let job = &dump.contents.job;
        let id = job.id.to_string();
        let fail = |operation| self.fail(operation);
        let exists: bool = tx
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM jobs WHERE id = ?1)",
                params![id],
                |row| row.get(0),
            )
            .map_err(fail("look up a job"))?;
        if exists {
            return Err(StoreError::JobExists { job: job.id });
        }
        tx.execute(
            "INSERT INTO jobs (id, name, status, phase, spec, spec_hash, source, max_parallel,
                               created_at, started_at, updated_at, finished_at, duration_ms,
                               owner_pid, owner_host, heartbeat_at, origin, input_fingerprint)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,
                     ?18)",
            params![
                id,
                job.name,
                job.status.as_str(),
                job.phase.map(|p| p.as_str()),
                job.spec,
                job.spec_hash,
                job.source
                    .as_ref()
                    .map(|p| p.to_string_lossy().into_owned()),
                job.max_parallel,
                job.created_at,
                job.started_at,
                job.updated_at,
                job.finished_at,
                job.duration_ms,
                job.owner_pid,
                job.owner_host,
                job.heartbeat_at,
                job.origin,
                job.input_fingerprint,
            ],
        )
        .map_err(fail("copy a job"))?;
        {
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO items (job_ref, idx, key, value, status, attempts)
                     VALUES ((SELECT job_ref FROM jobs WHERE id = ?1), ?2, ?3, ?4, ?5, ?6)",
                )
                .map_err(fail("copy items"))?;
            for item in &dump.contents.items {
                insert
                    .execute(params![
                        id,
                        int(item.index),
                        item.key,
                        item.value,
                        item.status.as_str(),
                        item.attempts
                    ])
                    .map_err(fail("copy items"))?;
            }
        }
        {
            let superseded: HashSet<(u64, u32)> = dump.superseded.iter().copied().collect();
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO attempts (job_ref, item_idx, number, agent, started_at, ended_at,
                                           duration_us, outcome, exit_code, error, steps,
                                           stdout_tail, stderr_tail, superseded)
                     VALUES ((SELECT job_ref FROM jobs WHERE id = ?1), ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
                )
                .map_err(fail("copy attempts"))?;
            for a in &dump.contents.attempts {
                let steps = StoredSteps::to_json(&a.steps).to_string();
                insert
                    .execute(params![
                        id,
                        int(a.item_index),
                        a.number,
                        a.agent,
                        a.started_at,
                        a.ended_at,
                        a.duration_us.map(int),
                        a.outcome.map(|o| o.as_str()),
                        a.exit_code,
                        a.error,
                        steps,
                        a.stdout_tail,
                        a.stderr_tail,
                        i64::from(superseded.contains(&(a.item_index, a.number))),
                    ])
                    .map_err(fail("copy attempts"))?;
            }
        }
        let mut new_seqs = Vec::with_capacity(dump.events.len());
        for event in &dump.events {
            insert_event(
                &tx,
                job.id,
                event.at,
                &event.kind,
                event.item_key.as_deref(),
                &event.payload,
            )
            .map_err(fail("copy events"))?;
            new_seqs.push(tx.last_insert_rowid());
        }
        for snapshot in &dump.snapshots {
            tx.execute(
                "INSERT INTO snapshots (job_ref, at, payload)
                   VALUES ((SELECT job_ref FROM jobs WHERE id = ?1), ?2, ?3)",
                params![id, snapshot.at, snapshot.payload.to_string()],
            )
            .map_err(fail("copy snapshots"))?;
        }
        for ((checkpoint, _), position) in dump.checkpoints.iter().zip(dump.checkpoint_positions())
        {
            tx.execute(
                "INSERT INTO checkpoints (job_ref, at, phase, reason, last_event_seq, completed,
                                          dead_lettered, skipped)
                 VALUES ((SELECT job_ref FROM jobs WHERE id = ?1), ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    id,
                    checkpoint.at,
                    checkpoint.phase.map(|p| p.as_str()),
                    checkpoint.reason,
                    position.map_or(0, |p| new_seqs[p]),
                    int(checkpoint.completed),
                    int(checkpoint.dead_lettered),
                    int(checkpoint.skipped),
                ],
            )
            .map_err(fail("copy checkpoints"))?;
        }
        tx.commit().map_err(fail("commit a copied job"))
    }

    fn delete_job(&self, job: JobId) -> Result<(), StoreError> {
        let mut conn = self.lock();
        let tx = self.begin_write(&mut conn)?;
        let id = job.to_string();
        // Everything under the job (items, attempts, events, snapshots, checkpoints) goes
        // with it: ON DELETE CASCADE.
        let deleted = tx
            .execute("DELETE FROM jobs WHERE id = ?1", params![id])
            .map_err(self.fail("delete a job"))?;
        if deleted == 0 {
            return Err(StoreError::JobNotFound { job: id });
        }
        tx.commit().map_err(self.fail("commit a job's deletion"))
    }
}

/// The error recorded on an attempt that `mmm repair` closed.
const REPAIRED_ATTEMPT_ERROR: &str =
    "interrupted: the process running it was gone (closed by `mmm repair`)";

/// The columns of `items`, in the order [`item_from_row`] reads them.
const ITEM_COLUMNS: &str = "idx, key, value, status, attempts";

/// What a DLQ command does with the items it selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DlqMove {
    /// Back to `pending` with a fresh retry budget.
    Retry,
    /// To `skipped`, given up on.
    Purge,
}

impl SqliteStore {
    /// Selects dead-lettered items (all, or those named by `keys`) and moves them as `how`
    /// says, with their events and the job status they imply, in one transaction.
    fn move_dead_lettered(
        &self,
        job: JobId,
        keys: Option<&[String]>,
        at: i64,
        how: DlqMove,
    ) -> Result<DlqChange, StoreError> {
        let mut conn = self.lock();
        let tx = self.begin_write(&mut conn)?;
        let id = job.to_string();
        let status_before: JobStatus = tx
            .query_row(
                "SELECT status FROM jobs WHERE id = ?1",
                params![id],
                |row| text(row, 0),
            )
            .optional()
            .map_err(self.fail("read a job"))?
            .ok_or_else(|| job_not_found(job))?;
        let selected = match keys {
            None => tx
                .prepare_cached(&format!(
                    "SELECT {ITEM_COLUMNS} FROM items
                     WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = ?1)
                       AND status = ?2 ORDER BY idx"
                ))
                .and_then(|mut select| {
                    select
                        .query_map(
                            params![id, ItemStatus::DeadLettered.as_str()],
                            item_from_row,
                        )?
                        .collect::<Result<Vec<_>, _>>()
                })
                .map_err(self.fail("read the dead-lettered items"))?,
            Some(keys) => self.named_dead_letters(&tx, job, keys)?,
        };

        let (kind, to) = match how {
            DlqMove::Retry => ("dlq_retry", ItemStatus::Pending),
            DlqMove::Purge => ("dlq_purged", ItemStatus::Skipped),
        };
        for item in &selected {
            tx.prepare_cached(
                "UPDATE items SET status = ?3, attempts = CASE WHEN ?4 THEN 0 ELSE attempts END
                 WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = ?1) AND idx = ?2",
            )
            .and_then(|mut update| {
                update.execute(params![
                    id,
                    int(item.index),
                    to.as_str(),
                    how == DlqMove::Retry
                ])
            })
            .map_err(self.fail("move an item out of the dead-letter queue"))?;
            let payload = serde_json::json!({ "attempts": item.attempts, "status": to });
            insert_event(&tx, job, at, kind, Some(&item.key), &payload)
                .map_err(self.fail("record a dead-letter queue change"))?;
        }

        let counts = self.counts(&tx, job)?;
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
            self.set_job_status(&tx, job, status_before, status_after, at)?;
            let payload = serde_json::json!({
                "from": status_before,
                "to": status_after,
                "by": kind,
            });
            insert_event(&tx, job, at, "job_status_changed", None, &payload)
                .map_err(self.fail("record a job status change"))?;
        }
        if !selected.is_empty() {
            tx.execute(
                "UPDATE jobs SET updated_at = MAX(updated_at, ?2) WHERE id = ?1",
                params![id, at],
            )
            .map_err(self.fail("update a job"))?;
        }
        tx.commit()
            .map_err(self.fail("commit a dead-letter queue change"))?;
        Ok(DlqChange {
            items: selected.into_iter().map(|item| item.key).collect(),
            status_before,
            status_after,
        })
    }

    /// The items named by `keys` (repeats ignored), in input order; every one must exist and
    /// be dead-lettered.
    fn named_dead_letters(
        &self,
        tx: &Transaction<'_>,
        job: JobId,
        keys: &[String],
    ) -> Result<Vec<ItemRecord>, StoreError> {
        let mut select = tx
            .prepare_cached(&format!(
                "SELECT {ITEM_COLUMNS} FROM items
                   WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = ?1) AND key = ?2"
            ))
            .map_err(self.fail("read an item"))?;
        let (mut found, mut unknown, mut not_dead) = (Vec::new(), Vec::new(), Vec::new());
        let mut seen = std::collections::HashSet::new();
        for key in keys.iter().filter(|key| seen.insert(key.as_str())) {
            let item = select
                .query_row(params![job.to_string(), key], item_from_row)
                .optional()
                .map_err(self.fail("read an item"))?;
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

    /// Sets the job's status if it is `from` (and `finished_at` as `to` implies); false when
    /// the job's status is not `from`.
    fn set_job_status(
        &self,
        tx: &Transaction<'_>,
        job: JobId,
        from: JobStatus,
        to: JobStatus,
        at: i64,
    ) -> Result<bool, StoreError> {
        let changed = tx
            .execute(
                "UPDATE jobs
                 SET status = ?3,
                     finished_at = CASE WHEN ?4 THEN COALESCE(finished_at, ?5) ELSE NULL END
                 WHERE id = ?1 AND status = ?2",
                params![
                    job.to_string(),
                    from.as_str(),
                    to.as_str(),
                    to.is_finished(),
                    at
                ],
            )
            .map_err(self.fail("record a job status"))?;
        Ok(changed > 0)
    }
}

/// Appends an event inside a write transaction.
fn insert_event(
    tx: &Transaction<'_>,
    job: JobId,
    at: i64,
    kind: &str,
    item_key: Option<&str>,
    payload: &serde_json::Value,
) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO events (job_ref, at, kind, item_key, payload)
           VALUES ((SELECT job_ref FROM jobs WHERE id = ?1), ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        job.to_string(),
        at,
        kind,
        item_key,
        payload.to_string()
    ])?;
    Ok(())
}

/// Reads a row of [`ITEM_COLUMNS`].
fn item_from_row(row: &Row<'_>) -> rusqlite::Result<ItemRecord> {
    Ok(ItemRecord {
        index: unsigned(row, 0)?,
        key: row.get(1)?,
        value: row.get(2)?,
        status: text(row, 3)?,
        attempts: row.get(4)?,
    })
}

/// Reads a row of `seq, at, kind, item_key, payload` from `events`.
fn event_from_row(row: &Row<'_>, job: JobId) -> rusqlite::Result<EventRecord> {
    Ok(EventRecord {
        seq: row.get(0)?,
        job,
        at: row.get(1)?,
        kind: row.get(2)?,
        item_key: row.get(3)?,
        payload: json_column(row, 4)?,
    })
}

/// Reads a row of [`Store::items_page`]'s query: the item's five columns, then its last
/// attempt's (all NULL when it has none).
fn paged_item_from_row(row: &Row<'_>) -> rusqlite::Result<PagedItem> {
    let item = item_from_row(row)?;
    let last_attempt = match row.get::<_, Option<u32>>(5)? {
        None => None,
        Some(number) => Some(AttemptRecord {
            item_index: item.index,
            item_key: item.key.clone(),
            number,
            agent: row.get(6)?,
            started_at: row.get(7)?,
            ended_at: row.get(8)?,
            duration_us: optional_unsigned(row, 9)?,
            outcome: optional_text::<AttemptOutcome>(row, 10)?,
            exit_code: row.get(11)?,
            error: row.get(12)?,
            steps: json_column::<StoredSteps>(row, 13)?.0,
            stdout_tail: row.get(14)?,
            stderr_tail: row.get(15)?,
        }),
    };
    Ok(PagedItem { item, last_attempt })
}

/// Reads a row of [`ATTEMPT_COLUMNS`].
fn attempt_from_row(row: &Row<'_>) -> rusqlite::Result<AttemptRecord> {
    Ok(AttemptRecord {
        item_index: unsigned(row, 0)?,
        item_key: row.get(1)?,
        number: row.get(2)?,
        agent: row.get(3)?,
        started_at: row.get(4)?,
        ended_at: row.get(5)?,
        duration_us: optional_unsigned(row, 6)?,
        outcome: optional_text::<AttemptOutcome>(row, 7)?,
        exit_code: row.get(8)?,
        error: row.get(9)?,
        steps: json_column::<StoredSteps>(row, 10)?.0,
        stdout_tail: row.get(11)?,
        stderr_tail: row.get(12)?,
    })
}

/// Per-connection settings: WAL (readers never block the writer), `synchronous=NORMAL` (safe
/// against a process crash; CRATES.md has the figures), a busy timeout, and foreign keys.
/// [`configure`], for the process creating the store retried while another holds the file:
/// switching a new file to WAL takes a lock that SQLite does not wait for, and a reader that
/// opened the file a moment earlier can hold it.
fn configure_new(conn: &Connection, path: &Path, create: bool) -> Result<(), StoreError> {
    let deadline = std::time::Instant::now() + BUSY_TIMEOUT;
    loop {
        match configure(conn).map_err(|e| classify(path, "configure the connection", e)) {
            Err(StoreError::Busy { .. }) if create && std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            done => return done,
        }
    }
}

fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE_CAPACITY);
    // Before the switch to WAL, which writes a new file's header in a rollback transaction:
    // NORMAL spares that transaction some of FULL's fsyncs.
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    // The first statement that reads the file: a non-database fails here.
    let _mode: String =
        conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.pragma_update(None, "wal_autocheckpoint", WAL_AUTOCHECKPOINT_PAGES)?;
    Ok(())
}

/// Brings the schema to [`SCHEMA_VERSION`], refusing newer and foreign databases.
///
/// All pending migrations run in one `BEGIN IMMEDIATE` transaction that re-reads the version,
/// so two processes opening a new store at once migrate it once.
fn migrate(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let fail = |operation| move |e| classify(path, operation, e);
    let found = check_version(conn, path)?;
    if found == SCHEMA_VERSION {
        return Ok(());
    }

    // Migrations that rebuild tables (0004) drop a parent before its children's copies are
    // renamed over it; with foreign keys on, that drop would cascade into the old children.
    // The setting cannot change inside a transaction, hence here. The migrations copy only
    // rows whose parent exists (the conformance suite checks the keys of a migrated store).
    conn.pragma_update(None, "foreign_keys", "OFF")
        .map_err(fail("start upgrading the schema"))?;
    let upgraded = upgrade(conn, path);
    conn.pragma_update(None, "foreign_keys", "ON")
        .map_err(fail("finish upgrading the schema"))?;
    upgraded
}

/// Runs the pending migrations in one transaction, with foreign keys off (see [`migrate`]).
fn upgrade(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let fail = |operation| move |e| classify(path, operation, e);
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(fail("start upgrading the schema"))?;
    let found = check_version(&tx, path)?;
    let upgraded = if found == 0 {
        // A new store: the current schema at once, not its history.
        tx.execute_batch(SCHEMA)
            .and_then(|()| tx.pragma_update(None, "user_version", SCHEMA_VERSION))
            .map_err(|source| (SCHEMA_VERSION, source))
    } else {
        run_migrations(&tx, found)
    };
    upgraded
        .and_then(|()| tx.commit().map_err(|source| (SCHEMA_VERSION, source)))
        .map_err(|(version, source)| StoreError::Migrate {
            path: path.to_path_buf(),
            version,
            source: source.into(),
        })
}

/// Runs the migrations after version `found`, each recording the version it brings the
/// schema to; on failure, that version and the error.
fn run_migrations(conn: &Connection, found: i64) -> Result<(), (i64, rusqlite::Error)> {
    for (from, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let version = from as i64 + 1;
        conn.execute_batch(sql)
            .and_then(|()| conn.pragma_update(None, "user_version", version))
            .map_err(|source| (version, source))?;
    }
    Ok(())
}

/// Reads the schema version, failing unless the file is an mmm store this binary can read
/// (or an empty database, version 0).
fn check_version(conn: &Connection, path: &Path) -> Result<i64, StoreError> {
    let fail = |e| classify(path, "read the schema version", e);
    let found: i64 = conn
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(fail)?;
    let application_id: i64 = conn
        .pragma_query_value(None, "application_id", |row| row.get(0))
        .map_err(fail)?;
    let foreign = if found == 0 {
        let tables: i64 = conn
            .query_row("SELECT COUNT(*) FROM sqlite_schema", [], |row| row.get(0))
            .map_err(fail)?;
        tables > 0
    } else {
        application_id != APPLICATION_ID
    };
    if foreign {
        return Err(StoreError::ForeignDatabase {
            path: path.to_path_buf(),
        });
    }
    if found > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew {
            path: path.to_path_buf(),
            found,
            supported: SCHEMA_VERSION,
        });
    }
    Ok(found)
}

/// Maps a SQLite error met while trying to do `operation` on the store at `path`.
fn classify(path: &Path, operation: &'static str, source: rusqlite::Error) -> StoreError {
    let path = path.to_path_buf();
    match source.sqlite_error_code() {
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => {
            return StoreError::Damaged {
                path,
                source: source.into(),
            };
        }
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
            return StoreError::Busy {
                path,
                operation,
                source: source.into(),
            };
        }
        _ => {}
    }
    match source {
        rusqlite::Error::FromSqlConversionFailure(..)
        | rusqlite::Error::IntegralValueOutOfRange(..)
        | rusqlite::Error::InvalidColumnType(..)
        | rusqlite::Error::Utf8Error(..) => StoreError::InvalidRecord {
            path,
            operation,
            source: Box::new(source),
        },
        source => StoreError::Statement {
            path,
            operation,
            source: source.into(),
        },
    }
}

/// Turns "no row changed" into `error`.
fn expect_change(changed: usize, error: impl FnOnce() -> StoreError) -> Result<(), StoreError> {
    if changed == 0 { Err(error()) } else { Ok(()) }
}

fn job_not_found(job: JobId) -> StoreError {
    StoreError::JobNotFound {
        job: job.to_string(),
    }
}

/// Reads a row of [`JOB_COLUMNS`]; the counts are filled in afterwards.
fn job_from_row(row: &Row<'_>) -> rusqlite::Result<JobRecord> {
    Ok(JobRecord {
        id: text(row, 0)?,
        name: row.get(1)?,
        status: text(row, 2)?,
        phase: optional_text::<Phase>(row, 3)?,
        spec: row.get(4)?,
        spec_hash: row.get(5)?,
        source: row.get::<_, Option<String>>(6)?.map(PathBuf::from),
        max_parallel: row.get(7)?,
        created_at: row.get(8)?,
        started_at: row.get(9)?,
        updated_at: row.get(10)?,
        finished_at: row.get(11)?,
        duration_ms: row.get(12)?,
        owner_pid: row.get(13)?,
        owner_host: row.get(14)?,
        heartbeat_at: row.get(15)?,
        origin: row.get(16)?,
        input_fingerprint: row.get(17)?,
        counts: ItemCounts::default(),
    })
}

/// A count, position or duration as SQLite stores integers. These stay far below `i64::MAX`
/// (e.g. 292,000 years of microseconds); the clamp only keeps the conversion total.
fn int(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// Reads a non-negative integer column.
fn unsigned(row: &Row<'_>, index: usize) -> rusqlite::Result<u64> {
    let value: i64 = row.get(index)?;
    u64::try_from(value).map_err(|_| rusqlite::Error::IntegralValueOutOfRange(index, value))
}

/// Reads a non-negative integer column that may be NULL.
fn optional_unsigned(row: &Row<'_>, index: usize) -> rusqlite::Result<Option<u64>> {
    match row.get::<_, Option<i64>>(index)? {
        None => Ok(None),
        Some(value) => u64::try_from(value)
            .map(Some)
            .map_err(|_| rusqlite::Error::IntegralValueOutOfRange(index, value)),
    }
}

/// Reads a JSON text column.
fn json_column<T: serde::de::DeserializeOwned>(row: &Row<'_>, index: usize) -> rusqlite::Result<T> {
    let text: String = row.get(index)?;
    serde_json::from_str(&text)
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(index, Type::Text, Box::new(e)))
}

/// Reads a text column with the type's `FromStr` (its canonical spelling): ids, statuses,
/// phases and outcomes are stored as text.
fn text<T>(row: &Row<'_>, index: usize) -> rusqlite::Result<T>
where
    T: FromStr,
    T::Err: Error + Send + Sync + 'static,
{
    row.get_ref(index)?
        .as_str()
        .map_err(rusqlite::Error::from)?
        .parse()
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(index, Type::Text, Box::new(e)))
}

/// Reads a nullable text column as [`text`] does.
fn optional_text<T>(row: &Row<'_>, index: usize) -> rusqlite::Result<Option<T>>
where
    T: FromStr,
    T::Err: Error + Send + Sync + 'static,
{
    match row.get_ref(index)? {
        ValueRef::Null => Ok(None),
        _ => text(row, index).map(Some),
    }
}

/// A store being created while another process polls for it (a test's `jobs_so_far`, `mmm
/// progress` started before the run): before the fix, 18 of 300 creations failed with "stayed
/// locked while trying to configure the connection" (the reader switched the new file to WAL
/// under the creator).
#[cfg(test)]
mod creation_race {
    use super::*;

    #[test]
    fn a_store_is_created_while_a_reader_polls_for_it() {
        let mut failures = Vec::new();
        for round in 0..200 {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("mmm.db");
            let reader_path = path.clone();
            let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let stop_reader = stop.clone();
            let reader = std::thread::spawn(move || {
                let mut errors = Vec::new();
                while !stop_reader.load(std::sync::atomic::Ordering::Relaxed) {
                    match SqliteStore::open(&reader_path, false) {
                        Ok(_) | Err(StoreError::NotFound { .. }) => {}
                        Err(e) => errors.push(e.to_string()),
                    }
                }
                errors
            });
            let created = SqliteStore::open(&path, true);
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            let reader_errors = reader.join().unwrap();
            if let Err(e) = created {
                failures.push(format!(
                    "round {round}: creator: {e}; reader: {reader_errors:?}"
                ));
            }
        }
        assert!(
            failures.is_empty(),
            "{} failures: {:?}",
            failures.len(),
            &failures[..failures.len().min(3)]
        );
    }
}

/// A new store is made from `schema.sql`, an old one is brought to the same version by the
/// migrations: both must end with the very same tables, columns, keys and indexes.
#[cfg(test)]
mod fresh_schema {
    use super::*;

    /// Everything about a schema that queries and constraints depend on, in a stable order.
    fn structure(conn: &Connection) -> Vec<String> {
        let mut out = Vec::new();
        let mut objects = conn
            .prepare("SELECT type, name, tbl_name, sql FROM sqlite_schema ORDER BY type, name")
            .unwrap();
        let objects: Vec<(String, String, String, Option<String>)> = objects
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let rows = |sql: &str| -> Vec<String> {
            let mut stmt = conn.prepare(sql).unwrap();
            let n = stmt.column_count();
            stmt.query_map([], |r| {
                let values: Vec<String> = (0..n)
                    .map(|i| match r.get::<_, rusqlite::types::Value>(i).unwrap() {
                        rusqlite::types::Value::Text(text) => format!("{text:?}"),
                        other => format!("{other:?}"),
                    })
                    .collect();
                Ok(values.join(" "))
            })
            .unwrap()
            .map(Result::unwrap)
            .collect()
        };
        for (kind, name, table, sql) in objects {
            out.push(format!("{kind} {name} on {table}"));
            // An automatic index has no SQL.
            let sql = sql.unwrap_or_default();
            if kind == "table" {
                out.extend(rows(&format!("PRAGMA table_xinfo('{name}')")));
                out.extend(rows(&format!("PRAGMA foreign_key_list('{name}')")));
                out.push(format!(
                    "without rowid: {}, autoincrement: {}",
                    sql.contains("WITHOUT ROWID"),
                    sql.contains("AUTOINCREMENT")
                ));
            }
            if kind == "index" {
                out.extend(rows(&format!("PRAGMA index_xinfo('{name}')")));
                let partial = sql
                    .split_once(" WHERE ")
                    .map(|(_, w)| w.split_whitespace().collect::<Vec<_>>().join(" "));
                out.push(format!("partial: {partial:?}"));
            }
        }
        for pragma in ["user_version", "application_id"] {
            let value: i64 = conn.pragma_query_value(None, pragma, |r| r.get(0)).unwrap();
            out.push(format!("{pragma} = {value}"));
        }
        out
    }

    #[test]
    fn fresh_schema_matches_migrations() {
        let dir = tempfile::tempdir().unwrap();
        let fresh = dir.path().join("fresh.db");
        drop(SqliteStore::open(&fresh, true).unwrap());

        let migrated = Connection::open_in_memory().unwrap();
        migrated.pragma_update(None, "foreign_keys", "OFF").unwrap();
        run_migrations(&migrated, 0).unwrap();

        let fresh = structure(&Connection::open(&fresh).unwrap());
        let migrated = structure(&migrated);
        assert!(
            fresh.iter().any(|line| line.starts_with("table items"))
                && fresh
                    .iter()
                    .any(|line| line.contains("without rowid: true")),
            "the comparison saw the schema: {fresh:#?}"
        );
        let only_fresh: Vec<&String> = fresh.iter().filter(|l| !migrated.contains(l)).collect();
        let only_migrated: Vec<&String> = migrated.iter().filter(|l| !fresh.contains(l)).collect();
        assert!(
            fresh == migrated,
            "schema.sql differs from the migrations:\n  only in schema.sql: {only_fresh:#?}\n  \
             only after the migrations: {only_migrated:#?}"
        );
    }
}

#[cfg(test)]
mod statement_cache {
    use rusqlite::StatementStatus;

    use super::*;

    /// The dashboard reads a job's new events many times a second: the cached statement must
    /// run again as it is, not be compiled anew each time (as a bound LIMIT made it).
    #[test]
    fn reading_events_again_does_not_prepare_the_statement_again() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("mmm.db"), true).unwrap();
        let job = JobId::new();
        store
            .lock()
            .execute(
                "INSERT INTO jobs (id, name, status, spec, spec_hash, max_parallel,
                                   created_at, updated_at)
                 VALUES (?1, 'probe', 'running', '', '', 1, 0, 0)",
                params![job.to_string()],
            )
            .unwrap();
        for after in 0..3 {
            assert!(store.events(job, after, 1_000).unwrap().is_empty());
        }
        let conn = store.lock();
        let select = conn.prepare_cached(&events_after_sql(1_000)).unwrap();
        assert_eq!(
            select.get_status(StatementStatus::Run),
            3,
            "not the cached statement"
        );
        assert_eq!(select.get_status(StatementStatus::RePrepare), 0);
    }
}
