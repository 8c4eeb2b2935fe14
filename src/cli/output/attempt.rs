//! An attempt as `mmm dlq` and `mmm jobs --json` show it: its steps, outcome, error and output
//! tails, durations in milliseconds.

use serde::Serialize;

use mmm_core::job::AttemptOutcome;
use mmm_store::AttemptRecord;

/// One step of an attempt, as shown.
#[derive(Debug, Serialize)]
pub(crate) struct StepView {
    pub(crate) name: String,
    pub(crate) skipped: bool,
    pub(crate) duration_ms: f64,
    pub(crate) exit_code: Option<i32>,
}

/// One attempt, in full.
#[derive(Debug, Serialize)]
pub(crate) struct AttemptView {
    pub(crate) number: u32,
    pub(crate) agent: String,
    pub(crate) outcome: Option<AttemptOutcome>,
    pub(crate) exit_code: Option<i32>,
    pub(crate) error: Option<String>,
    pub(crate) started_at: i64,
    pub(crate) ended_at: Option<i64>,
    pub(crate) duration_ms: Option<f64>,
    pub(crate) steps: Vec<StepView>,
    pub(crate) stdout_tail: String,
    pub(crate) stderr_tail: String,
}

/// The attempt as shown.
pub(crate) fn attempt_view(a: AttemptRecord) -> AttemptView {
    AttemptView {
        number: a.number,
        agent: a.agent,
        outcome: a.outcome,
        exit_code: a.exit_code,
        error: a.error,
        started_at: a.started_at,
        ended_at: a.ended_at,
        duration_ms: a.duration_us.map(|us| us as f64 / 1000.0),
        steps: a
            .steps
            .into_iter()
            .map(|s| StepView {
                name: s.name,
                skipped: s.skipped,
                duration_ms: s.duration_us as f64 / 1000.0,
                exit_code: s.exit_code,
            })
            .collect(),
        stdout_tail: a.stdout_tail,
        stderr_tail: a.stderr_tail,
    }
}
