//! The invariants of a job's record (what `mmm check` verifies) and the repairs that restore
//! them (what `mmm repair` does), as pure functions of a [`JobContents`] read in one state.
//!
//! The invariants, each a [`ProblemKind`]:
//! - a `completed` item has a `succeeded` attempt;
//! - a `dead_lettered` item has attempts, and its last counted attempt (ended, not
//!   `interrupted`) `failed` or `timed_out`;
//! - an attempt is in flight (no outcome) only while its job is `running` with a live owner;
//! - an attempt in flight belongs to a `running` item, and a `running` item has one;
//! - a `running` job has a live owner;
//! - an item's attempt numbers are 1..n, without gaps;
//! - a `completed` job has no pending, running, failed or dead-lettered items, and a
//!   `completed_with_failures` job has dead-lettered items and no pending, running or failed
//!   ones.
//!
//! Whether the owner process is alive is the caller's call ([`Owner`]): the store does not look
//! at processes.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{ItemCounts, JobContents};
use mmm_core::job::{AttemptOutcome, ItemStatus, JobStatus};
pub use mmm_core::repair::{Problem, ProblemKind, RepairAction};

/// Whether the process recorded as the job's owner is still working on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    /// It exists (or, on another host, its heartbeat is fresh).
    Alive,
    /// It is gone.
    Gone,
}

/// Checks the job's record against the invariants in this module's documentation.
pub fn audit(contents: &JobContents, owner: Owner) -> Vec<Problem> {
    let job = &contents.job;
    let facts = ItemFacts::of(contents);
    let mut problems = Vec::new();
    let live = job.status == JobStatus::Running && owner == Owner::Alive;

    let mut push = |kind: ProblemKind, message: String, items: Vec<String>, count: usize| {
        if count > 0 {
            problems.push(Problem {
                kind,
                message,
                items,
                count: count as u64,
            });
        }
    };

    let completed: Vec<String> = facts
        .iter()
        .filter(|f| f.status == ItemStatus::Completed && !f.succeeded)
        .map(|f| f.key.clone())
        .collect();
    let n = completed.len();
    push(
        ProblemKind::CompletedWithoutSuccess,
        format!("{n} completed {} no succeeded attempt", items_have(n)),
        completed,
        n,
    );

    let dead: Vec<String> = facts
        .iter()
        .filter(|f| f.status == ItemStatus::DeadLettered && !f.last_counted_failed)
        .map(|f| f.key.clone())
        .collect();
    let n = dead.len();
    push(
        ProblemKind::DeadLetteredWithoutFailure,
        format!("{n} dead-lettered {} no failed last attempt", items_have(n)),
        dead,
        n,
    );

    if !live {
        let (keys, attempts) = keys_and_total(facts.iter().map(|f| (f, f.in_flight)));
        let why = if job.status == JobStatus::Running {
            "its owner is gone"
        } else {
            "the job is not running"
        };
        push(
            ProblemKind::StaleAttempt,
            format!(
                "{attempts} {} still in flight, but {why}",
                plural(attempts, "attempt is", "attempts are")
            ),
            keys,
            attempts,
        );
    }

    let (keys, attempts) = keys_and_total(
        facts
            .iter()
            .filter(|f| f.status != ItemStatus::Running)
            .map(|f| (f, f.in_flight)),
    );
    push(
        ProblemKind::AttemptOfIdleItem,
        format!(
            "{attempts} {} in flight for items that are not running",
            plural(attempts, "attempt is", "attempts are")
        ),
        keys,
        attempts,
    );

    let running: Vec<String> = facts
        .iter()
        .filter(|f| f.status == ItemStatus::Running && f.in_flight == 0)
        .map(|f| f.key.clone())
        .collect();
    let n = running.len();
    push(
        ProblemKind::RunningWithoutAttempt,
        format!("{n} running {} no attempt in flight", items_have(n)),
        running,
        n,
    );

    let gaps: Vec<String> = facts
        .iter()
        .filter(|f| f.has_gap)
        .map(|f| f.key.clone())
        .collect();
    let n = gaps.len();
    push(
        ProblemKind::AttemptNumberGap,
        format!(
            "{n} {} attempt numbers that are not 1..n (attempts are missing)",
            plural(n, "item has", "items have")
        ),
        gaps,
        n,
    );

    if job.status == JobStatus::Running && owner == Owner::Gone {
        let owner = match (job.owner_pid, job.owner_host.as_deref()) {
            (Some(pid), Some(host)) => format!("pid {pid} on {host}"),
            (Some(pid), None) => format!("pid {pid}"),
            _ => "no process recorded".to_string(),
        };
        push(
            ProblemKind::OwnerGone,
            format!("the job is `running` but its owner ({owner}) is gone"),
            Vec::new(),
            1,
        );
    }

    if let Some(why) = status_contradiction(job.status, &job.counts) {
        push(
            ProblemKind::StatusContradictsCounts,
            format!("the job is `{}` but {why}", job.status),
            Vec::new(),
            1,
        );
    }
    problems
}

/// What `mmm repair` will do to a job whose owner is gone.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RepairPlan {
    /// The changes, in the order they are applied.
    pub actions: Vec<RepairAction>,
    /// One sentence per kind of change, with the items concerned.
    pub changes: Vec<Problem>,
    /// Problems repair cannot fix.
    pub left: Vec<Problem>,
}

impl RepairPlan {
    /// True when there is nothing to change.
    pub fn is_empty(&self) -> bool {
        self.actions.is_empty()
    }
}

/// Plans the repair of a job whose owner is gone: close attempts in flight as `interrupted`,
/// put `running` items and items whose status their attempts do not justify (`completed`
/// without success, `dead_lettered` without a failure) back to `pending`, and give the job the
/// status its counts imply (`interrupted` while work remains).
pub fn repair_plan(contents: &JobContents) -> RepairPlan {
    let facts = ItemFacts::of(contents);
    let mut plan = RepairPlan::default();

    let in_flight: Vec<_> = contents
        .attempts
        .iter()
        .filter(|a| a.outcome.is_none())
        .collect();
    for attempt in &in_flight {
        plan.actions.push(RepairAction::InterruptAttempt {
            item_index: attempt.item_index,
            number: attempt.number,
        });
    }
    let (keys, n) = keys_and_total(facts.iter().map(|f| (f, f.in_flight)));
    plan.note(
        ProblemKind::StaleAttempt,
        format!(
            "closed {n} {} in flight as `interrupted` (not counted against retries)",
            plural(n, "attempt", "attempts")
        ),
        keys,
        n,
    );

    let mut counts = contents.job.counts;
    let mut requeue = |kind: ProblemKind, what: (&str, &str), selected: Vec<&ItemFacts>| {
        let n = selected.len();
        for f in &selected {
            plan.actions.push(RepairAction::RequeueItem {
                item_index: f.index,
                from: f.status,
            });
            match f.status {
                ItemStatus::Running => counts.running -= 1,
                ItemStatus::Completed => counts.completed -= 1,
                ItemStatus::DeadLettered => counts.dead_lettered -= 1,
                _ => {}
            }
            counts.pending += 1;
        }
        let keys = selected.iter().map(|f| f.key.clone()).collect();
        plan.note(
            kind,
            format!(
                "put {n} {} back to `pending`; {}",
                plural(n, what.0, what.1),
                will_run(n)
            ),
            keys,
            n,
        );
    };
    requeue(
        ProblemKind::RunningWithoutAttempt,
        ("running item", "running items"),
        facts
            .iter()
            .filter(|f| f.status == ItemStatus::Running)
            .collect(),
    );
    requeue(
        ProblemKind::CompletedWithoutSuccess,
        (
            "completed item without a succeeded attempt",
            "completed items without a succeeded attempt",
        ),
        facts
            .iter()
            .filter(|f| f.status == ItemStatus::Completed && !f.succeeded)
            .collect(),
    );
    requeue(
        ProblemKind::DeadLetteredWithoutFailure,
        (
            "dead-lettered item without a failed last attempt",
            "dead-lettered items without a failed last attempt",
        ),
        facts
            .iter()
            .filter(|f| f.status == ItemStatus::DeadLettered && !f.last_counted_failed)
            .collect(),
    );

    let from = contents.job.status;
    let to = match from {
        JobStatus::Running => Some(JobStatus::Interrupted),
        _ if status_contradiction(from, &counts).is_some() => Some(implied_status(&counts)),
        _ => None,
    };
    if let Some(to) = to.filter(|to| *to != from) {
        plan.actions.push(RepairAction::SetJobStatus { from, to });
        let kind = if from == JobStatus::Running {
            ProblemKind::OwnerGone
        } else {
            ProblemKind::StatusContradictsCounts
        };
        plan.note(
            kind,
            format!("set the job's status from `{from}` to `{to}`"),
            Vec::new(),
            1,
        );
    }

    plan.left = audit(contents, Owner::Gone)
        .into_iter()
        .filter(|p| !p.kind.is_repairable())
        .collect();
    plan
}

impl RepairPlan {
    fn note(&mut self, kind: ProblemKind, message: String, items: Vec<String>, count: usize) {
        if count > 0 {
            self.changes.push(Problem {
                kind,
                message,
                items,
                count: count as u64,
            });
        }
    }
}

/// The status a job's counts imply once its work stopped: `interrupted` while items remain to
/// run, else `completed_with_failures` when some are dead-lettered, else `completed`.
pub fn implied_status(counts: &ItemCounts) -> JobStatus {
    if counts.pending + counts.running + counts.failed > 0 {
        JobStatus::Interrupted
    } else if counts.dead_lettered > 0 {
        JobStatus::CompletedWithFailures
    } else {
        JobStatus::Completed
    }
}

/// Why `status` contradicts `counts`, if it does.
fn status_contradiction(status: JobStatus, counts: &ItemCounts) -> Option<String> {
    let unfinished = counts.pending + counts.running + counts.failed;
    match status {
        JobStatus::Completed if unfinished > 0 => Some(format!(
            "{unfinished} {} still to run",
            plural(unfinished as usize, "item is", "items are")
        )),
        JobStatus::Completed if counts.dead_lettered > 0 => Some(format!(
            "{} {} in the dead-letter queue",
            counts.dead_lettered,
            plural(counts.dead_lettered as usize, "item is", "items are")
        )),
        JobStatus::CompletedWithFailures if unfinished > 0 => Some(format!(
            "{unfinished} {} still to run",
            plural(unfinished as usize, "item is", "items are")
        )),
        JobStatus::CompletedWithFailures if counts.dead_lettered == 0 => {
            Some("no item is in the dead-letter queue".to_string())
        }
        _ => None,
    }
}

/// What the invariants need to know about one item.
struct ItemFacts {
    index: u64,
    key: String,
    status: ItemStatus,
    /// Some attempt succeeded.
    succeeded: bool,
    /// The last ended attempt that counts (not `interrupted`) failed or timed out.
    last_counted_failed: bool,
    /// Attempts without an outcome.
    in_flight: usize,
    /// The attempt numbers are not exactly 1..n.
    has_gap: bool,
}

impl ItemFacts {
    fn of(contents: &JobContents) -> Vec<ItemFacts> {
        let mut by_item: BTreeMap<u64, Vec<&super::AttemptRecord>> = BTreeMap::new();
        for attempt in &contents.attempts {
            by_item.entry(attempt.item_index).or_default().push(attempt);
        }
        contents
            .items
            .iter()
            .map(|item| {
                let mut attempts = by_item.remove(&item.index).unwrap_or_default();
                attempts.sort_by_key(|a| a.number);
                let last_counted = attempts
                    .iter()
                    .rev()
                    .find_map(|a| a.outcome.filter(|o| *o != AttemptOutcome::Interrupted));
                ItemFacts {
                    index: item.index,
                    key: item.key.clone(),
                    status: item.status,
                    succeeded: attempts
                        .iter()
                        .any(|a| a.outcome == Some(AttemptOutcome::Succeeded)),
                    last_counted_failed: matches!(
                        last_counted,
                        Some(AttemptOutcome::Failed | AttemptOutcome::TimedOut)
                    ),
                    in_flight: attempts.iter().filter(|a| a.outcome.is_none()).count(),
                    has_gap: attempts
                        .iter()
                        .enumerate()
                        .any(|(i, a)| u64::from(a.number) != i as u64 + 1),
                }
            })
            .collect()
    }
}

/// The keys of the items with a non-zero count, and the sum of the counts.
fn keys_and_total<'a>(
    counted: impl Iterator<Item = (&'a ItemFacts, usize)>,
) -> (Vec<String>, usize) {
    let mut keys = Vec::new();
    let mut total = 0;
    for (facts, n) in counted.filter(|(_, n)| *n > 0) {
        keys.push(facts.key.clone());
        total += n;
    }
    (keys, total)
}

fn plural<'a>(n: usize, one: &'a str, many: &'a str) -> &'a str {
    if n == 1 { one } else { many }
}

fn items_have(n: usize) -> &'static str {
    plural(n, "item has", "items have")
}

fn will_run(n: usize) -> &'static str {
    plural(n, "it will run again", "they will run again")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AttemptRecord, ItemRecord, JobRecord};
    use mmm_core::job::JobId;

    fn contents(status: JobStatus, items: &[(&str, ItemStatus)]) -> JobContents {
        let items: Vec<ItemRecord> = items
            .iter()
            .enumerate()
            .map(|(i, (key, status))| ItemRecord {
                index: i as u64,
                key: key.to_string(),
                value: format!("\"{key}\""),
                status: *status,
                attempts: 0,
            })
            .collect();
        let mut counts = ItemCounts::default();
        for item in &items {
            match item.status {
                ItemStatus::Pending => counts.pending += 1,
                ItemStatus::Running => counts.running += 1,
                ItemStatus::Completed => counts.completed += 1,
                ItemStatus::Failed => counts.failed += 1,
                ItemStatus::DeadLettered => counts.dead_lettered += 1,
                ItemStatus::Skipped => counts.skipped += 1,
            }
        }
        JobContents {
            job: JobRecord {
                id: JobId::new(),
                name: "t".into(),
                status,
                phase: None,
                spec: "{}".into(),
                spec_hash: String::new(),
                source: None,
                max_parallel: 1,
                created_at: 0,
                started_at: None,
                updated_at: 0,
                finished_at: None,
                duration_ms: 0,
                owner_pid: Some(1),
                owner_host: Some("h".into()),
                heartbeat_at: None,
                origin: None,
                input_fingerprint: None,
                paused: false,
                scaled_agents: None,
                counts,
            },
            items,
            attempts: Vec::new(),
        }
    }

    fn attempt(item_index: u64, number: u32, outcome: Option<AttemptOutcome>) -> AttemptRecord {
        AttemptRecord {
            item_index,
            item_key: String::new(),
            number,
            agent: "agent-1".into(),
            started_at: 0,
            ended_at: outcome.map(|_| 1),
            duration_us: None,
            outcome,
            exit_code: None,
            error: None,
            steps: Vec::new(),
            stdout_tail: String::new(),
            stderr_tail: String::new(),
        }
    }

    fn kinds(problems: &[Problem]) -> Vec<ProblemKind> {
        problems.iter().map(|p| p.kind).collect()
    }

    #[test]
    fn a_finished_job_with_its_attempts_is_clean() {
        let mut c = contents(
            JobStatus::CompletedWithFailures,
            &[
                ("a", ItemStatus::Completed),
                ("b", ItemStatus::DeadLettered),
            ],
        );
        c.attempts = vec![
            attempt(0, 1, Some(AttemptOutcome::Interrupted)),
            attempt(0, 2, Some(AttemptOutcome::Succeeded)),
            attempt(1, 1, Some(AttemptOutcome::Failed)),
            attempt(1, 2, Some(AttemptOutcome::TimedOut)),
            attempt(1, 3, Some(AttemptOutcome::Interrupted)),
        ];
        assert_eq!(audit(&c, Owner::Gone), vec![]);
        assert!(repair_plan(&c).is_empty());
    }

    #[test]
    fn a_live_running_job_may_have_attempts_in_flight() {
        let mut c = contents(
            JobStatus::Running,
            &[("a", ItemStatus::Running), ("b", ItemStatus::Pending)],
        );
        c.attempts = vec![attempt(0, 1, None)];
        assert_eq!(audit(&c, Owner::Alive), vec![]);
        assert_eq!(
            kinds(&audit(&c, Owner::Gone)),
            [ProblemKind::StaleAttempt, ProblemKind::OwnerGone]
        );
        let plan = repair_plan(&c);
        assert_eq!(
            plan.actions,
            [
                RepairAction::InterruptAttempt {
                    item_index: 0,
                    number: 1
                },
                RepairAction::RequeueItem {
                    item_index: 0,
                    from: ItemStatus::Running
                },
                RepairAction::SetJobStatus {
                    from: JobStatus::Running,
                    to: JobStatus::Interrupted
                },
            ]
        );
    }

    #[test]
    fn statuses_unjustified_by_attempts_are_found_and_requeued() {
        let mut c = contents(
            JobStatus::Completed,
            &[
                ("ok", ItemStatus::Completed),
                ("bad", ItemStatus::Completed),
                ("dlq", ItemStatus::DeadLettered),
                ("run", ItemStatus::Running),
            ],
        );
        c.attempts = vec![
            attempt(0, 1, Some(AttemptOutcome::Succeeded)),
            attempt(1, 1, Some(AttemptOutcome::Failed)),
            attempt(3, 1, Some(AttemptOutcome::Failed)),
        ];
        let problems = audit(&c, Owner::Gone);
        assert_eq!(
            kinds(&problems),
            [
                ProblemKind::CompletedWithoutSuccess,
                ProblemKind::DeadLetteredWithoutFailure,
                ProblemKind::RunningWithoutAttempt,
                ProblemKind::StatusContradictsCounts,
            ]
        );
        assert_eq!(problems[0].items, ["bad"]);
        assert_eq!(problems[1].items, ["dlq"]);
        let plan = repair_plan(&c);
        assert_eq!(
            plan.actions.last(),
            Some(&RepairAction::SetJobStatus {
                from: JobStatus::Completed,
                to: JobStatus::Interrupted
            })
        );
        assert_eq!(plan.actions.len(), 4);
    }

    #[test]
    fn attempt_number_gaps_are_found_but_not_repaired() {
        let mut c = contents(JobStatus::Completed, &[("a", ItemStatus::Completed)]);
        c.attempts = vec![
            attempt(0, 1, Some(AttemptOutcome::Failed)),
            attempt(0, 3, Some(AttemptOutcome::Succeeded)),
        ];
        assert_eq!(
            kinds(&audit(&c, Owner::Gone)),
            [ProblemKind::AttemptNumberGap]
        );
        let plan = repair_plan(&c);
        assert!(plan.is_empty());
        assert_eq!(kinds(&plan.left), [ProblemKind::AttemptNumberGap]);
    }

    #[test]
    fn completed_with_failures_needs_a_dead_letter_and_nothing_left() {
        let c = contents(
            JobStatus::CompletedWithFailures,
            &[("a", ItemStatus::Completed), ("b", ItemStatus::Skipped)],
        );
        let mut c = c;
        c.attempts = vec![attempt(0, 1, Some(AttemptOutcome::Succeeded))];
        assert_eq!(
            kinds(&audit(&c, Owner::Gone)),
            [ProblemKind::StatusContradictsCounts]
        );
        assert_eq!(
            repair_plan(&c).actions,
            [RepairAction::SetJobStatus {
                from: JobStatus::CompletedWithFailures,
                to: JobStatus::Completed
            }]
        );
    }
}
