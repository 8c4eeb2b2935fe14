//! [`Claims`] on PostgreSQL: items claimed under a lease with `FOR UPDATE SKIP LOCKED`, so that
//! concurrent claimers pass over each other's rows; leases renewed and released.
//!
//! Leases are kept and judged on the database's clock, not the claimers': each call turns the
//! times it is given (its host's clock) into the server's by the difference between the two
//! clocks at the call, so hosts whose clocks disagree judge one another's leases alike. And
//! for one lease length after the server (re)started, no lease counts as run out: processes
//! cut off by a restart get to reconnect and renew before anyone takes their items.

use super::PostgresStore;
use super::rows::{int, small, text, unsigned};
use super::transaction::{Access, Tx};
use crate::rules::claims::Claimable;
use crate::rules::interruptions::LEASE_EXPIRED_ERROR;
use crate::{ClaimedItem, Claims, StoreError};
use mmm_core::job::{AttemptOutcome, ItemStatus, JobId, now_ms};

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
        let sent = now_ms();
        self.write("commit a claim", move |tx| {
            Box::pin(async move {
                let clock = tx.database_clock(sent).await?;
                let lease = lease_until - at;
                let lease_until = lease_until + clock.offset;
                // Nothing runs out just after a restart: see the module docs.
                let expired_before = match clock.uptime < lease {
                    true => i64::MIN,
                    false => at + clock.offset,
                };
                let open = tx
                    .rows(
                        "read a job's status",
                        // Locked first, as every writer of the job does: the claim may record
                        // events.
                        "SELECT status = 'running' AND phase IS NOT DISTINCT FROM 'map'
                         FROM jobs WHERE id = $1 FOR NO KEY UPDATE",
                        &[&job.to_string()],
                        |row| Ok(row.try_get::<_, bool>(0)?),
                    )
                    .await?
                    .into_iter()
                    .next()
                    .ok_or_else(|| StoreError::job_not_found(job))?;
                if !open || limit == 0 {
                    tx.commit_as("end a claim");
                    return Ok(Vec::new());
                }
                let items = tx.claimable(job, limit, expired_before).await?;
                let mut indices = Vec::with_capacity(items.len());
                for item in &items {
                    if item.has_attempt_in_flight() {
                        tx.take_attempt(job, item, at).await?;
                    }
                    indices.push(int(item.index));
                }
                if !indices.is_empty() {
                    tx.execute(
                        "claim items",
                        "UPDATE items SET claimed_by = $2::text, lease_until = $3::bigint
                         WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = $1) AND idx = ANY($4::bigint[])",
                        &[&job.to_string(), &claimer, &lease_until, &indices],
                    )
                    .await?;
                }
                Ok(items.into_iter().map(Claimable::into_claimed).collect())
            })
        })
    }

    fn renew_claims(
        &self,
        job: JobId,
        claimer: &str,
        indices: &[u64],
        lease_until: i64,
    ) -> Result<u64, StoreError> {
        let claimer = claimer.to_string();
        let indices: Vec<i64> = indices.iter().map(|&i| int(i)).collect();
        let sent = now_ms();
        self.transaction(Access::Autocommit, move |tx| {
            Box::pin(async move {
                let lease_until = lease_until + tx.database_clock(sent).await?.offset;
                tx.execute(
                    "renew a lease",
                    "UPDATE items SET lease_until = $3::bigint
                     WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = $1) AND claimed_by = $2::text
                       AND status IN ('pending', 'failed', 'running') AND idx = ANY($4::bigint[])",
                    &[&job.to_string(), &claimer, &lease_until, &indices],
                )
                .await
            })
        })
    }

    fn confirm_claims(
        &self,
        job: JobId,
        claimer: &str,
        indices: &[u64],
        lease_until: i64,
    ) -> Result<Vec<u64>, StoreError> {
        let claimer = claimer.to_string();
        let indices: Vec<i64> = indices.iter().map(|&i| int(i)).collect();
        let sent = now_ms();
        self.transaction(Access::Autocommit, move |tx| {
            Box::pin(async move {
                let lease_until = lease_until + tx.database_clock(sent).await?.offset;
                tx.rows(
                    "confirm claims",
                    "UPDATE items SET lease_until = $3::bigint
                     WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = $1) AND claimed_by = $2::text
                       AND idx = ANY($4::bigint[]) AND status IN ('pending', 'failed')
                     RETURNING idx",
                    &[&job.to_string(), &claimer, &lease_until, &indices],
                    |row| unsigned(row, 0),
                )
                .await
            })
        })
    }

    fn release_claims(&self, job: JobId, claimer: &str) -> Result<u64, StoreError> {
        let claimer = claimer.to_string();
        self.transaction(Access::Autocommit, move |tx| {
            Box::pin(async move {
                tx.execute(
                    "release claimed items",
                    "UPDATE items SET claimed_by = NULL, lease_until = NULL
                     WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = $1) AND claimed_by = $2::text AND status <> 'running'",
                    &[&job.to_string(), &claimer],
                )
                .await
            })
        })
    }
}

/// The server's clock as a claim sees it.
struct DatabaseClock {
    /// The server's time minus this host's, in ms, at the call.
    offset: i64,
    /// How long the server has been up, in ms.
    uptime: i64,
}

impl Tx<'_> {
    /// The server's clock against this host's time `sent` (epoch ms).
    async fn database_clock(&mut self, sent: i64) -> Result<DatabaseClock, StoreError> {
        let rows = self
            .query(
                "read the server's clock",
                "SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint - $1::bigint,
                        (extract(epoch FROM clock_timestamp() - pg_postmaster_start_time()) * 1000)::bigint",
                &[&sent],
            )
            .await?;
        let row = rows.first();
        Ok(DatabaseClock {
            offset: row.map_or(0, |row| row.get(0)),
            uptime: row.map_or(i64::MAX, |row| row.get(1)),
        })
    }

    /// At most `limit` items a claim may take at `at`, in input order, their rows locked.
    async fn claimable(
        &mut self,
        job: JobId,
        limit: usize,
        at: i64,
    ) -> Result<Vec<Claimable>, StoreError> {
        // SKIP LOCKED: concurrent claimers pass over each other's rows instead of waiting, and
        // each row is re-checked against the WHERE once locked.
        self.rows(
            "find items to claim",
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
            &[&job.to_string(), &at, &int(limit as u64)],
            |row| {
                Ok(Claimable {
                    index: unsigned(row, 0)?,
                    key: row.try_get(1)?,
                    value: row.try_get(2)?,
                    status: text::<ItemStatus>(row, 3)?,
                    attempts: small(row, 4)?,
                    holder: row.try_get(5)?,
                    last_number: small(row, 6)?,
                    leased: row.try_get(7)?,
                })
            },
        )
        .await
    }

    /// Takes `item`'s attempt in flight from the claimer whose lease ran out: closes it,
    /// requeues the item and records why.
    async fn take_attempt(
        &mut self,
        job: JobId,
        item: &Claimable,
        at: i64,
    ) -> Result<(), StoreError> {
        let id = job.to_string();
        self.execute(
            "close an attempt whose lease ran out",
            "UPDATE attempts SET outcome = $5::text, ended_at = $3::bigint,
                 error = $4::text
             WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = $1) AND item_idx = $2::bigint AND outcome IS NULL",
            &[
                &id,
                &int(item.index),
                &at,
                &LEASE_EXPIRED_ERROR,
                &AttemptOutcome::Interrupted.as_str(),
            ],
        )
        .await?;
        self.execute(
            "requeue an item whose lease ran out",
            "UPDATE items SET status = $3::text
               WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = $1) AND idx = $2::bigint",
            &[&id, &int(item.index), &ItemStatus::Pending.as_str()],
        )
        .await?;
        self.record_event(job, at, &item.requeued()).await
    }
}
