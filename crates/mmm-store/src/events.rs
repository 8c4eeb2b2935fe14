//! Reading a job's event log: history from a sequence number, then live, from any process.
//!
//! Every event is a row in the store with a store-wide increasing sequence number, committed
//! by the runner's writer in the same transaction as the change it describes. A
//! [`Subscription`] therefore needs no separate live channel: it reads the rows after the last
//! sequence number it delivered, and when there are none it waits and reads again. History and
//! live events come from the same query, so nothing is lost or repeated at the switch from one
//! to the other, and a reader in another process (`mmm events --follow`) sees exactly what an
//! in-process one sees.
//!
//! This relies on events of a job becoming visible in sequence order, which holds for SQLite
//! (one writer at a time: a transaction that took a number commits before the next one can
//! take one) and for PostgreSQL (every transaction that records events of a job takes the job's
//! row lock before it takes a number, and holds it to its commit). Waiting between reads is
//! [`EventReads::wait_for_events`](crate::EventReads::wait_for_events): a NOTIFY on PostgreSQL, a sleep of [`POLL_INTERVAL`] on SQLite.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::{EventRecord, Store, StoreError};
use mmm_core::event::EventKind;
use mmm_core::job::{JobId, JobStatus};

/// How often a waiting subscription looks for new events.
pub const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// How many events one read returns at most.
const PAGE: usize = 1_000;

/// Which events a subscription delivers. Empty lists mean "all".
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    /// Event kinds (`item_completed`) or categories (`item`): an event passes when its kind or
    /// its kind's category is listed.
    pub types: Vec<String>,
    /// Only events about this item key.
    pub item: Option<String>,
}

impl EventFilter {
    /// Checks that every type names a kind or a category.
    pub fn validate(&self) -> Result<(), String> {
        for t in &self.types {
            if t.parse::<EventKind>().is_err() && !EventKind::CATEGORIES.contains(&t.as_str()) {
                let kinds: Vec<&str> = EventKind::ALL.iter().map(|k| k.as_str()).collect();
                return Err(format!(
                    "unknown event type `{t}`: use a category ({}) or a kind ({})",
                    EventKind::CATEGORIES.join(", "),
                    kinds.join(", ")
                ));
            }
        }
        Ok(())
    }

    /// Whether `event` passes.
    pub fn accepts(&self, event: &EventRecord) -> bool {
        let type_ok = self.types.is_empty()
            || self.types.iter().any(|t| {
                *t == event.event.kind_name()
                    || event.event.kind().is_some_and(|kind| kind.category() == t)
            });
        let item_ok = self
            .item
            .as_ref()
            .is_none_or(|key| event.item_key.as_deref() == Some(key.as_str()));
        type_ok && item_ok
    }
}

/// Why a subscription ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// The job is not running (its run ended, or it was not running to begin with) and every
    /// event recorded for it was read.
    Stopped(JobStatus),
    /// The job says `running` but its owner process is gone (killed): it can be resumed.
    OwnerGone,
}

/// A reader of one job's events: history after a sequence number, then live.
pub struct Subscription {
    store: Arc<dyn Store>,
    job: JobId,
    filter: EventFilter,
    /// The last sequence number read (delivered or filtered out).
    after: i64,
    end: Option<End>,
    /// When the owner was last checked to be alive.
    owner_checked: Option<Instant>,
    /// Events read but not yet returned by the iterator.
    buffer: VecDeque<EventRecord>,
}

impl Subscription {
    /// Reads `job`'s events with a sequence number above `after` (0: from the beginning).
    pub fn new(store: Arc<dyn Store>, job: JobId, after: i64, filter: EventFilter) -> Self {
        Subscription {
            store,
            job,
            filter,
            after,
            end: None,
            owner_checked: None,
            buffer: VecDeque::new(),
        }
    }

    /// The last sequence number read.
    pub fn position(&self) -> i64 {
        self.after
    }

    /// Why the subscription ended, once it has.
    pub fn ended(&self) -> Option<&End> {
        self.end.as_ref()
    }

    /// Every event recorded since the last call that passes the filter, without waiting.
    /// When there is none, it decides whether more can come: [`Subscription::ended`] is set
    /// once the job is not running and everything was read.
    pub fn poll(&mut self) -> Result<Vec<EventRecord>, StoreError> {
        let mut out = Vec::new();
        loop {
            let page = self.store.events(self.job, self.after, PAGE)?;
            let full = page.len() == PAGE;
            for event in page {
                self.after = event.seq;
                if self.filter.accepts(&event) {
                    out.push(event);
                }
            }
            if !full {
                break;
            }
        }
        if out.is_empty() && self.end.is_none() {
            self.check_job()?;
        }
        Ok(out)
    }

    /// Waits until there are events to deliver or the subscription ends, looking every
    /// [`POLL_INTERVAL`]. Returns an empty list only once it ended.
    pub fn wait(&mut self) -> Result<Vec<EventRecord>, StoreError> {
        loop {
            let events = self.poll()?;
            if !events.is_empty() || self.end.is_some() {
                return Ok(events);
            }
            // PostgreSQL wakes as soon as an event of the job commits (LISTEN/NOTIFY);
            // SQLite sleeps the interval.
            self.store.wait_for_events(self.job, POLL_INTERVAL);
        }
    }

    /// Nothing new was read: decides whether the job can still record events. A run records
    /// its final status and its `job_finished` event in one transaction, so once the status
    /// is not `running` a last read gets everything. The owner's liveness is checked at most
    /// once a second (it reads the process table).
    fn check_job(&mut self) -> Result<(), StoreError> {
        let job = self.store.job(self.job)?;
        let more = |s: &Self| -> Result<bool, StoreError> {
            Ok(!s.store.events(s.job, s.after, 1)?.is_empty())
        };
        match job.status {
            // Recorded but not yet started by its runner: wait for it, unless it died.
            JobStatus::Running | JobStatus::Pending => {
                let due = self
                    .owner_checked
                    .is_none_or(|at| at.elapsed() >= Duration::from_secs(1));
                if due {
                    self.owner_checked = Some(Instant::now());
                    let host = crate::owner::host_name();
                    let alive =
                        crate::owner::owner_process_alive(&job, mmm_core::job::now_ms(), &host);
                    if !alive && !more(self)? {
                        self.end = Some(End::OwnerGone);
                    }
                }
            }
            status => {
                if !more(self)? {
                    self.end = Some(End::Stopped(status));
                }
            }
        }
        Ok(())
    }
}

impl Iterator for Subscription {
    type Item = Result<EventRecord, StoreError>;

    /// One event at a time, waiting for live ones; `None` once the subscription ended.
    fn next(&mut self) -> Option<Self::Item> {
        if self.buffer.is_empty() {
            match self.wait() {
                Ok(events) => self.buffer.extend(events),
                Err(e) => return Some(Err(e)),
            }
        }
        self.buffer.pop_front().map(Ok)
    }
}
