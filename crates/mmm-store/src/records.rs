//! The records the store keeps, as the backends read and write them: a job and its items (new
//! and as recorded, with their counts), attempts, events, snapshots and checkpoints.

use std::path::PathBuf;

use serde::Serialize;

use crate::steps::StepRecord;
use mmm_core::event::Event;
use mmm_core::job::{AttemptOutcome, ItemStatus, JobId, JobStatus, Phase};
use mmm_core::snapshot::Snapshot;

/// A job as first recorded, before anything runs.
#[derive(Debug, Clone)]
pub struct NewJob {
    /// The job's id.
    pub id: JobId,
    /// The plan's name.
    pub name: String,
    /// The normalised plan, as JSON text.
    pub spec: String,
    /// Hash of the normalised plan.
    pub spec_hash: String,
    /// The job file, if any.
    pub source: Option<PathBuf>,
    /// Number of agents.
    pub max_parallel: u32,
    /// Creation time, epoch ms.
    pub created_at: i64,
    /// Owning process id.
    pub owner_pid: u32,
    /// Owning host name.
    pub owner_host: String,
    /// How the plan was built (`spec::JobOrigin` as JSON), so a resume can build it again.
    pub origin: Option<String>,
}

/// One item as first recorded.
#[derive(Debug, Clone)]
pub struct NewItem {
    /// Stable key, unique within the job.
    pub key: String,
    /// The item's value, JSON text.
    pub value: String,
}

/// Counts of a job's items by status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ItemCounts {
    /// Items not started (or requeued).
    pub pending: u64,
    /// Items with an attempt in flight.
    pub running: u64,
    /// Items done.
    pub completed: u64,
    /// Items whose last attempt failed and that will be retried.
    pub failed: u64,
    /// Items in the DLQ.
    pub dead_lettered: u64,
    /// Items whose every step was skipped.
    pub skipped: u64,
}

impl ItemCounts {
    /// Done (completed, dead-lettered, skipped) over the total, 0..=100; 0 for no items.
    pub fn percent(&self) -> f64 {
        let total = self.total();
        if total == 0 {
            return 0.0;
        }
        let done = self.completed + self.dead_lettered + self.skipped;
        (done as f64 * 100.0 / total as f64).min(100.0)
    }

    /// Every item of the job.
    pub fn total(&self) -> u64 {
        self.pending
            + self.running
            + self.completed
            + self.failed
            + self.dead_lettered
            + self.skipped
    }

    /// Each status with its count, in the order of [`ItemStatus`] (for a series per status).
    pub fn by_status(&self) -> [(ItemStatus, u64); 6] {
        [
            (ItemStatus::Pending, self.pending),
            (ItemStatus::Running, self.running),
            (ItemStatus::Completed, self.completed),
            (ItemStatus::Failed, self.failed),
            (ItemStatus::DeadLettered, self.dead_lettered),
            (ItemStatus::Skipped, self.skipped),
        ]
    }

    /// Items not done yet: pending, running, or failed and to be retried.
    pub fn unfinished(&self) -> u64 {
        self.pending + self.running + self.failed
    }

    /// Sets the count of `status` to `n` (as a backend reads counts, one status per row).
    pub(crate) fn set(&mut self, status: ItemStatus, n: u64) {
        let count = match status {
            ItemStatus::Pending => &mut self.pending,
            ItemStatus::Running => &mut self.running,
            ItemStatus::Completed => &mut self.completed,
            ItemStatus::Failed => &mut self.failed,
            ItemStatus::DeadLettered => &mut self.dead_lettered,
            ItemStatus::Skipped => &mut self.skipped,
        };
        *count = n;
    }
}

/// A job as recorded, with its item counts.
#[derive(Debug, Clone, Serialize)]
pub struct JobRecord {
    /// The job's id.
    pub id: JobId,
    /// The plan's name.
    pub name: String,
    /// Current status.
    pub status: JobStatus,
    /// The phase running or last run.
    pub phase: Option<Phase>,
    /// The normalised plan, JSON text.
    pub spec: String,
    /// Hash of the normalised plan.
    pub spec_hash: String,
    /// The job file, if any.
    pub source: Option<PathBuf>,
    /// Number of agents.
    pub max_parallel: u32,
    /// Epoch ms.
    pub created_at: i64,
    /// Epoch ms of the first start.
    pub started_at: Option<i64>,
    /// Epoch ms of the last recorded change.
    pub updated_at: i64,
    /// Epoch ms when the job reached a finished status.
    pub finished_at: Option<i64>,
    /// Time spent running, summed over every run of the job, in ms.
    pub duration_ms: i64,
    /// Owning process id.
    pub owner_pid: Option<u32>,
    /// Owning host.
    pub owner_host: Option<String>,
    /// Epoch ms of the owner's last heartbeat.
    pub heartbeat_at: Option<i64>,
    /// How the plan was built (`spec::JobOrigin` as JSON).
    pub origin: Option<String>,
    /// The map input's fingerprint when its items were recorded (`MapPlan::input_fingerprint`).
    pub input_fingerprint: Option<String>,
    /// Paused by `mmm pause` (docs/control.md): a running job starts no new item.
    pub paused: bool,
    /// The agents `mmm scale` set last (docs/control.md); `None`: `max_parallel`.
    pub scaled_agents: Option<u32>,
    /// Item counts by status.
    pub counts: ItemCounts,
}

/// An item as recorded.
#[derive(Debug, Clone, Serialize)]
pub struct ItemRecord {
    /// Position in the input, 0-based.
    pub index: u64,
    /// Stable key.
    pub key: String,
    /// The item's value, JSON text.
    pub value: String,
    /// Current status.
    pub status: ItemStatus,
    /// Attempts made that count against retries.
    pub attempts: u32,
}

/// One attempt as recorded.
#[derive(Debug, Clone, Serialize)]
pub struct AttemptRecord {
    /// The item's position.
    pub item_index: u64,
    /// The item's key.
    pub item_key: String,
    /// 1-based attempt number for the item.
    pub number: u32,
    /// The agent's name (e.g. `agent-1`).
    pub agent: String,
    /// Epoch ms.
    pub started_at: i64,
    /// Epoch ms; none while in flight.
    pub ended_at: Option<i64>,
    /// Measured wall time in microseconds; none while in flight.
    pub duration_us: Option<u64>,
    /// None while in flight.
    pub outcome: Option<AttemptOutcome>,
    /// The failing (or last) step's exit code.
    pub exit_code: Option<i32>,
    /// A one-line reason for a failure.
    pub error: Option<String>,
    /// Per-step durations.
    pub steps: Vec<StepRecord>,
    /// Bounded tail of standard output.
    pub stdout_tail: String,
    /// Bounded tail of standard error.
    pub stderr_tail: String,
}

/// One event as recorded. Its JSON is `{seq, job, at, item_key, kind, payload}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventRecord {
    /// Store-wide increasing sequence number.
    pub seq: i64,
    /// The job.
    pub job: JobId,
    /// Epoch ms.
    pub at: i64,
    /// The item, for item events.
    pub item_key: Option<String>,
    /// The event: its kind and payload (`kind` and `payload` in JSON).
    #[serde(flatten)]
    pub event: Event,
}

/// A recorded snapshot: the job's metrics and agent states at one moment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SnapshotRecord {
    /// Epoch ms.
    pub at: i64,
    /// What the runner recorded (progress, agents, metrics, alerts, counters).
    pub payload: Snapshot,
}

/// A checkpoint as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckpointRecord {
    /// Increasing id, what `--from` takes.
    pub id: i64,
    /// Epoch ms.
    pub at: i64,
    /// The phase then.
    pub phase: Option<Phase>,
    /// Why it was taken.
    pub reason: String,
    /// Items completed then.
    pub completed: u64,
    /// Items in the DLQ then.
    pub dead_lettered: u64,
    /// Items skipped then.
    pub skipped: u64,
}
