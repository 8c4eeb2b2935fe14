//! `mmm resume JOB`: continue a job where it stood, and `mmm checkpoints JOB`: list the
//! points a resume can rewind to.
//!
//! Resume takes the job over (refused while its owner lives), closes the attempts the last
//! owner left in flight, checks the job file has not changed (or shows how it did), says what
//! it restored, then runs the rest with the same views as `mmm run`.

use std::sync::Arc;
use std::time::Duration;

use super::dlq::open_job;
use super::run::{ViewArgs, execute, runtime};
use super::{Exit, UsageError, output};
use mmm_core::event::{Event, ItemRequeued, RequeueReason, SpecChanged, SpecFromStore};
use mmm_core::job::{JobId, now_ms};
use mmm_runner::resume::{Finished, TakeOverError, take_over};
use mmm_runner::{Resume, Start};
use mmm_spec::JobOrigin;
use mmm_store::{Store, Write};

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
    job: String,
    #[command(flatten)]
    options: ResumeOptions,
}

/// How a job continues; `mmm dlq retry` continues a job with the defaults.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct ResumeOptions {
    /// Rewind first: items completed after this checkpoint run again.
    #[arg(long, value_name = "CHECKPOINT")]
    from: Option<i64>,
    /// Run setup again even though the job got past it.
    #[arg(long)]
    rerun_setup: bool,
    /// Go on with the job file as it is now, even though it changed since the job started.
    #[arg(long)]
    accept_changed_spec: bool,
    /// Number of parallel agents [default: as the job had].
    #[arg(short = 'j', long = "jobs", value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100_000))]
    jobs: Option<u32>,
    #[command(flatten)]
    view: ViewArgs,
}

impl ResumeOptions {
    /// Continue as the job was, with these views.
    pub(crate) fn with_view(view: ViewArgs) -> Self {
        ResumeOptions {
            from: None,
            rerun_setup: false,
            accept_changed_spec: false,
            jobs: None,
            view,
        }
    }
}

/// Arguments of `mmm checkpoints`.
#[derive(Debug, clap::Args)]
pub(crate) struct CheckpointsArgs {
    /// The job: its id or an unambiguous prefix.
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

/// Takes the job over, says what it restored, and runs the rest of it.
pub(crate) fn continue_job(
    store: Arc<dyn Store>,
    id: JobId,
    args: &ResumeOptions,
    store_location: &str,
) -> anyhow::Result<Exit> {
    let record = store.job(id)?;
    let mut origin: JobOrigin = record
        .origin
        .as_deref()
        .and_then(|o| serde_json::from_str(o).ok())
        .ok_or_else(|| {
            UsageError::new(format!(
                "job {} has no record of how it was started, so it cannot be resumed",
                id.short()
            ))
        })?;
    if let Some(j) = args.jobs {
        origin.overrides.max_parallel = Some(j as usize);
    }
    let rebuilt = origin.plan()?;
    let plan = rebuilt.plan;
    if plan.hash() != record.spec_hash && !args.accept_changed_spec {
        let before = pretty(&record.spec);
        let after = pretty(&serde_json::to_string(&plan).unwrap_or_default());
        return Err(UsageError::new(format!(
            "the job file changed since job {} started:\n{}\nresume with --accept-changed-spec to go on with the file as it is now",
            id.short(),
            line_diff(&before, &after)
        ))
        .into());
    }
    let finished = match args.from {
        Some(_) => Finished::Reopen,
        None => Finished::Refuse,
    };
    let taken = take_over(store.as_ref(), id, finished).map_err(|e| match e {
        TakeOverError::Store(s) => anyhow::Error::new(s),
        other => anyhow::Error::new(UsageError::new(other.to_string())),
    })?;
    let now = now_ms();
    let mut writes = Vec::new();
    for key in &taken.requeued.interrupted {
        writes.push(requeued(id, key, RequeueReason::Interrupted));
    }
    let rewound = match args.from {
        Some(checkpoint) => store.rewind(id, checkpoint, now)?,
        None => Vec::new(),
    };
    for key in &rewound {
        writes.push(requeued(id, key, RequeueReason::Rewound));
    }
    if rebuilt.from_stored_text {
        let from_store = SpecFromStore {
            reason: "the job file is gone; using the text recorded when the job started".into(),
        };
        writes.push(Write::event(id, None, Event::SpecFromStore(from_store)));
    }
    if plan.hash() != record.spec_hash {
        let changed = SpecChanged { accepted: true };
        writes.push(Write::event(id, None, Event::SpecChanged(changed)));
    }
    store.apply(&writes)?;

    let job = store.job(id)?;
    let c = job.counts;
    let prior = Duration::from_millis(job.duration_ms.max(0) as u64);
    if !args.view.quiet {
        let mut line = format!(
            "mmm: restored {} completed, {} in DLQ, {} skipped; {} interrupted attempts requeued",
            output::count(c.completed),
            output::count(c.dead_lettered),
            output::count(c.skipped),
            output::count(taken.requeued.interrupted.len() as u64),
        );
        if args.from.is_some() {
            line.push_str(&format!(
                "; {} rewound",
                output::count(rewound.len() as u64)
            ));
        }
        line.push_str(&format!(
            "; {} to go; {} already spent",
            output::count(c.pending + c.failed + c.running),
            output::duration(prior)
        ));
        eprintln!("{line}");
        if taken.killed_groups > 0 {
            eprintln!(
                "mmm: stopped {} commands the dead run left running (their items run again)",
                taken.killed_groups
            );
        }
        if rebuilt.from_stored_text {
            eprintln!("mmm: the job file is gone; using its text as recorded when the job started");
        }
    }
    let start = Start::Resume(Resume {
        phase: job.phase,
        rerun_setup: args.rerun_setup,
        prior_duration: prior,
        // A file input that has not changed cannot hold new items: skip reloading it.
        reload_input: match plan.map.input_fingerprint(&plan.base_dir) {
            Some(now) => job.input_fingerprint.as_deref() != Some(now.as_str()),
            None => true,
        },
        counts: c,
    });
    runtime()?.block_on(execute(
        store,
        Arc::new(plan),
        id,
        start,
        &args.view,
        store_location,
    ))
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

fn requeued(job: JobId, key: &str, reason: RequeueReason) -> Write {
    let requeued = ItemRequeued {
        reason,
        claimed_by: None,
    };
    Write::event(job, Some(key), Event::ItemRequeued(requeued))
}

fn pretty(json: &str) -> String {
    serde_json::from_str::<serde_json::Value>(json)
        .and_then(|v| serde_json::to_string_pretty(&v))
        .unwrap_or_else(|_| json.to_string())
}

/// The lines that differ between two texts, between their common head and tail, as `-`/`+`.
fn line_diff(before: &str, after: &str) -> String {
    let (a, b): (Vec<&str>, Vec<&str>) = (before.lines().collect(), after.lines().collect());
    let head = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let tail = a[head..]
        .iter()
        .rev()
        .zip(b[head..].iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let mut out = String::new();
    for line in &a[head..a.len() - tail] {
        out.push_str(&format!("  - {line}\n"));
    }
    for line in &b[head..b.len() - tail] {
        out.push_str(&format!("  + {line}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_diff_shows_only_what_changed() {
        let d = line_diff("a\nb\nc\nd", "a\nB\nc\nd");
        assert_eq!(d, "  - b\n  + B\n");
        assert_eq!(line_diff("x", "x"), "");
    }
}
