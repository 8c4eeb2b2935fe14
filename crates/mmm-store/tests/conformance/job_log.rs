//! What the runner records ([`mmm_store::JobLog`]): a new job and its items, items added later,
//! and batches of writes, all or nothing, with the counts and times they imply.

use super::*;

pub(crate) fn create_and_read(store: &dyn Store) {
    let job = new_job("thumbnails", 1_000);
    store.create_job(&job, &new_items(3)).unwrap();

    let record = store.job(job.id).unwrap();
    assert_eq!(record.id, job.id);
    assert_eq!(record.name, "thumbnails");
    assert_eq!(record.status, JobStatus::Pending);
    assert_eq!(record.phase, None);
    assert_eq!(record.spec, job.spec);
    assert_eq!(record.spec_hash, "abc123");
    assert_eq!(record.source, Some(PathBuf::from("jobs/test.yml")));
    assert_eq!(record.max_parallel, 4);
    assert_eq!(record.created_at, 1_000);
    assert_eq!(record.updated_at, 1_000);
    assert_eq!(record.started_at, None);
    assert_eq!(record.finished_at, None);
    assert_eq!(record.duration_ms, 0);
    assert_eq!(record.owner_pid, Some(4242));
    assert_eq!(record.owner_host.as_deref(), Some("host-a"));
    assert_eq!(record.heartbeat_at, None);
    assert_eq!(record.counts.pending, 3);
    assert_eq!(record.counts.total(), 3);

    let jobs = store.jobs().unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].id, job.id);
    assert_eq!(jobs[0].counts.total(), 3);

    let items = store.items(job.id, None).unwrap();
    let keys: Vec<&str> = items.iter().map(|i| i.key.as_str()).collect();
    assert_eq!(keys, ["item-0", "item-1", "item-2"]);
    for (n, item) in items.iter().enumerate() {
        assert_eq!(item.index, n as u64);
        assert_eq!(item.value, format!(r#"{{"path":"photos/{n}.jpg"}}"#));
        assert_eq!(item.status, ItemStatus::Pending);
        assert_eq!(item.attempts, 0);
    }
    assert!(store.attempts(job.id, None).unwrap().is_empty());
    assert!(store.events(job.id, 0, 100).unwrap().is_empty());

    // A job without a source or items is fine too.
    let bare = NewJob {
        source: None,
        ..new_job("bare", 2_000)
    };
    store.create_job(&bare, &[]).unwrap();
    let record = store.job(bare.id).unwrap();
    assert_eq!(record.source, None);
    assert_eq!(record.counts.total(), 0);
}

pub(crate) fn create_job_is_all_or_nothing(store: &dyn Store) {
    let job = new_job("dup", 1_000);
    let mut items = new_items(5);
    items[3].key = "item-1".to_string();
    match store.create_job(&job, &items) {
        Err(StoreError::DuplicateItemKey {
            job: id,
            index,
            key,
        }) => {
            assert_eq!((id, index, key.as_str()), (job.id, 3, "item-1"));
        }
        other => panic!("expected DuplicateItemKey, got {other:?}"),
    }
    assert!(matches!(
        store.job(job.id),
        Err(StoreError::JobNotFound { .. })
    ));
    assert!(store.jobs().unwrap().is_empty());

    store.create_job(&job, &new_items(2)).unwrap();
    assert!(matches!(
        store.create_job(&job, &new_items(2)),
        Err(StoreError::JobExists { job: id }) if id == job.id
    ));
    assert_eq!(store.job(job.id).unwrap().counts.total(), 2);
}

pub(crate) fn counts_follow_item_statuses(store: &dyn Store) {
    let job = new_job("counts", 1_000);
    store.create_job(&job, &new_items(8)).unwrap();
    let id = job.id;
    use AttemptOutcome as O;
    use ItemStatus as S;
    store
        .apply(&[
            started(id, 0, 1, 10),
            finished(id, 0, 1, 11, O::Succeeded, S::Completed),
            started(id, 1, 1, 10),
            finished(id, 1, 1, 11, O::Succeeded, S::Completed),
            started(id, 2, 1, 10),
            finished(id, 2, 1, 11, O::Failed, S::Failed),
            started(id, 3, 1, 10),
            finished(id, 3, 1, 11, O::TimedOut, S::DeadLettered),
            started(id, 4, 1, 10),
            finished(id, 4, 1, 11, O::Succeeded, S::Skipped),
            started(id, 5, 1, 10),
        ])
        .unwrap();
    let counts = store.job(id).unwrap().counts;
    assert_eq!(counts.completed, 2);
    assert_eq!(counts.failed, 1);
    assert_eq!(counts.dead_lettered, 1);
    assert_eq!(counts.skipped, 1);
    assert_eq!(counts.running, 1);
    assert_eq!(counts.pending, 2);
    assert_eq!(counts.total(), 8);
    assert_eq!(store.jobs().unwrap()[0].counts, counts);

    let completed = store.items(id, Some(S::Completed)).unwrap();
    let indexes: Vec<u64> = completed.iter().map(|i| i.index).collect();
    assert_eq!(indexes, [0, 1]);
    let pending = store.items(id, Some(S::Pending)).unwrap();
    let keys: Vec<&str> = pending.iter().map(|i| i.key.as_str()).collect();
    assert_eq!(keys, ["item-6", "item-7"]);
    assert!(store.items(id, Some(S::Running)).unwrap()[0].index == 5);
}

pub(crate) fn attempts_update_items(store: &dyn Store) {
    let job = new_job("attempts", 1_000);
    store.create_job(&job, &new_items(2)).unwrap();
    let id = job.id;

    store.apply(&[started(id, 1, 1, 100)]).unwrap();
    let item = &store.items(id, None).unwrap()[1];
    assert_eq!((item.status, item.attempts), (ItemStatus::Running, 0));
    let in_flight = store.attempts(id, None).unwrap();
    assert_eq!(in_flight.len(), 1);
    let attempt = &in_flight[0];
    assert_eq!(
        (attempt.item_index, attempt.item_key.as_str()),
        (1, "item-1")
    );
    assert_eq!((attempt.number, attempt.agent.as_str()), (1, "agent-1"));
    assert_eq!(attempt.started_at, 100);
    assert_eq!(attempt.ended_at, None);
    assert_eq!(attempt.duration_us, None);
    assert_eq!(attempt.outcome, None);
    assert!(attempt.steps.is_empty());

    // A failure counts against retries.
    store
        .apply(&[finished(
            id,
            1,
            1,
            110,
            AttemptOutcome::Failed,
            ItemStatus::Failed,
        )])
        .unwrap();
    let item = &store.items(id, None).unwrap()[1];
    assert_eq!((item.status, item.attempts), (ItemStatus::Failed, 1));

    // An interrupted attempt does not.
    store
        .apply(&[
            started(id, 1, 2, 120),
            finished(
                id,
                1,
                2,
                130,
                AttemptOutcome::Interrupted,
                ItemStatus::Pending,
            ),
        ])
        .unwrap();
    let item = &store.items(id, None).unwrap()[1];
    assert_eq!((item.status, item.attempts), (ItemStatus::Pending, 1));

    store
        .apply(&[
            started(id, 1, 3, 140),
            finished(
                id,
                1,
                3,
                150,
                AttemptOutcome::Succeeded,
                ItemStatus::Completed,
            ),
            started(id, 0, 1, 160),
        ])
        .unwrap();
    // Attempts 1 and 3 counted; the interrupted attempt 2 did not.
    let item = &store.items(id, None).unwrap()[1];
    assert_eq!((item.status, item.attempts), (ItemStatus::Completed, 2));

    // Ordered by item, then number; complete rows read back as written.
    let attempts = store.attempts(id, None).unwrap();
    let order: Vec<(u64, u32)> = attempts.iter().map(|a| (a.item_index, a.number)).collect();
    assert_eq!(order, [(0, 1), (1, 1), (1, 2), (1, 3)]);
    let last = &attempts[3];
    assert_eq!(last.ended_at, Some(150));
    assert_eq!(last.duration_us, Some(1_500));
    assert_eq!(last.outcome, Some(AttemptOutcome::Succeeded));
    assert_eq!(last.exit_code, Some(0));
    assert_eq!(last.error, None);
    assert_eq!(last.stdout_tail, "out 3");
    assert_eq!(last.stderr_tail, "err 3");
    let Write::AttemptFinished { steps, .. } = finished(
        id,
        1,
        3,
        150,
        AttemptOutcome::Succeeded,
        ItemStatus::Completed,
    ) else {
        unreachable!()
    };
    assert_eq!(last.steps, steps);
    assert_eq!(attempts[1].error.as_deref(), Some("failed at 110"));
    assert_eq!(attempts[1].exit_code, Some(1));

    let one_item = store.attempts(id, Some("item-1")).unwrap();
    assert_eq!(one_item.len(), 3);
    assert!(one_item.iter().all(|a| a.item_key == "item-1"));
    assert!(store.attempts(id, Some("no-such-item")).unwrap().is_empty());
}

pub(crate) fn invalid_batch_is_rolled_back(store: &dyn Store) {
    let job = new_job("rollback", 1_000);
    store.create_job(&job, &new_items(2)).unwrap();
    let id = job.id;
    let before = store.job(id).unwrap();

    let unknown = JobId::new();
    let result = store.apply(&[
        Write::JobStatus {
            job: id,
            status: JobStatus::Running,
            at: 2_000,
        },
        started(id, 0, 1, 2_000),
        event(id, 2_000, "item_started"),
        finished(
            unknown,
            0,
            1,
            2_001,
            AttemptOutcome::Failed,
            ItemStatus::Failed,
        ),
    ]);
    assert!(
        matches!(&result, Err(StoreError::JobNotFound { job }) if *job == unknown.to_string()),
        "{result:?}"
    );

    // An attempt that never started, on a known job.
    let result = store.apply(&[
        event(id, 3_000, "item_started"),
        finished(id, 1, 1, 3_000, AttemptOutcome::Failed, ItemStatus::Failed),
    ]);
    assert!(
        matches!(
            result,
            Err(StoreError::AttemptNotFound { job, index: 1, number: 1 }) if job == id
        ),
        "{result:?}"
    );

    // An item the job does not have.
    let result = store.apply(&[event(id, 4_000, "x"), started(id, 7, 1, 4_000)]);
    assert!(
        matches!(result, Err(StoreError::ItemNotFound { job, index: 7 }) if job == id),
        "{result:?}"
    );

    let after = store.job(id).unwrap();
    assert_eq!(after.status, JobStatus::Pending);
    assert_eq!(after.started_at, None);
    assert_eq!(after.updated_at, before.updated_at);
    assert_eq!(after.counts, before.counts);
    assert!(store.attempts(id, None).unwrap().is_empty());
    assert!(store.events(id, 0, 100).unwrap().is_empty());

    // The store is still usable after a rolled-back batch.
    store.apply(&[started(id, 0, 1, 5_000)]).unwrap();
    assert_eq!(store.job(id).unwrap().counts.running, 1);
}

pub(crate) fn status_transitions_set_times(store: &dyn Store) {
    let job = new_job("times", 1_000);
    store.create_job(&job, &new_items(1)).unwrap();
    let id = job.id;
    let status = |status, at| Write::JobStatus {
        job: id,
        status,
        at,
    };

    store
        .apply(&[
            status(JobStatus::Running, 2_000),
            Write::JobPhase {
                job: id,
                phase: Phase::Setup,
                at: 2_000,
            },
        ])
        .unwrap();
    let record = store.job(id).unwrap();
    assert_eq!(record.status, JobStatus::Running);
    assert_eq!(record.phase, Some(Phase::Setup));
    assert_eq!(record.started_at, Some(2_000));
    assert_eq!(record.updated_at, 2_000);
    assert_eq!(record.finished_at, None);

    store
        .apply(&[
            Write::Heartbeat {
                job: id,
                at: 3_000,
                duration_ms: 1_000,
            },
            status(JobStatus::Interrupted, 3_500),
        ])
        .unwrap();
    let record = store.job(id).unwrap();
    assert_eq!(record.status, JobStatus::Interrupted);
    assert_eq!(record.heartbeat_at, Some(3_000));
    assert_eq!(record.duration_ms, 1_000);
    assert_eq!(record.updated_at, 3_500);
    assert_eq!(record.finished_at, None);

    // A resume keeps the first start.
    store
        .apply(&[
            status(JobStatus::Running, 10_000),
            Write::JobPhase {
                job: id,
                phase: Phase::Map,
                at: 10_000,
            },
        ])
        .unwrap();
    assert_eq!(store.job(id).unwrap().started_at, Some(2_000));

    store
        .apply(&[
            Write::Snapshot {
                job: id,
                at: 10_500,
                payload: progress_snapshot(1),
            },
            status(JobStatus::CompletedWithFailures, 11_000),
        ])
        .unwrap();
    let record = store.job(id).unwrap();
    assert_eq!(record.status, JobStatus::CompletedWithFailures);
    assert_eq!(record.phase, Some(Phase::Map));
    assert_eq!(record.started_at, Some(2_000));
    assert_eq!(record.finished_at, Some(11_000));
    assert_eq!(record.updated_at, 11_000);

    // updated_at never goes back, even for a write stamped earlier.
    store.apply(&[event(id, 5_000, "late")]).unwrap();
    assert_eq!(store.job(id).unwrap().updated_at, 11_000);

    // Every finished status sets finished_at.
    for finished_status in JobStatus::ALL.iter().filter(|s| s.is_finished()) {
        let other = new_job("finish", 1_000);
        store.create_job(&other, &[]).unwrap();
        store
            .apply(&[Write::JobStatus {
                job: other.id,
                status: *finished_status,
                at: 7_000,
            }])
            .unwrap();
        let record = store.job(other.id).unwrap();
        assert_eq!(record.status, *finished_status);
        assert_eq!(record.finished_at, Some(7_000), "{finished_status}");
        assert_eq!(record.started_at, None, "never ran: {finished_status}");
    }
}

pub(crate) fn large_create_job(store: &dyn Store) {
    let job = new_job("large", 1_000);
    store.create_job(&job, &new_items(100_000)).unwrap();
    let record = store.job(job.id).unwrap();
    assert_eq!(record.counts.pending, 100_000);
    assert_eq!(record.counts.total(), 100_000);
    let items = store.items(job.id, None).unwrap();
    assert_eq!(items.len(), 100_000);
    assert_eq!(items[99_999].key, "item-99999");
}

pub(crate) fn add_items_follow_and_refuse_duplicates(store: &dyn Store) {
    let job = new_job("grow", 1_000);
    store.create_job(&job, &new_items(2)).unwrap();
    let more = vec![
        NewItem {
            key: "extra-a".to_string(),
            value: "1".to_string(),
        },
        NewItem {
            key: "extra-b".to_string(),
            value: "2".to_string(),
        },
    ];
    store.add_items(job.id, &more).unwrap();
    let items = store.items(job.id, None).unwrap();
    let listed: Vec<(u64, &str)> = items.iter().map(|i| (i.index, i.key.as_str())).collect();
    assert_eq!(
        listed,
        [(0, "item-0"), (1, "item-1"), (2, "extra-a"), (3, "extra-b")]
    );

    // A key the job already has: nothing of the batch is added.
    let clash = vec![
        NewItem {
            key: "extra-c".to_string(),
            value: "3".to_string(),
        },
        NewItem {
            key: "item-1".to_string(),
            value: "4".to_string(),
        },
    ];
    match store.add_items(job.id, &clash) {
        Err(StoreError::DuplicateItemKey {
            job: id,
            index,
            key,
        }) => {
            assert_eq!((id, index, key.as_str()), (job.id, 5, "item-1"));
        }
        other => panic!("expected DuplicateItemKey, got {other:?}"),
    }
    assert_eq!(store.item_keys(job.id).unwrap().len(), 4);
    assert!(matches!(
        store.add_items(JobId::new(), &more),
        Err(StoreError::JobNotFound { .. })
    ));
}
