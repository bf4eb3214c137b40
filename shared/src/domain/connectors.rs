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
    (
        "email",
        &[
            "EMAIL_IMAP_HOST",
            "EMAIL_IMAP_PORT",
            "EMAIL_SMTP_HOST",
            "EMAIL_SMTP_PORT",
            "EMAIL_USER",
            "EMAIL_PASSWORD",
            "EMAIL_FROM",
            "EMAIL_TLS",
        ],
    ),
];

/// Listed variables that have a default, so "configured" does not wait for
/// them (email's ports follow `EMAIL_TLS`, `EMAIL_FROM` defaults to
/// `EMAIL_USER`, `EMAIL_TLS` to `tls`).
pub const OPTIONAL_VARS: &[&str] = &["EMAIL_IMAP_PORT", "EMAIL_SMTP_PORT", "EMAIL_FROM", "EMAIL_TLS"];

/// Listed variables that are settings, not secrets (host names, ports, an
/// address): their values are read into `Config` and kept out of the secret
/// values that log lines are scrubbed of — a host name like `127.0.0.1` would
/// otherwise be blanked out of every log line.
pub const SETTING_VARS: &[&str] = &[
    "EMAIL_IMAP_HOST",
    "EMAIL_IMAP_PORT",
    "EMAIL_SMTP_HOST",
    "EMAIL_SMTP_PORT",
    "EMAIL_USER",
    "EMAIL_FROM",
    "EMAIL_TLS",
];

/// Whether a platform's connector has what it needs: every listed variable
/// that has no default is set (false when none are listed).
pub fn is_configured(vars: &[&str], is_set: impl Fn(&str) -> bool) -> bool {
    !vars.is_empty() && vars.iter().filter(|v| !OPTIONAL_VARS.contains(v)).all(|v| is_set(v))
}

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
    /// Every listed variable without a default is set (false when none are listed).
    pub configured: bool,
    pub vars: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_is_configured_by_its_required_variables_alone() {
        let email = CONNECTORS.iter().find(|(p, _)| *p == "email").map(|(_, v)| *v).unwrap_or_default();
        assert_eq!(email.len(), 8);
        let required = ["EMAIL_IMAP_HOST", "EMAIL_SMTP_HOST", "EMAIL_USER", "EMAIL_PASSWORD"];
        assert!(is_configured(email, |v| required.contains(&v)));
        assert!(!is_configured(email, |v| v != "EMAIL_PASSWORD" && required.contains(&v)));
        assert!(!is_configured(&[], |_| true), "nothing listed: not configurable by environment");
        assert!(!SETTING_VARS.contains(&"EMAIL_PASSWORD"), "the password is a secret");
    }
}
