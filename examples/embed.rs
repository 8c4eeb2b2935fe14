//! A program that runs its own work and lets mmm keep the record: `cargo run --example embed
//! -- [STORE] [ITEMS]` (default `.mmm` and 300 items).
//!
//! A plain loop over the items, through two steps each, with a counter; every 50th item fails
//! once and succeeds when tried again, and the item `item-299` is given up on (it lands in the
//! DLQ). While it runs (about 3 s), `mmm progress`, `mmm serve` and `mmm jobs` show it like any
//! job; afterwards `mmm stats` counts it under its name, `embedded-demo`.

use std::time::Duration;

use mmm_runner::embed::{ItemOutcome, Job, JobOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let location = args.next().unwrap_or_else(|| ".mmm".to_string());
    let count: usize = args.next().map_or(Ok(300), |n| n.parse())?;
    let store = mmm_store::open(&location, true)?;
    let keys: Vec<String> = (0..count).map(|i| format!("item-{i}")).collect();
    let job = Job::start(
        store,
        JobOptions::new("embedded-demo")
            .steps(["fetch", "resize"])
            .items(keys.clone()),
    )?;
    println!("job {} recording in {location}", job.id());
    for (i, key) in keys.iter().enumerate() {
        let mut item = job.start_item(0, key)?;
        job.step(&mut item, "fetch")?;
        std::thread::sleep(Duration::from_millis(4));
        job.step(&mut item, "resize")?;
        job.progress(&item, 0.5);
        std::thread::sleep(Duration::from_millis(4 + (i % 5) as u64));
        job.counter("bytes", (1_000 + i) as f64);
        if i % 50 == 0 {
            // A transient failure: recorded, then tried again at once.
            job.finish_item(
                item,
                ItemOutcome::Failed {
                    error: "connection reset".into(),
                    retry: true,
                },
            )?;
            let again = job.start_item(0, key)?;
            job.finish_item(again, ItemOutcome::Succeeded)?;
        } else if i + 1 == count && count > 1 {
            job.finish_item(
                item,
                ItemOutcome::Failed {
                    error: "corrupt image".into(),
                    retry: false,
                },
            )?;
        } else {
            job.finish_item(item, ItemOutcome::Succeeded)?;
        }
    }
    let counts = job.counts();
    let status = job.finish()?;
    println!(
        "{status}: {} completed, {} in the DLQ, {} retries",
        counts.completed, counts.dead_lettered, counts.retries
    );
    Ok(())
}
