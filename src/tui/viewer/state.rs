//! What the viewer shows: a [`JobState`] read from the store (live or replayed), the parts of
//! its snapshot the panels use, a short throughput history, and the interface state (scroll,
//! sort, filter, help). Pure data: no terminal, no store.

use std::time::Duration;

use serde::Deserialize;

use crate::cli::output;

use mmm_core::job::JobStatus;
use mmm_store::SnapshotRecord;
use mmm_store::job_state::JobState;

/// How many throughput samples the sparkline keeps.
pub(crate) const HISTORY: usize = 240;

/// One agent as the snapshot recorded it (`tracker::AgentSnapshot` as JSON).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct AgentRow {
    pub(crate) index: usize,
    /// As attempts record it; snapshots before names were recorded have none.
    pub(crate) name: Option<String>,
    pub(crate) phase: String,
    pub(crate) item: Option<u64>,
    pub(crate) step: Option<usize>,
    pub(crate) attempt: u32,
    pub(crate) progress: Option<f32>,
    /// Seconds.
    pub(crate) item_elapsed: Option<f64>,
    /// Seconds.
    pub(crate) in_phase: f64,
    pub(crate) last_exit_code: Option<i32>,
    pub(crate) items_done: u64,
    /// Seconds.
    pub(crate) quiet: f64,
    pub(crate) message: Option<String>,
}

impl AgentRow {
    /// The agent's name, as attempts record it.
    pub(crate) fn name(&self) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| format!("agent-{}", self.index + 1))
    }

    /// Whether its last attempt failed (failed, retrying or dead-lettered).
    pub(crate) fn is_failed(&self) -> bool {
        matches!(self.phase.as_str(), "failed" | "retrying" | "dead_lettered")
    }

    /// Sort rank of its phase: busy and troubled agents first.
    fn phase_rank(&self) -> u8 {
        match self.phase.as_str() {
            "failed" | "dead_lettered" => 0,
            "retrying" => 1,
            "running" | "initializing" | "merging" => 2,
            "queued" => 3,
            _ => 4,
        }
    }
}

/// Durations of items or of one step, ms (`metrics::DurationSummary` as JSON).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Durations {
    pub(crate) count: u64,
    pub(crate) mean_ms: f64,
    pub(crate) p50_ms: f64,
    pub(crate) p95_ms: f64,
    pub(crate) p99_ms: f64,
}

/// One step's durations.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct StepRow {
    pub(crate) name: String,
    pub(crate) durations: Option<Durations>,
}

/// An item running past its step's p95.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct StragglerRow {
    pub(crate) item: u64,
    pub(crate) agent: usize,
    pub(crate) step_name: String,
    pub(crate) elapsed_ms: u64,
    pub(crate) p95_ms: u64,
}

/// Failed attempts with one cause.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct FailureRow {
    pub(crate) kind: Option<mmm_core::metrics::FailureKind>,
    pub(crate) message: String,
    pub(crate) count: u64,
}

impl FailureRow {
    /// `3x exit 1 <the message's last line>`.
    pub(crate) fn line(&self) -> String {
        let kind = self.kind.map(|k| k.label()).unwrap_or_default();
        let message = self.message.lines().last().unwrap_or_default();
        format!("{}x {kind} {message}", self.count)
    }
}

/// The ETA as the metrics recorded it (`metrics::Eta`, tagged by `state`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct EtaView {
    pub(crate) state: String,
    pub(crate) p10_ms: Option<u64>,
    pub(crate) p50_ms: Option<u64>,
    pub(crate) p90_ms: Option<u64>,
    pub(crate) completed: Option<u64>,
    pub(crate) needed: Option<u64>,
}

/// The metrics part of a snapshot.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct MetricsPart {
    pub(crate) eta: Option<EtaView>,
    pub(crate) items: Option<Durations>,
    pub(crate) queue_wait: Option<Durations>,
    pub(crate) steps: Vec<StepRow>,
    pub(crate) stragglers: Vec<StragglerRow>,
    pub(crate) failures: Vec<FailureRow>,
    pub(crate) failed_attempts: u64,
}

/// An active alert.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct AlertRow {
    pub(crate) message: String,
}

/// The live counts the runner recorded (`tracker::Progress`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct ProgressPart {
    pub(crate) total: u64,
    pub(crate) completed: u64,
    pub(crate) dead_lettered: u64,
    pub(crate) skipped: u64,
    pub(crate) in_flight: u64,
    pub(crate) pending: u64,
    pub(crate) failed_attempts: u64,
    pub(crate) retries: u64,
}

impl ProgressPart {
    /// Items that will not run again.
    pub(crate) fn done(&self) -> u64 {
        self.completed + self.dead_lettered + self.skipped
    }
}

/// A snapshot's payload, the parts the viewer shows. Unknown or missing fields are tolerated:
/// a snapshot written by an older or newer runner still shows what it has.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Payload {
    pub(crate) progress: Option<ProgressPart>,
    pub(crate) agents: Vec<AgentRow>,
    pub(crate) alerts: Vec<AlertRow>,
    pub(crate) metrics: Option<MetricsPart>,
    /// Custom counters (commits, ... ; docs/reporting.md, docs/worktrees.md).
    pub(crate) counters: std::collections::BTreeMap<String, i64>,
    /// Rates, for the counters' per-second rates.
    pub(crate) rates: Option<RatesPart>,
}

/// The parts of a snapshot's `rates` the viewer shows.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct RatesPart {
    pub(crate) counters_per_second: std::collections::BTreeMap<String, f64>,
}

impl Payload {
    /// Reads a snapshot's payload; a part of another shape shows as empty.
    pub(crate) fn of(snapshot: Option<&SnapshotRecord>) -> Payload {
        // Part by part, so that a part of an unexpected shape loses only itself, not the
        // whole frame (a frame of zeros would read as a job that lost its progress).
        fn part<T: serde::de::DeserializeOwned + Default>(
            payload: &serde_json::Value,
            key: &str,
        ) -> T {
            payload
                .get(key)
                .and_then(|v| T::deserialize(v).ok())
                .unwrap_or_default()
        }
        let Some(snapshot) = snapshot else {
            return Payload::default();
        };
        let payload = &snapshot.payload;
        Payload {
            progress: part(payload, "progress"),
            agents: part(payload, "agents"),
            alerts: part(payload, "alerts"),
            metrics: part(payload, "metrics"),
            counters: part(payload, "counters"),
            rates: part(payload, "rates"),
        }
    }
}

/// How the agent table is ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Sort {
    /// By agent number.
    #[default]
    Agent,
    /// Troubled first, then busy, then idle.
    State,
    /// Longest-running item first.
    Elapsed,
}

impl Sort {
    /// The next order (the `s` key).
    pub(crate) fn next(self) -> Sort {
        match self {
            Sort::Agent => Sort::State,
            Sort::State => Sort::Elapsed,
            Sort::Elapsed => Sort::Agent,
        }
    }

    /// Its name in the table's title.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Sort::Agent => "agent",
            Sort::State => "state",
            Sort::Elapsed => "elapsed",
        }
    }
}

/// Where a replay stands.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ReplayPosition {
    /// The frame shown, 0-based.
    pub(crate) frame: usize,
    /// Frames in all.
    pub(crate) frames: usize,
    /// Playback speed (1 = as it happened).
    pub(crate) speed: f64,
    /// Whether playback is paused.
    pub(crate) paused: bool,
}

/// The interface state the keys change.
#[derive(Debug, Clone, Default)]
pub(crate) struct Ui {
    /// The first agent row shown (after sorting and filtering).
    pub(crate) scroll: usize,
    /// Agent rows that fit, as of the last frame (for PgUp/PgDn).
    pub(crate) page: usize,
    /// The agent table's order.
    pub(crate) sort: Sort,
    /// Only agents whose row contains this text.
    pub(crate) filter: String,
    /// The filter is being typed.
    pub(crate) editing_filter: bool,
    /// Only agents whose last attempt failed.
    pub(crate) failed_only: bool,
    /// The help overlay is shown.
    pub(crate) help: bool,
}

/// Everything one frame shows.
#[derive(Debug, Clone)]
pub(crate) struct ViewerState {
    /// The job as last read.
    pub(crate) job: JobState,
    /// Its snapshot, parsed.
    pub(crate) payload: Payload,
    /// Items finished per sample, oldest first (the sparkline).
    pub(crate) throughput: Vec<u64>,
    /// Items finished per second over the last samples.
    pub(crate) rate: f64,
    /// Keys' state.
    pub(crate) ui: Ui,
    /// Set when replaying.
    pub(crate) replay: Option<ReplayPosition>,
    last_done: Option<(i64, u64)>,
    rate_window: Vec<(i64, u64)>,
}

impl ViewerState {
    /// A viewer showing `job`.
    pub(crate) fn new(job: JobState) -> ViewerState {
        let payload = Payload::of(job.snapshot.as_ref());
        let mut state = ViewerState {
            job: job.clone(),
            payload,
            throughput: Vec::new(),
            rate: 0.0,
            ui: Ui::default(),
            replay: None,
            last_done: None,
            rate_window: Vec::new(),
        };
        state.sample(&job);
        state
    }

    /// Seeds the throughput history from earlier snapshots (oldest first).
    pub(crate) fn seed(&mut self, history: &[SnapshotRecord]) {
        self.last_done = None;
        self.throughput.clear();
        self.rate_window.clear();
        for s in history {
            if let Some(p) = Payload::of(Some(s)).progress {
                self.push_sample(s.at, p.done());
            }
        }
        let job = self.job.clone();
        self.sample(&job);
    }

    /// Whether `next` differs from what is shown in anything a panel draws.
    pub(crate) fn differs(&self, next: &JobState) -> bool {
        let (a, b) = (&self.job, next);
        a.job.status != b.job.status
            || a.job.phase != b.job.phase
            || a.job.counts != b.job.counts
            || a.job.duration_ms != b.job.duration_ms
            || a.live != b.live
            || a.snapshot.as_ref().map(|s| s.at) != b.snapshot.as_ref().map(|s| s.at)
            || a.recent_events.last().map(|e| e.seq) != b.recent_events.last().map(|e| e.seq)
    }

    /// Shows `next`.
    pub(crate) fn update(&mut self, next: JobState) {
        if self.job.snapshot.as_ref().map(|s| s.at) != next.snapshot.as_ref().map(|s| s.at) {
            self.payload = Payload::of(next.snapshot.as_ref());
        }
        self.sample(&next);
        self.job = next;
    }

    fn sample(&mut self, job: &JobState) {
        let at = job.snapshot.as_ref().map_or(job.read_at, |s| s.at);
        let done = job.job.counts.completed + job.job.counts.dead_lettered + job.job.counts.skipped;
        self.push_sample(at, done);
    }

    fn push_sample(&mut self, at: i64, done: u64) {
        if let Some((last_at, last_done)) = self.last_done {
            if at <= last_at {
                return;
            }
            self.throughput.push(done.saturating_sub(last_done));
            if self.throughput.len() > HISTORY {
                self.throughput.remove(0);
            }
        }
        self.last_done = Some((at, done));
        self.rate_window.push((at, done));
        // The rate over the last 10 seconds of samples.
        while self
            .rate_window
            .first()
            .is_some_and(|&(t, _)| at - t > 10_000)
        {
            self.rate_window.remove(0);
        }
        self.rate = match (self.rate_window.first(), self.rate_window.last()) {
            (Some(&(t0, d0)), Some(&(t1, d1))) if t1 > t0 => {
                d1.saturating_sub(d0) as f64 * 1000.0 / (t1 - t0) as f64
            }
            _ => self.rate,
        };
    }

    /// Done (completed, dead-lettered, skipped) items.
    pub(crate) fn done(&self) -> u64 {
        let c = &self.job.job.counts;
        c.completed + c.dead_lettered + c.skipped
    }

    /// Whether the job has reached a finished status.
    pub(crate) fn is_finished(&self) -> bool {
        self.job.job.status.is_finished() || self.job.job.status == JobStatus::Interrupted
    }

    /// The agent rows shown: filtered, then sorted.
    pub(crate) fn visible_agents(&self) -> Vec<&AgentRow> {
        let filter = self.ui.filter.to_lowercase();
        let mut rows: Vec<&AgentRow> = self
            .payload
            .agents
            .iter()
            .filter(|a| !self.ui.failed_only || a.is_failed())
            .filter(|a| filter.is_empty() || self.row_text(a).contains(&filter))
            .collect();
        match self.ui.sort {
            Sort::Agent => rows.sort_by_key(|a| a.index),
            Sort::State => rows.sort_by_key(|a| (a.phase_rank(), a.index)),
            Sort::Elapsed => rows.sort_by(|a, b| {
                b.item_elapsed
                    .unwrap_or(-1.0)
                    .total_cmp(&a.item_elapsed.unwrap_or(-1.0))
                    .then(a.index.cmp(&b.index))
            }),
        }
        rows
    }

    fn row_text(&self, a: &AgentRow) -> String {
        format!(
            "{} {} #{} {} {}",
            a.name(),
            a.phase,
            a.item.map(|i| i.to_string()).unwrap_or_default(),
            self.step_name(a.step).unwrap_or_default(),
            a.message.as_deref().unwrap_or_default()
        )
        .to_lowercase()
    }

    /// The name of step `index`, when the metrics name it.
    pub(crate) fn step_name(&self, index: Option<usize>) -> Option<String> {
        let i = index?;
        self.payload
            .metrics
            .as_ref()
            .and_then(|m| m.steps.get(i))
            .map(|s| s.name.clone())
            .or_else(|| Some(format!("step {}", i + 1)))
    }

    /// The ETA in words: `4m10s (3m20s-5m05s)`, `warming up (2/4)`, `stalled`, `done`.
    pub(crate) fn eta_text(&self) -> String {
        if self.is_finished() {
            return "done".into();
        }
        let ms = |v: Option<u64>| output::duration(Duration::from_millis(v.unwrap_or(0)));
        match self.payload.metrics.as_ref().and_then(|m| m.eta.as_ref()) {
            Some(e) if e.state == "estimate" => {
                format!("{} ({}-{})", ms(e.p50_ms), ms(e.p10_ms), ms(e.p90_ms))
            }
            Some(e) if e.state == "warming_up" => format!(
                "warming up ({}/{})",
                e.completed.unwrap_or(0),
                e.needed.unwrap_or(0)
            ),
            Some(e) if e.state == "stalled" => "stalled".into(),
            Some(e) if e.state == "done" => "done".into(),
            _ => "-".into(),
        }
    }

    /// Keeps the scroll position within the rows shown.
    pub(crate) fn clamp_scroll(&mut self) {
        let rows = self.visible_agents().len();
        let max = rows.saturating_sub(self.ui.page.max(1));
        self.ui.scroll = self.ui.scroll.min(max);
    }
}

/// A job with `agents` agents, half way through, for the viewer's tests.
#[cfg(test)]
pub(crate) fn fixture(agents: usize) -> ViewerState {
    ViewerState::new(mmm_store::job_state::fixture(agents))
}

#[cfg(test)]
mod tests {
    use super::*;
    use mmm_core::metrics::{Failure, FailureClusters, FailureKind};

    #[test]
    fn a_payload_with_real_failure_clusters_keeps_its_progress() {
        let mut clusters = FailureClusters::new();
        clusters.add(&Failure {
            item_key: "a",
            item_value: None,
            kind: FailureKind::Exit { code: 2 },
            output: "disk full",
            at_ms: 1,
        });
        let snapshot = SnapshotRecord {
            at: 1,
            payload: serde_json::json!({
                "progress": {"total": 3, "completed": 2, "dead_lettered": 1},
                "metrics": {"failures": clusters.sorted(), "eta": {"state": "done"}},
                "agents": "not a list",
            }),
        };
        let payload = Payload::of(Some(&snapshot));
        assert_eq!(payload.progress.unwrap().done(), 3);
        let metrics = payload.metrics.unwrap();
        assert_eq!(metrics.failures[0].line(), "1x exit 2 disk full");
        // The part of the wrong shape is lost alone.
        assert!(payload.agents.is_empty());
    }
}
