//! [`Transfer`]: a job's whole record moved between stores (`mmm store copy`, `mmm store
//! migrate`): what only the backend knows of it, importing it, deleting it.

use crate::StoreError;
use crate::copy::{CopyDetails, JobDump};
use mmm_core::job::JobId;

/// Copying a job in and out, and removing it. [`crate::copy`] reads the rest of a job's record
/// through the other reads.
pub trait Transfer {
    /// What only the backend knows of a job, for copying it ([`crate::copy::dump_job`]).
    fn copy_details(&self, job: JobId) -> Result<CopyDetails, StoreError>;
    /// Records a job copied from another store ([`JobDump`]), in one transaction;
    /// [`StoreError::JobExists`] when this store has it already.
    fn import_job(&self, dump: &JobDump) -> Result<(), StoreError>;
    /// Removes the job and everything recorded about it, in one transaction (`mmm store
    /// migrate`, once the job is safely in another store); [`StoreError::JobNotFound`] when
    /// this store does not have it.
    fn delete_job(&self, job: JobId) -> Result<(), StoreError>;
}
