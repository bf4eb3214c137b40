//! LLM accounts (reference: Accounts): list; change priority, activity, model.
//! Credentials are never returned and cannot be changed here.

use axum::Json;
use axum::extract::State;

use arvis_shared::bus::events::ConfigChanged;
use arvis_shared::domain::account::{Account, AccountPatch};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{AppJson, AppPath};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_accounts)).routes(routes!(update_account))
}

/// List all configured LLM accounts. The API key is never returned.
#[utoipa::path(get, path = "/api/accounts", tag = "accounts",
    responses((status = 200, body = Vec<Account>), (status = 401, body = ErrorBody)))]
async fn list_accounts(State(state): State<AppState>) -> ApiResult<Json<Vec<Account>>> {
    Ok(Json(state.deps.store.list_accounts().await?))
}

/// Update an account's priority, isActive or model. Credentials cannot be
/// changed through the API (400) — edit .env.
#[utoipa::path(patch, path = "/api/accounts/{id}", tag = "accounts", params(("id" = i64, Path)),
    request_body = AccountPatch,
    responses((status = 200, body = Account), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 413, body = ErrorBody)))]
async fn update_account(
    State(state): State<AppState>,
    AppPath(id): AppPath<i64>,
    AppJson(body): AppJson<serde_json::Value>,
) -> ApiResult<Json<Account>> {
    Ok(Json(update(&state, id, &body).await?))
}

/// Applies a patch (a JSON object: priority, isActive, model; anything else
/// is refused) to an account (REST and dashboard).
pub async fn update(state: &AppState, id: i64, body: &serde_json::Value) -> ApiResult<Account> {
    let patch = AccountPatch::from_json(body)?;
    let account =
        state.deps.store.update_account(id, &patch).await?.ok_or_else(|| ApiError::not_found("account not found"))?;
    state.deps.bus.signal(&ConfigChanged { v: 1, entity: "account".into(), id: Some(id) }).await;
    Ok(account)
}
