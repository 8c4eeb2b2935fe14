//! The jobs that can continue (`mmm jobs --resumable`): interrupted, or recorded `running`
//! with a dead owner.

use serde::Serialize;

use mmm_core::job::{JobId, JobStatus, now_ms};

use crate::owner::{host_name, owner_is_alive};
use crate::{ItemCounts, Store, StoreError};

/// A job that can continue, as `mmm jobs --resumable` lists it.
#[derive(Debug, Clone, Serialize)]
pub struct ResumableJob {
    /// The job.
    pub id: JobId,
    /// Its name.
    pub name: String,
    /// `interrupted`, or `running` with a dead owner.
    pub status: JobStatus,
    /// Epoch ms of the first start.
    pub started_at: Option<i64>,
    /// Epoch ms of the last recorded change.
    pub last_activity: i64,
    /// Item counts.
    pub counts: ItemCounts,
    /// Percent done (completed, dead-lettered or skipped).
    pub percent: f64,
    /// Time spent running so far, over all runs, in ms.
    pub spent_ms: i64,
    /// What remains at the pace so far (items done per second of running), in ms; none
    /// before any item finished.
    pub remaining_ms: Option<i64>,
}

/// Every job that can continue: interrupted, or running with a dead owner. Newest first.
pub fn list_resumable_jobs(store: &dyn Store) -> Result<Vec<ResumableJob>, StoreError> {
    let now = now_ms();
    let host = host_name();
    Ok(store
        .jobs()?
        .into_iter()
        .filter(|job| {
            job.status == JobStatus::Interrupted
                || (job.status == JobStatus::Running && !owner_is_alive(job, now, &host))
        })
        .map(|job| {
            let c = job.counts;
            let done = c.completed + c.dead_lettered + c.skipped;
            let total = c.total();
            let percent = if total == 0 {
                0.0
            } else {
                done as f64 * 100.0 / total as f64
            };
            let remaining_ms = (done > 0 && job.duration_ms > 0)
                .then(|| (job.duration_ms as f64 * (total - done) as f64 / done as f64) as i64);
            ResumableJob {
                id: job.id,
                name: job.name,
                status: job.status,
                started_at: job.started_at,
                last_activity: job.updated_at,
                counts: c,
                percent,
                spent_ms: job.duration_ms,
                remaining_ms,
            }
        })
        .collect())
}
