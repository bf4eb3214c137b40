//! API keys for the OpenAI-compatible `/v1` API (an extension; issue 21):
//! `POST /api/keys` returns the key once, `GET /api/keys` lists them without
//! it, `PATCH` renames, rescopes, rebudgets or disables, `DELETE` revokes.
//!
//! The key is never stored (only its SHA-256, see
//! [`arvis_shared::domain::api_key`]), never logged and never shown again.
//! These keys authenticate `/v1` only: the rest of the API refuses them.
//! Disabling or deleting takes effect at once on every gateway replica,
//! because `/v1` reads the key's row on every request ([`authenticate`]).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use arvis_shared::budget::{self, BudgetError, Period};
use arvis_shared::clock::now_ms;
use arvis_shared::db::usage::Spender;
use arvis_shared::db::{DbError, Store};
use arvis_shared::domain::api_key::{self, ApiKey, ApiKeyPatch, ApiKeyView, NewApiKey};

use super::Ok;
use super::v1::error::V1Error;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{AppJson, AppPath};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_keys, create_key)).routes(routes!(update_key, delete_key))
}

/// `POST /api/keys` answer: the key's listing plus the key, this once.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedKey {
    #[serde(flatten)]
    pub listing: ApiKeyView,
    /// The key (`arvis_sk_…`). Shown only in this answer: store it now.
    pub key: String,
}

async fn check_agents(store: &Store, agents: Option<&Vec<String>>) -> ApiResult<()> {
    let Some(agents) = agents else { return Ok(()) };
    let known = store.agents().await?;
    if let Some(missing) = agents.iter().find(|slug| !known.iter().any(|a| &a.slug == *slug)) {
        return Err(ApiError::bad_request(format!("agents: no agent has the slug {missing:?}")));
    }
    Ok(())
}

async fn view(store: &Store, key: &ApiKey) -> ApiResult<ApiKeyView> {
    let spent = store.spend_since(Spender::ApiKey(key.id), Period::Month.start(now_ms())).await?;
    Ok(key.view(spent))
}

/// List the `/v1` API keys (never the keys themselves) with this month's spend.
#[utoipa::path(get, path = "/api/keys", tag = "keys",
    responses((status = 200, body = Vec<ApiKeyView>), (status = 401, body = ErrorBody)))]
async fn list_keys(State(state): State<AppState>) -> ApiResult<Json<Vec<ApiKeyView>>> {
    let store = &state.deps.store;
    let spent = store.spend_by_key_since(Period::Month.start(now_ms())).await?;
    let keys = store.api_keys().await?;
    Ok(Json(keys.iter().map(|k| k.view(spent.get(&k.id).copied().unwrap_or(0.0))).collect()))
}

/// Create a `/v1` API key. The answer holds the key; it is not shown again.
#[utoipa::path(post, path = "/api/keys", tag = "keys", request_body = NewApiKey,
    responses((status = 201, body = CreatedKey), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 413, body = ErrorBody)))]
async fn create_key(
    State(state): State<AppState>,
    AppJson(body): AppJson<NewApiKey>,
) -> ApiResult<(StatusCode, Json<CreatedKey>)> {
    let fields = body.into_fields()?;
    let store = &state.deps.store;
    check_agents(store, fields.agents.as_ref()).await?;
    let issued = api_key::issue();
    let key = store.create_api_key(&fields, &issued.prefix, &issued.hash, now_ms()).await?;
    tracing::info!(key_id = key.id, prefix = %key.prefix, "API key created");
    Ok((StatusCode::CREATED, Json(CreatedKey { listing: key.view(0.0), key: issued.key })))
}

/// Rename, rescope, rebudget, set the expiry of, or disable a key.
#[utoipa::path(patch, path = "/api/keys/{id}", tag = "keys", params(("id" = i64, Path)), request_body = ApiKeyPatch,
    responses((status = 200, body = ApiKeyView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 413, body = ErrorBody)))]
async fn update_key(
    State(state): State<AppState>,
    AppPath(id): AppPath<i64>,
    AppJson(body): AppJson<ApiKeyPatch>,
) -> ApiResult<Json<ApiKeyView>> {
    let store = &state.deps.store;
    let current = store.api_key(id).await?.ok_or_else(|| ApiError::not_found("API key not found"))?;
    let fields = body.apply(&current)?;
    check_agents(store, fields.agents.as_ref()).await?;
    let key =
        store.update_api_key(id, &fields, now_ms()).await?.ok_or_else(|| ApiError::not_found("API key not found"))?;
    Ok(Json(view(store, &key).await?))
}

/// Revoke a key: refused from the next request on, on every gateway.
#[utoipa::path(delete, path = "/api/keys/{id}", tag = "keys", params(("id" = i64, Path)),
    responses((status = 200, body = super::Ok), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn delete_key(State(state): State<AppState>, AppPath(id): AppPath<i64>) -> ApiResult<Json<Ok>> {
    if !state.deps.store.delete_api_key(id).await? {
        return Err(ApiError::not_found("API key not found"));
    }
    tracing::info!(key_id = id, "API key revoked");
    Ok(Ok::json())
}

/// The usable key a presented `arvis_sk_…` text is, or `None`: unknown,
/// disabled or expired. Records the use at most once a minute.
pub async fn authenticate(store: &Store, presented: &str) -> Result<Option<ApiKey>, DbError> {
    let now = now_ms();
    let Some(key) = store.api_key_by_hash(&api_key::hash(presented)).await? else { return Ok(None) };
    if !key.usable(now) {
        return Ok(None);
    }
    if key.last_used_at.is_none_or(|at| at < now - arvis_shared::db::api_keys::TOUCH_EVERY_MS) {
        // Best effort: a failed write must not refuse a valid key.
        if let Err(error) = store.touch_api_key(key.id, now).await {
            tracing::warn!(%error, key_id = key.id, "cannot record the API key's last use");
        }
    }
    Ok(Some(key))
}

/// 429 `insufficient_quota` when the key's monthly budget is used up.
pub async fn check_key_budget(state: &AppState, key: &ApiKey) -> Result<(), V1Error> {
    let limits = budget::limits(None, key.monthly_budget_usd);
    match budget::check(&state.deps.store, Spender::ApiKey(key.id), &format!("API key {}", key.name), &limits, 0.0)
        .await
    {
        Ok(()) => Ok(()),
        Err(BudgetError::Over(over)) => Err(V1Error::insufficient_quota(over.to_string())),
        Err(BudgetError::Db(db)) => Err(db.into()),
    }
}
