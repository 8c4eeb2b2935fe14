//! `mmm replay JOB [--speed N] [--from TIME]`: a job's recorded history (its snapshots and
//! events) played through the same viewer as `mmm progress`, with pause and seek keys (the
//! frames are [`crate::tui::replay`]'s). Without a terminal, one progress line per frame, at
//! once.

use std::io::{IsTerminal, Write};
use std::time::UNIX_EPOCH;

use super::wiring::{open_job, usage_or_store_error};
use super::{Exit, UsageError, output};
use crate::tui::replay::{History, ReplayFeed};
use crate::tui::viewer;
use mmm_store::job_state::JobState;

pub(crate) const AFTER_HELP: &str = "\
Keys: space pauses, left/right seek 10 snapshots, +/- double or halve the speed, and the
keys of `mmm progress` (q quits, ? lists them). The replay ends on the job's record as it
stands now. Without a terminal, prints one progress line per snapshot.

--from takes an offset from the job's start (90s, 5m) or a time (2026-11-24T02:10:00Z).

Examples:
  mmm replay 0193a2 --speed 60
  mmm replay 0193a2 --from 10m";

/// Arguments of `mmm replay`.
#[derive(Debug, clap::Args)]
pub(crate) struct ReplayArgs {
    /// The job: an id or an unambiguous prefix.
    #[arg(add = super::wiring::job_id_completer())]
    job: String,
    /// How many times faster than it happened.
    #[arg(long, default_value_t = 10.0, value_parser = parse_speed)]
    speed: f64,
    /// Start here: an offset from the job's start (5m) or a time (RFC 3339).
    #[arg(long, value_name = "TIME")]
    from: Option<String>,
}

fn parse_speed(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!("`{text}` is not a positive number")),
    }
}

/// Runs `mmm replay`.
pub(crate) fn replay(store_location: &str, args: ReplayArgs) -> anyhow::Result<Exit> {
    let (store, id) = open_job(store_location, &args.job)?;
    let last = JobState::load(store.as_ref(), id).map_err(usage_or_store_error)?;
    let history = History::load(store.as_ref(), id, last)?;
    let start = match &args.from {
        Some(text) => {
            let job = history.job();
            let at = parse_from(text, job.started_at.unwrap_or(job.created_at))?;
            history.frame_at(at)
        }
        None => 0,
    };
    if !std::io::stdout().is_terminal() {
        let mut out = std::io::stdout().lock();
        for i in start..history.frames() {
            writeln!(out, "{}", output::progress_line(&history.state_at(i)))?;
        }
        out.flush()?;
        return Ok(Exit::Success);
    }
    let (mut feed, mut state) = ReplayFeed::start(history, start, args.speed);
    viewer::run(&mut state, &mut feed)?;
    Ok(Exit::Success)
}

/// `--from`: an offset from `start_ms` (`5m`) or a time (RFC 3339), as epoch ms.
fn parse_from(text: &str, start_ms: i64) -> anyhow::Result<i64> {
    if let Ok(offset) = humantime::parse_duration(text) {
        return Ok(start_ms.saturating_add(offset.as_millis() as i64));
    }
    if let Ok(time) = humantime::parse_rfc3339_weak(text) {
        let ms = match time.duration_since(UNIX_EPOCH) {
            Ok(d) => d.as_millis() as i64,
            Err(e) => -(e.duration().as_millis() as i64),
        };
        return Ok(ms);
    }
    Err(UsageError::new(format!(
        "--from `{text}`: give an offset from the job's start (90s, 5m) or a time \
         (2026-11-24T02:10:00Z)"
    ))
    .into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_takes_an_offset_or_a_time() {
        assert_eq!(parse_from("90s", 1_000).expect("offset"), 91_000);
        assert_eq!(parse_from("1970-01-01T00:00:02Z", 0).expect("time"), 2_000);
        assert!(parse_from("yesterday-ish", 0).is_err());
    }
}
