//! `mmm health [--json]`: whether the store takes writes (and how fast) and whether every
//! running job's runner is alive, beating and unstuck. Exit 0 when healthy, 1 when not.

use super::wiring::open_store;
use super::{Exit, output};
use mmm_store::health::{Health, check};

pub(crate) const AFTER_HELP: &str = "\
Problems reported: a store that refuses writes; a job that says running but whose process is
gone (resume it); a live runner without a heartbeat for 10 s; agents the `stuck` alert flags.
Exit code 0 when there is none, 1 otherwise: usable as a cron or container health check.";

/// Arguments of `mmm health`.
#[derive(Debug, clap::Args)]
pub(crate) struct HealthArgs {
    /// Print JSON (the shape the dashboard serves at /healthz).
    #[arg(long)]
    json: bool,
}

pub(crate) fn health(store_location: &str, args: HealthArgs) -> anyhow::Result<Exit> {
    let store = open_store(store_location, false)?;
    let health = check(store.as_ref());
    if args.json {
        output::print_json(&health)?;
    } else {
        print_text(&health);
    }
    Ok(if health.ok {
        Exit::Success
    } else {
        Exit::Failure
    })
}

fn print_text(health: &Health) {
    let store = &health.store;
    if store.writable {
        println!("store: writable ({:.1} ms)", store.latency_ms);
    } else {
        println!("store: NOT writable ({:.1} ms)", store.latency_ms);
    }
    if health.running_jobs.is_empty() {
        println!("running jobs: none");
    }
    for job in &health.running_jobs {
        let heartbeat = job
            .heartbeat_age_ms
            .map(|ms| format!("heartbeat {:.1}s ago", ms as f64 / 1000.0))
            .unwrap_or_else(|| "no heartbeat yet".to_string());
        println!(
            "job {} ({}): {}, {heartbeat}, {} alerts{}",
            job.id.short(),
            job.name,
            if job.owner_alive {
                "runner alive"
            } else {
                "runner GONE"
            },
            job.alerts,
            if job.stuck_agents.is_empty() {
                String::new()
            } else {
                format!(", stuck: {}", job.stuck_agents.join(", "))
            }
        );
    }
    if health.ok {
        println!("healthy");
    } else {
        for problem in &health.problems {
            println!("problem: {problem}");
        }
    }
}
