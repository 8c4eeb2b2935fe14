//! Counters steps report (`mmm report --counter cost_cents=+12`), per item and forecast to the
//! end of the job: each item's sum of a counter (its attempts' reports; zero when it reported
//! none) is a sample; the expected total is what the job has so far plus the mean per item
//! for every item not started yet, with a P10-P90 range from the variance of that sum (the
//! items' spread, and the uncertainty of the mean itself), as the ETA's range is made
//! (docs/eta.md, docs/api-work.md). Pure: no clock, no I/O.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::counter::{CounterValue, estimate};

/// Items that must have ended before a counter is forecast.
pub const FORECAST_MIN_ITEMS: u64 = 3;

/// The standard normal quantile of 0.9 (as the ETA's).
const Z90: f64 = 1.281_551_565_545;

/// The per-item sums of every counter over the items that ended in this run.
#[derive(Debug, Clone, Default)]
pub struct CounterStats {
    /// Items that ended (completed, skipped, dead-lettered).
    items: u64,
    /// By counter: the sum of the items' values and of their squares.
    sums: BTreeMap<String, (f64, f64)>,
}

/// A counter's figures at a heartbeat: what it is per item, and where it will end.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CounterForecast {
    /// Mean per item, over the items that ended.
    pub per_item: f64,
    /// The expected total once every item has run.
    pub expected: f64,
    /// 10th percentile of the total.
    pub p10: f64,
    /// 90th percentile of the total.
    pub p90: f64,
}

impl CounterStats {
    /// An item ended; `values` holds its sum of each counter it reported.
    pub fn item_ended(&mut self, values: &BTreeMap<String, CounterValue>) {
        self.items += 1;
        for (name, value) in values {
            let v = value.get();
            let sums = self.sums.entry(name.clone()).or_default();
            sums.0 += v;
            sums.1 += v * v;
        }
    }

    /// The forecast of every counter seen: `totals` is each counter's job-wide sum now (the
    /// items in flight are taken as having reported theirs), `unstarted` the items no agent
    /// has taken yet.
    pub fn forecasts(
        &self,
        totals: &BTreeMap<String, CounterValue>,
        unstarted: u64,
    ) -> BTreeMap<String, CounterForecast> {
        if self.items < FORECAST_MIN_ITEMS {
            return BTreeMap::new();
        }
        let n = self.items as f64;
        let r = unstarted as f64;
        self.sums
            .iter()
            .map(|(name, (sum, squares))| {
                let mean = sum / n;
                // Sample variance, the items that reported nothing counting as zeros.
                let variance = ((squares - n * mean * mean) / (n - 1.0).max(1.0)).max(0.0);
                let now = totals.get(name).copied().unwrap_or_default().get();
                let expected = now + r * mean;
                // The sum of `r` items: their own spread, plus the mean's uncertainty times r.
                let spread = (r * variance + r * r * variance / n).sqrt() * Z90;
                let forecast = CounterForecast {
                    per_item: mean,
                    expected,
                    p10: (expected - spread).max(now.min(expected)),
                    p90: expected + spread,
                };
                (name.clone(), forecast)
            })
            .collect()
    }
}

impl CounterForecast {
    /// How views say it: `~4100 at the end (3900-4300)`, `~41.2 at the end (37-46.1)`.
    pub fn text(&self) -> String {
        let (expected, p10, p90) = (
            estimate(self.expected),
            estimate(self.p10),
            estimate(self.p90),
        );
        if p10 == p90 {
            format!("~{expected} at the end")
        } else {
            format!("~{expected} at the end ({p10}-{p90})")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(pairs: &[(&str, i64)]) -> BTreeMap<String, CounterValue> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), CounterValue::from(*v)))
            .collect()
    }

    #[test]
    fn a_uniform_cost_forecasts_exactly_with_no_range() {
        let mut stats = CounterStats::default();
        assert!(stats.forecasts(&values(&[]), 10).is_empty());
        for _ in 0..4 {
            stats.item_ended(&values(&[("cost", 10)]));
        }
        let f = stats.forecasts(&values(&[("cost", 40)]), 6)["cost"];
        assert_eq!(
            (f.per_item, f.expected, f.p10, f.p90),
            (10.0, 100.0, 100.0, 100.0)
        );
        assert_eq!(f.text(), "~100 at the end");
    }

    #[test]
    fn items_that_reported_nothing_count_as_zero_and_widen_the_range() {
        let mut stats = CounterStats::default();
        for cost in [10, 30, 0, 20] {
            let item = if cost == 0 {
                values(&[])
            } else {
                values(&[("cost", cost)])
            };
            stats.item_ended(&item);
        }
        let f = stats.forecasts(&values(&[("cost", 60)]), 100)["cost"];
        assert_eq!(f.per_item, 15.0);
        assert_eq!(f.expected, 60.0 + 1500.0);
        assert!(f.p10 < f.expected && f.expected < f.p90);
        assert!(f.p10 >= 60.0, "never below what is spent already: {f:?}");
    }

    #[test]
    fn a_forecast_in_dollars_reads_with_decimals() {
        let f = CounterForecast {
            per_item: 0.0125,
            expected: 41.234,
            p10: 37.0001,
            p90: 46.149,
        };
        assert_eq!(f.text(), "~41.2 at the end (37-46.1)");
        let f = CounterForecast {
            per_item: 0.001,
            expected: 0.045_678,
            p10: 0.045_678,
            p90: 0.045_678,
        };
        assert_eq!(f.text(), "~0.0457 at the end");
    }
}
