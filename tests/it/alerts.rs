//! Alerts through the real binary: each rule fires in a job built to trigger it and stays
//! quiet in a job built not to; raised alerts are events and run `on_alert`.

use crate::harness::Workspace;

/// Runs a job file (the map's steps and extra top-level keys given) over `items` and returns
/// the rules of the alerts raised, from the event log.
fn raised(items: usize, map_extra: &str, steps: &str, top_extra: &str) -> (Workspace, Vec<String>) {
    let ws = Workspace::new();
    let list: String = (1..=items).map(|i| format!("{i}\n")).collect();
    ws.write("items.txt", &list);
    ws.write(
        "job.yml",
        &format!(
            "map:\n  input: items.txt\n  max_parallel: 2\n{map_extra}  steps:\n{steps}{top_extra}"
        ),
    );
    let run = ws.run(&["run", "job.yml", "--progress", "none"]);
    assert!(
        matches!(run.code(), 0 | 3),
        "the job ran: {}\n{}",
        run.stdout(),
        run.stderr()
    );
    let id = ws.only_job().id.to_string();
    let events = ws.run(&["events", &id, "--type", "alert_raised", "--json"]);
    events.success();
    let rules = events
        .stdout()
        .lines()
        .map(|line| {
            let event: serde_json::Value = serde_json::from_str(line).unwrap();
            event["payload"]["rule"].as_str().unwrap().to_string()
        })
        .collect();
    (ws, rules)
}

#[test]
fn stuck_fires_for_a_silent_command_runs_on_alert_and_resolves() {
    let (ws, rules) = raised(
        1,
        "",
        "    - shell: sleep 2.5\n",
        "alerts:\n  stuck_after: 1s\n  on_alert: cat >> alerts.jsonl\n",
    );
    assert_eq!(rules, ["stuck"]);
    let id = ws.only_job().id.to_string();
    let resolved = ws.run(&["events", &id, "--type", "alert_resolved", "--json"]);
    assert_eq!(
        resolved.stdout().lines().count(),
        1,
        "{}",
        resolved.stdout()
    );
    // on_alert got the alert as JSON on stdin (it may still be finishing: poll briefly).
    crate::harness::wait_until(
        std::time::Duration::from_secs(5),
        "on_alert to write its file",
        || std::fs::read_to_string(ws.join("alerts.jsonl")).is_ok_and(|t| t.ends_with('\n')),
    );
    let alert: serde_json::Value = serde_json::from_str(ws.read("alerts.jsonl").trim()).unwrap();
    assert_eq!(alert["alert"]["rule"], "stuck");
    // The stuck agent is the one that ran the only item (either of the two may take it).
    let attempts = ws.attempts(ws.only_job().id);
    assert_eq!(alert["alert"]["subject"], attempts[0].agent.as_str());
    assert_eq!(alert["job_id"], id);
}

#[test]
fn stuck_stays_quiet_for_a_command_that_keeps_talking() {
    let (_ws, rules) = raised(
        1,
        "",
        "    - shell: for i in 1 2 3 4 5 6 7 8; do echo $i; sleep 0.3; done\n",
        "alerts:\n  stuck_after: 1s\n",
    );
    assert_eq!(rules, Vec::<String>::new());
}

#[test]
fn a_step_reporting_progress_is_not_stuck() {
    let mmm = env!("CARGO_BIN_EXE_mmm");
    let (_ws, rules) = raised(
        1,
        "",
        &format!(
            "    - shell: for i in 1 2 3 4 5 6 7 8; do '{mmm}' report $i/8; sleep 0.3; done\n"
        ),
        "alerts:\n  stuck_after: 1s\n",
    );
    assert_eq!(rules, Vec::<String>::new());
}

const RATES: &str = "alerts:\n  window: 10s\n  min_attempts: 4\n  failure_rate: 20%\n  timeout_rate: 20%\n  stuck_after: off\n  throughput_drop: off\n";

#[test]
fn failure_rate_fires_when_half_the_items_fail() {
    let (_ws, rules) = raised(
        16,
        "",
        "    - shell: sleep 0.2; v=${item}; [ $((v % 2)) = 0 ]\n",
        RATES,
    );
    assert_eq!(rules, ["failure_rate"]);
}

#[test]
fn failure_rate_and_timeout_rate_stay_quiet_when_items_succeed() {
    let (_ws, rules) = raised(16, "", "    - shell: sleep 0.2\n", RATES);
    assert_eq!(rules, Vec::<String>::new());
}

#[test]
fn timeout_rate_fires_when_items_time_out() {
    let (_ws, rules) = raised(
        12,
        "  timeout: 300ms\n",
        "    - shell: v=${item}; if [ $((v % 2)) = 0 ]; then sleep 2; else sleep 0.1; fi\n",
        RATES,
    );
    // Timeouts are failures too.
    assert!(rules.contains(&"timeout_rate".to_string()), "{rules:?}");
    assert!(rules.contains(&"failure_rate".to_string()), "{rules:?}");
}

const DROP: &str =
    "alerts:\n  window: 1s\n  throughput_drop: 25%\n  stuck_after: off\n  failure_rate: off\n";

#[test]
fn throughput_drop_fires_when_items_slow_down_with_work_queued() {
    // 20 quick items, then slow ones while plenty are still queued.
    let (_ws, rules) = raised(
        30,
        "",
        "    - shell: if [ ${item} -le 20 ]; then sleep 0.05; else sleep 1.5; fi\n",
        DROP,
    );
    assert_eq!(rules, ["throughput_drop"]);
}

#[test]
fn throughput_drop_stays_quiet_at_a_steady_pace() {
    let (_ws, rules) = raised(30, "", "    - shell: sleep 0.2\n", DROP);
    assert_eq!(rules, Vec::<String>::new());
}

#[test]
fn deadline_fires_once_the_job_runs_past_it() {
    let (_ws, rules) = raised(
        4,
        "",
        "    - shell: sleep 1\n",
        "deadline: 1s\nalerts:\n  stuck_after: off\n",
    );
    assert_eq!(rules, ["deadline"]);
}

#[test]
fn deadline_stays_quiet_when_there_is_time() {
    let (_ws, rules) = raised(4, "", "    - shell: sleep 0.5\n", "deadline: 1h\n");
    assert_eq!(rules, Vec::<String>::new());
}
