//! A loopback Slack (written from docs.slack.dev: Socket Mode, the Events
//! API's `message` and `app_mention` events, `apps.connections.open`,
//! `auth.test`, `chat.postMessage`, rate limits).
//!
//! Web API (`SLACK_API_URL` = [`FakeSlack::url`]), `Authorization: Bearer`,
//! answers HTTP 200 `{"ok": …}` like Slack (a wrong token: `invalid_auth`;
//! the bot token where the app token belongs: `not_allowed_token_type`):
//! - `apps.connections.open` (app token): a single-use `ws://…/link/?ticket=N`.
//! - `auth.test` (bot token): the bot's `user_id`.
//! - `chat.postMessage` (bot token): records channel, text, `thread_ts`;
//!   chaos: the next N answer HTTP 429 with `Retry-After` (seconds).
//!
//! Socket Mode: a real WebSocket. A ticket works once (else the handshake is
//! refused with 401). `hello` first; events go out as `events_api`
//! envelopes on the newest connection that was not told to disconnect, and
//! wait (unacknowledged) until the client sends `{"envelope_id": …}`.
//! [`FakeSlack::redeliver`] sends an event again with a new envelope id and
//! `retry_attempt` 1, as Slack does when an ack did not come in time.
//! [`FakeSlack::refresh`] sends `disconnect` / `refresh_requested`; the
//! fake counts any moment when the client had no connection open after it
//! had one ([`FakeSlack::gaps`]).
//! [`FakeSlack::retry_unacknowledged`] turns on Slack's own retries: an
//! envelope not acknowledged within 3 s is sent again (`retry_attempt` 1),
//! then after 1 and 5 minutes (2 and 3), on whichever connection is newest —
//! what a bot killed between receiving an event and acknowledging it relies on.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio::sync::mpsc;

pub const BOT_USER: &str = "U0BOT00001";
pub const TEAM: &str = "T0TEAM0001";

/// A message the bot posted.
#[derive(Debug, Clone)]
pub struct Posted {
    pub channel: String,
    pub text: String,
    pub thread_ts: Option<String>,
    pub at: Instant,
}

/// An envelope as sent, and when (if) it was acknowledged.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub envelope_id: String,
    pub event_id: String,
    pub connection: usize,
    /// 0 for the first envelope of an event, then 1, 2, 3 (Slack's `retry_attempt`).
    pub retry_attempt: u32,
    pub sent_at: Instant,
    pub acked_at: Option<Instant>,
}

struct Conn {
    id: usize,
    tx: mpsc::UnboundedSender<String>,
    refreshing: bool,
}

#[derive(Default)]
struct Inner {
    conns: Vec<Conn>,
    deliveries: Vec<Delivery>,
    /// event_id → the envelope payload (for redelivery).
    events: HashMap<String, Value>,
    /// Envelopes that could not be sent (no connection): sent on the next one.
    /// (envelope id, event id, retry attempt, envelope).
    waiting: Vec<(String, String, u32, String)>,
    posted: Vec<Posted>,
    rate_limited: Vec<Instant>,
    tickets: HashMap<String, bool>,
    ever_connected: bool,
}

struct FakeState {
    bot_token: String,
    app_token: String,
    base: Mutex<String>,
    inner: Mutex<Inner>,
    next: AtomicU64,
    connections: AtomicUsize,
    gaps: AtomicUsize,
    limit_next: AtomicUsize,
    retry_after: AtomicU64,
}

/// When Slack retries an unacknowledged event: after 3 s, 1 min and 5 min.
const RETRY_AFTER_UNACKED: [Duration; 3] = [Duration::from_secs(3), Duration::from_secs(60), Duration::from_secs(300)];

pub struct FakeSlack {
    /// What `SLACK_API_URL` should be.
    pub url: String,
    state: Arc<FakeState>,
    server: tokio::task::JoinHandle<()>,
    retries: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Drop for FakeSlack {
    fn drop(&mut self) {
        self.server.abort();
        if let Some(r) = self.retries.lock().unwrap().take() {
            r.abort();
        }
    }
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    headers.get("authorization")?.to_str().ok()?.strip_prefix("Bearer ").map(str::to_string)
}

fn fail(error: &str) -> Response {
    Json(json!({"ok": false, "error": error})).into_response()
}

async fn method(
    State(s): State<Arc<FakeState>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Option<Json<Value>>,
) -> Response {
    let body = body.map(|Json(v)| v).unwrap_or(Value::Null);
    let token = bearer(&headers);
    let is_bot = token.as_deref() == Some(s.bot_token.as_str());
    let is_app = token.as_deref() == Some(s.app_token.as_str());
    match name.as_str() {
        "apps.connections.open" => {
            if is_bot {
                return fail("not_allowed_token_type");
            }
            if !is_app {
                return fail("invalid_auth");
            }
            let ticket = format!("t{}", s.next.fetch_add(1, Ordering::SeqCst));
            s.inner.lock().unwrap().tickets.insert(ticket.clone(), false);
            let base = s.base.lock().unwrap().replace("http://", "ws://");
            Json(json!({"ok": true, "url": format!("{base}/link/?ticket={ticket}&app_id=A0APP0001")})).into_response()
        }
        "auth.test" => {
            if !is_bot {
                return fail(if is_app { "not_allowed_token_type" } else { "invalid_auth" });
            }
            Json(json!({"ok": true, "url": "https://fake.slack.com/", "team": "Fake", "user": "arvis",
                "team_id": TEAM, "user_id": BOT_USER, "bot_id": "B0BOT0001", "is_enterprise_install": false}))
            .into_response()
        }
        "chat.postMessage" => {
            if !is_bot {
                return fail(if is_app { "not_allowed_token_type" } else { "invalid_auth" });
            }
            if s.limit_next.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok() {
                s.inner.lock().unwrap().rate_limited.push(Instant::now());
                let after = s.retry_after.load(Ordering::SeqCst);
                let mut resp =
                    (StatusCode::TOO_MANY_REQUESTS, Json(json!({"ok": false, "error": "ratelimited"}))).into_response();
                resp.headers_mut().insert("retry-after", after.to_string().parse().unwrap());
                return resp;
            }
            let channel = body["channel"].as_str().unwrap_or_default().to_string();
            let text = body["text"].as_str().unwrap_or_default().to_string();
            if channel == "C0NOWHERE" {
                return fail("channel_not_found");
            }
            if text.is_empty() {
                return fail("no_text");
            }
            if text.chars().count() > 40_000 {
                return fail("msg_too_long");
            }
            let ts = format!("1733000000.{:06}", s.next.fetch_add(1, Ordering::SeqCst));
            let thread_ts = body["thread_ts"].as_str().map(str::to_string);
            s.inner.lock().unwrap().posted.push(Posted {
                channel: channel.clone(),
                text: text.clone(),
                thread_ts,
                at: Instant::now(),
            });
            Json(json!({"ok": true, "channel": channel, "ts": ts, "message": {"text": text, "user": BOT_USER, "ts": ts}}))
                .into_response()
        }
        _ => fail("unknown_method"),
    }
}

async fn link(
    State(s): State<Arc<FakeState>>,
    Query(q): Query<HashMap<String, String>>,
    ws: WebSocketUpgrade,
) -> Response {
    let ticket = q.get("ticket").cloned().unwrap_or_default();
    {
        let mut inner = s.inner.lock().unwrap();
        match inner.tickets.get_mut(&ticket) {
            Some(used) if !*used => *used = true,
            // Socket Mode URLs are single-use.
            _ => return (StatusCode::UNAUTHORIZED, "invalid ticket").into_response(),
        }
    }
    ws.on_upgrade(move |socket| connection(s, socket))
}

async fn connection(s: Arc<FakeState>, mut socket: WebSocket) {
    let id = s.connections.fetch_add(1, Ordering::SeqCst) + 1;
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    let hello = json!({"type": "hello", "num_connections": 1,
        "debug_info": {"host": "fake-slack", "build_number": 1, "approximate_connection_time": 18060},
        "connection_info": {"app_id": "A0APP0001"}});
    if socket.send(Message::Text(hello.to_string().into())).await.is_err() {
        return;
    }
    {
        let mut inner = s.inner.lock().unwrap();
        for (envelope_id, event_id, retry_attempt, env) in std::mem::take(&mut inner.waiting) {
            let _ = tx.send(env);
            inner.deliveries.push(Delivery {
                envelope_id,
                event_id,
                connection: id,
                retry_attempt,
                sent_at: Instant::now(),
                acked_at: None,
            });
        }
        inner.conns.push(Conn { id, tx, refreshing: false });
        inner.ever_connected = true;
    }
    loop {
        tokio::select! {
            msg = socket.recv() => {
                let Some(Ok(msg)) = msg else { break };
                match msg {
                    Message::Text(t) => {
                        let v: Value = serde_json::from_str(&t).unwrap_or(Value::Null);
                        if let Some(env) = v["envelope_id"].as_str() {
                            let mut inner = s.inner.lock().unwrap();
                            if let Some(d) = inner.deliveries.iter_mut().find(|d| d.envelope_id == env && d.acked_at.is_none()) {
                                d.acked_at = Some(Instant::now());
                            }
                        }
                    }
                    Message::Close(_) => break,
                    _ => {}
                }
            }
            out = rx.recv() => {
                let Some(out) = out else { break };
                if socket.send(Message::Text(out.into())).await.is_err() { break }
            }
        }
    }
    let mut inner = s.inner.lock().unwrap();
    inner.conns.retain(|c| c.id != id);
    if inner.conns.is_empty() {
        s.gaps.fetch_add(1, Ordering::SeqCst);
    }
}

impl FakeSlack {
    /// Serves the Web API and Socket Mode for these tokens on a loopback port.
    pub async fn start(bot_token: &str, app_token: &str) -> FakeSlack {
        let state = Arc::new(FakeState {
            bot_token: bot_token.to_string(),
            app_token: app_token.to_string(),
            base: Mutex::default(),
            inner: Mutex::default(),
            next: AtomicU64::new(1),
            connections: AtomicUsize::new(0),
            gaps: AtomicUsize::new(0),
            limit_next: AtomicUsize::new(0),
            retry_after: AtomicU64::new(1),
        });
        let app = axum::Router::new()
            .route("/api/{method}", post(method))
            .route("/link/", get(link))
            .route("/link", get(link))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = format!("http://{}", listener.local_addr().unwrap());
        *state.base.lock().unwrap() = addr.clone();
        let server = tokio::spawn(async move {
            let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
                let _ = tcp.set_nodelay(true);
            });
            let _ = axum::serve(listener, app).await;
        });
        FakeSlack { url: format!("{addr}/api"), state, server, retries: Mutex::default() }
    }

    /// From now on, retries every envelope left unacknowledged as Slack does
    /// (3 s, 1 min, 5 min after the previous attempt; `retry_attempt` 1–3).
    pub fn retry_unacknowledged(self: &Arc<Self>) {
        let me = Arc::downgrade(self);
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(200));
            loop {
                tick.tick().await;
                let Some(me) = me.upgrade() else { return };
                me.retry_due();
            }
        });
        *self.retries.lock().unwrap() = Some(task);
    }

    /// Sends again each event whose newest envelope went unacknowledged for its retry delay.
    fn retry_due(&self) {
        let due: Vec<(String, Value, u32)> = {
            let inner = self.state.inner.lock().unwrap();
            // event_id → (envelopes sent, when the newest went out, any acknowledged).
            let mut by_event: HashMap<&str, (u32, Instant, bool)> = HashMap::new();
            for d in &inner.deliveries {
                let e = by_event.entry(d.event_id.as_str()).or_insert((0, d.sent_at, false));
                e.0 += 1;
                e.1 = e.1.max(d.sent_at);
                e.2 |= d.acked_at.is_some();
            }
            by_event
                .into_iter()
                .filter(|(_, (sent, newest, acked))| {
                    let retries = *sent as usize - 1;
                    !acked && RETRY_AFTER_UNACKED.get(retries).is_some_and(|after| newest.elapsed() >= *after)
                })
                .filter_map(|(ev, (sent, _, _))| inner.events.get(ev).map(|p| (ev.to_string(), p.clone(), sent)))
                .collect()
        };
        for (event_id, payload, attempt) in due {
            self.send_envelope(&event_id, &payload, attempt);
        }
    }

    fn next_id(&self, prefix: &str) -> String {
        format!("{prefix}{:08}", self.state.next.fetch_add(1, Ordering::SeqCst))
    }

    /// Sends an envelope on the newest connection not told to disconnect (else the newest).
    fn send_envelope(&self, event_id: &str, payload: &Value, retry_attempt: u32) -> String {
        let envelope_id = self.next_id("env-");
        let env = json!({"envelope_id": envelope_id, "payload": payload, "type": "events_api",
            "accepts_response_payload": false, "retry_attempt": retry_attempt,
            "retry_reason": if retry_attempt > 0 { "timeout" } else { "" }})
        .to_string();
        let mut inner = self.state.inner.lock().unwrap();
        let target =
            inner.conns.iter().rev().find(|c| !c.refreshing).or(inner.conns.last()).map(|c| (c.id, c.tx.clone()));
        match target {
            Some((id, tx)) => {
                let _ = tx.send(env);
                inner.deliveries.push(Delivery {
                    envelope_id: envelope_id.clone(),
                    event_id: event_id.to_string(),
                    connection: id,
                    retry_attempt,
                    sent_at: Instant::now(),
                    acked_at: None,
                });
            }
            None => inner.waiting.push((envelope_id.clone(), event_id.to_string(), retry_attempt, env)),
        }
        envelope_id
    }

    /// An Events API event (the `event` object); returns its `event_id`.
    pub fn event(&self, event: Value) -> String {
        let event_id = self.next_id("Ev");
        let payload = json!({"token": "verification-token", "team_id": TEAM, "api_app_id": "A0APP0001",
            "event": event, "type": "event_callback", "event_id": event_id, "event_time": 1733000000,
            "authorizations": [{"team_id": TEAM, "user_id": BOT_USER, "is_bot": true}]});
        self.state.inner.lock().unwrap().events.insert(event_id.clone(), payload.clone());
        self.send_envelope(&event_id, &payload, 0);
        event_id
    }

    fn ts(&self) -> String {
        format!("1733000000.{:06}", self.state.next.fetch_add(1, Ordering::SeqCst))
    }

    /// A DM (`channel_type` `im`); returns (event_id, ts).
    pub fn dm(&self, channel: &str, user: &str, text: &str) -> (String, String) {
        let ts = self.ts();
        let id = self.event(json!({"type": "message", "channel": channel, "channel_type": "im", "user": user,
            "text": text, "ts": ts, "event_ts": ts}));
        (id, ts)
    }

    /// A channel message without a mention.
    pub fn channel(&self, channel: &str, user: &str, text: &str) -> (String, String) {
        let ts = self.ts();
        let id = self.event(json!({"type": "message", "channel": channel, "channel_type": "channel", "user": user,
            "text": text, "ts": ts, "event_ts": ts}));
        (id, ts)
    }

    /// A channel message mentioning the bot: like Slack, a `message` event and an
    /// `app_mention` event (two event ids) for one message; returns the message's ts.
    pub fn mention(&self, channel: &str, user: &str, text: &str) -> String {
        let ts = self.ts();
        let text = format!("<@{BOT_USER}> {text}");
        self.event(json!({"type": "message", "channel": channel, "channel_type": "channel", "user": user,
            "text": text, "ts": ts, "event_ts": ts}));
        self.event(json!({"type": "app_mention", "channel": channel, "user": user, "text": text, "ts": ts,
            "event_ts": ts}));
        ts
    }

    /// Sends an event again (new envelope id, `retry_attempt` 1), as Slack does after a missing ack.
    pub fn redeliver(&self, event_id: &str) {
        let payload = self.state.inner.lock().unwrap().events.get(event_id).cloned().expect("unknown event id");
        self.send_envelope(event_id, &payload, 1);
    }

    /// `disconnect` / `refresh_requested` on the newest connection.
    pub fn refresh(&self) {
        let mut inner = self.state.inner.lock().unwrap();
        if let Some(c) = inner.conns.iter_mut().rev().find(|c| !c.refreshing) {
            c.refreshing = true;
            let _ = c.tx.send(
                json!({"type": "disconnect", "reason": "refresh_requested", "debug_info": {"host": "fake-slack"}})
                    .to_string(),
            );
        }
    }

    /// The next `n` chat.postMessage calls answer 429 with `Retry-After: secs`.
    pub fn rate_limit_next(&self, n: usize, secs: u64) {
        self.state.retry_after.store(secs, Ordering::SeqCst);
        self.state.limit_next.store(n, Ordering::SeqCst);
    }

    pub fn rate_limited_at(&self) -> Vec<Instant> {
        self.state.inner.lock().unwrap().rate_limited.clone()
    }

    pub fn posted(&self) -> Vec<Posted> {
        self.state.inner.lock().unwrap().posted.clone()
    }

    pub fn posted_to(&self, channel: &str) -> Vec<Posted> {
        self.posted().into_iter().filter(|p| p.channel == channel).collect()
    }

    pub async fn wait_posted(&self, channel: &str, n: usize, within: Duration) -> Vec<Posted> {
        let deadline = Instant::now() + within;
        loop {
            let p = self.posted_to(channel);
            if p.len() >= n {
                return p;
            }
            assert!(Instant::now() < deadline, "{} of {n} messages reached {channel}: {p:?}", p.len());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn deliveries(&self) -> Vec<Delivery> {
        self.state.inner.lock().unwrap().deliveries.clone()
    }

    /// Waits until every envelope sent so far was acknowledged.
    pub async fn wait_acked(&self, within: Duration) -> Vec<Delivery> {
        let deadline = Instant::now() + within;
        loop {
            let d = self.deliveries();
            if d.iter().all(|d| d.acked_at.is_some()) {
                return d;
            }
            assert!(Instant::now() < deadline, "envelopes not acknowledged: {d:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Socket Mode connections ever opened, and open now.
    pub fn connections(&self) -> usize {
        self.state.connections.load(Ordering::SeqCst)
    }

    pub fn open_connections(&self) -> usize {
        self.state.inner.lock().unwrap().conns.len()
    }

    /// Times the client was left with no open connection (after its first one).
    pub fn gaps(&self) -> usize {
        self.state.gaps.load(Ordering::SeqCst)
    }

    /// Waits until `n` connections were opened and one is open.
    pub async fn wait_connected(&self, n: usize, within: Duration) {
        let deadline = Instant::now() + within;
        while self.connections() < n || self.open_connections() == 0 {
            assert!(Instant::now() < deadline, "{} Socket Mode connections, wanted {n}", self.connections());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn ever_connected(&self) -> bool {
        self.state.inner.lock().unwrap().ever_connected
    }
}
