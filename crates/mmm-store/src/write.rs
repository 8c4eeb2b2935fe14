//! [`Write`]: a change the runner records. The store writer batches them and
//! [`JobLog::apply`](crate::JobLog::apply) applies a batch in one transaction.

use crate::logs::NewLogChunk;
use crate::steps::StepRecord;
use mmm_core::event::Event;
use mmm_core::job::{AttemptOutcome, ItemStatus, JobId, JobStatus, Phase};
use mmm_core::snapshot::Snapshot;

/// A change to record. A batch of these is applied in one transaction.
#[derive(Debug, Clone)]
pub enum Write {
    /// Set the job's status (and `started_at`/`finished_at` as it implies).
    JobStatus {
        job: JobId,
        status: JobStatus,
        at: i64,
    },
    /// Set the job's current phase.
    JobPhase { job: JobId, phase: Phase, at: i64 },
    /// The owner is alive; total run time so far (all runs) is `duration_ms`.
    Heartbeat {
        job: JobId,
        at: i64,
        duration_ms: i64,
    },
    /// An attempt began: insert it (in flight) and mark the item `running`.
    AttemptStarted {
        job: JobId,
        item_index: u64,
        number: u32,
        agent: String,
        at: i64,
    },
    /// An attempt ended: complete its row and set the item's status; when
    /// `counts_against_retries`, the item's attempt count grows by one.
    AttemptFinished {
        job: JobId,
        item_index: u64,
        number: u32,
        ended_at: i64,
        duration_us: u64,
        outcome: AttemptOutcome,
        exit_code: Option<i32>,
        error: Option<String>,
        steps: Vec<StepRecord>,
        stdout_tail: String,
        stderr_tail: String,
        item_status: ItemStatus,
        counts_against_retries: bool,
    },
    /// Append an event.
    Event {
        job: JobId,
        at: i64,
        item_key: Option<String>,
        event: Event,
    },
    /// Record the fingerprint of the input the items were loaded from.
    InputFingerprint {
        job: JobId,
        at: i64,
        fingerprint: Option<String>,
    },
    /// Record a checkpoint: where the job stands now (its last attempt and its counts).
    Checkpoint {
        job: JobId,
        at: i64,
        phase: Option<Phase>,
        /// Why: `phase:map`, `interval`, ...
        reason: String,
    },
    /// A chunk of an attempt's output (docs/logs.md).
    LogChunk {
        job: JobId,
        /// Boxed: a chunk is large, the other writes are small.
        chunk: Box<NewLogChunk>,
    },
    /// Chunks `from_seq..to_seq` of an attempt's log were dropped by the job's cap: they go.
    LogDropped {
        job: JobId,
        item_index: u64,
        attempt: u32,
        from_seq: u32,
        to_seq: u32,
        at: i64,
    },
    /// Append a snapshot of the job's metrics and agent states.
    Snapshot {
        job: JobId,
        at: i64,
        /// Boxed: a snapshot is large, the other writes are small.
        payload: Box<Snapshot>,
    },
}

impl Write {
    /// The job the write is about.
    pub fn job(&self) -> JobId {
        match self {
            Write::JobStatus { job, .. }
            | Write::JobPhase { job, .. }
            | Write::Heartbeat { job, .. }
            | Write::AttemptStarted { job, .. }
            | Write::AttemptFinished { job, .. }
            | Write::Event { job, .. }
            | Write::Snapshot { job, .. }
            | Write::Checkpoint { job, .. }
            | Write::InputFingerprint { job, .. }
            | Write::LogChunk { job, .. }
            | Write::LogDropped { job, .. } => *job,
        }
    }

    /// `event` now, about the job or one of its items.
    pub fn event(job: JobId, item_key: Option<&str>, event: Event) -> Write {
        Write::Event {
            job,
            at: mmm_core::job::now_ms(),
            item_key: item_key.map(str::to_string),
            event,
        }
    }

    /// When the change happened, epoch ms (`ended_at` for a finished attempt).
    pub fn at(&self) -> i64 {
        match self {
            Write::JobStatus { at, .. }
            | Write::JobPhase { at, .. }
            | Write::Heartbeat { at, .. }
            | Write::AttemptStarted { at, .. }
            | Write::Event { at, .. }
            | Write::Snapshot { at, .. }
            | Write::Checkpoint { at, .. }
            | Write::InputFingerprint { at, .. }
            | Write::LogDropped { at, .. } => *at,
            Write::LogChunk { chunk, .. } => chunk.at,
            Write::AttemptFinished { ended_at, .. } => *ended_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_name_their_job_and_time() {
        let job = JobId::new();
        let write = Write::Heartbeat {
            job,
            at: 7,
            duration_ms: 3,
        };
        assert_eq!((write.job(), write.at()), (job, 7));
    }
}
