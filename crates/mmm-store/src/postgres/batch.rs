//! A batch of writes ([`crate::JobLog::apply`]) as PostgreSQL runs it: each [`Write`] planned
//! as statements, all sent in one pipeline, in order, and their results checked in order.

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::LazyLock;
use std::task::Poll;

use futures_util::future::{MaybeDone, maybe_done, poll_fn};
use tokio_postgres::types::ToSql;

use super::rows::int;
use super::transaction::Tx;
use crate::item_totals;
use crate::rules::{batch, transitions};
use crate::{StoreError, StoredSteps, Write};
use mmm_core::job::{ItemStatus, JobId};

/// A parameter owned by a planned statement.
type Param = Box<dyn ToSql + Sync + Send>;

/// What it means when a planned statement changes no row.
#[derive(Debug, Clone, Copy)]
enum Missing {
    /// Nothing: an insert.
    Nothing,
    /// The job is not recorded.
    Job(JobId),
    /// The job has no such item.
    Item(JobId, u64),
    /// The item has no such attempt.
    Attempt(JobId, u64, u32),
}

impl Missing {
    /// The error a statement that changed no row means, if any.
    fn error(self) -> Option<StoreError> {
        match self {
            Missing::Nothing => None,
            Missing::Job(job) => Some(StoreError::job_not_found(job)),
            Missing::Item(job, index) => Some(StoreError::ItemNotFound { job, index }),
            Missing::Attempt(job, index, number) => {
                Some(StoreError::AttemptNotFound { job, index, number })
            }
        }
    }
}

/// One statement of a batch.
pub(super) struct Planned {
    sql: &'static str,
    params: Vec<Param>,
    missing: Missing,
    operation: &'static str,
}

/// The statements of a batch, in order: first the `updated_at` of every job it touches (in id
/// order, so that two batches lock jobs in the same order), then each write's.
pub(super) fn plan(writes: &[Write]) -> Vec<Planned> {
    let mut planned: Vec<Planned> = batch::touched_jobs(writes)
        .into_iter()
        .map(|(job, at)| Planned {
            sql: "UPDATE jobs SET updated_at = GREATEST(updated_at, $2::bigint) WHERE id = $1",
            params: vec![Box::new(job.to_string()), Box::new(at)],
            missing: Missing::Job(job),
            operation: "update a job",
        })
        .collect();
    for write in writes {
        plan_one(write, &mut planned);
    }
    // Live readers in other processes (`events::Subscription`) wake on this, sent at commit.
    let mut notified = HashSet::new();
    for write in writes {
        if let Write::Event { job, .. } = write
            && notified.insert(*job)
        {
            planned.push(Planned {
                sql: "SELECT pg_notify('mmm_events', current_schema() || ' ' || $1::text)",
                params: vec![Box::new(job.to_string())],
                missing: Missing::Nothing,
                operation: "notify readers of new events",
            });
        }
    }
    planned
}

/// The statements that keep a job's item totals once its run ended (`item_totals.rs`), the
/// job's id their one parameter.
pub(super) fn keep_item_totals() -> impl Iterator<Item = &'static str> {
    static KEEP: LazyLock<[String; 5]> = LazyLock::new(|| item_totals::keep_statements("$1"));
    KEEP.iter().map(String::as_str)
}

/// The statements that take a job's item totals off its name's before it is deleted, the
/// job's id their one parameter.
pub(super) fn retire_item_totals() -> impl Iterator<Item = &'static str> {
    static RETIRE: LazyLock<[String; 3]> = LazyLock::new(|| item_totals::retire_statements("$1"));
    RETIRE.iter().map(String::as_str)
}

/// The statements of one write.
fn plan_one(write: &Write, planned: &mut Vec<Planned>) {
    let mut push = |sql, params: Vec<Param>, missing, operation| {
        planned.push(Planned {
            sql,
            params,
            missing,
            operation,
        });
    };
    match write {
        Write::JobStatus { job, status, at } => {
            push(
            "UPDATE jobs
             SET status = $2::text,
                 started_at = CASE WHEN $3::boolean THEN COALESCE(started_at, $5::bigint)
                                   ELSE started_at END,
                 finished_at = CASE WHEN $4::boolean THEN $5::bigint ELSE NULL END
             WHERE id = $1",
            vec![
                Box::new(job.to_string()),
                Box::new(status.as_str()),
                Box::new(transitions::starts_run(*status)),
                Box::new(transitions::finishes(*status)),
                Box::new(*at),
            ],
            Missing::Job(*job),
            "record a job status",
        );
            if transitions::ends_run(*status) {
                for sql in keep_item_totals() {
                    push(
                        sql,
                        vec![Box::new(job.to_string())],
                        Missing::Nothing,
                        "total a job's items",
                    );
                }
            }
        }
        Write::JobPhase { job, phase, at: _ } => push(
            "UPDATE jobs SET phase = $2::text WHERE id = $1",
            vec![Box::new(job.to_string()), Box::new(phase.as_str())],
            Missing::Job(*job),
            "record a job phase",
        ),
        Write::Heartbeat {
            job,
            at,
            duration_ms,
        } => push(
            "UPDATE jobs SET heartbeat_at = $2::bigint, duration_ms = $3::bigint WHERE id = $1",
            vec![
                Box::new(job.to_string()),
                Box::new(*at),
                Box::new(*duration_ms),
            ],
            Missing::Job(*job),
            "record a heartbeat",
        ),
        Write::AttemptStarted {
            job,
            item_index,
            number,
            agent,
            at,
        } => {
            push(
                "UPDATE items SET status = $3::text
                   WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = $1) AND idx = $2::bigint",
                vec![
                    Box::new(job.to_string()),
                    Box::new(int(*item_index)),
                    Box::new(ItemStatus::Running.as_str()),
                ],
                Missing::Item(*job, *item_index),
                "mark an item running",
            );
            push(
                "INSERT INTO attempts (job_ref, item_idx, number, agent, started_at)
                 VALUES ((SELECT job_ref FROM jobs WHERE id = $1), $2::bigint, $3::bigint, $4::text, $5::bigint)",
                vec![
                    Box::new(job.to_string()),
                    Box::new(int(*item_index)),
                    Box::new(i64::from(*number)),
                    Box::new(agent.clone()),
                    Box::new(*at),
                ],
                Missing::Nothing,
                "record an attempt start",
            );
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
            let steps = StoredSteps::to_json(steps);
            push(
                "UPDATE attempts
                 SET ended_at = $4::bigint, duration_us = $5::bigint, outcome = $6::text,
                     exit_code = $7::bigint, error = $8::text, steps = $9::jsonb,
                     stdout_tail = $10::text, stderr_tail = $11::text
                 WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = $1)
                   AND item_idx = $2::bigint AND number = $3::bigint
                   AND outcome IS NULL",
                vec![
                    Box::new(job.to_string()),
                    Box::new(int(*item_index)),
                    Box::new(i64::from(*number)),
                    Box::new(*ended_at),
                    Box::new(int(*duration_us)),
                    Box::new(outcome.as_str()),
                    Box::new(exit_code.map(i64::from)),
                    Box::new(error.clone()),
                    Box::new(steps),
                    Box::new(stdout_tail.clone()),
                    Box::new(stderr_tail.clone()),
                ],
                Missing::Attempt(*job, *item_index, *number),
                "record an attempt end",
            );
            push(
                "UPDATE items
                 SET status = $3::text,
                     attempts = attempts + CASE WHEN $4::boolean THEN 1 ELSE 0 END
                 WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = $1) AND idx = $2::bigint",
                vec![
                    Box::new(job.to_string()),
                    Box::new(int(*item_index)),
                    Box::new(item_status.as_str()),
                    Box::new(*counts_against_retries),
                ],
                Missing::Item(*job, *item_index),
                "record an item status",
            );
        }
        Write::Event {
            job,
            at,
            item_key,
            event,
        } => push(
            "INSERT INTO events (job_ref, at, kind, item_key, payload)
             VALUES ((SELECT job_ref FROM jobs WHERE id = $1), $2::bigint, $3::text, $4::text, $5::jsonb)",
            vec![
                Box::new(job.to_string()),
                Box::new(*at),
                Box::new(event.kind_name().to_string()),
                Box::new(item_key.clone()),
                Box::new(event.payload()),
            ],
            Missing::Nothing,
            "record an event",
        ),
        Write::Snapshot { job, at, payload } => push(
            "INSERT INTO snapshots (job_ref, at, payload)
               VALUES ((SELECT job_ref FROM jobs WHERE id = $1), $2::bigint, $3::jsonb)",
            vec![
                Box::new(job.to_string()),
                Box::new(*at),
                Box::new(payload.to_json()),
            ],
            Missing::Nothing,
            "record a snapshot",
        ),
        Write::InputFingerprint {
            job, fingerprint, ..
        } => push(
            "UPDATE jobs SET input_fingerprint = $2::text WHERE id = $1",
            vec![Box::new(job.to_string()), Box::new(fingerprint.clone())],
            Missing::Job(*job),
            "record the input's fingerprint",
        ),
        Write::Checkpoint {
            job,
            at,
            phase,
            reason,
        } => push(
            "INSERT INTO checkpoints (job_ref, at, phase, reason, last_event_seq,
                                      completed, dead_lettered, skipped)
             SELECT (SELECT job_ref FROM jobs WHERE id = $1), $2::bigint, $3::text, $4::text,
                    (SELECT COALESCE(MAX(seq), 0) FROM events
                      WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = $1)),
                    count(*) FILTER (WHERE status = 'completed'),
                    count(*) FILTER (WHERE status = 'dead_lettered'),
                    count(*) FILTER (WHERE status = 'skipped')
             FROM items WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = $1)",
            vec![
                Box::new(job.to_string()),
                Box::new(*at),
                Box::new(phase.map(|p| p.as_str())),
                Box::new(reason.clone()),
            ],
            Missing::Nothing,
            "record a checkpoint",
        ),
        Write::LogChunk { job, chunk } => push(
            "INSERT INTO log_chunks (job_ref, item_idx, attempt, seq, byte_offset, bytes, at, data)
             VALUES ((SELECT job_ref FROM jobs WHERE id = $1), $2::bigint, $3::bigint, $4::bigint,
                     $5::bigint, $6::bigint, $7::bigint, $8::bytea)",
            vec![
                Box::new(job.to_string()),
                Box::new(int(chunk.item_index)),
                Box::new(i64::from(chunk.attempt)),
                Box::new(i64::from(chunk.seq)),
                Box::new(int(chunk.offset)),
                Box::new(int(chunk.bytes)),
                Box::new(chunk.at),
                Box::new(chunk.data.clone()),
            ],
            Missing::Nothing,
            "record a log chunk",
        ),
        Write::LogDropped {
            job,
            item_index,
            attempt,
            from_seq,
            to_seq,
            at: _,
        } => push(
            "DELETE FROM log_chunks
             WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = $1) AND item_idx = $2::bigint
               AND attempt = $3::bigint AND seq >= $4::bigint AND seq < $5::bigint",
            vec![
                Box::new(job.to_string()),
                Box::new(int(*item_index)),
                Box::new(i64::from(*attempt)),
                Box::new(i64::from(*from_seq)),
                Box::new(i64::from(*to_seq)),
            ],
            Missing::Nothing,
            "drop log chunks past the cap",
        ),
    }
}

impl Tx<'_> {
    /// Runs the planned statements of a batch in one pipeline, in order, then checks each one's
    /// result in order: the first that failed, or changed no row where it had to, fails the
    /// batch.
    pub(super) async fn run_batch(&mut self, planned: &[Planned]) -> Result<(), StoreError> {
        let mut prepared = Vec::with_capacity(planned.len());
        for step in planned {
            prepared.push(self.prepare(step.operation, step.sql).await?);
        }
        let params: Vec<Vec<&(dyn ToSql + Sync)>> = planned
            .iter()
            .map(|step| {
                step.params
                    .iter()
                    .map(|param| param.as_ref() as &(dyn ToSql + Sync))
                    .collect()
            })
            .collect();
        let client = self.client();
        let results = in_order(
            prepared
                .iter()
                .zip(&params)
                .map(|(statement, params)| client.execute(statement, params))
                .collect(),
        )
        .await;
        for (step, result) in planned.iter().zip(results) {
            let changed = result.map_err(self.fail(step.operation))?;
            if changed == 0
                && let Some(error) = step.missing.error()
            {
                return Err(error);
            }
        }
        Ok(())
    }
}

/// Polls `futures` in order until all are done: each sends its statement on its first poll, so
/// the server runs them in this order, in one pipeline.
async fn in_order<F: Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut futures: Vec<Pin<Box<MaybeDone<F>>>> = futures
        .into_iter()
        .map(|future| Box::pin(maybe_done(future)))
        .collect();
    poll_fn(|cx| {
        let mut done = true;
        for future in &mut futures {
            done &= future.as_mut().poll(cx).is_ready();
        }
        if done { Poll::Ready(()) } else { Poll::Pending }
    })
    .await;
    futures
        .iter_mut()
        .map(|future| {
            future
                .as_mut()
                .take_output()
                .expect("every future was polled to completion just above")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_touch_jobs_first_in_id_order() {
        let (a, b) = (JobId::new(), JobId::new());
        let writes = [
            Write::Heartbeat {
                job: b,
                at: 5,
                duration_ms: 1,
            },
            Write::Heartbeat {
                job: a,
                at: 7,
                duration_ms: 1,
            },
            Write::Heartbeat {
                job: b,
                at: 9,
                duration_ms: 1,
            },
        ];
        let planned = plan(&writes);
        assert_eq!(planned.len(), 5);
        let touched: Vec<String> = planned[..2]
            .iter()
            .map(|step| match step.missing {
                Missing::Job(job) => job.to_string(),
                other => panic!("expected a job touch, got {other:?}"),
            })
            .collect();
        let mut sorted = vec![a.to_string(), b.to_string()];
        sorted.sort();
        assert_eq!(touched, sorted);
        assert!(
            planned[..2]
                .iter()
                .all(|step| step.sql.contains("GREATEST"))
        );
    }
}
