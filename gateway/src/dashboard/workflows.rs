//! Workflows: the list (`/workflows`, paged, each with its next run time),
//! a new workflow (`/workflows/new`), one workflow's form (`/workflows/{id}`),
//! enable/disable (`/workflows/{id}/enabled`) and delete.
//!
//! Writes go through `routes::workflows::{create, update, delete}`: the same
//! schedule parsing, the same next-run computation (in the scheduler's time
//! zone), the same `ConfigChanged` signal and the API's message when refused,
//! next to the field it names. The next run shown is the one the scheduler
//! will claim (the stored `next_run_at`), not a recomputation.

use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use maud::{Markup, html};
use serde::Deserialize;

use arvis_shared::domain::agent::Agent;
use arvis_shared::domain::workflow::{NewWorkflow, Workflow, WorkflowPatch};
use arvis_shared::domain::{Invalid, schedule};

use super::fields::{self, ToggleForm, is_refusal, place};
use super::form::Errors;
use super::layout::{Ctx, NavItem, PageResult, page, page_with_status, see_other};
use super::pager::{PER_PAGE, PageParam, Pager};
use crate::error::ApiError;
use crate::extract::{AppForm, AppPath};
use crate::routes;
use crate::state::AppState;

pub const NAV: NavItem = NavItem { href: "/workflows", label: "Workflows", ready: true };

/// The form's fields, named as the API names them.
const FIELDS: &[&str] = &["name", "agentId", "schedule", "prompt", "channelId", "platform", "isEnabled"];

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/workflows", get(list))
        .route("/workflows/new", get(new_form).post(create))
        .route("/workflows/{id}", get(detail).post(update))
        .route("/workflows/{id}/enabled", post(set_enabled))
        .route("/workflows/{id}/delete", post(delete))
}

/// The form as typed.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowForm {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub agent_id: String,
    #[serde(default)]
    pub schedule: String,
    #[serde(default)]
    pub prompt: String,
    #[serde(default)]
    pub channel_id: String,
    #[serde(default)]
    pub platform: String,
    #[serde(default)]
    pub is_enabled: Option<String>,
}

impl WorkflowForm {
    fn from_workflow(w: &Workflow) -> WorkflowForm {
        WorkflowForm {
            name: w.name.clone(),
            agent_id: w.agent_id.to_string(),
            schedule: w.schedule.clone(),
            prompt: w.prompt.clone(),
            channel_id: w.channel_id.clone().unwrap_or_default(),
            platform: w.platform.clone().unwrap_or_default(),
            is_enabled: w.is_enabled.then(|| "on".into()),
        }
    }

    fn blank(agents: &[Agent]) -> WorkflowForm {
        WorkflowForm {
            agent_id: agents.first().map(|a| a.id.to_string()).unwrap_or_default(),
            schedule: "0 9 * * *".into(),
            is_enabled: Some("on".into()),
            ..WorkflowForm::default()
        }
    }

    fn into_new(self) -> Result<NewWorkflow, Errors> {
        Ok(NewWorkflow {
            agent_id: fields::parse_id("agentId", &self.agent_id)?,
            channel_id: fields::non_empty(&self.channel_id),
            platform: fields::non_empty(&self.platform),
            is_enabled: Some(self.is_enabled.is_some()),
            name: self.name,
            schedule: self.schedule,
            prompt: self.prompt,
            // Budgets are set through the API (`dailyBudgetUsd`, `monthlyBudgetUsd`).
            daily_budget_usd: None,
            monthly_budget_usd: None,
        })
    }

    fn into_patch(self) -> Result<WorkflowPatch, Errors> {
        Ok(WorkflowPatch {
            agent_id: Some(fields::parse_id("agentId", &self.agent_id)?),
            channel_id: Some(fields::non_empty(&self.channel_id)),
            platform: Some(fields::non_empty(&self.platform)),
            is_enabled: Some(self.is_enabled.is_some()),
            name: Some(self.name),
            schedule: Some(self.schedule),
            prompt: Some(self.prompt),
            // Not on the form: a budget set through the API is kept.
            daily_budget_usd: None,
            monthly_budget_usd: None,
        })
    }
}

/// The API's refusal placed on its field. The schedule parser's messages
/// ("interval must be at least 10 seconds", "minute field: …") do not name
/// the field, so a refusal is the schedule's when the same parser refuses
/// the typed schedule with the same message.
fn refusal(message: &str, schedule: &str) -> Errors {
    match schedule::parse(schedule) {
        Err(Invalid(m)) if m == message => Errors::on("schedule", message),
        _ => place(message, FIELDS),
    }
}

async fn list(ctx: Ctx, State(state): State<AppState>, Query(p): Query<PageParam>) -> PageResult {
    let store = &state.deps.store;
    let (_, total) = store.workflows_page(0, 0).await?;
    let pager = Pager::new(p.number(), PER_PAGE, total);
    let (workflows, _) = store.workflows_page(pager.limit(), pager.offset()).await?;
    page(
        &ctx,
        "Workflows",
        html! {
            p.actions { a href="/workflows/new" { "New workflow" } }
            @if workflows.is_empty() {
                p.empty { "No workflows yet: a workflow runs an agent with a prompt on a schedule." }
            } @else {
                div.table-wrap {
                    table {
                        thead { tr {
                            th { "Name" } th { "Agent" } th { "Schedule" } th { "Next run" } th { "Last run" }
                            th { "Status" } th { span.visually-hidden { "Actions" } }
                        } }
                        tbody {
                            @for w in &workflows {
                                tr {
                                    td { a href={ "/workflows/" (w.id) } { (w.name) } }
                                    td { a href={ "/agents/" (w.agent_id) } { (w.agent_name) } }
                                    td { code { (w.schedule) } }
                                    td.next-run { (fields::when(w.next_run_at.as_deref())) }
                                    td { (fields::when(w.last_run_at.as_deref())) }
                                    td { (fields::state(w.is_enabled)) }
                                    td.row-actions {
                                        (fields::toggle(&format!("/workflows/{}/enabled", w.id), w.is_enabled, &w.name))
                                        (fields::delete(&format!("/workflows/{}/delete", w.id), &w.name))
                                    }
                                }
                            }
                        }
                    }
                }
                (pager.render("/workflows", "page"))
            }
        },
    )
}

async fn new_form(ctx: Ctx, State(state): State<AppState>) -> PageResult {
    let agents = state.deps.store.agents().await?;
    let form = WorkflowForm::blank(&agents);
    page(&ctx, "New workflow", workflow_form("/workflows/new", &form, &agents, &Errors::none(), "Create workflow"))
}

async fn create(ctx: Ctx, State(state): State<AppState>, AppForm(form): AppForm<WorkflowForm>) -> PageResult {
    let agents = state.deps.store.agents().await?;
    let refused = |form: &WorkflowForm, errors: Errors, status: StatusCode| {
        page_with_status(
            &ctx,
            status,
            "New workflow",
            workflow_form("/workflows/new", form, &agents, &errors, "Create workflow"),
        )
    };
    let body = match form.clone().into_new() {
        Ok(body) => body,
        Err(errors) => return refused(&form, errors, StatusCode::BAD_REQUEST),
    };
    match routes::workflows::create(&state, body).await {
        Ok(_) => Ok(see_other("/workflows")),
        Err(e) if is_refusal(&e) => refused(&form, refusal(&e.message, &form.schedule), e.status),
        Err(e) => Err(e.into()),
    }
}

async fn load(state: &AppState, id: i64) -> Result<Workflow, ApiError> {
    Ok(state.deps.store.get_workflow(id).await?.ok_or_else(|| ApiError::not_found("workflow not found"))?.0)
}

async fn detail(ctx: Ctx, State(state): State<AppState>, AppPath(id): AppPath<i64>) -> PageResult {
    let workflow = load(&state, id).await?;
    render_detail(&ctx, &state, &workflow, &WorkflowForm::from_workflow(&workflow), &Errors::none(), StatusCode::OK)
        .await
}

async fn render_detail(
    ctx: &Ctx,
    state: &AppState,
    w: &Workflow,
    form: &WorkflowForm,
    errors: &Errors,
    status: StatusCode,
) -> PageResult {
    let agents = state.deps.store.agents().await?;
    let base = format!("/workflows/{}", w.id);
    page_with_status(
        ctx,
        status,
        &w.name,
        html! {
            p.actions { a href="/workflows" { "← All workflows" } }
            dl.facts {
                div { dt { "Next run" } dd.next-run { (fields::when(w.next_run_at.as_deref())) } }
                div { dt { "Last run" } dd { (fields::when(w.last_run_at.as_deref())) } }
                div { dt { "Status" } dd { (fields::state(w.is_enabled)) } }
            }
            h2 { "Settings" }
            (workflow_form(&base, form, &agents, errors, "Save changes"))
            h2 { "Delete" }
            form.card method="post" action={ (base) "/delete" } data-confirm={ "Delete the workflow " (w.name) "?" } {
                p { "Deletes the workflow; runs already queued still happen." }
                button.danger type="submit" { "Delete workflow" }
            }
        },
    )
}

async fn update(
    ctx: Ctx,
    State(state): State<AppState>,
    AppPath(id): AppPath<i64>,
    AppForm(form): AppForm<WorkflowForm>,
) -> PageResult {
    let workflow = load(&state, id).await?;
    let patch = match form.clone().into_patch() {
        Ok(p) => p,
        Err(errors) => return render_detail(&ctx, &state, &workflow, &form, &errors, StatusCode::BAD_REQUEST).await,
    };
    match routes::workflows::update(&state, id, patch).await {
        Ok(_) => Ok(see_other(&format!("/workflows/{id}"))),
        Err(e) if is_refusal(&e) => {
            let errors = refusal(&e.message, &form.schedule);
            render_detail(&ctx, &state, &workflow, &form, &errors, e.status).await
        }
        Err(e) => Err(e.into()),
    }
}

async fn set_enabled(
    State(state): State<AppState>,
    AppPath(id): AppPath<i64>,
    AppForm(t): AppForm<ToggleForm>,
) -> PageResult {
    let patch = WorkflowPatch { is_enabled: Some(t.enabled()), ..WorkflowPatch::default() };
    routes::workflows::update(&state, id, patch).await?;
    Ok(see_other("/workflows"))
}

async fn delete(State(state): State<AppState>, AppPath(id): AppPath<i64>) -> PageResult {
    routes::workflows::delete(&state, id).await?;
    Ok(see_other("/workflows"))
}

fn workflow_form(action: &str, f: &WorkflowForm, agents: &[Agent], errors: &Errors, submit: &str) -> Markup {
    html! {
        form.card method="post" action=(action) {
            (errors.form_level())
            div.fields {
                (fields::text(errors, "name", "Name", &f.name, None))
                (fields::agent(errors, "agentId", "Agent", agents, &f.agent_id, None))
                (fields::text(errors, "schedule", "Schedule", &f.schedule,
                    Some("5-field cron (0 9 * * 1-5) or every N s|min|h (at least 10 s)")))
                (fields::text(errors, "platform", "Platform", &f.platform, Some("optional: where the reply goes, e.g. discord")))
                (fields::text(errors, "channelId", "Channel", &f.channel_id, Some("optional")))
                (fields::textarea(errors, "prompt", "Prompt", &f.prompt, 5, None))
                (fields::check(errors, "isEnabled", "Enabled (runs on its schedule)", f.is_enabled.is_some()))
            }
            div.actions { button type="submit" { (submit) } }
        }
    }
}
