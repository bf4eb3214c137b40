//! Slack bots end to end (issue #19), against a loopback Slack
//! ([`FakeSlack`]: the Web API over HTTP and Socket Mode over a real
//! WebSocket) with a real worker and the loopback LLM, on both databases:
//! who is answered and where (threads), acknowledgements, redelivery, a
//! refreshed connection, 429s, and the per-bot app-token setting.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails by panicking

use std::time::{Duration, Instant};

use arvis_testkit::fake_slack::FakeSlack;
use arvis_testkit::{Backend, MockLlm, MockReply, TestApp, both_backends};
use serde_json::{Value, json};

const BOT_TOKEN: &str = "xoxb-0000-1111-slack-bot-secret";
const APP_TOKEN: &str = "xapp-1-A0APP0001-2222-slack-app-secret";
/// Bots made by the tests name these variables (the defaults would seed a bot).
const BOT_VAR: &str = "SLACK_BOT_TOKEN_1";
const APP_VAR: &str = "SLACK_APP_TOKEN_1";
const REPLY_WITHIN: Duration = Duration::from_secs(20);
const DM: &str = "D0DM000001";
const CHANNEL: &str = "C0GENERAL1";
const USER: &str = "U0ADA00001";

async fn app(backend: Backend, mock: &MockLlm, sl: &FakeSlack) -> TestApp {
    builder(backend, mock, sl).with_bridge().start().await
}

fn builder(backend: Backend, mock: &MockLlm, sl: &FakeSlack) -> arvis_testkit::TestAppBuilder {
    TestApp::builder(backend)
        .with_worker()
        .env("OPENAI_API_KEY", "sk-test")
        .env("OPENAI_BASE_URL", &format!("{}/v1", mock.url))
        .env("SLACK_API_URL", &sl.url)
        .env(BOT_VAR, BOT_TOKEN)
        .env(APP_VAR, APP_TOKEN)
        .env("BOT_LEASE_MS", "2000")
}

async fn create_bot(app: &TestApp) -> i64 {
    let agent = app.helper_agent().await;
    let (status, body) = app
        .post(
            "/api/bots",
            json!({"name": "sl", "platform": "slack", "token": BOT_VAR, "defaultAgentId": agent,
                "settings": {"appToken": APP_VAR}}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["settings"]["appToken"], APP_VAR);
    body["id"].as_i64().unwrap()
}

async fn running(backend: Backend, reply: &str) -> (MockLlm, FakeSlack, TestApp, i64) {
    let mock = MockLlm::start().await;
    mock.set_default(MockReply::text(reply));
    let sl = FakeSlack::start(BOT_TOKEN, APP_TOKEN).await;
    let app = app(backend, &mock, &sl).await;
    let id = create_bot(&app).await;
    sl.wait_connected(1, Duration::from_secs(10)).await;
    app.wait_bot_status(id, "running", Duration::from_secs(5)).await;
    (mock, sl, app, id)
}

both_backends!(a_dm_is_answered_and_a_channel_only_when_mentioned_in_the_thread, |backend| async move {
    let (mock, sl, app, _) = running(backend, "Hello from the agent").await;

    sl.dm(DM, USER, "hi there");
    let posted = sl.wait_posted(DM, 1, REPLY_WITHIN).await;
    assert_eq!(posted[0].text, "Hello from the agent");
    assert_eq!(posted[0].thread_ts, None, "a DM outside a thread is answered outside one");

    // A channel message without a mention: no reply. With one: Slack sends a
    // `message` and an `app_mention` for it; one reply, in its thread.
    sl.channel(CHANNEL, USER, "people talking among themselves");
    let ts = sl.mention(CHANNEL, USER, "what is up?");
    let posted = sl.wait_posted(CHANNEL, 1, REPLY_WITHIN).await;
    assert_eq!(posted[0].thread_ts.as_deref(), Some(ts.as_str()), "answered in the message's thread");
    assert_eq!(mock.last_user_prompt(), "what is up?", "the mention is stripped before routing");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(sl.posted_to(CHANNEL).len(), 1, "one reply for the mention, none for the rest");
    assert_eq!(mock.request_count(), 2);

    // Every envelope was acknowledged, each within Slack's 3 s.
    let acked = sl.wait_acked(Duration::from_secs(3)).await;
    assert_eq!(acked.len(), 4);
    for d in &acked {
        let took = d.acked_at.unwrap().duration_since(d.sent_at);
        assert!(took < Duration::from_secs(3), "{d:?}");
    }
    let (_, bots) = app.get("/api/bots").await;
    let (_, deliveries) = app.get("/api/deliveries").await;
    for secret in [BOT_TOKEN, APP_TOKEN] {
        assert!(!bots.to_string().contains(secret) && !deliveries.to_string().contains(secret));
    }
    app.stop().await;
});

both_backends!(a_redelivered_event_is_answered_once, |backend| async move {
    let (mock, sl, app, _) = running(backend, "once").await;
    let (event, _) = sl.dm(DM, USER, "are you there?");
    sl.wait_posted(DM, 1, REPLY_WITHIN).await;
    // Slack did not see the ack in time and delivers the event again (new envelope, same event_id).
    sl.redeliver(&event);
    sl.redeliver(&event);
    let acked = sl.wait_acked(Duration::from_secs(3)).await;
    assert_eq!(acked.len(), 3, "redeliveries are acknowledged too: {acked:?}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(sl.posted_to(DM).len(), 1, "one reply");
    assert_eq!(mock.request_count(), 1);
    app.stop().await;
});

both_backends!(a_refreshed_connection_loses_no_message, |backend| async move {
    let (mock, sl, app, _) = running(backend, "received").await;
    sl.dm(DM, USER, "before the refresh");
    sl.wait_posted(DM, 1, REPLY_WITHIN).await;

    // Slack asks for a refresh; an event is already on its way on the old
    // connection; the next ones go to the new one.
    sl.refresh();
    sl.dm(DM, USER, "during the refresh");
    sl.wait_connected(2, Duration::from_secs(5)).await;
    sl.dm(DM, USER, "after the refresh");
    sl.wait_posted(DM, 3, REPLY_WITHIN).await;
    let acked = sl.wait_acked(Duration::from_secs(3)).await;
    assert_eq!(acked.len(), 3);
    assert_eq!(acked[1].connection, 1, "the event during the refresh came on the old connection");
    assert_eq!(acked[2].connection, 2);
    // The old connection is closed once the new one is up: never none open.
    let deadline = Instant::now() + Duration::from_secs(5);
    while sl.open_connections() > 1 {
        assert!(Instant::now() < deadline, "the old connection was never closed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(sl.gaps(), 0, "a new connection was opened before the old one was dropped");
    assert_eq!(sl.connections(), 2);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(sl.posted_to(DM).len(), 3, "three messages, three replies");
    assert_eq!(mock.request_count(), 3);
    app.stop().await;
});

both_backends!(a_429_from_chat_post_message_is_retried_once_after_retry_after, |backend| async move {
    let (_mock, sl, app, _) = running(backend, "patience").await;
    sl.rate_limit_next(1, 2);
    sl.dm(DM, USER, "hello?");
    let posted = sl.wait_posted(DM, 1, REPLY_WITHIN).await;
    let limited = sl.rate_limited_at();
    assert_eq!(limited.len(), 1);
    let waited = posted[0].at.duration_since(limited[0]);
    assert!(waited >= Duration::from_millis(1950), "Retry-After 2 s honoured, waited {waited:?}");
    assert!(waited < Duration::from_secs(6), "and not much longer: {waited:?}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(sl.posted_to(DM).len(), 1, "delivered once");
    let (_, d) = app.get("/api/deliveries?status=sent").await;
    assert_eq!(d[0]["attempts"], 2, "{d}");
    assert!(d[0]["lastError"].as_str().unwrap().contains("429"), "{d}");
    app.stop().await;
});

both_backends!(the_app_token_setting_is_validated_and_a_wrong_one_is_reported, |backend| async move {
    let mock = MockLlm::start().await;
    let sl = FakeSlack::start(BOT_TOKEN, APP_TOKEN).await;
    let app = app(backend, &mock, &sl).await;
    // A token instead of a variable name, or the setting on another platform: 400.
    let (status, body) = app
        .post(
            "/api/bots",
            json!({"name": "x", "platform": "slack", "token": BOT_VAR, "settings": {"appToken": APP_TOKEN}}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(!body.to_string().contains(APP_TOKEN), "the refusal does not echo the secret: {body}");
    let (status, _) = app
        .post("/api/bots", json!({"name": "x", "platform": "discord", "token": "DISCORD_BOT_TOKEN_1", "settings": {"appToken": APP_VAR}}))
        .await;
    assert_eq!(status, 400);
    let (status, _) = app
        .post("/api/bots", json!({"name": "x", "platform": "slack", "token": BOT_VAR, "settings": {"other": 1}}))
        .await;
    assert_eq!(status, 400, "unknown settings are refused");

    // Without the setting the bot reads SLACK_APP_TOKEN, which is not set here.
    let (status, created) = app.post("/api/bots", json!({"name": "s", "platform": "slack", "token": BOT_VAR})).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["settings"], Value::Null);
    let id = created["id"].as_i64().unwrap();
    let b = app.wait_bot_status(id, "error", Duration::from_secs(8)).await;
    assert!(b["lastError"].as_str().unwrap().contains("SLACK_APP_TOKEN"), "{b}");

    // Pointing it at the bot token's variable: Slack refuses the token type.
    let (status, patched) = app.patch(&format!("/api/bots/{id}"), json!({"settings": {"appToken": BOT_VAR}})).await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["settings"]["appToken"], BOT_VAR);
    let deadline = Instant::now() + Duration::from_secs(10);
    let b = loop {
        let b = app.bot(id).await;
        if b["lastError"].as_str().is_some_and(|e| e.contains("not_allowed_token_type")) {
            break b;
        }
        assert!(Instant::now() < deadline, "{b}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(!b.to_string().contains(BOT_TOKEN));

    // The right variable: running. `null` clears the setting again.
    let (status, _) = app.patch(&format!("/api/bots/{id}"), json!({"settings": {"appToken": APP_VAR}})).await;
    assert_eq!(status, 200);
    app.wait_bot_status(id, "running", Duration::from_secs(8)).await;
    let (status, cleared) = app.patch(&format!("/api/bots/{id}"), json!({"settings": null})).await;
    assert_eq!(status, 200);
    assert_eq!(cleared["settings"], Value::Null);
    app.stop().await;
});

both_backends!(disabling_a_slack_bot_closes_its_connection_within_5_s, |backend| async move {
    let (_mock, sl, app, id) = running(backend, "bye").await;
    let (status, _) = app.patch(&format!("/api/bots/{id}"), json!({"isEnabled": false})).await;
    assert_eq!(status, 200);
    let t = Instant::now();
    app.wait_bot_status(id, "stopped", Duration::from_secs(5)).await;
    while sl.open_connections() > 0 {
        assert!(t.elapsed() < Duration::from_secs(5), "the socket outlived the disable");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    app.stop().await;
});

both_backends!(a_killed_holder_is_taken_over_and_unacknowledged_events_are_answered_once, |backend| async move {
    let mock = MockLlm::start().await;
    mock.set_default(MockReply::text("served"));
    let sl = FakeSlack::start(BOT_TOKEN, APP_TOKEN).await;
    let app = builder(backend, &mock, &sl).start().await;
    let id = create_bot(&app).await;
    let a = app.spawn_bridge().await;
    sl.wait_connected(1, Duration::from_secs(10)).await;
    let b = app.spawn_bridge().await;
    let (first, _) = sl.dm(DM, USER, "one");
    sl.wait_posted(DM, 1, REPLY_WITHIN).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(sl.connections(), 1, "only the holder connects");
    let (holder, epoch) = a.deps.store.bot_lease_holder(id).await.unwrap().unwrap();

    // kill -9; an event arrives with no connection (Slack holds it), and
    // Slack also redelivers the first one, as if its ack had been lost.
    a.crash().await;
    let died = Instant::now();
    while sl.open_connections() > 0 {
        assert!(died.elapsed() < Duration::from_secs(5));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    sl.dm(DM, USER, "anyone there?");
    sl.redeliver(&first);
    sl.wait_posted(DM, 2, Duration::from_secs(15)).await;
    assert!(died.elapsed() < Duration::from_secs(15), "taken over in {:?}", died.elapsed());
    let (new_holder, new_epoch) = b.deps.store.bot_lease_holder(id).await.unwrap().unwrap();
    assert_ne!(new_holder, holder);
    assert!(new_epoch > epoch);
    sl.wait_acked(Duration::from_secs(5)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(sl.posted_to(DM).len(), 2, "nothing lost, nothing doubled");
    assert_eq!(mock.request_count(), 2);
    b.stop().await;
    app.stop().await;
});

/// The fake's own retries, which the `faults` bridge-kill scenario relies on:
/// an envelope left unacknowledged is sent again after 3 s with
/// `retry_attempt` 1 (as Slack does), and an acknowledged one never again.
#[tokio::test]
async fn the_fake_retries_an_unacknowledged_envelope_after_3_s() {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;

    arvis_shared::install_crypto_provider();
    let sl = std::sync::Arc::new(FakeSlack::start(BOT_TOKEN, APP_TOKEN).await);
    sl.retry_unacknowledged();
    let open: Value = reqwest::Client::new()
        .post(format!("{}/apps.connections.open", sl.url))
        .bearer_auth(APP_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let (mut ws, _) = tokio_tungstenite::connect_async(open["url"].as_str().unwrap()).await.unwrap();
    let mut next = async || -> Value {
        loop {
            match tokio::time::timeout(Duration::from_secs(10), ws.next()).await.unwrap().unwrap().unwrap() {
                Message::Text(t) => return serde_json::from_str(&t).unwrap(),
                _ => continue,
            }
        }
    };
    assert_eq!(next().await["type"], "hello");
    let (event_id, _) = sl.dm(DM, USER, "ack me");
    let first = next().await;
    assert_eq!(first["retry_attempt"], 0);
    let sent = Instant::now();
    let retry = next().await;
    assert!(sent.elapsed() >= Duration::from_millis(2900), "retried after {:?}", sent.elapsed());
    assert_eq!(retry["retry_attempt"], 1);
    assert_eq!(retry["payload"]["event_id"], event_id.as_str());
    assert_ne!(retry["envelope_id"], first["envelope_id"]);
    ws.send(Message::Text(json!({"envelope_id": retry["envelope_id"]}).to_string().into())).await.unwrap();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let deliveries = sl.deliveries();
    assert_eq!(deliveries.len(), 2, "{deliveries:?}");
    assert!(deliveries[1].acked_at.is_some());
}
