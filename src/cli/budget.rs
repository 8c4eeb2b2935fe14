//! `mmm budget`: show a job's budgets on counters, or set them (docs/api-work.md). A budget a
//! counter reached paused the job; raising it above the counter's total unpauses the job
//! through the same request as `mmm unpause`, so the job continues.

use anyhow::Context;

use super::Exit;
use super::control::request_and_wait;
use super::wiring::{open_job, usage_or_store_error};
use mmm_core::control::ControlAction;
use mmm_core::counter::CounterValue;
use mmm_core::job::{JobStatus, now_ms};
use mmm_core::limits::Budget;
use mmm_store::BudgetRecord;

pub(crate) const AFTER_HELP: &str = "\
A budget caps a counter that steps report (`mmm report --counter cost_usd=+0.0125`): once the
job's total reaches it, the job pauses (items in flight finish, nothing new starts; the job
stays running and resumable). Set budgets in the job file (map.budget) or with
`mmm run --budget NAME=MAX`; this command shows them, or sets them on a job that exists.
Raising a budget that paused the job above the counter's total continues the job. Budgets
and counters may have decimals (dollars: 80.25). On a map shared with `mmm worker`s the
budget counts every process's counters.

Examples:
  mmm budget 0190a3f2                       the budgets, the counters' totals, which stopped it
  mmm budget 0190a3f2 cost_usd=80.25        raise it: the job continues
  mmm budget 0190a3f2 tokens=2000000        a budget on another counter";

/// Arguments of `mmm budget`.
#[derive(Debug, clap::Args)]
pub(crate) struct BudgetArgs {
    /// The job: an id or an unambiguous prefix (`mmm jobs` lists them).
    job: String,
    /// Budgets to set, COUNTER=MAX (`cost_usd=80.25`); none: show them.
    #[arg(value_name = "COUNTER=MAX", value_parser = parse_budget)]
    budgets: Vec<Budget>,
}

fn parse_budget(text: &str) -> Result<Budget, String> {
    Budget::parse(text).map_err(|e| e.to_string())
}

/// Runs `mmm budget`.
pub(crate) fn run(location: &str, args: BudgetArgs) -> anyhow::Result<Exit> {
    let (store, job) = open_job(location, &args.job)?;
    let short = job.short();
    let record = store
        .job(job)
        .with_context(|| format!("could not read job {short}"))?;
    let counters = store
        .latest_snapshot(job)
        .with_context(|| format!("could not read job {short}'s newest snapshot"))?
        .map(|s| s.payload.counters)
        .unwrap_or_default();
    let before = store.budgets(job).map_err(usage_or_store_error)?;
    if args.budgets.is_empty() {
        if before.is_empty() {
            println!("job {short} has no budgets (set one: mmm budget {short} COUNTER=MAX)");
        }
        for budget in &before {
            let total = counters
                .get(&budget.budget.counter)
                .copied()
                .unwrap_or_default();
            println!("{}", describe(budget, total));
        }
        return Ok(Exit::Success);
    }
    let mut after = before.clone();
    for budget in &args.budgets {
        after = store
            .set_budget(job, budget, now_ms())
            .map_err(usage_or_store_error)?;
        let total = counters.get(&budget.counter).copied().unwrap_or_default();
        let was = before
            .iter()
            .find(|b| b.budget.counter == budget.counter)
            .map_or("none".to_string(), |b| b.budget.max.to_string());
        eprintln!(
            "mmm: job {short}: budget {budget} (was {was}; the counter is at {total}){}",
            if budget.reached_by(total) {
                ": already reached, the job stays paused"
            } else {
                ""
            }
        );
    }
    let stopped_it = before.iter().any(|b| b.reached.is_some());
    let still = after.iter().find(|b| {
        b.budget
            .reached_by(counters.get(&b.budget.counter).copied().unwrap_or_default())
    });
    if !stopped_it || still.is_some() {
        return Ok(Exit::Success);
    }
    let paused = store
        .control_state(job)
        .map_err(usage_or_store_error)?
        .paused
        .is_some();
    match record.status {
        JobStatus::Running if paused => {
            request_and_wait(store.as_ref(), job, ControlAction::Unpause)
        }
        JobStatus::Running => Ok(Exit::Success),
        status => {
            eprintln!(
                "mmm: job {short} is {status}: the budget is recorded; `mmm resume {short}` runs \
                 it again (it comes back paused: then `mmm unpause {short}`)"
            );
            Ok(Exit::Success)
        }
    }
}

/// A budget's line: the counter, its total against the budget, and whether it stopped the job.
fn describe(budget: &BudgetRecord, total: CounterValue) -> String {
    let b = &budget.budget;
    let percent = total.get() * 100.0 / b.max.get();
    match budget.reached {
        Some(at) => format!(
            "{}: {total} of {} ({percent:.0}%); reached at {at}: it paused the job (raise it: mmm budget JOB {}=N)",
            b.counter, b.max, b.counter
        ),
        None => format!("{}: {total} of {} ({percent:.0}%)", b.counter, b.max),
    }
}
