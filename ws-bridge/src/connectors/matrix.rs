//! Matrix over the Client-Server API v3 (`MATRIX_HOMESERVER_URL`, `http://`
//! or `https://`), with the access token in `Authorization: Bearer`.
//!
//! Session: `GET /account/whoami` checks the token and gives the bot's user
//! id (a configured `MATRIX_USER_ID` that disagrees is an error: own events
//! would not be recognised); the display name (`/profile/…/displayname`) and
//! the `m.direct` account data are read best effort. Then `/sync` long
//! polling (`timeout` 30 s, `since`, an inline filter: no presence, lazy
//! member loading, up to 100 timeline events per room).
//!
//! The `next_batch` token is the cursor: it is written under the lease only
//! after every message of the batch went through the intake (and the owed
//! reply is recorded), and invites were joined. A crash in between syncs
//! from the old token again; the intake's de-duplication by
//! `<bot id>:<event_id>` answers nothing twice (the bot id keeps two of our
//! bots in one room apart: each sees the same event id). A bot without a
//! cursor (never run) skips the backlog: its first sync (`timeout` 0,
//! timeline limit 1) takes no message, only joins pending invites and
//! stores `next_batch`. In a room joined during a batch, only events after
//! the bot's own join are read (a newly joined room's timeline carries
//! history). A `limited` timeline (a gap: more than 100 events since the
//! last sync) is logged and its events read; the gap is not fetched —
//! answering an outage's worth of old messages is worse than missing them.
//!
//! Who is answered: `m.room.message` events with msgtype `m.text` (an
//! `m.image`/`m.file`/`m.audio`/`m.video` gets the "only text" answer; `m.notice`,
//! which bots send, and edits are ignored; so are the bot's own events). In
//! a DM — a room with exactly two joined members (the sync's
//! `m.joined_member_count`, else `GET /rooms/{id}/joined_members`), or one
//! listed in `m.direct` — everything; elsewhere a message that mentions the
//! bot (`m.mentions.user_ids`, or its user id or display name in the body,
//! stripped before routing), and every message of a bound room. A reply's
//! fallback quote (`> <@…> …`) is dropped first: it quotes someone else.
//!
//! Encrypted rooms are out of scope: an `m.room.encrypted` event gets no
//! answer and is logged once per room.
//!
//! Outbound: `PUT /rooms/{roomId}/send/m.room.message/arvis-<delivery id>` —
//! the transaction id is the outbox row's, so a retry after a lost answer
//! is the same transaction and the homeserver does not post it twice. Plain
//! `m.text`, with `m.mentions: {}` (an agent's text pings nobody) and, in
//! group rooms, `m.in_reply_to` the message answered; a message in a thread
//! (`rel_type` `m.thread`) is answered in that thread. At most [`LIMIT`]
//! characters per message. `PUT /rooms/{roomId}/typing/{userId}` while the
//! agent works, cleared after the reply. Errors are `{"errcode", "error"}`:
//! 429 (`M_LIMIT_EXCEEDED`) waits `retry_after_ms` or `Retry-After`; 5xx
//! and transport failures are transient; other 4xx are refusals — a refused
//! token (401 `M_UNKNOWN_TOKEN`) is retried no faster than every 30 s.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use arvis_shared::db::outbox::DueDelivery;
use arvis_shared::intake::Incoming;
use reqwest::header::AUTHORIZATION;
use reqwest::{Method, Url};
use secrecy::ExposeSecret as _;
use serde::Deserialize;
use serde_json::{Value, json};

use super::BotCtx;
use super::http::{Backoff, describe, retry_after_header, scrub};
use super::inbound::{ReplyAt, notice, take_in};
use super::outbox::{Outbound, SendError};

/// Characters per message. A Matrix event may be at most 65 536 bytes in
/// total, ids, signatures, hashes and relations included. 8 000 characters
/// are at most 32 000 bytes of UTF-8 (4 bytes each at worst) and 48 000
/// even if every one were a JSON-escaped control character (`\u00XX`),
/// which leaves over 17 KB for the envelope.
pub const LIMIT: usize = 8000;
/// The long poll's `timeout`, milliseconds.
const POLL_MS: u64 = 30_000;
/// How long the homeserver shows "typing…" unless refreshed (the outbox refreshes every 4.5 s).
const TYPING_MS: u64 = 6000;
const ONLY_TEXT: &str = "I can only read text for now: please send your message as text.";
/// The first sync of a bot: no presence, one event per room — the backlog is skipped anyway.
const FIRST_FILTER: &str =
    r#"{"presence":{"not_types":["*"]},"room":{"timeline":{"limit":1},"state":{"lazy_load_members":true}}}"#;
const FILTER: &str =
    r#"{"presence":{"not_types":["*"]},"room":{"timeline":{"limit":100},"state":{"lazy_load_members":true}}}"#;
/// Message types answered with "only text".
const ATTACHMENTS: &[&str] = &["m.image", "m.file", "m.audio", "m.video"];

pub struct Matrix {
    http: reqwest::Client,
    /// The homeserver's base URL (`MATRIX_HOMESERVER_URL`).
    base: Url,
    token: String,
    /// The variable with the token, named in a refusal's text.
    token_var: String,
    /// The user id the configuration names, if it does.
    configured_user: Option<(String, String)>,
    /// The bot's user id, from `whoami`.
    me: Mutex<Option<String>>,
    /// Rooms where this bot shows "typing…".
    typing_on: Mutex<HashSet<String>>,
    /// Encrypted rooms already logged.
    encrypted_logged: Mutex<HashSet<String>>,
    /// Joined member counts by room.
    members: Mutex<HashMap<String, u64>>,
    /// Rooms in the bot's `m.direct`.
    direct: Mutex<HashSet<String>>,
}

#[derive(Debug)]
enum MxError {
    RetryAfter(Duration, String),
    /// 5xx, a transport failure, an answer that is not the API's.
    Unavailable(String),
    /// A 4xx other than 429, with its status.
    Refused(u16, String),
    /// The configuration contradicts the homeserver.
    Misconfigured(String),
}

impl MxError {
    fn text(&self) -> &str {
        match self {
            MxError::RetryAfter(_, t)
            | MxError::Unavailable(t)
            | MxError::Refused(_, t)
            | MxError::Misconfigured(t) => t,
        }
    }
}

#[derive(Deserialize)]
struct ErrorBody {
    errcode: Option<String>,
    error: Option<String>,
    retry_after_ms: Option<u64>,
}

#[derive(Deserialize)]
struct Sync {
    next_batch: String,
    #[serde(default)]
    rooms: Rooms,
    #[serde(default)]
    account_data: Events,
}

#[derive(Deserialize, Default)]
struct Rooms {
    #[serde(default)]
    join: HashMap<String, JoinedRoom>,
    #[serde(default)]
    invite: HashMap<String, Value>,
}

#[derive(Deserialize, Default)]
struct JoinedRoom {
    #[serde(default)]
    summary: Summary,
    #[serde(default)]
    state: Events,
    #[serde(default)]
    timeline: Timeline,
}

#[derive(Deserialize, Default)]
struct Summary {
    #[serde(rename = "m.joined_member_count")]
    joined: Option<u64>,
}

#[derive(Deserialize, Default)]
struct Events {
    #[serde(default)]
    events: Vec<Value>,
}

#[derive(Deserialize, Default)]
struct Timeline {
    #[serde(default)]
    events: Vec<Value>,
    #[serde(default)]
    limited: bool,
}

/// A room event; read one by one so that one odd event cannot block a batch.
#[derive(Deserialize)]
struct RoomEvent {
    #[serde(rename = "type")]
    kind: String,
    event_id: Option<String>,
    sender: Option<String>,
    state_key: Option<String>,
    #[serde(default)]
    content: Value,
    #[serde(default)]
    unsigned: Value,
}

impl RoomEvent {
    fn parse(v: &Value) -> Option<RoomEvent> {
        serde_json::from_value(v.clone()).ok()
    }
}

/// The cursor stored under the lease.
#[derive(serde::Serialize, Deserialize)]
struct Cursor {
    next_batch: String,
}

impl Matrix {
    /// A Matrix connector for `homeserver` (the value of `url_var`); `user`
    /// is the configured user id and its variable, if set.
    pub fn new(
        ctx: &BotCtx,
        homeserver: &str,
        url_var: &str,
        user: Option<(String, String)>,
    ) -> Result<Matrix, String> {
        let url = homeserver.trim();
        let base = Url::parse(url)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && !u.cannot_be_a_base())
            .ok_or_else(|| format!("{url_var} must be the homeserver's http:// or https:// URL"))?;
        Ok(Matrix {
            http: ctx.http.clone(),
            base,
            token: ctx.token.expose_secret().to_string(),
            token_var: ctx.bot.token.clone(),
            configured_user: user,
            me: Mutex::new(None),
            typing_on: Mutex::default(),
            encrypted_logged: Mutex::default(),
            members: Mutex::default(),
            direct: Mutex::default(),
        })
    }

    fn me(&self) -> Option<String> {
        self.me.lock().ok().and_then(|m| m.clone()).or_else(|| self.configured_user.as_ref().map(|(u, _)| u.clone()))
    }

    /// `{base}/_matrix/client/v3/{segments…}?{query}`, each segment percent-encoded.
    fn url(&self, segments: &[&str], query: &[(&str, &str)]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(["_matrix", "client", "v3"]).extend(segments);
        }
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        url
    }

    /// One API call; the JSON body of a 2xx.
    async fn call(
        &self,
        method: Method,
        what: &str,
        url: Url,
        body: Option<&Value>,
        timeout: Duration,
    ) -> Result<Value, MxError> {
        let mut req =
            self.http.request(method, url).header(AUTHORIZATION, format!("Bearer {}", self.token)).timeout(timeout);
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| MxError::Unavailable(format!("Matrix {what}: {}", describe(e, &self.token))))?;
        let status = resp.status().as_u16();
        let header_wait = retry_after_header(resp.headers());
        let text = resp
            .text()
            .await
            .map_err(|e| MxError::Unavailable(format!("Matrix {what}: {}", describe(e, &self.token))))?;
        if (200..300).contains(&status) {
            return serde_json::from_str(&text)
                .map_err(|_| MxError::Unavailable(format!("Matrix {what}: HTTP {status} without a JSON body")));
        }
        let err: Option<ErrorBody> = serde_json::from_str(&text).ok();
        let code = err.as_ref().and_then(|e| e.errcode.clone()).unwrap_or_else(|| "no errcode".into());
        let msg = err.as_ref().and_then(|e| e.error.clone()).unwrap_or_default();
        let text = scrub(format!("Matrix {what}: {status} {code} {msg}").trim(), &self.token);
        if status == 429 {
            let wait = err
                .and_then(|e| e.retry_after_ms)
                .map(|ms| Duration::from_millis(ms.min(3_600_000)))
                .or(header_wait)
                .unwrap_or(Duration::from_secs(1));
            return Err(MxError::RetryAfter(wait, text));
        }
        if status >= 500 || status == 408 {
            return Err(MxError::Unavailable(text));
        }
        Err(MxError::Refused(status, text))
    }

    /// Runs sync sessions until the lease is lost, reconnecting with backoff.
    pub async fn run(&self, ctx: &BotCtx) {
        let mut since: Option<String> = match ctx.lease.cursor.as_deref() {
            None => None,
            Some(c) => match serde_json::from_str::<Cursor>(c) {
                Ok(c) => Some(c.next_batch),
                Err(_) => {
                    tracing::warn!(bot_id = ctx.bot.id, "the stored Matrix cursor is unreadable; skipping the backlog");
                    None
                }
            },
        };
        let mut backoff = Backoff::reconnect();
        loop {
            let error = tokio::select! {
                () = ctx.lease.lost.cancelled() => return,
                r = self.session(ctx, &mut since, &mut backoff) => match r {
                    Ok(()) => return,
                    Err(e) => e,
                },
            };
            let wait = match &error {
                MxError::RetryAfter(d, _) => *d,
                // A refused token or a wrong configuration does not fix itself quickly.
                MxError::Refused(..) | MxError::Misconfigured(_) => backoff.next_delay().max(Duration::from_secs(30)),
                MxError::Unavailable(_) => backoff.next_delay(),
            };
            tracing::warn!(
                bot_id = ctx.bot.id,
                error = error.text(),
                retry_in_ms = wait.as_millis() as u64,
                "matrix session failed"
            );
            ctx.lease.report("error", Some(error.text())).await;
            tokio::select! {
                () = ctx.lease.lost.cancelled() => return,
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    async fn session(&self, ctx: &BotCtx, since: &mut Option<String>, backoff: &mut Backoff) -> Result<(), MxError> {
        let me = self.whoami().await?;
        let display = self.display_name(&me).await;
        self.read_direct(&me).await;
        ctx.lease.report("running", None).await;
        let mut first_poll = true;
        loop {
            let first_sync = since.is_none();
            let timeout = if first_sync { "0".to_string() } else { POLL_MS.to_string() };
            let mut query =
                vec![("timeout", timeout.as_str()), ("filter", if first_sync { FIRST_FILTER } else { FILTER })];
            if let Some(s) = since.as_deref() {
                query.push(("since", s));
            }
            let url = self.url(&["sync"], &query);
            let body = self
                .call(Method::GET, "sync", url, None, Duration::from_millis(POLL_MS) + Duration::from_secs(15))
                .await?;
            if first_poll {
                backoff.reset();
                first_poll = false;
            }
            let sync: Sync = serde_json::from_value(body)
                .map_err(|e| MxError::Unavailable(format!("Matrix sync: unexpected answer: {e}")))?;
            self.learn(&sync);
            for room in sync.rooms.invite.keys() {
                self.join(ctx, room).await?;
            }
            if first_sync {
                tracing::info!(
                    bot_id = ctx.bot.id,
                    rooms = sync.rooms.join.len(),
                    "matrix: first sync, backlog skipped"
                );
            } else {
                for (room_id, room) in &sync.rooms.join {
                    self.take_room(ctx, &me, display.as_deref(), room_id, room).await?;
                }
            }
            if since.as_deref() != Some(sync.next_batch.as_str()) {
                let cursor = serde_json::to_string(&Cursor { next_batch: sync.next_batch.clone() }).unwrap_or_default();
                if !ctx.lease.write_cursor(&cursor).await && ctx.lease.lost.is_cancelled() {
                    return Ok(());
                }
                *since = Some(sync.next_batch);
            }
        }
    }

    /// The token's user id, checked against the configured one.
    async fn whoami(&self) -> Result<String, MxError> {
        let url = self.url(&["account", "whoami"], &[]);
        let who = match self.call(Method::GET, "whoami", url, None, Duration::from_secs(15)).await {
            Ok(w) => w,
            Err(MxError::Refused(status @ (401 | 403), text)) => {
                return Err(MxError::Refused(
                    status,
                    format!("{text} (the homeserver refused the access token in {})", self.token_var),
                ));
            }
            Err(e) => return Err(e),
        };
        let Some(me) = who["user_id"].as_str().map(str::to_string) else {
            return Err(MxError::Unavailable("Matrix whoami: no user_id in the answer".into()));
        };
        if let Some((configured, var)) = &self.configured_user
            && configured.trim() != me
        {
            return Err(MxError::Misconfigured(format!(
                "{var} is {configured} but the access token in {} belongs to {me}",
                self.token_var
            )));
        }
        if let Ok(mut m) = self.me.lock() {
            *m = Some(me.clone());
        }
        Ok(me)
    }

    /// The bot's global display name (best effort: mentions by name need it).
    async fn display_name(&self, me: &str) -> Option<String> {
        let url = self.url(&["profile", me, "displayname"], &[]);
        match self.call(Method::GET, "profile", url, None, Duration::from_secs(15)).await {
            Ok(v) => v["displayname"].as_str().map(str::to_string).filter(|n| !n.trim().is_empty()),
            Err(e) => {
                tracing::debug!(error = e.text(), "no display name; mentions by user id only");
                None
            }
        }
    }

    /// The rooms of the bot's `m.direct` account data (best effort; none is normal for a bot).
    async fn read_direct(&self, me: &str) {
        let url = self.url(&["user", me, "account_data", "m.direct"], &[]);
        if let Ok(v) = self.call(Method::GET, "account_data", url, None, Duration::from_secs(15)).await {
            self.set_direct(&v);
        }
    }

    fn set_direct(&self, content: &Value) {
        let rooms: HashSet<String> = content
            .as_object()
            .into_iter()
            .flat_map(|m| m.values())
            .filter_map(Value::as_array)
            .flatten()
            .filter_map(|r| r.as_str().map(str::to_string))
            .collect();
        if let Ok(mut d) = self.direct.lock() {
            *d = rooms;
        }
    }

    /// Updates the DM knowledge from a batch: `m.direct`, member counts.
    fn learn(&self, sync: &Sync) {
        for e in sync.account_data.events.iter().filter_map(RoomEvent::parse) {
            if e.kind == "m.direct" {
                self.set_direct(&e.content);
            }
        }
        let Ok(mut members) = self.members.lock() else { return };
        for (room_id, room) in &sync.rooms.join {
            let changed = room
                .state
                .events
                .iter()
                .chain(&room.timeline.events)
                .filter_map(RoomEvent::parse)
                .any(|e| e.kind == "m.room.member");
            match room.summary.joined {
                Some(n) => {
                    members.insert(room_id.clone(), n);
                }
                // Membership changed without a count: look it up when needed.
                None if changed => {
                    members.remove(room_id);
                }
                None => {}
            }
        }
    }

    /// Accepts an invite. A refusal (the invite was withdrawn, the room is
    /// gone) is logged and skipped; a transient failure fails the batch, so
    /// the invite is seen again.
    async fn join(&self, ctx: &BotCtx, room: &str) -> Result<(), MxError> {
        let url = self.url(&["rooms", room, "join"], &[]);
        match self.call(Method::POST, "join", url, Some(&json!({})), Duration::from_secs(30)).await {
            Ok(_) => {
                tracing::info!(bot_id = ctx.bot.id, room, "matrix: joined a room the bot was invited to");
                Ok(())
            }
            Err(MxError::Refused(_, text)) => {
                tracing::warn!(bot_id = ctx.bot.id, room, error = %text, "matrix: cannot join; invite skipped");
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// The messages of one joined room's timeline through the intake.
    async fn take_room(
        &self,
        ctx: &BotCtx,
        me: &str,
        display: Option<&str>,
        room_id: &str,
        room: &JoinedRoom,
    ) -> Result<(), MxError> {
        let events: Vec<RoomEvent> = room.timeline.events.iter().filter_map(RoomEvent::parse).collect();
        if room.timeline.limited {
            tracing::info!(bot_id = ctx.bot.id, room = room_id, "matrix: limited timeline; older events not fetched");
        }
        // In a room joined in this batch, what came before the join is history.
        // (A join whose previous membership was a join is a profile change.)
        let start = events
            .iter()
            .rposition(|e| {
                e.kind == "m.room.member"
                    && e.state_key.as_deref() == Some(me)
                    && e.content["membership"] == "join"
                    && e.unsigned["prev_content"]["membership"] != "join"
            })
            .map_or(0, |i| i + 1);
        let names: HashMap<String, String> = room
            .state
            .events
            .iter()
            .chain(&room.timeline.events)
            .filter_map(RoomEvent::parse)
            .filter(|e| e.kind == "m.room.member")
            .filter_map(|e| Some((e.state_key?, e.content["displayname"].as_str()?.to_string())))
            .collect();
        for e in &events[start..] {
            match e.kind.as_str() {
                "m.room.encrypted" => self.encrypted(ctx, room_id),
                "m.room.message" => self.take(ctx, me, display, room_id, e, &names).await?,
                _ => {}
            }
        }
        Ok(())
    }

    fn encrypted(&self, ctx: &BotCtx, room_id: &str) {
        let first = self.encrypted_logged.lock().is_ok_and(|mut s| s.insert(room_id.to_string()));
        if first {
            tracing::warn!(
                bot_id = ctx.bot.id,
                room = room_id,
                "matrix: encrypted messages in this room are not read (end-to-end encryption is not supported)"
            );
        }
    }

    /// One `m.room.message` through the intake; an error means "not taken in, try again".
    async fn take(
        &self,
        ctx: &BotCtx,
        me: &str,
        display: Option<&str>,
        room_id: &str,
        e: &RoomEvent,
        names: &HashMap<String, String>,
    ) -> Result<(), MxError> {
        let (Some(event_id), Some(sender)) = (&e.event_id, &e.sender) else { return Ok(()) };
        if sender == me {
            return Ok(());
        }
        let c = &e.content;
        let msgtype = c["msgtype"].as_str().unwrap_or_default();
        let attachment = ATTACHMENTS.contains(&msgtype);
        if (msgtype != "m.text" && !attachment) || c["m.relates_to"]["rel_type"] == "m.replace" {
            return Ok(());
        }
        let mut body = c["body"].as_str().unwrap_or_default();
        if c["m.relates_to"]["m.in_reply_to"]["event_id"].is_string() {
            body = strip_reply_fallback(body);
        }
        if attachment {
            body = "";
        }
        let mut handles = vec![me];
        handles.extend(display);
        let spans = mention_spans(body, &handles);
        let mentioned = !spans.is_empty()
            || c["m.mentions"]["user_ids"].as_array().is_some_and(|ids| ids.iter().any(|id| id == me));
        let bound = ctx.bot.channel_bindings.iter().any(|b| b.channel_id == room_id);
        let is_dm = self.is_dm(room_id).await?;
        if !(is_dm || mentioned || bound) {
            return Ok(());
        }
        let content = strip_spans(body, &spans);
        let external = format!("{}:{event_id}", ctx.bot.id);
        // A message in a thread is answered in that thread.
        let relation = &c["m.relates_to"];
        let thread_id = (relation["rel_type"] == "m.thread").then(|| relation["event_id"].as_str()).flatten();
        let at = ReplyAt { reply_to: (!is_dm).then(|| event_id.clone()), thread_id: thread_id.map(str::to_string) };
        if content.is_empty() {
            if attachment {
                notice(ctx, room_id, &external, at, ONLY_TEXT).await.map_err(MxError::Unavailable)?;
            }
            return Ok(());
        }
        let incoming = Incoming {
            platform: "matrix".into(),
            channel_id: room_id.to_string(),
            user_id: Some(sender.clone()),
            user_name: names.get(sender).cloned(),
            content,
            // A bound room is routed by its binding; elsewhere the bot's default agent answers.
            agent_id: if bound { None } else { ctx.bot.default_agent_id },
            is_dm,
            external_id: Some(external),
            api: None,
        };
        take_in(ctx, incoming, at).await.map_err(MxError::Unavailable)
    }

    /// A room with exactly two joined members, or one in `m.direct`.
    async fn is_dm(&self, room_id: &str) -> Result<bool, MxError> {
        if self.direct.lock().is_ok_and(|d| d.contains(room_id)) {
            return Ok(true);
        }
        if let Some(n) = self.members.lock().ok().and_then(|m| m.get(room_id).copied()) {
            return Ok(n == 2);
        }
        let url = self.url(&["rooms", room_id, "joined_members"], &[]);
        match self.call(Method::GET, "joined_members", url, None, Duration::from_secs(15)).await {
            Ok(v) => {
                let n = v["joined"].as_object().map_or(0, |m| m.len() as u64);
                if let Ok(mut m) = self.members.lock() {
                    m.insert(room_id.to_string(), n);
                }
                Ok(n == 2)
            }
            // Not a member any more, or not allowed to look: not a DM.
            Err(MxError::Refused(..)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// `typing` in `room` (best effort).
    async fn set_typing(&self, room: &str, typing: bool) {
        let Some(me) = self.me() else { return };
        let url = self.url(&["rooms", room, "typing", &me], &[]);
        let body = if typing { json!({"typing": true, "timeout": TYPING_MS}) } else { json!({"typing": false}) };
        match self.call(Method::PUT, "typing", url, Some(&body), Duration::from_secs(10)).await {
            Ok(_) => {
                if let Ok(mut t) = self.typing_on.lock() {
                    if typing {
                        t.insert(room.to_string());
                    } else {
                        t.remove(room);
                    }
                }
            }
            Err(e) => tracing::debug!(error = e.text(), "typing notification not sent"),
        }
    }
}

/// A reply's body without its fallback quote (`> <@alice:example.org> …`
/// lines and the blank line after them).
fn strip_reply_fallback(body: &str) -> &str {
    let mut rest = body;
    while rest.starts_with('>') {
        rest = rest.split_once('\n').map_or("", |(_, r)| r);
    }
    if rest.len() == body.len() { body } else { rest.trim_start_matches('\n') }
}

/// Where one of `names` occurs in `text` as a whole word (ASCII letters in
/// any case), each span taking a `:` or `,` right after it ("Arvis: hi").
fn mention_spans(text: &str, names: &[&str]) -> Vec<std::ops::Range<usize>> {
    // ASCII lower-casing keeps every byte where it was: spans found in `lower` fit `text`.
    let lower = text.to_ascii_lowercase();
    let word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
    let mut spans = Vec::new();
    for name in names.iter().map(|n| n.trim().to_ascii_lowercase()).filter(|n| !n.is_empty()) {
        let mut from = 0;
        while let Some(pos) = lower[from..].find(&name) {
            let start = from + pos;
            let mut end = start + name.len();
            let after = text[end..].chars().next();
            if !word(text[..start].chars().next_back()) && !word(after) {
                if matches!(after, Some(':' | ',')) {
                    end += 1;
                }
                spans.push(start..end);
            }
            from = start + name.len();
        }
    }
    spans.sort_by_key(|s| (s.start, std::cmp::Reverse(s.end)));
    spans
}

/// `text` without `spans` (which may overlap), trimmed, one space where a
/// mention sat between words; line breaks elsewhere are kept.
fn strip_spans(text: &str, spans: &[std::ops::Range<usize>]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for s in spans {
        if s.start < at {
            at = at.max(s.end);
            continue;
        }
        let kept = text[at..s.start].trim_end();
        if !kept.is_empty() {
            out.push_str(kept);
            out.push(' ');
        }
        at = s.end;
    }
    let rest = text[at..].trim_start();
    out.push_str(rest);
    out.trim().to_string()
}

impl Outbound for Matrix {
    fn limit(&self) -> usize {
        LIMIT
    }

    async fn send(&self, d: &DueDelivery) -> Result<Option<String>, SendError> {
        // The outbox row's id: a retry is the same transaction to the homeserver.
        let txn = format!("arvis-{}", d.id);
        let mut body = json!({"msgtype": "m.text", "body": d.content, "m.mentions": {}});
        match (&d.thread_id, &d.reply_to) {
            // In a thread: a reply to the message answered, or (a later
            // chunk) the thread's fallback reply to its root.
            (Some(root), to) => {
                body["m.relates_to"] = json!({"rel_type": "m.thread", "event_id": root, "is_falling_back": to.is_none(),
                    "m.in_reply_to": {"event_id": to.as_ref().unwrap_or(root)}});
            }
            (None, Some(to)) => body["m.relates_to"] = json!({"m.in_reply_to": {"event_id": to}}),
            (None, None) => {}
        }
        let url = self.url(&["rooms", &d.channel_id, "send", "m.room.message", &txn], &[]);
        match self.call(Method::PUT, "send", url, Some(&body), Duration::from_secs(30)).await {
            Ok(v) => {
                if self.typing_on.lock().is_ok_and(|t| t.contains(&d.channel_id)) {
                    self.set_typing(&d.channel_id, false).await;
                }
                Ok(v["event_id"].as_str().map(str::to_string))
            }
            Err(MxError::RetryAfter(wait, t)) => Err(SendError::RetryAfter(wait, t)),
            Err(MxError::Unavailable(t)) => Err(SendError::Transient(t)),
            Err(MxError::Refused(_, t) | MxError::Misconfigured(t)) => Err(SendError::Permanent(t)),
        }
    }

    async fn typing(&self, channel_id: &str) {
        self.set_typing(channel_id, true).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mentions_by_id_or_name_are_found_as_words_and_stripped() {
        let names = ["@arvis:example.org", "Arvis"];
        let text = "arvis: what is 2+2?";
        assert_eq!(strip_spans(text, &mention_spans(text, &names)), "what is 2+2?");
        let text = "hey @arvis:example.org, help\nplease";
        assert_eq!(strip_spans(text, &mention_spans(text, &names)), "hey help\nplease");
        assert!(mention_spans("Jarvis is here", &names).is_empty(), "inside a word is no mention");
        assert!(mention_spans("arvis_bot", &names).is_empty());
        assert_eq!(strip_spans("Arvis", &mention_spans("Arvis", &names)), "");
    }

    #[test]
    fn a_reply_fallback_is_dropped() {
        assert_eq!(strip_reply_fallback("> <@arvis:x> old answer\n> more\n\nthanks"), "thanks");
        assert_eq!(strip_reply_fallback("no quote"), "no quote");
    }
}
