//! What the viewer shows: a [`JobState`] read from the store (live or replayed), the parts of
//! its snapshot the panels use, a short throughput history, and the interface state (scroll,
//! sort, filter, help). Pure data: no terminal, no store.

use std::time::Duration;

use crate::cli::output;

use mmm_core::job::{AgentState, JobStatus};
use mmm_core::metrics::Eta;
use mmm_core::snapshot::{AgentRow, Snapshot};
use mmm_store::SnapshotRecord;
use mmm_store::job_state::JobState;

/// How many throughput samples the sparkline keeps.
pub(crate) const HISTORY: usize = 240;

/// Sort rank of an agent's state: troubled agents first, then busy, then idle.
fn state_rank(state: AgentState) -> u8 {
    match state {
        AgentState::Failed | AgentState::DeadLettered => 0,
        AgentState::Retrying | AgentState::Throttled => 1,
        AgentState::Running | AgentState::Initializing | AgentState::Merging => 2,
        AgentState::Queued => 3,
        AgentState::Completed => 4,
    }
}

/// The snapshot a [`JobState`] carries, read through its type (empty before the first).
pub(crate) fn snapshot_of(record: Option<&SnapshotRecord>) -> Snapshot {
    record.map_or_else(Snapshot::default, |s| s.payload.clone())
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
    /// The cursor's agent row (after sorting and filtering): the first row shown while the
    /// table can scroll that far, else a row of its last page.
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
    /// A control request waiting for `y` (cancel asks first).
    pub(crate) confirm: Option<mmm_core::control::ControlAction>,
    /// What the last control key did, for the footer.
    pub(crate) notice: Option<String>,
    /// The help overlay is shown.
    pub(crate) help: bool,
    /// The log pane (Enter on an agent at work): its item's output, following.
    pub(crate) log: Option<LogPane>,
}

/// The log of one item shown in a pane of the viewer, as the store has it (docs/logs.md).
#[derive(Debug, Clone, Default)]
pub(crate) struct LogPane {
    /// The item's key.
    pub(crate) key: String,
    /// The agent it was opened on.
    pub(crate) agent: String,
    /// The last lines read, at most [`LogPane::KEPT`].
    pub(crate) lines: std::collections::VecDeque<String>,
    /// A line begun and not yet ended.
    pub(crate) partial: String,
    /// The item has ended: nothing more will come.
    pub(crate) ended: bool,
}

impl LogPane {
    /// Lines kept for the pane: more than any terminal shows.
    pub(crate) const KEPT: usize = 500;

    /// Appends text as it was read.
    pub(crate) fn push(&mut self, bytes: &[u8]) {
        let text = String::from_utf8_lossy(bytes);
        let mut rest: &str = &text;
        while let Some(nl) = rest.find('\n') {
            let mut line = std::mem::take(&mut self.partial);
            line.push_str(&rest[..nl]);
            self.lines.push_back(line);
            rest = &rest[nl + 1..];
        }
        self.partial.push_str(rest);
        while self.lines.len() > Self::KEPT {
            self.lines.pop_front();
        }
    }
}

/// Everything one frame shows.
#[derive(Debug, Clone)]
pub(crate) struct ViewerState {
    /// The job as last read.
    pub(crate) job: JobState,
    /// Its newest snapshot, read.
    pub(crate) snapshot: Snapshot,
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
        let snapshot = snapshot_of(job.snapshot.as_ref());
        let mut state = ViewerState {
            job: job.clone(),
            snapshot,
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
            if let Some(p) = s.payload.progress {
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
            self.snapshot = snapshot_of(next.snapshot.as_ref());
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

    /// The agent row the cursor is on (↑/↓ move it; it is highlighted), whose item Enter
    /// opens: the row at `scroll`, or the last one when the table ends before it.
    pub(crate) fn selected_agent(&self) -> Option<&AgentRow> {
        let rows = self.visible_agents();
        rows.get(self.selected_row(rows.len())).copied()
    }

    /// The position of the cursor's row among `shown` rows.
    pub(crate) fn selected_row(&self, shown: usize) -> usize {
        self.ui.scroll.min(shown.saturating_sub(1))
    }

    /// The agent rows shown: filtered, then sorted.
    pub(crate) fn visible_agents(&self) -> Vec<&AgentRow> {
        let filter = self.ui.filter.to_lowercase();
        let mut rows: Vec<&AgentRow> = self
            .snapshot
            .agents
            .iter()
            .filter(|a| !self.ui.failed_only || a.agent.state.is_failed())
            .filter(|a| filter.is_empty() || self.row_text(a).contains(&filter))
            .collect();
        match self.ui.sort {
            Sort::Agent => rows.sort_by_key(|a| a.agent.index),
            Sort::State => rows.sort_by_key(|a| (state_rank(a.agent.state), a.agent.index)),
            // Idle agents (no item) last.
            Sort::Elapsed => rows.sort_by(|a, b| {
                b.agent
                    .item_elapsed
                    .cmp(&a.agent.item_elapsed)
                    .then(a.agent.index.cmp(&b.agent.index))
            }),
        }
        rows
    }

    fn row_text(&self, a: &AgentRow) -> String {
        format!(
            "{} {} #{} {} {}",
            a.name(),
            a.agent.state,
            a.agent.item.map(|i| i.to_string()).unwrap_or_default(),
            self.step_name(a.agent.step).unwrap_or_default(),
            a.agent.message.as_deref().unwrap_or_default()
        )
        .to_lowercase()
    }

    /// The name of step `index`, when the metrics name it.
    pub(crate) fn step_name(&self, index: Option<usize>) -> Option<String> {
        let i = index?;
        self.snapshot
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
        let ms = |v: u64| output::duration(Duration::from_millis(v));
        match self.snapshot.metrics.as_ref().map(|m| m.eta) {
            Some(Eta::Estimate(e)) => {
                format!("{} ({}-{})", ms(e.p50_ms), ms(e.p10_ms), ms(e.p90_ms))
            }
            Some(Eta::WarmingUp { completed, needed }) => {
                format!("warming up ({completed}/{needed})")
            }
            Some(Eta::Stalled { .. }) => "stalled".into(),
            Some(Eta::Paused) => "paused".into(),
            Some(Eta::Done) => "done".into(),
            None => "-".into(),
        }
    }

    /// Keeps the cursor on a row shown.
    pub(crate) fn clamp_scroll(&mut self) {
        // The cursor may reach the last row; the table shows the last page from there on.
        let rows = self.visible_agents().len();
        self.ui.scroll = self.ui.scroll.min(rows.saturating_sub(1));
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
    fn a_snapshot_with_real_failure_clusters_keeps_its_progress() {
        let mut clusters = FailureClusters::new();
        clusters.add(&Failure {
            item_key: "a",
            item_value: None,
            kind: FailureKind::Exit { code: 2 },
            output: "disk full",
            at_ms: 1,
        });
        let record = SnapshotRecord {
            at: 1,
            payload: Snapshot::from_json(serde_json::json!({
                "progress": {"total": 3, "completed": 2, "dead_lettered": 1},
                "metrics": {"failures": clusters.sorted(), "eta": {"state": "done"}},
                "agents": "not a list",
            })),
        };
        let snapshot = snapshot_of(Some(&record));
        assert_eq!(snapshot.progress.unwrap().done(), 3);
        let metrics = snapshot.metrics.unwrap();
        assert_eq!(metrics.failures[0].line(), "1x exit 2 disk full");
        // The part of the wrong shape is lost alone.
        assert!(snapshot.agents.is_empty());
    }
}
