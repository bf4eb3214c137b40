//! Workflows (reference: Workflows): scheduled agent runs. `schedule` is a
//! 5-field cron expression (UTC) or `every N s|min|h`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use arvis_shared::bus::events::ConfigChanged;
use arvis_shared::clock::now_ms;
use arvis_shared::db::DbError;
use arvis_shared::domain::workflow::{NewWorkflow, Workflow, WorkflowPatch};

use super::Ok;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{AppJson, AppPath};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_workflows, create_workflow))
        .routes(routes!(update_workflow, delete_workflow))
}

async fn changed(state: &AppState, id: i64) {
    state.deps.bus.signal(&ConfigChanged { v: 1, entity: "workflow".into(), id: Some(id) }).await;
}

async fn check_agent(state: &AppState, agent_id: i64) -> ApiResult<()> {
    if state.deps.store.get_agent(agent_id).await?.is_none() {
        return Err(ApiError::bad_request("agentId names no existing agent"));
    }
    Ok(())
}

fn missing_agent(e: DbError) -> ApiError {
    match e {
        DbError::MissingReference(_) => ApiError::bad_request("agentId names no existing agent"),
        other => other.into(),
    }
}

/// List all scheduled workflows.
#[utoipa::path(get, path = "/api/workflows", tag = "workflows",
    responses((status = 200, body = Vec<Workflow>), (status = 401, body = ErrorBody)))]
async fn list_workflows(State(state): State<AppState>) -> ApiResult<Json<Vec<Workflow>>> {
    Ok(Json(state.deps.store.list_workflows().await?))
}

/// Create a workflow. `schedule`: 5-field cron (UTC; 0 and 7 are Sunday) or
/// `every N s|min|h` (at least 10 s).
#[utoipa::path(post, path = "/api/workflows", tag = "workflows", request_body = NewWorkflow,
    responses((status = 201, body = Workflow), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 413, body = ErrorBody)))]
async fn create_workflow(
    State(state): State<AppState>,
    AppJson(body): AppJson<NewWorkflow>,
) -> ApiResult<(StatusCode, Json<Workflow>)> {
    Ok((StatusCode::CREATED, Json(create(&state, body).await?)))
}

/// Creates a workflow: the REST handler's and the dashboard's one path.
pub async fn create(state: &AppState, body: NewWorkflow) -> ApiResult<Workflow> {
    let fields = body.into_fields(now_ms(), &state.deps.config.scheduler_tz)?;
    check_agent(state, fields.agent_id).await?;
    let workflow = state.deps.store.create_workflow(&fields).await.map_err(missing_agent)?;
    changed(state, workflow.id).await;
    Ok(workflow)
}

/// Update or enable/disable a workflow. The next run is recomputed when the
/// schedule changes or the workflow is enabled.
#[utoipa::path(patch, path = "/api/workflows/{id}", tag = "workflows", params(("id" = i64, Path)),
    request_body = WorkflowPatch,
    responses((status = 200, body = Workflow), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 413, body = ErrorBody)))]
async fn update_workflow(
    State(state): State<AppState>,
    AppPath(id): AppPath<i64>,
    AppJson(patch): AppJson<WorkflowPatch>,
) -> ApiResult<Json<Workflow>> {
    Ok(Json(update(&state, id, patch).await?))
}

/// Applies a patch to a workflow (REST and dashboard).
pub async fn update(state: &AppState, id: i64, patch: WorkflowPatch) -> ApiResult<Workflow> {
    let store = &state.deps.store;
    let (current, next) = store.get_workflow(id).await?.ok_or_else(|| ApiError::not_found("workflow not found"))?;
    let fields = patch.apply(&current, next, now_ms(), &state.deps.config.scheduler_tz)?;
    if fields.agent_id != current.agent_id {
        check_agent(state, fields.agent_id).await?;
    }
    let workflow = store
        .update_workflow(id, &fields)
        .await
        .map_err(missing_agent)?
        .ok_or_else(|| ApiError::not_found("workflow not found"))?;
    changed(state, id).await;
    Ok(workflow)
}

/// Delete a workflow.
#[utoipa::path(delete, path = "/api/workflows/{id}", tag = "workflows", params(("id" = i64, Path)),
    responses((status = 200, body = Ok), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn delete_workflow(State(state): State<AppState>, AppPath(id): AppPath<i64>) -> ApiResult<Json<Ok>> {
    delete(&state, id).await?;
    Ok(Ok::json())
}

/// Deletes a workflow (REST and dashboard).
pub async fn delete(state: &AppState, id: i64) -> ApiResult<()> {
    if !state.deps.store.delete_workflow(id).await? {
        return Err(ApiError::not_found("workflow not found"));
    }
    changed(state, id).await;
    Ok(())
}
