//! The events the store records on its own, beside those the runner sends (DLQ moves, status
//! changes, repairs, requeues for a lease that ran out or a changed input): built here once,
//! typed, for every backend.

use crate::ItemRecord;
use mmm_core::event::{
    DlqMoved, Event, EventKind, ItemRequeued, JobStatusChanged, Repaired, RequeueReason,
};
use mmm_core::job::{ItemStatus, JobStatus};

/// An event a store operation records, at the operation's time.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StoreEvent {
    /// The item it is about, for item events.
    pub(crate) item_key: Option<String>,
    /// The event.
    pub(crate) event: Event,
}

impl StoreEvent {
    /// A dead-lettered item moved by a DLQ command (`kind`: [`EventKind::DlqRetry`] or
    /// [`EventKind::DlqPurged`]) to status `to`; the payload keeps the attempts it had.
    pub(crate) fn dlq_moved(kind: EventKind, item: &ItemRecord, to: ItemStatus) -> StoreEvent {
        let moved = DlqMoved {
            attempts: item.attempts,
            status: to,
        };
        let event = match kind {
            EventKind::DlqPurged => Event::DlqPurged(moved),
            _ => Event::DlqRetry(moved),
        };
        StoreEvent {
            item_key: Some(item.key.clone()),
            event,
        }
    }

    /// The job's status went from `from` to `to` because of a command that records `by`.
    pub(crate) fn job_status_changed(from: JobStatus, to: JobStatus, by: EventKind) -> StoreEvent {
        StoreEvent {
            item_key: None,
            event: Event::JobStatusChanged(JobStatusChanged {
                from,
                to,
                by: by.as_str().to_string(),
            }),
        }
    }

    /// The item `key` runs again because its input value changed.
    pub(crate) fn requeued_for_new_value(key: &str) -> StoreEvent {
        StoreEvent {
            item_key: Some(key.to_string()),
            event: Event::ItemRequeued(ItemRequeued {
                reason: RequeueReason::InputChanged,
                claimed_by: None,
            }),
        }
    }

    /// The item `key` was taken from `holder`, whose lease on it ran out.
    pub(crate) fn lease_expired(key: &str, holder: Option<&str>) -> StoreEvent {
        StoreEvent {
            item_key: Some(key.to_string()),
            event: Event::ItemRequeued(ItemRequeued {
                reason: RequeueReason::LeaseExpired,
                claimed_by: holder.map(str::to_string),
            }),
        }
    }

    /// `mmm repair` changed the record: what it found and did.
    pub(crate) fn repaired(repair: &Repaired) -> StoreEvent {
        StoreEvent {
            item_key: None,
            event: Event::Repaired(repair.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
        let moved = StoreEvent::dlq_moved(EventKind::DlqRetry, &item, ItemStatus::Pending);
        assert_eq!(
            (moved.event.kind_name(), moved.item_key.as_deref()),
            ("dlq_retry", Some("k"))
        );
        assert_eq!(
            moved.event.payload(),
            json!({ "attempts": 2, "status": "pending" })
        );
        let changed = StoreEvent::job_status_changed(
            JobStatus::CompletedWithFailures,
            JobStatus::Completed,
            EventKind::DlqPurged,
        );
        assert_eq!(changed.event.kind_name(), "job_status_changed");
        assert_eq!(
            changed.event.payload(),
            json!({ "from": "completed_with_failures", "to": "completed", "by": "dlq_purged" })
        );
        let requeued = StoreEvent::requeued_for_new_value("k");
        assert_eq!(requeued.event.kind_name(), "item_requeued");
        assert_eq!(
            requeued.event.payload().to_string(),
            r#"{"reason":"input_changed"}"#
        );
        let taken = StoreEvent::lease_expired("k", Some("w1"));
        assert_eq!(
            taken.event.payload(),
            json!({ "reason": "lease_expired", "claimed_by": "w1" })
        );
        let repaired = Repaired {
            changes: Vec::new(),
            actions: Vec::new(),
        };
        assert_eq!(
            StoreEvent::repaired(&repaired).event.kind_name(),
            "repaired"
        );
    }
}
