//! The rules of the dead-letter queue ([`crate::DeadLetters`]): which items a command may
//! select, what a retry or a purge does to them, the events it records and the job status it
//! implies ([`status_after`]).

use std::collections::{HashMap, HashSet};

use crate::rules::store_events::StoreEvent;
use crate::{AttemptRecord, DeadLetter, DlqChange, ItemCounts, ItemRecord, StoreError};
use mmm_core::event::EventKind;
use mmm_core::job::{ItemStatus, JobId, JobStatus};

/// What a DLQ command does with the items it selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DlqMove {
    /// Back to `pending` with a fresh retry budget.
    Retry,
    /// To `skipped`, given up on.
    Purge,
}

impl DlqMove {
    /// The status a moved item gets.
    fn item_status(self) -> ItemStatus {
        match self {
            DlqMove::Retry => ItemStatus::Pending,
            DlqMove::Purge => ItemStatus::Skipped,
        }
    }

    /// The kind of the event recorded per moved item.
    fn event_kind(self) -> EventKind {
        match self {
            DlqMove::Retry => EventKind::DlqRetry,
            DlqMove::Purge => EventKind::DlqPurged,
        }
    }
}

/// The keys a command names, without repeats, in the order given: the items a backend looks
/// up for [`named`].
pub(crate) fn distinct_keys(keys: &[String]) -> Vec<&str> {
    let mut seen = HashSet::new();
    keys.iter()
        .map(String::as_str)
        .filter(|key| seen.insert(*key))
        .collect()
}

/// The items named by `keys` (repeats ignored), in input order, from `found`: the job's items
/// whose key is one of them, as the backend read them (in any order). Every key must name an
/// item, or the command fails with [`StoreError::UnknownItems`] (the unknown keys, in the order
/// given); then every item must be dead-lettered, or it fails with
/// [`StoreError::NotDeadLettered`].
pub(crate) fn named(
    job: JobId,
    keys: &[String],
    found: Vec<ItemRecord>,
) -> Result<Vec<ItemRecord>, StoreError> {
    let mut by_key: HashMap<String, ItemRecord> = found
        .into_iter()
        .map(|item| (item.key.clone(), item))
        .collect();
    let (mut selected, mut unknown, mut not_dead) = (Vec::new(), Vec::new(), Vec::new());
    for key in distinct_keys(keys) {
        match by_key.remove(key) {
            None => unknown.push(key.to_string()),
            Some(item) if item.status != ItemStatus::DeadLettered => {
                not_dead.push((item.key, item.status));
            }
            Some(item) => selected.push(item),
        }
    }
    if !unknown.is_empty() {
        return Err(StoreError::UnknownItems { job, keys: unknown });
    }
    if !not_dead.is_empty() {
        return Err(StoreError::NotDeadLettered {
            job,
            items: not_dead,
        });
    }
    selected.sort_by_key(|item| item.index);
    Ok(selected)
}

/// The job's status once a command moved `moved` of its dead-lettered items, from `before`,
/// with `counts` the job's item counts before the move. Moving nothing changes nothing. A retry
/// reopens a finished job as `interrupted`, so that it can resume and run the items again. A
/// purge that leaves nothing to do and nothing in the DLQ turns `completed_with_failures` into
/// `completed`. Otherwise the status stays.
pub(crate) fn status_after(
    how: DlqMove,
    before: JobStatus,
    counts: ItemCounts,
    moved: u64,
) -> JobStatus {
    // A purge moves items from the DLQ to `skipped`: nothing is left to do that was not before.
    let dead_lettered_after = counts.dead_lettered.saturating_sub(moved);
    match how {
        _ if moved == 0 => before,
        DlqMove::Retry if before.is_finished() => JobStatus::Interrupted,
        DlqMove::Purge
            if before == JobStatus::CompletedWithFailures
                && dead_lettered_after == 0
                && counts.unfinished() == 0 =>
        {
            JobStatus::Completed
        }
        _ => before,
    }
}

/// Everything a retry or a purge does to a job's record, decided from what the backend read in
/// the command's transaction; the backend writes it as it says, in this order, then commits.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct DlqPlan {
    /// The items to move (all dead-lettered), in input order: each one's position, and the
    /// event recorded as it moves.
    pub(crate) moves: Vec<(u64, StoreEvent)>,
    /// The status the moved items get.
    pub(crate) item_status: ItemStatus,
    /// True when their retry budget starts again (`attempts = 0`; the attempt rows stay and
    /// their numbers keep increasing).
    pub(crate) reset_attempts: bool,
    /// The job's status change, when the move implies one.
    pub(crate) job_status: Option<JobStatusChange>,
    /// What the command reports.
    pub(crate) change: DlqChange,
}

/// A change of the job's status that a store command makes, and the event recording it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct JobStatusChange {
    /// The status it must have now.
    pub(crate) from: JobStatus,
    /// The status it gets.
    pub(crate) to: JobStatus,
    /// The event that records the change.
    pub(crate) event: StoreEvent,
}

impl DlqPlan {
    /// The plan to move `selected` (dead-lettered items, in input order) as `how` says, for a
    /// job of status `status_before` and item counts `counts` (both read before the move).
    pub(crate) fn new(
        how: DlqMove,
        status_before: JobStatus,
        counts: ItemCounts,
        selected: Vec<ItemRecord>,
    ) -> DlqPlan {
        let item_status = how.item_status();
        let moves = selected
            .iter()
            .map(|item| {
                let event = StoreEvent::dlq_moved(how.event_kind(), item, item_status);
                (item.index, event)
            })
            .collect();
        let status_after = status_after(how, status_before, counts, selected.len() as u64);
        let job_status = (status_after != status_before).then(|| JobStatusChange {
            from: status_before,
            to: status_after,
            event: StoreEvent::job_status_changed(status_before, status_after, how.event_kind()),
        });
        DlqPlan {
            moves,
            item_status,
            reset_attempts: how == DlqMove::Retry,
            job_status,
            change: DlqChange {
                items: selected.into_iter().map(|item| item.key).collect(),
                status_before,
                status_after,
            },
        }
    }

    /// True when the plan moves any item; the job's `updated_at` rises to the command's time
    /// only then.
    pub(crate) fn moves_items(&self) -> bool {
        !self.moves.is_empty()
    }
}

/// The dead-lettered `items` (in input order), each with its own of `attempts` (in order).
pub(crate) fn with_attempts(
    items: Vec<ItemRecord>,
    attempts: Vec<AttemptRecord>,
) -> Vec<DeadLetter> {
    let mut by_item: HashMap<u64, Vec<AttemptRecord>> = HashMap::new();
    for attempt in attempts {
        by_item.entry(attempt.item_index).or_default().push(attempt);
    }
    items
        .into_iter()
        .map(|item| DeadLetter {
            attempts: by_item.remove(&item.index).unwrap_or_default(),
            item,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(index: u64, status: ItemStatus) -> ItemRecord {
        ItemRecord {
            index,
            key: format!("k{index}"),
            value: "null".to_string(),
            status,
            attempts: 3,
        }
    }

    fn counts(dead_lettered: u64, pending: u64) -> ItemCounts {
        ItemCounts {
            dead_lettered,
            pending,
            completed: 5,
            ..ItemCounts::default()
        }
    }

    #[test]
    fn a_retry_reopens_a_finished_job_and_leaves_a_running_one() {
        for before in [
            JobStatus::Completed,
            JobStatus::CompletedWithFailures,
            JobStatus::Failed,
            JobStatus::Cancelled,
            JobStatus::Interrupted,
        ] {
            let after = status_after(DlqMove::Retry, before, counts(2, 0), 1);
            let expected = if before.is_finished() {
                JobStatus::Interrupted
            } else {
                before
            };
            assert_eq!(after, expected, "{before}");
        }
        let running = status_after(DlqMove::Retry, JobStatus::Running, counts(2, 0), 2);
        assert_eq!(running, JobStatus::Running);
    }

    #[test]
    fn a_purge_completes_a_job_only_when_nothing_is_left() {
        let with_failures = JobStatus::CompletedWithFailures;
        let all = status_after(DlqMove::Purge, with_failures, counts(2, 0), 2);
        assert_eq!(all, JobStatus::Completed);
        let some = status_after(DlqMove::Purge, with_failures, counts(2, 0), 1);
        assert_eq!(some, with_failures, "one is still in the DLQ");
        let unfinished = status_after(DlqMove::Purge, with_failures, counts(2, 1), 2);
        assert_eq!(unfinished, with_failures, "an item still has to run");
        let interrupted = status_after(DlqMove::Purge, JobStatus::Interrupted, counts(2, 0), 2);
        assert_eq!(interrupted, JobStatus::Interrupted);
    }

    #[test]
    fn moving_nothing_changes_nothing() {
        for how in [DlqMove::Retry, DlqMove::Purge] {
            let plan = DlqPlan::new(how, JobStatus::Completed, counts(0, 0), Vec::new());
            assert_eq!(plan.change.status_after, JobStatus::Completed);
            assert!(plan.job_status.is_none());
            assert!(!plan.moves_items());
        }
    }

    #[test]
    fn a_plan_moves_each_item_with_its_event_then_changes_the_status() {
        let selected = vec![
            item(1, ItemStatus::DeadLettered),
            item(4, ItemStatus::DeadLettered),
        ];
        let plan = DlqPlan::new(
            DlqMove::Retry,
            JobStatus::CompletedWithFailures,
            counts(2, 0),
            selected,
        );
        let moves: Vec<(u64, &str, Option<&str>)> = plan
            .moves
            .iter()
            .map(|(index, event)| (*index, event.event.kind_name(), event.item_key.as_deref()))
            .collect();
        assert_eq!(
            moves,
            [(1, "dlq_retry", Some("k1")), (4, "dlq_retry", Some("k4"))]
        );
        assert_eq!(
            (plan.item_status, plan.reset_attempts),
            (ItemStatus::Pending, true)
        );
        let status = plan.job_status.expect("a finished job reopens");
        assert_eq!(
            (status.from, status.to, status.event.event.kind_name()),
            (
                JobStatus::CompletedWithFailures,
                JobStatus::Interrupted,
                "job_status_changed"
            )
        );
        assert_eq!(plan.change.items, ["k1", "k4"]);

        let purge = DlqPlan::new(
            DlqMove::Purge,
            JobStatus::CompletedWithFailures,
            counts(1, 0),
            vec![item(2, ItemStatus::DeadLettered)],
        );
        assert_eq!(
            (purge.item_status, purge.reset_attempts),
            (ItemStatus::Skipped, false)
        );
        let status = purge.job_status.expect("nothing is left to do");
        assert_eq!(status.event.event.payload()["by"], "dlq_purged");
        assert_eq!(purge.change.status_after, JobStatus::Completed);
    }

    #[test]
    fn named_items_must_exist_then_be_dead_lettered() {
        let job = JobId::new();
        let keys = |names: &[&str]| names.iter().map(|k| k.to_string()).collect::<Vec<_>>();
        let found = vec![
            item(7, ItemStatus::DeadLettered),
            item(2, ItemStatus::DeadLettered),
            item(5, ItemStatus::Completed),
        ];
        let selected = named(job, &keys(&["k7", "k2", "k7"]), found.clone()).unwrap();
        let indices: Vec<u64> = selected.iter().map(|item| item.index).collect();
        assert_eq!(indices, [2, 7], "input order, repeats ignored");
        match named(
            job,
            &keys(&["k5", "nope", "k2", "gone", "nope"]),
            found.clone(),
        ) {
            Err(StoreError::UnknownItems { keys, .. }) => assert_eq!(keys, ["nope", "gone"]),
            other => panic!("expected UnknownItems, got {other:?}"),
        }
        match named(job, &keys(&["k2", "k5"]), found) {
            Err(StoreError::NotDeadLettered { items, .. }) => {
                assert_eq!(items, [("k5".to_string(), ItemStatus::Completed)]);
            }
            other => panic!("expected NotDeadLettered, got {other:?}"),
        }
    }

    #[test]
    fn dead_letters_get_their_own_attempts() {
        let attempt = |item_index, number| AttemptRecord {
            item_index,
            item_key: format!("k{item_index}"),
            number,
            agent: "agent-1".to_string(),
            started_at: 0,
            ended_at: None,
            duration_us: None,
            outcome: None,
            exit_code: None,
            error: None,
            steps: Vec::new(),
            stdout_tail: String::new(),
            stderr_tail: String::new(),
        };
        let letters = with_attempts(
            vec![
                item(1, ItemStatus::DeadLettered),
                item(3, ItemStatus::DeadLettered),
            ],
            vec![attempt(1, 1), attempt(1, 2)],
        );
        let numbers: Vec<Vec<u32>> = letters
            .iter()
            .map(|l| l.attempts.iter().map(|a| a.number).collect())
            .collect();
        assert_eq!(numbers, [vec![1, 2], vec![]]);
    }
}
