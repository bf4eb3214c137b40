//! MCP servers (issue 23): `GET/POST /api/mcp-servers`, `PATCH/DELETE
//! /api/mcp-servers/{id}`, `GET /api/mcp-servers/{id}/tools`.
//!
//! The gateway connects to no MCP server: it stores the configuration
//! (secrets only as environment-variable names) and announces changes on the
//! bus; workers connect, and write the tools, status and last error they
//! see, which `/tools` reads back from the database.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use arvis_shared::bus::events::ConfigChanged;
use arvis_shared::db::DbError;
use arvis_shared::domain::mcp::{McpServer, McpServerPatch, McpToolList, NewMcpServer};

use super::Ok;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{AppJson, AppPath};
use crate::state::AppState;

/// The `ConfigChanged` entity workers listen for.
pub const ENTITY: &str = "mcp_server";

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_servers, create_server))
        .routes(routes!(update_server, delete_server))
        .routes(routes!(server_tools))
}

async fn changed(state: &AppState, id: i64) {
    state.deps.bus.signal(&ConfigChanged { v: 1, entity: ENTITY.into(), id: Some(id) }).await;
}

fn write_error(e: DbError) -> ApiError {
    match e {
        DbError::Conflict(_) => ApiError::conflict("an MCP server with this name already exists"),
        other => other.into(),
    }
}

/// List the configured MCP servers (environment-variable names only, never values).
#[utoipa::path(get, path = "/api/mcp-servers", tag = "mcp",
    responses((status = 200, body = Vec<McpServer>), (status = 401, body = ErrorBody)))]
async fn list_servers(State(state): State<AppState>) -> ApiResult<Json<Vec<McpServer>>> {
    Ok(Json(state.deps.store.list_mcp_servers().await?))
}

/// Add an MCP server: `stdio` (a `command` with `args`, and `env`: names of
/// the worker's environment variables to pass to it) or `http` (a Streamable
/// HTTP `url`, with `headers`: header name → environment-variable name).
#[utoipa::path(post, path = "/api/mcp-servers", tag = "mcp", request_body = NewMcpServer,
    responses((status = 201, body = McpServer), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 413, body = ErrorBody)))]
async fn create_server(
    State(state): State<AppState>,
    AppJson(body): AppJson<NewMcpServer>,
) -> ApiResult<(StatusCode, Json<McpServer>)> {
    let fields = body.into_fields()?;
    let server = state.deps.store.create_mcp_server(&fields).await.map_err(write_error)?;
    changed(&state, server.id).await;
    Ok((StatusCode::CREATED, Json(server)))
}

/// Change an MCP server; workers reconnect with the new configuration, and
/// its status and tools are unknown until one has.
#[utoipa::path(patch, path = "/api/mcp-servers/{id}", tag = "mcp", params(("id" = i64, Path)),
    request_body = McpServerPatch,
    responses((status = 200, body = McpServer), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 413, body = ErrorBody)))]
async fn update_server(
    State(state): State<AppState>,
    AppPath(id): AppPath<i64>,
    AppJson(patch): AppJson<McpServerPatch>,
) -> ApiResult<Json<McpServer>> {
    let store = &state.deps.store;
    let current = store.get_mcp_server(id).await?.ok_or_else(|| ApiError::not_found("MCP server not found"))?;
    let fields = patch.apply(&current)?;
    let server = store
        .update_mcp_server(id, &fields)
        .await
        .map_err(write_error)?
        .ok_or_else(|| ApiError::not_found("MCP server not found"))?;
    changed(&state, id).await;
    Ok(Json(server))
}

/// Remove an MCP server; workers stop it. Agents that name its tools simply
/// no longer get them.
#[utoipa::path(delete, path = "/api/mcp-servers/{id}", tag = "mcp", params(("id" = i64, Path)),
    responses((status = 200, body = Ok), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn delete_server(State(state): State<AppState>, AppPath(id): AppPath<i64>) -> ApiResult<Json<Ok>> {
    if !state.deps.store.delete_mcp_server(id).await? {
        return Err(ApiError::not_found("MCP server not found"));
    }
    changed(&state, id).await;
    Ok(Ok::json())
}

/// The tools the server offers, as the workers last saw them (`tools/list`,
/// refreshed on `notifications/tools/list_changed`), with its status
/// (`unknown` until a worker has connected, `ready`, `error`) and last error.
#[utoipa::path(get, path = "/api/mcp-servers/{id}/tools", tag = "mcp", params(("id" = i64, Path)),
    responses((status = 200, body = McpToolList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn server_tools(State(state): State<AppState>, AppPath(id): AppPath<i64>) -> ApiResult<Json<McpToolList>> {
    let list = state.deps.store.mcp_tool_list(id).await?.ok_or_else(|| ApiError::not_found("MCP server not found"))?;
    Ok(Json(list))
}
