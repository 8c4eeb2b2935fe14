//! The events the store records on its own, beside those the runner sends: their kinds and
//! payloads, written here once for every backend. Kinds outside
//! [`EventKind`](mmm_core::job::EventKind) are spelled here and nowhere else in the store.

use serde_json::json;

use crate::ItemRecord;
use mmm_core::job::{EventKind, ItemStatus, JobStatus};

/// A dead-lettered item went back to `pending` (`mmm dlq retry`).
pub(crate) const DLQ_RETRY: &str = "dlq_retry";

/// A dead-lettered item was given up on and marked `skipped` (`mmm dlq purge`).
pub(crate) const DLQ_PURGED: &str = "dlq_purged";

/// A store command changed the job's status (a DLQ retry or purge).
pub(crate) const JOB_STATUS_CHANGED: &str = "job_status_changed";

/// `mmm repair` changed the job's record.
pub(crate) const REPAIRED: &str = "repaired";

/// Why an item was requeued because its input changed, in an `item_requeued` event and in the
/// resume ledger.
const INPUT_CHANGED: &str = "input_changed";

/// Why an item was requeued because its claimer's lease ran out.
const LEASE_EXPIRED: &str = "lease_expired";

/// An event a store operation records, at the operation's time.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StoreEvent {
    /// The event's kind.
    pub(crate) kind: &'static str,
    /// The item it is about, for item events.
    pub(crate) item_key: Option<String>,
    /// Its data.
    pub(crate) payload: serde_json::Value,
}

impl StoreEvent {
    /// A dead-lettered item moved by a DLQ command (`kind`: [`DLQ_RETRY`] or [`DLQ_PURGED`])
    /// to status `to`; the payload keeps the attempts it had.
    pub(crate) fn dlq_moved(kind: &'static str, item: &ItemRecord, to: ItemStatus) -> StoreEvent {
        StoreEvent {
            kind,
            item_key: Some(item.key.clone()),
            payload: json!({ "attempts": item.attempts, "status": to }),
        }
    }

    /// The job's status went from `from` to `to` because of a command that records `by`.
    pub(crate) fn job_status_changed(from: JobStatus, to: JobStatus, by: &str) -> StoreEvent {
        StoreEvent {
            kind: JOB_STATUS_CHANGED,
            item_key: None,
            payload: json!({ "from": from, "to": to, "by": by }),
        }
    }

    /// The item `key` runs again because its input value changed.
    pub(crate) fn requeued_for_new_value(key: &str) -> StoreEvent {
        StoreEvent {
            kind: EventKind::ItemRequeued.as_str(),
            item_key: Some(key.to_string()),
            payload: json!({ "reason": INPUT_CHANGED }),
        }
    }

    /// The item `key` was taken from `holder`, whose lease on it ran out.
    pub(crate) fn lease_expired(key: &str, holder: Option<&str>) -> StoreEvent {
        StoreEvent {
            kind: EventKind::ItemRequeued.as_str(),
            item_key: Some(key.to_string()),
            payload: json!({ "reason": LEASE_EXPIRED, "claimed_by": holder }),
        }
    }

    /// `mmm repair` changed the record; `payload` says what it found and did.
    pub(crate) fn repaired(payload: serde_json::Value) -> StoreEvent {
        StoreEvent {
            kind: REPAIRED,
            item_key: None,
            payload,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// These payloads are read by `mmm jobs`, the ledger and the web views: they stay as they
    /// were when each backend spelled them.
    #[test]
    fn payloads_keep_their_stored_form() {
        let item = ItemRecord {
            index: 3,
            key: "k".to_string(),
            value: "null".to_string(),
            status: ItemStatus::DeadLettered,
            attempts: 2,
        };
        let moved = StoreEvent::dlq_moved(DLQ_RETRY, &item, ItemStatus::Pending);
        assert_eq!(
            (moved.kind, moved.item_key.as_deref()),
            ("dlq_retry", Some("k"))
        );
        assert_eq!(moved.payload, json!({ "attempts": 2, "status": "pending" }));
        let changed = StoreEvent::job_status_changed(
            JobStatus::CompletedWithFailures,
            JobStatus::Completed,
            DLQ_PURGED,
        );
        assert_eq!(changed.kind, "job_status_changed");
        assert_eq!(
            changed.payload,
            json!({ "from": "completed_with_failures", "to": "completed", "by": "dlq_purged" })
        );
        let requeued = StoreEvent::requeued_for_new_value("k");
        assert_eq!(requeued.kind, "item_requeued");
        assert_eq!(
            requeued.payload.to_string(),
            r#"{"reason":"input_changed"}"#
        );
        let taken = StoreEvent::lease_expired("k", Some("w1"));
        assert_eq!(
            taken.payload,
            json!({ "reason": "lease_expired", "claimed_by": "w1" })
        );
        assert_eq!(StoreEvent::repaired(json!({})).kind, "repaired");
    }
}
