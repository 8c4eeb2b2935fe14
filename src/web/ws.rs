//! `/ws`: live updates over a WebSocket (protocol in docs/api.md).
//!
//! A client subscribes to the jobs list (`{"subscribe": "jobs"}`), to one job
//! (`{"subscribe": "job", "job": ID, "resume_from": SEQ}`) or to the observed runs
//! (`{"subscribe": "runs"}`: the list, then each update the run watcher publishes, as it
//! happens). It gets a full state first, then
//! deltas at most every [`TICK`]: what changed in the job's record, the agents whose state
//! changed since the last send (the latest value wins, so agent updates are coalesced), and
//! every new event with its sequence number (events are read by sequence number from the
//! store, so none is skipped).
//!
//! Each connection has a bounded outgoing queue of [`QUEUE`] messages. When it is full the
//! delta is dropped and, once there is room, the client gets a fresh full state marked
//! `"resync": true` instead: a slow client costs a bounded amount of memory and never slows
//! anything but its own updates. A client whose socket accepts nothing for [`SEND_TIMEOUT`]
//! is disconnected. Reads of the store run in `spawn_blocking` and go through the server's
//! shared cache (one read per job per 100 ms for all clients); the runner is never involved.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};

use super::cache::Cache;
use super::runs;
use super::{ApiError, AppState, JobSummary};
use crate::job::JobId;
use crate::observe::watch::Update;
use crate::store::Store;
use crate::view::JobState;

/// Least time between two deltas.
pub(super) const TICK: Duration = Duration::from_millis(100);
/// Outgoing messages a connection may have waiting.
pub(super) const QUEUE: usize = 8;
/// A client that accepts nothing for this long is disconnected.
pub(super) const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// Events one delta carries at most (the next one carries the rest).
const EVENTS_PER_DELTA: usize = 1_000;
/// How often the jobs list is read again.
const JOBS_EVERY: Duration = Duration::from_millis(250);

/// The upgrade: checks the Origin (a browser page of another site may not connect), then
/// hands the socket to [`connection`].
pub(super) async fn upgrade(
    State(state): State<AppState>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    if let Some(origin) = headers.get("origin") {
        let origin = origin.to_str().unwrap_or("");
        let host = headers
            .get("host")
            .and_then(|h| h.to_str().ok())
            .unwrap_or("");
        if !same_origin(origin, host) {
            return ApiError::ForbiddenOrigin(origin.to_string()).into_response();
        }
    }
    ws.on_upgrade(move |socket| connection(socket, state))
}

/// Whether a browser's `Origin` names the host the request was sent to.
fn same_origin(origin: &str, host: &str) -> bool {
    let authority = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"));
    match authority {
        Some(authority) => !host.is_empty() && authority.eq_ignore_ascii_case(host),
        None => false,
    }
}

/// A client's request.
#[derive(Debug, Deserialize)]
struct Request {
    subscribe: String,
    job: Option<String>,
    resume_from: Option<i64>,
}

/// What a connection follows.
enum Feed {
    None,
    Jobs(JobsFeed),
    Job(Box<JobFeed>),
}

impl Feed {
    /// The full state now.
    fn full(&mut self, reads: &Reads) -> Result<Option<Value>, ApiError> {
        match self {
            Feed::None => Ok(None),
            Feed::Jobs(f) => f.full(reads).map(Some),
            Feed::Job(f) => f.full(reads).map(Some),
        }
    }

    /// What changed since the last message, if anything.
    fn delta(&mut self, reads: &Reads) -> Result<Option<Value>, ApiError> {
        match self {
            Feed::None => Ok(None),
            Feed::Jobs(f) => f.delta(reads),
            Feed::Job(f) => f.delta(reads),
        }
    }
}

/// Where a feed reads: the store, through the server's shared cache.
struct Reads {
    store: std::sync::Arc<dyn Store>,
    cache: std::sync::Arc<Cache>,
}

impl Reads {
    fn of(state: &AppState) -> Self {
        Reads {
            store: state.store.clone(),
            cache: state.cache.clone(),
        }
    }
}

async fn connection(socket: WebSocket, state: AppState) {
    let (mut sink, mut incoming) = socket.split();
    let (tx, mut rx) = mpsc::channel::<Message>(QUEUE);
    let writer = tokio::spawn(async move {
        while let Some(message) = rx.recv().await {
            match tokio::time::timeout(SEND_TIMEOUT, sink.send(message)).await {
                Ok(Ok(())) => {}
                _ => return,
            }
        }
        let _ = sink.close().await;
    });
    let mut feed = Some(Feed::None);
    let mut resync = false;
    // The `runs` feed is pushed by the watch rather than read each tick: its receiver, and
    // whether the client missed updates and needs a full list again.
    let mut runs_updates: Option<broadcast::Receiver<Update>> = None;
    let mut runs_resync = false;
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            message = incoming.next() => {
                let text = match message {
                    Some(Ok(Message::Text(text))) => text,
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                    Some(Ok(_)) => continue,
                };
                let request: Request = match serde_json::from_str(text.as_str()) {
                    Ok(r) => r,
                    Err(e) => {
                        if !offer(&tx, error(&format!("not a request: {e}; send {{\"subscribe\": \"jobs\"}} or {{\"subscribe\": \"job\", \"job\": ID}}"))) {
                            break;
                        }
                        continue;
                    }
                };
                runs_updates = None;
                runs_resync = false;
                if request.subscribe == "runs" {
                    feed = Some(Feed::None);
                    resync = false;
                    let (full, updates) = runs::full(state.runs.as_ref());
                    runs_updates = updates;
                    if tx.send(Message::Text(full.to_string().into())).await.is_err() {
                        break;
                    }
                    continue;
                }
                let reads = Reads::of(&state);
                let subscribed = tokio::task::spawn_blocking(move || {
                    let mut feed = subscribe(reads.store.as_ref(), request)?;
                    let full = feed.full(&reads)?;
                    Ok::<_, ApiError>((feed, full))
                })
                .await;
                match subscribed {
                    Ok(Ok((new, full))) => {
                        feed = Some(new);
                        if let Some(full) = full {
                            // A subscription's first message waits for room: it is the base
                            // every delta builds on.
                            if tx.send(Message::Text(full.to_string().into())).await.is_err() {
                                break;
                            }
                        }
                        resync = false;
                    }
                    Ok(Err(e)) => {
                        if !offer(&tx, error(&e.to_string())) {
                            break;
                        }
                    }
                    Err(_) => break,
                }
            }
            update = next_update(&mut runs_updates) => {
                match update {
                    Ok(update) => {
                        match tx.try_send(Message::Text(runs::delta(&update).to_string().into())) {
                            Ok(()) => {}
                            Err(mpsc::error::TrySendError::Full(_)) => {
                                runs_updates = None;
                                runs_resync = true;
                            }
                            Err(mpsc::error::TrySendError::Closed(_)) => break,
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        runs_updates = None;
                        runs_resync = true;
                    }
                    // The watch stopped (the server is shutting down): nothing more to send.
                    Err(broadcast::error::RecvError::Closed) => runs_updates = None,
                }
            }
            _ = tick.tick() => {
                if tx.is_closed() {
                    break;
                }
                if runs_resync {
                    if tx.capacity() > 0 {
                        let (full, updates) = runs::full(state.runs.as_ref());
                        match tx.try_send(Message::Text(mark_resync(full).to_string().into())) {
                            Ok(()) => {
                                runs_updates = updates;
                                runs_resync = false;
                            }
                            Err(mpsc::error::TrySendError::Full(_)) => {}
                            Err(mpsc::error::TrySendError::Closed(_)) => break,
                        }
                    }
                    continue;
                }
                if matches!(feed, Some(Feed::None)) {
                    continue;
                }
                if resync && tx.capacity() == 0 {
                    continue;
                }
                let Some(mut current) = feed.take() else { break };
                let reads = Reads::of(&state);
                let want_full = resync;
                let result = tokio::task::spawn_blocking(move || {
                    let message = if want_full {
                        current.full(&reads).map(|m| m.map(mark_resync))
                    } else {
                        current.delta(&reads)
                    };
                    (current, message)
                })
                .await;
                let Ok((current, message)) = result else { break };
                feed = Some(current);
                match message {
                    Ok(Some(message)) => {
                        match tx.try_send(Message::Text(message.to_string().into())) {
                            Ok(()) => resync = false,
                            Err(mpsc::error::TrySendError::Full(_)) => resync = true,
                            Err(mpsc::error::TrySendError::Closed(_)) => break,
                        }
                    }
                    Ok(None) => {}
                    Err(e) => {
                        if !offer(&tx, error(&e.to_string())) {
                            break;
                        }
                    }
                }
            }
        }
    }
    drop(tx);
    let _ = writer.await;
}

/// The next update of the runs feed; never resolves without one.
async fn next_update(
    updates: &mut Option<broadcast::Receiver<Update>>,
) -> Result<Update, broadcast::error::RecvError> {
    match updates {
        Some(updates) => updates.recv().await,
        None => std::future::pending().await,
    }
}

/// Queues a message unless the queue is full; false once the client is gone.
fn offer(tx: &mpsc::Sender<Message>, message: Value) -> bool {
    !matches!(
        tx.try_send(Message::Text(message.to_string().into())),
        Err(mpsc::error::TrySendError::Closed(_))
    )
}

fn error(message: &str) -> Value {
    json!({ "type": "error", "message": message })
}

fn mark_resync(mut message: Value) -> Value {
    message["resync"] = Value::Bool(true);
    message
}

/// Builds the feed a request asks for.
fn subscribe(store: &dyn Store, request: Request) -> Result<Feed, ApiError> {
    match (request.subscribe.as_str(), request.job) {
        ("jobs", _) => Ok(Feed::Jobs(JobsFeed::default())),
        ("job", Some(id)) => {
            let job = super::api::resolve(store, &id)?;
            Ok(Feed::Job(Box::new(JobFeed::new(job, request.resume_from))))
        }
        ("job", None) => Err(ApiError::BadRequest(
            "`subscribe: job` needs `job`: the job's id".into(),
        )),
        (other, _) => Err(ApiError::BadRequest(format!(
            "unknown subscription `{other}`: use `jobs`, `job` or `runs`"
        ))),
    }
}

/// The jobs list: every job's summary; deltas carry the summaries that changed.
#[derive(Default)]
struct JobsFeed {
    sent: HashMap<JobId, JobSummary>,
    read_at: Option<Instant>,
}

impl JobsFeed {
    fn full(&mut self, reads: &Reads) -> Result<Value, ApiError> {
        let jobs = reads.cache.jobs(reads.store.as_ref())?;
        self.read_at = Some(Instant::now());
        self.sent = jobs.iter().map(|j| (j.id, j.clone())).collect();
        Ok(json!({ "type": "jobs", "jobs": *jobs, "resync": false }))
    }

    fn delta(&mut self, reads: &Reads) -> Result<Option<Value>, ApiError> {
        if self.read_at.is_some_and(|at| at.elapsed() < JOBS_EVERY) {
            return Ok(None);
        }
        self.read_at = Some(Instant::now());
        let jobs = reads.cache.jobs(reads.store.as_ref())?;
        let mut changed = Vec::new();
        let mut seen = HashMap::with_capacity(jobs.len());
        for job in jobs.iter() {
            if self.sent.get(&job.id) != Some(job) {
                changed.push(job.clone());
            }
            seen.insert(job.id, job.clone());
        }
        let removed: Vec<JobId> = self
            .sent
            .keys()
            .filter(|id| !seen.contains_key(id))
            .copied()
            .collect();
        self.sent = seen;
        if changed.is_empty() && removed.is_empty() {
            return Ok(None);
        }
        Ok(Some(
            json!({ "type": "jobs_delta", "changed": changed, "removed": removed }),
        ))
    }
}

/// One job: its state, then what changed.
struct JobFeed {
    job: JobId,
    /// The last event sequence number sent.
    seq: i64,
    /// Where a reconnecting client asked to resume from (used once, by the first state).
    resume_from: Option<i64>,
    /// The record, percent and flags last sent, as JSON.
    head: Value,
    /// When the snapshot last sent was taken.
    snapshot_at: Option<i64>,
    /// The snapshot last sent, without its agents.
    snapshot_rest: Value,
    /// Each agent as last sent.
    agents: Vec<Value>,
}

impl JobFeed {
    fn new(job: JobId, resume_from: Option<i64>) -> Self {
        JobFeed {
            job,
            seq: 0,
            resume_from,
            head: Value::Null,
            snapshot_at: None,
            snapshot_rest: Value::Null,
            agents: Vec::new(),
        }
    }

    fn full(&mut self, reads: &Reads) -> Result<Value, ApiError> {
        let state = reads.cache.job_state(reads.store.as_ref(), self.job)?;
        let newest = state.recent_events.last().map_or(0, |e| e.seq);
        // Resuming: the deltas re-send every event after the client's last one, so it has no
        // gap (it ignores those it already holds, by sequence number).
        self.seq = match self.resume_from.take() {
            Some(from) => from.clamp(0, newest),
            None => newest,
        };
        self.head = head(&state);
        let (snapshot_at, rest, agents) = split_snapshot(state.snapshot.as_ref());
        self.snapshot_at = snapshot_at;
        self.snapshot_rest = rest;
        self.agents = agents;
        Ok(json!({ "type": "state", "seq": newest, "state": *state, "resync": false }))
    }

    fn delta(&mut self, reads: &Reads) -> Result<Option<Value>, ApiError> {
        let state = reads.cache.job_state(reads.store.as_ref(), self.job)?;
        let events =
            reads
                .cache
                .events_after(reads.store.as_ref(), self.job, self.seq, EVENTS_PER_DELTA)?;
        let mut message = serde_json::Map::new();
        if let Some(last) = events.last() {
            self.seq = last.seq;
        }
        let head = head(&state);
        if head != self.head {
            message.insert("head".into(), head.clone());
            self.head = head;
        }
        let at = state.snapshot.as_ref().map(|s| s.at);
        if at != self.snapshot_at {
            let (at, rest, agents) = split_snapshot(state.snapshot.as_ref());
            self.snapshot_at = at;
            if rest != self.snapshot_rest {
                message.insert("snapshot".into(), rest.clone());
                self.snapshot_rest = rest;
            }
            let changed: Vec<&Value> = agents
                .iter()
                .enumerate()
                .filter(|(i, a)| self.agents.get(*i) != Some(*a))
                .map(|(_, a)| a)
                .collect();
            if !changed.is_empty() || agents.len() != self.agents.len() {
                message.insert("agents".into(), json!(changed));
                message.insert("agent_count".into(), json!(agents.len()));
            }
            self.agents = agents;
            if !message.is_empty() {
                message.insert("snapshot_at".into(), json!(at));
            }
        }
        if !events.is_empty() {
            message.insert("events".into(), json!(events));
        }
        if message.is_empty() {
            return Ok(None);
        }
        message.insert("type".into(), json!("delta"));
        message.insert("job".into(), json!(self.job));
        message.insert("seq".into(), json!(self.seq));
        Ok(Some(Value::Object(message)))
    }
}

/// The parts of a state a delta's `head` carries: the record, percent, and flags.
fn head(state: &JobState) -> Value {
    json!({
        "job": state.job,
        "percent": state.percent,
        "resumable": state.resumable,
        "live": state.live,
    })
}

/// A snapshot's time, its payload without agents, and its agents.
fn split_snapshot(
    snapshot: Option<&crate::store::SnapshotRecord>,
) -> (Option<i64>, Value, Vec<Value>) {
    match snapshot {
        None => (None, Value::Null, Vec::new()),
        Some(s) => {
            let mut rest = s.payload.clone();
            let agents = match rest.as_object_mut().and_then(|o| o.remove("agents")) {
                Some(Value::Array(agents)) => agents,
                _ => Vec::new(),
            };
            (Some(s.at), json!({ "at": s.at, "payload": rest }), agents)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_same_origin_may_connect() {
        assert!(same_origin("http://127.0.0.1:8080", "127.0.0.1:8080"));
        assert!(same_origin("https://Dash.example:443", "dash.example:443"));
        assert!(!same_origin("http://evil.example", "127.0.0.1:8080"));
        assert!(!same_origin("http://127.0.0.1:8081", "127.0.0.1:8080"));
        assert!(!same_origin("null", "127.0.0.1:8080"));
        assert!(!same_origin("http://127.0.0.1:8080", ""));
    }
}
