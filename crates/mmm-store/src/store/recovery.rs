//! [`Recovery`]: what a resume does to a job's record: take the job over from its dead owner,
//! requeue what was in flight, page through what is left, rewind to a checkpoint, and take in
//! changed item values.

use serde::Serialize;

use crate::{Owner, StoreError};
use mmm_core::job::{ItemStatus, JobId};

/// Taking a job over and running it again.
pub trait Recovery {
    /// Makes `claim` the job's owner and sets it `running`, if its owner is still `expected`
    /// (a compare-and-swap: of two processes racing for a job, exactly one gets `true`).
    fn take_job(&self, job: JobId, expected: &Owner, claim: &Owner) -> Result<bool, StoreError>;
    /// After a crash: attempts still in flight become `interrupted` (ended at `at`) and
    /// `running` items go back to `pending`, in one transaction.
    fn requeue_in_flight(&self, job: JobId, at: i64) -> Result<Requeued, StoreError>;
    /// Items that still have to run (pending, failed or running), in input order, with the
    /// attempts they used and the number of their last attempt: at most `limit` of them, from
    /// the first with an index above `after` (a page; `None` starts at the beginning).
    fn unfinished_items(
        &self,
        job: JobId,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<UnfinishedItem>, StoreError>;
    /// Sends items completed (or skipped) after checkpoint `id` back to `pending`, marking
    /// their attempts superseded and giving them a fresh retry budget. Returns their keys.
    fn rewind(&self, job: JobId, checkpoint: i64, at: i64) -> Result<Vec<String>, StoreError>;
    /// Gives items new values (`(index, value JSON)`: their input changed under the same key),
    /// in one transaction. Items that had finished go back to `pending` with a fresh retry
    /// budget, their succeeded attempts marked superseded, and an `item_requeued` event with
    /// reason `input_changed`. Returns the keys of the items requeued.
    fn update_item_values(
        &self,
        job: JobId,
        changes: &[(u64, String)],
        at: i64,
    ) -> Result<Vec<String>, StoreError>;
}

/// What [`Recovery::requeue_in_flight`] changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Requeued {
    /// Keys of the items whose in-flight attempt was marked `interrupted`.
    pub interrupted: Vec<String>,
}

/// An item that still has to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnfinishedItem {
    /// Position in the input.
    pub index: u64,
    /// Stable key.
    pub key: String,
    /// The item's value, JSON text.
    pub value: String,
    /// `pending` or `failed` (after [`Recovery::requeue_in_flight`], never `running`).
    pub status: ItemStatus,
    /// Attempts that counted against the retry budget.
    pub attempts: u32,
    /// The number of its last attempt (0 when it never ran).
    pub last_number: u32,
}
