//! The error bodies upstream clients branch on: `{"detail": "..."}` for handled errors,
//! `{"detail": [...]}` (422) for request validation, `{"message": ...}` (500) otherwise.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use kernelci_model::{FieldError, InputError};
use kernelci_store::StoreError;
use serde_json::json;

/// An error answer.
#[derive(Debug)]
pub enum ApiError {
    /// A status with a `detail` string.
    Detail(StatusCode, String),
    /// 422 with FastAPI-style field errors.
    Validation(Vec<FieldError>),
    /// 500; the reason is logged, not sent.
    Internal(String),
}

/// Result alias for handlers.
pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    /// 400 with a detail.
    pub fn bad_request(msg: impl Into<String>) -> Self {
        ApiError::Detail(StatusCode::BAD_REQUEST, msg.into())
    }
    /// 404 with a detail.
    pub fn not_found(msg: impl Into<String>) -> Self {
        ApiError::Detail(StatusCode::NOT_FOUND, msg.into())
    }
    /// 401 `Unauthorized`.
    pub fn unauthorized() -> Self {
        ApiError::Detail(StatusCode::UNAUTHORIZED, "Unauthorized".into())
    }
    /// 403 `Forbidden`.
    pub fn forbidden() -> Self {
        ApiError::Detail(StatusCode::FORBIDDEN, "Forbidden".into())
    }
    /// 422 for one query or body field.
    pub fn invalid_field(loc: &[&str], kind: &str, msg: &str, input: serde_json::Value) -> Self {
        ApiError::Validation(vec![FieldError::new(
            kind,
            loc.iter().map(|s| s.to_string()).collect(),
            msg,
            input,
        )])
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError::Internal(e.to_string())
    }
}

impl From<InputError> for ApiError {
    fn from(e: InputError) -> Self {
        match e {
            InputError::Body(errors) => ApiError::Validation(errors),
            InputError::Invalid(msg) => ApiError::bad_request(msg),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::Detail(status, detail) => {
                (status, axum::Json(json!({ "detail": detail }))).into_response()
            }
            ApiError::Validation(errors) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                axum::Json(json!({ "detail": errors })),
            )
                .into_response(),
            ApiError::Internal(reason) => {
                tracing::error!("internal error: {reason}");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    axum::Json(json!({"message": "Internal server error, check container logs"})),
                )
                    .into_response()
            }
        }
    }
}
