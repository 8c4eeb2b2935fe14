//! Tracker costs: one update (an item finishing), one read (the job-wide progress, and one
//! agent slot), and updates from 2 threads at once on the same tracker (contended).
//!
//! `cargo bench --bench tracker`; figures in docs/PERFORMANCE.md.

use std::hint::black_box;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use mmm_core::tracker::{ItemEnd, Tracker};

fn update(c: &mut Criterion) {
    let t = Tracker::new(u64::MAX / 2, 2);
    c.bench_function("tracker/update: item_finished", |b| {
        b.iter(|| t.item_finished(black_box(0), ItemEnd::Completed, None))
    });
    c.bench_function("tracker/update: attempt_started + step_started", |b| {
        let mut n = 0u64;
        b.iter(|| {
            n += 1;
            t.attempt_started(0, black_box(n), 1);
            t.step_started(0, 0);
        })
    });
}

fn read(c: &mut Criterion) {
    let t = Tracker::new(1_000_000, 2);
    t.attempt_started(0, 5, 1);
    c.bench_function("tracker/read: progress", |b| {
        b.iter(|| black_box(t.progress()))
    });
    c.bench_function("tracker/read: one agent slot", |b| {
        b.iter(|| black_box(t.agent(black_box(0))))
    });
}

/// Two threads each finishing items on the same tracker; time per operation per thread.
fn contended(c: &mut Criterion) {
    c.bench_function("tracker/contended: 2 threads item_finished", |b| {
        b.iter_custom(|iters| {
            let t = Arc::new(Tracker::new(u64::MAX / 2, 2));
            let barrier = Arc::new(Barrier::new(2));
            let workers: Vec<_> = (0..2)
                .map(|agent| {
                    let (t, barrier) = (t.clone(), barrier.clone());
                    std::thread::spawn(move || {
                        barrier.wait();
                        let start = Instant::now();
                        for _ in 0..iters {
                            t.item_finished(agent, ItemEnd::Completed, None);
                        }
                        start.elapsed()
                    })
                })
                .collect();
            let total: Duration = workers.into_iter().map(|w| w.join().unwrap()).sum();
            total / 2
        })
    });
}

criterion_group!(benches, update, read, contended);
criterion_main!(benches);
