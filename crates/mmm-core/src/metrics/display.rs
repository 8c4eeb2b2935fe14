//! What people see of the ETA: a damper that keeps the shown finish time steady, and the text.
//!
//! The model ([`super::estimate`]) is never damped; only what is shown is. [`EtaDamper`] keeps
//! the shown finish time while the model's stays within a band around it (so the remaining
//! time counts down one second per second instead of jittering), follows it with exponential
//! smoothing when it leaves the band, and never shows a value outside the model's current
//! P10-P90 range. Text is formatted without reading the local time zone: the caller passes the
//! UTC offset, so output is the same on every machine and in tests.

use super::eta::{Estimate, Eta};

/// The band within which a new model finish time does not move the shown one: this share of
/// the remaining time...
pub const BAND_SHARE: f64 = 0.05;

/// ...but at least this many ms.
pub const BAND_MIN_MS: f64 = 2_000.0;

/// Time constant of the smoothing outside the band, ms: after this long the shown value has
/// covered 63% of the way to the model's.
pub const SMOOTHING_MS: f64 = 10_000.0;

/// Finish times as shown (epoch ms, fractional to keep the smoothing exact).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Shown {
    p10: f64,
    p50: f64,
    p90: f64,
    at_ms: i64,
}

/// Smooths the ETA for display. One per view; feed it every estimate.
#[derive(Debug, Clone, Default)]
pub struct EtaDamper {
    shown: Option<Shown>,
}

impl EtaDamper {
    /// A damper that has shown nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The ETA to show now, given the model's. States other than an estimate pass through
    /// at once and restart the damping.
    pub fn update(&mut self, now_ms: i64, model: &Eta) -> Eta {
        let Eta::Estimate(e) = model else {
            self.shown = None;
            return *model;
        };
        let now = now_ms as f64;
        let target = Shown {
            p10: now + e.p10_ms as f64,
            p50: now + e.p50_ms as f64,
            p90: now + e.p90_ms as f64,
            at_ms: now_ms,
        };
        let shown = match self.shown {
            None => target,
            Some(prev) => {
                let dt = now_ms.saturating_sub(prev.at_ms).max(0) as f64;
                let alpha = 1.0 - (-dt / SMOOTHING_MS).exp();
                let band = (e.p50_ms as f64 * BAND_SHARE).max(BAND_MIN_MS);
                let follow = |old: f64, new: f64| {
                    if (new - old).abs() <= band {
                        old
                    } else {
                        old + alpha * (new - old)
                    }
                };
                let p50 = follow(prev.p50, target.p50).clamp(target.p10, target.p90);
                Shown {
                    p10: follow(prev.p10, target.p10).min(p50),
                    p50,
                    p90: follow(prev.p90, target.p90).max(p50),
                    at_ms: now_ms,
                }
            }
        };
        self.shown = Some(shown);
        let to_ms = |t: f64| (t - now).max(0.0).round() as u64;
        Eta::Estimate(Estimate {
            p10_ms: to_ms(shown.p10),
            p50_ms: to_ms(shown.p50),
            p90_ms: to_ms(shown.p90),
            finish_at_ms: shown.p50.round() as i64,
            ..*e
        })
    }
}

/// A duration as people say it, as every view writes one: `850ms`, `12.3s`, `4m05s`,
/// `2h03m`, `3d04h`.
pub fn format_duration(d: std::time::Duration) -> String {
    let ms = d.as_millis();
    let s = d.as_secs();
    if ms < 1000 {
        format!("{ms}ms")
    } else if s < 60 {
        format!("{:.1}s", d.as_secs_f64())
    } else if s < 3600 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else if s < 86_400 {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    } else {
        format!("{}d{:02}h", s / 86_400, (s % 86_400) / 3600)
    }
}

/// A remaining time in the compact form progress lines use: `45s`, `4m10s`, `2h05m`, `3d04h`.
pub fn format_remaining(ms: u64) -> String {
    let s = (ms + 500) / 1000;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        3600..86_400 => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d{:02}h", s / 86_400, (s % 86_400) / 3600),
    }
}

/// Days since 1970-01-01 -> (year, month, day) in the proleptic Gregorian calendar
/// (H. Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// A wall-clock time at `utc_offset_minutes` from UTC: `14:32` when on the same local day as
/// `now_ms`, else `2026-11-24 14:32`.
pub fn format_clock(at_ms: i64, now_ms: i64, utc_offset_minutes: i32) -> String {
    let local = |t: i64| t.saturating_add(i64::from(utc_offset_minutes) * 60_000);
    let (at, now) = (local(at_ms), local(now_ms));
    let day = at.div_euclid(86_400_000);
    let minute_of_day = at.rem_euclid(86_400_000) / 60_000;
    let hm = format!("{:02}:{:02}", minute_of_day / 60, minute_of_day % 60);
    if day == now.div_euclid(86_400_000) {
        hm
    } else {
        let (y, m, d) = civil_from_days(day);
        format!("{y:04}-{m:02}-{d:02} {hm}")
    }
}

/// The ETA as one phrase: `~4m10s (3m50s–4m40s), done at 14:32`, `warming up`,
/// `stalled: nothing completed for 12m00s`, `done`.
pub fn format_eta(eta: &Eta, now_ms: i64, utc_offset_minutes: i32) -> String {
    match eta {
        Eta::Done => "done".to_string(),
        Eta::WarmingUp { .. } => "warming up".to_string(),
        Eta::Paused => "paused".to_string(),
        Eta::Stalled { since_ms } => format!(
            "stalled: nothing completed for {}",
            format_remaining(now_ms.saturating_sub(*since_ms).max(0) as u64)
        ),
        Eta::Estimate(e) => format!(
            "~{} ({}–{}), done at {}{}",
            format_remaining(e.p50_ms),
            format_remaining(e.p10_ms),
            format_remaining(e.p90_ms),
            format_clock(e.finish_at_ms, now_ms, utc_offset_minutes),
            if e.basis == super::Basis::History {
                ", from earlier runs"
            } else {
                ""
            }
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::eta::Basis;

    fn est(now_ms: i64, p10: u64, p50: u64, p90: u64) -> Eta {
        Eta::Estimate(Estimate {
            p10_ms: p10,
            p50_ms: p50,
            p90_ms: p90,
            finish_at_ms: now_ms + p50 as i64,
            basis: Basis::Durations,
            rate_ms: None,
            widened_by_rate: false,
        })
    }

    fn p50(e: &Eta) -> u64 {
        match e {
            Eta::Estimate(e) => e.p50_ms,
            _ => panic!("not an estimate: {e:?}"),
        }
    }

    #[test]
    fn small_model_jitter_counts_down_steadily() {
        let mut d = EtaDamper::new();
        assert_eq!(
            p50(&d.update(0, &est(0, 90_000, 100_000, 110_000))),
            100_000
        );
        // One second later the model says 101 s (jitter within the band): shown 99 s.
        assert_eq!(
            p50(&d.update(1_000, &est(1_000, 90_000, 101_000, 110_000))),
            99_000
        );
        assert_eq!(
            p50(&d.update(2_000, &est(2_000, 90_000, 96_000, 110_000))),
            98_000
        );
    }

    #[test]
    fn a_lasting_change_is_followed_smoothly_and_stays_in_the_model_range() {
        let mut d = EtaDamper::new();
        d.update(0, &est(0, 90_000, 100_000, 110_000));
        // The model jumps to 200 s: the shown value moves part of the way, not all of it...
        let shown = p50(&d.update(1_000, &est(1_000, 150_000, 200_000, 250_000)));
        // ...but never below the model's P10.
        assert_eq!(shown, 150_000);
        let mut last = shown;
        for t in 2..60 {
            let now = t * 1_000;
            let s = p50(&d.update(now, &est(now, 150_000, 200_000, 250_000)));
            assert!(
                s >= last.saturating_sub(1_000),
                "shown moved backwards: {s} after {last}"
            );
            last = s;
        }
        assert!((190_000..=200_000).contains(&last), "{last}");
    }

    #[test]
    fn states_pass_through_at_once() {
        let mut d = EtaDamper::new();
        d.update(0, &est(0, 1, 2, 3));
        assert_eq!(d.update(1, &Eta::Done), Eta::Done);
        let s = Eta::Stalled { since_ms: 5 };
        assert_eq!(d.update(2, &s), s);
        // After a state, the next estimate is shown as is.
        assert_eq!(p50(&d.update(3, &est(3, 10, 5_000, 9_000))), 5_000);
    }

    #[test]
    fn formats() {
        assert_eq!(format_remaining(0), "0s");
        assert_eq!(format_remaining(44_600), "45s");
        assert_eq!(format_remaining(250_000), "4m10s");
        assert_eq!(format_remaining(7_500_000), "2h05m");
        assert_eq!(format_remaining(274_000_000), "3d04h");
        // 2026-11-24 13:30 UTC = 1795527000000 ms.
        let now = 1_795_527_000_000;
        assert_eq!(format_clock(now + 2 * 60_000, now, 0), "13:32");
        assert_eq!(format_clock(now + 2 * 60_000, now, 60), "14:32");
        assert_eq!(
            format_clock(now + 12 * 3_600_000, now, 0),
            "2026-11-25 01:30"
        );
        assert_eq!(
            format_eta(&est(now, 230_000, 250_000, 280_000), now, 60),
            "~4m10s (3m50s–4m40s), done at 14:34"
        );
        assert_eq!(
            format_eta(
                &Eta::Stalled {
                    since_ms: now - 720_000
                },
                now,
                0
            ),
            "stalled: nothing completed for 12m00s"
        );
        assert_eq!(
            format_eta(
                &Eta::WarmingUp {
                    completed: 1,
                    needed: 8
                },
                now,
                0
            ),
            "warming up"
        );
    }
}
