//! `mmm runs`: observed ML run folders, classified, measured and watched (issue 7).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

use filetime::FileTime;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;

use crate::harness::{Killed, Workspace, wait_until};

pub(crate) const MIN: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(86_400);

pub(crate) fn ago(d: Duration) -> SystemTime {
    SystemTime::now() - d
}

/// Writes a file with a modification time.
pub(crate) fn file(path: &Path, text: &str, at: SystemTime) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
    filetime::set_file_mtime(path, FileTime::from_system_time(at)).unwrap();
}

/// One complete epoch: the three expected files, accuracy `acc`.
pub(crate) fn epoch(run: &Path, e: u32, acc: f64, at: SystemTime) {
    let dir = run.join(format!("epoch_{e}"));
    file(&dir.join("training_losses.pt"), "losses", at);
    file(&dir.join("optimizer_buffer.json"), "{}", at);
    file(
        &dir.join("validation_scores.json"),
        &format!(r#"{{"aggregated": {{"acc": {acc}}}}}"#),
        at,
    );
}

/// A trainer with `done` epochs out of `total`, its log written at `log`.
pub(crate) fn trainer(run: &Path, done: u32, total: u32, at: SystemTime, log: SystemTime) {
    for e in 0..done {
        epoch(run, e, 0.5 + f64::from(e) / 100.0, at);
    }
    file(
        &run.join("config.json"),
        &format!(r#"{{"epochs": {total}}}"#),
        at,
    );
    file(&run.join("train_val.log"), "log", log);
}

fn rules(ws: &Workspace) -> PathBuf {
    ws.write(
        "runs.yml",
        "trainer:\n  scores: {file: validation_scores.json, metric: aggregated.acc}\n",
    )
}

fn by_name<'a>(runs: &'a Value, name: &str) -> &'a Value {
    runs.as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("no run {name} in {runs:#}"))
}

#[test]
fn a_tree_of_runs_as_json_and_as_a_table() {
    let ws = Workspace::new();
    let logs = ws.join("logs");
    let partial = logs.join("partial");
    trainer(&partial, 7, 10, ago(5 * MIN), ago(3 * MIN));
    // The 8th epoch is half written: an empty expected file.
    file(
        &partial.join("epoch_7/training_losses.pt"),
        "",
        ago(4 * MIN),
    );
    trainer(&logs.join("finished"), 10, 10, ago(5 * DAY), ago(5 * DAY));
    trainer(&logs.join("old"), 10, 10, ago(40 * DAY), ago(40 * DAY));
    trainer(&logs.join("dead"), 2, 10, ago(3 * HOUR), ago(2 * HOUR));
    let early = logs.join("early");
    trainer(&early, 4, 10, ago(DAY), ago(DAY));
    file(
        &early.join("early_stopped.json"),
        r#"{"epoch": 3}"#,
        ago(DAY),
    );
    file(
        &logs.join("eval_done/evaluation_scores.json"),
        r#"{"acc": 0.91}"#,
        ago(DAY),
    );
    file(&logs.join("eval_waiting/eval_0.log"), "x", ago(2 * DAY));

    let config = rules(&ws);
    let runs = ws.json(&[
        "runs",
        "logs",
        "--config",
        config.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(runs["problems"], serde_json::json!([]));
    let runs = &runs["runs"];
    assert_eq!(runs.as_array().unwrap().len(), 7);
    let cases = [
        ("partial", "trainer", "running", 7, 70.0),
        ("finished", "trainer", "finished", 10, 100.0),
        ("old", "trainer", "outdated", 10, 100.0),
        ("dead", "trainer", "failed", 2, 20.0),
        ("early", "trainer", "finished", 4, 100.0),
        ("eval_done", "evaluator", "finished", 1, 100.0),
        ("eval_waiting", "evaluator", "failed", 0, 0.0),
    ];
    for (name, kind, status, done, percent) in cases {
        let r = by_name(runs, name);
        assert_eq!(r["kind"], kind, "{name}");
        assert_eq!(r["status"], status, "{name}");
        assert_eq!(r["progress"]["completed_epochs"], done, "{name}");
        assert_eq!(r["progress"]["progress_percentage"], percent, "{name}");
    }
    let p = &by_name(runs, "partial")["progress"];
    assert_eq!(p["best_epoch"], 6);
    assert_eq!(p["best_score"]["aggregated.acc"], 0.56);
    assert_eq!(
        by_name(runs, "early")["progress"]["early_stopped_at_epoch"],
        3
    );
    assert_eq!(
        by_name(runs, "eval_done")["progress"]["latest_score"]["acc"],
        0.91
    );
    // The cache was written with the same progress.
    let cached: Value =
        serde_json::from_str(&std::fs::read_to_string(partial.join("progress.json")).unwrap())
            .unwrap();
    assert_eq!(&cached, p);

    let run = ws.run(&["runs", "logs", "--config", config.to_str().unwrap()]);
    run.success();
    let table = run.stdout();
    let line = table
        .lines()
        .find(|l| l.starts_with("partial "))
        .unwrap_or_else(|| panic!("{table}"));
    for cell in [
        "trainer",
        "running",
        "7/10 epochs 70%",
        "acc=0.56 (epoch 6)",
        "3m ago",
    ] {
        assert!(line.contains(cell), "{cell} not in {line:?}");
    }
    let early = table.lines().find(|l| l.starts_with("early ")).unwrap();
    assert!(
        early.contains("4/10 epochs 100% (early stop at 3)"),
        "{early}"
    );
    assert!(
        table.contains("7 runs: 1 running, 2 failed, 3 finished, 1 outdated"),
        "{table}"
    );
}

#[test]
fn an_unclassifiable_folder_fails_fast_with_what_it_found() {
    let ws = Workspace::new();
    trainer(&ws.join("logs/good"), 1, 2, ago(HOUR), ago(HOUR));
    ws.write(
        "logs/experiment_1/config.json",
        r#"{"model": {}, "runner": "R"}"#,
    );
    ws.write("logs/experiment_1/git_0.log", "x");
    let run = ws.run(&["runs", "logs"]);
    run.code_is(2);
    let err = run.stderr();
    assert!(
        err.starts_with("error: cannot tell what kind of run "),
        "{err}"
    );
    assert!(err.contains("logs/experiment_1"), "{err}");
    assert!(err.contains("found: config.json, git_0.log"), "{err}");
    assert!(
        err.contains("config: config.json keys: model, runner"),
        "{err}"
    );
    assert!(
        err.contains("a trainer has: an epoch folder `epoch_N/`, a log matching `train_val*.log`, or `epochs` in config.json"),
        "{err}"
    );
    assert!(
        err.contains("an evaluator has: evaluation_scores.json, or a log matching `eval_*.log`"),
        "{err}"
    );
    // The run that could be read is listed first.
    let out = run.stdout();
    assert!(out.starts_with("NAME") && out.contains("good"), "{out}");
    assert!(!out.contains("experiment_1"), "{out}");

    let run = ws.run(&["runs", "logs", "--json"]);
    run.code_is(2);
    let listing: Value = serde_json::from_str(&run.stdout()).unwrap();
    assert_eq!(listing["runs"].as_array().unwrap().len(), 1, "{listing}");
    assert_eq!(listing["runs"][0]["name"], "good");
    let problems = listing["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 1, "{listing}");
    assert!(
        problems[0]["path"]
            .as_str()
            .unwrap()
            .ends_with("logs/experiment_1"),
        "{listing}"
    );
    assert!(
        problems[0]["message"]
            .as_str()
            .unwrap()
            .contains("found: config.json, git_0.log"),
        "{listing}"
    );
}

/// The first thing a researcher types: the run folder itself, not the folder holding it.
#[test]
fn a_run_folder_given_as_the_root_is_that_run() {
    let ws = Workspace::new();
    trainer(&ws.join("logs/bert"), 3, 10, ago(HOUR), ago(HOUR));
    file(
        &ws.join("logs/eval_x/evaluation_scores.json"),
        r#"{"acc": 0.9}"#,
        ago(HOUR),
    );
    let run = ws.run(&["runs", "logs/bert"]);
    run.success();
    let out = run.stdout();
    assert!(out.contains("bert") && out.contains("3/10 epochs"), "{out}");
    assert!(!out.contains("epoch_0"), "{out}");

    // Run folders and a folder holding runs, side by side.
    let listing = ws.json(&["runs", "logs/bert", "logs/eval_x", "logs", "--json"]);
    let names: Vec<&str> = listing["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["bert", "eval_x"], "{listing}");
    assert_eq!(listing["runs"][0]["kind"], "trainer");
    assert_eq!(listing["runs"][1]["kind"], "evaluator");
    assert_eq!(listing["runs"][0]["progress"]["completed_epochs"], 3);
}

#[test]
fn config_errors_point_at_the_line_and_column() {
    let ws = Workspace::new();
    std::fs::create_dir(ws.join("logs")).unwrap();
    ws.write("bad.yml", "trainer:\n  epochs: 10\n  expected: [a]\n");
    let run = ws.run(&["runs", "logs", "--config", "bad.yml"]);
    run.code_is(2);
    assert!(run.stderr().contains("bad.yml:3:3: "), "{}", run.stderr());
    let run = ws.run(&["runs", "missing-root"]);
    run.code_is(2);
    assert!(run.stderr().contains("missing-root"), "{}", run.stderr());
    let run = ws.run(&["runs", "logs", "--epochs", "0"]);
    run.code_is(2);
}

#[test]
fn roots_and_epochs_from_the_config_and_the_flag() {
    let ws = Workspace::new();
    trainer(&ws.join("exp/logs/r"), 3, 6, ago(DAY), ago(DAY));
    ws.write("exp/runs.yml", "roots: [logs]\n");
    let runs = &ws.json(&["runs", "--config", "exp/runs.yml", "--json"])["runs"];
    assert_eq!(runs[0]["name"], "r");
    assert_eq!(runs[0]["progress"]["total_epochs"], 6);
    assert_eq!(runs[0]["status"], "failed");
    let runs = &ws.json(&[
        "runs",
        "--config",
        "exp/runs.yml",
        "--json",
        "--epochs",
        "3",
    ])["runs"];
    assert_eq!(runs[0]["progress"]["total_epochs"], 3);
    assert_eq!(runs[0]["status"], "finished");
}

#[test]
fn no_runs_says_where_it_looked() {
    let ws = Workspace::new();
    std::fs::create_dir(ws.join("logs")).unwrap();
    let run = ws.run(&["runs", "logs"]);
    run.success();
    assert!(
        run.stdout().starts_with("no runs under "),
        "{}",
        run.stdout()
    );
    assert_eq!(
        ws.json(&["runs", "logs", "--json"]),
        serde_json::json!({"runs": [], "problems": []})
    );
}

#[test]
fn a_live_process_naming_the_config_makes_a_quiet_run_stuck() {
    let ws = Workspace::new();
    let run_dir = ws.join("logs/quiet");
    trainer(&run_dir, 2, 10, ago(3 * HOUR), ago(2 * HOUR));
    let status = |ws: &Workspace| {
        let runs = &ws.json(&["runs", "logs", "--json"])["runs"];
        (
            runs[0]["status"].as_str().unwrap().to_string(),
            runs[0]["pids"].clone(),
        )
    };
    assert_eq!(status(&ws).0, "failed");

    // A real process whose command line names the run's config, writing nothing.
    let child = Command::new("tail")
        .arg("-f")
        .arg(run_dir.join("config.json"))
        .stdout(Stdio::null())
        .spawn()
        .expect("tail starts");
    let pid = child.id();
    let mut child = Killed(child);
    let (s, pids) = status(&ws);
    assert_eq!(s, "stuck");
    assert_eq!(pids, serde_json::json!([pid]));
    let table = ws.run(&["runs", "logs"]).stdout();
    assert!(table.contains(&format!("stuck (pid {pid})")), "{table}");

    child.0.kill().unwrap();
    child.0.wait().unwrap();
    assert_eq!(status(&ws).0, "failed");
}

/// `mmm runs ROOT --watch --json` with its stdout lines arriving on a channel.
fn watch_json(ws: &Workspace, root: &str) -> (Killed, mpsc::Receiver<Value>) {
    let mut child = ws.spawn(&["runs", root, "--watch", "--json"]);
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            let value: Value = serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
            if tx.send(value).is_err() {
                return;
            }
        }
    });
    (Killed(child), rx)
}

#[test]
fn watch_sees_a_new_epoch_within_a_second() {
    let ws = Workspace::new();
    let run_dir = ws.join("logs/live");
    trainer(&run_dir, 2, 5, SystemTime::now(), SystemTime::now());
    let (mut child, lines) = watch_json(&ws, "logs");
    let snapshot = lines
        .recv_timeout(Duration::from_secs(10))
        .expect("a snapshot");
    assert_eq!(snapshot["type"], "snapshot");
    assert_eq!(snapshot["runs"][0]["progress"]["completed_epochs"], 2);

    let started = Instant::now();
    epoch(&run_dir, 2, 0.7, SystemTime::now());
    let seen = loop {
        // The acceptance bound (issue 7). The watcher coalesces bursts for 20-100 ms, so an
        // update takes a few hundred ms at most even on a busy machine.
        let left = Duration::from_secs(1).saturating_sub(started.elapsed());
        let line = lines
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("no update with 3 epochs within 1 s"));
        assert_eq!(line["type"], "update", "{line}");
        if line["changed"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["progress"]["completed_epochs"] == 3)
        {
            break started.elapsed();
        }
    };
    assert!(seen < Duration::from_secs(1), "took {seen:?}");

    // A new run folder appears too.
    trainer(
        &ws.join("logs/second"),
        1,
        5,
        SystemTime::now(),
        SystemTime::now(),
    );
    wait_until(Duration::from_secs(5), "the new run in an update", || {
        lines.try_iter().any(|line| {
            line["changed"]
                .as_array()
                .is_some_and(|c| c.iter().any(|r| r["name"] == "second"))
        })
    });

    // Ctrl-C ends the watch with exit 0.
    kill(Pid::from_raw(child.0.id() as i32), Signal::SIGINT).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let status = loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the watch did not end on SIGINT");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0));
}

#[test]
fn watch_without_a_terminal_prints_a_line_per_change() {
    let ws = Workspace::new();
    let run_dir = ws.join("logs/live");
    trainer(&run_dir, 1, 4, SystemTime::now(), SystemTime::now());
    let mut child = Killed(ws.spawn(&["runs", "logs", "--watch"]));
    let stdout = child.0.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let mut seen = Vec::new();
    wait_until(Duration::from_secs(10), "the first table", || {
        seen.extend(rx.try_iter());
        seen.iter().any(|l| l.contains("1/4 epochs 25%"))
    });
    epoch(&run_dir, 1, 0.6, SystemTime::now());
    wait_until(Duration::from_secs(5), "a line for the new epoch", || {
        seen.extend(rx.try_iter());
        seen.iter()
            .any(|l| l.starts_with("live") && l.contains("2/4 epochs 50%"))
    });
}

#[test]
fn an_unclassifiable_folder_during_a_watch_is_reported_not_fatal() {
    let ws = Workspace::new();
    trainer(
        &ws.join("logs/a"),
        1,
        4,
        SystemTime::now(),
        SystemTime::now(),
    );
    let (_child, lines) = watch_json(&ws, "logs");
    lines
        .recv_timeout(Duration::from_secs(10))
        .expect("a snapshot");
    ws.write("logs/mystery/notes.txt", "x");
    wait_until(Duration::from_secs(5), "a problem about mystery", || {
        lines.try_iter().any(|line| {
            line["problems"]
                .as_array()
                .is_some_and(|p| p.iter().any(|m| m.as_str().unwrap().contains("mystery")))
        })
    });
}
