//! Webhooks: the list (`/webhooks`, paged), a new webhook (`/webhooks/new`),
//! one webhook's form (`/webhooks/{id}`), a new secret
//! (`/webhooks/{id}/secret`), enable/disable and delete.
//!
//! **The secret is shown once.** The answer to the create (or new-secret)
//! post is the only page that carries it — rendered from the post itself, not
//! redirected to, so no URL can show it again — with a copy button
//! (`data-copy`, dashboard.js). Every other page shows it masked; a secret
//! typed into a refused form is not put back into the form either. (The REST
//! API's list returns secrets; the pages never do.)
//!
//! Writes go through `routes::webhooks::{create, update, delete}` with the
//! API's rules and messages.

use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use maud::{Markup, html};
use serde::Deserialize;

use arvis_shared::domain::agent::Agent;
use arvis_shared::domain::webhook::{DEFAULT_TEMPLATE, NewWebhook, Webhook, WebhookPatch, generate_secret};

use super::fields::{self, ToggleForm, is_refusal, place};
use super::form::Errors;
use super::layout::{Ctx, NavItem, PageResult, page, page_with_status, see_other};
use super::pager::{PER_PAGE, PageParam, Pager};
use crate::error::ApiError;
use crate::extract::{AppForm, AppPath};
use crate::routes;
use crate::state::AppState;

pub const NAV: NavItem = NavItem { href: "/webhooks", label: "Webhooks", ready: true };

const FIELDS: &[&str] = &["name", "agentId", "secret", "promptTemplate", "channelId", "platform", "isEnabled"];

/// What a masked secret looks like (its length is not shown either).
const MASK: &str = "••••••••••••";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/webhooks", get(list))
        .route("/webhooks/new", get(new_form).post(create))
        .route("/webhooks/{id}", get(detail).post(update))
        .route("/webhooks/{id}/secret", post(new_secret))
        .route("/webhooks/{id}/enabled", post(set_enabled))
        .route("/webhooks/{id}/delete", post(delete))
}

/// The form as typed. `secret` is only read at creation, and never shown back.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookForm {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub agent_id: String,
    #[serde(default)]
    pub secret: String,
    #[serde(default)]
    pub prompt_template: String,
    #[serde(default)]
    pub channel_id: String,
    #[serde(default)]
    pub platform: String,
    #[serde(default)]
    pub is_enabled: Option<String>,
}

impl WebhookForm {
    fn from_webhook(w: &Webhook) -> WebhookForm {
        WebhookForm {
            name: w.name.clone(),
            agent_id: w.agent_id.to_string(),
            secret: String::new(),
            prompt_template: w.prompt_template.clone(),
            channel_id: w.channel_id.clone().unwrap_or_default(),
            platform: w.platform.clone().unwrap_or_default(),
            is_enabled: w.is_enabled.then(|| "on".into()),
        }
    }

    fn blank(agents: &[Agent]) -> WebhookForm {
        WebhookForm {
            agent_id: agents.first().map(|a| a.id.to_string()).unwrap_or_default(),
            prompt_template: DEFAULT_TEMPLATE.into(),
            is_enabled: Some("on".into()),
            ..WebhookForm::default()
        }
    }

    /// The form to show again after a refusal: without the typed secret.
    fn without_secret(&self) -> WebhookForm {
        WebhookForm { secret: String::new(), ..self.clone() }
    }

    fn into_new(self) -> Result<NewWebhook, Errors> {
        Ok(NewWebhook {
            agent_id: fields::parse_id("agentId", &self.agent_id)?,
            // Empty: the API generates one.
            secret: fields::non_empty(&self.secret),
            prompt_template: Some(self.prompt_template),
            channel_id: fields::non_empty(&self.channel_id),
            platform: fields::non_empty(&self.platform),
            is_enabled: Some(self.is_enabled.is_some()),
            name: self.name,
        })
    }

    fn into_patch(self) -> Result<WebhookPatch, Errors> {
        Ok(WebhookPatch {
            agent_id: Some(fields::parse_id("agentId", &self.agent_id)?),
            // The edit form has no secret: it stays (a new one: `/secret`).
            secret: None,
            prompt_template: Some(self.prompt_template),
            channel_id: Some(fields::non_empty(&self.channel_id)),
            platform: Some(fields::non_empty(&self.platform)),
            is_enabled: Some(self.is_enabled.is_some()),
            name: Some(self.name),
        })
    }
}

async fn list(ctx: Ctx, State(state): State<AppState>, Query(p): Query<PageParam>) -> PageResult {
    let store = &state.deps.store;
    let (_, total) = store.webhooks_page(0, 0).await?;
    let pager = Pager::new(p.number(), PER_PAGE, total);
    let (webhooks, _) = store.webhooks_page(pager.limit(), pager.offset()).await?;
    let agents = store.agents().await?;
    page(
        &ctx,
        "Webhooks",
        html! {
            p.actions { a href="/webhooks/new" { "New webhook" } }
            @if webhooks.is_empty() {
                p.empty { "No webhooks yet: a webhook lets another service (GitHub, a form, a monitor) message an agent." }
            } @else {
                div.table-wrap {
                    table {
                        thead { tr {
                            th { "Name" } th { "URL" } th { "Agent" } th { "Secret" } th { "Triggered" }
                            th { "Last" } th { "Status" } th { span.visually-hidden { "Actions" } }
                        } }
                        tbody {
                            @for w in &webhooks {
                                tr {
                                    td { a href={ "/webhooks/" (w.id) } { (w.name) } }
                                    td { code { (w.url) } }
                                    td { a href={ "/agents/" (w.agent_id) } { (fields::agent_name(&agents, w.agent_id)) } }
                                    td { span.masked aria-label="secret hidden" { (MASK) } }
                                    td { (w.trigger_count) }
                                    td { (fields::when(w.last_triggered_at.as_deref())) }
                                    td { (fields::state(w.is_enabled)) }
                                    td.row-actions {
                                        (fields::toggle(&format!("/webhooks/{}/enabled", w.id), w.is_enabled, &w.name))
                                        (fields::delete(&format!("/webhooks/{}/delete", w.id), &w.name))
                                    }
                                }
                            }
                        }
                    }
                }
                (pager.render("/webhooks", "page"))
            }
        },
    )
}

async fn new_form(ctx: Ctx, State(state): State<AppState>) -> PageResult {
    let agents = state.deps.store.agents().await?;
    page(&ctx, "New webhook", new_webhook_form(&WebhookForm::blank(&agents), &agents, &Errors::none()))
}

async fn create(ctx: Ctx, State(state): State<AppState>, AppForm(form): AppForm<WebhookForm>) -> PageResult {
    let agents = state.deps.store.agents().await?;
    let refused = |errors: Errors, status: StatusCode| {
        page_with_status(&ctx, status, "New webhook", new_webhook_form(&form.without_secret(), &agents, &errors))
    };
    let body = match form.clone().into_new() {
        Ok(body) => body,
        Err(errors) => return refused(errors, StatusCode::BAD_REQUEST),
    };
    match routes::webhooks::create(&state, body).await {
        Ok(webhook) => show_secret_once(&ctx, &webhook, "Webhook created"),
        Err(e) if is_refusal(&e) => refused(place(&e.message, FIELDS), e.status),
        Err(e) => Err(e.into()),
    }
}

/// The one page with the secret in it: the answer to the post that made it.
fn show_secret_once(ctx: &Ctx, w: &Webhook, title: &str) -> PageResult {
    let secret = w.secret.as_deref().unwrap_or("");
    page(
        ctx,
        title,
        html! {
            div.card.secret-once role="status" {
                p { strong { "Copy the secret now: it is not shown again." } " Give it to the service that calls "
                    code { (w.url) } "; it signs each request's body with it (HMAC-SHA256, header "
                    code { "X-Hub-Signature-256" } " or " code { "X-Webhook-Signature" } ", " code { "sha256=<hex>" } ")." }
                div.secret-row {
                    label for="webhook-secret" { "Secret" }
                    input #webhook-secret.secret type="text" readonly value=(secret) autocomplete="off" spellcheck="false";
                    button.secondary type="button" data-copy="#webhook-secret" { "Copy" }
                    span.copy-status role="status" aria-live="polite" {}
                }
            }
            p.actions {
                a href={ "/webhooks/" (w.id) } { "Webhook settings" }
                a href="/webhooks" { "All webhooks" }
            }
        },
    )
}

async fn load(state: &AppState, id: i64) -> Result<Webhook, ApiError> {
    Ok(state.deps.store.get_webhook(id).await?.ok_or_else(|| ApiError::not_found("webhook not found"))?.0)
}

async fn detail(ctx: Ctx, State(state): State<AppState>, AppPath(id): AppPath<i64>) -> PageResult {
    let w = load(&state, id).await?;
    render_detail(&ctx, &state, &w, &WebhookForm::from_webhook(&w), &Errors::none(), StatusCode::OK).await
}

async fn render_detail(
    ctx: &Ctx,
    state: &AppState,
    w: &Webhook,
    form: &WebhookForm,
    errors: &Errors,
    status: StatusCode,
) -> PageResult {
    let agents = state.deps.store.agents().await?;
    let base = format!("/webhooks/{}", w.id);
    page_with_status(
        ctx,
        status,
        &w.name,
        html! {
            p.actions { a href="/webhooks" { "← All webhooks" } }
            dl.facts {
                div { dt { "URL" } dd { code { (w.url) } } }
                div { dt { "Secret" } dd { span.masked aria-label="secret hidden" { (MASK) } } }
                div { dt { "Triggered" } dd { (w.trigger_count) } }
                div { dt { "Last" } dd { (fields::when(w.last_triggered_at.as_deref())) } }
            }
            h2 { "Settings" }
            form.card method="post" action=(base) {
                (errors.form_level())
                div.fields {
                    (fields::text(errors, "name", "Name", &form.name, Some("renaming keeps the URL")))
                    (fields::agent(errors, "agentId", "Agent", &agents, &form.agent_id, None))
                    (common_fields(form, errors))
                }
                div.actions { button type="submit" { "Save changes" } }
            }
            h2 { "Secret" }
            form.card method="post" action={ (base) "/secret" }
                data-confirm="Make a new secret? Senders using the old one are refused from now on." {
                p { "The secret was shown once, when it was made. A new one replaces it and is shown once." }
                button.secondary type="submit" { "Make a new secret" }
            }
            h2 { "Delete" }
            form.card method="post" action={ (base) "/delete" } data-confirm={ "Delete the webhook " (w.name) "?" } {
                p { "Deletes the webhook: calls to its URL are refused from now on." }
                button.danger type="submit" { "Delete webhook" }
            }
        },
    )
}

async fn update(
    ctx: Ctx,
    State(state): State<AppState>,
    AppPath(id): AppPath<i64>,
    AppForm(form): AppForm<WebhookForm>,
) -> PageResult {
    let w = load(&state, id).await?;
    let patch = match form.clone().into_patch() {
        Ok(p) => p,
        Err(errors) => return render_detail(&ctx, &state, &w, &form, &errors, StatusCode::BAD_REQUEST).await,
    };
    match routes::webhooks::update(&state, id, patch).await {
        Ok(_) => Ok(see_other(&format!("/webhooks/{id}"))),
        Err(e) if is_refusal(&e) => render_detail(&ctx, &state, &w, &form, &place(&e.message, FIELDS), e.status).await,
        Err(e) => Err(e.into()),
    }
}

async fn new_secret(ctx: Ctx, State(state): State<AppState>, AppPath(id): AppPath<i64>) -> PageResult {
    let patch = WebhookPatch { secret: Some(generate_secret()), ..WebhookPatch::default() };
    let webhook = routes::webhooks::update(&state, id, patch).await?;
    show_secret_once(&ctx, &webhook, "New webhook secret")
}

async fn set_enabled(
    State(state): State<AppState>,
    AppPath(id): AppPath<i64>,
    AppForm(t): AppForm<ToggleForm>,
) -> PageResult {
    let patch = WebhookPatch { is_enabled: Some(t.enabled()), ..WebhookPatch::default() };
    routes::webhooks::update(&state, id, patch).await?;
    Ok(see_other("/webhooks"))
}

async fn delete(State(state): State<AppState>, AppPath(id): AppPath<i64>) -> PageResult {
    routes::webhooks::delete(&state, id).await?;
    Ok(see_other("/webhooks"))
}

fn common_fields(f: &WebhookForm, errors: &Errors) -> Markup {
    html! {
        (fields::text(errors, "platform", "Platform", &f.platform, Some("optional: where the reply goes")))
        (fields::text(errors, "channelId", "Channel", &f.channel_id, Some("optional")))
        (fields::textarea(errors, "promptTemplate", "Prompt template", &f.prompt_template, 4,
            Some("{{payload}} is replaced by the request's body")))
        (fields::check(errors, "isEnabled", "Enabled (accepts calls)", f.is_enabled.is_some()))
    }
}

fn new_webhook_form(f: &WebhookForm, agents: &[Agent], errors: &Errors) -> Markup {
    html! {
        form.card method="post" action="/webhooks/new" {
            (errors.form_level())
            div.fields {
                (fields::text(errors, "name", "Name", &f.name, Some("its URL is /webhook/<name as a slug>")))
                (fields::agent(errors, "agentId", "Agent", agents, &f.agent_id, None))
                div.field {
                    label for="secret" { "Secret" }
                    // Never filled in: a refused form does not echo a secret.
                    input #secret type="password" name="secret" value="" autocomplete="new-password"
                        aria-invalid=[errors.invalid("secret")] aria-describedby="secret-error";
                    span.hint { "empty: one is generated (recommended); shown once after creation" }
                    (errors.field("secret"))
                }
                (common_fields(f, errors))
            }
            div.actions { button type="submit" { "Create webhook" } }
        }
    }
}
