//! One attempt of one item: its steps in order (a `when:` that is false skips a step), each
//! under what is left of the attempt's timeout, in the agent's worktree under
//! `map.isolation: worktree` (then merged through the job's merge queue), and what it came to
//! ([`AttemptEnd`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::agent::Agent;
use crate::capture::Capture;
use crate::isolated::Prepared;
use crate::lines::Lines;
use crate::observer::{AgentObserver, AttemptReports};
use crate::source::WorkSource;
use crate::{CommandRequest, Executor, Exit, process};
use mmm_core::job::AttemptOutcome;
use mmm_spec::{Item, RenderContext, StepPlan};
use mmm_store::StepRecord;

/// What one attempt came to.
pub(crate) struct AttemptEnd {
    pub(crate) outcome: AttemptOutcome,
    pub(crate) all_skipped: bool,
    pub(crate) retryable: bool,
    /// Failed for reasons that are not the item's (git trouble under worktree isolation):
    /// retried without counting against the item.
    pub(crate) infrastructure: bool,
    pub(crate) exit_code: Option<i32>,
    pub(crate) error: Option<String>,
    pub(crate) steps: Vec<StepRecord>,
    pub(crate) stdout: Vec<u8>,
    pub(crate) stderr: Vec<u8>,
    pub(crate) duration: Duration,
    /// `Some(wait)`: the API the step called throttled it (a throttle exit code, or `mmm
    /// report --throttled` with the wait it asked for).
    pub(crate) throttled: Option<Option<Duration>>,
    /// The attempt's sums of the counters its steps reported.
    pub(crate) counters: std::collections::BTreeMap<String, mmm_core::counter::CounterValue>,
}

impl AttemptEnd {
    /// An attempt that ran nothing because its merge is already on the integration branch (a
    /// resume after a kill mid-merge).
    fn already_merged() -> AttemptEnd {
        AttemptEnd {
            outcome: AttemptOutcome::Succeeded,
            all_skipped: false,
            retryable: true,
            infrastructure: false,
            exit_code: None,
            error: None,
            steps: Vec::new(),
            stdout: b"already merged into the integration branch (found its merge commit)\n"
                .to_vec(),
            stderr: Vec::new(),
            duration: Duration::ZERO,
            throttled: None,
            counters: Default::default(),
        }
    }
}

/// One attempt: who runs it, on what.
pub(crate) struct Attempt<'a, E, S> {
    pub(crate) agent: &'a Agent<E, S>,
    /// The item's position in the input.
    pub(crate) index: usize,
    pub(crate) item: &'a Item,
    /// The attempt's number (1 for the item's first).
    pub(crate) number: u32,
}

impl<E: Executor, S: WorkSource> Attempt<'_, E, S> {
    /// Runs the item's steps once.
    pub(crate) async fn run(self) -> AttemptEnd {
        let (agent, index, item, number) = (self.agent, self.index, self.item, self.number);
        let map = &agent.map;
        let run = &map.run;
        let plan = &run.plan;
        let started = Instant::now();
        let deadline = plan.map.timeout.map(|t| started + t);
        let ctx = RenderContext {
            item: Some(&item.value),
            item_key: Some(&item.key),
            seq: index as u64 + 1,
            slot: agent.index + 1,
            env: &plan.env,
            map: None,
        };
        let mut end = AttemptEnd {
            outcome: AttemptOutcome::Succeeded,
            all_skipped: true,
            retryable: true,
            infrastructure: false,
            exit_code: None,
            error: None,
            steps: Vec::with_capacity(plan.map.steps.len()),
            stdout: Vec::new(),
            stderr: Vec::new(),
            duration: Duration::ZERO,
            throttled: None,
            counters: Default::default(),
        };
        let reports = Arc::new(AttemptReports::default());
        // Worktree isolation: the steps run in the agent's worktree, reset to the branch tip.
        let mut cwd = plan.base_dir.clone();
        let mut worktree_base = None;
        if let Some(isolated) = &map.isolated {
            match isolated.prepare(agent.index, index as u64).await {
                Prepared::Ready { path, base } => {
                    cwd = path;
                    worktree_base = Some(base);
                }
                Prepared::Landed => return AttemptEnd::already_merged(),
                Prepared::Failed(message) => {
                    end.outcome = AttemptOutcome::Interrupted;
                    end.infrastructure = true;
                    end.error = Some(message);
                    end.duration = started.elapsed();
                    return end;
                }
            }
        }
        // The attempt's whole output, for its log in the store (docs/logs.md).
        let capture = Capture::new(run.writer.clone(), run.job, index as u64, number, plan.logs)
            .map(Arc::new);
        for (step_index, step) in plan.map.steps.iter().enumerate() {
            if map.stopping() {
                end.outcome = AttemptOutcome::Interrupted;
                end.error = Some("the job was stopped before this step".into());
                break;
            }
            match prepare_step(step, &ctx) {
                Err(message) => {
                    end.outcome = AttemptOutcome::Failed;
                    end.retryable = false;
                    end.error = Some(message);
                    break;
                }
                Ok(None) => {
                    end.steps.push(StepRecord {
                        name: step.name.clone(),
                        skipped: true,
                        duration_us: 0,
                        exit_code: None,
                    });
                    continue;
                }
                Ok(Some(command)) => {
                    let timeout = step_timeout(step.timeout, deadline);
                    if timeout == Some(Duration::ZERO) {
                        end.outcome = AttemptOutcome::TimedOut;
                        end.error = Some(format!(
                            "the attempt's timeout ran out before step `{}`",
                            step.name
                        ));
                        break;
                    }
                    run.tracker.step_started(agent.index, step_index);
                    run.metrics
                        .step_started(agent.index, step_index, run.clock.now_ms());
                    end.all_skipped = false;
                    let mut env = run.command_env(Some((item, number)), &agent.name, &step.name);
                    if let Some(isolated) =
                        map.isolated.as_ref().filter(|_| worktree_base.is_some())
                    {
                        env.push(("MMM_WORKTREE".into(), cwd.display().to_string()));
                        env.push(("MMM_BRANCH".into(), isolated.branch().to_string()));
                    }
                    // A tag that cannot be rendered shows as written rather than failing the
                    // item over its display.
                    let tag =
                        || {
                            run.plan.output.tag.as_ref().map(|tag| {
                                tag.render_plain(&ctx).unwrap_or_else(|_| tag.to_string())
                            })
                        };
                    // `--line-buffer`: the output is shown as it comes, not kept to show whole.
                    let lines = match run.shown.sender() {
                        Some(sender) if run.show_map_output && run.plan.output.line_buffer => {
                            Some(Arc::new(Lines::new(sender, item.key.clone(), tag())))
                        }
                        _ => None,
                    };
                    let request = CommandRequest {
                        command,
                        env,
                        cwd: cwd.clone(),
                        timeout,
                        keep_output: run.show_map_output && lines.is_none(),
                        observer: Some(process::Observer(Arc::new(
                            AgentObserver::new(
                                run.tracker.clone(),
                                run.writer.clone(),
                                run.job,
                                agent.index,
                                item.key.clone(),
                                step.name.clone(),
                            )
                            .with_lines(lines.clone())
                            .with_reports(reports.clone()),
                        ))),
                        log: capture.clone().map(|c| c as Arc<dyn process::OutputLog>),
                        suspend: Some(run.suspended.subscribe()),
                    };
                    let result = run.executor.run(request, run.stop.clone()).await;
                    if let Some(capture) = &capture {
                        capture.flush();
                    }
                    if let Some(lines) = &lines {
                        lines.finish();
                    } else if run.show_map_output {
                        run.show_item(index as u64, &item.key, tag().as_deref(), &result);
                    }
                    end.steps.push(StepRecord {
                        name: step.name.clone(),
                        skipped: false,
                        duration_us: result.duration.as_micros() as u64,
                        exit_code: result.exit.code(),
                    });
                    append_tail(&mut end.stdout, &result.stdout);
                    append_tail(&mut end.stderr, &result.stderr);
                    end.exit_code = result.exit.code();
                    if !result.exit.is_success() {
                        end.outcome = match result.exit {
                            Exit::TimedOut => AttemptOutcome::TimedOut,
                            Exit::Interrupted => AttemptOutcome::Interrupted,
                            _ => AttemptOutcome::Failed,
                        };
                        end.error =
                            Some(format!("step `{}` {}", step.name, result.exit.describe()));
                        break;
                    }
                }
            }
        }
        if end.outcome == AttemptOutcome::Succeeded
            && let Some(base) = &worktree_base
            && let Some(isolated) = &map.isolated
        {
            isolated.merge(&self, base, &mut end).await;
        }
        end.duration = started.elapsed();
        end.counters = reports.counters();
        // Throttled: reported by a step (whatever its exit), or a step exited with one of
        // the throttle codes. A timeout or a stop is not throttling.
        let coded = end.outcome == AttemptOutcome::Failed
            && end
                .exit_code
                .is_some_and(|code| plan.map.throttle_exit_codes.contains(&code));
        if matches!(
            end.outcome,
            AttemptOutcome::Failed | AttemptOutcome::Succeeded
        ) {
            end.throttled = reports.throttled_with().or(coded.then_some(None));
        }
        end
    }
}

/// Decides the step's condition and renders its command: `Ok(None)` when it is skipped.
fn prepare_step(
    step: &StepPlan,
    ctx: &RenderContext<'_>,
) -> Result<Option<mmm_spec::RenderedCommand>, String> {
    if let Some(when) = &step.when {
        match when.evaluate_condition(ctx) {
            Ok(false) => return Ok(None),
            Ok(true) => {}
            Err(e) => {
                return Err(format!(
                    "step `{}`: `when:` could not be decided: {e}",
                    step.name
                ));
            }
        }
    }
    step.command
        .render(ctx)
        .map(Some)
        .map_err(|e| format!("step `{}` could not be rendered: {e}", step.name))
}

/// The step's own timeout, shortened to what is left of the attempt's.
fn step_timeout(step: Option<Duration>, deadline: Option<Instant>) -> Option<Duration> {
    let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
    match (step, left) {
        (Some(s), Some(l)) => Some(s.min(l)),
        (s, l) => s.or(l),
    }
}

/// Appends `more` to `tail`, keeping it bounded.
pub(crate) fn append_tail(tail: &mut Vec<u8>, more: &[u8]) {
    tail.extend_from_slice(more);
    let limit = process::TAIL_BYTES;
    if tail.len() > limit {
        let cut = tail.len() - limit;
        tail.drain(..cut);
    }
}
