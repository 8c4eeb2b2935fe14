//! [`DeadLetters`] on PostgreSQL: the DLQ read with its attempts, and a retry or a purge written
//! as [`DlqPlan`] decides, with the job's row locked.

use super::PostgresStore;
use super::rows::{ATTEMPT_COLUMNS, ITEM_COLUMNS, attempt_from_row, int, item_from_row, text};
use super::transaction::Tx;
use crate::rules::dlq::{self, DlqMove, DlqPlan};
use crate::rules::transitions;
use crate::{DeadLetter, DeadLetters, DlqChange, ItemRecord, StoreError};
use mmm_core::job::{ItemStatus, JobId, JobStatus};

impl DeadLetters for PostgresStore {
    fn dead_letters(&self, job: JobId) -> Result<Vec<DeadLetter>, StoreError> {
        self.read(move |tx| {
            Box::pin(async move {
                tx.ensure_job(job, super::statements::RowLock::None).await?;
                let items = tx.dead_lettered_items(job).await?;
                let sql = format!(
                    "SELECT {ATTEMPT_COLUMNS} FROM attempts a
                     JOIN items i ON i.job_ref = a.job_ref AND i.idx = a.item_idx
                     WHERE a.job_ref = (SELECT job_ref FROM jobs WHERE id = $1) AND i.status = $2::text
                     ORDER BY a.item_idx, a.number"
                );
                let attempts = tx
                    .rows(
                        "read the dead-lettered items' attempts",
                        &sql,
                        &[&job.to_string(), &ItemStatus::DeadLettered.as_str()],
                        attempt_from_row,
                    )
                    .await?;
                Ok(dlq::with_attempts(items, attempts))
            })
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

impl PostgresStore {
    /// Selects dead-lettered items (all, or those named by `keys`) and moves them as `how`
    /// says, with their events and the job status they imply, in one transaction.
    fn move_dead_lettered(
        &self,
        job: JobId,
        keys: Option<&[String]>,
        at: i64,
        how: DlqMove,
    ) -> Result<DlqChange, StoreError> {
        let keys = keys.map(<[String]>::to_vec);
        self.write("commit a dead-letter queue change", move |tx| {
            Box::pin(async move {
                let status_before = tx
                    .rows(
                        "read a job",
                        "SELECT status FROM jobs WHERE id = $1 FOR UPDATE",
                        &[&job.to_string()],
                        |row| text::<JobStatus>(row, 0),
                    )
                    .await?
                    .into_iter()
                    .next()
                    .ok_or_else(|| StoreError::job_not_found(job))?;
                let selected = match &keys {
                    None => tx.dead_lettered_items(job).await?,
                    Some(keys) => {
                        let found = tx.items_named(job, keys).await?;
                        dlq::named(job, keys, found)?
                    }
                };
                let counts = tx.job_counts(job).await?;
                let plan = DlqPlan::new(how, status_before, counts, selected);
                tx.write_dlq_plan(job, at, &plan).await?;
                // Items moved in a job whose run ended: its totals follow them, also when it is
                // `interrupted` now (a DLQ retry); a new finished status counted them already.
                if plan.moves_items()
                    && !plan
                        .job_status
                        .as_ref()
                        .is_some_and(|c| transitions::ends_run(c.to))
                    && transitions::ends_run(status_before)
                {
                    tx.keep_item_totals(job).await?;
                }
                Ok(plan.change)
            })
        })
    }
}

impl Tx<'_> {
    /// Writes what a [`DlqPlan`] decided, in its order.
    async fn write_dlq_plan(
        &mut self,
        job: JobId,
        at: i64,
        plan: &DlqPlan,
    ) -> Result<(), StoreError> {
        let id = job.to_string();
        for (index, event) in &plan.moves {
            self.execute(
                "move an item out of the dead-letter queue",
                "UPDATE items
                 SET status = $3::text,
                     attempts = CASE WHEN $4::boolean THEN 0 ELSE attempts END
                 WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = $1) AND idx = $2::bigint",
                &[
                    &id,
                    &int(*index),
                    &plan.item_status.as_str(),
                    &plan.reset_attempts,
                ],
            )
            .await?;
            self.record_event(job, at, event).await?;
        }
        if let Some(change) = &plan.job_status {
            self.set_job_status(job, (change.from, change.to), at)
                .await?;
            self.record_event(job, at, &change.event).await?;
        }
        if plan.moves_items() {
            self.touch_job(job, at).await?;
        }
        Ok(())
    }

    /// The job's dead-lettered items, in input order.
    async fn dead_lettered_items(&mut self, job: JobId) -> Result<Vec<ItemRecord>, StoreError> {
        let sql = format!(
            "SELECT {ITEM_COLUMNS} FROM items
             WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = $1)
               AND status = $2::text ORDER BY idx"
        );
        self.rows(
            "read the dead-lettered items",
            &sql,
            &[&job.to_string(), &ItemStatus::DeadLettered.as_str()],
            item_from_row,
        )
        .await
    }

    /// The job's items whose key is one of `keys`, whatever their status.
    async fn items_named(
        &mut self,
        job: JobId,
        keys: &[String],
    ) -> Result<Vec<ItemRecord>, StoreError> {
        let sql = format!(
            "SELECT {ITEM_COLUMNS} FROM items
               WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = $1) AND key = ANY($2::text[])"
        );
        let keys = dlq::distinct_keys(keys);
        self.rows(
            "read an item",
            &sql,
            &[&job.to_string(), &keys],
            item_from_row,
        )
        .await
    }
}
