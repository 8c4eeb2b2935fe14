//! Continuing a recorded job: whether its owner is still alive, taking it over safely, and
//! the list of jobs that can continue.
//!
//! A job is owned by one process (pid, host and a heartbeat every second in the store). A
//! job can be taken over when it was stopped cleanly (`interrupted`), or when it is recorded
//! `running` but its owner is dead: its pid is gone on this host, or, on another host, its
//! heartbeat is older than [`STALE_HEARTBEAT`]. The take-over itself is a compare-and-swap in the store, so of
//! two processes racing for a job exactly one wins.

use std::time::Duration;

use serde::Serialize;

use crate::job::{JobId, JobStatus, now_ms};
use crate::store::{ItemCounts, JobRecord, Owner, Requeued, Store, StoreError, Write};

/// A heartbeat older than this means the owner is gone, whatever host it ran on.
pub const STALE_HEARTBEAT: Duration = Duration::from_secs(30);

/// A job that can continue, as `mmm jobs --resumable` lists it.
#[derive(Debug, Clone, Serialize)]
pub struct ResumableJob {
    /// The job.
    pub id: JobId,
    /// Its name.
    pub name: String,
    /// `interrupted`, or `running` with a dead owner.
    pub status: JobStatus,
    /// Epoch ms of the first start.
    pub started_at: Option<i64>,
    /// Epoch ms of the last recorded change.
    pub last_activity: i64,
    /// Item counts.
    pub counts: ItemCounts,
    /// Percent done (completed, dead-lettered or skipped).
    pub percent: f64,
    /// Time spent running so far, over all runs, in ms.
    pub spent_ms: i64,
    /// What remains at the pace so far (items done per second of running), in ms; none
    /// before any item finished.
    pub remaining_ms: Option<i64>,
}

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

/// True when the job's recorded owner is still running it: only a `running` job has one.
pub fn owner_is_alive(job: &JobRecord, now: i64, this_host: &str) -> bool {
    // A clean stop, a finish or a failure releases the job.
    job.status == JobStatus::Running && owner_process_alive(job, now, this_host)
}

/// Whether the owner process recorded for the job still exists: on this host, its pid exists
/// (a dead pid wins over a fresh heartbeat, and a live one over a stale heartbeat: a stopped
/// process may wake up and write again); on another host, which cannot be asked, its
/// heartbeat is younger than [`STALE_HEARTBEAT`].
pub fn owner_process_alive(job: &JobRecord, now: i64, this_host: &str) -> bool {
    match (job.owner_pid, job.owner_host.as_deref()) {
        (Some(pid), Some(host)) if host == this_host => pid_exists(pid),
        _ => job
            .heartbeat_at
            .is_some_and(|at| now - at < STALE_HEARTBEAT.as_millis() as i64),
    }
}

fn pid_exists(pid: u32) -> bool {
    use nix::errno::Errno;
    use nix::sys::signal::kill;
    use nix::unistd::Pid;
    let Ok(raw) = i32::try_from(pid) else {
        return false;
    };
    // Signal 0 checks existence; EPERM means it exists but belongs to someone else.
    matches!(kill(Pid::from_raw(raw), None), Ok(()) | Err(Errno::EPERM))
}

/// Every job that can continue: interrupted, or running with a dead owner. Newest first.
pub fn list_resumable_jobs(store: &dyn Store) -> Result<Vec<ResumableJob>, StoreError> {
    let now = now_ms();
    let host = super::host_name();
    Ok(store
        .jobs()?
        .into_iter()
        .filter(|job| {
            job.status == JobStatus::Interrupted
                || (job.status == JobStatus::Running && !owner_is_alive(job, now, &host))
        })
        .map(|job| {
            let c = job.counts;
            let done = c.completed + c.dead_lettered + c.skipped;
            let total = c.total();
            let percent = if total == 0 {
                0.0
            } else {
                done as f64 * 100.0 / total as f64
            };
            let remaining_ms = (done > 0 && job.duration_ms > 0)
                .then(|| (job.duration_ms as f64 * (total - done) as f64 / done as f64) as i64);
            ResumableJob {
                id: job.id,
                name: job.name,
                status: job.status,
                started_at: job.started_at,
                last_activity: job.updated_at,
                counts: c,
                percent,
                spent_ms: job.duration_ms,
                remaining_ms,
            }
        })
        .collect())
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
    let host = super::host_name();
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
