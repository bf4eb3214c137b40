//! The job queue (reference: Job Queue): list, retry a failed job, cancel a
//! pending one. Both changes are conditional in SQL, so a job that changed
//! status meanwhile gets a 409, never a lost update.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use arvis_shared::bus::events::JobReady;
use arvis_shared::db::jobs::JobUpdate;
use arvis_shared::domain::jobs::{JobAction, JobView, parse_status_filter};

use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{AppJson, AppPath, AppQuery};
use crate::state::AppState;

/// Most jobs one listing returns.
pub const LIST_CAP: i64 = 500;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_queue)).routes(routes!(job_action, cancel_job))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct QueueQuery {
    /// pending, running, completed, failed or cancelled (default: pending and running).
    #[param(value_type = Option<arvis_shared::domain::jobs::JobStatus>, inline)]
    pub status: Option<String>,
}

/// Jobs by status, newest first (at most 500).
#[utoipa::path(get, path = "/api/queue", tag = "queue", params(QueueQuery),
    responses((status = 200, body = Vec<JobView>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn list_queue(State(state): State<AppState>, AppQuery(q): AppQuery<QueueQuery>) -> ApiResult<Json<Vec<JobView>>> {
    let statuses = parse_status_filter(q.status.as_deref())?;
    Ok(Json(state.deps.store.list_jobs(&statuses, LIST_CAP).await?))
}

fn outcome(update: JobUpdate, wanted: &str, verb: &str) -> ApiResult<i64> {
    match update {
        JobUpdate::Done { priority } => Ok(priority),
        JobUpdate::NotFound => Err(ApiError::not_found("job not found")),
        JobUpdate::WrongStatus(s) => {
            Err(ApiError::conflict(format!("only {wanted} jobs can be {verb}; this job is {s}")))
        }
    }
}

async fn view(state: &AppState, id: i64) -> ApiResult<Json<JobView>> {
    state.deps.store.get_job(id).await?.map(Json).ok_or_else(|| ApiError::not_found("job not found"))
}

/// Retry a failed job: `{"action": "retry"}`. Other statuses → 409.
#[utoipa::path(patch, path = "/api/queue/{id}", tag = "queue", params(("id" = i64, Path)), request_body = JobAction,
    responses((status = 200, body = JobView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn job_action(
    State(state): State<AppState>,
    AppPath(id): AppPath<i64>,
    AppJson(body): AppJson<JobAction>,
) -> ApiResult<Json<JobView>> {
    if body.action != "retry" {
        return Err(ApiError::bad_request("action must be \"retry\""));
    }
    retry(&state, id).await.map(Json)
}

/// Retries a failed job and wakes a worker for it: `PATCH /api/queue/{id}`'s
/// rule, shared with the dashboard's queue page.
pub async fn retry(state: &AppState, id: i64) -> ApiResult<JobView> {
    let priority = outcome(state.deps.store.retry_job(id).await?, "failed", "retried")?;
    state.deps.bus.signal(&JobReady { v: 1, job_id: id, priority }).await;
    view(state, id).await.map(|Json(job)| job)
}

/// Cancels a pending job: `DELETE /api/queue/{id}`'s rule, shared with the
/// dashboard's queue page.
pub async fn cancel(state: &AppState, id: i64) -> ApiResult<JobView> {
    outcome(state.deps.store.cancel_job(id).await?, "pending", "cancelled")?;
    view(state, id).await.map(|Json(job)| job)
}

/// Cancel a pending job (it is kept with status `cancelled`). Other statuses → 409.
#[utoipa::path(delete, path = "/api/queue/{id}", tag = "queue", params(("id" = i64, Path)),
    responses((status = 200, body = JobView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn cancel_job(State(state): State<AppState>, AppPath(id): AppPath<i64>) -> ApiResult<Json<JobView>> {
    cancel(&state, id).await.map(Json)
}
