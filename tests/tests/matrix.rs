//! Matrix bots end to end (issue #22), against a loopback homeserver
//! ([`FakeMatrix`]) with real HTTP, a real worker and the loopback LLM, on
//! both databases: the skipped backlog, who is answered, invites, own
//! events, redelivered batches, 429/500 and lost answers on send (one
//! transaction id), restarts, long replies, a refused token, per-bot settings.

#![expect(clippy::unwrap_used)] // a test fails by panicking

use std::time::{Duration, Instant};

use arvis_testkit::fake_matrix::{DISPLAY_NAME, FakeMatrix, SendFault, USER_ID};
use arvis_testkit::{Backend, MockLlm, MockReply, TestApp, both_backends};
use serde_json::{Value, json};

const TOKEN: &str = "syt_YXJ2aXM_secretMatrixToken_0aBcD";
/// Bots made by the tests name this variable (`MATRIX_ACCESS_TOKEN` itself would seed one).
const TOKEN_VAR: &str = "MATRIX_ACCESS_TOKEN_1";
const ALICE: &str = "@alice:localhost";
const BOB: &str = "@bob:localhost";
const REPLY_WITHIN: Duration = Duration::from_secs(20);

async fn app(backend: Backend, mock: &MockLlm, mx: &FakeMatrix, bridge: bool) -> TestApp {
    let mut b = TestApp::builder(backend)
        .with_worker()
        .env("OPENAI_API_KEY", "sk-test")
        .env("OPENAI_BASE_URL", &format!("{}/v1", mock.url))
        .env("MATRIX_HOMESERVER_URL", &mx.url)
        .env("MATRIX_USER_ID", USER_ID)
        .env(TOKEN_VAR, TOKEN)
        .env("BOT_LEASE_MS", "2000");
    if bridge {
        b = b.with_bridge();
    }
    b.start().await
}

async fn create_bot(app: &TestApp, agent: i64) -> i64 {
    let (status, body) = app
        .post("/api/bots", json!({"name": "mx", "platform": "matrix", "token": TOKEN_VAR, "defaultAgentId": agent}))
        .await;
    assert_eq!(status, 201, "{body}");
    body["id"].as_i64().unwrap()
}

/// A bot that runs and is past its first sync.
async fn running_bot(app: &TestApp, mx: &FakeMatrix) -> i64 {
    let id = create_bot(app, app.helper_agent().await).await;
    mx.wait_polling(Duration::from_secs(10)).await;
    app.wait_bot_status(id, "running", Duration::from_secs(5)).await;
    id
}

/// The bot's stored cursor.
async fn cursor(app: &TestApp) -> Option<String> {
    let pool = app.db.pool().await;
    sqlx::query_scalar::<_, Option<String>>("SELECT cursor FROM bot_leases")
        .fetch_optional(&pool)
        .await
        .unwrap()
        .flatten()
}

both_backends!(the_backlog_is_skipped_on_the_first_start, |backend| async move {
    let mock = MockLlm::start().await;
    mock.set_default(MockReply::text("fresh answer"));
    let mx = FakeMatrix::start(TOKEN).await;
    let dm = mx.room(&[(ALICE, "Alice")], true);
    for i in 0..3 {
        mx.text(&dm, ALICE, &format!("old question {i}"));
    }
    // An invite that came before the bot ever ran is accepted; what was
    // said in that room before is backlog too.
    let invited = mx.room(&[(ALICE, "Alice"), (BOB, "Bob")], false);
    mx.text(&invited, ALICE, &format!("{USER_ID} please join"));
    mx.invite(&invited, ALICE);
    let app = app(backend, &mock, &mx, true).await;
    running_bot(&app, &mx).await;
    assert_eq!(mx.syncs()[0].since, None, "the first sync has no since");
    assert!(mx.is_member(&invited), "the pending invite was accepted: {:?}", mx.joins());
    let stored = cursor(&app).await.expect("the first sync's next_batch is stored");
    assert!(stored.contains("next_batch"), "{stored}");

    mx.text(&dm, ALICE, "a new question");
    let sent = mx.wait_sent(&dm, 1, REPLY_WITHIN).await;
    assert_eq!(sent[0].body, "fresh answer");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(mx.sent_to(&dm).len(), 1, "the backlog got no answer");
    assert!(mx.sent_to(&invited).is_empty(), "nor the invited room's history");
    assert_eq!(mock.request_count(), 1);
    assert_eq!(mock.last_user_prompt(), "a new question");
    app.stop().await;
});

both_backends!(a_dm_is_answered_with_typing_and_own_events_are_ignored, |backend| async move {
    let mock = MockLlm::start().await;
    mock.set_default(MockReply::text("Hello from the agent"));
    let mx = FakeMatrix::start(TOKEN).await;
    let dm = mx.room(&[(ALICE, "Alice")], true);
    let app = app(backend, &mock, &mx, true).await;
    running_bot(&app, &mx).await;

    mx.text(&dm, ALICE, "hi there");
    let sent = mx.wait_sent(&dm, 1, REPLY_WITHIN).await;
    assert_eq!(sent[0].content["msgtype"], "m.text");
    assert_eq!(sent[0].body, "Hello from the agent");
    assert_eq!(sent[0].content["m.mentions"], json!({}), "an agent's text pings nobody");
    assert!(sent[0].content.get("m.relates_to").is_none(), "a DM reply is not a quote: {}", sent[0].content);
    assert!(sent[0].txn.starts_with("arvis-"), "{}", sent[0].txn);
    assert!(mx.typing().contains(&(dm.clone(), true)), "typing shown while the agent works: {:?}", mx.typing());
    // Cleared once the homeserver has answered the send.
    let deadline = Instant::now() + Duration::from_secs(3);
    while mx.typing().last() != Some(&(dm.clone(), false)) {
        assert!(Instant::now() < deadline, "typing not cleared after the reply: {:?}", mx.typing());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // The bot's own messages (its reply is in the timeline too), notices
    // from other bots and edits get no answer.
    mx.text(&dm, USER_ID, "Arvis talking to itself");
    mx.message_with(&dm, ALICE, json!({"msgtype": "m.notice", "body": "a bot's notice"}));
    mx.message_with(
        &dm,
        ALICE,
        json!({"msgtype": "m.text", "body": "* hi there!", "m.new_content": {"msgtype": "m.text", "body": "hi there!"},
            "m.relates_to": {"rel_type": "m.replace", "event_id": "$ev1"}}),
    );
    // An image gets the "only text" answer, never silence.
    mx.message_with(&dm, ALICE, json!({"msgtype": "m.image", "body": "cat.png", "url": "mxc://localhost/cat"}));
    let sent = mx.wait_sent(&dm, 2, REPLY_WITHIN).await;
    assert!(sent[1].body.contains("only read text"), "{}", sent[1].body);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(mx.sent_to(&dm).len(), 2);
    assert_eq!(mock.request_count(), 1, "only the DM reached the agent");
    let (_, bots) = app.get("/api/bots").await;
    let (_, deliveries) = app.get("/api/deliveries").await;
    assert!(!bots.to_string().contains(TOKEN) && !deliveries.to_string().contains(TOKEN));
    app.stop().await;
});

both_backends!(a_group_message_is_answered_only_when_mentioned, |backend| async move {
    let mock = MockLlm::start().await;
    mock.set_default(MockReply::text("group answer"));
    let mx = FakeMatrix::start(TOKEN).await;
    let group = mx.room(&[(ALICE, "Alice"), (BOB, "Bob")], true);
    let app = app(backend, &mock, &mx, true).await;
    running_bot(&app, &mx).await;

    mx.text(&group, ALICE, "people talking among themselves, Jarvis included");
    mx.event(&group, BOB, "m.room.encrypted", json!({"algorithm": "m.megolm.v1.aes-sha2", "ciphertext": "AwgA"}));
    let by_name = mx.text(&group, ALICE, &format!("{DISPLAY_NAME}: what is up?"));
    let sent = mx.wait_sent(&group, 1, REPLY_WITHIN).await;
    assert_eq!(mock.last_user_prompt(), "what is up?", "the mention is stripped");
    assert_eq!(sent[0].content["m.relates_to"]["m.in_reply_to"]["event_id"], by_name.as_str(), "a group reply quotes");

    mx.message_with(
        &group,
        BOB,
        json!({"msgtype": "m.text", "body": "can you help?", "m.mentions": {"user_ids": [USER_ID]}}),
    );
    mx.wait_sent(&group, 2, REPLY_WITHIN).await;
    assert_eq!(mock.last_user_prompt(), "can you help?");
    mx.text(&group, BOB, &format!("and {USER_ID} too"));
    mx.wait_sent(&group, 3, REPLY_WITHIN).await;
    assert_eq!(mock.last_user_prompt(), "and too");

    // A mention in a thread is answered in the thread, quoting the message.
    let root = mx.text(&group, ALICE, "a thread about lunch");
    let in_thread = mx.message_with(
        &group,
        BOB,
        json!({"msgtype": "m.text", "body": format!("{DISPLAY_NAME}, pizza or pasta?"),
            "m.relates_to": {"rel_type": "m.thread", "event_id": root, "is_falling_back": true,
                "m.in_reply_to": {"event_id": root}}}),
    );
    let sent = mx.wait_sent(&group, 4, REPLY_WITHIN).await;
    assert_eq!(mock.last_user_prompt(), "pizza or pasta?");
    let relation = &sent[3].content["m.relates_to"];
    assert_eq!(relation["rel_type"], "m.thread", "{relation}");
    assert_eq!(relation["event_id"], root.as_str());
    assert_eq!(relation["is_falling_back"], false);
    assert_eq!(relation["m.in_reply_to"]["event_id"], in_thread.as_str());

    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(mx.sent_to(&group).len(), 4, "neither the chatter nor the encrypted event got an answer");
    assert_eq!(mock.request_count(), 4);
    app.stop().await;
});

both_backends!(an_invite_is_joined_and_the_room_answered, |backend| async move {
    let mock = MockLlm::start().await;
    mock.set_default(MockReply::text("glad to be here"));
    let mx = FakeMatrix::start(TOKEN).await;
    let app = app(backend, &mock, &mx, true).await;
    running_bot(&app, &mx).await;
    let room = mx.room(&[(ALICE, "Alice"), (BOB, "Bob")], false);
    mx.invite(&room, ALICE);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !mx.is_member(&room) {
        assert!(Instant::now() < deadline, "the invite was not accepted: {:?}", mx.joins());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    mx.text(&room, ALICE, &format!("welcome {USER_ID}, what can you do?"));
    let sent = mx.wait_sent(&room, 1, REPLY_WITHIN).await;
    assert_eq!(sent[0].body, "glad to be here");
    assert_eq!(mock.last_user_prompt(), "welcome what can you do?");
    assert_eq!(mx.joins(), vec![room.clone()], "joined once");
    app.stop().await;
});

both_backends!(a_batch_delivered_again_after_a_dropped_sync_is_answered_once, |backend| async move {
    let mock = MockLlm::start().await;
    mock.set_default(MockReply::text("once"));
    let mx = FakeMatrix::start(TOKEN).await;
    let dm = mx.room(&[(ALICE, "Alice")], true);
    let app = app(backend, &mock, &mx, true).await;
    running_bot(&app, &mx).await;
    let first = mx.text(&dm, ALICE, "first");
    mx.wait_sent(&dm, 1, REPLY_WITHIN).await;

    // The open long poll drops its connection; the homeserver then answers
    // the next sync from before `first`: the bot sees it a second time.
    mx.replay_next_sync_from(&first);
    mx.drop_syncs(1);
    let deadline = Instant::now() + Duration::from_secs(10);
    while mx.delivered(&first) < 2 {
        assert!(Instant::now() < deadline, "the batch was not delivered again");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    mx.text(&dm, ALICE, "second");
    mx.wait_sent(&dm, 2, REPLY_WITHIN).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(mx.sent_to(&dm).len(), 2, "the redelivered event was not answered again");
    assert_eq!(mock.request_count(), 2);
    app.stop().await;
});

both_backends!(failed_sends_are_retried_under_one_transaction_id, |backend| async move {
    let mock = MockLlm::start().await;
    mock.set_default(MockReply::text("patience"));
    let mx = FakeMatrix::start(TOKEN).await;
    let dm = mx.room(&[(ALICE, "Alice")], true);
    // A 429 (wait 1.5 s), a 500, then a send the homeserver posts but whose
    // answer is lost: the retry must not post it twice.
    mx.fail_sends(&[SendFault::RateLimited(1500), SendFault::Internal, SendFault::AnswerLost]);
    let app = app(backend, &mock, &mx, true).await;
    running_bot(&app, &mx).await;
    let asked = Instant::now();
    mx.text(&dm, ALICE, "hello?");
    let deadline = Instant::now() + REPLY_WITHIN;
    while mx.attempts().len() < 4 {
        assert!(Instant::now() < deadline, "{:?}", mx.attempts());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    app.wait_sent_deliveries(1).await;
    assert!(asked.elapsed() >= Duration::from_millis(1500), "retry_after_ms honoured");
    let attempts = mx.attempts();
    assert_eq!(attempts.len(), 4, "{attempts:?}");
    assert!(attempts.iter().all(|a| a == &attempts[0]), "one room, one txnId across retries: {attempts:?}");
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let sent = mx.sent_to(&dm);
    assert_eq!(sent.len(), 1, "posted once");
    assert_eq!(sent[0].txn, attempts[0].1);
    let (_, d) = app.get("/api/deliveries?status=sent").await;
    assert_eq!(d.as_array().unwrap().len(), 1, "{d}");
    assert_eq!(d[0]["attempts"], 4, "{d}");
    assert_eq!(d[0]["platformMessageId"], sent[0].event_id.as_str(), "the same event as the lost answer's: {d}");
    let why = d[0]["lastError"].as_str().unwrap();
    assert!(why.starts_with("Matrix send"), "the last failure (the lost answer) is recorded: {why}");
    assert!(!d.to_string().contains(TOKEN));
    app.stop().await;
});

both_backends!(a_restart_answers_nothing_twice_and_misses_nothing, |backend| async move {
    let mock = MockLlm::start().await;
    mock.set_default(MockReply::text("answer"));
    let mx = FakeMatrix::start(TOKEN).await;
    let dm = mx.room(&[(ALICE, "Alice")], true);
    let app = app(backend, &mock, &mx, false).await;
    let id = create_bot(&app, app.helper_agent().await).await;
    let first = app.spawn_bridge().await;
    mx.wait_polling(Duration::from_secs(10)).await;
    mx.text(&dm, ALICE, "before the restart");
    mx.wait_sent(&dm, 1, REPLY_WITHIN).await;
    first.stop().await;
    assert_eq!(app.bot(id).await["status"], "stopped");
    let stored = cursor(&app).await.unwrap();

    // While no bridge runs, a message arrives; the next bridge syncs from
    // the stored cursor: that message is answered, the earlier one is not.
    mx.text(&dm, ALICE, "while nobody listened");
    let syncs_before = mx.syncs().len();
    let second = app.spawn_bridge().await;
    mx.wait_sent(&dm, 2, REPLY_WITHIN).await;
    let resumed = &mx.syncs()[syncs_before];
    let token: Value = serde_json::from_str(&stored).unwrap();
    assert_eq!(resumed.since.as_deref(), token["next_batch"].as_str(), "synced from the stored cursor");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(mx.sent_to(&dm).len(), 2);
    assert_eq!(mock.request_count(), 2);
    assert_eq!(mock.last_user_prompt(), "while nobody listened");
    second.stop().await;
    app.stop().await;
});

both_backends!(a_long_reply_is_split_in_order, |backend| async move {
    let mock = MockLlm::start().await;
    let words: Vec<String> = (0..2000).map(|i| format!("w{i:04}")).collect();
    let long = words.join(" ");
    assert!(long.chars().count() > 8000 && long.chars().count() < 16_000);
    mock.set_default(MockReply::text(&long));
    let mx = FakeMatrix::start(TOKEN).await;
    let dm = mx.room(&[(ALICE, "Alice")], true);
    let app = app(backend, &mock, &mx, true).await;
    running_bot(&app, &mx).await;
    mx.text(&dm, ALICE, "tell me everything");
    let sent = mx.wait_sent(&dm, 2, REPLY_WITHIN).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(mx.sent_to(&dm).len(), 2, "two chunks, no more");
    assert!(sent.iter().all(|s| s.body.chars().count() <= 8000));
    assert_ne!(sent[0].txn, sent[1].txn, "one transaction per chunk");
    assert_eq!(format!("{} {}", sent[0].body, sent[1].body), long, "in order, nothing lost");
    app.stop().await;
});

both_backends!(a_refused_token_is_a_clear_error_without_the_token_or_a_storm, |backend| async move {
    let mx = FakeMatrix::start("another-token").await;
    let app = TestApp::builder(backend)
        .with_bridge()
        .env("MATRIX_HOMESERVER_URL", &mx.url)
        .env("MATRIX_ACCESS_TOKEN", TOKEN)
        .env("MATRIX_USER_ID", USER_ID)
        .env("BOT_LEASE_MS", "2000")
        .start()
        .await;
    let (_, connectors) = app.get("/api/connectors").await;
    let matrix = connectors.as_array().unwrap().iter().find(|c| c["platform"] == "matrix").unwrap().clone();
    assert_eq!(matrix["vars"], json!(["MATRIX_HOMESERVER_URL", "MATRIX_ACCESS_TOKEN", "MATRIX_USER_ID"]));
    assert_eq!(matrix["configured"], true);
    // Seeded from the environment, once.
    let deadline = Instant::now() + Duration::from_secs(5);
    let seeded = loop {
        let (_, bots) = app.get("/api/bots").await;
        if let Some(b) = bots.as_array().unwrap().first() {
            break b.clone();
        }
        assert!(Instant::now() < deadline, "no bot was seeded");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(seeded["name"], "Matrix bot");
    assert_eq!(seeded["platform"], "matrix");
    assert_eq!(seeded["token"], "MATRIX_ACCESS_TOKEN");
    let id = seeded["id"].as_i64().unwrap();
    let b = app.wait_bot_status(id, "error", Duration::from_secs(8)).await;
    let why = b["lastError"].as_str().unwrap();
    assert!(why.contains("401") && why.contains("M_UNKNOWN_TOKEN"), "{why}");
    assert!(why.contains("MATRIX_ACCESS_TOKEN"), "names the variable: {why}");
    assert!(!b.to_string().contains(TOKEN));
    let (_, logs) = app.get("/api/logs?limit=500").await;
    assert!(!logs.to_string().contains(TOKEN), "no token in the logs");
    // A refused token is not hammered: no second whoami within the next seconds.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(mx.whoami_calls(), 1, "no reconnect storm");
    assert!(mx.syncs().is_empty());
    app.stop().await;
});

both_backends!(per_bot_settings_name_the_homeserver_and_user_variables, |backend| async move {
    let mock = MockLlm::start().await;
    mock.set_default(MockReply::text("from the second bot"));
    let mx = FakeMatrix::start(TOKEN).await;
    let dm = mx.room(&[(ALICE, "Alice")], true);
    let app = TestApp::builder(backend)
        .with_worker()
        .with_bridge()
        .env("OPENAI_API_KEY", "sk-test")
        .env("OPENAI_BASE_URL", &format!("{}/v1", mock.url))
        .env("MATRIX_ACCESS_TOKEN_2", TOKEN)
        .env("MATRIX_HOMESERVER_URL_2", &mx.url)
        .env("MATRIX_USER_ID_2", "@someone-else:localhost")
        .env("MATRIX_USER_ID_3", USER_ID)
        .env("BOT_LEASE_MS", "2000")
        .start()
        .await;
    let agent = app.helper_agent().await;
    // Settings are variable names, and Matrix settings only.
    for bad in [
        json!({"name": "x", "platform": "matrix", "token": "MATRIX_ACCESS_TOKEN_2", "settings": {"homeserverUrl": mx.url}}),
        json!({"name": "x", "platform": "slack", "token": "SLACK_BOT_TOKEN_2", "settings": {"userId": "MATRIX_USER_ID_2"}}),
    ] {
        let (status, body) = app.post("/api/bots", bad).await;
        assert_eq!(status, 400, "{body}");
        assert!(body["error"].is_string(), "{body}");
    }
    let (status, bot) = app
        .post(
            "/api/bots",
            json!({"name": "second", "platform": "matrix", "token": "MATRIX_ACCESS_TOKEN_2", "defaultAgentId": agent,
                "settings": {"homeserverUrl": "MATRIX_HOMESERVER_URL_2", "userId": "MATRIX_USER_ID_2"}}),
        )
        .await;
    assert_eq!(status, 201, "{bot}");
    assert_eq!(bot["settings"], json!({"homeserverUrl": "MATRIX_HOMESERVER_URL_2", "userId": "MATRIX_USER_ID_2"}));
    let id = bot["id"].as_i64().unwrap();
    // The configured user id is not the token's: an error that says so.
    let b = app.wait_bot_status(id, "error", Duration::from_secs(8)).await;
    let why = b["lastError"].as_str().unwrap();
    assert!(why.contains("MATRIX_USER_ID_2") && why.contains(USER_ID), "{why}");
    // Fixed by naming the right variable: running within 5 s, and answering.
    let (status, _) = app
        .patch(
            &format!("/api/bots/{id}"),
            json!({"settings": {"homeserverUrl": "MATRIX_HOMESERVER_URL_2", "userId": "MATRIX_USER_ID_3"}}),
        )
        .await;
    assert_eq!(status, 200);
    app.wait_bot_status(id, "running", Duration::from_secs(8)).await;
    mx.wait_polling(Duration::from_secs(10)).await;
    mx.text(&dm, ALICE, "hello second bot");
    let sent = mx.wait_sent(&dm, 1, REPLY_WITHIN).await;
    assert_eq!(sent[0].body, "from the second bot");
    app.stop().await;
});

both_backends!(a_room_in_m_direct_is_a_dm_whatever_its_size, |backend| async move {
    let mock = MockLlm::start().await;
    mock.set_default(MockReply::text("direct answer"));
    let mx = FakeMatrix::start(TOKEN).await;
    // Three members, but the bot's m.direct lists it: a DM, answered without a mention.
    let direct = mx.room(&[(ALICE, "Alice"), (BOB, "Bob")], true);
    let group = mx.room(&[(ALICE, "Alice"), (BOB, "Bob")], true);
    mx.set_direct(json!({ALICE: [direct.clone()]}));
    let app = app(backend, &mock, &mx, true).await;
    running_bot(&app, &mx).await;
    mx.text(&group, ALICE, "not for the bot");
    mx.text(&direct, ALICE, "no mention needed here");
    let sent = mx.wait_sent(&direct, 1, REPLY_WITHIN).await;
    assert!(sent[0].content.get("m.relates_to").is_none(), "a DM reply is not a quote");
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(mx.sent_to(&group).is_empty());
    assert_eq!(mock.request_count(), 1);
    app.stop().await;
});
