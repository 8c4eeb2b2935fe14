//! The metrics of a running job, fed by the runner and read by the views: the duration model,
//! the failure clusters, and the ETA and stragglers recomputed once a heartbeat.
//!
//! One lock around it all: it is written a few times per item (taken, each step, finished) and
//! read a few times a second, never on a path where an agent waits on another (the tracker
//! stays the lock-free live state; this is the slower analytics beside it).
//!
//! Every time comes from the caller (epoch ms of the runner's clock), including when each agent
//! took its item and started its step: the in-flight items' elapsed times are on the same clock
//! as the durations the model learns from, so a runner on a paused tokio clock gives exact,
//! load-independent estimates in tests, and the live view the same numbers as a replay.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{
    CounterForecast, CounterStats, DurationModel, DurationStats, DurationSummary, Eta, EtaInput,
    Failure, FailureCluster, FailureClusters, History, InFlight, PRIOR_SAMPLES, Straggler,
    estimate, find_stragglers,
};
use crate::tracker::Tracker;

/// How many failure clusters a snapshot carries (the largest).
const CLUSTERS_SHOWN: usize = 20;

/// The analytics of one run.
pub struct LiveMetrics {
    inner: Mutex<Inner>,
}

struct Inner {
    model: DurationModel,
    /// Earlier runs' durations joined by this run's, for the ETA until this run has
    /// [`PRIOR_SAMPLES`] durations of its own ([`LiveMetrics::start_from`]).
    prior: Option<DurationModel>,
    /// The agents the plan starts with (the model skips their first completions in its trend).
    agents: usize,
    queue_wait: DurationStats,
    failures: FailureClusters,
    last_completion_ms: Option<i64>,
    eta: Eta,
    stragglers: Vec<Straggler>,
    /// What each agent (by slot) holds now.
    held: Vec<Option<Held>>,
    /// Since when the job is paused, on the metrics' clock (`mmm pause`).
    paused_since_ms: Option<i64>,
    /// Time paused before, which the ETA's clock leaves out.
    paused_ms: i64,
    /// The counters steps report, per item that ended.
    counters: CounterStats,
    /// Their forecasts, as of the last refresh.
    counter_forecasts: BTreeMap<String, CounterForecast>,
}

/// An item an agent holds, from taking it to its end (times: epoch ms of the runner's clock).
#[derive(Debug, Clone, Copy)]
struct Held {
    item: u64,
    taken_ms: i64,
    /// The step running and when it started; none before the first step and between attempts
    /// (waiting to retry): the item-level model is used then.
    step: Option<(usize, i64)>,
}

/// What other processes' agents are doing (scale-out: `mmm worker`s sharing the owner's job),
/// as the owner last read it from the job's event log.
#[derive(Debug, Clone, Default)]
pub struct Elsewhere {
    /// Their agents that have not finished.
    pub agents: usize,
    /// Their items in flight; `agent` numbers continue after the owner's own. Their `step` is
    /// not known (the event log records no step starts) and is ignored: the item-level model
    /// stands in.
    pub in_flight: Vec<InFlight>,
}

/// Durations of one step, for views.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StepSummary {
    /// The step's name.
    pub name: String,
    /// Its runs' durations (none before the first).
    pub durations: Option<DurationSummary>,
    /// Times its `when:` skipped it.
    #[serde(default)]
    pub skipped: u64,
}

/// What the views and the snapshots show of the metrics.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MetricsView {
    /// The estimate of the time left, as of the last heartbeat.
    pub eta: Eta,
    /// Item durations (from its agent taking it to its end: all its attempts and the waits
    /// between them; completed or dead-lettered items) this run.
    #[serde(default)]
    pub items: Option<DurationSummary>,
    /// Per-step durations.
    #[serde(default)]
    pub steps: Vec<StepSummary>,
    /// How long items waited in the queue for a free agent this run (from being queued, at
    /// the map's start or when a resume paged them in, to an agent taking them).
    #[serde(default)]
    pub queue_wait: Option<DurationSummary>,
    /// Items running past the p95 of their step, most overdue first.
    #[serde(default)]
    pub stragglers: Vec<Straggler>,
    /// Failed attempts grouped by cause, largest first (at most 20).
    #[serde(default)]
    pub failures: Vec<FailureCluster>,
    /// Failed attempts in all.
    #[serde(default)]
    pub failed_attempts: u64,
    /// Each counter steps report: per item, and its expected total at the end of the job with
    /// a P10-P90 range (from the third item that ended in this run).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub counters: BTreeMap<String, CounterForecast>,
}

impl Inner {
    /// A finished item's cycle and its last attempt's steps, into the model; `at_ms` moves the
    /// last completion, never backwards (items finished elsewhere are folded in a little later).
    fn learn_item(&mut self, cycle: Duration, steps: &[(usize, Option<Duration>)], at_ms: i64) {
        self.model.record_item(cycle);
        for (step, duration) in steps {
            self.model.record_step(*step, *duration);
        }
        if self.model.item().count() >= PRIOR_SAMPLES {
            self.prior = None;
        }
        if let Some(prior) = &mut self.prior {
            prior.record_item(cycle);
            for (step, duration) in steps {
                prior.record_step(*step, *duration);
            }
        }
        self.last_completion_ms = self.last_completion_ms.max(Some(at_ms));
    }
}

impl LiveMetrics {
    /// Metrics for a plan with these steps, worked by `agents` agents.
    pub fn new(step_names: Vec<String>, agents: usize) -> Self {
        LiveMetrics {
            inner: Mutex::new(Inner {
                model: DurationModel::new(step_names, agents),
                prior: None,
                agents,
                queue_wait: DurationStats::new(),
                failures: FailureClusters::new(),
                last_completion_ms: None,
                eta: Eta::WarmingUp {
                    completed: 0,
                    needed: 3u64.max(agents as u64),
                },
                stragglers: Vec::new(),
                held: Vec::new(),
                paused_since_ms: None,
                paused_ms: 0,
                counters: CounterStats::default(),
                counter_forecasts: BTreeMap::new(),
            }),
        }
    }

    /// Starts the ETA from what earlier runs of the job's name measured: until this run has
    /// [`PRIOR_SAMPLES`] item durations of its own, the ETA's model holds theirs too, and it
    /// gives an estimate (basis `history`) from the first heartbeat instead of warming up.
    /// The views' durations stay this run's alone.
    pub fn start_from(&self, history: &History) {
        let mut inner = self.lock();
        let names: Vec<String> = inner.model.steps().iter().map(|s| s.name.clone()).collect();
        inner.prior = history.model(&names, inner.agents);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `agent` took `item` from the queue at `at_ms`: it is in flight from now on, and its
    /// duration (see [`LiveMetrics::item_finished`]) counts from here.
    pub fn item_taken(&self, agent: usize, item: u64, at_ms: i64) {
        let mut inner = self.lock();
        if inner.held.len() <= agent {
            inner.held.resize(agent + 1, None);
        }
        inner.held[agent] = Some(Held {
            item,
            taken_ms: at_ms,
            step: None,
        });
    }

    /// `agent`'s item started step `step` (index in the plan) at `at_ms`.
    pub fn step_started(&self, agent: usize, step: usize, at_ms: i64) {
        if let Some(Some(held)) = self.lock().held.get_mut(agent) {
            held.step = Some((step, at_ms));
        }
    }

    /// `agent`'s item is between attempts (waiting to retry): no step runs.
    pub fn between_attempts(&self, agent: usize) {
        if let Some(Some(held)) = self.lock().held.get_mut(agent) {
            held.step = None;
        }
    }

    /// `agent`'s item finished (completed or dead-lettered) at `at_ms`, `cycle` after the agent
    /// took it: all its attempts, the waits between them and the runner's own work around
    /// them, so the model learns how long an item keeps an agent from the next one (the
    /// steps' time alone leaves that out and makes the ETA early). `steps` are its last
    /// attempt's steps (index, duration; `None` when skipped).
    pub fn item_finished(
        &self,
        agent: usize,
        cycle: Duration,
        steps: &[(usize, Option<Duration>)],
        at_ms: i64,
    ) {
        let mut inner = self.lock();
        inner.learn_item(cycle, steps, at_ms);
        if let Some(held) = inner.held.get_mut(agent) {
            *held = None;
        }
    }

    /// Scale-out: an item another process's agent finished at `at_ms` (this run's clock),
    /// `cycle` after that agent took it, with its last attempt's `steps`: measured like this
    /// process's own (see [`LiveMetrics::item_finished`]).
    pub fn item_finished_elsewhere(
        &self,
        cycle: Duration,
        steps: &[(usize, Option<Duration>)],
        at_ms: i64,
    ) {
        self.lock().learn_item(cycle, steps, at_ms);
    }

    /// `agent` let go of its item without a duration to learn from (skipped, interrupted);
    /// nothing when it holds none.
    pub fn item_released(&self, agent: usize) {
        if let Some(held) = self.lock().held.get_mut(agent) {
            *held = None;
        }
    }

    /// An item ended (completed, skipped, dead-lettered) having reported these counters (its
    /// sums over its attempts).
    pub fn item_counters(&self, values: &BTreeMap<String, crate::counter::CounterValue>) {
        self.lock().counters.item_ended(values);
    }

    /// The counters' forecasts as of the last refresh.
    pub fn counter_forecasts(&self) -> BTreeMap<String, CounterForecast> {
        self.lock().counter_forecasts.clone()
    }

    /// An agent took an item that had waited `waited` in the queue.
    pub fn queue_wait(&self, waited: Duration) {
        self.lock().queue_wait.record(waited);
    }

    /// An attempt failed.
    pub fn attempt_failed(&self, failure: &Failure<'_>) {
        self.lock().failures.add(failure);
    }

    /// Recomputes the ETA and the stragglers from the items the agents hold, the tracker's
    /// counts and what other processes' agents are doing (scale-out; empty otherwise), as of
    /// `now_ms` (the clock of the times passed in). `wall_ms` is the wall clock now: the views
    /// show the ETA's times (the finish, stalled since) against it, so they are moved onto it
    /// (the two differ after a suspended machine, or on a test's virtual time).
    pub fn refresh(
        &self,
        tracker: &Tracker,
        elsewhere: &Elsewhere,
        now_ms: i64,
        wall_ms: i64,
        run_started_ms: i64,
    ) {
        let progress = tracker.progress();
        let agents = tracker.agent_count() + elsewhere.agents;
        // Only this run's completed and dead-lettered items may feed a rate: never restored
        // ones, never skipped ones (they took no time).
        let finished = progress.completed + progress.dead_lettered;
        let completed_this_run = finished.saturating_sub(progress.restored.min(finished));
        let mut inner = self.lock();
        let unstarted = progress.total.saturating_sub(
            progress.done() + progress.in_flight + elsewhere.in_flight.len() as u64,
        );
        inner.counter_forecasts = inner.counters.forecasts(&tracker.counters(), unstarted);
        let since = |at_ms: i64| Duration::from_millis(now_ms.saturating_sub(at_ms).max(0) as u64);
        // An item in no step gets a step index past the plan's: the item-level model.
        let no_step = inner.model.steps().len();
        let mut in_flight: Vec<InFlight> = inner
            .held
            .iter()
            .enumerate()
            .filter_map(|(agent, held)| {
                let held = held.as_ref()?;
                let (step, step_started_ms) = held.step.unwrap_or((no_step, now_ms));
                Some(InFlight {
                    item: held.item,
                    agent,
                    step,
                    step_elapsed: since(step_started_ms),
                    item_elapsed: since(held.taken_ms),
                })
            })
            .collect();
        // Other processes' items: their step is unknown, so the item-level model again.
        in_flight.extend(elsewhere.in_flight.iter().map(|f| InFlight {
            step: no_step,
            ..*f
        }));
        let input = EtaInput {
            now_ms,
            agents,
            queued: progress.pending,
            in_flight: &in_flight,
            completed_this_run,
            run_started_ms,
            last_completion_ms: inner.last_completion_ms,
            from_history: inner.prior.is_some(),
        };
        // The ETA's clock stops while the job is paused: the time paused is taken out of the
        // run's start and the last completion, so it counts neither in a rate nor toward a stall.
        match (tracker.is_paused(), inner.paused_since_ms) {
            (true, None) => inner.paused_since_ms = Some(now_ms),
            (false, Some(since)) => {
                let paused = now_ms.saturating_sub(since).max(0);
                inner.paused_ms += paused;
                inner.last_completion_ms = inner.last_completion_ms.map(|t| t + paused);
                inner.paused_since_ms = None;
            }
            _ => {}
        }
        let input = EtaInput {
            run_started_ms: run_started_ms.saturating_add(inner.paused_ms),
            last_completion_ms: inner.last_completion_ms,
            ..input
        };
        inner.eta = if progress.total == 0 {
            // The items are not loaded yet: nothing to estimate.
            Eta::WarmingUp {
                completed: 0,
                needed: 3u64.max(agents as u64),
            }
        } else if progress.done() >= progress.total {
            Eta::Done
        } else if inner.paused_since_ms.is_some() {
            Eta::Paused
        } else {
            let model = inner.prior.as_ref().unwrap_or(&inner.model);
            to_wall_clock(estimate(model, &input), wall_ms.saturating_sub(now_ms))
        };
        inner.stragglers = find_stragglers(&inner.model, &in_flight);
    }

    /// The latest ETA.
    pub fn eta(&self) -> Eta {
        self.lock().eta
    }

    /// Everything the views show.
    pub fn view(&self) -> MetricsView {
        let inner = self.lock();
        MetricsView {
            eta: inner.eta,
            items: inner.model.item().summary(),
            steps: inner
                .model
                .steps()
                .iter()
                .map(|s| StepSummary {
                    name: s.name.clone(),
                    durations: s.ran.summary(),
                    skipped: s.skipped,
                })
                .collect(),
            queue_wait: inner.queue_wait.summary(),
            stragglers: inner.stragglers.clone(),
            failures: inner
                .failures
                .sorted()
                .into_iter()
                .take(CLUSTERS_SHOWN)
                .cloned()
                .collect(),
            failed_attempts: inner.failures.total(),
            counters: inner.counter_forecasts.clone(),
        }
    }
}

/// The ETA with its times moved by `shift_ms` (from the metrics' clock onto the wall clock).
fn to_wall_clock(eta: Eta, shift_ms: i64) -> Eta {
    match eta {
        Eta::Estimate(mut e) => {
            e.finish_at_ms = e.finish_at_ms.saturating_add(shift_ms);
            Eta::Estimate(e)
        }
        Eta::Stalled { since_ms } => Eta::Stalled {
            since_ms: since_ms.saturating_add(shift_ms),
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tracker::ItemEnd;

    const S: i64 = 1_000;

    /// Metrics and a tracker after `n` items of 10 s each (one step), on a clock at `now`,
    /// with `total` items in the job.
    fn after_items(n: u64, total: u64, now: i64) -> (LiveMetrics, Tracker) {
        let metrics = LiveMetrics::new(vec!["only".into()], 2);
        let tracker = Tracker::new(total, 2);
        for item in 0..n {
            tracker.attempt_started(0, item, 1);
            metrics.item_taken(0, item, now - 10 * S);
            metrics.step_started(0, 0, now - 10 * S);
            let ten = Duration::from_secs(10);
            metrics.item_finished(0, ten, &[(0, Some(ten))], now);
            tracker.item_finished(0, ItemEnd::Completed, None);
        }
        (metrics, tracker)
    }

    fn p50_ms(eta: Eta) -> u64 {
        match eta {
            Eta::Estimate(e) => e.p50_ms,
            other => panic!("expected an estimate, got {other:?}"),
        }
    }

    #[test]
    fn a_paused_job_says_paused_and_its_pause_never_counts_toward_a_stall() {
        let now = 1_000_000 * S;
        let (metrics, tracker) = after_items(20, 40, now);
        metrics.refresh(&tracker, &Elsewhere::default(), now, now, 0);
        assert!(matches!(metrics.eta(), Eta::Estimate(_)));
        tracker.set_paused(true);
        metrics.refresh(&tracker, &Elsewhere::default(), now, now, 0);
        assert_eq!(metrics.eta(), Eta::Paused);
        // An hour paused: far past 3x the p90 of 10 s items, still `paused`...
        let later = now + 3_600 * S;
        metrics.refresh(&tracker, &Elsewhere::default(), later, later, 0);
        assert_eq!(metrics.eta(), Eta::Paused);
        // ...and once unpaused, an estimate again, not `stalled`.
        tracker.set_paused(false);
        metrics.refresh(&tracker, &Elsewhere::default(), later + S, later + S, 0);
        assert!(
            matches!(metrics.eta(), Eta::Estimate(_)),
            "{:?}",
            metrics.eta()
        );
    }

    #[test]
    fn in_flight_items_are_timed_on_the_callers_clock() {
        // Two items left, both held: the map ends with the later one. Only the times passed
        // in count (the tracker's own clock says these items started just now).
        let now = 1_000_000 * S;
        let (metrics, tracker) = after_items(20, 22, now);
        for (agent, item) in [(0, 20), (1, 21)] {
            tracker.attempt_started(agent, item, 1);
        }
        metrics.item_taken(0, 20, now - 5 * S);
        metrics.step_started(0, 0, now - 5 * S);
        metrics.item_taken(1, 21, now);
        metrics.refresh(&tracker, &Elsewhere::default(), now, now, 0);
        let p50 = p50_ms(metrics.eta());
        assert!(
            (9_500..=10_500).contains(&p50),
            "one item just taken: {p50} ms"
        );
        metrics.item_taken(1, 21, now - 5 * S);
        metrics.step_started(1, 0, now - 5 * S);
        // The wall clock an hour ahead (the machine slept): the same estimate, its finish
        // shown on the wall clock.
        let wall = now + 3_600 * S;
        metrics.refresh(&tracker, &Elsewhere::default(), now, wall, 0);
        let Eta::Estimate(e) = metrics.eta() else {
            panic!("expected an estimate, got {:?}", metrics.eta());
        };
        assert!((4_500..=5_500).contains(&e.p50_ms), "both half done: {e:?}");
        assert_eq!(e.finish_at_ms, wall + e.p50_ms as i64);
    }

    #[test]
    fn held_items_are_stragglers_only_while_in_a_step() {
        let now = 1_000_000 * S;
        let (metrics, tracker) = after_items(20, 100, now);
        tracker.attempt_started(1, 20, 1);
        metrics.item_taken(1, 20, now - 40 * S);
        metrics.step_started(1, 0, now - 30 * S);
        metrics.refresh(&tracker, &Elsewhere::default(), now, now, 0);
        let stragglers = metrics.view().stragglers;
        assert_eq!(stragglers.len(), 1, "{stragglers:?}");
        assert_eq!((stragglers[0].agent, stragglers[0].item), (1, 20));
        assert_eq!(stragglers[0].elapsed_ms, 30_000);
        // Waiting to retry: in flight, in no step (the item-level model), not a straggler.
        metrics.between_attempts(1);
        metrics.refresh(&tracker, &Elsewhere::default(), now, now, 0);
        assert!(metrics.view().stragglers.is_empty());
        assert!(matches!(metrics.eta(), Eta::Estimate(_)));
        // Let go of (interrupted): gone; releasing again, or an agent never seen, is harmless.
        metrics.step_started(1, 0, now - 30 * S);
        metrics.item_released(1);
        metrics.item_released(1);
        metrics.item_released(7);
        metrics.step_started(7, 0, now);
        metrics.refresh(&tracker, &Elsewhere::default(), now, now, 0);
        assert!(metrics.view().stragglers.is_empty());
    }
}
