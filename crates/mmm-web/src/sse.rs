//! `GET /api/jobs/{id}/events`: the job's event log as Server-Sent Events, history then live,
//! built on [`events::Subscription`]. Each event's SSE `id` is its sequence number, so a
//! client that reconnects with `Last-Event-ID` (or `?after=SEQ`) resumes without a gap.
//!
//! The reader is paced by the client: events wait in a small bounded channel, and a client
//! that stops reading stops the reads of the store for it, never the runner.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::mpsc;

use super::api::resolve;
use super::{ApiError, AppState, blocking};
use mmm_store::events::{self, End, EventFilter, Subscription};

/// Events waiting for a slow client, at most.
const BUFFER: usize = 256;

/// Query of the events stream.
#[derive(Debug, Deserialize)]
pub(super) struct EventsQuery {
    after: Option<i64>,
}

/// The SSE stream of a job's events after `Last-Event-ID` (or `?after=`, or from the start).
pub(super) async fn events(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    query: Result<Query<EventsQuery>, QueryRejection>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let last_id = match headers.get("last-event-id") {
        Some(value) => Some(
            value
                .to_str()
                .ok()
                .and_then(|v| v.trim().parse::<i64>().ok())
                .ok_or_else(|| {
                    ApiError::BadRequest("Last-Event-ID must be an event's sequence number".into())
                })?,
        ),
        None => None,
    };
    let after = last_id.or(query.after).unwrap_or(0).max(0);
    let store = state.store.clone();
    let job = blocking(move || resolve(store.as_ref(), &id)).await?;
    let (tx, rx) = mpsc::channel::<Event>(BUFFER);
    let subscription = Subscription::new(state.store.clone(), job, after, EventFilter::default());
    tokio::spawn(follow(subscription, tx));
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|event| (Ok(event), rx))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

/// Reads the subscription and sends each event, until it ends or the client goes away.
async fn follow(mut subscription: Subscription, tx: mpsc::Sender<Event>) {
    loop {
        let (sub, read) = match tokio::task::spawn_blocking(move || {
            let read = subscription.poll();
            (subscription, read)
        })
        .await
        {
            Ok(pair) => pair,
            Err(_) => return,
        };
        subscription = sub;
        let events = match read {
            Ok(events) => events,
            Err(e) => {
                eprintln!("mmm serve: reading events: {e}");
                let _ = tx
                    .send(
                        Event::default()
                            .event("error")
                            .data("the store could not be read"),
                    )
                    .await;
                return;
            }
        };
        let idle = events.is_empty();
        for event in events {
            let data = serde_json::to_string(&event).unwrap_or_else(|_| "{}".into());
            let message = Event::default().id(event.seq.to_string()).data(data);
            if tx.send(message).await.is_err() {
                return;
            }
        }
        if let Some(end) = subscription.ended() {
            let reason = match end {
                End::Stopped(status) => json!({ "reason": "stopped", "status": status }),
                End::OwnerGone => json!({ "reason": "owner_gone" }),
            };
            let _ = tx
                .send(Event::default().event("end").data(reason.to_string()))
                .await;
            return;
        }
        if idle {
            tokio::select! {
                () = tokio::time::sleep(events::POLL_INTERVAL) => {}
                () = tx.closed() => return,
            }
        }
    }
}
