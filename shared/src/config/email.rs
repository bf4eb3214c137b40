//! The email connector's settings (issue #22): where its IMAP and SMTP
//! servers are, whose mailbox it reads, what it sends as, and how it speaks
//! TLS. Every field comes from an `EMAIL_*` variable; the password is not
//! here: it is the bot's `token` variable (`EMAIL_PASSWORD` by default),
//! read as a secret when the connector starts.
//!
//! Ports default by TLS mode, the ports the IANA assigned to each: implicit
//! TLS 993 (IMAPS) and 465 (submissions, RFC 8314); STARTTLS 143 (IMAP) and
//! 587 (submission, RFC 6409); `none` the same plain ports as STARTTLS.

use super::{ConfigError, invalid, parse_or};

/// How the connector secures its IMAP and SMTP connections (`EMAIL_TLS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmailTls {
    /// TLS from the first byte (IMAPS 993, SMTPS 465). The default.
    Tls,
    /// A plain connection upgraded with STARTTLS before login; refused when
    /// the server does not offer it (no silent fallback to plain text).
    StartTls,
    /// No TLS at all: loopback tests and trusted local relays only.
    None,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EmailConfig {
    /// `EMAIL_IMAP_HOST`: the IMAP server (required for the connector).
    pub imap_host: Option<String>,
    /// `EMAIL_IMAP_PORT` (default 993 with `tls`, else 143).
    pub imap_port: u16,
    /// `EMAIL_SMTP_HOST`: the SMTP submission server (required for the connector).
    pub smtp_host: Option<String>,
    /// `EMAIL_SMTP_PORT` (default 465 with `tls`, else 587).
    pub smtp_port: u16,
    /// `EMAIL_USER`: the login name on both servers (required for the connector).
    pub user: Option<String>,
    /// `EMAIL_FROM`: the `From` of replies, `addr@host` or `Name <addr@host>`
    /// (default: `EMAIL_USER`, when that is an address).
    pub from: Option<String>,
    /// `EMAIL_TLS`: `tls` (default), `starttls` or `none`.
    pub tls: EmailTls,
}

impl EmailConfig {
    pub(super) fn from_lookup(get: &impl Fn(&str) -> Option<String>) -> Result<EmailConfig, ConfigError> {
        let tls = match get("EMAIL_TLS").map(|v| v.trim().to_ascii_lowercase()).as_deref() {
            None | Some("tls") => EmailTls::Tls,
            Some("starttls") => EmailTls::StartTls,
            Some("none") => EmailTls::None,
            Some(other) => return Err(invalid("EMAIL_TLS", format!("expected tls, starttls or none, got {other:?}"))),
        };
        let (imap_default, smtp_default) = match tls {
            EmailTls::Tls => (993, 465),
            EmailTls::StartTls | EmailTls::None => (143, 587),
        };
        let port = |var: &str, default: u16| {
            parse_or(get, var, default)
                .and_then(|p| if p == 0 { Err(invalid(var, "must be a port between 1 and 65535")) } else { Ok(p) })
        };
        let text = |var: &str| get(var).map(|v| v.trim().to_string());
        Ok(EmailConfig {
            imap_host: text("EMAIL_IMAP_HOST"),
            imap_port: port("EMAIL_IMAP_PORT", imap_default)?,
            smtp_host: text("EMAIL_SMTP_HOST"),
            smtp_port: port("EMAIL_SMTP_PORT", smtp_default)?,
            user: text("EMAIL_USER"),
            from: text("EMAIL_FROM"),
            tls,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn email(vars: &[(&str, &str)]) -> Result<EmailConfig, ConfigError> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        EmailConfig::from_lookup(&|k: &str| map.get(k).cloned())
    }

    #[test]
    fn ports_follow_the_tls_mode_unless_set() {
        let c = email(&[]).unwrap();
        assert_eq!((c.tls, c.imap_port, c.smtp_port), (EmailTls::Tls, 993, 465));
        let c = email(&[("EMAIL_TLS", "STARTTLS")]).unwrap();
        assert_eq!((c.tls, c.imap_port, c.smtp_port), (EmailTls::StartTls, 143, 587));
        let c = email(&[("EMAIL_TLS", "none"), ("EMAIL_IMAP_PORT", "1143"), ("EMAIL_SMTP_PORT", "2525")]).unwrap();
        assert_eq!((c.tls, c.imap_port, c.smtp_port), (EmailTls::None, 1143, 2525));
    }

    #[test]
    fn a_bad_value_names_its_variable() {
        let err = email(&[("EMAIL_TLS", "ssl3")]).unwrap_err().to_string();
        assert!(err.starts_with("EMAIL_TLS:"), "{err}");
        let err = email(&[("EMAIL_IMAP_PORT", "0")]).unwrap_err().to_string();
        assert!(err.starts_with("EMAIL_IMAP_PORT:"), "{err}");
        let err = email(&[("EMAIL_SMTP_PORT", "70000")]).unwrap_err().to_string();
        assert!(err.starts_with("EMAIL_SMTP_PORT:"), "{err}");
    }
}
