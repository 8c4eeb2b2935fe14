//! [`EventReads`]: a job's events and snapshots, and waiting for new ones.

use crate::{EventRecord, SnapshotRecord, StoreError};
use mmm_core::job::JobId;

/// Reads of a job's events and snapshots, for live views, history and replay; readers follow
/// the event sequence number (`crate::events::Subscription`).
pub trait EventReads {
    /// Events of the job with `seq > after`, oldest first, at most `limit`.
    fn events(&self, job: JobId, after: i64, limit: usize) -> Result<Vec<EventRecord>, StoreError>;
    /// The job's newest `limit` events, oldest first.
    fn recent_events(&self, job: JobId, limit: usize) -> Result<Vec<EventRecord>, StoreError>;
    /// At most `limit` of the job's snapshots taken after `after` (epoch ms), oldest first.
    fn snapshots(
        &self,
        job: JobId,
        after: i64,
        limit: usize,
    ) -> Result<Vec<SnapshotRecord>, StoreError>;
    /// The job's newest snapshot, if any.
    fn latest_snapshot(&self, job: JobId) -> Result<Option<SnapshotRecord>, StoreError>;

    /// Waits at most `timeout` for the job to record new events; may return early without
    /// any. PostgreSQL wakes on `NOTIFY mmm_events` (sent when a batch with events of the job
    /// commits, from any host); SQLite wakes when a batch commits through a handle of this
    /// process, and otherwise sleeps `timeout` (readers in other processes poll).
    fn wait_for_events(&self, job: JobId, timeout: std::time::Duration) {
        let _ = job;
        std::thread::sleep(timeout);
    }

    /// True when [`EventReads::wait_for_events`] wakes as events commit in any process, from
    /// any host (PostgreSQL), so a reader may wait on it instead of polling; false when a
    /// reader in another process than the writer's must poll (SQLite).
    fn wakes_on_events(&self) -> bool {
        false
    }
}
