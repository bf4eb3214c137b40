//! Bot instances (reference: Bot Instances): connector configurations with
//! their agent assignments. `token` is the NAME of an environment variable.
//!
//! Every write signals `ConfigChanged { entity: "bot" }`; the bridges' connector
//! managers also re-read the bots every 2 s, so a create, enable, disable,
//! re-bind or delete takes effect within 5 s without a restart (the original
//! needed one). `status`/`lastError` are what the bot's holder reports.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use arvis_shared::bus::events::ConfigChanged;
use arvis_shared::db::DbError;
use arvis_shared::domain::bot::{Bot, BotFields, BotPatch, NewBot};

use super::Ok;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{AppJson, AppPath};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_bots, create_bot)).routes(routes!(update_bot, delete_bot))
}

async fn changed(state: &AppState, id: i64) {
    state.deps.bus.signal(&ConfigChanged { v: 1, entity: "bot".into(), id: Some(id) }).await;
}

async fn check_agents(state: &AppState, f: &BotFields) -> ApiResult<()> {
    if !state.deps.store.agents_exist(&f.agent_ids()).await? {
        return Err(ApiError::bad_request("defaultAgentId or a channelBindings agentId names no existing agent"));
    }
    Ok(())
}

fn write_error(e: DbError) -> ApiError {
    match e {
        // The store's texts name the channel binding or the (platform, token variable) taken.
        DbError::Conflict(message) => ApiError::conflict(message),
        DbError::MissingReference(_) => ApiError::bad_request("an agent referenced by the bot does not exist"),
        other => other.into(),
    }
}

/// List all bot instances with their channel bindings.
#[utoipa::path(get, path = "/api/bots", tag = "bots", responses((status = 200, body = Vec<Bot>), (status = 401, body = ErrorBody)))]
async fn list_bots(State(state): State<AppState>) -> ApiResult<Json<Vec<Bot>>> {
    Ok(Json(state.deps.store.list_bots().await?))
}

/// Create a bot instance. `platform` is one of discord, telegram, slack,
/// whatsapp, matrix, sms, email; `token` names the environment variable that
/// holds the secret (e.g. `DISCORD_BOT_TOKEN`). A second bot with the same
/// platform and token variable is a 409. Telegram, Discord, Slack and Matrix
/// bots start running within 5 s. `settings` holds platform options: for
/// Slack, `{"appToken": "SLACK_APP_TOKEN_2"}` names the variable with the
/// app-level (xapp-, Socket Mode) token, `SLACK_APP_TOKEN` when absent; for
/// Matrix, `{"homeserverUrl": "MATRIX_HOMESERVER_URL_2", "userId":
/// "MATRIX_USER_ID_2"}` name the variables with the homeserver's URL and the
/// bot's user id (`MATRIX_HOMESERVER_URL`, `MATRIX_USER_ID` when absent) —
/// variable names like `token`, validated the same way, each only for its platform.
#[utoipa::path(post, path = "/api/bots", tag = "bots", request_body = NewBot,
    responses((status = 201, body = Bot), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 413, body = ErrorBody)))]
async fn create_bot(
    State(state): State<AppState>,
    AppJson(body): AppJson<NewBot>,
) -> ApiResult<(StatusCode, Json<Bot>)> {
    Ok((StatusCode::CREATED, Json(create(&state, body).await?)))
}

/// Creates a bot: the REST handler's and the dashboard's one path.
pub async fn create(state: &AppState, body: NewBot) -> ApiResult<Bot> {
    let fields = body.into_fields()?;
    check_agents(state, &fields).await?;
    let bot = state.deps.store.create_bot(&fields).await.map_err(write_error)?;
    changed(state, bot.id).await;
    Ok(bot)
}

/// Update a bot; `channelBindings`, when given, replaces the bot's bindings;
/// `settings` replaces the bot's settings (`null` clears them).
#[utoipa::path(patch, path = "/api/bots/{id}", tag = "bots", params(("id" = i64, Path)), request_body = BotPatch,
    responses((status = 200, body = Bot), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 413, body = ErrorBody)))]
async fn update_bot(
    State(state): State<AppState>,
    AppPath(id): AppPath<i64>,
    AppJson(patch): AppJson<BotPatch>,
) -> ApiResult<Json<Bot>> {
    Ok(Json(update(&state, id, patch).await?))
}

/// Applies a patch to a bot (REST and dashboard).
pub async fn update(state: &AppState, id: i64, patch: BotPatch) -> ApiResult<Bot> {
    let store = &state.deps.store;
    let current = store.get_bot(id).await?.ok_or_else(|| ApiError::not_found("bot not found"))?;
    let fields = patch.apply(&current)?;
    check_agents(state, &fields).await?;
    let bot = store
        .update_bot(id, &fields)
        .await
        .map_err(write_error)?
        .ok_or_else(|| ApiError::not_found("bot not found"))?;
    changed(state, id).await;
    Ok(bot)
}

/// Delete a bot instance (its channel bindings go with it).
#[utoipa::path(delete, path = "/api/bots/{id}", tag = "bots", params(("id" = i64, Path)),
    responses((status = 200, body = Ok), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn delete_bot(State(state): State<AppState>, AppPath(id): AppPath<i64>) -> ApiResult<Json<Ok>> {
    delete(&state, id).await?;
    Ok(Ok::json())
}

/// Deletes a bot (REST and dashboard).
pub async fn delete(state: &AppState, id: i64) -> ApiResult<()> {
    if !state.deps.store.delete_bot(id).await? {
        return Err(ApiError::not_found("bot not found"));
    }
    changed(state, id).await;
    Ok(())
}
