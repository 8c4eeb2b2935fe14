//! [`JobLog`] on SQLite: a new job and its items, items added later, and batches of writes
//! (each [`Write`]'s statements are in `writes`).

use rusqlite::{OptionalExtension, Transaction, params};

use super::SqliteStore;
use super::failure::expect_change;
use super::rows::int;
use crate::rules::batch;
use crate::{JobLog, NewItem, NewJob, StoreError, Write};
use mmm_core::job::{ItemStatus, JobId, JobStatus};

impl JobLog for SqliteStore {
    fn create_job(&self, job: &NewJob, items: &[NewItem]) -> Result<(), StoreError> {
        self.write("commit a new job", |tx| {
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
            self.insert_items(tx, job.id, 0, items)
        })
    }

    fn add_items(&self, job: JobId, items: &[NewItem]) -> Result<(), StoreError> {
        self.write("commit the job's items", |tx| {
            let next: Option<i64> = tx
                .query_row(
                    "SELECT (SELECT COALESCE(MAX(idx) + 1, 0) FROM items
                       WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = ?1))
                     FROM jobs WHERE id = ?1",
                    params![job.to_string()],
                    |row| row.get(0),
                )
                .optional()
                .map_err(self.fail("find the job's last item"))?;
            let next = next.ok_or_else(|| StoreError::job_not_found(job))?;
            self.insert_items(tx, job, next as u64, items)
        })
    }

    fn apply(&self, writes: &[Write]) -> Result<(), StoreError> {
        if writes.is_empty() {
            return Ok(());
        }
        self.write("commit a batch of writes", |tx| {
            self.touch_jobs(tx, writes)?;
            for write in writes {
                self.apply_one(tx, write)?;
            }
            Ok(())
        })?;
        self.commits.committed();
        Ok(())
    }
}

impl SqliteStore {
    /// Inserts `items` with indices from `first_index`, with one prepared statement. The first
    /// item whose key the job already has is [`StoreError::DuplicateItemKey`].
    fn insert_items(
        &self,
        tx: &Transaction<'_>,
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

    /// Bumps `updated_at` of every job the batch touches ([`batch::touched_jobs`]). Fails with
    /// [`StoreError::JobNotFound`] for an unknown job, before anything else is done.
    fn touch_jobs(&self, tx: &Transaction<'_>, writes: &[Write]) -> Result<(), StoreError> {
        let mut touch = tx
            .prepare_cached("UPDATE jobs SET updated_at = MAX(updated_at, ?2) WHERE id = ?1")
            .map_err(self.fail("prepare to update a job"))?;
        for (job, at) in batch::touched_jobs(writes) {
            let changed = touch
                .execute(params![job.to_string(), at])
                .map_err(self.fail("update a job"))?;
            expect_change(changed, || StoreError::job_not_found(job))?;
        }
        Ok(())
    }
}
