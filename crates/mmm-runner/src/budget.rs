//! Budgets on counters (`map.budget`, `--budget`; docs/api-work.md): the job's budgets as the
//! store holds them (the plan's, then as `mmm budget` changed them), and the check an agent
//! makes before it starts an item. A counter at its budget pauses the job: here at once (no
//! agent of this process starts another item), and durably through a control request, the
//! pause of `mmm pause`, so the job stays paused across a resume and every worker sharing
//! the map follows it. Raising the budget (`mmm budget JOB COUNTER=MAX`) unpauses it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::run::Run;
use crate::{Executor, RunError};
use mmm_core::control::{ControlAction, Pause};
use mmm_core::counter::CounterValue;
use mmm_core::job::now_ms;
use mmm_core::limits::Budget;
use mmm_store::{BudgetRecord, ControlRequest};

/// The job's budgets, as last read from the store.
#[derive(Debug, Default)]
pub(crate) struct Budgets {
    records: Mutex<Vec<BudgetRecord>>,
    /// True when there is at least one: most jobs have none, and then an item's check is one
    /// atomic load.
    any: AtomicBool,
}

impl Budgets {
    /// Replaces the budgets with what the store holds now.
    pub(crate) fn set(&self, records: Vec<BudgetRecord>) {
        self.any.store(!records.is_empty(), Ordering::Release);
        *self.records.lock().unwrap_or_else(|e| e.into_inner()) = records;
    }

    /// The budgets now.
    pub(crate) fn budgets(&self) -> Vec<Budget> {
        self.records
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|r| r.budget.clone())
            .collect()
    }

    /// The first budget `counters` reached, with the counter's value; and whether it is newly
    /// reached (then it is marked, so that it pauses the job once).
    fn reached(
        &self,
        counters: &BTreeMap<String, CounterValue>,
    ) -> Option<(Budget, CounterValue, bool)> {
        if !self.any.load(Ordering::Acquire) {
            return None;
        }
        let mut records = self.records.lock().unwrap_or_else(|e| e.into_inner());
        records.iter_mut().find_map(|record| {
            let value = counters
                .get(&record.budget.counter)
                .copied()
                .unwrap_or_default();
            if !record.budget.reached_by(value) {
                return None;
            }
            let new = record.reached.is_none();
            record.reached.get_or_insert(value);
            Some((record.budget.clone(), value, new))
        })
    }
}

/// The owner, once the job is recorded running: records the plan's budgets the job has none
/// of yet (a budget `mmm budget` changed outlives a resume) and reads the job's budgets. A
/// resume first brings back the counters' totals from the newest snapshot (the budgets count
/// the whole job, not one run), so a counter reported in the last second before a kill may be
/// missing from them.
pub(crate) async fn start<E: Executor>(run: &Arc<Run<E>>, resuming: bool) -> Result<(), RunError> {
    let job = run.job;
    if resuming {
        let newest = run.blocking(move |s| s.latest_snapshot(job)).await?;
        if let Some(record) = newest {
            for (name, value) in &record.payload.counters {
                run.tracker.add_to_counter(name, *value);
            }
        }
    }
    let planned = run.plan.map.budgets.clone();
    let records = run
        .blocking(move |s| {
            if !planned.is_empty() {
                s.record_budgets(job, &planned, now_ms())?;
            }
            s.budgets(job)
        })
        .await?;
    run.budgets.set(records);
    Ok(())
}

/// True when a counter is at its budget, so no item may start (the caller waits for the
/// unpause). The first time a budget is found reached, pauses the job: this process's agents
/// at once, the job through the store (`budget_reached`, then a pause request).
pub(crate) fn over_budget<E: Executor>(run: &Arc<Run<E>>) -> bool {
    let Some((budget, value, new)) = run.budgets.reached(&run.tracker.counters()) else {
        return false;
    };
    if new || run.steering.borrow().paused.is_none() {
        run.steering
            .send_modify(|s| s.paused = Some(Pause { suspend: false }));
        run.tracker.set_paused(true);
        let run = run.clone();
        tokio::spawn(async move {
            let job = run.job;
            let request = ControlRequest {
                action: ControlAction::Pause { suspend: false },
                host: mmm_store::owner::host_name(),
                pid: std::process::id(),
            };
            // A store that fails here fails the writer too, which stops the run resumably; the
            // pause holds in this process meanwhile.
            let _ = run
                .blocking(move |s| {
                    let at = now_ms();
                    s.reach_budget(job, &budget, value, at)?;
                    s.request_control(job, &request, at).map(|_| ())
                })
                .await;
        });
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(counter: &str, max: i64) -> BudgetRecord {
        BudgetRecord {
            budget: Budget {
                counter: counter.into(),
                max: max.into(),
            },
            reached: None,
        }
    }

    #[test]
    fn a_budget_is_reached_once_until_it_is_raised() {
        let budgets = Budgets::default();
        let counters = BTreeMap::from([
            ("cost".to_string(), CounterValue::from(49)),
            ("tokens".to_string(), CounterValue::from(10)),
        ]);
        assert!(budgets.reached(&counters).is_none(), "no budgets");
        budgets.set(vec![record("cost", 50), record("tokens", 100)]);
        assert!(budgets.reached(&counters).is_none());
        let counters = BTreeMap::from([("cost".to_string(), CounterValue::from(51))]);
        let (budget, value, new) = budgets.reached(&counters).unwrap();
        assert_eq!(
            (budget.counter.as_str(), value, new),
            ("cost", 51.into(), true)
        );
        assert!(!budgets.reached(&counters).unwrap().2, "reached once");
        budgets.set(vec![record("cost", 80)]);
        assert!(budgets.reached(&counters).is_none(), "raised");
    }
}
