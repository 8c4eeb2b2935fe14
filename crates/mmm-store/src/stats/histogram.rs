//! [`Histogram`]: durations counted in buckets 1% wide, so the durations of many jobs merge by
//! adding counts and their percentiles come from every recorded duration (never an average of
//! averages), within 0.5% of the exact value.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Each bucket's upper bound is this many times its lower bound.
const GROWTH: f64 = 1.01;

/// Durations in microseconds, counted by bucket: bucket 0 holds 0, bucket `b >= 1` the values
/// in `[GROWTH^(b-1), GROWTH^b)`. A day in microseconds is bucket 2,525, so a job's histogram is
/// a few hundred buckets at most. Stored as a flat `[bucket, count, bucket, count, ...]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Histogram {
    buckets: BTreeMap<u32, u64>,
}

impl Histogram {
    /// Counts one duration.
    pub fn record(&mut self, us: u64) {
        *self.buckets.entry(bucket(us)).or_insert(0) += 1;
    }

    /// Adds every count of `other`.
    pub fn merge(&mut self, other: &Histogram) {
        for (&b, &n) in &other.buckets {
            *self.buckets.entry(b).or_insert(0) += n;
        }
    }

    /// Durations counted.
    pub fn count(&self) -> u64 {
        self.buckets.values().sum()
    }

    /// The nearest-rank `q` quantile (`0 < q <= 1`: the smallest duration with at least
    /// `ceil(q * count)` durations at or below it), in microseconds, at the buckets' precision;
    /// `None` when empty.
    pub fn quantile_us(&self, q: f64) -> Option<f64> {
        let count = self.count();
        if count == 0 {
            return None;
        }
        let rank = ((q * count as f64).ceil() as u64).clamp(1, count);
        let mut seen = 0;
        for (&b, &n) in &self.buckets {
            seen += n;
            if seen >= rank {
                return Some(value(b));
            }
        }
        self.buckets.keys().next_back().map(|&b| value(b))
    }
}

/// The bucket of `us`.
fn bucket(us: u64) -> u32 {
    if us == 0 {
        0
    } else {
        1 + ((us as f64).ln() / GROWTH.ln()).floor() as u32
    }
}

/// The value a bucket stands for: the geometric middle of its range (0 for bucket 0).
fn value(bucket: u32) -> f64 {
    if bucket == 0 {
        0.0
    } else {
        GROWTH.powf(f64::from(bucket) - 0.5)
    }
}

impl Serialize for Histogram {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let flat: Vec<u64> = self
            .buckets
            .iter()
            .flat_map(|(&b, &n)| [u64::from(b), n])
            .collect();
        flat.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Histogram {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let flat = Vec::<u64>::deserialize(d)?;
        let mut histogram = Histogram::default();
        for pair in flat.chunks_exact(2) {
            let b = u32::try_from(pair[0]).map_err(serde::de::Error::custom)?;
            *histogram.buckets.entry(b).or_insert(0) += pair[1];
        }
        Ok(histogram)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_within_half_a_percent_of_the_exact_ones() {
        let mut values: Vec<u64> = (0..1_000u64).map(|i| 1 + i * i * 37 % 9_999_991).collect();
        let mut histogram = Histogram::default();
        for &v in &values {
            histogram.record(v);
        }
        values.sort_unstable();
        for q in [0.01, 0.5, 0.95, 0.99, 1.0] {
            let exact = values[((q * 1_000.0f64).ceil() as usize).max(1) - 1] as f64;
            let got = histogram.quantile_us(q).unwrap();
            assert!(
                (got / exact - 1.0).abs() <= 0.005,
                "q {q}: {got} vs {exact}"
            );
        }
    }

    #[test]
    fn merged_histograms_count_every_duration_and_read_back() {
        let (mut a, mut b) = (Histogram::default(), Histogram::default());
        a.record(0);
        a.record(1_000);
        b.record(1_000);
        a.merge(&b);
        assert_eq!(a.count(), 3);
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(serde_json::from_str::<Histogram>(&json).unwrap(), a);
        assert_eq!(a.quantile_us(0.3), Some(0.0));
        assert!(Histogram::default().quantile_us(0.5).is_none());
    }
}
