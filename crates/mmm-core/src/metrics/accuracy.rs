//! How right the ETA was, judged once the map is over: the estimates a job showed (its
//! snapshots hold them) against when the map really ended. The realized error at 10, 25, 50
//! and 75% done, and how often the true end fell inside the P10-P90 range (docs/eta.md,
//! "How right it was"). Reports show it per job; `mmm stats` aggregates it per job name.

use serde::{Deserialize, Serialize};

use crate::metrics::{Basis, Eta};

/// The points of progress the error is judged at, percent done.
pub const CHECKPOINTS: [u8; 4] = [10, 25, 50, 75];

/// One estimate the job showed: when, how far along, and what it said.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Shown {
    /// When it was shown, epoch ms.
    pub at_ms: i64,
    /// Percent done then, 0..=100.
    pub percent: f64,
    /// What the ETA said.
    pub eta: Eta,
}

/// The ETA's realized error at one point of progress.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EtaError {
    /// The point of progress: the first estimate shown at or past this percent done.
    pub percent: u8,
    /// When that estimate was shown, epoch ms.
    pub at_ms: i64,
    /// The median remaining time it said, ms.
    pub estimated_ms: u64,
    /// The time that really remained, ms.
    pub actual_ms: u64,
    /// `estimated_ms - actual_ms`: above zero the estimate was too late, below too early.
    pub error_ms: i64,
    /// `|error_ms| / actual_ms` (the error as a share of the truth; 0 when both are 0).
    pub relative: f64,
    /// What the estimate came from.
    pub basis: Basis,
}

/// How right a job's ETA was.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EtaAccuracy {
    /// Estimates shown before the end (snapshots whose ETA was an estimate).
    pub estimates: u64,
    /// How many of them had the true end inside their P10-P90 range.
    pub covered: u64,
    /// `covered / estimates`.
    pub coverage: f64,
    /// The realized error at each of [`CHECKPOINTS`] the job reached with an estimate.
    pub at_percent: Vec<EtaError>,
}

/// Judges the estimates `shown` (in time order) against the map's true end `end_ms`. `None`
/// when no estimate was shown before the end (a job too short to estimate, or whose snapshots
/// held none).
pub fn judge(shown: &[Shown], end_ms: i64) -> Option<EtaAccuracy> {
    let estimates: Vec<(&Shown, &crate::metrics::Estimate)> = shown
        .iter()
        .filter(|s| s.at_ms <= end_ms)
        .filter_map(|s| match &s.eta {
            Eta::Estimate(e) => Some((s, e)),
            _ => None,
        })
        .collect();
    if estimates.is_empty() {
        return None;
    }
    let covered = estimates
        .iter()
        .filter(|(s, e)| {
            let low = s.at_ms.saturating_add(e.p10_ms as i64);
            let high = s.at_ms.saturating_add(e.p90_ms as i64);
            (low..=high).contains(&end_ms)
        })
        .count() as u64;
    let at_percent = CHECKPOINTS
        .iter()
        .filter_map(|&percent| {
            let (s, e) = estimates
                .iter()
                .find(|(s, _)| s.percent >= f64::from(percent))?;
            let actual_ms = (end_ms - s.at_ms).max(0) as u64;
            let error_ms = e.p50_ms as i64 - actual_ms as i64;
            let relative = if actual_ms == 0 {
                if error_ms == 0 { 0.0 } else { 1.0 }
            } else {
                error_ms.unsigned_abs() as f64 / actual_ms as f64
            };
            Some(EtaError {
                percent,
                at_ms: s.at_ms,
                estimated_ms: e.p50_ms,
                actual_ms,
                error_ms,
                relative,
                basis: e.basis,
            })
        })
        .collect();
    Some(EtaAccuracy {
        estimates: estimates.len() as u64,
        covered,
        coverage: covered as f64 / estimates.len() as f64,
        at_percent,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Estimate;

    fn estimate(at_ms: i64, percent: f64, p10: u64, p50: u64, p90: u64) -> Shown {
        Shown {
            at_ms,
            percent,
            eta: Eta::Estimate(Estimate {
                p10_ms: p10,
                p50_ms: p50,
                p90_ms: p90,
                finish_at_ms: at_ms + p50 as i64,
                basis: Basis::Durations,
                rate_ms: None,
                widened_by_rate: false,
            }),
        }
    }

    #[test]
    fn errors_are_judged_at_the_first_estimate_past_each_point() {
        let shown = [
            Shown {
                at_ms: 0,
                percent: 0.0,
                eta: Eta::WarmingUp {
                    completed: 0,
                    needed: 3,
                },
            },
            // Said 800 ms left at 12%; 900 remained; the range 700..1000 holds the end.
            estimate(100, 12.0, 700, 800, 1_000),
            // At 30%: said 1000, 700 remained; range 900..1100 misses it.
            estimate(300, 30.0, 900, 1_000, 1_100),
            estimate(600, 60.0, 300, 400, 500),
            estimate(2_000, 100.0, 0, 0, 0),
        ];
        let judged = judge(&shown, 1_000).unwrap();
        assert_eq!(judged.estimates, 3, "the one after the end is not counted");
        assert_eq!(judged.covered, 2);
        let at: Vec<(u8, i64, f64)> = judged
            .at_percent
            .iter()
            .map(|e| (e.percent, e.error_ms, e.relative))
            .collect();
        assert_eq!(
            at,
            vec![
                (10, -100, 100.0 / 900.0),
                (25, 300, 300.0 / 700.0),
                (50, 0, 0.0)
            ],
            "75% was never reached with an estimate"
        );
    }

    #[test]
    fn no_estimate_no_judgement() {
        assert_eq!(judge(&[], 10), None);
    }
}
