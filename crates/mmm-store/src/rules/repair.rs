//! The rules of the changes `mmm repair` makes ([`crate::Integrity::repair`]): each names the
//! state it expects and applies only if the record still holds it; when one no longer applies,
//! nothing is changed and the repair fails with the conflict said here.

use crate::{RepairAction, StoreError};
use mmm_core::job::{AttemptOutcome, ItemStatus, JobId};

/// The outcome an interrupted attempt is closed with ([`RepairAction::InterruptAttempt`]).
pub(crate) const CLOSED_AS: AttemptOutcome = AttemptOutcome::Interrupted;

/// The status a requeued item gets ([`RepairAction::RequeueItem`]).
pub(crate) const REQUEUED_AS: ItemStatus = ItemStatus::Pending;

/// The error when `action` finds the record changed since the repair read it: the repair is
/// rolled back and says to run `mmm repair` again.
pub(crate) fn conflict(action: &RepairAction, job: JobId) -> StoreError {
    let what = match action {
        RepairAction::InterruptAttempt { item_index, number } => {
            format!("attempt {number} of item {item_index} is no longer in flight")
        }
        RepairAction::RequeueItem { item_index, from } => {
            format!("item {item_index} is no longer {from}")
        }
        RepairAction::SetJobStatus { from, .. } => format!("the job is no longer {from}"),
    };
    StoreError::RepairConflict { job, what }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mmm_core::job::JobStatus;

    #[test]
    fn a_conflict_says_which_expectation_failed() {
        let job = JobId::new();
        let said = |action: RepairAction| match conflict(&action, job) {
            StoreError::RepairConflict { what, .. } => what,
            other => panic!("expected RepairConflict, got {other:?}"),
        };
        assert_eq!(
            said(RepairAction::InterruptAttempt {
                item_index: 4,
                number: 2
            }),
            "attempt 2 of item 4 is no longer in flight"
        );
        assert_eq!(
            said(RepairAction::RequeueItem {
                item_index: 4,
                from: ItemStatus::Running
            }),
            "item 4 is no longer running"
        );
        assert_eq!(
            said(RepairAction::SetJobStatus {
                from: JobStatus::Running,
                to: JobStatus::Interrupted
            }),
            "the job is no longer running"
        );
    }
}
