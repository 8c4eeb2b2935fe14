//! The domain nouns of DESIGN.md: job ids, statuses, phases, agent states and attempt outcomes.
//!
//! This module depends on nothing else in the crate. Every status has one spelling, used in the
//! store, in JSON output and on the screen (`as_str` / `FromStr` round-trip).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A job's id: a UUIDv7, so ids sort by creation time. Stored and printed as 32 lowercase hex
/// digits; [`JobId::short`] is what tables show, and any unambiguous prefix is accepted back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct JobId(uuid::Uuid);

impl JobId {
    /// A new, time-ordered id.
    pub fn new() -> Self {
        JobId(uuid::Uuid::now_v7())
    }

    /// The first 12 hex digits: the UUIDv7 millisecond timestamp, unique in practice.
    pub fn short(&self) -> String {
        self.to_string()[..12].to_string()
    }
}

impl Default for JobId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.simple())
    }
}

impl FromStr for JobId {
    type Err = uuid::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        uuid::Uuid::parse_str(s).map(JobId)
    }
}

impl From<JobId> for String {
    fn from(id: JobId) -> String {
        id.to_string()
    }
}

impl TryFrom<String> for JobId {
    type Error = uuid::Error;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

/// Declares a status enum whose variants have one canonical snake_case spelling.
macro_rules! status_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The canonical spelling, as stored and printed.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownStatus;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err(UnknownStatus { kind: stringify!($name), value: other.to_string() }),
                }
            }
        }
    };
}

/// A stored status string that this version does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} `{value}`")]
pub struct UnknownStatus {
    /// Which enum was being read.
    pub kind: &'static str,
    /// The text that did not match.
    pub value: String,
}

status_enum! {
    /// Where a job stands.
    JobStatus {
        /// Created, nothing run yet.
        Pending => "pending",
        /// A process is working on it.
        Running => "running",
        /// The process died or was stopped; the job can be resumed.
        Interrupted => "interrupted",
        /// Every item completed (or was skipped).
        Completed => "completed",
        /// The map finished but some items are in the DLQ.
        CompletedWithFailures => "completed_with_failures",
        /// Setup or reduce failed.
        Failed => "failed",
        /// Stopped on purpose, not to be resumed.
        Cancelled => "cancelled",
    }
}

impl JobStatus {
    /// True once the job will not change any more without a resume or retry.
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            JobStatus::Completed
                | JobStatus::CompletedWithFailures
                | JobStatus::Failed
                | JobStatus::Cancelled
        )
    }
}

status_enum! {
    /// The three phases of a job, in order.
    Phase {
        /// Commands run once before the map.
        Setup => "setup",
        /// Items x steps over N agents.
        Map => "map",
        /// Commands run once after the map.
        Reduce => "reduce",
    }
}

status_enum! {
    /// Where one item stands.
    ItemStatus {
        /// Not started yet (or requeued).
        Pending => "pending",
        /// An agent is working on it.
        Running => "running",
        /// Its steps all succeeded (or were skipped by `when:`).
        Completed => "completed",
        /// The last attempt failed; it will be retried.
        Failed => "failed",
        /// Attempts exhausted: parked in the dead-letter queue.
        DeadLettered => "dead_lettered",
        /// Every step's `when:` was false.
        Skipped => "skipped",
    }
}

status_enum! {
    /// How one attempt of one item ended.
    AttemptOutcome {
        /// Every step exited 0 or was skipped.
        Succeeded => "succeeded",
        /// A step exited non-zero, could not start, or could not be rendered.
        Failed => "failed",
        /// A step ran past its timeout and its process group was killed.
        TimedOut => "timed_out",
        /// The job was stopped while the attempt ran; not counted against retries.
        Interrupted => "interrupted",
    }
}

/// The state machine of one agent (DESIGN.md, from the seed spec). `Running` carries the step
/// and the progress the step reported, if any.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum AgentState {
    /// Waiting for an item.
    Queued,
    /// Preparing an item (rendering commands, starting the process).
    Initializing,
    /// Running a step of an item.
    Running {
        /// The step's name.
        step: String,
        /// Progress reported by the step, 0..=1, when it reports any.
        progress: Option<f32>,
    },
    /// Merging the item's result back (isolated agents).
    Merging,
    /// The agent has no more work: the map is over for it.
    Completed,
    /// The last attempt failed.
    Failed {
        /// A one-line reason.
        error: String,
    },
    /// Waiting out the backoff before another attempt.
    Retrying {
        /// The number of the attempt about to start (2 for the first retry).
        attempt: u32,
    },
    /// The agent's last item went to the DLQ.
    DeadLettered,
}

impl AgentState {
    /// The state's name without its data, as shown in tables.
    pub fn name(&self) -> &'static str {
        match self {
            AgentState::Queued => "queued",
            AgentState::Initializing => "initializing",
            AgentState::Running { .. } => "running",
            AgentState::Merging => "merging",
            AgentState::Completed => "completed",
            AgentState::Failed { .. } => "failed",
            AgentState::Retrying { .. } => "retrying",
            AgentState::DeadLettered => "dead_lettered",
        }
    }
}

/// The type of an event in a job's event log. Every kind belongs to one category (`job`,
/// `phase`, `item`, `attempt`, `step`, `agent`, `checkpoint`, `alert`), and filters accept
/// either a kind or a category (`mmm events --type item`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A new job began its first run.
    JobStarted,
    /// A recorded job continues (`mmm resume`, `mmm dlq retry`).
    JobResumed,
    /// A run of the job ended (`status` in the payload; interrupted jobs can resume).
    JobFinished,
    /// The map's items were read from the input.
    ItemsLoaded,
    /// On resume, the input had new, vanished or changed items.
    InputChanged,
    /// The input could not be read.
    InputUnavailable,
    /// A resume accepted a changed job file.
    SpecChanged,
    /// A resume ran the job as recorded because its file is gone.
    SpecFromStore,
    /// A phase (setup, map, reduce) began.
    PhaseStarted,
    /// A phase ended.
    PhaseFinished,
    /// A setup or reduce command ended.
    PhaseCommandFinished,
    /// An item's attempt began on an agent. Not recorded for an item's first attempt, whose
    /// attempt row holds the same facts (docs/events.md).
    AttemptStarted,
    /// An attempt failed and the item will be retried.
    AttemptFailed,
    /// An item succeeded.
    ItemCompleted,
    /// Every step of an item was skipped by its `when:`.
    ItemSkipped,
    /// An item used up its attempts and went to the DLQ.
    ItemDeadLettered,
    /// An item goes back to pending, with the reason (interrupted, input changed, ...).
    ItemRequeued,
    /// A running step reported a message (`mmm report`).
    StepReported,
    /// An agent began taking items.
    AgentStarted,
    /// An agent has no more work.
    AgentFinished,
    /// A checkpoint was recorded.
    Checkpoint,
    /// An alert rule fired.
    AlertRaised,
    /// A condition that raised an alert is over.
    AlertResolved,
}

impl EventKind {
    /// Every kind, in the order above.
    pub const ALL: &'static [EventKind] = &[
        EventKind::JobStarted,
        EventKind::JobResumed,
        EventKind::JobFinished,
        EventKind::ItemsLoaded,
        EventKind::InputChanged,
        EventKind::InputUnavailable,
        EventKind::SpecChanged,
        EventKind::SpecFromStore,
        EventKind::PhaseStarted,
        EventKind::PhaseFinished,
        EventKind::PhaseCommandFinished,
        EventKind::AttemptStarted,
        EventKind::AttemptFailed,
        EventKind::ItemCompleted,
        EventKind::ItemSkipped,
        EventKind::ItemDeadLettered,
        EventKind::ItemRequeued,
        EventKind::StepReported,
        EventKind::AgentStarted,
        EventKind::AgentFinished,
        EventKind::Checkpoint,
        EventKind::AlertRaised,
        EventKind::AlertResolved,
    ];

    /// The categories, for filters and help texts.
    pub const CATEGORIES: &'static [&'static str] = &[
        "job",
        "phase",
        "item",
        "attempt",
        "step",
        "agent",
        "checkpoint",
        "alert",
    ];

    /// The kind's spelling in the store and in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::JobStarted => "job_started",
            EventKind::JobResumed => "job_resumed",
            EventKind::JobFinished => "job_finished",
            EventKind::ItemsLoaded => "items_loaded",
            EventKind::InputChanged => "input_changed",
            EventKind::InputUnavailable => "input_unavailable",
            EventKind::SpecChanged => "spec_changed",
            EventKind::SpecFromStore => "spec_from_store",
            EventKind::PhaseStarted => "phase_started",
            EventKind::PhaseFinished => "phase_finished",
            EventKind::PhaseCommandFinished => "phase_command_finished",
            EventKind::AttemptStarted => "attempt_started",
            EventKind::AttemptFailed => "attempt_failed",
            EventKind::ItemCompleted => "item_completed",
            EventKind::ItemSkipped => "item_skipped",
            EventKind::ItemDeadLettered => "item_dead_lettered",
            EventKind::ItemRequeued => "item_requeued",
            EventKind::StepReported => "step_reported",
            EventKind::AgentStarted => "agent_started",
            EventKind::AgentFinished => "agent_finished",
            EventKind::Checkpoint => "checkpoint",
            EventKind::AlertRaised => "alert_raised",
            EventKind::AlertResolved => "alert_resolved",
        }
    }

    /// The kind's category: job-wide facts (input, spec) count as `job`.
    pub fn category(self) -> &'static str {
        match self {
            EventKind::JobStarted
            | EventKind::JobResumed
            | EventKind::JobFinished
            | EventKind::ItemsLoaded
            | EventKind::InputChanged
            | EventKind::InputUnavailable
            | EventKind::SpecChanged
            | EventKind::SpecFromStore => "job",
            EventKind::PhaseStarted
            | EventKind::PhaseFinished
            | EventKind::PhaseCommandFinished => "phase",
            EventKind::AttemptStarted | EventKind::AttemptFailed => "attempt",
            EventKind::ItemCompleted
            | EventKind::ItemSkipped
            | EventKind::ItemDeadLettered
            | EventKind::ItemRequeued => "item",
            EventKind::StepReported => "step",
            EventKind::AgentStarted | EventKind::AgentFinished => "agent",
            EventKind::Checkpoint => "checkpoint",
            EventKind::AlertRaised | EventKind::AlertResolved => "alert",
        }
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EventKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EventKind::ALL
            .iter()
            .copied()
            .find(|kind| kind.as_str() == s)
            .ok_or_else(|| format!("unknown event type `{s}`"))
    }
}

/// Milliseconds since the Unix epoch: how every timestamp is stored (portable across SQLite and
/// PostgreSQL, and cheap to compare).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip_through_their_spelling() {
        for s in JobStatus::ALL {
            assert_eq!(s.as_str().parse::<JobStatus>().unwrap(), *s);
        }
        for s in ItemStatus::ALL {
            assert_eq!(s.as_str().parse::<ItemStatus>().unwrap(), *s);
        }
        assert!("bogus".parse::<ItemStatus>().is_err());
    }

    #[test]
    fn event_kinds_round_trip_and_belong_to_a_known_category() {
        for kind in EventKind::ALL {
            assert_eq!(kind.as_str().parse::<EventKind>().unwrap(), *kind);
            assert!(EventKind::CATEGORIES.contains(&kind.category()), "{kind}");
            let json = serde_json::to_value(kind).unwrap();
            assert_eq!(json, kind.as_str());
        }
        assert!("bogus".parse::<EventKind>().is_err());
    }

    #[test]
    fn job_ids_sort_by_creation_and_print_as_hex() {
        let a = JobId::new();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = JobId::new();
        assert!(a < b);
        assert_eq!(a.to_string().len(), 32);
        assert_eq!(a.to_string().parse::<JobId>().unwrap(), a);
        assert!(b.to_string().starts_with(&b.short()));
    }
}
