//! Who owns a job and whether that owner is still alive: the one rule every reader (health,
//! the job state, subscriptions, the dashboard) and the runner's take-over judge liveness by.
//!
//! A job is owned by one process (pid, host and a heartbeat every second in the store). On
//! this host the pid is asked directly; another host cannot be asked, so there its heartbeat
//! must be younger than [`STALE_HEARTBEAT`].

use std::time::Duration;

use serde::Serialize;

use mmm_core::job::JobStatus;

use crate::JobRecord;

/// A heartbeat older than this means the owner is gone, whatever host it ran on.
pub const STALE_HEARTBEAT: Duration = Duration::from_secs(30);

/// Who owns a job: the process that runs it, and its last sign of life.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Owner {
    /// Process id.
    pub pid: Option<u32>,
    /// Host name.
    pub host: Option<String>,
    /// Epoch ms of the last heartbeat.
    pub heartbeat_at: Option<i64>,
}

impl Owner {
    /// The owner fields of a job record.
    pub fn of(job: &JobRecord) -> Owner {
        Owner {
            pid: job.owner_pid,
            host: job.owner_host.clone(),
            heartbeat_at: job.heartbeat_at,
        }
    }
}

/// This machine's name, for the owner record.
pub fn host_name() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".to_string())
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
