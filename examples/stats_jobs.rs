//! Builds a store of finished jobs with their attempts, for `bench/stats.sh` (`mmm stats` over
//! 10,000 jobs): `cargo run --release --example stats_jobs -- DIR JOBS ITEMS`.
//!
//! The jobs are spread over the last 30 days under 20 names, each with ITEMS items of two
//! steps (`fetch`, `score`) whose durations vary; one item in ten fails once before it
//! succeeds, one job in ten failed, and every fifth name has a `deadline:`.

use std::path::PathBuf;

use mmm_core::job::{AttemptOutcome, ItemStatus, JobId, JobStatus, now_ms};
use mmm_store::{NewItem, NewJob, StepRecord, Write};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: stats_jobs DIR JOBS ITEMS";
    let dir = PathBuf::from(args.next().ok_or(usage)?);
    let jobs: u64 = args.next().ok_or(usage)?.parse()?;
    let items: u64 = args.next().ok_or(usage)?.parse()?;
    std::fs::create_dir_all(&dir)?;
    let store = mmm_store::open(dir.join(".mmm").to_str().ok_or("path")?, true)?;
    let span = 30 * 24 * 3_600_000;
    let start = now_ms() - span;
    let new_items: Vec<NewItem> = (0..items)
        .map(|i| NewItem {
            key: format!("k{i}"),
            value: format!("{i}"),
        })
        .collect();
    let mut seed = 1u64;
    let mut next = |bound: u64| {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (seed >> 33) % bound
    };
    for n in 0..jobs {
        let id = JobId::new();
        let created = start + (n as i64 * span) / jobs as i64;
        let name = n % 20;
        let spec = if name % 5 == 0 {
            r#"{"deadline":{"after":"5m"}}"#.to_string()
        } else {
            "{}".to_string()
        };
        let job = NewJob {
            id,
            name: format!("job-{name}"),
            spec,
            spec_hash: "0".into(),
            source: None,
            max_parallel: 4,
            created_at: created,
            owner_pid: std::process::id(),
            owner_host: "bench".into(),
            origin: None,
        };
        store.create_job(&job, &new_items)?;
        let mut writes = vec![Write::JobStatus {
            job: id,
            status: JobStatus::Running,
            at: created,
        }];
        let mut at = created;
        for index in 0..items {
            let retried = next(10) == 0;
            for number in 1..=(1 + u32::from(retried)) {
                let ok = !(retried && number == 1);
                let (fetch, score) = (1_000 + next(200_000), 5_000 + next(2_000_000));
                at += (fetch + score) as i64 / 4_000;
                writes.push(Write::AttemptStarted {
                    job: id,
                    item_index: index,
                    number,
                    agent: "agent-1".into(),
                    at,
                });
                writes.push(Write::AttemptFinished {
                    job: id,
                    item_index: index,
                    number,
                    ended_at: at,
                    duration_us: fetch + score,
                    outcome: if ok {
                        AttemptOutcome::Succeeded
                    } else {
                        AttemptOutcome::Failed
                    },
                    exit_code: Some(i32::from(!ok)),
                    error: None,
                    steps: vec![
                        StepRecord {
                            name: "fetch".into(),
                            skipped: false,
                            duration_us: fetch,
                            exit_code: Some(0),
                        },
                        StepRecord {
                            name: "score".into(),
                            skipped: false,
                            duration_us: score,
                            exit_code: Some(i32::from(!ok)),
                        },
                    ],
                    stdout_tail: String::new(),
                    stderr_tail: String::new(),
                    item_status: if ok {
                        ItemStatus::Completed
                    } else {
                        ItemStatus::Failed
                    },
                    counts_against_retries: true,
                });
            }
        }
        let ran = at - created + 1;
        let status = if n % 10 == 0 {
            JobStatus::Failed
        } else {
            JobStatus::Completed
        };
        writes.push(Write::Heartbeat {
            job: id,
            at: created + ran,
            duration_ms: ran,
        });
        writes.push(Write::JobStatus {
            job: id,
            status,
            at: created + ran,
        });
        store.apply(&writes)?;
        if (n + 1) % 1_000 == 0 {
            eprintln!("{} jobs", n + 1);
        }
    }
    println!("{}", dir.display());
    Ok(())
}
