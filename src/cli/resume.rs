//! `mmm resume JOB`: continue a job where it stood, and `mmm checkpoints JOB`: list the
//! points a resume can rewind to.
//!
//! Resume takes the job over (refused while its owner lives), closes the attempts the last
//! owner left in flight, checks the job file has not changed (or shows how it did), says what
//! it restored, then runs the rest with the same views as `mmm run` (see
//! [`super::wiring::continue_job`]).

use super::wiring::{ResumeOptions, continue_job, open_job};
use super::{Exit, output};
use mmm_core::job::now_ms;

pub(crate) const AFTER_HELP: &str = "\
Examples:
  mmm jobs --resumable                 jobs that can continue
  mmm resume 01a20a                    continue a job (any unambiguous id prefix)
  mmm resume 01a20a --from 3           rewind to checkpoint 3 first (see mmm checkpoints)

What runs again: items never finished, items whose attempt was cut short (recorded
`interrupted`, not counted against retries), items that failed and still have retries, and
new items found in the input. Completed, skipped and dead-lettered items do not run again.
Setup runs again only if the job stopped during setup (or with --rerun-setup); reduce runs
again if the job stopped during map or reduce. docs/resume.md has the whole story.";

/// Arguments of `mmm resume`.
#[derive(Debug, clap::Args)]
pub(crate) struct ResumeArgs {
    /// The job: its id or an unambiguous prefix (`mmm jobs --resumable` lists them).
    #[arg(add = super::wiring::job_id_completer())]
    job: String,
    #[command(flatten)]
    options: ResumeOptions,
}

/// Arguments of `mmm checkpoints`.
#[derive(Debug, clap::Args)]
pub(crate) struct CheckpointsArgs {
    /// The job: its id or an unambiguous prefix.
    #[arg(add = super::wiring::job_id_completer())]
    job: String,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// Runs `mmm resume`.
pub(crate) fn resume(store_location: &str, args: ResumeArgs) -> anyhow::Result<Exit> {
    let (store, id) = open_job(store_location, &args.job)?;
    continue_job(store, id, &args.options, store_location)
}

/// Runs `mmm checkpoints`.
pub(crate) fn checkpoints(store_location: &str, args: CheckpointsArgs) -> anyhow::Result<Exit> {
    let (store, id) = open_job(store_location, &args.job)?;
    let checkpoints = store.checkpoints(id)?;
    if args.json {
        output::print_json(&checkpoints)?;
        return Ok(Exit::Success);
    }
    let now = now_ms();
    let rows: Vec<Vec<String>> = checkpoints
        .iter()
        .map(|c| {
            vec![
                c.id.to_string(),
                output::age(c.at, now),
                c.phase.map_or("-".into(), |p| p.to_string()),
                c.reason.clone(),
                output::count(c.completed),
                output::count(c.dead_lettered),
                output::count(c.skipped),
            ]
        })
        .collect();
    let header = [
        "ID",
        "TAKEN",
        "PHASE",
        "REASON",
        "COMPLETED",
        "DLQ",
        "SKIPPED",
    ];
    print!("{}", output::table(&header, &rows, &[0, 4, 5, 6]));
    Ok(Exit::Success)
}
