//! The runner's side of `map.isolation: worktree` (docs/worktrees.md): opening and closing
//! the job's worktree pool around the map, preparing an agent's worktree before each attempt,
//! and the serialized merge queue (with `on_conflict`) after its steps succeed. The git work
//! itself is in [`super::worktree`].
//!
//! Git failures that are not the item's fault (lock contention, a vanished worktree) are
//! retried here with a backoff; when they persist the attempt ends as an infrastructure
//! failure, which the agent retries without counting it against the item. When git keeps
//! failing for [`INFRA_LIMIT`] attempts in a row, the run stops (resumable) rather than spin.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;

use super::worktree::{GitError, Merge, Pool};
use super::{AgentRun, AttemptEnd, CommandRequest, Executor, Run};
use mmm_core::event::EventKind;
use mmm_core::job::AttemptOutcome;
use mmm_spec::{Isolation, Item, RenderContext};
use mmm_store::{StepRecord, Write};

/// Tries of one git operation that fails for infrastructure reasons before giving up on it.
const GIT_TRIES: u32 = 5;
/// Consecutive infrastructure failures of one item after which the run stops.
pub(super) const INFRA_LIMIT: u32 = 8;
/// Rounds of `on_conflict` for one item (the tip may move again while it runs).
const CONFLICT_ROUNDS: u32 = 3;

/// The pool and the merge queue of a job with worktree isolation.
pub(super) struct Isolated {
    pool: Arc<Pool>,
    /// One merge at a time: the queue agents wait in (FIFO: tokio's mutex is fair).
    merge_queue: tokio::sync::Mutex<()>,
    /// Git kept failing: the run stops, resumable.
    broken: AtomicBool,
}

impl Isolated {
    /// The integration branch.
    pub(super) fn branch(&self) -> &str {
        self.pool.branch()
    }

    pub(super) fn is_broken(&self) -> bool {
        self.broken.load(Ordering::Relaxed)
    }
}

/// What preparing an attempt's worktree came to.
pub(super) enum Prepared {
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

impl<E: Executor> Run<E> {
    /// The job's isolation, once the map opened it.
    pub(super) fn isolated(&self) -> Option<&Isolated> {
        self.isolated.get()
    }

    /// Before anything runs: a job with worktree isolation must be in a repository.
    pub(super) async fn check_isolation(&self) -> Result<(), String> {
        if self.plan().map.isolation != Isolation::Worktree {
            return Ok(());
        }
        let dir = self.plan().base_dir.clone();
        blocking(move || super::worktree::Repo::discover(&dir))
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// Opens the worktree pool (the branch, one worktree per agent) before the map.
    pub(super) async fn open_isolation(&self) -> Result<(), String> {
        if self.plan().map.isolation != Isolation::Worktree {
            return Ok(());
        }
        let plan = self.config.plan.clone();
        let job = self.job();
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
        .map_err(|e| format!("could not set up the agents' worktrees: {e}"))?;
        self.record(vec![Write::event(
            job,
            EventKind::PhaseStarted,
            None,
            json!({
                "phase": "worktrees",
                "branch": pool.branch(),
                "worktrees": pool.dir(),
                "agents": agents,
                "already_merged": pool.landed_count(),
                "setup_ms": started.elapsed().as_millis() as u64,
            }),
        )]);
        let _ = self.isolated.set(Isolated {
            pool: Arc::new(pool),
            merge_queue: tokio::sync::Mutex::new(()),
            broken: AtomicBool::new(false),
        });
        Ok(())
    }

    /// Removes the worktrees after the map (the branch stays; a resume adds them again).
    pub(super) async fn close_isolation(&self) {
        let Some(isolated) = self.isolated() else {
            return;
        };
        let pool = isolated.pool.clone();
        if let Err(e) = blocking(move || pool.close()).await {
            self.record(vec![Write::event(
                self.job(),
                EventKind::PhaseFinished,
                None,
                json!({ "phase": "worktrees", "error": e.to_string() }),
            )]);
        }
    }

    /// Adds to a job-wide counter and records it (the events are the durable record).
    fn count(&self, item_key: &str, name: &str, delta: i64) {
        self.config.tracker.add_to_counter(name, delta);
        self.record(vec![Write::event(
            self.job(),
            EventKind::StepReported,
            Some(item_key),
            json!({ "step": "merge", "counter": name, "delta": delta }),
        )]);
    }
}

impl<E: Executor> AgentRun<E> {
    /// Git kept failing for this item: stop the run (resumable) rather than spin.
    pub(super) fn give_up_on_git(&self, item_key: &str, end: &AttemptEnd) {
        if let Some(isolated) = self.run.isolated() {
            isolated.broken.store(true, Ordering::Relaxed);
        }
        self.run.record(vec![Write::event(
            self.run.job(),
            EventKind::AttemptFailed,
            Some(item_key),
            json!({
                "error": end.error,
                "infrastructure": true,
                "stopping": format!("git failed {INFRA_LIMIT} times in a row; the job stops and can be resumed"),
            }),
        )]);
    }

    /// Resets this agent's worktree to the branch's tip for item `index`.
    pub(super) async fn prepare_worktree(&self, index: u64) -> Prepared {
        let Some(isolated) = self.run.isolated() else {
            return Prepared::Failed("the worktrees are not set up".into());
        };
        if isolated.pool.has_landed(index) {
            return Prepared::Landed;
        }
        let (pool, agent) = (isolated.pool.clone(), self.agent);
        match retried(move || pool.reset(agent)).await {
            Ok(base) => Prepared::Ready {
                path: isolated.pool.work_dir(self.agent),
                base,
            },
            Err(e) => Prepared::Failed(format!("could not reset the agent's worktree: {e}")),
        }
    }

    /// After the steps succeeded: merges the item's commits through the job's merge queue,
    /// running `on_conflict` on a conflict when the job has one. Updates `end` when the
    /// merge fails (a conflict fails the attempt; git trouble is an infrastructure failure).
    pub(super) async fn merge_item(
        &self,
        index: u64,
        item: &Item,
        number: u32,
        base: &str,
        end: &mut AttemptEnd,
    ) {
        let Some(isolated) = self.run.isolated() else {
            return;
        };
        let run = &self.run;
        let tracker = &run.config.tracker;
        let mut counted_conflict = false;
        for round in 0..=CONFLICT_ROUNDS {
            tracker.merging(self.agent);
            let merged = {
                let _turn = isolated.merge_queue.lock().await;
                let (pool, agent, base, key) = (
                    isolated.pool.clone(),
                    self.agent,
                    base.to_string(),
                    item.key.clone(),
                );
                retried(move || pool.merge(agent, &base, index, &key)).await
            };
            match merged {
                Ok(Merge::Nothing) => return,
                Ok(Merge::Merged { commits, .. }) => {
                    run.count(&item.key, "commits", commits as i64);
                    run.count(&item.key, "merged_items", 1);
                    return;
                }
                Ok(Merge::Conflict { paths, tip, head }) => {
                    if !counted_conflict {
                        counted_conflict = true;
                        run.count(&item.key, "merge_conflicts", 1);
                    }
                    let listed = paths.join(", ");
                    let branch = isolated.pool.branch();
                    let on_conflict = run.plan().map.on_conflict.clone();
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
                    if let Err(message) = self
                        .resolve_conflict(item, number, &on_conflict, &paths, &tip, &head, end)
                        .await
                    {
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

    /// Runs `on_conflict` in the worktree, left mid-merge of the branch's tip into the
    /// item's head; then commits the resolution. `Err` says why it was not resolved.
    #[allow(clippy::too_many_arguments)]
    async fn resolve_conflict(
        &self,
        item: &Item,
        number: u32,
        command: &mmm_spec::CommandTemplate,
        paths: &[String],
        tip: &str,
        head: &str,
        end: &mut AttemptEnd,
    ) -> Result<(), String> {
        let run = &self.run;
        let Some(isolated) = run.isolated() else {
            return Err("the worktrees are not set up".into());
        };
        let (pool, agent, at) = (isolated.pool.clone(), self.agent, tip.to_string());
        retried(move || pool.start_conflict_merge(agent, &at))
            .await
            .map_err(|e| format!("could not start the merge for on_conflict: {e}"))?;
        let plan = run.plan();
        let ctx = RenderContext {
            item: Some(&item.value),
            item_key: Some(&item.key),
            seq: 0,
            slot: self.agent + 1,
            env: &plan.env,
            map: None,
        };
        let rendered = command
            .render(&ctx)
            .map_err(|e| format!("on_conflict could not be rendered: {e}"))?;
        let path = isolated.pool.work_dir(self.agent);
        let mut env = run.command_env(Some((item, number)), &self.name(), "on_conflict");
        env.push(("MMM_WORKTREE".into(), path.display().to_string()));
        env.push(("MMM_BRANCH".into(), isolated.pool.branch().to_string()));
        env.push(("MMM_CONFLICT_PATHS".into(), paths.join("\n")));
        env.push(("MMM_MERGE_TIP".into(), tip.to_string()));
        env.push(("MMM_ITEM_HEAD".into(), head.to_string()));
        let request = CommandRequest {
            command: rendered,
            env,
            cwd: path,
            timeout: plan.map.timeout,
            keep_output: run.config.show_map_output,
            observer: None,
        };
        let result = run.executor.run(request, run.config.stop.clone()).await;
        end.steps.push(StepRecord {
            name: "on_conflict".to_string(),
            skipped: false,
            duration_us: result.duration.as_micros() as u64,
            exit_code: result.exit.code(),
        });
        super::append_tail(&mut end.stdout, &result.stdout);
        super::append_tail(&mut end.stderr, &result.stderr);
        if !result.exit.is_success() {
            return Err(format!("on_conflict {}", result.exit.describe()));
        }
        let (pool, agent, key) = (isolated.pool.clone(), self.agent, item.key.clone());
        let left = retried(move || pool.finish_conflict_merge(agent, &key))
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

/// An attempt that ran nothing because its merge is already on the branch.
pub(super) fn landed_end() -> AttemptEnd {
    AttemptEnd {
        outcome: AttemptOutcome::Succeeded,
        all_skipped: false,
        retryable: true,
        infrastructure: false,
        exit_code: None,
        error: None,
        steps: Vec::new(),
        stdout: b"already merged into the integration branch (found its merge commit)\n".to_vec(),
        stderr: Vec::new(),
        duration: Duration::ZERO,
    }
}
