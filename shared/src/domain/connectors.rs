//! Chat platforms and the environment variables each connector needs.

use serde::Serialize;
use utoipa::ToSchema;

/// The platforms a bot can be on, with the variables their connector reads
/// (REST reference: Connectors). An empty list means "not configurable by
/// environment", which reports as not configured.
pub const CONNECTORS: &[(&str, &[&str])] = &[
    ("discord", &["DISCORD_BOT_TOKEN"]),
    ("telegram", &["TELEGRAM_BOT_TOKEN"]),
    ("slack", &["SLACK_BOT_TOKEN", "SLACK_APP_TOKEN"]),
    (
        "whatsapp",
        &["WHATSAPP_ACCESS_TOKEN", "WHATSAPP_PHONE_NUMBER_ID", "WHATSAPP_APP_SECRET", "WHATSAPP_VERIFY_TOKEN"],
    ),
    ("matrix", &["MATRIX_HOMESERVER_URL", "MATRIX_ACCESS_TOKEN", "MATRIX_USER_ID"]),
    ("sms", &["TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_PHONE_NUMBER"]),
    ("email", &[]),
];

/// Platform names, in the reference's order.
pub fn platforms() -> impl Iterator<Item = &'static str> {
    CONNECTORS.iter().map(|(p, _)| *p)
}

pub fn is_platform(name: &str) -> bool {
    platforms().any(|p| p == name)
}

/// `GET /api/connectors` entry. Only variable names, never values.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Connector {
    pub platform: String,
    /// Every listed variable is set (false when none are listed).
    pub configured: bool,
    pub vars: Vec<String>,
}
