//! [`Logs`] on PostgreSQL: a job's log chunks in the order they were written, and pruning the
//! logs of finished jobs.

use super::PostgresStore;
use super::rows::{int, small, unsigned};
use super::statements::RowLock;
use crate::logs::{LogChunk, LogPruned, LogQuery};
use crate::{Logs, StoreError};
use mmm_core::job::{JobId, JobStatus};

impl Logs for PostgresStore {
    fn log_chunks(&self, job: JobId, query: &LogQuery) -> Result<Vec<LogChunk>, StoreError> {
        let query = query.clone();
        self.read(move |tx| {
            Box::pin(async move {
                tx.ensure_job(job, RowLock::None).await?;
                let sql = "SELECT c.id, c.item_idx, i.key, c.attempt, c.seq, c.byte_offset,
                                  c.bytes, c.at, c.data
                           FROM log_chunks c
                           JOIN items i ON i.job_ref = c.job_ref AND i.idx = c.item_idx
                           WHERE c.job_ref = (SELECT job_ref FROM jobs WHERE id = $1)
                             AND c.id > $2::bigint
                             AND ($3::bigint IS NULL OR c.item_idx = $3::bigint)
                             AND ($4::bigint IS NULL OR c.attempt = $4::bigint)
                           ORDER BY c.id LIMIT $5::bigint";
                tx.rows(
                    "read log chunks",
                    sql,
                    &[
                        &job.to_string(),
                        &query.after_id,
                        &query.item.map(int),
                        &query.attempt.map(i64::from),
                        &(query.limit as i64),
                    ],
                    |row| {
                        Ok(LogChunk {
                            id: row.try_get(0)?,
                            item_index: unsigned(row, 1)?,
                            item_key: row.try_get(2)?,
                            attempt: small(row, 3)?,
                            seq: small(row, 4)?,
                            offset: unsigned(row, 5)?,
                            bytes: unsigned(row, 6)?,
                            at: row.try_get(7)?,
                            data: row.try_get(8)?,
                        })
                    },
                )
                .await
            })
        })
    }

    fn prune_logs(
        &self,
        job: Option<JobId>,
        finished_before: Option<i64>,
    ) -> Result<LogPruned, StoreError> {
        self.write("prune logs", move |tx| {
            Box::pin(async move {
                if let Some(job) = job {
                    tx.ensure_job(job, RowLock::None).await?;
                }
                let finished: Vec<String> = [
                    JobStatus::Completed,
                    JobStatus::CompletedWithFailures,
                    JobStatus::Failed,
                    JobStatus::Cancelled,
                ]
                .iter()
                .map(|s| s.as_str().to_string())
                .collect();
                // The jobs whose logs go: finished (a resumable job may still want its logs).
                let sql = "WITH gone AS (
                               DELETE FROM log_chunks c USING jobs j
                               WHERE c.job_ref = j.job_ref AND j.status = ANY($1::text[])
                                 AND ($2::text IS NULL OR j.id = $2::text)
                                 AND ($3::bigint IS NULL OR j.finished_at < $3::bigint)
                               RETURNING c.job_ref, octet_length(c.data) AS stored, c.bytes)
                           SELECT count(DISTINCT job_ref), count(*),
                                  COALESCE(SUM(stored), 0)::bigint, COALESCE(SUM(bytes), 0)::bigint
                           FROM gone";
                let rows = tx
                    .rows(
                        "prune logs",
                        sql,
                        &[&finished, &job.map(|j| j.to_string()), &finished_before],
                        |row| {
                            Ok(LogPruned {
                                jobs: unsigned(row, 0)?,
                                chunks: unsigned(row, 1)?,
                                stored_bytes: unsigned(row, 2)?,
                                output_bytes: unsigned(row, 3)?,
                            })
                        },
                    )
                    .await?;
                Ok(rows.into_iter().next().unwrap_or_default())
            })
        })
    }
}
