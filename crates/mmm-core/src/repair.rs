//! The vocabulary of checking and repairing a job's record (`mmm check`, `mmm repair`): the
//! invariants a record can break ([`ProblemKind`]), one broken invariant ([`Problem`]) and the
//! changes a repair makes ([`RepairAction`]). The checks themselves are the store's
//! (`mmm_store::audit`); these types are here because the `repaired` event records them.

use serde::{Deserialize, Serialize};

use crate::job::{ItemStatus, JobStatus};

/// What kind of invariant a [`Problem`] breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// `completed` items without a succeeded attempt.
    CompletedWithoutSuccess,
    /// `dead_lettered` items without attempts, or whose last counted attempt did not fail.
    DeadLetteredWithoutFailure,
    /// Attempts in flight while no live owner runs the job.
    StaleAttempt,
    /// Attempts in flight whose item is not `running`.
    AttemptOfIdleItem,
    /// `running` items without an attempt in flight.
    RunningWithoutAttempt,
    /// Items whose attempt numbers are not 1..n.
    AttemptNumberGap,
    /// A `running` job whose owner is gone.
    OwnerGone,
    /// The job's status contradicts its item counts.
    StatusContradictsCounts,
}

impl ProblemKind {
    /// The snake_case name, as in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            ProblemKind::CompletedWithoutSuccess => "completed_without_success",
            ProblemKind::DeadLetteredWithoutFailure => "dead_lettered_without_failure",
            ProblemKind::StaleAttempt => "stale_attempt",
            ProblemKind::AttemptOfIdleItem => "attempt_of_idle_item",
            ProblemKind::RunningWithoutAttempt => "running_without_attempt",
            ProblemKind::AttemptNumberGap => "attempt_number_gap",
            ProblemKind::OwnerGone => "owner_gone",
            ProblemKind::StatusContradictsCounts => "status_contradicts_counts",
        }
    }

    /// True when `mmm repair` restores this invariant.
    pub fn is_repairable(self) -> bool {
        self != ProblemKind::AttemptNumberGap
    }
}

/// One broken invariant of one job, with the items concerned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// Which invariant.
    pub kind: ProblemKind,
    /// What is wrong, in a sentence.
    pub message: String,
    /// The keys of the items concerned, in input order (empty for job-level problems).
    pub items: Vec<String>,
    /// How many items (or attempts, for attempt problems) are concerned.
    pub count: u64,
}

/// One change `mmm repair` makes. Each names the state it expects, so a repair planned from a
/// stale read changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum RepairAction {
    /// Close an attempt still in flight as `interrupted` (it does not count against retries).
    InterruptAttempt {
        /// The item's position.
        item_index: u64,
        /// The attempt's number.
        number: u32,
    },
    /// Put an item back to `pending`, so that it runs again.
    RequeueItem {
        /// The item's position.
        item_index: u64,
        /// The status it must have now.
        from: ItemStatus,
    },
    /// Set the job's status.
    SetJobStatus {
        /// The status it must have now.
        from: JobStatus,
        /// The new status.
        to: JobStatus,
    },
}
