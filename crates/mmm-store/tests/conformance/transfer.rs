//! Moving a job between stores ([`mmm_store::Transfer`]): deleting a job takes everything of it
//! and nothing else.

use super::*;

pub(crate) fn delete_job_removes_everything_of_that_job_only(store: &dyn Store) {
    let (gone, kept) = (new_job("gone", 1_000), new_job("kept", 1_001));
    for job in [&gone, &kept] {
        store.create_job(job, &new_items(3)).unwrap();
        finish(
            store,
            job.id,
            (0, 1, 10),
            AttemptOutcome::Succeeded,
            ItemStatus::Completed,
        );
        store
            .apply(&[
                event(job.id, 11, "note"),
                Write::Snapshot {
                    job: job.id,
                    at: 12,
                    payload: Box::default(),
                },
                Write::Checkpoint {
                    job: job.id,
                    at: 13,
                    phase: Some(Phase::Map),
                    reason: "interval".to_string(),
                },
            ])
            .unwrap();
    }
    store.delete_job(gone.id).unwrap();
    assert!(matches!(
        store.job(gone.id),
        Err(StoreError::JobNotFound { .. })
    ));
    assert!(matches!(
        store.delete_job(gone.id),
        Err(StoreError::JobNotFound { .. })
    ));
    let listed: Vec<JobId> = store.jobs().unwrap().iter().map(|j| j.id).collect();
    assert_eq!(listed, [kept.id]);
    // The other job is whole.
    assert_eq!(store.items(kept.id, None).unwrap().len(), 3);
    assert_eq!(store.attempts(kept.id, None).unwrap().len(), 1);
    assert_eq!(store.checkpoints(kept.id).unwrap().len(), 1);
    assert_eq!(store.snapshots(kept.id, 0, 10).unwrap().len(), 1);
    assert!(!store.events(kept.id, 0, 100).unwrap().is_empty());
    // Nothing of it is left behind: no row refers to the deleted job, and its id can be
    // imported again.
    assert_eq!(store.storage_problems().unwrap(), Vec::<String>::new());
    store.create_job(&gone, &new_items(1)).unwrap();
    assert_eq!(store.items(gone.id, None).unwrap().len(), 1);
    assert!(store.checkpoints(gone.id).unwrap().is_empty());
}
