//! [`Recovery`] on SQLite: a job taken over from its dead owner, what was in flight requeued,
//! the unfinished items paged through, a rewind to a checkpoint, and changed item values.

use rusqlite::{OptionalExtension, params};

use super::SqliteStore;
use super::rows::{int, limit_clause, text, unsigned};
use crate::rules::interruptions::OWNER_STOPPED_ERROR;
use crate::rules::store_events::StoreEvent;
use crate::rules::transitions;
use crate::{Owner, Recovery, Requeued, StoreError, UnfinishedItem};
use mmm_core::job::{ItemStatus, JobId};

impl Recovery for SqliteStore {
    fn take_job(&self, job: JobId, expected: &Owner, claim: &Owner) -> Result<bool, StoreError> {
        self.write("commit a job's new owner", |tx| {
            self.ensure_job(tx, job)?;
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
            Ok(changed == 1)
        })
    }

    fn requeue_in_flight(&self, job: JobId, at: i64) -> Result<Requeued, StoreError> {
        self.write("commit the requeue", |tx| {
            self.ensure_job(tx, job)?;
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
                "UPDATE attempts SET outcome = 'interrupted', ended_at = ?2, error = ?3
                 WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = ?1) AND outcome IS NULL
                   AND item_idx IN (SELECT idx FROM items
                     WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = ?1)
                                    AND (lease_until IS NULL OR lease_until < ?2))",
                params![id, at, OWNER_STOPPED_ERROR],
            )
            .map_err(self.fail("close attempts in flight"))?;
            tx.execute(
                "UPDATE items SET status = 'pending'
                 WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = ?1) AND status = 'running'
                   AND (lease_until IS NULL OR lease_until < ?2)",
                params![id, at],
            )
            .map_err(self.fail("requeue running items"))?;
            Ok(Requeued { interrupted })
        })
    }

    fn unfinished_items(
        &self,
        job: JobId,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<UnfinishedItem>, StoreError> {
        self.read(|tx| {
            self.ensure_job(tx, job)?;
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
            Ok(items)
        })
    }

    fn rewind(&self, job: JobId, checkpoint: i64, at: i64) -> Result<Vec<String>, StoreError> {
        self.write("commit the rewind", |tx| {
            self.ensure_job(tx, job)?;
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
            self.touch_job(tx, job, at, "rewind the job")?;
            Ok(keys)
        })
    }

    fn update_item_values(
        &self,
        job: JobId,
        changes: &[(u64, String)],
        at: i64,
    ) -> Result<Vec<String>, StoreError> {
        self.write("commit the changed items", |tx| {
            self.ensure_job(tx, job)?;
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
                tx.prepare_cached(
                    "UPDATE items SET value = ?3
                                     WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = ?1)
                                       AND idx = ?2",
                )
                .and_then(|mut update| update.execute(params![id, int(*index), value]))
                .map_err(self.fail("update an item's value"))?;
                if !transitions::reruns_on_new_value(status) {
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
                let event = StoreEvent::requeued_for_new_value(&key);
                self.record_event(tx, job, at, &event, "record an event")?;
                requeued.push(key);
            }
            Ok(requeued)
        })
    }
}
