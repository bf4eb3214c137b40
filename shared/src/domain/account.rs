//! LLM accounts as the API shows them. Credentials live in the environment;
//! the API may change priority, activity and model only.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{Invalid, check_text};

/// An account as `GET /api/accounts` shows it. The key is never part of it.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Account {
    pub id: i64,
    pub name: String,
    /// `api_key`.
    #[serde(rename = "type")]
    pub kind: String,
    pub provider: String,
    pub model: String,
    pub base_url: Option<String>,
    pub priority: i64,
    pub is_active: bool,
    /// RFC 3339, or null when the account is usable.
    pub rate_limited_until: Option<String>,
}

/// `PATCH /api/accounts/{id}` body: priority, isActive, model. Anything else
/// (notably credentials) is refused.
#[derive(Debug, Clone, Default, Deserialize, ToSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AccountPatch {
    #[schema(minimum = 0, maximum = 1_000_000)]
    pub priority: Option<i64>,
    pub is_active: Option<bool>,
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = "^[^\\t-\\r \\u0085\\u00A0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000]+$"
    )]
    pub model: Option<String>,
}

pub const CREDENTIALS_MESSAGE: &str = "credentials cannot be changed through the API — edit .env";

impl AccountPatch {
    /// Reads a JSON body: only `priority`, `isActive` and `model` are accepted.
    pub fn from_json(body: &serde_json::Value) -> Result<AccountPatch, Invalid> {
        let obj = body.as_object().ok_or_else(|| Invalid::new("request body must be a JSON object"))?;
        let mut patch = AccountPatch::default();
        for (key, value) in obj {
            // `null` leaves a field as it is, like the other PATCH bodies.
            if value.is_null() && matches!(key.as_str(), "priority" | "isActive" | "model") {
                continue;
            }
            match key.as_str() {
                "priority" => {
                    // `5.0` is an integer to JSON Schema (and to the document) too.
                    let n = value
                        .as_number()
                        .and_then(super::json_integer)
                        .ok_or_else(|| Invalid::new("priority must be an integer"))?;
                    if !(0..=1_000_000).contains(&n) {
                        return Err(Invalid::new("priority must be between 0 and 1000000"));
                    }
                    patch.priority = Some(n);
                }
                "isActive" => {
                    patch.is_active = Some(value.as_bool().ok_or_else(|| Invalid::new("isActive must be a boolean"))?);
                }
                "model" => {
                    let m = value.as_str().ok_or_else(|| Invalid::new("model must be a string"))?;
                    check_text("model", m, 200)?;
                    if m.trim().is_empty() || m.chars().any(char::is_whitespace) {
                        return Err(Invalid::new("model must be a model name without spaces"));
                    }
                    patch.model = Some(m.to_string());
                }
                other => {
                    return Err(Invalid::new(format!(
                        "{CREDENTIALS_MESSAGE} (only priority, isActive and model are editable; got {:?})",
                        other.chars().take(64).collect::<String>()
                    )));
                }
            }
        }
        Ok(patch)
    }
}
