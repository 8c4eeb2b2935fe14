//! [`Transfer`] on PostgreSQL: what only this backend knows of a job (for a copy), a copied job
//! recorded as it was (items a chunk per statement, events with their new sequence numbers),
//! and a job deleted with everything under it.

use std::collections::HashSet;

use super::PostgresStore;
use super::job_log::ITEM_CHUNK;
use super::rows::{int, small, unsigned};
use super::statements::RowLock;
use crate::copy::{CopyDetails, JobDump};
use crate::rules::transitions;
use crate::{StoreError, StoredSteps, Transfer};
use mmm_core::control::ControlState;
use mmm_core::job::JobId;

impl Transfer for PostgresStore {
    fn copy_details(&self, job: JobId) -> Result<CopyDetails, StoreError> {
        self.read(move |tx| {
            Box::pin(async move {
                tx.ensure_job(job, RowLock::None).await?;
                let id = job.to_string();
                let operation = "read superseded attempts";
                let rows = tx
                    .query(
                        operation,
                        "SELECT item_idx, number FROM attempts
                       WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = $1) AND superseded
                     ORDER BY item_idx, number",
                        &[&id],
                    )
                    .await?;
                let superseded = tx.decode(&rows, operation, |row| {
                    Ok((unsigned(row, 0)?, small(row, 1)?))
                })?;
                let operation = "read the checkpoints";
                let rows = tx
                    .query(
                        operation,
                        "SELECT id, last_event_seq FROM checkpoints
                       WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = $1)",
                        &[&id],
                    )
                    .await?;
                let checkpoint_seqs = tx.decode(&rows, operation, |row| {
                    Ok((row.try_get::<_, i64>(0)?, row.try_get::<_, i64>(1)?))
                })?;
                Ok(CopyDetails {
                    superseded,
                    checkpoint_seqs,
                })
            })
        })
    }

    fn import_job(&self, dump: &JobDump) -> Result<(), StoreError> {
        let dump = dump.clone();
        self.write("commit a copied job", move |tx| {
            Box::pin(async move {
                let job = &dump.contents.job;
                let id = job.id.to_string();
                let source = job
                    .source
                    .as_ref()
                    .map(|path| path.to_string_lossy().into_owned());
                let inserted = tx.execute(
                    "copy a job",
                    "INSERT INTO jobs (id, name, status, phase, spec, spec_hash, source, max_parallel,
                                       created_at, started_at, updated_at, finished_at, duration_ms,
                                       owner_pid, owner_host, heartbeat_at, origin, input_fingerprint)
                     VALUES ($1, $2::text, $3::text, $4::text, $5::text, $6::text, $7::text,
                             $8::bigint, $9::bigint, $10::bigint, $11::bigint, $12::bigint,
                             $13::bigint, $14::bigint, $15::text, $16::bigint, $17::text, $18::text)
                     ON CONFLICT (id) DO NOTHING",
                    &[
                        &id,
                        &job.name,
                        &job.status.as_str(),
                        &job.phase.map(|p| p.as_str()),
                        &job.spec,
                        &job.spec_hash,
                        &source,
                        &i64::from(job.max_parallel),
                        &job.created_at,
                        &job.started_at,
                        &job.updated_at,
                        &job.finished_at,
                        &job.duration_ms,
                        &job.owner_pid.map(i64::from),
                        &job.owner_host,
                        &job.heartbeat_at,
                        &job.origin,
                        &job.input_fingerprint,
                    ],
                )
                .await?;
                if inserted == 0 {
                    return Err(StoreError::JobExists { job: job.id });
                }
                let items = &dump.contents.items;
                for chunk in items.chunks(ITEM_CHUNK) {
                    let indices: Vec<i64> = chunk.iter().map(|i| int(i.index)).collect();
                    let keys: Vec<&str> = chunk.iter().map(|i| i.key.as_str()).collect();
                    let values: Vec<&str> = chunk.iter().map(|i| i.value.as_str()).collect();
                    let statuses: Vec<&str> = chunk.iter().map(|i| i.status.as_str()).collect();
                    let attempts: Vec<i64> = chunk.iter().map(|i| i64::from(i.attempts)).collect();
                    tx.execute(
                        "copy items",
                        "INSERT INTO items (job_ref, idx, key, value, status, attempts)
                         SELECT (SELECT job_ref FROM jobs WHERE id = $1), u.idx, u.key, u.value,
                          u.status, u.attempts
                         FROM unnest($2::bigint[], $3::text[], $4::text[], $5::text[], $6::bigint[])
                              AS u (idx, key, value, status, attempts)",
                        &[&id, &indices, &keys, &values, &statuses, &attempts],
                    )
                    .await?;
                }
                let superseded: HashSet<(u64, u32)> = dump.superseded.iter().copied().collect();
                for a in &dump.contents.attempts {
                    let steps = StoredSteps::to_json(&a.steps);
                    tx.execute(
                        "copy attempts",
                        "INSERT INTO attempts (job_ref, item_idx, number, agent, started_at, ended_at,
                                               duration_us, outcome, exit_code, error, steps,
                                               stdout_tail, stderr_tail, superseded)
                         VALUES ((SELECT job_ref FROM jobs WHERE id = $1), $2::bigint, $3::bigint,
                          $4::text, $5::bigint, $6::bigint,
                                 $7::bigint, $8::text, $9::bigint, $10::text, $11::jsonb, $12::text,
                                 $13::text, $14::boolean)",
                        &[
                            &id,
                            &int(a.item_index),
                            &i64::from(a.number),
                            &a.agent,
                            &a.started_at,
                            &a.ended_at,
                            &a.duration_us.map(int),
                            &a.outcome.map(|o| o.as_str()),
                            &a.exit_code.map(i64::from),
                            &a.error,
                            &steps,
                            &a.stdout_tail,
                            &a.stderr_tail,
                            &superseded.contains(&(a.item_index, a.number)),
                        ],
                    )
                    .await?;
                }
                let mut new_seqs = Vec::with_capacity(dump.events.len());
                for event in &dump.events {
                    let rows = tx.query(
                        "copy events",
                        "INSERT INTO events (job_ref, at, kind, item_key, payload)
                         VALUES ((SELECT job_ref FROM jobs WHERE id = $1), $2::bigint, $3::text, $4::text, $5::jsonb) RETURNING seq",
                        &[
                            &id,
                            &event.at,
                            &event.event.kind_name(),
                            &event.item_key,
                            &event.event.payload(),
                        ],
                    )
                    .await?;
                    new_seqs.push(rows.first().map_or(0, |row| row.get::<_, i64>(0)));
                }
                for snapshot in &dump.snapshots {
                    tx.execute(
                        "copy snapshots",
                        "INSERT INTO snapshots (job_ref, at, payload)
                           VALUES ((SELECT job_ref FROM jobs WHERE id = $1), $2::bigint, $3::jsonb)",
                        &[&id, &snapshot.at, &snapshot.payload.to_json()],
                    )
                    .await?;
                }
                let positions = dump.checkpoint_positions();
                for ((checkpoint, _), position) in dump.checkpoints.iter().zip(positions) {
                    tx.execute(
                        "copy checkpoints",
                        "INSERT INTO checkpoints (job_ref, at, phase, reason, last_event_seq,
                                                  completed, dead_lettered, skipped)
                         VALUES ((SELECT job_ref FROM jobs WHERE id = $1), $2::bigint, $3::text,
                          $4::text, $5::bigint, $6::bigint,
                                 $7::bigint, $8::bigint)",
                        &[
                            &id,
                            &checkpoint.at,
                            &checkpoint.phase.map(|p| p.as_str()),
                            &checkpoint.reason,
                            &position.map_or(0, |p| new_seqs[p]),
                            &int(checkpoint.completed),
                            &int(checkpoint.dead_lettered),
                            &int(checkpoint.skipped),
                        ],
                    )
                    .await?;
                }
                if dump.control != ControlState::default() {
                    tx.write_control_state(job.id, dump.control).await?;
                }
                for request in &dump.control_requests {
                    let action = serde_json::to_string(&request.request.action)
                        .expect("a control action is plain data that always serialises");
                    tx.execute(
                        "copy control requests",
                        "INSERT INTO control_requests (job_ref, seq, action, host, pid,
                                                       requested_at, applied_at)
                         VALUES ((SELECT job_ref FROM jobs WHERE id = $1), $2::bigint, $3::text,
                                 $4::text, $5::bigint, $6::bigint, $7::bigint)",
                        &[
                            &id,
                            &int(request.seq),
                            &action,
                            &request.request.host,
                            &i64::from(request.request.pid),
                            &request.requested_at,
                            &request.applied_at,
                        ],
                    )
                    .await?;
                }
                for budget in &dump.budgets {
                    tx.execute(
                        "copy budgets",
                        "INSERT INTO job_budgets (job_ref, counter, max, reached)
                         VALUES ((SELECT job_ref FROM jobs WHERE id = $1), $2::text, $3::float8,
                                 $4::float8)",
                        &[
                            &id,
                            &budget.budget.counter,
                            &budget.budget.max.get(),
                            &budget.reached.map(|r| r.get()),
                        ],
                    )
                    .await?;
                }
                if transitions::ends_run(job.status) {
                    tx.keep_item_totals(job.id).await?;
                }
                Ok(())
            })
        })
    }

    fn delete_job(&self, job: JobId) -> Result<(), StoreError> {
        self.write("commit a job's deletion", move |tx| {
            Box::pin(async move {
                let id = job.to_string();
                // Everything under the job (items, attempts, events, snapshots, checkpoints) goes
                // with it: ON DELETE CASCADE.
                tx.retire_item_totals(job).await?;
                let deleted = tx
                    .execute("delete a job", "DELETE FROM jobs WHERE id = $1", &[&id])
                    .await?;
                if deleted == 0 {
                    return Err(StoreError::JobNotFound { job: id });
                }
                Ok(())
            })
        })
    }
}
