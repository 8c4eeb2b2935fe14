//! [`Integrity`]: checking a store and repairing a job's record (`mmm check`, `mmm repair`),
//! and proving the store takes writes (health checks).

use crate::{AttemptRecord, ItemRecord, JobRecord, StoreError};
use mmm_core::event::Repaired;
use mmm_core::job::JobId;

/// Checks and repairs. What a repair changes is planned by [`crate::audit`] from
/// [`Integrity::job_contents`]; the backend applies it under the rules every backend shares.
pub trait Integrity {
    /// Proves the store takes writes now: opens a write transaction (taking the write lock)
    /// and rolls it back, changing nothing. For health checks.
    fn probe_write(&self) -> Result<(), StoreError>;
    /// The job, all its items and all its attempts, read in one consistent state (for
    /// `mmm check` and `mmm repair`).
    fn job_contents(&self, job: JobId) -> Result<JobContents, StoreError>;
    /// The backend's own integrity checks (SQLite: `integrity_check`, `foreign_key_check`;
    /// PostgreSQL: schema, indexes, constraints, triggers, references and, with `amcheck`,
    /// B-tree checks: see `postgres::PostgresStore`); one line per problem, empty when the
    /// storage is sound.
    fn storage_problems(&self) -> Result<Vec<String>, StoreError>;
    /// Applies `actions` and records a `repaired` event with `payload`, in one transaction.
    /// Each action applies only if the record still holds what it expects; otherwise nothing is
    /// changed and the result is [`StoreError::RepairConflict`].
    fn repair(&self, job: JobId, repair: &Repaired, at: i64) -> Result<(), StoreError>;
}

/// A job's whole record, read in one consistent state.
#[derive(Debug, Clone)]
pub struct JobContents {
    /// The job, with counts.
    pub job: JobRecord,
    /// Every item, in input order.
    pub items: Vec<ItemRecord>,
    /// Every attempt, by item position then number.
    pub attempts: Vec<AttemptRecord>,
}

pub use mmm_core::repair::RepairAction;
