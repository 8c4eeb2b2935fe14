//! `--halt` (GNU parallel's): counts the items that end in this run, and once the policy's
//! condition is met halts the map once: records why (`job_halted`), stops dispatching, and
//! with `now` kills the running commands. The job is then left `interrupted`, resumable.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::watch;

use crate::StopLevel;
use mmm_core::event::JobHalted;
use mmm_spec::{HaltOn, HaltPolicy, HaltWhen, Item, Threshold};

/// How an item ended, as `--halt` counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ended {
    Succeeded,
    Failed,
}

/// Why and how a run halted.
#[derive(Debug, Clone)]
pub struct Halted {
    /// What is recorded in the `job_halted` event.
    pub event: JobHalted,
    /// The exit status GNU parallel gives this halt.
    pub exit_code: u8,
}

/// The `--halt` watch of one run.
pub(crate) struct HaltWatch {
    policy: Option<HaltPolicy>,
    failed: AtomicU64,
    succeeded: AtomicU64,
    halted: OnceLock<Halted>,
    /// The run's own stop signal, raised to `Immediate` by `now`.
    stop: watch::Sender<StopLevel>,
}

impl HaltWatch {
    pub(crate) fn new(policy: Option<HaltPolicy>, stop: watch::Sender<StopLevel>) -> Self {
        HaltWatch {
            policy,
            failed: AtomicU64::new(0),
            succeeded: AtomicU64::new(0),
            halted: OnceLock::new(),
            stop,
        }
    }

    /// True once the run halted.
    pub(crate) fn is_halted(&self) -> bool {
        self.halted.get().is_some()
    }

    /// Why the run halted, if it did.
    pub(crate) fn halted(&self) -> Option<&Halted> {
        self.halted.get()
    }

    /// Counts an item's end (`total`: the items of the job); returns the `job_halted` event
    /// to record when this end halts the run.
    pub(crate) fn item_ended(
        &self,
        ended: Ended,
        item: &Item,
        exit_code: Option<i32>,
        total: u64,
    ) -> Option<JobHalted> {
        let policy = self.policy?;
        let (failed, succeeded) = match ended {
            Ended::Failed => (
                self.failed.fetch_add(1, Ordering::AcqRel) + 1,
                self.succeeded.load(Ordering::Acquire),
            ),
            Ended::Succeeded => (
                self.failed.load(Ordering::Acquire),
                self.succeeded.fetch_add(1, Ordering::AcqRel) + 1,
            ),
        };
        let counted = match (policy.on, ended) {
            (HaltOn::Fail, Ended::Failed) => failed,
            (HaltOn::Success, Ended::Succeeded) => succeeded,
            (HaltOn::Done, _) => failed + succeeded,
            _ => return None,
        };
        if self.is_halted() || !policy.is_met(counted, total) {
            return None;
        }
        let what = match policy.on {
            HaltOn::Fail => "failed",
            HaltOn::Success => "succeeded",
            HaltOn::Done => "ended",
        };
        let shown = match &item.value {
            serde_json::Value::String(text) => text.clone(),
            other => other.to_string(),
        };
        let reason = format!(
            "{counted} item{} {what} (of {total}); the last: `{shown}`{}",
            if counted == 1 { "" } else { "s" },
            exit_code.map_or(String::new(), |c| format!(" with exit code {c}"))
        );
        let event = JobHalted {
            policy: policy.to_string(),
            reason,
            item: Some(item.key.clone()),
            exit_code,
        };
        let halted = Halted {
            event: event.clone(),
            exit_code: exit_status(&policy, failed, total, exit_code),
        };
        if self.halted.set(halted).is_err() {
            return None;
        }
        if policy.when == HaltWhen::Now {
            self.stop.send_if_modified(|level| {
                let raise = *level < StopLevel::Immediate;
                *level = StopLevel::Immediate;
                raise
            });
        }
        Some(event)
    }
}

/// GNU parallel's exit status for a halt: `fail=1` the failing command's own; `success`
/// 0; otherwise the number of failed items (at most 101), or their percentage for `fail=N%`.
fn exit_status(policy: &HaltPolicy, failed: u64, total: u64, exit_code: Option<i32>) -> u8 {
    match (policy.on, policy.threshold) {
        (HaltOn::Fail, Threshold::Count(1)) => match exit_code {
            Some(code) if (1..=255).contains(&code) => code as u8,
            _ => 1,
        },
        (HaltOn::Success, _) => 0,
        (HaltOn::Fail, Threshold::Percent(_)) if total > 0 => {
            (failed * 100 / total).clamp(1, 100) as u8
        }
        _ => failed.min(101) as u8,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(value: &str) -> Item {
        Item {
            key: format!("k-{value}"),
            value: serde_json::Value::String(value.to_string()),
        }
    }

    fn watch(policy: &str) -> (HaltWatch, watch::Receiver<StopLevel>) {
        let (tx, rx) = watch::channel(StopLevel::Run);
        (HaltWatch::new(Some(policy.parse().expect("valid")), tx), rx)
    }

    #[test]
    fn now_fail_1_halts_at_the_first_failure_and_kills() {
        let (w, rx) = watch("now,fail=1");
        assert!(
            w.item_ended(Ended::Succeeded, &item("a"), Some(0), 5)
                .is_none()
        );
        let event = w
            .item_ended(Ended::Failed, &item("b"), Some(7), 5)
            .expect("halts");
        assert_eq!(event.policy, "now,fail=1");
        assert!(
            event.reason.contains("`b` with exit code 7"),
            "{}",
            event.reason
        );
        assert_eq!(w.halted().map(|h| h.exit_code), Some(7));
        assert_eq!(*rx.borrow(), StopLevel::Immediate);
        // Only once.
        assert!(
            w.item_ended(Ended::Failed, &item("c"), Some(1), 5)
                .is_none()
        );
    }

    #[test]
    fn soon_lets_commands_finish_and_counts_what_it_names() {
        let (w, rx) = watch("soon,success=2");
        assert!(
            w.item_ended(Ended::Failed, &item("a"), Some(1), 5)
                .is_none()
        );
        assert!(
            w.item_ended(Ended::Succeeded, &item("b"), Some(0), 5)
                .is_none()
        );
        assert!(
            w.item_ended(Ended::Succeeded, &item("c"), Some(0), 5)
                .is_some()
        );
        assert_eq!(*rx.borrow(), StopLevel::Run);
        assert_eq!(w.halted().map(|h| h.exit_code), Some(0));
        let (w, _) = watch("soon,done=3");
        w.item_ended(Ended::Failed, &item("a"), Some(1), 9);
        w.item_ended(Ended::Succeeded, &item("b"), Some(0), 9);
        assert!(
            w.item_ended(Ended::Failed, &item("c"), Some(2), 9)
                .is_some()
        );
        assert_eq!(w.halted().map(|h| h.exit_code), Some(2));
    }
}
