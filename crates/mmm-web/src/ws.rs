//! `/ws`: live updates over a WebSocket (protocol in docs/api.md).
//!
//! A client subscribes to the jobs list (`{"subscribe": "jobs"}`), to one job
//! (`{"subscribe": "job", "job": ID, "resume_from": SEQ}`) or to the observed runs
//! (`{"subscribe": "runs"}`). It gets a full state first, then deltas:
//! - one job: from the job's [`Hub`](super::hub), shared by every client following it: new
//!   events as soon as the hub reads them (woken by the store when a batch commits, else every
//!   [`EVENT_POLL`](super::hub::EVENT_POLL)),
//!   and at most every [`TICK`] what changed in the job's record, the snapshot and the agents
//!   whose state changed (the latest value wins, so agent updates are coalesced). Events are
//!   read by sequence number from the store, so none is skipped;
//! - the jobs list: read each [`TICK`] (at most every 250 ms), the summaries that changed;
//! - the runs: each update the run watcher publishes, as it happens.
//!
//! Each connection has a bounded outgoing queue of [`QUEUE`] messages. When it is full the
//! delta is dropped and, once there is room, the client gets a fresh full state marked
//! `"resync": true` instead: a slow client costs a bounded amount of memory and never slows
//! anything but its own updates. A client whose socket accepts nothing for [`SEND_TIMEOUT`]
//! is disconnected. Reads of the store run in `spawn_blocking` and go through the server's
//! shared cache and hubs; the runner is never involved.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};

use super::api::JobsQuery;
use super::cache::Cache;
use super::hub::Delta;
use super::runs;
use super::{ApiError, AppState, JobSummary};
use mmm_core::job::JobId;
use mmm_runs::watch::Update;
use mmm_store::job_state::JobState;
use mmm_store::{JobQuery, Store};

/// Least time between two comparisons of a job's record, snapshot and agents (and two reads
/// of the jobs list for a client).
pub(super) const TICK: Duration = Duration::from_millis(100);
/// Outgoing messages a connection may have waiting.
pub(super) const QUEUE: usize = 8;
/// A client that accepts nothing for this long is disconnected.
pub(super) const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// Events one delta carries at most (the next one carries the rest).
pub(super) const EVENTS_PER_DELTA: usize = 1_000;
/// How often the jobs list is read again.
const JOBS_EVERY: Duration = Duration::from_millis(250);
/// The socket's read buffer. Clients send only small subscription messages, and tungstenite
/// zeroes the whole free part of this buffer on every read attempt, which its default
/// (128 KiB) turns into most of a busy server's CPU with many clients.
const READ_BUFFER: usize = 4 * 1024;
/// The largest message a client may send (a subscription is well under 1 KiB).
const MAX_CLIENT_MESSAGE: usize = 64 * 1024;

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
    ws.read_buffer_size(READ_BUFFER)
        .max_message_size(MAX_CLIENT_MESSAGE)
        .on_upgrade(move |socket| connection(socket, state))
}

/// Whether a browser's `Origin` names the host the request was sent to.
pub(super) fn same_origin(origin: &str, host: &str) -> bool {
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
    /// The jobs list's filters, as `GET /api/jobs` takes them (`limit` defaults to
    /// [`JOBS_LIMIT`]).
    #[serde(flatten)]
    filters: JobsQuery,
}

/// How many jobs (the newest) the jobs feed carries when the client asks for no `limit`: a
/// store of 100,000 jobs costs each tick a page, not the whole history.
const JOBS_LIMIT: usize = 200;

/// Where a feed reads: the store, through the server's shared cache.
#[derive(Clone)]
pub(super) struct Reads {
    pub(super) store: std::sync::Arc<dyn Store>,
    pub(super) cache: std::sync::Arc<Cache>,
}

impl Reads {
    fn of(state: &AppState) -> Self {
        Reads {
            store: state.store.clone(),
            cache: state.cache.clone(),
        }
    }
}

/// A client following one job through its hub.
struct Following {
    job: JobId,
    /// The next delta's `from` this client expects (the newest event it was brought to).
    seq: i64,
    deltas: broadcast::Receiver<Arc<Delta>>,
}

/// What a connection follows and whether it fell behind.
#[derive(Default)]
struct Subscription {
    /// The jobs list, read each tick.
    jobs: Option<JobsFeed>,
    /// One job, pushed by its hub.
    job: Option<Following>,
    /// The job followed when the client fell behind: it joins the hub again once its queue
    /// has room.
    job_resync: Option<JobId>,
    /// The observed runs, pushed by the run watch.
    runs: Option<broadcast::Receiver<Update>>,
    /// The client missed run updates and gets the full list again once its queue has room.
    runs_resync: bool,
    /// The jobs list fell behind: the next message is the full list.
    jobs_resync: bool,
}

impl Subscription {
    /// Whether the connection's tick has work: the jobs list to compare, or a resync waiting
    /// for room. A client following one job is woken only by its hub, not ten times a second
    /// for nothing (a hundred clients made a thousand idle wake-ups a second).
    fn ticks(&self) -> bool {
        self.jobs.is_some() || self.job_resync.is_some() || self.runs_resync || self.jobs_resync
    }
}

async fn connection(socket: WebSocket, state: AppState) {
    let (mut sink, mut incoming) = socket.split();
    let (tx, mut rx) = mpsc::channel::<Message>(QUEUE);
    let writer = tokio::spawn(async move {
        while let Some(message) = rx.recv().await {
            // What else is queued by now goes out in the same write: one system call (and one
            // wake-up of the client) for a hub's events and state delta sent together.
            let sent = tokio::time::timeout(SEND_TIMEOUT, async {
                sink.feed(message).await?;
                while let Ok(more) = rx.try_recv() {
                    sink.feed(more).await?;
                }
                sink.flush().await
            });
            match sent.await {
                Ok(Ok(())) => {}
                _ => return,
            }
        }
        let _ = sink.close().await;
    });
    let mut sub = Subscription::default();
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
                        if !offer(&tx, error(&format!("not a request: {e}; send {{\"subscribe\": \"jobs\"}}, {{\"subscribe\": \"job\", \"job\": ID}} or {{\"subscribe\": \"runs\"}}"))) {
                            break;
                        }
                        continue;
                    }
                };
                // A new subscription replaces the previous one.
                sub = Subscription::default();
                let result = match (request.subscribe.as_str(), request.job) {
                    ("runs", _) => {
                        let (full, updates) = runs::full(state.runs.as_ref());
                        sub.runs = updates;
                        Ok(vec![full.to_string().into()])
                    }
                    ("jobs", _) => match JobsFeed::new(&request.filters) {
                        Err(e) => Err(e),
                        Ok(mut feed) => {
                            let reads = Reads::of(&state);
                            match tokio::task::spawn_blocking(move || {
                                let full = feed.full(&reads);
                                full.map(|full| (feed, full))
                            })
                            .await
                            {
                                Ok(Ok((feed, full))) => {
                                    sub.jobs = Some(feed);
                                    Ok(vec![full.to_string().into()])
                                }
                                Ok(Err(e)) => Err(e),
                                Err(_) => break,
                            }
                        }
                    },
                    ("job", Some(id)) => {
                        match follow(&state, id, request.resume_from, false).await {
                            Ok((following, messages)) => {
                                sub.job = Some(following);
                                Ok(messages)
                            }
                            Err(e) => Err(e),
                        }
                    }
                    ("job", None) => Err(ApiError::BadRequest(
                        "`subscribe: job` needs `job`: the job's id".into(),
                    )),
                    (other, _) => Err(ApiError::BadRequest(format!(
                        "unknown subscription `{other}`: use `jobs`, `job` or `runs`"
                    ))),
                };
                match result {
                    Ok(messages) => {
                        // A subscription's first messages wait for room: they are the base
                        // every delta builds on.
                        let mut gone = false;
                        for message in messages {
                            if tx.send(Message::Text(message)).await.is_err() {
                                gone = true;
                                break;
                            }
                        }
                        if gone {
                            break;
                        }
                    }
                    Err(e) => {
                        if !offer(&tx, error(&e.to_string())) {
                            break;
                        }
                    }
                }
            }
            delta = next_delta(&mut sub.job) => {
                let Some(following) = sub.job.as_mut() else { continue };
                match delta {
                    Ok(delta) if delta.from == following.seq => {
                        if tx.is_closed() {
                            break;
                        }
                        // All of the delta's messages or none (this task alone fills the
                        // queue, so the room checked is still there).
                        if tx.capacity() < delta.texts.len() {
                            sub.job_resync = Some(following.job);
                            sub.job = None;
                            continue;
                        }
                        for text in &delta.texts {
                            let _ = tx.try_send(Message::Text(text.clone()));
                        }
                        following.seq = delta.to;
                    }
                    // A gap (the hub's broadcast lapped this client) or a delta that does not
                    // start where the client stands: join again.
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {
                        sub.job_resync = Some(following.job);
                        sub.job = None;
                    }
                    Err(broadcast::error::RecvError::Closed) => sub.job = None,
                }
            }
            update = next_update(&mut sub.runs) => {
                match update {
                    Ok(update) => {
                        match tx.try_send(Message::Text(runs::delta(&update).to_string().into())) {
                            Ok(()) => {}
                            Err(mpsc::error::TrySendError::Full(_)) => {
                                sub.runs = None;
                                sub.runs_resync = true;
                            }
                            Err(mpsc::error::TrySendError::Closed(_)) => break,
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        sub.runs = None;
                        sub.runs_resync = true;
                    }
                    // The watch stopped (the server is shutting down): nothing more to send.
                    Err(broadcast::error::RecvError::Closed) => sub.runs = None,
                }
            }
            // The writer gave up on the client (see SEND_TIMEOUT): nothing more can reach it.
            () = tx.closed() => break,
            _ = tick.tick(), if sub.ticks() => {
                if tx.capacity() == 0 {
                    // Still full: whatever changed waits for a resync.
                    if sub.jobs.is_some() {
                        sub.jobs_resync = true;
                    }
                    continue;
                }
                if sub.runs_resync {
                    let (full, updates) = runs::full(state.runs.as_ref());
                    match tx.try_send(Message::Text(mark_resync(full).to_string().into())) {
                        Ok(()) => {
                            sub.runs = updates;
                            sub.runs_resync = false;
                        }
                        Err(mpsc::error::TrySendError::Full(_)) => {}
                        Err(mpsc::error::TrySendError::Closed(_)) => break,
                    }
                    continue;
                }
                if let Some(job) = sub.job_resync {
                    match follow(&state, job.to_string(), None, true).await {
                        Ok((following, all)) => {
                            // The messages may not fit now: then the next tick tries again.
                            if all.len() <= tx.capacity() {
                                for message in all {
                                    if tx.try_send(Message::Text(message)).is_err() {
                                        break;
                                    }
                                }
                                sub.job = Some(following);
                                sub.job_resync = None;
                            }
                        }
                        Err(e) => {
                            if !offer(&tx, error(&e.to_string())) {
                                break;
                            }
                            sub.job_resync = None;
                        }
                    }
                    continue;
                }
                let Some(mut feed) = sub.jobs.take() else { continue };
                let reads = Reads::of(&state);
                let want_full = sub.jobs_resync;
                let result = tokio::task::spawn_blocking(move || {
                    let message = if want_full {
                        feed.full(&reads).map(|m| Some(mark_resync(m)))
                    } else {
                        feed.delta(&reads)
                    };
                    (feed, message)
                })
                .await;
                let Ok((feed, message)) = result else { break };
                sub.jobs = Some(feed);
                match message {
                    Ok(Some(message)) => {
                        match tx.try_send(Message::Text(message.to_string().into())) {
                            Ok(()) => sub.jobs_resync = false,
                            Err(mpsc::error::TrySendError::Full(_)) => sub.jobs_resync = true,
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

/// Follows job `id` (full id or prefix): joins its hub; the messages to send first (the
/// state, marked as a resync or not, then catch-up deltas), serialised.
async fn follow(
    state: &AppState,
    id: String,
    resume_from: Option<i64>,
    resync: bool,
) -> Result<(Following, Vec<Utf8Bytes>), ApiError> {
    let reads = Reads::of(state);
    let hubs = state.hubs.clone();
    let joined = tokio::task::spawn_blocking(move || {
        let job = super::api::resolve(reads.store.as_ref(), &id)?;
        hubs.join(&reads, job, resume_from, resync)
            .map(|j| (job, j))
    })
    .await
    .map_err(|_| ApiError::Internal("a store read stopped unexpectedly".into()))?;
    let (job, joined) = joined?;
    let mut messages = vec![joined.state];
    messages.extend(joined.catch_up);
    Ok((
        Following {
            job,
            seq: joined.seq,
            deltas: joined.deltas,
        },
        messages,
    ))
}

/// The next delta of the job followed; never resolves when none is.
async fn next_delta(
    following: &mut Option<Following>,
) -> Result<Arc<Delta>, broadcast::error::RecvError> {
    match following {
        Some(f) => f.deltas.recv().await,
        None => std::future::pending().await,
    }
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

/// An `{"type": "error"}` message to a client: a request it got wrong, or a read that failed.
pub(super) fn error(message: &str) -> Value {
    json!({ "type": "error", "message": message })
}

fn mark_resync(mut message: Value) -> Value {
    message["resync"] = Value::Bool(true);
    message
}

/// The jobs list: the summaries of the newest jobs that match the client's filters; deltas
/// carry the summaries that changed (a job that no longer matches, or fell off the page, is
/// removed).
struct JobsFeed {
    query: JobQuery,
    sent: HashMap<JobId, JobSummary>,
    read_at: Option<Instant>,
}

impl JobsFeed {
    /// A feed of the jobs `filters` match; a filter that does not parse is a bad request.
    fn new(filters: &JobsQuery) -> Result<JobsFeed, ApiError> {
        if filters.before.is_some() {
            return Err(ApiError::BadRequest(
                "the jobs feed follows the newest jobs: page older ones with GET /api/jobs?before="
                    .into(),
            ));
        }
        let mut query = filters.to_store_query()?;
        query.limit = Some(query.limit.unwrap_or(JOBS_LIMIT));
        Ok(JobsFeed {
            query,
            sent: HashMap::new(),
            read_at: None,
        })
    }

    fn full(&mut self, reads: &Reads) -> Result<Value, ApiError> {
        let jobs = reads.cache.jobs(reads.store.as_ref(), &self.query)?;
        self.read_at = Some(Instant::now());
        self.sent = jobs.iter().map(|j| (j.id, j.clone())).collect();
        Ok(json!({ "type": "jobs", "jobs": *jobs, "limit": self.query.limit, "resync": false }))
    }

    fn delta(&mut self, reads: &Reads) -> Result<Option<Value>, ApiError> {
        if self.read_at.is_some_and(|at| at.elapsed() < JOBS_EVERY) {
            return Ok(None);
        }
        self.read_at = Some(Instant::now());
        let jobs = reads.cache.jobs(reads.store.as_ref(), &self.query)?;
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

/// The fields of a JSON message being built.
type Fields = serde_json::Map<String, Value>;

/// One job as a hub sees it: the base its clients stand on, then what changed.
pub(super) struct JobFeed {
    job: JobId,
    /// The newest event of the state last read by [`JobFeed::base`] (where the hub's event
    /// position starts).
    seq: i64,
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
    pub(super) fn new(job: JobId) -> Self {
        JobFeed {
            job,
            seq: 0,
            head: Value::Null,
            snapshot_at: None,
            snapshot_rest: Value::Null,
            agents: Vec::new(),
        }
    }

    /// The newest event of the base state.
    pub(super) fn seq(&self) -> i64 {
        self.seq
    }

    /// Reads the job's state and makes it the base: the next delta is relative to it.
    pub(super) fn base(&mut self, reads: &Reads) -> Result<Arc<JobState>, ApiError> {
        let state = reads.cache.job_state(reads.store.as_ref(), self.job)?;
        self.seq = state.recent_events.last().map_or(0, |e| e.seq);
        self.head = head(&state);
        let (snapshot_at, rest, agents) = split_snapshot(state.snapshot.as_ref());
        self.snapshot_at = snapshot_at;
        self.snapshot_rest = rest;
        self.agents = agents;
        Ok(state)
    }

    /// What changed in the record, the snapshot and the agents since the last message, if
    /// anything (a `delta` without `seq` and events: the hub adds its position), and the
    /// state it brings clients to.
    pub(super) fn state_delta(
        &mut self,
        reads: &Reads,
    ) -> Result<(Arc<JobState>, Option<Fields>), ApiError> {
        let state = reads.cache.job_state(reads.store.as_ref(), self.job)?;
        let mut message = serde_json::Map::new();
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
        if message.is_empty() {
            return Ok((state, None));
        }
        message.insert("type".into(), json!("delta"));
        message.insert("job".into(), json!(self.job));
        Ok((state, Some(message)))
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
    snapshot: Option<&mmm_store::SnapshotRecord>,
) -> (Option<i64>, Value, Vec<Value>) {
    match snapshot {
        None => (None, Value::Null, Vec::new()),
        Some(s) => {
            // Sent apart: the agents go out as rows, only those that changed.
            let mut rest = s.payload.to_json();
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
