//! The duration model: how long items and steps take, learned from what has completed.
//!
//! One [`DurationStats`] per step (the steps that ran; skipped steps are only counted) and one
//! for whole items, each an HDR histogram (2 significant digits, 1 µs to 30 days) plus exact
//! running moments. Recording is O(1) and allocation-free; quantiles are O(histogram buckets).
//! [`DurationStats::survival`] builds a [`SurvivalTable`] that answers "this item has run for
//! `elapsed`: how much longer?" from the empirical distribution conditioned on `> elapsed`.
//! [`DurationModel`] also fits a linear trend of item duration over completion order and keeps
//! a compact completion-order profile, which the ETA uses when durations drift (items sorted
//! longest-first): see [`super::drift`] and docs/eta.md.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use super::drift::{CompletionProfile, DriftForecast, forecast};

/// The largest duration a histogram holds: 30 days. Longer durations are recorded as this
/// (clamped), so a quantile never exceeds it.
pub const HIGHEST_TRACKABLE: Duration = Duration::from_secs(30 * 24 * 3600);

/// Precision of the histograms: 2 significant digits (1% error), ~40 KB per histogram.
const SIGNIFICANT_DIGITS: u8 = 2;

/// When an in-flight item has run longer than anything recorded, its expected remaining time
/// is this fraction of its elapsed time (it is assumed to be about two thirds through: the
/// usual heavy-tail heuristic that the longer something has run, the longer it will still run).
pub const BEYOND_SEEN_REMAINING_FRACTION: f64 = 0.5;

/// The trend fit is only trusted with at least this many samples.
pub const TREND_MIN_SAMPLES: u64 = 30;

/// |t| of the trend's slope at which the trend is used (a 4-sigma drift: a stationary job
/// shows one by chance far less than once in 10,000 estimates).
pub const TREND_MIN_T: f64 = 4.0;

/// Steps beyond this index are not tracked (protects against a garbage index).
const MAX_STEPS: usize = 1024;

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros())
        .unwrap_or(u64::MAX)
        .min(HIGHEST_TRACKABLE.as_micros() as u64)
}

fn from_micros_f64(us: f64) -> Duration {
    if us.is_finite() && us > 0.0 {
        Duration::from_micros(us.min(u64::MAX as f64 / 2.0) as u64)
    } else {
        Duration::ZERO
    }
}

/// Buckets of the moment table: values below 16 µs exactly, then 8 per octave (12.5% wide)
/// for every octave a `u64` has.
const MOMENT_BUCKETS: usize = 16 + (64 - 4) * 8;

/// The moment-table bucket of a value in µs.
fn moment_bucket(us: u64) -> usize {
    if us < 16 {
        return us as usize;
    }
    let octave = 63 - us.leading_zeros() as usize;
    let eighth = ((us >> (octave - 3)) & 7) as usize;
    16 + (octave - 4) * 8 + eighth
}

/// The bounds `[low, high)` of a moment-table bucket, in µs.
fn moment_bucket_bounds(bucket: usize) -> (f64, f64) {
    if bucket < 16 {
        return (bucket as f64, bucket as f64 + 1.0);
    }
    let octave = (bucket - 16) / 8 + 4;
    let eighth = ((bucket - 16) % 8) as f64;
    let unit = 2f64.powi(octave as i32 - 3);
    ((8.0 + eighth) * unit, (9.0 + eighth) * unit)
}

/// One distribution of durations: a histogram for quantiles, exact running moments, and a
/// table of moments by log-spaced bucket for conditional queries.
#[derive(Debug, Clone)]
pub struct DurationStats {
    hist: Histogram<u64>,
    count: u64,
    /// Welford's running mean and sum of squared deviations, in µs (exact, O(1)).
    mean_us: f64,
    m2_us: f64,
    max_us: u64,
    /// Per bucket: count, sum and sum of squares (µs) of the values in it. Suffix sums of this
    /// small table answer E[D | D > e] in O(1) after O(buckets) preparation, ~20x cheaper than
    /// walking the HDR histogram's thousands of counters.
    moments: Box<[[f64; 3]]>,
}

impl Default for DurationStats {
    fn default() -> Self {
        Self::new()
    }
}

impl DurationStats {
    /// An empty distribution.
    pub fn new() -> Self {
        let hist =
            Histogram::new_with_bounds(1, HIGHEST_TRACKABLE.as_micros() as u64, SIGNIFICANT_DIGITS)
                .expect("constant bounds 1..30 days with 2 digits are valid");
        DurationStats {
            hist,
            count: 0,
            mean_us: 0.0,
            m2_us: 0.0,
            max_us: 0,
            moments: vec![[0.0; 3]; MOMENT_BUCKETS].into_boxed_slice(),
        }
    }

    /// Records one duration (clamped to [`HIGHEST_TRACKABLE`]).
    pub fn record(&mut self, duration: Duration) {
        let us = micros(duration);
        self.hist.saturating_record(us);
        self.count += 1;
        let x = us as f64;
        let delta = x - self.mean_us;
        self.mean_us += delta / self.count as f64;
        self.m2_us += delta * (x - self.mean_us);
        self.max_us = self.max_us.max(us);
        let m = &mut self.moments[moment_bucket(us)];
        m[0] += 1.0;
        m[1] += x;
        m[2] += x * x;
    }

    /// Number of durations recorded.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// True when nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The duration at quantile `q` (clamped to 0..=1); none when empty.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        if self.is_empty() {
            return None;
        }
        let q = if q.is_nan() { 0.5 } else { q.clamp(0.0, 1.0) };
        Some(Duration::from_micros(self.hist.value_at_quantile(q)))
    }

    /// The exact mean; none when empty.
    pub fn mean(&self) -> Option<Duration> {
        (!self.is_empty()).then(|| from_micros_f64(self.mean_us))
    }

    /// The mean in µs as a float (0 when empty).
    pub(crate) fn mean_us(&self) -> f64 {
        self.mean_us
    }

    /// The population variance in µs² (0 with fewer than 2 samples).
    pub(crate) fn variance_us2(&self) -> f64 {
        if self.count < 2 {
            0.0
        } else {
            (self.m2_us / self.count as f64).max(0.0)
        }
    }

    /// The exact standard deviation; none when empty.
    pub fn stdev(&self) -> Option<Duration> {
        (!self.is_empty()).then(|| from_micros_f64(self.variance_us2().sqrt()))
    }

    /// The shortest recorded duration (histogram precision); none when empty.
    pub fn min(&self) -> Option<Duration> {
        (!self.is_empty()).then(|| Duration::from_micros(self.hist.min()))
    }

    /// The longest recorded duration (histogram precision); none when empty.
    pub fn max(&self) -> Option<Duration> {
        (!self.is_empty()).then(|| Duration::from_micros(self.hist.max()))
    }

    /// Count, mean and the usual quantiles, for views; none when empty.
    pub fn summary(&self) -> Option<DurationSummary> {
        let ms = |q: f64| self.quantile(q).map_or(0.0, |d| d.as_secs_f64() * 1e3);
        (!self.is_empty()).then(|| DurationSummary {
            count: self.count,
            mean_ms: self.mean_us / 1e3,
            stdev_ms: self.variance_us2().sqrt() / 1e3,
            min_ms: self.hist.min() as f64 / 1e3,
            p10_ms: ms(0.10),
            p50_ms: ms(0.50),
            p90_ms: ms(0.90),
            p95_ms: ms(0.95),
            p99_ms: ms(0.99),
            max_ms: self.hist.max() as f64 / 1e3,
            buckets: Some(
                BUCKET_BOUNDS_SECONDS.map(|le| self.hist.count_between(0, (le * 1e6) as u64)),
            ),
        })
    }

    /// The conditional-remaining-time table of this distribution. O(buckets, a few hundred):
    /// build it once per estimate, not once per item.
    pub fn survival(&self) -> SurvivalTable {
        if self.is_empty() {
            return SurvivalTable::default();
        }
        // Suffix sums: count, sum and sum of squares of the samples in bucket i and above.
        let mut suffix = vec![[0.0f64; 3]; MOMENT_BUCKETS + 1];
        for i in (0..MOMENT_BUCKETS).rev() {
            let (above, here) = (suffix[i + 1], self.moments[i]);
            suffix[i] = [above[0] + here[0], above[1] + here[1], above[2] + here[2]];
        }
        SurvivalTable {
            buckets: self.moments.to_vec(),
            suffix,
            max_us: self.max_us as f64,
        }
    }
}

/// The upper bounds, in seconds, of the cumulative buckets of a [`DurationSummary`] (the
/// buckets of a Prometheus histogram: `/metrics` serves them as one).
pub const BUCKET_BOUNDS_SECONDS: [f64; 16] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
];

/// Count, mean and quantiles of one distribution, in milliseconds (for JSON and views).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DurationSummary {
    /// Samples recorded.
    pub count: u64,
    /// Exact mean.
    pub mean_ms: f64,
    /// Exact standard deviation.
    pub stdev_ms: f64,
    /// Shortest.
    pub min_ms: f64,
    /// 10th percentile.
    pub p10_ms: f64,
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 95th percentile.
    pub p95_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Longest.
    pub max_ms: f64,
    /// How many samples took at most each bound of [`BUCKET_BOUNDS_SECONDS`] (cumulative; at
    /// the histogram's precision, 3 significant digits); none in snapshots of an mmm older
    /// than the buckets.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub buckets: Option<[u64; 16]>,
}

/// The expected remaining time of something that has already run for a while.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Remaining {
    /// Expected remaining time, µs.
    pub mean_us: f64,
    /// Variance of the remaining time, µs².
    pub variance_us2: f64,
    /// True when the elapsed time exceeds every recorded duration and the value is the
    /// [`BEYOND_SEEN_REMAINING_FRACTION`] fallback rather than data.
    pub beyond_seen: bool,
}

impl Remaining {
    /// The expected remaining time as a `Duration`.
    pub fn mean(&self) -> Duration {
        from_micros_f64(self.mean_us)
    }
}

/// A distribution prepared for conditional queries: E[D - e | D > e] and its variance.
#[derive(Debug, Clone, Default)]
pub struct SurvivalTable {
    /// Per bucket: count, sum, sum of squares (empty for an empty distribution).
    buckets: Vec<[f64; 3]>,
    /// The same, summed from bucket i to the end.
    suffix: Vec<[f64; 3]>,
    /// The longest recorded duration, µs.
    max_us: f64,
}

impl SurvivalTable {
    /// True when built from an empty distribution.
    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }

    /// Expected remaining time (and its variance) of an item that has run `elapsed`, from the
    /// recorded durations longer than `elapsed`. When none is longer, the fallback
    /// [`BEYOND_SEEN_REMAINING_FRACTION`] x elapsed, with a standard deviation as large as that.
    /// None when the table is empty.
    ///
    /// Samples in the buckets above `elapsed`'s count exactly; those in its own bucket (12.5%
    /// wide) count for the share of the bucket above `elapsed`, at the middle of that share.
    pub fn remaining(&self, elapsed: Duration) -> Option<Remaining> {
        if self.is_empty() {
            return None;
        }
        let e_us = micros(elapsed);
        let e = e_us as f64;
        let beyond = |e: f64| {
            let mean = BEYOND_SEEN_REMAINING_FRACTION * e;
            Remaining {
                mean_us: mean,
                variance_us2: mean * mean,
                beyond_seen: true,
            }
        };
        if e >= self.max_us {
            return Some(beyond(e));
        }
        let b = moment_bucket(e_us);
        let [mut n, mut s1, mut s2] = self.suffix[b + 1];
        let here = self.buckets[b][0];
        if here > 0.0 {
            let (low, high) = moment_bucket_bounds(b);
            let share = ((high - e) / (high - low)).clamp(0.0, 1.0);
            let x = ((e + high) / 2.0).min(self.max_us).max(e);
            n += here * share;
            s1 += here * share * x;
            s2 += here * share * x * x;
        }
        if n <= 0.0 {
            return Some(beyond(e));
        }
        let mean_total = s1 / n;
        // E[(D - e)^2 | D > e] = E[D^2] - 2e E[D] + e^2; variance = that - (E[D] - e)^2.
        let second = s2 / n - 2.0 * e * mean_total + e * e;
        let mean = (mean_total - e).max(0.0);
        Some(Remaining {
            mean_us: mean,
            variance_us2: (second - mean * mean).max(0.0),
            beyond_seen: false,
        })
    }
}

/// Durations of one step of the plan.
#[derive(Debug, Clone)]
pub struct StepDurations {
    /// The step's name.
    pub name: String,
    /// Durations of the runs of this step.
    pub ran: DurationStats,
    /// How many times the step was skipped by its `when:`.
    pub skipped: u64,
}

impl StepDurations {
    /// The expected contribution of this step to an item that has not reached it yet: the mean
    /// of its runs times the share of items that run it, and the variance of that. None when
    /// the step was never seen.
    pub(crate) fn expected_us(&self) -> Option<(f64, f64)> {
        let seen = self.ran.count() + self.skipped;
        if seen == 0 {
            return None;
        }
        let share = self.ran.count() as f64 / seen as f64;
        let mean = self.ran.mean_us();
        // Mixture of "ran" (mean, var) with weight `share` and "skipped" (0, 0).
        let second = share * (self.ran.variance_us2() + mean * mean);
        let m = share * mean;
        Some((m, (second - m * m).max(0.0)))
    }
}

/// A linear fit of item duration against completion order, when it is significant.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrendFit {
    /// Samples in the fit.
    pub samples: u64,
    /// Change of the expected duration per completed item, µs.
    pub slope_us: f64,
    /// Mean completion index of the samples.
    pub mean_index: f64,
    /// Mean duration of the samples, µs (the line passes through it).
    pub mean_us: f64,
    /// Sum of squared deviations of the indices.
    pub index_m2: f64,
    /// Standard deviation of the residuals, µs.
    pub residual_sd_us: f64,
    /// The slope's t statistic.
    pub t: f64,
}

impl TrendFit {
    /// The fitted duration at completion index `k`, µs (may be negative: callers clip).
    pub fn at(&self, k: f64) -> f64 {
        self.mean_us + self.slope_us * (k - self.mean_index)
    }

    /// The mean of the fitted line clipped at zero over completion indices `from..to`, µs:
    /// the expected duration of the items that will complete in that range.
    pub fn mean_over(&self, from: f64, to: f64) -> f64 {
        let (a, b) = (self.at(from), self.at(to));
        if to <= from {
            return a.max(0.0);
        }
        if a >= 0.0 && b >= 0.0 {
            return (a + b) / 2.0;
        }
        if a <= 0.0 && b <= 0.0 {
            return 0.0;
        }
        // One end is below zero: average the positive triangle over the whole range.
        let (pos, neg) = if a > 0.0 { (a, b) } else { (b, a) };
        let positive_share = pos / (pos - neg);
        pos / 2.0 * positive_share
    }

    /// The variance of the fitted line's value at `k` (the uncertainty of the model, not of
    /// one item), µs².
    pub fn level_variance_at(&self, k: f64) -> f64 {
        let s2 = self.residual_sd_us * self.residual_sd_us;
        let n = self.samples.max(1) as f64;
        let dk = k - self.mean_index;
        s2 * (1.0 / n
            + if self.index_m2 > 0.0 {
                dk * dk / self.index_m2
            } else {
                0.0
            })
    }
}

/// Welford-style running regression of duration on completion index.
#[derive(Debug, Clone, Default)]
struct TrendAccumulator {
    n: u64,
    mean_k: f64,
    mean_d: f64,
    m2_k: f64,
    m2_d: f64,
    c_kd: f64,
}

impl TrendAccumulator {
    fn push(&mut self, k: f64, d: f64) {
        self.n += 1;
        let n = self.n as f64;
        let dk = k - self.mean_k;
        self.mean_k += dk / n;
        let dd = d - self.mean_d;
        self.mean_d += dd / n;
        self.m2_k += dk * (k - self.mean_k);
        self.m2_d += dd * (d - self.mean_d);
        self.c_kd += dk * (d - self.mean_d);
    }

    fn fit(&self) -> Option<TrendFit> {
        if self.n < TREND_MIN_SAMPLES || self.m2_k <= 0.0 {
            return None;
        }
        let slope = self.c_kd / self.m2_k;
        let ssr = (self.m2_d - slope * self.c_kd).max(0.0);
        let s2 = ssr / (self.n - 2) as f64;
        let se = (s2 / self.m2_k).sqrt();
        let t = if se > 0.0 {
            slope / se
        } else if slope != 0.0 {
            // A perfect line: as significant as it gets.
            f64::INFINITY.copysign(slope)
        } else {
            0.0
        };
        Some(TrendFit {
            samples: self.n,
            slope_us: slope,
            mean_index: self.mean_k,
            mean_us: self.mean_d,
            index_m2: self.m2_k,
            residual_sd_us: s2.sqrt(),
            t,
        })
    }
}

/// What a job's completed items say about durations: per step, per item, and the drift.
///
/// Feed it once per finished item (completed or dead-lettered: failures took time too), in the
/// order they finished; items restored by a resume may be fed first, in their original order.
#[derive(Debug, Clone)]
pub struct DurationModel {
    steps: Vec<StepDurations>,
    item: DurationStats,
    trend: TrendAccumulator,
    profile: CompletionProfile,
    /// The first completions are biased short (of the N items started together, the short ones
    /// finish first), so the trend ignores this many.
    trend_skip: u64,
}

impl DurationModel {
    /// A model for a plan with these steps, run by `agents` agents.
    pub fn new<S: Into<String>>(step_names: impl IntoIterator<Item = S>, agents: usize) -> Self {
        DurationModel {
            steps: step_names
                .into_iter()
                .take(MAX_STEPS)
                .map(|name| StepDurations {
                    name: name.into(),
                    ran: DurationStats::new(),
                    skipped: 0,
                })
                .collect(),
            item: DurationStats::new(),
            trend: TrendAccumulator::default(),
            profile: CompletionProfile::default(),
            trend_skip: agents as u64,
        }
    }

    /// Records a finished item's duration: the time it kept its agent (from being taken to
    /// its end: all its attempts and the waits between them). Call once per item.
    pub fn record_item(&mut self, total: Duration) {
        let k = self.item.count();
        self.item.record(total);
        let us = micros(total) as f64;
        self.profile.push(us);
        if k >= self.trend_skip {
            self.trend.push(k as f64, us);
        }
    }

    /// Records one run of step `step` (its index in the plan), or `None` when it was skipped.
    /// An index past the known steps adds unnamed steps (`step N`); indices past 1024 are
    /// ignored.
    pub fn record_step(&mut self, step: usize, duration: Option<Duration>) {
        if step >= MAX_STEPS {
            return;
        }
        while self.steps.len() <= step {
            let name = format!("step {}", self.steps.len() + 1);
            self.steps.push(StepDurations {
                name,
                ran: DurationStats::new(),
                skipped: 0,
            });
        }
        let s = &mut self.steps[step];
        match duration {
            Some(d) => s.ran.record(d),
            None => s.skipped += 1,
        }
    }

    /// Whole-item durations.
    pub fn item(&self) -> &DurationStats {
        &self.item
    }

    /// Every step, in plan order.
    pub fn steps(&self) -> &[StepDurations] {
        &self.steps
    }

    /// Step `step`, if known.
    pub fn step(&self, step: usize) -> Option<&StepDurations> {
        self.steps.get(step)
    }

    /// The linear drift of item durations over completion order, when it is significant
    /// (at least [`TREND_MIN_SAMPLES`] samples and |t| >= [`TREND_MIN_T`]).
    pub fn trend(&self) -> Option<TrendFit> {
        self.trend.fit().filter(|f| f.t.abs() >= TREND_MIN_T)
    }

    /// When durations drift ([`DurationModel::trend`]), the expected duration of the items
    /// that will complete at indices `from..to`, `to` being the job's last item (see
    /// [`super::drift`]); none without a significant drift.
    pub fn drift_forecast(&self, from: f64, to: f64) -> Option<DriftForecast> {
        self.trend()
            .map(|trend| forecast(&trend, &self.profile, from, to))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn empty_stats_answer_none_and_do_not_panic() {
        let s = DurationStats::new();
        assert_eq!(s.quantile(0.5), None);
        assert_eq!(s.mean(), None);
        assert_eq!(s.min(), None);
        assert!(s.summary().is_none());
        assert!(s.survival().remaining(ms(5)).is_none());
    }

    #[test]
    fn quantiles_and_mean_of_1_to_100_ms() {
        let mut s = DurationStats::new();
        for v in 1..=100 {
            s.record(ms(v));
        }
        let p = |q| s.quantile(q).unwrap().as_secs_f64() * 1e3;
        assert!((p(0.5) - 50.0).abs() <= 1.0, "p50 {}", p(0.5));
        assert!((p(0.9) - 90.0).abs() <= 1.0, "p90 {}", p(0.9));
        assert!((p(0.99) - 99.0).abs() <= 1.0, "p99 {}", p(0.99));
        assert_eq!(s.mean(), Some(Duration::from_micros(50_500)));
        assert_eq!(s.count(), 100);
        let sum = s.summary().unwrap();
        assert!((sum.stdev_ms - 28.866).abs() < 0.01, "sd {}", sum.stdev_ms);
    }

    #[test]
    fn out_of_range_values_are_clamped() {
        let mut s = DurationStats::new();
        s.record(Duration::from_secs(100 * 24 * 3600));
        s.record(Duration::ZERO);
        assert!(s.max().unwrap() <= HIGHEST_TRACKABLE + HIGHEST_TRACKABLE / 50);
        assert_eq!(s.count(), 2);
        assert!(s.quantile(f64::NAN).is_some());
        assert!(s.quantile(7.0).is_some());
    }

    #[test]
    fn conditional_remaining_uses_only_longer_samples() {
        let mut s = DurationStats::new();
        for v in [10, 20, 30, 100] {
            s.record(ms(v));
        }
        let t = s.survival();
        // Nothing elapsed: the plain mean.
        let r0 = t.remaining(Duration::ZERO).unwrap();
        assert!((r0.mean_us - 40_000.0).abs() < 500.0, "{r0:?}");
        // Ran 25 ms: only 30 and 100 remain possible, mean 65, so 40 to go.
        let r = t.remaining(ms(25)).unwrap();
        assert!((r.mean_us - 40_000.0).abs() < 500.0, "{r:?}");
        assert!(!r.beyond_seen);
        // Ran 50 ms: only the 100 ms sample is longer: 50 to go, no spread.
        let r = t.remaining(ms(50)).unwrap();
        assert!((r.mean_us - 50_000.0).abs() < 600.0, "{r:?}");
        assert!(r.variance_us2.sqrt() < 1_000.0);
    }

    #[test]
    fn moment_buckets_cover_every_value_in_order() {
        let mut last = 0;
        for us in (0..20_000u64).chain([u64::MAX / 3, u64::MAX]) {
            let b = moment_bucket(us);
            assert!(b < MOMENT_BUCKETS && b >= last, "{us}: {b} after {last}");
            let (low, high) = moment_bucket_bounds(b);
            assert!(
                low <= us as f64 && (us as f64) < high * (1.0 + 1e-12),
                "{us} in {b}"
            );
            last = b;
        }
    }

    #[test]
    fn beyond_everything_seen_falls_back_to_a_fraction_of_elapsed() {
        let mut s = DurationStats::new();
        s.record(ms(10));
        let r = s.survival().remaining(ms(1000)).unwrap();
        assert!(r.beyond_seen);
        assert_eq!(r.mean(), ms(500));
    }

    #[test]
    fn skipped_steps_weigh_the_step_mean() {
        let mut m = DurationModel::new(["a"], 2);
        m.record_step(0, Some(ms(100)));
        m.record_step(0, None);
        let (mean, _) = m.step(0).unwrap().expected_us().unwrap();
        assert!((mean - 50_000.0).abs() < 1.0);
        // Unknown step indices grow the list instead of panicking.
        m.record_step(3, Some(ms(1)));
        assert_eq!(m.steps().len(), 4);
        assert_eq!(m.steps()[3].name, "step 4");
        m.record_step(usize::MAX, Some(ms(1)));
        assert_eq!(m.steps().len(), 4);
    }

    #[test]
    fn trend_is_found_in_a_sorted_job_and_not_in_a_flat_one() {
        let mut sorted = DurationModel::new(["s"], 4);
        let mut flat = DurationModel::new(["s"], 4);
        for k in 0..200u64 {
            sorted.record_item(ms(1000 - 4 * k));
            // Alternating 50/150 ms: no drift.
            flat.record_item(ms(if k % 2 == 0 { 50 } else { 150 }));
        }
        let t = sorted.trend().expect("a perfect line is significant");
        assert!((t.slope_us + 4_000.0).abs() < 50.0, "{t:?}");
        // Clipped at zero: the line is 200 ms at index 200 and 0 at 250, so the mean over
        // 200..300 is half of the 100 ms average of the positive part: 50 ms.
        let mean = t.mean_over(200.0, 300.0);
        assert!((mean - 50_000.0).abs() < 1_000.0, "{mean}");
        assert!(flat.trend().is_none());
    }
}
