//! One job's live feed, shared by every WebSocket client that follows the job: a single task
//! per followed job reads the store, works out each delta once and serialises it once; the
//! clients forward the same bytes. So a hundred clients cost the store, the CPU and the
//! runner writing beside them about what one client costs.
//!
//! The hub looks for new events every [`EVENT_POLL`] (one indexed query) and sends them at
//! once, in an events-only delta; every [`TICK`] it also compares the job's record, snapshot
//! and agents with what it sent last and sends what changed. With a hundred clients or more,
//! the events go out every [`TICK`] just before the comparison's delta, so each client gets
//! both in one write. Each message carries the event sequence numbers it goes from and to,
//! so a client can check that it misses nothing: a client
//! joins with a full state taken under the hub's lock (the base the next delta builds on), plus
//! the events between that state and the hub's position; if it then falls behind (its queue is
//! full, or the hub's broadcast laps it) it joins again, marked as a resync.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use axum::extract::ws::Utf8Bytes;
use serde_json::{Value, json};
use tokio::sync::broadcast;

use super::ApiError;
use super::ws::{JobFeed, Reads, TICK, error};
use mmm_core::job::JobId;
use mmm_store::EventRecord;
use mmm_store::job_state::JobState;

/// How often a hub looks for new events when nothing wakes it: the store wakes it when a
/// batch commits in this process (SQLite: `mmm run --dashboard`) or on any host (PostgreSQL's
/// `NOTIFY`); a runner in another process on SQLite is polled.
pub(super) const EVENT_POLL: Duration = Duration::from_millis(20);
/// Least time between two reads of new events: bounds the messages a client gets to 200 a
/// second whatever the commit rate. The store writer commits at most every 5 ms, so a longer
/// gap would only hold committed events back (with 10 ms, the in-process p99 latency was
/// 21-22 ms; with 5 ms, 15-19 ms).
const EVENT_GAP: Duration = Duration::from_millis(5);
/// What each client adds to that gap: the server's work is a send per client per message, so
/// with many clients events go out in fewer, larger messages (fifty clients: one every
/// 50 ms), and a server followed by a crowd keeps off the CPU the runner needs.
const EVENT_GAP_PER_CLIENT: Duration = Duration::from_millis(1);

/// The least time between two event reads of a hub with `clients` clients. At [`TICK`] (a
/// hundred clients and more) the events go out with the state comparison, every tick, in the
/// same write as the state delta (see [`events_ride_the_tick`]).
fn event_gap(clients: usize) -> Duration {
    (EVENT_GAP_PER_CLIENT * clients as u32).clamp(EVENT_GAP, TICK)
}

/// Whether a hub with `clients` clients sends its events from the comparison loop, just before
/// the state delta, rather than from a loop of their own: the two messages then reach each
/// client in one write, and new events still within 100 ms plus the commit.
fn events_ride_the_tick(clients: usize) -> bool {
    event_gap(clients) >= TICK
}

/// An events-only delta message, serialised straight from the records: no `serde_json::Value`
/// tree in between, which cost an allocation per field of every event (a hub serialises every
/// event of its job, thousands a second for a busy one).
fn events_delta(job: JobId, seq: i64, events: &[EventRecord]) -> Utf8Bytes {
    #[derive(serde::Serialize)]
    struct EventsDelta<'a> {
        r#type: &'static str,
        job: JobId,
        seq: i64,
        events: &'a [EventRecord],
    }
    let delta = EventsDelta {
        r#type: "delta",
        job,
        seq,
        events,
    };
    serde_json::to_string(&delta)
        .unwrap_or_else(|e| error(&e.to_string()).to_string())
        .into()
}

/// Messages a client may fall behind the hub before it is resynced.
const BROADCAST: usize = 64;
/// Events one catch-up message carries at most.
const CATCH_UP_EVENTS: usize = 1_000;

/// One delta as every client of a hub gets it.
#[derive(Debug)]
pub(super) struct Delta {
    /// The newest event sequence number before this message.
    pub(super) from: i64,
    /// The newest after it.
    pub(super) to: i64,
    /// The messages, serialised once: one, or a hub's events and its state delta together.
    pub(super) texts: Vec<Utf8Bytes>,
}

/// A job's shared feed.
pub(super) struct Hub {
    job: JobId,
    /// The record, snapshot and agents the clients have, compared every [`TICK`].
    base: Mutex<Base>,
    /// The newest event sequence number sent: the `from` of the next delta. Locked after
    /// `base` when both are, and never held while the state is read, so new events are not
    /// held up by the (heavier) comparison.
    position: Mutex<i64>,
    deltas: broadcast::Sender<Arc<Delta>>,
    /// The state message for joining clients, serialised once for each base: a hundred
    /// clients that join at once cost one serialisation of a large state, not a hundred.
    joining: Mutex<Option<(Arc<JobState>, Utf8Bytes)>>,
}

/// What the hub's clients have been brought to, apart from events.
struct Base {
    feed: JobFeed,
    state: Arc<JobState>,
}

/// What a client joining a hub gets.
pub(super) struct Joined {
    /// The full state (`{"type": "state", ...}`), serialised.
    pub(super) state: Utf8Bytes,
    /// Deltas carrying the events between the state and the hub's position, serialised.
    pub(super) catch_up: Vec<Utf8Bytes>,
    /// The hub's position: the `from` of the next delta.
    pub(super) seq: i64,
    /// The deltas to come.
    pub(super) deltas: broadcast::Receiver<Arc<Delta>>,
}

impl Hub {
    /// Takes the hub's base and subscribes to its deltas, in one step under its locks: the
    /// next delta starts exactly at the returned position and builds on the returned state.
    fn attach(&self) -> (Arc<JobState>, i64, broadcast::Receiver<Arc<Delta>>) {
        let base = self.base.lock().unwrap_or_else(|e| e.into_inner());
        let position = self.position.lock().unwrap_or_else(|e| e.into_inner());
        (base.state.clone(), *position, self.deltas.subscribe())
    }

    /// The `state` message of `state` (a base of this hub), marked as a resync or not.
    fn state_message(&self, state: &Arc<JobState>, resync: bool) -> Utf8Bytes {
        if !resync
            && let Some((base, text)) = &*self.joining.lock().unwrap_or_else(|e| e.into_inner())
            && Arc::ptr_eq(base, state)
        {
            return text.clone();
        }
        let newest = state.recent_events.last().map_or(0, |e| e.seq);
        let message = json!({ "type": "state", "seq": newest, "state": **state, "resync": resync });
        let text: Utf8Bytes = message.to_string().into();
        if !resync {
            *self.joining.lock().unwrap_or_else(|e| e.into_inner()) =
                Some((state.clone(), text.clone()));
        }
        text
    }

    /// Sends the events after the hub's position, if any, as one delta. Blocking (a store
    /// read, usually empty).
    fn send_events(&self, reads: &Reads) {
        let mut position = self.position.lock().unwrap_or_else(|e| e.into_inner());
        let from = *position;
        if let Some(text) = self.events_after(&mut position, reads) {
            let delta = Delta {
                from,
                to: *position,
                texts: vec![text],
            };
            // No receiver is not an error: the loops notice and stop.
            let _ = self.deltas.send(Arc::new(delta));
        }
    }

    /// The events after `position` as a delta message, `position` moved to the last of them;
    /// `None` when there are none. Blocking (a store read).
    fn events_after(&self, position: &mut i64, reads: &Reads) -> Option<Utf8Bytes> {
        match reads.cache.events_after(
            reads.store.as_ref(),
            self.job,
            *position,
            super::ws::EVENTS_PER_DELTA,
            Duration::ZERO,
        ) {
            Ok(events) => {
                let to = events.last()?.seq;
                *position = to;
                Some(events_delta(self.job, to, &events))
            }
            Err(e) => Some(error(&e.to_string()).to_string().into()),
        }
    }

    /// Compares the job's record, snapshot and agents with what was sent and sends what
    /// changed; `with_events`, the new events too, in the same delta (two messages that go
    /// out in one write). Blocking (a read of the job's state, shared through the cache).
    fn send_changes(&self, reads: &Reads, with_events: bool) {
        let mut base = self.base.lock().unwrap_or_else(|e| e.into_inner());
        let body = match base.feed.state_delta(reads) {
            Ok((state, message)) => {
                base.state = state;
                message.map(|message| Value::Object(message).to_string())
            }
            Err(e) => Some(error(&e.to_string()).to_string()),
        };
        let mut position = self.position.lock().unwrap_or_else(|e| e.into_inner());
        let from = *position;
        let mut texts = Vec::new();
        if with_events && let Some(events) = self.events_after(&mut position, reads) {
            texts.push(events);
        }
        // The body is serialised before the position is known (it may be large): `seq` is
        // added as its last field.
        if let Some(body) = body {
            let text = match body.strip_suffix('}') {
                Some(open) => format!("{open},\"seq\":{}}}", *position),
                None => body,
            };
            texts.push(text.into());
        }
        if texts.is_empty() {
            return;
        }
        let delta = Delta {
            from,
            to: *position,
            texts,
        };
        let _ = self.deltas.send(Arc::new(delta));
    }
}

/// The hubs of one server, one per followed job.
#[derive(Default)]
pub(super) struct Hubs {
    hubs: Mutex<HashMap<JobId, Weak<Hub>>>,
}

impl Hubs {
    /// Joins the hub of `job` (started, with its base read from the store, when none runs):
    /// the base as a full state, the events the client still needs (after `resume_from` when
    /// it reconnects, else after the state's newest event), and every later delta. Blocking.
    pub(super) fn join(
        self: &Arc<Self>,
        reads: &Reads,
        job: JobId,
        resume_from: Option<i64>,
        resync: bool,
    ) -> Result<Joined, ApiError> {
        let (hub, (state, seq, deltas)) = {
            let mut hubs = self.hubs.lock().unwrap_or_else(|e| e.into_inner());
            let hub = match hubs.get(&job).and_then(Weak::upgrade) {
                Some(hub) => hub,
                None => {
                    let mut feed = JobFeed::new(job);
                    let state = feed.base(reads)?;
                    let (deltas, _) = broadcast::channel(BROADCAST);
                    let hub = Arc::new(Hub {
                        job,
                        position: Mutex::new(feed.seq()),
                        base: Mutex::new(Base { feed, state }),
                        deltas,
                        joining: Mutex::new(None),
                    });
                    hubs.insert(job, Arc::downgrade(&hub));
                    let runtime = tokio::runtime::Handle::current();
                    runtime.spawn(follow_events(self.clone(), hub.clone(), reads.clone()));
                    runtime.spawn(compare_state(self.clone(), hub.clone(), reads.clone()));
                    hub
                }
            };
            // Still under the registry's lock, so the hub cannot stop for want of clients
            // before this one is counted.
            let attached = hub.attach();
            (hub, attached)
        };
        let newest = state.recent_events.last().map_or(0, |e| e.seq);
        let mut after = match resume_from {
            Some(from) => from.clamp(0, newest.max(seq)),
            None => newest,
        };
        let mut catch_up = Vec::new();
        while after < seq {
            let events: Vec<_> = reads
                .cache
                .events_after(
                    reads.store.as_ref(),
                    job,
                    after,
                    CATCH_UP_EVENTS,
                    super::cache::EVENTS_TTL,
                )?
                .into_iter()
                .filter(|e| e.seq <= seq)
                .collect();
            let Some(last) = events.last().map(|e| e.seq) else {
                break;
            };
            catch_up.push(events_delta(job, last, &events));
            after = last;
        }
        Ok(Joined {
            state: hub.state_message(&state, resync),
            catch_up,
            seq,
            deltas,
        })
    }
}

/// Whether `hub` still has clients; when it has none, it leaves the registry (under the
/// registry's lock: a client joining now either finds it with a receiver counted, or finds
/// none and starts a new hub).
fn still_followed(hubs: &Hubs, hub: &Arc<Hub>) -> bool {
    let mut registry = hubs.hubs.lock().unwrap_or_else(|e| e.into_inner());
    let registered = registry
        .get(&hub.job)
        .is_some_and(|w| w.as_ptr() == Arc::as_ptr(hub));
    if !registered {
        return false;
    }
    if hub.deltas.receiver_count() == 0 {
        registry.remove(&hub.job);
        return false;
    }
    true
}

/// The hub's comparison loop: [`Hub::send_changes`] every [`TICK`], until no client is left.
/// Events and the comparison run in loops of their own, so a slow comparison (a snapshot of
/// 1,000 agents) does not hold up new events.
async fn compare_state(hubs: Arc<Hubs>, hub: Arc<Hub>, reads: Reads) {
    let mut ticks = tokio::time::interval(TICK);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        if !still_followed(&hubs, &hub) {
            return;
        }
        let (stepping, reads_now) = (hub.clone(), reads.clone());
        let with_events = events_ride_the_tick(hub.deltas.receiver_count());
        let step = move || stepping.send_changes(&reads_now, with_events);
        if tokio::task::spawn_blocking(step).await.is_err() {
            return;
        }
    }
}

/// The hub's events loop, until no client is left: waits for the store to say events may
/// have committed (at most [`EVENT_POLL`]), sends what is new, and lets at least
/// [`event_gap`] pass before the next read.
async fn follow_events(hubs: Arc<Hubs>, hub: Arc<Hub>, reads: Reads) {
    loop {
        let started = tokio::time::Instant::now();
        if !still_followed(&hubs, &hub) {
            return;
        }
        if events_ride_the_tick(hub.deltas.receiver_count()) {
            // The comparison loop sends them for now.
            tokio::time::sleep(TICK).await;
            continue;
        }
        let (stepping, reads_now) = (hub.clone(), reads.clone());
        let step = move || {
            reads_now.store.wait_for_events(stepping.job, EVENT_POLL);
            stepping.send_events(&reads_now);
        };
        if tokio::task::spawn_blocking(step).await.is_err() {
            return;
        }
        tokio::time::sleep_until(started + event_gap(hub.deltas.receiver_count())).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mmm_core::event::Event;

    #[test]
    fn the_event_gap_grows_with_the_clients_within_its_bounds() {
        assert_eq!(event_gap(0), EVENT_GAP);
        assert_eq!(event_gap(1), EVENT_GAP);
        assert_eq!(event_gap(50), Duration::from_millis(50));
        assert_eq!(event_gap(100), TICK);
        assert_eq!(event_gap(10_000), TICK);
        assert!(event_gap(50) < event_gap(99));
    }

    #[test]
    fn an_events_delta_is_the_records_as_json() {
        let job = JobId::new();
        let events = vec![
            EventRecord {
                seq: 7,
                job,
                at: 1_700_000_000_000,
                item_key: Some("a\"b".into()),
                event: Event::from_parts(
                    "item_completed",
                    json!({"attempt": 1, "agent": "agent-1", "duration_us": 7, "steps_us": [3, 4]}),
                ),
            },
            EventRecord {
                seq: 8,
                job,
                at: 1_700_000_000_001,
                item_key: None,
                event: Event::from_parts("phase_finished", json!({"phase": "map"})),
            },
        ];
        assert!(matches!(events[0].event, Event::ItemCompleted(_)));
        let text = events_delta(job, 8, &events);
        let parsed: Value = serde_json::from_str(text.as_str()).unwrap();
        assert_eq!(
            parsed,
            json!({ "type": "delta", "job": job, "seq": 8, "events": events })
        );
        assert_eq!(parsed["events"][0]["kind"], "item_completed");
        assert_eq!(parsed["events"][0]["payload"]["steps_us"], json!([3, 4]));
        assert_eq!(parsed["events"][1]["payload"], json!({"phase": "map"}));
    }

    #[test]
    fn a_crowd_gets_its_events_with_the_state_comparison() {
        assert!(!events_ride_the_tick(1));
        assert!(!events_ride_the_tick(99));
        assert!(events_ride_the_tick(100));
        assert!(events_ride_the_tick(5_000));
    }
}
