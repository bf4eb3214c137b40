//! The overview at `/`: agents, messages in the last 24 hours, queue depth and
//! running jobs, the cost of the last 30 days, a banner when jobs failed, a
//! 7-day activity chart and the last messages. The live part is a fragment
//! (`/ui/overview`) that htmx fetches again every 10 s — the original polled
//! every 30 s; ours costs five indexed reads, so it can afford to be fresher.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use maud::{Markup, html};
use time::OffsetDateTime;

use arvis_shared::clock::now_ms;
use arvis_shared::db::dashboard::{DAY_MS, RecentMessage};

use super::chart::{self, Bar};
use super::layout::{Ctx, NavItem, PageResult, html_response, page};
use crate::state::AppState;

pub const NAV: NavItem = NavItem { href: "/", label: "Overview", ready: true };

/// How many of the newest messages the overview lists.
pub const LAST_MESSAGES: i64 = 10;
/// Characters of a message shown in the list (the rest is in the conversation).
const PREVIEW_CHARS: usize = 160;

pub fn router() -> Router<AppState> {
    Router::new().route("/", get(overview)).route("/ui/overview", get(live))
}

/// Everything the overview shows, read in one go.
pub struct Snapshot {
    pub agents: i64,
    pub active_agents: i64,
    pub messages_24h: i64,
    pub pending: i64,
    pub running: i64,
    pub failed: i64,
    pub cost_30d: f64,
    pub unpriced_30d: i64,
    /// Oldest day first, seven of them, today last.
    pub days: Vec<Bar>,
    pub last: Vec<RecentMessage>,
}

pub async fn snapshot(state: &AppState) -> Result<Snapshot, arvis_shared::db::DbError> {
    let store = &state.deps.store;
    let now = now_ms();
    let (agents, active_agents) = store.agent_counts().await?;
    let (pending, running) = store.job_counts().await?;
    let counts = store.overview_counts(now - DAY_MS).await?;
    let usage = store.usage_report(now - 30 * DAY_MS).await?;
    let today = now.div_euclid(DAY_MS);
    let first = today - 6;
    let per_day = store.messages_per_day(first * DAY_MS).await?;
    let days = (first..=today)
        .map(|day| Bar {
            label: day_label(day),
            value: per_day.iter().find(|d| d.day == day).map(|d| d.count as f64).unwrap_or(0.0),
        })
        .collect();
    Ok(Snapshot {
        agents,
        active_agents,
        messages_24h: counts.messages_since,
        pending,
        running,
        failed: counts.failed_jobs,
        cost_30d: usage.total_cost_usd,
        unpriced_30d: usage.unpriced_requests,
        days,
        last: store.recent_messages(LAST_MESSAGES).await?,
    })
}

/// `Mon 30` for a day number since the epoch (UTC).
fn day_label(day: i64) -> String {
    match OffsetDateTime::from_unix_timestamp(day * 86_400) {
        Ok(t) => {
            let weekday = t.weekday().to_string();
            format!("{} {}", weekday.get(..3).unwrap_or(&weekday), t.day())
        }
        Err(_) => day.to_string(),
    }
}

async fn overview(ctx: Ctx, State(state): State<AppState>) -> PageResult {
    let snap = snapshot(&state).await?;
    page(&ctx, "Overview", live_section(&snap))
}

async fn live(State(state): State<AppState>) -> PageResult {
    let snap = snapshot(&state).await?;
    Ok(html_response(StatusCode::OK, live_section(&snap)))
}

fn preview(text: &str) -> String {
    let mut chars = text.chars();
    let head: String = chars.by_ref().take(PREVIEW_CHARS).collect();
    if chars.next().is_some() { format!("{head}…") } else { head }
}

pub fn live_section(s: &Snapshot) -> Markup {
    html! {
        section #overview-live hx-get="/ui/overview" hx-trigger="every 10s" hx-swap="outerHTML" aria-live="polite" {
            @if s.failed > 0 {
                p.banner role="alert" {
                    strong { (s.failed) @if s.failed == 1 { " failed job" } @else { " failed jobs" } }
                    " — see the " a href="/queue" { "queue" } " to retry them."
                }
            }
            dl.stats {
                div { dt { "Agents" } dd { (s.agents) } span.sub { (s.active_agents) " active" } }
                div { dt { "Messages, 24 h" } dd { (s.messages_24h) } }
                div { dt { "Queue" } dd { (s.pending) } span.sub { "pending · " (s.running) " running" } }
                div {
                    dt { "Cost, 30 days" } dd { (format!("${:.2}", s.cost_30d)) }
                    @if s.unpriced_30d > 0 { span.sub { (s.unpriced_30d) " unpriced calls" } }
                }
            }
            h2 { "Messages, last 7 days" }
            (chart::bars("Messages per day, last 7 days", &s.days, |v| format!("{v:.0}")))
            h2 { "Last messages" }
            @if s.last.is_empty() {
                p.empty { "No messages yet. " a href="/chat" { "Start a chat" } "." }
            } @else {
                div.table-wrap {
                    table {
                        thead { tr { th { "When" } th { "Agent" } th { "Platform" } th { "From" } th { "Message" } } }
                        tbody {
                            @for m in &s.last {
                                tr {
                                    td { time datetime=(m.created_at) { (m.created_at.get(..16).unwrap_or(&m.created_at).replace('T', " ")) } }
                                    td { a href={ "/agents/" (m.agent_id) } { (m.agent_name) } }
                                    td { (m.platform) }
                                    td { (m.role) }
                                    td.message { (preview(&m.content)) }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
