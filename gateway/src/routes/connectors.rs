//! Connectors (reference: Connectors): which platforms have their environment
//! variables set. Names only — never values.

use axum::Json;
use axum::extract::State;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use arvis_shared::config::Config;
use arvis_shared::domain::connectors::{CONNECTORS, Connector, is_configured};

use crate::error::ErrorBody;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_connectors))
}

/// Configuration status of every supported connector.
#[utoipa::path(get, path = "/api/connectors", tag = "connectors",
    responses((status = 200, body = Vec<Connector>), (status = 401, body = ErrorBody)))]
async fn list_connectors(State(state): State<AppState>) -> Json<Vec<Connector>> {
    Json(connectors(&state.deps.config))
}

/// Every connector with whether its variables are set (REST and dashboard).
pub fn connectors(config: &Config) -> Vec<Connector> {
    CONNECTORS
        .iter()
        .map(|(platform, vars)| Connector {
            platform: (*platform).to_string(),
            configured: is_configured(vars, |v| config.env_present(v)),
            vars: vars.iter().map(|v| (*v).to_string()).collect(),
        })
        .collect()
}
