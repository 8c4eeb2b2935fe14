//! One agent of the map: takes items from the map's [`WorkSource`] until it runs out, and
//! takes each item through its attempts: retried with exponential backoff while it has retries
//! left, to the DLQ once they are exhausted, back to `pending` when a stop cuts an attempt
//! short (not counted against its retries). Records each attempt with the item's new status
//! and event in one transaction, and feeds the tracker and the metrics.

use std::sync::Arc;
use std::time::Duration;

use crate::attempt::{Attempt, AttemptEnd};
use crate::halting::Ended;
use crate::isolated::INFRA_LIMIT;
use crate::map::Map;
use crate::source::{Taken, Work, WorkSource};
use crate::throttle::Permit;
use crate::{Executor, StopLevel, budget, control, process};
use mmm_core::event::{
    AgentEvent, AttemptFailed, AttemptStarted, ConcurrencyChanged, Event, ItemCompleted,
    ItemDeadLettered, ItemSkipped,
};
use mmm_core::job::{AttemptOutcome, ItemStatus, now_ms};
use mmm_core::tracker::ItemEnd;
use mmm_store::Write;

/// The longest wait between two attempts of an item.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// Why an agent ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AgentEnd {
    /// Its source has no more items for it.
    Exhausted,
    /// A scale down retired it; a scale up may start it again.
    Retired,
    /// The run stops (a stop, drain or cancel request, or the writer failed).
    Stopped,
}

/// One agent working through items.
pub(crate) struct Agent<E, S> {
    pub(crate) map: Arc<Map<E, S>>,
    /// Its number, 0-based.
    pub(crate) index: usize,
    /// Its name in the record (`agent-N`, or `PREFIX/N` for a worker's).
    pub(crate) name: String,
}

impl<E: Executor, S: WorkSource> Agent<E, S> {
    pub(crate) fn new(map: Arc<Map<E, S>>, index: usize) -> Self {
        let name = map.agent_name(index);
        Agent { map, index, name }
    }

    /// Takes items until the source runs out, the job stops, the writer failed or a scale
    /// down retires it (after its item); waits while the job is paused. Returns its number and
    /// why it ended.
    pub(crate) async fn work(self) -> (usize, AgentEnd) {
        let run = &self.map.run;
        let job = run.job;
        let agent = || AgentEvent {
            agent: self.name.clone(),
        };
        let mut steering = run.steering.subscribe();
        let mut stop = run.stop.clone();
        run.record(vec![Write::event(job, None, Event::AgentStarted(agent()))]);
        let end = loop {
            if self.map.stopping() || run.writer.is_failed() {
                break AgentEnd::Stopped;
            }
            if !control::may_start(&mut steering, &mut stop, self.index).await {
                break if self.map.stopping() {
                    AgentEnd::Stopped
                } else {
                    AgentEnd::Retired
                };
            }
            // While the store is unavailable and many writes wait for it, take nothing more:
            // nothing is lost and memory stays bounded; the agents go on once it is back.
            while run.writer.is_backlogged() && !self.map.stopping() {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            let Some(Taken { work, waited }) = self.map.source.next().await else {
                break AgentEnd::Exhausted;
            };
            // Taken while waiting for an item, then paused: held until unpaused; a drain or a
            // stop leaves it for later (nothing of it is recorded yet).
            if !control::may_run_taken(&mut steering, &mut stop).await {
                break AgentEnd::Stopped;
            }
            // Under throttling, no more attempts run at once than the effective concurrency.
            let Some(permit) = run
                .aimd
                .permit(self.index, &run.tracker, &mut steering, &mut stop)
                .await
            else {
                break AgentEnd::Stopped;
            };
            if !self.map.wait_to_start().await {
                break AgentEnd::Stopped;
            }
            // A counter at its budget pauses the job: the item waits, unstarted, until the
            // budget is raised (or the run ends, and then it is left for later).
            let mut held = false;
            while budget::over_budget(run) {
                if !control::may_run_taken(&mut steering, &mut stop).await {
                    held = true;
                    break;
                }
            }
            if held {
                break AgentEnd::Stopped;
            }
            // The item's duration for the ETA counts from here to its end (see `item_measured`).
            let taken = tokio::time::Instant::now();
            let metrics = &run.metrics;
            // Only the keys of items in flight are kept: the views show an agent's item by it.
            run.tracker
                .add_item_keys([(work.index, work.item.key.clone())]);
            metrics.item_taken(self.index, work.index, run.clock.now_ms());
            if let Some(waited) = waited {
                metrics.queue_wait(waited);
            }
            self.item(&work, taken, permit).await;
            self.map.source.ended(work.index);
            run.tracker.forget_item_key(work.index);
            run.shown.item_ended(work.index);
            // Skipped or interrupted items leave no duration but must leave the in-flight set.
            metrics.item_released(self.index);
        };
        run.tracker.agent_finished(self.index);
        run.record(vec![Write::event(job, None, Event::AgentFinished(agent()))]);
        (self.index, end)
    }

    /// Takes one item through its attempts to its end here: completed, skipped, dead-lettered,
    /// or left for later (a stop).
    async fn item(&self, work: &Work, taken: tokio::time::Instant, permit: Permit<'_>) {
        let run = &self.map.run;
        let job = run.job;
        let (index, item) = (work.index as usize, &work.item);
        let map = &run.plan.map;
        let tracker = &run.tracker;
        let mut number = work.next_number;
        let mut used = work.attempts_used;
        // Infrastructure failures in a row (worktree isolation): retried, never counted.
        let mut infrastructure = 0;
        // Throttled attempts of this item: retried after a growing wait, never counted.
        let mut throttles = 0;
        let mut first = Some(permit);
        // The counters its attempts reported, for the counters' per-item figures.
        let mut spent = std::collections::BTreeMap::new();
        loop {
            // A retry waits for its place under the effective concurrency and for a start
            // under the start rate, as a first attempt did before it was taken.
            let held = match first.take() {
                Some(permit) => permit,
                None => match self.next_start().await {
                    Some(permit) => permit,
                    None => {
                        tracker.item_finished(self.index, ItemEnd::Interrupted, None);
                        return;
                    }
                },
            };
            let attempt_started = std::time::Instant::now();
            tracker.attempt_started(self.index, index as u64, number);
            let mut writes = vec![Write::AttemptStarted {
                job,
                item_index: index as u64,
                number,
                agent: self.name.clone(),
                at: now_ms(),
            }];
            // An item's first attempt has no `attempt_started` event on a map this process
            // runs alone: its attempt row holds the same facts (agent, start), and most items
            // have no other attempt, so the event would be a third of a large job's store
            // (docs/events.md). A shared map (scale-out) logs it: it is how the job's owner
            // sees other processes' items in flight (runner/others.rs).
            if number > 1 || self.map.source.is_shared() {
                let started = AttemptStarted {
                    attempt: number,
                    agent: self.name.clone(),
                    item: index as u64,
                };
                writes.push(Write::event(
                    job,
                    Some(&item.key),
                    Event::AttemptStarted(started),
                ));
            }
            run.record(writes);
            let end = Attempt {
                agent: self,
                index,
                item,
                number,
            }
            .run()
            .await;
            drop(held);
            for (name, delta) in &end.counters {
                *spent.entry(name.clone()).or_default() += *delta;
            }
            if end.infrastructure && !self.map.stopping() {
                infrastructure += 1;
                self.record_attempt(index, number, &end, ItemStatus::Pending, false, None);
                if infrastructure >= INFRA_LIMIT
                    && let Some(isolated) = &self.map.isolated
                {
                    isolated.give_up(run, &item.key, &end);
                }
                run.metrics.between_attempts(self.index);
                if infrastructure >= INFRA_LIMIT || !self.backoff(infrastructure).await {
                    tracker.item_finished(self.index, ItemEnd::Interrupted, None);
                    return;
                }
                number += 1;
                continue;
            }
            if let Some(retry_after) = end.throttled
                && !self.map.stopping()
            {
                throttles += 1;
                let failed = AttemptFailed {
                    attempt: Some(number),
                    agent: Some(self.name.clone()),
                    outcome: Some(AttemptOutcome::Failed),
                    error: Some(match &end.error {
                        Some(error) => format!("throttled: {error}"),
                        None => "throttled (reported by the step)".to_string(),
                    }),
                    exit_code: end.exit_code,
                    infrastructure: false,
                    throttled: true,
                    stopping: None,
                };
                let event = Write::event(job, Some(&item.key), Event::AttemptFailed(failed));
                let end = AttemptEnd {
                    outcome: AttemptOutcome::Failed,
                    ..end
                };
                self.record_attempt(index, number, &end, ItemStatus::Failed, false, Some(event));
                self.throttled(attempt_started);
                tracker.throttled(self.index, number + 1);
                run.metrics.between_attempts(self.index);
                let wait = retry_after.unwrap_or_else(|| self.backoff_after(throttles));
                if !self.wait_throttled(wait).await {
                    tracker.item_finished(self.index, ItemEnd::Interrupted, end.exit_code);
                    return;
                }
                number += 1;
                continue;
            }
            if end.outcome == AttemptOutcome::Interrupted {
                self.record_attempt(index, number, &end, ItemStatus::Pending, false, None);
                tracker.item_finished(self.index, ItemEnd::Interrupted, None);
                return;
            }
            if end.outcome == AttemptOutcome::Succeeded {
                self.succeeded();
                run.metrics.item_counters(&spent);
                let agent = self.name.clone();
                let (status, tracked, event) = if end.all_skipped {
                    let skipped = ItemSkipped {
                        attempt: number,
                        agent,
                    };
                    (
                        ItemStatus::Skipped,
                        ItemEnd::Skipped,
                        Event::ItemSkipped(skipped),
                    )
                } else {
                    let (duration_us, steps_us) = self.item_measured(taken, &end);
                    // Only the owner of a shared map reads them back (see `ItemCompleted`).
                    let shared = self.map.source.is_shared();
                    let completed = ItemCompleted {
                        attempt: number,
                        agent,
                        duration_us: shared.then_some(duration_us),
                        steps_us: shared.then_some(steps_us),
                    };
                    (
                        ItemStatus::Completed,
                        ItemEnd::Completed,
                        Event::ItemCompleted(completed),
                    )
                };
                // Counted before the store can have it: the owner of a scale-out job never
                // finds in the store's counts an item its tracker lacks (`others.rs`).
                tracker.item_finished(self.index, tracked, None);
                let event = Write::event(job, Some(&item.key), event);
                self.record_attempt(index, number, &end, status, true, Some(event));
                if status == ItemStatus::Completed {
                    self.halt_check(Ended::Succeeded, item, end.exit_code);
                }
                return;
            }
            used += 1;
            if end.retryable && used <= map.retries {
                let failed = AttemptFailed {
                    attempt: Some(number),
                    agent: Some(self.name.clone()),
                    outcome: Some(end.outcome),
                    error: end.error.clone(),
                    exit_code: end.exit_code,
                    infrastructure: false,
                    throttled: false,
                    stopping: None,
                };
                let event = Write::event(job, Some(&item.key), Event::AttemptFailed(failed));
                self.record_attempt(index, number, &end, ItemStatus::Failed, true, Some(event));
                tracker.retrying(self.index, number + 1, end.exit_code);
                run.metrics.between_attempts(self.index);
                if !self.backoff(used).await {
                    // Stopped while waiting: the item stays `failed`, to be retried on resume.
                    tracker.item_finished(self.index, ItemEnd::Interrupted, end.exit_code);
                    return;
                }
                number += 1;
                continue;
            }
            let (duration_us, steps_us) = self.item_measured(taken, &end);
            let dead = ItemDeadLettered {
                attempts: number,
                agent: self.name.clone(),
                outcome: end.outcome,
                error: end.error.clone(),
                exit_code: end.exit_code,
                duration_us,
                steps_us,
            };
            run.metrics.item_counters(&spent);
            tracker.item_finished(self.index, ItemEnd::DeadLettered, end.exit_code);
            let event = Write::event(job, Some(&item.key), Event::ItemDeadLettered(dead));
            self.record_attempt(
                index,
                number,
                &end,
                ItemStatus::DeadLettered,
                true,
                Some(event),
            );
            self.halt_check(Ended::Failed, item, end.exit_code);
            return;
        }
    }

    /// Counts an item's end for `--halt`, recording the halt when this end meets it.
    fn halt_check(&self, ended: Ended, item: &mmm_spec::Item, exit_code: Option<i32>) {
        let run = &self.map.run;
        let total = run.tracker.progress().total;
        if let Some(halted) = run.halt.item_ended(ended, item, exit_code, total) {
            run.record(vec![Write::event(run.job, None, Event::JobHalted(halted))]);
        }
    }

    /// Feeds a finished item's durations to the metrics: the steps of its last attempt, and
    /// the item's whole time since the agent took it (its cycle: every attempt, the backoff
    /// between them, the recording, a worktree's merge), which is what the ETA's queue of
    /// items over N agents needs (docs/eta.md). Returns them for its event too
    /// (`duration_us`, `steps_us`: what the owner of a scale-out job folds into its metrics
    /// when another process ran the item, see `others.rs`).
    fn item_measured(
        &self,
        taken: tokio::time::Instant,
        end: &AttemptEnd,
    ) -> (u64, Vec<Option<u64>>) {
        let run = &self.map.run;
        let steps: Vec<(usize, Option<Duration>)> = end
            .steps
            .iter()
            // Only the plan's steps (not a worktree's `on_conflict` run after them).
            .take(run.plan.map.steps.len())
            .enumerate()
            .map(|(i, s)| {
                (
                    i,
                    (!s.skipped).then(|| Duration::from_micros(s.duration_us)),
                )
            })
            .collect();
        let cycle = taken.elapsed();
        run.metrics
            .item_finished(self.index, cycle, &steps, run.clock.now_ms());
        let steps_us = steps
            .iter()
            .map(|(_, d)| d.map(|d| d.as_micros() as u64))
            .collect();
        (cycle.as_micros() as u64, steps_us)
    }

    /// A throttled attempt (started at `started`) lowers the job's effective concurrency.
    fn throttled(&self, started: std::time::Instant) {
        let run = &self.map.run;
        let agents = run.steering.borrow().agents;
        if let Some((from, to)) = run.aimd.throttled(started, agents) {
            self.concurrency_changed(from, to, true);
        }
    }

    /// A successful attempt raises it again, one agent per window of them.
    fn succeeded(&self) {
        let run = &self.map.run;
        let agents = run.steering.borrow().agents;
        if let Some((from, to)) = run.aimd.succeeded(agents) {
            self.concurrency_changed(from, to, false);
        }
    }

    fn concurrency_changed(&self, from: usize, to: usize, throttled: bool) {
        let changed = ConcurrencyChanged {
            from: from as u32,
            to: to as u32,
            throttled,
        };
        let run = &self.map.run;
        run.record(vec![Write::event(
            run.job,
            None,
            Event::ConcurrencyChanged(changed),
        )]);
    }

    /// The wait after the `throttles`-th throttled attempt of an item that said not how long:
    /// the map's backoff, doubled each time, at most a minute.
    fn backoff_after(&self, throttles: u32) -> Duration {
        self.map
            .run
            .plan
            .map
            .backoff
            .checked_mul(1u32 << (throttles.max(1) - 1).min(16))
            .unwrap_or(MAX_BACKOFF)
            .min(MAX_BACKOFF)
    }

    /// Waits `wait` before retrying a throttled attempt. False when a stop request came first.
    async fn wait_throttled(&self, wait: Duration) -> bool {
        let mut stop = self.map.run.stop.clone();
        tokio::select! {
            _ = tokio::time::sleep(wait) => !self.map.stopping(),
            _ = stop.wait_for(|level| *level != StopLevel::Run) => false,
        }
    }

    /// A retry's start: its place under the effective concurrency, then its start under
    /// the start rate. `None` when the run ends first.
    async fn next_start(&self) -> Option<Permit<'_>> {
        let run = &self.map.run;
        let mut steering = run.steering.subscribe();
        let mut stop = run.stop.clone();
        let permit = run
            .aimd
            .permit(self.index, &run.tracker, &mut steering, &mut stop)
            .await?;
        self.map.wait_to_start().await.then_some(permit)
    }

    /// Waits before attempt `number + 1`. False when a stop request came first.
    async fn backoff(&self, number: u32) -> bool {
        let base = self.map.run.plan.map.backoff;
        let wait = base
            .checked_mul(1u32 << (number - 1).min(16))
            .unwrap_or(MAX_BACKOFF)
            .min(MAX_BACKOFF);
        let mut stop = self.map.run.stop.clone();
        tokio::select! {
            _ = tokio::time::sleep(wait) => !self.map.stopping(),
            _ = stop.wait_for(|level| *level != StopLevel::Run) => false,
        }
    }

    /// Records the end of an attempt and the item's new status, with `event` (the item's
    /// event, if any) in the same group, so that they land in one transaction: a reader never
    /// sees the status without its event (the owner of a scale-out job counts other processes'
    /// items from their events, `others.rs`).
    fn record_attempt(
        &self,
        index: usize,
        number: u32,
        end: &AttemptEnd,
        item_status: ItemStatus,
        counts_against_retries: bool,
        event: Option<Write>,
    ) {
        let run = &self.map.run;
        run.tracker.attempt_ended(end.outcome);
        // A throttled attempt is the API's load, not the item's failure: no failure cluster.
        if end.throttled.is_none()
            && matches!(
                end.outcome,
                AttemptOutcome::Failed | AttemptOutcome::TimedOut
            )
        {
            let stderr = process::tail_text(&end.stderr);
            let output = if stderr.trim().is_empty() {
                end.error.clone().unwrap_or_default()
            } else {
                stderr
            };
            let key = run.tracker.item_key(index as u64).unwrap_or_default();
            run.metrics.attempt_failed(&mmm_core::metrics::Failure {
                item_key: &key,
                item_value: None,
                kind: mmm_core::metrics::FailureKind::from_attempt(
                    Some(end.outcome),
                    end.exit_code,
                ),
                output: &output,
                at_ms: now_ms(),
            });
        }
        let mut writes = vec![Write::AttemptFinished {
            job: run.job,
            item_index: index as u64,
            number,
            ended_at: now_ms(),
            duration_us: end.duration.as_micros() as u64,
            outcome: end.outcome,
            exit_code: end.exit_code,
            error: end.error.clone(),
            steps: end.steps.clone(),
            stdout_tail: process::tail_text(&end.stdout),
            stderr_tail: process::tail_text(&end.stderr),
            item_status,
            counts_against_retries,
        }];
        writes.extend(event);
        run.record(writes);
    }
}
