//! [`JobLog`] on PostgreSQL: a new job and its items (a chunk of items per statement), items
//! added later, and batches of writes (planned in `batch`).

use std::collections::HashSet;

use super::PostgresStore;
use super::batch::plan;
use super::rows::{int, unsigned};
use super::statements::RowLock;
use super::transaction::Tx;
use crate::{JobLog, NewItem, NewJob, StoreError, Write};
use mmm_core::job::{JobId, JobStatus};

/// Items per `INSERT` when recording a job's items (each sends three arrays).
pub(super) const ITEM_CHUNK: usize = 10_000;

impl JobLog for PostgresStore {
    fn create_job(&self, job: &NewJob, items: &[NewItem]) -> Result<(), StoreError> {
        let job = job.clone();
        let items = items.to_vec();
        self.write("commit a new job", move |tx| {
            Box::pin(async move {
                let source = job
                    .source
                    .as_ref()
                    .map(|path| path.to_string_lossy().into_owned());
                let inserted = tx
                    .execute(
                        "record a new job",
                        "INSERT INTO jobs (id, name, status, spec, spec_hash, source, max_parallel,
                                           created_at, updated_at, owner_pid, owner_host, origin)
                         VALUES ($1, $2::text, $3::text, $4::text, $5::text, $6::text, $7::bigint,
                                 $8::bigint, $8::bigint, $9::bigint, $10::text, $11::text)
                         ON CONFLICT (id) DO NOTHING",
                        &[
                            &job.id.to_string(),
                            &job.name,
                            &JobStatus::Pending.as_str(),
                            &job.spec,
                            &job.spec_hash,
                            &source,
                            &i64::from(job.max_parallel),
                            &job.created_at,
                            &i64::from(job.owner_pid),
                            &job.owner_host,
                            &job.origin,
                        ],
                    )
                    .await?;
                if inserted == 0 {
                    return Err(StoreError::JobExists { job: job.id });
                }
                tx.insert_items(job.id, 0, &items).await
            })
        })
    }

    fn add_items(&self, job: JobId, items: &[NewItem]) -> Result<(), StoreError> {
        self.write_once(&(job, items), |id| {
            let items = items.to_vec();
            self.write("commit the job's items", move |tx| {
                Box::pin(async move {
                    tx.note_transaction_id(&id).await?;
                    tx.ensure_job(job, RowLock::ForUpdate).await?;
                    let operation = "find the job's last item";
                    let next = tx
                        .rows(
                            operation,
                            "SELECT COALESCE(MAX(idx) + 1, 0) FROM items
                           WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = $1)",
                            &[&job.to_string()],
                            |row| unsigned(row, 0),
                        )
                        .await?
                        .into_iter()
                        .next()
                        .unwrap_or(0);
                    tx.insert_items(job, next, &items).await
                })
            })
        })
    }

    fn apply(&self, writes: &[Write]) -> Result<(), StoreError> {
        if writes.is_empty() {
            return Ok(());
        }
        self.write_once(&writes, |id| {
            let planned = plan(writes);
            self.write("commit a batch of writes", move |tx| {
                Box::pin(async move {
                    tx.note_transaction_id(&id).await?;
                    tx.run_batch(&planned).await
                })
            })
        })
    }
}

impl Tx<'_> {
    /// Inserts `items` with indices from `first_index`, a chunk of them per statement. The
    /// first item whose key the job already has (or an earlier item has) is
    /// [`StoreError::DuplicateItemKey`], as SQLite reports it.
    async fn insert_items(
        &mut self,
        job: JobId,
        first_index: u64,
        items: &[NewItem],
    ) -> Result<(), StoreError> {
        let duplicate = |offset: usize| StoreError::DuplicateItemKey {
            job,
            index: first_index + offset as u64,
            key: items[offset].key.clone(),
        };
        // A key repeated within `items`: only what comes before it can be inserted.
        let mut seen = HashSet::new();
        let repeat = items
            .iter()
            .position(|item| !seen.insert(item.key.as_str()));
        let insertable = &items[..repeat.unwrap_or(items.len())];
        let id = job.to_string();
        let operation = "record the job's items";
        for (chunk_number, chunk) in insertable.chunks(ITEM_CHUNK).enumerate() {
            let start = chunk_number * ITEM_CHUNK;
            let indices: Vec<i64> = (0..chunk.len())
                .map(|offset| int(first_index + (start + offset) as u64))
                .collect();
            let keys: Vec<&str> = chunk.iter().map(|item| item.key.as_str()).collect();
            let values: Vec<&str> = chunk.iter().map(|item| item.value.as_str()).collect();
            let inserted = self
                .execute(
                    operation,
                    "INSERT INTO items (job_ref, idx, key, value, status)
                     SELECT (SELECT job_ref FROM jobs WHERE id = $1), u.idx, u.key, u.value, 'pending'
                     FROM unnest($2::bigint[], $3::text[], $4::text[]) AS u (idx, key, value)
                     ON CONFLICT (job_ref, key) DO NOTHING",
                    &[&id, &indices, &keys, &values],
                )
                .await?;
            if inserted as usize != chunk.len() {
                // Some key was recorded before: find the first item whose row is not its own.
                let rows = self
                    .query(
                        operation,
                        "SELECT min(u.ord) FROM unnest($2::text[], $3::bigint[]) WITH ORDINALITY
                                AS u (key, idx, ord)
                         JOIN items i ON i.job_ref = (SELECT job_ref FROM jobs WHERE id = $1) AND i.key = u.key AND i.idx <> u.idx",
                        &[&id, &keys, &indices],
                    )
                    .await?;
                let ordinal: Option<i64> = rows.first().and_then(|row| row.get(0));
                let offset = ordinal.map_or(0, |ord| (ord - 1) as usize);
                return Err(duplicate(start + offset));
            }
        }
        match repeat {
            Some(offset) => Err(duplicate(offset)),
            None => Ok(()),
        }
    }
}
