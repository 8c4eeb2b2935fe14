//! Builds a store holding many finished jobs and a few running ones, for `bench/job_lists.sh`:
//! `cargo run --release --example many_jobs -- DIR JOBS RUNNING`.
//!
//! Jobs get one of 20 names, 5 items each, and a running time; a tenth of them failed. The
//! items of the finished ones ran once (from 10 ms to 3 s); in a failed job the last one was
//! dead-lettered. The running ones are owned by this (then dead) process, as jobs of a
//! crashed runner would be.

use std::path::PathBuf;

use mmm_core::job::{AttemptOutcome, ItemStatus, JobId, JobStatus, now_ms};
use mmm_store::{NewItem, NewJob, Write};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: many_jobs DIR JOBS RUNNING";
    let dir = PathBuf::from(args.next().ok_or(usage)?);
    let jobs: u64 = args.next().ok_or(usage)?.parse()?;
    let running: u64 = args.next().ok_or(usage)?.parse()?;
    std::fs::create_dir_all(&dir)?;
    let store = mmm_store::open(dir.join(".mmm").to_str().ok_or("path")?, true)?;
    let start = now_ms() - 30 * 24 * 3_600_000;
    let items: Vec<NewItem> = (0..5)
        .map(|i| NewItem {
            key: format!("k{i}"),
            value: format!("{i}"),
        })
        .collect();
    for n in 0..jobs + running {
        let id = JobId::new();
        let created = start + n as i64 * 1_000;
        let job = NewJob {
            id,
            name: format!("job-{}", n % 20),
            spec: "{}".into(),
            spec_hash: "0".into(),
            source: None,
            max_parallel: 2,
            created_at: created,
            owner_pid: std::process::id(),
            owner_host: "bench".into(),
            origin: None,
        };
        store.create_job(&job, &items)?;
        let ran = 1_000 + (n % 600) as i64 * 1_000;
        let mut writes = vec![
            Write::JobStatus {
                job: id,
                status: JobStatus::Running,
                at: created,
            },
            Write::Heartbeat {
                job: id,
                at: created + ran,
                duration_ms: ran,
            },
        ];
        if n < jobs {
            let failed = n % 10 == 0;
            let status = if failed {
                JobStatus::Failed
            } else {
                JobStatus::Completed
            };
            for i in 0..5u64 {
                let dead = failed && i == 4;
                let duration_us = 10_000 + (n * 5 + i) % 300 * 10_000;
                writes.push(Write::AttemptStarted {
                    job: id,
                    item_index: i,
                    number: 1,
                    agent: "agent-1".into(),
                    at: created,
                });
                writes.push(Write::AttemptFinished {
                    job: id,
                    item_index: i,
                    number: 1,
                    ended_at: created + (duration_us / 1_000) as i64,
                    duration_us,
                    outcome: if dead {
                        AttemptOutcome::Failed
                    } else {
                        AttemptOutcome::Succeeded
                    },
                    exit_code: Some(i32::from(dead)),
                    error: None,
                    steps: Vec::new(),
                    stdout_tail: String::new(),
                    stderr_tail: String::new(),
                    item_status: if dead {
                        ItemStatus::DeadLettered
                    } else {
                        ItemStatus::Completed
                    },
                    counts_against_retries: true,
                });
            }
            writes.push(Write::JobStatus {
                job: id,
                status,
                at: created + ran,
            });
        }
        store.apply(&writes)?;
        if (n + 1) % 10_000 == 0 {
            eprintln!("{} jobs", n + 1);
        }
    }
    println!("{}", dir.display());
    Ok(())
}
