//! The GNU-parallel-style one-liner: items after `:::` or from `--input`, replacement strings,
//! output shown, every item recorded.

use crate::harness::Workspace;

#[test]
fn echo_over_three_items_prints_them_and_records_three_completed() {
    let ws = Workspace::new();
    let run = ws.run(&["run", "-j", "2", "--", "echo", "{}", ":::", "a", "b", "c"]);
    run.success();
    let mut lines: Vec<String> = run.stdout().lines().map(str::to_string).collect();
    lines.sort();
    assert_eq!(lines, ["a", "b", "c"]);

    let job = ws.only_job();
    assert_eq!(job.status.as_str(), "completed");
    assert_eq!(job.counts.completed, 3);
    assert_eq!(job.counts.total(), 3);
    let listed = ws.jobs_json();
    assert_eq!(listed[0]["counts"]["completed"], 3);
    assert_eq!(listed[0]["status"], "completed");
    assert_eq!(listed[0]["percent"], 100.0);
}

#[test]
fn replacement_strings_follow_gnu_parallel() {
    let ws = Workspace::new();
    let run = ws.run(&[
        "run",
        "-j",
        "1",
        "--",
        "echo",
        "{#}",
        "{}",
        "{/}",
        "{//}",
        "{.}",
        "{/.}",
        ":::",
        "dir.x/photo.tar.gz",
    ]);
    run.success();
    assert_eq!(
        run.stdout().trim(),
        "1 dir.x/photo.tar.gz photo.tar.gz dir.x dir.x/photo.tar photo.tar"
    );
}

#[test]
fn without_a_replacement_string_the_item_is_appended() {
    let ws = Workspace::new();
    let run = ws.run(&["run", "-j", "1", "--", "echo", "item:", ":::", "x"]);
    run.success();
    assert_eq!(run.stdout().trim(), "item: x");
}

#[test]
fn input_file_gives_one_item_per_line() {
    let ws = Workspace::new();
    ws.write("items.txt", "one\ntwo\nthree\n");
    let run = ws.run(&[
        "run",
        "-j",
        "3",
        "--input",
        "items.txt",
        "--",
        "echo",
        "got",
        "{}",
    ]);
    run.success();
    let mut lines: Vec<String> = run.stdout().lines().map(str::to_string).collect();
    lines.sort();
    assert_eq!(lines, ["got one", "got three", "got two"]);
    assert_eq!(ws.only_job().counts.completed, 3);
}

#[test]
fn shell_syntax_in_the_command_runs_through_a_shell() {
    let ws = Workspace::new();
    let run = ws.run(&[
        "run",
        "-j",
        "1",
        "--",
        "echo {} | tr a-z A-Z",
        ":::",
        "shout",
    ]);
    run.success();
    assert_eq!(run.stdout().trim(), "SHOUT");
}

#[test]
fn failing_items_make_exit_code_3_and_land_in_the_dlq() {
    let ws = Workspace::new();
    let run = ws.run(&[
        "run", "-j", "2", "--", "test", "{}", "=", "ok", ":::", "ok", "bad", "ok",
    ]);
    run.code_is(3);
    let job = ws.only_job();
    assert_eq!(job.status.as_str(), "completed_with_failures");
    assert_eq!((job.counts.completed, job.counts.dead_lettered), (2, 1));
    let listed = ws.jobs_json();
    assert_eq!(listed[0]["dlq"][0]["value"], "bad");
    assert_eq!(listed[0]["dlq"][0]["attempts"][0]["exit_code"], 1);
}

#[test]
fn the_environment_carries_the_item() {
    let ws = Workspace::new();
    let run = ws.run(&[
        "run", "-j", "1", "--",
        "sh -c 'printf \"%s|%s|%s|%s\\n\" \"$MMM_ITEM\" \"$MMM_ITEM_KEY\" \"$MMM_AGENT\" \"$MMM_ITEM_RAW\"'",
        ":::", "v1",
    ]);
    run.success();
    let out = run.stdout();
    let fields: Vec<&str> = out.trim().split('|').collect();
    assert_eq!(fields[0], "\"v1\"");
    assert!(fields[1].starts_with("000001-"), "key {}", fields[1]);
    assert_eq!(fields[2], "agent-1");
    assert_eq!(fields[3], "v1");
}

#[test]
fn nothing_to_run_is_a_usage_error() {
    let ws = Workspace::new();
    let run = ws.run(&["run"]);
    run.code_is(2);
    assert!(run.stderr().contains("nothing to run"), "{}", run.stderr());
    assert!(!ws.has_store(), "a usage error writes nothing");
}
