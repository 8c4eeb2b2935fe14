//! The event log: `mmm events` (filters, --follow from another process) and the library's
//! `Subscription`, checked against the store.

use std::time::Duration;

use mmm_core::job::JobStatus;
use mmm_store::events::{End, EventFilter, Subscription};

use crate::harness::{Workspace, kill9, wait_until};

/// A job whose setup waits for the file `go`, so a test can attach before the map starts.
fn gated_job(ws: &Workspace, items: usize, sleep: &str) {
    let list: String = (1..=items).map(|i| format!("i{i}\n")).collect();
    ws.write("items.txt", &list);
    ws.write(
        "job.yml",
        &format!(
            "setup:\n  - shell: while [ ! -f go ]; do sleep 0.02; done\n\
             map:\n  input: items.txt\n  key: \"${{item}}\"\n  max_parallel: 2\n  retries: 1\n  backoff: 10ms\n  steps:\n\
             \x20   - name: work\n      shell: sleep {sleep}; [ ${{item}} != i7 ]\n"
        ),
    );
}

#[test]
fn follow_in_a_second_process_sees_every_event_once_in_order_and_ends_with_the_job() {
    let ws = Workspace::new();
    gated_job(&ws, 30, "0.02");
    let mut runner = ws.spawn(&["run", "job.yml", "--progress", "none"]);
    wait_until(Duration::from_secs(20), "the job to be recorded", || {
        !ws.jobs_so_far().is_empty()
    });
    let id = ws.jobs_so_far()[0].id.to_string();

    let mut follower = ws.spawn(&["events", &id, "--follow", "--json"]);
    let (lines, reader) = crate::harness::collect_lines(&mut follower);
    // The follower is live before the map starts: it has printed the setup's start.
    wait_until(Duration::from_secs(20), "the follower to see setup", || {
        lines
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("phase_started"))
    });
    ws.write("go", "");

    let follower_status = follower.wait().unwrap();
    reader.join().unwrap();
    let runner_status = runner.wait().unwrap();
    assert_eq!(runner_status.code(), Some(3), "i7 ends in the DLQ");
    assert_eq!(
        follower_status.code(),
        Some(0),
        "the follower ends with the job"
    );

    let printed: Vec<serde_json::Value> = lines
        .lock()
        .unwrap()
        .iter()
        .map(|l| serde_json::from_str(l).expect("NDJSON"))
        .collect();
    let job = ws.only_job();
    let recorded = ws.store().events(job.id, 0, 100_000).unwrap();
    let printed_seqs: Vec<i64> = printed.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    let recorded_seqs: Vec<i64> = recorded.iter().map(|e| e.seq).collect();
    assert_eq!(printed_seqs, recorded_seqs, "every event once, in order");
    assert_eq!(printed.last().unwrap()["kind"], "job_finished");
    let kinds: Vec<&str> = printed
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    for kind in [
        "job_started",
        "phase_started",
        "phase_finished",
        "agent_started",
        "attempt_started",
        "item_completed",
        "attempt_failed",
        "item_dead_lettered",
        "agent_finished",
        "checkpoint",
    ] {
        assert!(kinds.contains(&kind), "no {kind} in {kinds:?}");
    }
}

#[test]
fn a_subscription_from_zero_mid_job_gets_history_then_live_events_without_gap_or_duplicate() {
    let ws = Workspace::new();
    gated_job(&ws, 60, "0.03");
    ws.write("go", "");
    let mut runner = ws.spawn(&["run", "job.yml", "--progress", "none"]);
    wait_until(Duration::from_secs(20), "the map to be under way", || {
        ws.jobs_so_far()
            .first()
            .is_some_and(|j| j.counts.completed >= 5)
    });
    let job = ws.only_job();
    assert_eq!(job.status, JobStatus::Running, "subscribed mid-job");
    let mut subscription = Subscription::new(ws.store(), job.id, 0, EventFilter::default());
    let got: Vec<i64> = subscription
        .by_ref()
        .map(|e| e.expect("store reads work").seq)
        .collect();
    runner.wait().unwrap();
    assert_eq!(
        subscription.ended(),
        Some(&End::Stopped(JobStatus::CompletedWithFailures))
    );
    let recorded: Vec<i64> = ws
        .store()
        .events(job.id, 0, 100_000)
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(got, recorded);
    assert!(got.windows(2).all(|w| w[0] < w[1]), "in order");
}

#[test]
fn filters_select_by_kind_category_item_and_sequence() {
    let ws = Workspace::new();
    gated_job(&ws, 10, "0");
    ws.write("go", "");
    ws.run(&["run", "job.yml", "--progress", "none"]).code_is(3);
    let id = ws.only_job().id.to_string();

    let json_lines = |args: &[&str]| -> Vec<serde_json::Value> {
        let run = ws.run(&[&["events", &id, "--json"], args].concat());
        run.success();
        run.stdout()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let items = json_lines(&["--type", "item_dead_lettered"]);
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["item_key"], "i7");

    let category = json_lines(&["--type", "item"]);
    assert_eq!(category.len(), 10, "9 completed and 1 dead-lettered");
    assert!(
        category
            .iter()
            .all(|e| e["kind"].as_str().unwrap().starts_with("item_"))
    );

    // An item's first attempt has no `attempt_started` (its attempt row holds its start);
    // the retry has one.
    let of_i7 = json_lines(&["--item", "i7", "--type", "attempt,item"]);
    let kinds: Vec<&str> = of_i7.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        ["attempt_failed", "attempt_started", "item_dead_lettered"]
    );
    assert_eq!(of_i7[1]["payload"]["attempt"], 2);
    assert!(json_lines(&["--item", "i3", "--type", "attempt_started"]).is_empty());

    let all = json_lines(&[]);
    let middle = all[all.len() / 2]["seq"].as_i64().unwrap();
    let since = json_lines(&["--since", &middle.to_string()]);
    assert_eq!(since.len(), all.len() - all.len() / 2 - 1);
    assert!(since.iter().all(|e| e["seq"].as_i64().unwrap() > middle));

    let human = ws.run(&["events", &id, "--type", "job"]);
    human.success();
    assert!(human.stdout().contains("job_started"), "{}", human.stdout());
    assert!(
        human.stdout().contains("job_finished"),
        "{}",
        human.stdout()
    );

    let bad = ws.run(&["events", &id, "--type", "bogus"]);
    bad.code_is(2);
    assert!(bad.stderr().contains("unknown event type `bogus`"));
}

#[test]
fn following_a_job_whose_runner_was_killed_ends_and_says_how_to_resume() {
    let ws = Workspace::new();
    gated_job(&ws, 3, "0");
    let mut runner = ws.spawn(&["run", "job.yml", "--progress", "none"]);
    wait_until(Duration::from_secs(20), "the job to be running", || {
        ws.jobs_so_far()
            .first()
            .is_some_and(|j| j.status == JobStatus::Running)
    });
    kill9(&mut runner);
    let id = ws.only_job().id.to_string();
    let follow = ws.run(&["events", &id, "--follow"]);
    follow.code_is(1);
    assert!(
        follow.stderr().contains("mmm resume"),
        "{}",
        follow.stderr()
    );
    assert!(
        follow.stdout().contains("job_started"),
        "{}",
        follow.stdout()
    ); // The setup command outlived its runner; let it end.
    ws.write("go", "");
}

#[test]
fn snapshots_follow_snapshot_every_and_carry_metrics() {
    let ws = Workspace::new();
    ws.write("items.txt", "a\nb\nc\nd\n");
    ws.write(
        "job.yml",
        "map:\n  input: items.txt\n  max_parallel: 2\n  steps:\n    - shell: sleep 1.2\n",
    );
    ws.run(&["run", "job.yml", "--progress", "none"]).success();
    ws.run(&[
        "run",
        "job.yml",
        "--progress",
        "none",
        "--snapshot-every",
        "1h",
    ])
    .success();
    let store = ws.store();
    let mut jobs = store.jobs().unwrap();
    jobs.sort_by_key(|j| j.created_at);
    let every_second = store.snapshots(jobs[0].id, 0, 100).unwrap();
    let hourly = store.snapshots(jobs[1].id, 0, 100).unwrap();
    assert!(every_second.len() >= 2, "{} snapshots", every_second.len());
    assert_eq!(hourly.len(), 2, "the first heartbeat's and the final one");
    let last = &every_second.last().unwrap().payload.to_json();
    for key in [
        "progress", "agents", "metrics", "rates", "alerts", "counters", "window",
    ] {
        assert!(last.get(key).is_some(), "no {key} in {last}");
    }
    assert_eq!(last["agents"].as_array().unwrap().len(), 2);
}

#[test]
fn a_reader_that_stops_early_is_not_an_error() {
    // `mmm events --json | head -c1` and `mmm jobs --json | head -c1`: the reader goes away
    // after one byte. The event log of 400 items is far more than a pipe buffer, so the write
    // after that fails with EPIPE for sure; mmm must take that as a normal end (exit 0, no
    // message), as `cat` or `grep` do.
    let ws = Workspace::new();
    let items: Vec<String> = (0..400).map(|i| i.to_string()).collect();
    let mut args = vec!["run", "-j", "2", "--progress", "none", "--", "true", ":::"];
    args.extend(items.iter().map(String::as_str));
    ws.run(&args).success();
    let id = ws.only_job().id.to_string();
    let mmm = env!("CARGO_BIN_EXE_mmm");
    for command in [
        format!("'{mmm}' events {id} --json"),
        format!("'{mmm}' jobs --json"),
    ] {
        let out = std::process::Command::new("bash")
            .arg("-c")
            .arg(format!(
                "set -o pipefail; {command} | head -c1 >/dev/null; echo \"status ${{PIPESTATUS[0]}}\""
            ))
            .current_dir(ws.path())
            .env_remove("MMM_STORE")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stdout.trim(), "status 0", "{command}: {stderr}");
        assert!(!stderr.contains("error"), "{command}: {stderr}");
    }
}
