//! Slack: Socket Mode for inbound events, the Web API (`SLACK_API_URL`) for
//! the bot's identity and its replies.
//!
//! Session: `auth.test` with the bot token (xoxb-) gives the bot's own user
//! id; `apps.connections.open` with the app-level token (xapp-; the variable
//! is `SLACK_APP_TOKEN` or the bot's `settings.appToken`) gives a single-use
//! WebSocket URL; Slack greets with `hello`. Every `events_api` envelope is
//! acknowledged (`{"envelope_id": …}`, on the connection it came on) right
//! after the intake stored its message — well within Slack's 3 s; an
//! envelope whose message could not be stored is not acknowledged, so Slack
//! delivers it again. Redeliveries carry the same `event_id`, which is the
//! intake's platform id: answered once.
//!
//! `disconnect` (`refresh_requested`, or the `warning` before it): a new
//! connection is opened first (a fresh `apps.connections.open`, until its
//! `hello`), then the old one is read for a short drain window — what was
//! already on its way is taken in and acknowledged — and closed. No moment
//! without a connection, no envelope left behind. `link_disabled` (Socket
//! Mode turned off) is an error with a reason.
//!
//! Who is answered: DMs (`channel_type` `im`) always; in channels, messages
//! that mention the bot (Slack sends both a `message` and an `app_mention`
//! for them, with different event ids: the `app_mention` is the one taken,
//! so a mention is answered once), replies in a thread the bot started
//! (`parent_user_id`), and every message of a bound channel. Bots (itself
//! included) and edits/joins (`subtype`) are ignored; `file_share` counts as
//! a message. Replies go in the message's thread — in channels always (the
//! thread of the message answered), in DMs when the message was in one.
//!
//! `chat.postMessage` (bot token): at most 4000 characters per message
//! (Slack's advice; it truncates past 40 000); HTTP 429 with `Retry-After`
//! goes to the outbox; Slack's `{"ok": false, "error": …}` answers
//! (HTTP 200) are refusals with Slack's error code, except its transient
//! ones. Slack has no typing indicator for bots: none is sent.

use std::time::Duration;

use arvis_shared::db::outbox::DueDelivery;
use arvis_shared::intake::Incoming;
use futures::{SinkExt as _, StreamExt as _};
use reqwest::header::AUTHORIZATION;
use secrecy::{ExposeSecret as _, SecretString};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message as Frame;

use super::BotCtx;
use super::http::{Backoff, describe, retry_after_header, scrub};
use super::inbound::{ReplyAt, notice, strip_all, take_in};
use super::outbox::{Outbound, SendError};

/// Slack's advice for one message's text.
const LIMIT: usize = 4000;
const ONLY_TEXT: &str = "I can only read text for now: please send your message as text.";
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a replaced connection is still read after its successor said hello.
const DRAIN: Duration = Duration::from_secs(2);
/// Slack error codes worth trying again.
const TRANSIENT: &[&str] = &["internal_error", "fatal_error", "service_unavailable", "request_timeout", "ratelimited"];
/// Slack error codes that mean the token is wrong (no faster than every 30 s).
const AUTH: &[&str] = &["invalid_auth", "not_authed", "account_inactive", "token_revoked", "not_allowed_token_type"];

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub struct Slack {
    http: reqwest::Client,
    /// `SLACK_API_URL`.
    api: String,
    bot_token: String,
    app_token: String,
    /// An event could not be taken in; the next one that is sets `running` again.
    degraded: std::sync::atomic::AtomicBool,
}

#[derive(Debug)]
enum SlackError {
    RetryAfter(Duration, String),
    /// 5xx, a transport failure, a transient Slack error, a dropped socket.
    Unavailable(String),
    /// `{"ok": false}` with a refusal, or a 4xx.
    Refused(String),
    /// The token was refused.
    Auth(String),
}

impl SlackError {
    fn text(&self) -> &str {
        match self {
            SlackError::RetryAfter(_, t)
            | SlackError::Unavailable(t)
            | SlackError::Refused(t)
            | SlackError::Auth(t) => t,
        }
    }
}

/// What a frame asks the session to do.
enum Step {
    Continue,
    /// Slack will close this connection: open a new one first.
    Refresh,
    Closed(String),
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "type")]
    kind: String,
    envelope_id: Option<String>,
    #[serde(default)]
    payload: Value,
    reason: Option<String>,
}

#[derive(Deserialize)]
struct Event {
    #[serde(rename = "type")]
    kind: String,
    subtype: Option<String>,
    channel: Option<String>,
    channel_type: Option<String>,
    user: Option<String>,
    bot_id: Option<String>,
    #[serde(default)]
    text: String,
    ts: Option<String>,
    thread_ts: Option<String>,
    parent_user_id: Option<String>,
    #[serde(default)]
    files: Vec<Value>,
}

impl Slack {
    pub fn new(ctx: &BotCtx, app_token: SecretString) -> Slack {
        Slack {
            http: ctx.http.clone(),
            api: ctx.deps.config.slack_api_url.clone(),
            bot_token: ctx.token.expose_secret().to_string(),
            app_token: app_token.expose_secret().to_string(),
            degraded: std::sync::atomic::AtomicBool::new(false),
        }
    }

    fn scrub(&self, text: &str) -> String {
        scrub(&scrub(text, &self.bot_token), &self.app_token)
    }

    /// A Web API method with `token`; the `{"ok": true}` body.
    async fn call(&self, method: &str, token: &str, body: &Value) -> Result<Value, SlackError> {
        let resp = self
            .http
            .post(format!("{}/{method}", self.api))
            .header(AUTHORIZATION, format!("Bearer {token}"))
            .timeout(Duration::from_secs(30))
            .json(body)
            .send()
            .await
            .map_err(|e| SlackError::Unavailable(self.scrub(&describe(e, token))))?;
        let status = resp.status().as_u16();
        let wait = retry_after_header(resp.headers());
        let text = resp.text().await.map_err(|e| SlackError::Unavailable(self.scrub(&describe(e, token))))?;
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let error = body["error"].as_str().map(|e| self.scrub(e));
        if status == 429 {
            let what = format!("Slack {method}: 429 {}", error.as_deref().unwrap_or("ratelimited"));
            return Err(SlackError::RetryAfter(wait.unwrap_or(Duration::from_secs(1)), what));
        }
        if status >= 500 {
            return Err(SlackError::Unavailable(format!("Slack {method}: HTTP {status}")));
        }
        if body["ok"] == true {
            return Ok(body);
        }
        let code = error.unwrap_or_else(|| format!("HTTP {status} without a Web API body"));
        let what = format!("Slack {method}: {code}");
        if AUTH.contains(&code.as_str()) {
            return Err(SlackError::Auth(what));
        }
        if TRANSIENT.contains(&code.as_str()) || status == 408 {
            return Err(SlackError::Unavailable(what));
        }
        Err(SlackError::Refused(what))
    }

    /// Runs Socket Mode sessions until the lease is lost, reconnecting with backoff.
    pub async fn run(&self, ctx: &BotCtx) {
        let mut backoff = Backoff::reconnect();
        loop {
            let error = tokio::select! {
                () = ctx.lease.lost.cancelled() => return,
                e = self.session(ctx, &mut backoff) => e,
            };
            let wait = match &error {
                SlackError::RetryAfter(d, _) => *d,
                SlackError::Auth(_) | SlackError::Refused(_) => backoff.next_delay().max(Duration::from_secs(30)),
                SlackError::Unavailable(_) => backoff.next_delay(),
            };
            tracing::warn!(
                bot_id = ctx.bot.id,
                error = error.text(),
                retry_in_ms = wait.as_millis() as u64,
                "slack session ended"
            );
            ctx.lease.report("error", Some(error.text())).await;
            tokio::select! {
                () = ctx.lease.lost.cancelled() => return,
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// A new Socket Mode connection, greeted by `hello`.
    async fn open(&self) -> Result<Socket, SlackError> {
        let opened = self.call("apps.connections.open", &self.app_token, &json!({})).await?;
        let Some(url) = opened["url"].as_str() else {
            return Err(SlackError::Unavailable("Slack apps.connections.open: no url in the answer".into()));
        };
        let mut ws = match tokio::time::timeout(HANDSHAKE_TIMEOUT, tokio_tungstenite::connect_async(url)).await {
            Ok(Ok((ws, _))) => ws,
            // The URL carries a ticket: keep it out of the text.
            Ok(Err(e)) => {
                return Err(SlackError::Unavailable(self.scrub(&format!("cannot connect to Socket Mode: {e}"))));
            }
            Err(_) => return Err(SlackError::Unavailable("connecting to Socket Mode timed out".into())),
        };
        let hello = tokio::time::timeout(HANDSHAKE_TIMEOUT, async {
            loop {
                match ws.next().await {
                    Some(Ok(Frame::Text(t))) => {
                        if serde_json::from_str::<Value>(&t).is_ok_and(|v| v["type"] == "hello") {
                            return Ok(());
                        }
                    }
                    Some(Ok(Frame::Close(f))) => {
                        return Err(format!(
                            "Socket Mode closed before hello: {}",
                            f.map(|f| f.reason.to_string()).unwrap_or_default()
                        ));
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Err(format!("Socket Mode failed before hello: {e}")),
                    None => return Err("Socket Mode closed before hello".to_string()),
                }
            }
        })
        .await;
        match hello {
            Ok(Ok(())) => Ok(ws),
            Ok(Err(why)) => Err(SlackError::Unavailable(why)),
            Err(_) => Err(SlackError::Unavailable("no hello from Socket Mode".into())),
        }
    }

    /// One session: identity, then connections (refreshed without a gap) until one fails.
    async fn session(&self, ctx: &BotCtx, backoff: &mut Backoff) -> SlackError {
        let me = match self.call("auth.test", &self.bot_token, &json!({})).await {
            Ok(v) => match v["user_id"].as_str() {
                Some(id) => id.to_string(),
                None => return SlackError::Unavailable("Slack auth.test: no user_id in the answer".into()),
            },
            Err(e) => return e,
        };
        let mut cur = match self.open().await {
            Ok(ws) => ws,
            Err(e) => return e,
        };
        ctx.lease.report("running", None).await;
        backoff.reset();
        tracing::info!(bot_id = ctx.bot.id, "slack socket mode connected");
        let mut old: Option<Socket> = None;
        let mut drain_until = tokio::time::Instant::now();
        loop {
            tokio::select! {
                f = cur.next() => match self.frame(ctx, &me, &mut cur, f).await {
                    Step::Continue => {}
                    Step::Refresh => {
                        if old.is_some() {
                            // Already replacing one; Slack will close this one after the other.
                            continue;
                        }
                        let next = match self.open().await {
                            Ok(ws) => ws,
                            Err(e) => return e,
                        };
                        tracing::info!(bot_id = ctx.bot.id, "slack connection refreshed");
                        old = Some(std::mem::replace(&mut cur, next));
                        drain_until = tokio::time::Instant::now() + DRAIN;
                    }
                    Step::Closed(why) => return SlackError::Unavailable(why),
                },
                f = async {
                    match old.as_mut() {
                        Some(ws) => ws.next().await,
                        None => std::future::pending().await,
                    }
                } => {
                    if let Some(ws) = old.as_mut()
                        && let Step::Closed(_) = self.frame(ctx, &me, ws, f).await
                    {
                        old = None;
                    }
                }
                () = tokio::time::sleep_until(drain_until), if old.is_some() => {
                    if let Some(mut ws) = old.take() {
                        let _ = tokio::time::timeout(Duration::from_secs(1), ws.close(None)).await;
                    }
                }
            }
        }
    }

    /// Handles one frame of connection `ws`.
    async fn frame(
        &self,
        ctx: &BotCtx,
        me: &str,
        ws: &mut Socket,
        f: Option<Result<Frame, tokio_tungstenite::tungstenite::Error>>,
    ) -> Step {
        let text = match f {
            None => return Step::Closed("the Socket Mode connection closed".into()),
            Some(Err(e)) => return Step::Closed(format!("the Socket Mode connection failed: {e}")),
            Some(Ok(Frame::Close(f))) => {
                let why = f.map(|f| format!("{} {}", u16::from(f.code), f.reason)).unwrap_or_default();
                return Step::Closed(format!("Slack closed the Socket Mode connection {why}"));
            }
            Some(Ok(Frame::Text(t))) => t,
            Some(Ok(_)) => return Step::Continue,
        };
        let Ok(env) = serde_json::from_str::<Envelope>(&text) else {
            tracing::debug!(bot_id = ctx.bot.id, "a Socket Mode frame we cannot read; ignored");
            return Step::Continue;
        };
        match env.kind.as_str() {
            "disconnect" => match env.reason.as_deref() {
                Some("link_disabled") => {
                    Step::Closed("Slack disabled Socket Mode for the app (link_disabled): turn it on again".into())
                }
                _ => Step::Refresh,
            },
            "events_api" => {
                let Some(id) = env.envelope_id else { return Step::Continue };
                match self.event(ctx, me, &env.payload).await {
                    Ok(()) => {
                        if self.degraded.swap(false, std::sync::atomic::Ordering::Relaxed) {
                            ctx.lease.report("running", None).await;
                        }
                        ack(ws, &id).await
                    }
                    Err(why) => {
                        self.degraded.store(true, std::sync::atomic::Ordering::Relaxed);
                        // Not acknowledged: Slack delivers it again.
                        tracing::warn!(bot_id = ctx.bot.id, error = %why, "a Slack event was not taken in");
                        ctx.lease.report("error", Some(&why)).await;
                        Step::Continue
                    }
                }
            }
            // Commands and interactions are not handled; acknowledged so Slack does not retry them.
            "slash_commands" | "interactive" => match env.envelope_id {
                Some(id) => ack(ws, &id).await,
                None => Step::Continue,
            },
            _ => Step::Continue,
        }
    }

    /// One `event_callback`; `Err` means "not taken in, do not acknowledge".
    async fn event(&self, ctx: &BotCtx, me: &str, payload: &Value) -> Result<(), String> {
        let Some(event_id) = payload["event_id"].as_str().filter(|e| !e.is_empty()) else { return Ok(()) };
        let Ok(ev) = serde_json::from_value::<Event>(payload["event"].clone()) else { return Ok(()) };
        let (Some(channel), Some(user), Some(ts)) = (ev.channel.clone(), ev.user.clone(), ev.ts.clone()) else {
            return Ok(());
        };
        if ev.bot_id.is_some() || user == me || ev.subtype.as_deref().is_some_and(|s| s != "file_share") {
            return Ok(());
        }
        let tags = [format!("<@{me}>"), format!("<@{me}|")];
        let mentioned = ev.text.contains(tags[0].as_str()) || ev.text.contains(tags[1].as_str());
        let is_dm = match ev.kind.as_str() {
            "message" => ev.channel_type.as_deref() == Some("im"),
            // A DM's mention also comes as a message.im event: that one is answered.
            "app_mention" if channel.starts_with('D') => return Ok(()),
            "app_mention" => false,
            _ => return Ok(()),
        };
        let bound = ctx.bot.channel_bindings.iter().any(|b| b.channel_id == channel);
        let in_my_thread = ev.parent_user_id.as_deref() == Some(me);
        let take = match ev.kind.as_str() {
            "app_mention" => true,
            // The app_mention of the same message answers a mention in a channel.
            _ if is_dm => true,
            _ => !mentioned && (bound || in_my_thread),
        };
        if !take {
            return Ok(());
        }
        let content = strip_mentions(&ev.text, me);
        let at = ReplyAt {
            reply_to: None,
            thread_id: if is_dm { ev.thread_ts.clone() } else { Some(ev.thread_ts.clone().unwrap_or(ts)) },
        };
        if content.is_empty() {
            if !ev.files.is_empty() {
                return notice(ctx, &channel, event_id, at, ONLY_TEXT).await;
            }
            return Ok(());
        }
        let incoming = Incoming {
            platform: "slack".into(),
            channel_id: channel,
            user_id: Some(user),
            user_name: None,
            content,
            agent_id: if bound { None } else { ctx.bot.default_agent_id },
            is_dm,
            external_id: Some(event_id.to_string()),
            api: None,
        };
        take_in(ctx, incoming, at).await
    }
}

/// `<@U…>` and `<@U…|name>` of the bot removed.
fn strip_mentions(text: &str, me: &str) -> String {
    let mut out = text.to_string();
    let open = format!("<@{me}|");
    while let Some(start) = out.find(open.as_str()) {
        match out[start..].find('>') {
            Some(end) => out.replace_range(start..start + end + 1, " "),
            None => break,
        }
    }
    strip_all(&out, &[format!("<@{me}>")])
}

async fn ack(ws: &mut Socket, envelope_id: &str) -> Step {
    match ws.send(Frame::Text(json!({"envelope_id": envelope_id}).to_string().into())).await {
        Ok(()) => Step::Continue,
        Err(e) => Step::Closed(format!("cannot acknowledge an envelope: {e}")),
    }
}

impl Outbound for Slack {
    fn limit(&self) -> usize {
        LIMIT
    }

    async fn send(&self, d: &DueDelivery) -> Result<Option<String>, SendError> {
        let mut body = json!({"channel": d.channel_id, "text": d.content});
        if let Some(thread) = &d.thread_id {
            body["thread_ts"] = json!(thread);
        }
        match self.call("chat.postMessage", &self.bot_token, &body).await {
            Ok(v) => Ok(v["ts"].as_str().map(str::to_string)),
            Err(SlackError::RetryAfter(d, t)) => Err(SendError::RetryAfter(d, t)),
            Err(SlackError::Unavailable(t)) => Err(SendError::Transient(t)),
            Err(SlackError::Refused(t) | SlackError::Auth(t)) => Err(SendError::Permanent(t)),
        }
    }

    /// Slack has no typing indicator for bots in the Web API.
    async fn typing(&self, _channel_id: &str) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_mention_forms_are_stripped() {
        assert_eq!(strip_mentions("<@U1> hi", "U1"), "hi");
        assert_eq!(strip_mentions("hey <@U1|arvis> there", "U1"), "hey there");
        assert_eq!(strip_mentions("<@U12> not me", "U1"), "<@U12> not me");
    }
}
