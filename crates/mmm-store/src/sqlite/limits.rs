//! [`Limits`] on SQLite: the start-rate schedule as one row per job moved on by an upsert in
//! a `BEGIN IMMEDIATE` transaction (one writer at a time), on this host's clock; budgets as
//! rows written with their events.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{OptionalExtension, Transaction, params};

use super::SqliteStore;
use super::statements::insert_event;
use crate::store::stored;
use crate::store::wait_of as wait;
use crate::{BudgetRecord, Limits, StoreError};
use mmm_core::counter::CounterValue;
use mmm_core::event::{BudgetReached, BudgetSet, Event};
use mmm_core::job::JobId;
use mmm_core::limits::Budget;

impl Limits for SqliteStore {
    fn reserve_start(&self, job: JobId, interval: Duration) -> Result<Duration, StoreError> {
        let interval_us = i64::try_from(interval.as_micros()).unwrap_or(i64::MAX / 4);
        self.write("commit a start's reservation", |tx| {
            self.ensure_job(tx, job)?;
            let now = now_us();
            let next: i64 = tx
                .prepare_cached(
                    "INSERT INTO start_rates (job_ref, next_at)
                     VALUES ((SELECT job_ref FROM jobs WHERE id = ?1), ?2 + ?3)
                     ON CONFLICT (job_ref) DO UPDATE SET next_at = MAX(next_at, ?2) + ?3
                     RETURNING next_at",
                )
                .and_then(|mut upsert| {
                    upsert.query_row(params![job.to_string(), now, interval_us], |row| row.get(0))
                })
                .map_err(self.fail("reserve a start"))?;
            Ok(wait(next - interval_us - now))
        })
    }

    fn budgets(&self, job: JobId) -> Result<Vec<BudgetRecord>, StoreError> {
        self.read(|tx| {
            self.ensure_job(tx, job)?;
            self.read_budgets(tx, job)
        })
    }

    fn record_budgets(&self, job: JobId, budgets: &[Budget], at: i64) -> Result<(), StoreError> {
        self.write("commit a job's budgets", |tx| {
            self.ensure_job(tx, job)?;
            let known = self.read_budgets(tx, job)?;
            for budget in budgets {
                if known.iter().any(|k| k.budget.counter == budget.counter) {
                    continue;
                }
                self.write_budget(tx, job, budget, None, at)?;
            }
            Ok(())
        })
    }

    fn set_budget(
        &self,
        job: JobId,
        budget: &Budget,
        at: i64,
    ) -> Result<Vec<BudgetRecord>, StoreError> {
        self.write("commit a budget", |tx| {
            self.ensure_job(tx, job)?;
            let from = self
                .read_budgets(tx, job)?
                .into_iter()
                .find(|k| k.budget.counter == budget.counter)
                .map(|k| k.budget.max);
            self.write_budget(tx, job, budget, from, at)?;
            self.read_budgets(tx, job)
        })
    }

    fn reach_budget(
        &self,
        job: JobId,
        budget: &Budget,
        value: CounterValue,
        at: i64,
    ) -> Result<bool, StoreError> {
        self.write("commit a budget reached", |tx| {
            self.ensure_job(tx, job)?;
            let marked = tx
                .execute(
                    "UPDATE job_budgets SET reached = ?3, reached_at = ?4
                     WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = ?1) AND counter = ?2
                       AND reached IS NULL AND max <= ?3",
                    params![job.to_string(), budget.counter, value.get(), at],
                )
                .map_err(self.fail("mark a budget reached"))?;
            if marked == 0 {
                return Ok(false);
            }
            let event = Event::BudgetReached(BudgetReached {
                counter: budget.counter.clone(),
                max: budget.max,
                value,
            });
            insert_event(tx, job, at, None, &event)
                .map_err(self.fail("record a budget reached"))?;
            Ok(true)
        })
    }
}

impl SqliteStore {
    /// The job's budgets, by counter.
    fn read_budgets(
        &self,
        tx: &Transaction<'_>,
        job: JobId,
    ) -> Result<Vec<BudgetRecord>, StoreError> {
        tx.prepare_cached(
            "SELECT counter, max, reached FROM job_budgets
             WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = ?1) ORDER BY counter",
        )
        .and_then(|mut select| {
            select
                .query_map(params![job.to_string()], |row| {
                    Ok(BudgetRecord {
                        budget: Budget {
                            counter: row.get(0)?,
                            max: stored(row.get(1)?),
                        },
                        reached: row.get::<_, Option<f64>>(2)?.map(stored),
                    })
                })?
                .collect::<Result<Vec<_>, _>>()
        })
        .optional()
        .map(Option::unwrap_or_default)
        .map_err(self.fail("read a job's budgets"))
    }

    /// Writes a budget, not reached, with its `budget_set` event.
    fn write_budget(
        &self,
        tx: &Transaction<'_>,
        job: JobId,
        budget: &Budget,
        from: Option<CounterValue>,
        at: i64,
    ) -> Result<(), StoreError> {
        tx.execute(
            "INSERT INTO job_budgets (job_ref, counter, max, reached, reached_at)
             VALUES ((SELECT job_ref FROM jobs WHERE id = ?1), ?2, ?3, NULL, NULL)
             ON CONFLICT (job_ref, counter) DO UPDATE
             SET max = excluded.max, reached = NULL, reached_at = NULL",
            params![job.to_string(), budget.counter, budget.max.get()],
        )
        .map_err(self.fail("record a budget"))?;
        let event = Event::BudgetSet(BudgetSet {
            counter: budget.counter.clone(),
            max: budget.max,
            from,
        });
        insert_event(tx, job, at, None, &event).map_err(self.fail("record a budget"))?;
        Ok(())
    }
}

/// Microseconds since the epoch on this host's clock.
fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX / 4))
}
