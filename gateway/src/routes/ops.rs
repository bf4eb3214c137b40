//! Operations endpoints for probes and scrapers: `GET /healthz` (alive),
//! `GET /readyz` (database and bus reachable, migrations applied) — both
//! public — and `GET /metrics` (Prometheus text; behind the API's auth unless
//! `METRICS_PUBLIC=true`).

use arvis_shared::health::{self, Probe};
use axum::extract::State;
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
async fn healthz(State(state): State<AppState>) -> Response {
    probe(&state, Probe::Live).await
}

/// Readiness: the database answers with every migration applied and the bus is connected.
#[utoipa::path(get, path = "/readyz", tag = "ops", security(()),
    responses((status = 200, description = "ready"), (status = 503, description = "not ready")))]
async fn readyz(State(state): State<AppState>) -> Response {
    probe(&state, Probe::Ready).await
}

/// Prometheus metrics of this process (the access guard checks credentials).
#[utoipa::path(get, path = "/metrics", tag = "ops",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain"),
        (status = 401, body = crate::error::ErrorBody)))]
async fn metrics(State(state): State<AppState>) -> Response {
    probe(&state, Probe::Metrics).await
}

async fn probe(state: &AppState, probe: Probe) -> Response {
    let reply = health::answer(&state.deps, probe, Default::default()).await;
    (reply.status, [(CONTENT_TYPE, reply.content_type)], reply.body).into_response()
}
