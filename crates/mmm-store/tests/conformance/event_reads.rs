//! A job's events and snapshots ([`mmm_store::EventReads`]): sequenced and paged, the newest
//! ones, and seen by a second connection as soon as they commit.

use super::*;

pub(crate) fn snapshots_and_recent_events_read_the_newest(store: &dyn Store) {
    let job = new_job("snapshots", 1_000);
    store.create_job(&job, &new_items(1)).unwrap();
    assert_eq!(store.latest_snapshot(job.id).unwrap(), None);
    assert!(store.snapshots(job.id, 0, 10).unwrap().is_empty());
    let writes: Vec<Write> = [3_000, 1_000, 2_000]
        .into_iter()
        .map(|at| Write::Snapshot {
            job: job.id,
            at,
            payload: progress_snapshot(at as u64),
        })
        .collect();
    store.apply(&writes).unwrap();
    let all = store.snapshots(job.id, 0, 10).unwrap();
    let times: Vec<i64> = all.iter().map(|s| s.at).collect();
    assert_eq!(times, [1_000, 2_000, 3_000]);
    assert_eq!(all[1].payload.progress.unwrap().completed, 2_000);
    let page = store.snapshots(job.id, 1_000, 1).unwrap();
    assert_eq!(page.len(), 1);
    assert_eq!(page[0].at, 2_000);
    store
        .apply(&[
            event(job.id, 10, "first"),
            event(job.id, 11, "second"),
            event(job.id, 12, "third"),
        ])
        .unwrap();
    let recent: Vec<String> = store
        .recent_events(job.id, 2)
        .unwrap()
        .into_iter()
        .map(|e| e.event.kind_name().to_string())
        .collect();
    assert_eq!(recent, ["second", "third"], "the newest, oldest first");
    let latest = store.latest_snapshot(job.id).unwrap().unwrap();
    assert_eq!(latest.at, 3_000);
    assert_eq!(latest.payload.progress.unwrap().completed, 3_000);
    assert!(matches!(
        store.latest_snapshot(JobId::new()),
        Err(StoreError::JobNotFound { .. })
    ));
}

pub(crate) fn events_are_sequenced_and_paginate(store: &dyn Store) {
    let a = new_job("a", 1_000);
    let b = new_job("b", 1_000);
    store.create_job(&a, &[]).unwrap();
    store.create_job(&b, &[]).unwrap();
    for round in 0..5 {
        let batch: Vec<Write> = (0..5)
            .flat_map(|n| {
                let at = 10 + round * 5 + n;
                [event(a.id, at, "tick"), event(b.id, at, "tock")]
            })
            .collect();
        store.apply(&batch).unwrap();
    }

    let all = store.events(a.id, 0, 1_000).unwrap();
    assert_eq!(all.len(), 25);
    assert!(all.windows(2).all(|w| w[0].seq < w[1].seq), "seq increases");
    assert!(
        all.iter()
            .all(|e| e.job == a.id && e.event.kind_name() == "tick")
    );
    let first = &all[0];
    assert_eq!(first.at, 10);
    assert_eq!(first.item_key.as_deref(), Some("item-10"));
    assert_eq!(
        first.event.payload(),
        serde_json::json!({ "at": 10, "kind": "tick" })
    );

    let mut pages = Vec::new();
    let mut after = 0;
    loop {
        let page = store.events(a.id, after, 10).unwrap();
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 10);
        after = page.last().unwrap().seq;
        pages.push(page);
    }
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [10, 10, 5]);
    let paged: Vec<i64> = pages.iter().flatten().map(|e| e.seq).collect();
    let direct: Vec<i64> = all.iter().map(|e| e.seq).collect();
    assert_eq!(paged, direct);
    assert!(store.events(a.id, all[24].seq, 10).unwrap().is_empty());
    assert!(store.events(a.id, 0, 0).unwrap().is_empty());

    // Later events get later numbers, also across jobs.
    store.apply(&[event(b.id, 100, "late")]).unwrap();
    let late = store.events(b.id, 0, 1_000).unwrap();
    assert_eq!(late.len(), 26);
    assert!(late[25].seq > all[24].seq);
}

/// `writer` and `reader` are two independent connections to the same store.
pub(crate) fn second_connection_sees_commits(writer: &dyn Store, reader: &dyn Store) {
    let job = new_job("shared", 1_000);
    writer.create_job(&job, &new_items(3)).unwrap();
    assert_eq!(reader.job(job.id).unwrap().counts.pending, 3);
    assert_eq!(reader.resolve_job(&job.id.short()).unwrap(), job.id);

    writer
        .apply(&[
            started(job.id, 0, 1, 2_000),
            event(job.id, 2_000, "item_started"),
        ])
        .unwrap();
    assert_eq!(reader.job(job.id).unwrap().counts.running, 1);
    assert_eq!(reader.events(job.id, 0, 10).unwrap().len(), 1);
    assert_eq!(reader.attempts(job.id, None).unwrap().len(), 1);

    // And the other way round.
    reader
        .apply(&[Write::JobStatus {
            job: job.id,
            status: JobStatus::Cancelled,
            at: 3_000,
        }])
        .unwrap();
    assert_eq!(writer.job(job.id).unwrap().status, JobStatus::Cancelled);
}
