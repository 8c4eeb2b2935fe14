//! [`Transfer`] on SQLite: what only this backend knows of a job (for a copy), a copied job
//! recorded as it was, and a job deleted with everything under it.

use std::collections::HashSet;

use rusqlite::params;

use super::SqliteStore;
use super::rows::{int, unsigned};
use super::statements::insert_event;
use crate::copy::{CopyDetails, JobDump};
use crate::rules::transitions;
use crate::{StoreError, StoredSteps, Transfer};
use mmm_core::control::ControlState;
use mmm_core::job::JobId;

impl Transfer for SqliteStore {
    fn copy_details(&self, job: JobId) -> Result<CopyDetails, StoreError> {
        self.read(|tx| {
            self.ensure_job(tx, job)?;
            let id = job.to_string();
            let superseded = tx
                .prepare_cached(
                    "SELECT item_idx, number FROM attempts
                       WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = ?1) AND superseded = 1
                     ORDER BY item_idx, number",
                )
                .and_then(|mut select| {
                    select
                        .query_map(params![id], |row| Ok((unsigned(row, 0)?, row.get(1)?)))?
                        .collect::<Result<Vec<_>, _>>()
                })
                .map_err(self.fail("read superseded attempts"))?;
            let checkpoint_seqs = tx
                .prepare_cached(
                    "SELECT id, last_event_seq FROM checkpoints
                                   WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = ?1)",
                )
                .and_then(|mut select| {
                    select
                        .query_map(params![id], |row| Ok((row.get(0)?, row.get(1)?)))?
                        .collect::<Result<Vec<_>, _>>()
                })
                .map_err(self.fail("read the checkpoints"))?;
            Ok(CopyDetails {
                superseded,
                checkpoint_seqs,
            })
        })
    }

    fn import_job(&self, dump: &JobDump) -> Result<(), StoreError> {
        self.write("commit a copied job", |tx| {
            let job = &dump.contents.job;
            let id = job.id.to_string();
            let fail = |operation| self.fail(operation);
            let exists: bool = tx
                .query_row(
                    "SELECT EXISTS (SELECT 1 FROM jobs WHERE id = ?1)",
                    params![id],
                    |row| row.get(0),
                )
                .map_err(fail("look up a job"))?;
            if exists {
                return Err(StoreError::JobExists { job: job.id });
            }
            tx.execute(
                "INSERT INTO jobs (id, name, status, phase, spec, spec_hash, source, max_parallel,
                                   created_at, started_at, updated_at, finished_at, duration_ms,
                                   owner_pid, owner_host, heartbeat_at, origin, input_fingerprint)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,
                         ?18)",
                params![
                    id,
                    job.name,
                    job.status.as_str(),
                    job.phase.map(|p| p.as_str()),
                    job.spec,
                    job.spec_hash,
                    job.source
                        .as_ref()
                        .map(|p| p.to_string_lossy().into_owned()),
                    job.max_parallel,
                    job.created_at,
                    job.started_at,
                    job.updated_at,
                    job.finished_at,
                    job.duration_ms,
                    job.owner_pid,
                    job.owner_host,
                    job.heartbeat_at,
                    job.origin,
                    job.input_fingerprint,
                ],
            )
            .map_err(fail("copy a job"))?;
            {
                let mut insert = tx
                    .prepare_cached(
                        "INSERT INTO items (job_ref, idx, key, value, status, attempts)
                         VALUES ((SELECT job_ref FROM jobs WHERE id = ?1), ?2, ?3, ?4, ?5, ?6)",
                    )
                    .map_err(fail("copy items"))?;
                for item in &dump.contents.items {
                    insert
                        .execute(params![
                            id,
                            int(item.index),
                            item.key,
                            item.value,
                            item.status.as_str(),
                            item.attempts
                        ])
                        .map_err(fail("copy items"))?;
                }
            }
            {
                let superseded: HashSet<(u64, u32)> = dump.superseded.iter().copied().collect();
                let mut insert = tx
                    .prepare_cached(
                        "INSERT INTO attempts (job_ref, item_idx, number, agent, started_at, ended_at,
                                               duration_us, outcome, exit_code, error, steps,
                                               stdout_tail, stderr_tail, superseded)
                         VALUES ((SELECT job_ref FROM jobs WHERE id = ?1), ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
                    )
                    .map_err(fail("copy attempts"))?;
                for a in &dump.contents.attempts {
                    let steps = StoredSteps::to_json(&a.steps).to_string();
                    insert
                        .execute(params![
                            id,
                            int(a.item_index),
                            a.number,
                            a.agent,
                            a.started_at,
                            a.ended_at,
                            a.duration_us.map(int),
                            a.outcome.map(|o| o.as_str()),
                            a.exit_code,
                            a.error,
                            steps,
                            a.stdout_tail,
                            a.stderr_tail,
                            i64::from(superseded.contains(&(a.item_index, a.number))),
                        ])
                        .map_err(fail("copy attempts"))?;
                }
            }
            let mut new_seqs = Vec::with_capacity(dump.events.len());
            for event in &dump.events {
                insert_event(
                    tx,
                    job.id,
                    event.at,
                    event.item_key.as_deref(),
                    &event.event,
                )
                .map_err(fail("copy events"))?;
                new_seqs.push(tx.last_insert_rowid());
            }
            for snapshot in &dump.snapshots {
                tx.execute(
                    "INSERT INTO snapshots (job_ref, at, payload)
                       VALUES ((SELECT job_ref FROM jobs WHERE id = ?1), ?2, ?3)",
                    params![id, snapshot.at, snapshot.payload.to_json().to_string()],
                )
                .map_err(fail("copy snapshots"))?;
            }
            for ((checkpoint, _), position) in dump.checkpoints.iter().zip(dump.checkpoint_positions())
            {
                tx.execute(
                    "INSERT INTO checkpoints (job_ref, at, phase, reason, last_event_seq, completed,
                                              dead_lettered, skipped)
                     VALUES ((SELECT job_ref FROM jobs WHERE id = ?1), ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                    params![
                        id,
                        checkpoint.at,
                        checkpoint.phase.map(|p| p.as_str()),
                        checkpoint.reason,
                        position.map_or(0, |p| new_seqs[p]),
                        int(checkpoint.completed),
                        int(checkpoint.dead_lettered),
                        int(checkpoint.skipped),
                    ],
                )
                .map_err(fail("copy checkpoints"))?;
            }
            if dump.control != ControlState::default() {
                self.write_control_state(tx, job.id, dump.control)?;
            }
            for request in &dump.control_requests {
                let action = serde_json::to_string(&request.request.action)
                    .expect("a control action is plain data that always serialises");
                tx.execute(
                    "INSERT INTO control_requests (job_ref, seq, action, host, pid, requested_at,
                                                   applied_at)
                     VALUES ((SELECT job_ref FROM jobs WHERE id = ?1), ?2, ?3, ?4, ?5, ?6, ?7)",
                    params![
                        id,
                        int(request.seq),
                        action,
                        request.request.host,
                        request.request.pid,
                        request.requested_at,
                        request.applied_at,
                    ],
                )
                .map_err(fail("copy control requests"))?;
            }
            for budget in &dump.budgets {
                tx.execute(
                    "INSERT INTO job_budgets (job_ref, counter, max, reached)
                     VALUES ((SELECT job_ref FROM jobs WHERE id = ?1), ?2, ?3, ?4)",
                    params![
                        id,
                        budget.budget.counter,
                        budget.budget.max.get(),
                        budget.reached.map(|r| r.get())
                    ],
                )
                .map_err(fail("copy budgets"))?;
            }
            if transitions::ends_run(job.status) {
                self.keep_item_totals(tx, job.id)?;
            }
            Ok(())
        })
    }

    fn delete_job(&self, job: JobId) -> Result<(), StoreError> {
        self.write("commit a job's deletion", |tx| {
            let id = job.to_string();
            // Everything under the job (items, attempts, events, snapshots, checkpoints) goes
            // with it: ON DELETE CASCADE.
            self.retire_item_totals(tx, job)?;
            let deleted = tx
                .execute("DELETE FROM jobs WHERE id = ?1", params![id])
                .map_err(self.fail("delete a job"))?;
            if deleted == 0 {
                return Err(StoreError::JobNotFound { job: id });
            }
            Ok(())
        })
    }
}
