//! The state of a job as every view shows it, read from the store by any process: the
//! terminal viewer (`mmm progress --json`), the web API and the exports share this shape.
//!
//! It joins the job's record (status, exact counts, durations) with its newest snapshot (what
//! the runner recorded last: agents, rates, ETA, durations, failure clusters, alerts,
//! counters) and its most recent events.

use serde::Serialize;

use crate::{EventRecord, JobRecord, SnapshotRecord, Store, StoreError};
use mmm_core::job::{JobId, JobStatus, now_ms};

/// How many recent events a [`JobState`] carries.
pub const RECENT_EVENTS: usize = 50;

/// One job, as the views show it.
#[derive(Debug, Clone, Serialize)]
pub struct JobState {
    /// The job's record, counts included (exact: read from the items).
    pub job: JobRecord,
    /// Done (completed, dead-lettered, skipped) over total, 0..=100.
    pub percent: f64,
    /// Whether `mmm resume` can continue it (interrupted, or running with a dead owner).
    pub resumable: bool,
    /// Whether a live process is running it now.
    pub live: bool,
    /// The runner's newest snapshot (`progress`, `agents`, `metrics`, `alerts`, `counters`,
    /// `window`), absent before the first one.
    pub snapshot: Option<SnapshotRecord>,
    /// The newest events, oldest first.
    pub recent_events: Vec<EventRecord>,
    /// When this state was read, epoch ms.
    pub read_at: i64,
}

impl JobState {
    /// Reads the state of `job` now.
    pub fn load(store: &dyn Store, job: JobId) -> Result<JobState, StoreError> {
        let now = now_ms();
        let host = crate::owner::host_name();
        let mut record = store.job(job)?;
        let (mut live, mut resumable) = liveness(&record, now, &host);
        if record.status == JobStatus::Running && !live {
            // The owner may have recorded the job's end and exited between the read and the
            // look at its process. Its last commit comes before its exit, so a read after
            // seeing it gone has that end: a finished job is not mistaken for a dead one.
            record = store.job(job)?;
            (live, resumable) = liveness(&record, now, &host);
        }
        // Read after the record, so they are at least as new as it.
        let snapshot = store.latest_snapshot(job)?;
        let recent_events = store.recent_events(job, RECENT_EVENTS)?;
        let percent = record.counts.percent();
        Ok(JobState {
            job: record,
            percent,
            resumable,
            live,
            snapshot,
            recent_events,
            read_at: now,
        })
    }
}

/// Whether a live process runs the job now, and whether `mmm resume` can continue it
/// (interrupted, or running with a dead owner): the one rule every view applies.
pub fn liveness(record: &JobRecord, now: i64, host: &str) -> (bool, bool) {
    let live = crate::owner::owner_is_alive(record, now, host);
    let resumable = match record.status {
        JobStatus::Interrupted => true,
        JobStatus::Running => !live,
        _ => false,
    };
    (live, resumable)
}

/// A job named `thumbnails` with `agents` agents, half way through a map of 1,000 items, with
/// a snapshot of every part (agents, ETA, durations, stragglers, failures, an alert), for the
/// tests of the views (the viewer, the reports).
#[cfg(feature = "fixtures")]
pub fn fixture(agents: usize) -> JobState {
    use crate::{EventRecord, ItemCounts, JobRecord, SnapshotRecord};
    use mmm_core::event::{Event, ItemCompleted};
    use mmm_core::job::{JobId, JobStatus, Phase};
    use mmm_core::snapshot::Snapshot;
    use serde_json::json;

    let id = JobId::new();
    let counts = ItemCounts {
        pending: 500 - agents.min(100) as u64,
        running: agents.min(100) as u64,
        completed: 480,
        failed: 0,
        dead_lettered: 20,
        skipped: 0,
    };
    let agent_rows: Vec<serde_json::Value> = (0..agents)
        .map(|i| {
            json!({
                "index": i,
                "phase": if i % 7 == 3 { "retrying" } else { "running" },
                "item": 500 + i,
                "step": 0,
                "attempt": 1,
                "progress": null,
                "item_elapsed": (i % 50) as f64 + 0.5,
                "in_phase": 1.0,
                "last_exit_code": if i % 7 == 3 { Some(2) } else { None },
                "items_done": 3,
                "quiet": 0.5,
                "message": null,
            })
        })
        .collect();
    let payload = json!({
        "progress": {"total": 1000, "completed": 480, "dead_lettered": 20, "skipped": 0,
                     "in_flight": 100, "pending": 400, "restored": 0, "failed_attempts": 25,
                     "retries": 5, "percent": 50.0},
        "agents": agent_rows,
        "counters": {},
        "window": {"seconds": 60, "counts": {"finished": 100, "attempts": 110, "failures": 10, "timeouts": 0}},
        "alerts": [{"rule": "failure_rate", "subject": null, "message": "failure rate 9% over 5%", "value": 0.09, "threshold": 0.05}],
        "metrics": {
            "eta": {"state": "estimate", "p10_ms": 50000, "p50_ms": 60000, "p90_ms": 80000,
                    "finish_at_ms": 0, "basis": "durations", "rate_ms": 61000, "widened_by_rate": false},
            "items": {"count": 500, "mean_ms": 1200.0, "stdev_ms": 100.0, "min_ms": 900.0,
                      "p10_ms": 1000.0, "p50_ms": 1100.0, "p90_ms": 1500.0, "p95_ms": 1700.0,
                      "p99_ms": 2500.0, "max_ms": 3000.0},
            "steps": [{"name": "convert", "durations": null, "skipped": 0}],
            "stragglers": [{"item": 512, "agent": 12, "step": 0, "step_name": "convert",
                            "elapsed_ms": 9000, "p95_ms": 1700}],
            "failures": [{"kind": {"kind": "exit", "code": 3}, "signature": "boom", "message": "boom: disk full",
                          "count": 25, "first_seen_ms": 0, "last_seen_ms": 0, "examples": []}],
            "failed_attempts": 25
        }
    });
    let now = 1_700_000_100_000;
    JobState {
        job: JobRecord {
            id,
            name: "thumbnails".into(),
            status: JobStatus::Running,
            phase: Some(Phase::Map),
            spec: "{}".into(),
            spec_hash: String::new(),
            source: None,
            max_parallel: agents as u32,
            created_at: now - 100_000,
            started_at: Some(now - 100_000),
            updated_at: now,
            finished_at: None,
            duration_ms: 100_000,
            owner_pid: Some(1),
            owner_host: Some("host".into()),
            heartbeat_at: Some(now),
            origin: None,
            input_fingerprint: None,
            paused: false,
            scaled_agents: None,
            counts,
        },
        percent: 50.0,
        resumable: false,
        live: true,
        snapshot: Some(SnapshotRecord {
            at: now,
            payload: Snapshot::from_json(payload),
        }),
        recent_events: (0..5)
            .map(|i| EventRecord {
                seq: i,
                job: id,
                at: now - 1000,
                item_key: Some(format!("photo-{i}.jpg")),
                event: Event::ItemCompleted(ItemCompleted {
                    attempt: 1,
                    agent: "agent-1".into(),
                    duration_us: Some(1_100_000),
                    steps_us: Some(vec![Some(1_100_000)]),
                }),
            })
            .collect(),
        read_at: now,
    }
}
