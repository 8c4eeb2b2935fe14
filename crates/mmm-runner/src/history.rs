//! The earlier runs a run's ETA starts from (`mmm_core::metrics::History`): the duration
//! summaries in the last snapshots of the newest finished jobs of the same name, and, for a
//! resume, the job's own last snapshot first (docs/eta.md, "From history").

use mmm_core::job::{JobId, JobStatus};
use mmm_core::metrics::{History, RunDurations};
use mmm_store::{JobQuery, Store};

/// How many earlier jobs of the name are read.
const RUNS: usize = 5;

/// The history of `job` (named `name`): its own last snapshot when `resuming`, then the newest
/// finished jobs of the name. Best effort: what cannot be read is left out, since an ETA that
/// warms up is no reason to stop a job.
pub(crate) fn load(store: &dyn Store, job: JobId, name: &str, resuming: bool) -> History {
    let mut ids = Vec::new();
    if resuming {
        ids.push(job);
    }
    let earlier = store
        .jobs_matching(&JobQuery {
            name: Some(name.to_string()),
            statuses: vec![JobStatus::Completed, JobStatus::CompletedWithFailures],
            limit: Some(RUNS + 1),
            ..JobQuery::default()
        })
        .unwrap_or_default();
    ids.extend(
        earlier
            .iter()
            .map(|j| j.id)
            .filter(|id| *id != job)
            .take(RUNS),
    );
    let runs = ids
        .into_iter()
        .filter_map(|id| store.latest_snapshot(id).ok().flatten())
        .filter_map(|record| {
            let metrics = record.payload.metrics?;
            Some(RunDurations {
                items: metrics.items?,
                steps: metrics
                    .steps
                    .into_iter()
                    .filter_map(|s| Some((s.name, s.durations?)))
                    .collect(),
            })
        })
        .collect();
    History { runs }
}
