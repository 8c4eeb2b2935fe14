//! Failing steps: retries, the DLQ with every attempt's exit code and output, missing fields,
//! and timeouts that kill the whole process group.

use std::time::Duration;

use crate::harness::{Workspace, is_alive, wait_until};

#[test]
fn an_always_failing_step_is_tried_1_plus_retries_times_then_dead_lettered() {
    let ws = Workspace::new();
    ws.write("items.txt", "x\n");
    ws.write(
        "job.yml",
        r#"
map:
  input: items.txt
  retries: 2
  backoff: 10ms
  steps:
    - name: prepare
      shell: echo preparing ${item}
    - name: flaky
      shell: echo "out of attempt $MMM_ATTEMPT"; echo "boom $MMM_ATTEMPT" >&2; exit 7
"#,
    );
    ws.run(&["run", "job.yml", "--progress", "none"]).code_is(3);
    let listed = ws.jobs_json();
    let job = &listed[0];
    assert_eq!(job["status"], "completed_with_failures");
    assert_eq!(job["counts"]["dead_lettered"], 1);
    let attempts = job["dlq"][0]["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 3, "1 + retries attempts: {attempts:?}");
    for (i, a) in attempts.iter().enumerate() {
        let n = i + 1;
        assert_eq!(a["number"], n);
        assert_eq!(a["exit_code"], 7);
        assert_eq!(a["outcome"], "failed");
        assert!(
            a["error"]
                .as_str()
                .unwrap()
                .contains("step `flaky` exited with code 7"),
            "{a}"
        );
        assert!(
            a["stdout_tail"]
                .as_str()
                .unwrap()
                .contains(&format!("out of attempt {n}")),
            "{a}"
        );
        assert!(
            a["stdout_tail"].as_str().unwrap().contains("preparing x"),
            "{a}"
        );
        assert!(
            a["stderr_tail"]
                .as_str()
                .unwrap()
                .contains(&format!("boom {n}")),
            "{a}"
        );
    }
}

#[test]
fn a_missing_item_field_fails_the_item_naming_the_field() {
    let ws = Workspace::new();
    ws.write("items.jsonl", "{\"name\": \"a\"}\n");
    ws.write(
        "job.yml",
        "map:\n  input: items.jsonl\n  retries: 3\n  steps:\n    - shell: echo ${item.nmae}\n",
    );
    ws.run(&["run", "job.yml", "--progress", "none"]).code_is(3);
    let listed = ws.jobs_json();
    let attempts = listed[0]["dlq"][0]["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 1, "a rendering error is not retried");
    let error = attempts[0]["error"].as_str().unwrap();
    assert!(error.contains("nmae"), "{error}");
}

#[test]
fn a_non_zero_exit_of_any_step_fails_the_item() {
    let ws = Workspace::new();
    ws.write("items.txt", "a\n");
    ws.write(
        "job.yml",
        "map:\n  input: items.txt\n  steps:\n    - shell: 'true'\n    - shell: 'false'\n    - shell: touch never\n",
    );
    ws.run(&["run", "job.yml", "--progress", "none"]).code_is(3);
    assert!(
        !ws.join("never").exists(),
        "steps after a failed one do not run"
    );
    let job = ws.only_job();
    let attempts = ws.attempts(job.id);
    assert_eq!(attempts[0].steps.len(), 2);
    assert_eq!(attempts[0].exit_code, Some(1));
}

#[test]
fn a_timeout_kills_the_whole_process_group_even_children_ignoring_sigterm() {
    let ws = Workspace::new();
    ws.write("items.txt", "a\n");
    ws.write(
        "job.yml",
        r#"
map:
  input: items.txt
  timeout: 1s
  steps:
    - name: stubborn
      shell: |
        sh -c 'trap "" TERM; echo $$ > child.pid; while true; do sleep 0.1; done' &
        trap "" TERM
        wait
"#,
    );
    let started = std::time::Instant::now();
    let run = ws.run(&["run", "job.yml", "--progress", "none"]);
    run.code_is(3);
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "the timeout did not end the step"
    );
    let pid: i32 = ws.read("child.pid").trim().parse().unwrap();
    wait_until(
        Duration::from_secs(5),
        "the child that ignores SIGTERM to die",
        || !is_alive(pid),
    );
    let job = ws.only_job();
    let attempts = ws.attempts(job.id);
    assert_eq!(attempts[0].outcome.unwrap().as_str(), "timed_out");
    assert!(attempts[0].error.as_deref().unwrap().contains("timed out"));
}
