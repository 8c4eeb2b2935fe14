//! `mmm check [JOB]` verifies the store (SQLite's own integrity checks, then the invariants of
//! each job's record, `store::audit`), and `mmm repair JOB` restores what can be restored, in
//! one transaction, reporting every change. Also: whether a job's owner process is alive.

use std::io::Write;

use serde::Serialize;

use super::output::owner_description;
use super::wiring::{open_job, owner_state, usage_or_store_error};
use super::{Exit, output};
use mmm_core::event::Repaired;
use mmm_core::job::{JobId, now_ms};
use mmm_store::audit::{self, Owner, Problem, RepairPlan};
use mmm_store::{self as store, Store, StoreError};

/// At most this many item keys per problem in the human output (JSON has them all).
const KEYS_SHOWN: usize = 5;

pub(crate) const CHECK_HELP: &str = "\
Examples:
  mmm check                 every job in the store
  mmm check 019ab3 --json   one job, as JSON

What is checked: SQLite's integrity_check and foreign_key_check, then for each job: a completed
item has a succeeded attempt; a dead-lettered item's last counted attempt failed or timed out;
attempts are in flight only while the job runs with a live owner, and only for running items;
a running item has an attempt in flight; attempt numbers are 1..n; a running job has a live
owner; a completed job has nothing left to run or in the DLQ, and a completed_with_failures job
has dead-lettered items and nothing left to run.

Exit status: 0 when the store is sound, 1 when problems were found (`mmm repair JOB` fixes what
it can), 2 for an unknown job.";

pub(crate) const REPAIR_HELP: &str = "\
Examples:
  mmm repair 019ab3
  mmm repair 019ab3 --json

For a job no live process owns: attempts still in flight are closed as `interrupted` (they do
not count against retries); running items, completed items without a succeeded attempt and
dead-lettered items without a failed attempt go back to `pending` (they will run again); the
job gets the status its counts imply (`interrupted` while work remains). Everything happens in
one transaction, recorded as a `repaired` event listing the changes. A job whose owner is alive
(its pid exists on this host, or on another host its heartbeat is under 30 s old) is refused.";

/// Arguments of `mmm check`.
#[derive(Debug, clap::Args)]
pub(crate) struct CheckArgs {
    /// Check only this job (an id or an unambiguous prefix) [default: every job].
    #[arg(add = super::wiring::job_id_completer())]
    job: Option<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// Arguments of `mmm repair`.
#[derive(Debug, clap::Args)]
pub(crate) struct RepairArgs {
    /// The job to repair: an id or an unambiguous prefix.
    #[arg(add = super::wiring::job_id_completer())]
    job: String,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// One problem of one job, as printed.
#[derive(Debug, Serialize)]
struct JobProblem {
    job: JobId,
    short_id: String,
    #[serde(flatten)]
    problem: Problem,
}

/// `mmm check --json`.
#[derive(Debug, Serialize)]
struct CheckReport {
    store: String,
    ok: bool,
    storage: Vec<String>,
    jobs_checked: usize,
    problems: Vec<JobProblem>,
}

/// `mmm repair --json`.
#[derive(Debug, Serialize)]
struct RepairReport {
    job: JobId,
    short_id: String,
    changed: bool,
    #[serde(flatten)]
    plan: RepairPlan,
}

/// Runs `mmm check`.
pub(crate) fn check(store_location: &str, args: CheckArgs) -> anyhow::Result<Exit> {
    // A PostgreSQL URL has no file; `store::open` refuses what is neither.
    let path = store::database_path(store_location).ok();
    // SQLite takes an empty file for a new database; for a store that once held jobs, an empty
    // file means its content was lost, which check must not call sound.
    if let Some(path) = &path
        && std::fs::metadata(path).is_ok_and(|meta| meta.is_file() && meta.len() == 0)
    {
        anyhow::bail!(
            "the store file {} is empty (0 bytes): whatever it recorded is lost; restore a backup, \
             or remove the file to start a new store",
            path.display()
        );
    }
    let store = store::open(store_location, false).map_err(damaged_is_final)?;
    let storage = store.storage_problems().map_err(damaged_is_final)?;
    let ids: Vec<JobId> = match &args.job {
        Some(prefix) => vec![store.resolve_job(prefix).map_err(usage_or_store_error)?],
        None => store
            .jobs()
            .map_err(damaged_is_final)?
            .iter()
            .map(|job| job.id)
            .collect(),
    };
    let now = now_ms();
    let mut problems = Vec::new();
    for id in &ids {
        let contents = store.job_contents(*id).map_err(damaged_is_final)?;
        let owner = owner_state(&contents.job, now);
        problems.extend(
            audit::audit(&contents, owner)
                .into_iter()
                .map(|problem| JobProblem {
                    job: *id,
                    short_id: id.short(),
                    problem,
                }),
        );
    }
    let ok = storage.is_empty() && problems.is_empty();
    let report = CheckReport {
        store: path.map_or_else(
            || mmm_store::shown_location(store_location),
            |p| p.display().to_string(),
        ),
        ok,
        storage,
        jobs_checked: ids.len(),
        problems,
    };
    if args.json {
        output::print_json(&report)?;
    } else {
        print_check(&report)?;
    }
    Ok(if ok { Exit::Success } else { Exit::Failure })
}

fn print_check(report: &CheckReport) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    for line in &report.storage {
        writeln!(out, "storage: {line}")?;
    }
    for p in &report.problems {
        writeln!(
            out,
            "{}  {}: {}{}",
            p.short_id,
            p.problem.kind.as_str(),
            p.problem.message,
            keys(&p.problem.items)
        )?;
    }
    let jobs = format!(
        "{} {} checked",
        output::count(report.jobs_checked as u64),
        if report.jobs_checked == 1 {
            "job"
        } else {
            "jobs"
        }
    );
    if report.ok {
        writeln!(
            out,
            "store {} is sound: integrity ok, {jobs}, no problems",
            report.store
        )?;
        return Ok(());
    }
    let mut affected: Vec<&str> = report
        .problems
        .iter()
        .map(|p| p.short_id.as_str())
        .collect();
    affected.dedup();
    let mut verdict = format!(
        "store {}: {} {} found ({jobs})",
        report.store,
        report.problems.len() + report.storage.len(),
        if report.problems.len() + report.storage.len() == 1 {
            "problem"
        } else {
            "problems"
        }
    );
    if !report.storage.is_empty() {
        verdict.push_str(
            "; SQLite reports damage: copy the file aside, then restore a backup or export what \
             `mmm jobs --json` can still read",
        );
    }
    if let Some(first) = affected.first() {
        verdict.push_str(&format!(
            "; `mmm repair JOB` fixes what it can (e.g. `mmm repair {first}`)"
        ));
    }
    writeln!(out, "{verdict}")?;
    Ok(())
}

/// Runs `mmm repair`.
pub(crate) fn repair(store_location: &str, args: RepairArgs) -> anyhow::Result<Exit> {
    let (store, id) =
        open_job(store_location, &args.job).map_err(|e| match e.downcast::<StoreError>() {
            Ok(store_error) => damaged_is_final(store_error),
            Err(other) => other,
        })?;
    let contents = store.job_contents(id).map_err(damaged_is_final)?;
    let now = now_ms();
    if owner_state(&contents.job, now) == Owner::Alive {
        anyhow::bail!(
            "job {} is owned by a live process ({}); repair only a job no process runs: wait for \
             it to finish, or stop it first",
            id.short(),
            owner_description(&contents.job, now)
        );
    }
    let plan = audit::repair_plan(&contents);
    let changed = !plan.is_empty();
    if changed {
        let repaired = Repaired {
            changes: plan.changes.clone(),
            actions: plan.actions.clone(),
        };
        store.repair(id, &repaired, now)?;
    }
    let left = !plan.left.is_empty();
    let report = RepairReport {
        job: id,
        short_id: id.short(),
        changed,
        plan,
    };
    if args.json {
        output::print_json(&report)?;
    } else {
        print_repair(store.as_ref(), &report)?;
    }
    Ok(if left { Exit::Failure } else { Exit::Success })
}

fn print_repair(store: &dyn Store, report: &RepairReport) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    let short = &report.short_id;
    if report.changed {
        writeln!(out, "repaired job {short}:")?;
        for change in &report.plan.changes {
            writeln!(out, "  {}{}", change.message, keys(&change.items))?;
        }
        let status = store.job(report.job)?.status;
        writeln!(
            out,
            "the job is now `{status}`; the changes are recorded as a `repaired` event"
        )?;
    } else {
        writeln!(out, "job {short}: nothing to repair")?;
    }
    for p in &report.plan.left {
        writeln!(
            out,
            "not repairable: {}: {}{}",
            p.kind.as_str(),
            p.message,
            keys(&p.items)
        )?;
    }
    Ok(())
}

/// A store SQLite cannot read is the end of the line for check and repair: say so and what to
/// do instead.
fn damaged_is_final(e: StoreError) -> anyhow::Error {
    match e {
        StoreError::Damaged { path, source } => anyhow::anyhow!(
            "the store file {} is damaged: {source}; move it aside (e.g. `mv {} {}.damaged`) and \
             restore a backup, or start a new store; `mmm repair` cannot fix a file SQLite \
             cannot read",
            path.display(),
            path.display(),
            path.display()
        ),
        other => usage_or_store_error(other),
    }
}

/// ": a, b, c and 4 more" (nothing when there are no keys).
fn keys(items: &[String]) -> String {
    if items.is_empty() {
        return String::new();
    }
    let mut text = format!(
        ": {}",
        items
            .iter()
            .take(KEYS_SHOWN)
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(", ")
    );
    if items.len() > KEYS_SHOWN {
        text.push_str(&format!(" and {} more", items.len() - KEYS_SHOWN));
    }
    text
}
