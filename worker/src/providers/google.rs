//! Google Gemini: `POST {base}/v1beta/models/{model}:streamGenerateContent?alt=sse`
//! with the key in the `x-goog-api-key` header (never in the URL, so it cannot
//! land in a log line), `systemInstruction`, `functionDeclarations`,
//! `functionCall` / `functionResponse` parts and `usageMetadata`.
//! Gemini's calls carry no ids; we number them `call_<n>`.

use futures::StreamExt as _;
use serde_json::{Value, json};

use super::{Endpoint, ProviderError, key_text, parse_json, send, sse};
use crate::llm::{LlmRequest, LlmResponse, Role, ToolCall};

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
    let mut body = json!({
        "contents": contents,
        "generationConfig": {"maxOutputTokens": req.max_tokens, "temperature": req.temperature},
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
            if let Some(n) = u.get("promptTokenCount").and_then(Value::as_i64) {
                out.input_tokens = n;
            }
            if let Some(n) = u.get("candidatesTokenCount").and_then(Value::as_i64) {
                out.output_tokens = n;
            }
        }
        let Some(candidate) = v.pointer("/candidates/0") else { continue };
        if let Some(r) = candidate.get("finishReason").and_then(Value::as_str) {
            out.stop_reason = Some(r.to_string());
        }
        for part in candidate.pointer("/content/parts").and_then(Value::as_array).into_iter().flatten() {
            if let Some(t) = part.get("text").and_then(Value::as_str) {
                if part.get("thought").and_then(Value::as_bool) == Some(true) {
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
    }
}
