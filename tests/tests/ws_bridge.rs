//! The WebSocket bridge against real clients (tokio-tungstenite): auth, the
//! chat round trip, fan-out across bridges and sockets, resume, limits,
//! slow consumers and shutdown.
//!
//! There is no worker here: each test plays the worker's part with the real
//! parts — it claims the job from the store, finishes it, and publishes the
//! reply events on the bus exactly as a worker does.

#![expect(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails by panicking

use std::net::SocketAddr;
use std::time::Duration;

use arvis_shared::Deps;
use arvis_shared::bus::events::{ReplyEvent, ReplyKind};
use arvis_shared::clock::now_ms;
use arvis_shared::db::queue::Finish;
use arvis_shared::domain::job::Job;
use arvis_testkit::{Backend, TestApp, both_backends};
use futures::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_util::sync::CancellationToken;

type Ws = WebSocketStream<TcpStream>;

const WAIT: Duration = Duration::from_secs(10);

/// Opens a WebSocket to `addr` with extra request headers.
async fn try_connect(addr: SocketAddr, headers: &[(&str, &str)]) -> Result<Ws, tokio_tungstenite::tungstenite::Error> {
    try_connect_with(addr, headers, None).await
}

async fn try_connect_with(
    addr: SocketAddr,
    headers: &[(&str, &str)],
    recv_buffer: Option<u32>,
) -> Result<Ws, tokio_tungstenite::tungstenite::Error> {
    let mut request = format!("ws://{addr}/ws").into_client_request()?;
    for (k, v) in headers {
        let name: tokio_tungstenite::tungstenite::http::HeaderName = k.parse().unwrap();
        request.headers_mut().insert(name, v.parse().unwrap());
    }
    let socket = TcpSocket::new_v4().unwrap();
    if let Some(size) = recv_buffer {
        socket.set_recv_buffer_size(size).unwrap();
    }
    let stream = socket.connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    Ok(tokio_tungstenite::client_async(request, stream).await?.0)
}

async fn connect(addr: SocketAddr) -> Ws {
    try_connect(addr, &[]).await.expect("websocket connect")
}

async fn send(ws: &mut Ws, frame: Value) {
    ws.send(Message::text(frame.to_string())).await.unwrap();
}

/// The next text frame as JSON (panics on close, timeout or a non-JSON frame).
async fn recv(ws: &mut Ws) -> Value {
    loop {
        let msg = tokio::time::timeout(WAIT, ws.next()).await.expect("a frame in time");
        match msg {
            Some(Ok(Message::Text(t))) => return serde_json::from_str(t.as_str()).unwrap(),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            other => panic!("expected a text frame, got {other:?}"),
        }
    }
}

/// The next frame of type `kind`, skipping others.
async fn recv_type(ws: &mut Ws, kind: &str) -> Value {
    loop {
        let v = recv(ws).await;
        if v["type"] == kind {
            return v;
        }
    }
}

/// Reads until the server closes; the close code, if a Close frame came.
async fn close_code(ws: &mut Ws) -> Option<u16> {
    loop {
        match tokio::time::timeout(WAIT, ws.next()).await.expect("the server closes in time") {
            Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => return None,
        }
    }
}

/// Nothing arrives within `d`.
async fn assert_silent(ws: &mut Ws, d: Duration) {
    if let Ok(m) = tokio::time::timeout(d, ws.next()).await {
        panic!("expected silence, got {m:?}");
    }
}

async fn ping_pong(ws: &mut Ws) {
    send(ws, json!({"type": "ping"})).await;
    assert_eq!(recv_type(ws, "pong").await["type"], "pong");
}

/// Claims the next job (waiting for it), as a worker does.
async fn claim(deps: &Deps) -> Job {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(job) = deps.store.claim_jobs("test-worker", 1, 60_000).await.unwrap().into_iter().next() {
            return job;
        }
        assert!(tokio::time::Instant::now() < deadline, "no job was enqueued");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn event(job: &Job, kind: ReplyKind, content: &str, message_id: Option<i64>) -> ReplyEvent {
    ReplyEvent {
        v: 1,
        kind,
        platform: job.payload.platform.clone().unwrap(),
        channel_id: job.payload.channel_id.clone().unwrap(),
        conversation_id: job.conversation_id.clone(),
        job_id: job.id,
        agent_id: job.agent_id,
        message_id,
        content: content.into(),
        timestamp: now_ms(),
        failure: None,
    }
}

/// Plays the worker: typing, the deltas, finish (stores the reply), the final message.
/// Returns the stored reply's id.
async fn answer(deps: &Deps, job: &Job, deltas: &[&str]) -> i64 {
    deps.bus.publish(&event(job, ReplyKind::Typing, "", None)).await.unwrap();
    for d in deltas {
        deps.bus.publish(&event(job, ReplyKind::Delta, d, None)).await.unwrap();
    }
    let reply = deltas.concat();
    let finished = deps
        .store
        .finish_job(&Finish {
            job_id: job.id,
            worker_id: "test-worker",
            reply: &reply,
            conversation_id: job.conversation_id.as_deref(),
            usage: &[],
            effects: None,
        })
        .await
        .unwrap();
    let arvis_shared::db::queue::Finished::Stored { message_id: Some(stored) } = finished else {
        panic!("the reply was not stored: {finished:?}")
    };
    deps.bus.publish(&event(job, ReplyKind::Message, &reply, Some(stored))).await.unwrap();
    stored
}

async fn bridge_app(backend: Backend) -> (TestApp, SocketAddr) {
    let app = TestApp::builder(backend).with_bridge().start().await;
    let addr = app.ws_addr.unwrap();
    (app, addr)
}

// ---- the chat round trip ----

both_backends!(a_chat_gets_an_ack_deltas_then_the_final_message, |backend| async move {
    let (app, addr) = bridge_app(backend).await;
    let mut ws = connect(addr).await;

    send(&mut ws, json!({"type": "message", "content": "Hello"})).await;
    let ack = recv_type(&mut ws, "ack").await;
    let job = claim(&app.deps).await;
    assert_eq!(ack["jobId"], job.id);
    assert_eq!(job.priority, 3, "web chat goes to the conductor at priority 3");
    let channel = ack["channelId"].as_str().unwrap().to_string();
    assert!(channel.starts_with("web-"), "{channel}");

    let stored_reply = answer(&app.deps, &job, &["Hi ", "there!"]).await;
    assert_eq!(recv(&mut ws).await["type"], "typing");
    let d1 = recv(&mut ws).await;
    let d2 = recv(&mut ws).await;
    assert_eq!((d1["type"].as_str(), d1["content"].as_str()), (Some("delta"), Some("Hi ")));
    assert_eq!((d2["type"].as_str(), d2["content"].as_str()), (Some("delta"), Some("there!")));
    let done = recv(&mut ws).await;
    assert_eq!(done["type"], "message");
    assert_eq!(done["content"], "Hi there!");
    assert_eq!(done["role"], "assistant");
    assert_eq!(done["messageId"], stored_reply);
    assert_eq!(done["channelId"], channel.as_str());
    assert!(done["timestamp"].is_string());

    // The user message was stored before the ack, in the job's conversation.
    let conv = ack["conversationId"].as_str().unwrap();
    let messages = app.deps.store.conversation_messages(conv).await.unwrap();
    assert_eq!(messages.len(), 2);
    assert_eq!(
        (messages[0].id, messages[0].role.as_str(), messages[0].content.as_str()),
        (ack["messageId"].as_i64().unwrap(), "user", "Hello")
    );
    assert_eq!(messages[1].role, "assistant");
    app.stop().await;
});

both_backends!(a_reconnecting_client_resumes_the_reply_it_missed, |backend| async move {
    let (app, addr) = bridge_app(backend).await;
    let mut ws = connect(addr).await;
    send(&mut ws, json!({"type": "message", "content": "Tell me later", "channelId": "web-resume-me"})).await;
    let ack = recv_type(&mut ws, "ack").await;
    let user_message = ack["messageId"].as_i64().unwrap();
    drop(ws); // the client goes away before the answer

    let job = claim(&app.deps).await;
    let reply_id = answer(&app.deps, &job, &["Here ", "it is"]).await;

    let mut ws = connect(addr).await;
    send(&mut ws, json!({"type": "resume", "channelId": "web-resume-me", "after": user_message})).await;
    let m = recv(&mut ws).await;
    assert_eq!(m["type"], "message");
    assert_eq!(m["messageId"], reply_id);
    assert_eq!(m["content"], "Here it is");
    assert_eq!(m["role"], "assistant");
    let end = recv(&mut ws).await;
    assert_eq!(end["type"], "resumed");
    assert_eq!(end["count"], 1);

    // From 0 it replays the whole channel, user message included.
    send(&mut ws, json!({"type": "resume", "channelId": "web-resume-me", "after": 0})).await;
    let first = recv(&mut ws).await;
    assert_eq!((first["role"].as_str(), first["messageId"].as_i64()), (Some("user"), Some(user_message)));
    assert_eq!(recv(&mut ws).await["messageId"], reply_id);
    assert_eq!(recv(&mut ws).await["type"], "resumed");
    app.stop().await;
});

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_run_reaches_the_client_as_an_error_frame() {
    let (app, addr) = bridge_app(Backend::Sqlite).await;
    let mut ws = connect(addr).await;
    send(&mut ws, json!({"type": "message", "content": "fail please"})).await;
    recv_type(&mut ws, "ack").await;
    let job = claim(&app.deps).await;
    app.deps.bus.publish(&event(&job, ReplyKind::Error, "All AI accounts are rate-limited", None)).await.unwrap();
    let e = recv(&mut ws).await;
    assert_eq!(e["type"], "error");
    assert_eq!(e["error"], "All AI accounts are rate-limited");
    assert_eq!(e["jobId"], job.id);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_agent_gets_an_error_instead_of_silence() {
    let (app, addr) = bridge_app(Backend::Sqlite).await;
    let mut ws = connect(addr).await;
    send(&mut ws, json!({"type": "message", "content": "hi", "agentId": 999})).await;
    let e = recv(&mut ws).await;
    assert_eq!(e["type"], "error");
    assert!(e["error"].as_str().unwrap().contains("999"), "{e}");
    ping_pong(&mut ws).await;
    app.stop().await;
}

// ---- fan-out ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sockets_on_one_channel_all_get_the_reply_and_other_channels_get_nothing() {
    let (app, addr) = bridge_app(Backend::Sqlite).await;
    let mut a = connect(addr).await;
    let mut b = connect(addr).await;
    let mut other = connect(addr).await;
    for ws in [&mut a, &mut b] {
        send(ws, json!({"type": "auth", "channelId": "room-1", "userName": "Ann"})).await;
        assert_eq!(recv(ws).await["type"], "auth_ok");
    }
    send(&mut other, json!({"type": "auth", "channelId": "room-2"})).await;
    assert_eq!(recv(&mut other).await["type"], "auth_ok");

    send(&mut a, json!({"type": "message", "content": "for the room"})).await;
    let ack = recv_type(&mut a, "ack").await;
    assert_eq!(ack["channelId"], "room-1");
    let job = claim(&app.deps).await;
    answer(&app.deps, &job, &["everyone ", "sees this"]).await;
    for ws in [&mut a, &mut b] {
        let m = recv_type(ws, "message").await;
        assert_eq!(m["content"], "everyone sees this");
    }
    assert_silent(&mut other, Duration::from_millis(300)).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_published_on_nats_reaches_a_client_on_another_bridge_once() {
    let app = TestApp::builder(Backend::Sqlite).with_nats().with_bridge().start().await;
    let first = app.ws_addr.unwrap();
    // A second bridge: its own process in production, its own NATS connection here.
    let deps2 = Deps::connect((*app.deps.config).clone()).await.unwrap();
    assert!(deps2.bus.is_nats());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let second = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let bridge2 = tokio::spawn(arvis_ws_bridge::run(deps2.clone(), listener, stop.clone()));

    let mut on_second = connect(second).await;
    let mut on_first = connect(first).await;
    send(&mut on_first, json!({"type": "auth", "channelId": "web-shared"})).await;
    recv_type(&mut on_first, "auth_ok").await;

    send(&mut on_second, json!({"type": "message", "content": "across bridges", "channelId": "web-shared"})).await;
    recv_type(&mut on_second, "ack").await;
    // The worker's events go out on the first deps' NATS connection.
    let job = claim(&app.deps).await;
    let reply = answer(&app.deps, &job, &["one ", "reply"]).await;
    for ws in [&mut on_second, &mut on_first] {
        let m = recv_type(ws, "message").await;
        assert_eq!((m["content"].as_str(), m["messageId"].as_i64()), (Some("one reply"), Some(reply)));
        // Exactly once per socket: each bridge delivers only to its own sockets.
        assert_silent(ws, Duration::from_millis(300)).await;
    }
    stop.cancel();
    bridge2.await.unwrap().unwrap();
    app.stop().await;
}

// ---- auth ----

const KEY: &str = "web-key-for-tests";

async fn keyed_app() -> (TestApp, SocketAddr) {
    let app = TestApp::builder(Backend::Sqlite).env("WEB_API_KEY", KEY).with_bridge().start().await;
    let addr = app.ws_addr.unwrap();
    (app, addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_key_in_a_header_authenticates_the_upgrade() {
    let (app, addr) = keyed_app().await;
    let mut ws = try_connect(addr, &[("x-api-key", KEY)]).await.unwrap();
    ping_pong(&mut ws).await;
    let bearer = format!("Bearer {KEY}");
    let mut ws = try_connect(addr, &[("authorization", &bearer)]).await.unwrap();
    send(&mut ws, json!({"type": "message", "content": "hi"})).await;
    recv_type(&mut ws, "ack").await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_auth_frame_with_the_key_authenticates() {
    let (app, addr) = keyed_app().await;
    let mut ws = connect(addr).await;
    send(&mut ws, json!({"type": "auth", "apiKey": KEY, "userId": "u-1", "userName": "Uma", "channelId": "web-uma"}))
        .await;
    let ok = recv(&mut ws).await;
    assert_eq!(ok["type"], "auth_ok");
    assert!(ok["clientId"].is_string());
    assert_eq!(ok["channelId"], "web-uma");
    send(&mut ws, json!({"type": "message", "content": "hi"})).await;
    assert_eq!(recv_type(&mut ws, "ack").await["channelId"], "web-uma");
    let job = claim(&app.deps).await;
    assert_eq!(job.payload.user_name.as_deref(), Some("Uma"));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_session_cookie_authenticates() {
    let (app, addr) = keyed_app().await;
    let secret = arvis_shared::bootstrap::jwt_secret(&app.deps.config).unwrap();
    let sessions = arvis_shared::credentials::Sessions::new(&secret, app.deps.store.clone()).unwrap();
    let token = sessions.issue().await.unwrap();
    let cookie = format!("theme=dark; arvis-token={token}");
    let mut ws = try_connect(addr, &[("cookie", &cookie)]).await.unwrap();
    ping_pong(&mut ws).await;

    // From the dashboard's page (same host, the gateway's port) it works; from
    // a page of another site the browser's cookie is refused: 403, no socket.
    let dashboard = format!("http://127.0.0.1:{}", addr.port().wrapping_sub(1));
    let mut ws = try_connect(addr, &[("cookie", &cookie), ("origin", &dashboard)]).await.unwrap();
    ping_pong(&mut ws).await;
    for foreign in ["http://evil.example", "null", "http://127.0.0.1.evil.example:80"] {
        match try_connect(addr, &[("cookie", &cookie), ("origin", foreign)]).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                assert_eq!(response.status(), 403, "{foreign}");
            }
            other => panic!("a cookie from {foreign} was accepted: {:?}", other.map(|_| "a socket")),
        }
    }
    // The key is not a browser's ambient credential: any origin may send it.
    let mut ws = try_connect(addr, &[("x-api-key", KEY), ("origin", "http://evil.example")]).await.unwrap();
    ping_pong(&mut ws).await;

    // Once the session is ended (logout), its cookie opens nothing.
    assert!(sessions.end(&token).await.unwrap());
    let mut ws = try_connect(addr, &[("cookie", &cookie)]).await.unwrap();
    send(&mut ws, json!({"type": "ping"})).await;
    assert_eq!(recv(&mut ws).await["type"], "error");
    assert_eq!(close_code(&mut ws).await, Some(4001));
    let now = now_ms() / 1000;

    // A token signed with another secret is no session.
    arvis_shared::jwt_crypto::install();
    let forged = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &json!({"role": "admin", "iat": now, "exp": now + 3600}),
        &jsonwebtoken::EncodingKey::from_secret(b"not-the-secret").unwrap(),
    )
    .unwrap();
    let mut ws = try_connect(addr, &[("cookie", &format!("arvis-token={forged}"))]).await.unwrap();
    send(&mut ws, json!({"type": "ping"})).await;
    assert_eq!(recv(&mut ws).await["type"], "error");
    assert_eq!(close_code(&mut ws).await, Some(4001));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_credentials_the_client_gets_an_error_and_close_4001() {
    let (app, addr) = keyed_app().await;
    // A message before auth.
    let mut ws = connect(addr).await;
    send(&mut ws, json!({"type": "message", "content": "let me in"})).await;
    let e = recv(&mut ws).await;
    assert_eq!(e["type"], "error");
    assert_eq!(close_code(&mut ws).await, Some(4001));
    // A wrong key in the auth frame.
    let mut ws = connect(addr).await;
    send(&mut ws, json!({"type": "auth", "apiKey": "wrong"})).await;
    assert_eq!(recv(&mut ws).await["type"], "error");
    assert_eq!(close_code(&mut ws).await, Some(4001));
    // A wrong key in the header does not authenticate either.
    let mut ws = try_connect(addr, &[("x-api-key", "wrong")]).await.unwrap();
    send(&mut ws, json!({"type": "ping"})).await;
    assert_eq!(recv(&mut ws).await["type"], "error");
    assert_eq!(close_code(&mut ws).await, Some(4001));
    // Nothing was stored.
    assert!(app.deps.store.claim_jobs("w", 10, 1000).await.unwrap().is_empty());
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_authenticates_is_closed_after_ten_seconds() {
    let (app, addr) = keyed_app().await;
    let mut ws = connect(addr).await;
    let started = std::time::Instant::now();
    // `recv` gives up after 10 s, as long as the bridge waits: read with more patience.
    let e = match tokio::time::timeout(Duration::from_secs(20), ws.next()).await.unwrap() {
        Some(Ok(Message::Text(t))) => serde_json::from_str::<Value>(t.as_str()).unwrap(),
        other => panic!("expected the error frame, got {other:?}"),
    };
    assert_eq!(e["type"], "error");
    assert!(e["error"].as_str().unwrap().contains("authentication required"), "{e}");
    assert_eq!(close_code(&mut ws).await, Some(4001));
    assert!(started.elapsed() >= Duration::from_secs(9), "{:?}", started.elapsed());
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_bridge_refuses_to_listen_beyond_loopback() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let listener = TcpListener::bind("0.0.0.0:0").await.unwrap();
    let err = arvis_ws_bridge::run(app.deps.clone(), listener, CancellationToken::new()).await.unwrap_err();
    assert!(err.to_string().contains("WEB_API_KEY"), "{err}");
    app.stop().await;
}

// ---- bad input and limits ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_binary_and_unknown_frames_get_errors_and_the_connection_stays_usable() {
    let (app, addr) = bridge_app(Backend::Sqlite).await;
    let mut ws = connect(addr).await;
    for bad in [
        "not json",
        "[1,2]",
        "{}",
        r#"{"type":"dance"}"#,
        r#"{"type":"message"}"#,
        r#"{"type":"message","content":"   "}"#,
    ] {
        ws.send(Message::text(bad)).await.unwrap();
        let e = recv(&mut ws).await;
        assert_eq!(e["type"], "error", "{bad}");
        assert!(!e["error"].as_str().unwrap().is_empty());
    }
    ws.send(Message::binary(vec![1u8, 2, 3])).await.unwrap();
    assert!(recv(&mut ws).await["error"].as_str().unwrap().contains("binary"));
    send(&mut ws, json!({"type": "message", "content": "x".repeat(100_001)})).await;
    assert!(recv(&mut ws).await["error"].as_str().unwrap().contains("100000"));
    ping_pong(&mut ws).await;
    send(&mut ws, json!({"type": "message", "content": "still fine"})).await;
    recv_type(&mut ws, "ack").await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_frame_is_refused_without_hurting_other_clients() {
    let (app, addr) = bridge_app(Backend::Sqlite).await;
    let mut bystander = connect(addr).await;
    let mut big = connect(addr).await;
    let _ = big.send(Message::text("y".repeat(200 * 1024))).await;
    // The bridge answers 1009 (message too big) when the socket still takes
    // it; the client may also see the connection end while still sending.
    let code = close_code(&mut big).await;
    assert!(matches!(code, None | Some(1009)), "{code:?}");
    eprintln!("oversized frame: close code {code:?}");
    ping_pong(&mut bystander).await;
    let mut fresh = connect(addr).await;
    ping_pong(&mut fresh).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_client_is_rate_limited_then_disconnected() {
    let (app, addr) = bridge_app(Backend::Sqlite).await;
    let mut ws = connect(addr).await;
    for _ in 0..100 {
        if ws.send(Message::text(r#"{"type":"ping"}"#)).await.is_err() {
            break;
        }
    }
    let mut pongs = 0;
    let mut limited = 0;
    let code = loop {
        match tokio::time::timeout(WAIT, ws.next()).await.unwrap() {
            Some(Ok(Message::Text(t))) => {
                let v: Value = serde_json::from_str(t.as_str()).unwrap();
                if v["type"] == "pong" {
                    pongs += 1;
                } else if v["error"].as_str().is_some_and(|e| e.contains("rate limit")) {
                    limited += 1;
                }
            }
            Some(Ok(Message::Close(f))) => break f.map(|f| u16::from(f.code)),
            Some(Ok(_)) => {}
            Some(Err(_)) | None => break None,
        }
    };
    assert!((20..=25).contains(&pongs), "{pongs} pongs");
    assert!(limited > 0);
    assert_eq!(code, Some(1008));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_is_disconnected_as_a_slow_consumer() {
    let (app, addr) = bridge_app(Backend::Sqlite).await;
    let mut slow = try_connect_with(addr, &[], Some(4096)).await.unwrap();
    send(&mut slow, json!({"type": "auth", "channelId": "web-slow"})).await;
    let mut healthy = connect(addr).await;
    // Make sure the slow socket has joined before publishing.
    recv_type(&mut slow, "auth_ok").await;

    let job = Job {
        id: 1,
        agent_id: 1,
        conversation_id: None,
        kind: "message".into(),
        priority: 5,
        status: "running".into(),
        payload: arvis_shared::domain::job::JobPayload {
            channel_id: Some("web-slow".into()),
            platform: Some("web".into()),
            ..Default::default()
        },
        result: None,
        error: None,
        attempts: 1,
        max_attempts: 3,
        run_after: 0,
        locked_by: None,
        lease_expires_at: None,
        workflow_id: None,
        webhook_id: None,
        created_at: 0,
        started_at: None,
        completed_at: None,
    };
    // ~10 MB in all: more than the kernel buffers (4 MB send buffer here, the
    // client's receive buffer is 4 KiB) plus the 256-frame queue.
    let chunk = "z".repeat(8 * 1024);
    const EVENTS: usize = 1200;
    let t0 = std::time::Instant::now();
    for _ in 0..EVENTS {
        app.deps.bus.publish(&event(&job, ReplyKind::Delta, &chunk, None)).await.unwrap();
    }
    // The bridge keeps serving others meanwhile.
    ping_pong(&mut healthy).await;
    eprintln!("published in {:?}", t0.elapsed());
    tokio::time::sleep(Duration::from_millis(500)).await;

    let mut received = 0usize;
    let code = loop {
        match tokio::time::timeout(WAIT, slow.next()).await.expect("frames or a close in time") {
            Some(Ok(Message::Text(_))) => received += 1,
            Some(Ok(Message::Close(f))) => break f.map(|f| (u16::from(f.code), f.reason.to_string())),
            Some(Ok(_)) => {}
            Some(Err(e)) => panic!("connection broke without a close frame after {received} frames: {e}"),
            None => panic!("connection ended without a close frame after {received} frames"),
        }
    };
    eprintln!("slow consumer: {received} frames before the close");
    assert!(received < EVENTS, "the bridge buffered everything ({received} frames)");
    eprintln!("closed after {:?}", t0.elapsed());
    assert_eq!(code, Some((1008, "slow consumer: outgoing buffer full".to_string())));
    ping_pong(&mut healthy).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_limit_are_refused_with_503() {
    let app = TestApp::builder(Backend::Sqlite).env("WS_MAX_CONNECTIONS", "1").with_bridge().start().await;
    let addr = app.ws_addr.unwrap();
    let mut first = connect(addr).await;
    match try_connect(addr, &[]).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => assert_eq!(resp.status().as_u16(), 503),
        other => panic!("expected 503, got {:?}", other.map(|_| "a connection")),
    }
    ping_pong(&mut first).await;
    first.close(None).await.unwrap();
    drop(first);
    // The slot frees once the socket is gone.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Ok(mut ws) = try_connect(addr, &[]).await {
            ping_pong(&mut ws).await;
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the slot was never released");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let health = reqwest::get(format!("http://{addr}/healthz")).await.unwrap();
    assert_eq!(health.status().as_u16(), 200);
    app.stop().await;
}

// ---- shutdown ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_every_socket_with_going_away() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let bridge = tokio::spawn(arvis_ws_bridge::run(app.deps.clone(), listener, stop.clone()));
    let mut a = connect(addr).await;
    let mut b = connect(addr).await;
    ping_pong(&mut a).await;
    ping_pong(&mut b).await;

    stop.cancel();
    assert_eq!(close_code(&mut a).await, Some(1001));
    assert_eq!(close_code(&mut b).await, Some(1001));
    tokio::time::timeout(WAIT, bridge).await.expect("run returns after closing").unwrap().unwrap();
    app.stop().await;
}

// ---- footprint ----

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .unwrap()
        .trim()
        .trim_end_matches(" kB")
        .trim()
        .parse()
        .unwrap()
}

/// Opens `WS_FOOTPRINT_SOCKETS` (default 5000) idle sockets and prints the
/// resident memory they add — bridge *and* clients, so an upper bound for the
/// bridge. Run with `--run-ignored only`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a check"]
async fn idle_sockets_footprint() {
    use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
    let n: usize = std::env::var("WS_FOOTPRINT_SOCKETS").ok().and_then(|v| v.parse().ok()).unwrap_or(5000);
    let (app, addr) = bridge_app(Backend::Sqlite).await;
    let mut warm = connect(addr).await;
    ping_pong(&mut warm).await;
    let before = rss_kib();
    let mut sockets = Vec::with_capacity(n);
    for _ in 0..n {
        let request = format!("ws://{addr}/ws").into_client_request().unwrap();
        let stream = TcpStream::connect(addr).await.unwrap();
        let config = WebSocketConfig::default().read_buffer_size(1024).write_buffer_size(0);
        let (ws, _) = tokio_tungstenite::client_async_with_config(request, stream, Some(config)).await.unwrap();
        sockets.push(ws);
    }
    ping_pong(sockets.last_mut().unwrap()).await;
    let after = rss_kib();
    let health: Value = reqwest::get(format!("http://{addr}/healthz")).await.unwrap().json().await.unwrap();
    eprintln!(
        "{n} idle sockets: +{} KiB RSS, {:.1} KiB per socket (bridge and client together); healthz {health}",
        after - before,
        (after - before) as f64 / n as f64
    );
    assert_eq!(health["connections"].as_u64(), Some(n as u64 + 1));
    drop(sockets);
    app.stop().await;
}
