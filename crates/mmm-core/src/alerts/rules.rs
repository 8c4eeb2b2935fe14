//! The alert rules of a job (`alerts:` and `deadline:` of the job file) as the judge takes
//! them; the job file's parser builds them, and the plan carries them.

use std::time::Duration;

use serde::Serialize;

/// `alerts:` of the job file. A rule set to `off` is `None`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlertRules {
    /// An agent whose command wrote no output and reported nothing for this long is stuck.
    #[serde(with = "duration_text")]
    pub stuck_after: Option<Duration>,
    /// Alert when more than this share (0..=1) of the attempts in the window failed.
    pub failure_rate: Option<f64>,
    /// Alert when more than this share (0..=1) of the attempts in the window timed out.
    pub timeout_rate: Option<f64>,
    /// Alert when the throughput over the window falls below this share (0..=1) of the
    /// run's average while every agent has work.
    pub throughput_drop: Option<f64>,
    /// The window the rates are measured over (at most 10 minutes).
    #[serde(serialize_with = "duration_text::serialize_plain")]
    pub window: Duration,
    /// Rates are judged only over at least this many attempts in the window.
    pub min_attempts: u32,
    /// A shell command run for each raised alert, with the alert as JSON on stdin.
    pub on_alert: Option<String>,
}

impl Default for AlertRules {
    fn default() -> Self {
        AlertRules {
            stuck_after: Some(Duration::from_secs(600)),
            failure_rate: Some(0.5),
            timeout_rate: Some(0.25),
            throughput_drop: Some(0.25),
            window: Duration::from_secs(300),
            min_attempts: 20,
            on_alert: None,
        }
    }
}

/// `deadline:` of the job file.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Deadline {
    /// This long after the job was created (`deadline: 2h`).
    #[serde(serialize_with = "duration_text::serialize_plain")]
    After(Duration),
    /// At this time, epoch ms (`deadline: 2026-11-30T18:00:00Z`).
    At(i64),
}

impl Deadline {
    /// The deadline as epoch ms, for a job created at `created_at` (epoch ms).
    pub fn at_ms(self, created_at: i64) -> i64 {
        match self {
            Deadline::After(d) => created_at.saturating_add(d.as_millis() as i64),
            Deadline::At(at) => at,
        }
    }

    /// Reads the deadline as the normalised plan writes it: a duration (`2h`, `1h 30m`) or an
    /// RFC 3339 time (`2026-11-30T18:00:00Z`); `None` for anything else. The store reads the
    /// deadline of a recorded job with it (`mmm stats`).
    pub fn from_text(text: &str) -> Option<Deadline> {
        let text = text.trim();
        if let Ok(after) = humantime::parse_duration(text) {
            return Some(Deadline::After(after));
        }
        let at = humantime::parse_rfc3339_weak(text).ok()?;
        let ms = at.duration_since(std::time::UNIX_EPOCH).ok()?.as_millis();
        Some(Deadline::At(i64::try_from(ms).ok()?))
    }
}

/// Durations as the job file writes them (`5m`, `1h 30m`), for the plan's JSON.
mod duration_text {
    pub(super) fn serialize_plain<S: serde::Serializer>(
        d: &std::time::Duration,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    pub(super) fn serialize<S: serde::Serializer>(
        d: &Option<std::time::Duration>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_str(&humantime::format_duration(*d).to_string()),
            None => s.serialize_none(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_read_back_as_the_plan_writes_them() {
        assert_eq!(
            Deadline::from_text("1h 30m"),
            Some(Deadline::After(Duration::from_secs(5400)))
        );
        assert_eq!(
            Deadline::from_text("2026-11-30T18:00:00.000Z"),
            Some(Deadline::At(1_796_061_600_000))
        );
        assert_eq!(Deadline::from_text("tomorrow-ish"), None);
    }
}
