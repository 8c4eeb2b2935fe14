//! Crash-proof resume: SIGKILL the runner at random moments, resume each time, and check the
//! record: every item completed exactly once, nothing recorded done ran again, the DLQ kept,
//! and durations that add up across runs.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{BuildHasher, RandomState};
use std::time::{Duration, Instant};

use mmm_core::job::{AttemptOutcome, ItemStatus};

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
            if !ws.jobs_so_far().is_empty() {
                return true;
            }
            // A run that died at start would otherwise read as a 30 s wait: say why.
            if let Ok(Some(status)) = child.try_wait() {
                let mut stderr = String::new();
                let _ = std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr);
                panic!(
                    "round {round}: mmm exited ({status}) before its job was recorded: {stderr}"
                );
            }
            false
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
        .filter(|e| e.event.kind_name() == "job_resumed")
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
        .filter(|e| e.event.kind_name() == "input_changed")
        .map(|e| e.event.payload())
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

/// Rewrites the store of `ws` in the layout of schema version 3 (before `job_ref`), as a
/// binary of that version would have left it: a new file built by migrations 0001-0003, the
/// record copied into it row by row (events with their seqs, so the log reads the same).
fn rewrite_as_version_3(ws: &Workspace) {
    let old = ws.join("v3.db");
    let conn = rusqlite::Connection::open(&old).unwrap();
    for sql in [
        include_str!("../../crates/mmm-store/src/migrations/0001_initial.sql"),
        include_str!("../../crates/mmm-store/src/migrations/0002_resume.sql"),
        include_str!("../../crates/mmm-store/src/migrations/0003_claims.sql"),
    ] {
        conn.execute_batch(sql).unwrap();
    }
    conn.execute(
        "ATTACH DATABASE ?1 AS new",
        [ws.database().to_str().unwrap()],
    )
    .unwrap();
    conn.execute_batch(
        "PRAGMA user_version = 3;
         INSERT INTO jobs (id, name, status, phase, spec, spec_hash, source, max_parallel,
                           created_at, started_at, updated_at, finished_at, duration_ms,
                           owner_pid, owner_host, heartbeat_at, origin, input_fingerprint)
         SELECT id, name, status, phase, spec, spec_hash, source, max_parallel, created_at,
                started_at, updated_at, finished_at, duration_ms, owner_pid, owner_host,
                heartbeat_at, origin, input_fingerprint FROM new.jobs;
         INSERT INTO items (job_id, idx, key, value, status, attempts, claimed_by, lease_until)
         SELECT j.id, i.idx, i.key, i.value, i.status, i.attempts, i.claimed_by, i.lease_until
         FROM new.items i JOIN new.jobs j USING (job_ref);
         INSERT INTO attempts (job_id, item_idx, number, agent, started_at, ended_at,
                               duration_us, outcome, exit_code, error, steps, stdout_tail,
                               stderr_tail, superseded)
         SELECT j.id, a.item_idx, a.number, a.agent, a.started_at, a.ended_at, a.duration_us,
                a.outcome, a.exit_code, a.error, a.steps, a.stdout_tail, a.stderr_tail,
                a.superseded
         FROM new.attempts a JOIN new.jobs j USING (job_ref);
         INSERT INTO events (seq, job_id, at, kind, item_key, payload)
         SELECT e.seq, j.id, e.at, e.kind, e.item_key, e.payload
         FROM new.events e JOIN new.jobs j USING (job_ref) ORDER BY e.seq;
         INSERT INTO snapshots (job_id, at, payload)
         SELECT j.id, s.at, s.payload FROM new.snapshots s JOIN new.jobs j USING (job_ref);
         INSERT INTO checkpoints (id, job_id, at, phase, reason, last_event_seq, completed,
                                  dead_lettered, skipped)
         SELECT c.id, j.id, c.at, c.phase, c.reason, c.last_event_seq, c.completed,
                c.dead_lettered, c.skipped
         FROM new.checkpoints c JOIN new.jobs j USING (job_ref);
         DETACH DATABASE new;
         PRAGMA journal_mode = WAL;",
    )
    .unwrap();
    drop(conn);
    for suffix in ["", "-wal", "-shm"] {
        let file = format!("{}{suffix}", ws.database().display());
        std::fs::remove_file(&file)
            .or_else(|e| match e.kind() {
                std::io::ErrorKind::NotFound => Ok(()),
                _ => Err(e),
            })
            .unwrap();
    }
    std::fs::rename(&old, ws.database()).unwrap();
}

fn user_version(ws: &Workspace) -> i64 {
    rusqlite::Connection::open(ws.database())
        .unwrap()
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap()
}

#[test]
fn a_job_killed_in_a_version_3_store_resumes_after_the_upgrade() {
    const ITEMS: usize = 120;
    let ws = Workspace::new();
    let items: String = (1..=ITEMS).map(|n| format!("{n}\n")).collect();
    ws.write("items.txt", &items);
    // Items 1-10 run at once; the others wait for the file `go`, written after the kill.
    ws.write(
        "job.yml",
        "map:\n  input: items.txt\n  key: \"${item}\"\n  max_parallel: 4\n  steps:\n\
         \x20   - name: work\n      shell: |\n\
         \x20       [ ${item} -le 10 ] || while [ ! -f go ]; do sleep 0.02; done\n\
         \x20       echo ${item} >> ran.txt\n",
    );
    let mut child = ws.spawn(&["run", "job.yml", "--progress", "none"]);
    wait_until(Duration::from_secs(60), "items 1-10 to complete", || {
        ws.jobs_so_far()
            .first()
            .is_some_and(|j| j.counts.completed >= 10)
    });
    kill9(&mut child);
    let job = ws.only_job();
    assert_eq!(job.counts.completed, 10, "the others wait for `go`");
    let done = completed_keys(&ws);
    let ran_then = ws.read("ran.txt").lines().count();
    let log_then: Vec<(i64, String, Option<String>)> = ws
        .store()
        .events(job.id, 0, 100_000)
        .unwrap()
        .into_iter()
        .map(|e| (e.seq, e.event.kind_name().to_string(), e.item_key))
        .collect();

    rewrite_as_version_3(&ws);
    assert_eq!(user_version(&ws), 3);
    ws.write("go", "");
    ws.run(&["resume", &job.id.to_string(), "--progress", "none"])
        .success();
    assert_eq!(
        user_version(&ws),
        mmm_store::sqlite::SCHEMA_VERSION,
        "opening the store upgraded it"
    );

    let store = ws.store();
    let job = ws.only_job();
    assert_eq!(job.status.as_str(), "completed");
    assert_eq!(job.counts.completed, ITEMS as u64);
    let mut succeeded: BTreeMap<String, usize> = BTreeMap::new();
    for a in store.attempts(job.id, None).unwrap() {
        assert!(a.outcome.is_some(), "no attempt is left in flight: {a:?}");
        if a.outcome == Some(AttemptOutcome::Succeeded) {
            *succeeded.entry(a.item_key).or_default() += 1;
        }
    }
    assert_eq!(succeeded.len(), ITEMS);
    assert!(
        succeeded.values().all(|n| *n == 1),
        "an item succeeded twice"
    );
    for line in &ws.read("ran.txt").lines().collect::<Vec<_>>()[ran_then..] {
        assert!(!done.contains(*line), "{line} was done, yet ran again");
    }
    // The log from before the kill is kept as it was, and the resume's events follow it.
    let log_now: Vec<(i64, String, Option<String>)> = store
        .events(job.id, 0, 100_000)
        .unwrap()
        .into_iter()
        .map(|e| (e.seq, e.event.kind_name().to_string(), e.item_key))
        .collect();
    assert_eq!(log_now[..log_then.len()], log_then[..]);
    assert!(
        log_now[log_then.len()..]
            .iter()
            .any(|e| e.1 == "job_resumed")
    );
    ws.run(&["check", &job.id.to_string()]).success();
}

/// The commands started so far, from `ran.txt` (a `KEY PID` line each).
fn started_commands(ws: &Workspace) -> Vec<(String, i32)> {
    std::fs::read_to_string(ws.join("ran.txt"))
        .unwrap_or_default()
        .lines()
        .filter_map(|line| {
            let (key, pid) = line.split_once(' ')?;
            Some((key.to_string(), pid.parse().ok()?))
        })
        .collect()
}

/// A new job's agents start while the store writer records its items, so a kill can leave a
/// job with no items on record although commands ran: the resume records them all, in input
/// order, and runs the unrecorded commands again.
#[test]
fn a_job_killed_before_its_items_were_recorded_resumes_with_all_of_them() {
    // Enough items that recording them takes far longer than starting the first commands.
    const MANY: usize = 200_000;
    let ws = Workspace::new();
    let items: String = (1..=MANY).map(|n| format!("i{n}\n")).collect();
    ws.write("items.txt", &items);
    ws.write(
        "job.yml",
        r#"
map:
  input: items.txt
  key: "${item}"
  max_parallel: 2
  steps:
    - shell: echo ${item} $$ >> ran.txt; exec sleep 30
"#,
    );
    let mut child = ws.spawn(&["run", "job.yml", "--progress", "none"]);
    wait_until(Duration::from_secs(60), "the first two commands", || {
        started_commands(&ws).len() == 2
    });
    kill9(&mut child);
    let job = ws.only_job();
    assert_eq!(
        job.counts.total(),
        0,
        "commands started before the items were on record"
    );

    let id = job.id.to_string();
    let mut child = ws.spawn(&["resume", &id, "--progress", "none"]);
    wait_until(
        Duration::from_secs(120),
        "the resume's first commands",
        || started_commands(&ws).len() == 4,
    );
    wait_until(Duration::from_secs(120), "the items on record", || {
        ws.only_job().counts.total() == MANY as u64
    });
    kill9(&mut child);
    let started = started_commands(&ws);
    for (_, pid) in &started {
        // The killed runs' commands (their own process groups) would sleep on.
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(*pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }

    let store = ws.store();
    let keys = store.item_keys(ws.only_job().id).unwrap();
    assert_eq!(keys.len(), MANY);
    assert!(
        keys.iter()
            .enumerate()
            .all(|(i, key)| *key == format!("i{}", i + 1)),
        "the items are on record in input order"
    );
    // Each run's two agents took i1 and i2, in either order.
    let mut runs: Vec<&str> = started.iter().map(|(key, _)| key.as_str()).collect();
    runs[..2].sort_unstable();
    runs[2..].sort_unstable();
    assert_eq!(
        runs,
        ["i1", "i2", "i1", "i2"],
        "the first run's commands were not on record, so the resume ran them again"
    );
}
