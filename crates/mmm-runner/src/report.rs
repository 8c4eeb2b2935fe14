//! The step-reporting protocol: how a running command tells mmm its progress, a status
//! message and custom counters.
//!
//! Every map command gets a pipe whose write end is the file descriptor named in
//! `MMM_PROGRESS_FD`. A command writes plain-text lines to it (`mmm report` does it for
//! shell scripts):
//!
//! ```text
//! progress 40%                 the current step is 40% done
//! progress 4/10 epoch 4 of 10  the same as a fraction, with a message
//! progress 0.4                 a fraction between 0 and 1
//! message loading weights      a message, progress unchanged
//! counter commits=+1           add 1 to the job-wide counter `commits` (or -N)
//! counter rows=5000            add 5000 too: a counter is a sum over items
//! throttled                    the API this step calls throttled it: retry later
//! throttled 30s                ... after 30 s (as its `Retry-After` said)
//! ```
//!
//! From `sh`, write to `/dev/fd/$MMM_PROGRESS_FD` (dash cannot name descriptors above 9 in
//! a redirection, and the number is usually higher); from Python,
//! `os.write(int(os.environ["MMM_PROGRESS_FD"]), b"progress 40%\n")`.
//!
//! Unknown or malformed lines are ignored (a command must never fail because of what it
//! reports); the runner counts them and says so once per attempt. Lines longer than
//! [`MAX_LINE`] bytes are cut.

use mmm_core::counter::CounterValue;

/// The longest line read; longer ones are cut here (messages are one-liners).
pub const MAX_LINE: usize = 1024;

/// The environment variable naming the file descriptor to report on.
pub const FD_VARIABLE: &str = "MMM_PROGRESS_FD";

/// One line of the protocol, parsed.
#[derive(Debug, Clone, PartialEq)]
pub enum Report {
    /// The current step's progress, 0..=1, and optionally a message.
    Progress {
        /// 0..=1.
        fraction: f32,
        /// What the step is doing.
        message: Option<String>,
    },
    /// A message alone.
    Message(String),
    /// Add `delta` to the job-wide counter `name`.
    Counter {
        /// Letters, digits, `_`, `-`, `.`.
        name: String,
        /// May be negative or have decimals (`+0.0125` dollars).
        delta: CounterValue,
    },
    /// The API the step calls throttled it (HTTP 429, "slow down"): the attempt is retried
    /// after `retry_after` (or a backoff), not counted against the item's retries, and the
    /// job lowers its concurrency.
    Throttled {
        /// How long the API asked to wait.
        retry_after: Option<std::time::Duration>,
    },
}

impl Report {
    /// The line that reports this (what `mmm report` writes).
    pub fn to_line(&self) -> String {
        match self {
            Report::Progress { fraction, message } => {
                let percent = fraction * 100.0;
                match message {
                    Some(m) => format!("progress {percent}% {}", one_line(m)),
                    None => format!("progress {percent}%"),
                }
            }
            Report::Message(m) => format!("message {}", one_line(m)),
            // The float's own shortest text, not the rounded one views show: the line carries
            // the value exactly.
            Report::Counter { name, delta } => format!("counter {name}={:+}", delta.get()),
            Report::Throttled { retry_after: None } => "throttled".to_string(),
            Report::Throttled {
                retry_after: Some(wait),
            } => format!("throttled {}ms", wait.as_millis()),
        }
    }
}

fn one_line(text: &str) -> String {
    text.replace(['\n', '\r'], " ")
}

/// Parses one line of the protocol.
pub fn parse_line(line: &str) -> Result<Report, String> {
    let line = line.trim();
    let (word, rest) = line.split_once(' ').unwrap_or((line, ""));
    let rest = rest.trim();
    match word {
        "progress" => {
            let (amount, message) = rest.split_once(' ').unwrap_or((rest, ""));
            let fraction = parse_fraction(amount)?;
            let message = message.trim();
            Ok(Report::Progress {
                fraction,
                message: (!message.is_empty()).then(|| message.to_string()),
            })
        }
        "message" if !rest.is_empty() => Ok(Report::Message(rest.to_string())),
        "message" => Err("`message` needs a text".to_string()),
        "counter" => parse_counter(rest),
        "throttled" if rest.is_empty() => Ok(Report::Throttled { retry_after: None }),
        "throttled" => Ok(Report::Throttled {
            retry_after: Some(parse_retry_after(rest)?),
        }),
        other => Err(format!(
            "unknown report `{other}`: expected progress, message, counter or throttled"
        )),
    }
}

/// How long to wait before a retry: seconds as `Retry-After` gives them (`30`, `1.5`), or a
/// duration (`30s`, `2m`, `500ms`); at most an hour.
pub fn parse_retry_after(text: &str) -> Result<std::time::Duration, String> {
    let text = text.trim();
    let wait = match text.parse::<f64>() {
        Ok(seconds) => std::time::Duration::try_from_secs_f64(seconds).map_err(|e| e.to_string()),
        Err(_) => humantime::parse_duration(text).map_err(|e| e.to_string()),
    }
    .map_err(|e| format!("`{text}` is not a wait: give seconds (30) or a duration (30s): {e}"))?;
    if wait > std::time::Duration::from_secs(3600) {
        return Err(format!("`{text}` is longer than the longest wait, an hour"));
    }
    Ok(wait)
}

/// `40%`, `4/10` or `0.4` as a fraction in 0..=1.
pub fn parse_fraction(text: &str) -> Result<f32, String> {
    let bad = || format!("`{text}` is not a progress: use 40%, 4/10 or 0.4");
    let fraction = if let Some(percent) = text.strip_suffix('%') {
        percent.parse::<f64>().map_err(|_| bad())? / 100.0
    } else if let Some((done, total)) = text.split_once('/') {
        let done: f64 = done.parse().map_err(|_| bad())?;
        let total: f64 = total.parse().map_err(|_| bad())?;
        if total <= 0.0 {
            return Err(format!("`{text}`: the total must be above 0"));
        }
        done / total
    } else {
        text.parse::<f64>().map_err(|_| bad())?
    };
    if !fraction.is_finite() || !(0.0..=1.0).contains(&fraction) {
        return Err(format!("`{text}` is outside 0% to 100%"));
    }
    Ok(fraction as f32)
}

/// `name=+1`, `name=-2`, `name=5` (adds 5), `name=+0.0125`.
pub fn parse_counter(text: &str) -> Result<Report, String> {
    let Some((name, amount)) = text.split_once('=') else {
        return Err(format!("`{text}` is not a counter: use NAME=+N"));
    };
    let name = name.trim();
    let valid_name = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if !valid_name {
        return Err(format!(
            "`{name}` is not a counter name: use letters, digits, `_`, `-` and `.`"
        ));
    }
    let amount = amount.trim();
    let delta = CounterValue::parse(amount).map_err(|e| format!("counter `{name}`: {e}"))?;
    Ok(Report::Counter {
        name: name.to_string(),
        delta,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_of_progress_parses_to_the_same_fraction() {
        for text in [
            "progress 40%",
            "progress 4/10",
            "progress 0.4",
            " progress  40% ",
        ] {
            assert_eq!(
                parse_line(text),
                Ok(Report::Progress {
                    fraction: 0.4,
                    message: None
                }),
                "{text}"
            );
        }
        assert_eq!(
            parse_line("progress 4/10 epoch 4 of 10"),
            Ok(Report::Progress {
                fraction: 0.4,
                message: Some("epoch 4 of 10".into())
            })
        );
    }

    #[test]
    fn messages_and_counters_parse() {
        assert_eq!(
            parse_line("message loading weights"),
            Ok(Report::Message("loading weights".into()))
        );
        assert_eq!(
            parse_line("counter commits=+1"),
            Ok(Report::Counter {
                name: "commits".into(),
                delta: 1.into()
            })
        );
        assert_eq!(
            parse_line("counter rows.read=-20"),
            Ok(Report::Counter {
                name: "rows.read".into(),
                delta: (-20).into()
            })
        );
        assert_eq!(
            parse_line("counter cost_usd=+0.0125"),
            Ok(Report::Counter {
                name: "cost_usd".into(),
                delta: CounterValue::parse("0.0125").unwrap()
            })
        );
        assert_eq!(
            parse_counter("x=+abc"),
            Err("counter `x`: `+abc` is not a number: give one such as 12, -3 or 0.0125".into())
        );
    }

    #[test]
    fn bad_lines_are_errors_not_panics() {
        for line in [
            "",
            "progress",
            "progress 140%",
            "progress -1",
            "progress 1/0",
            "progress NaN",
            "progress inf",
            "message",
            "counter",
            "counter x",
            "counter =1",
            "counter a b=1",
            "counter x=abc",
            "counter x=NaN",
            "counter x=+inf",
            "counter x=1e999",
            "hello",
        ] {
            assert!(parse_line(line).is_err(), "{line:?} parsed");
        }
    }

    #[test]
    fn lines_round_trip() {
        for report in [
            Report::Progress {
                fraction: 0.25,
                message: Some("a\nb".into()),
            },
            Report::Message("hi".into()),
            Report::Counter {
                name: "c".into(),
                delta: (-3).into(),
            },
            Report::Counter {
                name: "cost".into(),
                delta: CounterValue::parse("0.000012345").unwrap(),
            },
        ] {
            let parsed = parse_line(&report.to_line()).unwrap();
            let expected = match report {
                Report::Progress { fraction, message } => Report::Progress {
                    fraction,
                    message: message.map(|m| one_line(&m)),
                },
                other => other,
            };
            assert_eq!(parsed, expected);
        }
    }
}
