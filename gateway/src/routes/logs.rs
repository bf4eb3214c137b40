//! Recent log entries (reference: Logs).

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use arvis_shared::domain::logs::{DEFAULT_LIMIT, LogEntry, MAX_LIMIT, parse_min_level};

use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::AppQuery;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_logs))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogQuery {
    /// Minimum level: debug, info, warn or error.
    #[param(value_type = Option<arvis_shared::domain::logs::LogLevel>, inline)]
    pub level: Option<String>,
    /// Number of entries (default 100; more than 1000 gives 1000).
    #[param(minimum = 0)]
    pub limit: Option<i64>,
}

/// Recent log entries, newest first.
#[utoipa::path(get, path = "/api/logs", tag = "logs", params(LogQuery),
    responses((status = 200, body = Vec<LogEntry>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn list_logs(State(state): State<AppState>, AppQuery(q): AppQuery<LogQuery>) -> ApiResult<Json<Vec<LogEntry>>> {
    let min_level = parse_min_level(q.level.as_deref())?;
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if limit < 0 {
        return Err(ApiError::bad_request("limit must not be negative"));
    }
    Ok(Json(state.deps.store.list_logs(min_level, limit.min(MAX_LIMIT)).await?))
}
