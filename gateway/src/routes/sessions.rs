//! Conversations (reference: Conversations / Sessions, and an agent's
//! dashboard history).

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use arvis_shared::domain::check_text;
use arvis_shared::domain::conversation::{
    ChatMessage, ConversationThread, DASHBOARD_PLATFORM, SessionSummary, dashboard_channel,
};

use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{AppPath, AppQuery};
use crate::state::AppState;

pub const DEFAULT_LIMIT: i64 = 50;
pub const MAX_LIMIT: i64 = 200;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_sessions)).routes(routes!(get_conversation)).routes(routes!(agent_history))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Page {
    /// Number of results (default 50; more than 200 gives 200).
    #[param(minimum = 0)]
    pub limit: Option<i64>,
    /// Pagination offset (default 0).
    #[param(minimum = 0)]
    pub offset: Option<i64>,
}

/// Recent conversations, newest activity first.
#[utoipa::path(get, path = "/api/sessions", tag = "sessions", params(Page),
    responses((status = 200, body = Vec<SessionSummary>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn list_sessions(
    State(state): State<AppState>,
    AppQuery(page): AppQuery<Page>,
) -> ApiResult<Json<Vec<SessionSummary>>> {
    let limit = page.limit.unwrap_or(DEFAULT_LIMIT);
    let offset = page.offset.unwrap_or(0);
    if limit < 0 || offset < 0 {
        return Err(ApiError::bad_request("limit and offset must not be negative"));
    }
    Ok(Json(state.deps.store.list_sessions(limit.min(MAX_LIMIT), offset).await?))
}

/// The full message thread of a conversation.
#[utoipa::path(get, path = "/api/conversations/{id}", tag = "sessions", params(("id" = String, Path)),
    responses((status = 200, body = ConversationThread), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn get_conversation(
    State(state): State<AppState>,
    AppPath(id): AppPath<String>,
) -> ApiResult<Json<ConversationThread>> {
    thread(&state, &id).await.map(Json)
}

/// A conversation's thread as `GET /api/conversations/{id}` answers it (the
/// dashboard's JSON export is this same value).
pub async fn thread(state: &AppState, id: &str) -> ApiResult<ConversationThread> {
    check_text("id", id, 200)?;
    state.deps.store.get_conversation_thread(id).await?.ok_or_else(|| ApiError::not_found("conversation not found"))
}

/// Message history of an agent's dashboard chat (its newest dashboard
/// conversation); `[]` when there is none.
#[utoipa::path(get, path = "/api/agents/{id}/history", tag = "agents", params(("id" = i64, Path)),
    responses((status = 200, body = Vec<ChatMessage>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn agent_history(State(state): State<AppState>, AppPath(id): AppPath<i64>) -> ApiResult<Json<Vec<ChatMessage>>> {
    let store = &state.deps.store;
    if store.get_agent(id).await?.is_none() {
        return Err(ApiError::not_found("agent not found"));
    }
    let Some(conversation) = store.latest_conversation(id, DASHBOARD_PLATFORM, &dashboard_channel(id)).await? else {
        return Ok(Json(vec![]));
    };
    Ok(Json(store.thread_messages(&conversation).await?))
}
