//! Stragglers: in-flight items running past the p95 of their step.
//!
//! A step's p95 means little from a handful of runs, so a step needs
//! [`STRAGGLER_MIN_SAMPLES`] recorded runs before its items can be flagged.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::durations::DurationModel;
use super::eta::InFlight;

/// Runs of a step needed before its p95 is trusted.
pub const STRAGGLER_MIN_SAMPLES: u64 = 20;

/// The quantile an item must run past to be a straggler.
pub const STRAGGLER_QUANTILE: f64 = 0.95;

/// An in-flight item running longer than its step usually takes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Straggler {
    /// The item (input position).
    pub item: u64,
    /// The agent working on it.
    pub agent: usize,
    /// The step (index in the plan).
    pub step: usize,
    /// The step's name.
    pub step_name: String,
    /// How long the step has run, ms.
    pub elapsed_ms: u64,
    /// The step's p95, ms.
    pub p95_ms: u64,
}

impl Straggler {
    /// How many times the p95 it has run (at least 1).
    pub fn ratio(&self) -> f64 {
        self.elapsed_ms as f64 / self.p95_ms.max(1) as f64
    }
}

/// The in-flight items running past the p95 of their step, the most overdue first.
pub fn find_stragglers(model: &DurationModel, in_flight: &[InFlight]) -> Vec<Straggler> {
    // One p95 per step, computed once: quantiles cost a histogram scan.
    let p95: Vec<Option<Duration>> = model
        .steps()
        .iter()
        .map(|s| {
            if s.ran.count() >= STRAGGLER_MIN_SAMPLES {
                s.ran.quantile(STRAGGLER_QUANTILE)
            } else {
                None
            }
        })
        .collect();
    let mut found: Vec<Straggler> = in_flight
        .iter()
        .filter_map(|f| {
            let limit = (*p95.get(f.step)?)?;
            (f.step_elapsed > limit).then(|| Straggler {
                item: f.item,
                agent: f.agent,
                step: f.step,
                step_name: model
                    .step(f.step)
                    .map_or_else(String::new, |s| s.name.clone()),
                elapsed_ms: f.step_elapsed.as_millis() as u64,
                p95_ms: limit.as_millis() as u64,
            })
        })
        .collect();
    found.sort_by(|a, b| b.ratio().total_cmp(&a.ratio()).then(a.item.cmp(&b.item)));
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn running(item: u64, step: usize, elapsed_ms: u64) -> InFlight {
        InFlight {
            item,
            agent: item as usize,
            step,
            step_elapsed: Duration::from_millis(elapsed_ms),
            item_elapsed: Duration::from_millis(elapsed_ms),
        }
    }

    fn model(runs: u64) -> DurationModel {
        let mut m = DurationModel::new(["fetch", "resize"], 4);
        for k in 1..=runs {
            m.record_step(0, Some(Duration::from_millis(k * 10)));
            m.record_step(1, Some(Duration::from_millis(5)));
        }
        m
    }

    #[test]
    fn items_past_the_p95_of_their_step_are_flagged_most_overdue_first() {
        let m = model(100); // fetch: 10..1000 ms, p95 ~ 950 ms; resize: 5 ms
        let f = [
            running(1, 0, 500),
            running(2, 0, 2000),
            running(3, 1, 50),
            running(4, 1, 4),
        ];
        let s = find_stragglers(&m, &f);
        let items: Vec<u64> = s.iter().map(|s| s.item).collect();
        assert_eq!(items, vec![3, 2]);
        assert_eq!(s[1].step_name, "fetch");
        assert!((940..=960).contains(&s[1].p95_ms), "{:?}", s[1]);
    }

    #[test]
    fn too_few_samples_flag_nothing() {
        let m = model(STRAGGLER_MIN_SAMPLES - 1);
        assert!(find_stragglers(&m, &[running(1, 0, 1_000_000)]).is_empty());
        // An unknown step flags nothing either.
        assert!(find_stragglers(&model(100), &[running(1, 9, 1_000_000)]).is_empty());
    }
}
