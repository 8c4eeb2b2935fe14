//! [`JobReads`] on SQLite: jobs, items, attempts, a page of items, checkpoints and the
//! resume ledger, each read in one read transaction.

use std::sync::LazyLock;

use rusqlite::{OptionalExtension, params};

use super::SqliteStore;
use super::rows::{
    ATTEMPT_COLUMNS, ITEM_COLUMNS, JOB_COLUMNS, attempt_from_row, event_from_row, item_from_row,
    job_from_row, limit_clause, optional_text, paged_item_from_row, text, unsigned,
};
use crate::rules::{job_ids, name_glob};
use crate::store::job_totals_sql;
use crate::{
    AttemptRecord, CheckpointRecord, ItemPage, ItemPageQuery, ItemRecord, JobQuery, JobReads,
    JobRecord, JobTotals, Ledger, StoreError,
};
use crate::{ItemCounts, NameItemTotals, item_totals};
use mmm_core::event::EventKind;
use mmm_core::job::{ItemStatus, JobId, Phase};
use mmm_core::metrics::durations::BUCKET_BOUNDS_SECONDS;

impl JobReads for SqliteStore {
    fn job(&self, id: JobId) -> Result<JobRecord, StoreError> {
        self.read(|tx| self.read_job(tx, id))
    }

    fn jobs(&self) -> Result<Vec<JobRecord>, StoreError> {
        self.read(|tx| {
            let sql = format!("SELECT {JOB_COLUMNS} FROM jobs ORDER BY id DESC");
            let mut jobs = tx
                .prepare_cached(&sql)
                .and_then(|mut select| {
                    select
                        .query_map([], job_from_row)?
                        .collect::<Result<Vec<_>, _>>()
                })
                .map_err(self.fail("list the jobs"))?;
            for job in &mut jobs {
                job.counts = self.counts(tx, job.id)?;
            }
            Ok(jobs)
        })
    }

    fn jobs_matching(&self, query: &JobQuery) -> Result<Vec<JobRecord>, StoreError> {
        let mut conditions: Vec<String> = Vec::new();
        let mut values: Vec<rusqlite::types::Value> = Vec::new();
        let mut bind = |value: rusqlite::types::Value| {
            values.push(value);
            format!("?{}", values.len())
        };
        if !query.statuses.is_empty() {
            let placeholders: Vec<String> = query
                .statuses
                .iter()
                .map(|s| bind(s.as_str().to_string().into()))
                .collect();
            conditions.push(format!("status IN ({})", placeholders.join(", ")));
        }
        if let Some(name) = &query.name {
            conditions.push(format!("name = {}", bind(name.clone().into())));
        }
        if let Some(glob) = &query.name_glob {
            conditions.push(format!(
                "name GLOB {}",
                bind(name_glob::to_sqlite(glob).into())
            ));
        }
        if let Some(since) = query.created_since {
            conditions.push(format!("created_at >= {}", bind(since.into())));
        }
        if let Some(since) = query.active_since {
            conditions.push(format!(
                "(status = 'running' OR updated_at >= {})",
                bind(since.into())
            ));
        }
        if let Some(before) = query.before {
            conditions.push(format!("id < {}", bind(before.to_string().into())));
        }
        let filter = if conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conditions.join(" AND "))
        };
        let limit = query.limit.map_or(String::new(), limit_clause);
        let sql = format!("SELECT {JOB_COLUMNS} FROM jobs {filter} ORDER BY id DESC {limit}");
        self.read(|tx| {
            let mut jobs = tx
                .prepare(&sql)
                .and_then(|mut select| {
                    select
                        .query_map(rusqlite::params_from_iter(&values), job_from_row)?
                        .collect::<Result<Vec<_>, _>>()
                })
                .map_err(self.fail("list the jobs"))?;
            for job in &mut jobs {
                job.counts = self.counts(tx, job.id)?;
            }
            Ok(jobs)
        })
    }

    fn job_totals(&self, bounds_ms: &[i64]) -> Result<Vec<JobTotals>, StoreError> {
        let sql = job_totals_sql(bounds_ms);
        self.read(|tx| {
            tx.prepare(&sql)
                .and_then(|mut select| {
                    select
                        .query_map([], |row| {
                            Ok(JobTotals {
                                name: row.get(0)?,
                                status: text(row, 1)?,
                                jobs: unsigned(row, 2)?,
                                duration_ms: row.get(3)?,
                                at_most: (0..bounds_ms.len())
                                    .map(|i| unsigned(row, 4 + i))
                                    .collect::<Result<_, _>>()?,
                            })
                        })?
                        .collect::<Result<Vec<_>, _>>()
                })
                .map_err(self.fail("total the jobs by name"))
        })
    }

    fn name_item_totals(&self) -> Result<Vec<NameItemTotals>, StoreError> {
        static SQL: LazyLock<String> = LazyLock::new(item_totals::read_sql);
        self.read(|tx| {
            tx.prepare_cached(&SQL)
                .and_then(|mut select| {
                    select
                        .query_map([], |row| {
                            let figure = |i: usize| unsigned(row, 2 + i);
                            Ok(NameItemTotals {
                                name: row.get(0)?,
                                jobs: unsigned(row, 1)?,
                                items: ItemCounts {
                                    pending: figure(0)?,
                                    running: figure(1)?,
                                    completed: figure(2)?,
                                    failed: figure(3)?,
                                    dead_lettered: figure(4)?,
                                    skipped: figure(5)?,
                                },
                                timed: figure(6)?,
                                duration_us: figure(7)?,
                                at_most: (0..BUCKET_BOUNDS_SECONDS.len())
                                    .map(|i| figure(8 + i))
                                    .collect::<Result<_, _>>()?,
                            })
                        })?
                        .collect::<Result<Vec<_>, _>>()
                })
                .map_err(self.fail("total the items by job name"))
        })
    }

    fn resolve_job(&self, prefix: &str) -> Result<JobId, StoreError> {
        let hex = job_ids::hex_prefix(prefix)?;
        let conn = self.lock();
        // `hex` holds only hex digits, so it has no GLOB wildcards of its own.
        let ids = conn
            .prepare_cached("SELECT id FROM jobs WHERE id GLOB ?1 || '*' ORDER BY id DESC")
            .and_then(|mut select| {
                select
                    .query_map(params![hex], |row| text::<JobId>(row, 0))?
                    .collect::<Result<Vec<_>, _>>()
            })
            .map_err(self.fail("look up a job id"))?;
        job_ids::the_one(prefix, ids)
    }

    fn items(&self, job: JobId, status: Option<ItemStatus>) -> Result<Vec<ItemRecord>, StoreError> {
        self.read(|tx| {
            self.ensure_job(tx, job)?;
            let read = item_from_row;
            let items = match status {
                None => tx
                    .prepare_cached(
                        "SELECT idx, key, value, status, attempts FROM items
                         WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = ?1) ORDER BY idx",
                    )
                    .and_then(|mut select| {
                        select
                            .query_map(params![job.to_string()], read)?
                            .collect::<Result<Vec<_>, _>>()
                    }),
                Some(status) => tx
                    .prepare_cached(
                        "SELECT idx, key, value, status, attempts FROM items
                         WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = ?1) AND status = ?2 ORDER BY idx",
                    )
                    .and_then(|mut select| {
                        select
                            .query_map(params![job.to_string(), status.as_str()], read)?
                            .collect::<Result<Vec<_>, _>>()
                    }),
            }
            .map_err(self.fail("read a job's items"))?;
            Ok(items)
        })
    }

    fn item(&self, job: JobId, key: &str) -> Result<Option<ItemRecord>, StoreError> {
        self.read(|tx| {
            self.ensure_job(tx, job)?;
            let item = tx
                .prepare_cached(&format!(
                    "SELECT {ITEM_COLUMNS} FROM items
                       WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = ?1) AND key = ?2"
                ))
                .and_then(|mut select| {
                    select
                        .query_row(params![job.to_string(), key], item_from_row)
                        .optional()
                })
                .map_err(self.fail("read an item"))?;
            Ok(item)
        })
    }

    fn item_keys(&self, job: JobId) -> Result<Vec<String>, StoreError> {
        self.read(|tx| {
            self.ensure_job(tx, job)?;
            let keys = tx
                .prepare(
                    "SELECT key FROM items
                            WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = ?1) ORDER BY idx",
                )
                .and_then(|mut select| {
                    select
                        .query_map(params![job.to_string()], |row| row.get::<_, String>(0))?
                        .collect::<Result<Vec<_>, _>>()
                })
                .map_err(self.fail("read the item keys"))?;
            Ok(keys)
        })
    }

    fn attempts(
        &self,
        job: JobId,
        item_key: Option<&str>,
    ) -> Result<Vec<AttemptRecord>, StoreError> {
        self.read(|tx| {
            self.ensure_job(tx, job)?;
            let read = attempt_from_row;
            let attempts = match item_key {
                None => tx
                    .prepare_cached(&format!(
                        "SELECT {ATTEMPT_COLUMNS} FROM attempts a
                         JOIN items i ON i.job_ref = a.job_ref AND i.idx = a.item_idx
                         WHERE a.job_ref = (SELECT job_ref FROM jobs WHERE id = ?1)
                         ORDER BY a.item_idx, a.number"
                    ))
                    .and_then(|mut select| {
                        select
                            .query_map(params![job.to_string()], read)?
                            .collect::<Result<Vec<_>, _>>()
                    }),
                Some(key) => tx
                    .prepare_cached(&format!(
                        "SELECT {ATTEMPT_COLUMNS} FROM attempts a
                         JOIN items i ON i.job_ref = a.job_ref AND i.idx = a.item_idx
                         WHERE a.job_ref = (SELECT job_ref FROM jobs WHERE id = ?1) AND i.key = ?2
                         ORDER BY a.item_idx, a.number"
                    ))
                    .and_then(|mut select| {
                        select
                            .query_map(params![job.to_string(), key], read)?
                            .collect::<Result<Vec<_>, _>>()
                    }),
            }
            .map_err(self.fail("read a job's attempts"))?;
            Ok(attempts)
        })
    }

    fn items_page(&self, job: JobId, query: &ItemPageQuery) -> Result<ItemPage, StoreError> {
        self.read(|tx| {
            self.ensure_job(tx, job)?;
            let id = job.to_string();
            let status = query.status.map(ItemStatus::as_str);
            let offset = i64::try_from(query.offset).unwrap_or(i64::MAX);
            // Two spellings rather than `(?2 IS NULL OR status = ?2)`, so that each uses its index
            // ((job_ref, idx) and (job_ref, status)).
            let filter = if status.is_some() {
                "i.job_ref = (SELECT job_ref FROM jobs WHERE id = ?1) AND i.status = ?2"
            } else {
                "i.job_ref = (SELECT job_ref FROM jobs WHERE id = ?1) AND ?2 IS NULL"
            };
            let total: i64 = tx
                .prepare_cached(&format!("SELECT count(*) FROM items i WHERE {filter}"))
                .and_then(|mut select| select.query_row(params![id, status], |row| row.get(0)))
                .map_err(self.fail("count a job's items"))?;
            // The last attempt is the one with the highest number (they keep increasing across
            // retries and resumes); the (job_ref, item_idx, number) key finds it.
            let items = tx
                .prepare_cached(&format!(
                    "SELECT i.idx, i.key, i.value, i.status, i.attempts,
                            a.number, a.agent, a.started_at, a.ended_at, a.duration_us, a.outcome,
                            a.exit_code, a.error, a.steps, a.stdout_tail, a.stderr_tail
                     FROM items i
                     LEFT JOIN attempts a ON a.job_ref = i.job_ref AND a.item_idx = i.idx
                       AND a.number = (SELECT max(m.number) FROM attempts m
                                       WHERE m.job_ref = i.job_ref AND m.item_idx = i.idx)
                     WHERE {filter}
                     ORDER BY i.idx {} OFFSET ?3",
                    limit_clause(query.limit)
                ))
                .and_then(|mut select| {
                    select
                        .query_map(params![id, status, offset], paged_item_from_row)?
                        .collect::<Result<Vec<_>, _>>()
                })
                .map_err(self.fail("read a page of a job's items"))?;
            Ok(ItemPage {
                total: u64::try_from(total).unwrap_or(0),
                items,
            })
        })
    }

    fn checkpoints(&self, job: JobId) -> Result<Vec<CheckpointRecord>, StoreError> {
        self.read(|tx| {
            self.ensure_job(tx, job)?;
            let checkpoints = tx
                .prepare(
                    "SELECT id, at, phase, reason, completed, dead_lettered, skipped
                     FROM checkpoints WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = ?1) ORDER BY id",
                )
                .and_then(|mut select| {
                    select
                        .query_map(params![job.to_string()], |row| {
                            Ok(CheckpointRecord {
                                id: row.get(0)?,
                                at: row.get(1)?,
                                phase: optional_text::<Phase>(row, 2)?,
                                reason: row.get(3)?,
                                completed: unsigned(row, 4)?,
                                dead_lettered: unsigned(row, 5)?,
                                skipped: unsigned(row, 6)?,
                            })
                        })?
                        .collect::<Result<Vec<_>, _>>()
                })
                .map_err(self.fail("read the checkpoints"))?;
            Ok(checkpoints)
        })
    }

    fn ledger(&self, job: JobId) -> Result<Ledger, StoreError> {
        self.read(|tx| {
            self.ensure_job(tx, job)?;
            let id = job.to_string();
            let entries = tx
                .prepare(
                    "SELECT seq, at, kind, item_key, payload FROM events
                     WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = ?1)
                       AND kind IN ('job_resumed', 'input_changed', 'spec_changed', 'spec_from_store',
                                    'control_requested', 'paused', 'unpaused', 'scaled',
                                    'draining', 'cancelling')
                     ORDER BY seq",
                )
                .and_then(|mut select| {
                    select
                        .query_map(params![id], |row| event_from_row(row, job))?
                        .collect::<Result<Vec<_>, _>>()
                })
                .map_err(self.fail("read the resume ledger"))?;
            let requeued = tx
                .prepare(
                    "SELECT CASE kind WHEN ?2 THEN ?2
                                      ELSE COALESCE(json_extract(payload, '$.reason'), 'unknown') END,
                            COUNT(*)
                     FROM events WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = ?1)
                       AND kind IN (?3, ?2)
                     GROUP BY 1 ORDER BY 1",
                )
                .and_then(|mut select| {
                    // A DLQ retry counts as a reason of its own; a requeue, as its payload says.
                    let kinds = params![
                        id,
                        EventKind::DlqRetry.as_str(),
                        EventKind::ItemRequeued.as_str()
                    ];
                    select
                        .query_map(kinds, |row| Ok((row.get(0)?, unsigned(row, 1)?)))?
                        .collect::<Result<Vec<_>, _>>()
                })
                .map_err(self.fail("count the requeued items"))?;
            Ok(Ledger { entries, requeued })
        })
    }
}
