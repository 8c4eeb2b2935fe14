//! The statements several parts of the store share: look a job up, read it with its counts,
//! append an event, change the job's status or its `updated_at`.

use std::sync::LazyLock;

use rusqlite::{Connection, OptionalExtension, Transaction, params};

use super::SqliteStore;
use super::rows::{JOB_COLUMNS, job_from_row, text, unsigned};
use crate::item_totals;
use crate::rules::store_events::StoreEvent;
use crate::rules::transitions;
use crate::{ItemCounts, JobRecord, StoreError};
use mmm_core::event::Event;
use mmm_core::job::{ItemStatus, JobId, JobStatus};

impl SqliteStore {
    /// Fails with [`StoreError::JobNotFound`] unless the job is recorded.
    pub(super) fn ensure_job(&self, conn: &Connection, job: JobId) -> Result<(), StoreError> {
        let found = conn
            .prepare_cached("SELECT 1 FROM jobs WHERE id = ?1")
            .and_then(|mut select| {
                select
                    .query_row(params![job.to_string()], |_| Ok(()))
                    .optional()
            })
            .map_err(self.fail("look up a job"))?;
        found.ok_or_else(|| StoreError::job_not_found(job))
    }

    /// The job with its counts; [`StoreError::JobNotFound`] when it is not recorded.
    pub(super) fn read_job(&self, conn: &Connection, id: JobId) -> Result<JobRecord, StoreError> {
        let sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?1");
        let job = conn
            .prepare_cached(&sql)
            .and_then(|mut select| {
                select
                    .query_row(params![id.to_string()], job_from_row)
                    .optional()
            })
            .map_err(self.fail("read a job"))?;
        let mut job = job.ok_or_else(|| StoreError::job_not_found(id))?;
        job.counts = self.counts(conn, id)?;
        Ok(job)
    }

    /// The job's item counts by status.
    pub(super) fn counts(&self, conn: &Connection, job: JobId) -> Result<ItemCounts, StoreError> {
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

    /// Appends an event the store records on its own (`operation` names it in an error).
    pub(super) fn record_event(
        &self,
        tx: &Transaction<'_>,
        job: JobId,
        at: i64,
        event: &StoreEvent,
        operation: &'static str,
    ) -> Result<(), StoreError> {
        insert_event(tx, job, at, event.item_key.as_deref(), &event.event)
            .map_err(self.fail(operation))
    }

    /// Sets the job's status if it is `from` (and `finished_at` as `to` implies); false when
    /// the job's status is not `from`.
    pub(super) fn set_job_status(
        &self,
        tx: &Transaction<'_>,
        job: JobId,
        (from, to): (JobStatus, JobStatus),
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
                    transitions::finishes(to),
                    at
                ],
            )
            .map_err(self.fail("record a job status"))?;
        if changed > 0 && transitions::ends_run(to) {
            self.keep_item_totals(tx, job)?;
        }
        Ok(changed > 0)
    }

    /// Keeps the totals of the job's items for `/metrics` (`item_totals.rs`), replacing those of
    /// an earlier end of its run: called when it enters a status that ends a run.
    pub(super) fn keep_item_totals(
        &self,
        tx: &Transaction<'_>,
        job: JobId,
    ) -> Result<(), StoreError> {
        static KEEP: LazyLock<[String; 5]> = LazyLock::new(|| item_totals::keep_statements("?1"));
        for sql in KEEP.iter() {
            tx.prepare_cached(sql)
                .and_then(|mut statement| statement.execute(params![job.to_string()]))
                .map_err(self.fail("total a job's items"))?;
        }
        Ok(())
    }

    /// Takes the totals of the job's items off its name's, before it is deleted.
    pub(super) fn retire_item_totals(
        &self,
        tx: &Transaction<'_>,
        job: JobId,
    ) -> Result<(), StoreError> {
        static RETIRE: LazyLock<[String; 3]> =
            LazyLock::new(|| item_totals::retire_statements("?1"));
        for sql in RETIRE.iter() {
            tx.prepare_cached(sql)
                .and_then(|mut statement| statement.execute(params![job.to_string()]))
                .map_err(self.fail("take a job's items off its name's totals"))?;
        }
        Ok(())
    }

    /// Raises the job's `updated_at` to `at` (`operation` names it in an error).
    pub(super) fn touch_job(
        &self,
        tx: &Transaction<'_>,
        job: JobId,
        at: i64,
        operation: &'static str,
    ) -> Result<(), StoreError> {
        tx.execute(
            "UPDATE jobs SET updated_at = MAX(updated_at, ?2) WHERE id = ?1",
            params![job.to_string(), at],
        )
        .map_err(self.fail(operation))?;
        Ok(())
    }
}

/// Appends an event inside a write transaction.
pub(super) fn insert_event(
    tx: &Transaction<'_>,
    job: JobId,
    at: i64,
    item_key: Option<&str>,
    event: &Event,
) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO events (job_ref, at, kind, item_key, payload)
           VALUES ((SELECT job_ref FROM jobs WHERE id = ?1), ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        job.to_string(),
        at,
        event.kind_name(),
        item_key,
        event.payload_text()
    ])?;
    Ok(())
}
