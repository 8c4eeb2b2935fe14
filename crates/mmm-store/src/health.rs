//! The health summary: is the store writable and how fast, and for every running job, is its
//! runner alive and beating, which agents are stuck, how many alerts are active. `mmm health`
//! prints it; the dashboard serves it at `/healthz`.

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::Store;
use mmm_core::alerts::Rule;
use mmm_core::job::{JobId, JobStatus, now_ms};
use mmm_core::snapshot::Snapshot;

/// A runner records a heartbeat every second; this much silence from a live owner means it
/// is hung (or its store writes are stuck).
pub const HEARTBEAT_LATE: Duration = Duration::from_secs(10);

/// The health of the store and of the jobs running in it.
#[derive(Debug, Clone, Serialize)]
pub struct Health {
    /// True when nothing below is a problem.
    pub ok: bool,
    /// The store.
    pub store: StoreHealth,
    /// Every job whose status is `running`.
    pub running_jobs: Vec<JobHealth>,
    /// One line per problem, for people.
    pub problems: Vec<String>,
    /// When this was checked, epoch ms.
    pub checked_at: i64,
}

/// Whether the store takes writes, and how long proving it took.
#[derive(Debug, Clone, Serialize)]
pub struct StoreHealth {
    /// A write transaction could be opened (and was rolled back).
    pub writable: bool,
    /// How long the probe took, ms.
    pub latency_ms: f64,
    /// Why not, when not writable.
    pub error: Option<String>,
}

/// One running job.
#[derive(Debug, Clone, Serialize)]
pub struct JobHealth {
    /// The job.
    pub id: JobId,
    /// Its name.
    pub name: String,
    /// Whether its owner process still exists.
    pub owner_alive: bool,
    /// How long since its runner's last heartbeat, ms.
    pub heartbeat_age_ms: Option<i64>,
    /// Agents the `stuck` rule flags in the newest snapshot.
    pub stuck_agents: Vec<String>,
    /// Active alerts in the newest snapshot.
    pub alerts: usize,
}

/// Checks the store and its running jobs now.
pub fn check(store: &dyn Store) -> Health {
    let started = Instant::now();
    let probe = store.probe_write();
    let store_health = StoreHealth {
        writable: probe.is_ok(),
        latency_ms: started.elapsed().as_secs_f64() * 1000.0,
        error: probe.err().map(|e| e.to_string()),
    };
    let mut problems = Vec::new();
    if let Some(error) = &store_health.error {
        problems.push(format!("the store does not take writes: {error}"));
    }
    let now = now_ms();
    let host = crate::owner::host_name();
    let mut running_jobs = Vec::new();
    match store.jobs() {
        Ok(jobs) => {
            for job in jobs.into_iter().filter(|j| j.status == JobStatus::Running) {
                let owner_alive = crate::owner::owner_process_alive(&job, now, &host);
                let heartbeat_age_ms = job.heartbeat_at.map(|at| (now - at).max(0));
                let (stuck_agents, alerts) = match store.latest_snapshot(job.id) {
                    Ok(Some(record)) => active_alerts(&record.payload),
                    _ => (Vec::new(), 0),
                };
                let short = job.id.short();
                if !owner_alive {
                    problems.push(format!(
                        "job {short} ({}) says running but its process is gone: `mmm resume {short}`",
                        job.name
                    ));
                } else if heartbeat_age_ms
                    .is_some_and(|age| age > HEARTBEAT_LATE.as_millis() as i64)
                {
                    problems.push(format!(
                        "job {short} ({}): no heartbeat for {}s",
                        job.name,
                        heartbeat_age_ms.unwrap_or(0) / 1000
                    ));
                }
                if !stuck_agents.is_empty() {
                    problems.push(format!(
                        "job {short} ({}): stuck agents {}",
                        job.name,
                        stuck_agents.join(", ")
                    ));
                }
                running_jobs.push(JobHealth {
                    id: job.id,
                    name: job.name,
                    owner_alive,
                    heartbeat_age_ms,
                    stuck_agents,
                    alerts,
                });
            }
        }
        Err(e) => problems.push(format!("the jobs could not be read: {e}")),
    }
    Health {
        ok: problems.is_empty(),
        store: store_health,
        running_jobs,
        problems,
        checked_at: now,
    }
}

/// The stuck agents and the number of active alerts in a snapshot.
fn active_alerts(snapshot: &Snapshot) -> (Vec<String>, usize) {
    let stuck = snapshot
        .alerts
        .iter()
        .filter(|a| a.rule == Rule::Stuck)
        .filter_map(|a| a.subject.clone())
        .collect();
    (stuck, snapshot.alerts.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stuck_agents_and_alerts_are_read_from_a_snapshot() {
        let snapshot = Snapshot::from_json(serde_json::json!({
            "alerts": [
                {"rule": "stuck", "subject": "agent-3", "message": "agent-3 quiet for 10m",
                 "value": 600.0, "threshold": 600.0},
                {"rule": "failure_rate", "subject": null, "message": "failure rate 60% over 50%",
                 "value": 0.6, "threshold": 0.5},
            ]
        }));
        assert_eq!(active_alerts(&snapshot), (vec!["agent-3".to_string()], 2));
        assert_eq!(active_alerts(&Snapshot::default()), (Vec::new(), 0));
    }

    // The store it opens is an SQLite file.
    #[cfg(feature = "sqlite")]
    #[test]
    fn an_empty_store_is_healthy() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::open(dir.path().to_str().unwrap(), true).unwrap();
        let health = check(store.as_ref());
        assert!(health.ok, "{health:?}");
        assert!(health.store.writable);
        assert!(health.running_jobs.is_empty());
    }
}
