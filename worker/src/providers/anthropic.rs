//! Anthropic Messages: `POST {base}/v1/messages` with `x-api-key` and
//! `anthropic-version: 2023-06-01`, `system` apart from the messages, tools
//! with `input_schema`, `tool_use` / `tool_result` content blocks, streamed as
//! message_start → content_block_start / content_block_delta (text_delta,
//! input_json_delta, thinking_delta, signature_delta) / content_block_stop →
//! message_delta (usage) → message_stop. A server that answers with one JSON
//! message instead of a stream is read the same way.
//!
//! What current models need (checked against Anthropic's model and
//! extended-thinking documentation):
//! - **Claude 5.x, Sonnet 5, Opus 4.7/4.8, Fable, Mythos** ([`ClaudeModel::adaptive_only`])
//!   refuse a non-default `temperature` / `top_p` / `top_k` and manual
//!   `thinking: {type: "enabled", budget_tokens}`: they get no sampling
//!   parameter and `thinking: {type: "adaptive"}` (with `output_config.effort`
//!   when the agent sets one; effort `none` sends no thinking field).
//!   Opus/Sonnet 4.6 take adaptive thinking only when the agent asks for an
//!   effort; older models never get a thinking field.
//! - Thinking arrives as `thinking` blocks (with a `signature`) and
//!   `redacted_thinking` blocks (opaque `data`). They never reach the reply
//!   text; the whole assistant turn — thinking, text and `tool_use` blocks,
//!   in order — is kept as a [`Replay`] and sent back unchanged in the next
//!   round of the tool loop, as the API requires.
//! - No forced `tool_choice` is ever sent (Opus 5.5 and Fable 5.1 refuse it,
//!   and no model accepts it with thinking on): the model's default `auto`.
//! - Prompt caching: the stable prefix — the tool declarations, then the
//!   system prompt — is marked `cache_control: {type: "ephemeral"}` (one
//!   breakpoint after the last tool, one after the system prompt). Cached
//!   token counts (`cache_read_input_tokens`, `cache_creation_input_tokens`)
//!   are read from the usage and priced at the cache rates.

use std::sync::Arc;

use futures::StreamExt as _;
use serde_json::{Value, json};

use super::{Endpoint, ProviderError, is_event_stream, key_text, parse_json, send, sse};
use crate::llm::{Effort, LlmRequest, LlmResponse, Replay, ReplayFormat, Role, ToolCall};

pub const BASE: &str = "https://api.anthropic.com";
pub const VERSION: &str = "2023-06-01";

/// What the model's name says about the parameters it takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClaudeModel {
    /// No sampling parameters and no manual thinking budget: adaptive thinking only.
    pub adaptive_only: bool,
    /// Takes `thinking: {type: "adaptive"}` (4.6 and later).
    pub adaptive: bool,
}

impl ClaudeModel {
    /// Reads `claude-opus-4-7-20260416`, `claude-sonnet-5-5`, `claude-fable-5-1`,
    /// `claude-3-5-sonnet-20241022`, `anthropic/claude-sonnet-4.5`,
    /// `anthropic.claude-opus-4-7` … A name it cannot read is an older model.
    pub fn of(model: &str) -> ClaudeModel {
        let name = model.rsplit('/').next().unwrap_or(model).to_ascii_lowercase();
        let Some(at) = name.find("claude-") else { return ClaudeModel { adaptive_only: false, adaptive: false } };
        let mut family = "";
        let mut numbers: Vec<u32> = Vec::new();
        for token in name[at + "claude-".len()..].split(['-', '.', '@', ':']) {
            match token.parse::<u32>() {
                // Dates (20250929) and build numbers are not versions.
                Ok(n) if n < 100 => numbers.push(n),
                Ok(_) => break,
                Err(_) if family.is_empty() => family = token,
                Err(_) => {}
            }
        }
        let version = (numbers.first().copied().unwrap_or(0), numbers.get(1).copied().unwrap_or(0));
        let new_family = matches!(family, "fable" | "mythos");
        let adaptive_only = new_family || version.0 >= 5 || (family == "opus" && version >= (4, 7));
        let adaptive = adaptive_only || (matches!(family, "opus" | "sonnet") && version >= (4, 6));
        ClaudeModel { adaptive_only, adaptive }
    }
}

/// `output_config.effort` for an agent's effort (Anthropic knows low, medium,
/// high, xhigh, max); `None` = no thinking field at all.
fn effort_value(effort: Effort) -> Option<&'static str> {
    match effort {
        Effort::None => None,
        Effort::Minimal | Effort::Low => Some("low"),
        Effort::Medium => Some("medium"),
        Effort::High => Some("high"),
        Effort::XHigh => Some("xhigh"),
        Effort::Max => Some("max"),
    }
}

/// The request body. Consecutive tool results become one user message of
/// `tool_result` blocks, as the API requires.
pub fn body(req: &LlmRequest) -> Value {
    let mut messages: Vec<Value> = Vec::new();
    for m in &req.messages {
        match m.role {
            Role::User => messages.push(json!({"role": "user", "content": m.content})),
            Role::Assistant => {
                if let Some(replay) = m.replay.as_ref().filter(|r| r.format == ReplayFormat::Anthropic) {
                    // Thinking blocks and their signatures, exactly as received.
                    messages.push(json!({"role": "assistant", "content": &*replay.content}));
                } else if m.tool_calls.is_empty() {
                    messages.push(json!({"role": "assistant", "content": m.content}));
                } else {
                    let mut blocks = Vec::new();
                    if !m.content.is_empty() {
                        blocks.push(json!({"type": "text", "text": m.content}));
                    }
                    for c in &m.tool_calls {
                        blocks.push(json!({"type": "tool_use", "id": c.id, "name": c.name, "input": c.arguments}));
                    }
                    messages.push(json!({"role": "assistant", "content": blocks}));
                }
            }
            Role::Tool => {
                let block = json!({
                    "type": "tool_result",
                    "tool_use_id": m.tool_call_id.clone().unwrap_or_default(),
                    "content": m.content,
                });
                let merged = match messages.last_mut() {
                    Some(last) if last["role"] == "user" && last["content"].is_array() => {
                        if let Some(blocks) = last["content"].as_array_mut() {
                            blocks.push(block.clone());
                        }
                        true
                    }
                    _ => false,
                };
                if !merged {
                    messages.push(json!({"role": "user", "content": [block]}));
                }
            }
        }
    }
    let claude = ClaudeModel::of(&req.model);
    let mut body = json!({
        "model": req.model,
        "max_tokens": req.max_tokens,
        "messages": messages,
        "stream": true,
    });
    let effort = match req.effort {
        Some(e) => effort_value(e).map(Some),
        // No effort set: adaptive-only models think adaptively at their default effort.
        None => claude.adaptive_only.then_some(None),
    };
    let thinking = claude.adaptive && effort.is_some();
    if thinking {
        body["thinking"] = json!({"type": "adaptive"});
        if let Some(Some(e)) = effort {
            body["output_config"] = json!({"effort": e});
        }
    }
    // Sampling parameters: refused by the adaptive-only models, and with thinking on.
    if !claude.adaptive_only && !thinking {
        body["temperature"] = json!(req.temperature.clamp(0.0, 1.0));
    }
    if !req.system.is_empty() {
        body["system"] = json!([{"type": "text", "text": req.system, "cache_control": {"type": "ephemeral"}}]);
    }
    if !req.tools.is_empty() {
        let mut tools: Vec<Value> = req
            .tools
            .iter()
            .map(|t| json!({"name": t.name, "description": t.description, "input_schema": t.parameters}))
            .collect();
        if let Some(last) = tools.last_mut() {
            last["cache_control"] = json!({"type": "ephemeral"});
        }
        body["tools"] = Value::Array(tools);
    }
    body
}

/// One content block being streamed, in the API's own shape.
enum Block {
    Text(String),
    Thinking {
        thinking: String,
        signature: String,
    },
    Tool {
        id: String,
        name: String,
        json: String,
    },
    /// `redacted_thinking` and any other block: kept as it arrived.
    Verbatim(Value),
    Missing,
}

/// The usage counters as the API reports them (`input_tokens` excludes both cache counts).
#[derive(Default)]
struct Usage {
    input: i64,
    cache_read: i64,
    cache_write: i64,
    output: i64,
}

impl Usage {
    /// `message_start.message.usage`, `message_delta.usage` or a document's
    /// `usage`: each count present replaces the one before (they are totals).
    fn read(&mut self, u: &Value) {
        let get = |k: &str| u.get(k).and_then(Value::as_i64);
        if let Some(n) = get("input_tokens").filter(|n| *n > 0 || self.input == 0) {
            self.input = n;
        }
        if let Some(n) = get("cache_read_input_tokens").filter(|n| *n > 0 || self.cache_read == 0) {
            self.cache_read = n;
        }
        if let Some(n) = get("cache_creation_input_tokens").filter(|n| *n > 0 || self.cache_write == 0) {
            self.cache_write = n;
        }
        if let Some(n) = get("output_tokens") {
            self.output = n;
        }
    }

    fn apply(&self, out: &mut LlmResponse) {
        out.input_tokens = self.input + self.cache_read + self.cache_write;
        out.cache_read_tokens = self.cache_read;
        out.cache_write_tokens = self.cache_write;
        out.output_tokens = self.output;
    }
}

pub async fn call(
    client: &reqwest::Client,
    endpoint: &Endpoint<'_>,
    req: &LlmRequest,
    on_delta: &mut (dyn FnMut(&str) + Send),
) -> Result<LlmResponse, ProviderError> {
    let base = endpoint.base_url.unwrap_or(BASE).trim_end_matches('/');
    let key = key_text(endpoint).ok_or_else(|| ProviderError::Config("no API key".into()))?;
    let builder = client
        .post(format!("{base}/v1/messages"))
        .header("x-api-key", key)
        .header("anthropic-version", VERSION)
        .json(&body(req));
    let response = send(endpoint, builder).await?;
    if !is_event_stream(&response) {
        let v: Value = response.json().await.map_err(super::transport_error)?;
        let out = from_document(&v)?;
        if !out.text.is_empty() {
            on_delta(&out.text);
        }
        return Ok(out);
    }
    let mut out = LlmResponse::default();
    let mut usage = Usage::default();
    let mut blocks: Vec<Block> = Vec::new();
    let mut events = std::pin::pin!(sse(response));
    while let Some(event) = events.next().await {
        let event = event?;
        if event.data.trim().is_empty() {
            continue;
        }
        let v = parse_json(&event.data)?;
        let kind = v.get("type").and_then(Value::as_str).unwrap_or(event.event.as_str());
        match kind {
            "message_start" => {
                if let Some(u) = v.pointer("/message/usage") {
                    usage.read(u);
                }
            }
            "content_block_start" => {
                let index = v.get("index").and_then(Value::as_u64).unwrap_or(blocks.len() as u64) as usize;
                let cb = v.get("content_block").cloned().unwrap_or(Value::Null);
                let text = |k: &str| cb.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
                let block = match cb.get("type").and_then(Value::as_str) {
                    Some("text") => {
                        let t = text("text");
                        if !t.is_empty() {
                            out.text.push_str(&t);
                            on_delta(&t);
                        }
                        Block::Text(t)
                    }
                    Some("thinking") => Block::Thinking { thinking: text("thinking"), signature: text("signature") },
                    Some("tool_use") => Block::Tool { id: text("id"), name: text("name"), json: String::new() },
                    _ => Block::Verbatim(cb),
                };
                while blocks.len() <= index {
                    blocks.push(Block::Missing);
                }
                blocks[index] = block;
            }
            "content_block_delta" => {
                let index = v.get("index").and_then(Value::as_u64).unwrap_or(0) as usize;
                let delta = v.get("delta").cloned().unwrap_or(Value::Null);
                let piece = |k: &str| delta.get(k).and_then(Value::as_str);
                match (delta.get("type").and_then(Value::as_str), blocks.get_mut(index)) {
                    (Some("text_delta"), block) => {
                        if let Some(t) = piece("text") {
                            out.text.push_str(t);
                            on_delta(t);
                            if let Some(Block::Text(text)) = block {
                                text.push_str(t);
                            }
                        }
                    }
                    (Some("input_json_delta"), Some(Block::Tool { json, .. })) => {
                        json.push_str(piece("partial_json").unwrap_or_default());
                    }
                    (Some("thinking_delta"), Some(Block::Thinking { thinking, .. })) => {
                        thinking.push_str(piece("thinking").unwrap_or_default());
                    }
                    (Some("signature_delta"), Some(Block::Thinking { signature, .. })) => {
                        signature.push_str(piece("signature").unwrap_or_default());
                    }
                    _ => {}
                }
            }
            "message_delta" => {
                if let Some(r) = v.pointer("/delta/stop_reason").and_then(Value::as_str) {
                    out.stop_reason = Some(r.to_string());
                }
                if let Some(u) = v.get("usage") {
                    usage.read(u);
                }
            }
            "message_stop" => break,
            "error" => {
                let etype = v.pointer("/error/type").and_then(Value::as_str).unwrap_or("error");
                let message = v.pointer("/error/message").and_then(Value::as_str).unwrap_or("error in the stream");
                if etype == "overloaded_error" || etype == "rate_limit_error" {
                    return Err(ProviderError::RateLimited { status: 529, retry_after: None });
                }
                return Err(ProviderError::Http { status: 500, message: super::scrub(endpoint, message) });
            }
            _ => {}
        }
    }
    usage.apply(&mut out);
    let content: Vec<Value> = blocks
        .into_iter()
        .filter_map(|b| match b {
            // The API refuses empty text blocks in a request.
            Block::Text(t) if t.is_empty() => None,
            Block::Text(t) => Some(json!({"type": "text", "text": t})),
            Block::Thinking { thinking, signature } => {
                Some(json!({"type": "thinking", "thinking": thinking, "signature": signature}))
            }
            Block::Tool { id, name, json } => {
                let input = if json.trim().is_empty() {
                    json!({})
                } else {
                    serde_json::from_str(&json).unwrap_or(Value::String(json))
                };
                Some(json!({"type": "tool_use", "id": id, "name": name, "input": input}))
            }
            Block::Verbatim(v) => Some(v),
            Block::Missing => None,
        })
        .collect();
    read_content(content, &mut out);
    Ok(out)
}

/// The assistant turn's blocks → tool calls, thinking, and the replay.
/// (`out.text` is filled by the caller, as it streams.)
fn read_content(content: Vec<Value>, out: &mut LlmResponse) {
    for b in &content {
        match b.get("type").and_then(Value::as_str) {
            Some("tool_use") => out.tool_calls.push(ToolCall {
                id: b.get("id").and_then(Value::as_str).unwrap_or_default().to_string(),
                name: b.get("name").and_then(Value::as_str).unwrap_or_default().to_string(),
                arguments: b.get("input").cloned().unwrap_or_else(|| json!({})),
            }),
            Some("thinking") => {
                if let Some(t) = b.get("thinking").and_then(Value::as_str) {
                    out.thinking.push_str(t);
                }
            }
            _ => {}
        }
    }
    if !content.is_empty() {
        out.replay = Some(Replay { format: ReplayFormat::Anthropic, content: Arc::new(Value::Array(content)) });
    }
}

/// A non-streamed message: `{"content": [blocks…], "stop_reason", "usage"}`.
fn from_document(v: &Value) -> Result<LlmResponse, ProviderError> {
    let content =
        v.get("content").and_then(Value::as_array).ok_or_else(|| ProviderError::Protocol("no content".into()))?;
    let mut out = LlmResponse {
        text: content
            .iter()
            .filter(|b| b.get("type").and_then(Value::as_str) == Some("text"))
            .filter_map(|b| b.get("text").and_then(Value::as_str))
            .collect(),
        stop_reason: v.get("stop_reason").and_then(Value::as_str).map(str::to_string),
        ..Default::default()
    };
    let mut usage = Usage::default();
    if let Some(u) = v.get("usage") {
        usage.read(u);
    }
    usage.apply(&mut out);
    let kept = content
        .iter()
        .filter(|b| {
            !(b.get("type").and_then(Value::as_str) == Some("text")
                && b.get("text").and_then(Value::as_str).unwrap_or_default().is_empty())
        })
        .cloned()
        .collect();
    read_content(kept, &mut out);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::{ChatMessage, ToolCall, ToolSpec};

    fn request(model: &str) -> LlmRequest {
        LlmRequest {
            model: model.into(),
            system: "sys".into(),
            messages: vec![ChatMessage::user("q")],
            tools: vec![],
            max_tokens: 10,
            temperature: 0.2,
            ..Default::default()
        }
    }

    #[test]
    fn tool_results_are_blocks_of_one_user_message() {
        let call = |id: &str| ToolCall { id: id.into(), name: "t".into(), arguments: json!({"x": 1}) };
        let mut assistant = ChatMessage::assistant("");
        assistant.tool_calls = vec![call("a"), call("b")];
        let mut req = request("claude-haiku-4-5");
        req.system = String::new();
        req.messages = vec![
            ChatMessage::user("q"),
            assistant,
            ChatMessage::tool_result(&call("a"), "ra"),
            ChatMessage::tool_result(&call("b"), "rb"),
        ];
        let b = body(&req);
        assert!(b.get("system").is_none());
        let msgs = b["messages"].as_array().unwrap();
        assert_eq!(msgs.len(), 3);
        assert_eq!(msgs[1]["content"][0], json!({"type": "tool_use", "id": "a", "name": "t", "input": {"x": 1}}));
        assert_eq!(msgs[2]["role"], "user");
        assert_eq!(msgs[2]["content"][1], json!({"type": "tool_result", "tool_use_id": "b", "content": "rb"}));
    }

    #[test]
    fn model_names_tell_the_generation() {
        let adaptive_only = |m: &str| ClaudeModel::of(m).adaptive_only;
        for m in [
            "claude-opus-5-5",
            "claude-sonnet-5-5",
            "claude-haiku-5-5",
            "claude-fable-5-1",
            "claude-sonnet-5",
            "claude-opus-4-7",
            "claude-opus-4-7-20260416",
            "claude-opus-4-8",
            "anthropic/claude-sonnet-5.5",
            "claude-mythos-preview",
        ] {
            assert!(adaptive_only(m), "{m}");
        }
        for m in [
            "claude-opus-4-6",
            "claude-sonnet-4-5-20250929",
            "claude-haiku-4-5-20251001",
            "claude-3-5-sonnet-20241022",
            "anthropic/claude-sonnet-4",
            "something-else",
        ] {
            assert!(!adaptive_only(m), "{m}");
        }
        assert!(ClaudeModel::of("claude-sonnet-4-6").adaptive);
        assert!(!ClaudeModel::of("claude-sonnet-4-5").adaptive);
    }

    #[test]
    fn claude_5_gets_adaptive_thinking_and_no_sampling_parameters() {
        let b = body(&request("claude-sonnet-5-5"));
        assert_eq!(b["thinking"], json!({"type": "adaptive"}));
        for k in ["temperature", "top_p", "top_k", "output_config", "tool_choice"] {
            assert!(b.get(k).is_none(), "{k} in {b}");
        }
        let mut req = request("claude-opus-5-5");
        req.effort = Some(Effort::Low);
        req.tools = vec![ToolSpec { name: "t".into(), description: "d".into(), parameters: json!({"type": "object"}) }];
        let b = body(&req);
        assert_eq!(
            (b["thinking"]["type"].as_str(), b["output_config"]["effort"].as_str()),
            (Some("adaptive"), Some("low"))
        );
        assert!(b.get("tool_choice").is_none(), "Opus 5.5 refuses a forced tool choice: none is sent");
        assert!(b["thinking"].get("budget_tokens").is_none());
        req.effort = Some(Effort::None);
        let b = body(&req);
        assert!(b.get("thinking").is_none() && b.get("temperature").is_none());
        // Older models keep their temperature and never get a thinking field.
        let b = body(&request("claude-haiku-4-5-20251001"));
        assert_eq!((b["temperature"].as_f64(), b.get("thinking")), (Some(0.2), None));
        let mut req = request("claude-sonnet-4-6");
        req.effort = Some(Effort::High);
        let b = body(&req);
        assert_eq!((b["thinking"]["type"].as_str(), b.get("temperature")), (Some("adaptive"), None));
    }

    #[test]
    fn the_stable_prefix_is_marked_for_caching() {
        let mut req = request("claude-haiku-4-5");
        req.tools = ["a", "b"]
            .iter()
            .map(|n| ToolSpec { name: (*n).into(), description: "d".into(), parameters: json!({"type": "object"}) })
            .collect();
        let b = body(&req);
        assert_eq!(b["system"], json!([{"type": "text", "text": "sys", "cache_control": {"type": "ephemeral"}}]));
        assert!(b["tools"][0].get("cache_control").is_none());
        assert_eq!(b["tools"][1]["cache_control"], json!({"type": "ephemeral"}));
    }

    #[test]
    fn a_replayed_turn_goes_back_unchanged() {
        let blocks = json!([
            {"type": "thinking", "thinking": "Let me add.", "signature": "EqQBCgIYAhIM"},
            {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix"},
            {"type": "tool_use", "id": "toolu_1", "name": "calculate", "input": {"expression": "1+1"}},
        ]);
        let call = ToolCall { id: "toolu_1".into(), name: "calculate".into(), arguments: json!({"expression": "1+1"}) };
        let mut assistant = ChatMessage::assistant("");
        assistant.tool_calls = vec![call.clone()];
        assistant.replay = Some(Replay { format: ReplayFormat::Anthropic, content: Arc::new(blocks.clone()) });
        let mut req = request("claude-opus-5-5");
        req.messages = vec![ChatMessage::user("q"), assistant, ChatMessage::tool_result(&call, "2")];
        let b = body(&req);
        assert_eq!(b["messages"][1]["content"], blocks);
        // A replay in another provider's format is ignored: the turn is rebuilt.
        req.messages[1].replay.as_mut().unwrap().format = ReplayFormat::Gemini;
        assert_eq!(body(&req)["messages"][1]["content"][0]["type"], "tool_use");
    }

    #[test]
    fn a_document_answer_keeps_thinking_apart() {
        let doc = json!({
            "id": "msg_01", "type": "message", "role": "assistant", "model": "claude-opus-5-5",
            "content": [
                {"type": "thinking", "thinking": "The user wants the time.", "signature": "sig=="},
                {"type": "text", "text": "Let me check."},
                {"type": "tool_use", "id": "toolu_01", "name": "get_time", "input": {"tz": "UTC"}},
            ],
            "stop_reason": "tool_use",
            "usage": {"input_tokens": 10, "cache_read_input_tokens": 2000, "cache_creation_input_tokens": 50, "output_tokens": 30},
        });
        let out = from_document(&doc).unwrap();
        assert_eq!(out.text, "Let me check.");
        assert_eq!(out.thinking, "The user wants the time.");
        assert_eq!(out.tool_calls[0].arguments, json!({"tz": "UTC"}));
        assert_eq!((out.input_tokens, out.cache_read_tokens, out.cache_write_tokens), (2060, 2000, 50));
        assert_eq!(*out.replay.unwrap().content, doc["content"]);
    }
}
