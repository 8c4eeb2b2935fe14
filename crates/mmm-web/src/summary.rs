//! One line of the jobs list: a job's record joined with what its newest snapshot says (ETA,
//! alerts, throughput), cheap enough to read for every job of the store.

use serde::Serialize;

use mmm_core::alerts::Alert;
use mmm_core::job::{JobId, JobStatus, Phase, now_ms};
use mmm_core::metrics::Eta;
use mmm_core::snapshot::Snapshot;
use mmm_store::{ItemCounts, JobQuery, JobRecord, SnapshotRecord, Store, StoreError};

/// A job as the jobs list shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobSummary {
    /// The full id.
    pub id: JobId,
    /// The short id the CLI shows.
    pub short: String,
    /// The plan's name.
    pub name: String,
    /// Current status.
    pub status: JobStatus,
    /// Paused by `mmm pause` (docs/control.md).
    pub paused: bool,
    /// The phase running or last run.
    pub phase: Option<Phase>,
    /// Item counts by status.
    pub counts: ItemCounts,
    /// Items in all.
    pub total: u64,
    /// Done (completed, dead-lettered, skipped) over total, 0..=100.
    pub percent: f64,
    /// The snapshot's ETA (`metrics.eta`: `state` is `done`, `warming_up`, `stalled`,
    /// `paused` or `estimate`), when the job has a snapshot.
    pub eta: Option<Eta>,
    /// Items finished per second over the snapshot's window, when known.
    pub throughput: Option<f64>,
    /// Whether `mmm resume` can continue it.
    pub resumable: bool,
    /// Whether a live process runs it now.
    pub live: bool,
    /// The snapshot's active alerts (empty without a snapshot).
    pub alerts: Vec<Alert>,
    /// Number of agents.
    pub max_parallel: u32,
    /// Epoch ms.
    pub created_at: i64,
    /// Epoch ms of the last recorded change.
    pub updated_at: i64,
    /// Epoch ms when it finished.
    pub finished_at: Option<i64>,
    /// Time spent running over all its runs, ms.
    pub duration_ms: i64,
    /// When the newest snapshot was taken, epoch ms.
    pub snapshot_at: Option<i64>,
}

impl JobSummary {
    /// Joins `record` with its newest snapshot. `live` and `resumable` follow the same rule
    /// as [`mmm_store::job_state::JobState`].
    pub fn new(record: JobRecord, snapshot: Option<&SnapshotRecord>, host: &str) -> Self {
        let (live, resumable) = mmm_store::job_state::liveness(&record, now_ms(), host);
        let percent = record.counts.percent();
        let read = snapshot.map(|s| (s.at, &s.payload));
        let eta = read
            .as_ref()
            .and_then(|(_, s)| s.metrics.as_ref())
            .map(|m| m.eta);
        let throughput = read
            .as_ref()
            .and_then(|(at, s)| throughput(s, *at, record.started_at));
        let alerts = read.map(|(_, s)| s.alerts.clone()).unwrap_or_default();
        JobSummary {
            id: record.id,
            short: record.id.short(),
            name: record.name,
            status: record.status,
            paused: record.paused,
            phase: record.phase,
            counts: record.counts,
            total: record.counts.total(),
            percent,
            eta,
            throughput,
            resumable,
            live,
            alerts,
            max_parallel: record.max_parallel,
            created_at: record.created_at,
            updated_at: record.updated_at,
            finished_at: record.finished_at,
            duration_ms: record.duration_ms,
            snapshot_at: snapshot.map(|s| s.at),
        }
    }

    /// Every job of the store, newest first.
    pub fn load_all(store: &dyn Store) -> Result<Vec<JobSummary>, StoreError> {
        Self::load_matching(store, &JobQuery::default())
    }

    /// The jobs that match `query`, newest first.
    pub fn load_matching(
        store: &dyn Store,
        query: &JobQuery,
    ) -> Result<Vec<JobSummary>, StoreError> {
        let host = mmm_store::owner::host_name();
        store
            .jobs_matching(query)?
            .into_iter()
            .map(|record| {
                let snapshot = store.latest_snapshot(record.id)?;
                Ok(JobSummary::new(record, snapshot.as_ref(), &host))
            })
            .collect()
    }
}

/// Items finished per second over a snapshot's rolling window (`window.counts.finished` over
/// `window.seconds`, or over the time since the job started when that is shorter, so a young
/// job's rate is not diluted by seconds it did not exist), the snapshot taken at `at`.
/// The runner's own `rates.throughput_now` wins when the snapshot has it.
pub(super) fn throughput(snapshot: &Snapshot, at: i64, started_at: Option<i64>) -> Option<f64> {
    if let Some(rates) = &snapshot.rates {
        return Some(rates.throughput_now);
    }
    let window = snapshot.window?;
    let mut seconds = window.seconds as f64;
    if let Some(started) = started_at {
        let age = (at - started) as f64 / 1_000.0;
        if age > 0.0 {
            seconds = seconds.min(age);
        }
    }
    (seconds > 0.0).then(|| window.counts.finished as f64 / seconds)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn throughput_is_over_the_window_or_the_jobs_age() {
        let windowed =
            Snapshot::from_json(json!({"window": {"seconds": 60, "counts": {"finished": 30}}}));
        assert_eq!(throughput(&windowed, 10_000, None), Some(0.5));
        assert_eq!(throughput(&windowed, 10_000, Some(0)), Some(3.0));
        assert_eq!(throughput(&windowed, 10_000, Some(-100_000)), Some(0.5));
        let empty = Snapshot::from_json(json!({}));
        assert_eq!(throughput(&empty, 1, Some(0)), None);
        let rated = Snapshot::from_json(
            json!({"rates": {"throughput_now": 7.5}, "window": {"seconds": 60, "counts": {"finished": 30}}}),
        );
        assert_eq!(throughput(&rated, 10_000, Some(0)), Some(7.5));
    }
}
