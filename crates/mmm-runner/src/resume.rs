//! Continuing a recorded job: taking it over safely from a dead (or stopped) owner
//! ([`take_over`]), and everything a resume does before its run ([`prepare`]): the plan
//! rebuilt from the job's origin and checked against the recorded one, the take-over, the
//! rewind to a checkpoint, their events, and how the run is to start.
//!
//! A job can be taken over when it was stopped cleanly (`interrupted`), or when it is recorded
//! `running` but its owner is dead ([`mmm_store::owner`]). The take-over itself is a
//! compare-and-swap in the store, so of two processes racing for a job exactly one wins.

use std::time::Duration;

use crate::{Resume, Start};
use mmm_core::event::{Event, ItemRequeued, RequeueReason, SpecChanged, SpecFromStore};
use mmm_core::job::{JobId, JobStatus, now_ms};
use mmm_spec::{JobOrigin, JobPlan, SpecError};
use mmm_store::owner::{Owner, host_name, owner_is_alive};
use mmm_store::{JobRecord, Requeued, Store, StoreError, Write};

/// How a job continues.
#[derive(Debug, Clone, Default)]
pub struct ResumeOptions {
    /// Rewind first to this checkpoint: items completed after it run again (a finished job
    /// is reopened).
    pub from: Option<i64>,
    /// Run setup again even though the job got past it.
    pub rerun_setup: bool,
    /// Go on with the job file as it is now, even though it changed since the job started.
    pub accept_changed_spec: bool,
    /// Number of parallel agents; `None`: as the job had.
    pub max_parallel: Option<usize>,
    /// Resume a `cancelled` job (`mmm cancel`), which is otherwise refused as finished.
    pub force: bool,
}

/// Why a job cannot be resumed.
#[derive(Debug, thiserror::Error)]
pub enum ResumeError {
    /// The job has no record of how its plan was built.
    #[error("job {} has no record of how it was started, so it cannot be resumed", .job.short())]
    NoOrigin {
        /// The job.
        job: JobId,
    },
    /// Its plan cannot be built again (the job file no longer parses).
    #[error("the plan of job {} cannot be built again", .job.short())]
    Spec {
        /// The job.
        job: JobId,
        /// The cause (boxed: it is large).
        #[source]
        source: Box<SpecError>,
    },
    /// The job file changed since the job started, and the change was not accepted
    /// ([`ResumeOptions::accept_changed_spec`]).
    #[error("the job file changed since job {} started", .job.short())]
    SpecChanged {
        /// The job.
        job: JobId,
        /// The plan as recorded when the job started (JSON).
        recorded: String,
        /// The plan from the job file as it is now (JSON).
        current: String,
    },
    /// The job cannot be taken over.
    #[error(transparent)]
    TakeOver(#[from] TakeOverError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A job taken over and made ready to continue: what was restored (for the caller to show),
/// and how to run the rest ([`Restored::plan`] with [`Restored::start`] as the owner).
#[derive(Debug)]
pub struct Restored {
    /// The plan to run the rest with.
    pub plan: JobPlan,
    /// How the run starts: a [`Start::Resume`].
    pub start: Start,
    /// The job as recorded once taken over (and rewound): its counts are what was restored.
    pub job: JobRecord,
    /// What the take-over found and did.
    pub taken: TakenOver,
    /// The keys of the items the rewind requeued (none without [`ResumeOptions::from`]).
    pub rewound: Vec<String>,
    /// The job file is gone: its text as recorded when the job started was used.
    pub from_stored_text: bool,
    /// The job file changed since the job started, and the change was accepted.
    pub spec_changed: bool,
}

/// Everything a resume does before its run: rebuilds the job's plan from its origin (refused
/// when the job file changed, unless accepted), takes the job over, rewinds it to
/// [`ResumeOptions::from`], records the requeued items, the plan's source and an accepted
/// change as events, and decides whether the input is loaded again (a file input that has not
/// changed cannot hold new items).
pub fn prepare(
    store: &dyn Store,
    id: JobId,
    options: &ResumeOptions,
) -> Result<Restored, ResumeError> {
    let record = store.job(id)?;
    let mut origin: JobOrigin = record
        .origin
        .as_deref()
        .and_then(|o| serde_json::from_str(o).ok())
        .ok_or(ResumeError::NoOrigin { job: id })?;
    if let Some(agents) = options.max_parallel {
        origin.overrides.max_parallel = Some(agents);
    }
    let rebuilt = origin.plan().map_err(|source| ResumeError::Spec {
        job: id,
        source: Box::new(source),
    })?;
    let plan = rebuilt.plan;
    let spec_changed = plan.hash() != record.spec_hash;
    if spec_changed && !options.accept_changed_spec {
        return Err(ResumeError::SpecChanged {
            job: id,
            recorded: record.spec,
            current: serde_json::to_string(&plan).unwrap_or_default(),
        });
    }
    let finished = match options.from {
        Some(_) => Finished::Reopen,
        None if options.force && record.status == JobStatus::Cancelled => Finished::Reopen,
        None => Finished::Refuse,
    };
    let taken = take_over(store, id, finished)?;
    let now = now_ms();
    let mut writes = Vec::new();
    for key in &taken.requeued.interrupted {
        writes.push(requeued(id, key, RequeueReason::Interrupted));
    }
    let rewound = match options.from {
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
    if spec_changed {
        let changed = SpecChanged { accepted: true };
        writes.push(Write::event(id, None, Event::SpecChanged(changed)));
    }
    store.apply(&writes)?;

    let job = store.job(id)?;
    let start = Start::Resume(Resume {
        phase: job.phase,
        rerun_setup: options.rerun_setup,
        prior_duration: Duration::from_millis(job.duration_ms.max(0) as u64),
        // A file input that has not changed cannot hold new items: skip reloading it. Items
        // read from standard input are on record; it is not read again.
        reload_input: !plan.map.reads_stdin()
            && match plan.map.input_fingerprint(&plan.base_dir) {
                Some(now) => job.input_fingerprint.as_deref() != Some(now.as_str()),
                None => true,
            },
        counts: job.counts,
    });
    Ok(Restored {
        plan,
        start,
        job,
        taken,
        rewound,
        from_stored_text: rebuilt.from_stored_text,
        spec_changed,
    })
}

/// An item put back to `pending`, and why.
fn requeued(job: JobId, key: &str, reason: RequeueReason) -> Write {
    let requeued = ItemRequeued {
        reason,
        claimed_by: None,
    };
    Write::event(job, Some(key), Event::ItemRequeued(requeued))
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
    #[error("{}", finished_message(*job, *status))]
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

/// Why a finished job is not resumed, and what the user can do instead.
fn finished_message(job: JobId, status: JobStatus) -> String {
    if status == JobStatus::Cancelled {
        format!("job {job} was cancelled; `mmm resume --force {job}` runs it again")
    } else {
        format!(
            "job {job} is {status}: there is nothing to resume (retry its failed items with \
             `mmm dlq retry {job}`)"
        )
    }
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
    // A run that died recorded its duration at its last heartbeat, but its last write came
    // later: count the time up to that write too. Recorded before the take-over, as a
    // heartbeat at that last write: a take-over that dies right after it loses nothing, and
    // two take-overs write the same values (the second finds nothing left to count).
    // The take-over is a compare-and-swap on the owner as read above (with that heartbeat):
    // never on a record read again, which another take-over may already have changed.
    let mut expected = Owner::of(&job);
    if let (JobStatus::Running, Some(beat)) = (job.status, job.heartbeat_at)
        && job.updated_at > beat
    {
        store.apply(&[Write::Heartbeat {
            job: id,
            at: job.updated_at,
            duration_ms: job.duration_ms + (job.updated_at - beat),
        }])?;
        expected.heartbeat_at = Some(job.updated_at);
    }
    let claim = Owner {
        pid: Some(std::process::id()),
        host: Some(host),
        heartbeat_at: Some(now),
    };
    if !store.take_job(id, &expected, &claim)? {
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
