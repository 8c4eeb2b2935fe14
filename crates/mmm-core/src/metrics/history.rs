//! What earlier runs of a job measured, as a starting point for this run's ETA (docs/eta.md,
//! "From history").
//!
//! A job whose name ran before does not need to wait for its own first items: the duration
//! summaries its earlier runs recorded in their last snapshots (items and steps) stand in.
//! Each summary becomes a set of pseudo-samples read off its quantiles (min, P10, P50, P90,
//! P95, P99, max, linearly between them), the newest run weighing most (each older one half
//! as much), [`PRIOR_SAMPLES`] in all. The run's ETA model starts from them and learns its
//! own durations on top; once the run has as many of its own, the pseudo-samples are dropped
//! and the ETA is this run's alone. Durations are per item, so a run over a different number
//! of items still uses them.

use std::time::Duration;

use super::durations::{DurationModel, DurationSummary};

/// How many pseudo-samples the earlier runs add up to: as much weight as that many of this
/// run's own items.
pub const PRIOR_SAMPLES: u64 = 64;

/// The durations one earlier run recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct RunDurations {
    /// Its item durations (agent taking the item to its end).
    pub items: DurationSummary,
    /// Its steps' durations, by step name.
    pub steps: Vec<(String, DurationSummary)>,
}

/// The earlier runs of a job's name, newest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct History {
    /// The runs, newest first.
    pub runs: Vec<RunDurations>,
}

impl History {
    /// True when there is nothing to learn from.
    pub fn is_empty(&self) -> bool {
        self.runs.iter().all(|r| r.items.count == 0)
    }

    /// A duration model for a plan with these steps and agents, holding the earlier runs'
    /// pseudo-samples (items, and each step of the same name); `None` without history.
    pub fn model(&self, step_names: &[String], agents: usize) -> Option<DurationModel> {
        let runs: Vec<&RunDurations> = self.runs.iter().filter(|r| r.items.count > 0).collect();
        if runs.is_empty() {
            return None;
        }
        // Weights 1, 1/2, 1/4, ... normalised to PRIOR_SAMPLES in all.
        let weights: Vec<f64> = (0..runs.len()).map(|k| 0.5f64.powi(k as i32)).collect();
        let total: f64 = weights.iter().sum();
        let mut model = DurationModel::new(step_names.to_vec(), agents);
        // Interleaved, run after run, each run's samples in a scrambled order: no trend over
        // the completion order for the drift detection to find.
        let per_run: Vec<(Vec<Duration>, Vec<Vec<Duration>>)> = runs
            .iter()
            .zip(&weights)
            .map(|(run, w)| {
                let n = ((PRIOR_SAMPLES as f64 * w / total).round() as usize).max(1);
                let steps = step_names
                    .iter()
                    .map(|name| {
                        run.steps
                            .iter()
                            .find(|(step, _)| step == name)
                            .map_or_else(Vec::new, |(_, s)| pseudo_samples(s, n))
                    })
                    .collect();
                (pseudo_samples(&run.items, n), steps)
            })
            .collect();
        let longest = per_run
            .iter()
            .map(|(items, _)| items.len())
            .max()
            .unwrap_or(0);
        for i in 0..longest {
            for (items, steps) in &per_run {
                let Some(item) = items.get(i) else { continue };
                model.record_item(*item);
                for (step, samples) in steps.iter().enumerate() {
                    if let Some(duration) = samples.get(i) {
                        model.record_step(step, Some(*duration));
                    }
                }
            }
        }
        Some(model)
    }
}

/// `n` durations spread like `summary` (its quantile function through min, P10, P50, P90,
/// P95, P99 and max, linear between them) with its mean, in a scrambled order.
fn pseudo_samples(summary: &DurationSummary, n: usize) -> Vec<Duration> {
    if summary.count == 0 || n == 0 {
        return Vec::new();
    }
    let knots = [
        (0.0, summary.min_ms),
        (0.1, summary.p10_ms),
        (0.5, summary.p50_ms),
        (0.9, summary.p90_ms),
        (0.95, summary.p95_ms),
        (0.99, summary.p99_ms),
        (1.0, summary.max_ms),
    ];
    let quantile = |q: f64| -> f64 {
        for pair in knots.windows(2) {
            let ((q0, v0), (q1, v1)) = (pair[0], pair[1]);
            if q <= q1 {
                let t = if q1 > q0 { (q - q0) / (q1 - q0) } else { 0.0 };
                return v0 + t * (v1 - v0);
            }
        }
        summary.max_ms
    };
    // Stride through the quantiles by a step coprime with n: every one once, no order.
    let stride = (1..=n)
        .rev()
        .find(|s| gcd(*s, n) == 1 && *s * 2 <= n + 1)
        .unwrap_or(1);
    let values: Vec<f64> = (0..n)
        .map(|i| {
            let k = (i * stride) % n;
            quantile((k as f64 + 0.5) / n as f64).max(0.0)
        })
        .collect();
    // Straight lines between the quantiles overstate a long tail (its quantile function is
    // convex): scaled so that their mean is the recorded one, exact, which is what the ETA
    // sums.
    let mean = values.iter().sum::<f64>() / n as f64;
    let scale = if mean > 0.0 && summary.mean_ms > 0.0 {
        summary.mean_ms / mean
    } else {
        1.0
    };
    values
        .into_iter()
        .map(|ms| Duration::from_secs_f64(ms * scale / 1_000.0))
        .collect()
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 { a } else { gcd(b, a % b) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(count: u64, p50_ms: f64) -> DurationSummary {
        DurationSummary {
            count,
            mean_ms: p50_ms,
            stdev_ms: p50_ms / 10.0,
            min_ms: p50_ms * 0.8,
            p10_ms: p50_ms * 0.9,
            p50_ms,
            p90_ms: p50_ms * 1.1,
            p95_ms: p50_ms * 1.15,
            p99_ms: p50_ms * 1.19,
            max_ms: p50_ms * 1.2,
            buckets: None,
        }
    }

    #[test]
    fn earlier_runs_become_pseudo_samples_weighted_toward_the_newest() {
        let history = History {
            runs: vec![
                RunDurations {
                    items: summary(100, 1_000.0),
                    steps: vec![("work".into(), summary(100, 800.0))],
                },
                RunDurations {
                    items: summary(100, 4_000.0),
                    steps: vec![],
                },
            ],
        };
        let model = history.model(&["work".into(), "other".into()], 4).unwrap();
        // 64 in all: 43 of the newest run, 21 of the one before.
        assert_eq!(model.item().count(), 64);
        let median = model.item().quantile(0.5).unwrap().as_millis();
        assert!((950..=1_100).contains(&median), "{median}");
        assert_eq!(model.step(0).unwrap().ran.count(), 43);
        assert_eq!(model.step(1).unwrap().ran.count(), 0);
        // Scrambled: no drift to forecast from the order the samples were recorded in.
        assert!(model.drift_forecast(64.0, 200.0).is_none());
    }

    #[test]
    fn no_runs_no_model() {
        assert!(History::default().model(&[], 2).is_none());
        let empty = History {
            runs: vec![RunDurations {
                items: summary(0, 1.0),
                steps: vec![],
            }],
        };
        assert!(empty.is_empty());
        assert!(empty.model(&[], 2).is_none());
    }

    #[test]
    fn pseudo_samples_follow_the_quantiles_each_once() {
        let s = summary(10, 100.0);
        let mut samples: Vec<f64> = pseudo_samples(&s, 10)
            .iter()
            .map(|d| d.as_secs_f64() * 1_000.0)
            .collect();
        assert_ne!(samples, {
            let mut sorted = samples.clone();
            sorted.sort_by(f64::total_cmp);
            sorted
        });
        samples.sort_by(f64::total_cmp);
        samples.dedup();
        assert_eq!(samples.len(), 10);
        assert!(samples[0] >= 80.0 && samples[9] <= 120.0, "{samples:?}");
        let mean = samples.iter().sum::<f64>() / 10.0;
        assert!((mean - s.mean_ms).abs() < 1e-6, "{mean}");
    }
}
