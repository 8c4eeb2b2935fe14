//! The ETA against a discrete-event simulation with a virtual clock (issue 4's acceptance).
//!
//! N agents take items from a queue in order, each as soon as it is free, as the runner does;
//! every item has a known duration (two steps, 30% and 70% of it) drawn from a fixed-seed
//! generator. The simulation is run to the end first, so the true finish is known; then the
//! job is observed at chosen instants exactly as the live plumbing would see it: completions
//! fed to the duration model in the order they ended, items in flight with their elapsed
//! times, the queue's length. No real time passes and nothing is random between runs.

use std::time::Duration;

use mmm_core::metrics::{DurationModel, Eta, EtaInput, InFlight, estimate};

/// SplitMix64: a tiny deterministic generator (no dependency for a test).
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1).
    fn unit(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }

    /// Standard normal (Box-Muller).
    fn normal(&mut self) -> f64 {
        (-2.0 * self.unit().ln()).sqrt() * (2.0 * std::f64::consts::PI * self.unit()).cos()
    }
}

#[derive(Debug, Clone, Copy)]
enum Shape {
    /// 1 s to 100 s, flat.
    Uniform,
    /// 70% quick (1-3 s), 30% slow (30-60 s).
    Bimodal,
    /// Log-normal, median 10 s, sigma 1 (mean 16.5 s, p99 102 s).
    LogNormal,
    /// Pareto, minimum 5 s, alpha 2.5 (mean 8.3 s, p99 316 s... rarely).
    Pareto,
}

fn durations_ms(shape: Shape, n: usize, seed: u64) -> Vec<u64> {
    let mut rng = Rng(seed);
    (0..n)
        .map(|_| {
            let s = match shape {
                Shape::Uniform => rng.uniform(1.0, 100.0),
                Shape::Bimodal => {
                    if rng.unit() < 0.7 {
                        rng.uniform(1.0, 3.0)
                    } else {
                        rng.uniform(30.0, 60.0)
                    }
                }
                Shape::LogNormal => (10.0f64.ln() + rng.normal()).exp(),
                Shape::Pareto => 5.0 / rng.unit().powf(1.0 / 2.5),
            };
            (s * 1000.0).round() as u64
        })
        .collect()
}

/// The schedule of a run: when each item (in queue order) started and ended.
struct Schedule {
    durations: Vec<u64>,
    start: Vec<u64>,
    end: Vec<u64>,
    agent: Vec<usize>,
    /// Item indices in the order they ended.
    by_end: Vec<usize>,
    agents: usize,
}

/// Greedy list scheduling on a virtual clock: the next queued item goes to the agent that is
/// free first (the lowest-numbered one on ties), as the runner's agents pull from the queue.
fn simulate(durations: Vec<u64>, agents: usize) -> Schedule {
    let mut free = vec![0u64; agents];
    let (mut start, mut end, mut agent) = (vec![], vec![], vec![]);
    for &d in &durations {
        let (a, t) = free
            .iter()
            .copied()
            .enumerate()
            .min_by_key(|&(i, t)| (t, i))
            .expect("at least one agent");
        start.push(t);
        end.push(t + d);
        agent.push(a);
        free[a] = t + d;
    }
    let mut by_end: Vec<usize> = (0..durations.len()).collect();
    by_end.sort_by_key(|&i| (end[i], i));
    Schedule {
        durations,
        start,
        end,
        agent,
        by_end,
        agents,
    }
}

fn step0_ms(d: u64) -> u64 {
    d * 3 / 10
}

/// The ETA as the live plumbing would compute it at `now` (ms since the run started, which
/// is epoch 0 here), with `completed` items finished so far.
fn observe(s: &Schedule, completed: usize, now: u64) -> Eta {
    let mut model = DurationModel::new(["fetch", "process"], s.agents);
    for &i in &s.by_end[..completed] {
        let d = s.durations[i];
        model.record_item(Duration::from_millis(d));
        model.record_step(0, Some(Duration::from_millis(step0_ms(d))));
        model.record_step(1, Some(Duration::from_millis(d - step0_ms(d))));
    }
    let in_flight: Vec<InFlight> = (0..s.durations.len())
        .filter(|&i| s.start[i] <= now && s.end[i] > now)
        .map(|i| {
            let elapsed = now - s.start[i];
            let first = step0_ms(s.durations[i]);
            let (step, step_elapsed) = if elapsed < first {
                (0, elapsed)
            } else {
                (1, elapsed - first)
            };
            InFlight {
                item: i as u64,
                agent: s.agent[i],
                step,
                step_elapsed: Duration::from_millis(step_elapsed),
                item_elapsed: Duration::from_millis(elapsed),
            }
        })
        .collect();
    let queued = s.start.iter().filter(|&&t| t > now).count() as u64;
    let last_completion = (completed > 0).then(|| s.end[s.by_end[completed - 1]] as i64);
    estimate(
        &model,
        &EtaInput {
            now_ms: now as i64,
            agents: s.agents,
            queued,
            in_flight: &in_flight,
            completed_this_run: completed as u64,
            run_started_ms: 0,
            last_completion_ms: last_completion,
            from_history: false,
        },
    )
}

/// At the moment 20% of the items have ended: (model's median, true remaining), ms.
fn at_20_percent(s: &Schedule) -> (u64, u64) {
    let completed = s.durations.len() / 5;
    let now = s.end[s.by_end[completed - 1]];
    let finish = *s.end.iter().max().expect("items");
    match observe(s, completed, now) {
        Eta::Estimate(e) => {
            assert!(e.p10_ms <= e.p50_ms && e.p50_ms <= e.p90_ms, "{e:?}");
            (e.p50_ms, finish - now)
        }
        other => panic!("expected an estimate at 20%, got {other:?}"),
    }
}

const ITEMS: usize = 5000;
const AGENTS: usize = 8;
const SEEDS: [u64; 5] = [1, 2, 3, 4, 5];

fn assert_within_15_percent(shape: Shape, sort_longest_first: bool) {
    for seed in SEEDS {
        let mut d = durations_ms(shape, ITEMS, seed);
        if sort_longest_first {
            d.sort_unstable_by(|a, b| b.cmp(a));
        }
        let s = simulate(d, AGENTS);
        let (p50, truth) = at_20_percent(&s);
        let error = (p50 as f64 - truth as f64).abs() / truth as f64;
        eprintln!(
            "{shape:?} longest_first={sort_longest_first} seed {seed}: p50 {p50} true {truth} error {:.1}%",
            error * 100.0
        );
        assert!(
            error <= 0.15,
            "{shape:?} (longest first: {sort_longest_first}), seed {seed}: median {p50} ms, true {truth} ms"
        );
    }
}

#[test]
fn eta_within_15_percent_at_20_percent_uniform() {
    assert_within_15_percent(Shape::Uniform, false);
}

#[test]
fn eta_within_15_percent_at_20_percent_bimodal() {
    assert_within_15_percent(Shape::Bimodal, false);
}

#[test]
fn eta_within_15_percent_at_20_percent_long_tailed() {
    assert_within_15_percent(Shape::LogNormal, false);
    assert_within_15_percent(Shape::Pareto, false);
}

#[test]
fn eta_within_15_percent_at_20_percent_longest_first() {
    assert_within_15_percent(Shape::Uniform, true);
    assert_within_15_percent(Shape::LogNormal, true);
}

/// The P10-P90 range is a range people can trust: over many runs it holds the true remaining
/// time about 80% of the time (not 30%, not 100%).
#[test]
fn range_holds_the_truth_about_80_percent_of_the_time() {
    for (shape, longest_first) in [
        (Shape::Uniform, false),
        (Shape::LogNormal, false),
        (Shape::Uniform, true),
    ] {
        let runs = 40;
        let mut held = 0;
        for seed in 100..100 + runs {
            let mut d = durations_ms(shape, ITEMS, seed);
            if longest_first {
                d.sort_unstable_by(|a, b| b.cmp(a));
            }
            let s = simulate(d, AGENTS);
            let completed = ITEMS / 5;
            let now = s.end[s.by_end[completed - 1]];
            let truth = *s.end.iter().max().expect("items") - now;
            let Eta::Estimate(e) = observe(&s, completed, now) else {
                panic!("estimate expected");
            };
            if e.p10_ms <= truth && truth <= e.p90_ms {
                held += 1;
            }
        }
        eprintln!("{shape:?} longest_first={longest_first}: range held the truth {held}/{runs}");
        assert!(
            (24..=38).contains(&held),
            "{shape:?} (longest first: {longest_first}): {held}/{runs}"
        );
    }
}

#[test]
fn warming_up_until_max_3_n_completions_then_an_estimate() {
    let s = simulate(durations_ms(Shape::Uniform, 200, 7), AGENTS);
    for completed in 0..AGENTS {
        let now = if completed == 0 {
            500
        } else {
            s.end[s.by_end[completed - 1]]
        };
        assert!(
            matches!(observe(&s, completed, now), Eta::WarmingUp { .. }),
            "warming up expected after {completed} completions"
        );
    }
    let now = s.end[s.by_end[AGENTS - 1]];
    assert!(matches!(observe(&s, AGENTS, now), Eta::Estimate(_)));
}

#[test]
fn stalled_when_nothing_completes_for_3x_p90() {
    // The job at 20%, then every agent hangs: time passes, nothing completes.
    let s = simulate(durations_ms(Shape::Uniform, 500, 9), AGENTS);
    let completed = 100;
    let last = s.end[s.by_end[completed - 1]];
    let mut model = DurationModel::new(["all"], AGENTS);
    for &i in &s.by_end[..completed] {
        model.record_item(Duration::from_millis(s.durations[i]));
    }
    let p90 = model.item().quantile(0.9).expect("samples").as_millis() as u64;
    let hung: Vec<u64> = (0..s.durations.len())
        .filter(|&i| s.start[i] <= last && s.end[i] > last)
        .map(|i| s.start[i])
        .collect();
    let at = |now: u64| {
        let in_flight: Vec<InFlight> = hung
            .iter()
            .enumerate()
            .map(|(a, &start)| InFlight {
                item: a as u64,
                agent: a,
                step: 0,
                step_elapsed: Duration::from_millis(now - start),
                item_elapsed: Duration::from_millis(now - start),
            })
            .collect();
        estimate(
            &model,
            &EtaInput {
                now_ms: now as i64,
                agents: AGENTS,
                queued: 400 - in_flight.len() as u64,
                in_flight: &in_flight,
                completed_this_run: completed as u64,
                run_started_ms: 0,
                last_completion_ms: Some(last as i64),
                from_history: false,
            },
        )
    };
    assert!(matches!(at(last + 3 * p90 - 1_000), Eta::Estimate(_)));
    assert_eq!(
        at(last + 3 * p90 + 1_000),
        Eta::Stalled {
            since_ms: last as i64
        }
    );
}

/// Later in the job the estimate stays close, and at the end it says done. Near the end few
/// items are left, so one item's spread is allowed on top of 15%.
#[test]
fn later_estimates_stay_close_and_the_end_is_done() {
    for seed in [11, 12, 13] {
        let s = simulate(durations_ms(Shape::Bimodal, ITEMS, seed), AGENTS);
        let finish = *s.end.iter().max().expect("items");
        let slack = s.durations.iter().copied().max().expect("items");
        for share in [0.5, 0.9, 0.99] {
            let completed = (ITEMS as f64 * share) as usize;
            let now = s.end[s.by_end[completed - 1]];
            let Eta::Estimate(e) = observe(&s, completed, now) else {
                panic!("estimate expected at {share}");
            };
            let truth = finish - now;
            let error = e.p50_ms.abs_diff(truth);
            eprintln!("seed {seed} at {share}: p50 {} true {truth}", e.p50_ms);
            assert!(
                error as f64 <= 0.15 * truth as f64 + slack as f64,
                "seed {seed} at {share}: {e:?}, true {truth}"
            );
        }
        assert_eq!(observe(&s, ITEMS, finish), Eta::Done);
    }
}

/// The table of docs/eta.md: 60 seeds per case at 20% of the items, printed. Slow in a debug
/// build, so ignored; run it with
/// `cargo test --test eta_simulation -- --ignored --nocapture`. It asserts what the table
/// claims for random orders: no bias (mean signed error within 3%).
#[test]
#[ignore]
fn error_table_for_docs() {
    // (shape, order): -1 longest first, 0 as drawn, 1 shortest first.
    let cases = [
        (Shape::Uniform, 0),
        (Shape::Bimodal, 0),
        (Shape::LogNormal, 0),
        (Shape::Pareto, 0),
        (Shape::Uniform, -1),
        (Shape::LogNormal, -1),
        (Shape::Pareto, -1),
        (Shape::Bimodal, -1),
        (Shape::Uniform, 1),
        (Shape::LogNormal, 1),
        (Shape::Pareto, 1),
        (Shape::Bimodal, 1),
    ];
    for (shape, order) in cases {
        let (mut errors, mut held) = (vec![], 0);
        for seed in 100..160u64 {
            let mut d = durations_ms(shape, ITEMS, seed);
            match order {
                -1 => d.sort_unstable_by(|a, b| b.cmp(a)),
                1 => d.sort_unstable(),
                _ => {}
            }
            let s = simulate(d, AGENTS);
            let completed = ITEMS / 5;
            let now = s.end[s.by_end[completed - 1]];
            let truth = *s.end.iter().max().expect("items") - now;
            let Eta::Estimate(e) = observe(&s, completed, now) else {
                panic!("estimate expected");
            };
            errors.push((e.p50_ms as f64 - truth as f64) / truth as f64);
            if e.p10_ms <= truth && truth <= e.p90_ms {
                held += 1;
            }
        }
        let mean = errors.iter().sum::<f64>() / errors.len() as f64;
        let worst = errors.iter().fold(0.0f64, |m, e| m.max(e.abs()));
        eprintln!(
            "| {shape:?} | {order} | {:+.1}% | {:.1}% | {held}/60 |",
            mean * 100.0,
            worst * 100.0
        );
        if order == 0 {
            assert!(mean.abs() < 0.03, "{shape:?}: biased by {mean}");
        }
    }
}
