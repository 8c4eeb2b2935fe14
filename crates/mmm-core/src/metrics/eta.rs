//! The ETA: when the map will be done, as a range, from the duration model, the in-flight items
//! and the queue (docs/eta.md explains the method and its pitfalls).
//!
//! Pure: [`estimate`] reads no clock and does no I/O; the time is [`EtaInput::now_ms`]. It is
//! undamped on purpose: damping is for display only ([`crate::metrics::EtaDamper`]).
//!
//! In short: every in-flight item gets its expected remaining time given how long it has run
//! (the empirical distribution conditioned on being longer than that); the agents become free
//! at those times; the queued items, each of the expected item duration, go to the
//! earliest-free agent (solved in closed form, not item by item); the range comes from the
//! variance of the sum (item spread, model uncertainty, in-flight spread) over N agents. The
//! time-based rate stands in before durations exist and widens the range when it disagrees.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::drift::{DriftShape, normal_cdf, normal_quantile};
use super::durations::{DurationModel, Remaining, SurvivalTable};

/// Items that must complete in this run before an estimate is shown (at least N, the agents).
pub const WARM_UP_MIN_ITEMS: u64 = 3;

/// "Stalled" when nothing completed for this many times the p90 item duration.
pub const STALL_FACTOR: u32 = 3;

/// The rate-based estimate "disagrees" when it is this many times larger or smaller than the
/// duration-based one; the range is then widened to include it.
pub const RATE_DISAGREEMENT: f64 = 2.0;

/// Item samples the duration model needs before it is used instead of the rate.
pub const MIN_MODEL_SAMPLES: u64 = 3;

/// The standard normal quantile of 0.9: P10 and P90 are this many (log-)sigmas from the median.
const Z90: f64 = 1.281_551_565_545;

/// One item an agent is working on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct InFlight {
    /// The item (input position).
    pub item: u64,
    /// The agent (0-based slot).
    pub agent: usize,
    /// The step it runs (index in the plan); an index past the plan's steps when it runs none
    /// (before its first step, waiting to retry): its remaining time then comes from the
    /// item-level model alone.
    pub step: usize,
    /// How long the current step has run.
    pub step_elapsed: Duration,
    /// How long the item has run: since its agent took it (all its attempts so far and the
    /// waits between them), as the item durations the model learns from are measured.
    pub item_elapsed: Duration,
}

/// What [`estimate`] needs besides the duration model.
#[derive(Debug, Clone, Copy)]
pub struct EtaInput<'a> {
    /// Now, epoch ms.
    pub now_ms: i64,
    /// Agents working the map (N).
    pub agents: usize,
    /// Items not started yet (pending or requeued, not those in flight).
    pub queued: u64,
    /// Items in flight.
    pub in_flight: &'a [InFlight],
    /// Items finished (completed or dead-lettered) in this run; never those restored by a
    /// resume, never skipped ones: only these may feed a rate.
    pub completed_this_run: u64,
    /// When this run started (the job's start, or the resume), epoch ms.
    pub run_started_ms: i64,
    /// When the last item finished in this run, epoch ms.
    pub last_completion_ms: Option<i64>,
    /// The model holds earlier runs' durations ([`crate::metrics::History`]): an estimate is
    /// given before this run's own warm-up, with [`Basis::History`].
    pub from_history: bool,
}

/// What the model's numbers came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Basis {
    /// The duration model with a stationary item duration.
    Durations,
    /// The duration model with a significant drift of item durations over completion order,
    /// forecast by a straight line.
    LinearDrift,
    /// The duration model with a significant drift, forecast as the rest of a sorted
    /// log-normal (the input looks sorted by duration).
    SortedDrift,
    /// The time-based rate (completed this run / time this run): not enough durations yet.
    Rate,
    /// The durations of earlier runs of the job's name, joined by this run's as they come
    /// (until this run has [`crate::metrics::PRIOR_SAMPLES`] of its own).
    History,
}

/// A remaining-time estimate.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    /// 10th percentile of the remaining time, ms.
    pub p10_ms: u64,
    /// Median remaining time, ms.
    pub p50_ms: u64,
    /// 90th percentile of the remaining time, ms.
    pub p90_ms: u64,
    /// When the median says the map is done, epoch ms.
    pub finish_at_ms: i64,
    /// What the numbers came from.
    pub basis: Basis,
    /// The rate-based remaining time, for comparison (none before any completion).
    #[serde(default)]
    pub rate_ms: Option<u64>,
    /// True when the rate disagreed by more than [`RATE_DISAGREEMENT`]x and the range was
    /// widened to include it.
    #[serde(default)]
    pub widened_by_rate: bool,
}

/// Where the map's remaining time stands.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Eta {
    /// Nothing queued and nothing in flight.
    Done,
    /// Fewer than `needed` items completed in this run: any number would be a guess.
    WarmingUp {
        /// Items finished in this run.
        completed: u64,
        /// Items needed before an estimate: max(3, N), at most the run's items.
        needed: u64,
    },
    /// Nothing completed since `since_ms` for over 3x the p90 item duration (or no agent can
    /// take the queued work).
    Stalled {
        /// The last completion (or the run's start), epoch ms.
        since_ms: i64,
    },
    /// The job is paused (`mmm pause`): nothing starts, so there is no estimate, and the time
    /// paused counts neither toward a stall nor in the rates.
    Paused,
    /// An estimate.
    Estimate(Estimate),
}

/// Estimates the remaining time of the map. Never panics: zero agents, an empty model and
/// clocks going backwards all give a defined answer.
pub fn estimate(model: &DurationModel, input: &EtaInput<'_>) -> Eta {
    let in_flight = input.in_flight.len() as u64;
    if input.queued == 0 && in_flight == 0 {
        return Eta::Done;
    }
    // An agent count below the items in flight is stale: they are running, so count them.
    let agents = input.agents.max(input.in_flight.len());
    let since_ms = input
        .last_completion_ms
        .map_or(input.run_started_ms, |t| t.max(input.run_started_ms));
    if agents == 0 {
        return Eta::Stalled { since_ms };
    }
    let run_items = input.completed_this_run + in_flight + input.queued;
    let needed = WARM_UP_MIN_ITEMS.max(agents as u64).min(run_items);
    // A p90 of the first one or two items says nothing about the rest (two quick items, then
    // eight long ones running: no stall), so it takes as many durations as the warm-up. They
    // may be restored ones: a resume can say `stalled` before its own first completion.
    if model.item().count() >= needed
        && let Some(p90) = model.item().quantile(0.9)
    {
        let limit_ms = (p90.as_millis() as i64).max(1) * STALL_FACTOR as i64;
        if input.now_ms.saturating_sub(since_ms) > limit_ms {
            return Eta::Stalled { since_ms };
        }
    }
    if input.completed_this_run < needed && !input.from_history {
        return Eta::WarmingUp {
            completed: input.completed_this_run,
            needed,
        };
    }

    let rate_us = rate_remaining_us(input);
    let (range, basis) = if model.item().count() < MIN_MODEL_SAMPLES {
        match rate_us {
            Some(r) => (rate_range(r, input.completed_this_run), Basis::Rate),
            None => {
                return Eta::WarmingUp {
                    completed: input.completed_this_run,
                    needed,
                };
            }
        }
    } else if input.from_history {
        (duration_range(model, input, agents).0, Basis::History)
    } else {
        duration_range(model, input, agents)
    };

    let (mut p10, p50, mut p90) = range;
    let mut widened_by_rate = false;
    if basis != Basis::Rate
        && let Some(r) = rate_us
        && p50 > 0.0
        && (r / p50 > RATE_DISAGREEMENT || p50 / r.max(1.0) > RATE_DISAGREEMENT)
    {
        p10 = p10.min(r);
        p90 = p90.max(r);
        widened_by_rate = true;
    }
    let to_ms = |us: f64| (us.max(0.0) / 1e3).round().min(u64::MAX as f64 / 4.0) as u64;
    let p50_ms = to_ms(p50);
    Eta::Estimate(Estimate {
        p10_ms: to_ms(p10).min(p50_ms),
        p50_ms,
        p90_ms: to_ms(p90).max(p50_ms),
        finish_at_ms: input.now_ms.saturating_add(p50_ms as i64),
        basis,
        rate_ms: rate_us.map(to_ms),
        widened_by_rate,
    })
}

/// Remaining time from the rate of this run: items left / (completed / elapsed), in µs. An item
/// in flight counts as half an item (on average it is half done). None before a completion.
fn rate_remaining_us(input: &EtaInput<'_>) -> Option<f64> {
    let elapsed_ms = input.now_ms.saturating_sub(input.run_started_ms);
    if input.completed_this_run == 0 || elapsed_ms <= 0 {
        return None;
    }
    let left = input.queued as f64 + input.in_flight.len() as f64 / 2.0;
    Some(left * elapsed_ms as f64 * 1e3 / input.completed_this_run as f64)
}

/// The range around a rate-based median: a count of c completions measures a rate to about
/// 1/sqrt(c) (Poisson), so that is the relative spread.
fn rate_range(median_us: f64, completed: u64) -> (f64, f64, f64) {
    let rel_sd = 1.0 / (completed.max(1) as f64).sqrt();
    around(median_us, median_us * rel_sd)
}

/// P10/P50/P90 of a positive quantity with this median and standard deviation, read as
/// log-normal: the range is skewed to the right and never below zero.
fn around(median: f64, sd: f64) -> (f64, f64, f64) {
    if median <= 0.0 || !median.is_finite() {
        return (0.0, 0.0, 0.0);
    }
    let sigma = (1.0 + (sd / median).powi(2)).ln().sqrt();
    let spread = (Z90 * sigma).exp();
    (median / spread, median, median * spread)
}

/// The duration-model range, µs, and its basis.
fn duration_range(
    model: &DurationModel,
    input: &EtaInput<'_>,
    agents: usize,
) -> ((f64, f64, f64), Basis) {
    let item_table = model.item().survival();
    let mut step_tables: Vec<Option<SurvivalTable>> = vec![None; model.steps().len()];

    // Each in-flight item: its remaining time (for the agents' free times) and its expected
    // total duration (it is a sample too, only a censored one: leaving it out would bias the
    // mean short, since the long items are the ones still running).
    let mut remaining = Vec::with_capacity(input.in_flight.len());
    let mut in_flight_totals = 0.0;
    let outside = outside_steps_us(model);
    for f in input.in_flight {
        let whole = item_table.remaining(f.item_elapsed).unwrap_or(Remaining {
            mean_us: 0.0,
            variance_us2: 0.0,
            beyond_seen: true,
        });
        in_flight_totals += f.item_elapsed.as_micros() as f64 + whole.mean_us;
        let r = step_remaining(model, &mut step_tables, f)
            .map(|(mean, var)| (mean + outside, var))
            .unwrap_or((whole.mean_us, whole.variance_us2));
        remaining.push(r);
    }

    let n = model.item().count() as f64;
    let k = input.in_flight.len() as f64;
    let q = input.queued as f64;
    // Queued items complete after those in flight: indices n+k .. n+k+q.
    let (mean, item_var, mean_var, basis) = match model.drift_forecast(n + k, n + k + q) {
        Some(f) => (
            f.mean_us,
            f.item_variance_us2,
            f.mean_variance_us2,
            match f.shape {
                DriftShape::Linear => Basis::LinearDrift,
                DriftShape::SortedLogNormal => Basis::SortedDrift,
            },
        ),
        None => {
            let mean = (model.item().mean_us() * n + in_flight_totals) / (n + k).max(1.0);
            let var = model.item().variance_us2();
            (mean, var, var / n.max(1.0), Basis::Durations)
        }
    };

    let mut free: Vec<f64> = remaining.iter().map(|r| r.0).collect();
    free.resize(agents.max(free.len()), 0.0);
    let assigned = greedy_assignment(&free, mean, q);
    // Each agent's finish: deterministic from the greedy assignment, give or take its last
    // item (a queued one, or its in-flight one when it gets nothing more). The job ends with
    // the last agent, so the median is that of the largest of these.
    let finishes: Vec<(f64, f64)> = free
        .iter()
        .zip(&assigned)
        .enumerate()
        .filter_map(|(j, (&f, &count))| {
            if count > 0.0 {
                Some((f + count * mean, item_var))
            } else {
                remaining.get(j).copied()
            }
        })
        .collect();
    let (max10, max50, max90) = max_quantiles(&finishes);
    if input.queued == 0 {
        return ((max10, max50, max90), basis);
    }
    let nn = agents as f64;
    let in_flight_var: f64 = remaining.iter().map(|r| r.1).sum();
    // What moves every agent's finish together: the sum of q items spread over N agents (item
    // spread q*var; the mean's own uncertainty counted q^2 times, as every queued item shares
    // it; the in-flight spread), divided by N^2. Added to the spread of the last finisher.
    let common_var = (q * q * mean_var + q * item_var + in_flight_var) / (nn * nn);
    let last_sd = (max90 - max10) / (2.0 * Z90);
    let range = around(max50, (common_var + last_sd * last_sd).sqrt());
    (range, basis)
}

/// The mean time of an item outside its steps, µs: what the item durations (from taking the
/// item to its end: every attempt, the waits between them, the runner's own work, a worktree
/// merge) hold beyond the expected steps of one attempt. An in-flight item still has that
/// ahead after its steps. Zero when a step was never seen.
fn outside_steps_us(model: &DurationModel) -> f64 {
    let steps: Option<f64> = model
        .steps()
        .iter()
        .map(|s| s.expected_us().map(|(mean, _)| mean))
        .sum();
    steps.map_or(0.0, |steps| (model.item().mean_us() - steps).max(0.0))
}

/// Remaining time (mean, variance; µs) of an in-flight item from the step model: the current
/// step given its elapsed time, plus the expected later steps. None when a step from the
/// current one on has no samples (the item-level model is used then).
fn step_remaining(
    model: &DurationModel,
    tables: &mut [Option<SurvivalTable>],
    f: &InFlight,
) -> Option<(f64, f64)> {
    let step = model.step(f.step)?;
    if step.ran.is_empty() {
        return None;
    }
    let table = tables
        .get_mut(f.step)?
        .get_or_insert_with(|| step.ran.survival());
    let current = table.remaining(f.step_elapsed)?;
    let (mut mean, mut var) = (current.mean_us, current.variance_us2);
    for later in model.steps().get(f.step + 1..).unwrap_or(&[]) {
        let (m, v) = later.expected_us()?;
        mean += m;
        var += v;
    }
    Some((mean, var))
}

/// How many of `queued` items of `mean` µs each agent gets when each item goes to the
/// earliest-free agent, the agents being free at `free` (µs from now). The start of the last
/// item is the `queued`-th smallest of the start times {free_j + m * mean}; it is found by
/// bisection on time, counting each agent's starts in O(1), so the cost is O(N log) whatever
/// the queue's length. Ties go to the lower agent index, as a greedy loop would.
fn greedy_assignment(free: &[f64], mean: f64, queued: f64) -> Vec<f64> {
    if queued < 1.0 || mean <= 0.0 || free.is_empty() {
        return vec![0.0; free.len()];
    }
    let earliest = free.iter().copied().fold(f64::INFINITY, f64::min);
    let starts_by = |t: f64, f: f64| {
        if t >= f {
            ((t - f) / mean).floor() + 1.0
        } else {
            0.0
        }
    };
    let total_by = |t: f64| free.iter().map(|&f| starts_by(t, f)).sum::<f64>();
    // total_by(lo) < queued <= total_by(hi).
    let (mut lo, mut hi) = (earliest - mean, earliest + (queued - 1.0) * mean);
    for _ in 0..64 {
        let mid = (lo + hi) / 2.0;
        if total_by(mid) >= queued {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    // Starts before the last start time, then one each at the last start time until done.
    let mut counts: Vec<f64> = free.iter().map(|&f| starts_by(lo, f)).collect();
    let mut left = queued - counts.iter().sum::<f64>();
    for (j, &f) in free.iter().enumerate() {
        if left < 1.0 {
            break;
        }
        if starts_by(hi, f) > counts[j] {
            counts[j] += 1.0;
            left -= 1.0;
        }
    }
    counts
}

/// P10/P50/P90 of the largest of some finish times (mean, variance; µs), each read as
/// log-normal, assumed independent: P(max <= t) is the product of their distribution
/// functions. Those that cannot be the largest (8 sigmas below the largest mean) are left out
/// to keep the cost low with many agents. Zeros when the list is empty.
fn max_quantiles(remaining: &[(f64, f64)]) -> (f64, f64, f64) {
    if remaining.is_empty() {
        return (0.0, 0.0, 0.0);
    }
    let largest = remaining.iter().map(|r| r.0).fold(0.0, f64::max);
    // (mu, sigma) in log space; sigma 0 is a fixed value.
    let params: Vec<(f64, f64)> = remaining
        .iter()
        .filter(|(m, v)| *m > 0.0 && *m + 8.0 * v.max(0.0).sqrt() >= largest)
        .map(|&(m, v)| {
            let s2 = (1.0 + v.max(0.0) / (m * m)).ln();
            (m.ln() - s2 / 2.0, s2.sqrt())
        })
        .collect();
    if params.is_empty() {
        return (0.0, 0.0, 0.0);
    }
    // Whether P(max <= e^lt) >= p, in log time so that no logarithm is taken per evaluation.
    // Every factor is at most 1, so the product can stop as soon as it drops below p: about
    // half of the bisection's evaluations stop early.
    let reaches = |lt: f64, p: f64| -> bool {
        let mut product = 1.0;
        for &(mu, s) in &params {
            product *= if s <= 1e-12 {
                if lt >= mu { 1.0 } else { 0.0 }
            } else {
                normal_cdf((lt - mu) / s)
            };
            if product < p {
                return false;
            }
        }
        true
    };
    // The p-quantile of the max is at least every single one's p-quantile, and at most the
    // largest of their p^(1/k)-quantiles (where the product of k of them reaches p): a tight
    // bracket, so 24 bisection steps (a 16-millionth of it) are far more than a screen shows.
    let k = params.len() as f64;
    let quantile = |p: f64| -> f64 {
        let (z, zk) = (normal_quantile(p), normal_quantile(p.powf(1.0 / k)));
        let bound = |z: f64| {
            params
                .iter()
                .map(|&(mu, s)| mu + s * z)
                .fold(f64::NEG_INFINITY, f64::max)
        };
        let (mut lo, mut hi) = (bound(z), bound(zk));
        for _ in 0..24 {
            let mid = (lo + hi) / 2.0;
            if reaches(mid, p) {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        hi.exp()
    };
    (quantile(0.1), quantile(0.5), quantile(0.9))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    fn model_with(durations_ms: &[u64], agents: usize) -> DurationModel {
        let mut m = DurationModel::new(["only"], agents);
        for &d in durations_ms {
            m.record_item(ms(d));
            m.record_step(0, Some(ms(d)));
        }
        m
    }

    fn input(queued: u64, in_flight: &[InFlight], completed: u64) -> EtaInput<'_> {
        EtaInput {
            now_ms: 100_000,
            agents: 4,
            queued,
            in_flight,
            completed_this_run: completed,
            run_started_ms: 0,
            last_completion_ms: Some(99_000),
            from_history: false,
        }
    }

    fn estimate_of(eta: Eta) -> Estimate {
        match eta {
            Eta::Estimate(e) => e,
            other => panic!("expected an estimate, got {other:?}"),
        }
    }

    #[test]
    fn serialises_with_a_state_tag() {
        let m = model_with(&[1000; 50], 4);
        let json = serde_json::to_value(estimate(&m, &input(100, &[], 50))).unwrap();
        assert_eq!(json["state"], "estimate");
        assert_eq!(json["basis"], "durations");
        assert!(json["p50_ms"].is_u64());
        let json = serde_json::to_value(Eta::WarmingUp {
            completed: 1,
            needed: 3,
        })
        .unwrap();
        assert_eq!(
            json,
            serde_json::json!({"state": "warming_up", "completed": 1, "needed": 3})
        );
    }

    #[test]
    fn an_in_flight_item_still_has_its_time_outside_the_steps_ahead() {
        // Items take 12 s from being taken to their end, 10 s of it in their one step: one
        // 5 s into its step has 5 s of step and 2 s of the rest left.
        let mut m = DurationModel::new(["only"], 1);
        for _ in 0..50 {
            m.record_item(ms(12_000));
            m.record_step(0, Some(ms(10_000)));
        }
        let f = [InFlight {
            item: 50,
            agent: 0,
            step: 0,
            step_elapsed: ms(5_000),
            item_elapsed: ms(5_500),
        }];
        let mut i = input(0, &f, 50);
        i.agents = 1;
        let p50 = estimate_of(estimate(&m, &i)).p50_ms;
        assert!((6_800..=7_200).contains(&p50), "{p50} ms");
        // In no step (waiting to retry): the item-level model, 12 s given 5.5 s.
        let f = [InFlight { step: 1, ..f[0] }];
        let p50 = estimate_of(estimate(&m, &EtaInput { in_flight: &f, ..i })).p50_ms;
        assert!((6_200..=6_800).contains(&p50), "{p50} ms");
    }

    #[test]
    fn done_when_nothing_is_left() {
        let m = model_with(&[], 4);
        assert_eq!(estimate(&m, &input(0, &[], 10)), Eta::Done);
    }

    #[test]
    fn warming_up_until_max_3_n_completions() {
        let m = model_with(&[1000; 10], 4);
        assert_eq!(
            estimate(&m, &input(100, &[], 3)),
            Eta::WarmingUp {
                completed: 3,
                needed: 4
            }
        );
        assert!(matches!(
            estimate(&m, &input(100, &[], 4)),
            Eta::Estimate(_)
        ));
        // Restored durations do not end the warm-up: only completions of this run count.
        let m = model_with(&[1000; 1000], 4);
        assert!(matches!(
            estimate(&m, &input(100, &[], 0)),
            Eta::WarmingUp { .. }
        ));
    }

    #[test]
    fn stalled_after_3x_p90_without_completion() {
        let m = model_with(&[1000; 10], 4);
        let mut i = input(100, &[], 10);
        i.last_completion_ms = Some(i.now_ms - 3_000);
        assert!(matches!(estimate(&m, &i), Eta::Estimate(_)));
        i.last_completion_ms = Some(i.now_ms - 3_100);
        assert_eq!(
            estimate(&m, &i),
            Eta::Stalled {
                since_ms: i.now_ms - 3_100
            }
        );
    }

    #[test]
    fn no_stall_from_the_p90_of_fewer_items_than_the_warm_up() {
        // Two quick items (1 s) done long ago, four long ones still running: warming up.
        let m = model_with(&[1000; 2], 4);
        let mut i = input(100, &[], 2);
        i.last_completion_ms = Some(i.now_ms - 60_000);
        assert!(matches!(estimate(&m, &i), Eta::WarmingUp { .. }));
        // With as many durations as the warm-up needs (here restored ones), the p90 counts.
        let m = model_with(&[1000; 4], 4);
        assert!(matches!(estimate(&m, &i), Eta::Stalled { .. }));
    }

    #[test]
    fn zero_agents_with_queued_work_is_stalled_not_a_panic() {
        let m = model_with(&[1000; 10], 4);
        let mut i = input(100, &[], 10);
        i.agents = 0;
        assert!(matches!(estimate(&m, &i), Eta::Stalled { .. }));
    }

    #[test]
    fn fixed_durations_give_the_exact_queue_time() {
        // 1 s items, 4 agents, 100 queued, nobody in flight: 25 rounds of 1 s.
        let m = model_with(&[1000; 50], 4);
        let mut i = input(100, &[], 50);
        i.run_started_ms = i.now_ms - 12_500; // the rate agrees: 50 items in 12.5 s
        let e = estimate_of(estimate(&m, &i));
        assert_eq!(e.p50_ms, 25_000);
        assert_eq!(e.finish_at_ms, i.now_ms + 25_000);
        assert_eq!(e.basis, Basis::Durations);
        assert!(!e.widened_by_rate);
        // 101 items need one more round.
        i.queued = 101;
        assert_eq!(estimate_of(estimate(&m, &i)).p50_ms, 26_000);
    }

    #[test]
    fn in_flight_items_shift_their_agents() {
        // One agent, an item 600 ms into its 1 s: 400 ms left, then 2 queued items.
        let m = model_with(&[1000; 50], 1);
        let f = [InFlight {
            item: 7,
            agent: 0,
            step: 0,
            step_elapsed: ms(600),
            item_elapsed: ms(600),
        }];
        let mut i = input(2, &f, 50);
        i.agents = 1;
        i.run_started_ms = i.now_ms - 50_000;
        let e = estimate_of(estimate(&m, &i));
        assert!((2390..=2410).contains(&e.p50_ms), "{e:?}");
    }

    #[test]
    fn range_brackets_the_median_and_narrows_with_more_samples() {
        let spread: Vec<u64> = (0..20).map(|k| 500 + 50 * k).collect();
        let few = model_with(&spread, 4);
        let many_durations: Vec<u64> = spread.iter().cycle().take(2000).copied().collect();
        let many = model_with(&many_durations, 4);
        let i = input(1000, &[], 20);
        let a = estimate_of(estimate(&few, &i));
        let b = estimate_of(estimate(&many, &i));
        assert!(a.p10_ms < a.p50_ms && a.p50_ms < a.p90_ms, "{a:?}");
        assert!(b.p90_ms - b.p10_ms < a.p90_ms - a.p10_ms, "{a:?} {b:?}");
    }

    #[test]
    fn rate_is_used_before_durations_exist_and_widens_on_disagreement() {
        let empty = model_with(&[], 4);
        let mut i = input(100, &[], 10);
        i.run_started_ms = i.now_ms - 10_000; // 1 item/s
        let e = estimate_of(estimate(&empty, &i));
        assert_eq!(e.basis, Basis::Rate);
        assert_eq!(e.p50_ms, 100_000);
        // Durations say 25 s (1 s items over 4 agents), the rate 100 s: widened to cover it.
        let m = model_with(&[1000; 50], 4);
        let e = estimate_of(estimate(&m, &i));
        assert_eq!(e.p50_ms, 25_000);
        assert!(e.widened_by_rate);
        assert_eq!(e.p90_ms, 100_000);
    }

    #[test]
    fn last_items_in_flight_give_the_max_not_the_mean() {
        // 8 exponential-ish items in flight, each expected 10 s more: the last one to finish
        // is expected well after 10 s.
        let durations: Vec<u64> = (1..=200).map(|k| (k * k) / 2).collect();
        let m = model_with(&durations, 8);
        let f: Vec<InFlight> = (0..8)
            .map(|a| InFlight {
                item: a,
                agent: a as usize,
                step: 0,
                step_elapsed: Duration::ZERO,
                item_elapsed: Duration::ZERO,
            })
            .collect();
        let mut i = input(0, &f, 200);
        i.agents = 8;
        let mean_ms = m.item().mean().unwrap().as_millis() as u64;
        let e = estimate_of(estimate(&m, &i));
        assert!(e.p50_ms > mean_ms, "{e:?} vs mean {mean_ms}");
        assert!(e.p10_ms <= e.p50_ms && e.p50_ms <= e.p90_ms);
    }

    #[test]
    fn max_quantiles_of_identical_finishes_are_exact() {
        // k identical log-normals: P(max <= t) = F(t)^k, so the p-quantile of the max is F's
        // p^(1/k)-quantile.
        let (m, v) = (10_000.0f64, 4.0e7f64);
        let s2 = (1.0 + v / (m * m)).ln();
        let (mu, s) = (m.ln() - s2 / 2.0, s2.sqrt());
        let finishes = vec![(m, v); 16];
        let (p10, p50, p90) = max_quantiles(&finishes);
        for (got, p) in [(p10, 0.1f64), (p50, 0.5), (p90, 0.9)] {
            let want = (mu + s * normal_quantile(p.powf(1.0 / 16.0))).exp();
            assert!((got - want).abs() / want < 1e-4, "p{p}: {got} vs {want}");
        }
        assert_eq!(max_quantiles(&[]), (0.0, 0.0, 0.0));
        let (a, b, c) = max_quantiles(&[(5.0, 0.0)]);
        assert!(
            [a, b, c].iter().all(|x| (x - 5.0).abs() < 1e-9),
            "{a} {b} {c}"
        );
    }

    #[test]
    fn greedy_assignment_matches_a_greedy_loop() {
        let free: [f64; 4] = [0.0, 300.0, 1250.0, 300.0];
        for queued in 0..40u32 {
            let mut at = free.to_vec();
            let mut counts = vec![0.0; free.len()];
            for _ in 0..queued {
                let (i, _) = at
                    .iter()
                    .enumerate()
                    .min_by(|a, b| a.1.total_cmp(b.1))
                    .unwrap();
                at[i] += 1000.0;
                counts[i] += 1.0;
            }
            let got = greedy_assignment(&free, 1000.0, queued as f64);
            assert_eq!(got, counts, "queued {queued}");
        }
        assert_eq!(greedy_assignment(&[], 1000.0, 5.0), Vec::<f64>::new());
        assert_eq!(greedy_assignment(&[0.0, 0.0], 0.0, 5.0), vec![0.0, 0.0]);
    }
}
