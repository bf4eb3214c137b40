//! Bots & connectors: the bot instances (`/bots`: platform, status
//! `running`/`stopped`/`error` with the last error, paged), which platform
//! variables are set (the data of `GET /api/connectors`: names, never
//! values), the replies a platform refused for good (the `failed`
//! deliveries, paged, each with a retry), a new bot (`/bots/new`), and one
//! bot (`/bots/{id}`): its settings, its channel bindings (channel → agent),
//! enable/disable and delete.
//!
//! Writes go through `routes::bots::{create, update, delete}` and
//! `routes::deliveries::retry`, with the API's rules and messages (a token
//! that looks like a secret rather than a variable name, a channel bound
//! twice or elsewhere, an agent that does not exist). A bot's `token` is the
//! NAME of a variable; the page says whether it is set, never its value.
//!
//! The bindings editor is one form of `channelId`/`agentId` rows (repeated
//! names, read in order): existing rows plus blank ones, "Add a row" adds
//! more (dashboard.js); emptying a row's channel removes it. Without
//! JavaScript the blank rows still work.

use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use maud::{Markup, html};
use serde::Deserialize;

use arvis_shared::domain::agent::Agent;
use arvis_shared::domain::bot::{Bot, BotPatch, BotSettings, ChannelBinding, NewBot};
use arvis_shared::domain::connectors::platforms;
use arvis_shared::domain::delivery::DeliveryStatus;

use super::fields::{self, ToggleForm, is_refusal, place};
use super::form::Errors;
use super::layout::{Ctx, NavItem, PageResult, page, page_with_status, see_other};
use super::pager::{PER_PAGE, PageParam, Pager};
use crate::error::ApiError;
use crate::extract::{AppForm, AppPath};
use crate::routes;
use crate::state::AppState;

pub const NAV: NavItem = NavItem { href: "/bots", label: "Bots & connectors", ready: true };

const FIELDS: &[&str] = &["name", "platform", "token", "defaultAgentId", "isEnabled", "settings"];

/// Blank rows the bindings editor offers besides the bot's bindings.
const BLANK_BINDINGS: usize = 3;

/// How much of a failed reply the list shows.
const CONTENT_PREVIEW_CHARS: usize = 200;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/bots", get(list))
        .route("/bots/new", get(new_form).post(create))
        .route("/bots/{id}", get(detail).post(update))
        .route("/bots/{id}/bindings", post(update_bindings))
        .route("/bots/{id}/enabled", post(set_enabled))
        .route("/bots/{id}/delete", post(delete))
        .route("/bots/deliveries/{id}/retry", post(retry_delivery))
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BotForm {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub platform: String,
    /// The variable's NAME.
    #[serde(default)]
    pub token: String,
    /// "" = none.
    #[serde(default)]
    pub default_agent_id: String,
    /// Slack: the app-level token's variable; "" = `SLACK_APP_TOKEN`.
    #[serde(default)]
    pub app_token: String,
    /// Matrix: the homeserver URL's variable; "" = `MATRIX_HOMESERVER_URL`.
    #[serde(default)]
    pub homeserver_url: String,
    /// Matrix: the user id's variable; "" = `MATRIX_USER_ID`.
    #[serde(default)]
    pub user_id: String,
    #[serde(default)]
    pub is_enabled: Option<String>,
}

impl BotForm {
    fn from_bot(b: &Bot) -> BotForm {
        BotForm {
            name: b.name.clone(),
            platform: b.platform.clone(),
            token: b.token.clone(),
            default_agent_id: b.default_agent_id.map(|id| id.to_string()).unwrap_or_default(),
            app_token: b.settings.as_ref().and_then(|s| s.app_token.clone()).unwrap_or_default(),
            homeserver_url: b.settings.as_ref().and_then(|s| s.homeserver_url.clone()).unwrap_or_default(),
            user_id: b.settings.as_ref().and_then(|s| s.user_id.clone()).unwrap_or_default(),
            is_enabled: b.is_enabled.then(|| "on".into()),
        }
    }

    fn default_agent(&self) -> Result<Option<i64>, Errors> {
        match fields::non_empty(&self.default_agent_id) {
            None => Ok(None),
            Some(v) => fields::parse_id("defaultAgentId", &v).map(Some),
        }
    }

    fn settings(&self) -> Option<BotSettings> {
        let s = BotSettings {
            app_token: fields::non_empty(&self.app_token),
            homeserver_url: fields::non_empty(&self.homeserver_url),
            user_id: fields::non_empty(&self.user_id),
            ..Default::default()
        };
        (s != BotSettings::default()).then_some(s)
    }

    /// The form's settings over the bot's current ones: the form edits
    /// `appToken` (Slack) and Matrix's two variables, so the settings it has no
    /// field for (WhatsApp's and SMS's variable names, set through the API)
    /// are kept. A bot moved to another platform keeps none of the old platform's.
    fn settings_over(&self, current: &Bot) -> Option<BotSettings> {
        let kept = current.settings.as_ref().filter(|_| current.platform == self.platform);
        let mut s = kept.cloned().unwrap_or_default();
        s.app_token = fields::non_empty(&self.app_token);
        s.homeserver_url = fields::non_empty(&self.homeserver_url);
        s.user_id = fields::non_empty(&self.user_id);
        (s != BotSettings::default()).then_some(s)
    }

    fn into_new(self) -> Result<NewBot, Errors> {
        Ok(NewBot {
            default_agent_id: self.default_agent()?,
            settings: self.settings(),
            channel_bindings: None,
            is_enabled: Some(self.is_enabled.is_some()),
            name: self.name,
            platform: self.platform,
            token: self.token.trim().to_string(),
        })
    }

    fn into_patch(self, current: &Bot) -> Result<BotPatch, Errors> {
        Ok(BotPatch {
            default_agent_id: Some(self.default_agent()?),
            settings: Some(self.settings_over(current)),
            channel_bindings: None,
            is_enabled: Some(self.is_enabled.is_some()),
            name: Some(self.name),
            platform: Some(self.platform),
            token: Some(self.token.trim().to_string()),
        })
    }
}

/// One row of the bindings editor as typed.
#[derive(Debug, Clone, Default, PartialEq)]
struct BindingRow {
    channel_id: String,
    agent_id: String,
}

/// The editor's rows, in order, from repeated `channelId`/`agentId` pairs.
fn binding_rows(pairs: &[(String, String)]) -> Vec<BindingRow> {
    let mut rows: Vec<BindingRow> = Vec::new();
    for (key, value) in pairs {
        match key.as_str() {
            "channelId" => rows.push(BindingRow { channel_id: value.clone(), agent_id: String::new() }),
            "agentId" => {
                if let Some(last) = rows.last_mut() {
                    last.agent_id = value.clone();
                }
            }
            _ => {}
        }
    }
    rows
}

/// The bindings to send: rows with a channel (an emptied channel removes its
/// row; surrounding spaces are not part of a channel id).
fn bindings(rows: &[BindingRow]) -> Result<Vec<ChannelBinding>, Errors> {
    rows.iter()
        .filter(|r| !r.channel_id.trim().is_empty())
        .map(|r| {
            let agent_id = r.agent_id.trim().parse::<i64>().map_err(|_| {
                Errors::on("channelBindings", format!("channel {:?} needs an agent (its id)", r.channel_id.trim()))
            })?;
            Ok(ChannelBinding { channel_id: r.channel_id.trim().to_string(), agent_id })
        })
        .collect()
}

#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    /// Page of the bots.
    pub page: Option<String>,
    /// Page of the failed deliveries.
    pub dpage: Option<String>,
}

async fn list(ctx: Ctx, State(state): State<AppState>, Query(q): Query<ListQuery>) -> PageResult {
    render_list(&ctx, &state, &q, &Errors::none(), StatusCode::OK).await
}

async fn render_list(
    ctx: &Ctx,
    state: &AppState,
    q: &ListQuery,
    delivery_errors: &Errors,
    status: StatusCode,
) -> PageResult {
    let store = &state.deps.store;
    let config = &state.deps.config;
    let bots = store.list_bots().await?;
    let page_no = PageParam { page: q.page.clone() }.number();
    let pager = Pager::new(page_no, PER_PAGE, bots.len() as i64);
    let dpage = PageParam { page: q.dpage.clone() }.number();
    let (_, failed_total) = store.deliveries_page(DeliveryStatus::Failed, 0, 0).await?;
    let dpager = Pager::new(dpage, PER_PAGE, failed_total);
    let (failed, _) = store.deliveries_page(DeliveryStatus::Failed, dpager.limit(), dpager.offset()).await?;
    let connectors = routes::connectors::connectors(config);
    let bot_name =
        |id: i64| bots.iter().find(|b| b.id == id).map(|b| b.name.clone()).unwrap_or_else(|| format!("#{id}"));
    page_with_status(
        ctx,
        status,
        "Bots & connectors",
        html! {
            p.actions { a href="/bots/new" { "New bot" } }
            h2 #bots { "Bots (" (bots.len()) ")" }
            @if bots.is_empty() {
                p.empty { "No bots yet: a bot connects an agent to Discord, Telegram, Slack…" }
            } @else {
                div.table-wrap {
                    table {
                        thead { tr {
                            th { "Name" } th { "Platform" } th { "Status" } th { "Last error" } th { "Token variable" }
                            th { "Bindings" } th { span.visually-hidden { "Actions" } }
                        } }
                        tbody {
                            @for b in pager.slice(&bots) {
                                tr {
                                    td { a href={ "/bots/" (b.id) } { (b.name) } @if !b.is_enabled { " " span.soon { "disabled" } } }
                                    td { (b.platform) }
                                    td { (status_badge(&b.status)) }
                                    td.message { @if let Some(e) = &b.last_error { (e) } @else { "—" } }
                                    td { code { (b.token) } " " (set_badge(config.env_present(&b.token))) }
                                    td { (b.channel_bindings.len()) }
                                    td.row-actions {
                                        (fields::toggle(&format!("/bots/{}/enabled", b.id), b.is_enabled, &b.name))
                                        (fields::delete(&format!("/bots/{}/delete", b.id), &b.name))
                                    }
                                }
                            }
                        }
                    }
                }
                (pager.render(&format!("/bots?dpage={}", dpager.page), "page"))
            }

            h2 #connectors { "Connectors" }
            p.hint { "Which platform variables are set in the environment (names only; the values are never shown). "
                "Edit .env and restart to change them." }
            div.table-wrap {
                table {
                    thead { tr { th { "Platform" } th { "Configured" } th { "Variables" } } }
                    tbody {
                        @for c in &connectors {
                            tr {
                                td { (c.platform) }
                                td { @if c.configured { span.state.on { "yes" } } @else { span.state.off { "no" } } }
                                td {
                                    @if c.vars.is_empty() { span.sub { "not configured by environment" } }
                                    @for v in &c.vars {
                                        span.var { code { (v) } " " (set_badge(config.env_present(v))) } " "
                                    }
                                }
                            }
                        }
                    }
                }
            }

            h2 #deliveries { "Failed deliveries (" (failed_total) ")" }
            (delivery_errors.form_level())
            @if failed.is_empty() {
                p.empty { "No failed deliveries: every reply reached its platform or is still being tried." }
            } @else {
                div.table-wrap {
                    table {
                        thead { tr {
                            th { "Bot" } th { "Channel" } th { "Reply" } th { "Error" } th { "Attempts" } th { "Updated" }
                            th { span.visually-hidden { "Retry" } }
                        } }
                        tbody {
                            @for d in &failed {
                                tr {
                                    td { a href={ "/bots/" (d.bot_id) } { (bot_name(d.bot_id)) } br; span.sub { (d.platform) } }
                                    td { code { (d.channel_id) } }
                                    td.message { (preview(&d.content)) }
                                    td.message { @if let Some(e) = &d.last_error { (e) } @else { "—" } }
                                    td { (d.attempts) }
                                    td { (fields::when(Some(&d.updated_at))) }
                                    td {
                                        form.inline method="post" action={ "/bots/deliveries/" (d.id) "/retry" } {
                                            button.secondary type="submit" aria-label={ "Retry delivery " (d.id) } { "Retry" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
                (dpager.render(&format!("/bots?page={}", pager.page), "dpage"))
            }
        },
    )
}

fn preview(content: &str) -> String {
    let mut chars = content.chars();
    let head: String = chars.by_ref().take(CONTENT_PREVIEW_CHARS).collect();
    if chars.next().is_some() { format!("{head}…") } else { head }
}

fn status_badge(status: &str) -> Markup {
    let class = match status {
        "running" => "on",
        "error" => "bad",
        _ => "off",
    };
    html! { span.state.(class) { (status) } }
}

fn set_badge(set: bool) -> Markup {
    html! { @if set { span.state.on { "set" } } @else { span.state.off { "not set" } } }
}

async fn new_form(ctx: Ctx, State(state): State<AppState>) -> PageResult {
    let agents = state.deps.store.agents().await?;
    let form = BotForm { platform: "discord".into(), is_enabled: Some("on".into()), ..BotForm::default() };
    page(&ctx, "New bot", bot_form("/bots/new", &form, &agents, &Errors::none(), "Create bot"))
}

async fn create(ctx: Ctx, State(state): State<AppState>, AppForm(form): AppForm<BotForm>) -> PageResult {
    let agents = state.deps.store.agents().await?;
    let refused = |errors: Errors, status: StatusCode| {
        page_with_status(&ctx, status, "New bot", bot_form("/bots/new", &form, &agents, &errors, "Create bot"))
    };
    let body = match form.clone().into_new() {
        Ok(b) => b,
        Err(errors) => return refused(errors, StatusCode::BAD_REQUEST),
    };
    match routes::bots::create(&state, body).await {
        Ok(bot) => Ok(see_other(&format!("/bots/{}", bot.id))),
        Err(e) if is_refusal(&e) => refused(place(&e.message, FIELDS), e.status),
        Err(e) => Err(e.into()),
    }
}

async fn load(state: &AppState, id: i64) -> Result<Bot, ApiError> {
    state.deps.store.get_bot(id).await?.ok_or_else(|| ApiError::not_found("bot not found"))
}

async fn detail(ctx: Ctx, State(state): State<AppState>, AppPath(id): AppPath<i64>) -> PageResult {
    let bot = load(&state, id).await?;
    let rows = bot
        .channel_bindings
        .iter()
        .map(|b| BindingRow { channel_id: b.channel_id.clone(), agent_id: b.agent_id.to_string() })
        .collect::<Vec<_>>();
    render_detail(&ctx, &state, &bot, &BotForm::from_bot(&bot), &Errors::none(), &rows, &Errors::none(), StatusCode::OK)
        .await
}

#[expect(clippy::too_many_arguments, reason = "one page's two forms, each with its input and errors")]
async fn render_detail(
    ctx: &Ctx,
    state: &AppState,
    bot: &Bot,
    form: &BotForm,
    errors: &Errors,
    rows: &[BindingRow],
    binding_errors: &Errors,
    status: StatusCode,
) -> PageResult {
    let agents = state.deps.store.agents().await?;
    let config = &state.deps.config;
    let (pending, sent, failed) = state.deps.store.delivery_counts(bot.id).await?;
    let base = format!("/bots/{}", bot.id);
    let few_agents = agents.len() <= fields::AGENT_SELECT_MAX;
    page_with_status(
        ctx,
        status,
        &bot.name,
        html! {
            p.actions { a href="/bots" { "← All bots" } }
            dl.facts {
                div { dt { "Platform" } dd { (bot.platform) } }
                div { dt { "Status" } dd { (status_badge(&bot.status)) } }
                div { dt { "Token variable" } dd { code { (bot.token) } " " (set_badge(config.env_present(&bot.token))) } }
                div { dt { "Deliveries" } dd { (sent) " sent · " (pending) " pending · " (failed) " failed" } }
            }
            @if let Some(e) = &bot.last_error {
                p.error role="status" { "Last error: " (e) }
            }

            h2 { "Settings" }
            (bot_form(&base, form, &agents, errors, "Save changes"))

            h2 #bindings { "Channel bindings (" (bot.channel_bindings.len()) ")" }
            form.card method="post" action={ (base) "/bindings" } {
                p.hint { "Which agent answers in which channel; other channels go to the default agent. "
                    "Empty a row's channel to remove it." }
                (binding_errors.form_level())
                (binding_errors.field("channelBindings"))
                @if few_agents {
                    datalist #agent-ids {
                        @for a in agents.iter() { option value=(a.id) { (a.name) } }
                    }
                }
                div.table-wrap {
                    table.bindings {
                        thead { tr { th { "Channel id" } th { "Agent id" } th { "Agent" } } }
                        tbody data-binding-rows {
                            @for (i, r) in rows.iter().chain(std::iter::repeat_n(&BindingRow::default(), BLANK_BINDINGS)).enumerate() {
                                tr {
                                    td { input type="text" name="channelId" value=(r.channel_id)
                                        aria-label={ "Channel id, row " (i + 1) } aria-describedby="channelBindings-error"; }
                                    td { input type="text" inputmode="numeric" name="agentId" value=(r.agent_id)
                                        list=[few_agents.then_some("agent-ids")] aria-label={ "Agent id, row " (i + 1) }; }
                                    td { @if let Ok(id) = r.agent_id.trim().parse::<i64>() { (fields::agent_name(&agents, id)) } }
                                }
                            }
                        }
                    }
                }
                div.actions {
                    button.secondary type="button" data-add-row="[data-binding-rows]" { "Add a row" }
                    button type="submit" { "Save bindings" }
                }
            }

            h2 { "Delete" }
            form.card method="post" action={ (base) "/delete" } data-confirm={ "Delete the bot " (bot.name) " with its bindings?" } {
                p { "Deletes the bot with its channel bindings and its outbox." }
                button.danger type="submit" { "Delete bot" }
            }
        },
    )
}

async fn update(
    ctx: Ctx,
    State(state): State<AppState>,
    AppPath(id): AppPath<i64>,
    AppForm(form): AppForm<BotForm>,
) -> PageResult {
    let bot = load(&state, id).await?;
    let rows = current_rows(&bot);
    let patch = match form.clone().into_patch(&bot) {
        Ok(p) => p,
        Err(errors) => {
            return render_detail(&ctx, &state, &bot, &form, &errors, &rows, &Errors::none(), StatusCode::BAD_REQUEST)
                .await;
        }
    };
    match routes::bots::update(&state, id, patch).await {
        Ok(_) => Ok(see_other(&format!("/bots/{id}"))),
        Err(e) if is_refusal(&e) => {
            render_detail(&ctx, &state, &bot, &form, &place(&e.message, FIELDS), &rows, &Errors::none(), e.status).await
        }
        Err(e) => Err(e.into()),
    }
}

fn current_rows(bot: &Bot) -> Vec<BindingRow> {
    bot.channel_bindings
        .iter()
        .map(|b| BindingRow { channel_id: b.channel_id.clone(), agent_id: b.agent_id.to_string() })
        .collect()
}

async fn update_bindings(
    ctx: Ctx,
    State(state): State<AppState>,
    AppPath(id): AppPath<i64>,
    AppForm(pairs): AppForm<Vec<(String, String)>>,
) -> PageResult {
    let bot = load(&state, id).await?;
    let rows = binding_rows(&pairs);
    let form = BotForm::from_bot(&bot);
    let refused = |errors: Errors, status: StatusCode| {
        let rows: Vec<BindingRow> = rows.iter().filter(|r| !r.channel_id.trim().is_empty()).cloned().collect();
        let (ctx, state, bot, form) = (&ctx, &state, &bot, &form);
        async move { render_detail(ctx, state, bot, form, &Errors::none(), &rows, &errors, status).await }
    };
    let list = match bindings(&rows) {
        Ok(list) => list,
        Err(errors) => return refused(errors, StatusCode::BAD_REQUEST).await,
    };
    let patch = BotPatch { channel_bindings: Some(list), ..BotPatch::default() };
    match routes::bots::update(&state, id, patch).await {
        Ok(_) => Ok(see_other(&format!("/bots/{id}#bindings"))),
        // Every refusal of a bindings-only patch is about the bindings.
        Err(e) if is_refusal(&e) => refused(Errors::on("channelBindings", e.message.clone()), e.status).await,
        Err(e) => Err(e.into()),
    }
}

async fn set_enabled(
    State(state): State<AppState>,
    AppPath(id): AppPath<i64>,
    AppForm(t): AppForm<ToggleForm>,
) -> PageResult {
    let patch = BotPatch { is_enabled: Some(t.enabled()), ..BotPatch::default() };
    routes::bots::update(&state, id, patch).await?;
    Ok(see_other("/bots"))
}

async fn delete(State(state): State<AppState>, AppPath(id): AppPath<i64>) -> PageResult {
    routes::bots::delete(&state, id).await?;
    Ok(see_other("/bots"))
}

async fn retry_delivery(ctx: Ctx, State(state): State<AppState>, AppPath(id): AppPath<i64>) -> PageResult {
    match routes::deliveries::retry(&state, id).await {
        Ok(_) => Ok(see_other("/bots#deliveries")),
        // Already retried (pending) or sent: the API's message above the list.
        Err(e) if is_refusal(&e) => {
            render_list(&ctx, &state, &ListQuery::default(), &Errors::from_message(&e.message, &[]), e.status).await
        }
        Err(e) => Err(e.into()),
    }
}

fn bot_form(action: &str, f: &BotForm, agents: &[Agent], errors: &Errors, submit: &str) -> Markup {
    html! {
        form.card method="post" action=(action) {
            (errors.form_level())
            div.fields {
                (fields::text(errors, "name", "Name", &f.name, None))
                div.field {
                    label for="platform" { "Platform" }
                    select #platform name="platform" aria-invalid=[errors.invalid("platform")] aria-describedby="platform-error" {
                        @for p in platforms() { option value=(p) selected[p == f.platform] { (p) } }
                    }
                    (errors.field("platform"))
                }
                (fields::text(errors, "token", "Token variable", &f.token,
                    Some("the NAME of the environment variable holding the token, e.g. DISCORD_BOT_TOKEN — never the token")))
                (fields::agent(errors, "defaultAgentId", "Default agent", agents, &f.default_agent_id, Some("none (the conductor)")))
                div.field {
                    label for="appToken" { "Slack app-token variable" }
                    input #appToken type="text" name="appToken" value=(f.app_token)
                        aria-invalid=[errors.invalid("settings")] aria-describedby="settings-error";
                    span.hint { "Slack only: the variable with the xapp- token; empty: SLACK_APP_TOKEN" }
                    (errors.field("settings"))
                }
                div.field {
                    label for="homeserverUrl" { "Matrix homeserver-URL variable" }
                    input #homeserverUrl type="text" name="homeserverUrl" value=(f.homeserver_url)
                        aria-invalid=[errors.invalid("settings")] aria-describedby="settings-error";
                    span.hint { "Matrix only: the variable with the homeserver's URL; empty: MATRIX_HOMESERVER_URL" }
                }
                div.field {
                    label for="userId" { "Matrix user-id variable" }
                    input #userId type="text" name="userId" value=(f.user_id)
                        aria-invalid=[errors.invalid("settings")] aria-describedby="settings-error";
                    span.hint { "Matrix only: the variable with the bot's user id; empty: MATRIX_USER_ID" }
                }
                (fields::check(errors, "isEnabled", "Enabled (connects within 5 s)", f.is_enabled.is_some()))
            }
            div.actions { button type="submit" { (submit) } }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binding_rows_pair_up_in_order_and_empty_channels_drop() {
        let pairs: Vec<(String, String)> = [
            ("channelId", "c1"),
            ("agentId", "4"),
            ("channelId", " "),
            ("agentId", "9"),
            ("channelId", "c2"),
            ("agentId", ""),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let rows = binding_rows(&pairs);
        assert_eq!(rows.len(), 3);
        let err = bindings(&rows).unwrap_err();
        assert!(err.get("channelBindings").unwrap().contains("\"c2\""));
        let ok = bindings(&rows[..2]).unwrap();
        assert_eq!(ok, vec![ChannelBinding { channel_id: "c1".into(), agent_id: 4 }]);
    }
}
