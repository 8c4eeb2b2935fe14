//! `POST /api/jobs/{id}/control`: the dashboard's buttons steer a running job with the same
//! store request as `mmm pause`, `scale`, `drain`, ... (docs/control.md). The one write of the
//! server: behind the token like every route, and refused from a page of another origin.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::HeaderMap;

use super::api::resolve;
use super::{ApiError, AppState, blocking};
use mmm_core::control::ControlAction;
use mmm_core::job::now_ms;
use mmm_store::{ControlRecord, ControlRequest, StoreError};

/// Records the request the JSON body names (`{"action": "pause", "suspend": false}`, `{"action":
/// "scale", "agents": 6}`, ...) for the job; answers the recorded request. A job that is not
/// running is 409, a scale out of range or a bad body 400.
pub(super) async fn control(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Json<ControlAction>, JsonRejection>,
) -> Result<Json<ControlRecord>, ApiError> {
    if let Some(origin) = headers.get("origin") {
        let origin = origin.to_str().unwrap_or("");
        let host = headers
            .get("host")
            .and_then(|h| h.to_str().ok())
            .unwrap_or("");
        if !super::ws::same_origin(origin, host) {
            return Err(ApiError::ForbiddenOrigin(origin.to_string()));
        }
    }
    let Json(action) = body.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let store = state.store.clone();
    blocking(move || {
        let job = resolve(store.as_ref(), &id)?;
        let request = ControlRequest {
            action,
            host: mmm_store::owner::host_name(),
            pid: std::process::id(),
        };
        store
            .request_control(job, &request, now_ms())
            .map(Json)
            .map_err(|e| match e {
                StoreError::JobNotRunning { .. } => ApiError::Conflict(e.to_string()),
                StoreError::ControlRefused { .. } => ApiError::BadRequest(e.to_string()),
                other => ApiError::from(other),
            })
    })
    .await
}
