//! [`JobSummary`]: what one job's own records say, in the form [`super::compute`] adds up
//! across a period: item counts, attempts and retries, item, step and queue-wait durations as
//! [`Histogram`]s, its deadline, and how right its ETA was. [`summarize`] reads it from the
//! store (the job's attempts, its `phase_started`/`phase_finished` events and its snapshots).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::histogram::Histogram;
use crate::{JobRecord, Store, StoreError};
use mmm_core::alerts::Deadline;
use mmm_core::event::{Event, PhaseName};
use mmm_core::job::{AttemptOutcome, ItemStatus, JobId};
use mmm_core::metrics::accuracy::{self, EtaAccuracy, Shown};

/// The summary format this mmm writes; a kept summary of another version is made again.
pub const SUMMARY_VERSION: u32 = 1;

/// Events and snapshots are read in pages of this many.
const PAGE: usize = 2_000;

/// One job, summarised.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct JobSummary {
    /// [`SUMMARY_VERSION`].
    pub version: u32,
    /// Items in the job.
    pub items: u64,
    /// Items completed.
    pub completed: u64,
    /// Items in the DLQ.
    pub dead_lettered: u64,
    /// Items skipped by `when:`.
    pub skipped: u64,
    /// Attempts that ended (interrupted ones included).
    pub attempts: u64,
    /// Attempts that failed or timed out.
    pub failed_attempts: u64,
    /// Failed attempts that were followed by another attempt of their item.
    pub retries: u64,
    /// Each completed or dead-lettered item's time: its attempts' durations summed, µs.
    pub item_us: Histogram,
    /// Each item's wait for an agent: from its run's map start to its first attempt in it, µs.
    pub queue_wait_us: Histogram,
    /// Per step name, in the order first seen.
    pub steps: Vec<StepSummary>,
    /// The job's deadline, epoch ms, when its file set one.
    pub deadline_at: Option<i64>,
    /// How right its ETA was (judged against the map's end), when it showed estimates and the
    /// map ended.
    pub eta: Option<EtaAccuracy>,
}

/// One step name of a [`JobSummary`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StepSummary {
    /// The step.
    pub name: String,
    /// Times it ran (every attempt).
    pub ran: u64,
    /// Times it was skipped by `when:`.
    pub skipped: u64,
    /// Attempts that failed at it (its command failed or timed out).
    pub failed: u64,
    /// Of those, the ones followed by another attempt of the item.
    pub retries: u64,
    /// Items dead-lettered whose last attempt failed at it.
    pub dead_lettered: u64,
    /// Items that ran it at least once.
    pub items: u64,
    /// Its durations when it ran, µs.
    pub durations_us: Histogram,
}

/// What an unfinished job counts for from its record alone: its items by status and its
/// deadline, without reading its attempts (a running job changes every second, so nothing of it
/// could be kept; its durations join the stats when it finishes).
pub fn unfinished(job: &JobRecord) -> JobSummary {
    JobSummary {
        version: SUMMARY_VERSION,
        items: job.counts.total(),
        completed: job.counts.completed,
        dead_lettered: job.counts.dead_lettered,
        skipped: job.counts.skipped,
        deadline_at: deadline(&job.spec).map(|d| d.at_ms(job.created_at)),
        ..JobSummary::default()
    }
}

/// Reads `job`'s records and summarises them.
pub fn summarize(store: &dyn Store, job: &JobRecord) -> Result<JobSummary, StoreError> {
    let attempts = store.attempts(job.id, None)?;
    let (map_starts, map_end) = map_times(store, job.id)?;
    let mut summary = JobSummary {
        version: SUMMARY_VERSION,
        items: job.counts.total(),
        completed: job.counts.completed,
        dead_lettered: job.counts.dead_lettered,
        skipped: job.counts.skipped,
        deadline_at: deadline(&job.spec).map(|d| d.at_ms(job.created_at)),
        ..JobSummary::default()
    };
    let statuses: BTreeMap<u64, ItemStatus> = store
        .items(job.id, None)?
        .into_iter()
        .map(|item| (item.index, item.status))
        .collect();
    let mut steps: Vec<StepSummary> = Vec::new();
    // Attempts come ordered by item, then number.
    for item_attempts in attempts.chunk_by(|a, b| a.item_index == b.item_index) {
        let status = statuses.get(&item_attempts[0].item_index).copied();
        let mut total_us = 0u64;
        let mut steps_ran: Vec<usize> = Vec::new();
        let mut waited_in: Vec<usize> = Vec::new();
        for (i, attempt) in item_attempts.iter().enumerate() {
            let Some(outcome) = attempt.outcome else {
                continue;
            };
            summary.attempts += 1;
            total_us += attempt.duration_us.unwrap_or(0);
            // The run this attempt belongs to: the last map start at or before it.
            let run = map_starts.partition_point(|&s| s <= attempt.started_at);
            if run > 0 && !waited_in.contains(&run) {
                waited_in.push(run);
                let wait_ms = (attempt.started_at - map_starts[run - 1]).max(0) as u64;
                summary.queue_wait_us.record(wait_ms * 1_000);
            }
            let failed = matches!(outcome, AttemptOutcome::Failed | AttemptOutcome::TimedOut);
            let last = i + 1 == item_attempts.len();
            if failed {
                summary.failed_attempts += 1;
                if !last {
                    summary.retries += 1;
                }
            }
            for step in &attempt.steps {
                let at = match steps.iter().position(|s| s.name == step.name) {
                    Some(at) => at,
                    None => {
                        steps.push(StepSummary {
                            name: step.name.clone(),
                            ..StepSummary::default()
                        });
                        steps.len() - 1
                    }
                };
                let tally = &mut steps[at];
                if step.skipped {
                    tally.skipped += 1;
                } else {
                    tally.ran += 1;
                    tally.durations_us.record(step.duration_us);
                    if !steps_ran.contains(&at) {
                        steps_ran.push(at);
                        tally.items += 1;
                    }
                }
            }
            // The step it failed at: its last step that ran.
            if failed
                && let Some(step) = attempt.steps.iter().rev().find(|s| !s.skipped)
                && let Some(tally) = steps.iter_mut().find(|s| s.name == step.name)
            {
                tally.failed += 1;
                if !last {
                    tally.retries += 1;
                } else if status == Some(ItemStatus::DeadLettered) {
                    tally.dead_lettered += 1;
                }
            }
        }
        if matches!(
            status,
            Some(ItemStatus::Completed | ItemStatus::DeadLettered)
        ) {
            summary.item_us.record(total_us);
        }
    }
    summary.steps = steps;
    summary.eta = judge_eta(store, job, map_end)?;
    Ok(summary)
}

/// How right `job`'s ETA was: its snapshots' estimates judged against the end of its map
/// (its last `phase_finished` of the map, else its finish); `None` while the map runs, or when
/// it showed no estimate, or until the job has finished. What the reports show (`mmm export`, the dashboard).
pub fn eta_accuracy(store: &dyn Store, job: &JobRecord) -> Result<Option<EtaAccuracy>, StoreError> {
    let (_, map_end) = map_times(store, job.id)?;
    judge_eta(store, job, map_end)
}

fn judge_eta(
    store: &dyn Store,
    job: &JobRecord,
    map_end: Option<i64>,
) -> Result<Option<EtaAccuracy>, StoreError> {
    // Judged once the job has finished: a map that ended in an earlier run of a job running
    // again is not over.
    let end = match map_end.or(job.finished_at) {
        Some(end) if job.status.is_finished() => end,
        _ => return Ok(None),
    };
    Ok(accuracy::judge(&shown(store, job.id)?, end))
}

/// The deadline in a recorded plan (`JobPlan`'s JSON: `{"after": "2h"}` or `{"at": ms}`).
fn deadline(spec: &str) -> Option<Deadline> {
    let plan: serde_json::Value = serde_json::from_str(spec).ok()?;
    let deadline = plan.get("deadline")?;
    if let Some(after) = deadline.get("after").and_then(|a| a.as_str()) {
        return Deadline::from_text(after);
    }
    deadline
        .get("at")
        .and_then(|a| a.as_i64())
        .map(Deadline::At)
}

/// When each run's map started (ascending), and when the map last finished.
fn map_times(store: &dyn Store, job: JobId) -> Result<(Vec<i64>, Option<i64>), StoreError> {
    let (mut starts, mut end) = (Vec::new(), None);
    let mut after = 0;
    loop {
        let page = store.events(job, after, PAGE)?;
        for record in &page {
            match &record.event {
                Event::PhaseStarted(p) if p.phase == PhaseName::Map => starts.push(record.at),
                Event::PhaseFinished(p) if p.phase == PhaseName::Map => end = Some(record.at),
                _ => {}
            }
        }
        match page.last() {
            Some(last) if page.len() == PAGE => after = last.seq,
            _ => break,
        }
    }
    starts.sort_unstable();
    Ok((starts, end))
}

/// The estimates the job's snapshots showed, oldest first.
fn shown(store: &dyn Store, job: JobId) -> Result<Vec<Shown>, StoreError> {
    let mut shown = Vec::new();
    let mut after = i64::MIN;
    loop {
        let page = store.snapshots(job, after, PAGE)?;
        for record in &page {
            if let (Some(progress), Some(metrics)) =
                (&record.payload.progress, &record.payload.metrics)
            {
                shown.push(Shown {
                    at_ms: record.at,
                    percent: progress.percent,
                    eta: metrics.eta,
                });
            }
        }
        match page.last() {
            Some(last) if page.len() == PAGE => after = last.at,
            _ => break,
        }
    }
    Ok(shown)
}
