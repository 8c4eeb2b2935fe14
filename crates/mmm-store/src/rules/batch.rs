//! Which jobs a batch of writes touches ([`crate::JobLog::apply`]).

use std::collections::HashMap;

use crate::Write;
use mmm_core::job::JobId;

/// Every job the batch writes about, with the latest time of its writes (its `updated_at`
/// rises to that), in id order: a backend touches them first, so an unknown job fails the batch
/// before anything else is done, and two batches lock the jobs they share in the same order.
pub(crate) fn touched_jobs(writes: &[Write]) -> Vec<(JobId, i64)> {
    let mut latest: HashMap<JobId, i64> = HashMap::new();
    for write in writes {
        let at = latest.entry(write.job()).or_insert(write.at());
        *at = (*at).max(write.at());
    }
    let mut jobs: Vec<(JobId, i64)> = latest.into_iter().collect();
    jobs.sort_by_key(|(job, _)| job.to_string());
    jobs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_job_once_at_its_latest_time_in_id_order() {
        let (a, b) = (JobId::new(), JobId::new());
        let heartbeat = |job, at| Write::Heartbeat {
            job,
            at,
            duration_ms: 1,
        };
        let touched = touched_jobs(&[heartbeat(b, 5), heartbeat(a, 7), heartbeat(b, 9)]);
        let mut expected = vec![(a, 7), (b, 9)];
        expected.sort_by_key(|(job, _)| job.to_string());
        assert_eq!(touched, expected);
        assert!(touched_jobs(&[]).is_empty());
    }
}
