//! The API's one error type: each variant maps to a status code and a JSON body
//! `{"error": "..."}`; server errors are logged to stderr and the client gets a short message.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use mmm_store::StoreError;

/// What a request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No such job, item or route.
    #[error("{0}")]
    NotFound(String),
    /// A bad parameter or id.
    #[error("{0}")]
    BadRequest(String),
    /// The job cannot do that now (a control request to a job that is not running).
    #[error("{0}")]
    Conflict(String),
    /// No token, or the wrong one.
    #[error("a valid token is required: send `Authorization: Bearer TOKEN` or `?token=TOKEN`")]
    Unauthorized,
    /// A WebSocket upgrade from a page of another origin.
    #[error("WebSocket connections from origin `{0}` are not allowed")]
    ForbiddenOrigin(String),
    /// The store failed.
    #[error("the store could not be read")]
    Store(#[source] StoreError),
    /// Something else went wrong on the server.
    #[error("{0}")]
    Internal(String),
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::JobNotFound { .. } | StoreError::InvalidJobId { .. } => {
                ApiError::NotFound(e.to_string())
            }
            StoreError::AmbiguousJob { .. } => ApiError::BadRequest(e.to_string()),
            other => ApiError::Store(other),
        }
    }
}

impl ApiError {
    /// The status code this error answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::ForbiddenOrigin(_) => StatusCode::FORBIDDEN,
            ApiError::Store(_) | ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            let mut chain = self.to_string();
            let mut source = std::error::Error::source(&self);
            while let Some(cause) = source {
                chain.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            eprintln!("mmm serve: {chain}");
        }
        let mut response = (status, Json(json!({ "error": self.to_string() }))).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}
