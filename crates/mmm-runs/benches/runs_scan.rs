//! A warm scan of 10,000 run folders (`mmm runs` on a large log folder): 8,000 trainers with
//! 0 to 10 of 10 epochs (three files each, scores included) and 2,000 evaluators, after a
//! first scan wrote every `progress.json`. Includes reading the process table, as the
//! command does.
//!
//! `cargo bench --bench runs_scan`; figures in docs/PERFORMANCE.md.

use std::hint::black_box;
use std::path::Path;
use std::time::{Instant, SystemTime};

use criterion::{Criterion, criterion_group, criterion_main};
use mmm_runs::{ProcessTable, RunsConfig, Scanner};

const RUNS: usize = 10_000;

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).expect("the fixture is written");
}

fn build(root: &Path) {
    for i in 0..RUNS {
        let run = root.join(format!("run_{i:05}"));
        std::fs::create_dir(&run).expect("the fixture is written");
        if i % 5 == 4 {
            write(&run.join("evaluation_scores.json"), r#"{"acc": 0.9}"#);
            write(&run.join("eval_0.log"), "done\n");
            continue;
        }
        write(&run.join("config.json"), r#"{"epochs": 10}"#);
        write(&run.join("train_val_0.log"), "step\n");
        for e in 0..(i % 11) {
            let dir = run.join(format!("epoch_{e}"));
            std::fs::create_dir(&dir).expect("the fixture is written");
            write(&dir.join("training_losses.pt"), "losses");
            write(&dir.join("optimizer_buffer.json"), "{}");
            write(
                &dir.join("validation_scores.json"),
                &format!(r#"{{"aggregated": {{"acc": 0.{e}}}}}"#),
            );
        }
    }
}

fn scan(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let started = Instant::now();
    build(dir.path());
    eprintln!("built {RUNS} run folders in {:?}", started.elapsed());
    let mut config = RunsConfig::default();
    config.trainer.scores.metric = Some("aggregated.acc".into());
    let scanner = Scanner::new(&[dir.path().to_path_buf()], config, None).expect("the root");
    let started = Instant::now();
    let runs = scanner
        .scan(SystemTime::now(), &ProcessTable::read())
        .expect("the scan succeeds");
    assert_eq!(runs.len(), RUNS);
    eprintln!(
        "first scan (computes and writes every progress.json): {:?}",
        started.elapsed()
    );

    let mut group = c.benchmark_group("runs");
    group.sample_size(10);
    group.bench_function("scan 10,000 run folders (warm)", |b| {
        b.iter(|| {
            let runs = scanner
                .scan(SystemTime::now(), &ProcessTable::read())
                .expect("the scan succeeds");
            black_box(runs.len())
        })
    });
    group.finish();
}

criterion_group!(benches, scan);
criterion_main!(benches);
