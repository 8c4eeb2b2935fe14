//! Step-reported progress: a real command reports through `mmm report` and through the
//! `MMM_PROGRESS_FD` protocol, and the runner's tracker shows it promptly.
//!
//! The target is 100 ms and a quiet machine takes a few milliseconds; the test allows
//! `BOUND` so that a loaded CI machine does not fail it, while a report that waited for a
//! 1 s poll (the regression it guards against) still does.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mmm_core::job::JobId;
use mmm_core::tracker::Tracker;
use mmm_runner::{self as runner, OwnerConfig, ProcessExecutor, Role, RunConfig, Start, StopLevel};
use mmm_store::writer::StoreWriter;
use tokio::sync::watch;

/// How long a report may take to reach the tracker (see the module comment).
const BOUND: Duration = Duration::from_millis(500);

/// Polls until `path` exists, then returns when it appeared (as seen by the poll).
fn wait_for_file(path: &Path, within: Duration) -> Instant {
    let deadline = Instant::now() + within;
    while !path.exists() {
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    Instant::now()
}

/// Polls the tracker until `check` holds for agent 0; returns how long it took.
fn wait_for_agent(
    tracker: &Tracker,
    since: Instant,
    what: &str,
    check: impl Fn(&mmm_core::tracker::AgentSnapshot) -> bool,
) -> Duration {
    let deadline = since + Duration::from_secs(5);
    loop {
        let agent = tracker.agent(0);
        if check(&agent) {
            return since.elapsed();
        }
        assert!(
            Instant::now() < deadline,
            "the tracker never showed {what}: {agent:?}"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Polls until the tracker's `rows` counter is `value`, failing after [`BOUND`].
fn wait_for_rows(tracker: &Tracker, value: i64) {
    let deadline = Instant::now() + BOUND;
    while tracker.counters().get("rows") != Some(&value.into()) {
        assert!(
            Instant::now() < deadline,
            "counter: {:?}",
            tracker.counters()
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn reports_through_mmm_report_and_the_fd_protocol_reach_the_tracker_promptly() {
    let dir = tempfile::tempdir().unwrap();
    let mmm = env!("CARGO_BIN_EXE_mmm");
    // Each report is followed by a marker file, then a pause long enough to look.
    let step = format!(
        "'{mmm}' report 40% 'epoch 4/10' && touch one && sleep 1 && \
         printf 'progress 7/10 from the fd\\ncounter rows=+5\\n' > \"/dev/fd/$MMM_PROGRESS_FD\" && \
         touch two && sleep 1 && '{mmm}' report --counter rows=+2 && touch three && sleep 30"
    );
    let yaml = format!(
        "map:\n  input: items.txt\n  max_parallel: 1\n  steps:\n    - name: train\n      shell: {}\n",
        serde_json::to_string(&step).unwrap()
    );
    std::fs::write(dir.path().join("items.txt"), "only\n").unwrap();
    let job_file = dir.path().join("job.yml");
    let plan = Arc::new(mmm_spec::load_text(&job_file, &yaml).expect("valid job file"));
    let store = mmm_store::open(dir.path().join(".mmm").to_str().unwrap(), true).unwrap();
    let tracker = Arc::new(Tracker::new(0, plan.map.max_parallel));
    let (stop_tx, stop_rx) = watch::channel(StopLevel::Run);
    let config = RunConfig {
        job_id: JobId::new(),
        plan,
        store: store.clone(),
        writer: Arc::new(StoreWriter::spawn(store, Duration::from_millis(5))),
        outages: Arc::new(mmm_store::Outages::new(mmm_store::DEFAULT_OUTAGE_LIMIT)),
        tracker: tracker.clone(),
        metrics: Arc::new(mmm_core::metrics::LiveMetrics::new(vec!["train".into()], 1)),
        stop: stop_rx,
        output: None,
        show_map_output: false,
        role: Role::Own(OwnerConfig {
            start: Start::New { origin: None },
            claims: None,
            heartbeat: Duration::from_secs(1),
            checkpoint_every: Duration::from_secs(60),
            snapshot_every: Duration::from_secs(1),
        }),
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let run = runtime.spawn(runner::run(config, Arc::new(ProcessExecutor::default())));

    let seen = wait_for_file(&dir.path().join("one"), Duration::from_secs(10));
    let took = wait_for_agent(&tracker, seen, "40% and the message", |a| {
        a.progress == Some(0.4) && a.message.as_deref() == Some("epoch 4/10")
    });
    assert!(took <= BOUND, "mmm report took {took:?}");

    let seen = wait_for_file(&dir.path().join("two"), Duration::from_secs(10));
    let took = wait_for_agent(&tracker, seen, "70% from the fd", |a| {
        a.progress == Some(0.7) && a.message.as_deref() == Some("from the fd")
    });
    assert!(took <= BOUND, "the fd protocol took {took:?}");
    // The counter line came right after the progress line; the reader may not have applied
    // it yet when the progress showed.
    wait_for_rows(&tracker, 5);

    wait_for_file(&dir.path().join("three"), Duration::from_secs(10));
    wait_for_rows(&tracker, 7);

    stop_tx.send(StopLevel::Immediate).unwrap();
    let summary = runtime
        .block_on(run)
        .unwrap()
        .expect("the run ends cleanly");
    assert_eq!(summary.status, mmm_core::job::JobStatus::Interrupted);
}
