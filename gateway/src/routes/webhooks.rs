//! Webhooks (reference: Webhooks), management side. Deliveries arrive at
//! `POST /webhook/{path}` (handled elsewhere).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use arvis_shared::bus::events::ConfigChanged;
use arvis_shared::db::DbError;
use arvis_shared::domain::webhook::{NewWebhook, Webhook, WebhookPatch, is_reserved_path};

use super::Ok;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{AppJson, AppPath};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_webhooks, create_webhook)).routes(routes!(update_webhook, delete_webhook))
}

async fn changed(state: &AppState, id: i64) {
    state.deps.bus.signal(&ConfigChanged { v: 1, entity: "webhook".into(), id: Some(id) }).await;
}

async fn check_agent(state: &AppState, agent_id: i64) -> ApiResult<()> {
    if state.deps.store.get_agent(agent_id).await?.is_none() {
        return Err(ApiError::bad_request("agentId names no existing agent"));
    }
    Ok(())
}

fn write_error(e: DbError) -> ApiError {
    match e {
        DbError::Conflict(_) => ApiError::conflict("a webhook with this name (URL path) already exists"),
        DbError::MissingReference(_) => ApiError::bad_request("agentId names no existing agent"),
        other => other.into(),
    }
}

/// List all webhooks, with their URL path and shared secret.
#[utoipa::path(get, path = "/api/webhooks", tag = "webhooks",
    responses((status = 200, body = Vec<Webhook>), (status = 401, body = ErrorBody)))]
async fn list_webhooks(State(state): State<AppState>) -> ApiResult<Json<Vec<Webhook>>> {
    Ok(Json(state.deps.store.list_webhooks().await?))
}

/// Create a webhook; its URL is `/webhook/<slug of name>`. The secret is
/// generated (32 random bytes, hex) when not given.
#[utoipa::path(post, path = "/api/webhooks", tag = "webhooks", request_body = NewWebhook,
    responses((status = 201, body = Webhook), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 413, body = ErrorBody)))]
async fn create_webhook(
    State(state): State<AppState>,
    AppJson(body): AppJson<NewWebhook>,
) -> ApiResult<(StatusCode, Json<Webhook>)> {
    Ok((StatusCode::CREATED, Json(create(&state, body).await?)))
}

/// Creates a webhook: the REST handler's and the dashboard's one path.
///
/// A name whose path is reserved for a platform connector (`whatsapp`, `sms`)
/// is a 409, like a name whose path another webhook has: the request is
/// well-formed, the URL is taken.
pub async fn create(state: &AppState, body: NewWebhook) -> ApiResult<Webhook> {
    let fields = body.into_fields()?;
    if is_reserved_path(&fields.path) {
        return Err(ApiError::conflict(format!(
            "the URL path /webhook/{} is reserved for the {} connector; choose another name",
            fields.path,
            if fields.path == "sms" { "Twilio SMS" } else { "WhatsApp" }
        )));
    }
    check_agent(state, fields.agent_id).await?;
    let webhook = state.deps.store.create_webhook(&fields).await.map_err(write_error)?;
    changed(state, webhook.id).await;
    Ok(webhook)
}

/// Update a webhook (rename, enable/disable, change agent, template or
/// secret). Its URL stays the same.
#[utoipa::path(patch, path = "/api/webhooks/{id}", tag = "webhooks", params(("id" = i64, Path)),
    request_body = WebhookPatch,
    responses((status = 200, body = Webhook), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 413, body = ErrorBody)))]
async fn update_webhook(
    State(state): State<AppState>,
    AppPath(id): AppPath<i64>,
    AppJson(patch): AppJson<WebhookPatch>,
) -> ApiResult<Json<Webhook>> {
    Ok(Json(update(&state, id, patch).await?))
}

/// Applies a patch to a webhook (REST and dashboard).
pub async fn update(state: &AppState, id: i64, patch: WebhookPatch) -> ApiResult<Webhook> {
    let store = &state.deps.store;
    let (current, path) = store.get_webhook(id).await?.ok_or_else(|| ApiError::not_found("webhook not found"))?;
    let fields = patch.apply(&current, &path)?;
    if fields.agent_id != current.agent_id {
        check_agent(state, fields.agent_id).await?;
    }
    let webhook = store
        .update_webhook(id, &fields)
        .await
        .map_err(write_error)?
        .ok_or_else(|| ApiError::not_found("webhook not found"))?;
    changed(state, id).await;
    Ok(webhook)
}

/// Delete a webhook.
#[utoipa::path(delete, path = "/api/webhooks/{id}", tag = "webhooks", params(("id" = i64, Path)),
    responses((status = 200, body = Ok), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn delete_webhook(State(state): State<AppState>, AppPath(id): AppPath<i64>) -> ApiResult<Json<Ok>> {
    delete(&state, id).await?;
    Ok(Ok::json())
}

/// Deletes a webhook (REST and dashboard).
pub async fn delete(state: &AppState, id: i64) -> ApiResult<()> {
    if !state.deps.store.delete_webhook(id).await? {
        return Err(ApiError::not_found("webhook not found"));
    }
    changed(state, id).await;
    Ok(())
}
