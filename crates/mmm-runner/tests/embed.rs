//! The embedding API (`mmm_runner::embed`) on a real SQLite store: what it records, what it
//! refuses, and a job dropped without `finish`.

use mmm_core::job::{ItemStatus, JobStatus};
use mmm_runner::embed::{EmbedError, ItemOutcome, Job, JobOptions};
use mmm_store::events::EventFilter;

fn store(dir: &tempfile::TempDir) -> std::sync::Arc<dyn mmm_store::Store> {
    mmm_store::open(dir.path().join(".mmm").to_str().unwrap(), true).unwrap()
}

#[test]
fn items_arrive_while_the_job_runs_and_are_recorded_as_reported() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir);
    let job = Job::start(store.clone(), JobOptions::new("queue").agents(2)).unwrap();
    let id = job.id();
    assert!(job.counts().input_open, "the total is not known yet");
    job.add_items(["a", "b", "c"]).unwrap();
    assert!(matches!(
        job.add_items(["d", "a"]),
        Err(EmbedError::DuplicateItem(k)) if k == "a"
    ));
    job.add_items(["d"]).unwrap();
    job.input_complete();
    assert!(matches!(job.add_items(["e"]), Err(EmbedError::InputClosed)));
    assert_eq!(job.counts().total, 4);

    assert!(matches!(
        job.start_item(2, "a"),
        Err(EmbedError::UnknownAgent {
            agent: 2,
            agents: 2
        })
    ));
    assert!(matches!(
        job.start_item(0, "zz"),
        Err(EmbedError::UnknownItem(_))
    ));
    let a = job.start_item(0, "a").unwrap();
    assert!(matches!(
        job.start_item(1, "a"),
        Err(EmbedError::NotPending(_))
    ));
    job.finish_item(a, ItemOutcome::Succeeded).unwrap();
    let b = job.start_item(1, "b").unwrap();
    job.finish_item(
        b,
        ItemOutcome::Failed {
            error: "bad row".into(),
            retry: false,
        },
    )
    .unwrap();
    let c = job.start_item(0, "c").unwrap();
    job.finish_item(c, ItemOutcome::Skipped).unwrap();
    let d = job.start_item(1, "d").unwrap();
    job.finish_item_in(
        d,
        ItemOutcome::Succeeded,
        std::time::Duration::from_millis(250),
    )
    .unwrap();
    job.flush().unwrap();

    let statuses: Vec<(String, ItemStatus)> = store
        .items(id, None)
        .unwrap()
        .into_iter()
        .map(|i| (i.key, i.status))
        .collect();
    assert_eq!(
        statuses,
        [
            ("a".to_string(), ItemStatus::Completed),
            ("b".to_string(), ItemStatus::DeadLettered),
            ("c".to_string(), ItemStatus::Skipped),
            ("d".to_string(), ItemStatus::Completed),
        ]
    );
    let d = store.attempts(id, Some("d")).unwrap();
    assert_eq!(d[0].duration_us, Some(250_000));
    assert_eq!(store.dead_letters(id).unwrap()[0].item.key, "b");

    let mut events = job.subscribe(EventFilter {
        types: vec!["item_dead_lettered".into()],
        item: None,
    });
    let read = events.poll().unwrap();
    assert_eq!(read.len(), 1);
    assert_eq!(read[0].item_key.as_deref(), Some("b"));

    assert_eq!(job.finish().unwrap(), JobStatus::CompletedWithFailures);
    let record = store.job(id).unwrap();
    assert_eq!(record.status, JobStatus::CompletedWithFailures);
    assert!(
        store.latest_snapshot(id).unwrap().is_some(),
        "a last snapshot"
    );
}

#[test]
fn a_job_dropped_without_finish_is_interrupted() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir);
    let id = {
        let job = Job::start(store.clone(), JobOptions::new("dropped").items(["x", "y"])).unwrap();
        let x = job.start_item(0, "x").unwrap();
        job.finish_item(x, ItemOutcome::Succeeded).unwrap();
        job.id()
    };
    assert_eq!(store.job(id).unwrap().status, JobStatus::Interrupted);
    assert_eq!(store.job(id).unwrap().counts.completed, 1);
}
