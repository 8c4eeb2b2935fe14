//! Builds a store holding one large job interrupted halfway, for `bench/resume.sh`:
//! `cargo run --release --example big_store -- DIR ITEMS`.
//!
//! The job is a job file whose step writes a timestamp the first time it runs, so the
//! benchmark can tell when the resumed job dispatched its first item.

use std::path::PathBuf;

use mmm_core::event::{Event, ItemCompleted};
use mmm_core::job::{AttemptOutcome, ItemStatus, JobId, JobStatus, Phase, now_ms};
use mmm_spec::{JobOrigin, Overrides};
use mmm_store::{NewItem, NewJob, Write};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().ok_or("usage: big_store DIR ITEMS")?);
    let n: u64 = args.next().ok_or("usage: big_store DIR ITEMS")?.parse()?;
    std::fs::create_dir_all(&dir)?;
    let dir = std::path::absolute(&dir)?;
    let items: String = (0..n).map(|i| format!("{{\"n\": {i}}}\n")).collect();
    std::fs::write(dir.join("items.jsonl"), items)?;
    let job_file = dir.join("job.yml");
    std::fs::write(
        &job_file,
        "map:\n  input: items.jsonl\n  key: \"n${item.n}\"\n  max_parallel: 2\n  steps:\n    - shell: test -e first.ts || date +%s%N > first.ts\n",
    )?;
    let origin = JobOrigin::file(&job_file, Overrides::default())?;
    let plan = origin.plan()?.plan;
    let store = mmm_store::open(dir.join(".mmm").to_str().ok_or("path")?, true)?;
    let id = JobId::new();
    let job = NewJob {
        id,
        name: plan.name.clone(),
        spec: serde_json::to_string(&plan)?,
        spec_hash: plan.hash(),
        source: plan.source.clone(),
        max_parallel: 2,
        created_at: now_ms(),
        owner_pid: std::process::id(),
        owner_host: "bench".into(),
        origin: Some(serde_json::to_string(&origin)?),
    };
    let rows: Vec<NewItem> = (0..n)
        .map(|i| NewItem {
            key: format!("n{i}"),
            value: format!("{{\"n\":{i}}}"),
        })
        .collect();
    store.create_job(&job, &rows)?;
    let at = now_ms();
    store.apply(&[
        Write::JobStatus {
            job: id,
            status: JobStatus::Running,
            at,
        },
        Write::JobPhase {
            job: id,
            phase: Phase::Map,
            at,
        },
    ])?;
    // Half the items completed, with their attempts and events, in batches as the writer would.
    let done = n / 2;
    for chunk in (0..done).collect::<Vec<_>>().chunks(5_000) {
        let mut writes = Vec::with_capacity(chunk.len() * 3);
        for &i in chunk {
            writes.push(Write::AttemptStarted {
                job: id,
                item_index: i,
                number: 1,
                agent: "agent-1".into(),
                at,
            });
            writes.push(Write::AttemptFinished {
                job: id,
                item_index: i,
                number: 1,
                ended_at: at,
                duration_us: 1_000,
                outcome: AttemptOutcome::Succeeded,
                exit_code: Some(0),
                error: None,
                steps: Vec::new(),
                stdout_tail: String::new(),
                stderr_tail: String::new(),
                item_status: ItemStatus::Completed,
                counts_against_retries: true,
            });
            writes.push(Write::Event {
                job: id,
                at,
                item_key: Some(format!("n{i}")),
                event: Event::ItemCompleted(ItemCompleted {
                    attempt: 1,
                    agent: "agent-1".into(),
                    duration_us: None,
                    steps_us: None,
                }),
            });
        }
        store.apply(&writes)?;
    }
    store.apply(&[Write::JobStatus {
        job: id,
        status: JobStatus::Interrupted,
        at: now_ms(),
    }])?;
    println!("{id}");
    Ok(())
}
