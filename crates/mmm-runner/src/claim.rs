//! Scale-out: where agents get their items when several processes share one job's map (a
//! PostgreSQL store, `mmm run` as the coordinator plus any number of `mmm worker`s).
//!
//! Items are claimed from the store in small batches under a lease
//! ([`mmm_store::Claims::claim_items`]: `FOR UPDATE SKIP LOCKED`, so no two processes get
//! the same item). A renewal task extends the lease of everything this process holds every
//! third of the lease; an item whose claimer died (stopped renewing) is claimable again once
//! its lease runs out, its attempt in flight closed `interrupted`. A claimed item not started
//! while its lease may have run out is not started blindly: another process may already have
//! it. It is set aside and confirmed with the store first ([`mmm_store::Claims::confirm_claims`]),
//! which gives back only the items still held here; the others are dropped. (Dropping them
//! without asking would leave them claimed by this process, renewed by its renewals, and
//! run by nobody.) When nothing is claimable, one agent polls the store until the
//! map is done (every item finished by anyone), the job stops running, or a stop request.
//!
//! `Claims` is the work source of the map then, for the job's owner and for workers alike.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::source::{Taken, Work, WorkSource};
use crate::{RunError, StopLevel};
use mmm_core::job::{JobId, JobStatus, Phase, now_ms};
use mmm_spec::Item;
use mmm_store::{Outages, Store};

/// How a process claims items (see the module docs).
#[derive(Debug, Clone)]
pub struct ClaimOptions {
    /// Who holds the claims: unique per process (`HOST:PID`).
    pub claimer: String,
    /// How long a claim holds without renewal; renewed every third of it.
    pub lease: Duration,
    /// Items per claim: a few per agent, so that no process hoards the last items.
    pub batch: usize,
    /// How often to look again while nothing is claimable.
    pub poll: Duration,
    /// Agents are named `PREFIX/N` (a worker: `--name`, default `HOST:PID`); `None`: `agent-N`.
    pub agent_prefix: Option<String>,
}

/// The lease when none is given: long enough to ride out a slow store, short enough that a
/// dead worker's items come back soon.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(30);

impl ClaimOptions {
    /// Options for this process on `host` with `agents` agents and the given lease.
    pub fn new(host: &str, agents: usize, lease: Duration, agent_prefix: Option<String>) -> Self {
        ClaimOptions {
            claimer: format!("{host}:{}", std::process::id()),
            lease: lease.max(Duration::from_millis(300)),
            batch: (agents * 2).clamp(1, 64),
            poll: Duration::from_millis(200),
            agent_prefix,
        }
    }
}

/// Claim latency figures, for `mmm worker`'s summary and the benchmark.
#[derive(Debug, Clone, Copy, Default)]
pub struct ClaimStats {
    /// Claims made (empty ones included).
    pub claims: u64,
    /// Items claimed.
    pub items: u64,
    /// Median claim latency.
    pub p50: Duration,
    /// 99th percentile claim latency.
    pub p99: Duration,
    /// Items whose previous claimer's lease had run out.
    pub taken_over: u64,
}

/// The claimed items of one process in one job, and the lease renewal.
pub(crate) struct Claims {
    store: Arc<dyn Store>,
    /// Every claim, renewal and release rides out an unavailable store.
    outages: Arc<Outages>,
    job: JobId,
    options: ClaimOptions,
    /// Claimed, not yet started, with when they were claimed.
    buffer: Mutex<VecDeque<(Work, Instant)>>,
    /// Claimed so long ago that the lease may have run out: to confirm before starting.
    stale: Mutex<Vec<Work>>,
    /// Every item this process holds: claimed and not yet ended here (buffered, stale or in
    /// an agent's hands). Renewals extend only these: a claim whose commit the connection
    /// lost may have given this process items it never heard of, and their lease must run
    /// out for anyone to claim them again.
    held: Mutex<std::collections::BTreeSet<u64>>,
    /// One agent claims (or polls) at a time.
    turn: tokio::sync::Mutex<()>,
    /// When the last renewal that succeeded started.
    renewed: Mutex<Option<Instant>>,
    done: AtomicBool,
    failure: Mutex<Option<RunError>>,
    stop: watch::Receiver<StopLevel>,
    latencies: Mutex<Vec<Duration>>,
    items: std::sync::atomic::AtomicU64,
    taken_over: std::sync::atomic::AtomicU64,
}

impl Claims {
    pub(crate) fn new(
        store: Arc<dyn Store>,
        outages: Arc<Outages>,
        job: JobId,
        options: ClaimOptions,
        stop: watch::Receiver<StopLevel>,
    ) -> Self {
        Claims {
            store,
            outages,
            job,
            options,
            buffer: Mutex::default(),
            stale: Mutex::default(),
            held: Mutex::default(),
            turn: tokio::sync::Mutex::new(()),
            renewed: Mutex::new(None),
            done: AtomicBool::new(false),
            failure: Mutex::new(None),
            stop,
            latencies: Mutex::default(),
            items: Default::default(),
            taken_over: Default::default(),
        }
    }

    fn stopping(&self) -> bool {
        *self.stop.borrow() != StopLevel::Run
    }

    fn failed(&self) -> bool {
        lock(&self.failure).is_some()
    }

    fn fail(&self, error: RunError) {
        lock(&self.failure).get_or_insert(error);
    }

    /// The error that ended the claims, if one did.
    pub(crate) fn take_failure(&self) -> Option<RunError> {
        lock(&self.failure).take()
    }

    /// Runs a blocking store call off the async workers.
    async fn blocking<T: Send + 'static>(
        &self,
        call: impl Fn(&dyn Store) -> Result<T, mmm_store::StoreError> + Send + 'static,
    ) -> Result<T, RunError> {
        crate::run::riding_outages(self.store.clone(), self.outages.clone(), self.job, call).await
    }

    /// True while a claim made at `claimed` is surely still ours: well inside its lease, or
    /// inside the lease of the last renewal.
    fn fresh(&self, claimed: Instant) -> bool {
        let since = lock(&self.renewed).map_or(claimed, |renewed| renewed.max(claimed));
        since.elapsed() < self.options.lease * 2 / 3
    }

    fn pop(&self) -> Option<Work> {
        let mut buffer = lock(&self.buffer);
        while let Some((work, claimed)) = buffer.pop_front() {
            if self.fresh(claimed) {
                return Some(work);
            }
            // Its lease may have run out: another process may run it. Not started before the
            // store confirms it is still ours.
            lock(&self.stale).push(work);
        }
        None
    }

    /// Asks the store which of the items set aside as stale are still held here; puts those
    /// back at the front of the buffer, under the lease the confirmation extended. Returns how
    /// many came back.
    async fn confirm_stale(&self) -> Result<usize, RunError> {
        let stale = std::mem::take(&mut *lock(&self.stale));
        if stale.is_empty() {
            return Ok(0);
        }
        let (job, claimer, lease) = (self.job, self.options.claimer.clone(), self.options.lease);
        let indices: Vec<u64> = stale.iter().map(|work| work.index).collect();
        let started = Instant::now();
        let held = self
            .blocking(move |store| {
                store.confirm_claims(job, &claimer, &indices, now_ms() + lease.as_millis() as i64)
            })
            .await?;
        let mut buffer = lock(&self.buffer);
        let (confirmed, lost): (Vec<Work>, Vec<Work>) = stale
            .into_iter()
            .partition(|work| held.contains(&work.index));
        let mut holding = lock(&self.held);
        for work in &lost {
            holding.remove(&work.index);
        }
        drop(holding);
        let count = confirmed.len();
        for work in confirmed.into_iter().rev() {
            buffer.push_front((work, started));
        }
        Ok(count)
    }

    /// The next item for an agent; `None` when the map is done, the job stopped running, a
    /// stop was requested, or the store failed.
    async fn take(&self) -> Option<Work> {
        loop {
            if self.stopping() || self.failed() || self.done.load(Ordering::Acquire) {
                return None;
            }
            if let Some(work) = self.pop() {
                return Some(work);
            }
            let _turn = self.turn.lock().await;
            if self.stopping() || self.failed() || self.done.load(Ordering::Acquire) {
                return None;
            }
            if let Some(work) = self.pop() {
                return Some(work);
            }
            match self.confirm_stale().await {
                Ok(0) => {}
                Ok(_) => continue,
                Err(error) => {
                    self.fail(error);
                    return None;
                }
            }
            match self.claim().await {
                Ok(0) => {}
                Ok(_) => continue,
                Err(error) => {
                    self.fail(error);
                    return None;
                }
            }
            match self.map_done().await {
                Ok(true) => {
                    self.done.store(true, Ordering::Release);
                    return None;
                }
                Ok(false) => {}
                Err(error) => {
                    self.fail(error);
                    return None;
                }
            }
            let mut stop = self.stop.clone();
            tokio::select! {
                _ = tokio::time::sleep(self.options.poll) => {}
                _ = stop.wait_for(|level| *level != StopLevel::Run) => return None,
            }
        }
    }

    /// Claims a batch into the buffer; returns how many items came.
    async fn claim(&self) -> Result<usize, RunError> {
        let (job, claimer, batch, lease) = (
            self.job,
            self.options.claimer.clone(),
            self.options.batch,
            self.options.lease,
        );
        let started = Instant::now();
        let claimed = self
            .blocking(move |store| {
                let at = now_ms();
                store.claim_items(job, &claimer, batch, at + lease.as_millis() as i64, at)
            })
            .await?;
        lock(&self.latencies).push(started.elapsed());
        let count = claimed.len();
        self.items
            .fetch_add(count as u64, std::sync::atomic::Ordering::Relaxed);
        let taken = claimed.iter().filter(|c| c.lease_expired).count() as u64;
        self.taken_over
            .fetch_add(taken, std::sync::atomic::Ordering::Relaxed);
        lock(&self.held).extend(claimed.iter().map(|c| c.index));
        let mut buffer = lock(&self.buffer);
        buffer.extend(claimed.into_iter().map(|c| {
            let value =
                serde_json::from_str(&c.value).unwrap_or(serde_json::Value::String(c.value));
            let work = Work {
                index: c.index,
                item: Item { key: c.key, value },
                attempts_used: c.attempts,
                next_number: c.last_number + 1,
            };
            (work, started)
        }));
        Ok(count)
    }

    /// True when nothing is left to claim, ever: every item finished, or the job no longer
    /// running its map.
    async fn map_done(&self) -> Result<bool, RunError> {
        let job = self.job;
        let record = self.blocking(move |store| store.job(job)).await?;
        let c = record.counts;
        Ok(record.status != JobStatus::Running
            || record.phase != Some(Phase::Map)
            || c.pending + c.failed + c.running == 0)
    }

    /// Renews the lease of everything this process holds, every third of the lease, until
    /// the task is aborted. A failed renewal ends the claims (the agents stop taking items).
    pub(crate) fn spawn_renewal(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let claims = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(claims.options.lease / 3);
            tick.tick().await;
            loop {
                tick.tick().await;
                let started = Instant::now();
                let store = claims.store.clone();
                let outages = claims.outages.clone();
                let (job, claimer, lease) = (
                    claims.job,
                    claims.options.claimer.clone(),
                    claims.options.lease,
                );
                let held: Vec<u64> = lock(&claims.held).iter().copied().collect();
                let renewed = tokio::task::spawn_blocking(move || {
                    outages.retry(|| {
                        let until = now_ms() + lease.as_millis() as i64;
                        store.renew_claims(job, &claimer, &held, until)
                    })
                })
                .await;
                match renewed {
                    Ok(Ok(_)) => *lock(&claims.renewed) = Some(started),
                    Ok(Err(source)) => {
                        claims.fail(RunError::Store { job, source });
                        return;
                    }
                    Err(_) => return,
                }
            }
        })
    }

    /// Gives back what this process holds and did not start (call after the writer flushed).
    pub(crate) async fn release(&self) -> Result<(), RunError> {
        lock(&self.buffer).clear();
        lock(&self.stale).clear();
        lock(&self.held).clear();
        let (job, claimer) = (self.job, self.options.claimer.clone());
        self.blocking(move |store| store.release_claims(job, &claimer))
            .await?;
        Ok(())
    }

    /// Claim counts and latencies so far.
    pub(crate) fn stats(&self) -> ClaimStats {
        let mut latencies = lock(&self.latencies).clone();
        latencies.sort();
        let at = |q: f64| {
            if latencies.is_empty() {
                Duration::ZERO
            } else {
                latencies[((latencies.len() - 1) as f64 * q).round() as usize]
            }
        };
        ClaimStats {
            claims: latencies.len() as u64,
            items: self.items.load(std::sync::atomic::Ordering::Relaxed),
            p50: at(0.5),
            p99: at(0.99),
            taken_over: self.taken_over.load(std::sync::atomic::Ordering::Relaxed),
        }
    }
}

impl WorkSource for Claims {
    async fn next(&self) -> Option<Taken> {
        let work = self.take().await?;
        Some(Taken { work, waited: None })
    }

    fn ended(&self, index: u64) {
        lock(&self.held).remove(&index);
    }

    fn is_shared(&self) -> bool {
        true
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Every critical section leaves the value consistent: a poisoned lock is still usable.
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use mmm_store::{NewItem, NewJob, Write};

    /// A running job in its map phase with `n` items, in a SQLite store of its own.
    fn job_in_map(n: usize) -> (tempfile::TempDir, Arc<dyn Store>, JobId) {
        let dir = tempfile::tempdir().unwrap();
        let store = mmm_store::open(dir.path().to_str().unwrap(), true).unwrap();
        let job = NewJob {
            id: JobId::new(),
            name: "claims".into(),
            spec: "{}".into(),
            spec_hash: "0".into(),
            source: None,
            max_parallel: 1,
            created_at: now_ms(),
            owner_pid: std::process::id(),
            owner_host: "here".into(),
            origin: None,
        };
        let items: Vec<NewItem> = (0..n)
            .map(|i| NewItem {
                key: format!("item-{i}"),
                value: format!("\"{i}\""),
            })
            .collect();
        store.create_job(&job, &items).unwrap();
        let at = now_ms();
        store
            .apply(&[
                Write::JobStatus {
                    job: job.id,
                    status: JobStatus::Running,
                    at,
                },
                Write::JobPhase {
                    job: job.id,
                    phase: Phase::Map,
                    at,
                },
            ])
            .unwrap();
        (dir, store, job.id)
    }

    /// Items claimed, left unstarted past two thirds of the lease, then renewed (a renewal
    /// that came late): they are still this process's, so they are confirmed and run, not
    /// dropped while the renewals keep them from everyone else.
    #[tokio::test]
    async fn items_left_stale_by_a_late_renewal_are_confirmed_and_run() {
        let (_dir, store, job) = job_in_map(3);
        let options = ClaimOptions {
            claimer: "here:1".into(),
            lease: Duration::from_millis(300),
            batch: 3,
            poll: Duration::from_millis(10),
            agent_prefix: None,
        };
        let (_stop_tx, stop) = watch::channel(StopLevel::Run);
        let outages = Arc::new(Outages::new(mmm_store::DEFAULT_OUTAGE_LIMIT));
        let claims = Claims::new(store.clone(), outages, job, options, stop);
        let first = claims.take().await.expect("an item");
        assert_eq!(first.index, 0);
        // The two others are buffered; let their claim age past two thirds of the lease.
        tokio::time::sleep(Duration::from_millis(250)).await;
        // A renewal lands only now, extending every lease this process holds.
        store
            .renew_claims(job, "here:1", &[0, 1, 2], now_ms() + 60_000)
            .unwrap();
        // The renewal was not seen by `claims` (its own task did not run it): the buffered
        // items look stale, and must be confirmed, not lost.
        let next = tokio::time::timeout(Duration::from_secs(5), claims.take())
            .await
            .expect("take does not poll forever")
            .expect("an item");
        let last = claims.take().await.expect("an item");
        assert_eq!((next.index, last.index), (1, 2));
    }
}
