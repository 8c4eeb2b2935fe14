//! Steering a running job (docs/control.md): the owner's [`Steerer`] task reads the job's
//! control requests from the store (any process, any host may have made them) every
//! [`POLL`], applies them in order to the run's [`Steering`] (a `watch` channel the agents
//! obey before each item) and records each request applied with its effect events in one
//! transaction. A cancel also asks the run to stop, as a signal would.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::run::Run;
use crate::{Executor, RunError, StopLevel};
use mmm_core::control::{ControlAction, ControlState, Pause};
use mmm_core::event::{Cancelling, ControlApplied, Event, Paused, Scaled};
use mmm_core::job::now_ms;
use mmm_store::{ControlRecord, Write};

/// How often the owner looks for new requests: a request takes effect within this (plus a
/// store round trip), well inside the 1 s the commands promise.
pub(crate) const POLL: Duration = Duration::from_millis(200);

/// What the run's agents obey, as the requests so far left it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Steering {
    /// Set while paused: no new item starts.
    pub(crate) paused: Option<Pause>,
    /// The agents to work with; agents numbered from here retire after their item.
    pub(crate) agents: usize,
    /// No new item starts, and the run stops once the items in flight end (`interrupted`).
    pub(crate) draining: bool,
    /// Set once cancelled (`Some(true)`: without a grace period): the job ends `cancelled`.
    pub(crate) cancelled: Option<bool>,
}

impl Steering {
    /// The steering a run starts with: the plan's `agents` unless the job's control state says
    /// otherwise (a resume restores a scale and a pause), capped at `capacity` agents.
    pub(crate) fn start(state: ControlState, agents: usize, capacity: usize) -> Self {
        Steering {
            paused: state.paused,
            agents: state
                .agents
                .map_or(agents, |a| a as usize)
                .clamp(1, capacity.max(1)),
            draining: false,
            cancelled: None,
        }
    }

    /// True when no new item may start, for good (drain or cancel).
    pub(crate) fn is_ending(&self) -> bool {
        self.draining || self.cancelled.is_some()
    }
}

/// The owner's task that applies control requests.
pub(crate) struct Steerer {
    task: JoinHandle<()>,
}

impl Steerer {
    /// Starts applying the requests of `run`'s job numbered after `after` (see [`settle`]).
    pub(crate) fn start<E: Executor>(run: Arc<Run<E>>, after: u64) -> Self {
        let task = tokio::spawn(async move {
            let job = run.job;
            let mut after = after;
            let mut tick = tokio::time::interval(POLL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                // The budgets with the requests: `mmm budget` raises a budget before it asks
                // for the unpause, so the agents never see the unpause with the old budget.
                let read = run
                    .blocking(move |s| Ok((s.budgets(job)?, s.pending_control(job, after)?)))
                    .await;
                let Ok((budgets, pending)) = read else {
                    // A store that cannot be read now may be read at the next tick; the
                    // writer's failure, if it is one, stops the run by itself.
                    continue;
                };
                run.budgets.set(budgets);
                for record in pending {
                    after = record.seq;
                    let effects = apply(&run, &record);
                    let (seq, at) = (record.seq, now_ms());
                    // Failing to mark it applied costs only its effect events: the next tick
                    // skips it (`after`), and the run obeys it already.
                    let _ = run
                        .blocking(move |s| s.apply_control(job, seq, &effects, at))
                        .await;
                }
            }
        });
        Steerer { task }
    }

    /// A worker sharing the job's map (`mmm worker`): starts paused if the job is, then obeys
    /// every request made from now on, as its owner does, but records nothing: the owner
    /// applies each request and records its effect. A scale sets this process's agents.
    pub(crate) async fn follow<E: Executor>(run: Arc<Run<E>>) -> Result<Self, RunError> {
        let job = run.job;
        let (state, made) = run
            .blocking(move |s| Ok((s.control_state(job)?, s.control_requests(job, 0)?)))
            .await?;
        if let Some(pause) = state.paused {
            run.steering.send_modify(|s| s.paused = Some(pause));
            run.suspended.send_replace(pause.suspend);
            run.tracker.set_paused(true);
        }
        let mut after = made.last().map_or(0, |r| r.seq);
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(POLL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Ok(made) = run.blocking(move |s| s.control_requests(job, after)).await else {
                    continue;
                };
                for record in made {
                    after = record.seq;
                    apply(&run, &record);
                }
            }
        });
        Ok(Steerer { task })
    }

    /// Stops applying requests (the run is over).
    pub(crate) fn stop(self) {
        self.task.abort();
    }
}

/// A resume, before the job is recorded running again: the requests not applied yet were
/// addressed to a run that is over (a drain or a cancel has nothing left to stop; a pause's or
/// a scale's effect on the job's control state is what [`restore`] starts from), so they are
/// marked applied without effects. Numbers, not clocks, tell them apart from the requests to
/// this run (requests from other hosts carry their own clocks). Returns the last number.
pub(crate) async fn settle<E: Executor>(run: &Arc<Run<E>>) -> Result<u64, RunError> {
    let job = run.job;
    run.blocking(move |s| {
        let made = s.control_requests(job, 0)?;
        let at = now_ms();
        for stale in made.iter().filter(|r| r.applied_at.is_none()) {
            s.apply_control(job, stale.seq, &[], at)?;
        }
        Ok(made.last().map_or(0, |r| r.seq))
    })
    .await
}

/// A resume: sets the run's steering from the job's control state (a pause and a scale outlive
/// the run that applied them) and records what it restored.
pub(crate) async fn restore<E: Executor>(run: &Arc<Run<E>>) -> Result<(), RunError> {
    let job = run.job;
    let state = run.blocking(move |s| s.control_state(job)).await?;
    let plan_agents = run.plan.map.max_parallel;
    let steering = Steering::start(state, plan_agents, run.tracker.agent_capacity());
    run.steering.send_replace(steering);
    run.tracker.set_agent_count(steering.agents);
    run.tracker.set_paused(steering.paused.is_some());
    run.suspended
        .send_replace(steering.paused.is_some_and(|p| p.suspend));
    let mut events = Vec::new();
    if let Some(pause) = steering.paused {
        events.push(Write::event(
            job,
            None,
            Event::Paused(Paused {
                request: None,
                suspend: pause.suspend,
            }),
        ));
    }
    if steering.agents != plan_agents.max(1) {
        events.push(Write::event(
            job,
            None,
            Event::Scaled(Scaled {
                request: None,
                from: plan_agents as u32,
                to: steering.agents as u32,
            }),
        ));
    }
    if !events.is_empty() {
        run.record(events);
    }
    Ok(())
}

/// Applies `record` to the run's steering; returns the events that say what it did.
fn apply<E: Executor>(run: &Run<E>, record: &ControlRecord) -> Vec<Event> {
    let request = record.seq;
    let before = *run.steering.borrow();
    let capacity = run.tracker.agent_capacity();
    match record.request.action {
        ControlAction::Pause { suspend } => {
            run.steering
                .send_modify(|s| s.paused = Some(Pause { suspend }));
            run.suspended.send_replace(suspend);
            run.tracker.set_paused(true);
            vec![Event::Paused(Paused {
                request: Some(request),
                suspend,
            })]
        }
        ControlAction::Unpause => {
            run.steering.send_modify(|s| s.paused = None);
            run.suspended.send_replace(false);
            run.tracker.set_paused(false);
            vec![Event::Unpaused(ControlApplied { request })]
        }
        ControlAction::Scale { agents } => {
            let to = (agents as usize).clamp(1, capacity.max(1));
            run.steering.send_modify(|s| s.agents = to);
            run.tracker.set_agent_count(to);
            vec![Event::Scaled(Scaled {
                request: Some(request),
                from: before.agents as u32,
                to: to as u32,
            })]
        }
        ControlAction::Drain => {
            run.steering.send_modify(|s| s.draining = true);
            // The items in flight must end for the drain to: suspended ones continue.
            run.suspended.send_replace(false);
            vec![Event::Draining(ControlApplied { request })]
        }
        ControlAction::Cancel { now } => {
            run.steering.send_modify(|s| s.cancelled = Some(now));
            let level = if now {
                StopLevel::Immediate
            } else {
                StopLevel::Graceful
            };
            run.stop_tx.send_if_modified(|current| {
                let raise = level > *current;
                if raise {
                    *current = level;
                }
                raise
            });
            vec![Event::Cancelling(Cancelling { request, now })]
        }
    }
}

/// Waits until agent `index` may take an item: true when it may, false when it must end
/// (drained, cancelled, stopped, or retired by a scale down).
pub(crate) async fn may_start(
    steering: &mut watch::Receiver<Steering>,
    stop: &mut watch::Receiver<StopLevel>,
    index: usize,
) -> bool {
    loop {
        let now = *steering.borrow_and_update();
        if now.is_ending() || index >= now.agents || *stop.borrow() != StopLevel::Run {
            return false;
        }
        if now.paused.is_none() {
            return true;
        }
        tokio::select! {
            changed = steering.changed() => if changed.is_err() { return false },
            changed = stop.changed() => if changed.is_err() { return false },
        }
    }
}

/// Waits, with an item taken, until it may start: true when it may; false when the run ends
/// first (drain, cancel, stop), and then the item is left for later. A scale down does not
/// hold it: the agent runs the item it took, then retires.
pub(crate) async fn may_run_taken(
    steering: &mut watch::Receiver<Steering>,
    stop: &mut watch::Receiver<StopLevel>,
) -> bool {
    loop {
        let now = *steering.borrow_and_update();
        if now.is_ending() || *stop.borrow() != StopLevel::Run {
            return false;
        }
        if now.paused.is_none() {
            return true;
        }
        tokio::select! {
            changed = steering.changed() => if changed.is_err() { return false },
            changed = stop.changed() => if changed.is_err() { return false },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_starts_from_the_jobs_control_state() {
        let state = ControlState {
            paused: Some(Pause { suspend: false }),
            agents: Some(6),
        };
        let steering = Steering::start(state, 2, 256);
        assert_eq!(steering.agents, 6);
        assert!(steering.paused.is_some());
        assert_eq!(Steering::start(ControlState::default(), 3, 256).agents, 3);
        assert_eq!(Steering::start(ControlState::default(), 0, 256).agents, 1);
    }

    #[tokio::test]
    async fn agents_wait_while_paused_and_retire_above_the_scale() {
        let (tx, mut rx) = watch::channel(Steering::start(
            ControlState {
                paused: Some(Pause { suspend: false }),
                agents: Some(2),
            },
            2,
            256,
        ));
        let (_stop_tx, mut stop) = watch::channel(StopLevel::Run);
        assert!(!may_start(&mut rx, &mut stop, 2).await, "retired");
        let waiting = tokio::spawn({
            let mut rx = tx.subscribe();
            let mut stop = stop.clone();
            async move { may_start(&mut rx, &mut stop, 0).await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "waits while paused");
        tx.send_modify(|s| s.paused = None);
        assert!(waiting.await.unwrap());
        tx.send_modify(|s| s.draining = true);
        assert!(!may_start(&mut rx, &mut stop, 0).await, "drained");
        assert!(!may_run_taken(&mut rx, &mut stop).await);
    }
}
