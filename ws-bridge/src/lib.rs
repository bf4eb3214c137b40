//! The WebSocket bridge: live chat on `WS_BRIDGE_ADDR` (README, "WebSocket chat").
//!
//! Layout:
//! - [`run`]: serve until the shutdown token fires, then close every socket.
//! - `session`: one connection — reader, writer task, limits, commands.
//! - `fanout`: the bridge's one bus subscription and the channel → sockets map.
//! - `protocol`: the JSON frames.
//! - `connectors`: the chat-platform bots (Telegram, Discord, Slack, Matrix; WhatsApp and SMS, whose
//!   inbound webhooks the gateway takes in), each held by exactly one
//!   bridge through a lease in the database, replies sent through a durable
//!   outbox (see its module docs).
//!
//! A message's path: frame → the chat intake (`arvis_shared::intake`: checks,
//! routing chain, user message and job in one transaction) → `ack` →
//! `JobReady` on the bus. A worker (any
//! process) answers and publishes reply events on `arvis.reply.web.<channel>`;
//! every bridge receives them on its one subscription and hands them to its own
//! sockets on that channel. The database holds every message, so a client that
//! missed events (disconnect, slow consumer, bus outage) `resume`s from it.
//!
//! Authentication (only when `WEB_API_KEY` is set): the upgrade request carries
//! the key (`X-API-Key` or `Authorization: Bearer`) or the dashboard session
//! cookie, or the first frame is `{"type":"auth","apiKey":…}` within 10 s;
//! otherwise the client gets an error frame and close code 4001.

mod connectors;
mod fanout;
mod protocol;
mod session;

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use anyhow::Context as _;
use arvis_shared::bus::subjects;
use arvis_shared::credentials::{Presented, Principal, Sessions, Verifier};
use arvis_shared::health::{self, Probe};
use arvis_shared::{Deps, ServiceFuture};
use axum::Router;
use axum::extract::State;
use axum::extract::ws::WebSocketUpgrade;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse as _, Response};
use axum::routing::get;
use axum::serve::ListenerExt as _;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use fanout::close;

/// Largest accepted incoming message or frame. Chat content is at most
/// 100 000 characters; this leaves room for the JSON around it.
pub const MAX_INCOMING_BYTES: usize = 128 * 1024;
/// tungstenite allocates its read buffer eagerly per connection (128 KiB by
/// default). Each KiB here is ~10 MB of RSS at 10 000 sockets: 4 KiB measured
/// 140 MB connected in ws-fanout, 1 KiB 110 MB. A chat frame fits in one or
/// two reads; larger frames (up to [`MAX_INCOMING_BYTES`]) still arrive, in
/// more reads.
const READ_BUFFER: usize = 1024;
/// Frames are written out at once (chat traffic is small and latency matters);
/// the bound stops a stalled socket from buffering without limit.
const MAX_WRITE_BUFFER: usize = 256 * 1024;
/// How long sockets get to receive their Close frame at shutdown.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);

/// What every handler and session shares.
pub(crate) struct Ctx {
    deps: Deps,
    /// Where every web message goes in (check, route, store, announce).
    intake: arvis_shared::intake::Intake,
    hub: Arc<fanout::Hub>,
    /// `WEB_API_KEY` is set: a client must present it, or a live dashboard session.
    key_required: bool,
    /// `WEB_API_KEY` and dashboard sessions, checked as the gateway checks its own.
    credentials: Verifier,
    shutdown: CancellationToken,
    /// Every session (reader and writer): shutdown waits for them, because
    /// axum does not wait for upgraded connections.
    tracker: TaskTracker,
    /// One permit per open socket (`WS_MAX_CONNECTIONS`).
    connections: Arc<Semaphore>,
    max_connections: usize,
    next_id: AtomicU64,
}

/// Serves WebSocket chat on `listener` until `shutdown` fires.
///
/// Shutdown phases:
/// 1. stop accepting connections;
/// 2. send every socket a Close frame with code 1001 (going away);
/// 3. wait for the sessions to end (at most `SHUTDOWN_TIMEOUT`), while the
///    connectors stop their bots (status `stopped`, leases released so that
///    another bridge takes them at once);
/// 4. return (the caller closes the database and the bus).
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
    let web_api_key = deps.config.web_api_key.clone();
    // Like the gateway: an open chat (anyone can make agents spend tokens) only on loopback.
    if web_api_key.is_none() && !addr.ip().is_loopback() {
        anyhow::bail!(
            "refusing to serve WebSocket chat on {addr} without authentication: set WEB_API_KEY, or bind \
             WS_BRIDGE_ADDR to 127.0.0.1"
        );
    }
    let sessions = match web_api_key {
        Some(_) => {
            let secret = arvis_shared::bootstrap::jwt_secret(&deps.config).context("loading the JWT secret")?;
            Some(Sessions::new(&secret, deps.store.clone())?)
        }
        None => None,
    };
    let key_required = web_api_key.is_some();
    let credentials = Verifier::new(web_api_key, sessions);
    // Subscribe before serving, and make sure the server has the subscription
    // before any client can send (PITFALLS.md: flush is needed on NATS).
    let subscription = deps
        .bus
        .subscribe(&subjects::replies_for_platform(fanout::PLATFORM))
        .await
        .context("subscribing to reply events")?;
    // Bounded: with the server unreachable a flush waits for it, and the
    // subscription is registered by itself once the client reconnects.
    if !matches!(tokio::time::timeout(Duration::from_secs(2), deps.bus.flush()).await, Ok(Ok(()))) {
        tracing::warn!("the bus did not confirm the reply subscription; replies flow once it is reachable");
    }
    arvis_shared::metrics::install();
    let max_connections = deps.config.ws_max_connections.clamp(1, Semaphore::MAX_PERMITS);
    let ctx = Arc::new(Ctx {
        intake: deps.intake(),
        connections: Arc::new(Semaphore::new(max_connections)),
        max_connections,
        deps,
        hub: Arc::default(),
        key_required,
        credentials,
        shutdown: shutdown.clone(),
        tracker: TaskTracker::new(),
        next_id: AtomicU64::new(1),
    });
    let fanout = ctx.tracker.spawn(fanout::run(subscription, ctx.hub.clone(), shutdown.clone()));
    // A daemon: a process that dies (or a test that simulates it with
    // `Tasks::stop`) drops it without releasing leases, as a kill -9 would.
    let connectors = ctx.deps.tasks.spawn_daemon(connectors::run(ctx.deps.clone(), shutdown.clone()));
    let app = Router::new()
        .route("/", get(upgrade))
        .route("/ws", get(upgrade))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .with_state(ctx.clone());
    tracing::info!(%addr, "ws-bridge listening");
    let stop = shutdown.clone();
    // NODELAY: a reply is several small frames (ack, typing, deltas,
    // message); without it each waits for the client's delayed ACK — the
    // 42 ms round trips the original's own client measured against us.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let server = axum::serve(listener, app).with_graceful_shutdown(async move { stop.cancelled().await });
    let server = ctx.deps.tasks.spawn(async move { server.await });
    shutdown.cancelled().await;
    ctx.tracker.close();
    let open = ctx.tracker.len();
    if open > 1 {
        tracing::info!(sessions = open - 1, "ws-bridge closing sockets");
    }
    if tokio::time::timeout(SHUTDOWN_TIMEOUT, ctx.tracker.wait()).await.is_err() {
        tracing::warn!(left = ctx.tracker.len(), "ws-bridge: sockets did not close within the timeout");
    }
    let _ = fanout.await;
    let _ = connectors.await;
    match tokio::time::timeout(Duration::from_secs(5), server).await {
        Ok(Ok(Ok(()))) | Err(_) => {}
        Ok(Ok(Err(e))) => return Err(e).context("serving WebSocket connections"),
        Ok(Err(e)) => return Err(e).context("ws-bridge server task"),
    }
    tracing::info!("ws-bridge stopped");
    Ok(())
}

/// The probes ([`arvis_shared::health`]); liveness adds the open sockets and channels.
async fn healthz(State(ctx): State<Arc<Ctx>>) -> Response {
    let connections = ctx.max_connections.saturating_sub(ctx.connections.available_permits());
    let live = serde_json::Map::from_iter([
        ("connections".to_string(), serde_json::json!(connections)),
        ("channels".to_string(), serde_json::json!(ctx.hub.channel_count())),
    ]);
    probe(&ctx, Probe::Live, live).await
}

async fn readyz(State(ctx): State<Arc<Ctx>>) -> Response {
    probe(&ctx, Probe::Ready, Default::default()).await
}

/// Behind `DASHBOARD_API_KEY` unless `METRICS_PUBLIC=true`.
async fn metrics_text(State(ctx): State<Arc<Ctx>>, headers: HeaderMap) -> Response {
    if !health::metrics_allowed(&ctx.deps, &headers) {
        let refused = health::metrics_refused();
        return (refused.status, [(axum::http::header::CONTENT_TYPE, refused.content_type)], refused.body)
            .into_response();
    }
    probe(&ctx, Probe::Metrics, Default::default()).await
}

async fn probe(ctx: &Ctx, probe: Probe, live: serde_json::Map<String, serde_json::Value>) -> Response {
    let reply = health::answer(&ctx.deps, probe, live).await;
    (reply.status, [(axum::http::header::CONTENT_TYPE, reply.content_type)], reply.body).into_response()
}

async fn upgrade(State(ctx): State<Arc<Ctx>>, headers: HeaderMap, ws: WebSocketUpgrade) -> Response {
    if ctx.shutdown.is_cancelled() {
        return (StatusCode::SERVICE_UNAVAILABLE, axum::Json(serde_json::json!({"error": "shutting down"})))
            .into_response();
    }
    let Ok(permit) = ctx.connections.clone().try_acquire_owned() else {
        return (StatusCode::SERVICE_UNAVAILABLE, axum::Json(serde_json::json!({"error": "too many connections"})))
            .into_response();
    };
    let authenticated = match authorize(&ctx, &headers).await {
        Auth::Yes => true,
        Auth::No => !ctx.key_required,
        Auth::ForeignOrigin => {
            tracing::warn!("refused a WebSocket upgrade carrying the session cookie from another site");
            return (
                StatusCode::FORBIDDEN,
                axum::Json(serde_json::json!({"error": "cross-origin WebSocket refused: open it from the dashboard's site, or send the key"})),
            )
                .into_response();
        }
    };
    let token = ctx.tracker.token();
    ws.read_buffer_size(READ_BUFFER)
        .write_buffer_size(0)
        .max_write_buffer_size(MAX_WRITE_BUFFER)
        .max_message_size(MAX_INCOMING_BYTES)
        .max_frame_size(MAX_INCOMING_BYTES)
        .on_upgrade(move |socket| async move {
            metrics::gauge!("arvis_ws_connections").increment(1.0);
            session::serve(socket, ctx, authenticated).await;
            metrics::gauge!("arvis_ws_connections").decrement(1.0);
            drop(permit);
            drop(token);
        })
}

enum Auth {
    /// The key, a session bearer, or the session cookie from the dashboard's site.
    Yes,
    /// Nothing usable (the client may still send its key in an auth frame).
    No,
    /// The session cookie, sent by a browser on a page of another site: a
    /// browser attaches cookies by itself, so without this check any page the
    /// user visits could talk to their agents (cross-site WebSocket hijacking).
    ForeignOrigin,
}

/// Does the upgrade request carry the key or a live dashboard session?
async fn authorize(ctx: &Ctx, headers: &HeaderMap) -> Auth {
    let presented = Presented::from_headers(headers);
    match ctx.credentials.check(&presented).await {
        Ok(Some(Principal::Session { via_cookie: true, .. })) if !same_site(headers) => Auth::ForeignOrigin,
        Ok(Some(_)) => Auth::Yes,
        Ok(None) => Auth::No,
        Err(error) => {
            tracing::warn!(%error, "cannot check a dashboard session; the client may send its key in an auth frame");
            Auth::No
        }
    }
}

/// An upgrade without `Origin` (not a browser), or from a page on the bridge's
/// own host name. The port is not compared: the dashboard is served by the
/// gateway, on another port of the same host in the launcher (5100 beside
/// 5101). A dashboard on another host name is not same-site; its pages stream
/// replies over the gateway's SSE, and other clients send the key.
fn same_site(headers: &HeaderMap) -> bool {
    let text = |name: axum::http::header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    let Some(origin) = text(axum::http::header::ORIGIN) else { return true };
    let origin_host = origin.strip_prefix("http://").or_else(|| origin.strip_prefix("https://")).map(host_name);
    let own = [text(axum::http::header::HOST), text(axum::http::header::HeaderName::from_static("x-forwarded-host"))];
    match origin_host {
        Some(origin_host) => own.into_iter().flatten().any(|h| host_name(h).eq_ignore_ascii_case(origin_host)),
        // `Origin: null` and other schemes are other sites.
        None => false,
    }
}

/// `host:port/…` → `host` (IPv6 `[::1]:5101` → `[::1]`).
fn host_name(authority: &str) -> &str {
    let authority = authority.split('/').next().unwrap_or(authority);
    match authority.rfind(':') {
        Some(i) if !authority[i..].contains(']') => &authority[..i],
        _ => authority,
    }
}
