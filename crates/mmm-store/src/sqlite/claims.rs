//! [`Claims`] on SQLite: items claimed under a lease in one `BEGIN IMMEDIATE` transaction (so
//! two claimers take turns), leases renewed and released.

use rusqlite::{Transaction, params};

use super::SqliteStore;
use super::rows::{int, limit_clause, text, unsigned};
use crate::rules::claims::Claimable;
use crate::rules::interruptions::LEASE_EXPIRED_ERROR;
use crate::{ClaimedItem, Claims, StoreError};
use mmm_core::job::{AttemptOutcome, ItemStatus, JobId};

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
        let open: bool = tx
            .query_row(
                "SELECT status = 'running' AND phase IS 'map' FROM jobs WHERE id = ?1",
                params![job.to_string()],
                |row| row.get(0),
            )
            .map_err(self.fail("read a job's status"))?;
        if !open || limit == 0 {
            tx.commit().map_err(self.fail("end a claim"))?;
            return Ok(Vec::new());
        }
        let mut claimed = Vec::new();
        for item in self.claimable(&tx, job, limit, at)? {
            self.claim(&tx, job, &item, claimer, lease_until, at)?;
            claimed.push(item.into_claimed());
        }
        tx.commit().map_err(self.fail("commit a claim"))?;
        Ok(claimed)
    }

    fn renew_claims(
        &self,
        job: JobId,
        claimer: &str,
        indices: &[u64],
        lease_until: i64,
    ) -> Result<u64, StoreError> {
        self.write("commit a lease", |tx| {
            let mut renew = tx
                .prepare_cached(
                    "UPDATE items SET lease_until = ?3
                     WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = ?1) AND claimed_by = ?2
                       AND idx = ?4 AND status IN ('pending', 'failed', 'running')",
                )
                .map_err(self.fail("renew a lease"))?;
            let mut changed = 0;
            for &index in indices {
                changed += renew
                    .execute(params![job.to_string(), claimer, lease_until, int(index)])
                    .map_err(self.fail("renew a lease"))? as u64;
            }
            Ok(changed)
        })
    }

    fn confirm_claims(
        &self,
        job: JobId,
        claimer: &str,
        indices: &[u64],
        lease_until: i64,
    ) -> Result<Vec<u64>, StoreError> {
        self.write("commit confirmed claims", |tx| {
            let mut confirm = tx
                .prepare_cached(
                    "UPDATE items SET lease_until = ?3
                     WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = ?1) AND claimed_by = ?2
                       AND idx = ?4 AND status IN ('pending', 'failed')",
                )
                .map_err(self.fail("confirm claims"))?;
            let mut held = Vec::new();
            for &index in indices {
                let changed = confirm
                    .execute(params![job.to_string(), claimer, lease_until, int(index)])
                    .map_err(self.fail("confirm a claim"))?;
                if changed == 1 {
                    held.push(index);
                }
            }
            Ok(held)
        })
    }

    fn release_claims(&self, job: JobId, claimer: &str) -> Result<u64, StoreError> {
        self.write("commit a release", |tx| {
            let changed = tx
                .execute(
                    "UPDATE items SET claimed_by = NULL, lease_until = NULL
                     WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = ?1) AND claimed_by = ?2 AND status <> 'running'",
                    params![job.to_string(), claimer],
                )
                .map_err(self.fail("release claimed items"))?;
            Ok(changed as u64)
        })
    }
}

impl SqliteStore {
    /// At most `limit` items a claim may take at `at`, in input order.
    fn claimable(
        &self,
        tx: &Transaction<'_>,
        job: JobId,
        limit: usize,
        at: i64,
    ) -> Result<Vec<Claimable>, StoreError> {
        // INDEXED BY: without it the planner walks the primary key in order (it also gives
        // `ORDER BY idx`), reading every finished item of the job before the first unfinished.
        tx.prepare_cached(&format!(
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
                .query_map(params![job.to_string(), at], |row| {
                    Ok(Claimable {
                        index: unsigned(row, 0)?,
                        key: row.get(1)?,
                        value: row.get(2)?,
                        status: text::<ItemStatus>(row, 3)?,
                        attempts: row.get(4)?,
                        holder: row.get(5)?,
                        last_number: row.get(6)?,
                        leased: row.get(7)?,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()
        })
        .map_err(self.fail("find items to claim"))
    }

    /// Gives `item` to `claimer` until `lease_until`, first taking its attempt in flight from
    /// the claimer whose lease ran out, if it has one.
    fn claim(
        &self,
        tx: &Transaction<'_>,
        job: JobId,
        item: &Claimable,
        claimer: &str,
        lease_until: i64,
        at: i64,
    ) -> Result<(), StoreError> {
        let id = job.to_string();
        if item.has_attempt_in_flight() {
            tx.execute(
                "UPDATE attempts SET outcome = ?5, ended_at = ?3, error = ?4
                 WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = ?1) AND item_idx = ?2 AND outcome IS NULL",
                params![
                    id,
                    int(item.index),
                    at,
                    LEASE_EXPIRED_ERROR,
                    AttemptOutcome::Interrupted.as_str()
                ],
            )
            .map_err(self.fail("close an attempt whose lease ran out"))?;
            tx.execute(
                "UPDATE items SET status = ?3
                   WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = ?1) AND idx = ?2",
                params![id, int(item.index), ItemStatus::Pending.as_str()],
            )
            .map_err(self.fail("requeue an item whose lease ran out"))?;
            self.record_event(tx, job, at, &item.requeued(), "record an event")?;
        }
        tx.execute(
            "UPDATE items SET claimed_by = ?3, lease_until = ?4
             WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = ?1) AND idx = ?2",
            params![id, int(item.index), claimer, lease_until],
        )
        .map_err(self.fail("claim an item"))?;
        Ok(())
    }
}
