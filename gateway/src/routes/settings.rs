//! Settings (reference: Settings): the conductor agent and the default model.

use axum::Json;
use axum::extract::State;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use arvis_shared::bus::events::ConfigChanged;
use arvis_shared::domain::check_model;
use arvis_shared::domain::settings::{KEY_CONDUCTOR, KEY_DEFAULT_MODEL, Settings, SettingsPatch};

use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::AppJson;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_settings, update_settings))
}

/// Current settings.
#[utoipa::path(get, path = "/api/settings", tag = "settings",
    responses((status = 200, body = Settings), (status = 401, body = ErrorBody)))]
async fn get_settings(State(state): State<AppState>) -> ApiResult<Json<Settings>> {
    Ok(Json(state.deps.store.settings().await?))
}

/// Update settings. `conductorAgentId` must name an existing agent;
/// `defaultModel` is a model like `anthropic/claude-haiku-4-5-20251001`.
#[utoipa::path(patch, path = "/api/settings", tag = "settings", request_body = SettingsPatch,
    responses((status = 200, body = Settings), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 413, body = ErrorBody)))]
async fn update_settings(
    State(state): State<AppState>,
    AppJson(patch): AppJson<SettingsPatch>,
) -> ApiResult<Json<Settings>> {
    Ok(Json(update(&state, patch).await?))
}

/// Applies a settings patch (REST and dashboard).
pub async fn update(state: &AppState, patch: SettingsPatch) -> ApiResult<Settings> {
    let store = &state.deps.store;
    if let Some(model) = &patch.default_model {
        check_model("defaultModel", model)?;
    }
    if let Some(id) = patch.conductor_agent_id
        && store.get_agent(id).await?.is_none()
    {
        return Err(ApiError::bad_request("conductorAgentId names no existing agent"));
    }
    if let Some(model) = &patch.default_model {
        store.set_setting(KEY_DEFAULT_MODEL, model).await?;
    }
    if let Some(id) = patch.conductor_agent_id {
        store.set_setting(KEY_CONDUCTOR, &id.to_string()).await?;
    }
    state.deps.bus.signal(&ConfigChanged { v: 1, entity: "settings".into(), id: None }).await;
    Ok(store.settings().await?)
}
