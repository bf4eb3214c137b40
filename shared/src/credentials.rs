//! Credentials, in one place for every listener (gateway, WebSocket bridge,
//! health endpoints): what a request presents, how an API key and a dashboard
//! session are checked, and how sessions are issued and ended.
//!
//! - An **API key** (`DASHBOARD_API_KEY` for the API, `WEB_API_KEY` for the
//!   bridge) comes in `X-API-Key` or `Authorization: Bearer`; compared in
//!   constant time over SHA-256 digests ([`crate::secret_eq`]).
//! - A **session** is the `arvis-token` cookie (or the same token as a bearer):
//!   an HS256 JWT `{role: "admin", sid, iat, exp}` signed with the JWT secret,
//!   valid 7 days — *and* a row in `dashboard_sessions` ([`Sessions`]). The row
//!   is what logout deletes, so a token presented after logout is refused at
//!   once, on every gateway replica and on the bridge. A token without `sid`
//!   (issued before sessions were recorded) is refused: log in again.
//!
//! What the caller does with the [`Principal`] (which routes are public, the
//! cross-origin rule for cookies) is its own business; the rules of *checking*
//! are the same everywhere.

use std::time::Duration;

use hyper::HeaderMap;
use hyper::header::{AUTHORIZATION, COOKIE};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Serialize};

use crate::clock::now_ms;
use crate::db::{DbError, Store};
use crate::secret_eq;

/// The session cookie's name (reference: Authentication).
pub const COOKIE_NAME: &str = "arvis-token";
/// Session lifetime: 7 days, as the reference says.
pub const SESSION_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// The credentials a request carries, as found in its headers.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Presented {
    /// `X-API-Key`.
    pub api_key: Option<String>,
    /// `Authorization: Bearer …` (an API key or a session token).
    pub bearer: Option<String>,
    /// The `arvis-token` cookie.
    pub cookie: Option<String>,
}

impl Presented {
    pub fn from_headers(headers: &HeaderMap) -> Presented {
        let text = |v: &hyper::header::HeaderValue| v.to_str().ok().map(str::trim).map(str::to_string);
        Presented {
            api_key: headers.get("x-api-key").and_then(text).filter(|k| !k.is_empty()),
            bearer: headers
                .get(AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty()),
            cookie: cookie_value(headers.get_all(COOKIE).iter().filter_map(|v| v.to_str().ok()), COOKIE_NAME),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.api_key.is_none() && self.bearer.is_none() && self.cookie.is_none()
    }
}

/// Who a request was found to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// It presented the API key.
    ApiKey,
    /// A dashboard session; `via_cookie` when the cookie carried it (a browser
    /// sends cookies on its own, which is why the gateway checks the origin of
    /// such requests).
    Session { id: String, via_cookie: bool },
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    role: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sid: Option<String>,
    iat: u64,
    exp: u64,
}

/// Issues, verifies and ends dashboard sessions.
pub struct Sessions {
    encoding: EncodingKey,
    decoding: DecodingKey,
    store: Store,
}

impl Sessions {
    /// `secret` is the JWT secret ([`crate::bootstrap::jwt_secret`]); an empty one is refused.
    pub fn new(secret: &SecretString, store: Store) -> anyhow::Result<Sessions> {
        crate::jwt_crypto::install();
        let bytes = secret.expose_secret().as_bytes();
        Ok(Sessions {
            encoding: EncodingKey::from_secret(bytes).map_err(|e| anyhow::anyhow!("JWT_SECRET: {e}"))?,
            decoding: DecodingKey::from_secret(bytes).map_err(|e| anyhow::anyhow!("JWT_SECRET: {e}"))?,
            store,
        })
    }

    /// A new session: its row, and the token that names it.
    pub async fn issue(&self) -> Result<String, SessionError> {
        let now = now_ms();
        let id = hex::encode(rand::random::<[u8; 16]>());
        let iat = (now / 1000) as u64;
        let claims = Claims { role: "admin".into(), sid: Some(id.clone()), iat, exp: iat + SESSION_TTL.as_secs() };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| SessionError::Token(e.to_string()))?;
        self.store.create_session(&id, now, now + SESSION_TTL.as_millis() as i64).await?;
        Ok(token)
    }

    /// The session id of a valid token: signed with our secret (HS256 only),
    /// not expired (no leeway), role `admin`, and its session not ended.
    pub async fn verify(&self, token: &str) -> Result<Option<String>, DbError> {
        let Some(id) = self.token_session(token) else { return Ok(None) };
        Ok(self.store.session_active(&id, now_ms()).await?.then_some(id))
    }

    /// Ends the session a token names (logout); a token that is not ours, or
    /// whose session already ended, changes nothing.
    pub async fn end(&self, token: &str) -> Result<bool, DbError> {
        match self.token_session(token) {
            Some(id) => self.store.delete_session(&id).await,
            None => Ok(false),
        }
    }

    fn token_session(&self, token: &str) -> Option<String> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp"]);
        validation.leeway = 0;
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation).ok()?;
        (data.claims.role == "admin").then_some(data.claims.sid).flatten()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("cannot sign the session token: {0}")]
    Token(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

/// Checks what a request presents against one listener's credentials.
pub struct Verifier {
    api_key: Option<SecretString>,
    sessions: Option<Sessions>,
}

impl Verifier {
    /// `api_key`: the key this listener accepts; `sessions`: when dashboard
    /// sessions are accepted too.
    pub fn new(api_key: Option<SecretString>, sessions: Option<Sessions>) -> Verifier {
        Verifier { api_key, sessions }
    }

    pub fn sessions(&self) -> Option<&Sessions> {
        self.sessions.as_ref()
    }

    /// True when `given` is the API key.
    pub fn is_api_key(&self, given: &str) -> bool {
        self.api_key.as_ref().is_some_and(|k| secret_eq(given, k.expose_secret()))
    }

    /// Who the request is, or `None` when nothing it presents is valid. The
    /// API key wins over a session (a script with both is a script).
    pub async fn check(&self, presented: &Presented) -> Result<Option<Principal>, DbError> {
        if presented.api_key.as_deref().is_some_and(|k| self.is_api_key(k))
            || presented.bearer.as_deref().is_some_and(|k| self.is_api_key(k))
        {
            return Ok(Some(Principal::ApiKey));
        }
        let Some(sessions) = &self.sessions else { return Ok(None) };
        if let Some(bearer) = &presented.bearer
            && let Some(id) = sessions.verify(bearer).await?
        {
            return Ok(Some(Principal::Session { id, via_cookie: false }));
        }
        if let Some(cookie) = &presented.cookie
            && let Some(id) = sessions.verify(cookie).await?
        {
            return Ok(Some(Principal::Session { id, via_cookie: true }));
        }
        Ok(None)
    }
}

/// The value of cookie `name` among `Cookie` header values (`a=1; b=2`).
pub fn cookie_value<'a>(header_values: impl IntoIterator<Item = &'a str>, name: &str) -> Option<String> {
    header_values.into_iter().flat_map(|v| v.split(';')).find_map(|pair| {
        let (n, value) = pair.trim().split_once('=')?;
        (n == name && !value.trim().is_empty()).then(|| value.trim().to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_cookie_among_others() {
        assert_eq!(cookie_value(["a=1; arvis-token=xyz", "b=2"], COOKIE_NAME).as_deref(), Some("xyz"));
        assert_eq!(cookie_value(["arvis-tokenx=1"], COOKIE_NAME), None);
        assert_eq!(cookie_value(["arvis-token="], COOKIE_NAME), None);
        assert!(secret_eq("k", "k") && !secret_eq("k", "kk"));
    }

    #[test]
    fn headers_are_read_once_for_every_listener() {
        let mut h = HeaderMap::new();
        h.insert("x-api-key", "k1".parse().unwrap());
        h.insert(AUTHORIZATION, "Bearer  t2 ".parse().unwrap());
        h.append(COOKIE, "x=1; arvis-token=t3".parse().unwrap());
        let p = Presented::from_headers(&h);
        assert_eq!(p, Presented { api_key: Some("k1".into()), bearer: Some("t2".into()), cookie: Some("t3".into()) });
        assert!(Presented::from_headers(&HeaderMap::new()).is_empty());
    }
}
