//! [`Control`] on SQLite: requests numbered within their job and written with their event and
//! the job's new control state in one `BEGIN IMMEDIATE` transaction; applied ones marked with
//! their effects.

use rusqlite::{OptionalExtension, Row, params};

use super::SqliteStore;
use super::rows::{int, text, unsigned};
use super::statements::insert_event;
use crate::rules::control;
use crate::{Control, ControlRecord, ControlRequest, StoreError};
use mmm_core::control::{ControlAction, ControlState, Pause};
use mmm_core::event::Event;
use mmm_core::job::{JobId, JobStatus};

/// The columns of `control_requests`, in the order [`record_from_row`] reads them.
const REQUEST_COLUMNS: &str = "seq, action, host, pid, requested_at, applied_at";

impl Control for SqliteStore {
    fn request_control(
        &self,
        job: JobId,
        request: &ControlRequest,
        at: i64,
    ) -> Result<ControlRecord, StoreError> {
        self.write("commit a control request", |tx| {
            let status: JobStatus = tx
                .query_row(
                    "SELECT status FROM jobs WHERE id = ?1",
                    params![job.to_string()],
                    |row| text(row, 0),
                )
                .optional()
                .map_err(self.fail("read a job"))?
                .ok_or_else(|| StoreError::job_not_found(job))?;
            control::check(job, status, request)?;
            let seq: u64 = tx
                .query_row(
                    "SELECT COALESCE(MAX(seq), 0) + 1 FROM control_requests
                     WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = ?1)",
                    params![job.to_string()],
                    |row| unsigned(row, 0),
                )
                .map_err(self.fail("number a control request"))?;
            let action = serde_json::to_string(&request.action)
                .expect("a control action is plain data that always serialises");
            tx.execute(
                "INSERT INTO control_requests (job_ref, seq, action, host, pid, requested_at)
                 VALUES ((SELECT job_ref FROM jobs WHERE id = ?1), ?2, ?3, ?4, ?5, ?6)",
                params![
                    job.to_string(),
                    int(seq),
                    action,
                    request.host,
                    request.pid,
                    at
                ],
            )
            .map_err(self.fail("record a control request"))?;
            insert_event(tx, job, at, None, &control::requested(seq, request))
                .map_err(self.fail("record a control request"))?;
            let state = request.action.apply(self.read_control_state(tx, job)?);
            self.write_control_state(tx, job, state)?;
            Ok(ControlRecord {
                seq,
                request: request.clone(),
                requested_at: at,
                applied_at: None,
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
        self.write("commit an applied control request", |tx| {
            let marked = tx
                .execute(
                    "UPDATE control_requests SET applied_at = ?3
                     WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = ?1) AND seq = ?2
                       AND applied_at IS NULL",
                    params![job.to_string(), int(request), at],
                )
                .map_err(self.fail("mark a control request applied"))?;
            if marked == 0 {
                return Ok(());
            }
            for effect in effects {
                insert_event(tx, job, at, None, effect)
                    .map_err(self.fail("record a control request's effect"))?;
            }
            Ok(())
        })
    }

    fn control_state(&self, job: JobId) -> Result<ControlState, StoreError> {
        self.read(|tx| {
            self.ensure_job(tx, job)?;
            self.read_control_state(tx, job)
        })
    }

    fn set_control_agents(&self, job: JobId, agents: Option<u32>) -> Result<(), StoreError> {
        self.write("commit a job's agents", |tx| {
            self.ensure_job(tx, job)?;
            let state = ControlState {
                agents,
                ..self.read_control_state(tx, job)?
            };
            self.write_control_state(tx, job, state)
        })
    }
}

impl SqliteStore {
    /// The job's requests after `after` that also match `and` (SQL), in order.
    fn requests(
        &self,
        job: JobId,
        after: u64,
        and: &'static str,
    ) -> Result<Vec<ControlRecord>, StoreError> {
        let lock = self.lock();
        lock.prepare_cached(&format!(
            "SELECT {REQUEST_COLUMNS} FROM control_requests
             WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = ?1) AND seq > ?2 {and}
             ORDER BY seq"
        ))
        .and_then(|mut select| {
            select
                .query_map(params![job.to_string(), int(after)], record_from_row)?
                .collect::<Result<Vec<_>, _>>()
        })
        .map_err(self.fail("read the control requests"))
    }

    /// The job's control state (the default when no request changed it).
    fn read_control_state(
        &self,
        conn: &rusqlite::Connection,
        job: JobId,
    ) -> Result<ControlState, StoreError> {
        let row = conn
            .prepare_cached(
                "SELECT paused, suspend, agents FROM job_controls
                 WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = ?1)",
            )
            .and_then(|mut select| {
                select
                    .query_row(params![job.to_string()], |row| {
                        Ok((
                            row.get::<_, bool>(0)?,
                            row.get::<_, bool>(1)?,
                            row.get::<_, Option<u32>>(2)?,
                        ))
                    })
                    .optional()
            })
            .map_err(self.fail("read a job's control state"))?;
        Ok(match row {
            None => ControlState::default(),
            Some((paused, suspend, agents)) => ControlState {
                paused: paused.then_some(Pause { suspend }),
                agents,
            },
        })
    }

    /// Writes the job's control state.
    pub(super) fn write_control_state(
        &self,
        conn: &rusqlite::Connection,
        job: JobId,
        state: ControlState,
    ) -> Result<(), StoreError> {
        conn.execute(
            "INSERT INTO job_controls (job_ref, paused, suspend, agents)
             VALUES ((SELECT job_ref FROM jobs WHERE id = ?1), ?2, ?3, ?4)
             ON CONFLICT (job_ref) DO UPDATE
             SET paused = excluded.paused, suspend = excluded.suspend, agents = excluded.agents",
            params![
                job.to_string(),
                state.paused.is_some(),
                state.paused.is_some_and(|p| p.suspend),
                state.agents
            ],
        )
        .map_err(self.fail("record a job's control state"))?;
        Ok(())
    }
}

/// Reads a row of [`REQUEST_COLUMNS`].
fn record_from_row(row: &Row<'_>) -> rusqlite::Result<ControlRecord> {
    let action: String = row.get(1)?;
    let action: ControlAction = serde_json::from_str(&action).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(1, rusqlite::types::Type::Text, Box::new(e))
    })?;
    Ok(ControlRecord {
        seq: unsigned(row, 0)?,
        request: ControlRequest {
            action,
            host: row.get(2)?,
            pid: row.get(3)?,
        },
        requested_at: row.get(4)?,
        applied_at: row.get(5)?,
    })
}
