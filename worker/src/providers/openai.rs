//! OpenAI-compatible chat completions: `POST {base}/chat/completions` with a
//! Bearer key, `stream: true` and `stream_options.include_usage`. Serves
//! OpenAI, OpenRouter (plus its `HTTP-Referer`/`X-Title` headers), Ollama and
//! any compatible endpoint. Streamed `tool_calls` arrive in pieces keyed by
//! `index` and are accumulated here. A server that ignores `stream` and answers
//! with one JSON document is accepted too.
//!
//! Parameters, by who answers ([`Dialect`]):
//! - OpenAI's reasoning models — the GPT-5 family (`gpt-5`, `gpt-5-mini`,
//!   `gpt-5.1`, …, later `gpt-6*`) and o1/o3/o4 — on the `openai` provider
//!   (whatever its base URL): `max_completion_tokens`, no `temperature` (they
//!   refuse any but the default), `reasoning_effort` when the agent sets one.
//! - Other models on OpenAI's own API (no base URL, or `api.openai.com`):
//!   `max_completion_tokens` (every current model takes it) and `temperature`.
//! - Compatible servers (Ollama, vLLM, OpenRouter, custom base URLs):
//!   `max_tokens` and `temperature`, what they all understand; OpenRouter also
//!   gets `reasoning: {effort}` when the agent sets one.
//!
//! A 400 `unsupported_parameter` / `unsupported_value` naming a parameter is
//! retried once without it (for `max_tokens` / `max_completion_tokens`: with
//! the other one), and the refusal is remembered per (account, model) in the
//! worker's [`ParamMemory`](super::ParamMemory).
//!
//! Usage: `prompt_tokens` (cached ones included) and
//! `prompt_tokens_details.cached_tokens` (priced at the cache-read rate).

use futures::StreamExt as _;
use serde::Serialize;
use serde_json::{Value, json};

use std::collections::BTreeSet;

use super::{Endpoint, ProviderError, is_event_stream, key_text, parse_json, send, sse};
use crate::llm::{Effort, LlmRequest, LlmResponse, Role, ToolCall};

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
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning_effort: Option<&'static str>,
    /// OpenRouter's spelling of the effort.
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning: Option<Reasoning>,
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
struct Reasoning {
    effort: &'static str,
}

/// Who answers, as far as the parameters go (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// An OpenAI reasoning model (GPT-5 family, o-series) on the `openai` provider.
    OpenAiReasoning,
    /// Any other model on OpenAI's own API.
    OpenAi,
    /// OpenRouter.
    OpenRouter,
    /// Ollama, vLLM, any compatible base URL.
    Compatible,
}

impl Dialect {
    pub fn of(endpoint_provider: &str, base_url: Option<&str>, model: &str) -> Dialect {
        match endpoint_provider {
            "openai" if is_reasoning_model(model) => Dialect::OpenAiReasoning,
            "openai" if base_url.is_none_or(|b| b.contains("://api.openai.com")) => Dialect::OpenAi,
            "openrouter" => Dialect::OpenRouter,
            _ => Dialect::Compatible,
        }
    }
}

/// GPT-5 and later (`gpt-5`, `gpt-5-mini`, `gpt-5.1-2025-11-13`, `gpt-6-sol`) and o1/o3/o4.
pub fn is_reasoning_model(model: &str) -> bool {
    let m = model.rsplit('/').next().unwrap_or(model).to_ascii_lowercase();
    if let Some(rest) = m.strip_prefix("gpt-") {
        let major: String = rest.chars().take_while(char::is_ascii_digit).collect();
        // `gpt-5-chat-latest` and its kin are chat models that take a temperature.
        return major.parse::<u32>().is_ok_and(|n| n >= 5) && !m.contains("-chat");
    }
    ["o1", "o3", "o4"].iter().any(|p| m == *p || m.starts_with(&format!("{p}-")))
}

/// OpenAI's `reasoning_effort` for an agent's effort (`max` is `xhigh` there).
fn effort_value(effort: Effort) -> &'static str {
    match effort {
        Effort::Max => "xhigh",
        other => other.as_str(),
    }
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

/// The request body for `dialect`, leaving out what this (account, model) is known to refuse.
pub fn body<'a>(dialect: Dialect, req: &'a LlmRequest, refused: &BTreeSet<String>) -> Body<'a> {
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
    let tools: Vec<Tool<'a>> = req
        .tools
        .iter()
        .map(|t| Tool {
            kind: "function",
            function: ToolFunction { name: &t.name, description: &t.description, parameters: &t.parameters },
        })
        .collect();
    let refuses = |p: &str| refused.contains(p);
    // One of the two token limits: OpenAI's own API wants the new one, the
    // compatible servers know the old one; a refusal switches to the other.
    let completion_tokens = match dialect {
        Dialect::OpenAiReasoning | Dialect::OpenAi => !refuses("max_completion_tokens"),
        Dialect::OpenRouter | Dialect::Compatible => refuses("max_tokens"),
    };
    let effort = req.effort.filter(|_| !refuses("reasoning_effort")).map(effort_value);
    Body {
        model: &req.model,
        messages,
        stream: true,
        stream_options: StreamOptions { include_usage: true },
        max_tokens: (!completion_tokens).then_some(req.max_tokens),
        max_completion_tokens: completion_tokens.then_some(req.max_tokens),
        temperature: (dialect != Dialect::OpenAiReasoning && !refuses("temperature")).then_some(req.temperature),
        reasoning_effort: effort.filter(|_| dialect == Dialect::OpenAiReasoning),
        reasoning: effort
            .filter(|_| dialect == Dialect::OpenRouter && !refuses("reasoning"))
            .map(|effort| Reasoning { effort }),
        tool_choice: (!tools.is_empty() && !refuses("tool_choice")).then_some("auto"),
        tools,
    }
}

/// Parameters a refusal may take out of the body (the rest is the request itself).
const DROPPABLE: &[&str] =
    &["max_tokens", "max_completion_tokens", "temperature", "reasoning_effort", "reasoning", "tool_choice"];

/// Sends the request; a refused parameter is left out and the request sent
/// again, at most once per parameter, and remembered for the (account, model).
async fn send_adapting(
    client: &reqwest::Client,
    endpoint: &Endpoint<'_>,
    req: &LlmRequest,
    url: &str,
) -> Result<reqwest::Response, ProviderError> {
    let dialect = Dialect::of(endpoint.provider, endpoint.base_url, &req.model);
    let mut refused = endpoint.memory.map(|m| m.refused(endpoint.account_id, &req.model)).unwrap_or_default();
    loop {
        let mut builder = client.post(url).json(&body(dialect, req, &refused));
        if let Some(key) = key_text(endpoint) {
            builder = builder.bearer_auth(key);
        } else if matches!(endpoint.provider, "openai" | "openrouter") {
            return Err(ProviderError::Config("no API key".into()));
        }
        if endpoint.provider == "openrouter" {
            builder = builder.header("HTTP-Referer", "https://arvis.local").header("X-Title", "Arvis");
        }
        match send(endpoint, builder).await {
            Err(ProviderError::Unsupported { param, message, .. })
                if DROPPABLE.contains(&param.as_str()) && !refused.contains(&param) =>
            {
                tracing::warn!(
                    account_id = endpoint.account_id,
                    model = %req.model,
                    %param,
                    %message,
                    "the model refuses a parameter; retrying without it (remembered for this account and model)"
                );
                if let Some(memory) = endpoint.memory {
                    memory.remember(endpoint.account_id, &req.model, &param);
                }
                refused.insert(param);
            }
            other => return other,
        }
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
    let response = send_adapting(client, endpoint, req, &url).await?;
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
    if let Some(n) = usage.pointer("/prompt_tokens_details/cached_tokens").and_then(Value::as_i64) {
        out.cache_read_tokens = n;
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

    fn req(model: &str) -> LlmRequest {
        LlmRequest {
            model: model.into(),
            messages: vec![ChatMessage::user("q")],
            max_tokens: 10,
            temperature: 0.2,
            ..Default::default()
        }
    }

    fn wire(provider: &str, base: Option<&str>, req: &LlmRequest, refused: &[&str]) -> Value {
        let refused = refused.iter().map(|s| s.to_string()).collect();
        serde_json::to_value(body(Dialect::of(provider, base, &req.model), req, &refused)).unwrap()
    }

    #[test]
    fn reasoning_models_get_max_completion_tokens_and_no_temperature() {
        for model in
            ["o3-mini", "o1", "o4-mini-2025-04-16", "gpt-5", "gpt-5-mini", "gpt-5.1", "gpt-5.2-2025-12-11", "gpt-6-sol"]
        {
            let b = wire("openai", None, &req(model), &[]);
            assert_eq!(
                (b["max_completion_tokens"].as_i64(), b.get("temperature"), b.get("max_tokens")),
                (Some(10), None, None),
                "{model}"
            );
            // The same model behind a custom base URL is still an OpenAI reasoning model.
            let b = wire("openai", Some("http://127.0.0.1:9/v1"), &req(model), &[]);
            assert_eq!((b["max_completion_tokens"].as_i64(), b.get("temperature")), (Some(10), None), "{model}");
        }
        for model in ["gpt-4o-mini", "gpt-5-chat-latest", "o3x", "gpt-4.1"] {
            assert!(!is_reasoning_model(model), "{model}");
        }
        let b = wire("ollama", Some("http://127.0.0.1:11434/v1"), &req("qwen"), &[]);
        assert_eq!((b["max_tokens"].as_i64(), b["temperature"].as_f64()), (Some(10), Some(0.2)));
        assert_eq!(b["messages"], json!([{"role": "user", "content": "q"}]), "no empty system message");
    }

    #[test]
    fn openais_own_api_gets_max_completion_tokens_compatible_servers_max_tokens() {
        let b = wire("openai", None, &req("gpt-4o-mini"), &[]);
        assert_eq!(
            (b["max_completion_tokens"].as_i64(), b["temperature"].as_f64(), b.get("max_tokens")),
            (Some(10), Some(0.2), None)
        );
        let b = wire("openai", Some("https://api.openai.com/v1"), &req("gpt-4.1"), &[]);
        assert_eq!(b["max_completion_tokens"].as_i64(), Some(10));
        for (provider, base) in [
            ("openai", "http://vllm:8000/v1"),
            ("custom", "http://x/v1"),
            ("openrouter", "https://openrouter.ai/api/v1"),
        ] {
            let b = wire(provider, Some(base), &req("gpt-4o-mini"), &[]);
            assert_eq!((b["max_tokens"].as_i64(), b.get("max_completion_tokens")), (Some(10), None), "{provider}");
        }
    }

    #[test]
    fn efforts_and_refusals() {
        let mut r = req("gpt-5-mini");
        r.effort = Some(Effort::Minimal);
        assert_eq!(wire("openai", None, &r, &[])["reasoning_effort"], "minimal");
        assert!(wire("openai", None, &r, &["reasoning_effort"]).get("reasoning_effort").is_none());
        r.effort = Some(Effort::Max);
        assert_eq!(wire("openai", None, &r, &[])["reasoning_effort"], "xhigh");
        // Compatible servers never see reasoning_effort; OpenRouter gets its own field.
        r.model = "qwen3".into();
        assert!(wire("ollama", Some("http://o/v1"), &r, &[]).get("reasoning_effort").is_none());
        assert_eq!(wire("openrouter", None, &r, &[])["reasoning"], json!({"effort": "xhigh"}));
        // A refused token limit switches to the other one; a refused temperature goes.
        let b = wire("custom", Some("http://x/v1"), &req("m"), &["max_tokens", "temperature"]);
        assert_eq!(
            (b["max_completion_tokens"].as_i64(), b.get("max_tokens"), b.get("temperature")),
            (Some(10), None, None)
        );
        let b = wire("openai", None, &req("gpt-4o"), &["max_completion_tokens"]);
        assert_eq!((b["max_tokens"].as_i64(), b.get("max_completion_tokens")), (Some(10), None));
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
                    replay: None,
                },
                ChatMessage {
                    role: Role::Tool,
                    content: "2".into(),
                    tool_calls: vec![],
                    tool_call_id: Some("c1".into()),
                    tool_name: Some("calculate".into()),
                    replay: None,
                },
            ],
            tools: vec![crate::llm::ToolSpec {
                name: "calculate".into(),
                description: "math".into(),
                parameters: json!({"type": "object"}),
            }],
            max_tokens: 5,
            temperature: 0.0,
            ..Default::default()
        };
        let b = wire("openai", None, &req, &[]);
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
