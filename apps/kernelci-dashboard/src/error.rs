//! API errors: JSON `{"error": "..."}` with a 4xx or 5xx status.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use kernelci_kcidb::query::QueryError;
use serde_json::json;

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A query parameter or body that cannot be used (400).
    #[error("{0}")]
    BadRequest(String),
    /// Nothing with that id (404).
    #[error("{0}")]
    NotFound(String),
    /// The database failed (500); the details go to the log, not the client.
    #[error("database error")]
    Database(#[source] QueryError),
}

impl From<QueryError> for ApiError {
    fn from(e: QueryError) -> ApiError {
        match e {
            QueryError::Filter { .. } => ApiError::BadRequest(e.to_string()),
            other => ApiError::Database(other),
        }
    }
}

impl ApiError {
    fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Database(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Database(e) = &self {
            tracing::error!("dashboard query failed: {e}");
        }
        (self.status(), Json(json!({"error": self.to_string()}))).into_response()
    }
}

/// The result of a handler.
pub type ApiResult = Result<Response, ApiError>;
