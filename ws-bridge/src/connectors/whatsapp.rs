//! WhatsApp Cloud API, outbound side. Inbound messages do not come here: Meta
//! posts them to the gateway's `POST /webhook/whatsapp`, which takes them in
//! for this bot (`gateway::routes::platform_in`); the reply watcher finds the
//! owed replies in the database like any other.
//!
//! Session: there is no socket. The holder checks the access token and the
//! phone-number id once (`GET {WHATSAPP_API_URL}/{phone-number-id}`), reports
//! `running` and idles until the lease is lost; a refusal is reported
//! (`error`, with Meta's message) and checked again with backoff (no faster
//! than every 30 s for a refused token).
//!
//! Replies: `POST {WHATSAPP_API_URL}/{phone-number-id}/messages` with the
//! access token as a Bearer, `{"messaging_product":"whatsapp","to":…,
//! "type":"text","text":{"body":…}}`, at most 4096 characters. Errors are
//! Graph's `{"error":{"message","type","code",…}}`: HTTP 429 and the rate-limit
//! codes (4, 80007, 130429, 131048, 131056) wait (`Retry-After` when sent,
//! else [`RATE_WAIT`]); 5xx and Meta's transient codes are retried with
//! backoff; every other 4xx is a refusal with Meta's message. The Cloud API
//! has no idempotency key: a send whose answer was lost (a timeout) is sent
//! again — the outbox guarantees one attempt per row otherwise.

use std::time::Duration;

use arvis_shared::db::outbox::DueDelivery;
use reqwest::header::AUTHORIZATION;
use secrecy::{ExposeSecret as _, SecretString};
use serde::Deserialize;
use serde_json::json;

use super::BotCtx;
use super::http::{Backoff, describe, retry_after_header, scrub};
use super::outbox::{Outbound, SendError};

/// WhatsApp's limit for one text message's body.
const LIMIT: usize = 4096;
/// How long a rate-limited send waits when Meta names no time (the pair rate
/// limit, 131056, allows one message to a user every 6 s).
const RATE_WAIT: Duration = Duration::from_secs(6);
/// Graph error codes that mean "slow down".
const RATE_CODES: &[i64] = &[4, 80007, 130429, 131048, 131056];
/// Graph error codes that mean "try again" whatever the HTTP status.
const TRANSIENT_CODES: &[i64] = &[1, 2, 131000, 131016, 133004];
/// Graph error codes that mean the access token is refused.
const AUTH_CODES: &[i64] = &[0, 190];

pub struct WhatsApp {
    http: reqwest::Client,
    /// `{WHATSAPP_API_URL}/{phone-number-id}`.
    base: String,
    token: String,
}

#[derive(Debug)]
enum WaError {
    RetryAfter(Duration, String),
    Unavailable(String),
    Auth(String),
    Refused(String),
}

impl WaError {
    fn text(&self) -> &str {
        match self {
            WaError::RetryAfter(_, t) | WaError::Unavailable(t) | WaError::Auth(t) | WaError::Refused(t) => t,
        }
    }
}

#[derive(Deserialize)]
struct GraphError {
    error: GraphErrorBody,
}

#[derive(Deserialize)]
struct GraphErrorBody {
    #[serde(default)]
    message: String,
    code: Option<i64>,
}

impl WhatsApp {
    pub fn new(ctx: &BotCtx, phone_number_id: &SecretString) -> WhatsApp {
        WhatsApp {
            http: ctx.http.clone(),
            base: format!("{}/{}", ctx.deps.config.whatsapp_api_url, phone_number_id.expose_secret().trim()),
            token: ctx.token.expose_secret().to_string(),
        }
    }

    /// Checks the credentials until they work, then idles until the lease is lost.
    pub async fn run(&self, ctx: &BotCtx) {
        let mut backoff = Backoff::reconnect();
        loop {
            let error = tokio::select! {
                () = ctx.lease.lost.cancelled() => return,
                r = self.check() => match r {
                    Ok(()) => {
                        ctx.lease.report("running", None).await;
                        ctx.lease.lost.cancelled().await;
                        return;
                    }
                    Err(e) => e,
                },
            };
            let wait = match &error {
                WaError::RetryAfter(d, _) => *d,
                WaError::Auth(_) | WaError::Refused(_) => backoff.next_delay().max(Duration::from_secs(30)),
                WaError::Unavailable(_) => backoff.next_delay(),
            };
            tracing::warn!(
                bot_id = ctx.bot.id,
                error = error.text(),
                retry_in_ms = wait.as_millis() as u64,
                "whatsapp check failed"
            );
            ctx.lease.report("error", Some(error.text())).await;
            tokio::select! {
                () = ctx.lease.lost.cancelled() => return,
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// The phone number as the access token sees it.
    async fn check(&self) -> Result<(), WaError> {
        let req = self.http.get(format!("{}?fields=display_phone_number,verified_name", self.base));
        self.call("checking the phone number", req).await.map(|_| ())
    }

    async fn call(&self, what: &str, req: reqwest::RequestBuilder) -> Result<serde_json::Value, WaError> {
        let resp = req
            .header(AUTHORIZATION, format!("Bearer {}", self.token))
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .map_err(|e| WaError::Unavailable(format!("WhatsApp {what}: {}", describe(e, &self.token))))?;
        let status = resp.status().as_u16();
        let wait = retry_after_header(resp.headers());
        let text = resp
            .text()
            .await
            .map_err(|e| WaError::Unavailable(format!("WhatsApp {what}: {}", describe(e, &self.token))))?;
        if (200..300).contains(&status) {
            return Ok(serde_json::from_str(&text).unwrap_or(serde_json::Value::Null));
        }
        Err(classify(what, status, wait, &text, &self.token))
    }
}

/// A Graph API error answer as a [`WaError`].
fn classify(what: &str, status: u16, wait: Option<Duration>, body: &str, token: &str) -> WaError {
    let parsed = serde_json::from_str::<GraphError>(body).ok().map(|g| g.error);
    let code = parsed.as_ref().and_then(|e| e.code);
    let message = parsed.map(|e| e.message).filter(|m| !m.is_empty()).unwrap_or_else(|| "no Graph error body".into());
    let code_text = code.map(|c| format!(" (code {c})")).unwrap_or_default();
    let text = scrub(&format!("WhatsApp {what}: HTTP {status}{code_text}: {message}"), token);
    let code = code.unwrap_or(-1);
    if status == 429 || RATE_CODES.contains(&code) {
        WaError::RetryAfter(wait.unwrap_or(RATE_WAIT), text)
    } else if status >= 500 || TRANSIENT_CODES.contains(&code) {
        WaError::Unavailable(text)
    } else if status == 401 || AUTH_CODES.contains(&code) {
        WaError::Auth(text)
    } else {
        WaError::Refused(text)
    }
}

impl Outbound for WhatsApp {
    fn limit(&self) -> usize {
        LIMIT
    }

    async fn send(&self, d: &DueDelivery) -> Result<Option<String>, SendError> {
        let body = json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": d.channel_id,
            "type": "text",
            "text": {"body": d.content},
        });
        let req = self.http.post(format!("{}/messages", self.base)).json(&body);
        match self.call("sending a message", req).await {
            Ok(v) => Ok(v["messages"][0]["id"].as_str().map(str::to_string)),
            Err(WaError::RetryAfter(d, t)) => Err(SendError::RetryAfter(d, t)),
            Err(WaError::Unavailable(t)) => Err(SendError::Transient(t)),
            Err(WaError::Auth(t) | WaError::Refused(t)) => Err(SendError::Permanent(t)),
        }
    }

    /// The Cloud API's typing indicator needs the message id being answered
    /// (it also marks it read); replies do not wait for it, so none is sent.
    async fn typing(&self, _channel_id: &str) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn graph_errors_are_rate_limits_transient_or_refusals() {
        let body = |code: i64| format!(r#"{{"error":{{"message":"m","type":"OAuthException","code":{code}}}}}"#);
        assert!(matches!(classify("x", 400, None, &body(131056), "t"), WaError::RetryAfter(d, _) if d == RATE_WAIT));
        let wait = Some(Duration::from_secs(2));
        assert!(
            matches!(classify("x", 429, wait, &body(130429), "t"), WaError::RetryAfter(d, _) if d == Duration::from_secs(2))
        );
        assert!(matches!(classify("x", 500, None, &body(131000), "t"), WaError::Unavailable(_)));
        assert!(matches!(classify("x", 502, None, "<html>", "t"), WaError::Unavailable(_)));
        assert!(matches!(classify("x", 401, None, &body(190), "t"), WaError::Auth(_)));
        let refused = classify("x", 400, None, &body(131026), "secret-token");
        assert!(matches!(&refused, WaError::Refused(t) if t.contains("131026") && t.contains(": m")), "{refused:?}");
    }
}
