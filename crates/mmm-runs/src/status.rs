//! A run's status from its observation, the time and the process table:
//! 1. `running`: a log matching the kind's pattern changed within `running_within`;
//! 2. `finished` when complete, or `outdated` when its last result is older than
//!    `outdated_after`;
//! 3. `stuck`: not complete, quiet, and a process names the run;
//! 4. `failed`: otherwise.

use std::time::{Duration, SystemTime};

use super::{Observation, RunStatus, RunsConfig};

/// The status at `now`; `has_process` when a live process names the run.
pub fn status(
    observation: &Observation,
    now: SystemTime,
    has_process: bool,
    config: &RunsConfig,
) -> RunStatus {
    if let Some(log) = observation.log_updated
        && age(log, now) <= config.running_within
    {
        return RunStatus::Running;
    }
    let progress = &observation.progress;
    if progress.is_complete() {
        let last = progress.last_update_time.and_then(from_epoch_secs);
        return match last {
            Some(last) if age(last, now) > config.outdated_after => RunStatus::Outdated,
            _ => RunStatus::Finished,
        };
    }
    if has_process {
        RunStatus::Stuck
    } else {
        RunStatus::Failed
    }
}

/// When the status of `observation` changes by itself, with no file changing: the log's
/// age passing `running_within`, or the last result's passing `outdated_after`.
pub fn next_change(
    observation: &Observation,
    now: SystemTime,
    config: &RunsConfig,
) -> Option<SystemTime> {
    let after = |t: SystemTime, limit: Duration| {
        t.checked_add(limit)?.checked_add(Duration::from_millis(1))
    };
    let mut times = Vec::new();
    if let Some(log) = observation.log_updated {
        times.extend(after(log, config.running_within));
    }
    if observation.progress.is_complete()
        && let Some(last) = observation
            .progress
            .last_update_time
            .and_then(from_epoch_secs)
    {
        times.extend(after(last, config.outdated_after));
    }
    times.into_iter().filter(|t| *t > now).min()
}

/// Epoch seconds (as `progress.json` has them, possibly edited by hand) as a time; `None`
/// when they are negative, not a number or out of range.
fn from_epoch_secs(s: f64) -> Option<SystemTime> {
    let d = Duration::try_from_secs_f64(s).ok()?;
    SystemTime::UNIX_EPOCH.checked_add(d)
}

/// How long before `now` `t` was (zero when `t` is in the future).
fn age(t: SystemTime, now: SystemTime) -> Duration {
    now.duration_since(t).unwrap_or(Duration::ZERO)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absurd_cached_times_do_not_panic() {
        assert_eq!(from_epoch_secs(-1.0), None);
        assert_eq!(from_epoch_secs(f64::NAN), None);
        assert_eq!(from_epoch_secs(1e300), None);
        assert_eq!(
            from_epoch_secs(1.5),
            Some(SystemTime::UNIX_EPOCH + Duration::from_millis(1500))
        );
    }
}
