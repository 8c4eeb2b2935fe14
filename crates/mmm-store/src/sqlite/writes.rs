//! Each [`Write`]'s statements on SQLite, as [`crate::JobLog::apply`] runs them inside the
//! batch's transaction.

use rusqlite::{Transaction, params};

use super::SqliteStore;
use super::failure::expect_change;
use super::rows::int;
use super::statements::insert_event;
use crate::rules::transitions;
use crate::{StoreError, StoredSteps, Write};
use mmm_core::job::ItemStatus;

impl SqliteStore {
    /// Applies one write inside the batch's transaction.
    pub(super) fn apply_one(&self, tx: &Transaction<'_>, write: &Write) -> Result<(), StoreError> {
        match write {
            Write::JobStatus { job, status, at } => {
                let sql = "UPDATE jobs
                           SET status = ?2,
                               started_at = CASE WHEN ?3 THEN COALESCE(started_at, ?5)
                                                 ELSE started_at END,
                               finished_at = CASE WHEN ?4 THEN ?5 ELSE NULL END
                           WHERE id = ?1";
                let changed = tx
                    .prepare_cached(sql)
                    .and_then(|mut update| {
                        update.execute(params![
                            job.to_string(),
                            status.as_str(),
                            transitions::starts_run(*status),
                            transitions::finishes(*status),
                            at,
                        ])
                    })
                    .map_err(self.fail("record a job status"))?;
                expect_change(changed, || StoreError::job_not_found(*job))?;
                if transitions::ends_run(*status) {
                    self.keep_item_totals(tx, *job)?;
                }
                Ok(())
            }
            Write::JobPhase { job, phase, at: _ } => {
                let changed = tx
                    .prepare_cached("UPDATE jobs SET phase = ?2 WHERE id = ?1")
                    .and_then(|mut update| update.execute(params![job.to_string(), phase.as_str()]))
                    .map_err(self.fail("record a job phase"))?;
                expect_change(changed, || StoreError::job_not_found(*job))
            }
            Write::Heartbeat {
                job,
                at,
                duration_ms,
            } => {
                let sql = "UPDATE jobs SET heartbeat_at = ?2, duration_ms = ?3 WHERE id = ?1";
                let changed = tx
                    .prepare_cached(sql)
                    .and_then(|mut update| {
                        update.execute(params![job.to_string(), at, duration_ms])
                    })
                    .map_err(self.fail("record a heartbeat"))?;
                expect_change(changed, || StoreError::job_not_found(*job))
            }
            Write::AttemptStarted {
                job,
                item_index,
                number,
                agent,
                at,
            } => {
                let changed = tx
                    .prepare_cached("UPDATE items SET status = ?3
                                       WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = ?1) AND idx = ?2")
                    .and_then(|mut update| {
                        update.execute(params![
                            job.to_string(),
                            int(*item_index),
                            ItemStatus::Running.as_str(),
                        ])
                    })
                    .map_err(self.fail("mark an item running"))?;
                expect_change(changed, || StoreError::ItemNotFound {
                    job: *job,
                    index: *item_index,
                })?;
                let sql = "INSERT INTO attempts (job_ref, item_idx, number, agent, started_at)
                           VALUES ((SELECT job_ref FROM jobs WHERE id = ?1), ?2, ?3, ?4, ?5)";
                tx.prepare_cached(sql)
                    .and_then(|mut insert| {
                        insert.execute(params![
                            job.to_string(),
                            int(*item_index),
                            number,
                            agent,
                            at
                        ])
                    })
                    .map_err(self.fail("record an attempt start"))?;
                Ok(())
            }
            Write::AttemptFinished {
                job,
                item_index,
                number,
                ended_at,
                duration_us,
                outcome,
                exit_code,
                error,
                steps,
                stdout_tail,
                stderr_tail,
                item_status,
                counts_against_retries,
            } => {
                let steps = StoredSteps::to_json(steps).to_string();
                let sql = "UPDATE attempts
                           SET ended_at = ?4, duration_us = ?5, outcome = ?6, exit_code = ?7,
                               error = ?8, steps = ?9, stdout_tail = ?10, stderr_tail = ?11
                           WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = ?1)
                             AND item_idx = ?2 AND number = ?3
                             AND outcome IS NULL";
                let changed = tx
                    .prepare_cached(sql)
                    .and_then(|mut update| {
                        update.execute(params![
                            job.to_string(),
                            int(*item_index),
                            number,
                            ended_at,
                            int(*duration_us),
                            outcome.as_str(),
                            exit_code,
                            error,
                            steps,
                            stdout_tail,
                            stderr_tail,
                        ])
                    })
                    .map_err(self.fail("record an attempt end"))?;
                expect_change(changed, || StoreError::AttemptNotFound {
                    job: *job,
                    index: *item_index,
                    number: *number,
                })?;
                let sql = "UPDATE items
                           SET status = ?3,
                               attempts = attempts + CASE WHEN ?4 THEN 1 ELSE 0 END
                           WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = ?1) AND idx = ?2";
                let changed = tx
                    .prepare_cached(sql)
                    .and_then(|mut update| {
                        update.execute(params![
                            job.to_string(),
                            int(*item_index),
                            item_status.as_str(),
                            counts_against_retries,
                        ])
                    })
                    .map_err(self.fail("record an item status"))?;
                expect_change(changed, || StoreError::ItemNotFound {
                    job: *job,
                    index: *item_index,
                })
            }
            Write::Event {
                job,
                at,
                item_key,
                event,
            } => {
                insert_event(tx, *job, *at, item_key.as_deref(), event)
                    .map_err(self.fail("record an event"))?;
                Ok(())
            }
            Write::Snapshot { job, at, payload } => {
                tx.prepare_cached(
                    "INSERT INTO snapshots (job_ref, at, payload)
                       VALUES ((SELECT job_ref FROM jobs WHERE id = ?1), ?2, ?3)",
                )
                .and_then(|mut insert| {
                    insert.execute(params![job.to_string(), at, payload.to_json().to_string()])
                })
                .map_err(self.fail("record a snapshot"))?;
                Ok(())
            }
            Write::InputFingerprint {
                job, fingerprint, ..
            } => {
                let sql = "UPDATE jobs SET input_fingerprint = ?2 WHERE id = ?1";
                let changed = tx
                    .prepare_cached(sql)
                    .and_then(|mut update| update.execute(params![job.to_string(), fingerprint]))
                    .map_err(self.fail("record the input's fingerprint"))?;
                expect_change(changed, || StoreError::job_not_found(*job))
            }
            Write::Checkpoint {
                job,
                at,
                phase,
                reason,
            } => {
                let sql = "INSERT INTO checkpoints (job_ref, at, phase, reason, last_event_seq,
                                                    completed, dead_lettered, skipped)
                           SELECT (SELECT job_ref FROM jobs WHERE id = ?1), ?2, ?3, ?4,
                                  (SELECT COALESCE(MAX(seq), 0) FROM events
                                    WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = ?1)),
                                  COALESCE(SUM(status = 'completed'), 0),
                                  COALESCE(SUM(status = 'dead_lettered'), 0),
                                  COALESCE(SUM(status = 'skipped'), 0)
                           FROM items WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = ?1)";
                tx.prepare_cached(sql)
                    .and_then(|mut insert| {
                        insert.execute(params![
                            job.to_string(),
                            at,
                            phase.map(|p| p.as_str()),
                            reason
                        ])
                    })
                    .map_err(self.fail("record a checkpoint"))?;
                Ok(())
            }
            Write::LogChunk { job, chunk } => {
                let sql = "INSERT INTO log_chunks (job_ref, item_idx, attempt, seq, byte_offset,
                                                   bytes, at, data)
                           VALUES ((SELECT job_ref FROM jobs WHERE id = ?1),
                                   ?2, ?3, ?4, ?5, ?6, ?7, ?8)";
                tx.prepare_cached(sql)
                    .and_then(|mut insert| {
                        insert.execute(params![
                            job.to_string(),
                            int(chunk.item_index),
                            chunk.attempt,
                            chunk.seq,
                            int(chunk.offset),
                            int(chunk.bytes),
                            chunk.at,
                            chunk.data,
                        ])
                    })
                    .map_err(self.fail("record a log chunk"))?;
                Ok(())
            }
            Write::LogDropped {
                job,
                item_index,
                attempt,
                from_seq,
                to_seq,
                at: _,
            } => {
                let sql = "DELETE FROM log_chunks
                           WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = ?1)
                             AND item_idx = ?2 AND attempt = ?3 AND seq >= ?4 AND seq < ?5";
                tx.prepare_cached(sql)
                    .and_then(|mut delete| {
                        delete.execute(params![
                            job.to_string(),
                            int(*item_index),
                            attempt,
                            from_seq,
                            to_seq
                        ])
                    })
                    .map_err(self.fail("drop log chunks past the cap"))?;
                Ok(())
            }
        }
    }
}
