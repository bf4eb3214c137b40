//! Telegram over the Bot API (HTTPS, `TELEGRAM_API_URL`): `getMe` for the
//! bot's own id and username; `getUpdates` long polling (`offset`, `timeout`
//! 25 s, only `message` updates); `sendMessage` (≤ 4096 characters, plain
//! text: no parse mode, so no reply is lost to a Markdown error); and
//! `sendChatAction` `typing` while the agent works.
//!
//! channelId is the chat id; private chats are DMs. In groups the bot answers
//! when @mentioned (the mention is stripped), when a message replies to one of
//! its own, or when the chat is in the bot's `channelBindings`.
//!
//! The offset is the cursor: after every batch of updates has gone through the
//! intake (and the owed reply is recorded), `update_id + 1` is written under
//! the lease, then sent as the next `offset` (which is what confirms updates
//! to Telegram). A crash in between re-reads the batch, and the intake's
//! de-duplication by `<bot id>:<update_id>` answers nothing twice.
//!
//! Known limit: Telegram has no idempotency key for `sendMessage`; a send that
//! Telegram accepted but whose answer was lost (a timeout) is sent again.

use std::time::Duration;

use arvis_shared::db::outbox::DueDelivery;
use arvis_shared::intake::Incoming;
use secrecy::ExposeSecret as _;
use serde::Deserialize;
use serde_json::{Value, json};

use super::BotCtx;
use super::http::{Backoff, describe, retry_after_header, scrub, seconds};
use super::inbound::{ReplyAt, notice, take_in};
use super::outbox::{Outbound, SendError};

/// Telegram's limit for one message.
const LIMIT: usize = 4096;
/// The long poll's `timeout`, seconds.
const POLL_SECS: u64 = 25;
const ONLY_TEXT: &str = "I can only read text for now: please send your message as text.";

pub struct Telegram {
    http: reqwest::Client,
    /// `{TELEGRAM_API_URL}/bot<token>`: never logged.
    base: String,
    token: String,
}

#[derive(Debug)]
enum TgError {
    RetryAfter(Duration, String),
    /// 5xx, or a transport failure.
    Unavailable(String),
    /// A 4xx other than 429.
    Refused(u16, String),
}

impl TgError {
    fn text(&self) -> &str {
        match self {
            TgError::RetryAfter(_, t) | TgError::Unavailable(t) | TgError::Refused(_, t) => t,
        }
    }
}

#[derive(Deserialize)]
struct Envelope {
    ok: bool,
    result: Option<Value>,
    description: Option<String>,
    error_code: Option<u16>,
    parameters: Option<Parameters>,
}

#[derive(Deserialize)]
struct Parameters {
    retry_after: Option<f64>,
}

#[derive(Deserialize)]
struct Me {
    id: i64,
    username: Option<String>,
}

#[derive(Deserialize)]
struct Update {
    update_id: i64,
    message: Option<Message>,
}

#[derive(Deserialize)]
struct Message {
    message_id: i64,
    from: Option<User>,
    chat: Chat,
    text: Option<String>,
    caption: Option<String>,
    #[serde(default)]
    entities: Vec<Entity>,
    #[serde(default)]
    caption_entities: Vec<Entity>,
    reply_to_message: Option<Box<Message>>,
    photo: Option<Value>,
    document: Option<Value>,
    voice: Option<Value>,
    audio: Option<Value>,
    video: Option<Value>,
    sticker: Option<Value>,
    video_note: Option<Value>,
    animation: Option<Value>,
}

#[derive(Deserialize)]
struct User {
    id: i64,
    #[serde(default)]
    is_bot: bool,
    first_name: Option<String>,
    username: Option<String>,
}

#[derive(Deserialize)]
struct Chat {
    id: i64,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Deserialize)]
struct Entity {
    #[serde(rename = "type")]
    kind: String,
    user: Option<User>,
}

impl Message {
    fn has_attachment(&self) -> bool {
        [
            &self.photo,
            &self.document,
            &self.voice,
            &self.audio,
            &self.video,
            &self.sticker,
            &self.video_note,
            &self.animation,
        ]
        .iter()
        .any(|a| a.is_some())
    }
}

/// The cursor stored under the lease.
#[derive(serde::Serialize, Deserialize)]
struct Cursor {
    offset: i64,
}

impl Telegram {
    pub fn new(ctx: &BotCtx) -> Telegram {
        let token = ctx.token.expose_secret().to_string();
        Telegram { http: ctx.http.clone(), base: format!("{}/bot{}", ctx.deps.config.telegram_api_url, token), token }
    }

    async fn call(&self, method: &str, body: &Value, timeout: Duration) -> Result<Value, TgError> {
        let resp = self
            .http
            .post(format!("{}/{method}", self.base))
            .timeout(timeout)
            .json(body)
            .send()
            .await
            .map_err(|e| TgError::Unavailable(describe(e, &self.token)))?;
        let status = resp.status().as_u16();
        let header_wait = retry_after_header(resp.headers());
        let text = resp.text().await.map_err(|e| TgError::Unavailable(describe(e, &self.token)))?;
        let envelope: Option<Envelope> = serde_json::from_str(&text).ok();
        let Some(env) = envelope else {
            let what = format!("Telegram answered {method} with HTTP {status} and no Bot API body");
            return Err(if !(400..500).contains(&status) {
                TgError::Unavailable(what)
            } else {
                TgError::Refused(status, what)
            });
        };
        if env.ok {
            return Ok(env.result.unwrap_or(Value::Null));
        }
        let code = env.error_code.unwrap_or(status);
        let description = scrub(env.description.as_deref().unwrap_or("no description"), &self.token);
        let text = format!("Telegram {method}: {code} {description}");
        if code == 429 {
            let wait = env.parameters.and_then(|p| p.retry_after).and_then(seconds).or(header_wait);
            return Err(TgError::RetryAfter(wait.unwrap_or(Duration::from_secs(1)), text));
        }
        if code >= 500 {
            return Err(TgError::Unavailable(text));
        }
        Err(TgError::Refused(code, text))
    }

    /// Runs sessions until the lease is lost, reconnecting with backoff.
    pub async fn run(&self, ctx: &BotCtx) {
        let mut offset = ctx
            .lease
            .cursor
            .as_deref()
            .and_then(|c| serde_json::from_str::<Cursor>(c).ok())
            .map(|c| c.offset)
            .unwrap_or(0);
        let mut backoff = Backoff::reconnect();
        loop {
            let error = tokio::select! {
                () = ctx.lease.lost.cancelled() => return,
                r = self.session(ctx, &mut offset, &mut backoff) => match r {
                    Ok(()) => return,
                    Err(e) => e,
                },
            };
            let wait = match &error {
                TgError::RetryAfter(d, _) => *d,
                // A refused token does not fix itself quickly: no faster than every 30 s.
                TgError::Refused(401 | 403 | 404, _) => backoff.next_delay().max(Duration::from_secs(30)),
                _ => backoff.next_delay(),
            };
            tracing::warn!(
                bot_id = ctx.bot.id,
                error = error.text(),
                retry_in_ms = wait.as_millis() as u64,
                "telegram session failed"
            );
            ctx.lease.report("error", Some(error.text())).await;
            tokio::select! {
                () = ctx.lease.lost.cancelled() => return,
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    async fn session(&self, ctx: &BotCtx, offset: &mut i64, backoff: &mut Backoff) -> Result<(), TgError> {
        let me: Me = serde_json::from_value(self.call("getMe", &json!({}), Duration::from_secs(15)).await?)
            .map_err(|e| TgError::Unavailable(format!("Telegram getMe: unexpected answer: {e}")))?;
        ctx.lease.report("running", None).await;
        let mut first = true;
        loop {
            let body = json!({"offset": *offset, "timeout": POLL_SECS, "allowed_updates": ["message"]});
            let result = self.call("getUpdates", &body, Duration::from_secs(POLL_SECS + 15)).await?;
            if first {
                // One good poll after a failure: the next failure starts the backoff over.
                backoff.reset();
                first = false;
            }
            let updates: Vec<Update> = serde_json::from_value(result)
                .map_err(|e| TgError::Unavailable(format!("Telegram getUpdates: unexpected answer: {e}")))?;
            let mut next = *offset;
            for u in updates {
                if u.update_id < *offset {
                    continue;
                }
                self.take(ctx, &me, &u).await?;
                next = next.max(u.update_id + 1);
            }
            if next != *offset {
                let cursor = serde_json::to_string(&Cursor { offset: next }).unwrap_or_default();
                if !ctx.lease.write_cursor(&cursor).await && ctx.lease.lost.is_cancelled() {
                    return Ok(());
                }
                *offset = next;
            }
        }
    }

    /// One update through the intake; an error means "not taken in, try again".
    async fn take(&self, ctx: &BotCtx, me: &Me, u: &Update) -> Result<(), TgError> {
        let Some(msg) = &u.message else { return Ok(()) };
        let Some(from) = &msg.from else { return Ok(()) };
        if from.is_bot {
            return Ok(());
        }
        let chat_id = msg.chat.id.to_string();
        let is_dm = msg.chat.kind == "private";
        let text = msg.text.as_deref().or(msg.caption.as_deref()).unwrap_or_default();
        let entities = if msg.text.is_some() { &msg.entities } else { &msg.caption_entities };
        let handle = me.username.as_deref().map(|n| format!("@{}", n.to_lowercase()));
        let mentioned = handle.as_ref().is_some_and(|h| text.to_lowercase().contains(h.as_str()))
            || entities.iter().any(|e| e.kind == "text_mention" && e.user.as_ref().is_some_and(|u| u.id == me.id));
        let replied = msg.reply_to_message.as_ref().and_then(|r| r.from.as_ref()).is_some_and(|f| f.id == me.id);
        let bound = ctx.bot.channel_bindings.iter().any(|b| b.channel_id == chat_id);
        if !(is_dm || mentioned || replied || bound) {
            return Ok(());
        }
        let content = match &handle {
            Some(h) => strip_mention(text, h),
            None => text.trim().to_string(),
        };
        let external = format!("{}:{}", me.id, u.update_id);
        let reply_to = (!is_dm).then(|| msg.message_id.to_string());
        if content.is_empty() {
            if msg.has_attachment() {
                self.notice(ctx, &chat_id, &external, reply_to, ONLY_TEXT).await?;
            }
            return Ok(());
        }
        let incoming = Incoming {
            platform: "telegram".into(),
            channel_id: chat_id.clone(),
            user_id: Some(from.id.to_string()),
            user_name: from.username.clone().or_else(|| from.first_name.clone()),
            content,
            // A bound chat is routed by its binding; elsewhere the bot's default agent answers.
            agent_id: if bound { None } else { ctx.bot.default_agent_id },
            is_dm,
            external_id: Some(external),
            api: None,
        };
        take_in(ctx, incoming, ReplyAt { reply_to, thread_id: None }).await.map_err(TgError::Unavailable)
    }

    /// An answer that is not an agent's (only text is read).
    async fn notice(
        &self,
        ctx: &BotCtx,
        chat_id: &str,
        external: &str,
        reply_to: Option<String>,
        text: &str,
    ) -> Result<(), TgError> {
        notice(ctx, chat_id, external, ReplyAt { reply_to, thread_id: None }, text).await.map_err(TgError::Unavailable)
    }
}

/// `text` without the bot's @handle (any case), trimmed.
fn strip_mention(text: &str, handle: &str) -> String {
    let lower = text.to_lowercase();
    // Lower-casing can change byte lengths outside ASCII; strip only when it did not.
    if lower.len() != text.len() {
        return text.trim().to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while let Some(pos) = lower[i..].find(handle) {
        out.push_str(&text[i..i + pos]);
        i += pos + handle.len();
    }
    out.push_str(&text[i..]);
    out.split_whitespace().collect::<Vec<_>>().join(" ").trim().to_string()
}

impl Outbound for Telegram {
    fn limit(&self) -> usize {
        LIMIT
    }

    async fn send(&self, d: &DueDelivery) -> Result<Option<String>, SendError> {
        let chat: Value =
            d.channel_id.parse::<i64>().map(Value::from).unwrap_or_else(|_| Value::from(d.channel_id.clone()));
        let mut body = json!({"chat_id": chat, "text": d.content});
        if let Some(to) = d.reply_to.as_deref().and_then(|r| r.parse::<i64>().ok()) {
            body["reply_parameters"] = json!({"message_id": to, "allow_sending_without_reply": true});
        }
        match self.call("sendMessage", &body, Duration::from_secs(30)).await {
            Ok(result) => Ok(result.get("message_id").map(|id| id.to_string())),
            Err(TgError::RetryAfter(d, t)) => Err(SendError::RetryAfter(d, t)),
            Err(TgError::Unavailable(t)) => Err(SendError::Transient(t)),
            Err(TgError::Refused(_, t)) => Err(SendError::Permanent(t)),
        }
    }

    async fn typing(&self, channel_id: &str) {
        let chat: Value = channel_id.parse::<i64>().map(Value::from).unwrap_or_else(|_| Value::from(channel_id));
        if let Err(e) =
            self.call("sendChatAction", &json!({"chat_id": chat, "action": "typing"}), Duration::from_secs(10)).await
        {
            tracing::debug!(error = e.text(), "typing indicator not sent");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mention_is_stripped_in_any_case() {
        assert_eq!(strip_mention("@Arvis_Bot what is 2+2?", "@arvis_bot"), "what is 2+2?");
        assert_eq!(strip_mention("hey @arvis_bot, help", "@arvis_bot"), "hey , help");
        assert_eq!(strip_mention("@arvis_bot", "@arvis_bot"), "");
    }
}
