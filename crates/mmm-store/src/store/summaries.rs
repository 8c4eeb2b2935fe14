//! [`Summaries`]: the jobs of a period with their kept summaries, what `mmm stats` and
//! `GET /api/stats` aggregate (`crate::stats`). A summary is a cache of what a job's own
//! records say (its attempts, snapshots and events), kept once the job has ended so a period of
//! thousands of jobs is read without their attempts.

use crate::StoreError;
use mmm_core::job::{JobId, JobStatus};

/// Reads and keeps job summaries.
pub trait Summaries {
    /// Every job created in `[from, to)` (epoch ms) whose name matches the glob (any name when
    /// `None`), oldest first, each with its kept summary when that is still current (kept at
    /// the job's present `updated_at`).
    fn period_jobs(&self, query: &PeriodQuery) -> Result<Vec<PeriodJob>, StoreError>;
    /// Keeps `summary` (JSON text, `crate::stats::JobSummary`) as the job's summary at its
    /// `updated_at`, replacing any older one.
    fn keep_summary(&self, job: JobId, updated_at: i64, summary: &str) -> Result<(), StoreError>;
}

/// Which jobs [`Summaries::period_jobs`] reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeriodQuery {
    /// Jobs created at or after this time, epoch ms.
    pub from: i64,
    /// Jobs created before this time, epoch ms.
    pub to: i64,
    /// Only names matching this glob (`crate::rules::name_glob`).
    pub name_glob: Option<String>,
}

/// A job of a period, as [`Summaries::period_jobs`] reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeriodJob {
    /// The job.
    pub id: JobId,
    /// Its name.
    pub name: String,
    /// Its status.
    pub status: JobStatus,
    /// When it was created, epoch ms.
    pub created_at: i64,
    /// When it last finished, epoch ms.
    pub finished_at: Option<i64>,
    /// Its running time, all runs, ms.
    pub duration_ms: i64,
    /// When its record last changed, epoch ms.
    pub updated_at: i64,
    /// Its kept summary (JSON text), when one was kept at `updated_at`.
    pub summary: Option<String>,
}
