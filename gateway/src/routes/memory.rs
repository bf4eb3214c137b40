//! Memory entries (reference: Memory).

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use arvis_shared::domain::memory::MemoryEntry;

use super::Ok;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{AppPath, AppQuery};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_memory)).routes(routes!(delete_memory))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
pub struct MemoryQuery {
    /// Only this agent's entries.
    pub agent_id: Option<i64>,
}

/// List memory entries (sticky facts), newest first.
#[utoipa::path(get, path = "/api/memory", tag = "memory", params(MemoryQuery),
    responses((status = 200, body = Vec<MemoryEntry>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn list_memory(
    State(state): State<AppState>,
    AppQuery(q): AppQuery<MemoryQuery>,
) -> ApiResult<Json<Vec<MemoryEntry>>> {
    Ok(Json(state.deps.store.list_memory(q.agent_id).await?))
}

/// Delete a memory entry.
#[utoipa::path(delete, path = "/api/memory/{id}", tag = "memory", params(("id" = i64, Path)),
    responses((status = 200, body = Ok), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn delete_memory(State(state): State<AppState>, AppPath(id): AppPath<i64>) -> ApiResult<Json<Ok>> {
    delete(&state, id).await?;
    Ok(Ok::json())
}

/// Deletes one memory entry (REST and dashboard).
pub async fn delete(state: &AppState, id: i64) -> ApiResult<()> {
    if !state.deps.store.delete_memory(id).await? {
        return Err(ApiError::not_found("memory entry not found"));
    }
    Ok(())
}
