//! Crash-proof resume: SIGKILL the runner at random moments, resume each time, and check the
//! record: every item completed exactly once, nothing recorded done ran again, the DLQ kept,
//! and durations that add up across runs.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{BuildHasher, RandomState};
use std::time::{Duration, Instant};

use mmm::job::{AttemptOutcome, ItemStatus};

use crate::harness::{Workspace, kill9, wait_until};

const ITEMS: usize = 2000;
const KILLS: usize = 10;

/// A random number in `0..bound`, different on every run of the test.
fn random(bound: u64) -> u64 {
    RandomState::new().hash_one(Instant::now()) % bound
}

fn completed_keys(ws: &Workspace) -> BTreeSet<String> {
    let store = ws.store();
    let job = store.jobs().unwrap().remove(0);
    store
        .items(job.id, Some(ItemStatus::Completed))
        .unwrap()
        .into_iter()
        .map(|i| i.key)
        .collect()
}

#[test]
fn sigkill_at_random_moments_then_resume_runs_every_item_exactly_once() {
    let ws = Workspace::new();
    let items: String = (1..=ITEMS).map(|n| format!("i{n}\n")).collect();
    ws.write("items.txt", &items);
    // Items i500, i1000, ... always fail: they must end in the DLQ, with their attempts.
    ws.write(
        "job.yml",
        r#"
map:
  input: items.txt
  key: "${item}"
  max_parallel: 4
  retries: 1
  backoff: 1ms
  steps:
    - name: work
      shell: |
        case ${item} in *500|*000) echo "bad ${item}" >&2; exit 3;; esac
        sleep 0.01
        echo ${item} >> ran.txt
"#,
    );
    let mut child = ws.spawn(&["run", "job.yml", "--progress", "none"]);
    // For each kill: what was recorded completed, and how much of ran.txt existed then.
    let mut kills: Vec<(BTreeSet<String>, usize)> = Vec::new();
    for round in 0..KILLS {
        wait_until(Duration::from_secs(30), "the job to be recorded", || {
            !ws.jobs_so_far().is_empty()
        });
        std::thread::sleep(Duration::from_millis(50 + random(300)));
        kill9(&mut child);
        let done = completed_keys(&ws);
        let ran_lines =
            std::fs::read_to_string(ws.join("ran.txt")).map_or(0, |t| t.lines().count());
        assert!(
            done.len() < ITEMS,
            "round {round}: the job finished before the kill; make items slower"
        );
        kills.push((done, ran_lines));
        let id = ws.only_job().id.to_string();
        child = ws.spawn(&["resume", &id, "--progress", "none"]);
    }
    let status = child.wait_with_output().unwrap();
    assert_eq!(
        status.status.code(),
        Some(3),
        "the last resume ends completed_with_failures\n{}",
        String::from_utf8_lossy(&status.stderr)
    );

    let store = ws.store();
    let job = ws.only_job();
    assert_eq!(job.status.as_str(), "completed_with_failures");
    assert_eq!(
        (job.counts.completed, job.counts.dead_lettered),
        (ITEMS as u64 - 4, 4)
    );
    assert_eq!(job.counts.total(), ITEMS as u64);

    // Every completed item has exactly one succeeded attempt; nothing else succeeded.
    let attempts = store.attempts(job.id, None).unwrap();
    let mut succeeded: BTreeMap<&str, usize> = BTreeMap::new();
    for a in &attempts {
        assert!(a.outcome.is_some(), "no attempt is left in flight: {a:?}");
        if a.outcome == Some(AttemptOutcome::Succeeded) {
            *succeeded.entry(a.item_key.as_str()).or_default() += 1;
        }
    }
    assert_eq!(succeeded.len(), ITEMS - 4);
    assert!(
        succeeded.values().all(|n| *n == 1),
        "an item succeeded twice"
    );

    // Every item ran at least once (the failing ones never reach the append).
    let ran: Vec<String> = ws.read("ran.txt").lines().map(str::to_string).collect();
    let ran_set: BTreeSet<&str> = ran.iter().map(String::as_str).collect();
    for n in 1..=ITEMS {
        let key = format!("i{n}");
        if n % 500 != 0 {
            assert!(ran_set.contains(key.as_str()), "{key} never ran");
        }
    }
    // Nothing recorded completed before a kill ran again after it.
    for (done, lines_then) in &kills {
        for line in &ran[*lines_then..] {
            assert!(
                !done.contains(line),
                "{line} was recorded done, yet ran again after a kill"
            );
        }
    }

    // The DLQ kept every failing item with its two counted attempts.
    let dlq = store.items(job.id, Some(ItemStatus::DeadLettered)).unwrap();
    let dlq_keys: Vec<&str> = dlq.iter().map(|i| i.key.as_str()).collect();
    assert_eq!(dlq_keys, ["i500", "i1000", "i1500", "i2000"]);
    for item in &dlq {
        assert_eq!(item.attempts, 2, "{} keeps both counted attempts", item.key);
        let failed = attempts
            .iter()
            .filter(|a| a.item_key == item.key && a.outcome == Some(AttemptOutcome::Failed))
            .count();
        assert!(
            failed >= 2,
            "{} has {failed} failed attempts recorded",
            item.key
        );
    }

    // The job's duration adds up the runs: at least the map time of each, which the
    // attempts show (from a run's first attempt start to its last attempt end).
    let mut runs: Vec<(i64, i64)> = Vec::new();
    let mut by_start: Vec<_> = attempts.iter().collect();
    by_start.sort_by_key(|a| a.started_at);
    let resumes = store
        .events(job.id, 0, 1_000_000)
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == "job_resumed")
        .map(|e| e.at)
        .collect::<Vec<_>>();
    // One job_resumed per resume that got as far as recording it: on a loaded machine a
    // resume can be killed before its first commit (and then it ran nothing). The last one,
    // never killed, always does.
    assert!(
        (1..=KILLS).contains(&resumes.len()),
        "{} job_resumed events for {KILLS} resumes",
        resumes.len()
    );
    let mut bounds = resumes.clone();
    bounds.push(i64::MAX);
    let mut lower = i64::MIN;
    for upper in bounds {
        let in_run: Vec<_> = by_start
            .iter()
            .filter(|a| a.started_at >= lower && a.started_at < upper)
            .collect();
        // An attempt cut short by a kill is closed at the take-over, not when its run died.
        let last_end = in_run
            .iter()
            .filter(|a| a.outcome != Some(AttemptOutcome::Interrupted))
            .filter_map(|a| a.ended_at)
            .max();
        if let (Some(first), Some(last)) = (in_run.first(), last_end) {
            runs.push((first.started_at, last));
        }
        lower = upper;
    }
    let map_time: i64 = runs.iter().map(|(a, b)| (b - a).max(0)).sum();
    assert!(
        job.duration_ms >= map_time,
        "recorded duration {} ms < sum of the runs' map time {} ms",
        job.duration_ms,
        map_time
    );
}

#[test]
fn a_second_resume_of_a_running_job_is_refused_with_the_owner() {
    let ws = Workspace::new();
    // Long enough (8 x 0.4 s) that the winner is still running when the loser looks, even
    // on a loaded machine.
    ws.write("items.txt", "a\nb\nc\nd\ne\nf\ng\nh\n");
    ws.write(
        "job.yml",
        "map:\n  input: items.txt\n  max_parallel: 1\n  steps:\n    - shell: sleep 0.4\n",
    );
    let mut first = ws.spawn(&["run", "job.yml", "--progress", "none"]);
    wait_until(Duration::from_secs(20), "the job to start", || {
        ws.jobs_so_far()
            .first()
            .is_some_and(|j| j.counts.total() > 0)
    });
    kill9(&mut first);
    let id = ws.only_job().id.to_string();
    // Two resumes started together: exactly one runs.
    let a = ws.spawn(&["resume", &id, "--progress", "none"]);
    let b = ws.spawn(&["resume", &id, "--progress", "none"]);
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    let codes = [a.status.code(), b.status.code()];
    assert!(
        codes.contains(&Some(0)),
        "one resume finishes the job: {codes:?}"
    );
    let loser = if a.status.code() == Some(0) { &b } else { &a };
    assert_eq!(loser.status.code(), Some(2), "the other is refused");
    let err = String::from_utf8_lossy(&loser.stderr);
    assert!(err.contains("is being run by pid"), "{err}");
    assert_eq!(ws.only_job().counts.completed, 8);
}

#[test]
fn resume_from_a_checkpoint_reruns_exactly_the_items_completed_after_it() {
    let ws = Workspace::new();
    ws.write("items.txt", "a\nb\nc\n");
    ws.write(
        "job.yml",
        "map:\n  input: items.txt\n  key: \"${item}\"\n  max_parallel: 1\n  steps:\n    - shell: sleep 0.8; echo ${item} >> ran.txt\n",
    );
    ws.run(&[
        "run",
        "job.yml",
        "--progress",
        "none",
        "--checkpoint-every",
        "1s",
    ])
    .success();
    let id = ws.only_job().id.to_string();
    let listed = ws.run(&["checkpoints", &id, "--json"]);
    listed.success();
    let checkpoints: serde_json::Value = serde_json::from_str(&listed.stdout()).unwrap();
    let all = checkpoints.as_array().unwrap();
    assert_eq!(all.last().unwrap()["reason"], "map done");
    // Which checkpoint the timer caught depends on the machine's speed: 1 or 2 items done.
    let midway = all
        .iter()
        .find(|c| c["reason"] == "interval" && (1..=2).contains(&c["completed"].as_u64().unwrap()))
        .unwrap_or_else(|| panic!("no checkpoint between items: {checkpoints}"));
    let done_then = midway["completed"].as_u64().unwrap() as usize;
    let rerun = ["a", "b", "c"][done_then..].to_vec();

    let from = midway["id"].to_string();
    let run = ws.run(&["resume", &id, "--from", &from, "--progress", "none"]);
    run.success();
    let rewound = format!("{} rewound", rerun.len());
    assert!(run.stderr().contains(&rewound), "{}", run.stderr());
    let ran: Vec<String> = ws.read("ran.txt").lines().map(str::to_string).collect();
    let mut expected = vec!["a", "b", "c"];
    expected.extend(&rerun);
    assert_eq!(
        ran, expected,
        "only the items completed after the checkpoint ran again"
    );
    let job = ws.only_job();
    assert_eq!(
        (job.status.as_str(), job.counts.completed),
        ("completed", 3)
    );

    // The resume ledger says why items ran again, in JSON and on screen.
    let detail = ws.run(&["jobs", &id, "--json"]);
    detail.success();
    let detail: serde_json::Value = serde_json::from_str(&detail.stdout()).unwrap();
    assert_eq!(
        detail["ledger"]["requeued"],
        serde_json::json!([["rewound", rerun.len()]])
    );
    assert_eq!(detail["ledger"]["entries"][0]["kind"], "job_resumed");
    let shown = ws.run(&["jobs", &id]);
    let line = format!("items run again: {}", rewound);
    assert!(shown.stdout().contains(&line), "{}", shown.stdout());
}

#[test]
fn resume_adds_new_input_items_and_reports_vanished_ones() {
    let ws = Workspace::new();
    ws.write("items.txt", "a\nb\nc\nd\n");
    ws.write(
        "job.yml",
        "map:\n  input: items.txt\n  key: \"${item}\"\n  max_parallel: 1\n  steps:\n    - shell: sleep 0.2; echo ${item} >> ran.txt\n",
    );
    let mut child = ws.spawn(&["run", "job.yml", "--progress", "none"]);
    wait_until(Duration::from_secs(20), "an item to complete", || {
        ws.jobs_so_far()
            .first()
            .is_some_and(|j| j.counts.completed >= 1)
    });
    kill9(&mut child);
    // `a` vanishes from the input, `e` is new.
    ws.write("items.txt", "b\nc\nd\ne\n");
    let id = ws.only_job().id.to_string();
    ws.run(&["resume", &id, "--progress", "none"]).success();
    let ran: BTreeSet<String> = ws.read("ran.txt").lines().map(str::to_string).collect();
    assert!(ran.contains("e"), "the new item ran: {ran:?}");
    let job = ws.only_job();
    assert_eq!(job.counts.total(), 5, "the vanished item keeps its record");
    assert_eq!(job.counts.completed, 5);
    let changed: Vec<serde_json::Value> = ws
        .store()
        .events(job.id, 0, 10_000)
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == "input_changed")
        .map(|e| e.payload)
        .collect();
    assert_eq!(changed.len(), 1);
    assert_eq!(changed[0]["new_items"], 1);
    assert_eq!(changed[0]["vanished_items"], 1);
    assert_eq!(changed[0]["vanished_examples"][0], "a");
}

#[test]
fn an_item_whose_input_value_changed_runs_again_with_the_new_value() {
    let ws = Workspace::new();
    ws.write(
        "items.jsonl",
        "{\"id\": \"a\", \"v\": 1}\n{\"id\": \"b\", \"v\": 1}\n{\"id\": \"c\", \"v\": 1}\n",
    );
    ws.write(
        "job.yml",
        "map:\n  input: items.jsonl\n  key: \"${item.id}\"\n  max_parallel: 1\n  steps:\n    - shell: sleep 0.2; echo ${item.id}=${item.v} >> ran.txt\n",
    );
    let mut child = ws.spawn(&["run", "job.yml", "--progress", "none"]);
    wait_until(Duration::from_secs(20), "an item to complete", || {
        ws.jobs_so_far()
            .first()
            .is_some_and(|j| j.counts.completed >= 1)
    });
    kill9(&mut child);
    // `a` (completed) and `c` (not run yet) get new values.
    ws.write(
        "items.jsonl",
        "{\"id\": \"a\", \"v\": 2}\n{\"id\": \"b\", \"v\": 1}\n{\"id\": \"c\", \"v\": 2}\n",
    );
    let id = ws.only_job().id.to_string();
    ws.run(&["resume", &id, "--progress", "none"]).success();
    let ran: Vec<String> = ws.read("ran.txt").lines().map(str::to_string).collect();
    assert_eq!(ran.first().map(String::as_str), Some("a=1"));
    assert!(
        ran.contains(&"a=2".to_string()),
        "a ran again with its new value: {ran:?}"
    );
    assert!(
        ran.contains(&"c=2".to_string()),
        "c ran with its new value: {ran:?}"
    );
    assert!(!ran.contains(&"c=1".to_string()), "{ran:?}");
    let detail = ws.run(&["jobs", &id, "--json"]);
    let detail: serde_json::Value = serde_json::from_str(&detail.stdout()).unwrap();
    let requeued = detail["ledger"]["requeued"].as_array().unwrap();
    assert!(
        requeued.contains(&serde_json::json!(["input_changed", 1])),
        "{requeued:?}"
    );
    assert_eq!(ws.only_job().counts.completed, 3);
}

#[test]
fn resume_stops_the_commands_a_killed_run_left_running() {
    let ws = Workspace::new();
    ws.write("items.txt", "a\n");
    ws.write(
        "job.yml",
        r#"
map:
  input: items.txt
  steps:
    - shell: |
        if [ "$MMM_ATTEMPT" = 1 ]; then echo $$ > pid.txt; sleep 30; fi
"#,
    );
    let mut child = ws.spawn(&["run", "job.yml", "--progress", "none"]);
    wait_until(Duration::from_secs(20), "the command to start", || {
        std::fs::read_to_string(ws.join("pid.txt")).is_ok_and(|p| p.trim().parse::<i32>().is_ok())
    });
    kill9(&mut child);
    let pid: i32 = ws.read("pid.txt").trim().parse().unwrap();
    assert!(
        crate::harness::is_alive(pid),
        "the command outlives a SIGKILLed mmm"
    );
    let id = ws.only_job().id.to_string();
    let run = ws.run(&["resume", &id, "--progress", "none"]);
    run.success();
    assert!(
        run.stderr()
            .contains("stopped 1 commands the dead run left running"),
        "{}",
        run.stderr()
    );
    wait_until(
        Duration::from_secs(5),
        "the leftover command to be gone",
        || !crate::harness::is_alive(pid),
    );
    assert_eq!(ws.only_job().counts.completed, 1);
}
