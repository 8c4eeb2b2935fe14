//! The runner: executes a [`JobPlan`] as setup -> map over N agents -> reduce, recording every
//! state change through the [`StoreWriter`] and keeping the [`Tracker`] current.
//!
//! A run has a [`Role`]. The job's **owner** ([`Role::Own`]) records a new job or continues a
//! recorded one ([`Start`]), beats, runs setup, the map and reduce, and records the job's final
//! status. A **worker** ([`Role::Join`], `mmm worker`) joins a running job's map from another
//! process: it runs the items it claims and records their attempts, nothing about the job.
//!
//! Agents take items from one work source: an in-memory queue a feeder fills (one process per
//! job), or claims through the store (scale-out). Each item is tried up to `1 + retries` times
//! with exponential backoff; an item whose attempts are exhausted goes to the DLQ with every
//! attempt's exit code, error and output tail. A command that cannot even be rendered for an
//! item (a `${item.field}` it lacks) is not retried: it would fail the same way every time. A
//! stop request ([`StopLevel`]) ends dispatching; attempts cut short are recorded `interrupted`
//! and do not count against retries.
//!
//! Two kinds of trouble end a run early, and they are told apart: a [`JobFailure`] is the job's
//! own (its input cannot be read, a setup command failed): the job is recorded `failed` and
//! the run returns its [`RunSummary`]; a [`RunError`] is the runner's (the store or its writer
//! failed, a task panicked): the run stops and the job is left resumable.
//!
//! A program that runs its own work rather than commands records it with [`embed`]: a
//! [`embed::Job`] it feeds items, outcomes, steps and counters, shown by every view like a job
//! `mmm run` ran (docs/library.md).

mod agent;
mod alerting;
mod attempt;
mod budget;
mod capture;
pub mod claim;
mod control;
pub mod embed;
mod feed;
mod halting;
mod heartbeat;
mod history;
mod isolated;
mod lines;
mod map;
mod observer;
mod others;
mod owner;
mod phase;
pub mod process;
mod queue;
pub mod report;
pub mod resume;
mod run;
mod sampler;
mod shown;
mod snapshot;
mod source;
mod throttle;
mod worker;
pub mod worktree;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

pub use claim::{ClaimOptions, ClaimStats};
pub use halting::Halted;
use mmm_core::job::{JobId, JobStatus, Phase};
use mmm_core::metrics::LiveMetrics;
use mmm_core::tracker::Tracker;
use mmm_spec::JobPlan;
use mmm_store::writer::StoreWriter;
use mmm_store::{Outages, Store, StoreError};
pub use process::{CommandRequest, CommandResult, Executor, Exit, ProcessExecutor, StopLevel};
pub use snapshot::SNAPSHOT_SPAN;

/// Output of a command that is to be shown to the user.
#[derive(Debug, Clone)]
pub struct Output {
    /// Whose output: an item key, or a setup/reduce command's name.
    pub source: String,
    /// Standard output.
    pub stdout: Vec<u8>,
    /// Standard error.
    pub stderr: Vec<u8>,
}

/// Everything a run needs besides the executor.
pub struct RunConfig {
    /// The job's id (chosen by the caller so it can be shown before the run starts).
    pub job_id: JobId,
    /// What to run.
    pub plan: Arc<JobPlan>,
    /// The store, for the record of the job and its items.
    pub store: Arc<dyn Store>,
    /// The batching writer in front of `store` (started with the same `outages`).
    pub writer: Arc<StoreWriter>,
    /// How long the run waits out an unavailable store (`--store-outage-limit`), and the
    /// outages it rode out; shared by every part of the run that calls the store.
    pub outages: Arc<Outages>,
    /// Live state, shared with the views.
    pub tracker: Arc<Tracker>,
    /// Durations, ETA, stragglers and failure clusters, shared with the views.
    pub metrics: Arc<LiveMetrics>,
    /// Stop requests from signal handlers.
    pub stop: watch::Receiver<StopLevel>,
    /// Where output to show goes; setup and reduce output always, map output when
    /// `show_map_output` is set.
    pub output: Option<mpsc::UnboundedSender<Output>>,
    /// Show each map command's output (the one-liner does, like GNU parallel).
    pub show_map_output: bool,
    /// The job's owner, or a worker joining its map.
    pub role: Role,
}

/// Whose run this is.
#[derive(Debug, Clone)]
pub enum Role {
    /// This process owns the job: it records the job (or continues its record), beats, runs
    /// setup, the map and reduce, and records the final status.
    Own(OwnerConfig),
    /// Join a running job's map as a worker (`mmm worker`): claim items through the store
    /// with these options, run them, record their attempts and the item and agent events;
    /// nothing about the job itself (status, phase, heartbeat, snapshots and reduce are the
    /// owner's).
    Join(ClaimOptions),
}

/// How the owner of a job runs it.
#[derive(Debug, Clone)]
pub struct OwnerConfig {
    /// A new job, or the continuation of a recorded one.
    pub start: Start,
    /// Scale-out: claim items through the store (a PostgreSQL store shared with workers)
    /// instead of queueing them in memory; `None` for one process per job (SQLite).
    pub claims: Option<ClaimOptions>,
    /// How often the owner heartbeat and a snapshot are recorded.
    pub heartbeat: Duration,
    /// How often a checkpoint is recorded during the map (besides phase boundaries).
    pub checkpoint_every: Duration,
    /// The shortest time between two snapshots; long runs space them out further (see
    /// [`SNAPSHOT_SPAN`]).
    pub snapshot_every: Duration,
}

/// Whether the owner records a new job or continues one.
#[derive(Debug, Clone)]
pub enum Start {
    /// Record a new job; `origin` is how its plan was built (`spec::JobOrigin` as JSON).
    New {
        /// Kept with the job for resumes.
        origin: Option<String>,
    },
    /// Continue a recorded job: its owner is already this process (see [`resume::prepare`]).
    Resume(Resume),
}

/// What a resume starts from.
#[derive(Debug, Clone)]
pub struct Resume {
    /// The phase the job was in when it stopped.
    pub phase: Option<Phase>,
    /// Run setup again even though the job stopped after it.
    pub rerun_setup: bool,
    /// Time the earlier runs spent.
    pub prior_duration: Duration,
    /// Load the input again: add new items, report vanished ones.
    pub reload_input: bool,
    /// The job's counts when the resume started.
    pub counts: mmm_store::ItemCounts,
}

/// How a run ended.
#[derive(Debug)]
pub struct RunSummary {
    /// The job.
    pub job_id: JobId,
    /// Its final status.
    pub status: JobStatus,
    /// Item counts from the store.
    pub counts: mmm_store::ItemCounts,
    /// Wall time of this run.
    pub duration: Duration,
    /// Why the job failed, when it did (setup, input or reduce); always `None` for a worker,
    /// which records nothing about the job.
    pub error: Option<JobFailure>,
    /// Claim figures, when the items were claimed through the store.
    pub claims: Option<ClaimStats>,
    /// Why `--halt` stopped the map, when it did (the job is then `interrupted`).
    pub halted: Option<Halted>,
}

/// Why a job failed: its own fault, recorded as its `failed` status and as the `error` of its
/// `job_finished` event (this type's message, which includes the cause).
#[derive(Debug, thiserror::Error)]
pub enum JobFailure {
    /// The map's input could not be loaded.
    #[error("could not load the map's input: {source}")]
    Input {
        /// The cause.
        #[source]
        source: mmm_spec::InputError,
    },
    /// A job with `map.isolation: worktree` is not in a git repository that can hold it.
    #[error("{source}")]
    Repository {
        /// The cause.
        #[source]
        source: worktree::GitError,
    },
    /// The agents' worktrees could not be set up.
    #[error("could not set up the agents' worktrees: {source}")]
    Worktrees {
        /// The cause.
        #[source]
        source: worktree::GitError,
    },
    /// A setup or reduce command could not be rendered (a `${...}` it cannot fill).
    #[error("{phase} command `{command}` could not be rendered: {source}")]
    Render {
        /// Setup or reduce.
        phase: Phase,
        /// The command's name.
        command: String,
        /// The cause.
        #[source]
        source: mmm_spec::RenderError,
    },
    /// A setup or reduce command failed.
    #[error("{phase} command `{command}` {}", .exit.describe())]
    Command {
        /// Setup or reduce.
        phase: Phase,
        /// The command's name.
        command: String,
        /// How it ended.
        exit: Exit,
    },
}

/// Why a run could not go on. The job is left as the store last recorded it: resumable.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The store refused a write or a read.
    #[error("the store failed while running job {job}; the job is left resumable")]
    Store {
        /// The job.
        job: JobId,
        /// The cause.
        #[source]
        source: StoreError,
    },
    /// A task of the runner panicked (a bug: please report it).
    #[error("a task of the runner panicked while running job {job} (a bug: please report it)")]
    Panicked {
        /// The job.
        job: JobId,
        /// The task's end.
        #[source]
        source: tokio::task::JoinError,
    },
    /// The batching writer failed.
    #[error("the store writer failed while running job {job}; the job is left resumable")]
    Writer {
        /// The job.
        job: JobId,
        /// The cause.
        #[source]
        source: mmm_store::writer::WriterError,
    },
}

/// Runs a job: as its owner, from its first record (or where a resume takes it up) to its
/// final status; as a worker, until its map has nothing left to claim.
pub async fn run<E: Executor>(config: RunConfig, executor: Arc<E>) -> Result<RunSummary, RunError> {
    let (run, role) = run::Run::new(config, executor);
    let run = Arc::new(run);
    match role {
        Role::Own(owner) => owner::own(run, owner).await,
        Role::Join(claims) => worker::join(run, claims).await,
    }
}
