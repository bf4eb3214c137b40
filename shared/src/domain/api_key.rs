//! API keys for the OpenAI-compatible `/v1` API: who may call which agents,
//! with an optional monthly budget and expiry.
//!
//! A key is `arvis_sk_` followed by 64 hex digits (32 random bytes,
//! 256 bits). It is shown once, when created; the database keeps
//! its SHA-256 ([`hash`]) and its first [`PREFIX_CHARS`] characters. A plain
//! hash, not a password hash (argon2, bcrypt): those exist to slow down
//! guessing of low-entropy secrets, and 256 random bits cannot be guessed
//! whatever the hash costs — while a fast hash keeps authentication to one
//! indexed lookup per request.

use serde::{Deserialize, Serialize};
use sha2::Digest as _;
use utoipa::ToSchema;

use super::{Invalid, check_text};
use crate::clock::opt_rfc3339;

/// Every key starts with this (so a leaked key is recognisable, and the
/// gateway knows to look it up).
pub const KEY_PREFIX: &str = "arvis_sk_";
/// How much of a key is kept in clear, to tell keys apart in a list.
pub const PREFIX_CHARS: usize = 16;
/// Agents one key may be limited to.
const MAX_AGENTS: usize = 100;

/// A stored key, as `GET /api/keys` shows it (never the key itself).
#[derive(Debug, Clone, PartialEq)]
pub struct ApiKey {
    pub id: i64,
    pub name: String,
    pub prefix: String,
    /// Agent slugs the key may use; `None`: every active agent.
    pub agents: Option<Vec<String>>,
    pub monthly_budget_usd: Option<f64>,
    pub expires_at: Option<i64>,
    pub is_enabled: bool,
    pub last_used_at: Option<i64>,
    pub created_at: i64,
}

impl ApiKey {
    /// Usable now: enabled and not expired.
    pub fn usable(&self, now_ms: i64) -> bool {
        self.is_enabled && self.expires_at.is_none_or(|at| at > now_ms)
    }

    /// May this key use the agent with this slug?
    pub fn allows(&self, slug: &str) -> bool {
        self.agents.as_ref().is_none_or(|list| list.iter().any(|s| s == slug))
    }

    pub fn view(&self, spent_this_month_usd: f64) -> ApiKeyView {
        ApiKeyView {
            id: self.id,
            name: self.name.clone(),
            prefix: self.prefix.clone(),
            agents: self.agents.clone(),
            monthly_budget_usd: self.monthly_budget_usd,
            spent_this_month_usd,
            is_enabled: self.is_enabled,
            last_used_at: opt_rfc3339(self.last_used_at),
            expires_at: opt_rfc3339(self.expires_at),
            created_at: crate::clock::to_rfc3339(self.created_at),
        }
    }
}

/// `GET /api/keys` item.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyView {
    pub id: i64,
    pub name: String,
    /// The key's first characters (`arvis_sk_AbCdEfG`), to recognise it.
    pub prefix: String,
    /// Agent slugs the key may use; `null`: all.
    pub agents: Option<Vec<String>>,
    pub monthly_budget_usd: Option<f64>,
    /// Cost of the key's calls since the start of this calendar month (UTC).
    pub spent_this_month_usd: f64,
    pub is_enabled: bool,
    /// Updated at most once a minute.
    pub last_used_at: Option<String>,
    pub expires_at: Option<String>,
    pub created_at: String,
}

/// `POST /api/keys` body.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewApiKey {
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = "[^\\t-\\r \\u0085\\u00A0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000]"
    )]
    pub name: String,
    /// Agent slugs the key may use; absent or `null`: all.
    #[serde(default)]
    #[schema(schema_with = slug_list)]
    pub agents: Option<Vec<String>>,
    #[serde(default)]
    #[schema(minimum = 0.0)]
    pub monthly_budget_usd: Option<f64>,
    /// RFC 3339 time after which the key is refused.
    #[serde(default)]
    #[schema(format = DateTime)]
    pub expires_at: Option<String>,
}

/// `PATCH /api/keys/{id}` body.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApiKeyPatch {
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = "[^\\t-\\r \\u0085\\u00A0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000]"
    )]
    pub name: Option<String>,
    /// `null`: every agent.
    #[serde(default, deserialize_with = "super::nullable::field")]
    #[schema(schema_with = slug_list)]
    pub agents: Option<Option<Vec<String>>>,
    /// `null`: no budget.
    #[serde(default, deserialize_with = "super::nullable::field")]
    #[schema(value_type = Option<f64>, minimum = 0.0)]
    pub monthly_budget_usd: Option<Option<f64>>,
    /// `null`: never expires.
    #[serde(default, deserialize_with = "super::nullable::field")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<Option<String>>,
    /// `false` disables the key (refused at once, kept in the list).
    pub is_enabled: Option<bool>,
}

/// `agents`: up to [`MAX_AGENTS`] agent slugs, or `null`.
fn slug_list() -> utoipa::openapi::schema::ArrayBuilder {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, SchemaType, Type};
    ArrayBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Array, Type::Null]))
        .items(ObjectBuilder::new().schema_type(Type::String).pattern(Some("^[a-z0-9_-]{1,64}$")))
        .max_items(Some(MAX_AGENTS))
}

/// A validated key, ready to be written.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiKeyFields {
    pub name: String,
    pub agents: Option<Vec<String>>,
    pub monthly_budget_usd: Option<f64>,
    pub expires_at: Option<i64>,
    pub is_enabled: bool,
}

impl NewApiKey {
    pub fn into_fields(self) -> Result<ApiKeyFields, Invalid> {
        let f = ApiKeyFields {
            name: self.name.trim().to_string(),
            agents: self.agents,
            monthly_budget_usd: self.monthly_budget_usd,
            expires_at: self.expires_at.as_deref().map(parse_time).transpose()?,
            is_enabled: true,
        };
        f.validate()?;
        Ok(f)
    }
}

impl ApiKeyPatch {
    pub fn apply(self, current: &ApiKey) -> Result<ApiKeyFields, Invalid> {
        let expires_at = match self.expires_at {
            Some(Some(t)) => Some(parse_time(&t)?),
            Some(None) => None,
            None => current.expires_at,
        };
        let f = ApiKeyFields {
            name: self.name.map(|n| n.trim().to_string()).unwrap_or_else(|| current.name.clone()),
            agents: super::nullable::apply(self.agents, &current.agents),
            monthly_budget_usd: super::nullable::apply(self.monthly_budget_usd, &current.monthly_budget_usd),
            expires_at,
            is_enabled: self.is_enabled.unwrap_or(current.is_enabled),
        };
        f.validate()?;
        Ok(f)
    }
}

impl ApiKeyFields {
    fn validate(&self) -> Result<(), Invalid> {
        check_text("name", &self.name, 200)?;
        if self.name.is_empty() {
            return Err(Invalid::new("name must not be empty"));
        }
        if let Some(agents) = &self.agents {
            if agents.len() > MAX_AGENTS {
                return Err(Invalid::new(format!("agents: at most {MAX_AGENTS} slugs")));
            }
            for slug in agents {
                check_text("agents", slug, 100)?;
                if slug.trim().is_empty() {
                    return Err(Invalid::new("agents: a slug must not be empty"));
                }
            }
        }
        check_budget("monthlyBudgetUsd", self.monthly_budget_usd)
    }
}

/// A budget is a finite, non-negative amount of US dollars (0 refuses every run).
pub fn check_budget(field: &str, budget: Option<f64>) -> Result<(), Invalid> {
    match budget {
        Some(b) if !b.is_finite() || b < 0.0 => Err(Invalid::new(format!("{field} must be a number ≥ 0"))),
        _ => Ok(()),
    }
}

fn parse_time(text: &str) -> Result<i64, Invalid> {
    text.parse::<jiff::Timestamp>()
        .map(|t| t.as_millisecond())
        .map_err(|_| Invalid::new("expiresAt must be an RFC 3339 time like 2027-01-01T00:00:00Z"))
}

/// A new key: its text (shown once), its stored prefix and hash.
pub struct IssuedKey {
    pub key: String,
    pub prefix: String,
    pub hash: String,
}

/// Makes a new random key.
pub fn issue() -> IssuedKey {
    let random: [u8; 32] = rand::random();
    let key = format!("{KEY_PREFIX}{}", hex::encode(random));
    IssuedKey { prefix: key.chars().take(PREFIX_CHARS).collect(), hash: hash(&key), key }
}

/// The stored form of a key: SHA-256, hex.
pub fn hash(key: &str) -> String {
    hex::encode(sha2::Sha256::digest(key.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_long_random_and_stored_only_as_its_hash() {
        let a = issue();
        let b = issue();
        assert!(a.key.starts_with(KEY_PREFIX) && a.key.len() == KEY_PREFIX.len() + 64, "{}", a.key);
        assert_ne!(a.key, b.key);
        assert_eq!(a.hash, hash(&a.key));
        assert_eq!(a.hash.len(), 64);
        assert!(!a.hash.contains(&a.key[KEY_PREFIX.len()..]));
        assert!(a.key.starts_with(&a.prefix));
    }

    #[test]
    fn budgets_and_expiry_are_checked() {
        let new = |budget: Option<f64>, expires: Option<&str>| NewApiKey {
            name: "ci".into(),
            agents: None,
            monthly_budget_usd: budget,
            expires_at: expires.map(str::to_string),
        };
        assert!(new(Some(-1.0), None).into_fields().is_err());
        assert!(new(Some(f64::NAN), None).into_fields().is_err());
        assert!(new(Some(0.0), None).into_fields().is_ok());
        assert!(new(None, Some("tomorrow")).into_fields().is_err());
        let f = new(None, Some("2027-01-01T00:00:00Z")).into_fields().unwrap();
        assert_eq!(f.expires_at, Some(1_798_761_600_000));
    }
}
