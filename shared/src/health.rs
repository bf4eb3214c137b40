//! The health listener of the binaries that have no HTTP listener of their own
//! (worker, scheduler): `GET /healthz` (alive), `GET /readyz` (database
//! reachable with migrations applied, bus connected) and `GET /metrics`
//! (Prometheus; needs `DASHBOARD_API_KEY` when one is set, unless
//! `METRICS_PUBLIC=true`). Bound on `HEALTH_ADDR` when set.
//!
//! A plain hyper service: the shared crate stays free of axum.

use std::convert::Infallible;

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

/// Readiness as JSON: `{"ready":bool,"database":bool,"bus":bool}`.
pub async fn readiness(deps: &Deps) -> (bool, String) {
    let db = matches!(tokio::time::timeout(std::time::Duration::from_secs(2), deps.store.ready()).await, Ok(Ok(true)));
    let bus = deps.bus.is_connected();
    let ready = db && bus;
    (ready, format!(r#"{{"ready":{ready},"database":{db},"bus":{bus}}}"#))
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
    let json = "application/json";
    Ok(match (req.method() == hyper::Method::GET, req.uri().path()) {
        (true, "/healthz") => reply(StatusCode::OK, json, r#"{"status":"ok"}"#.into()),
        (true, "/readyz") => {
            let (ready, body) = readiness(&deps).await;
            reply(if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE }, json, body)
        }
        (true, "/metrics") if metrics_allowed(&deps, req.headers()) => {
            reply(StatusCode::OK, "text/plain; version=0.0.4", crate::metrics::render(&deps.store).await)
        }
        (true, "/metrics") => reply(StatusCode::UNAUTHORIZED, json, r#"{"error":"authentication required"}"#.into()),
        _ => reply(StatusCode::NOT_FOUND, json, r#"{"error":"no such route"}"#.into()),
    })
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
pub async fn spawn_if_configured(deps: &Deps, shutdown: &CancellationToken) -> anyhow::Result<()> {
    use anyhow::Context as _;
    if let Some(addr) = deps.config.health_addr {
        let listener = TcpListener::bind(addr).await.with_context(|| format!("binding HEALTH_ADDR {addr}"))?;
        tracing::info!(%addr, "health endpoints listening");
        deps.tasks.spawn(serve(deps.clone(), listener, shutdown.clone()));
    }
    Ok(())
}
