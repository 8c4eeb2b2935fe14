//! The store conformance suite: what every `Store` implementation must do.
//!
//! The checks in `suite` take `&dyn Store` (and nothing of a backend), and `every_check!` runs
//! each of them on both backends: the `sqlite` module gives each check a new store in a temp
//! directory, the `postgres` module a new schema (random name, dropped afterwards) in the
//! database of `MMM_TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/test`), so
//! the tests run in parallel. An unreachable PostgreSQL fails its tests with a message that says
//! what to do, unless `MMM_SKIP_POSTGRES=1`, which skips them and says so on stderr. Checks
//! about a backend's own storage (damaged files, schema versions, locations, foreign schemas)
//! live in its module.

use std::path::PathBuf;

use mmm_core::job::{AttemptOutcome, ItemStatus, JobId, JobStatus, Phase};
use mmm_store::{
    ItemPage, ItemPageQuery, NewItem, NewJob, Owner, RepairAction, StepRecord, Store, StoreError,
    Write,
};

/// A job as the runner would record it, created at `created_at`.
fn new_job(name: &str, created_at: i64) -> NewJob {
    NewJob {
        id: JobId::new(),
        name: name.to_string(),
        spec: r#"{"name":"test"}"#.to_string(),
        spec_hash: "abc123".to_string(),
        source: Some(PathBuf::from("jobs/test.yml")),
        max_parallel: 4,
        created_at,
        owner_pid: 4242,
        owner_host: "host-a".to_string(),
        origin: None,
    }
}

/// `n` items with keys `item-0`... and small JSON values.
fn new_items(n: usize) -> Vec<NewItem> {
    (0..n)
        .map(|i| NewItem {
            key: format!("item-{i}"),
            value: format!(r#"{{"path":"photos/{i}.jpg"}}"#),
        })
        .collect()
}

fn started(job: JobId, item_index: u64, number: u32, at: i64) -> Write {
    Write::AttemptStarted {
        job,
        item_index,
        number,
        agent: "agent-1".to_string(),
        at,
    }
}

/// The end of an attempt; `item_status` and whether it counts follow from the outcome.
fn finished(
    job: JobId,
    item_index: u64,
    number: u32,
    at: i64,
    outcome: AttemptOutcome,
    item_status: ItemStatus,
) -> Write {
    Write::AttemptFinished {
        job,
        item_index,
        number,
        ended_at: at,
        duration_us: 1_500,
        outcome,
        exit_code: match outcome {
            AttemptOutcome::Succeeded => Some(0),
            AttemptOutcome::Failed => Some(1),
            _ => None,
        },
        error: (outcome != AttemptOutcome::Succeeded).then(|| format!("{outcome} at {at}")),
        steps: finished_steps(),
        stdout_tail: format!("out {number}"),
        stderr_tail: format!("err {number}"),
        item_status,
        counts_against_retries: outcome != AttemptOutcome::Interrupted,
    }
}

/// The steps [`finished`] records: one that ran, one skipped.
fn finished_steps() -> Vec<StepRecord> {
    vec![
        StepRecord {
            name: "resize".to_string(),
            skipped: false,
            duration_us: 1_000,
            exit_code: Some(0),
        },
        StepRecord {
            name: "upload".to_string(),
            skipped: true,
            duration_us: 0,
            exit_code: None,
        },
    ]
}

fn event(job: JobId, at: i64, kind: &str) -> Write {
    Write::Event {
        job,
        at,
        kind: kind.to_string(),
        item_key: Some(format!("item-{at}")),
        payload: serde_json::json!({ "at": at, "kind": kind }),
    }
}

/// Calls `$on_a_fresh_store!` with the name of every check of `suite` that takes one store.
macro_rules! every_check {
    ($on_a_fresh_store:ident) => {
        $on_a_fresh_store!(
            create_and_read,
            unknown_jobs_are_not_found,
            create_job_is_all_or_nothing,
            counts_follow_item_statuses,
            attempts_update_items,
            invalid_batch_is_rolled_back,
            events_are_sequenced_and_paginate,
            items_page_reads_a_window_with_last_attempts,
            a_write_probe_changes_nothing,
            snapshots_and_recent_events_read_the_newest,
            resolve_job_by_prefix,
            jobs_are_listed_newest_first,
            status_transitions_set_times,
            large_create_job,
            add_items_follow_and_refuse_duplicates,
            take_job_is_a_compare_and_swap,
            requeue_then_page_through_unfinished_items,
            checkpoints_and_rewind,
            changed_values_requeue_finished_items,
            ledger_counts_requeues_by_reason,
            dead_letter_queue_retry_and_purge,
            job_contents_and_repair,
            claims_hand_out_items_once_under_a_lease,
            delete_job_removes_everything_of_that_job_only,
        );
    };
}

/// The checks every backend must pass.
mod suite {
    use super::*;

    pub(super) fn a_write_probe_changes_nothing(store: &dyn Store) {
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

    pub(super) fn snapshots_and_recent_events_read_the_newest(store: &dyn Store) {
        let job = new_job("snapshots", 1_000);
        store.create_job(&job, &new_items(1)).unwrap();
        assert_eq!(store.latest_snapshot(job.id).unwrap(), None);
        assert!(store.snapshots(job.id, 0, 10).unwrap().is_empty());
        let writes: Vec<Write> = [3_000, 1_000, 2_000]
            .into_iter()
            .map(|at| Write::Snapshot {
                job: job.id,
                at,
                payload: serde_json::json!({ "at": at, "agents": [] }),
            })
            .collect();
        store.apply(&writes).unwrap();
        let all = store.snapshots(job.id, 0, 10).unwrap();
        let times: Vec<i64> = all.iter().map(|s| s.at).collect();
        assert_eq!(times, [1_000, 2_000, 3_000]);
        assert_eq!(all[1].payload["at"], 2_000);
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
            .map(|e| e.kind)
            .collect();
        assert_eq!(recent, ["second", "third"], "the newest, oldest first");
        let latest = store.latest_snapshot(job.id).unwrap().unwrap();
        assert_eq!(latest.at, 3_000);
        assert_eq!(latest.payload["at"], 3_000);
        assert!(matches!(
            store.latest_snapshot(JobId::new()),
            Err(StoreError::JobNotFound { .. })
        ));
    }

    pub(super) fn create_and_read(store: &dyn Store) {
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

    pub(super) fn unknown_jobs_are_not_found(store: &dyn Store) {
        let unknown = JobId::new();
        let expect_not_found = |result: Result<(), StoreError>| match result {
            Err(StoreError::JobNotFound { job }) => assert_eq!(job, unknown.to_string()),
            other => panic!("expected JobNotFound, got {other:?}"),
        };
        expect_not_found(store.job(unknown).map(drop));
        expect_not_found(store.items(unknown, None).map(drop));
        expect_not_found(store.attempts(unknown, None).map(drop));
        expect_not_found(store.events(unknown, 0, 10).map(drop));
        let message = store.job(unknown).unwrap_err().to_string();
        assert!(message.contains("mmm jobs"), "{message}");
    }

    pub(super) fn create_job_is_all_or_nothing(store: &dyn Store) {
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

    pub(super) fn counts_follow_item_statuses(store: &dyn Store) {
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

    pub(super) fn items_page_reads_a_window_with_last_attempts(store: &dyn Store) {
        let job = new_job("pages", 1_000);
        store.create_job(&job, &new_items(10)).unwrap();
        let id = job.id;
        // item-1: two failures, then the DLQ; item-3: done; item-5: in flight.
        store
            .apply(&[
                started(id, 1, 1, 100),
                finished(id, 1, 1, 110, AttemptOutcome::Failed, ItemStatus::Failed),
                started(id, 3, 1, 115),
                finished(
                    id,
                    3,
                    1,
                    118,
                    AttemptOutcome::Succeeded,
                    ItemStatus::Completed,
                ),
                started(id, 1, 2, 120),
                finished(
                    id,
                    1,
                    2,
                    130,
                    AttemptOutcome::Failed,
                    ItemStatus::DeadLettered,
                ),
                started(id, 5, 1, 140),
            ])
            .unwrap();
        let page = |status, offset, limit| {
            store
                .items_page(
                    id,
                    &ItemPageQuery {
                        status,
                        offset,
                        limit,
                    },
                )
                .unwrap()
        };
        let indices = |p: &ItemPage| p.items.iter().map(|i| i.item.index).collect::<Vec<_>>();

        let first = page(None, 0, 4);
        assert_eq!(first.total, 10);
        assert_eq!(indices(&first), [0, 1, 2, 3]);
        assert!(first.items[0].last_attempt.is_none(), "item-0 never ran");
        assert_eq!(first.items[1].item.key, "item-1");
        assert_eq!(first.items[1].item.status, ItemStatus::DeadLettered);
        assert_eq!(first.items[1].item.attempts, 2);
        let last = first.items[1].last_attempt.as_ref().expect("item-1 ran");
        assert_eq!((last.number, last.item_index), (2, 1));
        assert_eq!(last.item_key, "item-1");
        assert_eq!(last.outcome, Some(AttemptOutcome::Failed));
        assert_eq!(last.error.as_deref(), Some("failed at 130"));
        assert_eq!(last.exit_code, Some(1));
        assert_eq!((last.started_at, last.ended_at), (120, Some(130)));
        assert_eq!(last.duration_us, Some(1_500));
        assert_eq!(
            (last.stdout_tail.as_str(), last.stderr_tail.as_str()),
            ("out 2", "err 2")
        );
        assert_eq!(last.steps.len(), 2);
        let done = first.items[3].last_attempt.as_ref().expect("item-3 ran");
        assert_eq!(done.outcome, Some(AttemptOutcome::Succeeded));

        // The same items as `items`, page after page.
        let all: Vec<u64> = store
            .items(id, None)
            .unwrap()
            .iter()
            .map(|i| i.index)
            .collect();
        let mut paged = Vec::new();
        for offset in (0..12).step_by(3) {
            let p = page(None, offset, 3);
            assert_eq!(p.total, 10);
            paged.extend(indices(&p));
        }
        assert_eq!(paged, all);
        let tail = page(None, 8, 5);
        assert_eq!(indices(&tail), [8, 9]);
        let beyond = page(None, 50, 5);
        assert!(beyond.items.is_empty());
        assert_eq!(beyond.total, 10);

        // A status filter pages and counts within that status.
        let dlq = page(Some(ItemStatus::DeadLettered), 0, 50);
        assert_eq!((dlq.total, indices(&dlq)), (1, vec![1]));
        let running = page(Some(ItemStatus::Running), 0, 50);
        assert_eq!(indices(&running), [5]);
        let in_flight = running.items[0].last_attempt.as_ref().unwrap();
        assert_eq!((in_flight.number, in_flight.ended_at), (1, None));
        assert_eq!(in_flight.outcome, None);
        let pending = page(Some(ItemStatus::Pending), 2, 2);
        assert_eq!(pending.total, 7);
        assert_eq!(indices(&pending), [4, 6]);
        assert_eq!(page(Some(ItemStatus::Skipped), 0, 10).total, 0);

        let unknown = store.items_page(
            JobId::new(),
            &ItemPageQuery {
                status: None,
                offset: 0,
                limit: 10,
            },
        );
        assert!(
            matches!(unknown, Err(StoreError::JobNotFound { .. })),
            "{unknown:?}"
        );
    }

    pub(super) fn attempts_update_items(store: &dyn Store) {
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

    pub(super) fn invalid_batch_is_rolled_back(store: &dyn Store) {
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

    pub(super) fn events_are_sequenced_and_paginate(store: &dyn Store) {
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
        assert!(all.iter().all(|e| e.job == a.id && e.kind == "tick"));
        let first = &all[0];
        assert_eq!(first.at, 10);
        assert_eq!(first.item_key.as_deref(), Some("item-10"));
        assert_eq!(
            first.payload,
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

    pub(super) fn resolve_job_by_prefix(store: &dyn Store) {
        let a = new_job("a", 1_000);
        let b = new_job("b", 1_000);
        store.create_job(&a, &[]).unwrap();
        store.create_job(&b, &[]).unwrap();
        let (a_hex, b_hex) = (a.id.to_string(), b.id.to_string());

        assert_eq!(store.resolve_job(&a_hex).unwrap(), a.id);
        assert_eq!(store.resolve_job(&a_hex.to_uppercase()).unwrap(), a.id);
        // The usual hyphenated UUID form is accepted too.
        let hyphenated = format!(
            "{}-{}-{}-{}-{}",
            &b_hex[..8],
            &b_hex[8..12],
            &b_hex[12..16],
            &b_hex[16..20],
            &b_hex[20..]
        );
        assert_eq!(store.resolve_job(&hyphenated).unwrap(), b.id);

        let common = a_hex
            .chars()
            .zip(b_hex.chars())
            .take_while(|(x, y)| x == y)
            .count();
        assert!(common < 32);
        assert_eq!(store.resolve_job(&a_hex[..=common]).unwrap(), a.id);
        assert_eq!(store.resolve_job(&b_hex[..=common]).unwrap(), b.id);
        if common > 0 {
            match store.resolve_job(&a_hex[..common]) {
                Err(StoreError::AmbiguousJob { prefix, matches }) => {
                    assert_eq!(prefix, a_hex[..common]);
                    assert_eq!(matches.len(), 2);
                    assert!(matches.contains(&a_hex) && matches.contains(&b_hex));
                    let message = StoreError::AmbiguousJob { prefix, matches }.to_string();
                    assert!(message.contains(&a_hex) && message.contains(&b_hex));
                }
                other => panic!("expected AmbiguousJob, got {other:?}"),
            }
        }

        // UUIDv7 ids starting with f are thousands of years away.
        match store.resolve_job("fffff") {
            Err(error @ StoreError::JobNotFound { .. }) => {
                let message = error.to_string();
                assert!(message.contains("fffff"), "{message}");
                assert!(message.contains("mmm jobs"), "{message}");
            }
            other => panic!("expected JobNotFound, got {other:?}"),
        }
        for bad in ["", "xyz", "01%", "0*", &"0".repeat(33)] {
            assert!(
                matches!(store.resolve_job(bad), Err(StoreError::InvalidJobId { .. })),
                "{bad:?}"
            );
        }
    }

    pub(super) fn jobs_are_listed_newest_first(store: &dyn Store) {
        let mut ids = Vec::new();
        for n in 0..3 {
            let job = new_job(&format!("job-{n}"), 1_000 + n);
            store.create_job(&job, &new_items(1)).unwrap();
            ids.push(job.id);
            // UUIDv7 ids order by millisecond.
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        ids.reverse();
        let listed: Vec<JobId> = store.jobs().unwrap().iter().map(|j| j.id).collect();
        assert_eq!(listed, ids);
    }

    pub(super) fn status_transitions_set_times(store: &dyn Store) {
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
                    payload: serde_json::json!({ "completed": 1 }),
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

    /// `writer` and `reader` are two independent connections to the same store.
    pub(super) fn second_connection_sees_commits(writer: &dyn Store, reader: &dyn Store) {
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

    pub(super) fn large_create_job(store: &dyn Store) {
        let job = new_job("large", 1_000);
        store.create_job(&job, &new_items(100_000)).unwrap();
        let record = store.job(job.id).unwrap();
        assert_eq!(record.counts.pending, 100_000);
        assert_eq!(record.counts.total(), 100_000);
        let items = store.items(job.id, None).unwrap();
        assert_eq!(items.len(), 100_000);
        assert_eq!(items[99_999].key, "item-99999");
    }

    /// Records `item_index` as finished by attempt `number` (started just before) with its
    /// completion event, as the runner does.
    fn finish(
        store: &dyn Store,
        job: JobId,
        (item_index, number, at): (u64, u32, i64),
        outcome: AttemptOutcome,
        status: ItemStatus,
    ) {
        let kind = match status {
            ItemStatus::Completed => "item_completed",
            ItemStatus::Skipped => "item_skipped",
            ItemStatus::DeadLettered => "item_dead_lettered",
            _ => "item_failed",
        };
        store
            .apply(&[
                started(job, item_index, number, at),
                finished(job, item_index, number, at + 1, outcome, status),
                Write::Event {
                    job,
                    at: at + 1,
                    kind: kind.to_string(),
                    item_key: Some(format!("item-{item_index}")),
                    payload: serde_json::json!({ "number": number }),
                },
            ])
            .unwrap();
    }

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

    fn indices(claimed: &[mmm_store::ClaimedItem]) -> Vec<u64> {
        claimed.iter().map(|c| c.index).collect()
    }

    /// Issue 8: claims hand each item to one claimer; a lease that runs out returns the item
    /// (its attempt in flight closed `interrupted`, not counted), a late finish of that
    /// attempt is refused, renewals keep items, releases give back what was not started, and
    /// a resume's requeue leaves items under a live lease alone.
    pub(super) fn claims_hand_out_items_once_under_a_lease(store: &dyn Store) {
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
        assert_eq!(store.renew_claims(job, "a", 20_000).unwrap(), 2);
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
            .filter(|e| e.kind == "item_requeued")
            .collect();
        assert_eq!(requeued.len(), 1, "only the item with an attempt in flight");
        assert_eq!(requeued[0].item_key.as_deref(), Some("item-2"));
        assert_eq!(requeued[0].payload["reason"], "lease_expired");
        assert_eq!(requeued[0].payload["claimed_by"], "b");

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

    /// Issue 8: claimers racing on two connections never get the same item, and together
    /// get every item.
    pub(super) fn concurrent_claimers_never_share_an_item(a: &dyn Store, b: &dyn Store) {
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

    fn set_status(store: &dyn Store, job: JobId, status: JobStatus, at: i64) {
        store
            .apply(&[Write::JobStatus { job, status, at }])
            .unwrap();
    }

    fn statuses(store: &dyn Store, job: JobId) -> Vec<(String, ItemStatus, u32)> {
        store
            .items(job, None)
            .unwrap()
            .into_iter()
            .map(|item| (item.key, item.status, item.attempts))
            .collect()
    }

    pub(super) fn add_items_follow_and_refuse_duplicates(store: &dyn Store) {
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

    pub(super) fn take_job_is_a_compare_and_swap(store: &dyn Store) {
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

    pub(super) fn requeue_then_page_through_unfinished_items(store: &dyn Store) {
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

    pub(super) fn delete_job_removes_everything_of_that_job_only(store: &dyn Store) {
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
                        payload: serde_json::json!({}),
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

    pub(super) fn checkpoints_and_rewind(store: &dyn Store) {
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

    pub(super) fn changed_values_requeue_finished_items(store: &dyn Store) {
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
            (last.kind.as_str(), last.item_key.as_deref(), last.at),
            ("item_requeued", Some("item-0"), 50)
        );
        assert_eq!(
            last.payload,
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

    pub(super) fn ledger_counts_requeues_by_reason(store: &dyn Store) {
        let job = new_job("ledger", 1_000);
        store.create_job(&job, &new_items(1)).unwrap();
        let id = job.id;
        let event = |kind: &str, payload: serde_json::Value| Write::Event {
            job: id,
            at: 10,
            kind: kind.to_string(),
            item_key: None,
            payload,
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
        let kinds: Vec<&str> = ledger.entries.iter().map(|e| e.kind.as_str()).collect();
        assert_eq!(kinds, ["job_resumed", "spec_changed"]);
        assert_eq!(ledger.entries[0].payload, serde_json::json!({ "by": 1 }));
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

    pub(super) fn dead_letter_queue_retry_and_purge(store: &dyn Store) {
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
            .map(|e| e.kind)
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

    /// An old store's record, as schema version 3 (before `job_ref`) held it, in SQL that both
    /// backends run: job A was left running by a dead owner mid-map (one item completed, one
    /// dead-lettered after a retry, one in flight, one pending), job B completed. The events
    /// get seqs 1 to 11 in this order; a 12th, of a job since deleted, is inserted and deleted
    /// again, so the counter stands above the highest seq left.
    pub(super) const OLD_RECORD: &str = r#"
        INSERT INTO jobs (id, name, status, phase, spec, spec_hash, max_parallel, created_at,
                          started_at, updated_at, owner_pid, owner_host, heartbeat_at, origin)
        VALUES ('01a20c00000000000000000000000a0a', 'old-a', 'running', 'map', '{"name":"a"}',
                'hash-a', 2, 1000, 1001, 1500, 999999, 'gone-host', 1400, NULL),
               ('01a20c00000000000000000000000b0b', 'old-b', 'completed', 'reduce',
                '{"name":"b"}', 'hash-b', 1, 2000, 2001, 2600, NULL, NULL, NULL, NULL);
        INSERT INTO items (job_id, idx, key, value, status, attempts)
        VALUES ('01a20c00000000000000000000000a0a', 0, 'a0', '"zero"', 'completed', 1),
               ('01a20c00000000000000000000000a0a', 1, 'a1', '"one"', 'dead_lettered', 2),
               ('01a20c00000000000000000000000a0a', 2, 'a2', '"two"', 'running', 0),
               ('01a20c00000000000000000000000a0a', 3, 'a3', '"three"', 'pending', 0),
               ('01a20c00000000000000000000000b0b', 0, 'b0', '"b-zero"', 'completed', 1);
        INSERT INTO attempts (job_id, item_idx, number, agent, started_at, ended_at,
                              duration_us, outcome, exit_code, error, steps, stdout_tail,
                              stderr_tail)
        VALUES ('01a20c00000000000000000000000a0a', 0, 1, 'agent-1', 1100, 1110, 10000,
                'succeeded', 0, NULL,
                '[{"name":"command","skipped":false,"duration_us":9000,"exit_code":0}]', 'ok',
                ''),
               ('01a20c00000000000000000000000a0a', 1, 1, 'agent-2', 1100, 1120, 20000,
                'failed', 1, 'exit 1',
                '[{"name":"command","skipped":false,"duration_us":19000,"exit_code":1}]', '',
                'boom'),
               ('01a20c00000000000000000000000a0a', 1, 2, 'agent-2', 1130, 1140, 10000,
                'failed', 1, 'exit 1',
                '[{"name":"command","skipped":false,"duration_us":9000,"exit_code":1}]', '',
                'boom again'),
               ('01a20c00000000000000000000000a0a', 2, 1, 'agent-1', 1200, NULL, NULL, NULL,
                NULL, NULL, '[]', '', ''),
               ('01a20c00000000000000000000000b0b', 0, 1, 'agent-1', 2100, 2110, 10000,
                'succeeded', 0, NULL,
                '[{"name":"command","skipped":true,"duration_us":0,"exit_code":null}]', '', '');
        INSERT INTO events (job_id, at, kind, item_key, payload)
        VALUES ('01a20c00000000000000000000000a0a', 1001, 'job_started', NULL, '{"name":"a"}'),
               ('01a20c00000000000000000000000a0a', 1002, 'checkpoint', NULL,
                '{"phase":"setup","reason":"setup done"}'),
               ('01a20c00000000000000000000000a0a', 1100, 'attempt_started', 'a0',
                '{"attempt":1,"agent":"agent-1"}'),
               ('01a20c00000000000000000000000a0a', 1110, 'item_completed', 'a0',
                '{"attempt":1}'),
               ('01a20c00000000000000000000000b0b', 2001, 'job_started', NULL, '{"name":"b"}'),
               ('01a20c00000000000000000000000a0a', 1120, 'attempt_failed', 'a1',
                '{"attempt":1,"error":"exit 1","exit_code":1}'),
               ('01a20c00000000000000000000000a0a', 1130, 'attempt_started', 'a1',
                '{"attempt":2,"agent":"agent-2"}'),
               ('01a20c00000000000000000000000a0a', 1140, 'item_dead_lettered', 'a1',
                '{"attempts":2,"error":"exit 1","exit_code":1}'),
               ('01a20c00000000000000000000000b0b', 2110, 'item_completed', 'b0',
                '{"attempt":1}'),
               ('01a20c00000000000000000000000a0a', 1200, 'attempt_started', 'a2',
                '{"attempt":1,"agent":"agent-1"}'),
               ('01a20c00000000000000000000000b0b', 2600, 'job_finished', NULL,
                '{"status":"completed"}'),
               ('01a20c00000000000000000000000b0b', 2700, 'job_copied', NULL, '{}');
        DELETE FROM events WHERE kind = 'job_copied';
        INSERT INTO snapshots (job_id, at, payload)
        VALUES ('01a20c00000000000000000000000a0a', 1300, '{"progress":{"completed":1}}'),
               ('01a20c00000000000000000000000b0b', 2500, '{"progress":{"completed":1}}');
        INSERT INTO checkpoints (job_id, at, phase, reason, last_event_seq, completed,
                                 dead_lettered, skipped)
        VALUES ('01a20c00000000000000000000000a0a', 1002, 'setup', 'setup done', 2, 0, 0, 0),
               ('01a20c00000000000000000000000a0a', 1115, 'map', 'interval', 4, 1, 0, 0);
    "#;

    /// What [`OLD_RECORD`] must read as once a store of version 3 was upgraded, and that the
    /// upgraded job can be taken over and resumed, and recorded on, as any other.
    pub(super) fn an_old_record_reads_the_same_after_the_upgrade(store: &dyn Store) {
        use AttemptOutcome as O;
        use ItemStatus as S;
        let a: JobId = "01a20c00000000000000000000000a0a".parse().unwrap();
        let b: JobId = "01a20c00000000000000000000000b0b".parse().unwrap();
        assert_eq!(store.storage_problems().unwrap(), Vec::<String>::new());

        let jobs = store.jobs().unwrap();
        let ids: Vec<JobId> = jobs.iter().map(|j| j.id).collect();
        assert_eq!(ids, [b, a], "newest first");
        let job_a = store.job(a).unwrap();
        assert_eq!(
            (job_a.name.as_str(), job_a.status, job_a.phase),
            ("old-a", JobStatus::Running, Some(Phase::Map))
        );
        let c = &job_a.counts;
        assert_eq!(
            (c.completed, c.dead_lettered, c.running, c.pending),
            (1, 1, 1, 1)
        );
        assert_eq!(store.job(b).unwrap().counts.completed, 1);

        let items: Vec<(u64, String, String, ItemStatus, u32)> = store
            .items(a, None)
            .unwrap()
            .into_iter()
            .map(|i| (i.index, i.key, i.value, i.status, i.attempts))
            .collect();
        assert_eq!(
            items,
            [
                (0, "a0".into(), r#""zero""#.into(), S::Completed, 1),
                (1, "a1".into(), r#""one""#.into(), S::DeadLettered, 2),
                (2, "a2".into(), r#""two""#.into(), S::Running, 0),
                (3, "a3".into(), r#""three""#.into(), S::Pending, 0),
            ]
        );
        let attempts = store.attempts(a, None).unwrap();
        let seen: Vec<(&str, u32, Option<O>)> = attempts
            .iter()
            .map(|t| (t.item_key.as_str(), t.number, t.outcome))
            .collect();
        assert_eq!(
            seen,
            [
                ("a0", 1, Some(O::Succeeded)),
                ("a1", 1, Some(O::Failed)),
                ("a1", 2, Some(O::Failed)),
                ("a2", 1, None),
            ]
        );
        assert_eq!(attempts[2].stderr_tail, "boom again");
        assert_eq!(
            attempts[0].steps,
            [StepRecord {
                name: "command".into(),
                skipped: false,
                duration_us: 9_000,
                exit_code: Some(0),
            }]
        );
        assert!(store.attempts(b, None).unwrap()[0].steps[0].skipped);

        let events = store.events(a, 0, 100).unwrap();
        let seen: Vec<(i64, &str, Option<&str>)> = events
            .iter()
            .map(|e| (e.seq, e.kind.as_str(), e.item_key.as_deref()))
            .collect();
        assert_eq!(
            seen,
            [
                (1, "job_started", None),
                (2, "checkpoint", None),
                (3, "attempt_started", Some("a0")),
                (4, "item_completed", Some("a0")),
                (6, "attempt_failed", Some("a1")),
                (7, "attempt_started", Some("a1")),
                (8, "item_dead_lettered", Some("a1")),
                (10, "attempt_started", Some("a2")),
            ]
        );
        assert_eq!(events[5].payload["agent"], "agent-2");
        let seqs: Vec<i64> = store
            .events(b, 0, 100)
            .unwrap()
            .iter()
            .map(|e| e.seq)
            .collect();
        assert_eq!(seqs, [5, 9, 11]);
        let snapshots = store.snapshots(a, 0, 10).unwrap();
        assert_eq!(snapshots.len(), 1);
        assert_eq!(snapshots[0].payload["progress"]["completed"], 1);
        let checkpoints = store.checkpoints(a).unwrap();
        let seen: Vec<(i64, &str)> = checkpoints
            .iter()
            .map(|c| (c.id, c.reason.as_str()))
            .collect();
        assert_eq!(seen, [(1, "setup done"), (2, "interval")]);

        // Resuming: take over from the dead owner, requeue what was in flight, page in the rest.
        let owner = Owner {
            pid: Some(7),
            host: Some("host-new".into()),
            heartbeat_at: Some(3_000),
        };
        assert!(store.take_job(a, &Owner::of(&job_a), &owner).unwrap());
        assert_eq!(
            store.requeue_in_flight(a, 3_000).unwrap().interrupted,
            ["a2"]
        );
        let unfinished: Vec<(u64, u32)> = store
            .unfinished_items(a, None, 10)
            .unwrap()
            .iter()
            .map(|i| (i.index, i.last_number))
            .collect();
        assert_eq!(unfinished, [(2, 1), (3, 0)]);
        store
            .apply(&[
                started(a, 2, 2, 3_100),
                finished(a, 2, 2, 3_200, O::Succeeded, S::Completed),
                Write::Event {
                    job: a,
                    at: 3_200,
                    kind: "item_completed".into(),
                    item_key: Some("a2".into()),
                    payload: serde_json::json!({ "attempt": 2 }),
                },
            ])
            .unwrap();
        // Numbers go on from the highest ever issued (12, of the deleted event), not reused.
        let newest = store.recent_events(a, 1).unwrap();
        assert_eq!(newest[0].seq, 13);
        let attempt = store.attempts(a, Some("a2")).unwrap();
        assert_eq!(attempt.len(), 2);
        assert_eq!(attempt[1].steps, finished_steps());
        // Rewinding to the first checkpoint (seq 2) finds the completions at seqs 4 and 13.
        assert_eq!(store.rewind(a, 1, 3_300).unwrap(), ["a0", "a2"]);
        assert_eq!(store.job(a).unwrap().counts.pending, 3);
        store
            .apply(&[Write::Checkpoint {
                job: a,
                at: 3_400,
                phase: Some(Phase::Map),
                reason: "after".into(),
            }])
            .unwrap();
        assert_eq!(store.checkpoints(a).unwrap().last().unwrap().id, 3);

        // Deleting one job leaves the other whole.
        store.delete_job(b).unwrap();
        assert!(store.job(b).is_err());
        assert_eq!(store.items(a, None).unwrap().len(), 4);
        assert_eq!(store.storage_problems().unwrap(), Vec::<String>::new());
    }

    pub(super) fn job_contents_and_repair(store: &dyn Store) {
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
        let payload = serde_json::json!({ "actions": 3 });
        store.repair(id, &actions, 2_000, payload.clone()).unwrap();
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
        assert_eq!((last.kind.as_str(), &last.payload), ("repaired", &payload));

        // The same plan again no longer applies: nothing changes.
        let result = store.repair(id, &actions, 3_000, payload);
        assert!(
            matches!(&result, Err(StoreError::RepairConflict { job, .. }) if *job == id),
            "{result:?}"
        );
        assert_eq!(store.events(id, 0, 100).unwrap().len(), events.len());
        assert_eq!(store.job(id).unwrap().updated_at, 2_000);
    }
}

/// The suite on SQLite, one fresh store per check, and SQLite's file-level checks.
mod sqlite {
    use std::sync::Arc;

    use mmm_store::{
        self as store, DATABASE_FILE, EventReads, JobLog, JobReads, sqlite::SqliteStore,
    };
    use tempfile::TempDir;

    use super::*;

    /// A new store in a temp directory (deleted when the `TempDir` drops).
    fn fresh() -> (TempDir, Arc<dyn Store>) {
        let dir = tempfile::tempdir().unwrap();
        let store = store::open(dir.path().join(".mmm").to_str().unwrap(), true).unwrap();
        (dir, store)
    }

    macro_rules! on_a_fresh_store {
        ($($check:ident),+ $(,)?) => {
            $(
                #[test]
                fn $check() {
                    let (_dir, store) = fresh();
                    suite::$check(store.as_ref());
                }
            )+
        };
    }

    every_check!(on_a_fresh_store);

    #[test]
    fn the_write_ahead_log_is_folded_before_it_grows_past_a_mebibyte_or_so() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join(DATABASE_FILE);
        let store = store::open(db.to_str().unwrap(), true).unwrap();
        let job = new_job("log", 1_000);
        store.create_job(&job, &new_items(400)).unwrap();
        let wal = db.with_extension("db-wal");
        let mut largest = 0;
        // Each commit rewrites a handful of pages, as the runner's do: 800 of them log
        // several thousand pages in all.
        for i in 0..400u64 {
            let at = 2_000 + i as i64;
            store
                .apply(&[started(job.id, i, 1, at), event(job.id, at, "item_started")])
                .unwrap();
            store
                .apply(&[
                    finished(
                        job.id,
                        i,
                        1,
                        at,
                        AttemptOutcome::Succeeded,
                        ItemStatus::Completed,
                    ),
                    event(job.id, at, "item_finished"),
                ])
                .unwrap();
            largest = largest.max(std::fs::metadata(&wal).unwrap().len());
        }
        // A log frame: one page (SQLite's default 4 KiB) and its 24-byte header.
        let page = 4096 + 24;
        let limit = store::sqlite::WAL_AUTOCHECKPOINT_PAGES as u64;
        assert!(
            largest > limit * page / 2,
            "the test logs too little: {largest} bytes"
        );
        assert!(
            largest < 2 * limit * page,
            "the log grew to {largest} bytes, past twice its folding point"
        );
        assert_eq!(store.job(job.id).unwrap().counts.completed, 400);
    }

    #[test]
    fn second_connection_sees_commits() {
        let dir = tempfile::tempdir().unwrap();
        let location = dir.path().join("jobs.db");
        let location = location.to_str().unwrap();
        let writer = store::open(location, true).unwrap();
        let reader = store::open(location, false).unwrap();
        suite::second_connection_sees_commits(writer.as_ref(), reader.as_ref());
    }

    #[test]
    fn concurrent_claimers_never_share_an_item() {
        let dir = tempfile::tempdir().unwrap();
        let location = dir.path().join("jobs.db");
        let location = location.to_str().unwrap();
        let a = store::open(location, true).unwrap();
        let b = store::open(location, false).unwrap();
        suite::concurrent_claimers_never_share_an_item(a.as_ref(), b.as_ref());
    }

    /// A store left by a binary of schema version 3 is upgraded in place when opened.
    #[test]
    fn a_version_3_store_is_upgraded_with_its_record() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mmm.db");
        let raw = rusqlite::Connection::open(&path).unwrap();
        raw.pragma_update(None, "foreign_keys", "ON").unwrap();
        for sql in [
            include_str!("../src/migrations/0001_initial.sql"),
            include_str!("../src/migrations/0002_resume.sql"),
            include_str!("../src/migrations/0003_claims.sql"),
        ] {
            raw.execute_batch(sql).unwrap();
        }
        raw.pragma_update(None, "user_version", 3).unwrap();
        raw.execute_batch(suite::OLD_RECORD).unwrap();
        drop(raw);

        let store = SqliteStore::open(&path, false).unwrap();
        suite::an_old_record_reads_the_same_after_the_upgrade(&store);
        drop(store);
        let raw = rusqlite::Connection::open(&path).unwrap();
        let version: i64 = raw
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(version, store::sqlite::SCHEMA_VERSION);
        let job_ids: i64 = raw
            .query_row(
                "SELECT count(*) FROM pragma_table_info('items') WHERE name = 'job_id'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(job_ids, 0, "items refer to jobs by job_ref only");
    }

    /// A store with one job of `items` items, closed, so that the file is complete.
    fn closed_store(items: usize) -> (TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mmm.db");
        let store = SqliteStore::open(&path, true).unwrap();
        store
            .create_job(&new_job("closed", 1_000), &new_items(items))
            .unwrap();
        drop(store);
        (dir, path)
    }

    /// Opens and reads everything, returning the first error.
    fn open_and_read(path: &std::path::Path) -> Result<(), StoreError> {
        let store = SqliteStore::open(path, false)?;
        for job in store.jobs()? {
            store.items(job.id, None)?;
            store.attempts(job.id, None)?;
            store.events(job.id, 0, 100)?;
        }
        Ok(())
    }

    fn assert_names_file_and_check(error: &StoreError, path: &std::path::Path) {
        let message = error.to_string();
        assert!(
            message.contains(&path.display().to_string()),
            "message should name {}: {message}",
            path.display()
        );
        assert!(message.contains("mmm check"), "{message}");
    }

    #[test]
    fn locations_name_a_directory_or_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let in_dir = dir.path().join("state");
        store::open(in_dir.to_str().unwrap(), true).unwrap();
        assert!(in_dir.join(DATABASE_FILE).is_file());

        for name in ["a.db", "b.sqlite", "c.sqlite3", "nested/d.db"] {
            let file = dir.path().join(name);
            store::open(file.to_str().unwrap(), true).unwrap();
            assert!(file.is_file(), "{name}");
            // Reopening without create finds it.
            store::open(file.to_str().unwrap(), false).unwrap();
        }
    }

    #[test]
    fn a_missing_store_is_not_found_without_create() {
        let dir = tempfile::tempdir().unwrap();
        let location = dir.path().join(".mmm");
        match store::open(location.to_str().unwrap(), false) {
            Err(StoreError::NotFound { path }) => assert_eq!(path, location.join(DATABASE_FILE)),
            other => panic!("expected NotFound, got {:?}", other.map(|_| ())),
        }
        assert!(!location.exists(), "nothing is created");
    }

    #[test]
    fn other_urls_are_unsupported() {
        for url in ["sqlite://x.db", "mysql://u@h/db", "file:///x.db", ""] {
            match store::open(url, true) {
                Err(error @ StoreError::UnsupportedLocation { .. }) => {
                    assert!(error.to_string().contains("postgres://"), "{error}");
                }
                other => panic!(
                    "{url}: expected UnsupportedLocation, got {:?}",
                    other.map(|_| ())
                ),
            }
        }
    }

    #[test]
    fn a_garbage_file_is_refused_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mmm.db");
        std::fs::write(&path, "this is not a database, just text\n".repeat(200)).unwrap();
        let error = open_and_read(&path).unwrap_err();
        assert!(matches!(error, StoreError::Damaged { .. }), "{error:?}");
        assert_names_file_and_check(&error, &path);

        // Also when it is given as any existing file, e.g. by mistake.
        let notes = dir.path().join("notes.txt");
        std::fs::write(&notes, "hello".repeat(1_000)).unwrap();
        let error = store::open(notes.to_str().unwrap(), false)
            .err()
            .expect("a text file is not a store");
        assert_names_file_and_check(&error, &notes);
    }

    #[test]
    fn a_truncated_file_is_refused_with_its_path() {
        for keep in [50, 4_096 + 100, 40_000] {
            let (_dir, path) = closed_store(5_000);
            let len = std::fs::metadata(&path).unwrap().len();
            assert!(
                len > 4 * keep,
                "the store should be larger than what is kept"
            );
            let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
            file.set_len(keep).unwrap();
            drop(file);
            let error = open_and_read(&path).unwrap_err();
            assert!(
                matches!(error, StoreError::Damaged { .. }),
                "{keep}: {error:?}"
            );
            assert_names_file_and_check(&error, &path);
        }
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let (_dir, path) = closed_store(1);
        let raw = rusqlite::Connection::open(&path).unwrap();
        raw.pragma_update(None, "user_version", 99).unwrap();
        drop(raw);
        match SqliteStore::open(&path, false) {
            Err(error @ StoreError::SchemaTooNew { .. }) => {
                let message = error.to_string();
                assert!(message.contains(&path.display().to_string()), "{message}");
                assert!(message.contains("99"), "{message}");
                let known = store::sqlite::SCHEMA_VERSION.to_string();
                assert!(message.contains(&known), "{message}");
            }
            other => panic!("expected SchemaTooNew, got {other:?}"),
        }
    }

    #[test]
    fn another_programs_database_is_refused_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("other.db");
        let raw = rusqlite::Connection::open(&path).unwrap();
        raw.execute_batch("CREATE TABLE notes (text TEXT)").unwrap();
        drop(raw);
        let error = SqliteStore::open(&path, true).unwrap_err();
        assert!(
            matches!(error, StoreError::ForeignDatabase { .. }),
            "{error:?}"
        );
        let raw = rusqlite::Connection::open(&path).unwrap();
        let tables: i64 = raw
            .query_row("SELECT COUNT(*) FROM sqlite_schema", [], |r| r.get(0))
            .unwrap();
        assert_eq!(tables, 1, "no mmm tables were added");
    }

    #[test]
    fn reopening_keeps_the_record_and_the_schema() {
        let (_dir, path) = closed_store(10);
        let store = SqliteStore::open(&path, false).unwrap();
        let jobs = store.jobs().unwrap();
        assert_eq!(jobs.len(), 1);
        assert_eq!(jobs[0].counts.pending, 10);
        drop(store);
        let raw = rusqlite::Connection::open(&path).unwrap();
        let version: i64 = raw
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(version, store::sqlite::SCHEMA_VERSION);
        let mode: String = raw
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
    }

    #[test]
    fn an_unknown_status_is_an_error_not_a_panic() {
        let (_dir, path) = closed_store(3);
        let raw = rusqlite::Connection::open(&path).unwrap();
        raw.execute("UPDATE items SET status = 'exploded' WHERE idx = 1", [])
            .unwrap();
        raw.execute("UPDATE jobs SET status = 'mystery'", [])
            .unwrap();
        drop(raw);
        let store = SqliteStore::open(&path, false).unwrap();
        let error = store.jobs().unwrap_err();
        assert!(
            matches!(error, StoreError::InvalidRecord { .. }),
            "{error:?}"
        );
        assert_names_file_and_check(&error, &path);
    }
}

/// The suite on PostgreSQL, one fresh schema per check, and PostgreSQL's own checks.
mod postgres {
    use std::sync::Arc;

    use mmm_store::{self as store, JobReads, postgres::PostgresStore};

    use super::*;

    /// The database the tests use: `MMM_TEST_POSTGRES_URL`, or the local server.
    fn base_url() -> String {
        std::env::var("MMM_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string())
    }

    /// True (after saying so on stderr) when `MMM_SKIP_POSTGRES=1` asks to skip these tests.
    fn skipped(test: &str) -> bool {
        let skip = std::env::var("MMM_SKIP_POSTGRES").is_ok_and(|v| v == "1");
        if skip {
            eprintln!(
                "SKIPPED {test}: MMM_SKIP_POSTGRES=1, so this PostgreSQL conformance test did \
                 not run"
            );
        }
        skip
    }

    /// Runs SQL (one statement or several) on the test database directly, behind mmm's back.
    fn admin(sql: &str) {
        with_client(|client| async move {
            client
                .batch_execute(sql)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
        });
    }

    /// The rows of one query on the test database.
    fn admin_query(sql: &str) -> Vec<tokio_postgres::Row> {
        with_client(|client| async move {
            client
                .query(sql, &[])
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"))
        })
    }

    /// Runs `work` with a client of its own on a runtime of its own.
    fn with_client<T, F: std::future::Future<Output = T>>(
        work: impl FnOnce(tokio_postgres::Client) -> F,
    ) -> T {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let (client, connection) = tokio_postgres::connect(&base_url(), tokio_postgres::NoTls)
                .await
                .unwrap_or_else(|e| panic!("{}", unreachable_message(&e)));
            tokio::spawn(connection);
            work(client).await
        })
    }

    fn unreachable_message(error: &dyn std::fmt::Display) -> String {
        format!(
            "PostgreSQL is not reachable at {} ({error}). Start it (e.g. `pg_ctlcluster \
             --skip-systemctl-redirect 15 main start`), point MMM_TEST_POSTGRES_URL at a \
             server, or set MMM_SKIP_POSTGRES=1 to skip the PostgreSQL tests",
            base_url()
        )
    }

    /// A new, unique schema in the test database, dropped (with everything in it) on drop.
    struct Schema {
        name: String,
    }

    impl Schema {
        fn new() -> Schema {
            Schema {
                name: format!("mmm_test_{}", uuid::Uuid::now_v7().simple()),
            }
        }

        /// The store URL of this schema.
        fn url(&self) -> String {
            let base = base_url();
            let separator = if base.contains('?') { '&' } else { '?' };
            format!("{base}{separator}schema={}", self.name)
        }

        /// Opens (with `create`) the store in this schema, failing loudly when the server is
        /// unreachable.
        fn open(&self) -> Arc<dyn Store> {
            match store::open(&self.url(), true) {
                Ok(store) => store,
                Err(error @ StoreError::Connect { .. }) => {
                    panic!("{}", unreachable_message(&error))
                }
                Err(error) => panic!("could not open {}: {error:?}", self.url()),
            }
        }
    }

    impl Drop for Schema {
        fn drop(&mut self) {
            admin(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name));
        }
    }

    macro_rules! on_a_fresh_store {
        ($($check:ident),+ $(,)?) => {
            $(
                #[test]
                fn $check() {
                    if skipped(stringify!($check)) {
                        return;
                    }
                    let schema = Schema::new();
                    let store = schema.open();
                    suite::$check(store.as_ref());
                    drop(store);
                }
            )+
        };
    }

    every_check!(on_a_fresh_store);

    /// A schema left by a binary of schema version 3 is upgraded in place when opened.
    #[test]
    fn a_version_3_store_is_upgraded_with_its_record() {
        if skipped("a_version_3_store_is_upgraded_with_its_record") {
            return;
        }
        let schema = Schema::new();
        admin(&format!(
            "CREATE SCHEMA {name}; SET search_path TO {name}; {}; {}; {};
             UPDATE mmm_store SET version = 3; {}",
            include_str!("../src/migrations/postgres/0001_initial.sql"),
            include_str!("../src/migrations/postgres/0002_resume.sql"),
            include_str!("../src/migrations/postgres/0003_claims.sql"),
            suite::OLD_RECORD,
            name = schema.name,
        ));
        let store = store::open(&schema.url(), false).unwrap();
        suite::an_old_record_reads_the_same_after_the_upgrade(store.as_ref());
        drop(store);
        let rows = admin_query(&format!(
            "SELECT (SELECT version FROM {name}.mmm_store),
                    (SELECT count(*) FROM information_schema.columns
                     WHERE table_schema = '{name}' AND column_name = 'job_id')",
            name = schema.name
        ));
        let (version, job_ids): (i64, i64) = (rows[0].get(0), rows[0].get(1));
        assert_eq!(version, store::postgres::SCHEMA_VERSION);
        assert_eq!(job_ids, 0, "the tables refer to jobs by job_ref only");
    }

    #[test]
    fn second_connection_sees_commits() {
        if skipped("second_connection_sees_commits") {
            return;
        }
        let schema = Schema::new();
        let writer = schema.open();
        let reader = store::open(&schema.url(), false).unwrap();
        suite::second_connection_sees_commits(writer.as_ref(), reader.as_ref());
    }

    /// Issue 8: a reader in another connection wakes on the NOTIFY of a committed batch with
    /// events of its job, long before its timeout; events of other jobs do not wake it.
    #[test]
    fn readers_wake_on_notify() {
        if skipped("readers_wake_on_notify") {
            return;
        }
        let schema = Schema::new();
        let writer = schema.open();
        let reader = store::open(&schema.url(), false).unwrap();
        let (job, other) = (new_job("watched", 1_000), new_job("other", 1_001));
        writer.create_job(&job, &[]).unwrap();
        writer.create_job(&other, &[]).unwrap();
        // The first wait opens the listening connection.
        reader.wait_for_events(job.id, std::time::Duration::from_millis(10));
        let timeout = std::time::Duration::from_secs(20);
        let waiting = {
            let reader = reader.clone();
            std::thread::spawn(move || {
                let started = std::time::Instant::now();
                reader.wait_for_events(job.id, timeout);
                started.elapsed()
            })
        };
        writer.apply(&[event(other.id, 1, "noise")]).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(200));
        assert!(
            !waiting.is_finished(),
            "another job's event woke the reader"
        );
        writer.apply(&[event(job.id, 2, "wake")]).unwrap();
        let waited = waiting.join().unwrap();
        assert!(
            waited < timeout / 2,
            "woke after {waited:?}, not on the NOTIFY"
        );
    }

    #[test]
    fn concurrent_claimers_never_share_an_item() {
        if skipped("concurrent_claimers_never_share_an_item") {
            return;
        }
        let schema = Schema::new();
        let a = schema.open();
        let b = store::open(&schema.url(), false).unwrap();
        suite::concurrent_claimers_never_share_an_item(a.as_ref(), b.as_ref());
    }

    #[test]
    fn a_missing_schema_is_not_found_without_create() {
        if skipped("a_missing_schema_is_not_found_without_create") {
            return;
        }
        let schema = Schema::new();
        match store::open(&schema.url(), false) {
            Err(error @ StoreError::NotFound { .. }) => {
                assert!(error.to_string().contains(&schema.name), "{error}");
            }
            other => panic!("expected NotFound, got {:?}", other.map(|_| ())),
        }
        let found = admin_query(&format!(
            "SELECT 1 FROM pg_namespace WHERE nspname = '{}'",
            schema.name
        ));
        assert!(found.is_empty(), "nothing is created");
    }

    #[test]
    fn concurrent_opens_create_the_schema_once() {
        if skipped("concurrent_opens_create_the_schema_once") {
            return;
        }
        let schema = Schema::new();
        let url = schema.url();
        let stores: Vec<Arc<dyn Store>> = std::thread::scope(|scope| {
            let openers: Vec<_> = (0..4)
                .map(|_| scope.spawn(|| store::open(&url, true).unwrap()))
                .collect();
            openers.into_iter().map(|t| t.join().unwrap()).collect()
        });
        let job = new_job("shared", 1_000);
        stores[0].create_job(&job, &new_items(2)).unwrap();
        assert_eq!(stores[3].job(job.id).unwrap().counts.pending, 2);
    }

    #[test]
    fn reopening_keeps_the_record_and_the_schema() {
        if skipped("reopening_keeps_the_record_and_the_schema") {
            return;
        }
        let schema = Schema::new();
        let store = schema.open();
        store
            .create_job(&new_job("kept", 1_000), &new_items(10))
            .unwrap();
        drop(store);
        let store = PostgresStore::open(&schema.url(), false).unwrap();
        assert_eq!(store.schema(), schema.name);
        assert_eq!(store.jobs().unwrap()[0].counts.pending, 10);
        let rows = admin_query(&format!("SELECT version FROM {}.mmm_store", schema.name));
        let version: i64 = rows[0].get(0);
        assert_eq!(version, store::postgres::SCHEMA_VERSION);
    }

    #[test]
    fn a_newer_schema_is_refused() {
        if skipped("a_newer_schema_is_refused") {
            return;
        }
        let schema = Schema::new();
        drop(schema.open());
        admin(&format!(
            "UPDATE {}.mmm_store SET version = 99",
            schema.name
        ));
        match PostgresStore::open(&schema.url(), true) {
            Err(error @ StoreError::SchemaTooNew { .. }) => {
                let message = error.to_string();
                assert!(message.contains(&schema.name), "{message}");
                assert!(message.contains("99"), "{message}");
                let known = store::postgres::SCHEMA_VERSION.to_string();
                assert!(message.contains(&known), "{message}");
            }
            other => panic!("expected SchemaTooNew, got {other:?}"),
        }
    }

    #[test]
    fn another_programs_schema_is_refused_untouched() {
        if skipped("another_programs_schema_is_refused_untouched") {
            return;
        }
        let schema = Schema::new();
        admin(&format!(
            "CREATE SCHEMA {0}; CREATE TABLE {0}.notes (text TEXT)",
            schema.name
        ));
        let error = PostgresStore::open(&schema.url(), true).unwrap_err();
        assert!(
            matches!(error, StoreError::ForeignSchema { .. }),
            "{error:?}"
        );
        assert!(error.to_string().contains("?schema=NAME"), "{error}");
        let tables = admin_query(&format!(
            "SELECT tablename FROM pg_tables WHERE schemaname = '{}'",
            schema.name
        ));
        assert_eq!(tables.len(), 1, "no mmm tables were added");
    }

    #[test]
    fn an_unknown_status_is_an_error_not_a_panic() {
        if skipped("an_unknown_status_is_an_error_not_a_panic") {
            return;
        }
        let schema = Schema::new();
        let store = schema.open();
        let job = new_job("odd", 1_000);
        store.create_job(&job, &new_items(3)).unwrap();
        admin(&format!(
            "UPDATE {0}.items SET status = 'exploded' WHERE idx = 1; \
             UPDATE {0}.jobs SET status = 'mystery'",
            schema.name
        ));
        for error in [
            store.jobs().unwrap_err(),
            store.items(job.id, None).unwrap_err(),
        ] {
            assert!(
                matches!(error, StoreError::InvalidRecord { .. }),
                "{error:?}"
            );
            assert!(error.to_string().contains("mmm check"), "{error}");
        }
    }

    #[test]
    fn storage_problems_find_broken_references() {
        if skipped("storage_problems_find_broken_references") {
            return;
        }
        let schema = Schema::new();
        let store = schema.open();
        let job = new_job("orphans", 1_000);
        store.create_job(&job, &new_items(3)).unwrap();
        assert!(store.storage_problems().unwrap().is_empty());
        // With its triggers off, a table's foreign keys are not enforced (nor cascaded).
        admin(&format!(
            "ALTER TABLE {0}.jobs DISABLE TRIGGER ALL; \
             ALTER TABLE {0}.items DISABLE TRIGGER ALL; \
             DELETE FROM {0}.jobs",
            schema.name
        ));
        let problems = store.storage_problems().unwrap();
        assert!(
            problems
                .iter()
                .any(|p| p == "3 rows of items refer to a missing row of jobs"),
            "{problems:?}"
        );
        assert!(
            problems.iter().any(|p| p.contains("triggers are disabled")),
            "{problems:?}"
        );
    }

    #[test]
    fn an_unreachable_server_is_a_clear_error() {
        // Port 9 (discard) has no PostgreSQL: the connection is refused at once.
        let url = "postgres://postgres:secret@127.0.0.1:9/test?schema=nowhere";
        let error = store::open(url, true).err().expect("nothing listens there");
        assert!(matches!(error, StoreError::Connect { .. }), "{error:?}");
        let message = error.to_string();
        assert!(message.contains("127.0.0.1:9"), "{message}");
        assert!(message.contains("pg_isready"), "{message}");
        assert!(
            !message.contains("secret"),
            "the password is hidden: {message}"
        );
    }
}
