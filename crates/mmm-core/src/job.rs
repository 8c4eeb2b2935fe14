//! The domain nouns of DESIGN.md: job ids, statuses, phases, agent states and attempt outcomes.
//! (The events of a job's log are in [`crate::event`].)
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

status_enum! {
    /// The state machine of one agent (DESIGN.md, from the seed spec): what it is doing now.
    /// Its data (the item, the step, the step's progress, the last exit code) sits beside it
    /// in the tracker's slot and in the snapshot's agent row.
    AgentState {
        /// Waiting for an item.
        Queued => "queued",
        /// Preparing an attempt (rendering commands, starting the process).
        Initializing => "initializing",
        /// Running a step of an item.
        Running => "running",
        /// Merging the item's result back (isolated agents).
        Merging => "merging",
        /// No more work: the map is over for it.
        Completed => "completed",
        /// The last attempt failed.
        Failed => "failed",
        /// Waiting out the backoff before another attempt.
        Retrying => "retrying",
        /// The agent's last item went to the DLQ.
        DeadLettered => "dead_lettered",
        /// Waiting because the API it calls throttles: its item's attempt was throttled and
        /// waits to be retried, or the job's effective concurrency was lowered below it
        /// (docs/api-work.md). Views say `waiting (throttled)`.
        Throttled => "throttled",
    }
}

impl AgentState {
    /// How views name the state: its spelling, but `waiting (throttled)` for
    /// [`AgentState::Throttled`].
    pub fn label(self) -> &'static str {
        match self {
            AgentState::Throttled => "waiting (throttled)",
            other => other.as_str(),
        }
    }

    /// Whether its last attempt failed (failed, retrying or dead-lettered).
    pub fn is_failed(self) -> bool {
        matches!(
            self,
            AgentState::Failed | AgentState::Retrying | AgentState::DeadLettered
        )
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
        for s in AgentState::ALL {
            assert_eq!(s.as_str().parse::<AgentState>().unwrap(), *s);
        }
        assert!("bogus".parse::<ItemStatus>().is_err());
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
