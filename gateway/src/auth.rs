//! Authentication, as the REST reference defines it: when `DASHBOARD_PASSWORD`
//! or `DASHBOARD_API_KEY` is set, every route except `/api/health` and
//! `/api/auth/*` needs either the `arvis-token` cookie (an HS256 JWT issued by
//! `POST /api/auth/login`, valid 7 days) or the API key in `X-API-Key` /
//! `Authorization: Bearer`. With neither set the API is open — and [`crate::run`]
//! refuses to serve an open API on anything but loopback.
//!
//! Secrets are compared in constant time (over their SHA-256 digests, so the
//! comparison does not leak the length either).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::http::header::{AUTHORIZATION, COOKIE};
use axum::middleware::Next;
use axum::response::{IntoResponse as _, Response};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::state::AppState;

pub const COOKIE_NAME: &str = "arvis-token";
/// Session lifetime: 7 days, as the reference says.
pub const SESSION_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
/// Failed logins allowed per client address within [`LOGIN_WINDOW`].
pub const LOGIN_MAX_FAILURES: usize = 10;
pub const LOGIN_WINDOW: Duration = Duration::from_secs(15 * 60);
/// Bound on the addresses the limiter remembers, so a spray of spoofed-looking
/// sources cannot grow it without limit.
const LOGIN_TRACKED_MAX: usize = 100_000;

#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    pub role: String,
    pub iat: u64,
    pub exp: u64,
}

pub struct Auth {
    password: Option<SecretString>,
    api_key: Option<SecretString>,
    encoding: EncodingKey,
    decoding: DecodingKey,
    pub cookie_secure: bool,
    failures: Mutex<HashMap<IpAddr, Vec<Instant>>>,
}

/// Constant-time equality of two secrets.
pub use arvis_shared::secret_eq;

fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

impl Auth {
    pub fn new(
        password: Option<SecretString>,
        api_key: Option<SecretString>,
        jwt_secret: &SecretString,
        cookie_secure: bool,
    ) -> anyhow::Result<Auth> {
        let secret = jwt_secret.expose_secret().as_bytes();
        Ok(Auth {
            password,
            api_key,
            encoding: EncodingKey::from_secret(secret).map_err(|e| anyhow::anyhow!("JWT_SECRET: {e}"))?,
            decoding: DecodingKey::from_secret(secret).map_err(|e| anyhow::anyhow!("JWT_SECRET: {e}"))?,
            cookie_secure,
            failures: Mutex::new(HashMap::new()),
        })
    }

    /// True when requests must authenticate.
    pub fn enabled(&self) -> bool {
        self.password.is_some() || self.api_key.is_some()
    }

    pub fn password_enabled(&self) -> bool {
        self.password.is_some()
    }

    pub fn check_password(&self, given: &str) -> bool {
        self.password.as_ref().is_some_and(|p| secret_eq(given, p.expose_secret()))
    }

    fn check_api_key(&self, given: &str) -> bool {
        self.api_key.as_ref().is_some_and(|k| secret_eq(given, k.expose_secret()))
    }

    pub fn issue_token(&self) -> Result<String, ApiError> {
        let iat = now_secs();
        let claims = Claims { role: "admin".into(), iat, exp: iat + SESSION_TTL.as_secs() };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding).map_err(ApiError::internal)
    }

    pub fn verify_token(&self, token: &str) -> bool {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp"]);
        validation.leeway = 0;
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation).is_ok_and(|d| d.claims.role == "admin")
    }

    /// Does this request carry a valid session cookie, API key or bearer token?
    pub fn authorized(&self, headers: &HeaderMap) -> bool {
        if let Some(key) = headers.get("x-api-key").and_then(|v| v.to_str().ok())
            && self.check_api_key(key)
        {
            return true;
        }
        if let Some(bearer) = headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            && (self.check_api_key(bearer.trim()) || self.verify_token(bearer.trim()))
        {
            return true;
        }
        session_cookie(headers).is_some_and(|t| self.verify_token(&t))
    }

    /// `Some(seconds to wait)` when this address has used up its failed logins.
    pub fn login_blocked(&self, ip: IpAddr) -> Option<u64> {
        let mut map = self.failures.lock().ok()?;
        let now = Instant::now();
        let entry = map.get_mut(&ip)?;
        entry.retain(|t| now.duration_since(*t) < LOGIN_WINDOW);
        if entry.len() >= LOGIN_MAX_FAILURES {
            let oldest = entry.first().copied()?;
            return Some((LOGIN_WINDOW.saturating_sub(now.duration_since(oldest))).as_secs().max(1));
        }
        None
    }

    pub fn record_login_failure(&self, ip: IpAddr) {
        let Ok(mut map) = self.failures.lock() else { return };
        let now = Instant::now();
        if map.len() >= LOGIN_TRACKED_MAX {
            map.retain(|_, v| v.last().is_some_and(|t| now.duration_since(*t) < LOGIN_WINDOW));
        }
        map.entry(ip).or_default().push(now);
    }
}

/// The value of the `arvis-token` cookie, if the request has one.
pub fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers.get_all(COOKIE).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).find_map(|pair| {
        let (name, value) = pair.trim().split_once('=')?;
        (name == COOKIE_NAME).then(|| value.to_string())
    })
}

/// Paths that never need credentials (`/metrics` too when `METRICS_PUBLIC=true`).
pub fn is_public(path: &str, metrics_public: bool) -> bool {
    matches!(path, "/api/health" | "/api/auth/login" | "/api/auth/logout" | "/healthz" | "/readyz")
        || path.starts_with("/webhook/")
        || (metrics_public && path == "/metrics")
}

/// Middleware: refuses unauthenticated requests with 401 when auth is enabled.
pub async fn require_auth(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if !state.auth.enabled()
        || is_public(request.uri().path(), state.deps.config.metrics_public)
        || state.auth.authorized(request.headers())
    {
        return next.run(request).await;
    }
    ApiError::unauthorized("authentication required: log in or send X-API-Key").into_response()
}
