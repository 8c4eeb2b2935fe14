//! What a running map command does and reports (its process, its output, progress,
//! messages and counters through `mmm report` or `MMM_PROGRESS_FD`), passed to the tracker and
//! the event log.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::lines::Lines;
use crate::{process, report};
use mmm_core::counter::CounterValue;
use mmm_core::event::{Event, StepReported};
use mmm_core::job::JobId;
use mmm_core::tracker::Tracker;
use mmm_store::Write;
use mmm_store::writer::StoreWriter;

/// Passes what a running map command does and reports to the tracker and the event log.
pub(crate) struct AgentObserver {
    tracker: Arc<Tracker>,
    writer: Arc<StoreWriter>,
    job: JobId,
    agent: usize,
    item_key: String,
    step: String,
    /// When a message was last recorded as an event: at most one a second per command, so
    /// a chatty step cannot flood the store (the tracker always has the latest).
    last_message_event: std::sync::Mutex<Option<Instant>>,
    bad_reports: AtomicU32,
    /// `--line-buffer`: where the command's output goes as it comes.
    lines: Option<Arc<Lines>>,
    /// What the attempt's steps reported that the attempt's end needs (throttled, counters).
    reports: Option<Arc<AttemptReports>>,
}

/// What the steps of one attempt reported that its end needs: throttled (with the wait asked
/// for), and its sums of the counters (for the counters' per-item figures).
#[derive(Debug, Default)]
pub(crate) struct AttemptReports {
    throttled: Mutex<Option<Option<Duration>>>,
    counters: Mutex<BTreeMap<String, CounterValue>>,
}

impl AttemptReports {
    /// A step reported the attempt throttled, with the wait the API asked for.
    fn throttled(&self, retry_after: Option<Duration>) {
        let mut slot = self.throttled.lock().unwrap_or_else(|e| e.into_inner());
        // The longest wait asked for wins; a wait beats none.
        *slot = Some(match (*slot).flatten() {
            Some(before) => Some(retry_after.map_or(before, |r| r.max(before))),
            None => retry_after,
        });
    }

    fn counted(&self, name: &str, delta: CounterValue) {
        let mut counters = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        *counters.entry(name.to_string()).or_default() += delta;
    }

    /// `Some(wait)` when a step reported the attempt throttled.
    pub(crate) fn throttled_with(&self) -> Option<Option<Duration>> {
        *self.throttled.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The attempt's sums of the counters its steps reported.
    pub(crate) fn counters(&self) -> BTreeMap<String, CounterValue> {
        self.counters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// The least time between two `step_reported` events of one command for messages.
const MESSAGE_EVENT_INTERVAL: Duration = Duration::from_secs(1);

impl AgentObserver {
    /// Observes the command of step `step` that agent `agent` runs for item `item_key`.
    pub(crate) fn new(
        tracker: Arc<Tracker>,
        writer: Arc<StoreWriter>,
        job: JobId,
        agent: usize,
        item_key: String,
        step: String,
    ) -> Self {
        AgentObserver {
            tracker,
            writer,
            job,
            agent,
            item_key,
            step,
            last_message_event: std::sync::Mutex::new(None),
            bad_reports: AtomicU32::new(0),
            lines: None,
            reports: None,
        }
    }

    /// The same observer, also showing the command's output line by line (`--line-buffer`).
    pub(crate) fn with_lines(mut self, lines: Option<Arc<Lines>>) -> Self {
        self.lines = lines;
        self
    }

    /// The same observer, also keeping what the attempt's end needs in `reports`.
    pub(crate) fn with_reports(mut self, reports: Arc<AttemptReports>) -> Self {
        self.reports = Some(reports);
        self
    }

    fn record(&self, report: StepReported) {
        self.writer.send(Write::event(
            self.job,
            Some(&self.item_key),
            Event::StepReported(report),
        ));
    }

    fn message_event_due(&self) -> bool {
        let mut last = self
            .last_message_event
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let due = last.is_none_or(|at| at.elapsed() >= MESSAGE_EVENT_INTERVAL);
        if due {
            *last = Some(Instant::now());
        }
        due
    }
}

impl process::CommandObserver for AgentObserver {
    fn process(&self, pid: Option<u32>) {
        self.tracker.command_process(self.agent, pid);
    }

    fn output(&self) {
        self.tracker.command_active(self.agent);
    }

    fn wrote(&self, stderr: bool, bytes: &[u8]) {
        if let Some(lines) = &self.lines {
            lines.wrote(stderr, bytes);
        }
    }

    fn report(&self, report: report::Report) {
        match report {
            report::Report::Progress { fraction, message } => {
                self.tracker.step_progress(self.agent, fraction);
                if let Some(message) = message {
                    self.tracker.step_message(self.agent, message.clone());
                    if self.message_event_due() {
                        self.record(StepReported::Message {
                            step: self.step.clone(),
                            progress: Some(fraction),
                            message,
                        });
                    }
                }
            }
            report::Report::Message(message) => {
                self.tracker.step_message(self.agent, message.clone());
                if self.message_event_due() {
                    self.record(StepReported::Message {
                        step: self.step.clone(),
                        progress: None,
                        message,
                    });
                }
            }
            report::Report::Throttled { retry_after } => {
                self.tracker
                    .step_message(self.agent, "throttled".to_string());
                if let Some(reports) = &self.reports {
                    reports.throttled(retry_after);
                }
            }
            // Counters are always recorded: their events are the durable record of the sums.
            report::Report::Counter { name, delta } => {
                self.tracker.add_to_counter(&name, delta);
                if let Some(reports) = &self.reports {
                    reports.counted(&name, delta);
                }
                self.tracker.command_active(self.agent);
                self.record(StepReported::Counter {
                    step: self.step.clone(),
                    counter: name,
                    delta,
                });
            }
        }
    }

    fn bad_report(&self, line: &str, error: &str) {
        use std::sync::atomic::Ordering;
        // Said once per command: a broken reporter would otherwise flood the log.
        if self.bad_reports.fetch_add(1, Ordering::Relaxed) == 0 {
            self.record(StepReported::Ignored {
                step: self.step.clone(),
                ignored_line: line.to_string(),
                error: error.to_string(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_wait_asked_for_wins_and_counters_sum() {
        let reports = AttemptReports::default();
        assert_eq!(reports.throttled_with(), None);
        reports.throttled(None);
        assert_eq!(reports.throttled_with(), Some(None));
        reports.throttled(Some(Duration::from_secs(3)));
        reports.throttled(Some(Duration::from_secs(1)));
        assert_eq!(reports.throttled_with(), Some(Some(Duration::from_secs(3))));
        reports.counted("cost", 5.into());
        reports.counted("cost", 7.into());
        assert_eq!(reports.counters()["cost"], 12.into());
    }
}
