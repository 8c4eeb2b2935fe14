//! [`Logs`] on SQLite: a job's log chunks in the order they were written, and pruning the
//! logs of finished jobs.

use rusqlite::params;

use super::SqliteStore;
use super::rows::{int, unsigned};
use crate::logs::{LogChunk, LogPruned, LogQuery};
use crate::{Logs, StoreError};
use mmm_core::job::{JobId, JobStatus};

impl Logs for SqliteStore {
    fn log_chunks(&self, job: JobId, query: &LogQuery) -> Result<Vec<LogChunk>, StoreError> {
        self.read(|tx| {
            self.ensure_job(tx, job)?;
            let sql = "SELECT c.id, c.item_idx, i.key, c.attempt, c.seq, c.byte_offset, c.bytes,
                              c.at, c.data
                       FROM log_chunks c
                       JOIN items i ON i.job_ref = c.job_ref AND i.idx = c.item_idx
                       WHERE c.job_ref = (SELECT job_ref FROM jobs WHERE id = ?1) AND c.id > ?2
                         AND (?3 IS NULL OR c.item_idx = ?3) AND (?4 IS NULL OR c.attempt = ?4)
                       ORDER BY c.id LIMIT ?5";
            tx.prepare_cached(sql)
                .and_then(|mut select| {
                    select
                        .query_map(
                            params![
                                job.to_string(),
                                query.after_id,
                                query.item.map(int),
                                query.attempt,
                                query.limit as i64
                            ],
                            |row| {
                                Ok(LogChunk {
                                    id: row.get(0)?,
                                    item_index: unsigned(row, 1)?,
                                    item_key: row.get(2)?,
                                    attempt: row.get(3)?,
                                    seq: row.get(4)?,
                                    offset: unsigned(row, 5)?,
                                    bytes: unsigned(row, 6)?,
                                    at: row.get(7)?,
                                    data: row.get(8)?,
                                })
                            },
                        )?
                        .collect::<Result<Vec<_>, _>>()
                })
                .map_err(self.fail("read log chunks"))
        })
    }

    fn prune_logs(
        &self,
        job: Option<JobId>,
        finished_before: Option<i64>,
    ) -> Result<LogPruned, StoreError> {
        let finished: Vec<&str> = [
            JobStatus::Completed,
            JobStatus::CompletedWithFailures,
            JobStatus::Failed,
            JobStatus::Cancelled,
        ]
        .iter()
        .map(|s| s.as_str())
        .collect();
        let pruned = self.write("prune logs", |tx| {
            if let Some(job) = job {
                self.ensure_job(tx, job)?;
            }
            // The jobs whose logs go: finished (a resumable job may still want its logs).
            let jobs_sql = "SELECT job_ref FROM jobs
                            WHERE status IN (?1, ?2, ?3, ?4)
                              AND (?5 IS NULL OR id = ?5)
                              AND (?6 IS NULL OR finished_at < ?6)
                              AND EXISTS (SELECT 1 FROM log_chunks c WHERE c.job_ref = jobs.job_ref)";
            let refs: Vec<i64> = tx
                .prepare_cached(jobs_sql)
                .and_then(|mut select| {
                    select
                        .query_map(
                            params![
                                finished[0],
                                finished[1],
                                finished[2],
                                finished[3],
                                job.map(|j| j.to_string()),
                                finished_before
                            ],
                            |row| row.get(0),
                        )?
                        .collect()
                })
                .map_err(self.fail("find the jobs whose logs to prune"))?;
            let mut pruned = LogPruned::default();
            for job_ref in refs {
                let (chunks, stored, output): (i64, i64, i64) = tx
                    .prepare_cached(
                        "SELECT count(*), COALESCE(SUM(length(data)), 0), COALESCE(SUM(bytes), 0)
                         FROM log_chunks WHERE job_ref = ?1",
                    )
                    .and_then(|mut select| {
                        select.query_row(params![job_ref], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                    })
                    .map_err(self.fail("measure the logs to prune"))?;
                tx.prepare_cached("DELETE FROM log_chunks WHERE job_ref = ?1")
                    .and_then(|mut delete| delete.execute(params![job_ref]))
                    .map_err(self.fail("prune logs"))?;
                pruned.jobs += 1;
                pruned.chunks += chunks as u64;
                pruned.stored_bytes += stored as u64;
                pruned.output_bytes += output as u64;
            }
            Ok(pruned)
        })?;
        Ok(pruned)
    }
}
