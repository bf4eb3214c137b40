//! The OpenAI-compatible API (issue 21): every active agent is a "model".
//!
//! - `GET /v1/models`, `GET /v1/models/{id}`: the agents the caller may use.
//! - `POST /v1/chat/completions`: one run of the agent, through the chat
//!   intake like every other door (platform `api`, a fresh channel and so a
//!   fresh conversation per request — the API is stateless), with the
//!   client's transcript carried in the job ([`ApiChat`]) for the worker to
//!   answer instead of the stored conversation. The agent's prompt, memory,
//!   skills and tools apply; the client's system messages come after the
//!   agent's prompt. Plain: one `chat.completion`. `stream: true`: Server-Sent
//!   Events of `chat.completion.chunk`, each written to the socket as the
//!   run's delta arrives ([`stream`]).
//!
//! Who may call: the guard ([`crate::access`]) authenticates `/v1` with an
//! API key of `/api/keys` (`Authorization: Bearer arvis_sk_…`), the dashboard
//! key or a session, and hands the handler a [`Caller`]. A key limited to
//! some agents sees and may use only those. Every failure is a [`V1Error`]
//! (OpenAI's error shape).
//!
//! Refused with 400 rather than ignored: client-side `tools`/`functions`
//! (the agent's own tools run on the server), `n > 1`, audio output and
//! non-text content parts.

pub mod error;
pub mod stream;

use std::time::Duration;

use axum::Json;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use arvis_shared::clock::now_ms;
use arvis_shared::domain::agent::Agent;
use arvis_shared::domain::api_key::ApiKey;
use arvis_shared::domain::job::{ApiChat, ApiTurn};
use arvis_shared::intake::Incoming;

use crate::state::AppState;
use error::{OpenAiErrorBody, V1Error, V1Json, V1Result};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_models)).routes(routes!(get_model)).routes(routes!(chat_completions))
}

/// Is this path served by the OpenAI-compatible API (and so answered in its error shape)?
pub fn is_v1(path: &str) -> bool {
    path == "/v1" || path.starts_with("/v1/")
}

/// Who called `/v1`, as the guard found it.
#[derive(Debug, Clone)]
pub enum Caller {
    /// The dashboard key, a dashboard session, or an open API: every agent.
    Admin,
    /// A key of `/api/keys`, with its scope and budget.
    Key(ApiKey),
}

impl Caller {
    fn may_use(&self, agent: &Agent) -> bool {
        agent.is_active && self.allows(&agent.slug)
    }
    fn allows(&self, slug: &str) -> bool {
        match self {
            Caller::Admin => true,
            Caller::Key(key) => key.allows(slug),
        }
    }
    fn key(&self) -> Option<&ApiKey> {
        match self {
            Caller::Admin => None,
            Caller::Key(key) => Some(key),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = V1Error;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Caller, V1Error> {
        // The guard always sets it; without it, nothing authenticated the request.
        parts.extensions.get::<Caller>().cloned().ok_or_else(|| V1Error::invalid_key("authentication required"))
    }
}

/// An agent as a model.
#[derive(Debug, Serialize, ToSchema)]
pub struct Model {
    /// The agent's slug: what `model` names in a chat completion.
    pub id: String,
    /// Always `model`.
    pub object: &'static str,
    /// When the agent was created (Unix seconds).
    pub created: i64,
    /// Always `arvis`.
    pub owned_by: &'static str,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ModelList {
    /// Always `list`.
    pub object: &'static str,
    pub data: Vec<Model>,
}

async fn models(state: &AppState, caller: &Caller) -> V1Result<Vec<Model>> {
    let store = &state.deps.store;
    let agents = store.agents().await?;
    let created = store.agent_creation_times().await?;
    Ok(agents
        .iter()
        .filter(|a| caller.may_use(a))
        .map(|a| Model {
            id: a.slug.clone(),
            object: "model",
            created: created.get(&a.id).copied().unwrap_or(0) / 1000,
            owned_by: "arvis",
        })
        .collect())
}

/// The active agents this caller may use, as models.
#[utoipa::path(get, path = "/v1/models", tag = "openai",
    responses((status = 200, body = ModelList), (status = 401, body = OpenAiErrorBody)))]
async fn list_models(State(state): State<AppState>, caller: Caller) -> V1Result<Json<ModelList>> {
    Ok(Json(ModelList { object: "list", data: models(&state, &caller).await? }))
}

/// One model (agent) by slug; 404 `model_not_found` when it does not exist,
/// is paused, or the key may not use it.
#[utoipa::path(get, path = "/v1/models/{id}", tag = "openai", params(("id" = String, Path, description = "agent slug")),
    responses((status = 200, body = Model), (status = 401, body = OpenAiErrorBody), (status = 404, body = OpenAiErrorBody)))]
async fn get_model(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> V1Result<Json<Model>> {
    models(&state, &caller)
        .await?
        .into_iter()
        .find(|m| m.id == id)
        .map(Json)
        .ok_or_else(|| V1Error::model_not_found(&id))
}

/// `POST /v1/chat/completions` body: OpenAI's fields that mean something
/// here. Other fields (`top_p`, `seed`, `stop`, …) are accepted and ignored,
/// as many clients send them by default.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ChatCompletionRequest {
    /// The agent's slug.
    #[schema(min_length = 1)]
    pub model: String,
    /// system / developer / user / assistant turns; content is a string or an
    /// array of text parts; the last is the user's.
    #[schema(value_type = Vec<Object>, min_items = 1)]
    pub messages: Vec<Value>,
    #[serde(default)]
    #[schema(minimum = 0.0, maximum = 2.0)]
    pub temperature: Option<f64>,
    #[serde(default)]
    #[schema(minimum = 1)]
    pub max_tokens: Option<i64>,
    #[serde(default)]
    #[schema(minimum = 1)]
    pub max_completion_tokens: Option<i64>,
    #[serde(default)]
    pub stream: Option<bool>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub stream_options: Option<Value>,
    /// The end user, stored as the conversation's user id.
    #[serde(default)]
    pub user: Option<String>,
    /// Accepted, not stored.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Value>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub n: Option<Value>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub tools: Option<Value>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub tool_choice: Option<Value>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub functions: Option<Value>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub function_call: Option<Value>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub audio: Option<Value>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub modalities: Option<Value>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Usage {
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub total_tokens: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ChatCompletion {
    /// `chatcmpl-arvis-<job id>`.
    pub id: String,
    /// Always `chat.completion`.
    pub object: &'static str,
    pub created: i64,
    pub model: String,
    pub choices: Vec<Choice>,
    pub usage: Usage,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Choice {
    pub index: u32,
    pub message: AssistantMessage,
    #[schema(value_type = Option<Object>)]
    pub logprobs: Option<Value>,
    /// `stop`.
    pub finish_reason: &'static str,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AssistantMessage {
    /// Always `assistant`.
    pub role: &'static str,
    pub content: String,
    #[schema(value_type = Option<String>)]
    pub refusal: Option<String>,
}

/// What a checked request asks for.
struct Checked {
    transcript: ApiChat,
    /// The last user message: what is stored in the conversation.
    last_user: String,
    stream: bool,
    include_usage: bool,
}

fn unsupported(param: &str, what: &str) -> V1Error {
    V1Error::invalid(format!("{what} is not supported: an Arvis agent uses its own tools and answers in text"))
        .with_param(param)
}

/// Applies the rules of the request body (see the module docs).
fn check(body: &ChatCompletionRequest) -> V1Result<Checked> {
    let present = |v: &Option<Value>| v.as_ref().is_some_and(|v| !v.is_null());
    if present(&body.tools) || present(&body.tool_choice) {
        return Err(unsupported("tools", "client-supplied tools"));
    }
    if present(&body.functions) || present(&body.function_call) {
        return Err(unsupported("functions", "client-supplied functions"));
    }
    if present(&body.audio) {
        return Err(unsupported("audio", "audio output"));
    }
    if let Some(modalities) = body.modalities.as_ref().and_then(Value::as_array)
        && modalities.iter().any(|m| m != "text")
    {
        return Err(unsupported("modalities", "output other than text"));
    }
    match &body.n {
        None | Some(Value::Null) => {}
        Some(n) if n.as_i64() == Some(1) => {}
        Some(_) => return Err(V1Error::invalid("n must be 1: one choice per completion").with_param("n")),
    }
    if let Some(t) = body.temperature
        && !(0.0..=2.0).contains(&t)
    {
        return Err(V1Error::invalid("temperature must be between 0 and 2").with_param("temperature"));
    }
    let max_tokens = body.max_completion_tokens.or(body.max_tokens);
    if let Some(m) = max_tokens
        && m < 1
    {
        return Err(V1Error::invalid("max_tokens must be at least 1").with_param("max_tokens"));
    }
    if body.messages.is_empty() {
        return Err(V1Error::invalid("messages must not be empty").with_param("messages"));
    }
    let mut transcript = ApiChat { max_tokens, temperature: body.temperature, ..Default::default() };
    for (i, message) in body.messages.iter().enumerate() {
        let param = format!("messages[{i}]");
        let role = message.get("role").and_then(Value::as_str).unwrap_or("");
        if message.get("tool_calls").is_some_and(|v| !v.is_null())
            || message.get("function_call").is_some_and(|v| !v.is_null())
        {
            return Err(unsupported(&param, "a tool call in the transcript"));
        }
        let content = text_of(message.get("content"), &param)?;
        match role {
            "system" | "developer" => transcript.system.push(content),
            "user" | "assistant" => transcript.messages.push(ApiTurn { role: role.into(), content }),
            "tool" | "function" => return Err(unsupported(&param, "a tool result in the transcript")),
            other => {
                return Err(V1Error::invalid(format!(
                    "{param}.role must be system, developer, user or assistant, not {other:?}"
                ))
                .with_param(&format!("{param}.role")));
            }
        }
    }
    let last_user = match transcript.messages.last() {
        Some(turn) if turn.role == "user" => turn.content.clone(),
        _ => return Err(V1Error::invalid("the last message must be the user's").with_param("messages")),
    };
    let stream = body.stream.unwrap_or(false);
    let include_usage = stream
        && body.stream_options.as_ref().and_then(|o| o.get("include_usage")).and_then(Value::as_bool).unwrap_or(false);
    Ok(Checked { transcript, last_user, stream, include_usage })
}

/// A message's text: a string, or an array of `{"type":"text","text":…}` parts.
fn text_of(content: Option<&Value>, param: &str) -> V1Result<String> {
    match content {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Array(parts)) => {
            let mut text = String::new();
            for part in parts {
                match (part.get("type").and_then(Value::as_str), part.get("text").and_then(Value::as_str)) {
                    (Some("text"), Some(t)) => text.push_str(t),
                    (kind, _) => {
                        return Err(V1Error::invalid(format!(
                            "{param}.content: only text parts are supported, not {}",
                            kind.unwrap_or("an untyped part")
                        ))
                        .with_param(&format!("{param}.content")));
                    }
                }
            }
            Ok(text)
        }
        _ => Err(V1Error::invalid(format!("{param}.content must be a string or an array of text parts"))
            .with_param(&format!("{param}.content"))),
    }
}

/// Answer a chat completion with an agent. 400 for what is not supported,
/// 401 without a valid key, 404 `model_not_found`, 429 `insufficient_quota`
/// over a budget, 502 when the run failed, 504 after `CHAT_TIMEOUT_SECS`
/// (the run goes on and is stored).
#[utoipa::path(post, path = "/v1/chat/completions", tag = "openai", request_body = ChatCompletionRequest,
    responses((status = 200, body = ChatCompletion, description = "a chat.completion, or with stream: text/event-stream of chat.completion.chunk"),
        (status = 400, body = OpenAiErrorBody), (status = 401, body = OpenAiErrorBody), (status = 404, body = OpenAiErrorBody),
        (status = 413, body = OpenAiErrorBody), (status = 429, body = OpenAiErrorBody), (status = 502, body = OpenAiErrorBody),
        (status = 504, body = OpenAiErrorBody)))]
async fn chat_completions(
    State(state): State<AppState>,
    caller: Caller,
    V1Json(body): V1Json<ChatCompletionRequest>,
) -> V1Result<Response> {
    let mut checked = check(&body)?;
    let deps = &state.deps;
    let agent = deps
        .store
        .get_agent_by_slug(&body.model)
        .await?
        .filter(|a| caller.may_use(a))
        .ok_or_else(|| V1Error::model_not_found(&body.model))?;
    if let Some(key) = caller.key() {
        crate::routes::keys::check_key_budget(&state, key).await?;
    }
    checked.transcript.key_id = caller.key().map(|k| k.id);
    let message = Incoming {
        platform: "api".into(),
        // A channel per request: each completion is its own conversation, and
        // concurrent completions never queue behind one another.
        channel_id: format!("api-{}", hex::encode(rand::random::<[u8; 9]>())),
        user_id: body.user.clone().filter(|u| !u.is_empty()),
        user_name: caller.key().map(|k| k.name.clone()),
        content: checked.last_user.clone(),
        agent_id: Some(agent.id),
        is_dm: true,
        external_id: None,
        api: Some(checked.transcript),
    };
    let (accepted, watch) = deps.intake().submit_and_watch(message).await?;
    let meta = stream::Meta {
        id: format!("chatcmpl-arvis-{}", accepted.job_id),
        created: now_ms() / 1000,
        model: agent.slug.clone(),
        job_id: accepted.job_id,
    };
    let timeout = deps.config.chat_timeout;
    if checked.stream {
        return Ok(stream::respond(state.clone(), watch, meta, checked.include_usage, timeout));
    }
    match tokio::time::timeout(timeout, watch.outcome()).await {
        Ok(Ok(content)) => {
            let usage = stream::usage(&state, meta.job_id).await;
            let completion = ChatCompletion {
                id: meta.id,
                object: "chat.completion",
                created: meta.created,
                model: meta.model,
                choices: vec![Choice {
                    index: 0,
                    message: AssistantMessage { role: "assistant", content, refusal: None },
                    logprobs: None,
                    finish_reason: "stop",
                }],
                usage,
            };
            Ok(Json(completion).into_response())
        }
        Ok(Err(failure)) => Err(run_failed(&failure.reason)),
        Err(_) => Err(timed_out(timeout)),
    }
}

pub(crate) fn run_failed(reason: &str) -> V1Error {
    V1Error::new(
        StatusCode::BAD_GATEWAY,
        "api_error",
        Some("upstream_error"),
        format!("the agent run failed: {reason}"),
    )
}

pub(crate) fn timed_out(timeout: Duration) -> V1Error {
    V1Error::new(
        StatusCode::GATEWAY_TIMEOUT,
        "api_error",
        Some("timeout"),
        format!(
            "the agent did not answer within {} s; the run goes on and its reply will be stored in its conversation",
            timeout.as_secs()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(v: Value) -> ChatCompletionRequest {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn transcripts_split_into_system_and_turns() {
        let c = check(&body(serde_json::json!({
            "model": "m",
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": [{"type": "text", "text": "hi "}, {"type": "text", "text": "there"}]},
                {"role": "assistant", "content": "hello"},
                {"role": "user", "content": "again"}
            ],
            "max_completion_tokens": 50, "stream": true, "stream_options": {"include_usage": true}
        })))
        .unwrap();
        assert_eq!(c.transcript.system, ["be brief"]);
        assert_eq!(c.transcript.messages.len(), 3);
        assert_eq!(c.transcript.messages[0].content, "hi there");
        assert_eq!(c.last_user, "again");
        assert_eq!(c.transcript.max_tokens, Some(50));
        assert!(c.stream && c.include_usage);
    }

    #[test]
    fn what_is_not_supported_is_refused_by_name() {
        let refused = |extra: Value| {
            let mut v = serde_json::json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
            for (k, val) in extra.as_object().unwrap() {
                v[k] = val.clone();
            }
            check(&body(v)).err().map(|e| (e.status.as_u16(), e.error.param.unwrap_or_default()))
        };
        assert_eq!(refused(serde_json::json!({"tools": [{"type": "function"}]})), Some((400, "tools".into())));
        assert_eq!(refused(serde_json::json!({"functions": []})), Some((400, "functions".into())));
        assert_eq!(refused(serde_json::json!({"n": 2})), Some((400, "n".into())));
        assert_eq!(refused(serde_json::json!({"n": 1})), None);
        assert_eq!(refused(serde_json::json!({"audio": {"voice": "x"}})), Some((400, "audio".into())));
        assert_eq!(refused(serde_json::json!({"modalities": ["text", "audio"]})), Some((400, "modalities".into())));
        let image = serde_json::json!({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]});
        assert_eq!(refused(image), Some((400, "messages[0].content".into())));
        let last =
            serde_json::json!({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]});
        assert_eq!(refused(last), Some((400, "messages".into())));
    }
}
