//! Agents: the list (`/agents`), a new agent (`/agents/new`), and one agent
//! (`/agents/{id}`): its settings form (model, prompt, role, tools,
//! temperature, max tokens, active, …), its memory facts (each deletable),
//! its conversations, and delete.
//!
//! Every write goes through the REST route's own function
//! (`routes::agents::{create, update, delete}`, `routes::memory::delete`):
//! the same validation, the same conductor rule, the same `ConfigChanged`
//! signal, and the API's message when something is refused — placed next to
//! the field it names ([`super::form::Errors`]), the form keeping what was
//! typed. Plain HTML forms with redirect-after-post: they work without
//! JavaScript and with the keyboard alone.

use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use maud::{Markup, html};
use serde::Deserialize;

use arvis_shared::domain::agent::{Agent, AgentPatch, NewAgent, REASONING_EFFORTS, ROLES};
use arvis_shared::domain::mcp::{McpServer, McpTool};

use super::form::Errors;
use super::layout::{Ctx, NavItem, PageResult, page, page_with_status, see_other};
use super::pager::{PER_PAGE, PageParam, Pager};
use crate::error::ApiError;
use crate::extract::{AppForm, AppPath};
use crate::routes;
use crate::state::AppState;

pub const NAV: NavItem = NavItem { href: "/agents", label: "Agents", ready: true };

/// The fields of the agent form, named as the API names them (so that the
/// API's message, which starts with the field's name, finds its input).
const FIELDS: &[&str] = &[
    "slug",
    "name",
    "role",
    "description",
    "model",
    "systemPrompt",
    "allowedTools",
    "temperature",
    "maxTokens",
    "isActive",
    "reasoningEffort",
    "showThinking",
];

/// The built-in tools an agent may be allowed (worker `tools`).
const BUILT_IN_TOOLS: &str = "calculate, get_time, http_fetch, web_search";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/agents", get(list))
        .route("/agents/new", get(new_form).post(create))
        .route("/agents/{id}", get(detail).post(update))
        .route("/agents/{id}/delete", post(delete))
        .route("/agents/{id}/memory/{fact}/delete", post(delete_fact))
}

/// The form as submitted: text, as typed, so a refused form shows it again.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentForm {
    #[serde(default)]
    pub slug: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub role: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub model: String,
    #[serde(default)]
    pub system_prompt: String,
    /// Comma- or space-separated tool names.
    #[serde(default)]
    pub allowed_tools: String,
    #[serde(default)]
    pub temperature: String,
    #[serde(default)]
    pub max_tokens: String,
    /// A checkbox: present ("on") when ticked.
    #[serde(default)]
    pub is_active: Option<String>,
    /// "" = the model's default.
    #[serde(default)]
    pub reasoning_effort: String,
    #[serde(default)]
    pub show_thinking: Option<String>,
}

impl AgentForm {
    fn from_agent(a: &Agent) -> AgentForm {
        AgentForm {
            slug: a.slug.clone(),
            name: a.name.clone(),
            role: a.role.clone(),
            description: a.description.clone(),
            model: a.model.clone(),
            system_prompt: a.system_prompt.clone(),
            allowed_tools: a.allowed_tools.join(", "),
            temperature: a.temperature.to_string(),
            max_tokens: a.max_tokens.to_string(),
            is_active: a.is_active.then(|| "on".into()),
            reasoning_effort: a.reasoning_effort.clone().unwrap_or_default(),
            show_thinking: a.show_thinking.then(|| "on".into()),
        }
    }

    fn blank() -> AgentForm {
        AgentForm {
            role: "specialist".into(),
            temperature: "0.7".into(),
            max_tokens: "4096".into(),
            is_active: Some("on".into()),
            ..AgentForm::default()
        }
    }

    fn tools(&self) -> Vec<String> {
        self.allowed_tools.split([',', ' ', '\n']).map(str::trim).filter(|t| !t.is_empty()).map(String::from).collect()
    }

    fn temperature(&self) -> Result<f64, Errors> {
        self.temperature.trim().parse().map_err(|_| Errors::on("temperature", "temperature must be a number"))
    }

    fn max_tokens(&self) -> Result<i64, Errors> {
        self.max_tokens.trim().parse().map_err(|_| Errors::on("maxTokens", "maxTokens must be a whole number"))
    }

    fn reasoning(&self) -> Option<String> {
        Some(self.reasoning_effort.trim().to_string()).filter(|r| !r.is_empty())
    }

    fn into_new(self) -> Result<NewAgent, Errors> {
        Ok(NewAgent {
            temperature: Some(self.temperature()?),
            max_tokens: Some(self.max_tokens()?),
            allowed_tools: Some(self.tools()),
            reasoning_effort: self.reasoning(),
            model: Some(self.model.trim().to_string()).filter(|m| !m.is_empty()),
            slug: self.slug.trim().to_string(),
            name: self.name,
            role: Some(self.role),
            description: Some(self.description),
            system_prompt: Some(self.system_prompt),
            is_active: Some(self.is_active.is_some()),
            created_by: Some("dashboard".into()),
            show_thinking: Some(self.show_thinking.is_some()),
            // Budgets are set through the API (`dailyBudgetUsd`, `monthlyBudgetUsd`).
            daily_budget_usd: None,
            monthly_budget_usd: None,
        })
    }

    fn into_patch(self) -> Result<AgentPatch, Errors> {
        Ok(AgentPatch {
            temperature: Some(self.temperature()?),
            max_tokens: Some(self.max_tokens()?),
            allowed_tools: Some(self.tools()),
            reasoning_effort: Some(self.reasoning()),
            slug: Some(self.slug.trim().to_string()),
            name: Some(self.name),
            role: Some(self.role),
            description: Some(self.description),
            model: Some(self.model.trim().to_string()),
            system_prompt: Some(self.system_prompt),
            is_active: Some(self.is_active.is_some()),
            show_thinking: Some(self.show_thinking.is_some()),
            // Not on the form: a budget set through the API is kept.
            daily_budget_usd: None,
            monthly_budget_usd: None,
        })
    }
}

async fn list(ctx: Ctx, State(state): State<AppState>, Query(p): Query<PageParam>) -> PageResult {
    let agents = state.deps.store.agents().await?;
    let conductor = state.deps.store.settings().await?.conductor_agent_id;
    let pager = Pager::new(p.number(), PER_PAGE, agents.len() as i64);
    page(
        &ctx,
        "Agents",
        html! {
            p.actions { a href="/agents/new" { "New agent" } }
            @if agents.is_empty() {
                p.empty { "No agents yet." }
            } @else {
                div.table-wrap {
                    table {
                        thead { tr { th { "Name" } th { "Slug" } th { "Role" } th { "Model" } th { "Status" } th { span.visually-hidden { "Chat" } } } }
                        tbody {
                            @for a in pager.slice(&agents) {
                                tr {
                                    td { a href={ "/agents/" (a.id) } { (a.name) } @if Some(a.id) == conductor { " " span.soon { "conductor" } } }
                                    td { code { (a.slug) } }
                                    td { (a.role) }
                                    td { (a.model) }
                                    td { @if a.is_active { "active" } @else { "paused" } }
                                    td { a href={ "/chat/" (a.id) } { "Chat" } }
                                }
                            }
                        }
                    }
                }
                (pager.render("/agents", "page"))
            }
        },
    )
}

async fn new_form(ctx: Ctx, State(state): State<AppState>) -> PageResult {
    let mcp = state.deps.store.list_mcp_servers_with_tools().await?;
    page(&ctx, "New agent", agent_form("/agents/new", &AgentForm::blank(), &Errors::none(), "Create agent", &mcp))
}

async fn create(ctx: Ctx, State(state): State<AppState>, AppForm(form): AppForm<AgentForm>) -> PageResult {
    let mcp = state.deps.store.list_mcp_servers_with_tools().await?;
    let refused = |form: &AgentForm, errors: Errors, status: StatusCode| {
        page_with_status(&ctx, status, "New agent", agent_form("/agents/new", form, &errors, "Create agent", &mcp))
    };
    let body = match form.clone().into_new() {
        Ok(body) => body,
        Err(errors) => return refused(&form, errors, StatusCode::BAD_REQUEST),
    };
    match routes::agents::create(&state, body).await {
        Ok(agent) => Ok(see_other(&format!("/agents/{}", agent.id))),
        Err(e) if e.status.is_client_error() => refused(&form, Errors::from_message(&e.message, FIELDS), e.status),
        Err(e) => Err(e.into()),
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct DetailQuery {
    /// Page of the memory facts.
    pub mpage: Option<String>,
    /// Page of the conversations.
    pub cpage: Option<String>,
}

async fn detail(
    ctx: Ctx,
    State(state): State<AppState>,
    AppPath(id): AppPath<i64>,
    Query(q): Query<DetailQuery>,
) -> PageResult {
    let agent = load(&state, id).await?;
    let form = AgentForm::from_agent(&agent);
    render_detail(&ctx, &state, &agent, &form, &Errors::none(), &Errors::none(), &q, StatusCode::OK).await
}

async fn load(state: &AppState, id: i64) -> Result<Agent, ApiError> {
    state.deps.store.get_agent(id).await?.ok_or_else(|| ApiError::not_found("agent not found"))
}

#[expect(clippy::too_many_arguments, reason = "one page's parts, each its own input")]
async fn render_detail(
    ctx: &Ctx,
    state: &AppState,
    agent: &Agent,
    form: &AgentForm,
    form_errors: &Errors,
    delete_errors: &Errors,
    q: &DetailQuery,
    status: StatusCode,
) -> PageResult {
    let store = &state.deps.store;
    let id = agent.id;
    let mpage = PageParam { page: q.mpage.clone() }.number();
    let (_, fact_total) = store.agent_memory_page(id, 0, 0).await?;
    let mpager = Pager::new(mpage, PER_PAGE, fact_total);
    let (facts, _) = store.agent_memory_page(id, mpager.limit(), mpager.offset()).await?;
    let cpage = PageParam { page: q.cpage.clone() }.number();
    let (_, total) = store.agent_conversations(id, 0, 0).await?;
    let cpager = Pager::new(cpage, PER_PAGE, total);
    let (conversations, _) = store.agent_conversations(id, cpager.limit(), cpager.offset()).await?;
    let conductor = store.settings().await?.conductor_agent_id == Some(id);
    let mcp = store.list_mcp_servers_with_tools().await?;
    let base = format!("/agents/{id}");
    page_with_status(
        ctx,
        status,
        &agent.name,
        html! {
            p.actions {
                a href={ "/chat/" (id) } { "Chat with " (agent.name) }
                @if conductor { span.soon { "the active conductor" } }
            }
            h2 { "Settings" }
            (agent_form(&base, form, form_errors, "Save changes", &mcp))

            h2 #memory { "Memory (" (fact_total) ")" }
            @if facts.is_empty() {
                p.empty { "No memory facts yet: the agent saves them as it talks." }
            } @else {
                div.table-wrap {
                    table {
                        thead { tr { th { "Category" } th { "Fact" } th { "Saved" } th { span.visually-hidden { "Delete" } } } }
                        tbody {
                            @for f in &facts {
                                tr {
                                    td { (f.key) }
                                    td.message { (f.value) }
                                    td { (f.created_at.get(..10).unwrap_or(&f.created_at)) }
                                    td {
                                        form.inline method="post" action={ (base) "/memory/" (f.id) "/delete" }
                                            data-confirm="Delete this memory fact?" {
                                            button.danger type="submit" aria-label={ "Delete fact " (f.id) } { "Delete" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
                (mpager.render(&format!("{base}?cpage={cpage}#memory"), "mpage"))
            }

            h2 #conversations { "Conversations (" (total) ")" }
            @if conversations.is_empty() {
                p.empty { "No conversations yet." }
            } @else {
                div.table-wrap {
                    table {
                        thead { tr { th { "Conversation" } th { "Platform" } th { "Channel" } th { "Messages" } th { "Last message" } th { "Status" } } }
                        tbody {
                            @for c in &conversations {
                                tr {
                                    td { a href={ "/api/conversations/" (c.id) } title="The thread as JSON" { code { (c.id) } } }
                                    td { (c.platform) }
                                    td { (c.channel_id) }
                                    td { (c.message_count) }
                                    td { (c.last_message_at.get(..16).unwrap_or(&c.last_message_at).replace('T', " ")) }
                                    td { (c.status) }
                                }
                            }
                        }
                    }
                }
                (cpager.render(&format!("{base}?mpage={}", mpager.page), "cpage"))
            }

            h2 { "Delete" }
            form.card method="post" action={ (base) "/delete" }
                data-confirm={ "Delete " (agent.name) " with its conversations, memory, workflows and webhooks?" } {
                (delete_errors.form_level())
                p { "Deletes the agent with its conversations, memory, workflows and webhooks." }
                button.danger type="submit" { "Delete agent" }
            }
        },
    )
}

async fn update(
    ctx: Ctx,
    State(state): State<AppState>,
    AppPath(id): AppPath<i64>,
    AppForm(form): AppForm<AgentForm>,
) -> PageResult {
    let agent = load(&state, id).await?;
    let q = DetailQuery::default();
    let patch = match form.clone().into_patch() {
        Ok(p) => p,
        Err(errors) => {
            return render_detail(&ctx, &state, &agent, &form, &errors, &Errors::none(), &q, StatusCode::BAD_REQUEST)
                .await;
        }
    };
    match routes::agents::update(&state, id, patch).await {
        Ok(_) => Ok(see_other(&format!("/agents/{id}"))),
        Err(e) if e.status.is_client_error() && e.status != StatusCode::NOT_FOUND => {
            let errors = Errors::from_message(&e.message, FIELDS);
            render_detail(&ctx, &state, &agent, &form, &errors, &Errors::none(), &q, e.status).await
        }
        Err(e) => Err(e.into()),
    }
}

async fn delete(ctx: Ctx, State(state): State<AppState>, AppPath(id): AppPath<i64>) -> PageResult {
    match routes::agents::delete(&state, id).await {
        Ok(()) => Ok(see_other("/agents")),
        // The conductor: the API's message on the agent's page.
        Err(e) if e.status == StatusCode::CONFLICT => {
            let agent = load(&state, id).await?;
            let form = AgentForm::from_agent(&agent);
            let errors = Errors::from_message(&e.message, &[]);
            render_detail(&ctx, &state, &agent, &form, &Errors::none(), &errors, &DetailQuery::default(), e.status)
                .await
        }
        Err(e) => Err(e.into()),
    }
}

async fn delete_fact(State(state): State<AppState>, AppPath((id, fact)): AppPath<(i64, i64)>) -> PageResult {
    // Only a fact of this agent: a stale form for another agent's fact is a 404.
    if state.deps.store.memory_fact_agent(fact).await? != Some(id) {
        return Err(ApiError::not_found("memory entry not found").into());
    }
    routes::memory::delete(&state, fact).await?;
    Ok(see_other(&format!("/agents/{id}#memory")))
}

/// The create/edit form. Each input is labelled, carries its API name, and
/// shows the API's message for it when the last submit was refused. `mcp`:
/// the configured MCP servers with the tools workers last saw them offer
/// (from the database), listed under the tools field as entries to copy.
fn agent_form(action: &str, f: &AgentForm, errors: &Errors, submit: &str, mcp: &[(McpServer, Vec<McpTool>)]) -> Markup {
    let text = |name: &str, label: &str, value: &str, hint: Option<&str>| {
        html! {
            div.field {
                label for=(name) { (label) }
                input #(name) type="text" name=(name) value=(value)
                    aria-invalid=[errors.invalid(name)] aria-describedby={ (name) "-error" };
                @if let Some(h) = hint { span.hint { (h) } }
                (errors.field(name))
            }
        }
    };
    html! {
        form.card method="post" action=(action) {
            (errors.form_level())
            div.fields {
                (text("name", "Name", &f.name, None))
                (text("slug", "Slug", &f.slug, Some("a-z, 0-9, - and _; unique")))
                div.field {
                    label for="role" { "Role" }
                    select #role name="role" aria-invalid=[errors.invalid("role")] aria-describedby="role-error" {
                        @for r in ROLES { option value=(r) selected[*r == f.role] { (r) } }
                    }
                    (errors.field("role"))
                }
                (text("model", "Model", &f.model, Some("provider/model, e.g. openai/gpt-6-luna; empty: the default model")))
                (text("allowedTools", "Tools", &f.allowed_tools, Some(&format!("comma-separated: {BUILT_IN_TOOLS}, mcp:<server>/<tool>, mcp:<server>/*"))))
                @if !mcp.is_empty() {
                    div.field.wide #mcp-tools {
                        details open {
                            summary { "MCP tools (add an entry to Tools)" }
                            ul {
                                @for (server, tools) in mcp {
                                    li {
                                        code { "mcp:" (server.name) "/*" }
                                        " — server " (server.name) ", " (server.transport) ", "
                                        @if !server.is_enabled { "disabled" } @else { (server.status) }
                                        @if let Some(e) = &server.last_error { " (" (e) ")" }
                                        @if tools.is_empty() && server.status == "unknown" {
                                            span.hint { " its tools show once a worker has connected (after a run that uses it)" }
                                        }
                                        @if !tools.is_empty() {
                                            ul {
                                                @for t in tools {
                                                    li { code { "mcp:" (server.name) "/" (t.name) } @if !t.description.is_empty() { " — " (t.description) } }
                                                }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
                div.field {
                    label for="temperature" { "Temperature" }
                    input #temperature type="number" name="temperature" min="0" max="2" step="0.05" value=(f.temperature)
                        aria-invalid=[errors.invalid("temperature")] aria-describedby="temperature-error";
                    (errors.field("temperature"))
                }
                div.field {
                    label for="maxTokens" { "Max tokens" }
                    input #maxTokens type="number" name="maxTokens" min="1" max="1000000" step="1" value=(f.max_tokens)
                        aria-invalid=[errors.invalid("maxTokens")] aria-describedby="maxTokens-error";
                    (errors.field("maxTokens"))
                }
                div.field {
                    label for="reasoningEffort" { "Reasoning effort" }
                    select #reasoningEffort name="reasoningEffort" aria-describedby="reasoningEffort-error" {
                        option value="" selected[f.reasoning_effort.is_empty()] { "the model's default" }
                        @for r in REASONING_EFFORTS { option value=(r) selected[*r == f.reasoning_effort] { (r) } }
                    }
                    (errors.field("reasoningEffort"))
                }
                div.field.wide {
                    label for="description" { "Description" }
                    input #description type="text" name="description" value=(f.description)
                        aria-invalid=[errors.invalid("description")] aria-describedby="description-error";
                    (errors.field("description"))
                }
                div.field.wide {
                    label for="systemPrompt" { "System prompt" }
                    textarea #systemPrompt name="systemPrompt" rows="6"
                        aria-invalid=[errors.invalid("systemPrompt")] aria-describedby="systemPrompt-error" { (f.system_prompt) }
                    (errors.field("systemPrompt"))
                }
                div.field.check {
                    input #isActive type="checkbox" name="isActive" checked[f.is_active.is_some()];
                    label for="isActive" { "Active (answers messages)" }
                    (errors.field("isActive"))
                }
                div.field.check {
                    input #showThinking type="checkbox" name="showThinking" checked[f.show_thinking.is_some()];
                    label for="showThinking" { "Show the model's thinking with its replies" }
                }
            }
            div.actions { button type="submit" { (submit) } }
        }
    }
}
