//! `Summaries`: the jobs of a period by creation time and name glob, kept summaries that are
//! current only at the job's `updated_at`, and `stats::compute` over them.

use super::*;
use mmm_store::PeriodQuery;
use mmm_store::stats::{self, StatsQuery};

fn period(store: &dyn Store, from: i64, to: i64, glob: Option<&str>) -> Vec<(String, bool)> {
    store
        .period_jobs(&PeriodQuery {
            from,
            to,
            name_glob: glob.map(str::to_string),
        })
        .unwrap()
        .into_iter()
        .map(|job| (job.name, job.summary.is_some()))
        .collect()
}

pub(crate) fn period_jobs_and_kept_summaries(store: &dyn Store) {
    let mut ids = Vec::new();
    for (name, at) in [
        ("nightly", 1_000),
        ("weekly", 3_000),
        ("nightly", 5_000),
        ("other", 9_000),
    ] {
        let job = new_job(name, at);
        store.create_job(&job, &new_items(2)).unwrap();
        ids.push(job.id);
    }
    assert_eq!(
        period(store, 1_000, 9_000, None),
        vec![
            ("nightly".to_string(), false),
            ("weekly".to_string(), false),
            ("nightly".to_string(), false)
        ],
        "created in [from, to), oldest first"
    );
    assert_eq!(period(store, 1_000, 9_001, Some("night*")).len(), 2);
    assert_eq!(period(store, 1_001, 5_000, None).len(), 1);

    let updated_at = store.job(ids[0]).unwrap().updated_at;
    store
        .keep_summary(ids[0], updated_at, r#"{"kept":1}"#)
        .unwrap();
    store
        .keep_summary(ids[0], updated_at, r#"{"kept":2}"#)
        .unwrap();
    let jobs = store
        .period_jobs(&PeriodQuery {
            from: 0,
            to: 2_000,
            name_glob: None,
        })
        .unwrap();
    assert_eq!(jobs[0].summary.as_deref(), Some(r#"{"kept":2}"#));
    // A change to the job makes its summary out of date.
    set_status(store, ids[0], JobStatus::Running, updated_at + 10);
    assert_eq!(
        period(store, 0, 2_000, None),
        vec![("nightly".to_string(), false)]
    );
}

pub(crate) fn stats_add_up_the_jobs_of_a_period(store: &dyn Store) {
    let job = new_job("nightly", 1_000);
    store.create_job(&job, &new_items(3)).unwrap();
    set_status(store, job.id, JobStatus::Running, 1_100);
    finish(
        store,
        job.id,
        (0, 1, 1_200),
        AttemptOutcome::Succeeded,
        ItemStatus::Completed,
    );
    finish(
        store,
        job.id,
        (1, 1, 1_300),
        AttemptOutcome::Failed,
        ItemStatus::Failed,
    );
    finish(
        store,
        job.id,
        (1, 2, 1_400),
        AttemptOutcome::Failed,
        ItemStatus::DeadLettered,
    );
    finish(
        store,
        job.id,
        (2, 1, 1_500),
        AttemptOutcome::Succeeded,
        ItemStatus::Completed,
    );
    set_status(store, job.id, JobStatus::CompletedWithFailures, 2_000);
    let running = new_job("nightly", 1_500);
    store.create_job(&running, &new_items(1)).unwrap();
    set_status(store, running.id, JobStatus::Running, 1_600);

    let query = StatsQuery {
        from: 1_000,
        to: 2_000,
        name_glob: None,
    };
    let computed = stats::compute(store, &query, 3_000).unwrap();
    assert_eq!(computed.previous_from, 0);
    let [nightly] = computed.names.as_slice() else {
        panic!("one name: {computed:?}")
    };
    assert_eq!(nightly.runs, 2);
    assert_eq!(nightly.finished, 1);
    assert_eq!(nightly.success_rate, Some(0.0));
    assert_eq!(nightly.by_status.get("running"), Some(&1));
    assert_eq!(nightly.items.total, 4);
    assert_eq!(nightly.items.completed, 2);
    assert_eq!(nightly.items.dead_lettered, 1);
    assert_eq!(nightly.items.attempts, 4);
    assert_eq!(nightly.items.failed_attempts, 2);
    assert_eq!(nightly.items.retries, 1);
    let item = nightly.item_duration.unwrap();
    assert_eq!(item.count, 3, "completed and dead-lettered items");
    // The dead-lettered item's two attempts of 1.5 ms each are its 3 ms.
    assert!((item.p99_ms - 3.0).abs() < 0.02, "{item:?}");
    let resize = &nightly.steps[0];
    assert_eq!(
        (resize.name.as_str(), resize.ran, resize.failed),
        ("resize", 4, 2)
    );
    assert_eq!((resize.retries, resize.dead_lettered), (1, 1));
    assert_eq!(nightly.steps[1].skip_rate, Some(1.0));
    // The finished job's summary is kept; the running one's is not.
    assert_eq!(
        period(store, 1_000, 2_000, None),
        vec![
            ("nightly".to_string(), true),
            ("nightly".to_string(), false)
        ]
    );
    // Read again from the kept summary: the same figures.
    assert_eq!(stats::compute(store, &query, 3_000).unwrap(), computed);
}
