//! [`Summaries`] on SQLite: the jobs of a period with their current kept summaries, in one
//! read; keeping a summary.

use rusqlite::params;

use super::SqliteStore;
use super::rows::text;
use crate::rules::name_glob;
use crate::{PeriodJob, PeriodQuery, StoreError, Summaries};
use mmm_core::job::JobId;

impl Summaries for SqliteStore {
    fn period_jobs(&self, query: &PeriodQuery) -> Result<Vec<PeriodJob>, StoreError> {
        let glob = query.name_glob.as_deref().map(name_glob::to_sqlite);
        self.read(|tx| {
            tx.prepare_cached(
                "SELECT j.id, j.name, j.status, j.created_at, j.finished_at, j.duration_ms,
                        j.updated_at, s.payload
                 FROM jobs j
                 LEFT JOIN job_summaries s ON s.job_ref = j.job_ref AND s.updated_at = j.updated_at
                 WHERE j.created_at >= ?1 AND j.created_at < ?2
                   AND (?3 IS NULL OR j.name GLOB ?3)
                 ORDER BY j.created_at, j.id",
            )
            .and_then(|mut select| {
                select
                    .query_map(params![query.from, query.to, glob], |row| {
                        Ok(PeriodJob {
                            id: text(row, 0)?,
                            name: row.get(1)?,
                            status: text(row, 2)?,
                            created_at: row.get(3)?,
                            finished_at: row.get(4)?,
                            duration_ms: row.get(5)?,
                            updated_at: row.get(6)?,
                            summary: row.get(7)?,
                        })
                    })?
                    .collect::<Result<Vec<_>, _>>()
            })
            .map_err(self.fail("read the jobs of a period"))
        })
    }

    fn keep_summary(&self, job: JobId, updated_at: i64, summary: &str) -> Result<(), StoreError> {
        self.write("commit a job summary", |tx| {
            tx.prepare_cached(
                "INSERT INTO job_summaries (job_ref, updated_at, payload)
                 SELECT job_ref, ?2, ?3 FROM jobs WHERE id = ?1
                 ON CONFLICT (job_ref) DO UPDATE
                 SET updated_at = excluded.updated_at, payload = excluded.payload",
            )
            .and_then(|mut insert| insert.execute(params![job.to_string(), updated_at, summary]))
            .map_err(self.fail("keep a job summary"))?;
            Ok(())
        })
    }
}
