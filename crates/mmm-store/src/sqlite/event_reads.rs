//! [`EventReads`] on SQLite: a job's events and snapshots, and waiting for the commits of
//! this process (readers in other processes poll).

use std::time::Duration;

use rusqlite::params;
use rusqlite::types::Type;

use super::SqliteStore;
use super::rows::{event_from_row, json_column, limit_clause};
use crate::{EventReads, EventRecord, SnapshotRecord, StoreError};
use mmm_core::job::JobId;
use mmm_core::snapshot::Snapshot;

/// A job's events after a sequence number (`?1` the job's id, `?2` the number), oldest first.
fn events_after_sql(limit: usize) -> String {
    format!(
        "SELECT seq, at, kind, item_key, payload FROM events
         WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = ?1) AND seq > ?2
         ORDER BY seq {}",
        limit_clause(limit)
    )
}

impl EventReads for SqliteStore {
    fn events(&self, job: JobId, after: i64, limit: usize) -> Result<Vec<EventRecord>, StoreError> {
        self.read(|tx| {
            self.ensure_job(tx, job)?;
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
            Ok(events)
        })
    }

    fn recent_events(&self, job: JobId, limit: usize) -> Result<Vec<EventRecord>, StoreError> {
        self.read(|tx| {
            self.ensure_job(tx, job)?;
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
        self.read(|tx| {
            self.ensure_job(tx, job)?;
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
                                payload: Snapshot::from_json(json_column(row, 1)?),
                            })
                        })?
                        .collect::<Result<Vec<_>, _>>()
                })
                .map_err(self.fail("read a job's snapshots"))?;
            Ok(snapshots)
        })
    }

    fn latest_snapshot(&self, job: JobId) -> Result<Option<SnapshotRecord>, StoreError> {
        let row = self.read(|tx| {
            self.ensure_job(tx, job)?;
            let sql = "SELECT at, payload FROM snapshots
                         WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = ?1) ORDER BY at DESC LIMIT 1";
            tx.prepare_cached(sql)
                .and_then(|mut select| {
                    select
                        .query_map(params![job.to_string()], |row| {
                            Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?))
                        })?
                        .next()
                        .transpose()
                })
                .map_err(self.fail("read a job's latest snapshot"))
        })?;
        // Parsed after the connection is released: a 1,000-agent snapshot is a quarter of a
        // megabyte of JSON, and the dashboard's event reads wait for this connection.
        row.map(|(at, text)| {
            let payload = serde_json::from_str(&text).map_err(|e| {
                self.fail("read a job's latest snapshot")(
                    rusqlite::Error::FromSqlConversionFailure(1, Type::Text, Box::new(e)),
                )
            })?;
            Ok(SnapshotRecord {
                at,
                payload: Snapshot::from_json(payload),
            })
        })
        .transpose()
    }

    fn wait_for_events(&self, _job: JobId, timeout: Duration) {
        self.commits.wait(&self.commits_seen, timeout);
    }
}

#[cfg(test)]
mod statement_cache {
    use rusqlite::{StatementStatus, params};

    use super::events_after_sql;
    use crate::EventReads;
    use crate::sqlite::SqliteStore;
    use mmm_core::job::JobId;

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
