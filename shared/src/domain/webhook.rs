//! Inbound webhooks (management side): a path under `/webhook/`, a shared
//! secret and the agent that handles deliveries.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{Invalid, check_text};

#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Webhook {
    pub id: i64,
    pub name: String,
    /// `/webhook/<path>`.
    pub url: String,
    /// The webhook's own HMAC secret, which the sender must be given.
    pub secret: Option<String>,
    pub agent_id: i64,
    pub is_enabled: bool,
    pub prompt_template: String,
    pub channel_id: Option<String>,
    pub platform: Option<String>,
    pub trigger_count: i64,
    pub last_triggered_at: Option<String>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewWebhook {
    /// Its URL path is made of its letters and digits (`/webhook/<path>`).
    #[schema(max_length = 200, pattern = "[A-Za-z0-9]")]
    pub name: String,
    pub agent_id: i64,
    /// Generated (32 random bytes, hex) when absent.
    #[serde(default)]
    #[schema(
        min_length = 16,
        max_length = 256,
        pattern = "^[^\\t-\\r \\u0085\\u00A0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000]{16,}$"
    )]
    pub secret: Option<String>,
    #[serde(default)]
    #[schema(max_length = 100000)]
    pub prompt_template: Option<String>,
    #[serde(default)]
    #[schema(max_length = 200)]
    pub channel_id: Option<String>,
    #[serde(default)]
    #[schema(max_length = 50)]
    pub platform: Option<String>,
    #[serde(default)]
    pub is_enabled: Option<bool>,
}

/// `PATCH /api/webhooks/{id}`. Renaming keeps the URL (senders already use it).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WebhookPatch {
    #[schema(max_length = 200, pattern = "[A-Za-z0-9]")]
    pub name: Option<String>,
    pub agent_id: Option<i64>,
    #[schema(
        min_length = 16,
        max_length = 256,
        pattern = "^[^\\t-\\r \\u0085\\u00A0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000]{16,}$"
    )]
    pub secret: Option<String>,
    #[schema(max_length = 100000)]
    pub prompt_template: Option<String>,
    /// `null` clears it.
    #[serde(default, deserialize_with = "super::nullable::field")]
    #[schema(value_type = Option<String>, max_length = 200)]
    pub channel_id: Option<Option<String>>,
    /// `null` clears it.
    #[serde(default, deserialize_with = "super::nullable::field")]
    #[schema(value_type = Option<String>, max_length = 50)]
    pub platform: Option<Option<String>>,
    pub is_enabled: Option<bool>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct WebhookFields {
    pub name: String,
    pub path: String,
    pub agent_id: i64,
    pub secret: String,
    pub prompt_template: String,
    pub channel_id: Option<String>,
    pub platform: Option<String>,
    pub is_enabled: bool,
}

pub const DEFAULT_TEMPLATE: &str = "{{payload}}";

/// Paths under `/webhook/` that belong to the platform connectors (the WhatsApp
/// Cloud API's and Twilio's inbound webhooks): no user webhook can take them.
pub const RESERVED_PATHS: &[&str] = &["whatsapp", "sms"];

/// Whether `path` is one of [`RESERVED_PATHS`].
pub fn is_reserved_path(path: &str) -> bool {
    RESERVED_PATHS.contains(&path)
}

/// Lowercase; runs of anything but a-z and 0-9 become one `-`; trimmed of `-`.
pub fn slugify(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').chars().take(100).collect::<String>().trim_end_matches('-').to_string()
}

pub fn generate_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::Rng::fill(&mut rand::rng(), &mut bytes);
    hex::encode(bytes)
}

impl NewWebhook {
    pub fn into_fields(self) -> Result<WebhookFields, Invalid> {
        let f = WebhookFields {
            path: slugify(&self.name),
            name: self.name,
            agent_id: self.agent_id,
            secret: self.secret.unwrap_or_else(generate_secret),
            prompt_template: self.prompt_template.unwrap_or_else(|| DEFAULT_TEMPLATE.into()),
            channel_id: self.channel_id,
            platform: self.platform,
            is_enabled: self.is_enabled.unwrap_or(true),
        };
        f.validate()?;
        Ok(f)
    }
}

impl WebhookPatch {
    pub fn apply(self, current: &Webhook, path: &str) -> Result<WebhookFields, Invalid> {
        let f = WebhookFields {
            name: self.name.unwrap_or_else(|| current.name.clone()),
            path: path.to_string(),
            agent_id: self.agent_id.unwrap_or(current.agent_id),
            secret: self.secret.or_else(|| current.secret.clone()).unwrap_or_else(generate_secret),
            prompt_template: self.prompt_template.unwrap_or_else(|| current.prompt_template.clone()),
            channel_id: super::nullable::apply(self.channel_id, &current.channel_id),
            platform: super::nullable::apply(self.platform, &current.platform),
            is_enabled: self.is_enabled.unwrap_or(current.is_enabled),
        };
        f.validate()?;
        Ok(f)
    }
}

impl WebhookFields {
    pub fn validate(&self) -> Result<(), Invalid> {
        check_text("name", &self.name, 200)?;
        // The path is made from the name at creation and kept after that, but a
        // renamed webhook must still have a name its path could be made from.
        if self.path.is_empty() || slugify(&self.name).is_empty() {
            return Err(Invalid::new("name must contain at least one letter or digit (it becomes the URL path)"));
        }
        check_text("secret", &self.secret, 256)?;
        if self.secret.chars().count() < 16 || self.secret.chars().any(char::is_whitespace) {
            return Err(Invalid::new("secret must be at least 16 characters without spaces"));
        }
        check_text("promptTemplate", &self.prompt_template, super::limits::MAX_MESSAGE_CHARS)?;
        if let Some(c) = &self.channel_id {
            check_text("channelId", c, 200)?;
        }
        if let Some(p) = &self.platform {
            check_text("platform", p, 50)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_slugs_of_the_name() {
        assert_eq!(slugify("GitHub Issues"), "github-issues");
        assert_eq!(slugify("  --Hello,  World!!  "), "hello-world");
        assert_eq!(slugify("ünï"), "n");
        assert_eq!(slugify("!!!"), "");
        assert_eq!(generate_secret().len(), 64);
    }
}
