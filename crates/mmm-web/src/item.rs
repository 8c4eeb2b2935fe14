//! `GET /api/jobs/{id}/items/{item}`: one item for its page on the dashboard: its record
//! (value, status, attempts counted) and every attempt (agent, times, outcome, exit code,
//! error, step durations, output tails), and whether the store keeps its log. `{item}` is its
//! key, or its number in the input (from 1).

use axum::Json;
use axum::extract::{Path, State};
use serde::Serialize;

use super::api::resolve;
use super::{ApiError, AppState, blocking};
use mmm_core::job::JobId;
use mmm_store::logs::{self, LogQuery};
use mmm_store::{AttemptRecord, ItemRecord};

/// The item page's data.
#[derive(Debug, Serialize)]
pub(super) struct ItemDetail {
    job: JobId,
    item: ItemRecord,
    /// Every attempt, oldest first.
    attempts: Vec<AttemptRecord>,
    /// True when the store holds some of its log (false under `logs: none`, or pruned, or
    /// before it wrote anything).
    logged: bool,
}

/// One item with its attempts.
pub(super) async fn item(
    State(state): State<AppState>,
    Path((id, item)): Path<(String, String)>,
) -> Result<Json<ItemDetail>, ApiError> {
    let store = state.store.clone();
    blocking(move || {
        let job = resolve(store.as_ref(), &id)?;
        let record = logs::find_item(store.as_ref(), job, &item)?.ok_or_else(|| {
            ApiError::NotFound(format!("job {} has no item `{item}`", job.short()))
        })?;
        let attempts = store.attempts(job, Some(&record.key))?;
        let query = LogQuery {
            item: Some(record.index),
            attempt: None,
            after_id: 0,
            limit: 1,
        };
        let logged = !store.log_chunks(job, &query)?.is_empty();
        Ok(Json(ItemDetail {
            job,
            item: record,
            attempts,
            logged,
        }))
    })
    .await
}
