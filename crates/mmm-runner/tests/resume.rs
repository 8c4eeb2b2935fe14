//! A program using the library resumes a job: a first run is stopped with one item in flight
//! (recorded `interrupted`), then `resume::prepare` takes the job over and the runner continues
//! it to its end, running only the item that had not finished. No processes: an executor
//! stands in for them.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use mmm_core::job::{JobId, JobStatus};
use mmm_core::metrics::LiveMetrics;
use mmm_core::tracker::Tracker;
use mmm_runner::resume::{self, ResumeOptions};
use mmm_runner::{
    self as runner, CommandRequest, CommandResult, Executor, Exit, OwnerConfig, Role, RunConfig,
    Start, StopLevel,
};
use mmm_spec::{JobOrigin, JobPlan, Overrides, RenderedCommand};
use mmm_store::Store;
use mmm_store::writer::StoreWriter;
use tokio::sync::watch;

/// Ends every command at once, except the item `hang`'s while `hang` is set: that one waits
/// for a stop request. Counts the commands it was given.
#[derive(Default)]
struct Commands {
    hang: AtomicBool,
    ran: std::sync::Mutex<Vec<String>>,
}

impl Executor for Commands {
    async fn run(
        &self,
        request: CommandRequest,
        mut stop: watch::Receiver<StopLevel>,
    ) -> CommandResult {
        let line = match &request.command {
            RenderedCommand::Shell(line) => line.clone(),
            RenderedCommand::Argv(words) => words.join(" "),
        };
        self.ran.lock().unwrap().push(line.clone());
        let exit = if line.contains("hang") && self.hang.load(Ordering::SeqCst) {
            let _ = stop.wait_for(|level| *level != StopLevel::Run).await;
            Exit::Interrupted
        } else {
            Exit::Code(0)
        };
        CommandResult {
            exit,
            duration: Duration::from_millis(1),
            stdout: Vec::new(),
            stderr: Vec::new(),
        }
    }
}

fn config(
    id: JobId,
    plan: Arc<JobPlan>,
    store: Arc<dyn Store>,
    start: Start,
    stop: watch::Receiver<StopLevel>,
) -> (RunConfig, Arc<Tracker>) {
    let tracker = Arc::new(Tracker::new(0, plan.map.max_parallel));
    let config = RunConfig {
        job_id: id,
        metrics: Arc::new(LiveMetrics::new(vec!["work".into()], plan.map.max_parallel)),
        plan,
        writer: Arc::new(StoreWriter::spawn(store.clone(), Duration::from_millis(5))),
        outages: Arc::new(mmm_store::Outages::new(mmm_store::DEFAULT_OUTAGE_LIMIT)),
        store,
        tracker: tracker.clone(),
        stop,
        output: None,
        show_map_output: false,
        role: Role::Own(OwnerConfig {
            start,
            claims: None,
            heartbeat: Duration::from_millis(100),
            checkpoint_every: Duration::from_secs(60),
            snapshot_every: Duration::from_secs(1),
        }),
    };
    (config, tracker)
}

#[test]
fn a_stopped_job_resumes_through_the_library_and_runs_only_what_was_left() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("items.txt"), "a\nb\nc\nhang\nd\n").unwrap();
    let job_file = dir.path().join("job.yml");
    std::fs::write(
        &job_file,
        "map:\n  input: items.txt\n  max_parallel: 2\n  steps:\n    - name: work\n      shell: work ${item}\n",
    )
    .unwrap();
    let origin = JobOrigin::file(&job_file, Overrides::default()).unwrap();
    let plan = Arc::new(origin.plan().unwrap().plan);
    let store = mmm_store::open(dir.path().join(".mmm").to_str().unwrap(), true).unwrap();
    let id = JobId::new();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let commands = Arc::new(Commands::default());
    commands.hang.store(true, Ordering::SeqCst);

    // The first run: stopped once every item but `hang` is done.
    let (stop_tx, stop_rx) = watch::channel(StopLevel::Run);
    let start = Start::New {
        origin: Some(serde_json::to_string(&origin).unwrap()),
    };
    let (first, tracker) = config(id, plan.clone(), store.clone(), start, stop_rx);
    let run = runtime.spawn(runner::run(first, commands.clone()));
    let deadline = Instant::now() + Duration::from_secs(10);
    while tracker.progress().done() < 4 {
        assert!(
            Instant::now() < deadline,
            "the four quick items did not end"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    stop_tx.send(StopLevel::Graceful).unwrap();
    let summary = runtime.block_on(run).unwrap().expect("the first run");
    assert_eq!(summary.status, JobStatus::Interrupted);
    assert_eq!(summary.counts.completed, 4);
    assert!(summary.error.is_none());

    // The resume, prepared by the library, then run to the end.
    let restored = resume::prepare(store.as_ref(), id, &ResumeOptions::default())
        .expect("an interrupted job can be resumed");
    assert_eq!(restored.job.counts.completed, 4);
    assert_eq!(restored.job.counts.pending, 1, "{:?}", restored.job.counts);
    assert!(!restored.spec_changed && !restored.from_stored_text);
    assert!(matches!(&restored.start, Start::Resume(r) if r.counts.completed == 4));
    commands.hang.store(false, Ordering::SeqCst);
    let ran_before = commands.ran.lock().unwrap().len();
    let (_stop_tx, stop_rx) = watch::channel(StopLevel::Run);
    let (second, _) = config(
        id,
        Arc::new(restored.plan),
        store.clone(),
        restored.start,
        stop_rx,
    );
    let summary = runtime
        .block_on(runner::run(second, commands.clone()))
        .expect("the resumed run");
    assert_eq!(summary.status, JobStatus::Completed);
    assert_eq!(summary.counts.completed, 5);
    let ran = commands.ran.lock().unwrap();
    assert_eq!(
        ran[ran_before..],
        ["work hang".to_string()],
        "only the unfinished item ran again"
    );

    // A second resume of a completed job is refused.
    let again = resume::prepare(store.as_ref(), id, &ResumeOptions::default());
    assert!(
        matches!(again, Err(resume::ResumeError::TakeOver(_))),
        "{again:?}"
    );
}
