//! Operations endpoints for probes and scrapers: `GET /healthz` (alive),
//! `GET /readyz` (database and bus reachable, migrations applied) — both
//! public — and `GET /metrics` (Prometheus text; behind the API's auth unless
//! `METRICS_PUBLIC=true`).

use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(healthz)).routes(routes!(readyz)).routes(routes!(metrics))
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "ops", security(()), responses((status = 200, description = "alive")))]
async fn healthz() -> Response {
    ([(CONTENT_TYPE, "application/json")], r#"{"status":"ok"}"#).into_response()
}

/// Readiness: the database answers with every migration applied and the bus is connected.
#[utoipa::path(get, path = "/readyz", tag = "ops", security(()),
    responses((status = 200, description = "ready"), (status = 503, description = "not ready")))]
async fn readyz(State(state): State<AppState>) -> Response {
    let (ready, body) = arvis_shared::health::readiness(&state.deps).await;
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, [(CONTENT_TYPE, "application/json")], body).into_response()
}

/// Prometheus metrics of this process.
#[utoipa::path(get, path = "/metrics", tag = "ops",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain"),
        (status = 401, body = crate::error::ErrorBody)))]
async fn metrics(State(state): State<AppState>) -> Response {
    let body = arvis_shared::metrics::render(&state.deps.store).await;
    ([(CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}
