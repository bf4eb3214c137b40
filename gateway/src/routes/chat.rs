//! Chat with an agent over REST (reference: Agents → chat):
//! `POST /api/agents/{id}/chat {"message": …}` hands the message to the chat
//! intake ([`arvis_shared::intake`]: checked, routed to agent `id`, stored with
//! its job in one transaction, announced) and waits for the run's outcome on
//! the intake's watch. A timeout answers 504 while the job keeps running — its
//! reply lands in the conversation history.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use arvis_shared::intake::Incoming;

use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{AppJson, AppPath};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(chat))
}

/// `POST /api/agents/{id}/chat` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChatBody {
    /// The user's message (1 to 100 000 characters, not only whitespace).
    #[schema(
        min_length = 1,
        max_length = 100000,
        pattern = "[^\\t-\\r \\u0085\\u00A0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000]"
    )]
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

/// Send a message to an agent and wait for its reply (up to `CHAT_TIMEOUT_SECS`).
/// 404 for an unknown agent, 409 for a paused one, 502 when the run failed, 504
/// when it takes longer (the run goes on; its reply is stored in the conversation).
#[utoipa::path(post, path = "/api/agents/{id}/chat", tag = "agents", params(("id" = i64, Path)), request_body = ChatBody,
    responses((status = 200, body = ChatReply), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 502, body = ErrorBody),
        (status = 504, body = ErrorBody)))]
async fn chat(
    State(state): State<AppState>,
    AppPath(id): AppPath<i64>,
    AppJson(body): AppJson<ChatBody>,
) -> ApiResult<Json<ChatReply>> {
    let deps = &state.deps;
    let message = Incoming {
        platform: "dashboard".into(),
        channel_id: dashboard_channel(id),
        content: body.message,
        agent_id: Some(id),
        is_dm: true,
        ..Default::default()
    };
    let (_, watch) = deps.intake().submit_and_watch(message).await?;
    match tokio::time::timeout(deps.config.chat_timeout, watch.outcome()).await {
        Ok(Ok(content)) => Ok(Json(ChatReply { content })),
        Ok(Err(failure)) => {
            Err(ApiError::new(StatusCode::BAD_GATEWAY, format!("the agent run failed: {}", failure.reason)))
        }
        Err(_) => Err(ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            format!(
                "the agent did not answer within {} s; the run goes on and its reply will appear in the conversation",
                deps.config.chat_timeout.as_secs()
            ),
        )),
    }
}
