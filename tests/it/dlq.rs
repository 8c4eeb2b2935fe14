//! `mmm dlq`: listing, showing and exporting a job's dead-lettered items, and the two ways out
//! of the DLQ (retry, purge), through the real binary.

use mmm_core::job::{ItemStatus, JobStatus};

use crate::harness::Workspace;

/// A one-liner job with one dead-lettered item (`bad`) out of three.
fn job_with_one_dead_letter() -> Workspace {
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
        "=",
        "ok",
        ":::",
        "ok",
        "bad",
        "ok",
    ])
    .code_is(3);
    ws
}

/// A job file job whose items `b` and `c` fail twice (1 + 1 retry) and end in the DLQ.
fn job_with_two_dead_letters() -> Workspace {
    let ws = Workspace::new();
    ws.write(
        "items.jsonl",
        "{\"id\":\"a\"}\n{\"id\":\"b\"}\n{\"id\":\"c\"}\n",
    );
    ws.write(
        "job.yml",
        r#"
map:
  input: items.jsonl
  key: "${item.id}"
  retries: 1
  backoff: 1ms
  steps:
    - name: greet
      shell: echo hello ${item.id}
    - name: check
      shell: echo "no luck $MMM_ATTEMPT" >&2; test ${item.id} = a
"#,
    );
    ws.run(&["run", "job.yml", "--progress", "none"]).code_is(3);
    ws
}

fn status_of(ws: &Workspace, key: &str) -> ItemStatus {
    let job = ws.only_job();
    ws.store().item(job.id, key).unwrap().unwrap().status
}

fn event_kinds(ws: &Workspace) -> Vec<(String, Option<String>)> {
    let job = ws.only_job();
    ws.store()
        .events(job.id, 0, 10_000)
        .unwrap()
        .into_iter()
        .map(|e| (e.event.kind_name().to_string(), e.item_key))
        .collect()
}

#[test]
fn dlq_list_shows_each_dead_lettered_item_with_its_last_failure() {
    let ws = job_with_one_dead_letter();
    let id = ws.short_id();
    let listed = ws.json(&["dlq", "list", &id, "--json"]);
    assert_eq!(listed["short_id"], id.as_str());
    assert_eq!(listed["status"], "completed_with_failures");
    assert_eq!(listed["count"], 1);
    let item = &listed["items"][0];
    assert_eq!(item["value"], "bad");
    assert_eq!(item["attempts"], 1);
    assert_eq!(item["last_exit_code"], 1);
    assert!(
        item["last_error"]
            .as_str()
            .unwrap()
            .contains("exited with code 1"),
        "{item}"
    );
    assert!(item["failed_at"].as_i64().unwrap() > 0, "{item}");

    let key = item["key"].as_str().unwrap();
    let run = ws.run(&["dlq", "list", &id]);
    run.success();
    let text = run.stdout();
    assert!(text.contains(key), "{text}");
    assert!(text.contains("\"bad\""), "{text}");
    assert!(text.contains("1 item in the dead-letter queue"), "{text}");
}

#[test]
fn dlq_show_gives_every_attempt_in_full() {
    let ws = job_with_two_dead_letters();
    let id = ws.short_id();
    let shown = ws.json(&["dlq", "show", &id, "b", "--json"]);
    assert_eq!(shown["key"], "b");
    assert_eq!(shown["status"], "dead_lettered");
    assert_eq!(shown["value"], serde_json::json!({ "id": "b" }));
    assert_eq!(shown["counted_attempts"], 2);
    let attempts = shown["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "{shown}");
    for (i, a) in attempts.iter().enumerate() {
        assert_eq!(a["number"], i + 1);
        assert!(a["agent"].as_str().unwrap().starts_with("agent-"), "{a}");
        assert_eq!(a["outcome"], "failed");
        assert_eq!(a["exit_code"], 1);
        assert!(a["duration_ms"].as_f64().unwrap() >= 0.0);
        assert!(a["ended_at"].as_i64().unwrap() >= a["started_at"].as_i64().unwrap());
        let steps = a["steps"].as_array().unwrap();
        assert_eq!(steps.len(), 2, "{a}");
        assert_eq!(steps[0]["name"], "greet");
        assert_eq!(steps[0]["exit_code"], 0);
        assert_eq!(steps[1]["name"], "check");
        assert_eq!(steps[1]["exit_code"], 1);
        assert!(steps[1]["duration_ms"].as_f64().unwrap() >= 0.0);
        assert!(
            a["stdout_tail"].as_str().unwrap().contains("hello b"),
            "{a}"
        );
        assert!(
            a["stderr_tail"]
                .as_str()
                .unwrap()
                .contains(&format!("no luck {}", i + 1)),
            "{a}"
        );
    }

    let run = ws.run(&["dlq", "show", &id, "b"]);
    run.success();
    let text = run.stdout();
    for expected in [
        "item `b`",
        "dead_lettered",
        "attempt 1 on agent-",
        "attempt 2 on agent-",
        "exit code 1",
        "step `check` exited with code 1",
        "| hello b",
        "| no luck 2",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in\n{text}");
    }
}

#[test]
fn dlq_export_writes_one_versioned_object_per_item() {
    let ws = job_with_two_dead_letters();
    let id = ws.short_id();
    let run = ws.run(&["dlq", "export", &id]);
    run.success();
    let lines: Vec<serde_json::Value> = run
        .stdout()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["version"], 1);
    assert_eq!(lines[0]["key"], "b");
    assert_eq!(lines[1]["key"], "c");
    assert_eq!(lines[0]["value"], serde_json::json!({ "id": "b" }));
    assert_eq!(lines[0]["attempts"].as_array().unwrap().len(), 2);
    assert_eq!(
        lines[0]["job"].as_str().unwrap(),
        ws.only_job().id.to_string()
    );

    let run = ws.run(&["dlq", "export", &id, "--format", "json", "-o", "dlq.json"]);
    run.success();
    assert!(run.stderr().contains("dlq.json"), "{}", run.stderr());
    let array: serde_json::Value = serde_json::from_str(&ws.read("dlq.json")).unwrap();
    assert_eq!(array.as_array().unwrap().len(), 2);
    assert_eq!(array[1]["key"], "c");

    // --values writes an input file for a new run.
    ws.run(&["dlq", "export", &id, "--values", "-o", "retry.jsonl"])
        .success();
    assert_eq!(ws.read("retry.jsonl"), "{\"id\":\"b\"}\n{\"id\":\"c\"}\n");
}

/// Issue 24: `-o -` is standard output for the commands that write a file (`mmm dlq export`,
/// `mmm export`), as for other Unix tools, never a file named `-`.
#[test]
fn dash_as_the_output_file_is_standard_output() {
    let ws = job_with_two_dead_letters();
    let id = ws.short_id();
    let run = ws.run(&["dlq", "export", &id, "-o", "-"]);
    run.success();
    assert_eq!(run.stdout().lines().count(), 2, "{}", run.stdout());
    assert!(!ws.join("-").exists(), "a file named - was written");

    let run = ws.run(&["export", &id, "--format", "csv", "-o", "-"]);
    run.success();
    let csv = run.stdout();
    assert!(csv.starts_with("key,status,attempts"), "{csv}");
    assert_eq!(
        csv.lines().count(),
        1 + 3,
        "a header and the job's three items: {csv}"
    );
    assert!(!ws.join("-").exists(), "a file named - was written");

    // A real file still gets the bytes, and standard output stays empty.
    let run = ws.run(&["export", &id, "--format", "csv", "-o", "items.csv"]);
    run.success();
    assert!(run.stdout().is_empty());
    assert_eq!(ws.read("items.csv"), csv);
}

#[test]
fn dlq_retry_requeues_items_with_a_fresh_budget_and_reopens_the_job() {
    let ws = job_with_two_dead_letters();
    let id = ws.short_id();
    let job = ws.only_job();
    assert_eq!(ws.attempts(job.id).len(), 5);

    let run = ws.run(&["dlq", "retry", &id, "b", "--no-resume"]);
    run.success();
    let text = run.stdout();
    assert!(text.contains("moved 1 item"), "{text}");
    assert!(
        text.contains(&format!("continue the job with `mmm resume {id}`")),
        "{text}"
    );
    let store = ws.store();
    let b = store.item(job.id, "b").unwrap().unwrap();
    assert_eq!(b.status, ItemStatus::Pending);
    assert_eq!(b.attempts, 0, "the retry budget is reset");
    assert_eq!(status_of(&ws, "c"), ItemStatus::DeadLettered);
    assert_eq!(
        ws.attempts(job.id).len(),
        5,
        "the attempts are kept as history"
    );
    let after = ws.only_job();
    assert_eq!(after.status, JobStatus::Interrupted, "resumable");
    assert_eq!(after.finished_at, None);
    assert_eq!(after.counts.pending, 1);
    assert_eq!(after.counts.dead_lettered, 1);
    let events = event_kinds(&ws);
    assert!(events.contains(&("dlq_retry".to_string(), Some("b".to_string()))));
    assert!(events.contains(&("job_status_changed".to_string(), None)));

    // Without keys: every remaining dead-lettered item; the job stays interrupted.
    let run = ws.run(&["dlq", "retry", &id, "--no-resume"]);
    run.success();
    assert!(run.stdout().contains("moved 1 item"), "{}", run.stdout());
    assert_eq!(status_of(&ws, "c"), ItemStatus::Pending);
    assert_eq!(ws.only_job().status, JobStatus::Interrupted);

    let run = ws.run(&["dlq", "retry", &id]);
    run.success();
    assert!(
        run.stdout().contains("nothing to retry"),
        "{}",
        run.stdout()
    );
    ws.run(&["check"]).success();
}

#[test]
fn dlq_retry_and_purge_refuse_unknown_or_not_dead_lettered_keys_and_change_nothing() {
    let ws = job_with_two_dead_letters();
    let id = ws.short_id();
    for command in ["retry", "purge"] {
        let args = |keys: &[&'static str]| -> Vec<&str> {
            let mut args = vec!["dlq", command, id.as_str()];
            args.extend_from_slice(keys);
            if command == "purge" {
                args.push("--yes");
            }
            args
        };
        let run = ws.run(&args(&["b", "nope", "zilch"]));
        run.code_is(2);
        let err = run.stderr();
        assert!(err.contains("`nope`") && err.contains("`zilch`"), "{err}");
        assert!(!err.contains("`b`"), "b exists: {err}");

        let run = ws.run(&args(&["a", "b"]));
        run.code_is(2);
        assert!(run.stderr().contains("`a` (completed)"), "{}", run.stderr());
    }
    assert_eq!(status_of(&ws, "b"), ItemStatus::DeadLettered);
    assert_eq!(
        ws.only_job().status,
        JobStatus::CompletedWithFailures,
        "nothing changed"
    );
    ws.run(&["dlq", "show", &id, "nope"]).code_is(2);
}

#[test]
fn dlq_purge_asks_for_yes_when_stdin_is_not_a_terminal() {
    let ws = job_with_one_dead_letter();
    let id = ws.short_id();
    let run = ws.run(&["dlq", "purge", &id]);
    run.code_is(2);
    assert!(run.stderr().contains("--yes"), "{}", run.stderr());
    assert_eq!(ws.only_job().counts.dead_lettered, 1, "nothing purged");
}

#[test]
fn dlq_purge_marks_items_skipped_keeps_their_history_and_completes_the_job() {
    let ws = job_with_two_dead_letters();
    let id = ws.short_id();
    let job = ws.only_job();

    let run = ws.run(&["dlq", "purge", &id, "b", "--yes"]);
    run.success();
    assert!(run.stdout().contains("purged 1 item"), "{}", run.stdout());
    assert_eq!(status_of(&ws, "b"), ItemStatus::Skipped);
    let partly = ws.only_job();
    assert_eq!(partly.status, JobStatus::CompletedWithFailures, "c is left");
    assert_eq!(partly.counts.dead_lettered, 1);

    ws.run(&["dlq", "purge", &id, "--yes"]).success();
    let after = ws.only_job();
    assert_eq!(after.status, JobStatus::Completed);
    assert_eq!(after.counts.dead_lettered, 0);
    assert_eq!(after.counts.skipped, 2);
    assert!(after.finished_at.is_some());
    assert_eq!(ws.attempts(job.id).len(), 5, "history is kept");
    let purged: Vec<_> = event_kinds(&ws)
        .into_iter()
        .filter(|(kind, _)| kind == "dlq_purged")
        .map(|(_, key)| key.unwrap())
        .collect();
    assert_eq!(purged, ["b", "c"]);

    let listed = ws.json(&["dlq", "list", &id, "--json"]);
    assert_eq!(listed["count"], 0);
    let shown = ws.json(&["dlq", "show", &id, "c", "--json"]);
    assert_eq!(shown["status"], "skipped");
    assert_eq!(shown["attempts"].as_array().unwrap().len(), 2);
    ws.run(&["check"]).success();

    let run = ws.run(&["dlq", "purge", &id, "--yes"]);
    run.success();
    assert!(
        run.stdout().contains("nothing to purge"),
        "{}",
        run.stdout()
    );
}

#[test]
fn dlq_commands_reject_unknown_jobs_as_usage_errors() {
    let ws = job_with_one_dead_letter();
    for args in [
        &["dlq", "list", "ffffff"][..],
        &["dlq", "show", "ffffff", "x"],
        &["dlq", "export", "ffffff"],
        &["dlq", "retry", "ffffff"],
        &["dlq", "purge", "ffffff", "--yes"],
        &["dlq", "list", "not-hex!"],
    ] {
        let run = ws.run(args);
        run.code_is(2);
        assert!(
            run.stderr().contains("mmm jobs"),
            "{args:?}: {}",
            run.stderr()
        );
    }
}

#[test]
fn dlq_retry_continues_the_job_and_the_fixed_items_complete() {
    let ws = Workspace::new();
    ws.write("items.txt", "a\nb\n");
    ws.write(
        "job.yml",
        "map:\n  input: items.txt\n  key: \"${item}\"\n  steps:\n    - shell: test -e fixed-${item}\n",
    );
    ws.run(&["run", "job.yml", "--progress", "none"]).code_is(3);
    assert_eq!(ws.only_job().counts.dead_lettered, 2);
    ws.write("fixed-a", "");
    ws.write("fixed-b", "");
    let id = ws.short_id();
    let run = ws.run(&["dlq", "retry", &id, "--progress", "none"]);
    run.success();
    let job = ws.only_job();
    assert_eq!(job.status, JobStatus::Completed, "{}", run.stderr());
    assert_eq!((job.counts.completed, job.counts.dead_lettered), (2, 0));
    // Each item: attempt 1 failed, attempt 2 (after the retry) succeeded.
    let numbers: Vec<(String, u32)> = ws
        .attempts(job.id)
        .into_iter()
        .map(|a| (a.item_key, a.number))
        .collect();
    assert_eq!(
        numbers,
        [
            ("a".into(), 1),
            ("a".into(), 2),
            ("b".into(), 1),
            ("b".into(), 2)
        ]
    );
}
