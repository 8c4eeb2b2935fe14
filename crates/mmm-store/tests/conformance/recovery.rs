//! Resuming a job ([`mmm_store::Recovery`]): taking it over, requeueing what was in flight,
//! rewinding to a checkpoint, taking in changed item values, and the resume ledger.

use super::*;

pub(crate) fn take_job_is_a_compare_and_swap(store: &dyn Store) {
    let job = new_job("owned", 1_000);
    store.create_job(&job, &new_items(1)).unwrap();
    let record = store.job(job.id).unwrap();
    let first = Owner::of(&record);
    assert_eq!(first.pid, Some(4242));
    let claim = Owner {
        pid: Some(7),
        host: Some("host-b".to_string()),
        heartbeat_at: Some(5_000),
    };
    assert!(store.take_job(job.id, &first, &claim).unwrap());
    let record = store.job(job.id).unwrap();
    assert_eq!(Owner::of(&record), claim);
    assert_eq!(record.status, JobStatus::Running);
    assert_eq!(record.updated_at, 5_000);

    // The old owner no longer matches: a second taker loses, and nothing changes.
    let late = Owner {
        pid: Some(8),
        host: Some("host-c".to_string()),
        heartbeat_at: Some(6_000),
    };
    assert!(!store.take_job(job.id, &first, &late).unwrap());
    assert_eq!(Owner::of(&store.job(job.id).unwrap()), claim);
    // An owner with no heartbeat at all is matched too (NULLs compare equal).
    let nobody = Owner {
        pid: None,
        host: None,
        heartbeat_at: None,
    };
    assert!(store.take_job(job.id, &claim, &nobody).unwrap());
    assert!(store.take_job(job.id, &nobody, &late).unwrap());
    assert_eq!(Owner::of(&store.job(job.id).unwrap()), late);
    assert!(matches!(
        store.take_job(JobId::new(), &late, &claim),
        Err(StoreError::JobNotFound { .. })
    ));
}

pub(crate) fn requeue_then_page_through_unfinished_items(store: &dyn Store) {
    let job = new_job("requeue", 1_000);
    store.create_job(&job, &new_items(5)).unwrap();
    let id = job.id;
    use AttemptOutcome as O;
    use ItemStatus as S;
    finish(store, id, (0, 1, 10), O::Succeeded, S::Completed);
    store.apply(&[started(id, 1, 1, 20)]).unwrap();
    finish(store, id, (2, 1, 30), O::Failed, S::Failed);
    finish(store, id, (3, 1, 40), O::Failed, S::DeadLettered);

    let requeued = store.requeue_in_flight(id, 900).unwrap();
    assert_eq!(requeued.interrupted, ["item-1"]);
    let attempt = &store.attempts(id, Some("item-1")).unwrap()[0];
    assert_eq!(attempt.outcome, Some(O::Interrupted));
    assert_eq!(attempt.ended_at, Some(900));
    assert!(attempt.error.is_some());
    assert_eq!(store.job(id).unwrap().counts.running, 0);
    // Nothing left in flight: a second requeue changes nothing.
    assert!(
        store
            .requeue_in_flight(id, 950)
            .unwrap()
            .interrupted
            .is_empty()
    );

    let page = store.unfinished_items(id, None, 2).unwrap();
    let seen: Vec<(u64, &str, ItemStatus, u32, u32)> = page
        .iter()
        .map(|i| (i.index, i.key.as_str(), i.status, i.attempts, i.last_number))
        .collect();
    assert_eq!(
        seen,
        [
            (1, "item-1", S::Pending, 0, 1),
            (2, "item-2", S::Failed, 1, 1)
        ]
    );
    assert_eq!(page[0].value, r#"{"path":"photos/1.jpg"}"#);
    let page = store.unfinished_items(id, Some(2), 2).unwrap();
    let seen: Vec<(u64, u32)> = page.iter().map(|i| (i.index, i.last_number)).collect();
    assert_eq!(seen, [(4, 0)]);
    assert!(store.unfinished_items(id, Some(4), 2).unwrap().is_empty());
    assert_eq!(
        store.item_keys(id).unwrap(),
        ["item-0", "item-1", "item-2", "item-3", "item-4"]
    );
    assert!(matches!(
        store.unfinished_items(JobId::new(), None, 2),
        Err(StoreError::JobNotFound { .. })
    ));
}

pub(crate) fn checkpoints_and_rewind(store: &dyn Store) {
    let job = new_job("rewind", 1_000);
    store.create_job(&job, &new_items(4)).unwrap();
    let id = job.id;
    use AttemptOutcome as O;
    use ItemStatus as S;
    finish(store, id, (0, 1, 10), O::Succeeded, S::Completed);
    finish(store, id, (3, 1, 12), O::Failed, S::DeadLettered);
    store
        .apply(&[Write::Checkpoint {
            job: id,
            at: 20,
            phase: Some(Phase::Map),
            reason: "interval".to_string(),
        }])
        .unwrap();
    finish(store, id, (1, 1, 30), O::Succeeded, S::Completed);
    finish(store, id, (2, 1, 40), O::Succeeded, S::Skipped);

    let checkpoints = store.checkpoints(id).unwrap();
    assert_eq!(checkpoints.len(), 1);
    let checkpoint = &checkpoints[0];
    assert_eq!(checkpoint.at, 20);
    assert_eq!(checkpoint.phase, Some(Phase::Map));
    assert_eq!(checkpoint.reason, "interval");
    assert_eq!(
        (
            checkpoint.completed,
            checkpoint.dead_lettered,
            checkpoint.skipped
        ),
        (1, 1, 0)
    );

    let rewound = store.rewind(id, checkpoint.id, 5_000).unwrap();
    assert_eq!(rewound, ["item-1", "item-2"]);
    assert_eq!(
        statuses(store, id),
        [
            ("item-0".to_string(), S::Completed, 1),
            ("item-1".to_string(), S::Pending, 0),
            ("item-2".to_string(), S::Pending, 0),
            ("item-3".to_string(), S::DeadLettered, 1),
        ]
    );
    assert_eq!(store.job(id).unwrap().updated_at, 5_000);
    // Attempts are kept.
    assert_eq!(store.attempts(id, None).unwrap().len(), 4);
    assert!(matches!(
        store.rewind(id, checkpoint.id + 1_000, 600),
        Err(StoreError::CheckpointNotFound { job, .. }) if job == id
    ));
}

pub(crate) fn changed_values_requeue_finished_items(store: &dyn Store) {
    let job = new_job("changed", 1_000);
    store.create_job(&job, &new_items(3)).unwrap();
    let id = job.id;
    finish(
        store,
        id,
        (0, 1, 10),
        AttemptOutcome::Succeeded,
        ItemStatus::Completed,
    );
    let requeued = store
        .update_item_values(
            id,
            &[(0, "\"new-0\"".to_string()), (1, "\"new-1\"".to_string())],
            50,
        )
        .unwrap();
    assert_eq!(requeued, ["item-0"]);
    let items = store.items(id, None).unwrap();
    assert_eq!(
        (items[0].value.as_str(), items[0].status, items[0].attempts),
        ("\"new-0\"", ItemStatus::Pending, 0)
    );
    assert_eq!(
        (items[1].value.as_str(), items[1].status),
        ("\"new-1\"", ItemStatus::Pending)
    );
    let events = store.events(id, 0, 100).unwrap();
    let last = events.last().unwrap();
    assert_eq!(
        (last.event.kind_name(), last.item_key.as_deref(), last.at),
        ("item_requeued", Some("item-0"), 50)
    );
    assert_eq!(
        last.event.payload(),
        serde_json::json!({ "reason": "input_changed" })
    );

    // An unknown index: nothing of the batch is changed.
    let result = store.update_item_values(
        id,
        &[(2, "\"x\"".to_string()), (9, "\"y\"".to_string())],
        60,
    );
    assert!(
        matches!(result, Err(StoreError::ItemNotFound { job, index: 9 }) if job == id),
        "{result:?}"
    );
    assert_eq!(
        store.items(id, None).unwrap()[2].value,
        r#"{"path":"photos/2.jpg"}"#
    );
}

pub(crate) fn ledger_counts_requeues_by_reason(store: &dyn Store) {
    let job = new_job("ledger", 1_000);
    store.create_job(&job, &new_items(1)).unwrap();
    let id = job.id;
    let event = |kind: &str, payload: serde_json::Value| Write::Event {
        job: id,
        at: 10,
        item_key: None,
        event: Event::from_parts(kind, payload),
    };
    store
        .apply(&[
            event("job_resumed", serde_json::json!({ "by": 1 })),
            event(
                "item_requeued",
                serde_json::json!({ "reason": "interrupted" }),
            ),
            event(
                "item_requeued",
                serde_json::json!({ "reason": "interrupted" }),
            ),
            event("item_requeued", serde_json::json!({ "reason": "rewound" })),
            event("item_requeued", serde_json::json!({})),
            event("dlq_retry", serde_json::json!({ "attempts": 2 })),
            event("spec_changed", serde_json::json!({ "diff": "x" })),
            event("item_started", serde_json::json!({})),
        ])
        .unwrap();
    let ledger = store.ledger(id).unwrap();
    let kinds: Vec<&str> = ledger.entries.iter().map(|e| e.event.kind_name()).collect();
    assert_eq!(kinds, ["job_resumed", "spec_changed"]);
    assert_eq!(
        ledger.entries[0].event.payload(),
        serde_json::json!({ "by": 1 })
    );
    let requeued: Vec<(&str, u64)> = ledger
        .requeued
        .iter()
        .map(|(reason, n)| (reason.as_str(), *n))
        .collect();
    assert_eq!(
        requeued,
        [
            ("dlq_retry", 1),
            ("interrupted", 2),
            ("rewound", 1),
            ("unknown", 1)
        ]
    );
}
