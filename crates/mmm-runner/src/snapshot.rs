//! What a snapshot records ([`snapshot`]): the tracker's state, the metrics, the rates and the
//! active alerts, with every agent of the job. The owner records one at each heartbeat (spaced
//! out on long runs, see [`SNAPSHOT_SPAN`]) and a last one with the job's final status.

use std::time::Duration;

use serde_json::json;

use crate::Executor;
use crate::map::agent_name;
use crate::others::Others;
use crate::run::Run;
use mmm_core::alerts::Alert;
use mmm_core::job::now_ms;
use mmm_core::tracker::{AgentSnapshot, Tracker};

/// What a snapshot records: the tracker's state, the metrics and the active alerts; the agents
/// are this process's (named with `agent_prefix`), then (scale-out) the other processes' ones
/// (`others`), each with its name.
pub(crate) fn snapshot<E: Executor>(
    run: &Run<E>,
    agent_prefix: Option<&str>,
    others: Option<&Others>,
    agents: Vec<AgentSnapshot>,
    alerts: Vec<Alert>,
) -> serde_json::Value {
    let tracker = &run.tracker;
    let rules = &run.plan.alerts;
    let own = agents.len();
    let mut named: Vec<(String, AgentSnapshot)> = agents
        .into_iter()
        .map(|a| (agent_name(agent_prefix, a.index), a))
        .collect();
    if let Some(others) = others {
        named.extend(others.agents(own, now_ms()));
    }
    let agents: Vec<serde_json::Value> = named
        .into_iter()
        .map(|(name, agent)| {
            let mut row = serde_json::to_value(agent).unwrap_or_default();
            row["name"] = json!(name);
            row
        })
        .collect();
    json!({
        "progress": tracker.progress(),
        "agents": agents,
        "counters": tracker.counters(),
        "window": {
            "seconds": rules.window.as_secs(),
            "counts": tracker.window(rules.window.as_secs() as u32),
        },
        "alerts": alerts,
        "metrics": run.metrics.view(),
        "rates": rates(tracker, run.started.elapsed()),
    })
}

/// Snapshots are spaced at least `elapsed / SNAPSHOT_SPAN` apart: a run keeps about
/// `SNAPSHOT_SPAN * (1 + ln(elapsed / SNAPSHOT_SPAN s))` of them at one a second (10,000 after
/// 50 hours), so the record of a long job stays small while charts keep their shape.
pub const SNAPSHOT_SPAN: u32 = 1_800;

/// How far back "throughput now" looks.
pub const THROUGHPUT_WINDOW_SECONDS: u32 = 60;

/// Throughput now (items finished per second over the last [`THROUGHPUT_WINDOW_SECONDS`]
/// whole seconds, or since the run started when that is shorter), the run's average, and the
/// share of finished items that completed. Items restored by a resume never count in a rate.
fn rates(tracker: &Tracker, elapsed: Duration) -> serde_json::Value {
    let p = tracker.progress();
    let seconds = THROUGHPUT_WINDOW_SECONDS.min(tracker.second().max(1));
    let recent = tracker.window(seconds);
    let average = if elapsed.as_secs_f64() > 0.0 {
        p.done_this_run() as f64 / elapsed.as_secs_f64()
    } else {
        0.0
    };
    let judged = p.completed + p.dead_lettered;
    json!({
        "throughput_now": recent.finished as f64 / f64::from(seconds),
        "throughput_now_window_s": seconds,
        "throughput_average": average,
        "success_rate": (judged > 0).then(|| p.completed as f64 / judged as f64),
        "failed_attempts": p.failed_attempts,
        "retries": p.retries,
        // Custom counters per second over this run (commits/s under worktree isolation).
        "counters_per_second": tracker
            .counters()
            .into_iter()
            .map(|(name, value)| {
                let rate = match elapsed.as_secs_f64() {
                    s if s > 0.0 => value as f64 / s,
                    _ => 0.0,
                };
                (name, rate)
            })
            .collect::<std::collections::BTreeMap<_, _>>(),
    })
}
