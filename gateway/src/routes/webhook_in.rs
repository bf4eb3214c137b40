//! Inbound webhooks (behaviour reference §7): `POST /webhook/{path}` turns a
//! signed delivery into an agent run and answers at once (202 with the job id),
//! never waiting for the model.
//!
//! A request's path: the webhook by path (404 when unknown or disabled) → the
//! raw body (413 over [`crate::BODY_LIMIT`]) → the HMAC-SHA256 signature of the
//! raw body (`X-Hub-Signature-256` or `X-Webhook-Signature`, `sha256=<hex>`,
//! checked in constant time; 401) → the optional `X-Webhook-Timestamp` (±5
//! minutes; 401) → the per-webhook rate limit (429, `WEBHOOK_RATE_LIMIT_PER_MIN`,
//! counted in the database across every gateway replica; only authenticated
//! deliveries count) → UTF-8 (400) → the prompt from the template → one transaction: the delivery
//! id (`X-GitHub-Delivery` / `X-Webhook-Id`, a replay answers 200
//! `{"ok":true,"duplicate":true}`), the job and the trigger statistics →
//! `JobReady` after commit.
//!
//! These routes are public (`auth::is_public`): the signature is their credential.
//! Secrets are never logged.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use axum::Json;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use hmac::{KeyInit as _, Mac as _};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use arvis_shared::bus::events::JobReady;
use arvis_shared::clock::now_ms;
use arvis_shared::db::webhook_inbound::{Delivery, DeliveryOutcome};
use arvis_shared::domain::job::{JobKind, JobPayload, NewJob, priority};

use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::AppPath;
use crate::state::AppState;

// Rendered prompts longer than the one message limit (characters) are cut.
use arvis_shared::domain::limits::MAX_MESSAGE_CHARS as MAX_PROMPT_CHARS;
/// A timestamped delivery is accepted this far from the server's clock, either way.
pub const TIMESTAMP_TOLERANCE_SECS: i64 = 300;
/// Delivery ids are remembered this long (replay window).
pub const DELIVERY_RETENTION_MS: i64 = 7 * 24 * 3600 * 1000;
/// How often (at most) one gateway prunes old delivery ids.
const PRUNE_EVERY_MS: i64 = 3600 * 1000;
/// Longer delivery ids are refused: they are stored, and no sender needs more.
const MAX_DELIVERY_ID_LEN: usize = 200;

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// Per-gateway housekeeping of the inbound webhooks: when this gateway last
/// pruned old delivery ids and rate events.
#[derive(Default)]
pub struct WebhookLimiter {
    last_prune: AtomicI64,
}

/// The quota window of inbound webhooks.
const RATE_WINDOW_MS: i64 = 60_000;

/// `Err(seconds to wait)` when the webhook has used its quota of the last
/// minute — counted in the database, across every gateway replica.
async fn take_quota(store: &arvis_shared::db::Store, webhook_id: i64, per_min: u32, now: i64) -> ApiResult<()> {
    let key = format!("webhook:{webhook_id}");
    match store.rate_take(&key, now, now - RATE_WINDOW_MS, i64::from(per_min)).await? {
        None => Ok(()),
        Some(window) => {
            let secs = (window.wait_ms(now, RATE_WINDOW_MS) as u64).div_ceil(1000).max(1);
            Err(ApiError::too_many("too many deliveries for this webhook; retry later", secs))
        }
    }
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(receive_webhook)).layer(Extension(Arc::new(WebhookLimiter::default())))
}

/// The answer to an accepted delivery.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookAccepted {
    pub ok: bool,
    /// The enqueued job (absent for a duplicate delivery).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job_id: Option<i64>,
    /// True when this delivery id was accepted before: nothing new was enqueued.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duplicate: Option<bool>,
}

/// Receive a webhook delivery. When the webhook has a secret, the raw body must
/// be signed: `X-Hub-Signature-256` (or `X-Webhook-Signature`) =
/// `sha256=<hex HMAC-SHA256 of the body>`. A delivery id in `X-GitHub-Delivery`
/// or `X-Webhook-Id` is accepted once; `X-Webhook-Timestamp` (unix seconds), when
/// sent, must be within 5 minutes. The body (JSON or UTF-8 text) fills the
/// webhook's prompt template (`{{payload}}`, `{{payload.field.path}}`), and the
/// run is queued: the answer comes at once, the reply goes to the webhook's channel.
#[utoipa::path(post, path = "/webhook/{path}", tag = "webhooks", security(()),
    params(("path" = String, Path, description = "the webhook's path")),
    request_body(content = String, description = "any JSON or UTF-8 text, at most 1 MiB", content_type = "application/json"),
    responses(
        (status = 202, description = "queued", body = WebhookAccepted),
        (status = 200, description = "a delivery id seen before: nothing queued", body = WebhookAccepted),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 429, body = ErrorBody)))]
async fn receive_webhook(
    State(state): State<AppState>,
    Extension(limiter): Extension<Arc<WebhookLimiter>>,
    AppPath(path): AppPath<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let store = &state.deps.store;
    let webhook = match store.webhook_by_path(&path).await? {
        Some(w) if w.is_enabled => w,
        _ => return Err(ApiError::not_found("no enabled webhook at this path")),
    };
    let body = body.map_err(|r| {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "request body is too large (limit 1 MiB)")
        } else {
            ApiError::bad_request("cannot read request body")
        }
    })?;
    if body.len() > crate::BODY_LIMIT {
        return Err(ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "request body is too large (limit 1 MiB)"));
    }
    if let Some(secret) = webhook.secret.as_deref().filter(|s| !s.is_empty()) {
        verify_signature(secret, &headers, &body)?;
    }
    let now = now_ms();
    check_timestamp(&headers, now / 1000)?;
    // Counted after authentication, so that forged deliveries cannot use up the
    // sender's quota (for a webhook without a secret, every delivery counts).
    take_quota(store, webhook.id, state.deps.config.webhook_rate_limit_per_min, now).await?;
    let delivery_id = delivery_id(&headers)?;
    let text = std::str::from_utf8(&body).map_err(|_| ApiError::bad_request("request body is not valid UTF-8"))?;
    let prompt = render(&webhook.prompt_template, text);
    let payload = JobPayload {
        prompt,
        channel_id: webhook.channel_id.clone(),
        platform: webhook.platform.clone(),
        extra: serde_json::json!({ "webhookId": webhook.id, "deliveryId": delivery_id }),
        ..Default::default()
    };
    let mut job = NewJob::new(webhook.agent_id, JobKind::Webhook, priority::WEBHOOK, payload);
    job.webhook_id = Some(webhook.id);
    let outcome =
        store.accept_webhook_delivery(&Delivery { webhook_id: webhook.id, delivery_id, job: &job, now }).await?;
    prune_deliveries(&state, &limiter, now).await;
    match outcome {
        DeliveryOutcome::Enqueued { job_id } => {
            state.deps.bus.signal(&JobReady { v: 1, job_id, priority: priority::WEBHOOK }).await;
            tracing::info!(webhook_id = webhook.id, job_id, "webhook delivery queued");
            let body = WebhookAccepted { ok: true, job_id: Some(job_id), duplicate: None };
            Ok((StatusCode::ACCEPTED, Json(body)).into_response())
        }
        DeliveryOutcome::Duplicate => {
            tracing::info!(webhook_id = webhook.id, "duplicate webhook delivery ignored");
            Ok(Json(WebhookAccepted { ok: true, job_id: None, duplicate: Some(true) }).into_response())
        }
    }
}

/// Forgets delivery ids older than the replay window and rate events older
/// than the quota window, at most once an hour per gateway.
async fn prune_deliveries(state: &AppState, limiter: &WebhookLimiter, now: i64) {
    let last = limiter.last_prune.load(Ordering::Relaxed);
    if now - last < PRUNE_EVERY_MS
        || limiter.last_prune.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_err()
    {
        return;
    }
    match state.deps.store.prune_webhook_deliveries(now - DELIVERY_RETENTION_MS).await {
        Ok(0) => {}
        Ok(n) => tracing::debug!(pruned = n, "forgot old webhook delivery ids"),
        Err(error) => tracing::warn!(%error, "pruning old webhook delivery ids failed"),
    }
    if let Err(error) = state.deps.store.rate_prune(now).await {
        tracing::warn!(%error, "pruning old webhook rate events failed");
    }
}

fn header<'h>(headers: &'h HeaderMap, names: &[&str]) -> Option<&'h axum::http::HeaderValue> {
    names.iter().find_map(|n| headers.get(*n))
}

/// Checks `sha256=<hex>` against the HMAC of the raw body, in constant time.
fn verify_signature(secret: &str, headers: &HeaderMap, body: &[u8]) -> ApiResult<()> {
    let bad = || ApiError::unauthorized("missing or invalid signature");
    let value = header(headers, &["x-hub-signature-256", "x-webhook-signature"]).ok_or_else(bad)?;
    let hex_sig = value.to_str().map_err(|_| bad())?.trim().strip_prefix("sha256=").ok_or_else(bad)?;
    let signature = hex::decode(hex_sig).map_err(|_| bad())?;
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).map_err(|_| bad())?;
    mac.update(body);
    mac.verify_slice(&signature).map_err(|_| bad())
}

/// An `X-Webhook-Timestamp` must be unix seconds within the tolerance of `now_secs`.
fn check_timestamp(headers: &HeaderMap, now_secs: i64) -> ApiResult<()> {
    let Some(value) = headers.get("x-webhook-timestamp") else { return Ok(()) };
    let ts: i64 = value
        .to_str()
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| ApiError::unauthorized("X-Webhook-Timestamp must be unix seconds"))?;
    if (now_secs - ts).abs() > TIMESTAMP_TOLERANCE_SECS {
        return Err(ApiError::unauthorized("X-Webhook-Timestamp is more than 5 minutes off"));
    }
    Ok(())
}

fn delivery_id(headers: &HeaderMap) -> ApiResult<Option<&str>> {
    let Some(value) = header(headers, &["x-github-delivery", "x-webhook-id"]) else { return Ok(None) };
    let id = value.to_str().map_err(|_| ApiError::bad_request("the delivery id header must be ASCII"))?.trim();
    if id.len() > MAX_DELIVERY_ID_LEN {
        return Err(ApiError::bad_request("the delivery id header is too long"));
    }
    Ok((!id.is_empty()).then_some(id))
}

/// Fills a prompt template from a delivery body. `{{payload}}` is the body
/// (pretty-printed when it is JSON, as sent otherwise); `{{payload.a.b}}` is a
/// field of a JSON body (strings unquoted, other values as JSON, missing or a
/// text body: empty; array elements by index). An empty template means
/// `{{payload}}`. Inserted text is not scanned again, so a payload cannot
/// inject placeholders. The result is cut at [`MAX_PROMPT_CHARS`].
pub fn render(template: &str, body: &str) -> String {
    let json: Option<Value> = serde_json::from_str(body).ok();
    let template = if template.trim().is_empty() { "{{payload}}" } else { template };
    let mut out = String::with_capacity(template.len() + body.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            out.push_str(&rest[start..]);
            rest = "";
            break;
        };
        let name = after[..end].trim();
        if name == "payload" {
            match &json {
                Some(v) => out.push_str(&serde_json::to_string_pretty(v).unwrap_or_else(|_| body.to_string())),
                None => out.push_str(body),
            }
        } else if let Some(field_path) = name.strip_prefix("payload.") {
            if let Some(v) = json.as_ref().and_then(|v| lookup(v, field_path)) {
                match v {
                    Value::String(s) => out.push_str(s),
                    Value::Null => {}
                    other => out.push_str(&other.to_string()),
                }
            }
        } else {
            out.push_str(&rest[start..start + 2 + end + 2]);
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    if out.chars().count() > MAX_PROMPT_CHARS {
        out = out.chars().take(MAX_PROMPT_CHARS).collect();
    }
    out
}

fn lookup<'v>(value: &'v Value, path: &str) -> Option<&'v Value> {
    path.split('.').try_fold(value, |v, key| match v {
        Value::Object(map) => map.get(key),
        Value::Array(items) => key.parse::<usize>().ok().and_then(|i| items.get(i)),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_fill_the_payload_and_its_fields() {
        let body = r#"{"action":"opened","issue":{"number":7,"title":"Crash","labels":["bug"]},"n":null}"#;
        assert_eq!(
            render(
                "{{payload.action}} #{{ payload.issue.number }}: {{payload.issue.title}} {{payload.issue.labels}}",
                body
            ),
            r#"opened #7: Crash ["bug"]"#
        );
        assert_eq!(render("[{{payload.missing.x}}][{{payload.n}}][{{payload.issue.labels.0}}]", body), "[][][bug]");
        assert!(render("", body).contains("\n  \"action\": \"opened\""));
        assert_eq!(render("got {{payload}}!", "plain text"), "got plain text!");
        assert_eq!(render("{{payload.x}}|{{other}}|{{unclosed", "text"), "|{{other}}|{{unclosed");
    }

    #[test]
    fn payloads_cannot_inject_placeholders_and_prompts_are_capped() {
        assert_eq!(render("{{payload}} {{payload}}", "{{payload}}"), "{{payload}} {{payload}}");
        let big = "x".repeat(MAX_PROMPT_CHARS + 50);
        assert_eq!(render("{{payload}}", &big).chars().count(), MAX_PROMPT_CHARS);
    }

    #[test]
    fn signatures_are_checked_against_the_raw_body() {
        let mut mac = HmacSha256::new_from_slice(b"s3cret").unwrap();
        mac.update(b"{}");
        let good = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        let mut headers = HeaderMap::new();
        headers.insert("x-webhook-signature", good.parse().unwrap());
        assert!(verify_signature("s3cret", &headers, b"{}").is_ok());
        assert!(verify_signature("s3cret", &headers, b"{ }").is_err());
        assert!(verify_signature("other", &headers, b"{}").is_err());
        assert!(verify_signature("s3cret", &HeaderMap::new(), b"{}").is_err());
        headers.insert("x-webhook-signature", "sha256=zz".parse().unwrap());
        assert!(verify_signature("s3cret", &headers, b"{}").is_err());
    }
}
