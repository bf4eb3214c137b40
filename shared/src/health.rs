//! The probes every process answers, in one place: `GET /healthz` (alive),
//! `GET /readyz` (database reachable with migrations applied, bus connected)
//! and `GET /metrics` (Prometheus; needs `DASHBOARD_API_KEY` when one is set,
//! unless `METRICS_PUBLIC=true`).
//!
//! [`answer`] makes the replies; the gateway and the WebSocket bridge serve
//! them on their own listeners, and [`serve`] serves them on `HEALTH_ADDR` for
//! the binaries that have no HTTP listener of their own (worker, scheduler) —
//! a plain hyper service: the shared crate stays free of axum.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use secrecy::ExposeSecret as _;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::Deps;

/// A probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    Live,
    Ready,
    Metrics,
}

/// A probe's reply, for any HTTP server to send.
#[derive(Debug, Clone)]
pub struct ProbeReply {
    pub status: StatusCode,
    pub content_type: &'static str,
    pub body: String,
}

const JSON: &str = "application/json";
const PROMETHEUS: &str = "text/plain; version=0.0.4";

/// The reply to `probe`. `live` is merged into the liveness object (the bridge
/// adds its connection counts). Credentials for `/metrics` are the caller's
/// to check ([`metrics_allowed`], or the gateway's own guard).
pub async fn answer(deps: &Deps, probe: Probe, live: serde_json::Map<String, serde_json::Value>) -> ProbeReply {
    match probe {
        Probe::Live => {
            let mut body = serde_json::Map::from_iter([("status".to_string(), serde_json::json!("ok"))]);
            body.extend(live);
            ProbeReply { status: StatusCode::OK, content_type: JSON, body: serde_json::Value::Object(body).to_string() }
        }
        Probe::Ready => {
            let (ready, body) = readiness(deps).await;
            let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
            ProbeReply { status, content_type: JSON, body }
        }
        Probe::Metrics => ProbeReply {
            status: StatusCode::OK,
            content_type: PROMETHEUS,
            body: crate::metrics::render(&deps.store).await,
        },
    }
}

/// The 401 of `/metrics` without the credentials it needs.
pub fn metrics_refused() -> ProbeReply {
    ProbeReply {
        status: StatusCode::UNAUTHORIZED,
        content_type: JSON,
        body: r#"{"error":"authentication required"}"#.into(),
    }
}

/// Readiness as JSON: `{"ready":bool,"database":bool,"bus":bool}`.
pub async fn readiness(deps: &Deps) -> (bool, String) {
    let db = matches!(tokio::time::timeout(std::time::Duration::from_secs(2), deps.store.ready()).await, Ok(Ok(true)));
    let bus = deps.bus.is_connected();
    let ready = db && bus;
    (ready, format!(r#"{{"ready":{ready},"database":{db},"bus":{bus}}}"#))
}

/// How old the cached database check ([`DatabaseCheck`]) may be.
pub const DB_CHECK_EVERY: Duration = Duration::from_secs(1);

/// A database check cheap enough for a status route hit by every monitor
/// (the gateway's `GET /api/health`): one caller per [`DB_CHECK_EVERY`]
/// queries, the others read its result. With a query per request that route
/// served 25 500 req/s against 40 400 for the cached `GET /api/agents`.
pub struct DatabaseCheck {
    /// The last result; true before the first check (the gateway serves only
    /// after its start-up work on the database succeeded).
    ok: AtomicBool,
    /// When it was made, in ms since `epoch`; `u64::MAX` before the first.
    checked_ms: AtomicU64,
    epoch: Instant,
    checking: tokio::sync::Mutex<()>,
}

impl Default for DatabaseCheck {
    fn default() -> DatabaseCheck {
        DatabaseCheck {
            ok: AtomicBool::new(true),
            checked_ms: AtomicU64::new(u64::MAX),
            epoch: Instant::now(),
            checking: tokio::sync::Mutex::new(()),
        }
    }
}

impl DatabaseCheck {
    pub async fn database_ok(&self, store: &crate::db::Store) -> bool {
        let now_ms = self.epoch.elapsed().as_millis() as u64;
        let checked = self.checked_ms.load(Ordering::Acquire);
        let fresh = checked != u64::MAX && now_ms.saturating_sub(checked) < DB_CHECK_EVERY.as_millis() as u64;
        if fresh {
            return self.ok.load(Ordering::Acquire);
        }
        // Stale: one request checks; the others answer with the last result meanwhile.
        let Ok(_checking) = self.checking.try_lock() else { return self.ok.load(Ordering::Acquire) };
        let ok = matches!(tokio::time::timeout(Duration::from_secs(2), store.ready()).await, Ok(Ok(true)));
        self.ok.store(ok, Ordering::Release);
        self.checked_ms.store(self.epoch.elapsed().as_millis() as u64, Ordering::Release);
        ok
    }
}

/// True when a request with these headers may read `/metrics` outside the
/// gateway: `METRICS_PUBLIC=true`, or the `DASHBOARD_API_KEY` in `X-API-Key` /
/// `Authorization: Bearer`, or no API credentials configured at all.
pub fn metrics_allowed(deps: &Deps, headers: &hyper::HeaderMap) -> bool {
    if deps.config.metrics_public {
        return true;
    }
    let Some(key) = &deps.config.dashboard_api_key else { return !deps.config.api_auth_configured() };
    let presented = crate::credentials::Presented::from_headers(headers);
    [presented.api_key, presented.bearer].iter().flatten().any(|given| crate::secret_eq(given, key.expose_secret()))
}

fn reply(status: StatusCode, content_type: &str, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    if let Ok(v) = hyper::header::HeaderValue::from_str(content_type) {
        r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    r
}

async fn handle(deps: Deps, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let probe = match (req.method() == hyper::Method::GET, req.uri().path()) {
        (true, "/healthz") => Probe::Live,
        (true, "/readyz") => Probe::Ready,
        (true, "/metrics") => Probe::Metrics,
        _ => return Ok(reply(StatusCode::NOT_FOUND, JSON, r#"{"error":"no such route"}"#.into())),
    };
    let answer = if probe == Probe::Metrics && !metrics_allowed(&deps, req.headers()) {
        metrics_refused()
    } else {
        answer(&deps, probe, Default::default()).await
    };
    Ok(reply(answer.status, answer.content_type, answer.body))
}

/// Serves the health endpoints until `shutdown` fires.
pub async fn serve(deps: Deps, listener: TcpListener, shutdown: CancellationToken) {
    crate::metrics::install();
    loop {
        let (stream, _) = tokio::select! {
            () = shutdown.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(error) => {
                    tracing::warn!(%error, "health listener accept failed");
                    continue;
                }
            },
        };
        // Replies are small writes: without NODELAY each waits out the
        // client's delayed ACK (~40 ms, PITFALLS.md).
        let _ = stream.set_nodelay(true);
        let deps = deps.clone();
        let tasks = deps.tasks.clone();
        // A keep-alive connection lasts as long as its client: a daemon.
        tasks.spawn_daemon(async move {
            let service = service_fn(move |req| handle(deps.clone(), req));
            if let Err(error) = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await {
                tracing::debug!(%error, "health connection ended with an error");
            }
        });
    }
}

/// Binds `HEALTH_ADDR` when configured and serves it in the background.
/// Boxed, like the services' entry points ([`crate::ServiceFuture`]).
#[inline(never)]
pub fn spawn_if_configured<'a>(deps: &'a Deps, shutdown: &'a CancellationToken) -> crate::ServiceFuture<'a> {
    Box::pin(bind_and_spawn(deps, shutdown))
}

async fn bind_and_spawn(deps: &Deps, shutdown: &CancellationToken) -> anyhow::Result<()> {
    use anyhow::Context as _;
    if let Some(addr) = deps.config.health_addr {
        let listener = TcpListener::bind(addr).await.with_context(|| format!("binding HEALTH_ADDR {addr}"))?;
        tracing::info!(%addr, "health endpoints listening");
        deps.tasks.spawn(serve(deps.clone(), listener, shutdown.clone()));
    }
    Ok(())
}
