//! Google Gemini: `POST {base}/v1beta/models/{model}:streamGenerateContent?alt=sse`
//! with the key in the `x-goog-api-key` header (never in the URL, so it cannot
//! land in a log line), `systemInstruction`, `functionDeclarations`,
//! `functionCall` / `functionResponse` parts and `usageMetadata`.
//! Gemini's calls carry no ids; we number them `call_<n>`.
//!
//! Gemini 3 (and 2.5's thinking) attach a `thoughtSignature` to parts of the
//! model's turn — each sequential `functionCall`, the first of parallel calls,
//! and the last text part — and refuse a follow-up whose history drops one
//! ("Function call is missing a thought_signature"). The model turn's parts
//! are therefore kept as they arrived (streamed text pieces joined, each
//! signature on the part it came with) as a [`Replay`] and sent back exactly
//! so in the tool loop. Thought parts (`thought: true`, only with
//! `includeThoughts`) never reach the reply text.
//!
//! Gemini 3 gets no `temperature` (Google: keep the default 1.0, lower values
//! loop) and `thinkingConfig.thinkingLevel` for the agent's effort; 2.5 gets a
//! `thinkingBudget`. Usage: `promptTokenCount` (cached included),
//! `cachedContentTokenCount`, and output = `candidatesTokenCount` +
//! `thoughtsTokenCount` (thinking is billed as output).

use std::sync::Arc;

use futures::StreamExt as _;
use serde_json::{Value, json};

use super::{Endpoint, ProviderError, key_text, parse_json, send, sse};
use crate::llm::{Effort, LlmRequest, LlmResponse, Replay, ReplayFormat, Role, ToolCall};

pub const BASE: &str = "https://generativelanguage.googleapis.com";

/// JSON Schema keywords Gemini's function declarations refuse.
fn clean_schema(v: &Value) -> Value {
    match v {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(k, _)| !matches!(k.as_str(), "$schema" | "additionalProperties" | "$id" | "$defs"))
                .map(|(k, v)| (k.clone(), clean_schema(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(clean_schema).collect()),
        other => other.clone(),
    }
}

pub fn body(req: &LlmRequest) -> Value {
    let mut contents: Vec<Value> = Vec::new();
    for m in &req.messages {
        let (role, parts) = match m.role {
            Role::User => ("user", vec![json!({"text": m.content})]),
            Role::Assistant if m.replay.as_ref().is_some_and(|r| r.format == ReplayFormat::Gemini) => {
                let parts = m.replay.as_ref().and_then(|r| r.content.as_array().cloned()).unwrap_or_default();
                ("model", parts)
            }
            Role::Assistant => {
                let mut parts = Vec::new();
                if !m.content.is_empty() {
                    parts.push(json!({"text": m.content}));
                }
                for c in &m.tool_calls {
                    parts.push(json!({"functionCall": {"name": c.name, "args": c.arguments}}));
                }
                ("model", parts)
            }
            Role::Tool => (
                "user",
                vec![json!({"functionResponse": {
                    "name": m.tool_name.clone().unwrap_or_default(),
                    "response": {"content": m.content},
                }})],
            ),
        };
        // Consecutive function responses travel together in one turn.
        if m.role == Role::Tool
            && let Some(last) = contents.last_mut()
            && last["role"] == "user"
            && last["parts"].as_array().is_some_and(|p| p.iter().all(|x| x.get("functionResponse").is_some()))
        {
            if let Some(p) = last["parts"].as_array_mut() {
                p.extend(parts);
            }
            continue;
        }
        contents.push(json!({"role": role, "parts": parts}));
    }
    let version = gemini_version(&req.model);
    let mut generation = json!({"maxOutputTokens": req.max_tokens});
    if version < 3 {
        generation["temperature"] = json!(req.temperature);
    }
    let mut thinking = serde_json::Map::new();
    if let Some(effort) = req.effort {
        if version >= 3 {
            thinking.insert("thinkingLevel".into(), json!(thinking_level(&req.model, effort)));
        } else if version >= 2 && req.model.contains("2.5") {
            thinking.insert("thinkingBudget".into(), json!(thinking_budget(&req.model, effort)));
        }
    }
    if req.show_thinking {
        thinking.insert("includeThoughts".into(), json!(true));
    }
    if !thinking.is_empty() {
        generation["thinkingConfig"] = Value::Object(thinking);
    }
    let mut body = json!({
        "contents": contents,
        "generationConfig": generation,
    });
    if !req.system.is_empty() {
        body["systemInstruction"] = json!({"parts": [{"text": req.system}]});
    }
    if !req.tools.is_empty() {
        let decls: Vec<Value> = req
            .tools
            .iter()
            .map(|t| json!({"name": t.name, "description": t.description, "parameters": clean_schema(&t.parameters)}))
            .collect();
        body["tools"] = json!([{"functionDeclarations": decls}]);
    }
    body
}

/// The major version in `gemini-3-pro-preview`, `gemini-3.5-flash`, `models/gemini-2.5-pro` (0 if none).
pub fn gemini_version(model: &str) -> u32 {
    let name = model.rsplit('/').next().unwrap_or(model).to_ascii_lowercase();
    let Some(rest) = name.strip_prefix("gemini-") else { return 0 };
    rest.chars().take_while(char::is_ascii_digit).collect::<String>().parse().unwrap_or(0)
}

/// Gemini 3's `thinkingLevel`: Pro knows low and high, Flash also minimal and medium.
fn thinking_level(model: &str, effort: Effort) -> &'static str {
    let flash = model.contains("flash");
    match effort {
        Effort::None | Effort::Minimal if flash => "minimal",
        Effort::None | Effort::Minimal | Effort::Low => "low",
        Effort::Medium if flash => "medium",
        Effort::Medium | Effort::High | Effort::XHigh | Effort::Max => "high",
    }
}

/// Gemini 2.5's `thinkingBudget` in tokens (0 turns thinking off where the model allows; -1 = dynamic).
fn thinking_budget(model: &str, effort: Effort) -> i64 {
    match effort {
        Effort::None if !model.contains("pro") => 0,
        Effort::None | Effort::Minimal => 512,
        Effort::Low => 1024,
        Effort::Medium => 8192,
        Effort::High => 24_576,
        Effort::XHigh | Effort::Max => -1,
    }
}

/// Adds one streamed part to the model turn: text pieces of the same kind are
/// joined until a piece carries a signature (which stays on that part); every
/// other part is kept as it arrived.
fn push_part(parts: &mut Vec<Value>, part: &Value) {
    let is_text = |p: &Value| {
        p.get("text").is_some()
            && p.as_object()
                .is_some_and(|o| o.keys().all(|k| matches!(k.as_str(), "text" | "thought" | "thoughtSignature")))
    };
    if is_text(part)
        && let Some(last) = parts.last_mut()
        && is_text(last)
        && last.get("thoughtSignature").is_none()
        && last.get("thought") == part.get("thought")
    {
        let joined =
            format!("{}{}", last["text"].as_str().unwrap_or_default(), part["text"].as_str().unwrap_or_default());
        last["text"] = json!(joined);
        if let Some(sig) = part.get("thoughtSignature") {
            last["thoughtSignature"] = sig.clone();
        }
        return;
    }
    parts.push(part.clone());
}

pub async fn call(
    client: &reqwest::Client,
    endpoint: &Endpoint<'_>,
    req: &LlmRequest,
    on_delta: &mut (dyn FnMut(&str) + Send),
) -> Result<LlmResponse, ProviderError> {
    let base = endpoint.base_url.unwrap_or(BASE).trim_end_matches('/');
    let key = key_text(endpoint).ok_or_else(|| ProviderError::Config("no API key".into()))?;
    let model = req.model.trim_start_matches("models/");
    let builder = client
        .post(format!("{base}/v1beta/models/{model}:streamGenerateContent?alt=sse"))
        .header("x-goog-api-key", key)
        .json(&body(req));
    let response = send(endpoint, builder).await?;
    let mut out = LlmResponse::default();
    let mut parts: Vec<Value> = Vec::new();
    let mut events = std::pin::pin!(sse(response));
    while let Some(event) = events.next().await {
        let event = event?;
        if event.data.trim().is_empty() {
            continue;
        }
        let v = parse_json(&event.data)?;
        if let Some(err) = v.get("error") {
            let message = err.get("message").and_then(Value::as_str).unwrap_or("error in the stream");
            return Err(ProviderError::Http { status: 500, message: super::scrub(endpoint, message) });
        }
        if let Some(u) = v.get("usageMetadata") {
            let get = |k: &str| u.get(k).and_then(Value::as_i64);
            if let Some(n) = get("promptTokenCount") {
                out.input_tokens = n;
            }
            if get("candidatesTokenCount").is_some() || get("thoughtsTokenCount").is_some() {
                out.output_tokens = get("candidatesTokenCount").unwrap_or(0) + get("thoughtsTokenCount").unwrap_or(0);
            }
            if let Some(n) = get("cachedContentTokenCount") {
                out.cache_read_tokens = n;
            }
        }
        let Some(candidate) = v.pointer("/candidates/0") else { continue };
        if let Some(r) = candidate.get("finishReason").and_then(Value::as_str) {
            out.stop_reason = Some(r.to_string());
        }
        for part in candidate.pointer("/content/parts").and_then(Value::as_array).into_iter().flatten() {
            push_part(&mut parts, part);
            if let Some(t) = part.get("text").and_then(Value::as_str) {
                if part.get("thought").and_then(Value::as_bool) == Some(true) {
                    out.thinking.push_str(t);
                    continue;
                }
                out.text.push_str(t);
                on_delta(t);
            }
            if let Some(fc) = part.get("functionCall") {
                let n = out.tool_calls.len();
                out.tool_calls.push(ToolCall {
                    id: fc.get("id").and_then(Value::as_str).map(str::to_string).unwrap_or_else(|| format!("call_{n}")),
                    name: fc.get("name").and_then(Value::as_str).unwrap_or_default().to_string(),
                    arguments: fc.get("args").cloned().unwrap_or_else(|| json!({})),
                });
            }
        }
    }
    if !parts.is_empty() {
        out.replay = Some(Replay { format: ReplayFormat::Gemini, content: Arc::new(Value::Array(parts)) });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::{ChatMessage, ToolCall};

    #[test]
    fn function_calls_and_responses_use_model_and_user_turns() {
        let call = ToolCall { id: "call_0".into(), name: "get_time".into(), arguments: json!({"tz": "UTC"}) };
        let mut assistant = ChatMessage::assistant("checking");
        assistant.tool_calls = vec![call.clone()];
        let req = LlmRequest {
            model: "gemini-2.0-flash".into(),
            system: "sys".into(),
            messages: vec![ChatMessage::user("time?"), assistant, ChatMessage::tool_result(&call, "noon")],
            tools: vec![],
            max_tokens: 10,
            temperature: 0.2,
            ..Default::default()
        };
        let b = body(&req);
        let c = b["contents"].as_array().unwrap();
        assert_eq!(c[1]["role"], "model");
        assert_eq!(c[1]["parts"][1], json!({"functionCall": {"name": "get_time", "args": {"tz": "UTC"}}}));
        assert_eq!(
            c[2]["parts"][0],
            json!({"functionResponse": {"name": "get_time", "response": {"content": "noon"}}})
        );
        assert_eq!(b["generationConfig"]["maxOutputTokens"], 10);
        assert_eq!(b["generationConfig"]["temperature"], 0.2);
    }

    #[test]
    fn gemini_3_keeps_its_default_temperature_and_takes_a_thinking_level() {
        let mut req =
            LlmRequest { model: "gemini-3.5-flash".into(), max_tokens: 10, temperature: 0.2, ..Default::default() };
        assert_eq!(body(&req)["generationConfig"], json!({"maxOutputTokens": 10}));
        req.effort = Some(Effort::Minimal);
        assert_eq!(body(&req)["generationConfig"]["thinkingConfig"], json!({"thinkingLevel": "minimal"}));
        req.model = "gemini-3.1-pro-preview".into();
        assert_eq!(body(&req)["generationConfig"]["thinkingConfig"], json!({"thinkingLevel": "low"}));
        req.model = "gemini-2.5-flash".into();
        req.effort = Some(Effort::None);
        assert_eq!(body(&req)["generationConfig"]["thinkingConfig"], json!({"thinkingBudget": 0}));
        assert_eq!((gemini_version("models/gemini-3-pro-preview"), gemini_version("gemma-3")), (3, 0));
    }

    #[test]
    fn streamed_parts_keep_their_signatures() {
        let mut parts = Vec::new();
        for p in [
            json!({"text": "Let me "}),
            json!({"text": "check.", "thoughtSignature": "c2lnMQ=="}),
            json!({"functionCall": {"name": "a", "args": {}}, "thoughtSignature": "c2lnMg=="}),
            json!({"functionCall": {"name": "b", "args": {}}}),
            json!({"text": "", "thoughtSignature": "c2lnMw=="}),
        ] {
            push_part(&mut parts, &p);
        }
        assert_eq!(
            parts,
            vec![
                json!({"text": "Let me check.", "thoughtSignature": "c2lnMQ=="}),
                json!({"functionCall": {"name": "a", "args": {}}, "thoughtSignature": "c2lnMg=="}),
                json!({"functionCall": {"name": "b", "args": {}}}),
                json!({"text": "", "thoughtSignature": "c2lnMw=="}),
            ]
        );
    }
}
