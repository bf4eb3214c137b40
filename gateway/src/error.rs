//! `ApiError`: every failure the API returns, as the reference's
//! `{"error": "…"}` with the reference's status codes. A 5xx is logged here with
//! its cause and shown to the client as a generic message — internal text never
//! leaves the process.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use arvis_shared::db::DbError;
use arvis_shared::domain::Invalid;
use arvis_shared::intake::IntakeError;
use arvis_shared::routing::RouteError;

/// The error body of every failed request.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// Human-readable error message.
    pub error: String,
}

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// Extra headers (e.g. `Retry-After` on 429).
    pub retry_after: Option<u64>,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError { status, message: message.into(), retry_after: None }
    }
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }
    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, message)
    }
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }
    pub fn conflict(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, message)
    }
    pub fn too_many(message: impl Into<String>, retry_after_secs: u64) -> ApiError {
        ApiError { retry_after: Some(retry_after_secs), ..ApiError::new(StatusCode::TOO_MANY_REQUESTS, message) }
    }
    /// A server-side failure: the cause is logged, the client sees a generic text.
    pub fn internal(cause: impl std::fmt::Display) -> ApiError {
        tracing::error!(error = %cause, "internal error while serving a request");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal server error")
    }
    pub fn unavailable(cause: impl std::fmt::Display) -> ApiError {
        tracing::error!(error = %cause, "dependency unavailable while serving a request");
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "service temporarily unavailable")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(ErrorBody { error: self.message })).into_response();
        if let Some(secs) = self.retry_after
            && let Ok(v) = axum::http::HeaderValue::from_str(&secs.to_string())
        {
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, v);
        }
        response
    }
}

impl From<Invalid> for ApiError {
    fn from(e: Invalid) -> ApiError {
        ApiError::bad_request(e.0)
    }
}

impl From<DbError> for ApiError {
    fn from(e: DbError) -> ApiError {
        match e {
            DbError::NotFound => ApiError::not_found("not found"),
            DbError::Conflict(_) => ApiError::conflict("a record with the same unique value already exists"),
            DbError::MissingReference(_) => ApiError::bad_request("a referenced record does not exist"),
            // The database is away (pool exhausted or closed, connection cut,
            // server restarting), as opposed to a fault of ours: 503.
            DbError::Unavailable(_) | DbError::Closed => ApiError::unavailable(e),
            DbError::Corrupt(_) | DbError::Other(_) => ApiError::internal(e),
        }
    }
}

impl From<IntakeError> for ApiError {
    fn from(e: IntakeError) -> ApiError {
        match e {
            IntakeError::Invalid(invalid) => invalid.into(),
            IntakeError::Route(RouteError::UnknownAgent(_)) => ApiError::not_found("agent not found"),
            IntakeError::Route(route) => ApiError::conflict(route.to_string()),
            IntakeError::OverBudget(over) => ApiError::new(StatusCode::TOO_MANY_REQUESTS, over.to_string()),
            IntakeError::Unavailable(db) => db.into(),
        }
    }
}
