//! [`JobReads`] on PostgreSQL: jobs, items, attempts, a page of items, checkpoints and the
//! resume ledger, each read in one REPEATABLE READ transaction.

use std::sync::LazyLock;

use tokio_postgres::types::ToSql;

use super::PostgresStore;
use super::rows::{
    ATTEMPT_COLUMNS, ITEM_COLUMNS, JOB_COLUMNS, attempt_from_row, event_from_row, item_from_row,
    job_from_row, optional_text, paged_item_from_row, text, unsigned,
};
use super::statements::RowLock;
use crate::rules::{job_ids, name_glob};
use crate::store::job_totals_sql;
use crate::{
    AttemptRecord, CheckpointRecord, ItemPage, ItemPageQuery, ItemRecord, JobQuery, JobReads,
    JobRecord, JobTotals, Ledger, StoreError,
};
use crate::{ItemCounts, NameItemTotals, item_totals};
use mmm_core::event::EventKind;
use mmm_core::job::{ItemStatus, JobId};
use mmm_core::metrics::durations::BUCKET_BOUNDS_SECONDS;

impl JobReads for PostgresStore {
    fn job(&self, id: JobId) -> Result<JobRecord, StoreError> {
        self.read(move |tx| {
            Box::pin(async move {
                let job = tx.read_job(id).await?;
                job.ok_or_else(|| StoreError::job_not_found(id))
            })
        })
    }

    fn jobs(&self) -> Result<Vec<JobRecord>, StoreError> {
        self.read(move |tx| {
            Box::pin(async move {
                let sql = format!("SELECT {JOB_COLUMNS} FROM jobs ORDER BY id DESC");
                let rows = tx.query("list the jobs", &sql, &[]).await?;
                let mut jobs = tx.decode(&rows, "list the jobs", job_from_row)?;
                let mut counts = tx.counts(None).await?;
                for job in &mut jobs {
                    job.counts = counts.remove(&job.id).unwrap_or_default();
                }
                Ok(jobs)
            })
        })
    }

    fn jobs_matching(&self, query: &JobQuery) -> Result<Vec<JobRecord>, StoreError> {
        let statuses: Vec<String> = query
            .statuses
            .iter()
            .map(|s| s.as_str().to_string())
            .collect();
        let name = query.name.clone();
        let name_regex = query.name_glob.as_deref().map(name_glob::to_regex);
        let (created_since, active_since) = (query.created_since, query.active_since);
        let before = query.before.map(|id| id.to_string());
        let limit = query.limit.map(|l| i64::try_from(l).unwrap_or(i64::MAX));
        self.read(move |tx| {
            Box::pin(async move {
                let mut conditions: Vec<String> = Vec::new();
                let mut params: Vec<&(dyn ToSql + Sync)> = Vec::new();
                if !statuses.is_empty() {
                    params.push(&statuses);
                    conditions.push(format!("status = ANY(${}::text[])", params.len()));
                }
                if let Some(name) = &name {
                    params.push(name);
                    conditions.push(format!("name = ${}::text", params.len()));
                }
                if let Some(regex) = &name_regex {
                    params.push(regex);
                    conditions.push(format!("name ~ ${}::text", params.len()));
                }
                if let Some(since) = &created_since {
                    params.push(since);
                    conditions.push(format!("created_at >= ${}::bigint", params.len()));
                }
                if let Some(since) = &active_since {
                    params.push(since);
                    conditions.push(format!(
                        "(status = 'running' OR updated_at >= ${}::bigint)",
                        params.len()
                    ));
                }
                if let Some(before) = &before {
                    params.push(before);
                    conditions.push(format!("id < ${}::text", params.len()));
                }
                let filter = if conditions.is_empty() {
                    String::new()
                } else {
                    format!("WHERE {}", conditions.join(" AND "))
                };
                let limit_clause = match &limit {
                    Some(limit) => {
                        params.push(limit);
                        format!("LIMIT ${}::bigint", params.len())
                    }
                    None => String::new(),
                };
                let sql = format!(
                    "SELECT {JOB_COLUMNS} FROM jobs {filter} ORDER BY id DESC {limit_clause}"
                );
                let rows = tx.query("list the jobs", &sql, &params).await?;
                let mut jobs = tx.decode(&rows, "list the jobs", job_from_row)?;
                if limit.is_some() {
                    // A page: count its jobs' items alone, not the whole store's.
                    for job in &mut jobs {
                        job.counts = tx
                            .counts(Some(job.id))
                            .await?
                            .remove(&job.id)
                            .unwrap_or_default();
                    }
                } else {
                    let mut counts = tx.counts(None).await?;
                    for job in &mut jobs {
                        job.counts = counts.remove(&job.id).unwrap_or_default();
                    }
                }
                Ok(jobs)
            })
        })
    }

    fn job_totals(&self, bounds_ms: &[i64]) -> Result<Vec<JobTotals>, StoreError> {
        let sql = job_totals_sql(bounds_ms);
        let buckets = bounds_ms.len();
        self.read(move |tx| {
            Box::pin(async move {
                tx.rows("total the jobs by name", &sql, &[], |row| {
                    Ok(JobTotals {
                        name: row.try_get(0)?,
                        status: text(row, 1)?,
                        jobs: unsigned(row, 2)?,
                        duration_ms: row.try_get(3)?,
                        at_most: (0..buckets)
                            .map(|i| unsigned(row, 4 + i))
                            .collect::<Result<_, _>>()?,
                    })
                })
                .await
            })
        })
    }

    fn name_item_totals(&self) -> Result<Vec<NameItemTotals>, StoreError> {
        static SQL: LazyLock<String> = LazyLock::new(item_totals::read_sql);
        self.read(move |tx| {
            Box::pin(async move {
                tx.rows("total the items by job name", &SQL, &[], |row| {
                    let figure = |i: usize| unsigned(row, 2 + i);
                    Ok(NameItemTotals {
                        name: row.try_get(0)?,
                        jobs: unsigned(row, 1)?,
                        items: ItemCounts {
                            pending: figure(0)?,
                            running: figure(1)?,
                            completed: figure(2)?,
                            failed: figure(3)?,
                            dead_lettered: figure(4)?,
                            skipped: figure(5)?,
                        },
                        timed: figure(6)?,
                        duration_us: figure(7)?,
                        at_most: (0..BUCKET_BOUNDS_SECONDS.len())
                            .map(|i| figure(8 + i))
                            .collect::<Result<_, _>>()?,
                    })
                })
                .await
            })
        })
    }

    fn resolve_job(&self, prefix: &str) -> Result<JobId, StoreError> {
        let hex = job_ids::hex_prefix(prefix)?;
        let ids = self.read(move |tx| {
            Box::pin(async move {
                // `hex` holds only hex digits, so it has no LIKE wildcards of its own.
                let pattern = format!("{hex}%");
                tx.rows(
                    "look up a job id",
                    "SELECT id FROM jobs WHERE id LIKE $1::text ORDER BY id DESC",
                    &[&pattern],
                    |row| text::<JobId>(row, 0),
                )
                .await
            })
        })?;
        job_ids::the_one(prefix, ids)
    }

    fn items(&self, job: JobId, status: Option<ItemStatus>) -> Result<Vec<ItemRecord>, StoreError> {
        self.read(move |tx| {
            Box::pin(async move {
                tx.ensure_job(job, RowLock::None).await?;
                let operation = "read a job's items";
                let id = job.to_string();
                let rows = match status {
                    None => {
                        let sql =
                            format!("SELECT {ITEM_COLUMNS} FROM items
                                       WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = $1) ORDER BY idx");
                        tx.query(operation, &sql, &[&id]).await?
                    }
                    Some(status) => {
                        let sql = format!(
                            "SELECT {ITEM_COLUMNS} FROM items
                             WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = $1)
                               AND status = $2::text ORDER BY idx"
                        );
                        let params: [&(dyn ToSql + Sync); 2] = [&id, &status.as_str()];
                        tx.query(operation, &sql, &params).await?
                    }
                };
                let items = tx.decode(&rows, operation, item_from_row)?;
                Ok(items)
            })
        })
    }

    fn item(&self, job: JobId, key: &str) -> Result<Option<ItemRecord>, StoreError> {
        let key = key.to_string();
        self.read(move |tx| {
            Box::pin(async move {
                tx.ensure_job(job, RowLock::None).await?;
                let sql = format!(
                    "SELECT {ITEM_COLUMNS} FROM items
                               WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = $1)
                                 AND key = $2::text"
                );
                let rows = tx
                    .query("read an item", &sql, &[&job.to_string(), &key])
                    .await?;
                let item = tx
                    .decode(&rows, "read an item", item_from_row)?
                    .into_iter()
                    .next();
                Ok(item)
            })
        })
    }

    fn item_keys(&self, job: JobId) -> Result<Vec<String>, StoreError> {
        self.read(move |tx| {
            Box::pin(async move {
                tx.ensure_job(job, RowLock::None).await?;
                let operation = "read the item keys";
                let rows = tx
                    .query(
                        operation,
                        "SELECT key FROM items
                       WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = $1) ORDER BY idx",
                        &[&job.to_string()],
                    )
                    .await?;
                let keys = tx.decode(&rows, operation, |row| Ok(row.try_get(0)?))?;
                Ok(keys)
            })
        })
    }

    fn attempts(
        &self,
        job: JobId,
        item_key: Option<&str>,
    ) -> Result<Vec<AttemptRecord>, StoreError> {
        let item_key = item_key.map(str::to_string);
        self.read(move |tx| {
            Box::pin(async move {
                tx.ensure_job(job, RowLock::None).await?;
                let operation = "read a job's attempts";
                let sql = format!(
                    "SELECT {ATTEMPT_COLUMNS} FROM attempts a
                     JOIN items i ON i.job_ref = a.job_ref AND i.idx = a.item_idx
                     WHERE a.job_ref = (SELECT job_ref FROM jobs WHERE id = $1)
                       AND ($2::text IS NULL OR i.key = $2::text)
                     ORDER BY a.item_idx, a.number"
                );
                let rows = tx
                    .query(operation, &sql, &[&job.to_string(), &item_key])
                    .await?;
                let attempts = tx.decode(&rows, operation, attempt_from_row)?;
                Ok(attempts)
            })
        })
    }

    fn items_page(&self, job: JobId, page: &ItemPageQuery) -> Result<ItemPage, StoreError> {
        let status = page.status.map(|s| s.as_str().to_string());
        let limit = i64::try_from(page.limit).unwrap_or(i64::MAX);
        let offset = i64::try_from(page.offset).unwrap_or(i64::MAX);
        self.read(move |tx| {
            Box::pin(async move {
                tx.ensure_job(job, RowLock::None).await?;
                let id = job.to_string();
                // Two spellings rather than `($2 IS NULL OR status = $2)`, so that each gets a
                // plan on its own index ((job_ref, idx) and (job_ref, status)).
                let filter = if status.is_some() {
                    "i.job_ref = (SELECT job_ref FROM jobs WHERE id = $1) AND i.status = $2::text"
                } else {
                    "i.job_ref = (SELECT job_ref FROM jobs WHERE id = $1) AND $2::text IS NULL"
                };
                let operation = "count a job's items";
                let sql = format!("SELECT count(*) FROM items i WHERE {filter}");
                let rows = tx.query(operation, &sql, &[&id, &status]).await?;
                let total = tx
                    .decode(&rows, operation, |row| unsigned(row, 0))?
                    .first()
                    .copied()
                    .unwrap_or(0);
                // The last attempt is the one with the highest number (they keep increasing
                // across retries and resumes); the (job_ref, item_idx, number) key finds it.
                let operation = "read a page of a job's items";
                let sql = format!(
                    "SELECT i.idx, i.key, i.value, i.status, i.attempts,
                            a.number, a.agent, a.started_at, a.ended_at, a.duration_us, a.outcome,
                            a.exit_code, a.error, a.steps, a.stdout_tail, a.stderr_tail
                     FROM items i
                     LEFT JOIN LATERAL (
                         SELECT * FROM attempts m
                         WHERE m.job_ref = i.job_ref AND m.item_idx = i.idx
                         ORDER BY m.number DESC LIMIT 1
                     ) a ON true
                     WHERE {filter}
                     ORDER BY i.idx LIMIT $3 OFFSET $4"
                );
                let rows = tx
                    .query(operation, &sql, &[&id, &status, &limit, &offset])
                    .await?;
                let items = tx.decode(&rows, operation, paged_item_from_row)?;
                Ok(ItemPage { total, items })
            })
        })
    }

    fn checkpoints(&self, job: JobId) -> Result<Vec<CheckpointRecord>, StoreError> {
        self.read(move |tx| {
            Box::pin(async move {
                tx.ensure_job(job, RowLock::None).await?;
                let operation = "read the checkpoints";
                let rows = tx.query(
                    operation,
                    "SELECT id, at, phase, reason, completed, dead_lettered, skipped
                     FROM checkpoints WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = $1) ORDER BY id",
                    &[&job.to_string()],
                )
                .await?;
                let checkpoints = tx.decode(&rows, operation, |row| {
                    Ok(CheckpointRecord {
                        id: row.try_get(0)?,
                        at: row.try_get(1)?,
                        phase: optional_text(row, 2)?,
                        reason: row.try_get(3)?,
                        completed: unsigned(row, 4)?,
                        dead_lettered: unsigned(row, 5)?,
                        skipped: unsigned(row, 6)?,
                    })
                })?;
                Ok(checkpoints)
            })
        })
    }

    fn ledger(&self, job: JobId) -> Result<Ledger, StoreError> {
        self.read(move |tx| {
            Box::pin(async move {
                tx.ensure_job(job, RowLock::None).await?;
                let id = job.to_string();
                let operation = "read the resume ledger";
                let rows = tx.query(
                    operation,
                    "SELECT seq, at, kind, item_key, payload FROM events
                     WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = $1)
                       AND kind IN ('job_resumed', 'input_changed', 'spec_changed', 'spec_from_store',
                                    'control_requested', 'paused', 'unpaused', 'scaled',
                                    'draining', 'cancelling')
                     ORDER BY seq",
                    &[&id],
                )
                .await?;
                let entries = tx.decode(&rows, operation, |row| event_from_row(row, job))?;
                let operation = "count the requeued items";
                let rows = tx.query(
                    operation,
                    "SELECT CASE kind WHEN $2::text THEN $2::text
                                      ELSE COALESCE(payload ->> 'reason', 'unknown') END,
                            count(*)
                     FROM events WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = $1)
                       AND kind IN ($3::text, $2::text)
                     GROUP BY 1",
                    // A DLQ retry counts as a reason of its own; a requeue, as its payload says.
                    &[
                        &id,
                        &EventKind::DlqRetry.as_str(),
                        &EventKind::ItemRequeued.as_str(),
                    ],
                )
                .await?;
                let mut requeued: Vec<(String, u64)> = tx.decode(&rows, operation, |row| {
                    Ok((row.try_get(0)?, unsigned(row, 1)?))
                })?;
                // Byte order, as SQLite sorts, whatever the database's collation.
                requeued.sort();
                Ok(Ledger { entries, requeued })
            })
        })
    }
}
