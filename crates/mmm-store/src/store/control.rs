//! [`Control`]: requests to steer a running job (`mmm pause`, `unpause`, `scale`, `drain`,
//! `cancel`; docs/control.md), made by any process on any host and applied in order by the
//! job's owner, and the job's durable control state a resume restores.

use serde::Serialize;

use crate::StoreError;
use mmm_core::control::{ControlAction, ControlState};
use mmm_core::event::Event;
use mmm_core::job::JobId;

/// Control requests and the control state of jobs.
pub trait Control {
    /// Records a request to a `running` job: its row (numbered after the job's last request),
    /// the `control_requested` event and the job's control state as the action leaves it, in
    /// one transaction. A job that is not running is [`StoreError::JobNotRunning`], an action
    /// no job can do (a scale out of range) [`StoreError::ControlRefused`]; then nothing is
    /// recorded.
    fn request_control(
        &self,
        job: JobId,
        request: &ControlRequest,
        at: i64,
    ) -> Result<ControlRecord, StoreError>;
    /// The job's requests numbered after `after` that are not applied yet, in order.
    fn pending_control(&self, job: JobId, after: u64) -> Result<Vec<ControlRecord>, StoreError>;
    /// The job's requests numbered after `after`, applied or not, in order (what a worker
    /// sharing the job's map follows: its owner applies and marks them).
    fn control_requests(&self, job: JobId, after: u64) -> Result<Vec<ControlRecord>, StoreError>;
    /// Marks request `request` applied at `at` and records `effects` (what applying it did:
    /// `paused`, `scaled`, ...), in one transaction. A request already applied is left as it
    /// is (its effects are not recorded twice).
    fn apply_control(
        &self,
        job: JobId,
        request: u64,
        effects: &[Event],
        at: i64,
    ) -> Result<(), StoreError>;
    /// The job's control state: paused or not, and the agents `mmm scale` set last.
    fn control_state(&self, job: JobId) -> Result<ControlState, StoreError>;
    /// Sets the agents of the job's control state (`mmm resume -j N` overrides a scale).
    fn set_control_agents(&self, job: JobId, agents: Option<u32>) -> Result<(), StoreError>;
}

/// A request as its maker gives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ControlRequest {
    /// What is asked.
    pub action: ControlAction,
    /// The host the request comes from.
    pub host: String,
    /// The process making it.
    pub pid: u32,
}

/// A recorded request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ControlRecord {
    /// Its number within the job, from 1.
    pub seq: u64,
    /// What was asked, by whom.
    #[serde(flatten)]
    pub request: ControlRequest,
    /// When it was made, epoch ms.
    pub requested_at: i64,
    /// When the job's owner applied it, epoch ms.
    pub applied_at: Option<i64>,
}
