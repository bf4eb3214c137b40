//! Dashboard sessions as other services see them: the `arvis-token` cookie the
//! gateway issues (an HS256 JWT `{role: "admin", iat, exp}` signed with
//! [`crate::bootstrap::jwt_secret`]) and constant-time secret comparison.
//!
//! The gateway keeps its own issuing code; this module only *verifies*, so a
//! service without axum (the WebSocket bridge) can accept the same session.
//! The rules match the gateway's: HS256 only, `exp` required, no leeway, and
//! the `admin` role.

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use secrecy::{ExposeSecret as _, SecretString};
use serde::Deserialize;

/// The session cookie's name.
pub const COOKIE_NAME: &str = "arvis-token";

#[derive(Deserialize)]
struct Claims {
    role: String,
}

pub use crate::secret_eq;

/// True when `token` is an unexpired session JWT signed with `secret`.
pub fn verify_session_token(secret: &SecretString, token: &str) -> bool {
    let Ok(key) = DecodingKey::from_secret(secret.expose_secret().as_bytes()) else {
        return false;
    };
    let mut validation = Validation::new(Algorithm::HS256);
    validation.set_required_spec_claims(&["exp"]);
    validation.leeway = 0;
    jsonwebtoken::decode::<Claims>(token, &key, &validation).is_ok_and(|d| d.claims.role == "admin")
}

/// The value of cookie `name` among `Cookie` header values (`a=1; b=2`).
pub fn cookie_value<'a>(header_values: impl IntoIterator<Item = &'a str>, name: &str) -> Option<String> {
    header_values.into_iter().flat_map(|v| v.split(';')).find_map(|pair| {
        let (n, value) = pair.trim().split_once('=')?;
        (n == name).then(|| value.trim().to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header};

    fn token(secret: &str, role: &str, exp_offset: i64) -> String {
        let now = crate::clock::now_ms() / 1000;
        let claims = serde_json::json!({"role": role, "iat": now, "exp": now + exp_offset});
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(secret.as_bytes()).unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn accepts_only_valid_admin_tokens_signed_with_the_secret() {
        let secret = SecretString::from("s3cret-s3cret");
        assert!(verify_session_token(&secret, &token("s3cret-s3cret", "admin", 3600)));
        assert!(!verify_session_token(&secret, &token("other", "admin", 3600)));
        assert!(!verify_session_token(&secret, &token("s3cret-s3cret", "user", 3600)));
        assert!(!verify_session_token(&secret, &token("s3cret-s3cret", "admin", -10)));
        assert!(!verify_session_token(&secret, "not.a.jwt"));
    }

    #[test]
    fn finds_the_cookie_among_others() {
        assert_eq!(cookie_value(["a=1; arvis-token=xyz", "b=2"], COOKIE_NAME).as_deref(), Some("xyz"));
        assert_eq!(cookie_value(["arvis-tokenx=1"], COOKIE_NAME), None);
        assert!(secret_eq("k", "k") && !secret_eq("k", "kk"));
    }
}
