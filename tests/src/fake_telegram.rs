//! A loopback Telegram Bot API (written from core.telegram.org/bots/api):
//! `POST /bot<token>/<method>` with JSON bodies and `{"ok": …}` envelopes.
//!
//! - `getMe`: the bot's id and username.
//! - `getUpdates`: long polling. Updates below `offset` are confirmed and
//!   forgotten (as Telegram does); with none waiting the call holds up to
//!   `timeout` seconds. A second poll while one is open ends the older one with
//!   409 "terminated by other getUpdates request" (and counts a conflict).
//! - `sendMessage` (4096 characters at most, else 400), `sendChatAction`.
//! - Chaos: the next N `sendMessage` calls answer 429 with
//!   `parameters.retry_after`; a switch makes every call answer 502.
//! - A wrong token answers 401 Unauthorized.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use tokio::sync::Notify;

pub const BOT_ID: i64 = 777_000;
pub const BOT_USERNAME: &str = "arvis_test_bot";

/// A message the bot sent.
#[derive(Debug, Clone)]
pub struct Sent {
    pub chat_id: String,
    pub text: String,
    pub reply_to: Option<i64>,
    pub at: Instant,
}

/// A `getUpdates` call as received.
#[derive(Debug, Clone)]
pub struct Poll {
    pub offset: i64,
    pub at: Instant,
}

#[derive(Default)]
struct Inner {
    updates: Vec<Value>,
    sent: Vec<Sent>,
    actions: Vec<(String, String)>,
    polls: Vec<Poll>,
    rate_limited: Vec<Instant>,
}

struct FakeState {
    token: String,
    inner: Mutex<Inner>,
    next_update: AtomicI64,
    next_message: AtomicI64,
    arrived: Notify,
    poll_generation: AtomicU64,
    open_polls: AtomicUsize,
    conflicts: AtomicUsize,
    limit_next: AtomicUsize,
    retry_after: AtomicU64,
    down: AtomicBool,
}

pub struct FakeTelegram {
    /// What `TELEGRAM_API_URL` should be.
    pub url: String,
    state: Arc<FakeState>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeTelegram {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn ok(result: Value) -> Response {
    Json(json!({"ok": true, "result": result})).into_response()
}

fn fail(status: StatusCode, description: &str, extra: Option<Value>) -> Response {
    let mut body = json!({"ok": false, "error_code": status.as_u16(), "description": description});
    if let Some(p) = extra {
        body["parameters"] = p;
    }
    (status, Json(body)).into_response()
}

/// Ends a poll's bookkeeping however the handler ends (answered or dropped).
struct OpenPoll(Arc<FakeState>);
impl Drop for OpenPoll {
    fn drop(&mut self) {
        self.0.open_polls.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn method(
    State(s): State<Arc<FakeState>>,
    Path((bot, name)): Path<(String, String)>,
    body: Option<Json<Value>>,
) -> Response {
    let body = body.map(|Json(v)| v).unwrap_or(Value::Null);
    if bot.strip_prefix("bot") != Some(s.token.as_str()) {
        return fail(StatusCode::UNAUTHORIZED, "Unauthorized", None);
    }
    if s.down.load(Ordering::SeqCst) {
        return fail(StatusCode::BAD_GATEWAY, "Bad Gateway", None);
    }
    match name.as_str() {
        "getMe" => ok(json!({"id": BOT_ID, "is_bot": true, "first_name": "Arvis", "username": BOT_USERNAME})),
        "getUpdates" => get_updates(s, body).await,
        "sendMessage" => {
            let text = body["text"].as_str().unwrap_or_default().to_string();
            if text.is_empty() {
                return fail(StatusCode::BAD_REQUEST, "Bad Request: message text is empty", None);
            }
            if text.chars().count() > 4096 {
                return fail(StatusCode::BAD_REQUEST, "Bad Request: message is too long", None);
            }
            let limited = s.limit_next.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok();
            if limited {
                s.inner.lock().unwrap().rate_limited.push(Instant::now());
                let after = s.retry_after.load(Ordering::SeqCst);
                return fail(
                    StatusCode::TOO_MANY_REQUESTS,
                    &format!("Too Many Requests: retry after {after}"),
                    Some(json!({"retry_after": after})),
                );
            }
            let chat_id = match &body["chat_id"] {
                Value::String(c) => c.clone(),
                other => other.to_string(),
            };
            if chat_id == "404404" {
                return fail(StatusCode::BAD_REQUEST, "Bad Request: chat not found", None);
            }
            let reply_to = body["reply_parameters"]["message_id"].as_i64();
            let id = s.next_message.fetch_add(1, Ordering::SeqCst);
            s.inner.lock().unwrap().sent.push(Sent {
                chat_id: chat_id.clone(),
                text: text.clone(),
                reply_to,
                at: Instant::now(),
            });
            ok(json!({"message_id": id, "chat": {"id": chat_id}, "date": 0, "text": text}))
        }
        "sendChatAction" => {
            let chat = match &body["chat_id"] {
                Value::String(c) => c.clone(),
                other => other.to_string(),
            };
            s.inner.lock().unwrap().actions.push((chat, body["action"].as_str().unwrap_or_default().to_string()));
            ok(json!(true))
        }
        _ => fail(StatusCode::NOT_FOUND, "Not Found: method not found", None),
    }
}

async fn get_updates(s: Arc<FakeState>, body: Value) -> Response {
    let offset = body["offset"].as_i64().unwrap_or(0);
    let timeout = body["timeout"].as_u64().unwrap_or(0).min(50);
    let generation = s.poll_generation.fetch_add(1, Ordering::SeqCst) + 1;
    if s.open_polls.fetch_add(1, Ordering::SeqCst) > 0 {
        // Another poll is open: Telegram terminates it (it sees our new generation).
        s.conflicts.fetch_add(1, Ordering::SeqCst);
    }
    let _open = OpenPoll(s.clone());
    s.arrived.notify_waiters();
    s.inner.lock().unwrap().polls.push(Poll { offset, at: Instant::now() });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(timeout);
    loop {
        let notified = s.arrived.notified();
        {
            let mut inner = s.inner.lock().unwrap();
            inner.updates.retain(|u| u["update_id"].as_i64().unwrap_or(0) >= offset);
            if !inner.updates.is_empty() {
                return ok(Value::Array(inner.updates.iter().take(100).cloned().collect()));
            }
        }
        if s.poll_generation.load(Ordering::SeqCst) != generation {
            return fail(
                StatusCode::CONFLICT,
                "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running",
                None,
            );
        }
        if tokio::time::timeout_at(deadline, notified).await.is_err() {
            return ok(json!([]));
        }
    }
}

impl FakeTelegram {
    /// Serves the Bot API for `token` on a loopback port.
    pub async fn start(token: &str) -> FakeTelegram {
        let state = Arc::new(FakeState {
            token: token.to_string(),
            inner: Mutex::default(),
            next_update: AtomicI64::new(1000),
            next_message: AtomicI64::new(1),
            arrived: Notify::new(),
            poll_generation: AtomicU64::new(0),
            open_polls: AtomicUsize::new(0),
            conflicts: AtomicUsize::new(0),
            limit_next: AtomicUsize::new(0),
            retry_after: AtomicU64::new(1),
            down: AtomicBool::new(false),
        });
        let app = axum::Router::new().route("/{bot}/{method}", post(method)).with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
                let _ = tcp.set_nodelay(true);
            });
            let _ = axum::serve(listener, app).await;
        });
        FakeTelegram { url, state, server }
    }

    /// Queues an update (its `update_id` is assigned); returns the id.
    pub fn push(&self, mut update: Value) -> i64 {
        let id = self.state.next_update.fetch_add(1, Ordering::SeqCst);
        update["update_id"] = json!(id);
        self.state.inner.lock().unwrap().updates.push(update);
        self.state.arrived.notify_waiters();
        id
    }

    /// Queues an update as given, `update_id` included: Telegram delivering
    /// an update again because its confirmation never came.
    pub fn redeliver(&self, update: Value) {
        self.state.inner.lock().unwrap().updates.push(update);
        self.state.arrived.notify_waiters();
    }

    /// A text message in a private chat with user `user` (chat id = user id).
    pub fn dm(&self, user: i64, text: &str) -> i64 {
        let message_id = self.state.next_message.fetch_add(1, Ordering::SeqCst);
        self.push(json!({"message": {
            "message_id": message_id, "date": 0, "text": text,
            "from": {"id": user, "is_bot": false, "first_name": "Ada", "username": format!("user{user}")},
            "chat": {"id": user, "type": "private", "first_name": "Ada"}
        }}))
    }

    /// A text message in group `chat` (negative id, like Telegram's).
    pub fn group(&self, chat: i64, user: i64, text: &str) -> i64 {
        let message_id = self.state.next_message.fetch_add(1, Ordering::SeqCst);
        self.push(json!({"message": {
            "message_id": message_id, "date": 0, "text": text,
            "from": {"id": user, "is_bot": false, "first_name": "Bob"},
            "chat": {"id": chat, "type": "supergroup", "title": "Team"}
        }}))
    }

    /// A photo without caption in a private chat.
    pub fn photo(&self, user: i64) -> i64 {
        let message_id = self.state.next_message.fetch_add(1, Ordering::SeqCst);
        self.push(json!({"message": {
            "message_id": message_id, "date": 0,
            "photo": [{"file_id": "AgAC", "file_unique_id": "u1", "width": 90, "height": 90}],
            "from": {"id": user, "is_bot": false, "first_name": "Ada"},
            "chat": {"id": user, "type": "private"}
        }}))
    }

    pub fn sent(&self) -> Vec<Sent> {
        self.state.inner.lock().unwrap().sent.clone()
    }

    /// How many messages the bot sent (cheap: no copy).
    pub fn sent_count(&self) -> usize {
        self.state.inner.lock().unwrap().sent.len()
    }

    pub fn sent_to(&self, chat: i64) -> Vec<Sent> {
        self.sent().into_iter().filter(|s| s.chat_id == chat.to_string()).collect()
    }

    /// Waits until at least `n` messages went to `chat` (panics after `within`).
    pub async fn wait_sent(&self, chat: i64, n: usize, within: Duration) -> Vec<Sent> {
        let deadline = Instant::now() + within;
        loop {
            let sent = self.sent_to(chat);
            if sent.len() >= n {
                return sent;
            }
            assert!(Instant::now() < deadline, "{} of {n} messages reached chat {chat}: {sent:?}", sent.len());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn actions(&self) -> Vec<(String, String)> {
        self.state.inner.lock().unwrap().actions.clone()
    }

    pub fn polls(&self) -> Vec<Poll> {
        self.state.inner.lock().unwrap().polls.clone()
    }

    /// Waits for the first `getUpdates` (the bot is running).
    pub async fn wait_polling(&self, within: Duration) {
        let deadline = Instant::now() + within;
        while self.polls().is_empty() {
            assert!(Instant::now() < deadline, "the bot never polled getUpdates");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Polls that were open while another one started.
    pub fn conflicts(&self) -> usize {
        self.state.conflicts.load(Ordering::SeqCst)
    }

    /// The next `n` sendMessage calls answer 429 with `retry_after` seconds.
    pub fn rate_limit_next(&self, n: usize, retry_after: u64) {
        self.state.retry_after.store(retry_after, Ordering::SeqCst);
        self.state.limit_next.store(n, Ordering::SeqCst);
    }

    /// When the 429s were answered.
    pub fn rate_limited_at(&self) -> Vec<Instant> {
        self.state.inner.lock().unwrap().rate_limited.clone()
    }

    /// Every call answers 502 while `down`.
    pub fn set_down(&self, down: bool) {
        self.state.down.store(down, Ordering::SeqCst);
    }
}
