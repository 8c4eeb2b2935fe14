//! Job files: errors found before anything runs, `mmm validate`, phases, conditions, and
//! durations that are measured.

use std::time::Duration;

use crate::harness::Workspace;

/// Runs an invalid job file and checks it fails with exit code 2, names `job.yml:LINE:COL`,
/// gives a hint, and writes nothing.
fn assert_rejected(yaml: &str, line_col: &str, mentions: &str) {
    let ws = Workspace::new();
    ws.write("items.txt", "a\n");
    ws.write("job.yml", yaml);
    let run = ws.run(&["run", "job.yml"]);
    run.code_is(2);
    let err = run.stderr();
    assert!(
        err.contains(&format!("job.yml:{line_col}")),
        "no job.yml:{line_col} in:\n{err}"
    );
    assert!(err.contains(mentions), "no {mentions:?} in:\n{err}");
    assert!(err.contains("hint:"), "no hint in:\n{err}");
    assert!(
        !ws.has_store(),
        "an invalid job file must not create a store"
    );
    // `validate` reports the same error, with the same exit code.
    let run = ws.run(&["validate", "job.yml"]);
    run.code_is(2);
    assert!(
        run.stderr().contains(&format!("job.yml:{line_col}")),
        "{}",
        run.stderr()
    );
}

#[test]
fn yaml_syntax_error_names_line_and_column() {
    assert_rejected(
        "map:\n  input: items.txt\n  steps:\n    - shell: echo [unclosed\n      name: x: y\n",
        "5:",
        "",
    );
}

#[test]
fn unknown_key_is_an_error() {
    assert_rejected(
        "map:\n  input: items.txt\n  retrys: 3\n  steps:\n    - shell: echo ${item}\n",
        "3:3",
        "retrys",
    );
}

#[test]
fn bad_duration_is_an_error() {
    assert_rejected(
        "map:\n  input: items.txt\n  timeout: 5 parsecs\n  steps:\n    - shell: echo ${item}\n",
        "3:",
        "5 parsecs",
    );
}

#[test]
fn missing_input_is_an_error() {
    assert_rejected(
        "map:\n  input: nowhere.jsonl\n  steps:\n    - shell: echo ${item}\n",
        "2:",
        "nowhere.jsonl",
    );
}

#[test]
fn validate_prints_the_normalised_plan() {
    let ws = Workspace::new();
    ws.write("items.txt", "a\n");
    ws.write(
        "job.yml",
        "map:\n  input: items.txt\n  steps:\n    - shell: echo ${item}\n",
    );
    let run = ws.run(&["validate", "job.yml", "--json"]);
    run.success();
    let plan: serde_json::Value = serde_json::from_str(&run.stdout()).unwrap();
    assert_eq!(plan["map"]["retries"], 0);
    assert_eq!(plan["map"]["steps"][0]["name"], "step1");
    assert!(!ws.has_store());
    let run = ws.run(&["validate", "job.yml"]);
    run.success();
    assert!(run.stdout().contains("steps"), "{}", run.stdout());
}

#[test]
fn setup_map_and_reduce_run_in_order_with_counts() {
    let ws = Workspace::new();
    ws.write(
        "job.yml",
        r#"
name: phases
env:
  GREETING: hello
setup:
  - shell: |
      printf '{"n": 1, "go": true}\n{"n": 2, "go": false}\n{"n": 3, "go": true}\n' > items.jsonl
map:
  input: items.jsonl
  key: "n${item.n}"
  max_parallel: 2
  steps:
    - name: only-some
      when: "${item.go}"
      shell: echo ${GREETING} ${item.n} >> log.txt
reduce:
  - shell: echo "done ${map.completed} skipped ${map.skipped} dlq ${map.dead_lettered}" > reduce.txt
"#,
    );
    ws.run(&["run", "job.yml", "--progress", "none"]).success();
    let mut log: Vec<String> = ws.read("log.txt").lines().map(str::to_string).collect();
    log.sort();
    assert_eq!(log, ["hello 1", "hello 3"]);
    assert_eq!(ws.read("reduce.txt").trim(), "done 2 skipped 1 dlq 0");
    let job = ws.only_job();
    assert_eq!(job.name, "phases");
    assert_eq!((job.counts.completed, job.counts.skipped), (2, 1));
    assert_eq!(job.status.as_str(), "completed");
}

#[test]
fn a_failing_setup_fails_the_job_with_exit_code_1() {
    let ws = Workspace::new();
    ws.write(
        "job.yml",
        "setup:\n  - shell: echo broken >&2; exit 4\nmap:\n  input: items.txt\n  steps:\n    - shell: echo ${item}\n",
    );
    let run = ws.run(&["run", "job.yml", "--progress", "none"]);
    run.code_is(1);
    assert!(
        run.stderr().contains("exited with code 4"),
        "{}",
        run.stderr()
    );
    assert_eq!(ws.only_job().status.as_str(), "failed");
}

#[test]
fn durations_in_the_store_are_measured() {
    let ws = Workspace::new();
    ws.write(
        "job.yml",
        "map:\n  input: items.txt\n  max_parallel: 2\n  steps:\n    - name: nap\n      shell: sleep 0.5\n    - name: quick\n      shell: 'true'\n",
    );
    ws.write("items.txt", "a\nb\n");
    ws.run(&["run", "job.yml", "--progress", "none"]).success();
    let job = ws.only_job();
    let attempts = ws.attempts(job.id);
    assert_eq!(attempts.len(), 2);
    for a in &attempts {
        let total = Duration::from_micros(a.duration_us.unwrap());
        let nap = Duration::from_micros(a.steps[0].duration_us);
        // The upper bound catches a unit or a source mix-up (the item's time, microseconds
        // read as ms), with room for a loaded machine: 550 ms failed once at load 10.
        assert!(
            nap >= Duration::from_millis(500) && nap < Duration::from_secs(2),
            "nap took {nap:?}"
        );
        assert!(
            total >= nap,
            "attempt {total:?} shorter than its step {nap:?}"
        );
        assert!(a.steps[1].duration_us > 0, "every step is measured");
        assert!(a.ended_at.unwrap() >= a.started_at);
    }
    assert!(
        job.duration_ms >= 500,
        "job duration {} ms",
        job.duration_ms
    );
}
