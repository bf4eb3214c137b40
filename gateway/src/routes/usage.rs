//! Usage and metrics (reference: Usage / Analytics).

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use arvis_shared::budget::BudgetReport;
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

/// `GET /api/usage`: the reference's report, plus each agent's, API key's
/// and budgeted workflow's spend against its budgets (an extension).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UsageWithBudgets {
    #[serde(flatten)]
    pub report: UsageReport,
    /// Extension: spend this UTC day and month against the budgets, whatever `period` says.
    pub budgets: BudgetReport,
}

/// Usage breakdown over the last day, week or month, and spend against budgets.
#[utoipa::path(get, path = "/api/usage", tag = "usage", params(UsageQuery),
    responses((status = 200, body = UsageWithBudgets), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn usage(State(state): State<AppState>, AppQuery(q): AppQuery<UsageQuery>) -> ApiResult<Json<UsageWithBudgets>> {
    let window = period_ms(q.period.as_deref())?;
    let store = &state.deps.store;
    let report = store.usage_report(now_ms() - window).await?;
    let budgets = arvis_shared::budget::report(store).await?;
    Ok(Json(UsageWithBudgets { report, budgets }))
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
