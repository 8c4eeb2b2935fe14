//! The limits ([`mmm_store::Limits`]): a start-rate schedule that every reservation moves on by
//! one interval, per job; budgets recorded with their events, raised, and reached once.

use std::time::Duration;

use super::*;
use mmm_core::counter::CounterValue;
use mmm_core::limits::Budget;

pub(crate) fn start_reservations_are_spaced_by_the_interval(store: &dyn Store) {
    let job = new_job("rate", 1_000);
    store.create_job(&job, &new_items(2)).unwrap();
    let other = new_job("rate-other", 1_001);
    store.create_job(&other, &new_items(1)).unwrap();
    let interval = Duration::from_millis(200);

    let waits: Vec<Duration> = (0..5)
        .map(|_| store.reserve_start(job.id, interval).unwrap())
        .collect();
    // The first start is now; each next one an interval after the one before it (less the
    // little time the reservations themselves took).
    assert!(waits[0] < Duration::from_millis(50), "{waits:?}");
    for pair in waits.windows(2) {
        let step = pair[1].saturating_sub(pair[0]);
        assert!(
            step > Duration::from_millis(150) && step <= interval,
            "each reservation is an interval after the one before: {waits:?}"
        );
    }
    // Another job has a schedule of its own.
    assert!(store.reserve_start(other.id, interval).unwrap() < Duration::from_millis(50));
    // A schedule in the past (nobody started for a while) starts now, not in a burst of
    // catch-up starts: the next reservation after a wait is spaced from now.
    std::thread::sleep(waits[4] + interval);
    let after_a_pause = store.reserve_start(job.id, interval).unwrap();
    assert!(
        after_a_pause < Duration::from_millis(50),
        "{after_a_pause:?}"
    );
    let next = store.reserve_start(job.id, interval).unwrap();
    assert!(next > Duration::from_millis(150), "{next:?}");

    let unknown = store.reserve_start(JobId::new(), interval);
    assert!(
        matches!(unknown, Err(StoreError::JobNotFound { .. })),
        "{unknown:?}"
    );
}

pub(crate) fn budgets_are_recorded_raised_and_reached_once(store: &dyn Store) {
    let job = new_job("budget", 1_000);
    store.create_job(&job, &new_items(2)).unwrap();
    let id = job.id;
    let value = |x: f64| CounterValue::new(x).unwrap();
    // Budgets and counters have decimals (dollars).
    let cost = |max: f64| Budget {
        counter: "cost_usd".to_string(),
        max: value(max),
    };
    let tokens = Budget {
        counter: "tokens".to_string(),
        max: value(1_000.0),
    };
    assert!(store.budgets(id).unwrap().is_empty());
    store
        .record_budgets(id, &[cost(50.0), tokens.clone()], 1_010)
        .unwrap();
    // A resume records the plan's budgets again: those the job has keep their value.
    store.set_budget(id, &cost(80.25), 1_020).unwrap();
    store
        .record_budgets(id, &[cost(50.0), tokens.clone()], 1_030)
        .unwrap();
    let budgets = store.budgets(id).unwrap();
    assert_eq!(
        budgets
            .iter()
            .map(|b| (b.budget.counter.as_str(), b.budget.max.get(), b.reached))
            .collect::<Vec<_>>(),
        vec![("cost_usd", 80.25, None), ("tokens", 1_000.0, None)]
    );

    // Reached once: a second look, or a value below the budget, marks nothing.
    assert!(
        !store
            .reach_budget(id, &cost(80.25), value(80.2), 1_040)
            .unwrap()
    );
    assert!(
        store
            .reach_budget(id, &cost(80.25), value(80.2625), 1_050)
            .unwrap()
    );
    assert!(
        !store
            .reach_budget(id, &cost(80.25), value(90.0), 1_060)
            .unwrap()
    );
    let reached = store.budgets(id).unwrap();
    assert_eq!(reached[0].reached, Some(value(80.2625)));
    assert_eq!(reached[1].reached, None);

    // Raising it clears the mark.
    let after = store.set_budget(id, &cost(120.0), 1_070).unwrap();
    assert_eq!(
        (after[0].budget.max, after[0].reached),
        (value(120.0), None)
    );

    let events: Vec<Event> = store
        .events(id, 0, 100)
        .unwrap()
        .into_iter()
        .map(|e| e.event)
        .collect();
    let set: Vec<(String, f64, Option<f64>)> = events
        .iter()
        .filter_map(|e| match e {
            Event::BudgetSet(s) => Some((s.counter.clone(), s.max.get(), s.from.map(|f| f.get()))),
            _ => None,
        })
        .collect();
    assert_eq!(
        set,
        vec![
            ("cost_usd".to_string(), 50.0, None),
            ("tokens".to_string(), 1_000.0, None),
            ("cost_usd".to_string(), 80.25, Some(50.0)),
            ("cost_usd".to_string(), 120.0, Some(80.25)),
        ]
    );
    let reached: Vec<(f64, f64)> = events
        .iter()
        .filter_map(|e| match e {
            Event::BudgetReached(r) => Some((r.max.get(), r.value.get())),
            _ => None,
        })
        .collect();
    assert_eq!(reached, vec![(80.25, 80.2625)]);

    let unknown = store.set_budget(JobId::new(), &cost(1.0), 1_080);
    assert!(
        matches!(unknown, Err(StoreError::JobNotFound { .. })),
        "{unknown:?}"
    );
}
