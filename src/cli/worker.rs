//! `mmm worker`: joins the map phase of jobs recorded in a PostgreSQL store, from any host.
//!
//! The job's owner (`mmm run FILE --store postgres://...`) runs setup, records the items,
//! runs agents of its own and, once every item is finished by someone, the reduce. A worker
//! claims items through the store (`runner::claim`), runs them exactly as the owner's agents do
//! (same plan, retries, timeouts, DLQ, events) and records its attempts under agents named
//! `NAME/N` (NAME: `--name`, default `HOST:PID`, unique among the workers of all hosts).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::watch;

use super::wiring::{StopNotices, run_config, runtime, watch_signals};
use super::{Exit, UsageError, output};
use mmm_core::job::{JobStatus, Phase};
use mmm_runner::{self as runner, ClaimOptions, ProcessExecutor, Role, StopLevel, claim};
use mmm_spec::{JobOrigin, JobPlan};
use mmm_store::{self as store, JobRecord, Store};

pub(crate) const AFTER_HELP: &str = "\
Examples:
  mmm run job.yml --store postgres://mmm@db:5432/jobs            # on one host: the job's owner
  mmm worker --store postgres://mmm@db:5432/jobs -j 8             # on every other host
  mmm worker --store postgres://mmm@db:5432/jobs --job 019ab3 --exit-when-idle   # Slurm array task

The owner (`mmm run`) runs setup, records the items, runs agents of its own, waits until every
item is finished by someone, then runs reduce. Workers claim items through the store in small
batches, each under a lease they renew while they live; the owner and the workers never run the
same item. An item whose worker died (SIGKILL, lost host) is claimed again once its lease runs
out (30 s), its attempt recorded `interrupted` (not counted against retries).

Steps run in the job's directory when it exists on this host (a shared file system), else in
the current directory. Without --job, a worker takes the oldest running job whose map has
items left, and waits for one when there is none. Ctrl-C (or SIGTERM) stops claiming, lets
running commands finish for --grace and gives back what was not started. See docs/scale-out.md.";

/// Arguments of `mmm worker`.
#[derive(Debug, clap::Args)]
pub(crate) struct WorkerArgs {
    /// Work on this job only (id or unique prefix) [default: any running job, oldest first].
    #[arg(long, value_name = "JOB", add = super::wiring::job_id_completer())]
    job: Option<String>,
    /// Number of parallel agents [default: the job's map.max_parallel].
    #[arg(short = 'j', long = "jobs", value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100_000))]
    jobs: Option<u32>,
    /// Exit when nothing is left to claim and the job's map is done (or no job has work),
    /// instead of waiting for more: for batch schedulers (a Slurm array task).
    #[arg(long)]
    exit_when_idle: bool,
    /// Name the agents NAME/1..N in the record [default: HOST:PID, e.g. node7:4242, unique
    /// even for several workers on one host]; a given name should be unique too.
    #[arg(long, value_name = "NAME")]
    name: Option<String>,
    /// How long a running command may finish after Ctrl-C before it is killed.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = humantime::parse_duration)]
    grace: Duration,
    /// How long a claim holds without renewal (tests use a short one; every process of a job
    /// should use the same).
    #[arg(long, value_name = "DURATION", env = "MMM_LEASE", hide = true, value_parser = humantime::parse_duration)]
    lease: Option<Duration>,
    /// How long the worker waits for a store it cannot reach (a PostgreSQL server restarting
    /// or cut off) before it stops: running commands go on meanwhile and their results wait to
    /// be recorded.
    #[arg(long, default_value = "5m", value_name = "DURATION", value_parser = humantime::parse_duration)]
    store_outage_limit: Duration,
    /// Print nothing but errors.
    #[arg(short, long)]
    quiet: bool,
}

/// What a job offers a worker now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Offer {
    /// Its map runs and has unfinished items.
    Work,
    /// Not yet: pending, in setup, or interrupted (a resume may come).
    Later,
    /// Nothing more will come: finished, in reduce, or its map is done.
    Over,
}

fn offer(job: &JobRecord) -> Offer {
    let c = job.counts;
    let unfinished = c.pending + c.failed + c.running;
    match (job.status, job.phase) {
        (status, _) if status.is_finished() => Offer::Over,
        (JobStatus::Running, Some(Phase::Map)) if unfinished > 0 => Offer::Work,
        (JobStatus::Running, Some(Phase::Map) | Some(Phase::Reduce)) => Offer::Over,
        _ => Offer::Later,
    }
}

/// Runs `mmm worker`.
pub(crate) fn worker(store_location: &str, args: WorkerArgs) -> anyhow::Result<Exit> {
    if !store::postgres::is_postgres_url(store_location) {
        return Err(UsageError::new(format!(
            "mmm worker needs the PostgreSQL store the job's owner uses (--store \
             postgres://USER@HOST:PORT/DATABASE?schema=NAME, or MMM_STORE); `{store_location}` \
             is not one. A SQLite store serves one process: run the job with `mmm run`"
        ))
        .into());
    }
    // Created when missing: a worker may start before the job's owner.
    let store = store::open(store_location, true)
        .with_context(|| format!("could not open the store at {store_location}"))?;
    let only = match &args.job {
        Some(prefix) => Some(store.resolve_job(prefix)?),
        None => None,
    };
    let host = mmm_store::owner::host_name();
    // The process id keeps two workers on one host apart (the same as their claims' holder).
    let name = args
        .name
        .clone()
        .unwrap_or_else(|| format!("{host}:{}", std::process::id()));
    let lease = args.lease.unwrap_or(claim::DEFAULT_LEASE);
    runtime()?.block_on(async move {
        let (stop_tx, stop_rx) = watch::channel(StopLevel::Run);
        let notices = WorkerNotices { quiet: args.quiet };
        let signals = tokio::spawn(watch_signals(stop_tx, notices));
        let poll = Duration::from_millis(500);
        let exit = loop {
            if *stop_rx.borrow() != StopLevel::Run {
                break Exit::Interrupted;
            }
            let candidates = {
                let store = store.clone();
                tokio::task::spawn_blocking(move || match only {
                    Some(id) => store.job(id).map(|job| vec![job]),
                    None => store.jobs(),
                })
                .await
                .context("a store task panicked")??
            };
            // Oldest first: `jobs()` lists the newest first.
            let next = candidates
                .iter()
                .rev()
                .find(|job| offer(job) == Offer::Work);
            if let Some(job) = next {
                let summary =
                    join(&store, job, &args, &name, &host, lease, stop_rx.clone()).await?;
                if let Some(summary) = summary
                    && !args.quiet
                {
                    report(&summary, &name);
                }
                continue;
            }
            let over =
                |job: &JobRecord| offer(job) == Offer::Over || job.status == JobStatus::Interrupted;
            let done = match only {
                Some(_) => candidates
                    .iter()
                    .all(|job| job.status.is_finished() || (args.exit_when_idle && over(job))),
                None => args.exit_when_idle && candidates.iter().all(over),
            };
            if done {
                break Exit::Success;
            }
            let mut stop = stop_rx.clone();
            tokio::select! {
                _ = tokio::time::sleep(poll) => {}
                _ = stop.wait_for(|level| *level != StopLevel::Run) => {}
            }
        };
        signals.abort();
        Ok(exit)
    })
}

/// Runs the items this process can claim of `job` until its map is done (or a stop).
async fn join(
    store: &Arc<dyn Store>,
    job: &JobRecord,
    args: &WorkerArgs,
    name: &str,
    host: &str,
    lease: Duration,
    stop: watch::Receiver<StopLevel>,
) -> anyhow::Result<Option<runner::RunSummary>> {
    let plan = Arc::new(plan_of(job, args.jobs)?);
    let agents = plan.map.max_parallel.max(1);
    if !args.quiet {
        eprintln!(
            "mmm worker: joining job {} ({}) with {agents} agents named {name}/1..{agents}; \
             claims hold for {}",
            job.id.short(),
            plan.name,
            output::duration(lease)
        );
    }
    let role = Role::Join(ClaimOptions::new(
        host,
        agents,
        lease,
        Some(name.to_string()),
    ));
    let outage_limit = args.store_outage_limit;
    let config = run_config(
        job.id,
        plan.clone(),
        store.clone(),
        role,
        stop,
        outage_limit,
    )?;
    let tracker = config.tracker.clone();
    let executor = Arc::new(ProcessExecutor {
        stop_grace: args.grace,
        ..ProcessExecutor::default()
    });
    let summary = runner::run(config, executor)
        .await
        .with_context(|| format!("worker on job {} stopped", job.id.short()))?;
    let done_here = tracker.progress().done();
    if !args.quiet {
        eprintln!(
            "mmm worker: finished {} items of job {} here",
            output::count(done_here),
            job.id.short()
        );
    }
    Ok(Some(summary))
}

/// The job's plan as its owner recorded it, with `-j` applied; steps run in the job's
/// directory when this host has it, else in the current one.
fn plan_of(job: &JobRecord, agents: Option<u32>) -> anyhow::Result<JobPlan> {
    let mut origin: JobOrigin = job
        .origin
        .as_deref()
        .and_then(|o| serde_json::from_str(o).ok())
        .ok_or_else(|| {
            UsageError::new(format!(
                "job {} has no record of how it was started, so a worker cannot run it",
                job.id.short()
            ))
        })?;
    if let Some(j) = agents {
        origin.overrides.max_parallel = Some(j as usize);
    }
    let mut plan = origin.plan_as_recorded()?.plan;
    if !plan.base_dir.is_dir() {
        plan.base_dir = std::env::current_dir().context("could not read the current directory")?;
    }
    Ok(plan)
}

/// The line a worker prints per job it worked on (the benchmark reads it).
fn report(summary: &runner::RunSummary, name: &str) {
    if let Some(c) = summary.claims {
        eprintln!(
            "mmm worker: {name}: job {} is {}; {} claims of {} items, claim latency p50 {:.2} ms, \
             p99 {:.2} ms; {} items taken over from expired leases",
            summary.job_id.short(),
            summary.status,
            c.claims,
            c.items,
            c.p50.as_secs_f64() * 1e3,
            c.p99.as_secs_f64() * 1e3,
            c.taken_over
        );
    }
}

/// What a worker's signals do: stop claiming and let commands finish, then kill them now.
struct WorkerNotices {
    quiet: bool,
}

impl StopNotices for WorkerNotices {
    // Nothing to say: the worker still ends with its job, or with `--exit-when-idle`.
    fn unwatchable(&self) {}

    fn stopping(&self, _level: StopLevel) {
        if !self.quiet {
            eprintln!("mmm worker: stopping (claimed items not started go back to the others)");
        }
    }
}
