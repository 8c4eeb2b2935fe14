//! The runner's side of `map.isolation: worktree` (docs/worktrees.md): opening and closing
//! the job's worktree pool around the map, preparing an agent's worktree before each attempt,
//! and the serialized merge queue (with `on_conflict`) after its steps succeed. The git work
//! itself is in [`crate::worktree`].
//!
//! Git failures that are not the item's fault (lock contention, a vanished worktree) are
//! retried here with a backoff; when they persist the attempt ends as an infrastructure
//! failure, which the agent retries without counting it against the item. When git keeps
//! failing for [`INFRA_LIMIT`] attempts in a row, the run stops (resumable) rather than spin.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::attempt::{Attempt, AttemptEnd, append_tail};
use crate::run::Run;
use crate::source::WorkSource;
use crate::worktree::{GitError, Merge, Pool, Repo};
use crate::{CommandRequest, Executor, JobFailure};
use mmm_core::counter::CounterValue;
use mmm_core::event::{
    AttemptFailed, Event, PhaseFinished, PhaseName, PhaseStarted, StepReported, WorktreesOpened,
};
use mmm_core::job::AttemptOutcome;
use mmm_spec::{Isolation, JobPlan, RenderContext};
use mmm_store::{StepRecord, Write};

/// Tries of one git operation that fails for infrastructure reasons before giving up on it.
const GIT_TRIES: u32 = 5;
/// Consecutive infrastructure failures of one item after which the run stops.
pub(crate) const INFRA_LIMIT: u32 = 8;
/// Rounds of `on_conflict` for one item (the tip may move again while it runs).
const CONFLICT_ROUNDS: u32 = 3;

/// The pool and the merge queue of a job with worktree isolation, open for one map.
pub(crate) struct Isolated {
    pool: Arc<Pool>,
    /// One merge at a time: the queue agents wait in (FIFO: tokio's mutex is fair).
    merge_queue: tokio::sync::Mutex<()>,
    /// Git kept failing: the run stops, resumable.
    broken: AtomicBool,
}

/// What preparing an attempt's worktree came to.
pub(crate) enum Prepared {
    /// Run the steps here, from this base commit.
    Ready {
        path: std::path::PathBuf,
        base: String,
    },
    /// The item's merge is already on the branch (a resume after a kill mid-merge).
    Landed,
    /// The worktree could not be prepared (an infrastructure failure).
    Failed(String),
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, GitError> + Send + 'static,
) -> Result<T, GitError> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| {
        Err(GitError::Io {
            path: Default::default(),
            source: std::io::Error::other(format!("a git task panicked: {e}")),
        })
    })
}

/// `f` with retries while it fails for infrastructure reasons (backoff 50 ms, doubling).
async fn retried<T: Send + 'static>(
    f: impl Fn() -> Result<T, GitError> + Send + Sync + Clone + 'static,
) -> Result<T, GitError> {
    let mut wait = Duration::from_millis(50);
    let mut tries = 0;
    loop {
        tries += 1;
        match blocking(f.clone()).await {
            Err(e) if e.is_infrastructure() && tries < GIT_TRIES => {
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
            other => return other,
        }
    }
}

/// Before anything runs: a job with worktree isolation must be in a repository.
pub(crate) async fn check(plan: &JobPlan) -> Result<(), JobFailure> {
    if plan.map.isolation != Isolation::Worktree {
        return Ok(());
    }
    let dir = plan.base_dir.clone();
    blocking(move || Repo::discover(&dir))
        .await
        .map(|_| ())
        .map_err(|source| JobFailure::Repository { source })
}

impl Isolated {
    /// Opens the worktree pool (the branch, one worktree per agent) before the map; `None`
    /// when the job has no worktree isolation.
    pub(crate) async fn open<E: Executor>(run: &Run<E>) -> Result<Option<Isolated>, JobFailure> {
        if run.plan.map.isolation != Isolation::Worktree {
            return Ok(None);
        }
        let plan = run.plan.clone();
        let job = run.job;
        let agents = plan.map.max_parallel.max(1);
        let started = Instant::now();
        let pool = retried(move || {
            Pool::open(
                &plan.base_dir,
                &plan.name,
                &job.to_string(),
                &job.short(),
                agents,
            )
        })
        .await
        .map_err(|source| JobFailure::Worktrees { source })?;
        let opened = WorktreesOpened {
            branch: pool.branch().to_string(),
            worktrees: pool.dir().display().to_string(),
            agents: agents as u64,
            already_merged: pool.landed_count() as u64,
            setup_ms: started.elapsed().as_millis() as u64,
        };
        let started = PhaseStarted {
            phase: PhaseName::Worktrees,
            worktrees: Some(opened),
        };
        run.record(vec![Write::event(job, None, Event::PhaseStarted(started))]);
        Ok(Some(Isolated {
            pool: Arc::new(pool),
            merge_queue: tokio::sync::Mutex::new(()),
            broken: AtomicBool::new(false),
        }))
    }

    /// The integration branch.
    pub(crate) fn branch(&self) -> &str {
        self.pool.branch()
    }

    /// True once git kept failing: the run stops, resumable.
    pub(crate) fn is_broken(&self) -> bool {
        self.broken.load(Ordering::Relaxed)
    }

    /// Removes the worktrees after the map (the branch stays; a resume adds them again).
    pub(crate) async fn close<E: Executor>(&self, run: &Run<E>) {
        let pool = self.pool.clone();
        if let Err(e) = blocking(move || pool.close()).await {
            let finished = PhaseFinished {
                phase: PhaseName::Worktrees,
                error: Some(e.to_string()),
            };
            run.record(vec![Write::event(
                run.job,
                None,
                Event::PhaseFinished(finished),
            )]);
        }
    }

    /// Git kept failing for an item: stop the run (resumable) rather than spin.
    pub(crate) fn give_up<E: Executor>(&self, run: &Run<E>, item_key: &str, end: &AttemptEnd) {
        self.broken.store(true, Ordering::Relaxed);
        let failed = AttemptFailed {
            attempt: None,
            agent: None,
            outcome: None,
            error: end.error.clone(),
            exit_code: None,
            infrastructure: true,
            throttled: false,
            stopping: Some(format!(
                "git failed {INFRA_LIMIT} times in a row; the job stops and can be resumed"
            )),
        };
        run.record(vec![Write::event(
            run.job,
            Some(item_key),
            Event::AttemptFailed(failed),
        )]);
    }

    /// Resets agent `agent`'s worktree to the branch's tip for item `index`.
    pub(crate) async fn prepare(&self, agent: usize, index: u64) -> Prepared {
        if self.pool.has_landed(index) {
            return Prepared::Landed;
        }
        let pool = self.pool.clone();
        match retried(move || pool.reset(agent)).await {
            Ok(base) => Prepared::Ready {
                path: self.pool.work_dir(agent),
                base,
            },
            Err(e) => Prepared::Failed(format!("could not reset the agent's worktree: {e}")),
        }
    }

    /// After the attempt's steps succeeded: merges the item's commits through the job's merge
    /// queue, running `on_conflict` on a conflict when the job has one. Updates `end` when the
    /// merge fails (a conflict fails the attempt; git trouble is an infrastructure failure).
    pub(crate) async fn merge<E: Executor, S: WorkSource>(
        &self,
        attempt: &Attempt<'_, E, S>,
        base: &str,
        end: &mut AttemptEnd,
    ) {
        let agent = attempt.agent;
        let run = &agent.map.run;
        let (index, item) = (attempt.index as u64, attempt.item);
        let mut counted_conflict = false;
        for round in 0..=CONFLICT_ROUNDS {
            run.tracker.merging(agent.index);
            let merged = {
                let _turn = self.merge_queue.lock().await;
                let (pool, agent, base, key) = (
                    self.pool.clone(),
                    agent.index,
                    base.to_string(),
                    item.key.clone(),
                );
                retried(move || pool.merge(agent, &base, index, &key)).await
            };
            match merged {
                Ok(Merge::Nothing) => return,
                Ok(Merge::Merged { commits, .. }) => {
                    count(run, &item.key, "commits", (commits as i64).into());
                    count(run, &item.key, "merged_items", 1.into());
                    return;
                }
                Ok(Merge::Conflict { paths, tip, head }) => {
                    if !counted_conflict {
                        counted_conflict = true;
                        count(run, &item.key, "merge_conflicts", 1.into());
                    }
                    let listed = paths.join(", ");
                    let branch = self.pool.branch();
                    let on_conflict = run.plan.map.on_conflict.clone();
                    let Some(on_conflict) = on_conflict.filter(|_| round < CONFLICT_ROUNDS) else {
                        end.outcome = AttemptOutcome::Failed;
                        end.error = Some(format!(
                            "merge conflict with branch {branch} in: {listed}{}",
                            if round > 0 {
                                " (on_conflict did not settle it)"
                            } else {
                                ""
                            }
                        ));
                        return;
                    };
                    let conflict = Conflict {
                        command: &on_conflict,
                        paths: &paths,
                        tip: &tip,
                        head: &head,
                    };
                    if let Err(message) = self.resolve_conflict(attempt, &conflict, end).await {
                        end.outcome = AttemptOutcome::Failed;
                        end.error = Some(format!(
                            "merge conflict with branch {branch} in: {listed}; {message}"
                        ));
                        return;
                    }
                }
                Err(e) if e.is_infrastructure() => {
                    end.outcome = AttemptOutcome::Interrupted;
                    end.infrastructure = true;
                    end.error = Some(format!("git failed while merging (will retry): {e}"));
                    return;
                }
                Err(e) => {
                    end.outcome = AttemptOutcome::Failed;
                    end.error = Some(format!("could not merge the item's commits: {e}"));
                    return;
                }
            }
        }
    }

    /// Runs `on_conflict` in the agent's worktree, left mid-merge of the branch's tip into the
    /// item's head; then commits the resolution. `Err` says why it was not resolved.
    async fn resolve_conflict<E: Executor, S: WorkSource>(
        &self,
        attempt: &Attempt<'_, E, S>,
        conflict: &Conflict<'_>,
        end: &mut AttemptEnd,
    ) -> Result<(), String> {
        let agent = attempt.agent;
        let run = &agent.map.run;
        let (item, number) = (attempt.item, attempt.number);
        let (pool, agent_index, at) = (self.pool.clone(), agent.index, conflict.tip.to_string());
        retried(move || pool.start_conflict_merge(agent_index, &at))
            .await
            .map_err(|e| format!("could not start the merge for on_conflict: {e}"))?;
        let plan = &run.plan;
        let ctx = RenderContext {
            item: Some(&item.value),
            item_key: Some(&item.key),
            seq: 0,
            slot: agent.index + 1,
            env: &plan.env,
            map: None,
        };
        let rendered = conflict
            .command
            .render(&ctx)
            .map_err(|e| format!("on_conflict could not be rendered: {e}"))?;
        let path = self.pool.work_dir(agent.index);
        let mut env = run.command_env(Some((item, number)), &agent.name, "on_conflict");
        env.push(("MMM_WORKTREE".into(), path.display().to_string()));
        env.push(("MMM_BRANCH".into(), self.pool.branch().to_string()));
        env.push(("MMM_CONFLICT_PATHS".into(), conflict.paths.join("\n")));
        env.push(("MMM_MERGE_TIP".into(), conflict.tip.to_string()));
        env.push(("MMM_ITEM_HEAD".into(), conflict.head.to_string()));
        let request = CommandRequest {
            command: rendered,
            env,
            cwd: path,
            timeout: plan.map.timeout,
            keep_output: run.show_map_output,
            observer: None,
            log: None,
            suspend: None,
        };
        let result = run.executor.run(request, run.stop.clone()).await;
        end.steps.push(StepRecord {
            name: "on_conflict".to_string(),
            skipped: false,
            duration_us: result.duration.as_micros() as u64,
            exit_code: result.exit.code(),
        });
        append_tail(&mut end.stdout, &result.stdout);
        append_tail(&mut end.stderr, &result.stderr);
        if !result.exit.is_success() {
            return Err(format!("on_conflict {}", result.exit.describe()));
        }
        let (pool, key) = (self.pool.clone(), item.key.clone());
        let left = retried(move || pool.finish_conflict_merge(agent_index, &key))
            .await
            .map_err(|e| format!("could not commit on_conflict's resolution: {e}"))?;
        if !left.is_empty() {
            return Err(format!(
                "on_conflict left conflicts in: {}",
                left.join(", ")
            ));
        }
        Ok(())
    }
}

/// A merge conflict `on_conflict` is to settle.
struct Conflict<'a> {
    command: &'a mmm_spec::CommandTemplate,
    /// The conflicting paths.
    paths: &'a [String],
    /// The branch's tip being merged in.
    tip: &'a str,
    /// The item's head.
    head: &'a str,
}

/// Adds to a job-wide counter and records it (the events are the durable record).
fn count<E: Executor>(run: &Run<E>, item_key: &str, name: &str, delta: CounterValue) {
    run.tracker.add_to_counter(name, delta);
    let report = StepReported::Counter {
        step: "merge".to_string(),
        counter: name.to_string(),
        delta,
    };
    run.record(vec![Write::event(
        run.job,
        Some(item_key),
        Event::StepReported(report),
    )]);
}
