//! `POST /api/auth/login` and `POST /api/auth/logout` (reference: Authentication).
//!
//! Login records a session and sets its token as the `arvis-token` cookie;
//! logout ends that session (the token is refused from then on, everywhere)
//! and clears the cookie.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use axum::http::HeaderMap;
use axum::http::header::SET_COOKIE;
use axum::response::{AppendHeaders, IntoResponse};
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::Ok;
use crate::auth::{COOKIE_NAME, SESSION_TTL};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::AppJson;
use crate::state::AppState;

#[derive(Debug, Deserialize, ToSchema)]
pub struct Login {
    pub password: String,
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(login)).routes(routes!(logout))
}

/// Exchanges the dashboard password for a session cookie (`arvis-token`, 7 days).
/// Ten failed attempts from one address within 15 minutes answer 429 until the
/// window passes — counted across every gateway replica.
#[utoipa::path(post, path = "/api/auth/login", tag = "auth", security(()), request_body = Login,
    responses((status = 200, body = Ok, headers(("Set-Cookie" = String))),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 429, body = ErrorBody)))]
async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    AppJson(body): AppJson<Login>,
) -> ApiResult<impl IntoResponse> {
    let cookie = start_session(&state, peer.ip(), &body.password).await?;
    Ok((AppendHeaders([(SET_COOKIE, cookie)]), Ok::json()))
}

/// Checks the password (throttled per client address) and opens a session;
/// returns its `Set-Cookie` value. The REST login and the dashboard's login
/// form both come here.
pub async fn start_session(state: &AppState, ip: std::net::IpAddr, password: &str) -> ApiResult<String> {
    let auth = &state.auth;
    if !auth.password_enabled() {
        return Err(ApiError::bad_request("password login is not enabled (DASHBOARD_PASSWORD is not set)"));
    }
    if let Some(wait) = auth.login_blocked(ip).await? {
        return Err(ApiError::too_many("too many failed logins; try again later", wait));
    }
    if !auth.check_password(password) {
        auth.record_login_failure(ip).await?;
        tracing::warn!(client = %ip, "failed dashboard login");
        return Err(ApiError::unauthorized("invalid password"));
    }
    let token = auth.issue_token().await.map_err(ApiError::internal)?;
    let secure = if auth.cookie_secure { "; Secure" } else { "" };
    Ok(format!("{COOKIE_NAME}={token}; HttpOnly; SameSite=Lax; Path=/; Max-Age={}{secure}", SESSION_TTL.as_secs()))
}

/// Ends the session (its token is refused from now on, by every gateway and
/// the WebSocket bridge) and clears the cookie. Safe to call without a session.
#[utoipa::path(post, path = "/api/auth/logout", tag = "auth", security(()), responses((status = 200, body = Ok)))]
async fn logout(State(state): State<AppState>, headers: HeaderMap) -> ApiResult<impl IntoResponse> {
    let cookie = end_sessions(&state, &headers).await?;
    Ok((AppendHeaders([(SET_COOKIE, cookie)]), Ok::json()))
}

/// Ends the sessions the request presents (cookie and bearer); returns the
/// `Set-Cookie` value that clears the cookie (REST and dashboard logout).
pub async fn end_sessions(state: &AppState, headers: &HeaderMap) -> ApiResult<String> {
    let presented = arvis_shared::credentials::Presented::from_headers(headers);
    for token in [presented.cookie, presented.bearer].into_iter().flatten() {
        state.auth.end_session(&token).await?;
    }
    let secure = if state.auth.cookie_secure { "; Secure" } else { "" };
    Ok(format!("{COOKIE_NAME}=; HttpOnly; SameSite=Lax; Path=/; Max-Age=0{secure}"))
}
