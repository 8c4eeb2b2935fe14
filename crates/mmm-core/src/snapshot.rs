//! A snapshot: what the runner records of a running job at a heartbeat (its progress, every
//! agent, counters, the recent window, active alerts, the metrics and rates), the one type the
//! runner writes and every view reads (the terminal viewer, the web API, `/metrics`, the
//! reports, health).
//!
//! Snapshots are durable, so they carry a [`Snapshot::version`]; those written before the
//! version was recorded read as version 1, which has the same parts. Reading is part by part:
//! a part of a shape this version cannot read (written by a newer mmm, or damaged) is left out
//! alone, so a view still shows the rest instead of a frame of zeros.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};

use crate::alerts::Alert;
use crate::metrics::MetricsView;
use crate::tracker::{AgentSnapshot, Progress, Tracker, WindowCounts};

/// The version this mmm writes. 1: snapshots without a `version` (the same parts).
pub const SNAPSHOT_VERSION: u32 = 2;

/// How far back "throughput now" looks.
pub const THROUGHPUT_WINDOW_SECONDS: u32 = 60;

/// One job at one heartbeat.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The format's version ([`SNAPSHOT_VERSION`] when written by this mmm).
    #[serde(default = "unversioned")]
    pub version: u32,
    /// The live counts.
    #[serde(
        default,
        deserialize_with = "part",
        skip_serializing_if = "Option::is_none"
    )]
    pub progress: Option<Progress>,
    /// Every agent: this process's, then (scale-out) the other processes' ones.
    #[serde(default, deserialize_with = "rows")]
    pub agents: Vec<AgentRow>,
    /// Custom counters reported by steps (`mmm report --counter`), job-wide sums.
    #[serde(default, deserialize_with = "part")]
    pub counters: BTreeMap<String, crate::counter::CounterValue>,
    /// Finished items and attempts over the alert rules' window.
    #[serde(
        default,
        deserialize_with = "part",
        skip_serializing_if = "Option::is_none"
    )]
    pub window: Option<WindowSpan>,
    /// The alerts active at the heartbeat.
    #[serde(default, deserialize_with = "rows")]
    pub alerts: Vec<Alert>,
    /// Durations, the ETA, stragglers and failure clusters.
    #[serde(
        default,
        deserialize_with = "part",
        skip_serializing_if = "Option::is_none"
    )]
    pub metrics: Option<MetricsView>,
    /// Throughput and rates.
    #[serde(
        default,
        deserialize_with = "part",
        skip_serializing_if = "Option::is_none"
    )]
    pub rates: Option<Rates>,
}

fn unversioned() -> u32 {
    1
}

/// A part that does not read as `T` is left out (`T::default()`), alone.
fn part<'de, D: Deserializer<'de>, T: DeserializeOwned + Default>(
    deserializer: D,
) -> Result<T, D::Error> {
    let value = serde_json::Value::deserialize(deserializer)?;
    Ok(serde_json::from_value(value).unwrap_or_default())
}

/// A list whose rows that do not read as `T` are left out, each alone (an agent in a state a
/// newer mmm added, say), so the others still show.
fn rows<'de, D: Deserializer<'de>, T: DeserializeOwned>(
    deserializer: D,
) -> Result<Vec<T>, D::Error> {
    let value = serde_json::Value::deserialize(deserializer)?;
    Ok(match value {
        serde_json::Value::Array(rows) => rows
            .into_iter()
            .filter_map(|row| serde_json::from_value(row).ok())
            .collect(),
        _ => Vec::new(),
    })
}

impl Snapshot {
    /// Reads a snapshot from its JSON. Never fails: what cannot be read is left out (see the
    /// module's documentation).
    pub fn from_json(value: serde_json::Value) -> Snapshot {
        serde_json::from_value(value).unwrap_or_default()
    }

    /// The snapshot's JSON, as stored and served.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("a snapshot is plain data that always serialises")
    }

    /// The agent row of `name`, if the snapshot has it.
    pub fn agent(&self, name: &str) -> Option<&AgentRow> {
        self.agents.iter().find(|row| row.name() == name)
    }
}

impl Default for Snapshot {
    /// A snapshot with nothing in it, of this version.
    fn default() -> Snapshot {
        Snapshot {
            version: SNAPSHOT_VERSION,
            progress: None,
            agents: Vec::new(),
            counters: BTreeMap::new(),
            window: None,
            alerts: Vec::new(),
            metrics: None,
            rates: None,
        }
    }
}

/// One agent in a snapshot: the tracker's view of it and its name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentRow {
    /// What the agent was doing.
    #[serde(flatten)]
    pub agent: AgentSnapshot,
    /// As attempts record it (`agent-N`, or `NAME/N` for a worker's); snapshots written
    /// before names were recorded have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl AgentRow {
    /// The agent's name, as attempts record it.
    pub fn name(&self) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| format!("agent-{}", self.agent.index + 1))
    }
}

/// Counts over a span of the per-second window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct WindowSpan {
    /// How many seconds the counts cover.
    pub seconds: u64,
    /// The counts.
    pub counts: WindowCounts,
}

/// Throughput now and on average, and the share of finished items that completed. Items a
/// resume restored never count in a rate.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Rates {
    /// Items finished per second over the last [`Rates::throughput_now_window_s`] seconds.
    pub throughput_now: f64,
    /// The span "now" covers: [`THROUGHPUT_WINDOW_SECONDS`], or the run's age when shorter.
    pub throughput_now_window_s: u32,
    /// Items finished per second over this run.
    pub throughput_average: f64,
    /// Completed over completed and dead-lettered; none before any finished.
    pub success_rate: Option<f64>,
    /// Attempts that failed.
    pub failed_attempts: u64,
    /// Attempts that were retries.
    pub retries: u64,
    /// Each custom counter per second over this run (commits/s under worktree isolation).
    pub counters_per_second: BTreeMap<String, f64>,
}

impl Rates {
    /// The rates of the run the tracker follows, `elapsed` after it started.
    pub fn of(tracker: &Tracker, elapsed: Duration) -> Rates {
        let p = tracker.progress();
        let seconds = THROUGHPUT_WINDOW_SECONDS.min(tracker.second().max(1));
        let recent = tracker.window(seconds);
        let per_second = |count: f64| match elapsed.as_secs_f64() {
            s if s > 0.0 => count / s,
            _ => 0.0,
        };
        let judged = p.completed + p.dead_lettered;
        Rates {
            throughput_now: recent.finished as f64 / f64::from(seconds),
            throughput_now_window_s: seconds,
            throughput_average: per_second(p.done_this_run() as f64),
            success_rate: (judged > 0).then(|| p.completed as f64 / judged as f64),
            failed_attempts: p.failed_attempts,
            retries: p.retries,
            counters_per_second: tracker
                .counters()
                .into_iter()
                .map(|(name, value)| (name, per_second(value.get())))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests;
