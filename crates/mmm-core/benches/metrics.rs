//! Metrics costs: recording a finished item into the duration model (called once per item),
//! computing an ETA with 1,000,000 queued and 64 in-flight items (called a few times a second
//! by each view), finding stragglers, and filing a failure into the clusters.
//!
//! `cargo bench --bench metrics`; figures in docs/PERFORMANCE.md.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use mmm_core::metrics::{
    DurationModel, EtaInput, Failure, FailureClusters, FailureKind, InFlight, estimate,
    find_stragglers,
};

/// A model fed `n` items of two steps with a spread of durations (10 ms to ~2 s).
fn model(n: u64) -> DurationModel {
    let mut m = DurationModel::new(["fetch", "process"], 64);
    for k in 0..n {
        let ms = 10 + (k * 7919) % 2000;
        m.record_item(Duration::from_millis(ms));
        m.record_step(0, Some(Duration::from_millis(ms / 3)));
        m.record_step(1, Some(Duration::from_millis(ms - ms / 3)));
    }
    m
}

fn record(c: &mut Criterion) {
    let mut m = model(10_000);
    let mut k = 0u64;
    c.bench_function("metrics/record: one finished item (item + 2 steps)", |b| {
        b.iter(|| {
            k += 1;
            let ms = 10 + (k * 7919) % 2000;
            m.record_item(black_box(Duration::from_millis(ms)));
            m.record_step(0, Some(Duration::from_millis(ms / 3)));
            m.record_step(1, Some(Duration::from_millis(ms - ms / 3)));
        })
    });
}

fn eta(c: &mut Criterion) {
    let m = model(10_000);
    let in_flight: Vec<InFlight> = (0..64u64)
        .map(|a| InFlight {
            item: a,
            agent: a as usize,
            step: (a % 2) as usize,
            step_elapsed: Duration::from_millis(a * 20),
            item_elapsed: Duration::from_millis(a * 30),
        })
        .collect();
    let input = EtaInput {
        now_ms: 1_000_000,
        agents: 64,
        queued: 1_000_000,
        in_flight: &in_flight,
        completed_this_run: 10_000,
        run_started_ms: 0,
        last_completion_ms: Some(999_900),
        from_history: false,
    };
    c.bench_function("metrics/eta: 1,000,000 queued, 64 in flight", |b| {
        b.iter(|| black_box(estimate(black_box(&m), black_box(&input))))
    });
    c.bench_function("metrics/stragglers: 64 in flight", |b| {
        b.iter(|| black_box(find_stragglers(black_box(&m), black_box(&in_flight))))
    });
}

fn failures(c: &mut Criterion) {
    let mut clusters = FailureClusters::new();
    let mut k = 0u64;
    c.bench_function("metrics/failures: file one failure (3-line stderr)", |b| {
        b.iter(|| {
            k += 1;
            let output = format!(
                "Traceback (most recent call last):\n  File \"/app/resize.py\", line 42\nFileNotFoundError: [Errno 2] No such file: '/data/in/photo_{k}.jpg'\n"
            );
            clusters.add(&Failure {
                item_key: "photo",
                item_value: None,
                kind: FailureKind::Exit { code: 1 },
                output: black_box(&output),
                at_ms: k as i64,
            });
        })
    });
}

criterion_group!(benches, record, eta, failures);
criterion_main!(benches);
