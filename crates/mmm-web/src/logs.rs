//! `GET /api/jobs/{id}/items/{item}/log?attempt=N&stream=stdout|stderr&timestamps=1&follow=1`
//! (docs/logs.md): an item's log as plain text, the same bytes `mmm logs JOB ITEM` prints with
//! the same options (both render with [`LogReader`]); `follow=1` streams it (chunked) as it is
//! written until the item ends; `download=1` asks the browser to save it as a file.
//!
//! A following client is read for at its own pace: the text waits in a small bounded channel,
//! and a client that stops reading stops the store reads made for it.

use std::time::Duration;

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tokio::sync::mpsc;

use super::api::resolve;
use super::{ApiError, AppState, blocking};
use mmm_core::job::JobId;
use mmm_store::logs::{self, LogReader, LogSelection, LogStream};

/// How often a followed log is read for new output (the CLI's `--follow` polls as often).
const FOLLOW_POLL: Duration = Duration::from_millis(100);

/// Pieces of text waiting for a slow client, at most.
const BUFFER: usize = 16;

/// The query of the log endpoint.
#[derive(Debug, Default, Deserialize)]
pub(super) struct LogParams {
    attempt: Option<u32>,
    stream: Option<String>,
    timestamps: Option<String>,
    follow: Option<String>,
    download: Option<String>,
}

/// `1`, `true`, `yes` (or present and empty) is on; `0`, `false`, `no` is off.
fn flag(name: &str, value: Option<&str>) -> Result<bool, ApiError> {
    match value.map(str::trim) {
        None => Ok(false),
        Some("" | "1" | "true" | "yes") => Ok(true),
        Some("0" | "false" | "no") => Ok(false),
        Some(other) => Err(ApiError::BadRequest(format!(
            "`{name}` must be 1 or 0, not `{other}`"
        ))),
    }
}

/// An item's log, whole or followed.
pub(super) async fn item_log(
    State(state): State<AppState>,
    Path((id, item)): Path<(String, String)>,
    query: Result<Query<LogParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(params) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let stream = match params.stream.as_deref().map(str::trim) {
        None | Some("" | "both") => None,
        Some(text) => Some(LogStream::parse(text).ok_or_else(|| {
            ApiError::BadRequest(format!("`stream` must be stdout or stderr, not `{text}`"))
        })?),
    };
    let timestamps = flag("timestamps", params.timestamps.as_deref())?;
    let follow = flag("follow", params.follow.as_deref())?;
    let download = flag("download", params.download.as_deref())?;
    let attempt = params.attempt;
    let store = state.store.clone();
    let (job, selection, reader) = blocking(move || {
        let job = resolve(store.as_ref(), &id)?;
        let record = logs::find_item(store.as_ref(), job, &item)?.ok_or_else(|| {
            ApiError::NotFound(format!("job {} has no item `{item}`", job.short()))
        })?;
        if let Some(attempt) = attempt {
            let attempts = store.attempts(job, Some(&record.key))?;
            if !attempts.iter().any(|a| a.number == attempt) {
                return Err(ApiError::NotFound(format!(
                    "item `{}` has no attempt {attempt}",
                    record.key
                )));
            }
        }
        let selection = LogSelection {
            item: Some(record),
            attempt,
            stream,
            timestamps,
        };
        let reader = LogReader::new(store.as_ref(), job, &selection, follow)?;
        Ok((job, selection, reader))
    })
    .await?;
    let file_name = selection
        .item
        .as_ref()
        .map(|item| file_name(&item.key, attempt))
        .unwrap_or_default();
    let body = if follow {
        let (tx, rx) = mpsc::channel::<Vec<u8>>(BUFFER);
        tokio::spawn(follow_log(state, job, selection, reader, tx));
        let stream = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv()
                .await
                .map(|bytes| (Ok::<_, std::convert::Infallible>(bytes), rx))
        });
        Body::from_stream(stream)
    } else {
        let store = state.store.clone();
        let text = blocking(move || {
            let mut reader = reader;
            let mut out = Vec::new();
            reader.read(store.as_ref(), &mut out)?;
            reader.finish(&mut out);
            Ok(out)
        })
        .await?;
        Body::from(text)
    };
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if download
        && let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{file_name}\""))
    {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(response)
}

/// `KEY.log` (`KEY.attempt-N.log`), with anything but letters, digits, `.`, `-` and `_`
/// made `_`, so the header cannot be broken by a key.
fn file_name(key: &str, attempt: Option<u32>) -> String {
    let safe: String = key
        .chars()
        .take(100)
        .map(|c| {
            if c.is_ascii_alphanumeric() || ".-_".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    match attempt {
        Some(n) => format!("{safe}.attempt-{n}.log"),
        None => format!("{safe}.log"),
    }
}

/// Reads the log as it grows and sends what is new, until the item (or the job) ended or the
/// client went away.
async fn follow_log(
    state: AppState,
    job: JobId,
    selection: LogSelection,
    mut reader: LogReader,
    tx: mpsc::Sender<Vec<u8>>,
) {
    let item = selection.item.clone();
    loop {
        let store = state.store.clone();
        let item = item.clone();
        let read = tokio::task::spawn_blocking(move || {
            let done = logs::follow_done(store.as_ref(), job, item.as_ref());
            let mut out = Vec::new();
            let read = reader.read(store.as_ref(), &mut out);
            if matches!(done, Ok(true)) {
                reader.finish(&mut out);
            }
            (reader, done.and_then(|done| read.map(|_| (done, out))))
        })
        .await;
        let Ok((back, result)) = read else { return };
        reader = back;
        match result {
            Ok((done, out)) => {
                if !out.is_empty() && tx.send(out).await.is_err() {
                    return;
                }
                if done {
                    return;
                }
            }
            Err(e) => {
                eprintln!("mmm serve: reading a log: {e}");
                let _ = tx.send(b"\n[the store could not be read]\n".to_vec()).await;
                return;
            }
        }
        tokio::time::sleep(FOLLOW_POLL).await;
    }
}
