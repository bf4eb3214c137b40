//! Deliveries (issue #19, "no reply is lost"): the connectors' outbox, so
//! that a reply a platform refused is seen and acted on instead of being a
//! silent dead letter. `GET /api/deliveries?status=pending|sent|failed`
//! lists them; `PATCH /api/deliveries/{id}` `{"action":"retry"}` sends a
//! failed one again (the bot's holder picks it up within a second).

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use arvis_shared::db::outbox::RetryOutcome;
use arvis_shared::domain::delivery::{Delivery, DeliveryAction, DeliveryStatus};

use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{AppJson, AppPath, AppQuery};
use crate::state::AppState;

const DEFAULT_LIMIT: i64 = 100;
const MAX_LIMIT: i64 = 1000;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_deliveries)).routes(routes!(act_on_delivery))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryQuery {
    /// `pending`, `sent` or `failed`; all when absent.
    #[param(value_type = Option<arvis_shared::domain::delivery::DeliveryStatus>, inline)]
    pub status: Option<String>,
    /// Only this bot's deliveries.
    pub bot_id: Option<i64>,
    /// Number of entries (default 100; more than 1000 gives 1000), newest first.
    #[param(minimum = 0)]
    pub limit: Option<i64>,
}

/// The outbox of every bot, newest first: what was sent, what waits for its
/// next attempt (with the platform's last error) and what failed for good.
#[utoipa::path(get, path = "/api/deliveries", tag = "bots", params(DeliveryQuery),
    responses((status = 200, body = Vec<Delivery>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn list_deliveries(
    State(state): State<AppState>,
    AppQuery(q): AppQuery<DeliveryQuery>,
) -> ApiResult<Json<Vec<Delivery>>> {
    let status = q.status.as_deref().map(DeliveryStatus::parse).transpose()?;
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if limit < 0 {
        return Err(ApiError::bad_request("limit must not be negative"));
    }
    Ok(Json(state.deps.store.list_deliveries(status, q.bot_id, limit.min(MAX_LIMIT)).await?))
}

/// `{"action":"retry"}`: send a failed delivery again, attempts from zero.
/// A pending or sent delivery is a 409.
#[utoipa::path(patch, path = "/api/deliveries/{id}", tag = "bots", params(("id" = i64, Path)),
    request_body = DeliveryAction,
    responses((status = 200, body = Delivery), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 413, body = ErrorBody)))]
async fn act_on_delivery(
    State(state): State<AppState>,
    AppPath(id): AppPath<i64>,
    AppJson(body): AppJson<DeliveryAction>,
) -> ApiResult<Json<Delivery>> {
    if body.action != "retry" {
        return Err(ApiError::bad_request("action must be \"retry\""));
    }
    match state.deps.store.retry_delivery(id).await? {
        RetryOutcome::Retried(d) => Ok(Json(*d)),
        RetryOutcome::NotFound => Err(ApiError::not_found("delivery not found")),
        RetryOutcome::NotFailed(status) => {
            Err(ApiError::conflict(format!("only a failed delivery can be retried; this one is {status}")))
        }
    }
}
