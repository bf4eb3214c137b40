//! Chat with an agent over REST (reference: Agents → chat):
//! `POST /api/agents/{id}/chat {"message": …}` stores the message, enqueues
//! the run and waits for the reply.
//!
//! Order matters: subscribe to the dashboard channel's reply subject and flush
//! *first*, then enqueue (message + job in one transaction), then signal
//! `JobReady` after the commit. The reply arrives as a `ReplyEvent`; because the
//! bus is at-most-once, the job row is also polled every 500 ms and its result
//! used when the event was lost. A timeout answers 504 while the job keeps
//! running — its reply lands in the conversation history.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use arvis_shared::bus::events::{JobReady, ReplyEvent, ReplyKind};
use arvis_shared::bus::subjects;
use arvis_shared::db::queue::ChatRequest;
use arvis_shared::domain::job::{DEFAULT_MAX_ATTEMPTS, priority};

use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{AppJson, AppPath};
use crate::state::AppState;

/// Longest accepted message, in characters.
pub const MAX_MESSAGE_CHARS: usize = 100_000;
const POLL_EVERY: Duration = Duration::from_millis(500);
const BUS_STEP_TIMEOUT: Duration = Duration::from_secs(2);

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(chat))
}

/// `POST /api/agents/{id}/chat` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChatBody {
    /// The user's message (1 to 100 000 characters).
    pub message: String,
}

/// The agent's reply.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChatReply {
    pub content: String,
}

/// The dashboard's channel for an agent.
pub fn dashboard_channel(agent_id: i64) -> String {
    format!("dashboard-agent-{agent_id}")
}

/// The user-readable part of a stored job error (before the technical detail).
fn summary(error: &str) -> &str {
    error.split(" (detail: ").next().unwrap_or(error)
}

/// Send a message to an agent and wait for its reply (up to `CHAT_TIMEOUT_SECS`).
/// 502 when the run failed, 504 when it takes longer (the run goes on; its reply
/// is stored in the conversation).
#[utoipa::path(post, path = "/api/agents/{id}/chat", tag = "agents", params(("id" = i64, Path)), request_body = ChatBody,
    responses((status = 200, body = ChatReply), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 413, body = ErrorBody), (status = 502, body = ErrorBody),
        (status = 504, body = ErrorBody)))]
async fn chat(
    State(state): State<AppState>,
    AppPath(id): AppPath<i64>,
    AppJson(body): AppJson<ChatBody>,
) -> ApiResult<Json<ChatReply>> {
    let deps = &state.deps;
    if body.message.trim().is_empty() {
        return Err(ApiError::bad_request("message must not be empty"));
    }
    arvis_shared::domain::check_text("message", &body.message, MAX_MESSAGE_CHARS)?;
    if deps.store.get_agent(id).await?.is_none() {
        return Err(ApiError::not_found("agent not found"));
    }
    let channel_id = dashboard_channel(id);
    // Subscribe before enqueueing, so the reply cannot outrun us.
    let mut sub = match deps.bus.subscribe(&subjects::reply("dashboard", &channel_id)).await {
        Ok(s) => {
            if !matches!(tokio::time::timeout(BUS_STEP_TIMEOUT, deps.bus.flush()).await, Ok(Ok(()))) {
                tracing::warn!("bus flush failed; the chat reply will be found by polling");
            }
            Some(s)
        }
        Err(error) => {
            tracing::warn!(%error, "cannot subscribe to replies; the chat reply will be found by polling");
            None
        }
    };
    let enqueued = deps
        .store
        .enqueue_chat(&ChatRequest {
            agent_id: id,
            platform: "dashboard".into(),
            channel_id: channel_id.clone(),
            user_id: None,
            user_name: None,
            content: body.message,
            priority: priority::USER,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
        })
        .await?;
    let job_id = enqueued.job_id;
    let ready = JobReady { v: 1, job_id, priority: enqueued.priority };
    if tokio::time::timeout(BUS_STEP_TIMEOUT, deps.bus.signal(&ready)).await.is_err() {
        tracing::warn!(job_id, "job signal not sent in time; workers will find the job by polling");
    }

    let wait = async {
        // The first look at the job row is one period in: before that the
        // reply event is the fast path, and reading at once would cost every
        // chat a query for nothing.
        let mut poll = tokio::time::interval_at(tokio::time::Instant::now() + POLL_EVERY, POLL_EVERY);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                msg = async { match sub.as_mut() { Some(s) => s.next().await, None => std::future::pending().await } } => {
                    match msg {
                        Some(m) => match m.decode::<ReplyEvent>() {
                            Some(e) if e.job_id == job_id && e.kind == ReplyKind::Message => return Ok(e.content),
                            Some(e) if e.job_id == job_id && e.kind == ReplyKind::Error => {
                                return Err(format!("the agent run failed: {}", e.content.trim_start_matches("Sorry, the agent run failed: ")));
                            }
                            _ => {}
                        },
                        None => sub = None,
                    }
                }
                _ = poll.tick() => {
                    match deps.store.job(job_id).await {
                        Ok(Some(job)) if job.status == "completed" => return Ok(job.result.unwrap_or_default()),
                        Ok(Some(job)) if job.status == "failed" || job.status == "cancelled" => {
                            let why = job.error.as_deref().map(summary).unwrap_or("unknown error").to_string();
                            return Err(format!("the agent run failed: {why}"));
                        }
                        Ok(_) => {}
                        Err(error) => tracing::warn!(%error, job_id, "cannot read the job while waiting for the reply"),
                    }
                }
            }
        }
    };
    match tokio::time::timeout(deps.config.chat_timeout, wait).await {
        Ok(Ok(content)) => Ok(Json(ChatReply { content })),
        Ok(Err(message)) => Err(ApiError::new(StatusCode::BAD_GATEWAY, message)),
        Err(_) => Err(ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            format!(
                "the agent did not answer within {} s; the run goes on and its reply will appear in the conversation",
                deps.config.chat_timeout.as_secs()
            ),
        )),
    }
}
