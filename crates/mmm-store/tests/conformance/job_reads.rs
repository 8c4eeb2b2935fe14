//! Reads of a job ([`mmm_store::JobReads`]): unknown jobs, id prefixes, the list of jobs, and a
//! page of a large job's items.

use super::*;

pub(crate) fn unknown_jobs_are_not_found(store: &dyn Store) {
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

pub(crate) fn items_page_reads_a_window_with_last_attempts(store: &dyn Store) {
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

pub(crate) fn resolve_job_by_prefix(store: &dyn Store) {
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

pub(crate) fn jobs_are_listed_newest_first(store: &dyn Store) {
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

/// Issue 21: a filtered page of jobs, newest first; paging with the cursor gives every job
/// once, even while new jobs are created between pages.
pub(crate) fn jobs_are_paged_and_filtered(store: &dyn Store) {
    let mut ids = Vec::new();
    for (n, name) in ["nightly-a", "nightly-b", "eval.1", "nightly-c", "eval-2"]
        .iter()
        .enumerate()
    {
        let job = new_job(name, 1_000 * (n as i64 + 1));
        store.create_job(&job, &new_items(n + 1)).unwrap();
        ids.push(job.id);
        // UUIDv7 ids order by millisecond.
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    set_status(store, ids[0], JobStatus::Running, 1_500);
    set_status(store, ids[0], JobStatus::Completed, 2_000);
    set_status(store, ids[1], JobStatus::Running, 2_500);
    set_status(store, ids[2], JobStatus::Running, 3_500);
    set_status(store, ids[2], JobStatus::Failed, 9_000);
    let listed = |query: &JobQuery| -> Vec<JobId> {
        store
            .jobs_matching(query)
            .unwrap()
            .iter()
            .map(|j| j.id)
            .collect()
    };
    let newest_first: Vec<JobId> = ids.iter().rev().copied().collect();
    assert_eq!(listed(&JobQuery::default()), newest_first);
    let page = store
        .jobs_matching(&JobQuery {
            limit: Some(2),
            ..JobQuery::default()
        })
        .unwrap();
    assert_eq!(page.len(), 2);
    assert_eq!(page[1].counts.pending, 4, "a page's jobs have their counts");

    let by_name = |glob: &str| {
        listed(&JobQuery {
            name_glob: Some(glob.into()),
            ..JobQuery::default()
        })
    };
    assert_eq!(by_name("nightly-*"), [ids[3], ids[1], ids[0]]);
    assert_eq!(by_name("eval?[0-9]"), [ids[4], ids[2]]);
    assert_eq!(by_name("eval.?"), [ids[2]], "`.` is itself");
    assert_eq!(by_name("nightly-[!a]"), [ids[3], ids[1]]);
    assert!(by_name("NIGHTLY-*").is_empty(), "case-sensitive");
    let exactly = |name: &str| {
        listed(&JobQuery {
            name: Some(name.into()),
            ..JobQuery::default()
        })
    };
    assert_eq!(exactly("eval.1"), [ids[2]]);
    assert!(exactly("eval*").is_empty(), "no wildcard in an exact name");

    let statuses = listed(&JobQuery {
        statuses: vec![JobStatus::Running, JobStatus::Failed],
        ..JobQuery::default()
    });
    assert_eq!(statuses, [ids[2], ids[1]]);
    assert_eq!(
        listed(&JobQuery {
            created_since: Some(3_000),
            ..JobQuery::default()
        }),
        [ids[4], ids[3], ids[2]]
    );
    // Running, or changed since 8,000: the running job and the one that failed at 9,000.
    assert_eq!(
        listed(&JobQuery {
            active_since: Some(8_000),
            ..JobQuery::default()
        }),
        [ids[2], ids[1]]
    );

    // Paging by cursor while new jobs arrive: every job of the first listing exactly once.
    let mut seen = Vec::new();
    let mut before = None;
    loop {
        let page = listed(&JobQuery {
            before,
            limit: Some(2),
            ..JobQuery::default()
        });
        let newer = new_job("arrived-while-paging", 50_000);
        store.create_job(&newer, &new_items(1)).unwrap();
        let Some(last) = page.last() else { break };
        before = Some(*last);
        seen.extend(page);
    }
    assert_eq!(seen, newest_first);
}

/// Issue 21: jobs counted by name and status with their running time, in one read.
pub(crate) fn jobs_are_totalled_by_name_and_status(store: &dyn Store) {
    assert!(store.job_totals(&[1_000]).unwrap().is_empty());
    let mut ids = Vec::new();
    for name in ["nightly", "nightly", "nightly", "eval"] {
        let job = new_job(name, 1_000);
        store.create_job(&job, &new_items(1)).unwrap();
        ids.push(job.id);
    }
    // Ran for 500, 2,000 and 8,000 ms (as their last heartbeats recorded).
    for (id, ran) in ids.iter().zip([500, 2_000, 8_000]) {
        set_status(store, *id, JobStatus::Running, 1_000);
        store
            .apply(&[Write::Heartbeat {
                job: *id,
                at: 1_000 + ran,
                duration_ms: ran,
            }])
            .unwrap();
        set_status(store, *id, JobStatus::Completed, 1_000 + ran);
    }
    let totals = store.job_totals(&[1_000, 5_000]).unwrap();
    let durations: Vec<i64> = ids[..3]
        .iter()
        .map(|id| store.job(*id).unwrap().duration_ms)
        .collect();
    assert_eq!(durations, [500, 2_000, 8_000]);
    assert_eq!(
        totals,
        [
            JobTotals {
                name: "eval".into(),
                status: JobStatus::Pending,
                jobs: 1,
                duration_ms: 0,
                at_most: vec![1, 1],
            },
            JobTotals {
                name: "nightly".into(),
                status: JobStatus::Completed,
                jobs: 3,
                duration_ms: 10_500,
                at_most: vec![1, 2],
            },
        ]
    );
}

/// An attempt of `duration_us` on item `index`, ended with `outcome`, the item left `status`.
fn attempt(
    store: &dyn Store,
    job: JobId,
    (index, number, duration_us): (u64, u32, u64),
    outcome: AttemptOutcome,
    status: ItemStatus,
) {
    let mut end = finished(job, index, number, 2_000, outcome, status);
    if let Write::AttemptFinished { duration_us: d, .. } = &mut end {
        *d = duration_us;
    }
    store
        .apply(&[started(job, index, number, 1_000), end])
        .unwrap();
}

/// The totals of `name`, if it has any.
fn totals_of(store: &dyn Store, name: &str) -> Option<NameItemTotals> {
    store
        .name_item_totals()
        .unwrap()
        .into_iter()
        .find(|t| t.name == name)
}

/// Issue 21: the items of jobs whose run ended, totalled by name as each run ends (a job
/// that ends again replaces its figures), and taken off when a job is deleted.
pub(crate) fn items_are_totalled_by_name_as_runs_end(store: &dyn Store) {
    use AttemptOutcome as O;
    use ItemStatus as S;
    assert!(store.name_item_totals().unwrap().is_empty());
    let a = new_job("nightly", 1_000);
    let b = new_job("nightly", 1_000);
    let c = new_job("eval", 1_000);
    store.create_job(&a, &new_items(3)).unwrap();
    store.create_job(&b, &new_items(1)).unwrap();
    store.create_job(&c, &new_items(1)).unwrap();
    for job in [a.id, b.id, c.id] {
        set_status(store, job, JobStatus::Running, 1_000);
    }
    // a: item 0 failed once (2 ms) then succeeded (3 ms): 5 ms; item 1 dead-lettered after
    // 20 ms; item 2 never ran. b: its item completed in 100 ms. c runs on: not counted.
    attempt(store, a.id, (0, 1, 2_000), O::Failed, S::Failed);
    attempt(store, a.id, (0, 2, 3_000), O::Succeeded, S::Completed);
    attempt(store, a.id, (1, 1, 20_000), O::Failed, S::DeadLettered);
    attempt(store, b.id, (0, 1, 100_000), O::Succeeded, S::Completed);
    attempt(store, c.id, (0, 1, 1_000), O::Succeeded, S::Completed);
    assert!(
        store.name_item_totals().unwrap().is_empty(),
        "nothing ended yet"
    );
    set_status(store, a.id, JobStatus::CompletedWithFailures, 3_000);
    // An interrupted run is not counted (a Ctrl-C does not wait for a look at every item).
    set_status(store, b.id, JobStatus::Interrupted, 2_500);
    assert_eq!(totals_of(store, "nightly").map(|t| t.jobs), Some(1));
    set_status(store, b.id, JobStatus::Failed, 3_000);
    let expected = NameItemTotals {
        name: "nightly".into(),
        jobs: 2,
        items: ItemCounts {
            pending: 1,
            completed: 2,
            dead_lettered: 1,
            ..ItemCounts::default()
        },
        timed: 3,
        duration_us: 125_000,
        // At 5, 10, 25, 50, 100, 250 ms, ... 3600 s.
        at_most: [1, 1, 2, 2, 3].into_iter().chain([3; 11]).collect(),
    };
    assert_eq!(
        store.name_item_totals().unwrap(),
        std::slice::from_ref(&expected)
    );

    // Ending again counts the job once.
    set_status(store, a.id, JobStatus::CompletedWithFailures, 3_100);
    assert_eq!(totals_of(store, "nightly"), Some(expected.clone()));

    // b resumed: its second run's end replaces its figures.
    set_status(store, b.id, JobStatus::Running, 4_000);
    store
        .add_items(
            b.id,
            &[NewItem {
                key: "late".into(),
                value: "1".into(),
            }],
        )
        .unwrap();
    attempt(store, b.id, (1, 1, 40_000_000), O::Succeeded, S::Completed);
    set_status(store, b.id, JobStatus::Completed, 5_000);
    let mut resumed = expected.clone();
    resumed.items.completed += 1;
    resumed.timed += 1;
    resumed.duration_us += 40_000_000;
    for (at_most, le) in resumed.at_most.iter_mut().zip(BUCKET_BOUNDS_SECONDS) {
        *at_most += u64::from(le >= 40.0);
    }
    assert_eq!(totals_of(store, "nightly"), Some(resumed.clone()));

    // A copy of a (dumped, deleted, imported again) counts as a did.
    let dump = mmm_store::copy::dump_job(store, a.id).unwrap();
    store.delete_job(a.id).unwrap();
    let only_b = totals_of(store, "nightly").unwrap();
    assert_eq!(
        (only_b.jobs, only_b.items.completed, only_b.duration_us),
        (1, 2, 40_100_000)
    );
    store.import_job(&dump).unwrap();
    assert_eq!(totals_of(store, "nightly"), Some(resumed));

    // c ends; deleting every job of a name drops its row.
    set_status(store, c.id, JobStatus::Cancelled, 6_000);
    assert_eq!(totals_of(store, "eval").map(|t| t.timed), Some(1));
    store.delete_job(a.id).unwrap();
    store.delete_job(b.id).unwrap();
    let names: Vec<String> = store
        .name_item_totals()
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(names, ["eval"]);

    // Items moved out of the DLQ of an ended job move in its totals, whether or not its status
    // changes.
    let d = new_job("dlq", 1_000);
    store.create_job(&d, &new_items(2)).unwrap();
    set_status(store, d.id, JobStatus::Running, 1_000);
    attempt(store, d.id, (0, 1, 1_000), O::Failed, S::DeadLettered);
    attempt(store, d.id, (1, 1, 1_000), O::Failed, S::DeadLettered);
    set_status(store, d.id, JobStatus::CompletedWithFailures, 2_000);
    let figures = |store: &dyn Store| {
        let t = totals_of(store, "dlq").unwrap();
        (
            t.items.dead_lettered,
            t.items.skipped,
            t.items.pending,
            t.timed,
        )
    };
    assert_eq!(figures(store), (2, 0, 0, 2));
    store
        .purge_dead_lettered(d.id, Some(&["item-0".to_string()]), 3_000)
        .unwrap();
    assert_eq!(
        store.job(d.id).unwrap().status,
        JobStatus::CompletedWithFailures
    );
    assert_eq!(figures(store), (1, 1, 0, 1));
    store.retry_dead_lettered(d.id, None, 4_000).unwrap();
    assert_eq!(store.job(d.id).unwrap().status, JobStatus::Interrupted);
    assert_eq!(figures(store), (0, 1, 1, 0));
}
