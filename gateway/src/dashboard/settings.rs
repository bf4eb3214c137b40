//! Settings (`/settings`): the conductor agent (who answers first and
//! delegates) and the default model (for agents created without one).
//!
//! The post goes through `routes::settings::update`, so the rules of
//! `PATCH /api/settings` apply (the conductor must exist, the model must read
//! `provider/model`) and the API's message shows next to its field.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use maud::html;
use serde::Deserialize;

use arvis_shared::domain::settings::{Settings, SettingsPatch};

use super::fields::{self, is_refusal, place};
use super::form::Errors;
use super::layout::{Ctx, NavItem, PageResult, page_with_status, see_other};
use crate::extract::AppForm;
use crate::routes;
use crate::state::AppState;

pub const NAV: NavItem = NavItem { href: "/settings", label: "Settings", ready: true };

const FIELDS: &[&str] = &["conductorAgentId", "defaultModel"];

pub fn router() -> Router<AppState> {
    Router::new().route(NAV.href, get(show).post(update))
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SettingsForm {
    #[serde(default)]
    pub conductor_agent_id: String,
    #[serde(default)]
    pub default_model: String,
}

impl SettingsForm {
    fn from_settings(s: &Settings) -> SettingsForm {
        SettingsForm {
            conductor_agent_id: s.conductor_agent_id.map(|id| id.to_string()).unwrap_or_default(),
            default_model: s.default_model.clone(),
        }
    }

    /// An empty conductor leaves it as it is (the API has no "no conductor").
    fn into_patch(self) -> Result<SettingsPatch, Errors> {
        let conductor_agent_id = match fields::non_empty(&self.conductor_agent_id) {
            None => None,
            Some(v) => Some(fields::parse_id("conductorAgentId", &v)?),
        };
        Ok(SettingsPatch { conductor_agent_id, default_model: Some(self.default_model.trim().to_string()) })
    }
}

async fn show(ctx: Ctx, State(state): State<AppState>) -> PageResult {
    let settings = state.deps.store.settings().await?;
    render(&ctx, &state, &settings, &SettingsForm::from_settings(&settings), &Errors::none(), StatusCode::OK).await
}

async fn render(
    ctx: &Ctx,
    state: &AppState,
    settings: &Settings,
    form: &SettingsForm,
    errors: &Errors,
    status: StatusCode,
) -> PageResult {
    let agents = state.deps.store.agents().await?;
    let conductor = settings.conductor_agent_id.map(|id| fields::agent_name(&agents, id));
    page_with_status(
        ctx,
        status,
        "Settings",
        html! {
            dl.facts {
                div { dt { "Conductor" } dd {
                    @match (settings.conductor_agent_id, &conductor) {
                        (Some(id), Some(name)) => { a href={ "/agents/" (id) } { (name) } }
                        _ => { "none" }
                    }
                } }
                div { dt { "Default model" } dd { code { (settings.default_model) } } }
            }
            form.card method="post" action="/settings" {
                (errors.form_level())
                div.fields {
                    (fields::agent(errors, "conductorAgentId", "Conductor agent", &agents, &form.conductor_agent_id,
                        settings.conductor_agent_id.is_none().then_some("none")))
                    (fields::text(errors, "defaultModel", "Default model", &form.default_model,
                        Some("provider/model, e.g. anthropic/claude-haiku-4-5-20251001: for agents created without a model")))
                }
                div.actions { button type="submit" { "Save settings" } }
            }
        },
    )
}

async fn update(ctx: Ctx, State(state): State<AppState>, AppForm(form): AppForm<SettingsForm>) -> PageResult {
    let refused = |errors: Errors, status: StatusCode| {
        let (ctx, state, form) = (&ctx, &state, &form);
        async move {
            let settings = state.deps.store.settings().await?;
            render(ctx, state, &settings, form, &errors, status).await
        }
    };
    let patch = match form.clone().into_patch() {
        Ok(p) => p,
        Err(errors) => return refused(errors, StatusCode::BAD_REQUEST).await,
    };
    match routes::settings::update(&state, patch).await {
        Ok(_) => Ok(see_other("/settings")),
        Err(e) if is_refusal(&e) => refused(place(&e.message, FIELDS), e.status).await,
        Err(e) => Err(e.into()),
    }
}
