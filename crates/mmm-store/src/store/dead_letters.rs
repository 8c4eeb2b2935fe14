//! [`DeadLetters`]: the dead-letter queue (DLQ) of a job: the items whose attempts are
//! exhausted, listed with every attempt, retried or given up on (`mmm dlq`).

use serde::Serialize;

use crate::{AttemptRecord, ItemRecord, StoreError};
use mmm_core::job::{JobId, JobStatus};

/// A job's DLQ. The rules of a retry or a purge (which items move, to what, the events and the
/// job status they imply) are the crate's own (`rules::dlq`), the same on every backend.
pub trait DeadLetters {
    /// The job's dead-lettered items in input order, each with every attempt, read in one
    /// consistent state.
    fn dead_letters(&self, job: JobId) -> Result<Vec<DeadLetter>, StoreError>;
    /// Moves dead-lettered items back to `pending` with a fresh retry budget
    /// (`items.attempts = 0`; attempt rows are kept and numbers keep increasing), records a
    /// `dlq_retry` event per item and reopens a finished job as `interrupted`, in one
    /// transaction. `keys`: the items to move (default: every dead-lettered item); an unknown
    /// key is [`StoreError::UnknownItems`], one not dead-lettered [`StoreError::NotDeadLettered`],
    /// and then nothing is changed.
    fn retry_dead_lettered(
        &self,
        job: JobId,
        keys: Option<&[String]>,
        at: i64,
    ) -> Result<DlqChange, StoreError>;
    /// Gives up on dead-lettered items: marks them `skipped`, keeping their attempts, records a
    /// `dlq_purged` event per item and, when nothing is left to do or in the DLQ, turns a
    /// `completed_with_failures` job into `completed`, in one transaction. `keys` as for
    /// [`DeadLetters::retry_dead_lettered`].
    fn purge_dead_lettered(
        &self,
        job: JobId,
        keys: Option<&[String]>,
        at: i64,
    ) -> Result<DlqChange, StoreError>;
}

/// A dead-lettered item with every attempt made for it, oldest first.
#[derive(Debug, Clone, Serialize)]
pub struct DeadLetter {
    /// The item.
    pub item: ItemRecord,
    /// Its attempts, by number.
    pub attempts: Vec<AttemptRecord>,
}

/// What [`DeadLetters::retry_dead_lettered`] or [`DeadLetters::purge_dead_lettered`] changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DlqChange {
    /// The keys of the items moved, in input order.
    pub items: Vec<String>,
    /// The job's status before.
    pub status_before: JobStatus,
    /// The job's status after.
    pub status_after: JobStatus,
}
