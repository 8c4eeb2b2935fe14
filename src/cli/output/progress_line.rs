//! One plain progress line of a job (`mmm progress --follow`, `mmm replay` without a
//! terminal): time, job, percent, counts, rate, ETA, status.

use std::time::Duration;

use crate::tui::viewer::state::ViewerState;

/// The line for the job as `state` shows it.
pub(crate) fn progress_line(state: &ViewerState) -> String {
    let job = &state.job.job;
    let c = &job.counts;
    let at = std::time::UNIX_EPOCH + Duration::from_millis(state.job.read_at.max(0) as u64);
    format!(
        "{} {} {} {:.1}% {}/{} done ({} ok, {} dlq, {} skipped), {} running, {} pending, {:.1}/s, ETA {}, {}",
        humantime::format_rfc3339_seconds(at),
        job.id.short(),
        job.name,
        state.job.percent,
        c.completed + c.dead_lettered + c.skipped,
        c.total(),
        c.completed,
        c.dead_lettered,
        c.skipped,
        c.running,
        c.pending + c.failed,
        state.rate,
        state.eta_text(),
        job.status,
    )
}
