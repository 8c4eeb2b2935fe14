//! Continuing a recorded job: taking it over safely from a dead (or stopped) owner.
//!
//! A job can be taken over when it was stopped cleanly (`interrupted`), or when it is recorded
//! `running` but its owner is dead ([`mmm_store::owner`]). The take-over itself is a
//! compare-and-swap in the store, so of two processes racing for a job exactly one wins.

use std::time::Duration;

use mmm_core::job::{JobId, JobStatus, now_ms};
use mmm_store::owner::{Owner, host_name, owner_is_alive};
use mmm_store::{JobRecord, Requeued, Store, StoreError, Write};

/// Why a job cannot be taken over.
#[derive(Debug, thiserror::Error)]
pub enum TakeOverError {
    /// Its owner is alive.
    #[error(
        "job {job} is being run by pid {pid} on {host} (last heartbeat {age_s}s ago); \
         stop that process first, or wait for it to finish"
    )]
    Owned {
        /// The job.
        job: JobId,
        /// The owner's pid.
        pid: String,
        /// The owner's host.
        host: String,
        /// Seconds since its heartbeat.
        age_s: i64,
    },
    /// It has finished; there is nothing to continue.
    #[error(
        "job {job} is {status}: there is nothing to resume (retry its failed items with \
         `mmm dlq retry {job}`)"
    )]
    Finished {
        /// The job.
        job: JobId,
        /// Its status.
        status: JobStatus,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a take-over found and did.
#[derive(Debug, Clone)]
pub struct TakenOver {
    /// The job as it was recorded before the take-over.
    pub job: JobRecord,
    /// Attempts that were in flight when the last owner stopped, now `interrupted`.
    pub requeued: Requeued,
    /// Process groups of commands the dead owner left running on this host, now killed.
    pub killed_groups: usize,
}

/// Whether a finished job may be taken over (to rewind it to a checkpoint).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finished {
    /// Refuse: a finished job has nothing to resume.
    Refuse,
    /// Reopen it.
    Reopen,
}

/// Makes this process the job's owner, then closes the attempts the last owner left in
/// flight and requeues their items.
pub fn take_over(
    store: &dyn Store,
    id: JobId,
    finished: Finished,
) -> Result<TakenOver, TakeOverError> {
    let job = store.job(id)?;
    let now = now_ms();
    let host = host_name();
    if job.status.is_finished() && finished == Finished::Refuse {
        return Err(TakeOverError::Finished {
            job: id,
            status: job.status,
        });
    }
    if owner_is_alive(&job, now, &host) {
        return Err(owned(&job, now));
    }
    let claim = Owner {
        pid: Some(std::process::id()),
        host: Some(host),
        heartbeat_at: Some(now),
    };
    if !store.take_job(id, &Owner::of(&job), &claim)? {
        // Another process took it between our read and our write: report who.
        let now_job = store.job(id)?;
        return Err(owned(&now_job, now_ms()));
    }
    // A dead owner's commands live on in their own process groups: their items are about
    // to run again, so stop them first (this host only; a clean stop left none).
    let killed_groups = match job.status {
        JobStatus::Running => kill_leftover_commands(id, job.owner_pid),
        _ => 0,
    };
    let requeued = store.requeue_in_flight(id, now)?;
    // A run that died recorded its duration at its last heartbeat, but its last write came
    // later: count the time up to that write too.
    let unrecorded = match (job.status, job.heartbeat_at) {
        (JobStatus::Running, Some(beat)) => (job.updated_at - beat).max(0),
        _ => 0,
    };
    if unrecorded > 0 {
        store.apply(&[Write::Heartbeat {
            job: id,
            at: now,
            duration_ms: job.duration_ms + unrecorded,
        }])?;
    }
    Ok(TakenOver {
        job,
        requeued,
        killed_groups,
    })
}

/// Kills the process groups of commands still running for `job` on this host: the processes
/// whose environment has `MMM_JOB_ID=<job>` (every command gets it) and, when the dead runner's
/// pid is known, `MMM_RUNNER_PID=<pid>`: the commands of a live `mmm worker` of the same job
/// on this host are not the dead runner's. SIGTERM, up to a second to exit, then SIGKILL.
/// Returns how many groups there were.
pub fn kill_leftover_commands(job: JobId, runner_pid: Option<u32>) -> usize {
    use nix::sys::signal::{Signal, killpg};
    use nix::unistd::{Pid, getpgid};
    let marker = format!("MMM_JOB_ID={job}");
    let runner = runner_pid.map(|pid| format!("MMM_RUNNER_PID={pid}"));
    let own_group = getpgid(None).ok();
    let mut groups = std::collections::BTreeSet::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(environ) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        let has = |wanted: &str| {
            environ
                .split(|b| *b == 0)
                .any(|var| var == wanted.as_bytes())
        };
        if !has(&marker) || runner.as_deref().is_some_and(|runner| !has(runner)) {
            continue;
        }
        if let Ok(group) = getpgid(Some(Pid::from_raw(pid)))
            && Some(group) != own_group
        {
            groups.insert(group);
        }
    }
    for group in &groups {
        let _ = killpg(*group, Signal::SIGTERM);
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(1);
    while std::time::Instant::now() < deadline && groups.iter().any(|g| killpg(*g, None).is_ok()) {
        std::thread::sleep(Duration::from_millis(20));
    }
    for group in &groups {
        let _ = killpg(*group, Signal::SIGKILL);
    }
    groups.len()
}

fn owned(job: &JobRecord, now: i64) -> TakeOverError {
    TakeOverError::Owned {
        job: job.id,
        pid: job.owner_pid.map_or("?".into(), |p| p.to_string()),
        host: job.owner_host.clone().unwrap_or_else(|| "?".into()),
        age_s: job.heartbeat_at.map_or(-1, |at| (now - at) / 1000),
    }
}
