//! [`DeadLetters`] on SQLite: the DLQ read with its attempts, and a retry or a purge written as
//! [`DlqPlan`] decides.

use rusqlite::{Connection, OptionalExtension, Transaction, params};

use super::SqliteStore;
use super::rows::{ATTEMPT_COLUMNS, ITEM_COLUMNS, attempt_from_row, int, item_from_row, text};
use crate::rules::dlq::{self, DlqMove, DlqPlan};
use crate::rules::transitions;
use crate::{DeadLetter, DeadLetters, DlqChange, ItemRecord, StoreError};
use mmm_core::job::{ItemStatus, JobId, JobStatus};

impl DeadLetters for SqliteStore {
    fn dead_letters(&self, job: JobId) -> Result<Vec<DeadLetter>, StoreError> {
        self.read(|tx| {
            self.ensure_job(tx, job)?;
            let items = self.dead_lettered_items(tx, job)?;
            let dead = ItemStatus::DeadLettered.as_str();
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
            Ok(dlq::with_attempts(items, attempts))
        })
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
        self.write("commit a dead-letter queue change", |tx| {
            let status_before: JobStatus = tx
                .query_row(
                    "SELECT status FROM jobs WHERE id = ?1",
                    params![job.to_string()],
                    |row| text(row, 0),
                )
                .optional()
                .map_err(self.fail("read a job"))?
                .ok_or_else(|| StoreError::job_not_found(job))?;
            let selected = match keys {
                None => self.dead_lettered_items(tx, job)?,
                Some(keys) => dlq::named(job, keys, self.items_named(tx, job, keys)?)?,
            };
            let plan = DlqPlan::new(how, status_before, self.counts(tx, job)?, selected);
            self.write_dlq_plan(tx, job, at, &plan)?;
            // Items moved in a job whose run ended: its totals follow them, also when it is
            // `interrupted` now (a DLQ retry); a new finished status counted them already.
            if plan.moves_items()
                && !plan
                    .job_status
                    .as_ref()
                    .is_some_and(|c| transitions::ends_run(c.to))
                && transitions::ends_run(status_before)
            {
                self.keep_item_totals(tx, job)?;
            }
            Ok(plan.change)
        })
    }

    /// Writes what a [`DlqPlan`] decided, in its order.
    fn write_dlq_plan(
        &self,
        tx: &Transaction<'_>,
        job: JobId,
        at: i64,
        plan: &DlqPlan,
    ) -> Result<(), StoreError> {
        let id = job.to_string();
        for (index, event) in &plan.moves {
            tx.prepare_cached(
                "UPDATE items SET status = ?3, attempts = CASE WHEN ?4 THEN 0 ELSE attempts END
                 WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = ?1) AND idx = ?2",
            )
            .and_then(|mut update| {
                update.execute(params![
                    id,
                    int(*index),
                    plan.item_status.as_str(),
                    plan.reset_attempts
                ])
            })
            .map_err(self.fail("move an item out of the dead-letter queue"))?;
            self.record_event(tx, job, at, event, "record a dead-letter queue change")?;
        }
        if let Some(change) = &plan.job_status {
            self.set_job_status(tx, job, (change.from, change.to), at)?;
            self.record_event(tx, job, at, &change.event, "record a job status change")?;
        }
        if plan.moves_items() {
            self.touch_job(tx, job, at, "update a job")?;
        }
        Ok(())
    }

    /// The job's dead-lettered items, in input order.
    fn dead_lettered_items(
        &self,
        conn: &Connection,
        job: JobId,
    ) -> Result<Vec<ItemRecord>, StoreError> {
        conn.prepare_cached(&format!(
            "SELECT {ITEM_COLUMNS} FROM items
               WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = ?1)
                 AND status = ?2 ORDER BY idx"
        ))
        .and_then(|mut select| {
            select
                .query_map(
                    params![job.to_string(), ItemStatus::DeadLettered.as_str()],
                    item_from_row,
                )?
                .collect::<Result<Vec<_>, _>>()
        })
        .map_err(self.fail("read the dead-lettered items"))
    }

    /// The job's items whose key is one of `keys`, whatever their status.
    fn items_named(
        &self,
        conn: &Connection,
        job: JobId,
        keys: &[String],
    ) -> Result<Vec<ItemRecord>, StoreError> {
        let mut select = conn
            .prepare_cached(&format!(
                "SELECT {ITEM_COLUMNS} FROM items
                   WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = ?1) AND key = ?2"
            ))
            .map_err(self.fail("read an item"))?;
        let mut found = Vec::new();
        for key in dlq::distinct_keys(keys) {
            let item = select
                .query_row(params![job.to_string(), key], item_from_row)
                .optional()
                .map_err(self.fail("read an item"))?;
            found.extend(item);
        }
        Ok(found)
    }
}
