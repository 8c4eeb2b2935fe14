//! The metrics of a running job, fed by the runner and read by the views: the duration model,
//! the failure clusters, and the ETA and stragglers recomputed once a heartbeat.
//!
//! One lock around it all: it is written once per finished attempt and read a few times a
//! second, never on a path where an agent waits on another (the tracker stays the lock-free
//! live state; this is the slower analytics beside it).

use std::sync::Mutex;
use std::time::Duration;

use serde::Serialize;

use super::{
    DurationModel, DurationStats, DurationSummary, Eta, EtaInput, Failure, FailureCluster,
    FailureClusters, InFlight, Straggler, estimate, find_stragglers,
};
use crate::tracker::{AgentPhase, Tracker};

/// How many failure clusters a snapshot carries (the largest).
const CLUSTERS_SHOWN: usize = 20;

/// The analytics of one run.
pub struct LiveMetrics {
    inner: Mutex<Inner>,
}

struct Inner {
    model: DurationModel,
    queue_wait: DurationStats,
    failures: FailureClusters,
    last_completion_ms: Option<i64>,
    eta: Eta,
    stragglers: Vec<Straggler>,
}

/// What other processes' agents are doing (scale-out: `mmm worker`s sharing the owner's job),
/// as the owner last read it from the job's event log.
#[derive(Debug, Clone, Default)]
pub struct Elsewhere {
    /// Their agents that have not finished.
    pub agents: usize,
    /// Their items in flight (steps unknown); `agent` numbers continue after the owner's own.
    pub in_flight: Vec<InFlight>,
}

/// Durations of one step, for views.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StepSummary {
    /// The step's name.
    pub name: String,
    /// Its runs' durations (none before the first).
    pub durations: Option<DurationSummary>,
    /// Times its `when:` skipped it.
    pub skipped: u64,
}

/// What the views and the snapshots show of the metrics.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct MetricsView {
    /// The estimate of the time left, as of the last heartbeat.
    pub eta: Eta,
    /// Item durations (all attempts of an item, completed or dead-lettered) this run.
    pub items: Option<DurationSummary>,
    /// Per-step durations.
    pub steps: Vec<StepSummary>,
    /// How long items waited in the queue for a free agent this run (from being queued, at
    /// the map's start or when a resume paged them in, to an agent taking them).
    pub queue_wait: Option<DurationSummary>,
    /// Items running past the p95 of their step, most overdue first.
    pub stragglers: Vec<Straggler>,
    /// Failed attempts grouped by cause, largest first (at most 20).
    pub failures: Vec<FailureCluster>,
    /// Failed attempts in all.
    pub failed_attempts: u64,
}

impl LiveMetrics {
    /// Metrics for a plan with these steps, worked by `agents` agents.
    pub fn new(step_names: Vec<String>, agents: usize) -> Self {
        LiveMetrics {
            inner: Mutex::new(Inner {
                model: DurationModel::new(step_names, agents),
                queue_wait: DurationStats::new(),
                failures: FailureClusters::new(),
                last_completion_ms: None,
                eta: Eta::WarmingUp {
                    completed: 0,
                    needed: 3u64.max(agents as u64),
                },
                stragglers: Vec::new(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// An item finished (completed or dead-lettered) after `total` over all its attempts;
    /// `steps` are its last attempt's steps (index, duration; `None` when skipped).
    pub fn item_finished(&self, total: Duration, steps: &[(usize, Option<Duration>)], at_ms: i64) {
        let mut inner = self.lock();
        inner.model.record_item(total);
        for (step, duration) in steps {
            inner.model.record_step(*step, *duration);
        }
        // Never backwards: items finished elsewhere are folded in a little later.
        inner.last_completion_ms = inner.last_completion_ms.max(Some(at_ms));
    }

    /// An agent took an item that had waited `waited` in the queue.
    pub fn queue_wait(&self, waited: Duration) {
        self.lock().queue_wait.record(waited);
    }

    /// An attempt failed.
    pub fn attempt_failed(&self, failure: &Failure<'_>) {
        self.lock().failures.add(failure);
    }

    /// Recomputes the ETA and the stragglers from the tracker's agents and counts, and from
    /// what other processes' agents are doing (scale-out; empty otherwise).
    pub fn refresh(
        &self,
        tracker: &Tracker,
        elsewhere: &Elsewhere,
        now_ms: i64,
        run_started_ms: i64,
    ) {
        let progress = tracker.progress();
        let mut in_flight: Vec<InFlight> = tracker
            .agents()
            .iter()
            .filter(|a| a.phase == AgentPhase::Running)
            .filter_map(|a| {
                Some(InFlight {
                    item: a.item?,
                    agent: a.index,
                    step: Some(a.step?),
                    step_elapsed: a.in_phase,
                    item_elapsed: a.item_elapsed.unwrap_or_default(),
                })
            })
            .collect();
        in_flight.extend_from_slice(&elsewhere.in_flight);
        let agents = tracker.agent_count() + elsewhere.agents;
        // Only this run's completed and dead-lettered items may feed a rate: never restored
        // ones, never skipped ones (they took no time).
        let finished = progress.completed + progress.dead_lettered;
        let completed_this_run = finished.saturating_sub(progress.restored.min(finished));
        let mut inner = self.lock();
        let input = EtaInput {
            now_ms,
            agents,
            queued: progress.pending,
            in_flight: &in_flight,
            completed_this_run,
            run_started_ms,
            last_completion_ms: inner.last_completion_ms,
        };
        inner.eta = if progress.total == 0 {
            // The items are not loaded yet: nothing to estimate.
            Eta::WarmingUp {
                completed: 0,
                needed: 3u64.max(agents as u64),
            }
        } else if progress.done() >= progress.total {
            Eta::Done
        } else {
            estimate(&inner.model, &input)
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
        }
    }
}
