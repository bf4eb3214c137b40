//! LLM provider adapters: each speaks one real wire format over `reqwest`
//! with streaming (server-sent events, parsed by `eventsource-stream`), and
//! maps the answer to the provider-neutral [`LlmResponse`].
//!
//! - [`anthropic`]: Anthropic Messages (`POST {base}/v1/messages`).
//! - [`openai`]: OpenAI-compatible chat completions (OpenAI, OpenRouter, Ollama, custom).
//! - [`google`]: Google Gemini `streamGenerateContent`.
//!
//! Errors are classified here ([`ProviderError`]) so the failover layer can
//! decide: a rate limit moves the request to the next account, a 4xx is
//! permanent, a 5xx, a timeout or a broken connection is retryable. No error
//! text ever contains an API key: keys travel in headers only (Gemini's too),
//! reqwest errors are stripped of their URL, and provider error bodies are
//! scrubbed of the key before they are kept.
//!
//! A 400 that names one request parameter the model refuses
//! (`unsupported_parameter` / `unsupported_value`, OpenAI's error shape) is
//! [`ProviderError::Unsupported`]: the OpenAI adapter retries once without that
//! parameter and remembers it per (account, model) in a [`ParamMemory`], so
//! the next call of that pair leaves it out from the start.

pub mod anthropic;
pub mod google;
pub mod openai;

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use futures::StreamExt as _;
use secrecy::{ExposeSecret as _, SecretString};

use crate::llm::{LlmRequest, LlmResponse};

/// Where and how to call one account.
#[derive(Clone, Copy)]
pub struct Endpoint<'a> {
    /// `anthropic`, `openai`, `openrouter`, `ollama`, `custom`, `google`.
    pub provider: &'a str,
    /// The account's base URL; `None` = the provider's public endpoint.
    pub base_url: Option<&'a str>,
    pub api_key: Option<&'a SecretString>,
    /// Whole-request timeout (headers and the full stream).
    pub timeout: Duration,
    /// The account's id: the key (with the model) of what [`ParamMemory`] learned.
    pub account_id: i64,
    /// Parameters learned to be refused, shared by the worker's calls; `None`
    /// = learn nothing beyond this call.
    pub memory: Option<&'a ParamMemory>,
}

/// Request parameters a model refused, per (account, model), for the life of
/// the process: a refused parameter costs one failed request per pair, not
/// one per call. In memory only, by design: a restart (or a model that starts
/// accepting the parameter) costs one retry more.
#[derive(Debug, Default)]
pub struct ParamMemory {
    refused: Mutex<HashMap<(i64, String), BTreeSet<String>>>,
}

impl ParamMemory {
    /// What this (account, model) is known to refuse.
    pub fn refused(&self, account_id: i64, model: &str) -> BTreeSet<String> {
        let map = self.refused.lock().unwrap_or_else(|e| e.into_inner());
        map.get(&(account_id, model.to_string())).cloned().unwrap_or_default()
    }

    /// Remembers that this (account, model) refuses `param`.
    pub fn remember(&self, account_id: i64, model: &str, param: &str) {
        let mut map = self.refused.lock().unwrap_or_else(|e| e.into_inner());
        map.entry((account_id, model.to_string())).or_default().insert(param.to_string());
    }
}

impl std::fmt::Debug for Endpoint<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("provider", &self.provider)
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.map(|_| "[REDACTED]"))
            .field("account_id", &self.account_id)
            .finish()
    }
}

/// Why a provider call failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProviderError {
    /// 429, 529, or 503 with `Retry-After`: this account should rest.
    #[error("rate limited (HTTP {status})")]
    RateLimited { status: u16, retry_after: Option<Duration> },
    /// Any other HTTP error status, with the provider's (scrubbed, shortened) message.
    #[error("HTTP {status}: {message}")]
    Http { status: u16, message: String },
    /// A 400 naming one parameter the model does not accept (OpenAI's
    /// `unsupported_parameter` / `unsupported_value` codes, with `param`).
    #[error("HTTP {status}: the model refuses the parameter {param:?}: {message}")]
    Unsupported { status: u16, param: String, message: String },
    #[error("the provider did not answer within the timeout")]
    Timeout,
    #[error("cannot reach the provider: {0}")]
    Connect(String),
    /// A response that does not follow the wire format.
    #[error("unexpected response from the provider: {0}")]
    Protocol(String),
    /// The account cannot be called at all (no key, unknown provider).
    #[error("account not usable: {0}")]
    Config(String),
}

impl ProviderError {
    /// A short label for metrics.
    pub fn outcome(&self) -> &'static str {
        match self {
            ProviderError::RateLimited { .. } => "rate_limited",
            ProviderError::Http { status, .. } if *status >= 500 => "server_error",
            ProviderError::Http { .. } | ProviderError::Unsupported { .. } => "client_error",
            ProviderError::Timeout => "timeout",
            ProviderError::Connect(_) => "connect_error",
            ProviderError::Protocol(_) => "protocol_error",
            ProviderError::Config(_) => "not_usable",
        }
    }

    /// Permanent errors fail the job at once: 400-class statuses except 408
    /// and 429, and configuration problems.
    pub fn is_permanent(&self) -> bool {
        match self {
            ProviderError::Http { status, .. } => (400..500).contains(status) && *status != 408 && *status != 429,
            ProviderError::Config(_) | ProviderError::Unsupported { .. } => true,
            _ => false,
        }
    }
}

/// Calls the account's provider. `on_delta` receives each piece of text as it streams.
pub async fn call(
    client: &reqwest::Client,
    endpoint: &Endpoint<'_>,
    request: &LlmRequest,
    on_delta: &mut (dyn FnMut(&str) + Send),
) -> Result<LlmResponse, ProviderError> {
    match endpoint.provider {
        "anthropic" => anthropic::call(client, endpoint, request, on_delta).await,
        "google" => google::call(client, endpoint, request, on_delta).await,
        "openai" | "openrouter" | "ollama" | "custom" => openai::call(client, endpoint, request, on_delta).await,
        other => Err(ProviderError::Config(format!("unknown provider {other:?}"))),
    }
}

/// A reqwest failure without its URL (which could carry secrets in other setups).
pub(crate) fn transport_error(e: reqwest::Error) -> ProviderError {
    if e.is_timeout() {
        return ProviderError::Timeout;
    }
    let connect = e.is_connect() || e.is_request();
    let text = e.without_url().to_string();
    if connect { ProviderError::Connect(text) } else { ProviderError::Protocol(text) }
}

/// The key's text, for a header.
pub(crate) fn key_text(endpoint: &Endpoint<'_>) -> Option<String> {
    endpoint.api_key.map(|k| k.expose_secret().to_string())
}

/// Removes the key from provider-supplied text and shortens it.
pub(crate) fn scrub(endpoint: &Endpoint<'_>, text: &str) -> String {
    let mut t = text.to_string();
    if let Some(k) = endpoint.api_key {
        let k = k.expose_secret();
        if !k.is_empty() {
            t = t.replace(k, "[REDACTED]");
        }
    }
    let t: String = t.chars().take(300).collect();
    t.trim().to_string()
}

/// Sends the request; on a non-success status reads the body and classifies it.
pub(crate) async fn send(
    endpoint: &Endpoint<'_>,
    builder: reqwest::RequestBuilder,
) -> Result<reqwest::Response, ProviderError> {
    let response = builder.timeout(endpoint.timeout).send().await.map_err(transport_error)?;
    let status = response.status().as_u16();
    if response.status().is_success() {
        return Ok(response);
    }
    let retry_after =
        response.headers().get(reqwest::header::RETRY_AFTER).and_then(|v| v.to_str().ok()).and_then(parse_retry_after);
    if status == 429 || status == 529 || (status == 503 && retry_after.is_some()) {
        return Err(ProviderError::RateLimited { status, retry_after });
    }
    let body = response.text().await.unwrap_or_default();
    if let Some(param) = unsupported_param(&body) {
        return Err(ProviderError::Unsupported { status, param, message: scrub(endpoint, &error_message(&body)) });
    }
    Err(ProviderError::Http { status, message: scrub(endpoint, &error_message(&body)) })
}

/// The parameter an `unsupported_parameter` / `unsupported_value` error names, e.g.
/// `{"error": {"message": "Unsupported parameter: 'max_tokens' …", "type":
/// "invalid_request_error", "param": "max_tokens", "code": "unsupported_parameter"}}`.
fn unsupported_param(body: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    let error = v.get("error")?;
    let code = error.get("code").and_then(serde_json::Value::as_str)?;
    if code != "unsupported_parameter" && code != "unsupported_value" {
        return None;
    }
    let param = error.get("param").and_then(serde_json::Value::as_str)?;
    // Only a top-level parameter name can be left out (not `messages[3].content`).
    let ok = !param.is_empty() && param.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    ok.then(|| param.to_string())
}

/// The `message` of a JSON error body (`{"error": {"message": …}}` and the like), else the body.
fn error_message(body: &str) -> String {
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(body) {
        let candidates = [v.pointer("/error/message"), v.pointer("/message"), v.pointer("/error")];
        for c in candidates.into_iter().flatten() {
            if let Some(s) = c.as_str() {
                return s.to_string();
            }
        }
    }
    body.to_string()
}

/// `Retry-After`: delta seconds or an HTTP date.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(86_400.0)));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(std::time::SystemTime::now()).unwrap_or(Duration::ZERO))
}

/// The server-sent events of a streaming response, as (event name, data) pairs.
pub(crate) fn sse(
    response: reqwest::Response,
) -> impl futures::Stream<Item = Result<eventsource_stream::Event, ProviderError>> {
    use eventsource_stream::Eventsource as _;
    response.bytes_stream().eventsource().map(|r| {
        r.map_err(|e| match e {
            eventsource_stream::EventStreamError::Transport(t) => transport_error(t),
            other => ProviderError::Protocol(other.to_string()),
        })
    })
}

/// True when the response is an SSE stream (else it is one JSON document).
pub(crate) fn is_event_stream(response: &reqwest::Response) -> bool {
    response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("text/event-stream"))
}

pub(crate) fn parse_json(data: &str) -> Result<serde_json::Value, ProviderError> {
    serde_json::from_str(data).map_err(|e| ProviderError::Protocol(format!("bad JSON in the stream: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_takes_seconds_and_dates() {
        assert_eq!(parse_retry_after("7"), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn permanence_follows_the_status() {
        let http = |status| ProviderError::Http { status, message: String::new() };
        assert!(http(400).is_permanent());
        assert!(http(401).is_permanent());
        assert!(!http(408).is_permanent());
        assert!(!http(500).is_permanent());
        assert!(!ProviderError::Timeout.is_permanent());
    }

    #[test]
    fn unsupported_parameter_errors_name_the_parameter() {
        let body = r#"{"error": {"message": "Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens' instead.", "type": "invalid_request_error", "param": "max_tokens", "code": "unsupported_parameter"}}"#;
        assert_eq!(unsupported_param(body).as_deref(), Some("max_tokens"));
        let body = r#"{"error": {"message": "Unsupported value: 'temperature' does not support 0.2 with this model. Only the default (1) value is supported.", "type": "invalid_request_error", "param": "temperature", "code": "unsupported_value"}}"#;
        assert_eq!(unsupported_param(body).as_deref(), Some("temperature"));
        let other = r#"{"error": {"message": "bad", "param": "messages[1].content", "code": "unsupported_value"}}"#;
        assert_eq!(unsupported_param(other), None);
        assert_eq!(unsupported_param(r#"{"error": {"message": "x", "code": "invalid_api_key"}}"#), None);
    }

    #[test]
    fn memory_is_per_account_and_model() {
        let m = ParamMemory::default();
        m.remember(1, "gpt-5-mini", "temperature");
        assert!(m.refused(1, "gpt-5-mini").contains("temperature"));
        assert!(m.refused(2, "gpt-5-mini").is_empty());
        assert!(m.refused(1, "gpt-5").is_empty());
    }
}
