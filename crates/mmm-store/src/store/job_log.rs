//! [`JobLog`]: what the runner records about a job, as it runs.

use crate::{NewItem, NewJob, StoreError, Write};
use mmm_core::job::JobId;

/// The write side of a job: its creation, its items, and the batches of changes the store
/// writer ([`crate::writer::StoreWriter`]) sends while it runs. Each call is one transaction.
pub trait JobLog {
    /// Records a new job and all its items, in one transaction.
    fn create_job(&self, job: &NewJob, items: &[NewItem]) -> Result<(), StoreError>;
    /// Appends items to a job (their indices follow the existing ones), in one transaction.
    fn add_items(&self, job: JobId, items: &[NewItem]) -> Result<(), StoreError>;
    /// Applies a batch of writes in one transaction: all or nothing.
    fn apply(&self, writes: &[Write]) -> Result<(), StoreError>;
}
