//! `mmm store copy`: copy a job's whole record from the store (`--store`) to another one, e.g.
//! from a laptop's SQLite store to a cluster's PostgreSQL store, and continue it there with
//! `mmm resume JOB --store DEST` (see `store::copy`).

use anyhow::Context;
use serde_json::json;

use super::{Exit, UsageError, output};
use crate::job::{JobStatus, now_ms};
use crate::runner;
use crate::store::{self, Write};

pub(crate) const AFTER_HELP: &str = "\
Examples:
  mmm store copy 019ab3 --to 'postgres://mmm@db:5432/jobs?schema=nightly'   laptop -> cluster
  mmm store copy 019ab3 --store 'postgres://...' --to ./.mmm                 cluster -> laptop
  mmm resume 019ab3 --store 'postgres://...'                                 go on there

The copy holds everything: the job and its plan, every item with its status, every attempt,
the events, snapshots and checkpoints (DLQ, history, resume ledger and `mmm check` read the same
on both sides). The job must not be running: stop it first (Ctrl-C, and its workers), or copy it
after a crash. The source keeps its record; resume the job in one store only.";

/// Arguments of `mmm store`.
#[derive(Debug, clap::Args)]
pub(crate) struct StoreArgs {
    #[command(subcommand)]
    command: StoreCommand,
}

#[derive(Debug, clap::Subcommand)]
enum StoreCommand {
    /// Copy a job's whole record to another store (SQLite <-> PostgreSQL) to go on there.
    #[command(after_help = AFTER_HELP)]
    Copy(CopyArgs),
}

#[derive(Debug, clap::Args)]
struct CopyArgs {
    /// The job (id or unique prefix) in the store given by --store.
    job: String,
    /// The store to copy it to: a directory, a .db file or a postgres:// URL (created when
    /// missing).
    #[arg(long, value_name = "STORE")]
    to: String,
    /// Print nothing but errors.
    #[arg(short, long)]
    quiet: bool,
}

/// Runs `mmm store ...`.
pub(crate) fn store(store_location: &str, args: StoreArgs) -> anyhow::Result<Exit> {
    match args.command {
        StoreCommand::Copy(args) => copy(store_location, args),
    }
}

fn backend(location: &str) -> &'static str {
    if store::postgres::is_postgres_url(location) {
        "postgres"
    } else {
        "sqlite"
    }
}

fn copy(store_location: &str, args: CopyArgs) -> anyhow::Result<Exit> {
    let from = store::open(store_location, false)
        .with_context(|| format!("could not open the store at {store_location}"))?;
    let id = from.resolve_job(&args.job)?;
    let record = from.job(id)?;
    let host = runner::host_name();
    if record.status == JobStatus::Running
        && runner::resume::owner_process_alive(&record, now_ms(), &host)
    {
        return Err(UsageError::new(format!(
            "job {} is running (pid {} on {}); stop it (Ctrl-C) and its workers first, then copy it",
            id.short(),
            record.owner_pid.map_or("?".to_string(), |p| p.to_string()),
            record.owner_host.as_deref().unwrap_or("?"),
        ))
        .into());
    }
    let to = store::open(&args.to, true)
        .with_context(|| format!("could not open the store at {}", args.to))?;
    let dump = store::copy::copy_job(from.as_ref(), to.as_ref(), id)
        .with_context(|| format!("could not copy job {} to {}", id.short(), args.to))?;
    let event = |direction: &str| Write::Event {
        job: id,
        at: now_ms(),
        kind: "job_copied".to_string(),
        item_key: None,
        payload: json!({
            "direction": direction,
            "from": backend(store_location),
            "to": backend(&args.to),
        }),
    };
    to.apply(&[event("in")])?;
    from.apply(&[event("out")])?;
    if !args.quiet {
        let c = record.counts;
        eprintln!(
            "mmm: copied job {} ({}: {} items, {} done, {} attempts, {} events) to {}",
            id.short(),
            record.status,
            output::count(c.total()),
            output::count(c.completed + c.dead_lettered + c.skipped),
            output::count(dump.contents.attempts.len() as u64),
            output::count(dump.events.len() as u64),
            args.to
        );
        if !record.status.is_finished() {
            eprintln!(
                "mmm: go on there with `mmm resume {} --store {}` (and resume it in one store only)",
                id.short(),
                args.to
            );
        }
    }
    Ok(Exit::Success)
}
