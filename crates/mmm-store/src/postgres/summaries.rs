//! [`Summaries`] on PostgreSQL: the jobs of a period with their current kept summaries, in
//! one read; keeping a summary.

use super::PostgresStore;
use super::rows::text;
use crate::rules::name_glob;
use crate::{PeriodJob, PeriodQuery, StoreError, Summaries};
use mmm_core::job::JobId;

impl Summaries for PostgresStore {
    fn period_jobs(&self, query: &PeriodQuery) -> Result<Vec<PeriodJob>, StoreError> {
        let (from, to) = (query.from, query.to);
        let regex = query.name_glob.as_deref().map(name_glob::to_regex);
        self.read(move |tx| {
            Box::pin(async move {
                tx.rows(
                    "read the jobs of a period",
                    "SELECT j.id, j.name, j.status, j.created_at, j.finished_at, j.duration_ms,
                            j.updated_at, s.payload
                     FROM jobs j
                     LEFT JOIN job_summaries s
                       ON s.job_ref = j.job_ref AND s.updated_at = j.updated_at
                     WHERE j.created_at >= $1::bigint AND j.created_at < $2::bigint
                       AND ($3::text IS NULL OR j.name ~ $3::text)
                     ORDER BY j.created_at, j.id",
                    &[&from, &to, &regex],
                    |row| {
                        Ok(PeriodJob {
                            id: text(row, 0)?,
                            name: row.try_get(1)?,
                            status: text(row, 2)?,
                            created_at: row.try_get(3)?,
                            finished_at: row.try_get(4)?,
                            duration_ms: row.try_get(5)?,
                            updated_at: row.try_get(6)?,
                            summary: row.try_get(7)?,
                        })
                    },
                )
                .await
            })
        })
    }

    fn keep_summary(&self, job: JobId, updated_at: i64, summary: &str) -> Result<(), StoreError> {
        let summary = summary.to_string();
        self.write("commit a job summary", move |tx| {
            Box::pin(async move {
                tx.execute(
                    "keep a job summary",
                    "INSERT INTO job_summaries (job_ref, updated_at, payload)
                     SELECT job_ref, $2::bigint, $3::text FROM jobs WHERE id = $1
                     ON CONFLICT (job_ref) DO UPDATE
                     SET updated_at = excluded.updated_at, payload = excluded.payload",
                    &[&job.to_string(), &updated_at, &summary],
                )
                .await?;
                Ok(())
            })
        })
    }
}
