//! [`JobReads`]: what readers see of a job's record: the job, its items, attempts and
//! checkpoints, a page of its items, and its resume ledger.

use serde::Serialize;

use crate::{
    AttemptRecord, CheckpointRecord, EventRecord, ItemCounts, ItemRecord, JobRecord, StoreError,
};
use mmm_core::job::{ItemStatus, JobId, JobStatus};

/// Reads of a job's record. A read of several queries sees one consistent state.
pub trait JobReads {
    /// One job, with counts.
    fn job(&self, id: JobId) -> Result<JobRecord, StoreError>;
    /// Every job, newest first, with counts.
    fn jobs(&self) -> Result<Vec<JobRecord>, StoreError>;
    /// The jobs that match `query`, newest first, with counts: one page of a list that stays
    /// fast however many jobs the store holds (`mmm jobs`, `GET /api/jobs`, `/metrics`).
    fn jobs_matching(&self, query: &JobQuery) -> Result<Vec<JobRecord>, StoreError>;
    /// Every job counted by name and status, with its running time summed and counted at
    /// or below each of `bounds_ms` (ascending): what `/metrics` aggregates by job name, in
    /// one read of the jobs alone, whatever the number of items.
    fn job_totals(&self, bounds_ms: &[i64]) -> Result<Vec<JobTotals>, StoreError>;
    /// The items of the jobs whose run ended, totalled by job name: by status, and their
    /// durations as a histogram. Kept as each job's run ends (and taken off when a job is
    /// deleted), so this reads one row per name however many jobs and items the store holds.
    fn name_item_totals(&self) -> Result<Vec<NameItemTotals>, StoreError>;
    /// The job whose id starts with `prefix` (an error when none or several match).
    fn resolve_job(&self, prefix: &str) -> Result<JobId, StoreError>;
    /// The job's items in input order, optionally only those with one status.
    fn items(&self, job: JobId, status: Option<ItemStatus>) -> Result<Vec<ItemRecord>, StoreError>;
    /// One item of the job by its key; `None` when the job has no such item.
    fn item(&self, job: JobId, key: &str) -> Result<Option<ItemRecord>, StoreError>;
    /// Every item key of the job, in input order.
    fn item_keys(&self, job: JobId) -> Result<Vec<String>, StoreError>;
    /// The job's attempts in order, optionally only one item's.
    fn attempts(
        &self,
        job: JobId,
        item_key: Option<&str>,
    ) -> Result<Vec<AttemptRecord>, StoreError>;

    // Paged reads, for views that show a window of a large job (the dashboard's items table).

    /// A page of the job's items in input order (`offset`, `limit`, optionally one status),
    /// each with its last attempt, and the number of items matching in all; the page, the
    /// attempts and the total come from one read transaction, and the store reads only the
    /// page's rows and their last attempts (plus an index count), however large the job.
    fn items_page(&self, job: JobId, query: &ItemPageQuery) -> Result<ItemPage, StoreError>;

    /// The job's checkpoints, oldest first.
    fn checkpoints(&self, job: JobId) -> Result<Vec<CheckpointRecord>, StoreError>;
    /// The job's resume ledger: its resumes, input or spec changes and control requests with
    /// their effects (docs/control.md), and how many items ran again for each reason.
    fn ledger(&self, job: JobId) -> Result<Ledger, StoreError>;
}

/// Which page of a job's items [`JobReads::items_page`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ItemPageQuery {
    /// Only items with this status; every item when `None`.
    pub status: Option<ItemStatus>,
    /// Items to skip, in input order, before the page starts.
    pub offset: u64,
    /// Most items the page holds.
    pub limit: usize,
}

/// Which jobs [`JobReads::jobs_matching`] returns. Every condition given must hold; the
/// default matches every job.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct JobQuery {
    /// Only jobs with one of these statuses; any status when empty.
    pub statuses: Vec<JobStatus>,
    /// Only jobs of exactly this name.
    pub name: Option<String>,
    /// Only jobs whose name matches this glob (`*`, `?`, `[abc]`; case-sensitive).
    pub name_glob: Option<String>,
    /// Only jobs created at or after this time (epoch ms).
    pub created_since: Option<i64>,
    /// Only jobs running, or whose record changed at or after this time (epoch ms).
    pub active_since: Option<i64>,
    /// The page's cursor: only jobs older than this one (ids are time-ordered, so jobs created
    /// while a client pages never shift the pages it has not read).
    pub before: Option<JobId>,
    /// At most this many jobs; all when `None`.
    pub limit: Option<usize>,
}

/// The jobs of one name and one status ([`JobReads::job_totals`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobTotals {
    /// The jobs' name.
    pub name: String,
    /// Their status.
    pub status: JobStatus,
    /// How many.
    pub jobs: u64,
    /// Their running time (`duration_ms`), summed.
    pub duration_ms: i64,
    /// How many ran at most each bound, in the order of the bounds (cumulative).
    pub at_most: Vec<u64>,
}

/// The items of one name's jobs, as each job's run last ended ([`JobReads::name_item_totals`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameItemTotals {
    /// The jobs' name.
    pub name: String,
    /// The jobs counted: those of the name whose run ended (finished or interrupted) at least
    /// once.
    pub jobs: u64,
    /// Their items by status, as each job's run last ended.
    pub items: ItemCounts,
    /// The items the durations count: those that ended (completed or dead-lettered).
    pub timed: u64,
    /// Their durations summed, µs (an item's duration: its ended attempts' durations summed).
    pub duration_us: u64,
    /// How many took at most each bound of
    /// [`mmm_core::metrics::durations::BUCKET_BOUNDS_SECONDS`] (cumulative, in that order).
    pub at_most: Vec<u64>,
}

/// One page of a job's items, read in one consistent state.
#[derive(Debug, Clone)]
pub struct ItemPage {
    /// Every item matching the query's status, not only those on the page.
    pub total: u64,
    /// The page's items, in input order.
    pub items: Vec<PagedItem>,
}

/// An item of an [`ItemPage`], with its last attempt.
#[derive(Debug, Clone)]
pub struct PagedItem {
    /// The item.
    pub item: ItemRecord,
    /// Its attempt with the highest number (error and output tails included); `None` when it
    /// never ran.
    pub last_attempt: Option<AttemptRecord>,
}

/// Why a job's items ran again, across its resumes (`mmm jobs JOB` shows it).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Ledger {
    /// `job_resumed`, `input_changed`, `spec_changed` and `spec_from_store` events, in order.
    pub entries: Vec<EventRecord>,
    /// Items requeued per reason: `interrupted`, `rewound`, `dlq_retry`.
    pub requeued: Vec<(String, u64)>,
}

/// The SQL of [`JobReads::job_totals`], the same on both backends: the bounds are integers
/// of ours, written into the text.
pub(crate) fn job_totals_sql(bounds_ms: &[i64]) -> String {
    let buckets: String = bounds_ms
        .iter()
        .map(|b| format!(", SUM(CASE WHEN duration_ms <= {b} THEN 1 ELSE 0 END)"))
        .collect();
    format!(
        "SELECT name, status, COUNT(*), CAST(COALESCE(SUM(duration_ms), 0) AS BIGINT){buckets}
         FROM jobs GROUP BY name, status ORDER BY name, status"
    )
}
