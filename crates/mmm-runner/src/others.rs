//! Scale-out: what the owner of a job knows of the other processes' agents (`mmm worker`s
//! sharing its map), so that its snapshots (and so `mmm progress`, the dashboard and the
//! exports) show the whole job: counts, rates, ETA, durations and every agent on every host.
//!
//! The one source is the job's event log, which every process writes in the same transaction
//! as its item changes: once a heartbeat the owner reads the events after the last one it saw
//! and folds those of agents that are not its own into its tracker (counts and the per-second
//! window, so the rates count every host's items) and its metrics (item and step durations
//! from `item_completed` / `item_dead_lettered`, failure clusters from `attempt_failed`), and
//! keeps a row per other agent. Items finished before the owner started following (a resume)
//! are not in a rate: the owner counts them as restored, from the job's counts.
//!
//! The counters other agents' steps report (`step_reported` with a `counter`, which names the
//! item, not the agent) are added to the owner's tracker, each event once (the log is read
//! after the last event seen), so the budgets the owner checks and the snapshots' counters are
//! the job's totals; each item's sums go to the counters' forecasts when the item ends. An
//! event is another agent's when that agent holds the item it names (its `attempt_started`
//! comes first in the log): a counter reported by the owner's own agents is counted already.
//!
//! The log records no step starts: another process's agent shows its item and attempt but no
//! step, and is never a straggler; CPU and memory are only sampled for the owner's own.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use mmm_core::counter::CounterValue;
use mmm_core::event::{Event, ItemCompleted, StepReported};
use mmm_core::job::AgentState;
use mmm_core::job::AttemptOutcome;
use mmm_core::metrics::{Elsewhere, Failure, FailureKind, InFlight, LiveMetrics};
use mmm_core::tracker::{AgentSnapshot, ItemEnd, Tracker};
use mmm_store::EventRecord;

/// Another process's agent, as its events tell.
#[derive(Debug, Clone)]
struct Agent {
    name: String,
    phase: AgentState,
    item: Option<u64>,
    item_key: Option<String>,
    attempt: u32,
    /// When its current item's first attempt started, epoch ms.
    item_started_ms: Option<i64>,
    /// When it entered its phase, epoch ms.
    since_ms: i64,
    /// Its last event, epoch ms.
    last_event_ms: i64,
    last_exit_code: Option<i32>,
    items_done: u64,
    message: Option<String>,
    progress: Option<f32>,
    /// Its current item's sums of the counters its steps reported (all its attempts).
    spent: BTreeMap<String, CounterValue>,
}

impl Agent {
    fn new(name: &str, at: i64) -> Agent {
        Agent {
            name: name.to_string(),
            phase: AgentState::Queued,
            item: None,
            item_key: None,
            attempt: 0,
            item_started_ms: None,
            since_ms: at,
            last_event_ms: at,
            last_exit_code: None,
            items_done: 0,
            message: None,
            progress: None,
            spent: BTreeMap::new(),
        }
    }

    fn enter(&mut self, phase: AgentState, at: i64) {
        self.phase = phase;
        self.since_ms = at;
    }

    /// Its item ended: it holds none, and hands back the item's sums of the counters.
    fn item_ended(&mut self, phase: AgentState, at: i64) -> BTreeMap<String, CounterValue> {
        self.enter(phase, at);
        self.item = None;
        self.item_key = None;
        self.item_started_ms = None;
        self.message = None;
        self.progress = None;
        std::mem::take(&mut self.spent)
    }

    /// Its process: the name before the agent's number (`NAME/N`).
    fn process(&self) -> &str {
        self.name.rsplit_once('/').map_or(&self.name, |(p, _)| p)
    }
}

/// The other processes' agents of one job, and where the owner is in its event log.
#[derive(Debug)]
pub(crate) struct Others {
    /// The last event folded in (or skipped).
    after: i64,
    /// This process's own agents: the runner counted their items already.
    own: HashSet<String>,
    /// Other agents, in the order they were first seen.
    agents: Vec<Agent>,
    by_name: HashMap<String, usize>,
}

impl Others {
    /// Follows the log after event `after`, skipping the events of the agents named `own`.
    pub(crate) fn new(after: i64, own: impl IntoIterator<Item = String>) -> Others {
        Others {
            after,
            own: own.into_iter().collect(),
            agents: Vec::new(),
            by_name: HashMap::new(),
        }
    }

    /// The last event seen: read the next ones after it.
    pub(crate) fn after(&self) -> i64 {
        self.after
    }

    fn agent(&mut self, name: &str, at: i64) -> &mut Agent {
        let index = match self.by_name.get(name) {
            Some(&index) => index,
            None => {
                self.agents.push(Agent::new(name, at));
                self.by_name.insert(name.to_string(), self.agents.len() - 1);
                self.agents.len() - 1
            }
        };
        let agent = &mut self.agents[index];
        agent.last_event_ms = agent.last_event_ms.max(at);
        agent
    }

    /// The other agent working on the item `key`, if one is.
    fn holder(&mut self, key: Option<&str>) -> Option<&mut Agent> {
        let key = key?;
        self.agents
            .iter_mut()
            .find(|a| a.item_key.as_deref() == Some(key))
    }

    /// Folds `events` (the log's next events, in order) into `tracker` and `metrics`.
    /// `clock_offset_ms` moves the events' times (wall clocks) onto the metrics' clock.
    pub(crate) fn fold(
        &mut self,
        events: &[EventRecord],
        tracker: &Tracker,
        metrics: &LiveMetrics,
        clock_offset_ms: i64,
    ) {
        for event in events {
            self.after = self.after.max(event.seq);
            self.fold_one(event, tracker, metrics, clock_offset_ms);
        }
    }

    fn fold_one(
        &mut self,
        record: &EventRecord,
        tracker: &Tracker,
        metrics: &LiveMetrics,
        clock_offset_ms: i64,
    ) {
        let at = record.at;
        let key = record.item_key.as_deref();
        // Events that name no agent: only those about an item another agent holds matter.
        let Some(name) = record.event.agent() else {
            match &record.event {
                Event::ItemRequeued(_) => {
                    // Its lease ran out: the process that held it is gone (or cut off, and
                    // then refused): none of its agents will finish anything.
                    if let Some(process) = self.holder(key).map(|a| a.process().to_string()) {
                        // Their items are not over (another agent runs them again): what they
                        // spent stays in the totals but is no item's.
                        for agent in self.agents.iter_mut().filter(|a| a.process() == process) {
                            agent.item_ended(AgentState::Completed, at);
                        }
                    }
                }
                Event::StepReported(StepReported::Message {
                    progress, message, ..
                }) => {
                    if let Some(agent) = self.holder(key) {
                        agent.last_event_ms = agent.last_event_ms.max(at);
                        agent.message = Some(message.clone());
                        if progress.is_some() {
                            agent.progress = *progress;
                        }
                    }
                }
                Event::StepReported(StepReported::Counter { counter, delta, .. }) => {
                    if let Some(agent) = self.holder(key) {
                        agent.last_event_ms = agent.last_event_ms.max(at);
                        *agent.spent.entry(counter.clone()).or_default() += *delta;
                        tracker.add_to_counter(counter, *delta);
                    }
                }
                Event::StepReported(_) => {
                    if let Some(agent) = self.holder(key) {
                        agent.last_event_ms = agent.last_event_ms.max(at);
                    }
                }
                _ => {}
            }
            return;
        };
        if self.own.contains(name) {
            return;
        }
        let name = name.to_string();
        // A failure as the failure clusters take it; the log keeps the attempt's one-line
        // error, not its stderr tail.
        let failure = |metrics: &LiveMetrics,
                       outcome: Option<AttemptOutcome>,
                       exit_code: Option<i32>,
                       error: Option<&str>| {
            metrics.attempt_failed(&Failure {
                item_key: key.unwrap_or_default(),
                item_value: None,
                kind: FailureKind::from_attempt(outcome, exit_code),
                output: error.unwrap_or_default(),
                at_ms: at,
            });
        };
        match &record.event {
            Event::AgentStarted(_) => {
                self.agent(&name, at).enter(AgentState::Queued, at);
            }
            Event::AgentFinished(_) => {
                self.agent(&name, at).item_ended(AgentState::Completed, at);
            }
            Event::AttemptStarted(started) => {
                let agent = self.agent(&name, at);
                let same_item = agent.item_key.is_some() && agent.item_key.as_deref() == key;
                if !same_item {
                    agent.item_started_ms = Some(at);
                    agent.item_key = key.map(str::to_string);
                    agent.message = None;
                    agent.progress = None;
                }
                agent.item = Some(started.item);
                agent.attempt = started.attempt;
                agent.enter(AgentState::Running, at);
            }
            Event::AttemptFailed(failed) => {
                tracker.attempt_ended(failed.outcome.unwrap_or(AttemptOutcome::Failed));
                tracker.retrying_elsewhere();
                failure(
                    metrics,
                    failed.outcome,
                    failed.exit_code,
                    failed.error.as_deref(),
                );
                let agent = self.agent(&name, at);
                agent.last_exit_code = failed.exit_code.or(agent.last_exit_code);
                agent.enter(AgentState::Retrying, at);
            }
            Event::ItemCompleted(ItemCompleted {
                duration_us,
                steps_us,
                ..
            }) => {
                tracker.attempt_ended(AttemptOutcome::Succeeded);
                tracker.item_finished_elsewhere(ItemEnd::Completed);
                if let Some(duration_us) = duration_us {
                    let steps_us = steps_us.as_deref().unwrap_or_default();
                    self.learn(metrics, *duration_us, steps_us, at + clock_offset_ms);
                }
                let agent = self.agent(&name, at);
                agent.items_done += 1;
                metrics.item_counters(&agent.item_ended(AgentState::Queued, at));
            }
            Event::ItemSkipped(_) => {
                tracker.attempt_ended(AttemptOutcome::Succeeded);
                tracker.item_finished_elsewhere(ItemEnd::Skipped);
                let agent = self.agent(&name, at);
                agent.items_done += 1;
                metrics.item_counters(&agent.item_ended(AgentState::Queued, at));
            }
            Event::ItemDeadLettered(dead) => {
                tracker.attempt_ended(dead.outcome);
                failure(
                    metrics,
                    Some(dead.outcome),
                    dead.exit_code,
                    dead.error.as_deref(),
                );
                tracker.item_finished_elsewhere(ItemEnd::DeadLettered);
                self.learn(
                    metrics,
                    dead.duration_us,
                    &dead.steps_us,
                    at + clock_offset_ms,
                );
                let agent = self.agent(&name, at);
                agent.items_done += 1;
                agent.last_exit_code = dead.exit_code.or(agent.last_exit_code);
                metrics.item_counters(&agent.item_ended(AgentState::DeadLettered, at));
            }
            _ => {}
        }
    }

    /// A finished item's cycle and steps (µs, as its event has them) into the metrics.
    fn learn(&self, metrics: &LiveMetrics, duration_us: u64, steps_us: &[Option<u64>], at: i64) {
        let steps: Vec<(usize, Option<Duration>)> = steps_us
            .iter()
            .enumerate()
            .map(|(i, us)| (i, us.map(Duration::from_micros)))
            .collect();
        metrics.item_finished_elsewhere(Duration::from_micros(duration_us), &steps, at);
    }

    /// The other agents that have not finished.
    pub(crate) fn working(&self) -> usize {
        self.agents
            .iter()
            .filter(|a| a.phase != AgentState::Completed)
            .count()
    }

    /// Items the other agents have in flight.
    pub(crate) fn in_flight(&self) -> u64 {
        self.agents.iter().filter(|a| a.item.is_some()).count() as u64
    }

    /// The other agents as snapshot rows, numbered from `first_index` (after the owner's own),
    /// with their names, as of `now_ms`.
    pub(crate) fn agents(&self, first_index: usize, now_ms: i64) -> Vec<(String, AgentSnapshot)> {
        let since = |ms: i64| Duration::from_millis(now_ms.saturating_sub(ms).max(0) as u64);
        self.agents
            .iter()
            .enumerate()
            .map(|(i, a)| {
                let row = AgentSnapshot {
                    index: first_index + i,
                    state: a.phase,
                    item: a.item,
                    step: None,
                    attempt: a.attempt,
                    progress: a.progress,
                    item_elapsed: a.item_started_ms.map(since),
                    in_phase: since(a.since_ms),
                    last_exit_code: a.last_exit_code,
                    items_done: a.items_done,
                    quiet: since(a.last_event_ms),
                    message: a.message.clone(),
                    cpu_percent: None,
                    rss_bytes: None,
                };
                (a.name.clone(), row)
            })
            .collect()
    }

    /// What the ETA needs of the other agents, numbered from `first_index`, as of `now_ms`.
    pub(crate) fn elsewhere(&self, first_index: usize, now_ms: i64) -> Elsewhere {
        let since = |ms: i64| Duration::from_millis(now_ms.saturating_sub(ms).max(0) as u64);
        Elsewhere {
            agents: self.working(),
            in_flight: self
                .agents
                .iter()
                .enumerate()
                .filter_map(|(i, a)| {
                    Some(InFlight {
                        item: a.item?,
                        agent: first_index + i,
                        // Unknown; `LiveMetrics::refresh` uses the item-level model.
                        step: usize::MAX,
                        step_elapsed: since(a.since_ms),
                        item_elapsed: a.item_started_ms.map(since).unwrap_or_default(),
                    })
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mmm_core::job::JobId;
    use serde_json::json;

    /// An event as the store reads it back; the payload must read as the kind's.
    fn event(
        seq: i64,
        at: i64,
        kind: &str,
        key: Option<&str>,
        payload: serde_json::Value,
    ) -> EventRecord {
        let event = Event::from_parts(kind, payload);
        assert!(event.kind().is_some(), "{event:?} does not read");
        EventRecord {
            seq,
            job: JobId::new(),
            at,
            item_key: key.map(str::to_string),
            event,
        }
    }

    fn fixture() -> (Others, Tracker, LiveMetrics) {
        let tracker = Tracker::new(10, 1);
        let metrics = LiveMetrics::new(vec!["work".into()], 1);
        (Others::new(5, ["agent-1".to_string()]), tracker, metrics)
    }

    #[test]
    fn other_agents_items_count_in_rates_and_durations_but_own_ones_do_not_twice() {
        let (mut others, tracker, metrics) = fixture();
        let events = [
            event(6, 1_000, "agent_started", None, json!({ "agent": "w:7/1" })),
            event(
                7,
                1_000,
                "attempt_started",
                Some("a"),
                json!({ "attempt": 1, "agent": "w:7/1", "item": 0 }),
            ),
            event(
                8,
                1_000,
                "attempt_started",
                Some("b"),
                json!({ "attempt": 1, "agent": "agent-1", "item": 1 }),
            ),
            event(
                9,
                1_400,
                "item_completed",
                Some("a"),
                json!({ "attempt": 1, "agent": "w:7/1", "duration_us": 400_000, "steps_us": [400_000] }),
            ),
            // The owner's own item: the runner counted it already.
            event(
                10,
                1_500,
                "item_completed",
                Some("b"),
                json!({ "attempt": 1, "agent": "agent-1", "duration_us": 500_000, "steps_us": [500_000] }),
            ),
            event(
                11,
                1_500,
                "attempt_started",
                Some("c"),
                json!({ "attempt": 1, "agent": "w:7/1", "item": 2 }),
            ),
            event(
                12,
                1_900,
                "attempt_failed",
                Some("c"),
                json!({ "attempt": 1, "agent": "w:7/1", "outcome": "failed", "error": "exit 3", "exit_code": 3 }),
            ),
            event(
                13,
                2_000,
                "attempt_started",
                Some("c"),
                json!({ "attempt": 2, "agent": "w:7/1", "item": 2 }),
            ),
        ];
        others.fold(&events, &tracker, &metrics, 0);
        assert_eq!(others.after(), 13);
        let p = tracker.progress();
        assert_eq!((p.completed, p.restored, p.done_this_run()), (1, 0, 1));
        assert_eq!((p.failed_attempts, p.retries), (1, 1));
        let view = metrics.view();
        assert_eq!(view.items.map(|d| d.count), Some(1));
        assert_eq!(view.steps[0].durations.as_ref().map(|d| d.count), Some(1));
        assert_eq!(view.failed_attempts, 1);

        assert_eq!(others.in_flight(), 1);
        let rows = others.agents(1, 3_000);
        assert_eq!(
            rows.len(),
            1,
            "the owner's agent is not another's: {rows:?}"
        );
        let (name, row) = &rows[0];
        assert_eq!(name, "w:7/1");
        assert_eq!(
            (row.index, row.state, row.item, row.attempt, row.items_done),
            (1, AgentState::Running, Some(2), 2, 1)
        );
        // The item's time counts from its first attempt, the phase's from the last event.
        assert_eq!(row.item_elapsed, Some(Duration::from_millis(1_500)));
        assert_eq!(row.in_phase, Duration::from_millis(1_000));
        assert_eq!(row.last_exit_code, Some(3));
        let elsewhere = others.elsewhere(1, 3_000);
        assert_eq!(elsewhere.agents, 1);
        assert_eq!(elsewhere.in_flight.len(), 1);
        assert_eq!(elsewhere.in_flight[0].item, 2);
    }

    #[test]
    fn a_lease_expiry_retires_every_agent_of_the_dead_process() {
        let (mut others, tracker, metrics) = fixture();
        let events = [
            event(
                6,
                1_000,
                "attempt_started",
                Some("a"),
                json!({ "attempt": 1, "agent": "dead:1/1", "item": 0 }),
            ),
            event(
                7,
                1_000,
                "agent_started",
                None,
                json!({ "agent": "dead:1/2" }),
            ),
            event(
                8,
                1_000,
                "attempt_started",
                Some("b"),
                json!({ "attempt": 1, "agent": "live:2/1", "item": 1 }),
            ),
            event(
                9,
                1_100,
                "step_reported",
                Some("b"),
                json!({ "step": "work", "progress": 0.5, "message": "half" }),
            ),
            event(
                10,
                9_000,
                "item_requeued",
                Some("a"),
                json!({ "reason": "lease_expired" }),
            ),
        ];
        others.fold(&events, &tracker, &metrics, 0);
        let rows = others.agents(0, 9_500);
        let phases: Vec<(&str, AgentState)> =
            rows.iter().map(|(n, r)| (n.as_str(), r.state)).collect();
        assert_eq!(
            phases,
            [
                ("dead:1/1", AgentState::Completed),
                ("dead:1/2", AgentState::Completed),
                ("live:2/1", AgentState::Running),
            ]
        );
        assert_eq!(rows[2].1.message.as_deref(), Some("half"));
        assert_eq!(rows[2].1.progress, Some(0.5));
        assert_eq!(others.in_flight(), 1);
        assert_eq!(others.elsewhere(0, 9_500).agents, 1);
        assert_eq!(others.working(), 1);
        assert_eq!(tracker.progress().done(), 0);
    }

    #[test]
    fn other_agents_counters_are_added_once_and_the_owners_own_not_at_all() {
        let (mut others, tracker, metrics) = fixture();
        tracker.add_to_counter("cost_usd", CounterValue::parse("0.5").unwrap());
        let cost = |seq, key, delta: f64| {
            event(
                seq,
                1_000,
                "step_reported",
                Some(key),
                json!({ "step": "ask", "counter": "cost_usd", "delta": delta }),
            )
        };
        let mut events = Vec::new();
        for (i, key) in ["a", "b", "c"].into_iter().enumerate() {
            let seq = 6 + 3 * i as i64;
            events.push(event(
                seq,
                1_000,
                "attempt_started",
                Some(key),
                json!({ "attempt": 1, "agent": "w:7/1", "item": i }),
            ));
            events.push(cost(seq + 1, key, 0.0125));
            events.push(event(
                seq + 2,
                1_100,
                "item_completed",
                Some(key),
                json!({ "attempt": 1, "agent": "w:7/1", "duration_us": 100_000, "steps_us": [100_000] }),
            ));
        }
        // The owner's own agent's report, on an item no other agent holds: counted already.
        events.push(event(
            15,
            1_200,
            "attempt_started",
            Some("d"),
            json!({ "attempt": 1, "agent": "agent-1", "item": 3 }),
        ));
        events.push(cost(16, "d", 0.5));
        others.fold(&events, &tracker, &metrics, 0);
        assert_eq!(
            tracker.counters()["cost_usd"],
            CounterValue::parse("0.5375").unwrap()
        );
        assert_eq!(others.after(), 16, "the next read starts after them");
        // The three items' sums feed the forecast: 0.0125 each over the 7 items left.
        metrics.refresh(&tracker, &Elsewhere::default(), 2_000, 2_000, 0);
        let forecast = metrics.counter_forecasts()["cost_usd"];
        assert!((forecast.per_item - 0.0125).abs() < 1e-12, "{forecast:?}");
    }
}
