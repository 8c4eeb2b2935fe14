//! The run of the job's owner ([`crate::Role::Own`]): records the job (new) or its
//! continuation (resume), beats, runs setup, the map and reduce, and records the final status
//! with a last snapshot. The map's items come from an in-memory queue this process feeds, or
//! (scale-out) from claims through the store shared with `mmm worker`s, whose agents the
//! heartbeat follows in the event log.

use std::sync::Arc;
use std::time::Duration;

use crate::budget;
use crate::claim::ClaimStats;
use crate::control::{self, Steerer};
use crate::feed;
use crate::heartbeat::{Heartbeat, checkpoint};
use crate::history;
use crate::isolated::{self, Isolated};
use crate::map::{ClaimedMap, Map, agent_name};
use crate::others::Others;
use crate::phase::{self, Halt};
use crate::queue::WorkQueue;
use crate::run::Run;
use crate::source::WorkSource;
use crate::{ClaimOptions, Executor, OwnerConfig, RunError, RunSummary, Start};
use mmm_core::event::{
    Event, JobFinished, JobResumed, JobStarted, PhaseFinished, PhaseName, PhaseStarted,
};
use mmm_core::job::{JobStatus, Phase, now_ms};
use mmm_spec::MapCounts;
use mmm_store::{NewJob, Write};

/// Runs the job as its owner, from its first record (or where a resume takes it up) to its
/// final status.
pub(crate) async fn own<E: Executor>(
    run: Arc<Run<E>>,
    config: OwnerConfig,
) -> Result<RunSummary, RunError> {
    let job = run.job;
    let plan = run.plan.clone();
    let (prior, started) = match &config.start {
        Start::New { origin } => {
            let new_job = NewJob {
                id: job,
                name: plan.name.clone(),
                spec: serde_json::to_string(&*plan).unwrap_or_default(),
                spec_hash: plan.hash(),
                source: plan.source.clone(),
                max_parallel: plan.map.max_parallel as u32,
                created_at: now_ms(),
                owner_pid: std::process::id(),
                owner_host: mmm_store::owner::host_name(),
                origin: origin.clone(),
            };
            run.store
                .create_job(&new_job, &[])
                .map_err(|source| RunError::Store { job, source })?;
            let started = JobStarted {
                name: plan.name.clone(),
            };
            (Duration::ZERO, Event::JobStarted(started))
        }
        Start::Resume(r) => {
            let resumed = JobResumed {
                phase: r.phase,
                prior_duration_ms: r.prior_duration.as_millis() as u64,
            };
            (r.prior_duration, Event::JobResumed(resumed))
        }
    };
    // Control requests made before this run are settled before it can take new ones (a
    // request is recorded only while the job is running).
    let after = match &config.start {
        Start::New { .. } => 0,
        Start::Resume(_) => control::settle(&run).await?,
    };
    run.record(vec![
        Write::JobStatus {
            job,
            status: JobStatus::Running,
            at: now_ms(),
        },
        Write::event(job, None, started),
    ]);
    // The ETA starts from what earlier runs measured, before this run's first items end.
    let resuming = matches!(config.start, Start::Resume(_));
    let store = run.store.clone();
    let name = plan.name.clone();
    let history =
        tokio::task::spawn_blocking(move || history::load(store.as_ref(), job, &name, resuming))
            .await
            .unwrap_or_default();
    run.metrics.start_from(&history);
    // A resume restores what control requests made of the job (a pause, a scale).
    if let Start::Resume(_) = &config.start {
        control::restore(&run).await?;
    }
    budget::start(&run, resuming).await?;
    let steerer = Steerer::start(run.clone(), after);
    let heartbeat = Heartbeat::start(run.clone(), &config, prior);
    let owner = Owner {
        run: run.clone(),
        config,
    };
    let mut claims = None;
    let phases = owner.phases(&heartbeat, &mut claims).await;
    steerer.stop();
    let mut pulse = heartbeat.stop().await?;
    pulse.close_alerts();
    let (status, error) = match phases {
        Ok(()) => (None, None),
        Err(Halt::Interrupted) if run.steering.borrow().cancelled.is_some() => {
            (Some(JobStatus::Cancelled), None)
        }
        Err(Halt::Interrupted) => (Some(JobStatus::Interrupted), None),
        Err(Halt::Failed(failure)) => (Some(JobStatus::Failed), Some(failure)),
        Err(Halt::Broken(e)) => return Err(e),
    };
    run.flush().await?;
    let counts = run
        .store
        .job(job)
        .map_err(|source| RunError::Store { job, source })?
        .counts;
    let status = match status {
        Some(status) => status,
        None if counts.dead_lettered > 0 => JobStatus::CompletedWithFailures,
        None => JobStatus::Completed,
    };
    let at = now_ms();
    let duration = run.started.elapsed();
    let snapshot = pulse.last_snapshot(at).await;
    run.record(vec![
        Write::Snapshot {
            job,
            at,
            payload: Box::new(snapshot),
        },
        Write::Heartbeat {
            job,
            at,
            duration_ms: pulse.total_duration().as_millis() as i64,
        },
        Write::JobStatus { job, status, at },
        Write::event(
            job,
            None,
            Event::JobFinished(JobFinished {
                status,
                error: error.as_ref().map(ToString::to_string),
            }),
        ),
    ]);
    run.flush().await?;
    Ok(RunSummary {
        job_id: job,
        status,
        counts,
        duration,
        error,
        claims,
        halted: run.halt.halted().cloned(),
    })
}

/// The owner's run once it is recorded and beating.
struct Owner<E> {
    run: Arc<Run<E>>,
    config: OwnerConfig,
}

impl<E: Executor> Owner<E> {
    /// Setup, map and reduce, as far as the job gets; `claims` gets the claim figures when the
    /// map's items were claimed through the store.
    async fn phases(
        &self,
        heartbeat: &Heartbeat<E>,
        claims: &mut Option<ClaimStats>,
    ) -> Result<(), Halt> {
        let run = &self.run;
        let (plan, job) = (run.plan.clone(), run.job);
        let (run_setup, run_map) = match &self.config.start {
            Start::New { .. } => (true, true),
            // Setup and reduce are rerun when the job stopped in them (docs/resume.md).
            Start::Resume(r) => (
                r.rerun_setup || matches!(r.phase, None | Some(Phase::Setup)),
                r.phase != Some(Phase::Reduce),
            ),
        };
        isolated::check(&plan).await?;
        if run_setup {
            phase::run_commands(run, Phase::Setup, &plan.setup, None).await?;
            run.record(checkpoint(job, Some(Phase::Setup), "setup done").into());
        }
        if run.stopping() {
            return Err(Halt::Interrupted);
        }
        if run_map {
            match &self.config.claims {
                Some(options) => {
                    let (stats, ended) = self.claimed_map(options.clone(), heartbeat).await;
                    *claims = stats;
                    ended?;
                }
                None => self.queued_map().await?,
            }
            // Sent after every write of the map, so committed after them (or with them).
            run.record(checkpoint(job, Some(Phase::Map), "map done").into());
        }
        // The counts the reduce sees: read once the map's writes are committed.
        run.flush().await?;
        let counts = run
            .store
            .job(job)
            .map_err(|source| RunError::Store { job, source })?;
        let map_counts = MapCounts {
            total: counts.counts.total(),
            completed: counts.counts.completed,
            dead_lettered: counts.counts.dead_lettered,
            skipped: counts.counts.skipped,
        };
        phase::run_commands(run, Phase::Reduce, &plan.reduce, Some(&map_counts)).await
    }

    /// The map when this process runs it alone: its agents take the items from a queue the
    /// feeder fills while they work.
    async fn queued_map(&self) -> Result<(), Halt> {
        let run = &self.run;
        let job = run.job;
        run.record(vec![Write::JobPhase {
            job,
            phase: Phase::Map,
            at: now_ms(),
        }]);
        let isolated = Isolated::open(run).await?;
        let queue = Arc::new(WorkQueue::default());
        let map = Map::new(run.clone(), queue.clone(), isolated, None);
        run.record(vec![Write::event(job, None, map_started())]);
        let feed = feed::feed(run, &self.config.start, &queue);
        let work = map.work();
        tokio::pin!(feed, work);
        let fed = tokio::select! {
            fed = &mut feed => {
                (&mut work).await;
                fed
            }
            // Agents end before the queue is closed only when the job stops (a stop
            // request, a store failure): what the feed still had to add is moot.
            () = &mut work => Ok(()),
        };
        run.shown.finish();
        self.map_finished(&map);
        if let Some(isolated) = &map.isolated {
            isolated.close(run).await;
        }
        fed?;
        if map.stopping() {
            return Err(Halt::Interrupted);
        }
        Ok(())
    }

    /// The map when items are claimed through the store (scale-out): records the items (or
    /// brings a resumed record up to date) first, starts following the other processes'
    /// agents, then claims with its own agents until every item is finished by someone.
    /// Returns the claim figures (none when the map ended before claiming).
    async fn claimed_map(
        &self,
        options: ClaimOptions,
        heartbeat: &Heartbeat<E>,
    ) -> (Option<ClaimStats>, Result<(), Halt>) {
        if let Err(halt) = self.follow_others(&options, heartbeat).await {
            return (None, Err(halt));
        }
        let claimed = ClaimedMap::start(&self.run, options);
        self.run
            .record(vec![Write::event(self.run.job, None, map_started())]);
        claimed.map().work().await;
        self.map_finished(claimed.map());
        let (stats, ended) = claimed.end().await;
        (Some(stats), ended)
    }

    /// Scale-out, before the owner's agents claim: the items on record, the heartbeat
    /// following the other processes' agents from here on, and the map on record as running
    /// (claims hand out items only then).
    async fn follow_others(
        &self,
        options: &ClaimOptions,
        heartbeat: &Heartbeat<E>,
    ) -> Result<(), Halt> {
        let run = &self.run;
        let job = run.job;
        match feed::on_record(&self.config.start) {
            Some(resume) => feed::restore_counts(run, resume).await?,
            None => feed::record_all(run).await?,
        }
        // The counts are read (restored, or none yet): other processes' items count from
        // here on, from the event log.
        let after = run
            .blocking(move |s| s.recent_events(job, 1))
            .await?
            .last()
            .map_or(0, |e| e.seq);
        let prefix = options.agent_prefix.as_deref();
        // Every agent a scale may start is this process's own.
        let own = (0..run.tracker.agent_capacity()).map(|agent| agent_name(prefix, agent));
        heartbeat.follow(Others::new(after, own));
        run.record(vec![Write::JobPhase {
            job,
            phase: Phase::Map,
            at: now_ms(),
        }]);
        // Claims hand out items only once the record says the map runs.
        run.flush().await?;
        Ok(())
    }

    /// Once the agents ended: the map's end on record, when it ran to its end.
    fn map_finished<S: WorkSource>(&self, map: &Map<E, S>) {
        if map.ran_to_its_end() {
            let finished = PhaseFinished {
                phase: PhaseName::Map,
                error: None,
            };
            self.run.record(vec![Write::event(
                self.run.job,
                None,
                Event::PhaseFinished(finished),
            )]);
        }
    }
}

/// The `phase_started` event of the map.
fn map_started() -> Event {
    Event::PhaseStarted(PhaseStarted {
        phase: PhaseName::Map,
        worktrees: None,
    })
}
