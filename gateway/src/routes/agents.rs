//! Agents (reference: Agents): list, create, update, delete.

use axum::Json;
use axum::extract::State;
use std::sync::Arc;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse as _, Response};
use bytes::Bytes;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use arvis_shared::bus::events::ConfigChanged;
use arvis_shared::db::DbError;
use arvis_shared::domain::agent::{Agent, AgentPatch, NewAgent};

use super::Ok;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{AppJson, AppPath};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_agents, create_agent)).routes(routes!(update_agent, delete_agent))
}

fn duplicate_slug(e: DbError) -> ApiError {
    match e {
        DbError::Conflict(_) => ApiError::conflict("an agent with this slug already exists"),
        other => other.into(),
    }
}

async fn changed(state: &AppState, id: i64) {
    state.deps.bus.signal(&ConfigChanged { v: 1, entity: "agent".into(), id: Some(id) }).await;
}

/// List all agents.
#[utoipa::path(get, path = "/api/agents", tag = "agents", responses((status = 200, body = Vec<Agent>), (status = 401, body = ErrorBody)))]
async fn list_agents(State(state): State<AppState>) -> ApiResult<Response> {
    // The store caches the list; the JSON made from a list is kept beside it,
    // so a repeated read is two pointer comparisons and a reference-count bump.
    let agents = state.deps.store.agents().await?;
    let cached = state
        .agents_json
        .lock()
        .ok()
        .and_then(|slot| slot.as_ref().and_then(|(from, bytes)| Arc::ptr_eq(from, &agents).then(|| bytes.clone())));
    let bytes = match cached {
        Some(bytes) => bytes,
        None => {
            let bytes = Bytes::from(serde_json::to_vec(agents.as_ref()).map_err(ApiError::internal)?);
            if let Ok(mut slot) = state.agents_json.lock() {
                *slot = Some((agents, bytes.clone()));
            }
            bytes
        }
    };
    Ok(([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], bytes).into_response())
}

/// Create an agent. `slug` must be unique and match `[a-z0-9_-]`; `role` is one
/// of conductor, specialist, analyst, creative, technical.
#[utoipa::path(post, path = "/api/agents", tag = "agents", request_body = NewAgent,
    responses((status = 201, body = Agent), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 413, body = ErrorBody)))]
async fn create_agent(
    State(state): State<AppState>,
    AppJson(body): AppJson<NewAgent>,
) -> ApiResult<(StatusCode, Json<Agent>)> {
    Ok((StatusCode::CREATED, Json(create(&state, body).await?)))
}

/// Creates an agent: the REST handler's and the dashboard's one path.
pub async fn create(state: &AppState, body: NewAgent) -> ApiResult<Agent> {
    let settings = state.deps.store.settings().await?;
    let fields = body.into_fields(&settings.default_model)?;
    let agent = state.deps.store.create_agent(&fields).await.map_err(duplicate_slug)?;
    changed(state, agent.id).await;
    Ok(agent)
}

/// Update any agent field; send only the fields to change.
#[utoipa::path(patch, path = "/api/agents/{id}", tag = "agents", params(("id" = i64, Path)), request_body = AgentPatch,
    responses((status = 200, body = Agent), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn update_agent(
    State(state): State<AppState>,
    AppPath(id): AppPath<i64>,
    AppJson(patch): AppJson<AgentPatch>,
) -> ApiResult<Json<Agent>> {
    Ok(Json(update(&state, id, patch).await?))
}

/// Applies a patch to an agent (REST and dashboard).
pub async fn update(state: &AppState, id: i64, patch: AgentPatch) -> ApiResult<Agent> {
    let store = &state.deps.store;
    let current = store.get_agent(id).await?.ok_or_else(|| ApiError::not_found("agent not found"))?;
    let fields = patch.apply(&current)?;
    let agent = store
        .update_agent(id, &fields)
        .await
        .map_err(duplicate_slug)?
        .ok_or_else(|| ApiError::not_found("agent not found"))?;
    changed(state, id).await;
    Ok(agent)
}

/// Delete an agent with its conversations, memory, workflows and webhooks.
/// The active conductor (settings' `conductorAgentId`) cannot be deleted (409).
#[utoipa::path(delete, path = "/api/agents/{id}", tag = "agents", params(("id" = i64, Path)),
    responses((status = 200, body = Ok), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn delete_agent(State(state): State<AppState>, AppPath(id): AppPath<i64>) -> ApiResult<Json<Ok>> {
    delete(&state, id).await?;
    Ok(Ok::json())
}

/// Deletes an agent unless it is the active conductor (REST and dashboard).
pub async fn delete(state: &AppState, id: i64) -> ApiResult<()> {
    let store = &state.deps.store;
    if store.settings().await?.conductor_agent_id == Some(id) {
        return Err(ApiError::conflict("cannot delete the active conductor; set another conductorAgentId first"));
    }
    if !store.delete_agent(id).await? {
        return Err(ApiError::not_found("agent not found"));
    }
    changed(state, id).await;
    Ok(())
}
