//! The JSON endpoints: the jobs list, one job's state, its agents, items (paged, with the
//! last attempt of failed and dead-lettered items), snapshots, resume ledger and how right its
//! ETA was; and the job's report as a download (the bytes of `mmm export`).

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::HeaderValue;
use axum::http::header::{CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_TYPE, LINK};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{ApiError, AppState, JobSummary, blocking};
use mmm_core::job::{ItemStatus, JobId, JobStatus, now_ms};
use mmm_report as report;
use mmm_store::job_state::JobState;
use mmm_store::{AttemptRecord, ItemPageQuery, ItemRecord, JobQuery, PagedItem, Store};

/// Most items one page returns.
pub(super) const MAX_ITEMS: usize = 500;
/// Items a page returns when no `limit` is given.
const DEFAULT_ITEMS: usize = 50;
/// Most snapshots one read returns.
const MAX_SNAPSHOTS: usize = 5_000;

/// Resolves a path's job id (full or an unambiguous prefix).
pub(super) fn resolve(store: &dyn Store, id: &str) -> Result<JobId, ApiError> {
    Ok(store.resolve_job(id)?)
}

/// Most jobs one page of `GET /api/jobs` returns.
pub(super) const MAX_JOBS: usize = 1_000;

/// The filters of `GET /api/jobs` (and of the WebSocket's jobs feed).
#[derive(Debug, Default, Deserialize, Serialize)]
pub(super) struct JobsQuery {
    /// At most this many jobs (1..=1000); every job without it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) limit: Option<usize>,
    /// The cursor: jobs older than this one (the id of the last job of the previous page).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) before: Option<String>,
    /// Only these statuses, comma-separated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) status: Option<String>,
    /// Only names matching this glob.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) name: Option<String>,
    /// Only jobs created in the last DURATION (`24h`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) since: Option<String>,
}

impl JobsQuery {
    /// The store's query; a value that does not parse is a bad request naming it.
    pub(super) fn to_store_query(&self) -> Result<JobQuery, ApiError> {
        let limit = match self.limit {
            Some(n) if n == 0 || n > MAX_JOBS => {
                return Err(ApiError::BadRequest(format!(
                    "limit must be between 1 and {MAX_JOBS}"
                )));
            }
            other => other,
        };
        let before = match self.before.as_deref() {
            None | Some("") => None,
            Some(id) => Some(
                id.parse::<JobId>()
                    .map_err(|_| ApiError::BadRequest(format!("before: `{id}` is not a job id")))?,
            ),
        };
        let statuses = match self.status.as_deref() {
            None | Some("") | Some("all") => Vec::new(),
            Some(list) => list
                .split(',')
                .map(|s| {
                    s.trim().parse::<JobStatus>().map_err(|_| {
                        let known: Vec<&str> = JobStatus::ALL.iter().map(|s| s.as_str()).collect();
                        ApiError::BadRequest(format!(
                            "unknown job status `{s}`: use {}",
                            known.join(", ")
                        ))
                    })
                })
                .collect::<Result<_, _>>()?,
        };
        let created_since = match self.since.as_deref() {
            None | Some("") => None,
            Some(text) => {
                let ago = humantime::parse_duration(text).map_err(|e| {
                    ApiError::BadRequest(format!("since: `{text}` is not a duration ({e})"))
                })?;
                Some(now_ms().saturating_sub(i64::try_from(ago.as_millis()).unwrap_or(i64::MAX)))
            }
        };
        Ok(JobQuery {
            statuses,
            name: None,
            name_glob: self.name.clone().filter(|n| !n.is_empty()),
            created_since,
            active_since: None,
            before,
            limit,
        })
    }

    /// This query's next page: the same filters, before `last`.
    fn next_page(&self, last: JobId) -> String {
        let next = JobsQuery {
            before: Some(last.to_string()),
            limit: self.limit,
            status: self.status.clone(),
            name: self.name.clone(),
            since: self.since.clone(),
        };
        // The codec axum's `Query` reads it back with.
        let query = serde_urlencoded::to_string(&next).unwrap_or_default();
        format!("/api/jobs?{query}")
    }
}

/// `GET /api/jobs?limit=&before=&status=&name=&since=`: jobs newest first, filtered. A full
/// page carries a `Link: <...>; rel="next"` header (RFC 8288) to the next one, so the body
/// stays the array it always was.
pub(super) async fn jobs(
    State(state): State<AppState>,
    query: Result<Query<JobsQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let store_query = query.to_store_query()?;
    let store = state.store.clone();
    let page_query = store_query.clone();
    let jobs =
        blocking(move || Ok(JobSummary::load_matching(store.as_ref(), &page_query)?)).await?;
    let next = match (store_query.limit, jobs.last()) {
        (Some(limit), Some(last)) if jobs.len() == limit => Some(query.next_page(last.id)),
        _ => None,
    };
    let mut response = Json(jobs).into_response();
    if let Some(next) = next
        && let Ok(value) = HeaderValue::from_str(&format!("<{next}>; rel=\"next\""))
    {
        response.headers_mut().insert(LINK, value);
    }
    Ok(response)
}

/// `GET /api/jobs/{id}`: the job's state ([`JobState`]).
pub(super) async fn job(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<JobState>, ApiError> {
    let store = state.store.clone();
    let job = blocking(move || {
        let job = resolve(store.as_ref(), &id)?;
        Ok(JobState::load(store.as_ref(), job)?)
    })
    .await?;
    Ok(Json(job))
}

/// `GET /api/jobs/{id}/eta-accuracy`: how right the job's ETA was (`{"job", "eta_accuracy"}`,
/// null while it runs or when it showed no estimate; docs/eta.md, "How right it was").
pub(super) async fn eta_accuracy(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let store = state.store.clone();
    let (job, accuracy) = blocking(move || {
        let job = store.job(resolve(store.as_ref(), &id)?)?;
        let accuracy = mmm_store::stats::eta_accuracy(store.as_ref(), &job)?;
        Ok((job.id, accuracy))
    })
    .await?;
    Ok(Json(json!({ "job": job, "eta_accuracy": accuracy })))
}

/// `GET /api/jobs/{id}/agents`: the agents of the newest snapshot.
pub(super) async fn agents(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let store = state.store.clone();
    blocking(move || {
        let job = resolve(store.as_ref(), &id)?;
        let snapshot = store.latest_snapshot(job)?;
        let (at, agents) = match snapshot {
            Some(s) => (Some(s.at), s.payload.agents),
            None => (None, Vec::new()),
        };
        Ok(Json(json!({ "job": job, "at": at, "agents": agents })))
    })
    .await
}

/// Query of `GET /api/jobs/{id}/items`.
#[derive(Debug, Deserialize)]
pub(super) struct ItemsQuery {
    status: Option<String>,
    offset: Option<usize>,
    limit: Option<usize>,
}

/// The last attempt of an item, as the items page shows it.
#[derive(Debug, Serialize)]
pub(super) struct LastAttempt {
    number: u32,
    agent: String,
    started_at: i64,
    ended_at: Option<i64>,
    duration_us: Option<u64>,
    outcome: Option<mmm_core::job::AttemptOutcome>,
    exit_code: Option<i32>,
    error: Option<String>,
    stdout_tail: String,
    stderr_tail: String,
}

impl From<AttemptRecord> for LastAttempt {
    fn from(a: AttemptRecord) -> Self {
        LastAttempt {
            number: a.number,
            agent: a.agent,
            started_at: a.started_at,
            ended_at: a.ended_at,
            duration_us: a.duration_us,
            outcome: a.outcome,
            exit_code: a.exit_code,
            error: a.error,
            stdout_tail: a.stdout_tail,
            stderr_tail: a.stderr_tail,
        }
    }
}

/// One item of a page.
#[derive(Debug, Serialize)]
pub(super) struct ItemView {
    #[serde(flatten)]
    item: ItemRecord,
    /// For failed and dead-lettered items: the last attempt with its error and output tails.
    last_attempt: Option<LastAttempt>,
}

/// A page of items.
#[derive(Debug, Serialize)]
pub(super) struct ItemsPage {
    /// Items with the status asked for (all items without a filter).
    total: u64,
    offset: usize,
    limit: usize,
    items: Vec<ItemView>,
}

/// `GET /api/jobs/{id}/items?status=&offset=&limit=`: a page of items in input order.
pub(super) async fn items(
    State(state): State<AppState>,
    Path(id): Path<String>,
    query: Result<Query<ItemsQuery>, QueryRejection>,
) -> Result<Json<ItemsPage>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let status = match query.status.as_deref() {
        None | Some("") | Some("all") => None,
        Some(s) => Some(s.parse::<ItemStatus>().map_err(|_| {
            ApiError::BadRequest(format!(
                "unknown item status `{s}`: use pending, running, completed, failed, \
                 dead_lettered or skipped"
            ))
        })?),
    };
    let offset = query.offset.unwrap_or(0);
    let limit = query.limit.unwrap_or(DEFAULT_ITEMS);
    if limit == 0 || limit > MAX_ITEMS {
        return Err(ApiError::BadRequest(format!(
            "limit must be between 1 and {MAX_ITEMS}"
        )));
    }
    let store = state.store.clone();
    blocking(move || {
        let job = resolve(store.as_ref(), &id)?;
        // One read of the page (with each item's last attempt) and the count, whatever the
        // job's size.
        let page = store.items_page(
            job,
            &ItemPageQuery {
                status,
                offset: offset as u64,
                limit,
            },
        )?;
        let items = page
            .items
            .into_iter()
            .map(|PagedItem { item, last_attempt }| {
                let last_attempt = last_attempt
                    .filter(|_| {
                        matches!(item.status, ItemStatus::DeadLettered | ItemStatus::Failed)
                    })
                    .map(LastAttempt::from);
                ItemView { item, last_attempt }
            })
            .collect();
        Ok(Json(ItemsPage {
            total: page.total,
            offset,
            limit,
            items,
        }))
    })
    .await
}

/// Query of `GET /api/jobs/{id}/export`.
#[derive(Debug, Deserialize)]
pub(super) struct ExportQuery {
    format: Option<String>,
    what: Option<String>,
}

/// `GET /api/jobs/{id}/export?format=json|csv|html&what=items|snapshots`: the report
/// `mmm export` writes, byte for byte, as a download.
pub(super) async fn export(
    State(state): State<AppState>,
    Path(id): Path<String>,
    query: Result<Query<ExportQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let bad = |e: report::ReportError| ApiError::BadRequest(e.to_string());
    let format: report::Format = query
        .format
        .as_deref()
        .ok_or_else(|| ApiError::BadRequest("`format` is required: json, csv or html".into()))?
        .parse()
        .map_err(bad)?;
    let what: report::What = match query.what.as_deref() {
        None | Some("") => report::What::Items,
        Some(w) => w.parse().map_err(bad)?,
    };
    if (format, what) == (report::Format::Html, report::What::Snapshots) {
        return Err(bad(report::ReportError::HtmlSnapshots));
    }
    let store = state.store.clone();
    let (name, bytes) = blocking(move || {
        let job = resolve(store.as_ref(), &id)?;
        let record = store.job(job)?;
        let bytes = report::export(store.as_ref(), job, format, what).map_err(|e| match e {
            report::ReportError::Store(e) => ApiError::from(e),
            other => ApiError::Internal(other.to_string()),
        })?;
        Ok((report::file_name(&record.name, job, format, what), bytes))
    })
    .await?;
    let disposition = format!("attachment; filename=\"{name}\"");
    let disposition = HeaderValue::from_str(&disposition)
        .map_err(|_| ApiError::Internal("a file name that is not a header".into()))?;
    Ok((
        [
            (
                CONTENT_TYPE,
                HeaderValue::from_static(format.content_type()),
            ),
            (CONTENT_DISPOSITION, disposition),
            (CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        bytes,
    )
        .into_response())
}

/// Query of `GET /api/jobs/{id}/snapshots`.
#[derive(Debug, Deserialize)]
pub(super) struct SnapshotsQuery {
    after: Option<i64>,
    limit: Option<usize>,
}

/// `GET /api/jobs/{id}/snapshots?after=&limit=` (also `/history`): snapshots taken after
/// `after` (epoch ms), oldest first.
pub(super) async fn snapshots(
    State(state): State<AppState>,
    Path(id): Path<String>,
    query: Result<Query<SnapshotsQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let after = query.after.unwrap_or(-1);
    let limit = query.limit.unwrap_or(1_000);
    if limit == 0 || limit > MAX_SNAPSHOTS {
        return Err(ApiError::BadRequest(format!(
            "limit must be between 1 and {MAX_SNAPSHOTS}"
        )));
    }
    let store = state.store.clone();
    blocking(move || {
        let job = resolve(store.as_ref(), &id)?;
        let snapshots = store.snapshots(job, after, limit)?;
        let next = (snapshots.len() == limit)
            .then(|| snapshots.last().map(|s| s.at))
            .flatten();
        Ok(Json(
            json!({ "job": job, "snapshots": snapshots, "next_after": next }),
        ))
    })
    .await
}

/// `GET /api/jobs/{id}/ledger`: why items ran again, across resumes.
pub(super) async fn ledger(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let store = state.store.clone();
    blocking(move || {
        let job = resolve(store.as_ref(), &id)?;
        let ledger = store.ledger(job)?;
        Ok(Json(json!({ "job": job, "ledger": ledger })))
    })
    .await
}

/// `GET /healthz`: [`mmm_store::health::check`]: 200 when `ok`, 503 otherwise, the summary as the
/// body either way (the shape `mmm health --json` prints).
pub(super) async fn healthz(
    State(state): State<AppState>,
) -> Result<(axum::http::StatusCode, Json<mmm_store::health::Health>), ApiError> {
    let store = state.store.clone();
    let health = blocking(move || Ok(mmm_store::health::check(store.as_ref()))).await?;
    let status = if health.ok {
        axum::http::StatusCode::OK
    } else {
        axum::http::StatusCode::SERVICE_UNAVAILABLE
    };
    Ok((status, Json(health)))
}

/// Any other path.
pub(super) async fn not_found() -> ApiError {
    ApiError::NotFound("no such page or endpoint; the API is described in docs/api.md".into())
}
