//! Discord bots end to end (issue #19), against a loopback Discord
//! ([`FakeDiscord`]: a real WebSocket gateway and the REST endpoints) with a
//! real worker and the loopback LLM, on both databases: who is answered,
//! long replies, 429s, a dropped connection and its RESUME replay, op 7,
//! op 9 and zombied connections, the close codes that forbid reconnecting,
//! and live disable.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails by panicking

use std::time::{Duration, Instant};

use arvis_testkit::fake_discord::{BOT_ID, FakeDiscord};
use arvis_testkit::{Backend, MockLlm, MockReply, TestApp, both_backends};
use serde_json::json;

const TOKEN: &str = "MTAwMDAwMDAwMDAwMDAwMDAx.G-test.discord-secret-token";
/// Bots made by the tests name this variable (`DISCORD_BOT_TOKEN` itself would seed one).
const TOKEN_VAR: &str = "DISCORD_BOT_TOKEN_1";
const REPLY_WITHIN: Duration = Duration::from_secs(20);
const DM: &str = "400000000000000001";
const GUILD_CHANNEL: &str = "500000000000000001";
const USER: &str = "600000000000000001";

async fn app(backend: Backend, mock: &MockLlm, dc: &FakeDiscord) -> TestApp {
    builder(backend, mock, dc).with_bridge().start().await
}

fn builder(backend: Backend, mock: &MockLlm, dc: &FakeDiscord) -> arvis_testkit::TestAppBuilder {
    TestApp::builder(backend)
        .with_worker()
        .env("OPENAI_API_KEY", "sk-test")
        .env("OPENAI_BASE_URL", &format!("{}/v1", mock.url))
        .env("DISCORD_API_URL", &dc.url)
        .env(TOKEN_VAR, TOKEN)
        .env("BOT_LEASE_MS", "2000")
}

async fn create_bot(app: &TestApp) -> i64 {
    let (status, body) =
        app.post("/api/agents", json!({"slug": "helper", "name": "Helper", "model": "openai/gpt-4o-mini"})).await;
    assert_eq!(status, 201, "{body}");
    let agent = body["id"].as_i64().unwrap();
    let (status, body) = app
        .post("/api/bots", json!({"name": "dc", "platform": "discord", "token": TOKEN_VAR, "defaultAgentId": agent}))
        .await;
    assert_eq!(status, 201, "{body}");
    body["id"].as_i64().unwrap()
}

/// Starts everything and waits until the bot is READY on the gateway.
async fn running(backend: Backend, reply: &str) -> (MockLlm, FakeDiscord, TestApp, i64) {
    let mock = MockLlm::start().await;
    mock.set_default(MockReply::text(reply));
    let dc = FakeDiscord::start(TOKEN).await;
    let app = app(backend, &mock, &dc).await;
    let id = create_bot(&app).await;
    dc.wait_ready(Duration::from_secs(10)).await;
    app.wait_bot_status(id, "running", Duration::from_secs(5)).await;
    (mock, dc, app, id)
}

both_backends!(a_dm_is_answered_and_a_guild_channel_only_when_mentioned, |backend| async move {
    let (mock, dc, app, _) = running(backend, "Hello from the agent").await;
    let identify = dc.identifies().pop().unwrap();
    assert_eq!(identify["intents"], 37377, "GUILDS | GUILD_MESSAGES | DIRECT_MESSAGES | MESSAGE_CONTENT");
    assert_eq!(identify["token"], TOKEN);

    dc.dm(DM, USER, "hi there");
    let posted = dc.wait_posted(DM, 1, REPLY_WITHIN).await;
    assert_eq!(posted[0].content, "Hello from the agent");
    assert_eq!(posted[0].reply_to, None, "a DM reply is not a quote");
    assert!(posted[0].nonce.is_some(), "sends carry a nonce");
    assert!(dc.typing().iter().any(|c| c == DM), "typing while the agent works: {:?}", dc.typing());

    // In a guild channel: no mention → nothing; a bot's message → nothing;
    // a mention → a reply quoting it, with the mention stripped before routing.
    dc.guild(GUILD_CHANNEL, USER, "people talking among themselves");
    dc.from_bot(GUILD_CHANNEL, &format!("<@{BOT_ID}> bots do not talk to bots"));
    let mention = dc.mention(GUILD_CHANNEL, USER, "what is up?");
    let posted = dc.wait_posted(GUILD_CHANNEL, 1, REPLY_WITHIN).await;
    assert_eq!(posted[0].reply_to.as_deref(), Some(mention.as_str()), "a guild reply quotes the message");
    assert_eq!(mock.last_user_prompt(), "what is up?");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(dc.posted_to(GUILD_CHANNEL).len(), 1, "the unmentioned and the bot's message got no reply");
    assert_eq!(mock.request_count(), 2, "only the DM and the mention reached the agent");
    let (_, bots) = app.get("/api/bots").await;
    assert!(!bots.to_string().contains(TOKEN));
    app.stop().await;
});

both_backends!(a_5000_character_reply_goes_out_in_3_chunks_in_order_within_the_rate_limit, |backend| async move {
    let words: Vec<String> = (0..834).map(|i| format!("w{i:04}")).collect();
    let long = words.join(" ");
    assert!((4990..=5010).contains(&long.chars().count()), "{}", long.len());
    let (_mock, dc, app, _) = running(backend, &long).await;
    // The first chunk empties the route's bucket for 1 s: the second must wait for it, not hit a 429.
    dc.exhaust_bucket_next(1, Duration::from_secs(1));
    dc.dm(DM, USER, "tell me everything");
    let posted = dc.wait_posted(DM, 3, REPLY_WITHIN).await;
    let gap = posted[1].at.duration_since(posted[0].at);
    assert!(gap >= Duration::from_millis(950), "X-RateLimit-Reset-After honoured: {gap:?}");
    assert!(dc.rate_limited_at().is_empty(), "no 429 was provoked");
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(dc.posted_to(DM).len(), 3, "three chunks, no more");
    assert!(posted.iter().all(|p| p.content.chars().count() <= 2000));
    let joined: Vec<&str> = posted.iter().map(|p| p.content.as_str()).collect();
    assert_eq!(joined.join(" "), long, "in order, nothing lost");
    app.stop().await;
});

both_backends!(a_429_is_retried_once_after_retry_after, |backend| async move {
    let (_mock, dc, app, _) = running(backend, "patience").await;
    dc.rate_limit_next(1, Duration::from_millis(1500));
    dc.dm(DM, USER, "hello?");
    let posted = dc.wait_posted(DM, 1, REPLY_WITHIN).await;
    let limited = dc.rate_limited_at();
    assert_eq!(limited.len(), 1);
    let waited = posted[0].at.duration_since(limited[0]);
    assert!(waited >= Duration::from_millis(1450), "retry_after 1.5 s honoured, waited {waited:?}");
    assert!(waited < Duration::from_secs(5), "and not much longer: {waited:?}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(dc.posted_to(DM).len(), 1, "delivered once");
    let (_, d) = app.get("/api/deliveries?status=sent").await;
    assert_eq!(d[0]["attempts"], 2, "{d}");
    assert!(d[0]["lastError"].as_str().unwrap().contains("429"), "{d}");
    app.stop().await;
});

both_backends!(a_dropped_connection_resumes_and_replayed_messages_are_answered_once, |backend| async move {
    let (mock, dc, app, id) = running(backend, "still here").await;
    dc.dm(DM, USER, "first");
    dc.wait_posted(DM, 1, REPLY_WITHIN).await;
    let session = dc.resumes().len();
    assert_eq!(session, 0);

    // Mid-conversation: a message arrives and the connection drops at once;
    // another comes while the bot is away. The RESUME replays both — and,
    // with an overlap, the first one the bot has answered already.
    dc.dm(DM, USER, "second");
    dc.drop_connection();
    dc.dm(DM, USER, "third");
    dc.replay_overlap(3);
    dc.wait_posted(DM, 3, REPLY_WITHIN).await;
    let resumes = dc.resumes();
    assert_eq!(resumes.len(), 1, "{resumes:?}");
    assert!(resumes[0].on_resume_url, "RESUME goes to resume_gateway_url");
    assert_eq!(resumes[0].session_id, "session1");
    assert!(resumes[0].seq.is_some());
    assert_eq!(dc.identifies().len(), 1, "resumed, not identified again");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(dc.posted_to(DM).len(), 3, "three messages, three replies: replays answered once");
    assert_eq!(mock.request_count(), 3);
    assert_eq!(app.bot(id).await["status"], "running");
    app.stop().await;
});

both_backends!(op_7_resumes_op_9_identifies_and_a_zombie_reconnects, |backend| async move {
    let mock = MockLlm::start().await;
    mock.set_default(MockReply::text("ok"));
    let dc = FakeDiscord::start(TOKEN).await;
    dc.set_heartbeat_interval(400);
    let app = app(backend, &mock, &dc).await;
    create_bot(&app).await;
    dc.wait_ready(Duration::from_secs(10)).await;

    dc.reconnect();
    let deadline = Instant::now() + Duration::from_secs(10);
    while dc.resumes().is_empty() {
        assert!(Instant::now() < deadline, "no RESUME after op 7");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    dc.wait_ready(Duration::from_secs(5)).await;
    assert_eq!(dc.identifies().len(), 1);

    // op 9 d:false: the session is gone, a fresh IDENTIFY (after 1–5 s).
    dc.invalidate(false);
    let deadline = Instant::now() + Duration::from_secs(12);
    while dc.identifies().len() < 2 {
        assert!(Instant::now() < deadline, "no IDENTIFY after op 9 false");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    dc.wait_ready(Duration::from_secs(5)).await;
    let deadline = Instant::now() + Duration::from_secs(3);
    while dc.heartbeats() < 2 {
        assert!(Instant::now() < deadline, "heartbeats are sent every interval");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // The gateway stops acknowledging heartbeats: a zombie, dropped and resumed.
    let before = (dc.connections(), dc.resumes().len());
    dc.set_acking(false);
    let deadline = Instant::now() + Duration::from_secs(8);
    while dc.resumes().len() == before.1 {
        assert!(Instant::now() < deadline, "a zombied connection was not replaced");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(dc.connections() > before.0);
    dc.set_acking(true);
    dc.wait_ready(Duration::from_secs(5)).await;
    dc.dm(DM, USER, "after all that");
    dc.wait_posted(DM, 1, REPLY_WITHIN).await;
    app.stop().await;
});

both_backends!(close_4004_puts_the_bot_in_error_and_it_does_not_reconnect, |backend| async move {
    let mock = MockLlm::start().await;
    let dc = FakeDiscord::start(TOKEN).await;
    dc.close_on_identify(4004);
    let app = app(backend, &mock, &dc).await;
    let id = create_bot(&app).await;
    let b = app.wait_bot_status(id, "error", Duration::from_secs(10)).await;
    let why = b["lastError"].as_str().unwrap();
    assert!(why.contains("4004"), "{why}");
    assert!(!b.to_string().contains(TOKEN));
    let connections = dc.connections();
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(dc.connections(), connections, "no reconnect after 4004");
    assert_eq!(dc.identifies().len(), 1);
    assert_eq!(app.bot(id).await["status"], "error");
    app.stop().await;
});

both_backends!(disabling_a_discord_bot_stops_it_within_5_s_and_it_resumes_after, |backend| async move {
    let (mock, dc, app, id) = running(backend, "back").await;
    dc.dm(DM, USER, "before");
    dc.wait_posted(DM, 1, REPLY_WITHIN).await;
    let (status, _) = app.patch(&format!("/api/bots/{id}"), json!({"isEnabled": false})).await;
    assert_eq!(status, 200);
    let t = Instant::now();
    app.wait_bot_status(id, "stopped", Duration::from_secs(5)).await;
    while dc.open_connections() > 0 {
        assert!(t.elapsed() < Duration::from_secs(5), "the gateway connection outlived the disable");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Discord keeps the session's events; while the bot is off nothing is answered.
    dc.dm(DM, USER, "are you off?");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(dc.posted_to(DM).len(), 1);
    // Enabled again: it RESUMEs from the stored cursor and answers what came meanwhile, once.
    let (status, _) = app.patch(&format!("/api/bots/{id}"), json!({"isEnabled": true})).await;
    assert_eq!(status, 200);
    dc.wait_posted(DM, 2, REPLY_WITHIN).await;
    let resumes = dc.resumes();
    assert_eq!(resumes.len(), 1, "resumed from the cursor: {resumes:?}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(dc.posted_to(DM).len(), 2);
    assert_eq!(mock.request_count(), 2);
    app.stop().await;
});

both_backends!(a_killed_holder_is_taken_over_and_the_session_resumed_from_its_cursor, |backend| async move {
    let mock = MockLlm::start().await;
    mock.set_default(MockReply::text("served"));
    let dc = FakeDiscord::start(TOKEN).await;
    let app = builder(backend, &mock, &dc).start().await;
    let id = create_bot(&app).await;
    let a = app.spawn_bridge().await;
    dc.wait_ready(Duration::from_secs(10)).await;
    let b = app.spawn_bridge().await;
    dc.dm(DM, USER, "one");
    dc.dm(DM, USER, "two");
    dc.wait_posted(DM, 2, REPLY_WITHIN).await;
    assert_eq!(dc.connections(), 1, "only the holder connects to the gateway");
    let (holder, epoch) = a.deps.store.bot_lease_holder(id).await.unwrap().unwrap();
    // The holder has recorded both sends before it dies (a death between a
    // post and its record is covered by the nonce, not by this test).
    app.wait_sent_deliveries(2).await;

    // kill -9: nothing released. A message arrives while no bridge is connected.
    a.crash().await;
    let died = Instant::now();
    dc.dm(DM, USER, "anyone there?");
    dc.replay_overlap(2);
    dc.wait_posted(DM, 3, Duration::from_secs(15)).await;
    assert!(died.elapsed() < Duration::from_secs(15), "taken over in {:?}", died.elapsed());
    let (new_holder, new_epoch) = b.deps.store.bot_lease_holder(id).await.unwrap().unwrap();
    assert_ne!(new_holder, holder);
    assert!(new_epoch > epoch);
    let resumes = dc.resumes();
    assert_eq!(resumes.len(), 1, "the new holder resumed the session from the stored cursor: {resumes:?}");
    assert_eq!(dc.identifies().len(), 1);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(dc.posted_to(DM).len(), 3, "nothing lost, nothing doubled (the overlap replayed 'two' too)");
    assert_eq!(mock.request_count(), 3);
    b.stop().await;
    app.stop().await;
});
