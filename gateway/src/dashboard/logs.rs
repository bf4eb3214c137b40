//! Logs: the stored log lines, newest first (`/logs?level=warn`, 100 a page),
//! filtered by minimum level as `GET /api/logs?level=` is (the same
//! `parse_min_level`, the same refusal of an unknown level). The first page is
//! a live tail: a fragment (`/ui/logs`, same query) htmx fetches again every
//! 5 s. Later pages hold still — rows moving under a reader who paged back
//! would make them unreadable — and page by the total, so even a table of
//! 100 000 lines renders one page at a time (the logger prunes the table to
//! its configured size anyway).

use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use maud::{Markup, html};
use serde::Deserialize;

use arvis_shared::domain::logs::parse_min_level;

use super::layout::{Ctx, NavItem, PageResult, html_response, page};
use super::pager::{PageParam, Pager};
use crate::error::ApiError;
use crate::state::AppState;

pub const NAV: NavItem = NavItem { href: "/logs", label: "Logs", ready: true };

/// Lines per page: a screenful or two of a tail.
pub const LINES_PER_PAGE: i64 = 100;
/// Characters of a line's message shown (a stack dump stays a few lines).
const MSG_CHARS: usize = 2_000;

/// The filter's choices: `""` = every level, as the API without `?level=`.
const LEVELS: &[(&str, &str)] = &[
    ("", "All levels"),
    ("debug", "Debug and up"),
    ("info", "Info and up"),
    ("warn", "Warnings and errors"),
    ("error", "Errors"),
];

pub fn router() -> Router<AppState> {
    Router::new().route(NAV.href, get(logs)).route("/ui/logs", get(live))
}

#[derive(Debug, Default, Deserialize)]
pub struct LogsQuery {
    pub level: Option<String>,
    pub page: Option<String>,
}

impl LogsQuery {
    /// The level as the API reads it (an empty one is "every level").
    fn level(&self) -> Option<&str> {
        self.level.as_deref().filter(|l| !l.is_empty())
    }
}

fn base(path: &str, level: Option<&str>) -> String {
    match level {
        Some(l) => format!("{path}?level={l}"),
        None => path.to_string(),
    }
}

async fn section(state: &AppState, q: &LogsQuery) -> Result<Markup, ApiError> {
    let level = q.level();
    let min = parse_min_level(level)?;
    let requested = PageParam { page: q.page.clone() }.number();
    let store = &state.deps.store;
    let (_, total) = store.logs_page(min, 0, 0).await?;
    let pager = Pager::new(requested, LINES_PER_PAGE, total);
    let (lines, _) = store.logs_page(min, pager.limit(), pager.offset()).await?;
    let tail = pager.page == 1;
    let fragment = {
        let b = base("/ui/logs", level);
        format!("{b}{}page=1", if b.contains('?') { '&' } else { '?' })
    };
    Ok(html! {
        section #logs-live
            hx-get=[tail.then_some(fragment.as_str())] hx-trigger=[tail.then_some("every 5s")] hx-swap=[tail.then_some("outerHTML")] {
            p.sub role="status" {
                @if tail { "Live: the newest lines, refreshed every 5 seconds." }
                @else { "Older lines (the live tail is on " a href=(base("/logs", level)) { "the first page" } ")." }
            }
            @if lines.is_empty() {
                p.empty { @if level.is_some() { "No log lines at this level." } @else { "No log lines yet." } }
            } @else {
                div.table-wrap {
                    table.logs {
                        thead { tr {
                            th { "Time" } th { "Level" } th { "Service" } th { "Message" } th { "Agent" } th { "Job" } th { "Duration" }
                        } }
                        tbody {
                            @for l in &lines {
                                tr.(format!("level-{}", l.level)) {
                                    td { time datetime=(l.time) { (l.time.get(..19).unwrap_or(&l.time).replace('T', " ")) } }
                                    td { span.level.(l.level) { (l.level) } }
                                    td { (l.service) br; span.sub { (l.target) } }
                                    td.message { (clip(&l.msg)) }
                                    td { @if let Some(a) = l.agent_id { a href={ "/agents/" (a) } { (a) } } }
                                    td { @if let Some(j) = l.job_id { a href={ "/queue/" (j) } { "#" (j) } } }
                                    td { @if let Some(d) = l.duration_ms { (d) " ms" } }
                                }
                            }
                        }
                    }
                }
                (pager.render(&base("/logs", level), "page"))
            }
        }
    })
}

fn clip(text: &str) -> String {
    let mut chars = text.chars();
    let head: String = chars.by_ref().take(MSG_CHARS).collect();
    if chars.next().is_some() { format!("{head}…") } else { head }
}

async fn logs(ctx: Ctx, State(state): State<AppState>, Query(q): Query<LogsQuery>) -> PageResult {
    let body = section(&state, &q).await?;
    let level = q.level().unwrap_or("");
    page(
        &ctx,
        "Logs",
        html! {
            form.filters method="get" action=(NAV.href) {
                label for="level" { "Level" }
                select #level name="level" {
                    @for (value, label) in LEVELS { option value=(value) selected[*value == level] { (label) } }
                }
                button type="submit" { "Filter" }
            }
            (body)
        },
    )
}

async fn live(State(state): State<AppState>, Query(q): Query<LogsQuery>) -> PageResult {
    Ok(html_response(StatusCode::OK, section(&state, &q).await?))
}
