//! The value of a counter steps report (`mmm report --counter cost_usd=+0.0125`): a decimal
//! number, how it is parsed, summed, stored and shown. Every view shows a counter through this
//! type's `Display`, so a total reads the same in the bars, the viewer, `mmm progress`,
//! `mmm budget`, the reports and the alerts.

use std::fmt;
use std::iter::Sum;
use std::ops::{Add, AddAssign};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A counter's value, its change or a budget on it: a finite decimal number (tokens, dollars).
///
/// Serialised as a JSON integer when it is whole (so records from before counters had
/// decimals read and write the same), else as a JSON number with a fraction.
#[derive(Debug, Clone, Copy, Default, PartialEq, PartialOrd)]
pub struct CounterValue(f64);

/// Significant digits a sum keeps (see [`CounterValue::add`]).
const SUM_DIGITS: i32 = 12;

/// Significant digits shown of a value below 1 (and decimals at most of a larger one).
const SHOWN_DIGITS: i32 = 4;

/// Text that is not a counter's value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a number: give one such as 12, -3 or 0.0125")]
pub struct BadCounterValue(pub String);

impl CounterValue {
    /// Zero.
    pub const ZERO: CounterValue = CounterValue(0.0);

    /// The value `value`, or `None` when it is not finite (NaN, an infinity).
    pub fn new(value: f64) -> Option<CounterValue> {
        value.is_finite().then_some(CounterValue(value))
    }

    /// The value as a float.
    pub fn get(self) -> f64 {
        self.0
    }

    /// Parses `12`, `+12`, `-3`, `0.0125`, `6.17e-05` (as jq and awk print small numbers),
    /// `1_000` (an underscore may group digits); refuses NaN, infinities and anything else.
    pub fn parse(text: &str) -> Result<CounterValue, BadCounterValue> {
        let bad = || BadCounterValue(text.to_string());
        let digits = text.trim().replace('_', "");
        let unsigned = digits.strip_prefix(['+', '-']).unwrap_or(&digits);
        // `f64::from_str` also reads `inf` and `NaN`: a counter is digits, a point and an
        // exponent only (the parse below then checks their order; too large is infinite).
        let plain = unsigned.starts_with(|c: char| c.is_ascii_digit() || c == '.')
            && unsigned
                .chars()
                .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-'));
        if !plain {
            return Err(bad());
        }
        digits
            .parse::<f64>()
            .ok()
            .and_then(CounterValue::new)
            .ok_or_else(bad)
    }

    /// True when it is a whole number that an `i64` holds exactly.
    fn as_whole(self) -> Option<i64> {
        // 2^53: above it not every whole number is a float, and i64 holds every one below.
        const EXACT: f64 = 9_007_199_254_740_992.0;
        (self.0.fract() == 0.0 && self.0.abs() <= EXACT).then_some(self.0 as i64)
    }
}

/// Rounds `x` to `digits` significant digits.
fn round_significant(x: f64, digits: i32) -> f64 {
    if x == 0.0 || !x.is_finite() {
        return x;
    }
    let scale = digits - x.abs().log10().ceil() as i32;
    // Beyond it 10^scale is no finite float: such a value is kept as it is.
    if !(-300..=300).contains(&scale) {
        return x;
    }
    let factor = 10f64.powi(scale);
    (x * factor).round() / factor
}

/// How views show a figure worked out from counters, a rate or a forecast: an estimate, so
/// whole from 100 on and 3 significant digits below (`41.2`, `0.0457`), in the format of
/// [`CounterValue`]'s `Display`.
pub fn estimate(x: f64) -> String {
    let rounded = if x.abs() >= 100.0 {
        x.round()
    } else {
        round_significant(x, 3)
    };
    CounterValue::new(rounded).unwrap_or_default().to_string()
}

impl Add for CounterValue {
    type Output = CounterValue;

    /// The sum, rounded to 12 significant digits: decimal amounts summed in binary drift
    /// (40 × 0.0125 is 0.49999999999999994), and a budget of 0.5 must be reached where a person
    /// expects it. Counters are amounts people read, so 12 digits lose nothing they report.
    fn add(self, other: CounterValue) -> CounterValue {
        CounterValue(round_significant(self.0 + other.0, SUM_DIGITS))
    }
}

impl AddAssign for CounterValue {
    fn add_assign(&mut self, other: CounterValue) {
        *self = *self + other;
    }
}

impl Sum for CounterValue {
    fn sum<I: Iterator<Item = CounterValue>>(iter: I) -> CounterValue {
        iter.fold(CounterValue::ZERO, Add::add)
    }
}

impl From<i64> for CounterValue {
    fn from(value: i64) -> CounterValue {
        CounterValue(value as f64)
    }
}

impl fmt::Display for CounterValue {
    /// How every view shows a counter: a whole number without a decimal point (`1234`); else
    /// at most 4 decimals (`41.2346`), or 4 significant digits below 1 (`0.0125`,
    /// `0.00001234`), with no trailing zeros and no float noise (`0.3`, not
    /// `0.30000000000000004`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let x = self.0;
        if let Some(whole) = self.as_whole() {
            return write!(f, "{whole}");
        }
        if x.abs() >= 1e15 {
            return write!(f, "{x:.0}");
        }
        let decimals = if x.abs() >= 1.0 {
            SHOWN_DIGITS
        } else {
            // Zeros after the point, then 4 significant digits (at most 15 decimals).
            (SHOWN_DIGITS - 1 - x.abs().log10().floor() as i32).min(15)
        };
        let text = format!("{x:.*}", decimals as usize);
        let text = text.trim_end_matches('0').trim_end_matches('.');
        // A value that rounds to zero shows as `0`, never `-0`.
        if text == "-0" || text == "0" {
            return f.write_str("0");
        }
        f.write_str(text)
    }
}

impl Serialize for CounterValue {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.as_whole() {
            Some(whole) => serializer.serialize_i64(whole),
            None => serializer.serialize_f64(self.0),
        }
    }
}

impl<'de> Deserialize<'de> for CounterValue {
    /// Reads a JSON integer (every record from before counters had decimals) or a float.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<CounterValue, D::Error> {
        let value = f64::deserialize(deserializer)?;
        CounterValue::new(value)
            .ok_or_else(|| serde::de::Error::custom("a counter's value must be finite"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(x: f64) -> String {
        CounterValue::new(x).unwrap().to_string()
    }

    #[test]
    fn whole_numbers_show_without_a_point_and_decimals_without_noise() {
        assert_eq!(shown(1234.0), "1234");
        assert_eq!(shown(-3.0), "-3");
        assert_eq!(shown(0.0), "0");
        assert_eq!(shown(-0.0), "0");
        assert_eq!(shown(0.1 + 0.2), "0.3");
        assert_eq!(shown(0.0125), "0.0125");
        assert_eq!(shown(0.000_012_346), "0.00001235");
        assert_eq!(shown(41.234_567), "41.2346");
        assert_eq!(shown(49.5), "49.5");
        assert_eq!(shown(-2.25), "-2.25");
        assert_eq!(shown(1e-20), "0");
        assert_eq!(shown(1.5e18), "1500000000000000000");
        assert_eq!(shown(1e300), format!("{:.0}", 1e300));
    }

    #[test]
    fn estimates_keep_three_digits_or_whole_numbers() {
        assert_eq!(estimate(41.234), "41.2");
        assert_eq!(estimate(37.0001), "37");
        assert_eq!(estimate(0.045_678), "0.0457");
        assert_eq!(estimate(1187.4), "1187");
        assert_eq!(estimate(0.0), "0");
        assert_eq!(estimate(f64::NAN), "0");
    }

    #[test]
    fn sums_of_decimals_land_on_the_decimal_a_person_expects() {
        let step = CounterValue::parse("+0.0125").unwrap();
        let total: CounterValue = std::iter::repeat_n(step, 40).sum();
        assert_eq!(total, CounterValue::parse("0.5").unwrap());
        assert_eq!(total.to_string(), "0.5");
        let mut total = CounterValue::ZERO;
        for _ in 0..10 {
            total += CounterValue::parse("0.1").unwrap();
        }
        assert_eq!(total.get(), 1.0);
    }

    #[test]
    fn only_plain_decimals_parse() {
        for (text, value) in [
            ("12", 12.0),
            ("+12", 12.0),
            ("-3", -3.0),
            ("0.0125", 0.0125),
            ("+.5", 0.5),
            ("1_000", 1000.0),
            ("6.17e-05", 0.0000617),
            ("1E3", 1000.0),
            (" 7 ", 7.0),
        ] {
            assert_eq!(
                CounterValue::parse(text).map(|v| v.get()),
                Ok(value),
                "{text}"
            );
        }
        for bad in [
            "",
            "+",
            "abc",
            "+abc",
            "NaN",
            "inf",
            "-infinity",
            "1e400",
            "e5",
            "1-2",
            "--1",
            "1.2.3",
            "0x10",
            ".",
        ] {
            assert_eq!(
                CounterValue::parse(bad),
                Err(BadCounterValue(bad.to_string())),
                "{bad}"
            );
        }
        assert_eq!(
            CounterValue::parse("+abc").unwrap_err().to_string(),
            "`+abc` is not a number: give one such as 12, -3 or 0.0125"
        );
    }

    #[test]
    fn whole_values_serialise_as_integers_and_old_integers_read() {
        let whole = CounterValue::from(5);
        assert_eq!(serde_json::to_string(&whole).unwrap(), "5");
        let half = CounterValue::parse("0.5").unwrap();
        assert_eq!(serde_json::to_string(&half).unwrap(), "0.5");
        let read: CounterValue = serde_json::from_str("5").unwrap();
        assert_eq!(read, whole);
        let read: CounterValue = serde_json::from_str("0.0125").unwrap();
        assert_eq!(read.get(), 0.0125);
    }
}
