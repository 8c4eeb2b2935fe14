//! `mmm check` and `mmm repair` through the real binary: a clean store, records damaged
//! through SQL behind mmm's back, live owners, and store files SQLite cannot read.

use mmm_core::job::{AttemptOutcome, ItemStatus, JobStatus};

use crate::harness::{Run, Workspace};

/// Items `ok`, `bad`, `ok2` (positions 0, 1, 2): `bad` ends in the DLQ.
fn finished_job() -> Workspace {
    let ws = Workspace::new();
    ws.run(&[
        "run",
        "-j",
        "2",
        "--progress",
        "none",
        "--",
        "test",
        "{}",
        "!=",
        "bad",
        ":::",
        "ok",
        "bad",
        "ok2",
    ])
    .code_is(3);
    ws
}

fn item_status(ws: &Workspace, index: u64) -> ItemStatus {
    let job = ws.only_job();
    ws.store().items(job.id, None).unwrap()[index as usize].status
}

fn problem_kinds(ws: &Workspace) -> Vec<String> {
    let run = ws.run(&["check", "--json"]);
    run.code_is(1);
    let report: serde_json::Value = serde_json::from_str(&run.stdout()).unwrap();
    assert_eq!(report["ok"], false);
    report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["kind"].as_str().unwrap().to_string())
        .collect()
}

fn assert_no_panic(run: &Run) {
    assert!(!run.stderr().contains("panicked"), "{}", run.stderr());
}

#[test]
fn check_of_a_sound_store_exits_0() {
    let ws = finished_job();
    ws.run(&["run", "--progress", "none", "--", "true", ":::", "a", "b"])
        .success();
    let run = ws.run(&["check"]);
    run.success();
    assert!(run.stdout().contains("is sound"), "{}", run.stdout());
    assert!(run.stdout().contains("2 jobs checked"), "{}", run.stdout());
    let report = ws.json(&["check", "--json"]);
    assert_eq!(report["ok"], true);
    assert_eq!(report["jobs_checked"], 2);
    assert_eq!(report["problems"], serde_json::json!([]));
    assert_eq!(report["storage"], serde_json::json!([]));
    assert!(report["store"].as_str().unwrap().ends_with("mmm.db"));
}

#[test]
fn a_completed_item_without_success_is_reported_and_repair_requeues_it() {
    let ws = finished_job();
    let id = ws.only_job().id.short();
    ws.sql("UPDATE attempts SET outcome = 'failed', exit_code = 1 WHERE item_idx = 0");

    let run = ws.run(&["check"]);
    run.code_is(1);
    let text = run.stdout();
    assert!(text.contains(&id), "{text}");
    assert!(text.contains("completed_without_success"), "{text}");
    assert!(
        text.contains("1 completed item has no succeeded attempt"),
        "{text}"
    );
    assert!(text.contains(&format!("mmm repair {id}")), "{text}");
    let report = ws.json_failing(&["check", &id, "--json"]);
    let problem = &report["problems"][0];
    assert_eq!(problem["short_id"], id.as_str());
    assert_eq!(problem["count"], 1);
    assert_eq!(problem["items"].as_array().unwrap().len(), 1);

    let run = ws.run(&["repair", &id]);
    run.success();
    let text = run.stdout();
    assert!(
        text.contains("put 1 completed item without a succeeded attempt back to `pending`"),
        "{text}"
    );
    assert!(
        text.contains("from `completed_with_failures` to `interrupted`"),
        "{text}"
    );
    assert_eq!(item_status(&ws, 0), ItemStatus::Pending);
    assert_eq!(ws.only_job().status, JobStatus::Interrupted);
    let job = ws.only_job();
    let events = ws.store().events(job.id, 0, 10_000).unwrap();
    let repaired = events
        .iter()
        .find(|e| e.event.kind_name() == "repaired")
        .unwrap()
        .event
        .payload();
    assert_eq!(
        repaired["changes"].as_array().unwrap().len(),
        2,
        "{repaired}"
    );

    ws.run(&["check"]).success();
    let run = ws.run(&["repair", &id, "--json"]);
    run.success();
    let report: serde_json::Value = serde_json::from_str(&run.stdout()).unwrap();
    assert_eq!(
        report["changed"], false,
        "a second repair has nothing to do"
    );
}

#[test]
fn an_attempt_left_in_flight_by_a_dead_owner_is_closed_by_repair() {
    let ws = finished_job();
    let id = ws.only_job().id.short();
    // As if the process died mid-attempt: the job `running`, item 2 running, its attempt open.
    ws.sql(
        "UPDATE jobs SET status = 'running', finished_at = NULL;
         UPDATE items SET status = 'running' WHERE idx = 2;
         UPDATE attempts SET outcome = NULL, ended_at = NULL, duration_us = NULL
          WHERE item_idx = 2;",
    );
    let kinds = problem_kinds(&ws);
    assert_eq!(kinds, ["stale_attempt", "owner_gone"], "{kinds:?}");

    let report = ws.json(&["repair", &id, "--json"]);
    assert_eq!(report["changed"], true);
    let actions: Vec<&str> = report["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        ["interrupt_attempt", "requeue_item", "set_job_status"]
    );
    let job = ws.only_job();
    assert_eq!(job.status, JobStatus::Interrupted);
    assert_eq!(item_status(&ws, 2), ItemStatus::Pending);
    let attempt = ws
        .attempts(job.id)
        .into_iter()
        .find(|a| a.item_index == 2)
        .unwrap();
    assert_eq!(attempt.outcome, Some(AttemptOutcome::Interrupted));
    assert!(attempt.ended_at.is_some());
    assert!(attempt.error.unwrap().contains("mmm repair"));
    ws.run(&["check"]).success();
}

#[test]
fn a_running_item_without_an_attempt_and_a_dead_letter_without_failure_are_repaired() {
    let ws = finished_job();
    let id = ws.only_job().id.short();
    ws.sql(
        "UPDATE items SET status = 'running' WHERE idx = 0;
         UPDATE attempts SET outcome = 'interrupted' WHERE item_idx = 1;",
    );
    let kinds = problem_kinds(&ws);
    assert_eq!(
        kinds,
        [
            "dead_lettered_without_failure",
            "running_without_attempt",
            "status_contradicts_counts"
        ],
        "{kinds:?}"
    );
    ws.run(&["repair", &id]).success();
    assert_eq!(item_status(&ws, 0), ItemStatus::Pending);
    assert_eq!(item_status(&ws, 1), ItemStatus::Pending);
    assert_eq!(ws.only_job().status, JobStatus::Interrupted);
    ws.run(&["check"]).success();
}

#[test]
fn a_gap_in_attempt_numbers_is_reported_and_left_alone_by_repair() {
    let ws = finished_job();
    let id = ws.only_job().id.short();
    ws.sql("UPDATE attempts SET number = 3 WHERE item_idx = 0");
    assert_eq!(problem_kinds(&ws), ["attempt_number_gap"]);
    let run = ws.run(&["repair", &id]);
    run.code_is(1);
    assert!(
        run.stdout().contains("nothing to repair"),
        "{}",
        run.stdout()
    );
    assert!(run.stdout().contains("not repairable"), "{}", run.stdout());
}

#[test]
fn repair_refuses_a_job_whose_owner_is_alive() {
    let ws = finished_job();
    let id = ws.only_job().id.short();
    let pid = std::process::id();
    let host = mmm_store::owner::host_name();
    ws.sql(&format!(
        "UPDATE jobs SET status = 'running', owner_pid = {pid}, owner_host = '{}';
         UPDATE items SET status = 'running' WHERE idx = 2;
         UPDATE attempts SET outcome = NULL, ended_at = NULL WHERE item_idx = 2;",
        host.replace('\'', "''")
    ));
    // A live owner may have attempts in flight: nothing to report.
    ws.run(&["check"]).success();

    let run = ws.run(&["repair", &id]);
    run.code_is(1);
    assert!(
        run.stderr().contains(&format!("pid {pid}")),
        "{}",
        run.stderr()
    );
    assert!(run.stderr().contains(&host), "{}", run.stderr());
    assert_eq!(ws.only_job().status, JobStatus::Running, "nothing changed");
    assert_eq!(item_status(&ws, 2), ItemStatus::Running);
    // The DLQ of a running job is left alone too.
    ws.run(&["dlq", "retry", &id]).code_is(1);
}

#[test]
fn check_and_repair_of_an_unknown_job_are_usage_errors() {
    let ws = finished_job();
    ws.run(&["check", "ffffff"]).code_is(2);
    ws.run(&["repair", "ffffff"]).code_is(2);
    let run = Workspace::new().run(&["check"]);
    run.code_is(1);
    assert!(run.stderr().contains("no store"), "{}", run.stderr());
}

#[test]
fn damaged_store_files_are_refused_with_their_path_and_no_panic() {
    let ws = finished_job();
    let id = ws.short_id();
    let db = ws.database();
    assert!(
        !ws.join(".mmm/mmm.db-wal").exists(),
        "the last connection checkpointed the WAL"
    );
    let whole = std::fs::read(&db).unwrap();
    // Fixed offsets that hit the header and the first pages, and three random ones (fresh on
    // every run of the test).
    // A cut inside the last page (or two) may only lose bytes SQLite never reads (the unused
    // tail of a page, zero-filled on a short read): the random cuts lose at least one whole
    // page. The page size is the header's big-endian u16 at offset 16.
    let page = u16::from_be_bytes([whole[16], whole[17]]) as usize;
    let random = |salt: usize| {
        use std::hash::{BuildHasher, RandomState};
        RandomState::new().hash_one(salt) as usize % (whole.len() - 2 * page)
    };
    let mut damaged: Vec<(String, Vec<u8>)> = [
        50,
        100,
        4_096 + 100,
        8_000,
        whole.len() / 2,
        random(1),
        random(2),
        random(3),
    ]
    .into_iter()
    .map(|keep| (format!("truncated to {keep} bytes"), whole[..keep].to_vec()))
    .collect();
    damaged.push((
        "garbage".to_string(),
        (0..20_000u32).map(|i| (i * 7919 % 251) as u8).collect(),
    ));
    for (what, bytes) in damaged {
        std::fs::write(&db, &bytes).unwrap();
        for args in [&["check"][..], &["jobs"], &["resume", &id]] {
            let run = ws.run(args);
            assert_no_panic(&run);
            // `check` reads every page, so it always sees the damage; the others may not
            // touch the pages a truncation removed, but when they fail, they say where.
            if args[0] == "check" {
                assert_ne!(run.code(), 0, "{what}: mmm {args:?}\n{}", run.stdout());
            }
            // (A resume that could still read the job refuses it as finished.)
            // (`check` may also find the damage itself and report it on stdout.)
            let said = format!("{}{}", run.stdout(), run.stderr());
            if run.code() != 0 && !said.contains("nothing to resume") {
                assert!(
                    said.contains(&db.display().to_string()) || said.contains(".mmm"),
                    "{what}: mmm {args:?} does not name the file:\n{}",
                    run.stderr()
                );
            }
        }
        // Either SQLite refuses the file (an error naming it), or its integrity check lists
        // the damage (a report): both say what to do with the file.
        let run = ws.run(&["check"]);
        let said = format!("{}{}", run.stdout(), run.stderr());
        assert!(
            said.contains("damage")
                && (said.contains("move it aside") || said.contains("copy the file aside")),
            "{what}: {said}"
        );
    }

    std::fs::write(&db, b"").unwrap();
    let run = ws.run(&["check"]);
    run.code_is(1);
    assert!(run.stderr().contains("empty (0 bytes)"), "{}", run.stderr());
}
