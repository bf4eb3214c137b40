//! The gateway: the REST API on `GATEWAY_ADDR` (default 127.0.0.1:5100).
//!
//! Layout:
//! - [`run`]: serve until the shutdown token fires, then drain.
//! - [`dashboard`]: the web UI at `/` (server-rendered pages over the same
//!   store and route functions as the API).
//! - [`build`]: the router and its OpenAPI document, from `routes/*`.
//! - `auth`: credentials (password, API key, sessions) and the login limiter;
//!   `access`: the guard every request passes (authentication, cross-origin
//!   writes); `error`: the `{"error": …}` type; `extract`: extractors that
//!   reject with it.
//! - `routes/v1/`: the OpenAI-compatible API (`/v1/models`,
//!   `/v1/chat/completions`), with its own error type in OpenAI's shape;
//!   `routes/keys.rs`: its API keys.
//! - `routes/webhook_in.rs`: user webhooks (`/webhook/{path}`);
//!   `routes/platform_in.rs`: the WhatsApp and Twilio webhooks, taken in for
//!   their bots through `arvis_shared::bot_inbound` like the bridge's connectors.
//!
//! A request's path: router → access guard → extractor → handler → a `shared`
//! service (the chat intake) or `Store` method → bus signal after commit →
//! JSON response.
//!
//! Modules depend downward only: routes → access → state → auth → shared
//! (one exception: `access` uses the `/v1` error type and key lookup, which
//! live with the `/v1` routes).

pub mod access;
pub mod auth;
pub mod dashboard;
pub mod error;
pub mod extract;
pub mod routes;
pub mod state;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse as _, Response};
use axum::serve::ListenerExt as _;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;

use arvis_shared::{Deps, ServiceFuture};

use crate::auth::Auth;
use crate::error::ApiError;
use crate::state::AppState;

/// Request bodies above this are refused with 413.
pub const BODY_LIMIT: usize = 1024 * 1024;
/// How long in-flight requests may take to finish after shutdown begins.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(20);

/// Builds the state (auth keys) from the dependencies. Refuses an open API on a
/// non-loopback address.
pub fn state(deps: Deps, listen: SocketAddr) -> anyhow::Result<AppState> {
    let config = &deps.config;
    if !config.api_auth_configured() && !listen.ip().is_loopback() {
        anyhow::bail!(
            "refusing to serve the API on {listen} without authentication: set DASHBOARD_PASSWORD or \
             DASHBOARD_API_KEY, or bind GATEWAY_ADDR to 127.0.0.1"
        );
    }
    let jwt = arvis_shared::bootstrap::jwt_secret(config).context("loading the JWT secret")?;
    let auth = Auth::new(
        config.dashboard_password.clone(),
        config.dashboard_api_key.clone(),
        &jwt,
        config.cookie_secure,
        deps.store.clone(),
    )?;
    Ok(AppState {
        deps,
        auth: Arc::new(auth),
        started: Instant::now(),
        openapi: Default::default(),
        agents_json: Default::default(),
        health: Default::default(),
    })
}

/// The API's routes as documented routes, before state is attached.
pub fn api_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(routes::openapi::ApiDoc::openapi())
        .merge(routes::health::router())
        .merge(routes::auth::router())
        .merge(routes::agents::router())
        .merge(routes::accounts::router())
        .merge(routes::bots::router())
        .merge(routes::sessions::router())
        .merge(routes::memory::router())
        .merge(routes::queue::router())
        .merge(routes::skills::router())
        .merge(routes::workflows::router())
        .merge(routes::webhooks::router())
        .merge(routes::mcp_servers::router())
        .merge(routes::connectors::router())
        .merge(routes::deliveries::router())
        .merge(routes::usage::router())
        .merge(routes::logs::router())
        .merge(routes::settings::router())
        .merge(routes::chat::router())
        .merge(routes::keys::router())
        .merge(routes::v1::router())
        .merge(routes::openapi::router())
        .merge(routes::webhook_in::router())
        .merge(routes::platform_in::router())
        .merge(routes::ops::router())
}

/// The OpenAPI document alone (tests, tooling).
pub fn openapi() -> utoipa::openapi::OpenApi {
    api_routes().split_for_parts().1
}

/// The complete router with middleware.
pub fn build(state: AppState) -> Router {
    let (router, doc) = api_routes().split_for_parts();
    if let Ok(json) = serde_json::to_string(&doc) {
        let _ = state.openapi.set(json);
    }
    router
        .merge(dashboard::router())
        .fallback(|uri: axum::http::Uri| async move {
            if routes::v1::is_v1(uri.path()) {
                return routes::v1::error::V1Error::not_found(format!("no such route: {}", uri.path())).into_response();
            }
            // A browser on a mistyped page URL gets a page, scripts the API's JSON.
            if dashboard::is_page(uri.path()) {
                return dashboard::layout::error_page(StatusCode::NOT_FOUND, "There is no such page.");
            }
            ApiError::not_found("no such route").into_response()
        })
        .method_not_allowed_fallback(|uri: axum::http::Uri| async move {
            if routes::v1::is_v1(uri.path()) {
                return routes::v1::error::V1Error::new(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "invalid_request_error",
                    None,
                    "method not allowed",
                )
                .into_response();
            }
            ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method not allowed").into_response()
        })
        .layer(axum::middleware::from_fn_with_state(state.clone(), access::guard))
        .layer(axum::middleware::from_fn(record_http_metrics))
        .layer(axum::middleware::map_response(security_headers))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}

/// Counts requests by matched route, method and status, with latency.
async fn record_http_metrics(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let method = request.method().to_string();
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("arvis_http_requests_total", "route" => route.clone(), "method" => method.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("arvis_http_request_duration_seconds", "route" => route, "method" => method)
        .record(started.elapsed().as_secs_f64());
    response
}

/// The Content-Security-Policy of every response (the dashboard's pages
/// above all): scripts only from our own origin — no inline script, no
/// `eval` —, styles likewise (no `style=` attributes), no plugins, no framing,
/// forms and fetches to ourselves only.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// Headers on every response. `no-store` unless the handler chose a cache
/// policy itself (the dashboard's content-hashed assets are immutable).
async fn security_headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// Serves the API on `listener` until `shutdown` fires.
///
/// Shutdown phases:
/// 1. stop accepting connections;
/// 2. let in-flight requests finish, for at most `DRAIN_TIMEOUT`;
/// 3. return (the caller closes the database and the bus).
///
/// Boxed and never inlined, like every service entry point (see
/// [`arvis_shared::ServiceFuture`]): the caller polls it through one call and
/// does not compile the service's generic code a second time.
#[inline(never)]
pub fn run(deps: Deps, listener: TcpListener, shutdown: CancellationToken) -> ServiceFuture<'static> {
    Box::pin(run_service(deps, listener, shutdown))
}

async fn run_service(deps: Deps, listener: TcpListener, shutdown: CancellationToken) -> anyhow::Result<()> {
    let addr = listener.local_addr().context("reading the listener address")?;
    arvis_shared::bootstrap::prepare(&deps.store, &deps.config).await?;
    arvis_shared::metrics::install();
    let tasks = deps.tasks.clone();
    let app = build(state(deps, addr)?);
    tracing::info!(%addr, "gateway listening");
    let drain = shutdown.clone();
    // NODELAY: a response is headers and body in separate small writes, and
    // without it the second waits for the client's delayed ACK (~40 ms).
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let server = axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(async move { drain.cancelled().await });
    let server = tasks.spawn(async move { server.await });
    shutdown.cancelled().await;
    match tokio::time::timeout(DRAIN_TIMEOUT, server).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => return Err(e).context("serving HTTP"),
        Ok(Err(e)) => return Err(e).context("gateway server task"),
        Err(_) => tracing::warn!("gateway: in-flight requests did not finish within the drain timeout"),
    }
    tracing::info!("gateway stopped");
    Ok(())
}
