//! The gateway's credentials, as the REST reference defines them: when
//! `DASHBOARD_PASSWORD` or `DASHBOARD_API_KEY` is set, every route except the
//! public ones ([`is_public`]) needs either the `arvis-token` session (cookie,
//! or the token as a bearer) or the API key in `X-API-Key` /
//! `Authorization: Bearer`. With neither set the API is open — and
//! [`crate::run`] refuses to serve an open API on anything but loopback.
//!
//! Checking is [`arvis_shared::credentials`] (the same rules as the bridge's);
//! this module adds what only the gateway has: the password, and the login
//! throttle (failures counted in the database, shared by every replica). The request guard that applies it is [`crate::access`].

use std::net::IpAddr;
use std::time::Duration;

use arvis_shared::clock::now_ms;
use arvis_shared::credentials::{Presented, Principal, SessionError, Sessions, Verifier};
use arvis_shared::db::{DbError, Store};
use arvis_shared::secret_eq;
use secrecy::{ExposeSecret as _, SecretString};

pub use arvis_shared::credentials::{COOKIE_NAME, SESSION_TTL};

/// Failed logins allowed per client address within [`LOGIN_WINDOW`].
pub const LOGIN_MAX_FAILURES: usize = 10;
pub const LOGIN_WINDOW: Duration = Duration::from_secs(15 * 60);

pub struct Auth {
    password: Option<SecretString>,
    verifier: Verifier,
    enabled: bool,
    pub cookie_secure: bool,
    /// Where failed logins are counted (shared by every replica).
    store: Store,
}

impl Auth {
    pub fn new(
        password: Option<SecretString>,
        api_key: Option<SecretString>,
        jwt_secret: &SecretString,
        cookie_secure: bool,
        store: Store,
    ) -> anyhow::Result<Auth> {
        let enabled = password.is_some() || api_key.is_some();
        let sessions = Sessions::new(jwt_secret, store.clone())?;
        Ok(Auth { password, verifier: Verifier::new(api_key, Some(sessions)), enabled, cookie_secure, store })
    }

    /// True when requests must authenticate.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    pub fn password_enabled(&self) -> bool {
        self.password.is_some()
    }

    pub fn check_password(&self, given: &str) -> bool {
        self.password.as_ref().is_some_and(|p| secret_eq(given, p.expose_secret()))
    }

    fn sessions(&self) -> Result<&Sessions, SessionError> {
        self.verifier.sessions().ok_or_else(|| SessionError::Token("sessions are not configured".into()))
    }

    /// A new session (login).
    pub async fn issue_token(&self) -> Result<String, SessionError> {
        self.sessions()?.issue().await
    }

    /// Ends the session a token names (logout).
    pub async fn end_session(&self, token: &str) -> Result<bool, DbError> {
        match self.verifier.sessions() {
            Some(s) => s.end(token).await,
            None => Ok(false),
        }
    }

    /// Who the request is, from its headers.
    pub async fn principal(&self, presented: &Presented) -> Result<Option<Principal>, DbError> {
        if presented.is_empty() {
            return Ok(None);
        }
        self.verifier.check(presented).await
    }

    /// `Some(seconds to wait)` when this address has used up its failed
    /// logins. Counted in the database, so every gateway replica sees the
    /// same failures.
    pub async fn login_blocked(&self, ip: IpAddr) -> Result<Option<u64>, DbError> {
        let now = now_ms();
        let window = LOGIN_WINDOW.as_millis() as i64;
        let seen = self.store.rate_window(&login_key(ip), now - window).await?;
        if seen.count < LOGIN_MAX_FAILURES as i64 {
            return Ok(None);
        }
        Ok(Some((seen.wait_ms(now, window) as u64).div_ceil(1000).max(1)))
    }

    pub async fn record_login_failure(&self, ip: IpAddr) -> Result<(), DbError> {
        let now = now_ms();
        self.store.rate_record(&login_key(ip), now).await?;
        self.store.rate_prune(now).await?;
        Ok(())
    }
}

fn login_key(ip: IpAddr) -> String {
    format!("login:{ip}")
}

/// Paths that never need credentials (`/metrics` too when `METRICS_PUBLIC=true`;
/// the dashboard's login form and static assets).
pub fn is_public(path: &str, metrics_public: bool) -> bool {
    matches!(path, "/api/health" | "/api/auth/login" | "/api/auth/logout" | "/healthz" | "/readyz")
        || path.starts_with("/webhook/")
        || crate::dashboard::is_public(path)
        || (metrics_public && path == "/metrics")
}
