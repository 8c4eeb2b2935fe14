//! [`Limits`]: what the store keeps of a job's limits on work that calls paid, rate-limited
//! APIs (docs/api-work.md): the start rate's schedule, one row per job that every process of
//! the job (the owner and each `mmm worker`, on any host) reserves its starts from, and the
//! budgets on counters with the one a job reached.

use std::time::Duration;

use serde::Serialize;

use crate::StoreError;
use mmm_core::counter::CounterValue;
use mmm_core::job::JobId;
use mmm_core::limits::Budget;

/// A job's start-rate schedule and budgets.
pub trait Limits {
    /// Reserves the next start of an attempt of `job` under a rate of one start per
    /// `interval`, and returns how long to wait before starting (zero: now). The job's row
    /// holds when the next start may be; reserving moves it on by `interval` in one atomic
    /// update, so processes sharing the job share one schedule. Time is the store's clock
    /// (PostgreSQL: the server's), so hosts whose clocks differ still space their starts.
    fn reserve_start(&self, job: JobId, interval: Duration) -> Result<Duration, StoreError>;
    /// The job's budgets, by counter.
    fn budgets(&self, job: JobId) -> Result<Vec<BudgetRecord>, StoreError>;
    /// Records the budgets of a job's plan that it has none of yet (a budget `mmm budget`
    /// changed outlives a resume), each with its `budget_set` event.
    fn record_budgets(&self, job: JobId, budgets: &[Budget], at: i64) -> Result<(), StoreError>;
    /// Sets a budget (`mmm budget`): its new maximum, no longer reached, and its `budget_set`
    /// event, in one transaction. Returns the job's budgets after.
    fn set_budget(
        &self,
        job: JobId,
        budget: &Budget,
        at: i64,
    ) -> Result<Vec<BudgetRecord>, StoreError>;
    /// Marks a budget reached at `value`, with its `budget_reached` event, in one transaction.
    /// A budget already reached, or changed to a maximum above `value` meanwhile, is left
    /// alone: returns whether it was marked.
    fn reach_budget(
        &self,
        job: JobId,
        budget: &Budget,
        value: CounterValue,
        at: i64,
    ) -> Result<bool, StoreError>;
}

/// A job's budget on a counter, as recorded.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BudgetRecord {
    /// The counter and its maximum.
    #[serde(flatten)]
    pub budget: Budget,
    /// The counter's total when it was found at its budget; `None` while it is not reached.
    pub reached: Option<CounterValue>,
}

/// A counter's value as a budget's column holds it (SQLite: an integer, or a real for a
/// decimal; PostgreSQL: `double precision`). Only finite values are written; a value edited
/// by hand to NaN reads as 0 rather than failing every read of the job's budgets.
pub(crate) fn stored(value: f64) -> CounterValue {
    CounterValue::new(value).unwrap_or_default()
}

/// A wait of `us` microseconds (what a reservation computes); none when it is not positive.
pub(crate) fn wait_of(us: i64) -> Duration {
    Duration::from_micros(u64::try_from(us).unwrap_or(0))
}
