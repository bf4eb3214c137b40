//! Usage and metrics (reference: Usage / Analytics).

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use arvis_shared::clock::now_ms;
use arvis_shared::domain::usage::{UsageReport, period_ms};

use crate::error::{ApiResult, ErrorBody};
use crate::extract::AppQuery;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(usage)).routes(routes!(metrics))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UsageQuery {
    /// day, week (default) or month.
    #[param(value_type = Option<arvis_shared::domain::usage::UsagePeriod>, inline)]
    pub period: Option<String>,
}

/// Usage breakdown over the last day, week or month.
#[utoipa::path(get, path = "/api/usage", tag = "usage", params(UsageQuery),
    responses((status = 200, body = UsageReport), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn usage(State(state): State<AppState>, AppQuery(q): AppQuery<UsageQuery>) -> ApiResult<Json<UsageReport>> {
    let window = period_ms(q.period.as_deref())?;
    Ok(Json(state.deps.store.usage_report(now_ms() - window).await?))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Metrics {
    /// Pending jobs.
    pub queue_depth: i64,
    pub running_jobs: i64,
    /// Seconds since this gateway started.
    pub uptime_seconds: u64,
    pub total_agents: i64,
    pub active_agents: i64,
}

/// Real-time metrics snapshot.
#[utoipa::path(get, path = "/api/metrics", tag = "usage",
    responses((status = 200, body = Metrics), (status = 401, body = ErrorBody)))]
async fn metrics(State(state): State<AppState>) -> ApiResult<Json<Metrics>> {
    let store = &state.deps.store;
    let (queue_depth, running_jobs) = store.job_counts().await?;
    let (total_agents, active_agents) = store.agent_counts().await?;
    Ok(Json(Metrics {
        queue_depth,
        running_jobs,
        uptime_seconds: state.started.elapsed().as_secs(),
        total_agents,
        active_agents,
    }))
}
