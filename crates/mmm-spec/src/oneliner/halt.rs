//! `--halt`: when a one-liner stops before every item has run, as GNU parallel's
//! `--halt when,why` (`now,fail=1`, `soon,fail=10%`, `now,success=1`, `soon,done=3`, and the old
//! numeric forms `1`, `2`, `-1`, `-2`, `1-99%`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// When the condition is met: kill what runs, or let it finish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HaltWhen {
    /// `now`: running commands are killed.
    Now,
    /// `soon`: nothing new starts; running commands finish.
    Soon,
}

/// What is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HaltOn {
    /// `fail=`: items that failed (to the DLQ).
    Fail,
    /// `success=`: items that succeeded.
    Success,
    /// `done=`: items that ended either way.
    Done,
}

/// How many: a count, or a percentage of all items.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Threshold {
    /// At least this many.
    Count(u64),
    /// At least this percentage of the items.
    Percent(f64),
}

/// A `--halt` policy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HaltPolicy {
    /// Kill or let finish.
    pub when: HaltWhen,
    /// What is counted.
    pub on: HaltOn,
    /// How many.
    pub threshold: Threshold,
}

impl HaltPolicy {
    /// True once `count` items of the kind counted, out of `total`, meet the threshold.
    pub fn is_met(&self, count: u64, total: u64) -> bool {
        match self.threshold {
            Threshold::Count(n) => count >= n,
            Threshold::Percent(p) => total > 0 && count as f64 * 100.0 >= p * total as f64,
        }
    }
}

/// Why a `--halt` value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{0}` is not a --halt value: give WHEN,WHY with WHEN `now` or `soon` and WHY `fail=N`, \
     `fail=N%`, `success=N`, `success=N%`, `done=N` or `done=N%` (e.g. `now,fail=1`), or \
     GNU parallel's 0, 1, 2, -1, -2, N%"
)]
pub struct BadHalt(String);

impl HaltPolicy {
    /// Parses a `--halt` value; `Ok(None)` for `0`/`never`.
    pub fn parse(text: &str) -> Result<Option<HaltPolicy>, BadHalt> {
        let bad = || BadHalt(text.to_string());
        let policy = |when, on, threshold| {
            Ok(Some(HaltPolicy {
                when,
                on,
                threshold,
            }))
        };
        match text {
            "0" | "never" => return Ok(None),
            "1" => return policy(HaltWhen::Soon, HaltOn::Fail, Threshold::Count(1)),
            "2" => return policy(HaltWhen::Now, HaltOn::Fail, Threshold::Count(1)),
            "-1" => return policy(HaltWhen::Soon, HaltOn::Success, Threshold::Count(1)),
            "-2" => return policy(HaltWhen::Now, HaltOn::Success, Threshold::Count(1)),
            _ => {}
        }
        let Some((when, why)) = text.split_once(',') else {
            // `N%`: soon,fail=N%.
            let threshold = threshold(text).ok_or_else(bad)?;
            return match threshold {
                Threshold::Percent(_) => policy(HaltWhen::Soon, HaltOn::Fail, threshold),
                Threshold::Count(_) => Err(bad()),
            };
        };
        let when = match when {
            "now" => HaltWhen::Now,
            "soon" => HaltWhen::Soon,
            _ => return Err(bad()),
        };
        let (on, count) = why.split_once('=').ok_or_else(bad)?;
        let on = match on {
            "fail" => HaltOn::Fail,
            "success" => HaltOn::Success,
            "done" => HaltOn::Done,
            _ => return Err(bad()),
        };
        policy(when, on, threshold(count).ok_or_else(bad)?)
    }
}

/// `N` (at least 1) or `N%` (above 0, at most 100).
fn threshold(text: &str) -> Option<Threshold> {
    match text.strip_suffix('%') {
        Some(percent) => {
            let p: f64 = percent.parse().ok()?;
            (p > 0.0 && p <= 100.0).then_some(Threshold::Percent(p))
        }
        None => {
            let n: u64 = text.parse().ok()?;
            (n >= 1).then_some(Threshold::Count(n))
        }
    }
}

impl fmt::Display for HaltPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let when = match self.when {
            HaltWhen::Now => "now",
            HaltWhen::Soon => "soon",
        };
        let on = match self.on {
            HaltOn::Fail => "fail",
            HaltOn::Success => "success",
            HaltOn::Done => "done",
        };
        match self.threshold {
            Threshold::Count(n) => write!(f, "{when},{on}={n}"),
            Threshold::Percent(p) => write!(f, "{when},{on}={p}%"),
        }
    }
}

impl FromStr for HaltPolicy {
    type Err = BadHalt;

    /// A policy that halts (not `0`/`never`).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        HaltPolicy::parse(text)?.ok_or_else(|| BadHalt(text.to_string()))
    }
}

impl Serialize for HaltPolicy {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for HaltPolicy {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gnu_parallel_forms_parse_and_print_back() {
        for text in [
            "now,fail=1",
            "soon,fail=3",
            "soon,fail=3%",
            "now,success=1",
            "soon,done=3",
        ] {
            let policy: HaltPolicy = text.parse().expect(text);
            assert_eq!(policy.to_string(), text);
        }
        assert_eq!(HaltPolicy::parse("0"), Ok(None));
        assert_eq!(
            HaltPolicy::parse("2")
                .expect("valid")
                .map(|p| p.to_string()),
            Some("now,fail=1".to_string())
        );
        assert_eq!(
            HaltPolicy::parse("-1")
                .expect("valid")
                .map(|p| p.to_string()),
            Some("soon,success=1".to_string())
        );
        assert_eq!(
            HaltPolicy::parse("20%")
                .expect("valid")
                .map(|p| p.to_string()),
            Some("soon,fail=20%".to_string())
        );
        for bad in [
            "later,fail=1",
            "now,fail=0",
            "now,oops=1",
            "now",
            "150%",
            "now,fail=x",
            "",
        ] {
            assert!(HaltPolicy::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn thresholds_count_or_take_a_share() {
        let policy: HaltPolicy = "soon,fail=2".parse().expect("valid");
        assert!(!policy.is_met(1, 10));
        assert!(policy.is_met(2, 10));
        let policy: HaltPolicy = "soon,fail=20%".parse().expect("valid");
        assert!(!policy.is_met(1, 10));
        assert!(policy.is_met(2, 10));
        assert!(!policy.is_met(0, 0));
    }
}
