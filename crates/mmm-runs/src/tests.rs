//! Scans of realistic run trees with controlled modification times, checked for kind,
//! progress, status and scores; the cache; every rule of the config.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use filetime::FileTime;

use super::process::ProcessInfo;
use super::*;

/// The fixed "now" of these tests.
fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

fn ago(d: Duration) -> SystemTime {
    now() - d
}

const MIN: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(86_400);

/// A root folder in which tests build run folders.
struct Tree {
    dir: tempfile::TempDir,
}

impl Tree {
    fn new() -> Tree {
        Tree {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn root(&self) -> PathBuf {
        std::fs::canonicalize(self.dir.path()).unwrap()
    }

    /// Writes a file below the root, with its modification time.
    fn file(&self, rel: &str, text: &str, at: SystemTime) -> PathBuf {
        let path = self.root().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        filetime::set_file_mtime(&path, FileTime::from_system_time(at)).unwrap();
        path
    }

    /// A trainer with `done` complete epochs (accuracy 0.5 + epoch / 100, except as `acc`
    /// says), an optional partial one, a total in config.json, and a log written at `log`.
    fn trainer(&self, name: &str, done: u32, partial: bool, total: Option<u32>, at: SystemTime) {
        self.trainer_with(name, done, partial, total, at, &|e| {
            0.5 + f64::from(e) / 100.0
        });
    }

    fn trainer_with(
        &self,
        name: &str,
        done: u32,
        partial: bool,
        total: Option<u32>,
        at: SystemTime,
        acc: &dyn Fn(u32) -> f64,
    ) {
        for e in 0..done {
            self.epoch(name, e, acc(e), at);
        }
        if partial {
            self.file(&format!("{name}/epoch_{done}/training_losses.pt"), "x", at);
            self.file(
                &format!("{name}/epoch_{done}/optimizer_buffer.json"),
                "",
                at,
            );
        }
        if let Some(total) = total {
            self.file(
                &format!("{name}/config.json"),
                &format!(r#"{{"epochs": {total}, "model": "m"}}"#),
                at,
            );
        }
    }

    fn epoch(&self, name: &str, e: u32, acc: f64, at: SystemTime) {
        self.file(
            &format!("{name}/epoch_{e}/training_losses.pt"),
            "losses",
            at,
        );
        self.file(&format!("{name}/epoch_{e}/optimizer_buffer.json"), "{}", at);
        self.file(
            &format!("{name}/epoch_{e}/validation_scores.json"),
            &format!(r#"{{"aggregated": {{"acc": {acc}, "loss": 0.5}}, "per_datapoint": {{"acc": [1, 0]}}}}"#),
            at,
        );
    }

    fn scan(&self, config: RunsConfig) -> Vec<Run> {
        self.scan_with(config, None, &ProcessTable::empty())
            .expect("the scan succeeds")
    }

    fn scan_with(
        &self,
        config: RunsConfig,
        epochs: Option<u32>,
        processes: &ProcessTable,
    ) -> Result<Vec<Run>, ObserveError> {
        Scanner::new(&[self.root()], config, epochs)?.scan(now(), processes)
    }
}

fn metric(metric: &str) -> RunsConfig {
    let mut config = RunsConfig::default();
    config.trainer.scores.metric = Some(metric.into());
    config.evaluator.scores.metric = Some(metric.into());
    config
}

fn find<'a>(runs: &'a [Run], name: &str) -> &'a Run {
    runs.iter()
        .find(|r| r.name == name)
        .unwrap_or_else(|| panic!("no run {name} in {runs:#?}"))
}

#[test]
fn a_realistic_tree() {
    let t = Tree::new();
    // Partial: 7 of 10 epochs done, the 8th half written, log 3 minutes old.
    t.trainer("partial", 7, true, Some(10), ago(5 * MIN));
    t.file("partial/train_val_0.log", "step 800", ago(3 * MIN));
    // Quiet partial: same, but the log is 2 hours old and nothing runs it.
    t.trainer("dead", 3, true, Some(10), ago(3 * HOUR));
    t.file("dead/train_val_0.log", "step 300", ago(2 * HOUR));
    // Finished 5 days ago.
    t.trainer("finished", 10, false, Some(10), ago(5 * DAY));
    t.file("finished/train_val_0.log", "done", ago(5 * DAY));
    // Finished 40 days ago: outdated.
    t.trainer("old", 10, false, Some(10), ago(40 * DAY));
    t.file("old/train_val_0.log", "done", ago(40 * DAY));
    // Early-stopped at epoch 3 of 10.
    t.trainer("early", 4, false, Some(10), ago(2 * DAY));
    t.file("early/early_stopped.json", r#"{"epoch": 3}"#, ago(2 * DAY));
    t.file("early/train_val_0.log", "stopping early", ago(2 * DAY));
    // Evaluator done, and one not done whose log is quiet.
    t.file(
        "eval_done/evaluation_scores.json",
        r#"{"aggregated": {"acc": 0.91, "f1": 0.8}}"#,
        ago(DAY),
    );
    t.file("eval_done/eval_0.log", "done", ago(DAY));
    t.file("eval_running/eval_0.log", "batch 10", ago(MIN));
    t.file("eval_empty/evaluation_scores.json", "", ago(3 * HOUR));

    let runs = t.scan(metric("aggregated.acc"));
    assert_eq!(runs.len(), 8);

    let r = find(&runs, "partial");
    assert_eq!((r.kind, r.status), (RunKind::Trainer, RunStatus::Running));
    assert_eq!(r.progress.completed_epochs, 7);
    assert_eq!(r.progress.total_epochs, Some(10));
    assert_eq!(r.progress.progress_percentage, Some(70.0));
    assert_eq!(r.progress.best_epoch, Some(6));
    assert_eq!(r.progress.latest_epoch, Some(6));
    assert_eq!(
        r.progress.best_score.as_ref().unwrap()["aggregated.acc"],
        0.56
    );
    assert_eq!(r.log_updated_ms, Some(epoch_ms(ago(3 * MIN))));
    assert_eq!(r.last_activity_ms, Some(epoch_ms(ago(3 * MIN))));
    assert!(r.pids.is_empty());

    let r = find(&runs, "dead");
    assert_eq!(r.status, RunStatus::Failed);
    assert_eq!(r.progress.completed_epochs, 3);
    assert_eq!(r.progress.progress_percentage, Some(30.0));

    let r = find(&runs, "finished");
    assert_eq!(r.status, RunStatus::Finished);
    assert_eq!(r.progress.progress_percentage, Some(100.0));
    assert_eq!(
        r.progress.latest_score.as_ref().unwrap()["aggregated.acc"],
        0.59
    );
    assert_eq!(r.progress.last_update_time, Some(epoch_secs(ago(5 * DAY))));

    assert_eq!(find(&runs, "old").status, RunStatus::Outdated);

    let r = find(&runs, "early");
    assert_eq!(r.status, RunStatus::Finished);
    assert!(r.progress.early_stopped);
    assert_eq!(r.progress.early_stopped_at_epoch, Some(3));
    assert_eq!(r.progress.completed_epochs, 4);
    assert_eq!(r.progress.progress_percentage, Some(100.0));

    let r = find(&runs, "eval_done");
    assert_eq!(
        (r.kind, r.status),
        (RunKind::Evaluator, RunStatus::Finished)
    );
    assert_eq!(r.progress.progress_percentage, Some(100.0));
    assert_eq!(r.progress.total_epochs, Some(1));
    let scores = r.progress.best_score.as_ref().unwrap();
    assert_eq!(scores["aggregated.acc"], 0.91);
    assert_eq!(scores["aggregated.f1"], 0.8);
    assert_eq!(r.progress.latest_score, r.progress.best_score);

    let r = find(&runs, "eval_running");
    assert_eq!((r.kind, r.status), (RunKind::Evaluator, RunStatus::Running));
    assert_eq!(r.progress.progress_percentage, Some(0.0));

    // An empty result file is not a result.
    let r = find(&runs, "eval_empty");
    assert_eq!((r.kind, r.status), (RunKind::Evaluator, RunStatus::Failed));
    assert_eq!(r.progress.completed_epochs, 0);
}

#[test]
fn a_process_naming_the_run_makes_a_quiet_run_stuck() {
    let t = Tree::new();
    t.trainer("quiet", 2, false, Some(5), ago(3 * HOUR));
    t.file("quiet/train_val.log", "x", ago(2 * HOUR));
    let config_path = t.root().join("quiet/config.json");
    let processes = ProcessTable::from_processes([ProcessInfo {
        pid: 4242,
        cwd: None,
        args: vec!["train.py".into(), "--config".into(), config_path.into()],
    }]);
    let runs = t
        .scan_with(RunsConfig::default(), None, &processes)
        .unwrap();
    assert_eq!(runs[0].status, RunStatus::Stuck);
    assert_eq!(runs[0].pids, [4242]);
    let runs = t
        .scan_with(RunsConfig::default(), None, &ProcessTable::empty())
        .unwrap();
    assert_eq!(runs[0].status, RunStatus::Failed);
    // A complete run with a lingering process is finished, not stuck.
    t.trainer("quiet", 5, false, Some(5), ago(3 * HOUR));
    let runs = t
        .scan_with(RunsConfig::default(), None, &processes)
        .unwrap();
    assert_eq!(runs[0].status, RunStatus::Finished);
}

#[test]
fn an_unclassifiable_folder_stops_the_scan() {
    let t = Tree::new();
    t.trainer("good", 1, false, Some(2), ago(HOUR));
    t.file("mystery/config.json", r#"{"model": 1}"#, ago(HOUR));
    t.file("mystery/git_0.log", "x", ago(HOUR));
    let error = t
        .scan_with(RunsConfig::default(), None, &ProcessTable::empty())
        .unwrap_err();
    let text = error.to_string();
    assert!(matches!(error, ObserveError::Unclassifiable(_)));
    assert!(text.contains("mystery"), "{text}");
    assert!(text.contains("found: config.json, git_0.log"), "{text}");
    assert!(text.contains("config: config.json keys: model"), "{text}");
}

#[test]
fn total_epochs_come_from_the_flag_the_run_config_or_the_rules() {
    let t = Tree::new();
    t.trainer("cfg", 2, false, Some(8), ago(HOUR));
    t.trainer("none", 2, false, None, ago(HOUR));
    let runs = t.scan(RunsConfig::default());
    assert_eq!(find(&runs, "cfg").progress.total_epochs, Some(8));
    assert_eq!(find(&runs, "cfg").progress.progress_percentage, Some(25.0));
    assert_eq!(find(&runs, "none").progress.total_epochs, None);
    assert_eq!(find(&runs, "none").progress.progress_percentage, None);
    assert_eq!(find(&runs, "none").status, RunStatus::Failed);

    let mut config = RunsConfig::default();
    config.trainer.epochs = Some(4);
    let runs = t.scan(config.clone());
    assert_eq!(find(&runs, "cfg").progress.total_epochs, Some(8));
    assert_eq!(find(&runs, "none").progress.total_epochs, Some(4));

    let runs = t
        .scan_with(config, Some(2), &ProcessTable::empty())
        .unwrap();
    assert!(runs.iter().all(|r| r.progress.total_epochs == Some(2)));
    assert!(runs.iter().all(|r| r.status == RunStatus::Finished));
}

#[test]
fn nested_epoch_keys_and_yaml_run_configs() {
    let t = Tree::new();
    t.trainer("y", 3, false, None, ago(HOUR));
    t.file("y/run.yaml", "training:\n  epochs: 6\n", ago(HOUR));
    let mut config = RunsConfig {
        config_file: "run.yaml".into(),
        ..RunsConfig::default()
    };
    config.trainer.epochs_key = "training.epochs".into();
    let runs = t.scan(config);
    assert_eq!(runs[0].progress.total_epochs, Some(6));
    assert_eq!(runs[0].progress.progress_percentage, Some(50.0));
}

#[test]
fn a_bad_run_config_is_a_problem_of_the_run() {
    let t = Tree::new();
    t.trainer("bad", 1, false, None, ago(HOUR));
    t.file("bad/config.json", "{oops", ago(HOUR));
    t.trainer("neg", 1, false, None, ago(HOUR));
    t.file("neg/config.json", r#"{"epochs": -3}"#, ago(HOUR));
    let runs = t.scan(RunsConfig::default());
    let bad = find(&runs, "bad").progress.error_message.clone().unwrap();
    assert!(bad.starts_with("config.json: not valid JSON"), "{bad}");
    let neg = find(&runs, "neg").progress.error_message.clone().unwrap();
    assert!(neg.contains("`epochs` is -3"), "{neg}");
}

#[test]
fn malformed_score_files_are_warnings() {
    let t = Tree::new();
    t.trainer("s", 3, false, Some(3), ago(HOUR));
    t.file("s/epoch_1/validation_scores.json", "{not json", ago(HOUR));
    t.file(
        "s/epoch_2/validation_scores.json",
        r#"{"aggregated": {}}"#,
        ago(HOUR),
    );
    let runs = t.scan(metric("aggregated.acc"));
    let p = &runs[0].progress;
    assert_eq!(p.completed_epochs, 3);
    assert_eq!(p.best_epoch, Some(0));
    assert_eq!(p.latest_epoch, Some(0));
    assert_eq!(p.warnings.len(), 2, "{:?}", p.warnings);
    assert!(p.warnings[0].starts_with("epoch_1/validation_scores.json: not valid JSON"));
    assert!(p.warnings[1].contains("no number at `aggregated.acc`"));
}

#[test]
fn direction_min_picks_the_lowest() {
    let t = Tree::new();
    let accs = [0.7, 0.4, 0.9, 0.6];
    t.trainer_with("m", 4, false, Some(4), ago(HOUR), &|e| accs[e as usize]);
    let runs = t.scan(metric("aggregated.acc"));
    assert_eq!(runs[0].progress.best_epoch, Some(2));
    let mut config = metric("aggregated.acc");
    config.trainer.scores.direction = config::Direction::Min;
    let runs = t.scan(config);
    assert_eq!(runs[0].progress.best_epoch, Some(1));
    assert_eq!(
        runs[0].progress.best_score.as_ref().unwrap()["aggregated.acc"],
        0.4
    );
    assert_eq!(runs[0].progress.latest_epoch, Some(3));
}

#[test]
fn epochs_count_from_zero_up_to_the_first_gap() {
    let t = Tree::new();
    t.trainer("g", 5, false, Some(10), ago(HOUR));
    std::fs::remove_file(t.root().join("g/epoch_2/training_losses.pt")).unwrap();
    let runs = t.scan(RunsConfig::default());
    assert_eq!(runs[0].progress.completed_epochs, 2);
}

#[test]
fn early_stop_file_forms() {
    let t = Tree::new();
    t.trainer("empty", 3, false, Some(10), ago(HOUR));
    t.file("empty/early_stopped.json", "", ago(HOUR));
    t.trainer("number", 3, false, Some(10), ago(HOUR));
    t.file("number/early_stopped.json", "1", ago(HOUR));
    t.trainer("junk", 3, false, Some(10), ago(HOUR));
    t.file("junk/early_stopped.json", "yes", ago(HOUR));
    let runs = t.scan(RunsConfig::default());
    assert_eq!(
        find(&runs, "empty").progress.early_stopped_at_epoch,
        Some(2)
    );
    assert_eq!(
        find(&runs, "number").progress.early_stopped_at_epoch,
        Some(1)
    );
    let junk = &find(&runs, "junk").progress;
    assert_eq!(junk.early_stopped_at_epoch, Some(2));
    assert_eq!(junk.warnings.len(), 1);
    assert!(runs.iter().all(|r| r.status == RunStatus::Finished));
}

#[test]
fn custom_rules_are_applied() {
    let t = Tree::new();
    t.file("exp_a/seed_1/ep3/w.bin", "w", ago(DAY));
    t.file("exp_a/seed_1/ep0/w.bin", "w", ago(DAY));
    t.file("exp_a/seed_1/ep0/s.json", r#"{"loss": 0.3}"#, ago(DAY));
    t.file("exp_a/seed_1/log.txt", "x", ago(20 * MIN));
    t.file("exp_a/seed_1/STOP", "", ago(DAY));
    t.file("exp_a/.hidden/ep0/w.bin", "w", ago(DAY));
    t.file("exp_a/other/ev.json", "{}", ago(DAY));
    t.file("exp_a/other/eval.txt", "x", ago(DAY));
    t.file("notes/README", "not a run", ago(DAY));
    let config = RunsConfig::parse(
        Path::new("runs.yml"),
        "pattern: 'exp_*/*'\nrunning_within: 10m\noutdated_after: 12h\n\
         trainer:\n  epoch_prefix: ep\n  expected_files: [w.bin]\n  log_pattern: 'log*.txt'\n  epochs: 4\n  early_stop_file: STOP\n  scores: {file: s.json, metric: loss, direction: min}\n\
         evaluator:\n  expected_files: [ev.json]\n  log_pattern: 'eval*.txt'\n  scores: {file: ev.json}\n",
    )
    .unwrap();
    let runs = t.scan(config);
    let names: Vec<&str> = runs.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["exp_a/other", "exp_a/seed_1"]);
    let r = find(&runs, "exp_a/seed_1");
    assert_eq!(r.kind, RunKind::Trainer);
    // The log is 20 minutes old, beyond `running_within: 10m`; complete (stopped early) a
    // day ago, beyond `outdated_after: 12h`.
    assert_eq!(r.status, RunStatus::Outdated);
    assert_eq!(r.progress.completed_epochs, 1);
    assert!(r.progress.early_stopped);
    assert_eq!(r.progress.best_score.as_ref().unwrap()["loss"], 0.3);
    assert_eq!(find(&runs, "exp_a/other").kind, RunKind::Evaluator);
}

#[test]
fn the_cache_is_read_back_and_rewritten_only_on_change() {
    let t = Tree::new();
    t.trainer("c", 2, false, Some(4), ago(HOUR));
    let runs = t.scan(metric("aggregated.acc"));
    let cache_path = t.root().join("c/progress.json");
    let written: Progress = serde_json::from_slice(&std::fs::read(&cache_path).unwrap()).unwrap();
    assert_eq!(written, runs[0].progress);
    assert_eq!(written.version, cache::VERSION);

    // Unchanged inputs: not rewritten.
    let old = FileTime::from_system_time(ago(DAY));
    filetime::set_file_mtime(&cache_path, old).unwrap();
    t.scan(metric("aggregated.acc"));
    let meta = std::fs::metadata(&cache_path).unwrap();
    assert_eq!(FileTime::from_last_modification_time(&meta), old);

    // Same size and time, other contents: the scan trusts the cache and does not read it.
    let score = "c/epoch_1/validation_scores.json";
    let before = std::fs::read_to_string(t.root().join(score)).unwrap();
    t.file(score, &before.replace("0.51", "0.99"), ago(HOUR));
    let runs = t.scan(metric("aggregated.acc"));
    assert_eq!(
        runs[0].progress.latest_score.as_ref().unwrap()["aggregated.acc"],
        0.51
    );

    // A new time: recomputed and rewritten.
    t.file(score, &before.replace("0.51", "0.99"), ago(MIN));
    let runs = t.scan(metric("aggregated.acc"));
    assert_eq!(
        runs[0].progress.latest_score.as_ref().unwrap()["aggregated.acc"],
        0.99
    );
    let meta = std::fs::metadata(&cache_path).unwrap();
    assert_ne!(FileTime::from_last_modification_time(&meta), old);

    // Other rules: recomputed (the rules are part of the fingerprint).
    let runs = t.scan(RunsConfig::default());
    assert_eq!(runs[0].progress.metric, None);
    assert_eq!(runs[0].progress.best_score, None);
}

#[test]
fn a_corrupt_cache_is_recomputed() {
    let t = Tree::new();
    t.trainer("c", 1, false, Some(2), ago(HOUR));
    t.file("c/progress.json", "{ broken", ago(HOUR));
    let runs = t.scan(RunsConfig::default());
    assert_eq!(runs[0].progress.completed_epochs, 1);
    let text = std::fs::read_to_string(t.root().join("c/progress.json")).unwrap();
    assert!(text.contains("\"completed_epochs\": 1"), "{text}");
}

#[test]
fn without_the_cache_nothing_is_written() {
    let t = Tree::new();
    t.trainer("c", 1, false, Some(2), ago(HOUR));
    let config = RunsConfig {
        cache: false,
        ..RunsConfig::default()
    };
    let runs = t.scan(config);
    assert_eq!(runs[0].progress.completed_epochs, 1);
    assert!(!t.root().join("c/progress.json").exists());
}

#[test]
fn a_missing_root_is_an_error() {
    let error = Scanner::new(
        &[PathBuf::from("/nonexistent/mmm-runs")],
        RunsConfig::default(),
        None,
    )
    .unwrap_err();
    assert!(matches!(error, ObserveError::Root { .. }), "{error}");
}

#[test]
fn statuses_change_by_themselves_at_the_right_time() {
    let t = Tree::new();
    t.trainer("r", 1, false, Some(3), ago(HOUR));
    t.file("r/train_val.log", "x", ago(10 * MIN));
    let scanner = Scanner::new(&[t.root()], RunsConfig::default(), None).unwrap();
    let o = &scanner.observe_all().unwrap()[0];
    let next = status::next_change(o, now(), scanner.config()).unwrap();
    assert_eq!(next, ago(10 * MIN) + HOUR + Duration::from_millis(1));
    assert_eq!(
        o.to_run(
            next - Duration::from_millis(2),
            &ProcessTable::empty(),
            scanner.config()
        )
        .status,
        RunStatus::Running
    );
    assert_eq!(
        o.to_run(next, &ProcessTable::empty(), scanner.config())
            .status,
        RunStatus::Failed
    );
}

#[test]
fn watch_publishes_a_new_epoch() {
    let t = Tree::new();
    t.trainer("w", 1, false, Some(3), now());
    let scanner = Scanner::new(&[t.root()], RunsConfig::default(), None).unwrap();
    let watch = watch::Watch::start(scanner, std::sync::Arc::new(SystemTime::now)).unwrap();
    let (runs, mut updates) = watch.subscribe();
    assert_eq!(runs[0].progress.completed_epochs, 1);
    t.epoch("w", 1, 0.6, SystemTime::now());
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        match updates.try_recv() {
            Ok(update) => {
                if update
                    .changed
                    .iter()
                    .any(|r| r.progress.completed_epochs == 2)
                {
                    break;
                }
            }
            Err(_) => {
                assert!(std::time::Instant::now() < deadline, "no update in 5 s");
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
    assert_eq!(watch.runs()[0].progress.completed_epochs, 2);
}

#[test]
fn a_root_that_is_a_run_is_that_one_run_and_owns_every_file_below_it() {
    let t = Tree::new();
    t.trainer("bert", 2, false, Some(4), ago(HOUR));
    let run_root = t.root().join("bert");
    let scanner =
        Scanner::new(std::slice::from_ref(&run_root), RunsConfig::default(), None).unwrap();
    let folders = scanner.run_folders().unwrap();
    assert_eq!(
        folders,
        [RunFolder {
            path: run_root.clone(),
            name: "bert".into()
        }]
    );
    assert!(scanner.is_run_folder(&folders[0]));
    assert_eq!(
        scanner.folder_of(&run_root.join("epoch_1/validation_scores.json")),
        FolderOf::Run {
            folder: folders[0].clone(),
            file: "epoch_1/validation_scores.json".into()
        }
    );
    assert_eq!(scanner.folder_of(&run_root), FolderOf::AboveRuns);
    let scan = scanner.scan_all(now(), &ProcessTable::empty()).unwrap();
    assert_eq!(scan.runs.len(), 1);
    assert_eq!(scan.runs[0].progress.completed_epochs, 2);
    assert!(scan.problems.is_empty());

    // The folder holding it is still a root of runs.
    let scanner = Scanner::new(&[t.root()], RunsConfig::default(), None).unwrap();
    assert_eq!(scanner.run_folders().unwrap()[0].name, "bert");
}
