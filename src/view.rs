//! The state of a job as every view shows it, read from the store by any process: the
//! terminal viewer (`mmm progress --json`), the web API and the exports share this shape.
//!
//! It joins the job's record (status, exact counts, durations) with its newest snapshot (what
//! the runner recorded last: agents, rates, ETA, durations, failure clusters, alerts,
//! counters) and its most recent events.

use serde::Serialize;

use crate::job::{JobId, JobStatus, now_ms};
use crate::store::{EventRecord, JobRecord, SnapshotRecord, Store, StoreError};

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
        let record = store.job(job)?;
        let snapshot = store.latest_snapshot(job)?;
        let recent_events = store.recent_events(job, RECENT_EVENTS)?;
        let now = now_ms();
        let host = crate::runner::host_name();
        let (live, resumable) = liveness(&record, now, &host);
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
    let live = crate::runner::resume::owner_is_alive(record, now, host);
    let resumable = match record.status {
        JobStatus::Interrupted => true,
        JobStatus::Running => !live,
        _ => false,
    };
    (live, resumable)
}
