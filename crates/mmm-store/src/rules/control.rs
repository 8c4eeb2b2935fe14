//! Control requests (docs/control.md): which requests a job takes, and the event that records
//! one, the same on every backend.

use crate::{ControlRequest, StoreError};
use mmm_core::event::{ControlRequested, Event};
use mmm_core::job::{JobId, JobStatus};

/// Refuses a request a job in `status` cannot take: one no job can follow (a scale out of
/// range), or any request to a job that is not running.
pub(crate) fn check(
    job: JobId,
    status: JobStatus,
    request: &ControlRequest,
) -> Result<(), StoreError> {
    request
        .action
        .validate()
        .map_err(|source| StoreError::ControlRefused { job, source })?;
    if status != JobStatus::Running {
        return Err(StoreError::JobNotRunning {
            job,
            status,
            verb: request.action.verb(),
        });
    }
    Ok(())
}

/// The `control_requested` event of request number `seq`.
pub(crate) fn requested(seq: u64, request: &ControlRequest) -> Event {
    Event::ControlRequested(ControlRequested {
        request: seq,
        action: request.action,
        host: request.host.clone(),
        pid: request.pid,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use mmm_core::control::ControlAction;

    fn request(action: ControlAction) -> ControlRequest {
        ControlRequest {
            action,
            host: "h".into(),
            pid: 1,
        }
    }

    #[test]
    fn only_a_running_job_takes_requests() {
        let job = JobId::new();
        assert!(check(job, JobStatus::Running, &request(ControlAction::Drain)).is_ok());
        let refused = check(job, JobStatus::Completed, &request(ControlAction::Drain));
        assert!(matches!(refused, Err(StoreError::JobNotRunning { .. })));
        let refused = check(
            job,
            JobStatus::Running,
            &request(ControlAction::Scale { agents: 0 }),
        );
        assert!(matches!(refused, Err(StoreError::ControlRefused { .. })));
    }
}
