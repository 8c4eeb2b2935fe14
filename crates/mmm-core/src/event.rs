//! The events of a job's log, typed: every kind is a variant of [`Event`] with its payload as a
//! struct, and [`EventKind`] names the kinds (for filters and help texts).
//!
//! The store keeps an event as its kind's spelling and its payload as JSON; [`Event::from_parts`]
//! and [`Event::to_parts`] convert, and the JSON of every payload is the documented one
//! (docs/events.md). An event this version cannot read (a kind a newer mmm wrote, or a payload
//! of another shape) becomes [`Event::Unknown`] with what was stored: it is kept, shown and
//! copied as it is, never an error.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::alerts::Alert;
use crate::job::{AttemptOutcome, ItemStatus, JobStatus, Phase};

mod payloads;
pub use payloads::*;

/// Declares [`EventKind`] and [`Event`] together, so that every kind has exactly one variant,
/// one spelling and one category.
macro_rules! events {
    ($(
        $(#[$doc:meta])*
        $variant:ident($payload:ty) => $text:literal, $category:literal;
    )+) => {
        /// The type of an event in a job's event log. Every kind belongs to one category
        /// ([`EventKind::CATEGORIES`]), and filters accept either a kind or a category
        /// (`mmm events --type item`).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum EventKind {
            $($(#[$doc])* $variant,)+
        }

        impl EventKind {
            /// Every kind, in declaration order.
            pub const ALL: &'static [EventKind] = &[$(EventKind::$variant),+];

            /// The kind's spelling in the store and in JSON.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(EventKind::$variant => $text,)+
                }
            }

            /// The kind's category: job-wide facts (input, spec, status) count as `job`.
            pub fn category(self) -> &'static str {
                match self {
                    $(EventKind::$variant => $category,)+
                }
            }
        }

        /// One event: its kind and its payload.
        #[derive(Debug, Clone, PartialEq)]
        pub enum Event {
            $($(#[$doc])* $variant($payload),)+
            /// An event this version of mmm cannot read: a kind a newer version wrote, or a
            /// payload of another shape. Kept as stored.
            Unknown {
                /// The kind's spelling as stored.
                kind: String,
                /// The payload as stored.
                payload: serde_json::Value,
            },
        }

        /// An event serialises as its stored parts, `{"kind": ..., "payload": ...}`, so a record
        /// that flattens it keeps the documented shape (`seq`, `job`, `at`, `item_key`, `kind`,
        /// `payload`). The payload is written straight from its struct.
        impl Serialize for Event {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                use serde::ser::SerializeStruct;
                let mut event = serializer.serialize_struct("Event", 2)?;
                event.serialize_field("kind", self.kind_name())?;
                match self {
                    $(Event::$variant(payload) => event.serialize_field("payload", payload)?,)+
                    Event::Unknown { payload, .. } => event.serialize_field("payload", payload)?,
                }
                event.end()
            }
        }

        impl Event {
            /// The event's kind; `None` for [`Event::Unknown`].
            pub fn kind(&self) -> Option<EventKind> {
                match self {
                    $(Event::$variant(_) => Some(EventKind::$variant),)+
                    Event::Unknown { .. } => None,
                }
            }

            /// The kind's spelling as stored (an unknown kind's own).
            pub fn kind_name(&self) -> &str {
                match self {
                    $(Event::$variant(_) => $text,)+
                    Event::Unknown { kind, .. } => kind,
                }
            }

            /// The payload as JSON, as stored and served.
            pub fn payload(&self) -> serde_json::Value {
                match self {
                    $(Event::$variant(payload) => to_json(payload),)+
                    Event::Unknown { payload, .. } => payload.clone(),
                }
            }

            /// The payload as JSON text, written straight from its struct (what the store
            /// keeps, without building a JSON value first: one event is written per item).
            pub fn payload_text(&self) -> String {
                let text = match self {
                    $(Event::$variant(payload) => serde_json::to_string(payload),)+
                    Event::Unknown { payload, .. } => serde_json::to_string(payload),
                };
                text.expect("event payloads are plain data that always serialise")
            }

            /// Reads an event from its stored parts; what this version cannot read becomes
            /// [`Event::Unknown`].
            pub fn from_parts(kind: &str, payload: serde_json::Value) -> Event {
                let parsed = match kind {
                    $($text => <$payload>::deserialize(&payload).ok().map(Event::$variant),)+
                    _ => None,
                };
                parsed.unwrap_or_else(|| Event::Unknown {
                    kind: kind.to_string(),
                    payload,
                })
            }
        }
    };
}

events! {
    /// A new job began its first run.
    JobStarted(JobStarted) => "job_started", "job";
    /// A recorded job continues (`mmm resume`, `mmm dlq retry`).
    JobResumed(JobResumed) => "job_resumed", "job";
    /// A run of the job ended (interrupted jobs can resume).
    JobFinished(JobFinished) => "job_finished", "job";
    /// The map's items were read from the input.
    ItemsLoaded(ItemsLoaded) => "items_loaded", "job";
    /// A `--halt` condition was met: the map stops, the job is left resumable.
    JobHalted(JobHalted) => "job_halted", "job";
    /// On resume, the input had new, vanished or changed items.
    InputChanged(InputChanged) => "input_changed", "job";
    /// The input could not be read.
    InputUnavailable(InputUnavailable) => "input_unavailable", "job";
    /// The store was unavailable for a while and the run waited for it.
    StoreUnavailable(StoreUnavailable) => "store_unavailable", "job";
    /// A resume accepted a changed job file.
    SpecChanged(SpecChanged) => "spec_changed", "job";
    /// A resume ran the job as recorded because its file is gone.
    SpecFromStore(SpecFromStore) => "spec_from_store", "job";
    /// The job's status changed outside a run (`mmm dlq retry` or `purge`).
    JobStatusChanged(JobStatusChanged) => "job_status_changed", "job";
    /// `mmm repair` changed the job's record.
    Repaired(Repaired) => "repaired", "job";
    /// The job was copied between stores (`mmm store copy|migrate`).
    JobCopied(JobCopied) => "job_copied", "job";
    /// A phase (setup, map, reduce, or the map's worktrees) began.
    PhaseStarted(PhaseStarted) => "phase_started", "phase";
    /// A phase ended.
    PhaseFinished(PhaseFinished) => "phase_finished", "phase";
    /// A setup or reduce command ended.
    PhaseCommandFinished(PhaseCommandFinished) => "phase_command_finished", "phase";
    /// An item's attempt began on an agent. Not recorded for an item's first attempt, whose
    /// attempt row holds the same facts (docs/events.md), unless the map is shared.
    AttemptStarted(AttemptStarted) => "attempt_started", "attempt";
    /// An attempt failed and the item will be retried (or git failed under it).
    AttemptFailed(AttemptFailed) => "attempt_failed", "attempt";
    /// An item succeeded.
    ItemCompleted(ItemCompleted) => "item_completed", "item";
    /// Every step of an item was skipped by its `when:`.
    ItemSkipped(ItemSkipped) => "item_skipped", "item";
    /// An item used up its attempts and went to the DLQ.
    ItemDeadLettered(ItemDeadLettered) => "item_dead_lettered", "item";
    /// An item goes back to pending, with the reason.
    ItemRequeued(ItemRequeued) => "item_requeued", "item";
    /// A dead-lettered item goes back to pending with a fresh retry budget (`mmm dlq retry`).
    DlqRetry(DlqMoved) => "dlq_retry", "item";
    /// A dead-lettered item is given up on and marked skipped (`mmm dlq purge`).
    DlqPurged(DlqMoved) => "dlq_purged", "item";
    /// A running step reported a message, its progress or a counter (`mmm report`).
    StepReported(StepReported) => "step_reported", "step";
    /// An agent began taking items.
    AgentStarted(AgentEvent) => "agent_started", "agent";
    /// An agent has no more work.
    AgentFinished(AgentEvent) => "agent_finished", "agent";
    /// A checkpoint was recorded.
    Checkpoint(Checkpoint) => "checkpoint", "checkpoint";
    /// An alert rule fired.
    AlertRaised(Alert) => "alert_raised", "alert";
    /// A condition that raised an alert is over.
    AlertResolved(AlertResolved) => "alert_resolved", "alert";
    /// Someone asked the running job to change course (docs/control.md).
    ControlRequested(ControlRequested) => "control_requested", "control";
    /// The job's owner paused it: no new item starts.
    Paused(Paused) => "paused", "control";
    /// The job's owner unpaused it: items start again.
    Unpaused(ControlApplied) => "unpaused", "control";
    /// The job's owner changed the number of agents.
    Scaled(Scaled) => "scaled", "control";
    /// The job's owner drains it: no new item starts, and it stops once the items in flight end.
    Draining(ControlApplied) => "draining", "control";
    /// The job's owner cancels it: running commands stop, the job ends `cancelled`.
    Cancelling(Cancelling) => "cancelling", "control";
    /// A budget on a counter was set or changed (`map.budget`, `mmm budget`; docs/api-work.md).
    BudgetSet(BudgetSet) => "budget_set", "control";
    /// A counter reached its budget: the job is paused until the budget is raised.
    BudgetReached(BudgetReached) => "budget_reached", "control";
    /// The API the job calls throttled it, or stopped throttling: its effective concurrency
    /// changed (halved on throttling, one more agent per window of success).
    ConcurrencyChanged(ConcurrencyChanged) => "concurrency_changed", "control";
}

impl EventKind {
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
        "control",
    ];
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A kind spelling this version does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown event type `{0}`")]
pub struct UnknownKind(pub String);

impl FromStr for EventKind {
    type Err = UnknownKind;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EventKind::ALL
            .iter()
            .copied()
            .find(|kind| kind.as_str() == s)
            .ok_or_else(|| UnknownKind(s.to_string()))
    }
}

impl Event {
    /// The stored parts: the kind's spelling and the payload's JSON.
    pub fn to_parts(&self) -> (&str, serde_json::Value) {
        (self.kind_name(), self.payload())
    }

    /// The agent the event names (attempts, items, agents), if any.
    pub fn agent(&self) -> Option<&str> {
        match self {
            Event::AttemptStarted(e) => Some(&e.agent),
            Event::AttemptFailed(e) => e.agent.as_deref(),
            Event::ItemCompleted(e) => Some(&e.agent),
            Event::ItemSkipped(e) => Some(&e.agent),
            Event::ItemDeadLettered(e) => Some(&e.agent),
            Event::AgentStarted(e) | Event::AgentFinished(e) => Some(&e.agent),
            _ => None,
        }
    }
}

impl<'de> Deserialize<'de> for Event {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Parts {
            kind: String,
            #[serde(default)]
            payload: serde_json::Value,
        }
        let parts = Parts::deserialize(deserializer)?;
        Ok(Event::from_parts(&parts.kind, parts.payload))
    }
}

/// A payload's JSON. Payloads are plain data (strings, numbers, maps with string keys), which
/// serde_json always serialises.
fn to_json<T: Serialize>(payload: &T) -> serde_json::Value {
    serde_json::to_value(payload).expect("event payloads are plain data that always serialise")
}

#[cfg(test)]
mod tests;
