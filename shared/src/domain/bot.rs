//! Bot instances: a connector configuration with its agent assignments.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::connectors::{is_platform, platforms};
use super::{Invalid, check_text};

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChannelBinding {
    pub channel_id: String,
    pub agent_id: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Bot {
    pub id: i64,
    pub name: String,
    pub platform: String,
    /// The NAME of the environment variable holding the token, never the token.
    pub token: String,
    pub default_agent_id: Option<i64>,
    pub channel_bindings: Vec<ChannelBinding>,
    pub is_enabled: bool,
    /// `running` (a bridge holds it and is connected), `stopped` (disabled, or
    /// no bridge holds it) or `error` (see `lastError`).
    pub status: String,
    /// What went wrong last (connection refused, the token was refused…), never a token.
    pub last_error: Option<String>,
}

/// `POST /api/bots` body.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewBot {
    pub name: String,
    pub platform: String,
    /// Environment variable name, e.g. `DISCORD_BOT_TOKEN`.
    pub token: String,
    #[serde(default)]
    pub default_agent_id: Option<i64>,
    #[serde(default)]
    pub channel_bindings: Option<Vec<ChannelBinding>>,
    #[serde(default)]
    pub is_enabled: Option<bool>,
}

/// `PATCH /api/bots/{id}` body; `channelBindings` replaces the bot's bindings.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BotPatch {
    pub name: Option<String>,
    pub platform: Option<String>,
    pub token: Option<String>,
    /// `null` clears the default agent.
    #[serde(default, deserialize_with = "super::nullable::field")]
    #[schema(value_type = Option<i64>)]
    pub default_agent_id: Option<Option<i64>>,
    pub channel_bindings: Option<Vec<ChannelBinding>>,
    pub is_enabled: Option<bool>,
}

/// A complete, validated bot ready to be written.
#[derive(Debug, Clone, PartialEq)]
pub struct BotFields {
    pub name: String,
    pub platform: String,
    pub token: String,
    pub default_agent_id: Option<i64>,
    pub channel_bindings: Vec<ChannelBinding>,
    pub is_enabled: bool,
}

impl NewBot {
    pub fn into_fields(self) -> Result<BotFields, Invalid> {
        let f = BotFields {
            name: self.name,
            platform: self.platform,
            token: self.token,
            default_agent_id: self.default_agent_id,
            channel_bindings: self.channel_bindings.unwrap_or_default(),
            is_enabled: self.is_enabled.unwrap_or(true),
        };
        f.validate()?;
        Ok(f)
    }
}

impl BotPatch {
    pub fn apply(self, current: &Bot) -> Result<BotFields, Invalid> {
        let f = BotFields {
            name: self.name.unwrap_or_else(|| current.name.clone()),
            platform: self.platform.unwrap_or_else(|| current.platform.clone()),
            token: self.token.unwrap_or_else(|| current.token.clone()),
            default_agent_id: super::nullable::apply(self.default_agent_id, &current.default_agent_id),
            channel_bindings: self.channel_bindings.unwrap_or_else(|| current.channel_bindings.clone()),
            is_enabled: self.is_enabled.unwrap_or(current.is_enabled),
        };
        f.validate()?;
        Ok(f)
    }
}

/// `^[A-Z][A-Z0-9_]*$`, at most 128 characters: the name of a variable, not a secret.
pub fn check_env_name(field: &str, name: &str) -> Result<(), Invalid> {
    let mut bytes = name.bytes();
    let first_ok = bytes.next().is_some_and(|b| b.is_ascii_uppercase());
    if !first_ok || name.len() > 128 || !bytes.all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_') {
        return Err(Invalid::new(format!(
            "{field} must be the NAME of an environment variable (like DISCORD_BOT_TOKEN), never the secret itself"
        )));
    }
    Ok(())
}

impl BotFields {
    pub fn validate(&self) -> Result<(), Invalid> {
        check_text("name", &self.name, 200)?;
        if self.name.trim().is_empty() {
            return Err(Invalid::new("name must not be empty"));
        }
        if !is_platform(&self.platform) {
            return Err(Invalid::new(format!(
                "platform must be one of: {}",
                platforms().collect::<Vec<_>>().join(", ")
            )));
        }
        check_env_name("token", &self.token)?;
        if self.channel_bindings.len() > 500 {
            return Err(Invalid::new("channelBindings has more than 500 entries"));
        }
        let mut seen = BTreeSet::new();
        for b in &self.channel_bindings {
            check_text("channelBindings.channelId", &b.channel_id, 200)?;
            if b.channel_id.trim().is_empty() {
                return Err(Invalid::new("channelBindings.channelId must not be empty"));
            }
            if !seen.insert(b.channel_id.as_str()) {
                return Err(Invalid::new(format!("channelBindings lists channel {:?} twice", b.channel_id)));
            }
        }
        Ok(())
    }

    /// Every agent id the bot refers to.
    pub fn agent_ids(&self) -> Vec<i64> {
        let mut ids: BTreeSet<i64> = self.channel_bindings.iter().map(|b| b.agent_id).collect();
        ids.extend(self.default_agent_id);
        ids.into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_must_be_variable_names() {
        assert!(check_env_name("token", "DISCORD_BOT_TOKEN").is_ok());
        assert!(check_env_name("token", "A1_B").is_ok());
        for bad in ["", "discord", "1ABC", "MTA4.abc", "A-B", "A B"] {
            assert!(check_env_name("token", bad).is_err(), "{bad}");
        }
    }
}
