//! A loopback Discord (written from discord.com/developers/docs: Gateway,
//! Gateway Events, Opcodes and Status Codes, Rate Limits, Message resource).
//!
//! REST (`DISCORD_API_URL` = [`FakeDiscord::url`]), `Authorization: Bot <token>`
//! or 401:
//! - `GET /gateway/bot`: `{"url": "ws://…/gateway", "shards": 1, …}`.
//! - `POST /channels/{id}/messages`: ≤ 2000 characters (else 400, code
//!   50035); a `nonce` with `enforce_nonce` seen before answers the first
//!   message again without posting a second; `X-RateLimit-*` headers on every
//!   answer (on request `Remaining: 0`, and a post before the bucket's reset
//!   answers 429); chaos: the next N answer 429 with `retry_after` (float seconds)
//!   in the JSON body, `Retry-After` and `X-RateLimit-*` headers.
//! - `POST /channels/{id}/typing`: 204.
//!
//! Gateway (a real WebSocket on `/gateway`, and `/resume` as the
//! `resume_gateway_url`, both wanting `?v=10&encoding=json`): HELLO with the
//! heartbeat interval; op 1 → op 11 (unless told to stop acknowledging);
//! IDENTIFY → READY with a new session (or a configured close code);
//! RESUME → the session's events after `seq` replayed (optionally with an
//! overlap: events the client had seen already, as a cursor a little
//! behind would get), then RESUMED; an unknown session → op 9 `false`.
//! Every dispatch gets the session's next `s` and is kept, so events sent
//! while no connection is up are replayed on RESUME like Discord does.
//! Chaos: drop the connection without a close frame, close with a code,
//! op 7, op 9.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio::sync::mpsc;

pub const BOT_ID: &str = "100000000000000001";
pub const BOT_NAME: &str = "arvis-test";

/// A message the bot posted.
#[derive(Debug, Clone)]
pub struct Posted {
    pub channel_id: String,
    pub content: String,
    pub reply_to: Option<String>,
    pub nonce: Option<String>,
    pub at: Instant,
}

/// A RESUME as received.
#[derive(Debug, Clone)]
pub struct Resume {
    pub session_id: String,
    pub seq: Option<i64>,
    /// It came in on the `resume_gateway_url` (not the plain gateway URL).
    pub on_resume_url: bool,
}

enum Cmd {
    Frame(String),
    Drop,
    Close(u16, String),
}

#[derive(Default)]
struct Session {
    id: String,
    seq: i64,
    history: Vec<(i64, String, Value)>,
}

#[derive(Default)]
struct Inner {
    session: Option<Session>,
    /// The connection that is READY or RESUMED.
    live: Option<mpsc::UnboundedSender<Cmd>>,
    identifies: Vec<Value>,
    resumes: Vec<Resume>,
    posted: Vec<Posted>,
    typing: Vec<String>,
    rate_limited: Vec<Instant>,
    nonces: HashMap<String, Value>,
}

struct FakeState {
    token: String,
    base: Mutex<String>,
    inner: Mutex<Inner>,
    next_id: AtomicI64,
    sessions: AtomicU64,
    connections: AtomicUsize,
    open: AtomicUsize,
    heartbeats: AtomicUsize,
    heartbeat_ms: AtomicU64,
    acking: AtomicBool,
    overlap: AtomicUsize,
    close_on_identify: AtomicU64,
    limit_next: AtomicUsize,
    retry_after_ms: AtomicU64,
    exhaust_next: AtomicUsize,
    reset_after_ms: AtomicU64,
    /// Until then the bucket is empty: a post answers 429.
    bucket_until: Mutex<Option<Instant>>,
}

pub struct FakeDiscord {
    /// What `DISCORD_API_URL` should be.
    pub url: String,
    state: Arc<FakeState>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeDiscord {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn error(status: StatusCode, message: &str, code: i64) -> Response {
    (status, Json(json!({"message": message, "code": code}))).into_response()
}

fn authorized(s: &FakeState, headers: &HeaderMap) -> bool {
    headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(format!("Bot {}", s.token).as_str())
}

async fn gateway_bot(State(s): State<Arc<FakeState>>, headers: HeaderMap) -> Response {
    if !authorized(&s, &headers) {
        return error(StatusCode::UNAUTHORIZED, "401: Unauthorized", 0);
    }
    let base = s.base.lock().unwrap().replace("http://", "ws://");
    Json(json!({"url": format!("{base}/gateway"), "shards": 1, "session_start_limit":
        {"total": 1000, "remaining": 999, "reset_after": 0, "max_concurrency": 1}}))
    .into_response()
}

fn rate_headers(remaining: u32, reset_after: f64) -> [(&'static str, String); 5] {
    [
        ("x-ratelimit-limit", "5".into()),
        ("x-ratelimit-remaining", remaining.to_string()),
        ("x-ratelimit-reset-after", format!("{reset_after:.3}")),
        ("x-ratelimit-bucket", "abcd1234".into()),
        ("x-ratelimit-reset", "0".into()),
    ]
}

async fn post_message(
    State(s): State<Arc<FakeState>>,
    Path(channel): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if !authorized(&s, &headers) {
        return error(StatusCode::UNAUTHORIZED, "401: Unauthorized", 0);
    }
    let early = s.bucket_until.lock().unwrap().is_some_and(|t| Instant::now() < t);
    let limited = s.limit_next.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok();
    if limited || early {
        s.inner.lock().unwrap().rate_limited.push(Instant::now());
        let after = s.retry_after_ms.load(Ordering::SeqCst) as f64 / 1000.0;
        let mut resp = (
            StatusCode::TOO_MANY_REQUESTS,
            Json(json!({"message": "You are being rate limited.", "retry_after": after, "global": false})),
        )
            .into_response();
        let h = resp.headers_mut();
        h.insert("retry-after", after.ceil().to_string().parse().unwrap());
        h.insert("x-ratelimit-limit", "5".parse().unwrap());
        h.insert("x-ratelimit-remaining", "0".parse().unwrap());
        h.insert("x-ratelimit-reset-after", format!("{after:.3}").parse().unwrap());
        h.insert("x-ratelimit-scope", "user".parse().unwrap());
        return resp;
    }
    let content = body["content"].as_str().unwrap_or_default().to_string();
    if content.is_empty() || content.chars().count() > 2000 {
        return error(StatusCode::BAD_REQUEST, "Invalid Form Body", 50035);
    }
    if channel == "404404" {
        return error(StatusCode::NOT_FOUND, "Unknown Channel", 10003);
    }
    let nonce = body["nonce"].as_str().map(str::to_string);
    let mut inner = s.inner.lock().unwrap();
    if let Some(n) = &nonce
        && body["enforce_nonce"] == true
        && let Some(first) = inner.nonces.get(n)
    {
        return (rate_headers(4, 1.0), Json(first.clone())).into_response();
    }
    let id = s.next_id.fetch_add(1, Ordering::SeqCst).to_string();
    let answer = json!({"id": id, "channel_id": channel, "content": content, "type": 0,
        "author": {"id": BOT_ID, "username": BOT_NAME, "bot": true}});
    if let Some(n) = &nonce {
        inner.nonces.insert(n.clone(), answer.clone());
    }
    inner.posted.push(Posted {
        channel_id: channel,
        content,
        reply_to: body["message_reference"]["message_id"].as_str().map(str::to_string),
        nonce,
        at: Instant::now(),
    });
    drop(inner);
    let exhaust = s.exhaust_next.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok();
    if exhaust {
        let after = s.reset_after_ms.load(Ordering::SeqCst);
        *s.bucket_until.lock().unwrap() = Some(Instant::now() + Duration::from_millis(after));
        return (rate_headers(0, after as f64 / 1000.0), Json(answer)).into_response();
    }
    (rate_headers(4, 1.0), Json(answer)).into_response()
}

async fn post_typing(State(s): State<Arc<FakeState>>, Path(channel): Path<String>, headers: HeaderMap) -> Response {
    if !authorized(&s, &headers) {
        return error(StatusCode::UNAUTHORIZED, "401: Unauthorized", 0);
    }
    s.inner.lock().unwrap().typing.push(channel);
    StatusCode::NO_CONTENT.into_response()
}

async fn gateway(
    State(s): State<Arc<FakeState>>,
    Query(q): Query<HashMap<String, String>>,
    ws: WebSocketUpgrade,
) -> Response {
    ws.on_upgrade(move |socket| connection(s, socket, q, false))
}

async fn resume_gateway(
    State(s): State<Arc<FakeState>>,
    Query(q): Query<HashMap<String, String>>,
    ws: WebSocketUpgrade,
) -> Response {
    ws.on_upgrade(move |socket| connection(s, socket, q, true))
}

fn text(v: Value) -> Message {
    Message::Text(v.to_string().into())
}

async fn connection(s: Arc<FakeState>, mut socket: WebSocket, q: HashMap<String, String>, on_resume_url: bool) {
    s.connections.fetch_add(1, Ordering::SeqCst);
    s.open.fetch_add(1, Ordering::SeqCst);
    struct Open(Arc<FakeState>);
    impl Drop for Open {
        fn drop(&mut self) {
            self.0.open.fetch_sub(1, Ordering::SeqCst);
        }
    }
    let _open = Open(s.clone());
    if q.get("v").map(String::as_str) != Some("10") || q.get("encoding").map(String::as_str) != Some("json") {
        let _ =
            socket.send(Message::Close(Some(CloseFrame { code: 4012, reason: "Invalid API version.".into() }))).await;
        return;
    }
    let interval = s.heartbeat_ms.load(Ordering::SeqCst);
    if socket.send(text(json!({"op": 10, "s": null, "t": null, "d": {"heartbeat_interval": interval}}))).await.is_err()
    {
        return;
    }
    let (tx, mut rx) = mpsc::unbounded_channel::<Cmd>();
    loop {
        tokio::select! {
            msg = socket.recv() => {
                let Some(Ok(msg)) = msg else { break };
                let Message::Text(t) = msg else {
                    if matches!(msg, Message::Close(_)) { break }
                    continue;
                };
                let Ok(p) = serde_json::from_str::<Value>(&t) else {
                    let _ = socket.send(Message::Close(Some(CloseFrame { code: 4002, reason: "Error while decoding payload.".into() }))).await;
                    break;
                };
                match p["op"].as_i64() {
                    Some(1) => {
                        s.heartbeats.fetch_add(1, Ordering::SeqCst);
                        if s.acking.load(Ordering::SeqCst) && socket.send(text(json!({"op": 11, "s": null, "t": null, "d": null}))).await.is_err() {
                            break;
                        }
                    }
                    Some(2) => {
                        let code = s.close_on_identify.load(Ordering::SeqCst) as u16;
                        s.inner.lock().unwrap().identifies.push(p["d"].clone());
                        if p["d"]["token"].as_str() != Some(s.token.as_str()) || code == 4004 {
                            let _ = socket.send(Message::Close(Some(CloseFrame { code: 4004, reason: "Authentication failed.".into() }))).await;
                            break;
                        }
                        if code != 0 {
                            let _ = socket.send(Message::Close(Some(CloseFrame { code, reason: "Refused.".into() }))).await;
                            break;
                        }
                        let n = s.sessions.fetch_add(1, Ordering::SeqCst) + 1;
                        let session_id = format!("session{n}");
                        let base = s.base.lock().unwrap().replace("http://", "ws://");
                        let ready = json!({"v": 10, "user": {"id": BOT_ID, "username": BOT_NAME, "bot": true},
                            "guilds": [], "session_id": session_id, "resume_gateway_url": format!("{base}/resume"),
                            "application": {"id": BOT_ID}});
                        let frame = {
                            let mut inner = s.inner.lock().unwrap();
                            let mut session = Session { id: session_id, ..Session::default() };
                            session.seq = 1;
                            session.history.push((1, "READY".into(), ready.clone()));
                            inner.session = Some(session);
                            inner.live = Some(tx.clone());
                            json!({"op": 0, "t": "READY", "s": 1, "d": ready})
                        };
                        if socket.send(text(frame)).await.is_err() { break }
                    }
                    Some(6) => {
                        let session_id = p["d"]["session_id"].as_str().unwrap_or_default().to_string();
                        let seq = p["d"]["seq"].as_i64();
                        let overlap = s.overlap.swap(0, Ordering::SeqCst) as i64;
                        let frames: Option<Vec<Value>> = {
                            let mut inner = s.inner.lock().unwrap();
                            inner.resumes.push(Resume { session_id: session_id.clone(), seq, on_resume_url });
                            let known = inner.session.as_ref().is_some_and(|x| x.id == session_id)
                                && p["d"]["token"].as_str() == Some(s.token.as_str());
                            if known {
                                let from = seq.unwrap_or(0) - overlap;
                                let session = inner.session.as_mut().unwrap();
                                let mut frames: Vec<Value> = session.history.iter()
                                    .filter(|(n, t, _)| *n > from && t != "READY")
                                    .map(|(n, t, d)| json!({"op": 0, "t": t, "s": n, "d": d}))
                                    .collect();
                                session.seq += 1;
                                frames.push(json!({"op": 0, "t": "RESUMED", "s": session.seq, "d": null}));
                                let resumed_seq = session.seq;
                                session.history.push((resumed_seq, "RESUMED".into(), Value::Null));
                                inner.live = Some(tx.clone());
                                Some(frames)
                            } else {
                                None
                            }
                        };
                        match frames {
                            Some(frames) => {
                                for f in frames {
                                    if socket.send(text(f)).await.is_err() { return }
                                }
                            }
                            None => {
                                if socket.send(text(json!({"op": 9, "s": null, "t": null, "d": false}))).await.is_err() { break }
                            }
                        }
                    }
                    _ => {}
                }
            }
            cmd = rx.recv() => match cmd {
                None => break,
                Some(Cmd::Frame(f)) => {
                    if socket.send(Message::Text(f.into())).await.is_err() { break }
                }
                // Gone without a close frame, like a network failure.
                Some(Cmd::Drop) => return,
                Some(Cmd::Close(code, reason)) => {
                    let _ = socket.send(Message::Close(Some(CloseFrame { code, reason: reason.into() }))).await;
                    return;
                }
            }
        }
    }
}

impl FakeDiscord {
    /// Serves REST and the gateway for `token` on a loopback port.
    pub async fn start(token: &str) -> FakeDiscord {
        let state = Arc::new(FakeState {
            token: token.to_string(),
            base: Mutex::default(),
            inner: Mutex::default(),
            next_id: AtomicI64::new(900_000_000_000_000_000),
            sessions: AtomicU64::new(0),
            connections: AtomicUsize::new(0),
            open: AtomicUsize::new(0),
            heartbeats: AtomicUsize::new(0),
            heartbeat_ms: AtomicU64::new(41_250),
            acking: AtomicBool::new(true),
            overlap: AtomicUsize::new(0),
            close_on_identify: AtomicU64::new(0),
            limit_next: AtomicUsize::new(0),
            retry_after_ms: AtomicU64::new(1000),
            exhaust_next: AtomicUsize::new(0),
            reset_after_ms: AtomicU64::new(1000),
            bucket_until: Mutex::new(None),
        });
        let app = axum::Router::new()
            .route("/gateway/bot", get(gateway_bot))
            .route("/gateway", get(gateway))
            .route("/gateway/", get(gateway))
            .route("/resume", get(resume_gateway))
            .route("/resume/", get(resume_gateway))
            .route("/channels/{id}/messages", post(post_message))
            .route("/channels/{id}/typing", post(post_typing))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        *state.base.lock().unwrap() = url.clone();
        let server = tokio::spawn(async move {
            let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
                let _ = tcp.set_nodelay(true);
            });
            let _ = axum::serve(listener, app).await;
        });
        FakeDiscord { url, state, server }
    }

    /// Sends a dispatch on the session: kept for replay, delivered at once when a connection is up.
    pub fn dispatch(&self, t: &str, d: Value) -> i64 {
        let mut inner = self.state.inner.lock().unwrap();
        let session = inner.session.as_mut().expect("no session: wait_ready first");
        session.seq += 1;
        let seq = session.seq;
        session.history.push((seq, t.to_string(), d.clone()));
        let frame = json!({"op": 0, "t": t, "s": seq, "d": d}).to_string();
        if let Some(live) = &inner.live {
            let _ = live.send(Cmd::Frame(frame));
        }
        seq
    }

    fn message(&self, channel: &str, guild: Option<&str>, author: &str, content: &str, extra: Value) -> String {
        let id = self.state.next_id.fetch_add(1, Ordering::SeqCst).to_string();
        let mut d = json!({"id": id, "channel_id": channel, "type": 0, "content": content, "tts": false,
            "mention_everyone": false, "mentions": [], "attachments": [], "embeds": [], "timestamp": "2026-12-01T00:00:00Z",
            "author": {"id": author, "username": format!("user{author}"), "global_name": "Ada"}});
        if let Some(g) = guild {
            d["guild_id"] = json!(g);
        }
        if let Value::Object(m) = extra {
            for (k, v) in m {
                d[k] = v;
            }
        }
        self.dispatch("MESSAGE_CREATE", d);
        id
    }

    /// A DM from `user` in DM channel `channel`; returns the message id.
    pub fn dm(&self, channel: &str, user: &str, text: &str) -> String {
        self.message(channel, None, user, text, json!({}))
    }

    /// A message in a guild channel.
    pub fn guild(&self, channel: &str, user: &str, text: &str) -> String {
        self.message(channel, Some("200000000000000002"), user, text, json!({}))
    }

    /// A guild message that mentions the bot (`<@id>` in the text, the bot in `mentions`).
    pub fn mention(&self, channel: &str, user: &str, text: &str) -> String {
        let content = format!("<@{BOT_ID}> {text}");
        let extra = json!({"mentions": [{"id": BOT_ID, "username": BOT_NAME, "bot": true}]});
        self.message(channel, Some("200000000000000002"), user, &content, extra)
    }

    /// A message by another bot (never answered).
    pub fn from_bot(&self, channel: &str, text: &str) -> String {
        let id = self.state.next_id.fetch_add(1, Ordering::SeqCst).to_string();
        self.dispatch("MESSAGE_CREATE", json!({"id": id, "channel_id": channel, "type": 0, "content": text,
            "mentions": [], "attachments": [], "author": {"id": "300000000000000003", "username": "other", "bot": true}}));
        id
    }

    fn send(&self, cmd: Cmd) {
        let live = self.state.inner.lock().unwrap().live.take();
        if let Some(live) = live {
            let _ = live.send(cmd);
        }
    }

    /// Drops the live connection without a close frame (events sent meanwhile wait for a RESUME).
    pub fn drop_connection(&self) {
        self.send(Cmd::Drop);
    }

    /// Closes the live connection with `code`.
    pub fn close_with(&self, code: u16, reason: &str) {
        self.send(Cmd::Close(code, reason.to_string()));
    }

    /// op 7 Reconnect on the live connection.
    pub fn reconnect(&self) {
        let live = self.state.inner.lock().unwrap().live.take();
        if let Some(live) = live {
            let _ = live.send(Cmd::Frame(json!({"op": 7, "s": null, "t": null, "d": null}).to_string()));
        }
    }

    /// op 9 Invalid Session; with `false` the session is forgotten (a RESUME is refused).
    pub fn invalidate(&self, resumable: bool) {
        let mut inner = self.state.inner.lock().unwrap();
        if !resumable {
            inner.session = None;
        }
        if let Some(live) = inner.live.take() {
            let _ = live.send(Cmd::Frame(json!({"op": 9, "s": null, "t": null, "d": resumable}).to_string()));
        }
    }

    /// The next RESUME also replays the last `n` events the client had already seen.
    pub fn replay_overlap(&self, n: usize) {
        self.state.overlap.store(n, Ordering::SeqCst);
    }

    /// The next IDENTIFYs are answered with this close code (0: READY again).
    pub fn close_on_identify(&self, code: u16) {
        self.state.close_on_identify.store(code as u64, Ordering::SeqCst);
    }

    pub fn set_heartbeat_interval(&self, ms: u64) {
        self.state.heartbeat_ms.store(ms, Ordering::SeqCst);
    }

    /// Stops (or restarts) answering heartbeats with op 11.
    pub fn set_acking(&self, on: bool) {
        self.state.acking.store(on, Ordering::SeqCst);
    }

    /// The next `n` message posts answer 429 with `retry_after` (seconds, fractions allowed).
    pub fn rate_limit_next(&self, n: usize, retry_after: Duration) {
        self.state.retry_after_ms.store(retry_after.as_millis() as u64, Ordering::SeqCst);
        self.state.limit_next.store(n, Ordering::SeqCst);
    }

    /// The next `n` successful posts answer `X-RateLimit-Remaining: 0` with
    /// `X-RateLimit-Reset-After`; a post before the reset answers 429.
    pub fn exhaust_bucket_next(&self, n: usize, reset_after: Duration) {
        self.state.reset_after_ms.store(reset_after.as_millis() as u64, Ordering::SeqCst);
        self.state.exhaust_next.store(n, Ordering::SeqCst);
    }

    pub fn rate_limited_at(&self) -> Vec<Instant> {
        self.state.inner.lock().unwrap().rate_limited.clone()
    }

    pub fn posted(&self) -> Vec<Posted> {
        self.state.inner.lock().unwrap().posted.clone()
    }

    pub fn posted_to(&self, channel: &str) -> Vec<Posted> {
        self.posted().into_iter().filter(|p| p.channel_id == channel).collect()
    }

    pub async fn wait_posted(&self, channel: &str, n: usize, within: Duration) -> Vec<Posted> {
        let deadline = Instant::now() + within;
        loop {
            let p = self.posted_to(channel);
            if p.len() >= n {
                return p;
            }
            assert!(Instant::now() < deadline, "{} of {n} messages reached channel {channel}: {p:?}", p.len());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn typing(&self) -> Vec<String> {
        self.state.inner.lock().unwrap().typing.clone()
    }

    pub fn identifies(&self) -> Vec<Value> {
        self.state.inner.lock().unwrap().identifies.clone()
    }

    pub fn resumes(&self) -> Vec<Resume> {
        self.state.inner.lock().unwrap().resumes.clone()
    }

    /// Gateway connections ever opened, and open now.
    pub fn connections(&self) -> usize {
        self.state.connections.load(Ordering::SeqCst)
    }

    pub fn open_connections(&self) -> usize {
        self.state.open.load(Ordering::SeqCst)
    }

    pub fn heartbeats(&self) -> usize {
        self.state.heartbeats.load(Ordering::SeqCst)
    }

    /// True while a connection is READY or RESUMED.
    pub fn is_live(&self) -> bool {
        self.state.inner.lock().unwrap().live.as_ref().is_some_and(|l| !l.is_closed())
    }

    /// Waits until a connection is READY or RESUMED.
    pub async fn wait_ready(&self, within: Duration) {
        let deadline = Instant::now() + within;
        while !self.is_live() {
            assert!(Instant::now() < deadline, "the bot never became ready on the gateway");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
