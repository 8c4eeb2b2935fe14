//! `mmm store copy|migrate`: copy (or move) a job's whole record from the store (`--store`) to
//! another one, e.g. from a laptop's SQLite store to a cluster's PostgreSQL store, and continue
//! it there with `mmm resume JOB --store DEST` (see `store::copy`).

use anyhow::Context;

use super::{Exit, UsageError, output};
use mmm_core::event::{Event, JobCopied};
use mmm_core::job::{JobStatus, now_ms};

use mmm_store::{self as store, Write};

pub(crate) const AFTER_HELP: &str = "\
Examples:
  mmm store copy 019ab3 --to 'postgres://mmm@db:5432/jobs?schema=nightly'   laptop -> cluster
  mmm store copy 019ab3 --store 'postgres://...' --to ./.mmm                 cluster -> laptop
  mmm store migrate 019ab3 --to 'postgres://mmm@db:5432/jobs'               move it: copy, then
                                                                             delete it here
  mmm resume 019ab3 --store 'postgres://...'                                 go on there

The copy holds everything: the job and its plan, every item with its status, every attempt,
the events, snapshots and checkpoints, its pause and control requests, its budgets, and its
item logs (DLQ, history, resume ledger, `mmm logs` and `mmm check` read the same on both
sides). The job must not be running: stop it first (Ctrl-C, and its workers), or copy it
after a crash. `copy` leaves the source's record as it was: resume the job in one store only.
`migrate` deletes it from the source once the destination holds it (one transaction on each
side; a failure in between leaves the job in both stores, never in neither).";

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
    /// Move a job to another store: copy its whole record, then delete it from this one.
    #[command(after_help = AFTER_HELP)]
    Migrate(CopyArgs),
}

#[derive(Debug, clap::Args)]
struct CopyArgs {
    /// The job (id or unique prefix) in the store given by --store.
    #[arg(add = super::wiring::job_id_completer())]
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
        StoreCommand::Copy(args) => transfer(store_location, args, Transfer::Copy),
        StoreCommand::Migrate(args) => transfer(store_location, args, Transfer::Move),
    }
}

fn backend(location: &str) -> &'static str {
    if store::postgres::is_postgres_url(location) {
        "postgres"
    } else {
        "sqlite"
    }
}

/// Whether the source keeps the job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transfer {
    Copy,
    Move,
}

fn transfer(store_location: &str, args: CopyArgs, how: Transfer) -> anyhow::Result<Exit> {
    let from = store::open(store_location, false)
        .with_context(|| format!("could not open the store at {store_location}"))?;
    let id = from.resolve_job(&args.job)?;
    let record = from.job(id)?;
    let host = mmm_store::owner::host_name();
    if record.status == JobStatus::Running
        && mmm_store::owner::owner_process_alive(&record, now_ms(), &host)
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
    store::copy::copy_logs(from.as_ref(), to.as_ref(), id).with_context(|| {
        format!(
            "job {} is in {} now, but not all of its logs could be copied (this store still \
             has them all: `mmm logs` reads them here)",
            id.short(),
            store::shown_location(&args.to)
        )
    })?;
    let event = |direction: &str| {
        let copied = JobCopied {
            direction: direction.to_string(),
            from: backend(store_location).to_string(),
            to: backend(&args.to).to_string(),
            moved: how == Transfer::Move,
        };
        Write::event(id, None, Event::JobCopied(copied))
    };
    to.apply(&[event("in")])?;
    match how {
        Transfer::Copy => from.apply(&[event("out")])?,
        Transfer::Move => {
            // Delete only what the destination now holds in full.
            let there = to.job(id)?;
            if there.counts != record.counts {
                anyhow::bail!(
                    "job {} was copied to {} but its counts there differ ({:?} against {:?}); \
                     it is kept here too",
                    id.short(),
                    store::shown_location(&args.to),
                    there.counts,
                    record.counts
                );
            }
            from.delete_job(id).with_context(|| {
                format!(
                    "job {} is in {} now, but could not be deleted here",
                    id.short(),
                    store::shown_location(&args.to)
                )
            })?;
        }
    }
    if !args.quiet {
        let c = record.counts;
        let to = store::shown_location(&args.to);
        eprintln!(
            "mmm: {} job {} ({}: {} items, {} done, {} attempts, {} events) to {to}",
            match how {
                Transfer::Copy => "copied",
                Transfer::Move => "moved",
            },
            id.short(),
            record.status,
            output::count(c.total()),
            output::count(c.completed + c.dead_lettered + c.skipped),
            output::count(dump.contents.attempts.len() as u64),
            output::count(dump.events.len() as u64),
        );
        if !record.status.is_finished() {
            let once = match how {
                Transfer::Copy => " (and resume it in one store only)",
                Transfer::Move => "",
            };
            eprintln!(
                "mmm: go on there with `mmm resume {} --store {to}`{once}",
                id.short()
            );
        }
    }
    Ok(Exit::Success)
}
