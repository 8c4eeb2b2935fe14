//! [`Recovery`] on PostgreSQL: a job taken over from its dead owner (one conditional `UPDATE`),
//! what was in flight requeued, the unfinished items paged through, a rewind to a checkpoint,
//! and changed item values.

use super::PostgresStore;
use super::rows::{int, small, text, unsigned};
use super::statements::RowLock;
use crate::rules::interruptions::OWNER_STOPPED_ERROR;
use crate::rules::store_events::StoreEvent;
use crate::rules::transitions;
use crate::{Owner, Recovery, Requeued, StoreError, UnfinishedItem};
use mmm_core::job::{ItemStatus, JobId};

impl Recovery for PostgresStore {
    fn take_job(&self, job: JobId, expected: &Owner, claim: &Owner) -> Result<bool, StoreError> {
        let expected = expected.clone();
        let claim = claim.clone();
        self.write("commit a job's new owner", move |tx| {
            Box::pin(async move {
                tx.ensure_job(job, RowLock::None).await?;
                let changed = tx
                    .execute(
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
                Ok(changed == 1)
            })
        })
    }

    fn requeue_in_flight(&self, job: JobId, at: i64) -> Result<Requeued, StoreError> {
        self.write("commit the requeue", move |tx| {
            Box::pin(async move {
                tx.ensure_job(job, RowLock::ForUpdate).await?;
                let id = job.to_string();
                let operation = "find attempts in flight";
                let rows = tx.query(
                    operation,
                    "SELECT i.key FROM attempts a
                     JOIN items i ON i.job_ref = a.job_ref AND i.idx = a.item_idx
                     WHERE a.job_ref = (SELECT job_ref FROM jobs WHERE id = $1) AND a.outcome IS NULL
                       AND (i.lease_until IS NULL OR i.lease_until < $2::bigint)
                     ORDER BY a.item_idx",
                    &[&id, &at],
                )
                .await?;
                let interrupted = tx.decode(&rows, operation, |row| Ok(row.try_get(0)?))?;
                // Items a live worker holds under a lease stay with it (scale-out).
                tx.execute(
                    "close attempts in flight",
                    "UPDATE attempts SET outcome = 'interrupted', ended_at = $2::bigint,
                         error = $3::text
                     WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = $1) AND outcome IS NULL
                       AND item_idx IN (SELECT idx FROM items
                         WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = $1)
                                        AND (lease_until IS NULL OR lease_until < $2::bigint))",
                    &[&id, &at, &OWNER_STOPPED_ERROR],
                )
                .await?;
                tx.execute(
                    "requeue running items",
                    "UPDATE items SET status = 'pending'
                     WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = $1) AND status = 'running'
                       AND (lease_until IS NULL OR lease_until < $2::bigint)",
                    &[&id, &at],
                )
                .await?;
                Ok(Requeued { interrupted })
            })
        })
    }

    fn unfinished_items(
        &self,
        job: JobId,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<UnfinishedItem>, StoreError> {
        self.read(move |tx| {
            Box::pin(async move {
                tx.ensure_job(job, RowLock::None).await?;
                let operation = "read the unfinished items";
                let rows = tx.query(
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
                let items = tx.decode(&rows, operation, |row| {
                    Ok(UnfinishedItem {
                        index: unsigned(row, 0)?,
                        key: row.try_get(1)?,
                        value: row.try_get(2)?,
                        status: text(row, 3)?,
                        attempts: small(row, 4)?,
                        last_number: small(row, 5)?,
                    })
                })?;
                Ok(items)
            })
        })
    }

    fn rewind(&self, job: JobId, checkpoint: i64, at: i64) -> Result<Vec<String>, StoreError> {
        self.write("commit the rewind", move |tx| {
            Box::pin(async move {
                tx.ensure_job(job, RowLock::ForUpdate).await?;
                let id = job.to_string();
                let rows = tx.query(
                    "find the checkpoint",
                    "SELECT last_event_seq FROM checkpoints
                       WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = $1) AND id = $2::bigint",
                    &[&id, &checkpoint],
                )
                .await?;
                let last_seq: i64 = tx.decode(&rows, "find the checkpoint", |row| {
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
                let rows = tx.query(
                    operation,
                    &format!(
                        "SELECT key FROM items
                           WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = $1)
                             AND idx IN ({REWOUND}) ORDER BY idx"
                    ),
                    &[&id, &last_seq],
                )
                .await?;
                let keys = tx.decode(&rows, operation, |row| Ok(row.try_get(0)?))?;
                tx.execute(
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
                tx.execute(
                    "rewind items",
                    &format!(
                        "UPDATE items SET status = 'pending', attempts = 0
                         WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = $1)
                           AND idx IN ({REWOUND})"
                    ),
                    &[&id, &last_seq],
                )
                .await?;
                tx.touch_job(job, at).await?;
                Ok(keys)
            })
        })
    }

    fn update_item_values(
        &self,
        job: JobId,
        changes: &[(u64, String)],
        at: i64,
    ) -> Result<Vec<String>, StoreError> {
        let changes = changes.to_vec();
        self.write("commit the changed items", move |tx| {
            Box::pin(async move {
                tx.ensure_job(job, RowLock::ForUpdate).await?;
                let id = job.to_string();
                let mut requeued = Vec::new();
                for (index, value) in &changes {
                    let rows = tx.query(
                        "read an item",
                        "SELECT key, status FROM items
                           WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = $1) AND idx = $2::bigint",
                        &[&id, &int(*index)],
                    )
                    .await?;
                    let (key, status) = tx.decode(&rows, "read an item", |row| {
                        Ok((row.try_get::<_, String>(0)?, text::<ItemStatus>(row, 1)?))
                    })?
                    .into_iter()
                    .next()
                    .ok_or(StoreError::ItemNotFound { job, index: *index })?;
                    tx.execute(
                        "update an item's value",
                        "UPDATE items SET value = $3::text
                           WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = $1) AND idx = $2::bigint",
                        &[&id, &int(*index), value],
                    )
                    .await?;
                    if !transitions::reruns_on_new_value(status) {
                        continue;
                    }
                    tx.execute(
                        "mark superseded attempts",
                        "UPDATE attempts SET superseded = TRUE
                         WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = $1) AND item_idx = $2::bigint AND outcome = 'succeeded'",
                        &[&id, &int(*index)],
                    )
                    .await?;
                    tx.execute(
                        "requeue an item",
                        "UPDATE items SET status = 'pending', attempts = 0
                         WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = $1) AND idx = $2::bigint",
                        &[&id, &int(*index)],
                    )
                    .await?;
                    let event = StoreEvent::requeued_for_new_value(&key);
                    tx.record_event(job, at, &event).await?;
                    requeued.push(key);
                }
                Ok(requeued)
            })
        })
    }
}
