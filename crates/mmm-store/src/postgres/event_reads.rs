//! [`EventReads`] on PostgreSQL: a job's events and snapshots, and waiting for new events on a
//! listening connection of its own (`LISTEN mmm_events`), woken by any process on any host.

use std::sync::{Arc, PoisonError};
use std::time::Duration;

use futures_util::future::poll_fn;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, NoTls};

use super::PostgresStore;
use super::rows::{event_from_row, int, snapshot_from_row};
use super::session::fail;
use super::statements::RowLock;
use crate::{EventReads, EventRecord, SnapshotRecord, StoreError};
use mmm_core::job::JobId;

/// The listening connection: its client (the connection closes when it drops) and the
/// notifications it received (`SCHEMA JOB` payloads) not yet looked at.
pub(super) struct Listener {
    _client: Client,
    notifications: tokio::sync::broadcast::Receiver<String>,
}

impl EventReads for PostgresStore {
    fn events(&self, job: JobId, after: i64, limit: usize) -> Result<Vec<EventRecord>, StoreError> {
        self.read(move |tx| {
            Box::pin(async move {
                tx.ensure_job(job, RowLock::None).await?;
                let operation = "read a job's events";
                let rows = tx
                    .query(
                        operation,
                        "SELECT seq, at, kind, item_key, payload FROM events
                     WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = $1) AND seq > $2::bigint
                     ORDER BY seq
                     LIMIT $3::bigint",
                        &[&job.to_string(), &after, &int(limit as u64)],
                    )
                    .await?;
                let events = tx.decode(&rows, operation, |row| event_from_row(row, job))?;
                Ok(events)
            })
        })
    }

    fn recent_events(&self, job: JobId, limit: usize) -> Result<Vec<EventRecord>, StoreError> {
        self.read(move |tx| {
            Box::pin(async move {
                tx.ensure_job(job, RowLock::None).await?;
                let operation = "read a job's recent events";
                let rows = tx
                    .query(
                        operation,
                        "SELECT seq, at, kind, item_key, payload FROM events
                     WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = $1)
                     ORDER BY seq DESC
                     LIMIT $2::bigint",
                        &[&job.to_string(), &int(limit as u64)],
                    )
                    .await?;
                let mut events = tx.decode(&rows, operation, |row| event_from_row(row, job))?;
                events.reverse();
                Ok(events)
            })
        })
    }

    fn snapshots(
        &self,
        job: JobId,
        after: i64,
        limit: usize,
    ) -> Result<Vec<SnapshotRecord>, StoreError> {
        self.read_snapshots(
            job,
            "read a job's snapshots",
            "SELECT at, payload FROM snapshots
             WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = $1) AND at > $2::bigint
             ORDER BY at
             LIMIT $3::bigint",
            after,
            limit,
        )
    }

    fn latest_snapshot(&self, job: JobId) -> Result<Option<SnapshotRecord>, StoreError> {
        let newest = self.read_snapshots(
            job,
            "read a job's latest snapshot",
            "SELECT at, payload FROM snapshots
             WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = $1) AND at > $2::bigint
             ORDER BY at DESC
             LIMIT $3::bigint",
            i64::MIN,
            1,
        )?;
        Ok(newest.into_iter().next())
    }

    fn wait_for_events(&self, job: JobId, timeout: Duration) {
        let mut slot = self.listener.lock().unwrap_or_else(PoisonError::into_inner);
        if slot.is_none() {
            match self.listen() {
                Ok(listener) => *slot = Some(listener),
                // No listening connection: poll, as on SQLite.
                Err(_) => {
                    drop(slot);
                    std::thread::sleep(timeout);
                    return;
                }
            }
        }
        let Some(listener) = slot.as_mut() else {
            return;
        };
        let wanted = format!("{} {job}", self.schema);
        // Kept between calls, the receiver holds what came while the caller was reading: a
        // notification is never missed between a read and the next wait.
        let mut notifications = listener.notifications.resubscribe();
        std::mem::swap(&mut notifications, &mut listener.notifications);
        let (back, returned) = std::sync::mpsc::sync_channel(1);
        let waited = self.worker.run(async move {
            let deadline = tokio::time::Instant::now() + timeout;
            loop {
                use tokio::sync::broadcast::error::RecvError;
                match tokio::time::timeout_at(deadline, notifications.recv()).await {
                    Ok(Ok(payload)) if payload != wanted => continue,
                    // Ours, or too many to tell (lagged): read again.
                    Ok(Ok(_)) | Ok(Err(RecvError::Lagged(_))) | Err(_) => break,
                    Ok(Err(RecvError::Closed)) => {
                        tokio::time::sleep_until(deadline).await;
                        break;
                    }
                }
            }
            let _ = back.send(notifications);
            Ok(())
        });
        match (waited, returned.try_recv()) {
            (Ok(()), Ok(notifications)) => listener.notifications = notifications,
            // The listening connection broke: open another next time.
            _ => *slot = None,
        }
    }

    fn wakes_on_events(&self) -> bool {
        true
    }
}

impl PostgresStore {
    /// Opens the listening connection: `LISTEN mmm_events`, notifications forwarded to a
    /// channel by the task that drives the connection.
    fn listen(&self) -> Result<Listener, StoreError> {
        let config = self.config.clone();
        let location = Arc::clone(&self.location);
        self.worker.run(async move {
            let (client, mut connection) =
                config
                    .connect(NoTls)
                    .await
                    .map_err(|source| StoreError::Connect {
                        location: location.to_string(),
                        source: source.into(),
                    })?;
            let (sender, notifications) = tokio::sync::broadcast::channel(1_024);
            tokio::spawn(async move {
                while let Some(Ok(message)) = poll_fn(|cx| connection.poll_message(cx)).await {
                    if let tokio_postgres::AsyncMessage::Notification(n) = message {
                        let _ = sender.send(n.payload().to_string());
                    }
                }
            });
            client
                .batch_execute("LISTEN mmm_events")
                .await
                .map_err(fail(&location, "listen for new events"))?;
            Ok(Listener {
                _client: client,
                notifications,
            })
        })
    }

    /// Runs a snapshot query taking (job, after, limit).
    fn read_snapshots(
        &self,
        job: JobId,
        operation: &'static str,
        sql: &'static str,
        after: i64,
        limit: usize,
    ) -> Result<Vec<SnapshotRecord>, StoreError> {
        self.read(move |tx| {
            Box::pin(async move {
                tx.ensure_job(job, RowLock::None).await?;
                let params: [&(dyn ToSql + Sync); 3] =
                    [&job.to_string(), &after, &int(limit as u64)];
                tx.rows(operation, sql, &params, snapshot_from_row).await
            })
        })
    }
}
