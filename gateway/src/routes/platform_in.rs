//! Inbound webhooks of the platforms that push their messages (issue #22):
//! the WhatsApp Cloud API (`GET`/`POST /webhook/whatsapp`) and Twilio SMS
//! (`POST /webhook/sms`). Both paths are reserved: no user webhook can take
//! them ([`arvis_shared::domain::webhook::RESERVED_PATHS`]).
//!
//! A request's path: the raw body (413 over [`crate::BODY_LIMIT`]) → the
//! signature over the raw body, before anything is parsed, checked in
//! constant time against the secret of every bot of the platform (enabled or
//! not: a signature proves which of our apps the platform speaks for); none
//! verifies, or the header is missing → 401 `{"error"}` and nothing stored →
//! the bot the message is for, among the bots whose secret verified it
//! (WhatsApp: `metadata.phone_number_id` = the bot's phone-number id; SMS:
//! `To` = the bot's number) → the message through
//! [`arvis_shared::bot_inbound::take_in`], the same function the bridge's
//! connectors call, deduplicated by the platform's id (`wamid`,
//! `MessageSid`) → an answer at once: the agent's reply goes out later
//! through the bot's outbox, sent by the bridge that holds the bot.
//!
//! A verified message for no bot, or for a disabled one, is answered 200 and
//! logged, and nothing is stored: the platform would otherwise retry it for
//! days, and no retry can make it deliverable. A message that could not be
//! stored is a 503, which the platform retries (a retry of the messages that
//! were stored is a duplicate).
//!
//! - WhatsApp: `GET` answers Meta's subscription handshake (`hub.mode` =
//!   `subscribe`, `hub.verify_token` = a WhatsApp bot's verify token → the
//!   `hub.challenge` as text/plain; else 403). `POST` checks
//!   `X-Hub-Signature-256` = `sha256=` + hex HMAC-SHA256(app secret, body).
//!   Text messages (and the text of button replies, and media captions) are
//!   taken in, other media get the "only text" notice, reactions and status
//!   callbacks (`statuses[]`) are ignored. channelId is the sender's number;
//!   every chat is a DM.
//! - SMS: `X-Twilio-Signature` = base64 HMAC-SHA1(auth token, the URL Twilio
//!   called + every POST parameter's name and value, sorted by name). The URL
//!   is `TWILIO_WEBHOOK_URL` when set (behind a proxy), else rebuilt from the
//!   request. The answer is an empty TwiML `<Response/>`: replies are sent
//!   through the REST API, which is what lets them be split, retried and
//!   recorded. channelId is the sender's number.
//!
//! Secrets are never logged; numbers only at debug level.

use axum::extract::rejection::BytesRejection;
use axum::extract::{OriginalUri, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use bytes::Bytes;
use hmac::{KeyInit as _, Mac as _};
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use arvis_shared::bot_inbound::{self, ForBot, ReplyAt};
use arvis_shared::domain::bot::{Bot, SmsVars, WhatsAppVars};
use arvis_shared::intake::Incoming;
use arvis_shared::secret_eq;
use secrecy::ExposeSecret as _;

use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::state::AppState;

type HmacSha256 = hmac::Hmac<sha2::Sha256>;
type HmacSha1 = hmac::Hmac<sha1::Sha1>;

/// What a bot answers to media it cannot read.
const ONLY_TEXT: &str = "I can only read text for now: please send your message as text.";
/// The empty TwiML document: "nothing to send now".
const EMPTY_TWIML: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response></Response>";
/// Meta's challenges are numbers; anything longer is not one.
const MAX_CHALLENGE_LEN: usize = 256;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(whatsapp_verify, whatsapp_receive)).routes(routes!(sms_receive))
}

fn body_or_error(body: Result<Bytes, BytesRejection>) -> ApiResult<Bytes> {
    let too_large = || ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "request body is too large (limit 1 MiB)");
    let body = body.map_err(|r| {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            too_large()
        } else {
            ApiError::bad_request("cannot read request body")
        }
    })?;
    if body.len() > crate::BODY_LIMIT {
        return Err(too_large());
    }
    Ok(body)
}

async fn bots_of(state: &AppState, platform: &str) -> ApiResult<Vec<Bot>> {
    Ok(state.deps.store.list_bots().await?.into_iter().filter(|b| b.platform == platform).collect())
}

/// A variable's value as this gateway sees it (never logged).
fn value_of(state: &AppState, var: &str) -> Option<String> {
    state.deps.config.bot_secret(var).map(|s| s.expose_secret().to_string())
}

fn unavailable(why: String) -> ApiError {
    ApiError::unavailable(why)
}

// ---------------------------------------------------------------- WhatsApp

/// Meta's webhook verification: echoes `hub.challenge` when `hub.mode` is
/// `subscribe` and `hub.verify_token` is a WhatsApp bot's verify token.
#[utoipa::path(get, path = "/webhook/whatsapp", tag = "webhooks", security(()),
    params(
        ("hub.mode" = String, Query, description = "`subscribe`"),
        ("hub.verify_token" = String, Query, description = "the bot's verify token (`WHATSAPP_VERIFY_TOKEN`)"),
        ("hub.challenge" = String, Query, description = "echoed when the token matches")),
    responses(
        (status = 200, description = "the challenge", body = String, content_type = "text/plain"),
        (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn whatsapp_verify(State(state): State<AppState>, RawQuery(query): RawQuery) -> ApiResult<Response> {
    let params: Vec<(String, String)> = form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let get = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let (Some(mode), Some(token), Some(challenge)) = (get("hub.mode"), get("hub.verify_token"), get("hub.challenge"))
    else {
        return Err(ApiError::bad_request("hub.mode, hub.verify_token and hub.challenge are required"));
    };
    if challenge.len() > MAX_CHALLENGE_LEN {
        return Err(ApiError::bad_request("hub.challenge is too long"));
    }
    let mut known = false;
    for bot in bots_of(&state, "whatsapp").await? {
        let var = WhatsAppVars::of(bot.settings.as_ref()).verify_token;
        // Every bot is compared (no early exit): the time does not tell which matched.
        known |= value_of(&state, &var).is_some_and(|v| secret_eq(token, &v));
    }
    if mode != "subscribe" || !known {
        tracing::warn!("WhatsApp webhook verification refused: wrong mode or verify token");
        return Err(ApiError::new(StatusCode::FORBIDDEN, "the verify token does not match any WhatsApp bot"));
    }
    tracing::info!("WhatsApp webhook verified");
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], challenge.to_string()).into_response())
}

#[derive(Deserialize)]
struct WaNotification {
    #[serde(default)]
    entry: Vec<WaEntry>,
}

#[derive(Deserialize)]
struct WaEntry {
    #[serde(default)]
    changes: Vec<WaChange>,
}

#[derive(Deserialize)]
struct WaChange {
    value: Option<WaValue>,
}

#[derive(Deserialize)]
struct WaValue {
    metadata: Option<WaMetadata>,
    #[serde(default)]
    contacts: Vec<WaContact>,
    #[serde(default)]
    messages: Vec<WaMessage>,
}

#[derive(Deserialize)]
struct WaMetadata {
    phone_number_id: Option<String>,
}

#[derive(Deserialize)]
struct WaContact {
    wa_id: Option<String>,
    profile: Option<WaProfile>,
}

#[derive(Deserialize)]
struct WaProfile {
    name: Option<String>,
}

/// One message of a notification. Unknown types and fields are ignored.
#[derive(Deserialize)]
struct WaMessage {
    id: String,
    from: String,
    #[serde(rename = "type", default)]
    kind: String,
    text: Option<WaText>,
    button: Option<WaButton>,
    interactive: Option<serde_json::Value>,
    image: Option<WaMedia>,
    video: Option<WaMedia>,
    document: Option<WaMedia>,
}

#[derive(Deserialize)]
struct WaText {
    #[serde(default)]
    body: String,
}

#[derive(Deserialize)]
struct WaButton {
    #[serde(default)]
    text: String,
}

#[derive(Deserialize)]
struct WaMedia {
    caption: Option<String>,
}

/// What a WhatsApp message is to the bot.
enum WaContent {
    Text(String),
    /// Media without text: answered with the "only text" notice.
    Unreadable,
    /// A reaction, a system message: no answer.
    Ignored,
}

impl WaMessage {
    fn content(&self) -> WaContent {
        let caption = |m: &Option<WaMedia>| m.as_ref().and_then(|m| m.caption.clone());
        let text = match self.kind.as_str() {
            "text" => self.text.as_ref().map(|t| t.body.clone()),
            "button" => self.button.as_ref().map(|b| b.text.clone()),
            "interactive" => self.interactive.as_ref().and_then(|i| {
                ["button_reply", "list_reply"].iter().find_map(|k| i[k]["title"].as_str()).map(str::to_string)
            }),
            "image" => caption(&self.image),
            "video" => caption(&self.video),
            "document" => caption(&self.document),
            "reaction" | "system" | "ephemeral" | "request_welcome" => return WaContent::Ignored,
            _ => None,
        };
        match text.map(|t| t.trim().to_string()).filter(|t| !t.is_empty()) {
            Some(t) => WaContent::Text(t),
            None => WaContent::Unreadable,
        }
    }
}

/// `sha256=<hex>` against the HMAC of the raw body with `secret`, in constant time.
fn whatsapp_signature_ok(secret: &str, signature: &[u8], body: &[u8]) -> bool {
    let Ok(mut mac) = HmacSha256::new_from_slice(secret.as_bytes()) else { return false };
    mac.update(body);
    mac.verify_slice(signature).is_ok()
}

/// Receive WhatsApp Cloud API notifications (messages and status callbacks),
/// signed by Meta with the app secret: `X-Hub-Signature-256: sha256=<hex>`.
/// Answered at once; the reply is sent later through the bot's outbox.
#[utoipa::path(post, path = "/webhook/whatsapp", tag = "webhooks", security(()),
    request_body(content = String, description = "a WhatsApp Business Account notification", content_type = "application/json"),
    responses(
        (status = 200, description = "taken in (or nothing for us in it)"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
async fn whatsapp_receive(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let body = body_or_error(body)?;
    let bad = || ApiError::unauthorized("missing or invalid X-Hub-Signature-256");
    let signature = headers
        .get("x-hub-signature-256")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().strip_prefix("sha256="))
        .and_then(|h| hex::decode(h).ok())
        .ok_or_else(bad)?;
    // The bots whose app secret signed this body, with their phone-number ids.
    let mut signed_for: Vec<(Bot, Option<String>)> = Vec::new();
    for bot in bots_of(&state, "whatsapp").await? {
        let vars = WhatsAppVars::of(bot.settings.as_ref());
        if value_of(&state, &vars.app_secret).is_some_and(|s| whatsapp_signature_ok(&s, &signature, &body)) {
            let phone = value_of(&state, &vars.phone_number_id).map(|p| p.trim().to_string());
            signed_for.push((bot, phone));
        }
    }
    if signed_for.is_empty() {
        tracing::warn!("WhatsApp webhook refused: no WhatsApp bot's app secret verifies its signature");
        return Err(bad());
    }
    let note: WaNotification = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("not a WhatsApp notification: {e}")))?;
    let intake = state.deps.intake();
    for value in note.entry.iter().flat_map(|e| &e.changes).filter_map(|c| c.value.as_ref()) {
        if value.messages.is_empty() {
            continue; // status callbacks (`statuses[]`) and other fields
        }
        let phone_id = value.metadata.as_ref().and_then(|m| m.phone_number_id.as_deref()).unwrap_or_default();
        let Some((bot, _)) = signed_for.iter().find(|(_, p)| p.as_deref() == Some(phone_id)) else {
            tracing::warn!(messages = value.messages.len(), "WhatsApp messages for a phone number no bot has: dropped");
            continue;
        };
        if !bot.is_enabled {
            tracing::info!(
                bot_id = bot.id,
                messages = value.messages.len(),
                "WhatsApp messages for a disabled bot: dropped"
            );
            continue;
        }
        for msg in &value.messages {
            take_whatsapp(&state, &intake, bot, value, msg).await?;
        }
    }
    Ok(StatusCode::OK.into_response())
}

async fn take_whatsapp(
    state: &AppState,
    intake: &arvis_shared::intake::Intake,
    bot: &Bot,
    value: &WaValue,
    msg: &WaMessage,
) -> ApiResult<()> {
    let store = &state.deps.store;
    let for_bot = ForBot { bot_id: bot.id, platform: "whatsapp" };
    let text = match msg.content() {
        WaContent::Ignored => return Ok(()),
        WaContent::Unreadable => {
            return bot_inbound::notice(store, for_bot, &msg.from, &msg.id, ReplyAt::default(), ONLY_TEXT)
                .await
                .map_err(unavailable);
        }
        WaContent::Text(t) => t,
    };
    let name = value
        .contacts
        .iter()
        .find(|c| c.wa_id.as_deref() == Some(msg.from.as_str()))
        .and_then(|c| c.profile.as_ref()?.name.clone());
    let bound = bot.channel_bindings.iter().any(|b| b.channel_id == msg.from);
    let incoming = Incoming {
        platform: "whatsapp".into(),
        channel_id: msg.from.clone(),
        user_id: Some(msg.from.clone()),
        user_name: name,
        content: text,
        agent_id: if bound { None } else { bot.default_agent_id },
        is_dm: true,
        external_id: Some(msg.id.clone()),
        api: None,
    };
    let taken = bot_inbound::take_in(intake, store, for_bot, incoming, ReplyAt::default(), |_| {})
        .await
        .map_err(unavailable)?;
    tracing::debug!(bot_id = bot.id, ?taken, "WhatsApp message taken in");
    Ok(())
}

// ---------------------------------------------------------------- SMS

/// base64 HMAC-SHA1(auth token, url + every name and value sorted by name),
/// compared in constant time (Twilio's "Validating signatures").
fn twilio_signature_ok(auth_token: &str, url: &str, params: &[(String, String)], signature: &[u8]) -> bool {
    let Ok(mut mac) = HmacSha1::new_from_slice(auth_token.as_bytes()) else { return false };
    mac.update(url.as_bytes());
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    for (k, v) in sorted {
        mac.update(k.as_bytes());
        mac.update(v.as_bytes());
    }
    mac.verify_slice(signature).is_ok()
}

/// The URL Twilio signed: `TWILIO_WEBHOOK_URL`, else this request's own.
fn twilio_url(state: &AppState, headers: &HeaderMap, uri: &axum::http::Uri) -> String {
    if let Some(url) = &state.deps.config.twilio_webhook_url {
        return url.clone();
    }
    let h =
        |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(|v| v.split(',').next().unwrap_or(v).trim());
    let scheme = h("x-forwarded-proto").unwrap_or("http");
    let host = h("x-forwarded-host").or_else(|| h("host")).unwrap_or("localhost");
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/webhook/sms");
    format!("{scheme}://{host}{path}")
}

fn twiml() -> Response {
    ([(header::CONTENT_TYPE, "text/xml; charset=utf-8")], EMPTY_TWIML).into_response()
}

/// Receive an SMS from Twilio (form-encoded, `X-Twilio-Signature`). Answered
/// at once with an empty TwiML response; the reply is sent later through the
/// bot's outbox (Twilio's REST API).
#[utoipa::path(post, path = "/webhook/sms", tag = "webhooks", security(()),
    request_body(content = String, description = "Twilio's message webhook parameters (MessageSid, From, To, Body, …)",
        content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "an empty TwiML response", body = String, content_type = "text/xml"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
async fn sms_receive(
    State(state): State<AppState>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let body = body_or_error(body)?;
    let bad = || ApiError::unauthorized("missing or invalid X-Twilio-Signature");
    let signature = headers
        .get("x-twilio-signature")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| base64::engine::general_purpose::STANDARD.decode(v.trim()).ok())
        .ok_or_else(bad)?;
    let params: Vec<(String, String)> =
        form_urlencoded::parse(&body).map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
    let url = twilio_url(&state, &headers, &uri);
    let mut signed_for: Vec<(Bot, Option<String>)> = Vec::new();
    for bot in bots_of(&state, "sms").await? {
        if value_of(&state, &bot.token).is_some_and(|t| twilio_signature_ok(&t, &url, &params, &signature)) {
            let number =
                value_of(&state, &SmsVars::of(bot.settings.as_ref()).phone_number).map(|n| n.trim().to_string());
            signed_for.push((bot, number));
        }
    }
    if signed_for.is_empty() {
        tracing::warn!(
            "Twilio webhook refused: no SMS bot's auth token verifies its signature (is TWILIO_WEBHOOK_URL the URL Twilio calls?)"
        );
        return Err(bad());
    }
    let get = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let (Some(sid), Some(from), Some(to)) = (get("MessageSid"), get("From"), get("To")) else {
        return Err(ApiError::bad_request("MessageSid, From and To are required"));
    };
    let Some((bot, _)) = signed_for.iter().find(|(_, n)| n.as_deref() == Some(to.trim())) else {
        tracing::warn!("an SMS to a number no SMS bot has: dropped");
        return Ok(twiml());
    };
    if !bot.is_enabled {
        tracing::info!(bot_id = bot.id, "an SMS for a disabled bot: dropped");
        return Ok(twiml());
    }
    let store = &state.deps.store;
    let for_bot = ForBot { bot_id: bot.id, platform: "sms" };
    let text = get("Body").unwrap_or_default().trim().to_string();
    if text.is_empty() {
        let media = get("NumMedia").and_then(|n| n.parse::<u32>().ok()).unwrap_or(0);
        if media > 0 {
            bot_inbound::notice(store, for_bot, from, sid, ReplyAt::default(), ONLY_TEXT).await.map_err(unavailable)?;
        }
        return Ok(twiml());
    }
    let bound = bot.channel_bindings.iter().any(|b| b.channel_id == from);
    let incoming = Incoming {
        platform: "sms".into(),
        channel_id: from.to_string(),
        user_id: Some(from.to_string()),
        user_name: None,
        content: text,
        agent_id: if bound { None } else { bot.default_agent_id },
        is_dm: true,
        external_id: Some(sid.to_string()),
        api: None,
    };
    let taken = bot_inbound::take_in(&state.deps.intake(), store, for_bot, incoming, ReplyAt::default(), |_| {})
        .await
        .map_err(unavailable)?;
    tracing::debug!(bot_id = bot.id, ?taken, "SMS taken in");
    Ok(twiml())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twilio_signatures_follow_the_documented_example() {
        // The example of Twilio's request-validation documentation (twilio-php's
        // docs/usage/validation.rst): auth token 12345, this URL and these
        // parameters sign to RSOYDt4T1cUTdK1PDd93/VVr8B8=.
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
        let params: Vec<(String, String)> = [
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+14158675309"),
            ("Digits", "1234"),
            ("From", "+14158675309"),
            ("To", "+18005551212"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let sig = base64::engine::general_purpose::STANDARD.decode("RSOYDt4T1cUTdK1PDd93/VVr8B8=").unwrap_or_default();
        assert!(twilio_signature_ok("12345", url, &params, &sig));
        assert!(!twilio_signature_ok("12346", url, &params, &sig));
        assert!(!twilio_signature_ok("12345", "https://mycompany.com/myapp.php", &params, &sig));
    }

    #[test]
    fn whatsapp_messages_are_text_media_or_ignored() {
        let parse = |v: serde_json::Value| serde_json::from_value::<WaMessage>(v).map(|m| m.content()).ok();
        let base = |kind: &str, extra: serde_json::Value| {
            let mut m = serde_json::json!({"id": "wamid.1", "from": "15550001", "type": kind});
            if let (Some(m), Some(e)) = (m.as_object_mut(), extra.as_object()) {
                m.extend(e.clone());
            }
            m
        };
        assert!(
            matches!(parse(base("text", serde_json::json!({"text": {"body": " hi "}}))), Some(WaContent::Text(t)) if t == "hi")
        );
        assert!(matches!(
            parse(base("image", serde_json::json!({"image": {"id": "m1"}}))),
            Some(WaContent::Unreadable)
        ));
        assert!(matches!(
            parse(base("image", serde_json::json!({"image": {"id": "m1", "caption": "look"}}))),
            Some(WaContent::Text(t)) if t == "look"
        ));
        assert!(matches!(
            parse(base("reaction", serde_json::json!({"reaction": {"emoji": "👍"}}))),
            Some(WaContent::Ignored)
        ));
        assert!(matches!(parse(base("sticker", serde_json::json!({}))), Some(WaContent::Unreadable)));
    }
}
