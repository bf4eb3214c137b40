//! Conversations: every conversation across agents and platforms
//! (`/conversations`, 50 a page, newest activity first — the rows
//! `GET /api/sessions` gives), one thread (`/conversations/{id}`, 100 messages
//! a page, oldest first, so a 10 000-message thread is never read whole), and
//! its export (`/conversations/{id}/export`): a JSON download of exactly what
//! `GET /api/conversations/{id}` answers, produced by the same function
//! (`routes::sessions::thread`), with `Content-Disposition: attachment`.
//!
//! The agent's replies are rendered as safe markdown ([`super::markdown`]),
//! everything else (user, system, tool text) as escaped text.

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use maud::{Markup, html};

use arvis_shared::domain::conversation::{ChatMessage, SessionSummary};

use super::layout::{Ctx, NavItem, PageResult, page};
use super::markdown;
use super::pager::{PER_PAGE, PageParam, Pager};
use crate::error::ApiError;
use crate::extract::AppPath;
use crate::routes;
use crate::state::AppState;

pub const NAV: NavItem = NavItem { href: "/conversations", label: "Conversations", ready: true };

/// Messages of a thread per page: a long chat reads in a few pages, and a
/// page stays a few hundred kilobytes at most.
pub const MESSAGES_PER_PAGE: i64 = 100;
/// Characters of the last message shown in the list.
const PREVIEW_CHARS: usize = 120;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(NAV.href, get(list))
        .route("/conversations/{id}", get(thread))
        .route("/conversations/{id}/export", get(export))
}

fn preview(text: &str) -> String {
    let mut chars = text.chars();
    let head: String = chars.by_ref().take(PREVIEW_CHARS).collect();
    if chars.next().is_some() { format!("{head}…") } else { head }
}

/// `2026-12-01 12:00` from an RFC 3339 time.
fn minute(t: &str) -> String {
    t.get(..16).unwrap_or(t).replace('T', " ")
}

/// The path of a conversation's page; its id percent-encoded (ids are ours,
/// `conv_<hex>`, but an imported one may hold anything).
pub fn href(id: &str, tail: &str) -> String {
    let mut out = String::from("/conversations/");
    for b in id.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out.push_str(tail);
    out
}

async fn list(ctx: Ctx, State(state): State<AppState>, Query(p): Query<PageParam>) -> PageResult {
    let store = &state.deps.store;
    let pager = Pager::new(p.number(), PER_PAGE, store.conversation_total().await?);
    let rows = store.list_sessions(pager.limit(), pager.offset()).await?;
    page(
        &ctx,
        "Conversations",
        html! {
            @if rows.is_empty() {
                p.empty { "No conversations yet. They appear here as agents talk on any platform or in the "
                    a href="/chat" { "chat" } "." }
            } @else {
                div.table-wrap {
                    table {
                        thead { tr {
                            th { "Conversation" } th { "Agent" } th { "Platform" } th { "Channel" }
                            th { "Messages" } th { "Last message" } th { "Last activity" }
                        } }
                        tbody { @for c in &rows { (row(c)) } }
                    }
                }
                (pager.render(NAV.href, "page"))
            }
        },
    )
}

fn row(c: &SessionSummary) -> Markup {
    html! {
        tr {
            td { a href=(href(&c.id, "")) { code { (c.id) } } }
            td { a href={ "/agents/" (c.agent_id) } { (c.agent_name) } }
            td { (c.platform) }
            td { (c.channel_id) }
            td { (c.message_count) }
            td.message { @if let Some(m) = &c.last_message { (preview(m)) } @else { span.empty { "—" } } }
            td { time datetime=(c.last_message_at) { (minute(&c.last_message_at)) } }
        }
    }
}

async fn thread(
    ctx: Ctx,
    State(state): State<AppState>,
    AppPath(id): AppPath<String>,
    Query(p): Query<PageParam>,
) -> PageResult {
    arvis_shared::domain::check_text("id", &id, 200).map_err(ApiError::from)?;
    let store = &state.deps.store;
    let c = store.conversation_summary(&id).await?.ok_or_else(|| ApiError::not_found("conversation not found"))?;
    let pager = Pager::new(p.number(), MESSAGES_PER_PAGE, c.message_count);
    let messages = store.thread_page(&id, pager.limit(), pager.offset()).await?;
    let base = href(&id, "");
    page(
        &ctx,
        &format!("Conversation with {}", c.agent_name),
        html! {
            dl.meta {
                div { dt { "Agent" } dd { a href={ "/agents/" (c.agent_id) } { (c.agent_name) } } }
                div { dt { "Platform" } dd { (c.platform) } }
                div { dt { "Channel" } dd { (c.channel_id) } }
                div { dt { "Messages" } dd { (c.message_count) } }
                div { dt { "Started" } dd { time datetime=(c.started_at) { (minute(&c.started_at)) } } }
                div { dt { "Last activity" } dd { time datetime=(c.last_message_at) { (minute(&c.last_message_at)) } } }
            }
            p.actions {
                a href=(href(&id, "/export")) download { "Export as JSON" }
                a href=(NAV.href) { "All conversations" }
            }
            (pager.render(&base, "page"))
            @if messages.is_empty() {
                p.empty { "This conversation has no messages." }
            } @else {
                ol.thread.transcript {
                    @for m in &messages { li { (message(m, &c.agent_name)) } }
                }
            }
            (pager.render(&base, "page"))
        },
    )
}

/// One message: who said it and when; the agent's text as safe markdown,
/// anyone else's as plain (escaped) text.
fn message(m: &ChatMessage, agent_name: &str) -> Markup {
    html! {
        div.msg.(m.role) {
            span.who {
                @match m.role.as_str() { "assistant" => (agent_name), "user" => "user", other => (other) }
                " · " time datetime=(m.created_at) { (minute(&m.created_at)) }
            }
            div.body {
                @if m.role == "assistant" { (markdown::render(&m.content)) } @else { (m.content) }
            }
        }
    }
}

/// The thread as a JSON file: `GET /api/conversations/{id}`'s body, byte for
/// byte (the same function and the same serializer), saved under its id.
async fn export(
    State(state): State<AppState>,
    AppPath(id): AppPath<String>,
) -> Result<Response, super::layout::PageError> {
    let thread = routes::sessions::thread(&state, &id).await?;
    let body = serde_json::to_vec(&thread).map_err(|e| ApiError::internal(format!("conversation export: {e}")))?;
    let name: String =
        id.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect();
    let disposition = HeaderValue::from_str(&format!("attachment; filename=\"{name}.json\""))
        .unwrap_or(HeaderValue::from_static("attachment; filename=\"conversation.json\""));
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("application/json")),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        body,
    )
        .into_response())
}
