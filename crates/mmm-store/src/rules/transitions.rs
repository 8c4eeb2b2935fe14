//! What a status change implies for the rest of a record: the times a job's status sets, and
//! which items a new input value runs again.

use mmm_core::job::{ItemStatus, JobStatus};

/// True when a job entering `status` starts a run: its `started_at` is set, unless it has one.
pub(crate) fn starts_run(status: JobStatus) -> bool {
    status == JobStatus::Running
}

/// True when a job entering `status` is finished: its `finished_at` is set (kept, when a store
/// command moves it between finished statuses); any other status clears it.
pub(crate) fn finishes(status: JobStatus) -> bool {
    status.is_finished()
}

/// True when a job entering `status` ends a run whose items are totalled for `/metrics`
/// (`item_totals.rs`): a finished status. Not `interrupted`: counting takes a look at every
/// item (seconds for a million), which a Ctrl-C must not wait for; an interrupted job keeps the
/// figures of its last finished run until it finishes again.
pub(crate) fn ends_run(status: JobStatus) -> bool {
    status.is_finished()
}

/// True when an item in `status` is done with, so that a new value of its input runs it again
/// ([`crate::Recovery::update_item_values`]): back to `pending` with a fresh retry budget, its
/// succeeded attempts superseded. An unfinished item just takes the new value.
pub(crate) fn reruns_on_new_value(status: ItemStatus) -> bool {
    matches!(
        status,
        ItemStatus::Completed | ItemStatus::Skipped | ItemStatus::DeadLettered
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finished_items_run_again_on_a_new_value_and_unfinished_ones_do_not() {
        let again: Vec<ItemStatus> = [
            ItemStatus::Pending,
            ItemStatus::Running,
            ItemStatus::Completed,
            ItemStatus::Failed,
            ItemStatus::DeadLettered,
            ItemStatus::Skipped,
        ]
        .into_iter()
        .filter(|status| reruns_on_new_value(*status))
        .collect();
        assert_eq!(
            again,
            [
                ItemStatus::Completed,
                ItemStatus::DeadLettered,
                ItemStatus::Skipped
            ]
        );
    }

    #[test]
    fn running_starts_a_run_and_finished_statuses_finish_it() {
        assert!(starts_run(JobStatus::Running));
        assert!(!starts_run(JobStatus::Interrupted));
        assert!(finishes(JobStatus::Completed));
        assert!(!finishes(JobStatus::Running));
        assert!(!ends_run(JobStatus::Interrupted));
        assert!(ends_run(JobStatus::Cancelled));
        assert!(!ends_run(JobStatus::Running));
        assert!(!ends_run(JobStatus::Pending));
    }
}
