//! The owner's heartbeat: a task that, at every beat, samples the agents' CPU and memory,
//! folds in what other processes' agents did (scale-out), refreshes the metrics, judges the
//! alert rules, and records the owner heartbeat, a snapshot (spaced out on long runs) and, now
//! and then, a checkpoint. When it stops it hands back its state ([`Pulse`]) for the run's last
//! record.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::alerting::Watch;
use crate::budget;
use crate::others::Others;
use crate::run::Run;
use crate::sampler::Sampler;
use crate::snapshot::{SNAPSHOT_SPAN, snapshot};
use crate::{Executor, OwnerConfig, RunError};
use mmm_core::event::{Checkpoint, Event, StoreUnavailable};
use mmm_core::job::{JobId, Phase, now_ms};
use mmm_core::metrics::Elsewhere;
use mmm_core::snapshot::Snapshot;
use mmm_store::Write;

/// Events read per query when folding in the other processes' agents.
const EVENTS_PAGE: usize = 10_000;

/// The longest the first beat waits for the map's first items (see [`items_known`]).
const FIRST_BEAT_WAIT: Duration = Duration::from_secs(1);

/// The running heartbeat task.
pub(crate) struct Heartbeat<E> {
    job: JobId,
    orders: mpsc::UnboundedSender<Order>,
    task: JoinHandle<Pulse<E>>,
}

/// What the heartbeat is told while it beats.
enum Order {
    /// Scale-out: the map started; follow the other processes' agents from here on.
    Follow(Others),
    /// The run is over.
    Stop,
}

impl<E: Executor> Heartbeat<E> {
    /// Starts beating for `run` (the first beat comes once the first items are known, or
    /// after a second). `prior`: the time earlier runs of the job spent.
    pub(crate) fn start(run: Arc<Run<E>>, config: &OwnerConfig, prior: Duration) -> Self {
        let job = run.job;
        let every = config.heartbeat;
        let (checkpoint_every, snapshot_every) = (config.checkpoint_every, config.snapshot_every);
        let agent_prefix = config.claims.as_ref().and_then(|c| c.agent_prefix.clone());
        let (orders, mut inbox) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            let mut sampler = Sampler::new();
            let last_checkpoint = Instant::now();
            let watch = Watch::new(&run).await;
            let mut pulse = Pulse {
                run,
                prior,
                agent_prefix,
                checkpoint_every,
                snapshot_every,
                watch,
                others: None,
                last_checkpoint,
                last_snapshot: None,
            };
            let first_beat_at = tokio::time::Instant::now() + every.min(FIRST_BEAT_WAIT);
            let run = pulse.run.clone();
            let mut tick = None;
            loop {
                tokio::select! {
                    // Orders first: a stop is not held up by a beat that is due too.
                    biased;
                    order = inbox.recv() => match order {
                        Some(Order::Follow(others)) => pulse.others = Some(others),
                        Some(Order::Stop) | None => return pulse,
                    },
                    _ = next_beat(&run, &mut tick, first_beat_at, every) => {
                        let at = now_ms();
                        // Reading /proc takes a few ms: off the async workers.
                        sampler = {
                            let tracker = pulse.run.tracker.clone();
                            tokio::task::spawn_blocking(move || {
                                sampler.sample(&tracker);
                                sampler
                            })
                            .await
                            .unwrap_or_else(|_| Sampler::new())
                        };
                        pulse.beat(at).await;
                    }
                }
            }
        });
        Heartbeat { job, orders, task }
    }

    /// Scale-out: from now on, fold in what the other processes' agents do.
    pub(crate) fn follow(&self, others: Others) {
        // The task ends only when told to stop: it is there to receive this.
        let _ = self.orders.send(Order::Follow(others));
    }

    /// Stops beating (after the beat under way, if one is) and hands back the state.
    pub(crate) async fn stop(self) -> Result<Pulse<E>, RunError> {
        let _ = self.orders.send(Order::Stop);
        self.task.await.map_err(|source| RunError::Panicked {
            job: self.job,
            source,
        })
    }
}

/// What the heartbeat keeps from beat to beat.
pub(crate) struct Pulse<E> {
    run: Arc<Run<E>>,
    /// Time spent by earlier runs of the job (a resume).
    prior: Duration,
    /// Agents are named `PREFIX/N` in snapshots; `None`: `agent-N`.
    agent_prefix: Option<String>,
    checkpoint_every: Duration,
    snapshot_every: Duration,
    /// The alert rules' state, judged at every beat.
    watch: Watch,
    /// Scale-out: the other processes' agents, followed in the event log from the map's
    /// start.
    others: Option<Others>,
    last_checkpoint: Instant,
    last_snapshot: Option<Instant>,
}

impl<E: Executor> Pulse<E> {
    /// One beat at `at` (epoch ms), once the agents' usage is sampled.
    async fn beat(&mut self, at: i64) {
        self.fold_others().await;
        let run = self.run.clone();
        if self.others.is_some() {
            // The other processes' counters may have brought one to its budget: pause the job
            // now, not when one of this process's agents next takes an item (it may be busy, or
            // have none left to take).
            budget::over_budget(&run);
        }
        let (job, tracker) = (run.job, &run.tracker);
        run.metrics.refresh(
            tracker,
            &self.elsewhere(),
            run.clock.now_ms(),
            now_ms(),
            run.started_ms,
        );
        let agents = tracker.agents();
        let active = self.watch.look(&run, &agents);
        let snapshot = snapshot(
            &run,
            self.agent_prefix.as_deref(),
            self.others.as_ref(),
            agents,
            active,
        );
        let mut writes = vec![Write::Heartbeat {
            job,
            at,
            duration_ms: self.total_duration().as_millis() as i64,
        }];
        writes.extend(outages_ridden_out(&run));
        let spacing = self
            .snapshot_every
            .max(run.started.elapsed() / SNAPSHOT_SPAN);
        if self
            .last_snapshot
            .is_none_or(|last| last.elapsed() >= spacing)
        {
            self.last_snapshot = Some(Instant::now());
            writes.push(Write::Snapshot {
                job,
                at,
                payload: Box::new(snapshot),
            });
        }
        if self.last_checkpoint.elapsed() >= self.checkpoint_every {
            self.last_checkpoint = Instant::now();
            writes.extend(checkpoint(job, Some(Phase::Map), "interval"));
        }
        run.writer.send_group(writes);
    }

    /// Total time spent on the job: earlier runs plus this one.
    pub(crate) fn total_duration(&self) -> Duration {
        self.prior + self.run.started.elapsed()
    }

    /// The run is over: every alert still active is resolved.
    pub(crate) fn close_alerts(&mut self) {
        self.watch.close(&self.run);
    }

    /// The run's last snapshot, at `at` (epoch ms): so that whoever reads the newest one of a
    /// finished job sees its final counts and metrics (no ETA left over from the last beat).
    pub(crate) async fn last_snapshot(&mut self, at: i64) -> Snapshot {
        let run = self.run.clone();
        self.fold_others().await;
        run.metrics.refresh(
            &run.tracker,
            &self.elsewhere(),
            run.clock.now_ms(),
            at,
            run.started_ms,
        );
        snapshot(
            &run,
            self.agent_prefix.as_deref(),
            self.others.as_ref(),
            run.tracker.agents(),
            Vec::new(),
        )
    }

    /// Scale-out, the owner: folds what other processes' agents did since the last look into
    /// the tracker and the metrics (`others.rs`), so that the owner's snapshots show the whole
    /// job. The job's counts are read first: every item they count finished has its event in
    /// the log read after them, so the tracker is at least at those counts; items it still
    /// lacks finished before the log was followed (the gap at a resume) and count as
    /// restored, never in a rate.
    async fn fold_others(&mut self) {
        let run = &self.run;
        let Some(others) = self.others.as_mut() else {
            return;
        };
        let job = run.job;
        let mut after = others.after();
        // Not waiting for an unavailable store: the beat goes on (its alerts say so), and the
        // next one folds in what this one missed.
        let Ok(record) = run.blocking_once(move |s| s.job(job)).await else {
            return;
        };
        loop {
            let Ok(events) = run
                .blocking_once(move |s| s.events(job, after, EVENTS_PAGE))
                .await
            else {
                return;
            };
            let offset = run.clock.now_ms() - now_ms();
            others.fold(&events, &run.tracker, &run.metrics, offset);
            after = others.after();
            run.tracker
                .set_elsewhere(others.working() as u64, others.in_flight());
            if events.len() < EVENTS_PAGE {
                break;
            }
        }
        let (c, p) = (record.counts, run.tracker.progress());
        run.tracker.preload(
            c.completed.saturating_sub(p.completed),
            c.dead_lettered.saturating_sub(p.dead_lettered),
            c.skipped.saturating_sub(p.skipped),
        );
    }

    /// What the other processes' agents are doing, for the ETA (nothing without scale-out).
    /// Their times are the other hosts' wall clocks (their events'), so measured against the
    /// wall clock, not the run's.
    fn elsewhere(&self) -> Elsewhere {
        self.others
            .as_ref()
            .map(|o| o.elsewhere(self.run.tracker.agent_count(), now_ms()))
            .unwrap_or_default()
    }
}

/// An event for each outage of the store the run rode out since the last beat.
fn outages_ridden_out<E>(run: &Run<E>) -> Vec<Write> {
    run.outages
        .take_ended()
        .into_iter()
        .map(|outage| {
            let event = StoreUnavailable {
                duration_ms: outage.duration.as_millis() as u64,
                error: outage.error,
            };
            Write::event(run.job, None, Event::StoreUnavailable(event))
        })
        .collect()
}

/// A checkpoint and its event.
pub(crate) fn checkpoint(job: JobId, phase: Option<Phase>, reason: &str) -> [Write; 2] {
    [
        Write::Checkpoint {
            job,
            at: now_ms(),
            phase,
            reason: reason.to_string(),
        },
        Write::event(
            job,
            None,
            Event::Checkpoint(Checkpoint {
                phase,
                reason: reason.to_string(),
            }),
        ),
    ]
}

/// Waits for the next beat: the first once the run knows some of its items (or at
/// `first_at`), then one every `every` from there.
async fn next_beat<E: Executor>(
    run: &Run<E>,
    tick: &mut Option<tokio::time::Interval>,
    first_at: tokio::time::Instant,
    every: Duration,
) {
    match tick {
        Some(tick) => {
            tick.tick().await;
        }
        None => {
            items_known(run, first_at).await;
            // An interval's first tick is at once: that is this beat.
            let mut started = tokio::time::interval(every);
            started.tick().await;
            *tick = Some(started);
        }
    }
}

/// Waits, at most until `deadline`, until the run knows some of its items (their count is
/// read in the first moments of a map, or restored at once on a resume): a snapshot taken
/// before them shows no total and so no ETA, not even the one earlier runs of the job give (the
/// first snapshot of a job that ran before shows an estimate). A setup phase or an empty input
/// just makes the first beat come at the deadline.
async fn items_known<E: Executor>(run: &Run<E>, deadline: tokio::time::Instant) {
    while run.tracker.progress().total == 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
