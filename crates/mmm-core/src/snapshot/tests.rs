//! Snapshots read back as written, old ones read as version 1, and a part of another shape
//! is lost alone.

use serde_json::json;

use super::*;
use crate::job::AgentState;

/// A snapshot as mmm wrote it before snapshots had a version.
fn unversioned() -> serde_json::Value {
    json!({
        "progress": {"total": 1000, "completed": 480, "dead_lettered": 20, "skipped": 0,
                     "in_flight": 2, "pending": 498, "restored": 0, "failed_attempts": 25,
                     "retries": 5, "percent": 50.0},
        "agents": [
            {"index": 0, "phase": "running", "item": 500, "step": 0, "attempt": 1,
             "progress": null, "item_elapsed": 1.5, "in_phase": 1.0, "last_exit_code": null,
             "items_done": 3, "quiet": 0.5, "message": null, "cpu_percent": 12.5,
             "rss_bytes": 1024, "name": "agent-1"},
            {"index": 1, "phase": "retrying", "item": 501, "step": 0, "attempt": 2,
             "item_elapsed": 2.0, "in_phase": 0.5, "last_exit_code": 2, "items_done": 1,
             "quiet": 0.25}
        ],
        "counters": {"commits": 4},
        "window": {"seconds": 60, "counts": {"finished": 100, "attempts": 110, "failures": 10, "timeouts": 0}},
        "alerts": [{"rule": "failure_rate", "subject": null, "message": "failure rate 9% over 5%",
                    "value": 0.09, "threshold": 0.05}],
        "metrics": {
            "eta": {"state": "estimate", "p10_ms": 50000, "p50_ms": 60000, "p90_ms": 80000,
                    "finish_at_ms": 0, "basis": "durations", "rate_ms": 61000, "widened_by_rate": false},
            "items": {"count": 500, "mean_ms": 1200.0, "stdev_ms": 100.0, "min_ms": 900.0,
                      "p10_ms": 1000.0, "p50_ms": 1100.0, "p90_ms": 1500.0, "p95_ms": 1700.0,
                      "p99_ms": 2500.0, "max_ms": 3000.0},
            "steps": [{"name": "convert", "durations": null, "skipped": 0}],
            "queue_wait": null,
            "stragglers": [{"item": 512, "agent": 1, "step": 0, "step_name": "convert",
                            "elapsed_ms": 9000, "p95_ms": 1700}],
            "failures": [{"kind": {"kind": "exit", "code": 3}, "signature": "boom", "message": "boom: disk full",
                          "count": 25, "first_seen_ms": 0, "last_seen_ms": 0, "examples": []}],
            "failed_attempts": 25
        },
        "rates": {"throughput_now": 1.5, "throughput_now_window_s": 60, "throughput_average": 1.2,
                  "success_rate": 0.96, "failed_attempts": 25, "retries": 5,
                  "counters_per_second": {"commits": 0.1}}
    })
}

#[test]
fn a_snapshot_written_before_versions_reads_whole_as_version_1() {
    let snapshot = Snapshot::from_json(unversioned());
    assert_eq!(snapshot.version, 1);
    let progress = snapshot.progress.unwrap();
    assert_eq!((progress.total, progress.done()), (1000, 500));
    assert_eq!(snapshot.agents.len(), 2);
    assert_eq!(snapshot.agents[0].name(), "agent-1");
    assert_eq!(snapshot.agents[1].name(), "agent-2");
    assert_eq!(snapshot.agents[1].agent.state, AgentState::Retrying);
    assert_eq!(
        snapshot.agents[0].agent.item_elapsed,
        Some(Duration::from_millis(1500))
    );
    assert_eq!(snapshot.agents[1].agent.cpu_percent, None);
    assert_eq!(snapshot.counters["commits"], 4.into());
    assert_eq!(snapshot.window.unwrap().counts.attempts, 110);
    assert_eq!(snapshot.alerts[0].message, "failure rate 9% over 5%");
    let metrics = snapshot.metrics.unwrap();
    assert!(matches!(metrics.eta, crate::metrics::Eta::Estimate(e) if e.p50_ms == 60_000));
    // Written before durations had buckets: they read as absent.
    assert_eq!(metrics.items.unwrap().buckets, None);
    assert_eq!(metrics.failures[0].count, 25);
    assert_eq!(snapshot.rates.unwrap().counters_per_second["commits"], 0.1);
}

#[test]
fn a_snapshot_reads_back_as_written_with_its_version() {
    let mut snapshot = Snapshot::from_json(unversioned());
    snapshot.version = SNAPSHOT_VERSION;
    let json = snapshot.to_json();
    assert_eq!(json["version"], SNAPSHOT_VERSION);
    // The documented shape: the agent's state is still written as `phase`, durations in s.
    assert_eq!(json["agents"][1]["phase"], "retrying");
    assert_eq!(json["agents"][0]["item_elapsed"], 1.5);
    assert_eq!(Snapshot::from_json(json), snapshot);
}

#[test]
fn a_part_of_another_shape_is_lost_alone() {
    let mut payload = unversioned();
    payload["agents"] = json!("not a list");
    payload["metrics"]["eta"] = json!({"state": "something newer"});
    let snapshot = Snapshot::from_json(payload);
    assert!(snapshot.agents.is_empty());
    assert!(snapshot.metrics.is_none());
    assert_eq!(snapshot.progress.unwrap().completed, 480);
    assert_eq!(snapshot.alerts.len(), 1);
}

#[test]
fn an_agent_row_this_version_cannot_read_is_left_out_alone() {
    let mut payload = unversioned();
    payload["agents"][0]["phase"] = json!("hibernating");
    let snapshot = Snapshot::from_json(payload);
    assert_eq!(snapshot.agents.len(), 1);
    assert_eq!(snapshot.agents[0].name(), "agent-2");
}

#[test]
fn anything_but_an_object_reads_as_an_empty_snapshot() {
    for payload in [json!(null), json!([1, 2]), json!("x")] {
        let snapshot = Snapshot::from_json(payload);
        assert!(snapshot.progress.is_none() && snapshot.agents.is_empty());
    }
}

#[test]
fn rates_count_only_what_this_run_finished() {
    let tracker = Tracker::new(10, 1);
    tracker.preload(4, 0, 0);
    let rates = Rates::of(&tracker, Duration::from_secs(2));
    assert_eq!(rates.throughput_average, 0.0);
    assert_eq!(rates.success_rate, Some(1.0));
    assert_eq!(rates.throughput_now_window_s, 1);
}
