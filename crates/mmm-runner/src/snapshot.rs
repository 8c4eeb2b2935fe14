//! What a snapshot records ([`snapshot`]): the tracker's state, the metrics, the rates and the
//! active alerts, with every agent of the job. The owner records one at each heartbeat (spaced
//! out on long runs, see [`SNAPSHOT_SPAN`]) and a last one with the job's final status.

use crate::Executor;
use crate::map::agent_name;
use crate::others::Others;
use crate::run::Run;
use mmm_core::alerts::Alert;
use mmm_core::job::now_ms;
use mmm_core::snapshot::{AgentRow, Rates, SNAPSHOT_VERSION, Snapshot, WindowSpan};
use mmm_core::tracker::AgentSnapshot;

/// What a snapshot records: the tracker's state, the metrics and the active alerts; the agents
/// are this process's (named with `agent_prefix`), then (scale-out) the other processes' ones
/// (`others`), each with its name.
pub(crate) fn snapshot<E: Executor>(
    run: &Run<E>,
    agent_prefix: Option<&str>,
    others: Option<&Others>,
    agents: Vec<AgentSnapshot>,
    alerts: Vec<Alert>,
) -> Snapshot {
    let tracker = &run.tracker;
    let window = run.plan.alerts.window.as_secs();
    let own = agents.len();
    let mut rows: Vec<AgentRow> = agents
        .into_iter()
        .map(|agent| AgentRow {
            name: Some(agent_name(agent_prefix, agent.index)),
            agent,
        })
        .collect();
    if let Some(others) = others {
        rows.extend(
            others
                .agents(own, now_ms())
                .into_iter()
                .map(|(name, agent)| AgentRow {
                    name: Some(name),
                    agent,
                }),
        );
    }
    Snapshot {
        version: SNAPSHOT_VERSION,
        progress: Some(tracker.progress()),
        agents: rows,
        counters: tracker.counters(),
        window: Some(WindowSpan {
            seconds: window,
            counts: tracker.window(window as u32),
        }),
        alerts,
        metrics: Some(run.metrics.view()),
        rates: Some(Rates::of(tracker, run.started.elapsed())),
    }
}

/// Snapshots are spaced at least `elapsed / SNAPSHOT_SPAN` apart: a run keeps about
/// `SNAPSHOT_SPAN * (1 + ln(elapsed / SNAPSHOT_SPAN s))` of them at one a second (10,000 after
/// 50 hours), so the record of a long job stays small while charts keep their shape.
pub const SNAPSHOT_SPAN: u32 = 1_800;
