//! [`JobReads`]: what readers see of a job's record: the job, its items, attempts and
//! checkpoints, a page of its items, and its resume ledger.

use serde::Serialize;

use crate::{AttemptRecord, CheckpointRecord, EventRecord, ItemRecord, JobRecord, StoreError};
use mmm_core::job::{ItemStatus, JobId};

/// Reads of a job's record. A read of several queries sees one consistent state.
pub trait JobReads {
    /// One job, with counts.
    fn job(&self, id: JobId) -> Result<JobRecord, StoreError>;
    /// Every job, newest first, with counts.
    fn jobs(&self) -> Result<Vec<JobRecord>, StoreError>;
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
