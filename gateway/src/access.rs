//! The request guard: who may call what. Runs before every handler.
//!
//! 1. Public paths ([`crate::auth::is_public`]) pass.
//! 2. With credentials configured, a request without a valid API key or
//!    session is refused with 401.
//!    A dashboard page ([`crate::dashboard::is_page`]) is sent to `/login`
//!    instead (303), coming back to the page after.
//! 3. **Cross-origin writes are refused (403)** unless the API key
//!    authenticated them. A browser attaches the session cookie to any request
//!    to our address, whichever page made it, and `SameSite=Lax` does not help
//!    between two ports of one host (`localhost:8080` and `localhost:5100` are
//!    the same *site*). So a state-changing request (anything but GET, HEAD,
//!    OPTIONS) that a browser marks as not same-origin — `Sec-Fetch-Site`
//!    other than `same-origin`/`none`, or (browsers without it) an `Origin`
//!    whose host is neither the request's `Host` nor its `X-Forwarded-Host`
//!    — is refused. The same holds for an open API (no
//!    credentials configured, loopback only): a web page the user visits must
//!    not create agents on their machine. Scripts and servers send neither
//!    header and are unaffected; so is anything holding the API key.
//!
//! `/v1` (the OpenAI-compatible API) has its own branch, [`guard_v1`]: it
//! also takes the keys of `/api/keys` (`Bearer arvis_sk_…`, read from the
//! database on every request so a revocation holds at once on every replica),
//! hands the handler a [`Caller`], and answers every refusal in OpenAI's
//! error shape. (This is the one place `access` reaches into `routes`: the
//! `/v1` error type and key lookup live with the `/v1` routes.)

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse as _, Response};

use arvis_shared::credentials::{Presented, Principal};

use arvis_shared::domain::api_key::KEY_PREFIX;

use crate::auth::is_public;
use crate::dashboard;
use crate::error::ApiError;
use crate::routes::v1::error::V1Error;
use crate::routes::v1::{Caller, is_v1};
use crate::state::AppState;

/// Middleware: authentication, then the cross-origin rule.
pub async fn guard(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if is_public(request.uri().path(), state.deps.config.metrics_public) {
        return next.run(request).await;
    }
    if is_v1(request.uri().path()) {
        return guard_v1(state, request, next).await;
    }
    let auth = &state.auth;
    let presented = Presented::from_headers(request.headers());
    let principal = match auth.principal(&presented).await {
        Ok(p) => p,
        Err(e) => return ApiError::from(e).into_response(),
    };
    if auth.enabled() && principal.is_none() {
        if dashboard::is_page(request.uri().path()) {
            return to_login(&request);
        }
        return ApiError::unauthorized("authentication required: log in or send X-API-Key").into_response();
    }
    let by_key = principal == Some(Principal::ApiKey);
    if !by_key && changes_state(request.method()) && cross_origin(request.headers()) {
        tracing::warn!(path = %request.uri().path(), "refused a cross-origin write from a browser");
        if dashboard::is_page(request.uri().path()) {
            return dashboard::layout::error_page(axum::http::StatusCode::FORBIDDEN, CROSS_ORIGIN_REFUSED);
        }
        return ApiError::new(axum::http::StatusCode::FORBIDDEN, CROSS_ORIGIN_REFUSED).into_response();
    }
    next.run(request).await
}

const CROSS_ORIGIN_REFUSED: &str = "cross-origin request refused: use the dashboard's own origin, or send the API key";

/// A dashboard page without a session: to the login form, coming back after.
/// An htmx request (a fragment refresh after the session ended) is told to
/// load the login page as a whole, not to swap it into the fragment.
fn to_login(request: &Request) -> Response {
    let path_and_query = request.uri().path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let target = if request.method() == Method::GET && !request.headers().contains_key("hx-request") {
        format!("/login?next={}", url_encode(path_and_query))
    } else {
        "/login".to_string()
    };
    let mut response = if request.headers().contains_key("hx-request") {
        axum::http::StatusCode::UNAUTHORIZED.into_response()
    } else {
        dashboard::layout::see_other(&target)
    };
    if let Ok(v) = axum::http::HeaderValue::from_str(&target) {
        response.headers_mut().insert("hx-redirect", v);
    }
    response
}

/// Percent-encodes a query value (everything but unreserved characters).
fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The guard of `/v1`: an `arvis_sk_` bearer must be a usable key of
/// `/api/keys`; otherwise the API's own credentials apply (the dashboard key,
/// a session; nothing when the API is open). The cross-origin rule holds for
/// sessions carried by the cookie, as everywhere.
async fn guard_v1(state: AppState, mut request: Request, next: Next) -> Response {
    let presented = Presented::from_headers(request.headers());
    let caller = match presented.bearer.as_deref().filter(|b| b.starts_with(KEY_PREFIX)) {
        Some(key) => match crate::routes::keys::authenticate(&state.deps.store, key).await {
            Ok(Some(key)) => Caller::Key(key),
            Ok(None) => {
                return V1Error::invalid_key("Incorrect API key provided: the key is unknown, disabled or expired.")
                    .into_response();
            }
            Err(e) => return V1Error::from(e).into_response(),
        },
        None => {
            let principal = match state.auth.principal(&presented).await {
                Ok(p) => p,
                Err(e) => return V1Error::from(e).into_response(),
            };
            if state.auth.enabled() && principal.is_none() {
                return V1Error::invalid_key(
                    "You didn't provide a valid API key: send Authorization: Bearer arvis_sk_… (see POST /api/keys).",
                )
                .into_response();
            }
            let by_cookie = matches!(principal, Some(Principal::Session { via_cookie: true, .. }))
                || (principal.is_none() && !state.auth.enabled());
            if by_cookie && changes_state(request.method()) && cross_origin(request.headers()) {
                tracing::warn!(path = %request.uri().path(), "refused a cross-origin /v1 write from a browser");
                return V1Error::new(
                    axum::http::StatusCode::FORBIDDEN,
                    "invalid_request_error",
                    Some("cross_origin"),
                    "cross-origin request refused: send an API key",
                )
                .into_response();
            }
            Caller::Admin
        }
    };
    request.extensions_mut().insert(caller);
    next.run(request).await
}

fn changes_state(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Did a browser send this from a page of another origin?
pub fn cross_origin(headers: &HeaderMap) -> bool {
    let text = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = text(header::HeaderName::from_static("sec-fetch-site")) {
        return !matches!(site, "same-origin" | "none");
    }
    let Some(origin) = text(header::ORIGIN) else { return false };
    // `Origin: null` (sandboxed frames, some redirects) is another origin too.
    let Some(origin) = origin_host(origin) else { return true };
    // Behind a reverse proxy the browser's host may arrive as X-Forwarded-Host.
    let forwarded = text(header::HeaderName::from_static("x-forwarded-host"));
    ![text(header::HOST), forwarded].into_iter().flatten().any(|host| host.eq_ignore_ascii_case(origin))
}

/// `http://host:port` → `host:port`.
fn origin_host(origin: &str) -> Option<&str> {
    let rest = origin.strip_prefix("http://").or_else(|| origin.strip_prefix("https://"))?;
    Some(rest.trim_end_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn browsers_say_where_a_request_comes_from() {
        assert!(!cross_origin(&headers(&[])), "a script sends neither header");
        assert!(!cross_origin(&headers(&[("sec-fetch-site", "same-origin")])));
        assert!(!cross_origin(&headers(&[("sec-fetch-site", "none")])));
        assert!(cross_origin(&headers(&[("sec-fetch-site", "same-site")])), "another port of the same host");
        assert!(cross_origin(&headers(&[("sec-fetch-site", "cross-site")])));
        let same = [("origin", "http://localhost:5100"), ("host", "localhost:5100")];
        assert!(!cross_origin(&headers(&same)));
        assert!(cross_origin(&headers(&[("origin", "http://localhost:8080"), ("host", "localhost:5100")])));
        assert!(cross_origin(&headers(&[("origin", "null"), ("host", "localhost:5100")])));
        let proxied = [
            ("origin", "https://arvis.example.com"),
            ("host", "127.0.0.1:5100"),
            ("x-forwarded-host", "arvis.example.com"),
        ];
        assert!(!cross_origin(&headers(&proxied)), "a proxy forwarding the browser's host");
    }
}
