//! The run of a worker joining a job's map ([`crate::Role::Join`], `mmm worker`): its agents
//! claim items through the store until every item is finished by someone (or the job stops
//! running), and record their attempts with the item and agent events. Nothing about the job
//! itself: its status, phases, heartbeat, snapshots and reduce are its owner's.

use std::sync::Arc;

use crate::control::Steerer;
use crate::isolated;
use crate::map::ClaimedMap;
use crate::phase::Halt;
use crate::run::Run;
use crate::{ClaimOptions, Executor, RunError, RunSummary};

/// Runs the items this process can claim of the job until its map is done (or a stop).
pub(crate) async fn join<E: Executor>(
    run: Arc<Run<E>>,
    options: ClaimOptions,
) -> Result<RunSummary, RunError> {
    let job = run.job;
    let mut claims = None;
    match work(&run, options, &mut claims).await {
        // The job's end is its owner's to record: the summary is the job as recorded.
        Ok(()) | Err(Halt::Interrupted) | Err(Halt::Failed(_)) => {}
        Err(Halt::Broken(e)) => return Err(e),
    }
    run.flush().await?;
    let record = run.blocking(move |s| s.job(job)).await?;
    Ok(RunSummary {
        job_id: job,
        status: record.status,
        counts: record.counts,
        duration: run.started.elapsed(),
        error: None,
        claims,
        halted: None,
    })
}

/// The worker's map; `claims` gets the claim figures once it claimed.
async fn work<E: Executor>(
    run: &Arc<Run<E>>,
    options: ClaimOptions,
    claims: &mut Option<crate::ClaimStats>,
) -> Result<(), Halt> {
    let job = run.job;
    isolated::check(&run.plan).await?;
    if run.stopping() {
        return Err(Halt::Interrupted);
    }
    let counts = run.blocking(move |s| s.job(job)).await?.counts;
    run.tracker.set_total(counts.total());
    // Pause, scale, drain and cancel requests to the job reach this process too.
    let follower = Steerer::follow(run.clone()).await?;
    let claimed = ClaimedMap::start(run, options);
    claimed.map().work().await;
    follower.stop();
    let (stats, ended) = claimed.end().await;
    *claims = Some(stats);
    ended
}
