//! Bot instances: a connector configuration with its agent assignments.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::connectors::{is_platform, platforms};
use super::{Invalid, check_text};

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChannelBinding {
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = "[^\\t-\\r \\u0085\\u00A0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000]"
    )]
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
    /// Platform-specific settings (absent when none are set).
    pub settings: Option<BotSettings>,
}

/// Optional per-bot settings: the NAMES of the variables a platform needs
/// besides the bot's `token`, for a second bot of the same platform. Each is
/// absent by default, meaning the platform's standard variable.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BotSettings {
    /// Slack only: the NAME of the environment variable holding the app-level token
    /// (`xapp-…`, Socket Mode); `SLACK_APP_TOKEN` when absent. Never the token itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^[A-Z][A-Z0-9_]{0,127}$")]
    pub app_token: Option<String>,
    /// Matrix only: the NAME of the environment variable holding the homeserver's
    /// base URL; `MATRIX_HOMESERVER_URL` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^[A-Z][A-Z0-9_]{0,127}$")]
    pub homeserver_url: Option<String>,
    /// Matrix only: the NAME of the environment variable holding the bot's user id
    /// (`@bot:example.org`, checked against `whoami`); `MATRIX_USER_ID` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^[A-Z][A-Z0-9_]{0,127}$")]
    pub user_id: Option<String>,
    /// WhatsApp only: the variable holding the phone-number id (the sender, and the
    /// `metadata.phone_number_id` inbound messages are matched by); `WHATSAPP_PHONE_NUMBER_ID` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^[A-Z][A-Z0-9_]{0,127}$")]
    pub phone_number_id: Option<String>,
    /// WhatsApp only: the variable holding the Meta app secret that signs webhooks
    /// (`X-Hub-Signature-256`); `WHATSAPP_APP_SECRET` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^[A-Z][A-Z0-9_]{0,127}$")]
    pub app_secret: Option<String>,
    /// WhatsApp only: the variable holding the webhook verify token (`hub.verify_token`);
    /// `WHATSAPP_VERIFY_TOKEN` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^[A-Z][A-Z0-9_]{0,127}$")]
    pub verify_token: Option<String>,
    /// SMS only: the variable holding the Twilio account SID; `TWILIO_ACCOUNT_SID` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^[A-Z][A-Z0-9_]{0,127}$")]
    pub account_sid: Option<String>,
    /// SMS only: the variable holding the bot's Twilio number (E.164, the `From` of
    /// replies and the `To` inbound messages are matched by); `TWILIO_PHONE_NUMBER` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^[A-Z][A-Z0-9_]{0,127}$")]
    pub phone_number: Option<String>,
}

impl BotSettings {
    fn is_empty(&self) -> bool {
        self.named().all(|(_, _, v)| v.is_none())
    }

    /// Every setting as (JSON name, the platform it belongs to, value).
    fn named(&self) -> impl Iterator<Item = (&'static str, &'static str, Option<&str>)> {
        [
            ("appToken", "slack", self.app_token.as_deref()),
            ("homeserverUrl", "matrix", self.homeserver_url.as_deref()),
            ("userId", "matrix", self.user_id.as_deref()),
            ("phoneNumberId", "whatsapp", self.phone_number_id.as_deref()),
            ("appSecret", "whatsapp", self.app_secret.as_deref()),
            ("verifyToken", "whatsapp", self.verify_token.as_deref()),
            ("accountSid", "sms", self.account_sid.as_deref()),
            ("phoneNumber", "sms", self.phone_number.as_deref()),
        ]
        .into_iter()
    }
}

/// The variables a WhatsApp bot reads besides its `token` (the access token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WhatsAppVars {
    pub phone_number_id: String,
    pub app_secret: String,
    pub verify_token: String,
}

/// The variables an SMS (Twilio) bot reads besides its `token` (the auth token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmsVars {
    pub account_sid: String,
    pub phone_number: String,
}

impl WhatsAppVars {
    pub fn of(settings: Option<&BotSettings>) -> WhatsAppVars {
        let pick = |f: fn(&BotSettings) -> Option<&String>, default: &str| {
            settings.and_then(f).cloned().unwrap_or_else(|| default.to_string())
        };
        WhatsAppVars {
            phone_number_id: pick(|s| s.phone_number_id.as_ref(), "WHATSAPP_PHONE_NUMBER_ID"),
            app_secret: pick(|s| s.app_secret.as_ref(), "WHATSAPP_APP_SECRET"),
            verify_token: pick(|s| s.verify_token.as_ref(), "WHATSAPP_VERIFY_TOKEN"),
        }
    }
}

impl SmsVars {
    pub fn of(settings: Option<&BotSettings>) -> SmsVars {
        let pick = |f: fn(&BotSettings) -> Option<&String>, default: &str| {
            settings.and_then(f).cloned().unwrap_or_else(|| default.to_string())
        };
        SmsVars {
            account_sid: pick(|s| s.account_sid.as_ref(), "TWILIO_ACCOUNT_SID"),
            phone_number: pick(|s| s.phone_number.as_ref(), "TWILIO_PHONE_NUMBER"),
        }
    }
}

/// `POST /api/bots` body.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewBot {
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = "[^\\t-\\r \\u0085\\u00A0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000]"
    )]
    pub name: String,
    #[schema(value_type = super::schema::BotPlatform)]
    pub platform: String,
    /// Environment variable name, e.g. `DISCORD_BOT_TOKEN`.
    #[schema(pattern = "^[A-Z][A-Z0-9_]{0,127}$")]
    pub token: String,
    #[serde(default)]
    pub default_agent_id: Option<i64>,
    #[serde(default)]
    #[schema(max_items = 500)]
    pub channel_bindings: Option<Vec<ChannelBinding>>,
    #[serde(default)]
    pub is_enabled: Option<bool>,
    /// Platform-specific settings, e.g. `{"appToken": "SLACK_APP_TOKEN_2"}` for Slack.
    #[serde(default)]
    pub settings: Option<BotSettings>,
}

/// `PATCH /api/bots/{id}` body; `channelBindings` replaces the bot's bindings.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BotPatch {
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = "[^\\t-\\r \\u0085\\u00A0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000]"
    )]
    pub name: Option<String>,
    #[schema(value_type = Option<super::schema::BotPlatform>)]
    pub platform: Option<String>,
    #[schema(pattern = "^[A-Z][A-Z0-9_]{0,127}$")]
    pub token: Option<String>,
    /// `null` clears the default agent.
    #[serde(default, deserialize_with = "super::nullable::field")]
    #[schema(value_type = Option<i64>)]
    pub default_agent_id: Option<Option<i64>>,
    #[schema(max_items = 500)]
    pub channel_bindings: Option<Vec<ChannelBinding>>,
    pub is_enabled: Option<bool>,
    /// Replaces the bot's settings; `null` clears them.
    #[serde(default, deserialize_with = "super::nullable::field")]
    #[schema(value_type = Option<BotSettings>)]
    pub settings: Option<Option<BotSettings>>,
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
    /// `None` when no setting is set (an empty object is stored as none).
    pub settings: Option<BotSettings>,
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
            settings: self.settings.filter(|s| !s.is_empty()),
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
            settings: super::nullable::apply(self.settings, &current.settings).filter(|s| !s.is_empty()),
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
        if let Some(settings) = &self.settings {
            for (name, platform, value) in settings.named() {
                let Some(value) = value else { continue };
                if self.platform != platform {
                    return Err(Invalid::new(match name {
                        "appToken" => "settings.appToken is a Slack setting (the app-level token's variable)".into(),
                        _ => format!("settings.{name} is a setting of {platform} bots only"),
                    }));
                }
                check_env_name(&format!("settings.{name}"), value)?;
            }
        }
        Ok(())
    }

    /// The variables a Matrix bot reads its homeserver URL and user id from
    /// (`MATRIX_HOMESERVER_URL`, `MATRIX_USER_ID` by default).
    pub fn matrix_vars(settings: Option<&BotSettings>) -> (&str, &str) {
        (
            settings.and_then(|s| s.homeserver_url.as_deref()).unwrap_or("MATRIX_HOMESERVER_URL"),
            settings.and_then(|s| s.user_id.as_deref()).unwrap_or("MATRIX_USER_ID"),
        )
    }

    /// The variable holding a Slack bot's app-level token (`SLACK_APP_TOKEN` by default).
    pub fn slack_app_token_var(settings: Option<&BotSettings>) -> &str {
        settings.and_then(|s| s.app_token.as_deref()).unwrap_or("SLACK_APP_TOKEN")
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

    #[test]
    fn the_app_token_setting_is_a_slack_variable_name() {
        let bot = |platform: &str, app: &str| BotFields {
            name: "b".into(),
            platform: platform.into(),
            token: "SLACK_BOT_TOKEN".into(),
            default_agent_id: None,
            channel_bindings: Vec::new(),
            is_enabled: true,
            settings: Some(BotSettings { app_token: Some(app.into()), ..Default::default() }),
        };
        assert!(bot("slack", "SLACK_APP_TOKEN_2").validate().is_ok());
        assert!(bot("slack", "xapp-1-secret").validate().is_err(), "a token, not a name");
        assert!(bot("discord", "SLACK_APP_TOKEN_2").validate().is_err(), "a Slack setting only");
    }

    #[test]
    fn the_matrix_settings_are_matrix_variable_names() {
        let bot = |platform: &str, url: &str| BotFields {
            name: "b".into(),
            platform: platform.into(),
            token: "MATRIX_ACCESS_TOKEN_2".into(),
            default_agent_id: None,
            channel_bindings: Vec::new(),
            is_enabled: true,
            settings: Some(BotSettings {
                homeserver_url: Some(url.into()),
                user_id: Some("MATRIX_USER_ID_2".into()),
                ..Default::default()
            }),
        };
        assert!(bot("matrix", "MATRIX_HOMESERVER_URL_2").validate().is_ok());
        assert!(bot("matrix", "https://matrix.example.org").validate().is_err(), "a URL, not a name");
        assert!(bot("slack", "MATRIX_HOMESERVER_URL_2").validate().is_err(), "a Matrix setting only");
        let plain = bot("matrix", "X");
        assert_eq!(BotFields::matrix_vars(None), ("MATRIX_HOMESERVER_URL", "MATRIX_USER_ID"));
        assert_eq!(BotFields::matrix_vars(plain.settings.as_ref()), ("X", "MATRIX_USER_ID_2"));
    }

    #[test]
    fn whatsapp_and_sms_settings_name_variables_of_their_platform() {
        let bot = |platform: &str, settings: BotSettings| BotFields {
            name: "b".into(),
            platform: platform.into(),
            token: "T".into(),
            default_agent_id: None,
            channel_bindings: Vec::new(),
            is_enabled: true,
            settings: Some(settings),
        };
        let wa = BotSettings { phone_number_id: Some("WHATSAPP_PHONE_NUMBER_ID_2".into()), ..Default::default() };
        assert!(bot("whatsapp", wa.clone()).validate().is_ok());
        assert!(bot("sms", wa.clone()).validate().is_err(), "a WhatsApp setting only");
        let vars = WhatsAppVars::of(Some(&wa));
        assert_eq!(vars.phone_number_id, "WHATSAPP_PHONE_NUMBER_ID_2");
        assert_eq!(vars.app_secret, "WHATSAPP_APP_SECRET");
        let sms = BotSettings { phone_number: Some("+15550001".into()), ..Default::default() };
        assert!(bot("sms", sms).validate().is_err(), "a number, not a variable name");
        let sms = BotSettings { account_sid: Some("TWILIO_ACCOUNT_SID_2".into()), ..Default::default() };
        assert!(bot("sms", sms.clone()).validate().is_ok());
        assert_eq!(SmsVars::of(Some(&sms)).phone_number, "TWILIO_PHONE_NUMBER");
        assert_eq!(SmsVars::of(None).account_sid, "TWILIO_ACCOUNT_SID");
    }
}
