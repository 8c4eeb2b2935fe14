//! Checks and repairs ([`mmm_store::Integrity`]): the write probe, a job's whole record, and a
//! repair that applies only to the record it was planned from.

use super::*;

pub(crate) fn a_write_probe_changes_nothing(store: &dyn Store) {
    let job = new_job("probe", 1_000);
    store.create_job(&job, &new_items(2)).unwrap();
    let before = store.job(job.id).unwrap();
    store.probe_write().unwrap();
    store.probe_write().unwrap();
    let after = store.job(job.id).unwrap();
    assert_eq!(before.updated_at, after.updated_at);
    assert_eq!(before.counts, after.counts);
    assert_eq!(store.jobs().unwrap().len(), 1);
}

pub(crate) fn job_contents_and_repair(store: &dyn Store) {
    let job = new_job("repair", 1_000);
    store.create_job(&job, &new_items(2)).unwrap();
    let id = job.id;
    set_status(store, id, JobStatus::Running, 5);
    store.apply(&[started(id, 0, 1, 10)]).unwrap();
    finish(
        store,
        id,
        (1, 1, 12),
        AttemptOutcome::Succeeded,
        ItemStatus::Completed,
    );

    let contents = store.job_contents(id).unwrap();
    assert_eq!(contents.job.id, id);
    assert_eq!(contents.job.counts.running, 1);
    assert_eq!(contents.items.len(), 2);
    let attempts: Vec<(u64, u32, Option<AttemptOutcome>)> = contents
        .attempts
        .iter()
        .map(|a| (a.item_index, a.number, a.outcome))
        .collect();
    assert_eq!(
        attempts,
        [(0, 1, None), (1, 1, Some(AttemptOutcome::Succeeded))]
    );
    assert!(store.storage_problems().unwrap().is_empty());
    assert!(matches!(
        store.job_contents(JobId::new()),
        Err(StoreError::JobNotFound { .. })
    ));

    let actions = [
        RepairAction::InterruptAttempt {
            item_index: 0,
            number: 1,
        },
        RepairAction::RequeueItem {
            item_index: 0,
            from: ItemStatus::Running,
        },
        RepairAction::SetJobStatus {
            from: JobStatus::Running,
            to: JobStatus::Interrupted,
        },
    ];
    let repaired = Repaired {
        changes: Vec::new(),
        actions: actions.to_vec(),
    };
    store.repair(id, &repaired, 2_000).unwrap();
    let contents = store.job_contents(id).unwrap();
    assert_eq!(contents.job.status, JobStatus::Interrupted);
    assert_eq!(contents.job.updated_at, 2_000);
    assert_eq!(contents.items[0].status, ItemStatus::Pending);
    let attempt = &contents.attempts[0];
    assert_eq!(attempt.outcome, Some(AttemptOutcome::Interrupted));
    assert_eq!(attempt.ended_at, Some(2_000));
    assert!(attempt.error.as_deref().unwrap().contains("mmm repair"));
    let events = store.events(id, 0, 100).unwrap();
    let last = events.last().unwrap();
    assert_eq!(last.event, Event::Repaired(repaired.clone()));

    // The same plan again no longer applies: nothing changes.
    let result = store.repair(id, &repaired, 3_000);
    assert!(
        matches!(&result, Err(StoreError::RepairConflict { job, .. }) if *job == id),
        "{result:?}"
    );
    assert_eq!(store.events(id, 0, 100).unwrap().len(), events.len());
    assert_eq!(store.job(id).unwrap().updated_at, 2_000);
}
