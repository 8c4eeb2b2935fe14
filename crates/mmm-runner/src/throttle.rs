//! Throttling by the API a job calls (docs/api-work.md): the job's effective concurrency
//! ([`Aimd`]): halved when an attempt is throttled, one agent more per window of successful
//! attempts (as many as the level then), never above the agents of the run. An attempt holds
//! a permit while it runs; an agent waits, `throttled`, for one.

use std::sync::Mutex;
use std::time::Instant;

use tokio::sync::watch;

use crate::StopLevel;
use crate::control::Steering;
use mmm_core::tracker::Tracker;

/// The job's effective concurrency under throttling: additive increase, multiplicative
/// decrease. Attempts hold a [`Permit`] while they run; while throttled, no more than the
/// level run at once, whichever agents run them.
#[derive(Debug)]
pub(crate) struct Aimd {
    gate: watch::Sender<Gate>,
    state: Mutex<AimdState>,
}

/// The level and the attempts holding a permit.
#[derive(Debug, Clone, Copy, Default)]
struct Gate {
    /// The attempts that may run at once; `None`: as many as there are agents (never
    /// throttled, or recovered).
    level: Option<usize>,
    /// Attempts running now.
    running: usize,
}

#[derive(Debug, Default)]
struct AimdState {
    /// Successful attempts since the level last changed.
    successes: usize,
    /// When the level was last halved: attempts started before then were throttled by the
    /// load that the halving already answers, so they do not halve it again.
    cut_at: Option<Instant>,
}

/// A change of the level: from, to.
pub(crate) type Change = (usize, usize);

/// A running attempt's place under the level; given back when dropped.
pub(crate) struct Permit<'a>(&'a Aimd);

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        self.0
            .gate
            .send_modify(|g| g.running = g.running.saturating_sub(1));
    }
}

impl Default for Aimd {
    fn default() -> Self {
        Aimd {
            gate: watch::Sender::new(Gate::default()),
            state: Mutex::default(),
        }
    }
}

impl Aimd {
    /// The level now, of `agents` agents.
    fn now(&self, agents: usize) -> usize {
        self.gate
            .borrow()
            .level
            .map_or(agents, |l| l.min(agents))
            .max(1)
    }

    /// An attempt started at `started` was throttled while `agents` agents run: halves the
    /// level (once per wave of attempts started before the last halving).
    pub(crate) fn throttled(&self, started: Instant, agents: usize) -> Option<Change> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.cut_at.is_some_and(|cut| started < cut) {
            return None;
        }
        let from = self.now(agents);
        let to = (from / 2).max(1);
        state.cut_at = Some(Instant::now());
        state.successes = 0;
        self.gate.send_modify(|g| g.level = Some(to));
        (to != from).then_some((from, to))
    }

    /// An attempt succeeded while `agents` agents run: after as many successes as the level,
    /// one more attempt at once (back to no limit at `agents`).
    pub(crate) fn succeeded(&self, agents: usize) -> Option<Change> {
        let level = self.gate.borrow().level?;
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.successes += 1;
        if state.successes < level {
            return None;
        }
        state.successes = 0;
        let from = level.min(agents);
        let to = from + 1;
        if to >= agents {
            self.gate.send_modify(|g| g.level = None);
            (agents != from).then_some((from, agents))
        } else {
            self.gate.send_modify(|g| g.level = Some(to));
            Some((from, to))
        }
    }

    /// Waits until an attempt of agent `index` may run under the level, showing the agent
    /// `throttled` meanwhile: its permit, or `None` when the run ends first.
    pub(crate) async fn permit(
        &self,
        index: usize,
        tracker: &Tracker,
        steering: &mut watch::Receiver<Steering>,
        stop: &mut watch::Receiver<StopLevel>,
    ) -> Option<Permit<'_>> {
        let mut gate = self.gate.subscribe();
        let mut shown = false;
        loop {
            gate.borrow_and_update();
            let mut got = false;
            self.gate.send_if_modified(|g| {
                got = g.level.is_none_or(|l| g.running < l);
                if got {
                    g.running += 1;
                }
                // Taking a place wakes nobody: only giving one back or a new level does.
                false
            });
            if got {
                return Some(Permit(self));
            }
            if steering.borrow().is_ending() || *stop.borrow() != StopLevel::Run {
                return None;
            }
            if !shown {
                tracker.throttled(index, 0);
                shown = true;
            }
            tokio::select! {
                changed = gate.changed() => if changed.is_err() { return None },
                changed = steering.changed() => if changed.is_err() { return None },
                changed = stop.changed() => if changed.is_err() { return None },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halves_on_throttling_once_per_wave_and_adds_one_per_window() {
        let aimd = Aimd::default();
        assert_eq!(aimd.succeeded(16), None, "unthrottled: nothing to raise");
        let before = Instant::now();
        assert_eq!(aimd.throttled(before, 16), Some((16, 8)));
        // Attempts of the same wave (started before the halving) do not halve it again.
        assert_eq!(aimd.throttled(before, 16), None);
        assert_eq!(aimd.throttled(Instant::now(), 16), Some((8, 4)));
        // A window: as many successes as the level, then one more agent.
        for _ in 0..3 {
            assert_eq!(aimd.succeeded(16), None);
        }
        assert_eq!(aimd.succeeded(16), Some((4, 5)));
        assert_eq!(aimd.now(16), 5);
        // Never below one, never above the agents.
        for _ in 0..5 {
            aimd.throttled(Instant::now(), 16);
        }
        assert_eq!(aimd.now(16), 1);
        assert_eq!(aimd.succeeded(2), Some((1, 2)));
        assert_eq!(aimd.gate.borrow().level, None, "back to every agent");
    }
}

#[cfg(test)]
mod gate_tests {
    use super::*;
    use crate::control::Steering;
    use mmm_core::control::ControlState;

    #[tokio::test]
    async fn permits_hold_attempts_to_the_level() {
        let aimd = Aimd::default();
        let tracker = Tracker::new(10, 4);
        let (_steer, mut steering) = watch::channel(Steering::start(ControlState::default(), 4, 4));
        let (_stop, mut stop) = watch::channel(StopLevel::Run);
        aimd.throttled(Instant::now(), 4);
        aimd.throttled(Instant::now(), 4);
        assert_eq!(aimd.now(4), 1);
        let first = aimd.permit(0, &tracker, &mut steering, &mut stop).await;
        assert!(first.is_some());
        let waiting = tokio::time::timeout(
            std::time::Duration::from_millis(50),
            aimd.permit(1, &tracker, &mut steering, &mut stop),
        )
        .await;
        assert!(
            waiting.is_err(),
            "a second attempt waits while one runs at level 1"
        );
        drop(first);
        assert!(
            aimd.permit(1, &tracker, &mut steering, &mut stop)
                .await
                .is_some()
        );
    }
}
