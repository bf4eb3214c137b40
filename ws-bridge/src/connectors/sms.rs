//! SMS over Twilio's Programmable Messaging, outbound side. Inbound texts do
//! not come here: Twilio posts them to the gateway's `POST /webhook/sms`,
//! which takes them in for this bot (`gateway::routes::platform_in`); the
//! reply watcher finds the owed replies in the database like any other.
//!
//! Session: there is no socket. The holder checks the account SID and auth
//! token once (`GET {TWILIO_API_URL}/2010-04-01/Accounts/{Sid}.json`), reports
//! `running` and idles until the lease is lost; a refusal is reported
//! (`error`, with Twilio's message) and checked again with backoff.
//!
//! Replies: `POST {TWILIO_API_URL}/2010-04-01/Accounts/{Sid}/Messages.json`,
//! form-encoded `To`, `From` (the bot's number), `Body` (at most 1600
//! characters: longer replies are split), Basic auth `Sid:AuthToken`.
//! Twilio's errors are `{"code","message","more_info","status"}`: 429 (code
//! 20429) waits for `Retry-After` (1 s when absent), 5xx is retried with
//! backoff, any other 4xx is a refusal with Twilio's code and message. Like
//! WhatsApp, Twilio has no idempotency key: a send whose answer was lost is
//! sent again.

use std::time::Duration;

use arvis_shared::db::outbox::DueDelivery;
use reqwest::header::CONTENT_TYPE;
use secrecy::{ExposeSecret as _, SecretString};
use serde::Deserialize;

use super::BotCtx;
use super::http::{Backoff, describe, retry_after_header, scrub};
use super::outbox::{Outbound, SendError};

/// Twilio's limit for one message's `Body`.
const LIMIT: usize = 1600;
/// How long a 429 without `Retry-After` waits.
const RATE_WAIT: Duration = Duration::from_secs(1);

pub struct Sms {
    http: reqwest::Client,
    /// `{TWILIO_API_URL}/2010-04-01/Accounts/{Sid}`.
    account: String,
    sid: String,
    auth_token: String,
    from: String,
}

#[derive(Debug)]
enum TwError {
    RetryAfter(Duration, String),
    Unavailable(String),
    /// A 401/403: the SID or the auth token is wrong.
    Auth(String),
    Refused(String),
}

impl TwError {
    fn text(&self) -> &str {
        match self {
            TwError::RetryAfter(_, t) | TwError::Unavailable(t) | TwError::Auth(t) | TwError::Refused(t) => t,
        }
    }
}

#[derive(Deserialize)]
struct TwilioError {
    code: Option<i64>,
    #[serde(default)]
    message: String,
}

impl Sms {
    pub fn new(ctx: &BotCtx, account_sid: &SecretString, phone_number: &SecretString) -> Sms {
        let sid = account_sid.expose_secret().trim().to_string();
        Sms {
            http: ctx.http.clone(),
            account: format!("{}/2010-04-01/Accounts/{sid}", ctx.deps.config.twilio_api_url),
            sid,
            auth_token: ctx.token.expose_secret().to_string(),
            from: phone_number.expose_secret().trim().to_string(),
        }
    }

    /// Checks the credentials until they work, then idles until the lease is lost.
    pub async fn run(&self, ctx: &BotCtx) {
        let mut backoff = Backoff::reconnect();
        loop {
            let error = tokio::select! {
                () = ctx.lease.lost.cancelled() => return,
                r = self.call("checking the account", self.http.get(format!("{}.json", self.account))) => match r {
                    Ok(_) => {
                        ctx.lease.report("running", None).await;
                        ctx.lease.lost.cancelled().await;
                        return;
                    }
                    Err(e) => e,
                },
            };
            let wait = match &error {
                TwError::RetryAfter(d, _) => *d,
                TwError::Auth(_) | TwError::Refused(_) => backoff.next_delay().max(Duration::from_secs(30)),
                TwError::Unavailable(_) => backoff.next_delay(),
            };
            tracing::warn!(
                bot_id = ctx.bot.id,
                error = error.text(),
                retry_in_ms = wait.as_millis() as u64,
                "twilio check failed"
            );
            ctx.lease.report("error", Some(error.text())).await;
            tokio::select! {
                () = ctx.lease.lost.cancelled() => return,
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    async fn call(&self, what: &str, req: reqwest::RequestBuilder) -> Result<serde_json::Value, TwError> {
        let resp = req
            .basic_auth(&self.sid, Some(&self.auth_token))
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .map_err(|e| TwError::Unavailable(format!("Twilio {what}: {}", describe(e, &self.auth_token))))?;
        let status = resp.status().as_u16();
        let wait = retry_after_header(resp.headers());
        let text = resp
            .text()
            .await
            .map_err(|e| TwError::Unavailable(format!("Twilio {what}: {}", describe(e, &self.auth_token))))?;
        if (200..300).contains(&status) {
            return Ok(serde_json::from_str(&text).unwrap_or(serde_json::Value::Null));
        }
        Err(classify(what, status, wait, &text, &self.auth_token))
    }
}

/// A Twilio error answer as a [`TwError`].
fn classify(what: &str, status: u16, wait: Option<Duration>, body: &str, token: &str) -> TwError {
    let parsed = serde_json::from_str::<TwilioError>(body).ok();
    let code = parsed.as_ref().and_then(|e| e.code);
    let message = parsed.map(|e| e.message).filter(|m| !m.is_empty()).unwrap_or_else(|| "no Twilio error body".into());
    let code_text = code.map(|c| format!(" (code {c})")).unwrap_or_default();
    let text = scrub(&format!("Twilio {what}: HTTP {status}{code_text}: {message}"), token);
    match status {
        429 => TwError::RetryAfter(wait.unwrap_or(RATE_WAIT), text),
        500.. => TwError::Unavailable(text),
        401 | 403 => TwError::Auth(text),
        _ if code == Some(20429) => TwError::RetryAfter(wait.unwrap_or(RATE_WAIT), text),
        _ => TwError::Refused(text),
    }
}

impl Outbound for Sms {
    fn limit(&self) -> usize {
        LIMIT
    }

    async fn send(&self, d: &DueDelivery) -> Result<Option<String>, SendError> {
        let form = form_urlencoded::Serializer::new(String::new())
            .append_pair("To", &d.channel_id)
            .append_pair("From", &self.from)
            .append_pair("Body", &d.content)
            .finish();
        let req = self
            .http
            .post(format!("{}/Messages.json", self.account))
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(form);
        match self.call("sending a message", req).await {
            Ok(v) => Ok(v["sid"].as_str().map(str::to_string)),
            Err(TwError::RetryAfter(d, t)) => Err(SendError::RetryAfter(d, t)),
            Err(TwError::Unavailable(t)) => Err(SendError::Transient(t)),
            Err(TwError::Auth(t) | TwError::Refused(t)) => Err(SendError::Permanent(t)),
        }
    }

    /// SMS has no typing indicator.
    async fn typing(&self, _channel_id: &str) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twilio_errors_are_rate_limits_transient_or_refusals() {
        let body = r#"{"code":20429,"message":"Too Many Requests","more_info":"https://www.twilio.com/docs/errors/20429","status":429}"#;
        let wait = Some(Duration::from_secs(3));
        assert!(
            matches!(classify("x", 429, wait, body, "t"), TwError::RetryAfter(d, _) if d == Duration::from_secs(3))
        );
        assert!(matches!(classify("x", 503, None, "", "t"), TwError::Unavailable(_)));
        assert!(matches!(
            classify("x", 401, None, r#"{"code":20003,"message":"Authenticate"}"#, "t"),
            TwError::Auth(_)
        ));
        let refused = classify("x", 400, None, r#"{"code":21211,"message":"Invalid 'To' Phone Number"}"#, "t");
        assert!(matches!(&refused, TwError::Refused(t) if t.contains("21211")), "{refused:?}");
    }
}
