//! [`MockLlm`]: a loopback stand-in for the LLM providers, a real axum HTTP
//! server on 127.0.0.1:0 (Nagle off) that speaks
//! - OpenAI chat completions: `POST /v1/chat/completions` (and `/chat/completions`),
//!   SSE when the request says `stream: true`, one JSON document otherwise;
//! - Anthropic Messages: `POST /v1/messages`, SSE;
//! - Gemini: `POST /v1beta/models/{model}:streamGenerateContent`, SSE.
//!
//! Tests script it with a queue of [`MockReply`]s (text, tool call, an HTTP
//! status with `Retry-After`, a delay) and a default for when the queue is
//! empty, and read back every request it received ([`Recorded`]: path, query,
//! headers, JSON body, arrival time) to check the wire format.
//!
//! The current models' shapes too: [`MockReply::ThinkingTool`] /
//! [`MockReply::ThinkingText`] answer as a thinking model does — Anthropic
//! `thinking` (with `signature_delta`) and `redacted_thinking` blocks before
//! the text or `tool_use`, Gemini parts carrying a `thoughtSignature`
//! ([`THINKING_SIGNATURE`], [`GEMINI_SIGNATURE`]) — and [`MockReply::Cached`]
//! reports prompt-cache counts in each provider's usage fields. [`MockReply::Sse`]
//! and [`MockReply::Json`] send any scripted stream or document as given.
//!
//! Point the worker at it with `OPENAI_BASE_URL={url}/v1`,
//! `ANTHROPIC_BASE_URL={url}`, `GOOGLE_BASE_URL={url}`.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{OriginalUri, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::post;
use futures::StreamExt as _;
use serde_json::{Value, json};

/// Token counts every successful mock answer reports.
pub const INPUT_TOKENS: i64 = 12;
pub const OUTPUT_TOKENS: i64 = 7;
/// The signature of the mock's Anthropic `thinking` block.
pub const THINKING_SIGNATURE: &str = "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds";
/// The data of the mock's Anthropic `redacted_thinking` block.
pub const REDACTED_THINKING: &str = "EmwKAhgBEgy3va3pzix/LafPsn4aDFIT2Xlxh0L5L8rLVyIwxtE3rAFBa8cr3qpP";
/// The thinking text of the mock's thinking answers (never shown to the user).
pub const THINKING_TEXT: &str = "The user wants a number; the calculator gives it.";
/// The `thoughtSignature` of the mock's Gemini parts.
pub const GEMINI_SIGNATURE: &str = "CiQBcsjafJ0bx0bLk6t0ZuGWIFQD3MWJ2tQnGkmmzPbnCMiY=";

#[derive(Debug, Clone)]
pub enum MockReply {
    /// Text, streamed in word-sized pieces.
    Text(String),
    /// Text as one non-streamed JSON document (OpenAI only), even when streaming was asked for.
    PlainJson(String),
    /// One tool call with these arguments.
    ToolCall { name: String, arguments: Value },
    /// An error status, with an optional `Retry-After` header value.
    Status { status: u16, retry_after: Option<String>, message: String },
    /// Waits, then answers.
    Slow(Duration, Box<MockReply>),
    /// Text echoing the request's last user message (`echo: <message>`), so a
    /// reply can be matched to its request.
    Echo,
    /// Starts a 200 stream (OpenAI SSE), sends a few pieces, then drops the
    /// connection without finishing the body.
    DropMidStream,
    /// A random outcome per request (see [`Chaos`]).
    Chaos(Chaos),
    /// These server-sent events as given (`event:` name, `data:` JSON), then `data: [DONE]` if `done`.
    Sse { events: Vec<(Option<String>, Value)>, done: bool },
    /// This JSON document with this status.
    Json { status: u16, body: Value },
    /// Text, with prompt-cache counts in the usage: `cache_read` tokens read
    /// (and, for Anthropic, `cache_write` written) of [`INPUT_TOKENS`] +
    /// `cache_read` + `cache_write` prompt tokens in all.
    Cached { text: String, cache_read: i64, cache_write: i64 },
    /// A thinking model's tool call: Anthropic thinking (signed) + redacted
    /// thinking + `tool_use`; Gemini a `functionCall` part with a
    /// `thoughtSignature`; OpenAI a plain tool call.
    ThinkingTool { name: String, arguments: Value },
    /// A thinking model's text answer: Anthropic thinking (signed) + text;
    /// Gemini text whose last part carries a `thoughtSignature`.
    ThinkingText(String),
}

/// Random provider faults: each request draws one outcome. Probabilities are
/// in [0, 1]; what is left over answers [`MockReply::Echo`] after `ok_delay`.
#[derive(Debug, Clone)]
pub struct Chaos {
    /// 429 with `Retry-After: 1`.
    pub rate_limited: f64,
    /// 500.
    pub server_error: f64,
    /// Waits `hang`, then answers (set it past the worker's provider timeout).
    pub hang: f64,
    pub hang_for: Duration,
    /// [`MockReply::DropMidStream`].
    pub drop_mid_stream: f64,
    pub ok_delay: Duration,
}

impl Chaos {
    fn draw(&self) -> MockReply {
        let x: f64 = rand::random();
        let mut edge = self.rate_limited;
        if x < edge {
            return MockReply::rate_limited("1");
        }
        edge += self.server_error;
        if x < edge {
            return MockReply::status(500);
        }
        edge += self.hang;
        if x < edge {
            return MockReply::slow(self.hang_for, MockReply::Echo);
        }
        edge += self.drop_mid_stream;
        if x < edge {
            return MockReply::DropMidStream;
        }
        MockReply::slow(self.ok_delay, MockReply::Echo)
    }
}

impl MockReply {
    pub fn text(t: &str) -> MockReply {
        MockReply::Text(t.into())
    }
    pub fn status(status: u16) -> MockReply {
        MockReply::Status { status, retry_after: None, message: format!("mock error {status}") }
    }
    pub fn rate_limited(retry_after: &str) -> MockReply {
        MockReply::Status { status: 429, retry_after: Some(retry_after.into()), message: "slow down".into() }
    }
    pub fn slow(d: Duration, then: MockReply) -> MockReply {
        MockReply::Slow(d, Box::new(then))
    }
    pub fn tool(name: &str, arguments: Value) -> MockReply {
        MockReply::ToolCall { name: name.into(), arguments }
    }
    pub fn thinking_tool(name: &str, arguments: Value) -> MockReply {
        MockReply::ThinkingTool { name: name.into(), arguments }
    }
    pub fn sse(events: Vec<(Option<&str>, Value)>, done: bool) -> MockReply {
        MockReply::Sse { events: events.into_iter().map(|(n, v)| (n.map(str::to_string), v)).collect(), done }
    }
}

/// A request the mock received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub path: String,
    pub query: Option<String>,
    /// Lower-case header names.
    pub headers: HashMap<String, String>,
    pub body: Value,
    pub at: Instant,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(&name.to_ascii_lowercase()).map(String::as_str)
    }
}

struct Inner {
    queue: VecDeque<MockReply>,
    default: MockReply,
    requests: Vec<Recorded>,
}

#[derive(Clone)]
pub struct MockLlm {
    /// `http://127.0.0.1:<port>`
    pub url: String,
    inner: Arc<Mutex<Inner>>,
    _server: Arc<ServerGuard>,
}

struct ServerGuard(tokio::task::JoinHandle<()>);
impl Drop for ServerGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Dialect {
    OpenAi,
    Anthropic,
    Gemini,
}

impl MockLlm {
    /// Starts a mock that answers "Hello there friend" unless scripted otherwise.
    pub async fn start() -> MockLlm {
        let inner = Arc::new(Mutex::new(Inner {
            queue: VecDeque::new(),
            default: MockReply::text("Hello there friend"),
            requests: Vec::new(),
        }));
        let app = Router::new()
            .route("/v1/chat/completions", post(|s, u, h, b| handle(Dialect::OpenAi, s, u, h, b)))
            .route("/chat/completions", post(|s, u, h, b| handle(Dialect::OpenAi, s, u, h, b)))
            .route("/v1/messages", post(|s, u, h, b| handle(Dialect::Anthropic, s, u, h, b)))
            .route("/v1beta/models/{*rest}", post(|s, u, h, b| handle(Dialect::Gemini, s, u, h, b)))
            .with_state(inner.clone());
        use axum::serve::ListenerExt as _;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        MockLlm { url, inner, _server: Arc::new(ServerGuard(server)) }
    }

    /// Queues the next answer.
    pub fn push(&self, reply: MockReply) {
        self.inner.lock().unwrap().queue.push_back(reply);
    }

    /// The answer when the queue is empty.
    pub fn set_default(&self, reply: MockReply) {
        self.inner.lock().unwrap().default = reply;
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.inner.lock().unwrap().requests.clone()
    }

    /// The last user message the provider was asked to answer.
    pub fn last_user_prompt(&self) -> String {
        let req = self.requests().last().cloned().unwrap();
        let msgs = req.body["messages"].as_array().unwrap();
        msgs.iter().rev().find(|m| m["role"] == "user").unwrap()["content"].as_str().unwrap_or_default().to_string()
    }

    pub fn request_count(&self) -> usize {
        self.inner.lock().unwrap().requests.len()
    }
}

async fn handle(
    dialect: Dialect,
    State(inner): State<Arc<Mutex<Inner>>>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let reply = {
        let mut g = inner.lock().unwrap();
        g.requests.push(Recorded {
            path: uri.path().to_string(),
            query: uri.query().map(str::to_string),
            headers: headers
                .iter()
                .map(|(k, v)| (k.as_str().to_ascii_lowercase(), v.to_str().unwrap_or("").to_string()))
                .collect(),
            body: body.clone(),
            at: Instant::now(),
        });
        let default = g.default.clone();
        g.queue.pop_front().unwrap_or(default)
    };
    respond(dialect, &body, reply).await
}

/// The text of an Anthropic stream's content blocks, one after the other from
/// index `first`: thinking (signed), redacted thinking, text, tool use.
fn anthropic_blocks(first: usize, blocks: &[Value]) -> Vec<(Option<&'static str>, Value)> {
    let mut events = Vec::new();
    for (i, b) in blocks.iter().enumerate() {
        let index = first + i;
        let start = |cb: Value| {
            (Some("content_block_start"), json!({"type": "content_block_start", "index": index, "content_block": cb}))
        };
        let delta = |d: Value| {
            (Some("content_block_delta"), json!({"type": "content_block_delta", "index": index, "delta": d}))
        };
        match b["type"].as_str() {
            Some("thinking") => {
                events.push(start(json!({"type": "thinking", "thinking": "", "signature": ""})));
                for p in pieces(b["thinking"].as_str().unwrap_or_default()) {
                    events.push(delta(json!({"type": "thinking_delta", "thinking": p})));
                }
                events.push(delta(json!({"type": "signature_delta", "signature": b["signature"]})));
            }
            Some("text") => {
                events.push(start(json!({"type": "text", "text": ""})));
                for p in pieces(b["text"].as_str().unwrap_or_default()) {
                    events.push(delta(json!({"type": "text_delta", "text": p})));
                }
            }
            Some("tool_use") => {
                events.push(start(json!({"type": "tool_use", "id": b["id"], "name": b["name"], "input": {}})));
                let args = b["input"].to_string();
                let (x, y) = args.split_at(args.len() / 2);
                events.push(delta(json!({"type": "input_json_delta", "partial_json": x})));
                events.push(delta(json!({"type": "input_json_delta", "partial_json": y})));
            }
            _ => events.push(start(b.clone())),
        }
        events.push((Some("content_block_stop"), json!({"type": "content_block_stop", "index": index})));
    }
    events
}

/// A whole Anthropic stream of these blocks, with usage.
fn anthropic_stream(blocks: &[Value], stop_reason: &str, usage: Value) -> Response {
    let mut events = vec![(
        Some("message_start"),
        json!({"type": "message_start", "message": {"id": "msg_mock", "type": "message", "role": "assistant", "content": [], "model": "mock", "usage": usage}}),
    )];
    events.extend(anthropic_blocks(0, blocks));
    events.push((Some("message_delta"), json!({"type": "message_delta", "delta": {"stop_reason": stop_reason}, "usage": {"output_tokens": OUTPUT_TOKENS}})));
    events.push((Some("message_stop"), json!({"type": "message_stop"})));
    sse(events, false)
}

fn sse(events: Vec<(Option<&str>, Value)>, done: bool) -> Response {
    let mut text = String::new();
    for (name, data) in events {
        if let Some(n) = name {
            text.push_str(&format!("event: {n}\n"));
        }
        text.push_str(&format!("data: {data}\n\n"));
    }
    if done {
        text.push_str("data: [DONE]\n\n");
    }
    Response::builder()
        .header("content-type", "text/event-stream")
        .header("cache-control", "no-cache")
        .body(Body::from(text))
        .unwrap()
}

fn json_response(status: StatusCode, v: Value) -> Response {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::from(v.to_string()))
        .unwrap()
}

fn pieces(text: &str) -> Vec<String> {
    text.split_inclusive(' ').map(str::to_string).collect()
}

/// The content of the last user message of an OpenAI/Anthropic request.
fn last_user_text(request: &Value) -> String {
    let Some(messages) = request["messages"].as_array() else { return String::new() };
    let Some(m) = messages.iter().rev().find(|m| m["role"] == "user") else { return String::new() };
    match &m["content"] {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts.iter().filter_map(|p| p["text"].as_str()).collect::<Vec<_>>().join(""),
        _ => String::new(),
    }
}

async fn respond(dialect: Dialect, request: &Value, reply: MockReply) -> Response {
    let mut reply = reply;
    loop {
        reply = match reply {
            MockReply::Slow(d, then) => {
                tokio::time::sleep(d).await;
                *then
            }
            MockReply::Chaos(c) => c.draw(),
            MockReply::Echo => MockReply::Text(format!("echo: {}", last_user_text(request))),
            // Chat completions carry no thinking: a plain answer.
            MockReply::ThinkingTool { name, arguments } if dialect == Dialect::OpenAi => {
                MockReply::ToolCall { name, arguments }
            }
            MockReply::ThinkingText(text) if dialect == Dialect::OpenAi => MockReply::Text(text),
            other => break reply = other,
        }
    }
    match reply {
        MockReply::DropMidStream => {
            let chunk = |p: &str| {
                let v = json!({"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": p}, "finish_reason": null}]});
                Ok::<_, std::io::Error>(bytes::Bytes::from(format!("data: {v}\n\n")))
            };
            let stream =
                futures::stream::iter(vec![chunk("partial "), chunk("answer ")]).chain(futures::stream::once(async {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "mock drops the connection"))
                }));
            Response::builder()
                .header("content-type", "text/event-stream")
                .header("cache-control", "no-cache")
                .body(Body::from_stream(stream))
                .unwrap()
        }
        MockReply::Status { status, retry_after, message } => {
            let mut r = json_response(
                StatusCode::from_u16(status).unwrap(),
                json!({"error": {"message": message, "type": "mock_error"}}),
            );
            if let Some(ra) = retry_after {
                r.headers_mut().insert("retry-after", ra.parse().unwrap());
            }
            r
        }
        MockReply::PlainJson(text) => openai_json(&text),
        MockReply::Sse { events, done } => sse(events.iter().map(|(n, v)| (n.as_deref(), v.clone())).collect(), done),
        MockReply::Json { status, body } => json_response(StatusCode::from_u16(status).unwrap(), body),
        MockReply::Cached { text, cache_read, cache_write } => match dialect {
            Dialect::OpenAi => {
                let mut events: Vec<(Option<&str>, Value)> = pieces(&text)
                    .into_iter()
                    .map(|p| (None, json!({"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": p}, "finish_reason": null}]})))
                    .collect();
                events.push((None, json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})));
                events.push((None, json!({"choices": [], "usage": {"prompt_tokens": INPUT_TOKENS + cache_read, "completion_tokens": OUTPUT_TOKENS,
                    "total_tokens": INPUT_TOKENS + cache_read + OUTPUT_TOKENS,
                    "prompt_tokens_details": {"cached_tokens": cache_read, "audio_tokens": 0},
                    "completion_tokens_details": {"reasoning_tokens": 0}}})));
                sse(events, true)
            }
            Dialect::Anthropic => anthropic_stream(
                &[json!({"type": "text", "text": text})],
                "end_turn",
                json!({"input_tokens": INPUT_TOKENS, "cache_read_input_tokens": cache_read, "cache_creation_input_tokens": cache_write, "output_tokens": 1}),
            ),
            Dialect::Gemini => sse(
                vec![(
                    None,
                    json!({"candidates": [{"content": {"role": "model", "parts": [{"text": text}]}, "finishReason": "STOP"}],
                    "usageMetadata": {"promptTokenCount": INPUT_TOKENS + cache_read, "candidatesTokenCount": OUTPUT_TOKENS,
                        "cachedContentTokenCount": cache_read, "totalTokenCount": INPUT_TOKENS + cache_read + OUTPUT_TOKENS}}),
                )],
                false,
            ),
        },
        MockReply::ThinkingTool { name, arguments } => match dialect {
            Dialect::OpenAi => unreachable!("mapped to a plain tool call above"),
            Dialect::Anthropic => anthropic_stream(
                &[
                    json!({"type": "thinking", "thinking": THINKING_TEXT, "signature": THINKING_SIGNATURE}),
                    json!({"type": "redacted_thinking", "data": REDACTED_THINKING}),
                    json!({"type": "tool_use", "id": "toolu_mock", "name": name, "input": arguments}),
                ],
                "tool_use",
                json!({"input_tokens": INPUT_TOKENS, "output_tokens": 1}),
            ),
            Dialect::Gemini => sse(
                vec![(
                    None,
                    json!({"candidates": [{"content": {"role": "model", "parts": [
                    {"functionCall": {"name": name, "args": arguments}, "thoughtSignature": GEMINI_SIGNATURE}]},
                    "finishReason": "STOP"}],
                    "usageMetadata": {"promptTokenCount": INPUT_TOKENS, "candidatesTokenCount": OUTPUT_TOKENS - 2, "thoughtsTokenCount": 2}}),
                )],
                false,
            ),
        },
        MockReply::ThinkingText(text) => match dialect {
            Dialect::OpenAi => unreachable!("mapped to plain text above"),
            Dialect::Anthropic => anthropic_stream(
                &[
                    json!({"type": "thinking", "thinking": THINKING_TEXT, "signature": THINKING_SIGNATURE}),
                    json!({"type": "text", "text": text}),
                ],
                "end_turn",
                json!({"input_tokens": INPUT_TOKENS, "output_tokens": 1}),
            ),
            Dialect::Gemini => {
                let mut events: Vec<(Option<&str>, Value)> = pieces(&text)
                    .into_iter()
                    .map(|p| (None, json!({"candidates": [{"content": {"role": "model", "parts": [{"text": p}]}}]})))
                    .collect();
                events.push((None, json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "", "thoughtSignature": GEMINI_SIGNATURE}]}, "finishReason": "STOP"}],
                    "usageMetadata": {"promptTokenCount": INPUT_TOKENS, "candidatesTokenCount": OUTPUT_TOKENS}})));
                sse(events, false)
            }
        },
        MockReply::Text(text) => {
            match dialect {
                Dialect::OpenAi if request["stream"] != json!(true) => openai_json(&text),
                Dialect::OpenAi => {
                    let mut events: Vec<(Option<&str>, Value)> = pieces(&text)
                    .into_iter()
                    .map(|p| (None, json!({"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": p}, "finish_reason": null}]})))
                    .collect();
                    events.push((None, json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})));
                    events.push((None, json!({"choices": [], "usage": {"prompt_tokens": INPUT_TOKENS, "completion_tokens": OUTPUT_TOKENS}})));
                    sse(events, true)
                }
                Dialect::Anthropic => {
                    let mut events = vec![
                        (
                            Some("message_start"),
                            json!({"type": "message_start", "message": {"id": "msg_mock", "role": "assistant", "content": [], "usage": {"input_tokens": INPUT_TOKENS, "output_tokens": 1}}}),
                        ),
                        (
                            Some("content_block_start"),
                            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
                        ),
                        (Some("ping"), json!({"type": "ping"})),
                    ];
                    for p in pieces(&text) {
                        events.push((Some("content_block_delta"), json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": p}})));
                    }
                    events.push((Some("content_block_stop"), json!({"type": "content_block_stop", "index": 0})));
                    events.push((Some("message_delta"), json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": OUTPUT_TOKENS}})));
                    events.push((Some("message_stop"), json!({"type": "message_stop"})));
                    sse(events, false)
                }
                Dialect::Gemini => {
                    let ps = pieces(&text);
                    let n = ps.len();
                    let events = ps
                        .into_iter()
                        .enumerate()
                        .map(|(i, p)| {
                            let mut chunk =
                                json!({"candidates": [{"content": {"role": "model", "parts": [{"text": p}]}}]});
                            if i + 1 == n {
                                chunk["candidates"][0]["finishReason"] = json!("STOP");
                                chunk["usageMetadata"] =
                                    json!({"promptTokenCount": INPUT_TOKENS, "candidatesTokenCount": OUTPUT_TOKENS});
                            }
                            (None, chunk)
                        })
                        .collect();
                    sse(events, false)
                }
            }
        }
        MockReply::ToolCall { name, arguments } => {
            let args = arguments.to_string();
            let (a, b) = args.split_at(args.len() / 2);
            match dialect {
                Dialect::OpenAi if request["stream"] != json!(true) => json_response(
                    StatusCode::OK,
                    json!({"choices": [{"index": 0, "message": {"role": "assistant", "content": null, "tool_calls": [{"id": "call_mock", "type": "function", "function": {"name": name, "arguments": args}}]}, "finish_reason": "tool_calls"}],
                        "usage": {"prompt_tokens": INPUT_TOKENS, "completion_tokens": OUTPUT_TOKENS}}),
                ),
                Dialect::OpenAi => sse(
                    vec![
                        (
                            None,
                            json!({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "id": "call_mock", "type": "function", "function": {"name": name, "arguments": ""}}]}}]}),
                        ),
                        (
                            None,
                            json!({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": a}}]}}]}),
                        ),
                        (
                            None,
                            json!({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": b}}]}}]}),
                        ),
                        (None, json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]})),
                        (
                            None,
                            json!({"choices": [], "usage": {"prompt_tokens": INPUT_TOKENS, "completion_tokens": OUTPUT_TOKENS}}),
                        ),
                    ],
                    true,
                ),
                Dialect::Anthropic => sse(
                    vec![
                        (
                            Some("message_start"),
                            json!({"type": "message_start", "message": {"usage": {"input_tokens": INPUT_TOKENS, "output_tokens": 1}}}),
                        ),
                        (
                            Some("content_block_start"),
                            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "tool_use", "id": "toolu_mock", "name": name, "input": {}}}),
                        ),
                        (
                            Some("content_block_delta"),
                            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": a}}),
                        ),
                        (
                            Some("content_block_delta"),
                            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": b}}),
                        ),
                        (Some("content_block_stop"), json!({"type": "content_block_stop", "index": 0})),
                        (
                            Some("message_delta"),
                            json!({"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": OUTPUT_TOKENS}}),
                        ),
                        (Some("message_stop"), json!({"type": "message_stop"})),
                    ],
                    false,
                ),
                Dialect::Gemini => sse(
                    vec![(
                        None,
                        json!({"candidates": [{"content": {"role": "model", "parts": [{"functionCall": {"name": name, "args": arguments}}]}, "finishReason": "STOP"}],
                        "usageMetadata": {"promptTokenCount": INPUT_TOKENS, "candidatesTokenCount": OUTPUT_TOKENS}}),
                    )],
                    false,
                ),
            }
        }
        MockReply::Slow(..) | MockReply::Echo | MockReply::Chaos(_) => unreachable!(),
    }
}

fn openai_json(text: &str) -> Response {
    json_response(
        StatusCode::OK,
        json!({"id": "chatcmpl-mock", "object": "chat.completion",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": INPUT_TOKENS, "completion_tokens": OUTPUT_TOKENS}}),
    )
}
