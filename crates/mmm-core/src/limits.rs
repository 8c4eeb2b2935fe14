//! The limits of work that calls paid, rate-limited APIs (docs/api-work.md): a start
//! [`Rate`] (`map.rate: 20/s`, `--rate`) and [`Budget`]s on the counters steps report
//! (`map.budget: {counter: cost_usd, max: 50}`, `--budget cost_usd=50`). Pure values with
//! their text forms; the runner enforces them, the store coordinates the rate.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::counter::CounterValue;

/// The unit of a [`Rate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateUnit {
    /// `/s`.
    Second,
    /// `/min`.
    Minute,
    /// `/h`.
    Hour,
}

impl RateUnit {
    fn seconds(self) -> f64 {
        match self {
            RateUnit::Second => 1.0,
            RateUnit::Minute => 60.0,
            RateUnit::Hour => 3600.0,
        }
    }

    fn suffix(self) -> &'static str {
        match self {
            RateUnit::Second => "s",
            RateUnit::Minute => "min",
            RateUnit::Hour => "h",
        }
    }
}

/// How often attempts may start, across every agent of a job on every host: `count` per
/// `unit`. Written `20/s`, `100/min`, `1.5/h`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// Starts per `unit`, above 0.
    pub count: f64,
    /// The unit of time.
    pub unit: RateUnit,
}

/// Why a rate's text was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{text}` is not a start rate: write a number of starts per second, minute or hour, such as \
     `20/s`, `100/min` or `500/h`"
)]
pub struct BadRate {
    /// The text as given.
    pub text: String,
}

/// The longest time between two starts a rate may ask for (one start a day): a slower rate is
/// surely a typo, and the interval must fit the store's microsecond arithmetic.
const LONGEST_INTERVAL: Duration = Duration::from_secs(86_400);

impl Rate {
    /// Parses `20/s`, `20/sec`, `100/min`, `500/h` (also `/second`, `/minute`, `/hour`).
    pub fn parse(text: &str) -> Result<Rate, BadRate> {
        let bad = || BadRate {
            text: text.to_string(),
        };
        let (count, unit) = text.trim().split_once('/').ok_or_else(bad)?;
        let count: f64 = count.trim().parse().map_err(|_| bad())?;
        let unit = match unit.trim() {
            "s" | "sec" | "second" => RateUnit::Second,
            "m" | "min" | "minute" => RateUnit::Minute,
            "h" | "hour" => RateUnit::Hour,
            _ => return Err(bad()),
        };
        let rate = Rate { count, unit };
        if !count.is_finite()
            || count <= 0.0
            || rate.interval_f64() > LONGEST_INTERVAL.as_secs_f64()
        {
            return Err(bad());
        }
        Ok(rate)
    }

    /// The rate of one start every `delay` (GNU parallel's `--delay`).
    pub fn every(delay: Duration) -> Rate {
        Rate {
            count: 1.0 / delay.as_secs_f64().max(1e-6),
            unit: RateUnit::Second,
        }
    }

    fn interval_f64(&self) -> f64 {
        self.unit.seconds() / self.count
    }

    /// The time between two starts.
    pub fn interval(&self) -> Duration {
        Duration::from_secs_f64(
            self.interval_f64()
                .clamp(1e-6, LONGEST_INTERVAL.as_secs_f64()),
        )
    }

    /// Starts per second.
    pub fn per_second(&self) -> f64 {
        self.count / self.unit.seconds()
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.count, self.unit.suffix())
    }
}

impl std::str::FromStr for Rate {
    type Err = BadRate;
    fn from_str(text: &str) -> Result<Rate, BadRate> {
        Rate::parse(text)
    }
}

impl Serialize for Rate {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Rate {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Rate, D::Error> {
        let text = String::deserialize(deserializer)?;
        Rate::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// A budget on a counter steps report: once the job's total of `counter` reaches `max`, the
/// job is paused (resumably) until the budget is raised (`mmm budget JOB counter=N`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Budget {
    /// The counter's name (as `mmm report --counter NAME=+N` gives it).
    pub counter: String,
    /// The most the counter may reach (a decimal: `49.5` dollars).
    pub max: CounterValue,
}

/// Why a budget's text was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadBudget {
    /// Not `NAME=N`.
    #[error("`{0}` is not a budget: write COUNTER=MAX, such as `cost_usd=50`")]
    Shape(String),
    /// A name a counter cannot have.
    #[error("`{0}` is not a counter name: use letters, digits, `_`, `-` and `.` (at most 64)")]
    Name(String),
    /// Not a number above 0.
    #[error("`{0}` is not a budget's maximum: give a number above 0, such as 50 or 49.5")]
    Max(String),
}

impl Budget {
    /// Parses `cost_usd=49.5`.
    pub fn parse(text: &str) -> Result<Budget, BadBudget> {
        let (counter, max) = text
            .split_once('=')
            .ok_or_else(|| BadBudget::Shape(text.to_string()))?;
        Budget::new(counter.trim(), max.trim())
    }

    /// A budget from its two parts as written.
    pub fn new(counter: &str, max: &str) -> Result<Budget, BadBudget> {
        if !is_counter_name(counter) {
            return Err(BadBudget::Name(counter.to_string()));
        }
        let max = CounterValue::parse(max)
            .ok()
            .filter(|m| m.get() > 0.0)
            .ok_or_else(|| BadBudget::Max(max.to_string()))?;
        Ok(Budget {
            counter: counter.to_string(),
            max,
        })
    }

    /// True once `value` has reached the budget.
    pub fn reached_by(&self, value: CounterValue) -> bool {
        value >= self.max
    }
}

impl fmt::Display for Budget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.counter, self.max)
    }
}

/// True for a name a counter may have (`mmm report --counter`'s rule).
pub fn is_counter_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_in_three_units() {
        assert_eq!(
            Rate::parse("10/s").unwrap().interval(),
            Duration::from_millis(100)
        );
        assert_eq!(
            Rate::parse("120/min").unwrap().interval(),
            Duration::from_millis(500)
        );
        assert_eq!(
            Rate::parse(" 2 / h ").unwrap().interval(),
            Duration::from_secs(1800)
        );
        assert_eq!(
            Rate::parse("0.5/s").unwrap().interval(),
            Duration::from_secs(2)
        );
        assert_eq!(Rate::parse("20/min").unwrap().to_string(), "20/min");
        for bad in [
            "10",
            "10/d",
            "0/s",
            "-1/s",
            "x/s",
            "NaN/s",
            "inf/s",
            "1/",
            "0.00001/h",
        ] {
            assert!(Rate::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_delay_is_a_rate() {
        let rate = Rate::every(Duration::from_millis(250));
        assert_eq!(rate.interval(), Duration::from_millis(250));
        assert!((rate.per_second() - 4.0).abs() < 1e-9);
    }

    #[test]
    fn budgets_parse() {
        let budget = Budget::parse("cost_cents=5_000").unwrap();
        assert_eq!(budget.counter, "cost_cents");
        assert_eq!(budget.max, CounterValue::from(5000));
        assert!(budget.reached_by(5000.into()) && !budget.reached_by(4999.into()));
        assert_eq!(budget.to_string(), "cost_cents=5000");
        let dollars = Budget::parse("cost_usd=49.5").unwrap();
        assert_eq!(dollars.max.get(), 49.5);
        assert_eq!(dollars.to_string(), "cost_usd=49.5");
        assert!(dollars.reached_by(CounterValue::parse("49.5").unwrap()));
        assert!(!dollars.reached_by(CounterValue::parse("49.4999").unwrap()));
        for bad in [
            "cost", "=5", "a b=5", "cost=0", "cost=-1", "cost=x", "cost=NaN", "cost=inf",
        ] {
            assert!(Budget::parse(bad).is_err(), "{bad}");
        }
    }
}
