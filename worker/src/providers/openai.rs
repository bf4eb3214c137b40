//! OpenAI-compatible chat completions: `POST {base}/chat/completions` with a
//! Bearer key, `stream: true` and `stream_options.include_usage`. Serves
//! OpenAI, OpenRouter (plus its `HTTP-Referer`/`X-Title` headers), Ollama and
//! any compatible endpoint. Streamed `tool_calls` arrive in pieces keyed by
//! `index` and are accumulated here. A server that ignores `stream` and answers
//! with one JSON document is accepted too.

use futures::StreamExt as _;
use serde::Serialize;
use serde_json::{Value, json};

use super::{Endpoint, ProviderError, is_event_stream, key_text, parse_json, send, sse};
use crate::llm::{LlmRequest, LlmResponse, Role, ToolCall};

pub const OPENAI_BASE: &str = "https://api.openai.com/v1";
pub const OPENROUTER_BASE: &str = "https://openrouter.ai/api/v1";

/// The request body, borrowing the request: serialized once, straight into
/// the HTTP body (building a `serde_json::Value` first copied every message
/// of the history and cost ~5 % of the launcher's CPU under chat load).
#[derive(Debug, Serialize)]
pub struct Body<'a> {
    model: &'a str,
    messages: Vec<Message<'a>>,
    stream: bool,
    stream_options: StreamOptions,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_completion_tokens: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<Tool<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<&'static str>,
}

#[derive(Debug, Serialize)]
struct StreamOptions {
    include_usage: bool,
}

#[derive(Debug, Serialize)]
struct Message<'a> {
    role: &'static str,
    /// `null` for an assistant turn that only calls tools.
    content: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<Call<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_call_id: Option<&'a str>,
}

#[derive(Debug, Serialize)]
struct Call<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    function: CallFunction<'a>,
}

#[derive(Debug, Serialize)]
struct CallFunction<'a> {
    name: &'a str,
    /// A JSON document in a string, as the API wants it.
    arguments: String,
}

#[derive(Debug, Serialize)]
struct Tool<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    function: ToolFunction<'a>,
}

#[derive(Debug, Serialize)]
struct ToolFunction<'a> {
    name: &'a str,
    description: &'a str,
    parameters: &'a Value,
}

pub fn body<'a>(provider: &str, req: &'a LlmRequest) -> Body<'a> {
    let mut messages = Vec::with_capacity(req.messages.len() + 1);
    if !req.system.is_empty() {
        messages.push(Message { role: "system", content: Some(&req.system), tool_calls: vec![], tool_call_id: None });
    }
    for m in &req.messages {
        messages.push(match m.role {
            Role::User => Message { role: "user", content: Some(&m.content), tool_calls: vec![], tool_call_id: None },
            Role::Assistant => Message {
                role: "assistant",
                content: (!m.content.is_empty() || m.tool_calls.is_empty()).then_some(&*m.content),
                tool_calls: m
                    .tool_calls
                    .iter()
                    .map(|c| Call {
                        id: &c.id,
                        kind: "function",
                        function: CallFunction { name: &c.name, arguments: c.arguments.to_string() },
                    })
                    .collect(),
                tool_call_id: None,
            },
            Role::Tool => Message {
                role: "tool",
                content: Some(&m.content),
                tool_calls: vec![],
                tool_call_id: Some(m.tool_call_id.as_deref().unwrap_or_default()),
            },
        });
    }
    // OpenAI's reasoning models refuse `max_tokens` and a temperature.
    let reasoning = provider == "openai"
        && (req.model.starts_with("o1") || req.model.starts_with("o3") || req.model.starts_with("o4"));
    // `max_tokens` is what every compatible server knows; OpenAI's reasoning
    // models want `max_completion_tokens` and no temperature.
    let tools: Vec<Tool<'a>> = req
        .tools
        .iter()
        .map(|t| Tool {
            kind: "function",
            function: ToolFunction { name: &t.name, description: &t.description, parameters: &t.parameters },
        })
        .collect();
    Body {
        model: &req.model,
        messages,
        stream: true,
        stream_options: StreamOptions { include_usage: true },
        max_tokens: (!reasoning).then_some(req.max_tokens),
        max_completion_tokens: reasoning.then_some(req.max_tokens),
        temperature: (!reasoning).then_some(req.temperature),
        tool_choice: (!tools.is_empty()).then_some("auto"),
        tools,
    }
}

pub async fn call(
    client: &reqwest::Client,
    endpoint: &Endpoint<'_>,
    req: &LlmRequest,
    on_delta: &mut (dyn FnMut(&str) + Send),
) -> Result<LlmResponse, ProviderError> {
    let base = match (endpoint.base_url, endpoint.provider) {
        (Some(b), _) => b,
        (None, "openai") => OPENAI_BASE,
        (None, "openrouter") => OPENROUTER_BASE,
        (None, other) => return Err(ProviderError::Config(format!("{other} needs a base URL"))),
    };
    let url = format!("{}/chat/completions", base.trim_end_matches('/'));
    let mut builder = client.post(url).json(&body(endpoint.provider, req));
    if let Some(key) = key_text(endpoint) {
        builder = builder.bearer_auth(key);
    } else if matches!(endpoint.provider, "openai" | "openrouter") {
        return Err(ProviderError::Config("no API key".into()));
    }
    if endpoint.provider == "openrouter" {
        builder = builder.header("HTTP-Referer", "https://arvis.local").header("X-Title", "Arvis");
    }
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
    let mut calls: Vec<(String, String, String)> = Vec::new(); // by index: id, name, arguments text
    let mut events = std::pin::pin!(sse(response));
    while let Some(event) = events.next().await {
        let event = event?;
        let data = event.data.trim();
        if data.is_empty() {
            continue;
        }
        if data == "[DONE]" {
            break;
        }
        let v = parse_json(data)?;
        if let Some(err) = v.get("error") {
            let message = err.get("message").and_then(Value::as_str).unwrap_or("error in the stream");
            return Err(ProviderError::Http { status: 500, message: super::scrub(endpoint, message) });
        }
        if let Some(usage) = v.get("usage").filter(|u| !u.is_null()) {
            read_usage(usage, &mut out);
        }
        let Some(choice) = v.pointer("/choices/0") else { continue };
        if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str) {
            out.stop_reason = Some(reason.to_string());
        }
        let Some(delta) = choice.get("delta") else { continue };
        if let Some(text) = delta.get("content").and_then(Value::as_str)
            && !text.is_empty()
        {
            out.text.push_str(text);
            on_delta(text);
        }
        if let Some(tcs) = delta.get("tool_calls").and_then(Value::as_array) {
            for (pos, tc) in tcs.iter().enumerate() {
                let index = tc.get("index").and_then(Value::as_u64).map(|i| i as usize).unwrap_or(pos);
                if calls.len() <= index {
                    calls.resize(index + 1, Default::default());
                }
                let slot = &mut calls[index];
                if let Some(id) = tc.get("id").and_then(Value::as_str) {
                    slot.0 = id.to_string();
                }
                if let Some(name) = tc.pointer("/function/name").and_then(Value::as_str) {
                    slot.1.push_str(name);
                }
                if let Some(args) = tc.pointer("/function/arguments").and_then(Value::as_str) {
                    slot.2.push_str(args);
                }
            }
        }
    }
    for (i, (id, name, args)) in calls.into_iter().enumerate() {
        if name.is_empty() {
            continue;
        }
        out.tool_calls.push(ToolCall {
            id: if id.is_empty() { format!("call_{i}") } else { id },
            name,
            arguments: parse_arguments(&args),
        });
    }
    Ok(out)
}

fn read_usage(usage: &Value, out: &mut LlmResponse) {
    if let Some(n) = usage.get("prompt_tokens").and_then(Value::as_i64) {
        out.input_tokens = n;
    }
    if let Some(n) = usage.get("completion_tokens").and_then(Value::as_i64) {
        out.output_tokens = n;
    }
}

/// Arguments arrive as JSON text; an empty string is `{}`, broken text is kept as a string.
fn parse_arguments(text: &str) -> Value {
    if text.trim().is_empty() {
        return json!({});
    }
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string()))
}

/// A non-streamed chat completion.
fn from_document(v: &Value) -> Result<LlmResponse, ProviderError> {
    let message = v.pointer("/choices/0/message").ok_or_else(|| ProviderError::Protocol("no choices".into()))?;
    let mut out = LlmResponse {
        text: message.get("content").and_then(Value::as_str).unwrap_or_default().to_string(),
        stop_reason: v.pointer("/choices/0/finish_reason").and_then(Value::as_str).map(str::to_string),
        ..Default::default()
    };
    if let Some(tcs) = message.get("tool_calls").and_then(Value::as_array) {
        for (i, tc) in tcs.iter().enumerate() {
            let name = tc.pointer("/function/name").and_then(Value::as_str).unwrap_or_default().to_string();
            if name.is_empty() {
                continue;
            }
            out.tool_calls.push(ToolCall {
                id: tc.get("id").and_then(Value::as_str).map(str::to_string).unwrap_or_else(|| format!("call_{i}")),
                name,
                arguments: parse_arguments(tc.pointer("/function/arguments").and_then(Value::as_str).unwrap_or("")),
            });
        }
    }
    if let Some(usage) = v.get("usage") {
        read_usage(usage, &mut out);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::ChatMessage;

    #[test]
    fn reasoning_models_get_max_completion_tokens_and_no_temperature() {
        let req = |model: &str| LlmRequest {
            model: model.into(),
            system: String::new(),
            messages: vec![ChatMessage::user("q")],
            tools: vec![],
            max_tokens: 10,
            temperature: 0.2,
        };
        let b = |provider: &str, model: &str| serde_json::to_value(body(provider, &req(model))).unwrap();
        let b = b("openai", "o3-mini");
        assert_eq!((b["max_completion_tokens"].as_i64(), b.get("temperature")), (Some(10), None));
        let b = serde_json::to_value(body("ollama", &req("qwen"))).unwrap();
        assert_eq!((b["max_tokens"].as_i64(), b["temperature"].as_f64()), (Some(10), Some(0.2)));
        assert_eq!(b["messages"], json!([{"role": "user", "content": "q"}]), "no empty system message");
    }

    #[test]
    fn tool_turns_keep_the_wire_shape() {
        let call = ToolCall { id: "c1".into(), name: "calculate".into(), arguments: json!({"expression": "1+1"}) };
        let req = LlmRequest {
            model: "gpt-4o-mini".into(),
            system: "sys".into(),
            messages: vec![
                ChatMessage::user("q"),
                ChatMessage {
                    role: Role::Assistant,
                    content: "".into(),
                    tool_calls: vec![call],
                    tool_call_id: None,
                    tool_name: None,
                },
                ChatMessage {
                    role: Role::Tool,
                    content: "2".into(),
                    tool_calls: vec![],
                    tool_call_id: Some("c1".into()),
                    tool_name: Some("calculate".into()),
                },
            ],
            tools: vec![crate::llm::ToolSpec {
                name: "calculate".into(),
                description: "math".into(),
                parameters: json!({"type": "object"}),
            }],
            max_tokens: 5,
            temperature: 0.0,
        };
        let b = serde_json::to_value(body("openai", &req)).unwrap();
        assert_eq!(
            b["messages"],
            json!([
                {"role": "system", "content": "sys"},
                {"role": "user", "content": "q"},
                {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function",
                    "function": {"name": "calculate", "arguments": "{\"expression\":\"1+1\"}"}}]},
                {"role": "tool", "content": "2", "tool_call_id": "c1"},
            ])
        );
        assert_eq!(
            b["tools"],
            json!([{"type": "function", "function": {"name": "calculate", "description": "math", "parameters": {"type": "object"}}}])
        );
        assert_eq!((b["tool_choice"].as_str(), b["stream"].as_bool()), (Some("auto"), Some(true)));
        assert_eq!(b["stream_options"], json!({"include_usage": true}));
    }
}
