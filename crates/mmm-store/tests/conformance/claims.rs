//! Scale-out ([`mmm_store::Claims`]): items handed to claimers under leases, never to two at
//! once.

use super::*;

/// Puts a job in its map phase, running, so that claims hand out its items.
fn open_map(store: &dyn Store, job: JobId, at: i64) {
    store
        .apply(&[
            Write::JobStatus {
                job,
                status: JobStatus::Running,
                at,
            },
            Write::JobPhase {
                job,
                phase: Phase::Map,
                at,
            },
        ])
        .unwrap();
}

/// Issue 8: claims hand each item to one claimer; a lease that runs out returns the item
/// (its attempt in flight closed `interrupted`, not counted), a late finish of that
/// attempt is refused, renewals keep items, releases give back what was not started, and
/// a resume's requeue leaves items under a live lease alone.
pub(crate) fn claims_hand_out_items_once_under_a_lease(store: &dyn Store) {
    let job = new_job("claims", 1_000);
    store.create_job(&job, &new_items(5)).unwrap();
    let job = job.id;
    assert!(
        store
            .claim_items(job, "a", 10, 10_000, 100)
            .unwrap()
            .is_empty(),
        "a job not running its map hands out nothing"
    );
    open_map(store, job, 100);
    let a = store.claim_items(job, "a", 2, 10_000, 100).unwrap();
    assert_eq!(indices(&a), [0, 1]);
    assert_eq!(a[0].key, "item-0");
    assert_eq!(a[0].value, r#"{"path":"photos/0.jpg"}"#);
    assert_eq!(
        (a[0].attempts, a[0].last_number, a[0].lease_expired),
        (0, 0, false)
    );
    let b = store.claim_items(job, "b", 10, 1_100, 100).unwrap();
    assert_eq!(indices(&b), [2, 3, 4]);
    assert!(
        store
            .claim_items(job, "c", 10, 10_000, 200)
            .unwrap()
            .is_empty()
    );

    // a runs item 0, b runs item 2; then b dies (stops renewing).
    store
        .apply(&[started(job, 0, 1, 300), started(job, 2, 1, 300)])
        .unwrap();
    // Only the items named: a claim a claimer never heard of (its commit lost) runs out.
    assert_eq!(store.renew_claims(job, "a", &[1], 20_000).unwrap(), 1);
    assert_eq!(store.renew_claims(job, "a", &[0, 1, 2], 20_000).unwrap(), 2);
    let c = store.claim_items(job, "c", 10, 30_000, 2_000).unwrap();
    assert_eq!(indices(&c), [2, 3, 4], "b's lease ran out at 1,100");
    assert!(c.iter().all(|item| item.lease_expired));
    assert_eq!((c[0].attempts, c[0].last_number), (0, 1));
    let attempts = store.attempts(job, Some("item-2")).unwrap();
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].outcome, Some(AttemptOutcome::Interrupted));
    assert_eq!(attempts[0].ended_at, Some(2_000));
    assert_eq!(
        attempts[0].error.as_deref(),
        Some(mmm_store::LEASE_EXPIRED_ERROR)
    );
    let item = store.item(job, "item-2").unwrap().unwrap();
    assert_eq!((item.status, item.attempts), (ItemStatus::Pending, 0));
    let requeued: Vec<_> = store
        .events(job, 0, 100)
        .unwrap()
        .into_iter()
        .filter(|e| e.event.kind_name() == "item_requeued")
        .collect();
    assert_eq!(requeued.len(), 1, "only the item with an attempt in flight");
    assert_eq!(requeued[0].item_key.as_deref(), Some("item-2"));
    assert_eq!(requeued[0].event.payload()["reason"], "lease_expired");
    assert_eq!(requeued[0].event.payload()["claimed_by"], "b");

    // b comes back and finishes its attempt: refused, nothing changes.
    let late = store.apply(&[finished(
        job,
        2,
        1,
        2_100,
        AttemptOutcome::Succeeded,
        ItemStatus::Completed,
    )]);
    assert!(
        matches!(
            late,
            Err(StoreError::AttemptNotFound {
                index: 2,
                number: 1,
                ..
            })
        ),
        "{late:?}"
    );
    assert_eq!(
        store.item(job, "item-2").unwrap().unwrap().status,
        ItemStatus::Pending
    );

    // A resume's requeue leaves a's running item 0 alone (lease until 20,000).
    let requeue = store.requeue_in_flight(job, 3_000).unwrap();
    assert!(requeue.interrupted.is_empty(), "{requeue:?}");
    assert_eq!(
        store.item(job, "item-0").unwrap().unwrap().status,
        ItemStatus::Running
    );
    // a gives back item 1 (not started), keeps item 0 (in flight).
    assert_eq!(store.release_claims(job, "a").unwrap(), 1);
    let d = store.claim_items(job, "d", 10, 40_000, 3_000).unwrap();
    assert_eq!(indices(&d), [1]);
    assert!(!d[0].lease_expired, "a released it: no lease ran out");
    store
        .apply(&[finished(
            job,
            0,
            1,
            3_100,
            AttemptOutcome::Succeeded,
            ItemStatus::Completed,
        )])
        .unwrap();
    assert_eq!(
        store.item(job, "item-0").unwrap().unwrap().status,
        ItemStatus::Completed
    );
    // Finished items are never handed out again, whatever their lease.
    assert!(
        store
            .claim_items(job, "e", 10, 90_000, 95_000)
            .unwrap()
            .iter()
            .all(|c| c.index != 0)
    );
    // Once the job stops, nothing is handed out.
    set_status(store, job, JobStatus::Interrupted, 4_000);
    assert!(
        store
            .claim_items(job, "f", 10, 99_000, 99_000)
            .unwrap()
            .is_empty()
    );
    // After a crash of everyone, the requeue closes what ran under an expired lease.
    store.apply(&[started(job, 1, 1, 4_100)]).unwrap();
    let requeue = store.requeue_in_flight(job, 100_000).unwrap();
    assert_eq!(requeue.interrupted, ["item-1"]);
}

/// A claimer that did not start an item before its lease could have run out asks whether it
/// still holds it: an item nobody took is confirmed (and its lease extended), an item another
/// claimer took, or one that was started, is not.
pub(crate) fn a_stale_claim_is_confirmed_only_while_still_held(store: &dyn Store) {
    let job = new_job("confirm", 1_000);
    store.create_job(&job, &new_items(4)).unwrap();
    let job = job.id;
    open_map(store, job, 100);
    let a = store.claim_items(job, "a", 3, 1_000, 100).unwrap();
    assert_eq!(indices(&a), [0, 1, 2]);
    // a's lease ran out at 1,000; b takes item 0 (the first claimable) at 2,000.
    let b = store.claim_items(job, "b", 1, 10_000, 2_000).unwrap();
    assert_eq!(indices(&b), [0]);
    // Item 2 was started by a (e.g. under an earlier confirmation): not a claim to confirm.
    store.apply(&[started(job, 2, 1, 2_050)]).unwrap();
    let held = store
        .confirm_claims(job, "a", &[0, 1, 2, 3], 20_000)
        .unwrap();
    assert_eq!(held, [1], "item 0 is b's, 2 is running, 3 was never a's");
    // The confirmed lease holds: nobody else gets item 1 before 20,000.
    let c = store.claim_items(job, "c", 10, 30_000, 15_000).unwrap();
    assert!(c.iter().all(|item| item.index != 1), "{c:?}");
    assert!(
        store
            .confirm_claims(job, "a", &[], 20_000)
            .unwrap()
            .is_empty()
    );
}

/// Issue 8: claimers racing on two connections never get the same item, and together
/// get every item.
pub(crate) fn concurrent_claimers_never_share_an_item(a: &dyn Store, b: &dyn Store) {
    let job = new_job("race", 1_000);
    store_items(a, &job, 300);
    open_map(a, job.id, 100);
    let claimed: Vec<Vec<u64>> = std::thread::scope(|scope| {
        let claimers: Vec<_> = [(a, "a"), (b, "b"), (a, "c"), (b, "d")]
            .into_iter()
            .map(|(store, name)| {
                scope.spawn(move || {
                    let mut mine = Vec::new();
                    loop {
                        let got = store.claim_items(job.id, name, 3, 1_000_000, 200).unwrap();
                        if got.is_empty() {
                            return mine;
                        }
                        mine.extend(got.iter().map(|c| c.index));
                    }
                })
            })
            .collect();
        claimers.into_iter().map(|c| c.join().unwrap()).collect()
    });
    let mut all: Vec<u64> = claimed.concat();
    all.sort_unstable();
    assert_eq!(
        all,
        (0..300).collect::<Vec<u64>>(),
        "each item exactly once"
    );
}

fn store_items(store: &dyn Store, job: &NewJob, n: usize) {
    store.create_job(job, &new_items(n)).unwrap();
}
