//! Drift: what the queued items will take when item durations change with completion order
//! (typically an input sorted by size, longest first).
//!
//! The mean of what completed then says little about what is queued. Two explanations of a
//! significant drift ([`super::durations::TrendFit`]) are fitted to the completion-order
//! profile, and the one that fits the completed items better forecasts the queued ones:
//! - **linear**: the duration changes by a fixed amount per item (the line, clipped at zero);
//! - **sorted log-normal**: the input is sorted by duration, so the completed items are the
//!   largest (or smallest) of the job's `total` items; a log-normal is fitted to them by their
//!   ranks (ln d against the normal quantile of the rank), and the queued items are the rest
//!   of that distribution. This is what keeps a heavy-tailed job sorted longest-first from
//!   being forecast at zero by a straight line.
//!
//! docs/eta.md has the formulas and what neither explanation can foresee (a sorted bimodal job).

use serde::Serialize;

use super::durations::TrendFit;

/// Blocks kept in the completion-order profile; when full, neighbours merge (so the profile
/// is O(1) in memory and the fit O(blocks) whatever the job's size).
const MAX_BLOCKS: usize = 256;

/// Relative standard deviation added to a drift forecast's mean for extrapolating at all: the
/// fits' own variances only cover noise around the fitted shape, not a shape that bends
/// beyond the data. Calibrated on the simulations of tests/eta_simulation.rs (docs/eta.md):
/// without it the P10-P90 range of jobs sorted longest-first held the true remaining time in
/// 43-60% of the runs; with it, 77-82%, as for unsorted jobs.
pub const DRIFT_EXTRAPOLATION_SD: f64 = 0.03;

/// Probabilities are kept this far from 0 and 1 so quantiles stay finite.
const P_EPSILON: f64 = 1e-9;

/// The standard normal distribution function, from erf (Abramowitz & Stegun 7.1.26, absolute
/// error below 1.5e-7: plenty for a range on a screen).
pub(crate) fn normal_cdf(x: f64) -> f64 {
    let z = x / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.327_591_1 * z.abs());
    let poly = t
        * (0.254_829_592
            + t * (-0.284_496_736
                + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    let erf = 1.0 - poly * (-z * z).exp();
    let erf = if z >= 0.0 { erf } else { -erf };
    0.5 * (1.0 + erf)
}

/// The standard normal quantile function (P. J. Acklam's rational approximation, relative
/// error below 1.2e-9). `p` is clamped into (0, 1).
pub(crate) fn normal_quantile(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    let p = if p.is_nan() {
        0.5
    } else {
        p.clamp(P_EPSILON, 1.0 - P_EPSILON)
    };
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    if p < 0.02425 {
        tail((-2.0 * p.ln()).sqrt())
    } else if p > 1.0 - 0.02425 {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    }
}

#[derive(Debug, Clone, Copy)]
struct Block {
    /// Completion index of the block's first item.
    first: u64,
    count: u64,
    sum_us: f64,
}

/// Item durations in completion order, as at most [`MAX_BLOCKS`] block means.
#[derive(Debug, Clone)]
pub(crate) struct CompletionProfile {
    blocks: Vec<Block>,
    block_size: u64,
    count: u64,
}

impl Default for CompletionProfile {
    fn default() -> Self {
        CompletionProfile {
            blocks: Vec::with_capacity(MAX_BLOCKS),
            block_size: 1,
            count: 0,
        }
    }
}

impl CompletionProfile {
    /// Adds the next completion's duration. O(1) amortised.
    pub(crate) fn push(&mut self, us: f64) {
        match self.blocks.last_mut() {
            Some(last) if last.count < self.block_size => {
                last.count += 1;
                last.sum_us += us;
            }
            _ => {
                if self.blocks.len() >= MAX_BLOCKS {
                    self.blocks = self
                        .blocks
                        .chunks(2)
                        .map(|pair| Block {
                            first: pair[0].first,
                            count: pair.iter().map(|b| b.count).sum(),
                            sum_us: pair.iter().map(|b| b.sum_us).sum(),
                        })
                        .collect();
                    self.block_size *= 2;
                }
                self.blocks.push(Block {
                    first: self.count,
                    count: 1,
                    sum_us: us,
                });
            }
        }
        self.count += 1;
    }
}

/// Which explanation of the drift forecasts the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DriftShape {
    /// A straight line over completion order, clipped at zero.
    Linear,
    /// A log-normal of which the completed items are the largest (or smallest).
    SortedLogNormal,
}

/// The expected duration of the queued items under a drift.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DriftForecast {
    /// The explanation used.
    pub shape: DriftShape,
    /// Expected duration of one queued item, µs.
    pub mean_us: f64,
    /// Variance of one queued item's duration, µs².
    pub item_variance_us2: f64,
    /// Variance of `mean_us` itself (the model's uncertainty), µs².
    pub mean_variance_us2: f64,
}

/// Forecasts the items that will complete at indices `from..to` of `total` (the job's items
/// this model has seen and will see), given a significant `trend` and the `profile`.
pub(crate) fn forecast(
    trend: &TrendFit,
    profile: &CompletionProfile,
    from: f64,
    to: f64,
) -> DriftForecast {
    let linear = DriftForecast {
        shape: DriftShape::Linear,
        mean_us: trend.mean_over(from, to),
        item_variance_us2: trend.residual_sd_us * trend.residual_sd_us,
        mean_variance_us2: trend.level_variance_at((from + to) / 2.0),
    };
    let mut f = sorted_log_normal(trend, profile, from, to).unwrap_or(linear);
    f.mean_variance_us2 += (DRIFT_EXTRAPOLATION_SD * f.mean_us).powi(2);
    f
}

/// The sorted log-normal forecast, when it fits the completed items better than the line.
fn sorted_log_normal(
    trend: &TrendFit,
    profile: &CompletionProfile,
    from: f64,
    to: f64,
) -> Option<DriftForecast> {
    let total = to;
    if profile.blocks.len() < 3 || total <= profile.count as f64 || trend.slope_us == 0.0 {
        return None;
    }
    // Longest first: completion index j is rank j from the top, p = 1 - (j + 0.5) / total.
    let descending = trend.slope_us < 0.0;
    let p_of = |j: f64| {
        let p = (j + 0.5) / total;
        if descending { 1.0 - p } else { p }
    };
    // Weighted least squares of ln(block mean) on z(block middle).
    let points: Vec<(f64, f64, f64, f64)> = profile
        .blocks
        .iter()
        .filter(|b| b.sum_us > 0.0)
        .map(|b| {
            let mid = b.first as f64 + (b.count as f64 - 1.0) / 2.0;
            let mean = b.sum_us / b.count as f64;
            (normal_quantile(p_of(mid)), mean.ln(), b.count as f64, mid)
        })
        .collect();
    let w: f64 = points.iter().map(|p| p.2).sum();
    if points.len() < 3 || w <= 0.0 {
        return None;
    }
    let mz = points.iter().map(|p| p.2 * p.0).sum::<f64>() / w;
    let my = points.iter().map(|p| p.2 * p.1).sum::<f64>() / w;
    let szz: f64 = points.iter().map(|p| p.2 * (p.0 - mz).powi(2)).sum();
    let szy: f64 = points.iter().map(|p| p.2 * (p.0 - mz) * (p.1 - my)).sum();
    if szz <= 0.0 {
        return None;
    }
    let sigma = szy / szz;
    if !(sigma > 0.0 && sigma.is_finite()) {
        return None;
    }
    let mu = my - sigma * mz;

    // Which explanation fits the completed items better, in their own units?
    let (mut sse_line, mut sse_lognormal, mut ln_residual2) = (0.0, 0.0, 0.0);
    for &(z, y, n, mid) in &points {
        let observed = y.exp();
        sse_line += n * (trend.at(mid).max(0.0) - observed).powi(2);
        sse_lognormal += n * ((mu + sigma * z).exp() - observed).powi(2);
        ln_residual2 += n * (mu + sigma * z - y).powi(2);
    }
    if sse_lognormal >= sse_line {
        return None;
    }

    // The queued items are the ranks from..to: the probability band [p_lo, p_hi].
    let (a, b) = (p_of(from - 0.5), p_of(to - 0.5));
    let (p_lo, p_hi) = (a.min(b).max(0.0), a.max(b).min(1.0));
    if p_hi - p_lo <= P_EPSILON {
        return None;
    }
    let z = |p: f64| {
        if p <= 0.0 {
            f64::NEG_INFINITY
        } else if p >= 1.0 {
            f64::INFINITY
        } else {
            normal_quantile(p)
        }
    };
    let band = |shift: f64| {
        let cdf = |x: f64| {
            if x == f64::NEG_INFINITY {
                0.0
            } else if x == f64::INFINITY {
                1.0
            } else {
                normal_cdf(x)
            }
        };
        (cdf(z(p_hi) - shift) - cdf(z(p_lo) - shift)) / (p_hi - p_lo)
    };
    // E[D | band] and E[D^2 | band] of a log-normal: partial moments.
    let mean = (mu + sigma * sigma / 2.0).exp() * band(sigma);
    let second = (2.0 * mu + 2.0 * sigma * sigma).exp() * band(2.0 * sigma);
    if !(mean.is_finite() && second.is_finite()) {
        return None;
    }
    let residual_var = ln_residual2 / w;
    Some(DriftForecast {
        shape: DriftShape::SortedLogNormal,
        mean_us: mean,
        item_variance_us2: (second - mean * mean).max(0.0),
        // The fitted level is off by about its relative residual over the blocks.
        mean_variance_us2: mean * mean * residual_var / points.len() as f64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_functions_known_values() {
        assert!((normal_cdf(0.0) - 0.5).abs() < 1e-6);
        assert!((normal_cdf(1.281_551_565_545) - 0.9).abs() < 1e-6);
        assert!((normal_quantile(0.9) - 1.281_551_565_545).abs() < 1e-7);
        assert!((normal_quantile(0.001) + 3.090_232_306).abs() < 1e-6);
        assert!(normal_quantile(0.0).is_finite());
        assert!(normal_quantile(1.0).is_finite());
        assert!(normal_quantile(f64::NAN).abs() < 1e-9);
    }

    #[test]
    fn profile_stays_bounded_and_keeps_every_item() {
        let mut p = CompletionProfile::default();
        for k in 0..10_000 {
            p.push(k as f64);
        }
        assert!(p.blocks.len() <= MAX_BLOCKS);
        assert_eq!(p.blocks.iter().map(|b| b.count).sum::<u64>(), 10_000);
        let sum: f64 = p.blocks.iter().map(|b| b.sum_us).sum();
        assert_eq!(sum, (0..10_000).map(|k| k as f64).sum::<f64>());
        // Blocks are contiguous.
        for w in p.blocks.windows(2) {
            assert_eq!(w[0].first + w[0].count, w[1].first);
        }
    }
}
