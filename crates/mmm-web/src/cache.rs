//! Reads shared by every client: a job's state and the jobs list, each read from the store at
//! most once per [`TTL`] however many WebSocket clients follow them, so a hundred clients cost
//! the store (and a runner writing to it) about what one costs.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{ApiError, JobSummary};
use mmm_core::job::JobId;
use mmm_store::job_state::JobState;
use mmm_store::{EventRecord, JobQuery, Store};

/// How long a read is reused.
pub(super) const TTL: Duration = Duration::from_millis(100);

/// One cached value; its lock is held while it is read again, so concurrent clients wait for
/// one read instead of each making their own.
struct Slot<T> {
    value: Mutex<Option<(Instant, Arc<T>)>>,
}

impl<T> Default for Slot<T> {
    fn default() -> Self {
        Slot {
            value: Mutex::new(None),
        }
    }
}

impl<T> Slot<T> {
    fn get(&self, load: impl FnOnce() -> Result<T, ApiError>) -> Result<Arc<T>, ApiError> {
        let mut value = self.value.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((at, v)) = value.as_ref()
            && at.elapsed() < TTL
        {
            return Ok(v.clone());
        }
        let fresh = Arc::new(load()?);
        *value = Some((Instant::now(), fresh.clone()));
        Ok(fresh)
    }
}

/// How long a read of the newest events is reused: shorter than [`TTL`], since new events are
/// what a client waits for (one indexed query, usually empty).
pub(super) const EVENTS_TTL: Duration = Duration::from_millis(10);

/// Events a job's shared log keeps, at most.
const LOG_EVENTS: usize = 5_000;
/// Events one read of the store returns at most.
const PAGE: usize = 1_000;

/// The newest events of one job, read from the store at most once per [`EVENTS_TTL`] for
/// every client: it holds every event with `base < seq <= last`.
#[derive(Default)]
struct EventLog {
    events: VecDeque<EventRecord>,
    base: i64,
    last: i64,
    read_at: Option<Instant>,
}

/// The shared reads of one server.
#[derive(Default)]
pub(super) struct Cache {
    jobs: Mutex<HashMap<JobId, Arc<Slot<JobState>>>>,
    logs: Mutex<HashMap<JobId, Arc<Mutex<EventLog>>>>,
    lists: Mutex<HashMap<JobQuery, Arc<Slot<Vec<JobSummary>>>>>,
}

/// Different job lists (filters) the cache keeps at most; past it, it starts again.
const LISTS: usize = 64;

impl Cache {
    /// The state of `job`, at most [`TTL`] old.
    pub(super) fn job_state(
        &self,
        store: &dyn Store,
        job: JobId,
    ) -> Result<Arc<JobState>, ApiError> {
        let slot = self
            .jobs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(job)
            .or_default()
            .clone();
        slot.get(|| Ok(JobState::load(store, job)?))
    }

    /// The summaries of the jobs `query` matches, at most [`TTL`] old: every client with the
    /// same filters shares one read.
    pub(super) fn jobs(
        &self,
        store: &dyn Store,
        query: &JobQuery,
    ) -> Result<Arc<Vec<JobSummary>>, ApiError> {
        let slot = {
            let mut lists = self.lists.lock().unwrap_or_else(|e| e.into_inner());
            if lists.len() >= LISTS && !lists.contains_key(query) {
                lists.clear();
            }
            lists.entry(query.clone()).or_default().clone()
        };
        slot.get(|| Ok(JobSummary::load_matching(store, query)?))
    }

    /// At most `limit` of `job`'s events after `after`, oldest first, from a read of the store
    /// at most `max_age` old ([`EVENTS_TTL`] for a client catching up; zero for a hub woken by
    /// a commit, which must not be answered from a read made before it): from the shared log
    /// when it reaches back to `after`, else straight from the store.
    pub(super) fn events_after(
        &self,
        store: &dyn Store,
        job: JobId,
        after: i64,
        limit: usize,
        max_age: Duration,
    ) -> Result<Vec<EventRecord>, ApiError> {
        let log = self
            .logs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(job)
            .or_default()
            .clone();
        let mut log = log.lock().unwrap_or_else(|e| e.into_inner());
        if log.read_at.is_none() {
            // A new log starts where its first reader stands.
            log.base = after;
            log.last = after;
        }
        if log.read_at.is_none_or(|at| at.elapsed() >= max_age) {
            loop {
                let page = store.events(job, log.last, PAGE)?;
                let full = page.len() == PAGE;
                if let Some(newest) = page.last() {
                    log.last = newest.seq;
                }
                log.events.extend(page);
                if !full {
                    break;
                }
            }
            while log.events.len() > LOG_EVENTS {
                if let Some(dropped) = log.events.pop_front() {
                    log.base = dropped.seq;
                }
            }
            log.read_at = Some(Instant::now());
        }
        if after < log.base {
            return Ok(store.events(job, after, limit)?);
        }
        let start = log.events.partition_point(|e| e.seq <= after);
        Ok(log.events.range(start..).take(limit).cloned().collect())
    }
}
