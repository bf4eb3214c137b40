//! Login and logout. The form posts the password to `/login`, which opens a
//! session through the REST login's own function
//! ([`crate::routes::auth::start_session`]: the same throttle per client
//! address, the same `arvis-token` cookie, 7 days) and redirects to the page
//! the user came for. `/logout` ends the session through
//! [`crate::routes::auth::end_sessions`] — revoked in the database, so the same
//! cookie presented again is refused — and clears the cookie.
//!
//! Without `DASHBOARD_PASSWORD` there is nothing to log in to: with no
//! credentials at all the pages are open (loopback only) and `/login` sends
//! the browser to the overview; with only `DASHBOARD_API_KEY` set the page
//! says that the dashboard needs a password.
//!
//! `/login` is public, so the guard does not check its origin: the handler
//! refuses a cross-origin post itself (login CSRF would log a victim into the
//! attacker's session).

use std::net::SocketAddr;

use axum::Router;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::header::SET_COOKIE;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use maud::{DOCTYPE, Markup, html};
use serde::Deserialize;

use super::assets;
use super::form::Errors;
use super::layout::{HTMX_CONFIG, PageResult, html_response, see_other};
use crate::access::cross_origin;
use crate::extract::AppForm;
use crate::routes::auth::{end_sessions, start_session};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/login", get(form).post(submit)).route("/logout", post(logout))
}

#[derive(Debug, Default, Deserialize)]
pub struct Next {
    pub next: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    pub password: String,
    #[serde(default)]
    pub next: Option<String>,
}

/// Where to go after logging in: a path of ours, never another site
/// (`//evil.example` and `/\evil` are protocol-relative to a browser).
fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') && n.len() <= 2000 => n,
        _ => "/",
    }
}

async fn form(State(state): State<AppState>, Query(q): Query<Next>) -> PageResult {
    if !state.auth.enabled() {
        return Ok(see_other("/"));
    }
    Ok(html_response(StatusCode::OK, login_page(&state, q.next.as_deref(), &Errors::none())))
}

async fn submit(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    AppForm(body): AppForm<LoginForm>,
) -> PageResult {
    if cross_origin(&headers) {
        tracing::warn!("refused a cross-origin login form");
        return Ok(super::layout::error_page(StatusCode::FORBIDDEN, "cross-origin request refused"));
    }
    match start_session(&state, peer.ip(), &body.password).await {
        Ok(cookie) => {
            let mut response = see_other(safe_next(body.next.as_deref()));
            if let Ok(v) = HeaderValue::from_str(&cookie) {
                response.headers_mut().append(SET_COOKIE, v);
            }
            Ok(response)
        }
        Err(e) => {
            let errors = Errors::on("password", e.message.clone());
            let mut response = html_response(e.status, login_page(&state, body.next.as_deref(), &errors));
            if let Some(secs) = e.retry_after
                && let Ok(v) = HeaderValue::from_str(&secs.to_string())
            {
                response.headers_mut().insert(axum::http::header::RETRY_AFTER, v);
            }
            Ok(response)
        }
    }
}

async fn logout(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match end_sessions(&state, &headers).await {
        Ok(cookie) => {
            let mut response = see_other(if state.auth.password_enabled() { "/login" } else { "/" });
            if let Ok(v) = HeaderValue::from_str(&cookie) {
                response.headers_mut().append(SET_COOKIE, v);
            }
            response
        }
        Err(e) => super::layout::PageError(e).into_response(),
    }
}

fn login_page(state: &AppState, next: Option<&str>, errors: &Errors) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="htmx-config" content=(HTMX_CONFIG);
                title { "Log in · Arvis" }
                link rel="icon" href="data:,";
                link rel="stylesheet" href=(assets::url(&assets::STYLE));
            }
            body.login {
                main #main {
                    h1 { "Arvis" }
                    @if state.auth.password_enabled() {
                        form.card method="post" action="/login" {
                            input type="hidden" name="next" value=(safe_next(next));
                            label for="password" { "Password" }
                            input #password type="password" name="password" required autofocus
                                autocomplete="current-password"
                                aria-invalid=[errors.invalid("password")]
                                aria-describedby="password-error";
                            (errors.field("password"))
                            button type="submit" { "Log in" }
                        }
                    } @else {
                        p.error role="alert" {
                            "The dashboard needs a password: set DASHBOARD_PASSWORD on the gateway. "
                            "(DASHBOARD_API_KEY serves scripts; a browser cannot send it.)"
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_our_own_paths_are_followed_after_login() {
        assert_eq!(safe_next(Some("/agents/3")), "/agents/3");
        assert_eq!(safe_next(Some("//evil.example/x")), "/");
        assert_eq!(safe_next(Some("https://evil.example")), "/");
        assert_eq!(safe_next(Some("/\\evil.example")), "/");
        assert_eq!(safe_next(None), "/");
    }
}
