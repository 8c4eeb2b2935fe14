//! `mmm health`: healthy when nothing runs, a killed runner and a stuck agent are problems.

use std::time::Duration;

use mmm_core::job::JobStatus;

use crate::harness::{Workspace, kill9, wait_until};

#[test]
fn health_reports_a_stuck_agent_then_a_dead_runner() {
    let ws = Workspace::new();
    ws.write("items.txt", "a\n");
    ws.write(
        "job.yml",
        "map:\n  input: items.txt\n  max_parallel: 1\n  steps:\n    - shell: while [ ! -f stop ]; do sleep 0.1; done\nalerts:\n  stuck_after: 1s\n",
    );
    let mut runner = ws.spawn(&["run", "job.yml", "--progress", "none"]);
    wait_until(
        Duration::from_secs(20),
        "the stuck alert in a snapshot",
        || {
            let run = ws.run(&["health", "--json"]);
            serde_json::from_str::<serde_json::Value>(&run.stdout())
                .is_ok_and(|h| h["running_jobs"][0]["stuck_agents"][0] == "agent-1")
        },
    );
    let stuck = ws.run(&["health"]);
    stuck.code_is(1);
    assert!(
        stuck.stdout().contains("stuck agents agent-1"),
        "{}",
        stuck.stdout()
    );
    assert!(
        stuck.stdout().contains("store: writable"),
        "{}",
        stuck.stdout()
    );

    kill9(&mut runner);
    assert_eq!(
        ws.only_job().status,
        JobStatus::Running,
        "killed, not stopped"
    );
    let dead = ws.run(&["health", "--json"]);
    dead.code_is(1);
    let health: serde_json::Value = serde_json::from_str(&dead.stdout()).unwrap();
    assert_eq!(health["ok"], false);
    assert_eq!(health["running_jobs"][0]["owner_alive"], false);
    let problems = health["problems"].to_string();
    assert!(problems.contains("mmm resume"), "{problems}");

    // The killed run's command is still waiting: let it end.
    ws.write("stop", "");
}

#[test]
fn an_idle_store_is_healthy() {
    let ws = Workspace::new();
    ws.run(&["run", "--progress", "none", "--", "true", ":::", "a"])
        .success();
    let run = ws.run(&["health"]);
    run.success();
    assert!(run.stdout().contains("healthy"), "{}", run.stdout());
    assert!(
        run.stdout().contains("running jobs: none"),
        "{}",
        run.stdout()
    );
}
