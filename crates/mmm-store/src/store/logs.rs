//! [`Logs`]: reading the chunks of item logs, and pruning them (docs/logs.md). They are
//! written through [`crate::Write::LogChunk`] and [`crate::Write::LogDropped`].

use crate::StoreError;
use crate::logs::{LogChunk, LogPruned, LogQuery};
use mmm_core::job::JobId;

/// The item logs of a store.
pub trait Logs {
    /// The job's chunks after `query.after_id`, in the order they were written (id order),
    /// at most `query.limit`, only of one item or attempt when the query says.
    fn log_chunks(&self, job: JobId, query: &LogQuery) -> Result<Vec<LogChunk>, StoreError>;
    /// Deletes the logs of finished jobs (only `job`'s when given; it must be finished):
    /// those finished before `finished_before` (epoch ms) when given. Running and resumable
    /// jobs keep theirs.
    fn prune_logs(
        &self,
        job: Option<JobId>,
        finished_before: Option<i64>,
    ) -> Result<LogPruned, StoreError>;
}
