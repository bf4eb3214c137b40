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
