//! `mmm pause`, `unpause`, `scale`, `drain`, `cancel`: steer a running job from any process,
//! any terminal and (on PostgreSQL) any host, through the store (docs/control.md). The request
//! is recorded at once; the job's owner applies it within a second, and this command waits a
//! little for that to say so.

use std::time::{Duration, Instant};

use anyhow::Context;

use super::wiring::{open_job, usage_or_store_error};
use super::{Exit, UsageError};
use mmm_core::control::ControlAction;
use mmm_core::job::{JobId, JobStatus, now_ms};
use mmm_store::{ControlRequest, Store};

/// How long the command waits for the owner to apply its request before it says it is
/// recorded but not applied yet.
const APPLIED_WAIT: Duration = Duration::from_secs(3);

/// How often it looks.
const APPLIED_POLL: Duration = Duration::from_millis(50);

pub(crate) const PAUSE_HELP: &str = "\
No new item starts; the items in flight finish. With --suspend, their commands' process
groups are stopped too (SIGSTOP) until `mmm unpause`. A paused job stays `running`: its
heartbeat goes on, its ETA says `paused`, and a resume of it comes back paused.

Examples:
  mmm pause 0190a3f2
  mmm pause 0190a3f2 --suspend";

pub(crate) const SCALE_HELP: &str = "\
Up: new agents start at once. Down: agents above N retire after their current item; no
command is killed. The job file's max_parallel is not changed; `mmm resume JOB -j N` sets
the number again. N is from 1 to 256.

Examples:
  mmm scale 0190a3f2 8";

pub(crate) const DRAIN_HELP: &str = "\
No new item starts; once the items in flight end, the run stops and the job is `interrupted`:
`mmm resume JOB` goes on with the items left.";

pub(crate) const CANCEL_HELP: &str = "\
Running commands get the run's grace period (--grace of `mmm run`, 3 s by default), then
their process groups are killed; with --now they are killed at once. The job ends
`cancelled`: `mmm resume` refuses it unless --force.";

/// A job to steer.
#[derive(Debug, clap::Args)]
pub(crate) struct JobArg {
    /// The job: an id or an unambiguous prefix (`mmm jobs` lists them).
    job: String,
}

/// Arguments of `mmm pause`.
#[derive(Debug, clap::Args)]
pub(crate) struct PauseArgs {
    /// The job: an id or an unambiguous prefix (`mmm jobs` lists them).
    job: String,
    /// Also stop the running commands (SIGSTOP to their process groups); their timeout does
    /// not run while they are stopped.
    #[arg(long)]
    suspend: bool,
}

/// Arguments of `mmm scale`.
#[derive(Debug, clap::Args)]
pub(crate) struct ScaleArgs {
    /// The job: an id or an unambiguous prefix (`mmm jobs` lists them).
    job: String,
    /// The number of agents from now on (1 to 256).
    agents: u32,
}

/// Arguments of `mmm cancel`.
#[derive(Debug, clap::Args)]
pub(crate) struct CancelArgs {
    /// The job: an id or an unambiguous prefix (`mmm jobs` lists them).
    job: String,
    /// Kill the running commands at once, without their grace period.
    #[arg(long)]
    now: bool,
}

/// Runs `mmm pause`.
pub(crate) fn pause(store: &str, args: PauseArgs) -> anyhow::Result<Exit> {
    let action = ControlAction::Pause {
        suspend: args.suspend,
    };
    steer(store, &args.job, action)
}

/// Runs `mmm unpause`.
pub(crate) fn unpause(store: &str, args: JobArg) -> anyhow::Result<Exit> {
    steer(store, &args.job, ControlAction::Unpause)
}

/// Runs `mmm scale`.
pub(crate) fn scale(store: &str, args: ScaleArgs) -> anyhow::Result<Exit> {
    let action = ControlAction::Scale {
        agents: args.agents,
    };
    steer(store, &args.job, action)
}

/// Runs `mmm drain`.
pub(crate) fn drain(store: &str, args: JobArg) -> anyhow::Result<Exit> {
    steer(store, &args.job, ControlAction::Drain)
}

/// Runs `mmm cancel`.
pub(crate) fn cancel(store: &str, args: CancelArgs) -> anyhow::Result<Exit> {
    steer(store, &args.job, ControlAction::Cancel { now: args.now })
}

/// Records `action` for the job `prefix` names, then waits a little for its owner to apply it.
fn steer(location: &str, prefix: &str, action: ControlAction) -> anyhow::Result<Exit> {
    // What no job can do is refused before the store is even opened.
    action
        .validate()
        .map_err(|e| UsageError::new(e.to_string()))?;
    let (store, job) = open_job(location, prefix)?;
    request_and_wait(store.as_ref(), job, action)
}

/// Records `action` for `job` (refused when its runner is gone), then waits a little for the
/// job's owner to apply it, and says what happened.
pub(crate) fn request_and_wait(
    store: &dyn Store,
    job: JobId,
    action: ControlAction,
) -> anyhow::Result<Exit> {
    let record = store
        .job(job)
        .with_context(|| format!("could not read job {}", job.short()))?;
    if record.status == JobStatus::Running
        && !mmm_store::owner::owner_is_alive(&record, now_ms(), &mmm_store::owner::host_name())
    {
        return Err(UsageError::new(format!(
            "job {short} is recorded running but its runner (pid {pid} on {host}) is gone, so \
             nobody would apply the request; `mmm resume {short}` runs it again",
            short = job.short(),
            pid = record.owner_pid.unwrap_or(0),
            host = record.owner_host.as_deref().unwrap_or("?"),
        ))
        .into());
    }
    let request = ControlRequest {
        action,
        host: mmm_store::owner::host_name(),
        pid: std::process::id(),
    };
    let recorded = store
        .request_control(job, &request, now_ms())
        .map_err(usage_or_store_error)?;
    if wait_applied(store, job, recorded.seq)? {
        eprintln!("mmm: job {} {}", job.short(), done(action));
    } else {
        eprintln!(
            "mmm: asked job {} to {} (request {}); its runner has not applied it yet",
            job.short(),
            action.name(),
            recorded.seq
        );
    }
    Ok(Exit::Success)
}

/// Waits up to [`APPLIED_WAIT`] for request `seq` to be applied; true once it is.
fn wait_applied(store: &dyn Store, job: JobId, seq: u64) -> anyhow::Result<bool> {
    let deadline = Instant::now() + APPLIED_WAIT;
    loop {
        let pending = store
            .pending_control(job, seq - 1)
            .with_context(|| format!("could not read job {}'s requests", job.short()))?;
        if pending.first().is_none_or(|r| r.seq != seq) {
            return Ok(true);
        }
        if Instant::now() >= deadline {
            return Ok(false);
        }
        std::thread::sleep(APPLIED_POLL);
    }
}

/// What an applied action did, as the command says it.
fn done(action: ControlAction) -> String {
    match action {
        ControlAction::Pause { suspend: false } => {
            "is paused: no new item starts (`mmm unpause` starts them again)".to_string()
        }
        ControlAction::Pause { suspend: true } => {
            "is paused and its running commands are stopped (`mmm unpause` continues them)"
                .to_string()
        }
        ControlAction::Unpause => "is unpaused: items start again".to_string(),
        ControlAction::Scale { agents: 1 } => "runs with 1 agent from now on".to_string(),
        ControlAction::Scale { agents } => format!("runs with {agents} agents from now on"),
        ControlAction::Drain => {
            "is draining: no new item starts; it stops, interrupted, once the items in flight end"
                .to_string()
        }
        ControlAction::Cancel { now: false } => {
            "is cancelling: running commands get their grace period, then are killed".to_string()
        }
        ControlAction::Cancel { now: true } => {
            "is cancelling: running commands are killed now".to_string()
        }
    }
}
