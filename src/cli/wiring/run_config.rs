//! The runner's configuration for a run in this process, the job's owner's or a worker's:
//! a fresh tracker and live metrics sized for the plan's agents, and a store writer that rides
//! out outages of the store up to `outage_limit`.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use mmm_core::job::JobId;
use mmm_core::metrics::LiveMetrics;
use mmm_core::tracker::Tracker;
use mmm_runner::{Role, RunConfig, StopLevel};
use mmm_spec::JobPlan;
use mmm_store::writer::StoreWriter;
use mmm_store::{Outages, Store};

/// The configuration of a run of `plan` as job `job_id` in `role`, stopped through `stop`;
/// no output is shown until the caller says where it goes.
pub(crate) fn run_config(
    job_id: JobId,
    plan: Arc<JobPlan>,
    store: Arc<dyn Store>,
    role: Role,
    stop: watch::Receiver<StopLevel>,
    outage_limit: Duration,
) -> anyhow::Result<RunConfig> {
    let agents = plan.map.max_parallel.max(1);
    let outages = Arc::new(Outages::new(outage_limit));
    // Writes gather for 5 ms before a commit.
    let writer = StoreWriter::spawn_riding_outages(
        store.clone(),
        Duration::from_millis(5),
        outages.clone(),
    )?;
    Ok(RunConfig {
        job_id,
        tracker: Arc::new(Tracker::new(0, agents)),
        metrics: Arc::new(LiveMetrics::new(
            plan.map.steps.iter().map(|s| s.name.clone()).collect(),
            agents,
        )),
        writer: Arc::new(writer),
        outages,
        plan,
        store,
        stop,
        output: None,
        show_map_output: false,
        role,
    })
}
