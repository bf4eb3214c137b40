//! The queue: jobs by status (`/queue?status=failed`, 50 a page, newest
//! first) with the number in each status, refreshed live — the list is a
//! fragment (`/ui/queue`, same query) htmx fetches again every 3 s, as the
//! original polled; a failed job shows its error; one job's page
//! (`/queue/{id}`) shows its payload, result and whole error.
//!
//! Retry (a failed job) and cancel (a pending one) are plain forms posting to
//! `/queue/{id}/retry` and `/queue/{id}/cancel`, which call the REST routes'
//! own functions (`routes::queue::{retry, cancel}`): the same conditional
//! update, the same wake-up signal to the workers, the same refusal. A refusal
//! (the job changed status meanwhile, or is gone) shows the page again with
//! the API's message and its status code; a success redirects back to the
//! list the form came from, with a notice.
//!
//! Keyboard and refresh: each button has a stable id, so when htmx replaces
//! the list under a focused button it puts the focus back on the same button.

use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use maud::{Markup, html};
use serde::Deserialize;

use arvis_shared::db::dashboard_ops::StatusCount;
use arvis_shared::domain::jobs::{JobView, STATUSES};

use super::layout::{Ctx, NavItem, PageResult, html_response, page, page_with_status, see_other};
use super::pager::{PER_PAGE, PageParam, Pager};
use crate::error::ApiError;
use crate::extract::{AppForm, AppPath};
use crate::routes;
use crate::state::AppState;

pub const NAV: NavItem = NavItem { href: "/queue", label: "Queue", ready: true };

/// Characters of a failed job's error shown in the list (the job's page has it all).
const ERROR_CHARS: usize = 200;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(NAV.href, get(list))
        .route("/ui/queue", get(live))
        .route("/queue/{id}", get(detail))
        .route("/queue/{id}/retry", post(retry))
        .route("/queue/{id}/cancel", post(cancel))
}

/// `?status=&page=` of the list, read leniently: an unknown status shows the
/// active jobs (pending and running), as `GET /api/queue` without one.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ListQuery {
    pub status: Option<String>,
    pub page: Option<String>,
    /// A job just retried or cancelled (the notice after the redirect; read
    /// as text so a hand-edited value is ignored, not a 400).
    pub retried: Option<String>,
    pub cancelled: Option<String>,
}

/// Which list: one status, or `None` for the active ones.
fn status_of(raw: Option<&str>) -> Option<&'static str> {
    raw.and_then(|s| STATUSES.iter().find(|k| **k == s).copied())
}

/// The list's URL (`/queue` or `/ui/queue`) with its status and page.
fn list_url(base: &str, status: Option<&str>, page: i64) -> String {
    match status {
        Some(s) => format!("{base}?status={s}&page={page}"),
        None => format!("{base}?page={page}"),
    }
}

/// The list's URL without a page (the pager adds it).
fn list_base(status: Option<&str>) -> String {
    match status {
        Some(s) => format!("/queue?status={s}"),
        None => NAV.href.to_string(),
    }
}

fn count(counts: &[StatusCount], status: &str) -> i64 {
    counts.iter().find(|c| c.status == status).map(|c| c.count).unwrap_or(0)
}

fn clip(text: &str, max: usize) -> String {
    let mut chars = text.chars();
    let head: String = chars.by_ref().take(max).collect();
    if chars.next().is_some() { format!("{head}…") } else { head }
}

fn minute(t: &str) -> String {
    t.get(..16).unwrap_or(t).replace('T', " ")
}

/// The live part: the counts per status (as tabs) and one page of the list.
async fn live_section(state: &AppState, status: Option<&'static str>, page: i64) -> Result<Markup, ApiError> {
    let store = &state.deps.store;
    let counts = store.job_status_counts().await?;
    let statuses: Vec<&str> = match status {
        Some(s) => vec![s],
        None => vec!["pending", "running"],
    };
    let total: i64 = statuses.iter().map(|s| count(&counts, s)).sum();
    let pager = Pager::new(page, PER_PAGE, total);
    let (jobs, total) = store.jobs_page(&statuses, pager.limit(), pager.offset()).await?;
    // The count may have moved between the two reads: page by the list's own.
    let pager = Pager::new(pager.page, PER_PAGE, total);
    let tab = |s: Option<&str>, label: &str, n: i64| {
        html! {
            li { a href=(list_url("/queue", s, 1)) aria-current=[(s == status).then_some("page")] {
                (label) " " span.count { (n) }
            } }
        }
    };
    Ok(html! {
        section #queue-live hx-get=(list_url("/ui/queue", status, pager.page)) hx-trigger="every 3s" hx-swap="outerHTML" {
            nav.tabs aria-label="Job status" {
                ul {
                    (tab(None, "Active", count(&counts, "pending") + count(&counts, "running")))
                    @for s in STATUSES { (tab(Some(s), &capitalised(s), count(&counts, s))) }
                }
            }
            @if jobs.is_empty() {
                p.empty { @match status {
                    None => "No pending or running jobs.",
                    Some(s) => { "No " (s) " jobs." }
                } }
            } @else {
                div.table-wrap {
                    table {
                        thead { tr {
                            th { "Job" } th { "Agent" } th { "Kind" } th { "Status" } th { "Priority" }
                            th { "Attempts" } th { "Created" } th { "Error" } th { span.visually-hidden { "Actions" } }
                        } }
                        tbody { @for j in &jobs { (row(j, status, pager.page)) } }
                    }
                }
                (pager.render(&list_base(status), "page"))
            }
        }
    })
}

fn job_id(raw: &Option<String>) -> Option<i64> {
    raw.as_deref().and_then(|v| v.parse().ok())
}

fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// The retry or cancel button of a job, if it has one.
fn actions(j: &JobView, status: Option<&str>, page: i64) -> Markup {
    html! {
        @if j.status == "failed" {
            form.inline method="post" action={ "/queue/" (j.id) "/retry" } {
                @if let Some(s) = status { input type="hidden" name="status" value=(s); }
                input type="hidden" name="page" value=(page);
                button #{ "retry-" (j.id) } type="submit" aria-label={ "Retry job " (j.id) } { "Retry" }
            }
        } @else if j.status == "pending" {
            form.inline method="post" action={ "/queue/" (j.id) "/cancel" } data-confirm={ "Cancel job " (j.id) "?" } {
                @if let Some(s) = status { input type="hidden" name="status" value=(s); }
                input type="hidden" name="page" value=(page);
                button.danger #{ "cancel-" (j.id) } type="submit" aria-label={ "Cancel job " (j.id) } { "Cancel" }
            }
        }
    }
}

fn row(j: &JobView, status: Option<&str>, page: i64) -> Markup {
    html! {
        tr {
            td { a href={ "/queue/" (j.id) } { "#" (j.id) } }
            td { a href={ "/agents/" (j.agent_id) } { (j.agent_name) } }
            td { (j.kind) }
            td { span.status.(j.status) { (j.status) } }
            td { (j.priority) }
            td { (j.attempts) " / " (j.max_attempts) }
            td { time datetime=(j.created_at) { (minute(&j.created_at)) } }
            td.message { @if let Some(e) = &j.error { span.job-error { (clip(e, ERROR_CHARS)) } } }
            td { (actions(j, status, page)) }
        }
    }
}

async fn render_list(
    state: &AppState,
    q: &ListQuery,
    refusal: Option<&ApiError>,
) -> Result<(Markup, StatusCode), ApiError> {
    let status = status_of(q.status.as_deref());
    let page = PageParam { page: q.page.clone() }.number();
    let live = live_section(state, status, page).await?;
    let code = refusal.map(|e| e.status).unwrap_or(StatusCode::OK);
    Ok((
        html! {
            @if let Some(e) = refusal { p.error role="alert" { (e.message) } }
            @if let Some(id) = job_id(&q.retried) { p.notice.ok-text role="status" { "Job #" (id) " is pending again." } }
            @if let Some(id) = job_id(&q.cancelled) { p.notice.ok-text role="status" { "Job #" (id) " was cancelled." } }
            (live)
        },
        code,
    ))
}

async fn list(ctx: Ctx, State(state): State<AppState>, Query(q): Query<ListQuery>) -> PageResult {
    let (body, _) = render_list(&state, &q, None).await?;
    page(&ctx, "Queue", body)
}

async fn live(State(state): State<AppState>, Query(q): Query<ListQuery>) -> PageResult {
    let status = status_of(q.status.as_deref());
    let page = PageParam { page: q.page.clone() }.number();
    Ok(html_response(StatusCode::OK, live_section(&state, status, page).await?))
}

/// Where a retry or cancel form came from (the list to go back to).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct BackForm {
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub page: Option<String>,
}

async fn act(ctx: Ctx, state: AppState, id: i64, form: BackForm, retry: bool) -> PageResult {
    let status = status_of(form.status.as_deref());
    let page_no = PageParam { page: form.page.clone() }.number();
    let result = if retry { routes::queue::retry(&state, id).await } else { routes::queue::cancel(&state, id).await };
    match result {
        Ok(_) => {
            let back = list_url("/queue", status, page_no);
            Ok(see_other(&format!("{back}&{}={id}", if retry { "retried" } else { "cancelled" })))
        }
        // Refused (409: not failed / not pending any more; 404: gone): the
        // list again, with the API's message, under the API's status.
        Err(e) if e.status.is_client_error() => {
            let q =
                ListQuery { status: status.map(String::from), page: Some(page_no.to_string()), ..Default::default() };
            let (body, code) = render_list(&state, &q, Some(&e)).await?;
            page_with_status(&ctx, code, "Queue", body)
        }
        Err(e) => Err(e.into()),
    }
}

async fn retry(
    ctx: Ctx,
    State(state): State<AppState>,
    AppPath(id): AppPath<i64>,
    AppForm(f): AppForm<BackForm>,
) -> PageResult {
    act(ctx, state, id, f, true).await
}

async fn cancel(
    ctx: Ctx,
    State(state): State<AppState>,
    AppPath(id): AppPath<i64>,
    AppForm(f): AppForm<BackForm>,
) -> PageResult {
    act(ctx, state, id, f, false).await
}

async fn detail(ctx: Ctx, State(state): State<AppState>, AppPath(id): AppPath<i64>) -> PageResult {
    let j = state.deps.store.get_job(id).await?.ok_or_else(|| ApiError::not_found("job not found"))?;
    let payload = serde_json::to_string_pretty(&j.payload).unwrap_or_default();
    page(
        &ctx,
        &format!("Job #{}", j.id),
        html! {
            dl.meta {
                div { dt { "Agent" } dd { a href={ "/agents/" (j.agent_id) } { (j.agent_name) } } }
                div { dt { "Kind" } dd { (j.kind) } }
                div { dt { "Status" } dd { span.status.(j.status) { (j.status) } } }
                div { dt { "Priority" } dd { (j.priority) } }
                div { dt { "Attempts" } dd { (j.attempts) " / " (j.max_attempts) } }
                div { dt { "Created" } dd { (minute(&j.created_at)) } }
                div { dt { "Due" } dd { (minute(&j.run_after)) } }
                @if let Some(t) = &j.started_at { div { dt { "Started" } dd { (minute(t)) } } }
                @if let Some(t) = &j.completed_at { div { dt { "Finished" } dd { (minute(t)) } } }
                @if let Some(c) = &j.conversation_id {
                    div { dt { "Conversation" } dd { a href=(super::conversations::href(c, "")) { code { (c) } } } }
                }
            }
            p.actions { (actions(&j, Some(j.status.as_str()), 1)) a href=(NAV.href) { "Back to the queue" } }
            @if let Some(e) = &j.error { h2 { "Error" } pre.job-error { (e) } }
            @if let Some(r) = &j.result { h2 { "Result" } pre.output { (r) } }
            h2 { "Payload" }
            pre.output { (payload) }
        },
    )
}
