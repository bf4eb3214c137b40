//! `GET /api/health` (reference: Health) — public, for dashboards and probes.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok`, or `degraded` when the database does not answer.
    pub status: String,
    /// Seconds since this gateway started.
    pub uptime: u64,
    pub version: String,
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(health))
}

/// System status. No authentication. `degraded` (503) when the database did
/// not answer its last check; that check runs at most once per
/// second ([`arvis_shared::health::DatabaseCheck`]), so this stays the cheapest route (the deep check on
/// every call is `GET /readyz`).
#[utoipa::path(get, path = "/api/health", tag = "health", security(()),
    responses((status = 200, body = Health), (status = 503, body = Health, description = "database unreachable")))]
async fn health(State(state): State<AppState>) -> (StatusCode, Json<Health>) {
    let db_ok = state.health.database_ok(&state.deps.store).await;
    let body = Health {
        status: if db_ok { "ok" } else { "degraded" }.into(),
        uptime: state.started.elapsed().as_secs(),
        version: env!("CARGO_PKG_VERSION").into(),
    };
    (if db_ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE }, Json(body))
}
