//! Domain types shared by the services, with the validation rules that make a
//! value acceptable. The types serialize with the REST reference's camelCase
//! field names, so the gateway returns them as they are.

pub mod account;
pub mod agent;
pub mod api_key;
pub mod bot;
pub mod connectors;
pub mod conversation;
pub mod delivery;
pub mod job;
pub mod jobs;
pub mod limits;
pub mod logs;
pub mod mcp;
pub mod memory;
pub mod nullable;
pub mod schedule;
pub mod schema;
pub mod settings;
pub mod skill;
pub mod usage;
pub mod webhook;
pub mod workflow;

/// A rule a value broke; the gateway turns it into a 400 with this text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

impl Invalid {
    pub fn new(msg: impl Into<String>) -> Invalid {
        Invalid(msg.into())
    }
}

/// A JSON number as an integer, when it is one to JSON Schema: `456` and also
/// `456.0` (a zero fraction), within `i64`. What the OpenAPI document calls
/// `integer` is what the API accepts (gateway `AppJson`, `AccountPatch`).
pub fn json_integer(n: &serde_json::Number) -> Option<i64> {
    n.as_i64().or_else(|| {
        n.as_f64().filter(|f| f.fract() == 0.0 && *f >= i64::MIN as f64 && *f < i64::MAX as f64).map(|f| f as i64)
    })
}

/// Rejects text that would be stored badly: NUL bytes (Postgres TEXT refuses
/// them) and values longer than `max` characters.
pub fn check_text(field: &str, value: &str, max: usize) -> Result<(), Invalid> {
    if value.contains('\0') {
        return Err(Invalid::new(format!("{field} must not contain NUL bytes")));
    }
    if value.chars().count() > max {
        return Err(Invalid::new(format!("{field} is longer than {max} characters")));
    }
    Ok(())
}

/// A model spec is `provider/model`, split at the first `/`; a bare name means
/// anthropic (behaviour reference §5).
pub fn split_model(spec: &str) -> (&str, &str) {
    match spec.split_once('/') {
        Some((provider, model)) if !provider.is_empty() => (provider, model),
        _ => ("anthropic", spec),
    }
}

/// Providers the worker can call.
pub const PROVIDERS: &[&str] = &["anthropic", "openai", "openrouter", "google", "ollama", "custom"];

/// Validates a model spec: non-empty, no whitespace, a known provider prefix
/// when one is given.
pub fn check_model(field: &str, spec: &str) -> Result<(), Invalid> {
    check_text(field, spec, 200)?;
    if spec.is_empty() || spec.chars().any(char::is_whitespace) {
        return Err(Invalid::new(format!("{field} must be a model name like anthropic/claude-haiku-4-5-20251001")));
    }
    let (provider, model) = split_model(spec);
    if spec.contains('/') && !PROVIDERS.contains(&provider) {
        return Err(Invalid::new(format!("{field}: unknown provider {provider:?} (known: {})", PROVIDERS.join(", "))));
    }
    if model.is_empty() {
        return Err(Invalid::new(format!("{field}: the model name after the provider is empty")));
    }
    Ok(())
}
