//! Riding out a store that is unavailable for a while: a PostgreSQL server restarting, failing
//! over or cut off by the network, a SQLite store locked by another process past its busy
//! timeout ([`StoreError::is_unavailable`]).
//!
//! Everything of one run that calls the store (the writer's commits, claims, heartbeats, the
//! control inbox) goes through one [`Outages`]: a call that finds the store unavailable is
//! tried again after a jittered, growing pause (100 ms doubling to 5 s), until it succeeds, or
//! the store has been unavailable for longer than the limit (`--store-outage-limit`), when it
//! fails with [`StoreError::OutageTooLong`] and the run stops, resumable, as after any store
//! failure. Each outage ridden out is kept ([`Outages::take_ended`]) for the runner to record
//! as an event and raise as an alert.

use std::hash::{BuildHasher, Hasher};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::StoreError;

/// How long a run waits for an unavailable store by default before it stops.
pub const DEFAULT_OUTAGE_LIMIT: Duration = Duration::from_secs(5 * 60);

/// The first pause before a call is tried again, doubled after each failure up to
/// [`LONGEST_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(100);
const LONGEST_PAUSE: Duration = Duration::from_secs(5);

/// The store's outages as one run sees them.
#[derive(Debug)]
pub struct Outages {
    limit: Duration,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// When the current outage began and what the first failed call reported.
    current: Option<(Instant, String)>,
    /// Outages ridden out and not taken yet.
    ended: Vec<Outage>,
}

/// An outage ridden out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outage {
    /// From the first call that found the store unavailable to the first that succeeded.
    pub duration: Duration,
    /// What the first failed call reported.
    pub error: String,
}

impl Outages {
    /// Waits out outages up to `limit` long.
    pub fn new(limit: Duration) -> Outages {
        Outages {
            limit,
            state: Mutex::default(),
        }
    }

    /// The longest outage waited out.
    pub fn limit(&self) -> Duration {
        self.limit
    }

    /// Runs `call` until it succeeds or fails for a reason other than an unavailable store;
    /// while the store is unavailable, tries again after a pause, for at most the limit since
    /// the outage began. Blocks the calling thread (a store call does too).
    pub fn retry<T>(
        &self,
        mut call: impl FnMut() -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut pause = FIRST_PAUSE;
        loop {
            match call() {
                Ok(value) => {
                    self.store_answered();
                    return Ok(value);
                }
                Err(error) if error.is_unavailable() => {
                    let since = self.store_unavailable(&error);
                    if since.elapsed() >= self.limit {
                        return Err(StoreError::OutageTooLong {
                            limit: self.limit,
                            source: Box::new(error),
                        });
                    }
                    std::thread::sleep(jittered(pause));
                    pause = (pause * 2).min(LONGEST_PAUSE);
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// True while an outage is under way (a call found the store unavailable and none has
    /// succeeded since).
    pub fn is_under_way(&self) -> bool {
        self.lock().current.is_some()
    }

    /// The outage under way, if one is: how long it has lasted and the first error.
    pub fn current(&self) -> Option<(Duration, String)> {
        let state = self.lock();
        let (since, error) = state.current.as_ref()?;
        Some((since.elapsed(), error.clone()))
    }

    /// The outages ridden out since the last call.
    pub fn take_ended(&self) -> Vec<Outage> {
        std::mem::take(&mut self.lock().ended)
    }

    /// Notes a call that found the store unavailable; returns when the outage began.
    fn store_unavailable(&self, error: &StoreError) -> Instant {
        let mut state = self.lock();
        state
            .current
            .get_or_insert_with(|| (Instant::now(), error_chain(error)))
            .0
    }

    /// Notes a call that succeeded: the outage under way, if one was, has ended.
    fn store_answered(&self) {
        let mut state = self.lock();
        if let Some((since, error)) = state.current.take() {
            let duration = since.elapsed();
            state.ended.push(Outage { duration, error });
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The error and its causes on one line.
fn error_chain(error: &StoreError) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// `pause` give or take a quarter, so that processes that lost the store together do not all
/// try again at the same moment. The randomness is std's per-process hash seed: no generator
/// is needed for this.
fn jittered(pause: Duration) -> Duration {
    let random = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    let quarter = pause / 4;
    let offset = Duration::from_nanos(random % (2 * quarter.as_nanos().max(1) as u64));
    pause - quarter + offset
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BackendError;
    use std::cell::Cell;

    fn unavailable() -> StoreError {
        StoreError::Busy {
            path: "store".into(),
            operation: "commit",
            source: BackendError::Sqlite(rusqlite::Error::InvalidQuery),
        }
    }

    #[test]
    fn a_call_is_tried_again_until_the_store_answers_and_the_outage_is_kept() {
        let outages = Outages::new(Duration::from_secs(60));
        let calls = Cell::new(0);
        let value = outages.retry(|| {
            calls.set(calls.get() + 1);
            if calls.get() < 3 {
                return Err(unavailable());
            }
            assert!(outages.is_under_way());
            Ok(7)
        });
        assert_eq!(value.expect("answered"), 7);
        assert_eq!(calls.get(), 3);
        assert!(!outages.is_under_way());
        let ended = outages.take_ended();
        assert_eq!(ended.len(), 1, "{ended:?}");
        assert!(ended[0].duration >= Duration::from_millis(150), "{ended:?}");
        assert!(ended[0].error.contains("stayed locked"), "{ended:?}");
        assert!(outages.take_ended().is_empty());
    }

    #[test]
    fn past_the_limit_the_call_fails_and_other_errors_fail_at_once() {
        let outages = Outages::new(Duration::from_millis(250));
        let error = outages
            .retry(|| -> Result<(), StoreError> { Err(unavailable()) })
            .expect_err("gives up");
        assert!(
            matches!(error, StoreError::OutageTooLong { .. }),
            "{error:?}"
        );
        let calls = Cell::new(0);
        let error = Outages::new(Duration::from_secs(60))
            .retry(|| -> Result<(), StoreError> {
                calls.set(calls.get() + 1);
                Err(StoreError::InvalidJobId { prefix: "x".into() })
            })
            .expect_err("fails");
        assert!(matches!(error, StoreError::InvalidJobId { .. }));
        assert_eq!(calls.get(), 1);
    }

    #[test]
    fn pauses_are_jittered_within_a_quarter() {
        for _ in 0..100 {
            let pause = jittered(Duration::from_millis(400));
            assert!(
                (Duration::from_millis(300)..Duration::from_millis(500)).contains(&pause),
                "{pause:?}"
            );
        }
    }
}
