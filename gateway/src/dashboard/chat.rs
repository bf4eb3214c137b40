//! Chat with an agent: pick one (`/chat`), read its dashboard history and send
//! (`/chat/{id}`); the reply streams in token by token.
//!
//! **Streaming.** `dashboard.js` posts the message to `/chat/{id}/stream`,
//! which hands it to the chat intake exactly as `POST /api/agents/{id}/chat`
//! does (`submit_and_watch`: the run's events are subscribed to before the
//! message is stored, so no delta can outrun the watcher) and answers with
//! server-sent events read from the intake's [`RunWatch`]: `accepted` (the job
//! id), `typing`, `delta` (`{"text"}`), and the end — `reply` (`{"html"}`, the
//! stored reply rendered by [`super::markdown`]) or `failed` (`{"reason"}`).
//! SSE from the gateway, not a WebSocket to the bridge: it is same-origin in
//! the split topology too (bridge on another port or host), passes the same
//! session check and CSRF rule as every page, and needs no second credential.
//!
//! **Resuming.** If the connection drops before the end, the script opens an
//! `EventSource` on `/chat/{id}/jobs/{job}/events` (which the browser itself
//! reconnects, sending `Last-Event-ID`). That watches the same job again
//! through [`arvis_shared::intake::Intake::watch`], whose fallback reads the
//! job row: a reply finished while the browser was away arrives at once,
//! whole. Deltas missed in between are not replayed (they are not stored);
//! the final reply replaces whatever was streamed, so no reply is lost.
//!
//! Without JavaScript the form posts to `/chat/{id}` and comes back to the
//! page (the reply shows after a reload).

use std::convert::Infallible;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures::{Stream, StreamExt as _};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::json;

use arvis_shared::domain::agent::Agent;
use arvis_shared::domain::conversation::{ChatMessage, DASHBOARD_PLATFORM, dashboard_channel};
use arvis_shared::intake::{Incoming, RunEvent, RunWatch};

use super::form::Errors;
use super::layout::{Ctx, NavItem, PageResult, page, page_with_status, see_other};
use super::markdown;
use super::pager::{PER_PAGE, PageParam, Pager};
use crate::error::{ApiError, ApiResult};
use crate::extract::{AppForm, AppPath};
use crate::state::AppState;

pub const NAV: NavItem = NavItem { href: "/chat", label: "Chat", ready: true };

/// Messages one page of history shows (older ones are a page further).
pub const HISTORY_PAGE: i64 = 100;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/chat", get(pick))
        .route("/chat/{id}", get(chat_page).post(send_plain))
        .route("/chat/{id}/stream", post(send_stream))
        .route("/chat/{id}/jobs/{job}/events", get(resume))
}

#[derive(Debug, Deserialize)]
pub struct MessageForm {
    #[serde(default)]
    pub message: String,
}

/// The dashboard's message to agent `id`, as the REST chat builds it.
fn incoming(id: i64, content: String) -> Incoming {
    Incoming {
        platform: DASHBOARD_PLATFORM.into(),
        channel_id: dashboard_channel(id),
        content,
        agent_id: Some(id),
        is_dm: true,
        ..Default::default()
    }
}

async fn pick(
    ctx: Ctx,
    State(state): State<AppState>,
    axum::extract::Query(p): axum::extract::Query<PageParam>,
) -> PageResult {
    let agents = state.deps.store.agents().await?;
    let pager = Pager::new(p.number(), PER_PAGE, agents.len() as i64);
    page(
        &ctx,
        "Chat",
        html! {
            @if agents.is_empty() {
                p.empty { "No agents yet. " a href="/agents/new" { "Create one" } " to chat with it." }
            } @else {
                p { "Pick an agent:" }
                (picker(pager.slice(&agents), None))
                (pager.render("/chat", "page"))
            }
        },
    )
}

fn picker(agents: &[Agent], current: Option<i64>) -> Markup {
    html! {
        ul.agent-pick {
            @for a in agents {
                li {
                    a href={ "/chat/" (a.id) } aria-current=[(Some(a.id) == current).then_some("page")] {
                        (a.name)
                        @if !a.is_active { " (paused)" }
                    }
                }
            }
        }
    }
}

async fn chat_page(
    ctx: Ctx,
    State(state): State<AppState>,
    AppPath(id): AppPath<i64>,
    axum::extract::Query(p): axum::extract::Query<PageParam>,
) -> PageResult {
    render_chat(&ctx, &state, id, p.number(), &Errors::none(), StatusCode::OK).await
}

async fn render_chat(
    ctx: &Ctx,
    state: &AppState,
    id: i64,
    page_no: i64,
    errors: &Errors,
    status: StatusCode,
) -> PageResult {
    let store = &state.deps.store;
    let agent = store.get_agent(id).await?.ok_or_else(|| ApiError::not_found("agent not found"))?;
    // The same reads as GET /api/agents/{id}/history.
    let messages = match store.latest_conversation(id, DASHBOARD_PLATFORM, &dashboard_channel(id)).await? {
        Some(conversation) => store.thread_messages(&conversation).await?,
        None => vec![],
    };
    // Page 1 is the newest messages; older ones are further pages.
    let pager = Pager::new(page_no, HISTORY_PAGE, messages.len() as i64);
    let end = messages.len().saturating_sub(usize::try_from(pager.offset()).unwrap_or(0));
    let start = end.saturating_sub(usize::try_from(pager.per_page).unwrap_or(0));
    let shown = &messages[start..end];
    let title = format!("Chat with {}", agent.name);
    page_with_status(
        ctx,
        status,
        &title,
        html! {
            @if !agent.is_active {
                p.banner role="status" { "This agent is paused: it will not answer until it is made active again on its "
                    a href={ "/agents/" (agent.id) } { "agent page" } "." }
            }
            (pager.render_labelled(&format!("/chat/{id}"), "page", "← Newer", "Older →"))
            div #thread .thread aria-live="polite" {
                @if messages.is_empty() { p.empty #empty-thread { "No messages yet: say hello." } }
                @for m in shown { (message(m, &agent.name)) }
            }
            form.composer.card method="post" action={ "/chat/" (id) }
                data-chat-stream={ "/chat/" (id) "/stream" }
                data-chat-resume={ "/chat/" (id) "/jobs/" }
                data-agent-name=(agent.name) {
                label for="message" { "Message" }
                textarea #message name="message" required
                    aria-invalid=[errors.invalid("message")] aria-describedby="message-error"
                    placeholder="Write a message (Enter sends, Shift+Enter for a new line)" {}
                span.field-error #message-error role="alert" hidden[errors.get("message").is_none()] {
                    (errors.get("message").unwrap_or(""))
                }
                div.actions { button type="submit" { "Send" } }
            }
        },
    )
}

/// One message of the history: the user's as text, the agent's as safe markdown.
pub fn message(m: &ChatMessage, agent_name: &str) -> Markup {
    html! {
        @match m.role.as_str() {
            "user" => div.msg.user { span.who { "you" } div.body { (m.content) } },
            "assistant" => div.msg.assistant { span.who { (agent_name) } div.body { (markdown::render(&m.content)) } },
            _ => {}
        }
    }
}

/// Without JavaScript: store the message and come back to the page.
async fn send_plain(
    ctx: Ctx,
    State(state): State<AppState>,
    AppPath(id): AppPath<i64>,
    AppForm(body): AppForm<MessageForm>,
) -> PageResult {
    match state.deps.intake().submit(incoming(id, body.message)).await {
        Ok(_) => Ok(see_other(&format!("/chat/{id}"))),
        Err(e) => {
            let e = ApiError::from(e);
            if e.status == StatusCode::NOT_FOUND {
                return Err(e.into());
            }
            render_chat(&ctx, &state, id, 1, &Errors::on("message", e.message.clone()), e.status).await
        }
    }
}

/// The reply as server-sent events (see the module doc). A refused message
/// answers `{"error": …}` with the API's status, shown next to the field.
async fn send_stream(
    State(state): State<AppState>,
    AppPath(id): AppPath<i64>,
    AppForm(body): AppForm<MessageForm>,
) -> ApiResult<Response> {
    let (accepted, watch) = state.deps.intake().submit_and_watch(incoming(id, body.message)).await?;
    let first = Event::default().event("accepted").id("0").data(json!({"jobId": accepted.job_id}).to_string());
    let stream = futures::stream::once(async move { Ok::<_, Infallible>(first) }).chain(run_events(watch));
    Ok(no_store(Sse::new(stream).keep_alive(KeepAlive::default()).into_response()))
}

/// Watches job `job` of agent `id` again after a lost connection.
async fn resume(State(state): State<AppState>, AppPath((id, job)): AppPath<(i64, i64)>) -> ApiResult<Response> {
    let row = state.deps.store.job(job).await?.filter(|j| j.agent_id == id);
    if row.is_none() {
        return Err(ApiError::not_found("job not found"));
    }
    let watch = state.deps.intake().watch(DASHBOARD_PLATFORM, &dashboard_channel(id), job).await;
    let first = Event::default().event("resumed").data(json!({"jobId": job}).to_string());
    let stream = futures::stream::once(async move { Ok::<_, Infallible>(first) }).chain(run_events(watch));
    Ok(no_store(Sse::new(stream).keep_alive(KeepAlive::default()).into_response()))
}

/// SSE answers `no-cache`; a reply is never to be kept by anything in between.
fn no_store(mut response: Response) -> Response {
    response.headers_mut().insert(axum::http::header::CACHE_CONTROL, axum::http::HeaderValue::from_static("no-store"));
    response
}

/// A run's events as SSE events, ending after the reply or the failure.
fn run_events(watch: RunWatch) -> impl Stream<Item = Result<Event, Infallible>> {
    futures::stream::unfold((watch, 1u64), |(mut watch, seq)| async move {
        let event = watch.next().await?;
        Some((Ok(sse_event(event, seq)), (watch, seq + 1)))
    })
}

fn sse_event(event: RunEvent, seq: u64) -> Event {
    let (name, data) = match event {
        RunEvent::Typing => ("typing", json!({})),
        RunEvent::Delta(text) => ("delta", json!({ "text": text })),
        RunEvent::Reply { content, .. } => ("reply", json!({ "html": markdown::render_string(&content) })),
        // The reason is written for the user; the cause stays in the logs and the queue.
        RunEvent::Failed(failure) => ("failed", json!({ "reason": failure.reason })),
    };
    Event::default().event(name).id(seq.to_string()).data(data.to_string())
}
