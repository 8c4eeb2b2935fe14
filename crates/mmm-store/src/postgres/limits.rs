//! [`Limits`] on PostgreSQL: the start-rate schedule as one row per job moved on by an upsert
//! (its row lock makes concurrent reservations of the owner and the workers, on any host, take
//! turns) on the server's clock; budgets as rows written with their events under the job's row
//! lock, with a `NOTIFY mmm_events` so that followers wake.

use std::time::Duration;

use super::PostgresStore;
use super::statements::RowLock;
use super::transaction::Tx;
use crate::rules::store_events::StoreEvent;
use crate::store::stored;
use crate::store::wait_of as wait;
use crate::{BudgetRecord, Limits, StoreError};
use mmm_core::counter::CounterValue;
use mmm_core::event::{BudgetReached, BudgetSet, Event};
use mmm_core::job::JobId;
use mmm_core::limits::Budget;

impl Limits for PostgresStore {
    fn reserve_start(&self, job: JobId, interval: Duration) -> Result<Duration, StoreError> {
        let interval_us = i64::try_from(interval.as_micros()).unwrap_or(i64::MAX / 4);
        self.write("commit a start's reservation", move |tx| {
            Box::pin(async move {
                // `statement_timestamp()`: one instant for the whole statement, the server's.
                let waits = tx
                    .rows(
                        "reserve a start",
                        "WITH now AS (
                             SELECT (extract(epoch FROM statement_timestamp()) * 1000000)::bigint AS us
                         )
                         INSERT INTO start_rates (job_ref, next_at)
                         SELECT job_ref, now.us + $2::bigint FROM jobs, now WHERE id = $1
                         ON CONFLICT (job_ref) DO UPDATE
                         SET next_at = GREATEST(start_rates.next_at, excluded.next_at - $2::bigint)
                                       + $2::bigint
                         RETURNING next_at - $2::bigint
                                   - (extract(epoch FROM statement_timestamp()) * 1000000)::bigint",
                        &[&job.to_string(), &interval_us],
                        |row| Ok(row.try_get::<_, i64>(0)?),
                    )
                    .await?;
                let us = waits
                    .into_iter()
                    .next()
                    .ok_or_else(|| StoreError::job_not_found(job))?;
                Ok(wait(us))
            })
        })
    }

    fn budgets(&self, job: JobId) -> Result<Vec<BudgetRecord>, StoreError> {
        self.read(move |tx| {
            Box::pin(async move {
                tx.ensure_job(job, RowLock::None).await?;
                tx.budgets(job).await
            })
        })
    }

    fn record_budgets(&self, job: JobId, budgets: &[Budget], at: i64) -> Result<(), StoreError> {
        let budgets = budgets.to_vec();
        self.write("commit a job's budgets", move |tx| {
            Box::pin(async move {
                tx.ensure_job(job, RowLock::ForUpdate).await?;
                let known = tx.budgets(job).await?;
                let mut wrote = false;
                for budget in &budgets {
                    if known.iter().any(|k| k.budget.counter == budget.counter) {
                        continue;
                    }
                    tx.write_budget(job, budget, None, at).await?;
                    wrote = true;
                }
                if wrote {
                    tx.notify_events(job).await?;
                }
                Ok(())
            })
        })
    }

    fn set_budget(
        &self,
        job: JobId,
        budget: &Budget,
        at: i64,
    ) -> Result<Vec<BudgetRecord>, StoreError> {
        let budget = budget.clone();
        self.write("commit a budget", move |tx| {
            Box::pin(async move {
                tx.ensure_job(job, RowLock::ForUpdate).await?;
                let from = tx
                    .budgets(job)
                    .await?
                    .into_iter()
                    .find(|k| k.budget.counter == budget.counter)
                    .map(|k| k.budget.max);
                tx.write_budget(job, &budget, from, at).await?;
                tx.notify_events(job).await?;
                tx.budgets(job).await
            })
        })
    }

    fn reach_budget(
        &self,
        job: JobId,
        budget: &Budget,
        value: CounterValue,
        at: i64,
    ) -> Result<bool, StoreError> {
        let budget = budget.clone();
        self.write("commit a budget reached", move |tx| {
            Box::pin(async move {
                tx.ensure_job(job, RowLock::ForUpdate).await?;
                let marked = tx
                    .execute(
                        "mark a budget reached",
                        "UPDATE job_budgets SET reached = $3::float8, reached_at = $4::bigint
                         WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = $1)
                           AND counter = $2::text AND reached IS NULL AND max <= $3::float8",
                        &[&job.to_string(), &budget.counter, &value.get(), &at],
                    )
                    .await?;
                if marked == 0 {
                    return Ok(false);
                }
                let event = StoreEvent {
                    item_key: None,
                    event: Event::BudgetReached(BudgetReached {
                        counter: budget.counter.clone(),
                        max: budget.max,
                        value,
                    }),
                };
                tx.record_event(job, at, &event).await?;
                tx.notify_events(job).await?;
                Ok(true)
            })
        })
    }
}

impl Tx<'_> {
    /// The job's budgets, by counter.
    async fn budgets(&mut self, job: JobId) -> Result<Vec<BudgetRecord>, StoreError> {
        self.rows(
            "read a job's budgets",
            "SELECT counter, max, reached FROM job_budgets
             WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = $1) ORDER BY counter",
            &[&job.to_string()],
            |row| {
                Ok(BudgetRecord {
                    budget: Budget {
                        counter: row.try_get(0)?,
                        max: stored(row.try_get(1)?),
                    },
                    reached: row.try_get::<_, Option<f64>>(2)?.map(stored),
                })
            },
        )
        .await
    }

    /// Writes a budget, not reached, with its `budget_set` event (the job's row is locked).
    async fn write_budget(
        &mut self,
        job: JobId,
        budget: &Budget,
        from: Option<CounterValue>,
        at: i64,
    ) -> Result<(), StoreError> {
        self.execute(
            "record a budget",
            "INSERT INTO job_budgets (job_ref, counter, max, reached, reached_at)
             VALUES ((SELECT job_ref FROM jobs WHERE id = $1), $2::text, $3::float8, NULL, NULL)
             ON CONFLICT (job_ref, counter) DO UPDATE
             SET max = excluded.max, reached = NULL, reached_at = NULL",
            &[&job.to_string(), &budget.counter, &budget.max.get()],
        )
        .await?;
        let event = StoreEvent {
            item_key: None,
            event: Event::BudgetSet(BudgetSet {
                counter: budget.counter.clone(),
                max: budget.max,
                from,
            }),
        };
        self.record_event(job, at, &event).await
    }

    /// Wakes the readers waiting on the job's events.
    async fn notify_events(&mut self, job: JobId) -> Result<(), StoreError> {
        self.execute(
            "notify readers of new events",
            "SELECT pg_notify('mmm_events', current_schema() || ' ' || $1::text)",
            &[&job.to_string()],
        )
        .await?;
        Ok(())
    }
}
