//! The map phase's agents: [`Map`] is what they share once the map starts (the run, the
//! [`WorkSource`] they take items from, the worktree pool under `map.isolation: worktree`, how
//! they are named), and [`ClaimedMap`] the claims around a map whose items are claimed
//! through the store (scale-out), for the job's owner and workers alike.

use std::sync::Arc;

use tokio::task::JoinHandle;

use crate::Executor;
use crate::agent::{Agent, AgentEnd};
use crate::claim::{ClaimOptions, ClaimStats, Claims};
use crate::isolated::Isolated;
use crate::phase::Halt;
use crate::run::Run;
use crate::source::WorkSource;

/// What the agents of a map share.
pub(crate) struct Map<E, S> {
    pub(crate) run: Arc<Run<E>>,
    pub(crate) source: Arc<S>,
    /// The worktree pool and merge queue (`map.isolation: worktree`), opened for this map.
    pub(crate) isolated: Option<Isolated>,
    /// Agents are named `PREFIX/N` (a worker); `None`: `agent-N`.
    agent_prefix: Option<String>,
}

impl<E: Executor, S: WorkSource> Map<E, S> {
    pub(crate) fn new(
        run: Arc<Run<E>>,
        source: Arc<S>,
        isolated: Option<Isolated>,
        agent_prefix: Option<String>,
    ) -> Arc<Self> {
        Arc::new(Map {
            run,
            source,
            isolated,
            agent_prefix,
        })
    }

    /// Under a start rate (`map.rate`, `--rate`; `--delay` is one start per delay): reserves
    /// the next start from the job's schedule in the store, which every process of the job
    /// shares, and waits for it. Returns false when the run stops meanwhile (the item is then
    /// left for later, unstarted). A store that cannot be reached now costs this start one
    /// interval's wait, so the rate still holds for this process.
    pub(crate) async fn wait_to_start(&self) -> bool {
        let Some(rate) = self.run.plan.map.start_rate() else {
            return true;
        };
        let (job, interval) = (self.run.job, rate.interval());
        let wait = self
            .run
            .blocking(move |s| s.reserve_start(job, interval))
            .await
            .unwrap_or(interval);
        if wait.is_zero() {
            return !self.stopping();
        }
        let mut stop = self.run.stop.clone();
        let mut steering = self.run.steering.subscribe();
        let until = tokio::time::Instant::now() + wait;
        loop {
            if self.stopping() {
                return false;
            }
            tokio::select! {
                () = tokio::time::sleep_until(until) => return !self.stopping(),
                changed = stop.changed() => if changed.is_err() { return false },
                changed = steering.changed() => if changed.is_err() { return false },
            }
        }
    }

    /// True once a stop was requested, or git kept failing under worktree isolation (the run
    /// stops, resumable).
    pub(crate) fn stopping(&self) -> bool {
        self.run.stopping() || self.isolated.as_ref().is_some_and(Isolated::is_broken)
    }

    /// True when the map ran to its end: not stopped, and every write went to the writer.
    pub(crate) fn ran_to_its_end(&self) -> bool {
        !self.stopping() && !self.run.writer.is_failed()
    }

    /// The name of agent `agent` (0-based).
    pub(crate) fn agent_name(&self, agent: usize) -> String {
        agent_name(self.agent_prefix.as_deref(), agent)
    }

    /// Runs the agents until each runs out of items, or the job stops: as many as the run's
    /// steering says, started at once when a scale up asks for more (a scale down retires
    /// agents after their item, see [`Agent::work`]).
    pub(crate) async fn work(self: &Arc<Self>) {
        let mut steering = self.run.steering.subscribe();
        let mut tasks = tokio::task::JoinSet::new();
        let mut working = std::collections::BTreeSet::new();
        // Once an agent found no more items, or the run stops, no agent is started again.
        let mut over = false;
        loop {
            let agents = steering.borrow_and_update().agents;
            if !over && !self.stopping() {
                for agent in 0..agents {
                    if working.insert(agent) {
                        tasks.spawn(Agent::new(self.clone(), agent).work());
                    }
                }
            }
            if tasks.is_empty() {
                break;
            }
            tokio::select! {
                ended = tasks.join_next() => match ended {
                    Some(Ok((agent, end))) => {
                        working.remove(&agent);
                        over |= end != AgentEnd::Retired;
                    }
                    // A panicked agent: the others go on (its item is left for a resume).
                    Some(Err(_)) => {}
                    None => break,
                },
                changed = steering.changed() => if changed.is_err() { over = true },
            }
        }
    }
}

/// The name of agent `agent` (0-based): `PREFIX/N` (a worker), else `agent-N`.
pub(crate) fn agent_name(prefix: Option<&str>, agent: usize) -> String {
    match prefix {
        Some(prefix) => format!("{prefix}/{}", agent + 1),
        None => format!("agent-{}", agent + 1),
    }
}

/// A map whose items are claimed through the store, and the renewal of its lease.
pub(crate) struct ClaimedMap<E> {
    map: Arc<Map<E, Claims>>,
    renewal: JoinHandle<()>,
}

impl<E: Executor> ClaimedMap<E> {
    /// Starts claiming for `run` (the renewal starts now; the agents with [`ClaimedMap::map`]).
    pub(crate) fn start(run: &Arc<Run<E>>, options: ClaimOptions) -> Self {
        let prefix = options.agent_prefix.clone();
        let claims = Arc::new(Claims::new(
            run.store.clone(),
            run.outages.clone(),
            run.job,
            options,
            run.stop.clone(),
        ));
        let renewal = claims.spawn_renewal();
        ClaimedMap {
            map: Map::new(run.clone(), claims, None, prefix),
            renewal,
        }
    }

    /// The agents' map.
    pub(crate) fn map(&self) -> &Arc<Map<E, Claims>> {
        &self.map
    }

    /// Once the agents ended: commits the attempts that ended, then gives back what was not
    /// started. Returns the claim figures, and how the map ended: interrupted by a stop
    /// request, or broken by a store failure.
    pub(crate) async fn end(self) -> (ClaimStats, Result<(), Halt>) {
        self.renewal.abort();
        let claims = &self.map.source;
        // Attempts ended are committed before what was not started is given back.
        if let Err(e) = self.map.run.flush().await {
            return (claims.stats(), Err(e.into()));
        }
        let released = claims.release().await;
        let stats = claims.stats();
        if let Some(failure) = claims.take_failure() {
            return (stats, Err(failure.into()));
        }
        if let Err(e) = released {
            return (stats, Err(e.into()));
        }
        if self.map.stopping() {
            return (stats, Err(Halt::Interrupted));
        }
        (stats, Ok(()))
    }
}
