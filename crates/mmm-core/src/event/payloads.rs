//! The payload of each event kind, as the JSON docs/events.md documents. Fields that only
//! some events of a kind carry are left out of the JSON when absent.

use serde::{Deserialize, Serialize};

use super::{Alert, AttemptOutcome, ItemStatus, JobStatus, Phase};
use crate::control::ControlAction;
use crate::repair::{Problem, RepairAction};

/// `job_started`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobStarted {
    /// The plan's name.
    pub name: String,
}

/// `job_resumed`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobResumed {
    /// The phase the job was in when it stopped.
    pub phase: Option<Phase>,
    /// Time the earlier runs spent, ms.
    pub prior_duration_ms: u64,
}

/// `job_finished`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobFinished {
    /// The status the run ended with.
    pub status: JobStatus,
    /// Why the job failed, when it did (setup, input or reduce).
    pub error: Option<String>,
}

/// `items_loaded`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemsLoaded {
    /// Items read from the input.
    pub count: u64,
}

/// `input_changed`: what a resume found different in the input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputChanged {
    /// Items new in the input, added to the job.
    pub new_items: u64,
    /// Recorded items no longer in the input (kept in the record).
    pub vanished_items: u64,
    /// The keys of the first few vanished items.
    pub vanished_examples: Vec<String>,
    /// Items whose value changed under the same key.
    pub changed_items: u64,
    /// Finished items that run again because their value changed.
    pub requeued_items: u64,
}

/// `input_unavailable`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputUnavailable {
    /// Why the input could not be read.
    pub error: String,
}

/// `store_unavailable`: an outage of the store the run rode out (recorded once the store is
/// back).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoreUnavailable {
    /// How long the store was unavailable, in milliseconds.
    pub duration_ms: u64,
    /// What the first call that found it unavailable reported.
    pub error: String,
}

/// `spec_changed`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpecChanged {
    /// Whether the resume went on with the changed file.
    pub accepted: bool,
}

/// `spec_from_store`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpecFromStore {
    /// Why the recorded text was used.
    pub reason: String,
}

/// `job_status_changed`: a DLQ command moved the job's status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobStatusChanged {
    /// The status before.
    pub from: JobStatus,
    /// The status after.
    pub to: JobStatus,
    /// The kind of the item events that caused it (`dlq_retry`, `dlq_purged`).
    pub by: String,
}

/// `repaired`: what `mmm repair` changed, in the order it applied it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Repaired {
    /// One sentence per kind of change, with the items concerned.
    pub changes: Vec<Problem>,
    /// The changes applied.
    pub actions: Vec<RepairAction>,
}

/// `job_copied`: the job was copied into (`in`) or out of (`out`) this store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobCopied {
    /// `in` on the destination's record, `out` on the source's.
    pub direction: String,
    /// The source store's backend: `sqlite` or `postgres`.
    pub from: String,
    /// The destination store's backend.
    pub to: String,
    /// True for `mmm store migrate` (the source then deletes the job).
    pub moved: bool,
}

/// The phases an event names: the job's three, and the map's worktrees (`isolation:
/// worktree`), set up before the map and closed after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PhaseName {
    /// Setup commands.
    Setup,
    /// The map.
    Map,
    /// Reduce commands.
    Reduce,
    /// The map's worktrees.
    Worktrees,
}

impl From<Phase> for PhaseName {
    fn from(phase: Phase) -> PhaseName {
        match phase {
            Phase::Setup => PhaseName::Setup,
            Phase::Map => PhaseName::Map,
            Phase::Reduce => PhaseName::Reduce,
        }
    }
}

/// `phase_started`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhaseStarted {
    /// The phase.
    pub phase: PhaseName,
    /// For the worktrees: how they were set up.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub worktrees: Option<WorktreesOpened>,
}

/// How the map's worktrees were set up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorktreesOpened {
    /// The integration branch items merge into.
    pub branch: String,
    /// The folder holding the agents' worktrees.
    pub worktrees: String,
    /// Worktrees (one per agent).
    pub agents: u64,
    /// Items whose merge was already on the branch (a resume skips them).
    pub already_merged: u64,
    /// Time the setup took, ms.
    pub setup_ms: u64,
}

/// `phase_finished`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhaseFinished {
    /// The phase.
    pub phase: PhaseName,
    /// What went wrong closing it (the worktrees), if anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `phase_command_finished`: a setup or reduce command ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhaseCommandFinished {
    /// Setup or reduce.
    pub phase: Phase,
    /// The command's display name.
    pub command: String,
    /// How it ended, for people (`exit 0`, `killed by signal 9`, ...).
    pub exit: String,
    /// Its exit code, when it exited.
    pub exit_code: Option<i32>,
    /// Its wall time, ms.
    pub duration_ms: u64,
    /// The end of its standard output.
    pub stdout_tail: String,
    /// The end of its standard error.
    pub stderr_tail: String,
}

/// `attempt_started`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttemptStarted {
    /// The attempt's number.
    pub attempt: u32,
    /// The agent running it.
    pub agent: String,
    /// The item's position in the input.
    pub item: u64,
}

/// `attempt_failed`: an attempt failed and the item will be retried; or (`infrastructure`)
/// git kept failing for the item under worktree isolation and the run stops.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttemptFailed {
    /// The attempt's number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
    /// The agent that ran it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// How it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<AttemptOutcome>,
    /// A one-line reason.
    pub error: Option<String>,
    /// The failing step's exit code.
    #[serde(default)]
    pub exit_code: Option<i32>,
    /// True when git failed, not the item's command.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub infrastructure: bool,
    /// True when the API the step called throttled it (a throttle exit code, or `mmm report
    /// --throttled`): retried after a delay, not counted against the item's retries.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub throttled: bool,
    /// What happens now, when the run stops because of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopping: Option<String>,
}

/// `item_completed`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemCompleted {
    /// The attempt that succeeded.
    pub attempt: u32,
    /// The agent that ran it.
    pub agent: String,
    /// The item's cycle, from its agent taking it to its end, µs (docs/eta.md). Recorded
    /// only when the map is shared (scale-out): the job's owner learns other processes' item
    /// durations from it; otherwise the attempt's row holds the steps' durations and the owner
    /// measured the cycle itself, so the event stays small (one is recorded per item).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_us: Option<u64>,
    /// Each step of the last attempt, µs; `null` for a skipped step. Recorded when
    /// `duration_us` is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps_us: Option<Vec<Option<u64>>>,
}

/// `item_skipped`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemSkipped {
    /// The attempt whose steps were all skipped.
    pub attempt: u32,
    /// The agent.
    pub agent: String,
}

/// `item_dead_lettered`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemDeadLettered {
    /// The number of the last attempt.
    pub attempts: u32,
    /// The agent that ran it.
    pub agent: String,
    /// How the last attempt ended.
    pub outcome: AttemptOutcome,
    /// A one-line reason.
    pub error: Option<String>,
    /// The failing step's exit code.
    pub exit_code: Option<i32>,
    /// The item's cycle, µs.
    pub duration_us: u64,
    /// Each step of the last attempt, µs; `null` for a skipped step.
    pub steps_us: Vec<Option<u64>>,
}

/// Why an item goes back to `pending`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequeueReason {
    /// Its attempt was in flight when the job's last run stopped.
    Interrupted,
    /// A resume rewound the job to a checkpoint before the item finished.
    Rewound,
    /// Its value changed in the input.
    InputChanged,
    /// The worker that claimed it stopped renewing its lease.
    LeaseExpired,
}

impl RequeueReason {
    /// The reason's spelling, as in the payload.
    pub fn as_str(self) -> &'static str {
        match self {
            RequeueReason::Interrupted => "interrupted",
            RequeueReason::Rewound => "rewound",
            RequeueReason::InputChanged => "input_changed",
            RequeueReason::LeaseExpired => "lease_expired",
        }
    }
}

/// `item_requeued`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemRequeued {
    /// Why.
    pub reason: RequeueReason,
    /// For an expired lease: the claimer that held the item, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claimed_by: Option<String>,
}

/// `dlq_retry` and `dlq_purged`: a dead-lettered item moved out of the DLQ.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DlqMoved {
    /// The attempts it had used.
    pub attempts: u32,
    /// Its new status (`pending` for a retry, `skipped` for a purge).
    pub status: ItemStatus,
}

/// `step_reported`: what a running step reported. A step's message, progress and counters
/// come from `mmm report` or its progress pipe (docs/reporting.md); the merge of an isolated
/// item reports its counters as the step `merge`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum StepReported {
    /// A counter grew (or shrank) by `delta`.
    Counter {
        /// The step's name.
        step: String,
        /// The counter.
        counter: String,
        /// The change.
        delta: crate::counter::CounterValue,
    },
    /// A line the step wrote that is not a report (said once per command).
    Ignored {
        /// The step's name.
        step: String,
        /// The line.
        ignored_line: String,
        /// Why it was not understood.
        error: String,
    },
    /// A message, with the step's progress when it reported one.
    Message {
        /// The step's name.
        step: String,
        /// Progress 0..=1, when reported with the message.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        progress: Option<f32>,
        /// The message.
        message: String,
    },
}

/// `agent_started` and `agent_finished`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentEvent {
    /// The agent's name (`agent-N`, or `NAME/N` for a worker's).
    pub agent: String,
}

/// `checkpoint`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The phase then.
    pub phase: Option<Phase>,
    /// Why it was taken (`setup done`, `interval`, ...).
    pub reason: String,
}

/// `alert_resolved`: the alert, and why it ended when that is not its condition clearing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertResolved {
    /// The alert that was active.
    #[serde(flatten)]
    pub alert: Alert,
    /// E.g. `the run ended`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

// --- The one-liner's `--halt` (issue 18). ---

/// `job_halted`: a `--halt` condition was met; the map stops (`now`: running commands are
/// killed; `soon`: they finish) and the job is left `interrupted`, resumable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobHalted {
    /// The policy as given, e.g. `now,fail=1`.
    pub policy: String,
    /// What met it, e.g. `1 item failed`.
    pub reason: String,
    /// The key of the item whose end met it.
    pub item: Option<String>,
    /// That item's exit code, when it exited with one.
    pub exit_code: Option<i32>,
}

// Control of a running job (`mmm pause`, `unpause`, `scale`, `drain`, `cancel`;
// docs/control.md): the request, then its effect once the job's owner applied it.

/// `control_requested`: someone asked a running job to change course.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ControlRequested {
    /// The request's number within the job (requests apply in this order).
    pub request: u64,
    /// What was asked (`action` and its argument).
    #[serde(flatten)]
    pub action: ControlAction,
    /// The host the request came from.
    pub host: String,
    /// The process that made it.
    pub pid: u32,
}

/// `paused`: no new item starts (`suspend`: the running commands are stopped too).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Paused {
    /// The request applied; `None` when a resume restored the pause.
    #[serde(default)]
    pub request: Option<u64>,
    /// The running commands' process groups got SIGSTOP.
    pub suspend: bool,
}

/// `unpaused`, `draining`: the request applied.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ControlApplied {
    /// The request applied.
    pub request: u64,
}

/// `scaled`: the number of agents changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scaled {
    /// The request applied; `None` when a resume restored the scale.
    #[serde(default)]
    pub request: Option<u64>,
    /// Agents before.
    pub from: u32,
    /// Agents from now on.
    pub to: u32,
}

/// `cancelling`: the run stops and the job will end `cancelled`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cancelling {
    /// The request applied.
    pub request: u64,
    /// Running commands are killed at once rather than after the grace period.
    pub now: bool,
}

/// `budget_set`: the budget of a counter is now `max` (`from`: what it was, `None` when it had
/// none); docs/api-work.md.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BudgetSet {
    /// The counter.
    pub counter: String,
    /// Its budget from now on.
    pub max: crate::counter::CounterValue,
    /// Its budget before.
    #[serde(default)]
    pub from: Option<crate::counter::CounterValue>,
}

/// `budget_reached`: a counter reached its budget (`value` when it was seen) and the job is
/// paused until the budget is raised (`mmm budget JOB COUNTER=MAX`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BudgetReached {
    /// The counter.
    pub counter: String,
    /// Its budget.
    pub max: crate::counter::CounterValue,
    /// The counter's total when the budget was found reached.
    pub value: crate::counter::CounterValue,
}

/// `concurrency_changed`: the job's effective concurrency (the agents that may take items)
/// changed because the API it calls throttled it (`throttled: true`, halved) or because a
/// window of attempts succeeded (one more, never above the agents).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConcurrencyChanged {
    /// Agents that could take items before.
    pub from: u32,
    /// Agents that may take items from now on.
    pub to: u32,
    /// Lowered because of throttling (else raised after success).
    pub throttled: bool,
}
