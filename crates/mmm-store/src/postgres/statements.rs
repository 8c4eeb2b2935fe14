//! The statements several parts of the store share: look a job up (and lock its row), read it
//! with its counts, append an event, change the job's status or its `updated_at`.

use std::collections::HashMap;

use super::rows::{JOB_COLUMNS, job_from_row, text, unsigned};
use super::transaction::Tx;
use crate::rules::store_events::StoreEvent;
use crate::rules::transitions;
use crate::{ItemCounts, JobRecord, StoreError};
use mmm_core::job::{ItemStatus, JobId, JobStatus};

/// Whether [`Tx::ensure_job`] locks the job's row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RowLock {
    /// Only look the job up.
    None,
    /// Lock its row until the transaction ends (`FOR UPDATE`), so that writers of one job take
    /// turns.
    ForUpdate,
}

impl Tx<'_> {
    /// Fails with [`StoreError::JobNotFound`] unless the job is recorded; locks its row as
    /// `lock` says.
    pub(super) async fn ensure_job(&mut self, job: JobId, lock: RowLock) -> Result<(), StoreError> {
        let sql = match lock {
            RowLock::ForUpdate => "SELECT 1 FROM jobs WHERE id = $1 FOR UPDATE",
            RowLock::None => "SELECT 1 FROM jobs WHERE id = $1",
        };
        let rows = self
            .query("look up a job", sql, &[&job.to_string()])
            .await?;
        if rows.is_empty() {
            Err(StoreError::job_not_found(job))
        } else {
            Ok(())
        }
    }

    /// Item counts by status: of one job, or (with `None`) of every job.
    pub(super) async fn counts(
        &mut self,
        job: Option<JobId>,
    ) -> Result<HashMap<JobId, ItemCounts>, StoreError> {
        let operation = "count a job's items";
        let read = |row: &tokio_postgres::Row| {
            Ok((
                text::<JobId>(row, 0)?,
                text::<ItemStatus>(row, 1)?,
                unsigned(row, 2)?,
            ))
        };
        let rows = match job {
            Some(job) => {
                self.rows(
                    operation,
                    "SELECT j.id, i.status, count(*) FROM items i JOIN jobs j ON j.job_ref = i.job_ref
                     WHERE j.id = $1 GROUP BY j.id, i.status",
                    &[&job.to_string()],
                    read,
                )
                .await?
            }
            None => {
                self.rows(
                    operation,
                    "SELECT j.id, i.status, count(*) FROM items i JOIN jobs j ON j.job_ref = i.job_ref
                     GROUP BY j.id, i.status",
                    &[],
                    read,
                )
                .await?
            }
        };
        let mut counts: HashMap<JobId, ItemCounts> = HashMap::new();
        for (job, status, n) in rows {
            counts.entry(job).or_default().set(status, n);
        }
        Ok(counts)
    }

    /// The item counts of one job.
    pub(super) async fn job_counts(&mut self, job: JobId) -> Result<ItemCounts, StoreError> {
        Ok(self
            .counts(Some(job))
            .await?
            .remove(&job)
            .unwrap_or_default())
    }

    /// One job with its counts; `None` when it is not recorded.
    pub(super) async fn read_job(&mut self, job: JobId) -> Result<Option<JobRecord>, StoreError> {
        let sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1");
        let jobs = self
            .rows("read a job", &sql, &[&job.to_string()], job_from_row)
            .await?;
        let Some(mut record) = jobs.into_iter().next() else {
            return Ok(None);
        };
        record.counts = self.job_counts(job).await?;
        Ok(Some(record))
    }

    /// Appends an event the store records on its own, inside a write transaction.
    pub(super) async fn record_event(
        &mut self,
        job: JobId,
        at: i64,
        event: &StoreEvent,
    ) -> Result<(), StoreError> {
        // The job's row lock first, held to the commit: events of one job then commit in the
        // order of their sequence numbers, so a follower reading `seq > last` never skips one
        // committed late (a batch of the writer takes the same lock first, see `batch::plan`).
        self.query(
            "lock a job",
            "SELECT 1 FROM jobs WHERE id = $1 FOR NO KEY UPDATE",
            &[&job.to_string()],
        )
        .await?;
        self.execute(
            "record an event",
            "INSERT INTO events (job_ref, at, kind, item_key, payload)
             VALUES ((SELECT job_ref FROM jobs WHERE id = $1), $2::bigint, $3::text, $4::text, $5::jsonb)",
            &[
                &job.to_string(),
                &at,
                &event.event.kind_name(),
                &event.item_key,
                &event.event.payload(),
            ],
        )
        .await?;
        Ok(())
    }

    /// Raises the job's `updated_at` to `at`.
    pub(super) async fn touch_job(&mut self, job: JobId, at: i64) -> Result<(), StoreError> {
        self.execute(
            "update a job",
            "UPDATE jobs SET updated_at = GREATEST(updated_at, $2::bigint) WHERE id = $1",
            &[&job.to_string(), &at],
        )
        .await?;
        Ok(())
    }

    /// Sets the job's status if it is `from` (and `finished_at` as `to` implies); false when
    /// the job's status is not `from`.
    pub(super) async fn set_job_status(
        &mut self,
        job: JobId,
        (from, to): (JobStatus, JobStatus),
        at: i64,
    ) -> Result<bool, StoreError> {
        let changed = self
            .execute(
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
                    &transitions::finishes(to),
                    &at,
                ],
            )
            .await?;
        if changed > 0 && transitions::ends_run(to) {
            self.keep_item_totals(job).await?;
        }
        Ok(changed > 0)
    }

    /// Keeps the totals of the job's items for `/metrics` (`item_totals.rs`), replacing those of
    /// an earlier end of its run: called when it enters a status that ends a run.
    pub(super) async fn keep_item_totals(&mut self, job: JobId) -> Result<(), StoreError> {
        let id = job.to_string();
        for sql in super::batch::keep_item_totals() {
            self.execute("total a job's items", sql, &[&id]).await?;
        }
        Ok(())
    }

    /// Takes the totals of the job's items off its name's, before it is deleted.
    pub(super) async fn retire_item_totals(&mut self, job: JobId) -> Result<(), StoreError> {
        let id = job.to_string();
        for sql in super::batch::retire_item_totals() {
            self.execute("take a job's items off its name's totals", sql, &[&id])
                .await?;
        }
        Ok(())
    }
}
