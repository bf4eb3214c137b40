//! A loopback Matrix homeserver (written from spec.matrix.org, Client-Server
//! API v3), enough for one bot account: `Authorization: Bearer` on every call
//! but the profile (401 `M_MISSING_TOKEN` / `M_UNKNOWN_TOKEN` otherwise).
//!
//! - `GET /account/whoami`, `GET /profile/{userId}/displayname`,
//!   `GET /user/{userId}/account_data/m.direct` (404 `M_NOT_FOUND` unless set).
//! - `GET /sync`: one event stream with positions; `next_batch` is `s<pos>`,
//!   `since` answers what came after it — so syncing twice from a token
//!   answers the same events twice, as on a real server. Without `since`, an
//!   initial sync: every joined room's last events (`filter.room.timeline.
//!   limit`, default 10, `limited` when cut), summary, member state and
//!   pending invites. With it, a long poll up to `timeout` ms that returns
//!   when something happens; a room's `summary` only when its membership
//!   changed; lazy-loaded member state of the timeline's senders;
//!   `rooms.invite` with `invite_state`.
//! - `POST /rooms/{roomId}/join` and `/join/{roomIdOrAlias}`: only with an
//!   invite (else 403 `M_FORBIDDEN`); the bot's join event enters the stream.
//! - `PUT /rooms/{roomId}/send/m.room.message/{txnId}`: recorded, and the
//!   event enters the stream (the bot sees its own messages, as on a real
//!   server); a repeated (room, txnId) answers the same `event_id` and records
//!   nothing; content over 65 536 bytes is 413 `M_TOO_LARGE`; not a member 403.
//! - `PUT /rooms/{roomId}/typing/{userId}`, `GET /rooms/{roomId}/joined_members`.
//! - Chaos: queued send failures (429 `M_LIMIT_EXCEEDED` with
//!   `retry_after_ms`, 500 `M_UNKNOWN`); the next N syncs cut off mid-body
//!   (the connection drops); the next sync answered from before a given
//!   event (a batch delivered again).

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde_json::{Value, json};
use tokio::sync::Notify;

pub const USER_ID: &str = "@arvis:localhost";
pub const DISPLAY_NAME: &str = "Arvis";

/// A message the bot sent.
#[derive(Debug, Clone)]
pub struct Sent {
    pub room: String,
    pub txn: String,
    pub event_id: String,
    pub body: String,
    pub content: Value,
    pub at: Instant,
}

/// A send failure to inject.
#[derive(Debug, Clone, Copy)]
pub enum SendFault {
    /// 429 `M_LIMIT_EXCEEDED` with this `retry_after_ms`.
    RateLimited(u64),
    /// 500 `M_UNKNOWN`.
    Internal,
    /// The message is posted, but the answer is lost (the connection drops).
    AnswerLost,
}

/// A `/sync` call as received.
#[derive(Debug, Clone)]
pub struct SyncCall {
    pub since: Option<String>,
    pub at: Instant,
}

enum Entry {
    Event { room: String, event: Value },
    Invite { room: String, inviter: String },
}

#[derive(Default)]
struct Room {
    /// Joined members and their display names (the bot included once joined).
    members: BTreeMap<String, String>,
    invited: bool,
}

#[derive(Default)]
struct Inner {
    /// (position, entry); positions grow by one.
    stream: Vec<(u64, Entry)>,
    pos: u64,
    rooms: HashMap<String, Room>,
    sent: Vec<Sent>,
    txns: HashMap<(String, String), String>,
    /// Every send attempt, answered or not: (room, txnId).
    attempts: Vec<(String, String)>,
    typing: Vec<(String, bool)>,
    syncs: Vec<SyncCall>,
    send_faults: VecDeque<SendFault>,
    drop_syncs: usize,
    /// The next sync answers from this position, whatever its `since`.
    replay_from: Option<u64>,
    /// How often each event went out in a sync answer.
    delivered: HashMap<String, usize>,
    direct: Option<Value>,
    joins: Vec<String>,
}

struct FakeState {
    token: String,
    inner: Mutex<Inner>,
    changed: Notify,
    whoami_calls: AtomicUsize,
}

pub struct FakeMatrix {
    /// What `MATRIX_HOMESERVER_URL` should be.
    pub url: String,
    state: Arc<FakeState>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeMatrix {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn error(status: StatusCode, errcode: &str, message: &str) -> Response {
    (status, Json(json!({"errcode": errcode, "error": message}))).into_response()
}

/// The 401 answer for a missing or wrong token; `None` when it is the bot's.
fn refused(s: &FakeState, headers: &HeaderMap) -> Option<Response> {
    match headers.get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer ")) {
        None => Some(error(StatusCode::UNAUTHORIZED, "M_MISSING_TOKEN", "Missing access token")),
        Some(t) if t == s.token => None,
        Some(_) => Some((
            StatusCode::UNAUTHORIZED,
            Json(json!({"errcode": "M_UNKNOWN_TOKEN", "error": "Invalid access token passed.", "soft_logout": false})),
        )
            .into_response()),
    }
}

async fn whoami(State(s): State<Arc<FakeState>>, headers: HeaderMap) -> Response {
    s.whoami_calls.fetch_add(1, Ordering::SeqCst);
    if let Some(r) = refused(&s, &headers) {
        return r;
    }
    Json(json!({"user_id": USER_ID, "device_id": "ARVISDEVICE", "is_guest": false})).into_response()
}

async fn displayname(Path(user): Path<String>) -> Response {
    if user == USER_ID {
        Json(json!({"displayname": DISPLAY_NAME})).into_response()
    } else {
        error(StatusCode::NOT_FOUND, "M_NOT_FOUND", "Profile was not found")
    }
}

async fn account_data(
    State(s): State<Arc<FakeState>>,
    headers: HeaderMap,
    Path((user, kind)): Path<(String, String)>,
) -> Response {
    if let Some(r) = refused(&s, &headers) {
        return r;
    }
    if user != USER_ID {
        return error(StatusCode::FORBIDDEN, "M_FORBIDDEN", "Cannot get account data for other users.");
    }
    match (kind.as_str(), s.inner.lock().unwrap().direct.clone()) {
        ("m.direct", Some(d)) => Json(d).into_response(),
        _ => error(StatusCode::NOT_FOUND, "M_NOT_FOUND", "Account data not found"),
    }
}

fn member_event(user: &str, name: &str, membership: &str, sender: &str, id: &str) -> Value {
    json!({"type": "m.room.member", "state_key": user, "sender": sender, "event_id": id,
        "origin_server_ts": 0, "content": {"membership": membership, "displayname": name}})
}

impl Inner {
    fn push(&mut self, entry: Entry) -> u64 {
        self.pos += 1;
        self.stream.push((self.pos, entry));
        self.pos
    }

    fn is_member(&self, room: &str) -> bool {
        self.rooms.get(room).is_some_and(|r| r.members.contains_key(USER_ID))
    }

    fn room_json(&self, room: &str, events: Vec<Value>, limit: usize, summary: bool, initial: bool) -> Value {
        let limited = events.len() > limit;
        let events: Vec<Value> = events[events.len().saturating_sub(limit)..].to_vec();
        let r = self.rooms.get(room);
        let senders: HashSet<&str> = events.iter().filter_map(|e| e["sender"].as_str()).collect();
        let state: Vec<Value> = r
            .map(|r| {
                r.members
                    .iter()
                    .filter(|(u, _)| initial || (senders.contains(u.as_str()) && u.as_str() != USER_ID))
                    .map(|(u, n)| member_event(u, n, "join", u, &format!("$state-{u}")))
                    .collect()
            })
            .unwrap_or_default();
        let mut out = json!({
            "timeline": {"events": events, "limited": limited, "prev_batch": "p0"},
            "state": {"events": state},
            "ephemeral": {"events": []},
            "account_data": {"events": []},
        });
        if summary {
            out["summary"] = json!({"m.joined_member_count": r.map_or(0, |r| r.members.len())});
        }
        out
    }

    /// The sync answer after position `since` (None: an initial sync); `None`
    /// when an incremental sync has nothing to say.
    fn answer(&mut self, since: Option<u64>, limit: usize) -> Option<Value> {
        let mut join = serde_json::Map::new();
        let mut invite = serde_json::Map::new();
        let mut account_data = Vec::new();
        match since {
            None => {
                let rooms: Vec<String> = self.rooms.keys().cloned().collect();
                for room in rooms {
                    if self.is_member(&room) {
                        let events = self.events_of(&room, 0);
                        join.insert(room.clone(), self.room_json(&room, events, limit, true, true));
                    } else if self.rooms[&room].invited {
                        invite.insert(room.clone(), self.invite_json(&room, USER_ID));
                    }
                }
                if let Some(d) = &self.direct {
                    account_data.push(json!({"type": "m.direct", "content": d}));
                }
            }
            Some(n) => {
                let mut rooms: Vec<String> = Vec::new();
                for (pos, e) in &self.stream {
                    if *pos <= n {
                        continue;
                    }
                    let room = match e {
                        Entry::Event { room, .. } | Entry::Invite { room, .. } => room,
                    };
                    if !rooms.contains(room) {
                        rooms.push(room.clone());
                    }
                }
                for room in rooms {
                    if self.is_member(&room) {
                        let events = self.events_of(&room, n);
                        if events.is_empty() {
                            continue;
                        }
                        let changed = events.iter().any(|e| e["type"] == "m.room.member");
                        join.insert(room.clone(), self.room_json(&room, events, limit, changed, false));
                    } else if let Some(inviter) = self.stream.iter().rev().find_map(|(pos, e)| match e {
                        Entry::Invite { room: r, inviter } if *pos > n && *r == room => Some(inviter.clone()),
                        _ => None,
                    }) {
                        invite.insert(room.clone(), self.invite_json(&room, &inviter));
                    }
                }
                if join.is_empty() && invite.is_empty() {
                    return None;
                }
            }
        }
        for room in join.values() {
            for e in room["timeline"]["events"].as_array().into_iter().flatten() {
                if let Some(id) = e["event_id"].as_str() {
                    *self.delivered.entry(id.to_string()).or_default() += 1;
                }
            }
        }
        Some(json!({
            "next_batch": format!("s{}", self.pos),
            "rooms": {"join": join, "invite": invite, "leave": {}},
            "account_data": {"events": account_data},
            "presence": {"events": []},
        }))
    }

    fn events_of(&self, room: &str, after: u64) -> Vec<Value> {
        self.stream
            .iter()
            .filter(|(pos, _)| *pos > after)
            .filter_map(|(_, e)| match e {
                Entry::Event { room: r, event } if r == room => Some(event.clone()),
                _ => None,
            })
            .collect()
    }

    fn invite_json(&self, room: &str, inviter: &str) -> Value {
        json!({"invite_state": {"events": [
            {"type": "m.room.name", "state_key": "", "sender": inviter, "content": {"name": "Team room"}},
            {"type": "m.room.member", "state_key": USER_ID, "sender": inviter,
                "content": {"membership": "invite", "displayname": DISPLAY_NAME}},
        ]}, "room_id": room})
    }
}

async fn sync(
    State(s): State<Arc<FakeState>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Some(r) = refused(&s, &headers) {
        return r;
    }
    let since_token = q.get("since").cloned();
    let since = match since_token.as_deref() {
        None => None,
        Some(t) => match t.strip_prefix('s').and_then(|n| n.parse::<u64>().ok()) {
            Some(n) => Some(n),
            None => return error(StatusCode::BAD_REQUEST, "M_INVALID_PARAM", "Invalid stream token"),
        },
    };
    let timeout = q.get("timeout").and_then(|t| t.parse::<u64>().ok()).unwrap_or(0).min(30_000);
    let limit = q
        .get("filter")
        .and_then(|f| serde_json::from_str::<Value>(f).ok())
        .and_then(|f| f["room"]["timeline"]["limit"].as_u64())
        .unwrap_or(10) as usize;
    s.inner.lock().unwrap().syncs.push(SyncCall { since: since_token, at: Instant::now() });
    let deadline = tokio::time::Instant::now() + Duration::from_millis(timeout);
    loop {
        let notified = s.changed.notified();
        {
            let mut inner = s.inner.lock().unwrap();
            if inner.drop_syncs > 0 {
                inner.drop_syncs -= 1;
                return broken_answer();
            }
            let since = match inner.replay_from.take() {
                Some(from) if since.is_some() => Some(from),
                other => {
                    inner.replay_from = other;
                    since
                }
            };
            if let Some(answer) = inner.answer(since, limit) {
                return Json(answer).into_response();
            }
        }
        if tokio::time::timeout_at(deadline, notified).await.is_err() {
            let pos = s.inner.lock().unwrap().pos;
            return Json(json!({"next_batch": format!("s{pos}"), "rooms": {"join": {}, "invite": {}, "leave": {}}}))
                .into_response();
        }
    }
}

async fn join(State(s): State<Arc<FakeState>>, headers: HeaderMap, Path(room): Path<String>) -> Response {
    if let Some(r) = refused(&s, &headers) {
        return r;
    }
    let mut inner = s.inner.lock().unwrap();
    inner.joins.push(room.clone());
    let Some(r) = inner.rooms.get_mut(&room) else {
        return error(StatusCode::NOT_FOUND, "M_NOT_FOUND", "No known servers");
    };
    if r.members.contains_key(USER_ID) {
        return Json(json!({"room_id": room})).into_response();
    }
    if !r.invited {
        return error(StatusCode::FORBIDDEN, "M_FORBIDDEN", "You are not invited to this room.");
    }
    r.invited = false;
    r.members.insert(USER_ID.to_string(), DISPLAY_NAME.to_string());
    let id = format!("$join{}", inner.pos + 1);
    let event = member_event(USER_ID, DISPLAY_NAME, "join", USER_ID, &id);
    inner.push(Entry::Event { room: room.clone(), event });
    drop(inner);
    s.changed.notify_waiters();
    Json(json!({"room_id": room})).into_response()
}

async fn send(
    State(s): State<Arc<FakeState>>,
    headers: HeaderMap,
    Path((room, kind, txn)): Path<(String, String, String)>,
    Json(content): Json<Value>,
) -> Response {
    if let Some(r) = refused(&s, &headers) {
        return r;
    }
    let mut inner = s.inner.lock().unwrap();
    inner.attempts.push((room.clone(), txn.clone()));
    let fault = inner.send_faults.pop_front();
    if let Some(fault) = fault.filter(|f| !matches!(f, SendFault::AnswerLost)) {
        return match fault {
            SendFault::RateLimited(ms) => (
                StatusCode::TOO_MANY_REQUESTS,
                Json(json!({"errcode": "M_LIMIT_EXCEEDED", "error": "Too Many Requests", "retry_after_ms": ms})),
            )
                .into_response(),
            SendFault::Internal | SendFault::AnswerLost => {
                error(StatusCode::INTERNAL_SERVER_ERROR, "M_UNKNOWN", "Internal server error")
            }
        };
    }
    if let Some(id) = inner.txns.get(&(room.clone(), txn.clone())) {
        return Json(json!({"event_id": id})).into_response();
    }
    if !inner.is_member(&room) {
        return error(StatusCode::FORBIDDEN, "M_FORBIDDEN", "User not in room");
    }
    if content.to_string().len() > 65_536 {
        return error(StatusCode::PAYLOAD_TOO_LARGE, "M_TOO_LARGE", "event too large");
    }
    let event_id = format!("$sent{}", inner.pos + 1);
    let event = json!({"type": kind, "event_id": event_id, "sender": USER_ID, "origin_server_ts": 0,
        "content": content, "unsigned": {"transaction_id": txn}});
    inner.push(Entry::Event { room: room.clone(), event });
    inner.txns.insert((room.clone(), txn.clone()), event_id.clone());
    inner.sent.push(Sent {
        room,
        txn,
        event_id: event_id.clone(),
        body: content["body"].as_str().unwrap_or_default().to_string(),
        content,
        at: Instant::now(),
    });
    drop(inner);
    s.changed.notify_waiters();
    if matches!(fault, Some(SendFault::AnswerLost)) {
        return broken_answer();
    }
    Json(json!({"event_id": event_id})).into_response()
}

async fn typing(
    State(s): State<Arc<FakeState>>,
    headers: HeaderMap,
    Path((room, user)): Path<(String, String)>,
    Json(body): Json<Value>,
) -> Response {
    if let Some(r) = refused(&s, &headers) {
        return r;
    }
    if user != USER_ID {
        return error(StatusCode::FORBIDDEN, "M_FORBIDDEN", "Cannot set another user's typing state");
    }
    let mut inner = s.inner.lock().unwrap();
    if !inner.is_member(&room) {
        return error(StatusCode::FORBIDDEN, "M_FORBIDDEN", "User not in room");
    }
    inner.typing.push((room, body["typing"] == true));
    Json(json!({})).into_response()
}

async fn joined_members(State(s): State<Arc<FakeState>>, headers: HeaderMap, Path(room): Path<String>) -> Response {
    if let Some(r) = refused(&s, &headers) {
        return r;
    }
    let inner = s.inner.lock().unwrap();
    if !inner.is_member(&room) {
        return error(StatusCode::FORBIDDEN, "M_FORBIDDEN", "User not in room");
    }
    let joined: serde_json::Map<String, Value> = inner.rooms[&room]
        .members
        .iter()
        .map(|(u, n)| (u.clone(), json!({"display_name": n, "avatar_url": null})))
        .collect();
    Json(json!({"joined": joined})).into_response()
}

/// Headers and half a body, then the connection breaks.
fn broken_answer() -> Response {
    let chunks: Vec<Result<bytes::Bytes, std::io::Error>> = vec![
        Ok(bytes::Bytes::from_static(b"{\"next_batch\": \"s")),
        Err(std::io::Error::other("connection dropped by the fake")),
    ];
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/json")
        .body(Body::from_stream(futures::stream::iter(chunks)))
        .unwrap()
}

async fn unknown() -> Response {
    error(StatusCode::NOT_FOUND, "M_UNRECOGNIZED", "Unrecognized request")
}

impl FakeMatrix {
    /// Serves a homeserver whose bot account has `token`.
    pub async fn start(token: &str) -> FakeMatrix {
        let state = Arc::new(FakeState {
            token: token.to_string(),
            inner: Mutex::default(),
            changed: Notify::new(),
            whoami_calls: AtomicUsize::new(0),
        });
        let v3 = "/_matrix/client/v3";
        let app = axum::Router::new()
            .route(&format!("{v3}/account/whoami"), get(whoami))
            .route(&format!("{v3}/profile/{{user}}/displayname"), get(displayname))
            .route(&format!("{v3}/user/{{user}}/account_data/{{kind}}"), get(account_data))
            .route(&format!("{v3}/sync"), get(sync))
            .route(&format!("{v3}/rooms/{{room}}/join"), post(join))
            .route(&format!("{v3}/join/{{room}}"), post(join))
            .route(&format!("{v3}/rooms/{{room}}/send/{{kind}}/{{txn}}"), put(send))
            .route(&format!("{v3}/rooms/{{room}}/typing/{{user}}"), put(typing))
            .route(&format!("{v3}/rooms/{{room}}/joined_members"), get(joined_members))
            .fallback(unknown)
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
                let _ = tcp.set_nodelay(true);
            });
            let _ = axum::serve(listener, app).await;
        });
        FakeMatrix { url, state, server }
    }

    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        let out = f(&mut self.state.inner.lock().unwrap());
        self.state.changed.notify_waiters();
        out
    }

    /// A room with `others` (user id, display name) as members, and the bot
    /// too when `bot_joined`; its id.
    pub fn room(&self, others: &[(&str, &str)], bot_joined: bool) -> String {
        self.with(|inner| {
            let id = format!("!room{}:localhost", inner.rooms.len() + 1);
            let mut room = Room::default();
            for (u, n) in others {
                room.members.insert(u.to_string(), n.to_string());
            }
            if bot_joined {
                room.members.insert(USER_ID.to_string(), DISPLAY_NAME.to_string());
            }
            inner.rooms.insert(id.clone(), room);
            id
        })
    }

    /// `inviter` invites the bot into `room`.
    pub fn invite(&self, room: &str, inviter: &str) {
        self.with(|inner| {
            inner.rooms.get_mut(room).unwrap().invited = true;
            inner.push(Entry::Invite { room: room.to_string(), inviter: inviter.to_string() });
        });
    }

    /// An `m.room.message` with `content` from `sender`; its event id.
    pub fn message_with(&self, room: &str, sender: &str, content: Value) -> String {
        self.event(room, sender, "m.room.message", content)
    }

    /// A plain `m.text` message; its event id.
    pub fn text(&self, room: &str, sender: &str, body: &str) -> String {
        self.message_with(room, sender, json!({"msgtype": "m.text", "body": body}))
    }

    /// Any room event; its event id.
    pub fn event(&self, room: &str, sender: &str, kind: &str, content: Value) -> String {
        self.with(|inner| {
            let id = format!("$ev{}", inner.pos + 1);
            let event = json!({"type": kind, "event_id": id, "sender": sender, "origin_server_ts": 0,
                "content": content, "unsigned": {"age": 1}});
            inner.push(Entry::Event { room: room.to_string(), event });
            id
        })
    }

    /// The bot's `m.direct` account data.
    pub fn set_direct(&self, content: Value) {
        self.with(|inner| inner.direct = Some(content));
    }

    pub fn sent(&self) -> Vec<Sent> {
        self.state.inner.lock().unwrap().sent.clone()
    }

    pub fn sent_to(&self, room: &str) -> Vec<Sent> {
        self.sent().into_iter().filter(|s| s.room == room).collect()
    }

    /// Waits until at least `n` messages went to `room` (panics after `within`).
    pub async fn wait_sent(&self, room: &str, n: usize, within: Duration) -> Vec<Sent> {
        let deadline = Instant::now() + within;
        loop {
            let sent = self.sent_to(room);
            if sent.len() >= n {
                return sent;
            }
            assert!(Instant::now() < deadline, "{} of {n} messages reached {room}: {sent:?}", sent.len());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Every send attempt, answered or refused: (room, txnId).
    pub fn attempts(&self) -> Vec<(String, String)> {
        self.state.inner.lock().unwrap().attempts.clone()
    }

    /// Typing notifications: (room, typing).
    pub fn typing(&self) -> Vec<(String, bool)> {
        self.state.inner.lock().unwrap().typing.clone()
    }

    pub fn syncs(&self) -> Vec<SyncCall> {
        self.state.inner.lock().unwrap().syncs.clone()
    }

    /// Rooms the bot asked to join.
    pub fn joins(&self) -> Vec<String> {
        self.state.inner.lock().unwrap().joins.clone()
    }

    pub fn is_member(&self, room: &str) -> bool {
        self.state.inner.lock().unwrap().is_member(room)
    }

    /// How many sync answers carried event `id`.
    pub fn delivered(&self, id: &str) -> usize {
        self.state.inner.lock().unwrap().delivered.get(id).copied().unwrap_or(0)
    }

    pub fn whoami_calls(&self) -> usize {
        self.state.whoami_calls.load(Ordering::SeqCst)
    }

    /// Waits until the bot long-polls with a `since` (it is past its first sync).
    pub async fn wait_polling(&self, within: Duration) {
        let deadline = Instant::now() + within;
        while !self.syncs().iter().any(|s| s.since.is_some()) {
            assert!(Instant::now() < deadline, "the bot never synced with a since token: {:?}", self.syncs());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The next sends fail like this, in order.
    pub fn fail_sends(&self, faults: &[SendFault]) {
        self.with(|inner| inner.send_faults.extend(faults.iter().copied()));
    }

    /// The next `n` syncs (the one open now included) drop their connection mid-answer.
    pub fn drop_syncs(&self, n: usize) {
        self.with(|inner| inner.drop_syncs = n);
    }

    /// The next sync with a `since` is answered from just before event `id`,
    /// whatever its `since`: that event (and what followed) is delivered again.
    pub fn replay_next_sync_from(&self, id: &str) {
        self.with(|inner| {
            let pos = inner.stream.iter().find_map(|(pos, e)| match e {
                Entry::Event { event, .. } if event["event_id"] == id => Some(*pos),
                _ => None,
            });
            inner.replay_from = Some(pos.unwrap().saturating_sub(1));
        });
    }
}
