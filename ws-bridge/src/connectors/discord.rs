//! Discord: Gateway v10 with JSON encoding for inbound messages, REST
//! (`DISCORD_API_URL`) for replies and typing.
//!
//! Gateway session: `GET /gateway/bot` gives the URL (`?v=10&encoding=json`
//! is appended); HELLO gives the heartbeat interval; the first heartbeat goes
//! out after `interval × random(0..1)` (jitter, so bots that reconnected
//! together do not beat together), then every interval, carrying the last
//! handled sequence number. A heartbeat due while the previous one got no ACK
//! means a zombied connection: it is dropped and resumed. IDENTIFY asks for
//! GUILDS, GUILD_MESSAGES, DIRECT_MESSAGES and MESSAGE_CONTENT (privileged:
//! without it in the Developer Portal Discord closes with 4014). READY gives
//! `session_id`, `resume_gateway_url` and the bot's own user id.
//!
//! Reconnects: a dropped connection, a zombie, op 7 or a resumable close code
//! → RESUME (`token`, `session_id`, `seq`) on `resume_gateway_url`; Discord
//! replays what came after `seq`. op 9 with `d: false`, close 4007/4009 →
//! a fresh IDENTIFY after 1–5 s. 4004 and 4010–4014 forbid reconnecting: the
//! bot shows `error` with the reason until it is edited or re-enabled.
//!
//! The cursor is (session id, resume URL, seq, own id), written under the
//! lease after every MESSAGE_CREATE taken in, so a bridge that takes the bot
//! over resumes where the old one stopped. `seq` only moves past an event
//! once it was handled: an event the intake could not store is not
//! acknowledged by a heartbeat and comes back on the RESUME that follows.
//! Replays and overlaps (a cursor a little behind) are answered once: the
//! intake de-duplicates by the Discord message id.
//!
//! Who is answered: DMs (no `guild_id`) always; in guild channels, messages
//! that mention the bot (`<@id>` / `<@!id>`, stripped before routing), reply
//! to one of its messages, or come from a bound channel. Bots (itself
//! included) and webhooks are ignored.
//!
//! REST: `POST /channels/{id}/messages` (≤ 2000 characters, with a `nonce`
//! and `enforce_nonce` so a retried send after a lost answer is not posted
//! twice, mentions disabled so an agent cannot ping @everyone),
//! `POST /channels/{id}/typing`. A 429's `retry_after` (seconds, JSON body;
//! else `Retry-After`) goes to the outbox; `X-RateLimit-Remaining: 0` with
//! `X-RateLimit-Reset-After` makes the next send on that route wait.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use arvis_shared::db::outbox::DueDelivery;
use arvis_shared::intake::Incoming;
use futures::{SinkExt as _, StreamExt as _};
use rand::Rng as _;
use reqwest::Method;
use reqwest::header::{AUTHORIZATION, HeaderMap};
use secrecy::ExposeSecret as _;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message as Frame;

use super::BotCtx;
use super::http::{Backoff, describe, retry_after_header, scrub, seconds};
use super::inbound::{ReplyAt, notice, strip_all, take_in};
use super::outbox::{Outbound, SendError};

/// Discord's limit for one message.
const LIMIT: usize = 2000;
/// GUILDS (1 << 0) | GUILD_MESSAGES (1 << 9) | DIRECT_MESSAGES (1 << 12) | MESSAGE_CONTENT (1 << 15).
pub const INTENTS: u64 = (1 << 0) | (1 << 9) | (1 << 12) | (1 << 15);
const ONLY_TEXT: &str = "I can only read text for now: please send your message as text.";
/// Connecting and the HELLO must not take longer.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);
/// Failed connections to a resume URL before a fresh IDENTIFY (the URL may be gone).
const RESUME_TRIES: u32 = 3;
/// Longest wait for a route's rate-limit bucket before a send.
const MAX_BUCKET_WAIT: Duration = Duration::from_secs(60);

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub struct Discord {
    http: reqwest::Client,
    /// `DISCORD_API_URL`.
    api: String,
    token: String,
    /// Route → when its rate-limit bucket refills (it answered `X-RateLimit-Remaining: 0`).
    buckets: Mutex<HashMap<String, Instant>>,
}

#[derive(Debug)]
enum RestError {
    RetryAfter(Duration, String),
    /// 5xx, or a transport failure.
    Unavailable(String),
    /// A 4xx other than 429.
    Refused(String),
}

/// How a gateway connection ended.
#[derive(Debug)]
enum Ended {
    /// Reconnect after at least `min_wait`; `resume` false → a fresh IDENTIFY.
    /// `up`: the connection had been READY or RESUMED (a quick reconnect, no error shown).
    Retry { why: String, resume: bool, up: bool, min_wait: Duration },
    /// Never reconnect (4004, 4010–4014).
    Fatal(String),
}

/// The resume point, stored under the lease.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Cursor {
    session_id: String,
    resume_gateway_url: String,
    seq: Option<i64>,
    user_id: String,
}

#[derive(Deserialize)]
struct Payload {
    op: u8,
    #[serde(default)]
    d: Value,
    s: Option<i64>,
    t: Option<String>,
}

#[derive(Deserialize)]
struct MessageCreate {
    id: String,
    channel_id: String,
    guild_id: Option<String>,
    author: Author,
    #[serde(default)]
    content: String,
    #[serde(default)]
    mentions: Vec<Author>,
    #[serde(default)]
    attachments: Vec<Value>,
    #[serde(default)]
    sticker_items: Vec<Value>,
    referenced_message: Option<Box<Referenced>>,
    webhook_id: Option<String>,
    #[serde(default, rename = "type")]
    kind: i64,
}

#[derive(Deserialize)]
struct Author {
    id: String,
    username: Option<String>,
    global_name: Option<String>,
    #[serde(default)]
    bot: bool,
}

#[derive(Deserialize)]
struct Referenced {
    author: Option<Author>,
}

/// What a close code asks for (Discord's "Gateway Close Event Codes").
fn closed(code: u16, reason: &str, up: bool) -> Ended {
    let text = format!("Discord closed the gateway: {code} {reason}");
    match code {
        4004 => Ended::Fatal(format!("{text} (authentication failed: the token was refused)")),
        4010..=4012 => Ended::Fatal(format!("{text} (invalid shard, sharding required or invalid API version)")),
        4013 => Ended::Fatal(format!("{text} (invalid intents)")),
        4014 => Ended::Fatal(format!(
            "{text} (disallowed intents: enable MESSAGE_CONTENT under Bot → Privileged Gateway Intents)"
        )),
        // Invalid seq, session timed out: a new session.
        4007 | 4009 => Ended::Retry { why: text, resume: false, up, min_wait: Duration::ZERO },
        _ => Ended::Retry { why: text, resume: true, up, min_wait: Duration::ZERO },
    }
}

fn gateway_url(base: &str) -> String {
    let base = base.trim_end_matches('/');
    if base.contains('?') { format!("{base}&v=10&encoding=json") } else { format!("{base}/?v=10&encoding=json") }
}

/// A snowflake: digits only (it goes into a URL path).
fn is_snowflake(id: &str) -> bool {
    !id.is_empty() && id.len() <= 25 && id.bytes().all(|b| b.is_ascii_digit())
}

impl Discord {
    pub fn new(ctx: &BotCtx) -> Discord {
        Discord {
            http: ctx.http.clone(),
            api: ctx.deps.config.discord_api_url.clone(),
            token: ctx.token.expose_secret().to_string(),
            buckets: Mutex::default(),
        }
    }

    async fn rest(&self, method: Method, path: &str, body: Option<&Value>) -> Result<Value, RestError> {
        let mut req = self
            .http
            .request(method.clone(), format!("{}{path}", self.api))
            .header(AUTHORIZATION, format!("Bot {}", self.token))
            .timeout(Duration::from_secs(30));
        req = match body {
            Some(b) => req.json(b),
            None => req.body(Vec::new()),
        };
        let resp = req.send().await.map_err(|e| RestError::Unavailable(describe(e, &self.token)))?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        self.note_bucket(path, &headers);
        let text = resp.text().await.map_err(|e| RestError::Unavailable(describe(e, &self.token)))?;
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if (200..300).contains(&status) {
            return Ok(body);
        }
        let message = body["message"].as_str().map(|m| scrub(m, &self.token)).unwrap_or_else(|| "no message".into());
        let code = body["code"].as_i64().map(|c| format!(" (code {c})")).unwrap_or_default();
        let what = format!("Discord {method} {path}: {status} {message}{code}");
        if status == 429 {
            let wait = body["retry_after"]
                .as_f64()
                .and_then(seconds)
                .or_else(|| retry_after_header(&headers))
                .or_else(|| reset_after(&headers))
                .unwrap_or(Duration::from_secs(1));
            return Err(RestError::RetryAfter(wait, what));
        }
        if status >= 500 || status == 408 {
            return Err(RestError::Unavailable(what));
        }
        Err(RestError::Refused(what))
    }

    /// Remembers an exhausted bucket (`X-RateLimit-Remaining: 0`) until it refills.
    fn note_bucket(&self, route: &str, headers: &HeaderMap) {
        let remaining = headers.get("x-ratelimit-remaining").and_then(|v| v.to_str().ok()).map(str::trim);
        if remaining != Some("0") {
            return;
        }
        if let Some(after) = reset_after(headers)
            && let Ok(mut b) = self.buckets.lock()
        {
            b.insert(route.to_string(), Instant::now() + after.min(MAX_BUCKET_WAIT));
        }
    }

    /// Waits until the route's bucket has room again.
    async fn wait_bucket(&self, route: &str) {
        let until = self.buckets.lock().ok().and_then(|mut b| b.remove(route));
        if let Some(until) = until {
            let now = Instant::now();
            if until > now {
                tokio::time::sleep(until - now).await;
            }
        }
    }

    async fn fetch_gateway(&self) -> Result<String, Ended> {
        match self.rest(Method::GET, "/gateway/bot", None).await {
            Ok(v) => v["url"].as_str().map(str::to_string).ok_or_else(|| Ended::Retry {
                why: "Discord GET /gateway/bot: no url in the answer".into(),
                resume: false,
                up: false,
                min_wait: Duration::ZERO,
            }),
            Err(RestError::RetryAfter(d, why)) => Err(Ended::Retry { why, resume: false, up: false, min_wait: d }),
            Err(RestError::Unavailable(why)) => {
                Err(Ended::Retry { why, resume: false, up: false, min_wait: Duration::ZERO })
            }
            // A refused token does not fix itself quickly: no faster than every 30 s.
            Err(RestError::Refused(why)) => {
                Err(Ended::Retry { why, resume: false, up: false, min_wait: Duration::from_secs(30) })
            }
        }
    }

    /// Runs gateway connections until the lease is lost or a close code forbids reconnecting.
    pub async fn run(&self, ctx: &BotCtx) {
        let mut cursor: Option<Cursor> = ctx.lease.cursor.as_deref().and_then(|c| serde_json::from_str(c).ok());
        let mut backoff = Backoff::reconnect();
        let mut failed_resumes = 0;
        loop {
            let ended = tokio::select! {
                () = ctx.lease.lost.cancelled() => return,
                e = self.connection(ctx, &mut cursor, &mut backoff, &mut failed_resumes) => e,
            };
            match ended {
                Ended::Fatal(why) => {
                    tracing::warn!(bot_id = ctx.bot.id, error = %why, "discord gateway refused the bot; not reconnecting");
                    ctx.lease.report("error", Some(&why)).await;
                    ctx.lease.lost.cancelled().await;
                    return;
                }
                Ended::Retry { why, resume, up, min_wait } => {
                    if !resume {
                        cursor = None;
                    }
                    let wait = if up {
                        Duration::from_millis(rand::rng().random_range(0..500)).max(min_wait)
                    } else {
                        backoff.next_delay().max(min_wait)
                    };
                    tracing::info!(
                        bot_id = ctx.bot.id,
                        error = %why,
                        resume,
                        retry_in_ms = wait.as_millis() as u64,
                        "discord gateway connection ended"
                    );
                    if !up {
                        ctx.lease.report("error", Some(&why)).await;
                    }
                    tokio::select! {
                        () = ctx.lease.lost.cancelled() => return,
                        () = tokio::time::sleep(wait) => {}
                    }
                }
            }
        }
    }

    /// One gateway connection: HELLO, IDENTIFY or RESUME, then events and heartbeats.
    async fn connection(
        &self,
        ctx: &BotCtx,
        cursor: &mut Option<Cursor>,
        backoff: &mut Backoff,
        failed_resumes: &mut u32,
    ) -> Ended {
        let retry = |why: String, resume: bool, up: bool| Ended::Retry { why, resume, up, min_wait: Duration::ZERO };
        let base = match cursor.as_ref() {
            Some(c) => c.resume_gateway_url.clone(),
            None => match self.fetch_gateway().await {
                Ok(u) => u,
                Err(e) => return e,
            },
        };
        let resuming = cursor.is_some();
        let connected =
            tokio::time::timeout(HANDSHAKE_TIMEOUT, tokio_tungstenite::connect_async(gateway_url(&base))).await;
        let mut ws: Socket = match connected {
            Ok(Ok((ws, _))) => ws,
            failed => {
                let why = match failed {
                    Ok(Err(e)) => scrub(&format!("cannot connect to the Discord gateway: {e}"), &self.token),
                    _ => "connecting to the Discord gateway timed out".to_string(),
                };
                // A resume URL that keeps failing may be gone: after a few tries, a new session.
                if resuming {
                    *failed_resumes += 1;
                }
                return retry(why, resuming && *failed_resumes < RESUME_TRIES, false);
            }
        };
        let hello = match tokio::time::timeout(HANDSHAKE_TIMEOUT, next_payload(&mut ws)).await {
            Ok(Ok(p)) if p.op == 10 => p,
            Ok(Ok(p)) => return retry(format!("Discord sent op {} before HELLO", p.op), resuming, false),
            Ok(Err(e)) => return e.with_up(false),
            Err(_) => return retry("no HELLO from the Discord gateway".into(), resuming, false),
        };
        let interval = Duration::from_millis(hello.d["heartbeat_interval"].as_u64().unwrap_or(41_250).max(100));
        let first = match cursor.as_ref() {
            Some(c) => json!({"op": 6, "d": {"token": self.token, "session_id": c.session_id, "seq": c.seq}}),
            None => json!({"op": 2, "d": {
                "token": self.token,
                "intents": INTENTS,
                "properties": {"os": std::env::consts::OS, "browser": "arvis", "device": "arvis"},
            }}),
        };
        if let Err(e) = ws.send(Frame::Text(first.to_string().into())).await {
            return retry(format!("cannot send IDENTIFY/RESUME: {e}"), resuming, false);
        }
        let mut up = false;
        let mut acked = true;
        let mut dirty = false;
        let jitter = rand::rng().random_range(0.0..1.0);
        let mut next_beat = tokio::time::Instant::now() + interval.mul_f64(jitter);
        loop {
            let frame = tokio::select! {
                () = tokio::time::sleep_until(next_beat) => {
                    if !acked {
                        return retry("no heartbeat ACK from the Discord gateway (zombied connection)".into(), true, up);
                    }
                    let seq = cursor.as_ref().and_then(|c| c.seq);
                    if let Err(e) = ws.send(Frame::Text(json!({"op": 1, "d": seq}).to_string().into())).await {
                        return retry(format!("cannot send a heartbeat: {e}"), true, up);
                    }
                    acked = false;
                    next_beat += interval;
                    if dirty && let Some(c) = cursor.as_ref() {
                        dirty = !self.save(ctx, c).await;
                    }
                    continue;
                }
                f = ws.next() => f,
            };
            let text = match frame {
                None => return retry("the Discord gateway connection closed".into(), true, up),
                Some(Err(e)) => return retry(format!("the Discord gateway connection failed: {e}"), true, up),
                Some(Ok(Frame::Close(f))) => {
                    let (code, reason) =
                        f.map(|f| (u16::from(f.code), f.reason.to_string())).unwrap_or((1005, String::new()));
                    return closed(code, &reason, up);
                }
                Some(Ok(Frame::Text(t))) => t,
                Some(Ok(_)) => continue,
            };
            let Ok(p) = serde_json::from_str::<Payload>(&text) else {
                tracing::debug!(bot_id = ctx.bot.id, "a gateway payload that is not JSON; ignored");
                continue;
            };
            match p.op {
                0 => {
                    match p.t.as_deref() {
                        Some("READY") => {
                            let (Some(session_id), Some(url), Some(user_id)) = (
                                p.d["session_id"].as_str(),
                                p.d["resume_gateway_url"].as_str(),
                                p.d["user"]["id"].as_str(),
                            ) else {
                                return retry("READY without session_id, resume_gateway_url or user".into(), false, up);
                            };
                            *cursor = Some(Cursor {
                                session_id: session_id.to_string(),
                                resume_gateway_url: url.to_string(),
                                seq: p.s,
                                user_id: user_id.to_string(),
                            });
                            up = true;
                            backoff.reset();
                            *failed_resumes = 0;
                            ctx.lease.report("running", None).await;
                            tracing::info!(bot_id = ctx.bot.id, "discord session ready");
                        }
                        Some("RESUMED") => {
                            up = true;
                            backoff.reset();
                            *failed_resumes = 0;
                            ctx.lease.report("running", None).await;
                            tracing::info!(bot_id = ctx.bot.id, "discord session resumed");
                        }
                        Some("MESSAGE_CREATE") => {
                            let me = cursor.as_ref().map(|c| c.user_id.clone()).unwrap_or_default();
                            if let Err(why) = self.take(ctx, &me, p.d).await {
                                // Not taken in: seq stays before it, the RESUME replays it
                                // (after a backoff, with the reason on the bot).
                                return Ended::Retry { why, resume: true, up: false, min_wait: Duration::from_secs(1) };
                            }
                        }
                        _ => {}
                    }
                    if let (Some(s), Some(c)) = (p.s, cursor.as_mut()) {
                        c.seq = Some(c.seq.map_or(s, |old| old.max(s)));
                        dirty = true;
                    }
                    // A new session and every message taken in are stored at once;
                    // other events' seq with the next heartbeat.
                    if matches!(p.t.as_deref(), Some("READY" | "MESSAGE_CREATE"))
                        && let Some(c) = cursor.as_ref()
                    {
                        dirty = !self.save(ctx, c).await;
                    }
                }
                // The gateway asks for a heartbeat now.
                1 => {
                    let seq = cursor.as_ref().and_then(|c| c.seq);
                    if let Err(e) = ws.send(Frame::Text(json!({"op": 1, "d": seq}).to_string().into())).await {
                        return retry(format!("cannot send a heartbeat: {e}"), true, up);
                    }
                }
                7 => return retry("Discord asked to reconnect (op 7)".into(), true, true),
                9 => {
                    let resumable = p.d.as_bool().unwrap_or(false);
                    // Discord: wait 1–5 s before identifying again.
                    let wait = Duration::from_millis(rand::rng().random_range(1000..5000));
                    return Ended::Retry {
                        why: format!("Discord invalidated the session (op 9, resumable: {resumable})"),
                        resume: resumable,
                        up,
                        min_wait: if resumable { Duration::ZERO } else { wait },
                    };
                }
                11 => acked = true,
                _ => {}
            }
        }
    }

    /// Writes the cursor under the lease; true when it was stored.
    async fn save(&self, ctx: &BotCtx, c: &Cursor) -> bool {
        match serde_json::to_string(c) {
            Ok(text) => ctx.lease.write_cursor(&text).await,
            Err(_) => false,
        }
    }

    /// One MESSAGE_CREATE; `Err` means "not taken in, see it again".
    async fn take(&self, ctx: &BotCtx, me: &str, d: Value) -> Result<(), String> {
        let msg: MessageCreate = match serde_json::from_value(d) {
            Ok(m) => m,
            Err(error) => {
                tracing::debug!(bot_id = ctx.bot.id, %error, "a MESSAGE_CREATE we cannot read; ignored");
                return Ok(());
            }
        };
        // Default (0) and reply (19) messages; joins, pins, commands… are not conversation.
        if msg.author.bot || msg.author.id == me || msg.webhook_id.is_some() || !matches!(msg.kind, 0 | 19) {
            return Ok(());
        }
        let is_dm = msg.guild_id.is_none();
        let tags = [format!("<@{me}>"), format!("<@!{me}>")];
        let mentioned = !me.is_empty()
            && (msg.mentions.iter().any(|m| m.id == me) || tags.iter().any(|t| msg.content.contains(t.as_str())));
        let replied = msg
            .referenced_message
            .as_ref()
            .and_then(|r| r.author.as_ref())
            .is_some_and(|a| !me.is_empty() && a.id == me);
        let bound = ctx.bot.channel_bindings.iter().any(|b| b.channel_id == msg.channel_id);
        if !(is_dm || mentioned || replied || bound) {
            return Ok(());
        }
        let content = if me.is_empty() { msg.content.trim().to_string() } else { strip_all(&msg.content, &tags) };
        let at = ReplyAt { reply_to: (!is_dm).then(|| msg.id.clone()), thread_id: None };
        if content.is_empty() {
            if !msg.attachments.is_empty() || !msg.sticker_items.is_empty() {
                return notice(ctx, &msg.channel_id, &msg.id, at, ONLY_TEXT).await;
            }
            return Ok(());
        }
        let incoming = Incoming {
            platform: "discord".into(),
            channel_id: msg.channel_id.clone(),
            user_id: Some(msg.author.id.clone()),
            user_name: msg.author.global_name.clone().or_else(|| msg.author.username.clone()),
            content,
            // A bound channel is routed by its binding; elsewhere the bot's default agent answers.
            agent_id: if bound { None } else { ctx.bot.default_agent_id },
            is_dm,
            external_id: Some(msg.id.clone()),
            api: None,
        };
        take_in(ctx, incoming, at).await
    }
}

impl Ended {
    fn with_up(self, up: bool) -> Ended {
        match self {
            Ended::Retry { why, resume, min_wait, .. } => Ended::Retry { why, resume, up, min_wait },
            fatal => fatal,
        }
    }
}

/// The next JSON payload (skipping pings); a close or an error as [`Ended`].
async fn next_payload(ws: &mut Socket) -> Result<Payload, Ended> {
    loop {
        match ws.next().await {
            None => {
                return Err(Ended::Retry {
                    why: "the Discord gateway connection closed".into(),
                    resume: true,
                    up: false,
                    min_wait: Duration::ZERO,
                });
            }
            Some(Err(e)) => {
                return Err(Ended::Retry {
                    why: format!("the Discord gateway connection failed: {e}"),
                    resume: true,
                    up: false,
                    min_wait: Duration::ZERO,
                });
            }
            Some(Ok(Frame::Close(f))) => {
                let (code, reason) =
                    f.map(|f| (u16::from(f.code), f.reason.to_string())).unwrap_or((1005, String::new()));
                return Err(closed(code, &reason, false));
            }
            Some(Ok(Frame::Text(t))) => {
                if let Ok(p) = serde_json::from_str::<Payload>(&t) {
                    return Ok(p);
                }
            }
            Some(Ok(_)) => {}
        }
    }
}

/// `X-RateLimit-Reset-After` (seconds, fractions allowed).
fn reset_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get("x-ratelimit-reset-after")?.to_str().ok()?;
    seconds(v.trim().parse::<f64>().ok()?)
}

impl Outbound for Discord {
    fn limit(&self) -> usize {
        LIMIT
    }

    async fn send(&self, d: &DueDelivery) -> Result<Option<String>, SendError> {
        if !is_snowflake(&d.channel_id) {
            return Err(SendError::Permanent(format!("{:?} is not a Discord channel id", d.channel_id)));
        }
        let route = format!("/channels/{}/messages", d.channel_id);
        self.wait_bucket(&route).await;
        let mut body = json!({
            "content": d.content,
            // ≤ 25 characters; Discord drops a second message with the same nonce for a few minutes.
            "nonce": format!("arvis{}", d.id),
            "enforce_nonce": true,
            "allowed_mentions": {"parse": [], "replied_user": true},
        });
        if let Some(to) = d.reply_to.as_deref().filter(|r| is_snowflake(r)) {
            body["message_reference"] = json!({"message_id": to, "fail_if_not_exists": false});
        }
        match self.rest(Method::POST, &route, Some(&body)).await {
            Ok(v) => Ok(v["id"].as_str().map(str::to_string)),
            Err(RestError::RetryAfter(d, t)) => Err(SendError::RetryAfter(d, t)),
            Err(RestError::Unavailable(t)) => Err(SendError::Transient(t)),
            Err(RestError::Refused(t)) => Err(SendError::Permanent(t)),
        }
    }

    async fn typing(&self, channel_id: &str) {
        if !is_snowflake(channel_id) {
            return;
        }
        if let Err(e) = self.rest(Method::POST, &format!("/channels/{channel_id}/typing"), None).await {
            tracing::debug!(error = ?e, "typing indicator not sent");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_intents_are_the_four_documented_bits() {
        assert_eq!(INTENTS, 1 + 512 + 4096 + 32768);
    }

    #[test]
    fn close_codes_that_forbid_reconnecting_are_fatal() {
        for code in [4004, 4010, 4011, 4012, 4013, 4014] {
            assert!(matches!(closed(code, "", true), Ended::Fatal(_)), "{code}");
        }
        assert!(matches!(closed(4009, "", true), Ended::Retry { resume: false, .. }));
        assert!(matches!(closed(4000, "", true), Ended::Retry { resume: true, .. }));
        assert!(matches!(closed(1006, "", true), Ended::Retry { resume: true, .. }));
    }

    #[test]
    fn the_gateway_url_gets_version_and_encoding() {
        assert_eq!(gateway_url("wss://gateway.discord.gg"), "wss://gateway.discord.gg/?v=10&encoding=json");
        assert_eq!(gateway_url("ws://127.0.0.1:9/gw/"), "ws://127.0.0.1:9/gw/?v=10&encoding=json");
    }
}
