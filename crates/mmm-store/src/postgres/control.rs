//! [`Control`] on PostgreSQL: requests numbered within their job under the job's row lock and
//! written with their event and the job's new control state in one transaction, with a
//! `NOTIFY mmm_events` so that followers wake; applied ones marked with their effects.

use tokio_postgres::Row;

use super::PostgresStore;
use super::rows::{int, text, unsigned};
use super::session::Decode;
use super::statements::RowLock;
use super::transaction::Tx;
use crate::rules::control;
use crate::rules::store_events::StoreEvent;
use crate::{Control, ControlRecord, ControlRequest, StoreError};
use mmm_core::control::{ControlAction, ControlState, Pause};
use mmm_core::event::Event;
use mmm_core::job::{JobId, JobStatus};

/// The columns of `control_requests`, in the order [`record_from_row`] reads them.
const REQUEST_COLUMNS: &str = "seq, action, host, pid, requested_at, applied_at";

impl Control for PostgresStore {
    fn request_control(
        &self,
        job: JobId,
        request: &ControlRequest,
        at: i64,
    ) -> Result<ControlRecord, StoreError> {
        let request = request.clone();
        self.write("commit a control request", move |tx| {
            Box::pin(async move {
                let id = job.to_string();
                // The job's row lock first (as every transaction recording its events): two
                // requests at once are numbered and committed one after the other.
                let status = tx
                    .rows(
                        "read a job",
                        "SELECT status FROM jobs WHERE id = $1 FOR NO KEY UPDATE",
                        &[&id],
                        |row| text::<JobStatus>(row, 0),
                    )
                    .await?
                    .into_iter()
                    .next()
                    .ok_or_else(|| StoreError::job_not_found(job))?;
                control::check(job, status, &request)?;
                let seq = tx
                    .rows(
                        "number a control request",
                        "SELECT COALESCE(MAX(seq), 0) + 1 FROM control_requests
                         WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = $1)",
                        &[&id],
                        |row| unsigned(row, 0),
                    )
                    .await?
                    .into_iter()
                    .next()
                    .unwrap_or(1);
                let action = serde_json::to_string(&request.action)
                    .expect("a control action is plain data that always serialises");
                tx.execute(
                    "record a control request",
                    "INSERT INTO control_requests (job_ref, seq, action, host, pid, requested_at)
                     VALUES ((SELECT job_ref FROM jobs WHERE id = $1), $2::bigint, $3::text,
                             $4::text, $5::bigint, $6::bigint)",
                    &[
                        &id,
                        &int(seq),
                        &action,
                        &request.host,
                        &i64::from(request.pid),
                        &at,
                    ],
                )
                .await?;
                let event = StoreEvent {
                    item_key: None,
                    event: control::requested(seq, &request),
                };
                tx.record_event(job, at, &event).await?;
                let state = request.action.apply(tx.control_state(job).await?);
                tx.write_control_state(job, state).await?;
                tx.execute(
                    "notify readers of new events",
                    "SELECT pg_notify('mmm_events', current_schema() || ' ' || $1::text)",
                    &[&id],
                )
                .await?;
                Ok(ControlRecord {
                    seq,
                    request,
                    requested_at: at,
                    applied_at: None,
                })
            })
        })
    }

    fn pending_control(&self, job: JobId, after: u64) -> Result<Vec<ControlRecord>, StoreError> {
        self.requests(job, after, "AND applied_at IS NULL")
    }

    fn control_requests(&self, job: JobId, after: u64) -> Result<Vec<ControlRecord>, StoreError> {
        self.requests(job, after, "")
    }

    fn apply_control(
        &self,
        job: JobId,
        request: u64,
        effects: &[Event],
        at: i64,
    ) -> Result<(), StoreError> {
        let effects = effects.to_vec();
        self.write("commit an applied control request", move |tx| {
            Box::pin(async move {
                let marked = tx
                    .execute(
                        "mark a control request applied",
                        "UPDATE control_requests SET applied_at = $3::bigint
                         WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = $1)
                           AND seq = $2::bigint AND applied_at IS NULL",
                        &[&job.to_string(), &int(request), &at],
                    )
                    .await?;
                if marked == 0 {
                    return Ok(());
                }
                for event in effects {
                    let event = StoreEvent {
                        item_key: None,
                        event,
                    };
                    tx.record_event(job, at, &event).await?;
                }
                Ok(())
            })
        })
    }

    fn control_state(&self, job: JobId) -> Result<ControlState, StoreError> {
        self.read(move |tx| {
            Box::pin(async move {
                tx.ensure_job(job, RowLock::None).await?;
                tx.control_state(job).await
            })
        })
    }

    fn set_control_agents(&self, job: JobId, agents: Option<u32>) -> Result<(), StoreError> {
        self.write("commit a job's agents", move |tx| {
            Box::pin(async move {
                tx.ensure_job(job, RowLock::ForUpdate).await?;
                let state = ControlState {
                    agents,
                    ..tx.control_state(job).await?
                };
                tx.write_control_state(job, state).await
            })
        })
    }
}

impl PostgresStore {
    /// The job's requests after `after` that also match `and` (SQL), in order.
    fn requests(
        &self,
        job: JobId,
        after: u64,
        and: &'static str,
    ) -> Result<Vec<ControlRecord>, StoreError> {
        self.read(move |tx| {
            Box::pin(async move {
                let sql = format!(
                    "SELECT {REQUEST_COLUMNS} FROM control_requests
                     WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = $1)
                       AND seq > $2::bigint {and}
                     ORDER BY seq"
                );
                tx.rows(
                    "read the control requests",
                    &sql,
                    &[&job.to_string(), &int(after)],
                    record_from_row,
                )
                .await
            })
        })
    }
}

impl Tx<'_> {
    /// The job's control state (the default when no request changed it).
    async fn control_state(&mut self, job: JobId) -> Result<ControlState, StoreError> {
        let rows = self
            .rows(
                "read a job's control state",
                "SELECT paused, suspend, agents FROM job_controls
                 WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = $1)",
                &[&job.to_string()],
                |row| {
                    let agents: Option<i64> = row.try_get(2)?;
                    Ok((
                        row.try_get::<_, bool>(0)?,
                        row.try_get::<_, bool>(1)?,
                        agents.map(u32::try_from).transpose()?,
                    ))
                },
            )
            .await?;
        Ok(match rows.into_iter().next() {
            None => ControlState::default(),
            Some((paused, suspend, agents)) => ControlState {
                paused: paused.then_some(Pause { suspend }),
                agents,
            },
        })
    }

    /// Writes the job's control state.
    pub(super) async fn write_control_state(
        &mut self,
        job: JobId,
        state: ControlState,
    ) -> Result<(), StoreError> {
        self.execute(
            "record a job's control state",
            "INSERT INTO job_controls (job_ref, paused, suspend, agents)
             VALUES ((SELECT job_ref FROM jobs WHERE id = $1), $2::boolean, $3::boolean,
                     $4::bigint)
             ON CONFLICT (job_ref) DO UPDATE
             SET paused = excluded.paused, suspend = excluded.suspend, agents = excluded.agents",
            &[
                &job.to_string(),
                &state.paused.is_some(),
                &state.paused.is_some_and(|p| p.suspend),
                &state.agents.map(i64::from),
            ],
        )
        .await?;
        Ok(())
    }
}

/// Reads a row of [`REQUEST_COLUMNS`].
fn record_from_row(row: &Row) -> Result<ControlRecord, Decode> {
    let action: &str = row.try_get(1)?;
    let action: ControlAction = serde_json::from_str(action)?;
    let pid: i64 = row.try_get(3)?;
    Ok(ControlRecord {
        seq: unsigned(row, 0)?,
        request: ControlRequest {
            action,
            host: row.try_get(2)?,
            pid: u32::try_from(pid)?,
        },
        requested_at: row.try_get(4)?,
        applied_at: row.try_get(5)?,
    })
}
