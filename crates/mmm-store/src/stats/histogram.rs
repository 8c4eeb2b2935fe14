//! [`Histogram`]: durations counted in buckets 1% wide, so the durations of many jobs merge by
//! adding counts and their percentiles come from every recorded duration (never an average of
//! averages), within 0.5% of the exact value.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Each bucket's upper bound is this many times its lower bound.
const GROWTH: f64 = 1.01;

/// Durations in microseconds, counted by bucket: bucket 0 holds 0, bucket `b >= 1` the values
/// in `[GROWTH^(b-1), GROWTH^b)`. A day in microseconds is bucket 2,525, so a job's histogram is
/// a few hundred buckets at most: kept sparse, sorted by bucket, and stored as a flat
/// `[bucket, count, bucket, count, ...]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Histogram {
    counts: Vec<(u32, u64)>,
}

impl Histogram {
    /// Counts one duration.
    pub fn record(&mut self, us: u64) {
        let b = bucket(us);
        match self.counts.binary_search_by_key(&b, |&(k, _)| k) {
            Ok(i) => self.counts[i].1 += 1,
            Err(i) => self.counts.insert(i, (b, 1)),
        }
    }

    /// Durations counted.
    pub fn count(&self) -> u64 {
        self.counts.iter().map(|&(_, n)| n).sum()
    }

    /// The nearest-rank `q` quantile (`0 < q <= 1`: the smallest duration with at least
    /// `ceil(q * count)` durations at or below it), in microseconds, at the buckets' precision;
    /// `None` when empty.
    pub fn quantile_us(&self, q: f64) -> Option<f64> {
        quantile(self.counts.iter().copied(), self.count(), q)
    }
}

/// Histograms added up: dense by bucket, so adding one costs its own buckets alone (a period's
/// thousands of jobs are summed in a few milliseconds).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HistogramSum {
    counts: Vec<u64>,
    total: u64,
}

impl HistogramSum {
    /// Adds every count of `histogram`.
    pub fn add(&mut self, histogram: &Histogram) {
        for &(b, n) in &histogram.counts {
            let b = b as usize;
            if self.counts.len() <= b {
                self.counts.resize(b + 1, 0);
            }
            self.counts[b] += n;
            self.total += n;
        }
    }

    /// Durations counted.
    pub fn count(&self) -> u64 {
        self.total
    }

    /// As [`Histogram::quantile_us`], over every histogram added.
    pub fn quantile_us(&self, q: f64) -> Option<f64> {
        let buckets = self
            .counts
            .iter()
            .enumerate()
            .filter(|&(_, &n)| n > 0)
            .map(|(b, &n)| (b as u32, n));
        quantile(buckets, self.total, q)
    }
}

/// The nearest-rank `q` quantile of `count` durations in `buckets` (ascending).
fn quantile(buckets: impl Iterator<Item = (u32, u64)>, count: u64, q: f64) -> Option<f64> {
    if count == 0 {
        return None;
    }
    let rank = ((q * count as f64).ceil() as u64).clamp(1, count);
    let mut seen = 0;
    let mut last = None;
    for (b, n) in buckets {
        seen += n;
        last = Some(b);
        if seen >= rank {
            return Some(value(b));
        }
    }
    last.map(value)
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
            .counts
            .iter()
            .flat_map(|&(b, n)| [u64::from(b), n])
            .collect();
        flat.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Histogram {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let flat = Vec::<u64>::deserialize(d)?;
        let mut counts = Vec::with_capacity(flat.len() / 2);
        for pair in flat.chunks_exact(2) {
            let b = u32::try_from(pair[0]).map_err(serde::de::Error::custom)?;
            counts.push((b, pair[1]));
        }
        // As written: sorted, each bucket once. Anything else is put in that shape.
        if !counts.windows(2).all(|w| w[0].0 < w[1].0) {
            counts.sort_unstable_by_key(|&(b, _)| b);
            counts.dedup_by(|next, kept| {
                let same = next.0 == kept.0;
                if same {
                    kept.1 += next.1;
                }
                same
            });
        }
        Ok(Histogram { counts })
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
    fn summed_histograms_count_every_duration_and_read_back() {
        let (mut a, mut b) = (Histogram::default(), Histogram::default());
        a.record(1_000);
        a.record(0);
        b.record(1_000);
        let mut sum = HistogramSum::default();
        sum.add(&a);
        sum.add(&b);
        assert_eq!(sum.count(), 3);
        assert_eq!(sum.quantile_us(0.3), Some(0.0));
        assert!((sum.quantile_us(1.0).unwrap() / 1_000.0 - 1.0).abs() < 0.005);
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(serde_json::from_str::<Histogram>(&json).unwrap(), a);
        // Unsorted or repeated buckets read as one sorted histogram.
        let odd: Histogram = serde_json::from_str("[5,1,3,2,5,4]").unwrap();
        assert_eq!(odd.counts, vec![(3, 2), (5, 5)]);
        assert!(Histogram::default().quantile_us(0.5).is_none());
        assert!(HistogramSum::default().quantile_us(0.5).is_none());
    }
}
