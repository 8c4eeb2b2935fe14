//! The dead-letter queue ([`mmm_store::DeadLetters`]): its items with their attempts, a retry
//! and a purge, and the job status they imply.

use super::*;

pub(crate) fn dead_letter_queue_retry_and_purge(store: &dyn Store) {
    let job = new_job("dlq", 1_000);
    store.create_job(&job, &new_items(4)).unwrap();
    let id = job.id;
    use AttemptOutcome as O;
    use ItemStatus as S;
    finish(store, id, (0, 1, 10), O::Failed, S::Failed);
    finish(store, id, (0, 2, 20), O::Failed, S::DeadLettered);
    finish(store, id, (1, 1, 30), O::TimedOut, S::DeadLettered);
    finish(store, id, (2, 1, 40), O::Succeeded, S::Completed);
    finish(store, id, (3, 1, 50), O::Succeeded, S::Completed);
    set_status(store, id, JobStatus::CompletedWithFailures, 60);

    let item = store.item(id, "item-0").unwrap().unwrap();
    assert_eq!((item.status, item.attempts), (S::DeadLettered, 2));
    assert!(store.item(id, "no-such-item").unwrap().is_none());
    let dead = store.dead_letters(id).unwrap();
    let listed: Vec<(&str, Vec<u32>)> = dead
        .iter()
        .map(|d| {
            (
                d.item.key.as_str(),
                d.attempts.iter().map(|a| a.number).collect(),
            )
        })
        .collect();
    assert_eq!(listed, [("item-0", vec![1, 2]), ("item-1", vec![1])]);
    assert_eq!(dead[0].attempts[1].error.as_deref(), Some("failed at 21"));

    // Items that are not in the DLQ, or unknown: nothing changes.
    let before = statuses(store, id);
    let result = store.retry_dead_lettered(id, Some(&["item-2".to_string()]), 70);
    assert!(
        matches!(&result, Err(StoreError::NotDeadLettered { items, .. })
            if items == &[("item-2".to_string(), S::Completed)]),
        "{result:?}"
    );
    let result = store.purge_dead_lettered(id, Some(&["zzz".to_string()]), 70);
    assert!(
        matches!(&result, Err(StoreError::UnknownItems { keys, .. }) if keys == &["zzz"]),
        "{result:?}"
    );
    assert_eq!(statuses(store, id), before);

    let change = store
        .retry_dead_lettered(id, Some(&["item-0".to_string(), "item-0".to_string()]), 80)
        .unwrap();
    assert_eq!(change.items, ["item-0"]);
    assert_eq!(
        (change.status_before, change.status_after),
        (JobStatus::CompletedWithFailures, JobStatus::Interrupted)
    );
    assert_eq!(store.job(id).unwrap().status, JobStatus::Interrupted);
    assert_eq!(
        statuses(store, id)[0],
        ("item-0".to_string(), S::Pending, 0)
    );
    let kinds: Vec<String> = store
        .events(id, 0, 100)
        .unwrap()
        .into_iter()
        .map(|e| e.event.kind_name().to_string())
        .collect();
    assert_eq!(
        kinds[kinds.len() - 2..],
        ["dlq_retry", "job_status_changed"]
    );

    // item-0 now succeeds; purging the last dead letter completes the job.
    finish(store, id, (0, 3, 90), O::Succeeded, S::Completed);
    set_status(store, id, JobStatus::CompletedWithFailures, 95);
    let change = store.purge_dead_lettered(id, None, 100).unwrap();
    assert_eq!(change.items, ["item-1"]);
    assert_eq!(change.status_after, JobStatus::Completed);
    let record = store.job(id).unwrap();
    assert_eq!(record.status, JobStatus::Completed);
    assert_eq!(record.finished_at, Some(95));
    assert_eq!(record.counts.skipped, 1);
    assert_eq!(store.attempts(id, Some("item-1")).unwrap().len(), 1);
    // An empty DLQ: nothing to move, nothing changes.
    let change = store.retry_dead_lettered(id, None, 110).unwrap();
    assert!(change.items.is_empty());
    assert_eq!(change.status_after, JobStatus::Completed);
}
