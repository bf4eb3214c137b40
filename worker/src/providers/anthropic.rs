//! Anthropic Messages: `POST {base}/v1/messages` with `x-api-key` and
//! `anthropic-version: 2023-06-01`, `system` apart from the messages, tools
//! with `input_schema`, `tool_use` / `tool_result` content blocks, streamed as
//! message_start → content_block_start / content_block_delta (text_delta,
//! input_json_delta) / content_block_stop → message_delta (usage) → message_stop.

use futures::StreamExt as _;
use serde_json::{Value, json};

use super::{Endpoint, ProviderError, key_text, parse_json, send, sse};
use crate::llm::{LlmRequest, LlmResponse, Role, ToolCall};

pub const BASE: &str = "https://api.anthropic.com";
pub const VERSION: &str = "2023-06-01";

/// The request body. Consecutive tool results become one user message of
/// `tool_result` blocks, as the API requires.
pub fn body(req: &LlmRequest) -> Value {
    let mut messages: Vec<Value> = Vec::new();
    for m in &req.messages {
        match m.role {
            Role::User => messages.push(json!({"role": "user", "content": m.content})),
            Role::Assistant => {
                if m.tool_calls.is_empty() {
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
    let mut body = json!({
        "model": req.model,
        "max_tokens": req.max_tokens,
        "temperature": req.temperature.clamp(0.0, 1.0),
        "messages": messages,
        "stream": true,
    });
    if !req.system.is_empty() {
        body["system"] = json!(req.system);
    }
    if !req.tools.is_empty() {
        body["tools"] = req
            .tools
            .iter()
            .map(|t| json!({"name": t.name, "description": t.description, "input_schema": t.parameters}))
            .collect();
    }
    body
}

enum Block {
    Text,
    Tool { id: String, name: String, json: String },
    Other,
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
    let mut out = LlmResponse::default();
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
                    out.input_tokens = u.get("input_tokens").and_then(Value::as_i64).unwrap_or(0)
                        + u.get("cache_read_input_tokens").and_then(Value::as_i64).unwrap_or(0)
                        + u.get("cache_creation_input_tokens").and_then(Value::as_i64).unwrap_or(0);
                    out.output_tokens = u.get("output_tokens").and_then(Value::as_i64).unwrap_or(0);
                }
            }
            "content_block_start" => {
                let index = v.get("index").and_then(Value::as_u64).unwrap_or(blocks.len() as u64) as usize;
                let cb = v.get("content_block").cloned().unwrap_or(Value::Null);
                let block = match cb.get("type").and_then(Value::as_str) {
                    Some("text") => {
                        if let Some(t) = cb.get("text").and_then(Value::as_str)
                            && !t.is_empty()
                        {
                            out.text.push_str(t);
                            on_delta(t);
                        }
                        Block::Text
                    }
                    Some("tool_use") => Block::Tool {
                        id: cb.get("id").and_then(Value::as_str).unwrap_or_default().to_string(),
                        name: cb.get("name").and_then(Value::as_str).unwrap_or_default().to_string(),
                        json: String::new(),
                    },
                    _ => Block::Other,
                };
                while blocks.len() <= index {
                    blocks.push(Block::Other);
                }
                blocks[index] = block;
            }
            "content_block_delta" => {
                let index = v.get("index").and_then(Value::as_u64).unwrap_or(0) as usize;
                let delta = v.get("delta").cloned().unwrap_or(Value::Null);
                match delta.get("type").and_then(Value::as_str) {
                    Some("text_delta") => {
                        if let Some(t) = delta.get("text").and_then(Value::as_str) {
                            out.text.push_str(t);
                            on_delta(t);
                        }
                    }
                    Some("input_json_delta") => {
                        if let Some(Block::Tool { json, .. }) = blocks.get_mut(index)
                            && let Some(p) = delta.get("partial_json").and_then(Value::as_str)
                        {
                            json.push_str(p);
                        }
                    }
                    _ => {}
                }
            }
            "message_delta" => {
                if let Some(r) = v.pointer("/delta/stop_reason").and_then(Value::as_str) {
                    out.stop_reason = Some(r.to_string());
                }
                if let Some(n) = v.pointer("/usage/output_tokens").and_then(Value::as_i64) {
                    out.output_tokens = n;
                }
                if let Some(n) = v.pointer("/usage/input_tokens").and_then(Value::as_i64)
                    && n > 0
                {
                    out.input_tokens = n;
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
    for b in blocks {
        if let Block::Tool { id, name, json } = b {
            let arguments = if json.trim().is_empty() {
                json!({})
            } else {
                serde_json::from_str(&json).unwrap_or(Value::String(json))
            };
            out.tool_calls.push(ToolCall { id, name, arguments });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::{ChatMessage, ToolCall};

    #[test]
    fn tool_results_are_blocks_of_one_user_message() {
        let call = |id: &str| ToolCall { id: id.into(), name: "t".into(), arguments: json!({"x": 1}) };
        let mut assistant = ChatMessage::assistant("");
        assistant.tool_calls = vec![call("a"), call("b")];
        let req = LlmRequest {
            model: "claude".into(),
            system: String::new(),
            messages: vec![
                ChatMessage::user("q"),
                assistant,
                ChatMessage::tool_result(&call("a"), "ra"),
                ChatMessage::tool_result(&call("b"), "rb"),
            ],
            tools: vec![],
            max_tokens: 10,
            temperature: 0.2,
        };
        let b = body(&req);
        assert!(b.get("system").is_none());
        let msgs = b["messages"].as_array().unwrap();
        assert_eq!(msgs.len(), 3);
        assert_eq!(msgs[1]["content"][0], json!({"type": "tool_use", "id": "a", "name": "t", "input": {"x": 1}}));
        assert_eq!(msgs[2]["role"], "user");
        assert_eq!(msgs[2]["content"][1], json!({"type": "tool_result", "tool_use_id": "b", "content": "rb"}));
    }
}
