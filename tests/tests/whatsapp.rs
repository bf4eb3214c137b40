//! WhatsApp Cloud API bots end to end (issue #22), against a loopback Graph
//! API that also delivers Meta's signed webhooks ([`FakeWhatsApp`]), with
//! real HTTP, a real worker, the bridge and the loopback LLM, on both
//! databases: the verification handshake, inbound → reply, signatures,
//! redeliveries, 429/500 on send, restarts, long replies, the reserved path
//! and the connectors list.

#![expect(clippy::unwrap_used, clippy::panic)] // a test fails by panicking

use std::time::{Duration, Instant};

use arvis_testkit::fake_whatsapp::{self, Failure, FakeWhatsApp};
use arvis_testkit::{Backend, MockLlm, MockReply, TestApp, both_backends};
use serde_json::{Value, json};

const ACCESS_TOKEN: &str = "EAAG-test-whatsapp-access-token";
const APP_SECRET: &str = "test-meta-app-secret-0123456789";
const VERIFY_TOKEN: &str = "test-verify-token-42";
const PHONE_ID: &str = "106540352242922";
const USER: &str = "16505551234";
const REPLY_WITHIN: Duration = Duration::from_secs(20);

/// The bot's variables, numbered so that no bot is seeded from the standard names.
fn vars(b: arvis_testkit::TestAppBuilder, wa: &FakeWhatsApp) -> arvis_testkit::TestAppBuilder {
    b.env("WHATSAPP_API_URL", &wa.url)
        .env("WHATSAPP_ACCESS_TOKEN_1", ACCESS_TOKEN)
        .env("WHATSAPP_ACCESS_TOKEN_2", ACCESS_TOKEN)
        .env("WHATSAPP_PHONE_NUMBER_ID_1", PHONE_ID)
        .env("WHATSAPP_APP_SECRET_1", APP_SECRET)
        .env("WHATSAPP_VERIFY_TOKEN_1", VERIFY_TOKEN)
        .env("BOT_LEASE_MS", "2000")
}

async fn app(backend: Backend, mock: &MockLlm, wa: &FakeWhatsApp, bridge: bool) -> TestApp {
    let mut b = vars(TestApp::builder(backend), wa)
        .with_worker()
        .env("OPENAI_API_KEY", "sk-test")
        .env("OPENAI_BASE_URL", &format!("{}/v1", mock.url));
    if bridge {
        b = b.with_bridge();
    }
    b.start().await
}

async fn create_bot(app: &TestApp, agent: i64) -> i64 {
    let (status, body) = app
        .post(
            "/api/bots",
            json!({"name": "wa", "platform": "whatsapp", "token": "WHATSAPP_ACCESS_TOKEN_1", "defaultAgentId": agent,
                "settings": {"phoneNumberId": "WHATSAPP_PHONE_NUMBER_ID_1", "appSecret": "WHATSAPP_APP_SECRET_1",
                    "verifyToken": "WHATSAPP_VERIFY_TOKEN_1"}}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    body["id"].as_i64().unwrap()
}

async fn count(app: &TestApp, table: &str) -> i64 {
    let sql = match table {
        "messages" => "SELECT COUNT(*) FROM messages",
        "jobs" => "SELECT COUNT(*) FROM jobs",
        "deliveries" => "SELECT COUNT(*) FROM deliveries",
        other => panic!("no count for {other}"),
    };
    sqlx::query_scalar::<_, i64>(sql).fetch_one(&app.db.pool().await).await.unwrap()
}

both_backends!(the_handshake_the_reserved_path_and_the_connectors_list, |backend| async move {
    let mock = MockLlm::start().await;
    let wa = FakeWhatsApp::start(ACCESS_TOKEN, PHONE_ID, APP_SECRET).await;
    let app = app(backend, &mock, &wa, true).await;
    let id = create_bot(&app, app.helper_agent().await).await;

    // Meta's verification: the right token echoes the challenge as text/plain.
    let url = |token: &str| {
        app.url(&format!("/webhook/whatsapp?hub.mode=subscribe&hub.verify_token={token}&hub.challenge=1158201444"))
    };
    let resp = app.client.get(url(VERIFY_TOKEN)).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    assert_eq!(resp.text().await.unwrap(), "1158201444");
    // A wrong token, or another mode, is 403 with an error; missing parameters 400.
    let resp = app.client.get(url("not-the-token")).send().await.unwrap();
    assert_eq!(resp.status(), 403);
    let body: Value = resp.json().await.unwrap();
    assert!(body["error"].is_string(), "{body}");
    let other_mode =
        app.url(&format!("/webhook/whatsapp?hub.mode=unsubscribe&hub.verify_token={VERIFY_TOKEN}&hub.challenge=1"));
    assert_eq!(app.client.get(other_mode).send().await.unwrap().status(), 403);
    let (status, body) = app.get("/webhook/whatsapp?hub.mode=subscribe").await;
    assert_eq!(status, 400, "{body}");

    // The bot checked its credentials once and runs; no secret shows.
    let bot = app.wait_bot_status(id, "running", Duration::from_secs(8)).await;
    assert_eq!(wa.checks(), 1);
    assert_eq!(bot["settings"]["phoneNumberId"], "WHATSAPP_PHONE_NUMBER_ID_1");
    for secret in [ACCESS_TOKEN, APP_SECRET, VERIFY_TOKEN] {
        assert!(!bot.to_string().contains(secret));
    }

    // A bot naming variables nobody set says which, in its status (here its
    // own phone-number id, and the standard app secret and verify token).
    let (status, body) = app
        .post(
            "/api/bots",
            json!({"name": "wa2", "platform": "whatsapp", "token": "WHATSAPP_ACCESS_TOKEN_2",
                "settings": {"phoneNumberId": "WHATSAPP_PHONE_NUMBER_ID_2"}}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let b = app.wait_bot_status(body["id"].as_i64().unwrap(), "error", Duration::from_secs(8)).await;
    let why = b["lastError"].as_str().unwrap();
    for var in ["WHATSAPP_PHONE_NUMBER_ID_2", "WHATSAPP_APP_SECRET", "WHATSAPP_VERIFY_TOKEN"] {
        assert!(why.contains(var), "{why}");
    }
    assert!(!why.contains(PHONE_ID) && !why.contains(ACCESS_TOKEN), "{why}");
    // A setting of another platform, or a value instead of a name, is a 400.
    for settings in [json!({"accountSid": "TWILIO_ACCOUNT_SID"}), json!({"appSecret": APP_SECRET})] {
        let (status, body) = app
            .post("/api/bots", json!({"name": "x", "platform": "whatsapp", "token": "W_T", "settings": settings}))
            .await;
        assert_eq!(status, 400, "{body}");
        assert!(body["error"].is_string());
    }

    // The path is the connector's: no user webhook can take it.
    let agent_id = bot["defaultAgentId"].as_i64().unwrap();
    let (status, body) = app.post("/api/webhooks", json!({"name": "WhatsApp", "agentId": agent_id})).await;
    assert_eq!(status, 409, "{body}");
    assert!(body["error"].as_str().unwrap().contains("reserved"), "{body}");
    let (status, _) = app.post("/api/webhooks", json!({"name": "WhatsApp orders", "agentId": agent_id})).await;
    assert_eq!(status, 201, "a path that only starts like it is fine");

    // The connectors list names the variables; none of these are set under
    // the standard names here, so WhatsApp is not configured.
    let (status, connectors) = app.get("/api/connectors").await;
    assert_eq!(status, 200);
    let whatsapp = connectors.as_array().unwrap().iter().find(|c| c["platform"] == "whatsapp").unwrap();
    assert_eq!(
        *whatsapp,
        json!({"platform": "whatsapp", "configured": false, "vars":
            ["WHATSAPP_ACCESS_TOKEN", "WHATSAPP_PHONE_NUMBER_ID", "WHATSAPP_APP_SECRET", "WHATSAPP_VERIFY_TOKEN"]})
    );
    app.stop().await;
});

both_backends!(the_standard_variables_configure_and_seed_a_bot, |backend| async move {
    let wa = FakeWhatsApp::start(ACCESS_TOKEN, PHONE_ID, APP_SECRET).await;
    let app = TestApp::builder(backend)
        .with_bridge()
        .env("WHATSAPP_API_URL", &wa.url)
        .env("WHATSAPP_ACCESS_TOKEN", ACCESS_TOKEN)
        .env("WHATSAPP_PHONE_NUMBER_ID", PHONE_ID)
        .env("WHATSAPP_APP_SECRET", APP_SECRET)
        .env("WHATSAPP_VERIFY_TOKEN", VERIFY_TOKEN)
        .start()
        .await;
    let (_, connectors) = app.get("/api/connectors").await;
    let whatsapp = connectors.as_array().unwrap().iter().find(|c| c["platform"] == "whatsapp").unwrap();
    assert_eq!(whatsapp["configured"], true, "{whatsapp}");
    let deadline = Instant::now() + Duration::from_secs(5);
    let seeded = loop {
        let (_, bots) = app.get("/api/bots").await;
        if let Some(b) = bots.as_array().unwrap().iter().find(|b| b["platform"] == "whatsapp") {
            break b.clone();
        }
        assert!(Instant::now() < deadline, "no WhatsApp bot was seeded");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(seeded["token"], "WHATSAPP_ACCESS_TOKEN");
    assert_eq!(seeded["settings"], Value::Null, "the standard variables need no settings");
    app.wait_bot_status(seeded["id"].as_i64().unwrap(), "running", Duration::from_secs(8)).await;
    app.stop().await;
});

both_backends!(a_text_is_answered_once_however_often_meta_delivers_it, |backend| async move {
    let mock = MockLlm::start().await;
    mock.set_default(MockReply::text("Hello from the agent"));
    let wa = FakeWhatsApp::start(ACCESS_TOKEN, PHONE_ID, APP_SECRET).await;
    let app = app(backend, &mock, &wa, true).await;
    let id = create_bot(&app, app.helper_agent().await).await;
    app.wait_bot_status(id, "running", Duration::from_secs(8)).await;

    let (note, _) = wa.text_notification(USER, "hi there");
    let t = Instant::now();
    let (status, body) = wa.deliver(&app.base, &note).await;
    assert_eq!(status, 200, "{body}");
    assert!(t.elapsed() < Duration::from_secs(2), "answered without waiting for the agent: {:?}", t.elapsed());
    let sent = wa.wait_sent(USER, 1, REPLY_WITHIN).await;
    assert_eq!(sent[0].body, "Hello from the agent");
    assert_eq!(mock.last_user_prompt(), "hi there");

    // Meta delivers the same notification again (it never got our 200, say):
    // 200, nothing new stored, not answered again.
    let (messages, jobs) = (count(&app, "messages").await, count(&app, "jobs").await);
    let (status, _) = wa.deliver(&app.base, &note).await;
    assert_eq!(status, 200);
    assert_eq!((count(&app, "messages").await, count(&app, "jobs").await), (messages, jobs));

    // Status callbacks, and messages for a phone number no bot has, are
    // answered 200 and store nothing.
    let statuses = json!({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{"field": "messages",
        "value": {"messaging_product": "whatsapp", "metadata": {"phone_number_id": PHONE_ID},
            "statuses": [{"id": "wamid.OUT1", "status": "delivered", "timestamp": "1733050001", "recipient_id": USER}]}}]}]});
    assert_eq!(wa.deliver(&app.base, &statuses).await.0, 200);
    let elsewhere = fake_whatsapp::notification(
        "999999999",
        USER,
        fake_whatsapp::text_message("wamid.ELSEWHERE", USER, "not for us"),
    );
    assert_eq!(wa.deliver(&app.base, &elsewhere).await.0, 200);
    assert_eq!((count(&app, "messages").await, count(&app, "jobs").await), (messages, jobs));

    // An image without a caption gets the "only text" answer, never silence.
    let image = fake_whatsapp::notification(
        PHONE_ID,
        USER,
        json!({"from": USER, "id": "wamid.IMG1", "timestamp": "1733050002", "type": "image",
            "image": {"mime_type": "image/jpeg", "sha256": "abc", "id": "1234"}}),
    );
    assert_eq!(wa.deliver(&app.base, &image).await.0, 200);
    let sent = wa.wait_sent(USER, 2, REPLY_WITHIN).await;
    assert!(sent[1].body.contains("only read text"), "{}", sent[1].body);

    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(wa.sent_to(USER).len(), 2, "the redelivery was not answered");
    assert_eq!(mock.request_count(), 1);
    app.stop().await;
});

both_backends!(a_bad_or_missing_signature_is_401_and_stores_nothing, |backend| async move {
    let mock = MockLlm::start().await;
    let wa = FakeWhatsApp::start(ACCESS_TOKEN, PHONE_ID, APP_SECRET).await;
    let app = app(backend, &mock, &wa, false).await;
    create_bot(&app, app.helper_agent().await).await;
    let (messages, jobs) = (count(&app, "messages").await, count(&app, "jobs").await);
    let (note, _) = wa.text_notification(USER, "forged");
    let body = serde_json::to_vec(&note).unwrap();
    let mut tampered = body.clone();
    tampered.extend_from_slice(b" ");
    let cases = [
        (body.clone(), None),
        (body.clone(), Some(fake_whatsapp::sign("another-app-secret", &body))),
        (tampered, Some(fake_whatsapp::sign(APP_SECRET, &body))),
        (body.clone(), Some("sha256=zz".to_string())),
        (body.clone(), Some(fake_whatsapp::sign(APP_SECRET, &body).replace("sha256=", "sha1="))),
        // Not even JSON: refused before it is parsed.
        (b"{not json".to_vec(), Some(fake_whatsapp::sign("wrong", b"{not json"))),
    ];
    for (body, signature) in cases {
        let (status, answer) = wa.deliver_raw(&app.base, body, signature.as_deref()).await;
        assert_eq!(status, 401, "{signature:?}: {answer}");
        let answer: Value = serde_json::from_str(&answer).unwrap();
        assert!(answer["error"].is_string(), "{answer}");
    }
    assert_eq!((count(&app, "messages").await, count(&app, "jobs").await), (messages, jobs));
    assert_eq!(count(&app, "deliveries").await, 0);
    // Correctly signed but not a notification: a 400, not a 500.
    let (status, _) =
        wa.deliver_raw(&app.base, b"[1,2]".to_vec(), Some(&fake_whatsapp::sign(APP_SECRET, b"[1,2]"))).await;
    assert_eq!(status, 400);
    assert_eq!(mock.request_count(), 0);
    app.stop().await;
});

both_backends!(a_429_a_500_and_a_cut_connection_on_send_are_retried_and_delivered_once, |backend| async move {
    let mock = MockLlm::start().await;
    mock.set_default(MockReply::text("patience"));
    let wa = FakeWhatsApp::start(ACCESS_TOKEN, PHONE_ID, APP_SECRET).await;
    wa.fail_next(&[Failure::RateLimited { retry_after_secs: 2 }, Failure::ServerError, Failure::Disconnect]);
    let app = app(backend, &mock, &wa, true).await;
    create_bot(&app, app.helper_agent().await).await;
    let (note, _) = wa.text_notification(USER, "hello?");
    assert_eq!(wa.deliver(&app.base, &note).await.0, 200);
    let sent = wa.wait_sent(USER, 1, REPLY_WITHIN).await;
    let failed = wa.failed_at();
    assert_eq!(failed.len(), 3, "{failed:?}");
    let waited = failed[1].1.duration_since(failed[0].1);
    assert!(waited >= Duration::from_millis(1950), "Retry-After 2 s honoured, waited {waited:?}");
    assert!(sent[0].at > failed[2].1);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(wa.sent_to(USER).len(), 1, "delivered once");
    app.wait_sent_deliveries(1).await;
    let (_, d) = app.get("/api/deliveries?status=sent").await;
    assert_eq!(d[0]["attempts"], 4, "{d}");
    assert_eq!(d[0]["platform"], "whatsapp");
    let last = d[0]["lastError"].as_str().unwrap();
    assert!(
        last.starts_with("WhatsApp sending a message") && !last.contains(ACCESS_TOKEN),
        "the cut connection: {last}"
    );
    assert!(d[0]["platformMessageId"].as_str().unwrap().starts_with("wamid.OUT"), "{d}");
    app.stop().await;
});

both_backends!(a_restart_of_the_bridge_answers_nothing_twice, |backend| async move {
    let mock = MockLlm::start().await;
    mock.set_default(MockReply::text("once"));
    let wa = FakeWhatsApp::start(ACCESS_TOKEN, PHONE_ID, APP_SECRET).await;
    let app = app(backend, &mock, &wa, false).await;
    let id = create_bot(&app, app.helper_agent().await).await;
    let first = app.spawn_bridge().await;
    let (note, _) = wa.text_notification(USER, "first");
    assert_eq!(wa.deliver(&app.base, &note).await.0, 200);
    wa.wait_sent(USER, 1, REPLY_WITHIN).await;
    first.stop().await;
    assert_eq!(app.bot(id).await["status"], "stopped");

    // No bridge runs: the gateway still takes messages in (the reply waits in
    // the database), and Meta redelivers the first one.
    let (second, _) = wa.text_notification(USER, "second");
    assert_eq!(wa.deliver(&app.base, &second).await.0, 200);
    assert_eq!(wa.deliver(&app.base, &note).await.0, 200);
    let again = app.spawn_bridge().await;
    wa.wait_sent(USER, 2, REPLY_WITHIN).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(wa.sent_to(USER).len(), 2, "the first reply was not sent again");
    assert_eq!(mock.request_count(), 2);
    again.stop().await;
    app.stop().await;
});

both_backends!(a_long_reply_is_split_at_4096_characters_in_order, |backend| async move {
    let mock = MockLlm::start().await;
    let words: Vec<String> = (0..1000).map(|i| format!("w{i:04}")).collect();
    let long = words.join(" ");
    assert!(long.chars().count() > 4096 && long.chars().count() < 8192);
    mock.set_default(MockReply::text(&long));
    let wa = FakeWhatsApp::start(ACCESS_TOKEN, PHONE_ID, APP_SECRET).await;
    let app = app(backend, &mock, &wa, true).await;
    create_bot(&app, app.helper_agent().await).await;
    let (note, _) = wa.text_notification(USER, "tell me everything");
    assert_eq!(wa.deliver(&app.base, &note).await.0, 200);
    let sent = wa.wait_sent(USER, 2, REPLY_WITHIN).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(wa.sent_to(USER).len(), 2, "two chunks, no more");
    assert!(sent.iter().all(|s| s.body.chars().count() <= 4096));
    assert_eq!(format!("{} {}", sent[0].body, sent[1].body), long, "in order, nothing lost");
    app.stop().await;
});
