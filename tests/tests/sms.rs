//! Twilio SMS bots end to end (issue #22), against a loopback Twilio REST API
//! that also delivers Twilio's signed webhooks ([`FakeTwilio`]), with real
//! HTTP, a real worker, the bridge and the loopback LLM, on both databases:
//! inbound → reply (with the empty TwiML answer), signatures (also behind a
//! proxy, `TWILIO_WEBHOOK_URL`), redeliveries, 429/500 on send, restarts,
//! long replies, the reserved path and the connectors list.

#![expect(clippy::unwrap_used, clippy::panic)] // a test fails by panicking

use std::time::{Duration, Instant};

use arvis_testkit::fake_twilio::{self, Failure, FakeTwilio};
use arvis_testkit::{Backend, MockLlm, MockReply, TestApp, both_backends};
use serde_json::{Value, json};

const SID: &str = "AC0123456789abcdef0123456789abcdef";
const AUTH_TOKEN: &str = "test-twilio-auth-token-0123456789";
const NUMBER: &str = "+15005550006";
const USER: &str = "+14155550123";
/// Where Twilio thinks it posts, behind the proxy of the tests that set it.
const PUBLIC_URL: &str = "https://arvis.example.com/webhook/sms";
const REPLY_WITHIN: Duration = Duration::from_secs(20);
const EMPTY_TWIML: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response></Response>";

async fn app(backend: Backend, mock: &MockLlm, tw: &FakeTwilio, bridge: bool) -> TestApp {
    let mut b = TestApp::builder(backend)
        .with_worker()
        .env("OPENAI_API_KEY", "sk-test")
        .env("OPENAI_BASE_URL", &format!("{}/v1", mock.url))
        .env("TWILIO_API_URL", &tw.url)
        .env("TWILIO_WEBHOOK_URL", PUBLIC_URL)
        // Numbered, so that no bot is seeded from the standard names.
        .env("TWILIO_AUTH_TOKEN_1", AUTH_TOKEN)
        .env("TWILIO_ACCOUNT_SID_1", SID)
        .env("TWILIO_PHONE_NUMBER_1", NUMBER)
        .env("BOT_LEASE_MS", "2000");
    if bridge {
        b = b.with_bridge();
    }
    b.start().await
}

async fn create_bot(app: &TestApp, agent: i64) -> i64 {
    let (status, body) = app
        .post(
            "/api/bots",
            json!({"name": "sms", "platform": "sms", "token": "TWILIO_AUTH_TOKEN_1", "defaultAgentId": agent,
                "settings": {"accountSid": "TWILIO_ACCOUNT_SID_1", "phoneNumber": "TWILIO_PHONE_NUMBER_1"}}),
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

/// Twilio posting an SMS from `from` through the proxy: signed over the public URL.
async fn text(app: &TestApp, tw: &FakeTwilio, params: &[(String, String)]) -> fake_twilio::Answer {
    tw.deliver(&app.url("/webhook/sms"), PUBLIC_URL, params).await
}

both_backends!(a_text_is_answered_with_empty_twiml_then_a_reply_once, |backend| async move {
    let mock = MockLlm::start().await;
    mock.set_default(MockReply::text("Hello from the agent"));
    let tw = FakeTwilio::start(SID, AUTH_TOKEN, NUMBER).await;
    let app = app(backend, &mock, &tw, true).await;
    let id = create_bot(&app, app.helper_agent().await).await;
    app.wait_bot_status(id, "running", Duration::from_secs(8)).await;

    // Spaces, '+' and '&' in the text: the signature covers the decoded values.
    let params = tw.sms_params(USER, "hi there + you & me");
    let t = Instant::now();
    let answer = text(&app, &tw, &params).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert!(answer.content_type.starts_with("text/xml"), "{answer:?}");
    assert_eq!(answer.body, EMPTY_TWIML);
    assert!(t.elapsed() < Duration::from_secs(2), "answered without waiting for the agent: {:?}", t.elapsed());
    let sent = tw.wait_sent(USER, 1, REPLY_WITHIN).await;
    assert_eq!(sent[0].body, "Hello from the agent");
    assert_eq!(sent[0].from, NUMBER);
    assert_eq!(mock.last_user_prompt(), "hi there + you & me");

    // Twilio delivers the same MessageSid again: the same answer, nothing new.
    let (messages, jobs) = (count(&app, "messages").await, count(&app, "jobs").await);
    let again = text(&app, &tw, &params).await;
    assert_eq!((again.status, again.body.as_str()), (200, EMPTY_TWIML));
    assert_eq!((count(&app, "messages").await, count(&app, "jobs").await), (messages, jobs));

    // A text to a number no bot has: answered, not stored.
    let mut elsewhere = tw.sms_params(USER, "wrong number");
    for (k, v) in elsewhere.iter_mut() {
        if k == "To" {
            *v = "+15005550001".into();
        }
    }
    assert_eq!(text(&app, &tw, &elsewhere).await.status, 200);
    assert_eq!((count(&app, "messages").await, count(&app, "jobs").await), (messages, jobs));
    // A text for a disabled bot: answered (so that Twilio does not retry), not stored.
    let (status, _) = app.patch(&format!("/api/bots/{id}"), json!({"isEnabled": false})).await;
    assert_eq!(status, 200);
    let answer = text(&app, &tw, &tw.sms_params(USER, "anyone?")).await;
    assert_eq!((answer.status, answer.body.as_str()), (200, EMPTY_TWIML));
    assert_eq!((count(&app, "messages").await, count(&app, "jobs").await), (messages, jobs));

    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(tw.sent_to(USER).len(), 1, "the redelivery was not answered");
    assert_eq!(mock.request_count(), 1);
    let (_, bots) = app.get("/api/bots").await;
    assert!(!bots.to_string().contains(AUTH_TOKEN));
    app.stop().await;
});

both_backends!(a_bad_or_missing_signature_is_401_and_stores_nothing, |backend| async move {
    let mock = MockLlm::start().await;
    let tw = FakeTwilio::start(SID, AUTH_TOKEN, NUMBER).await;
    let app = app(backend, &mock, &tw, false).await;
    create_bot(&app, app.helper_agent().await).await;
    let (messages, jobs) = (count(&app, "messages").await, count(&app, "jobs").await);
    let params = tw.sms_params(USER, "forged");
    let mut changed = params.clone();
    for (k, v) in changed.iter_mut() {
        if k == "Body" {
            *v = "changed on the way".into();
        }
    }
    let post_to = app.url("/webhook/sms");
    let good = fake_twilio::sign(AUTH_TOKEN, PUBLIC_URL, &params);
    // (the form's parameters, the X-Twilio-Signature sent).
    type Case = (Vec<(String, String)>, Option<String>);
    let cases: Vec<Case> = vec![
        (params.clone(), None),
        (params.clone(), Some(fake_twilio::sign("another-token", PUBLIC_URL, &params))),
        // Signed over the URL the request reached, not the configured public one.
        (params.clone(), Some(fake_twilio::sign(AUTH_TOKEN, &post_to, &params))),
        (changed, Some(good.clone())),
        (params.clone(), Some("not base64!".into())),
    ];
    for (params, signature) in cases {
        let answer = tw.deliver_raw(&post_to, &params, signature.as_deref()).await;
        assert_eq!(answer.status, 401, "{signature:?}: {answer:?}");
        let body: Value = serde_json::from_str(&answer.body).unwrap();
        assert!(body["error"].is_string(), "{body}");
    }
    assert_eq!((count(&app, "messages").await, count(&app, "jobs").await), (messages, jobs));
    assert_eq!(count(&app, "deliveries").await, 0);
    assert_eq!(mock.request_count(), 0);
    app.stop().await;
});

both_backends!(without_a_webhook_url_the_signature_covers_the_request_url, |backend| async move {
    let mock = MockLlm::start().await;
    mock.set_default(MockReply::text("direct"));
    let tw = FakeTwilio::start(SID, AUTH_TOKEN, NUMBER).await;
    // The standard names this time: the bot is seeded, and SMS is configured.
    let app = TestApp::builder(backend)
        .with_worker()
        .with_bridge()
        .env("OPENAI_API_KEY", "sk-test")
        .env("OPENAI_BASE_URL", &format!("{}/v1", mock.url))
        .env("TWILIO_API_URL", &tw.url)
        .env("TWILIO_AUTH_TOKEN", AUTH_TOKEN)
        .env("TWILIO_ACCOUNT_SID", SID)
        .env("TWILIO_PHONE_NUMBER", NUMBER)
        .start()
        .await;
    let (_, connectors) = app.get("/api/connectors").await;
    let sms = connectors.as_array().unwrap().iter().find(|c| c["platform"] == "sms").unwrap();
    assert_eq!(
        *sms,
        json!({"platform": "sms", "configured": true,
            "vars": ["TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_PHONE_NUMBER"]})
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    let seeded = loop {
        let (_, bots) = app.get("/api/bots").await;
        if let Some(b) = bots.as_array().unwrap().iter().find(|b| b["platform"] == "sms") {
            break b.clone();
        }
        assert!(Instant::now() < deadline, "no SMS bot was seeded");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(seeded["token"], "TWILIO_AUTH_TOKEN");
    app.wait_bot_status(seeded["id"].as_i64().unwrap(), "running", Duration::from_secs(8)).await;
    // A seeded bot has no agent of its own: bind the sender to one.
    let agent = app.helper_agent().await;
    let id = seeded["id"].as_i64().unwrap();
    let (status, body) = app.patch(&format!("/api/bots/{id}"), json!({"defaultAgentId": agent})).await;
    assert_eq!(status, 200, "{body}");
    let url = app.url("/webhook/sms");
    let answer = tw.deliver(&url, &url, &tw.sms_params(USER, "straight in")).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    let sent = tw.wait_sent(USER, 1, REPLY_WITHIN).await;
    assert_eq!(sent[0].body, "direct");

    // The path is the connector's: no user webhook can take it.
    let (status, body) = app.post("/api/webhooks", json!({"name": "SMS", "agentId": agent})).await;
    assert_eq!(status, 409, "{body}");
    assert!(body["error"].as_str().unwrap().contains("reserved"), "{body}");
    // An SMS bot naming unset variables says which, never a value.
    let (status, body) = app
        .post(
            "/api/bots",
            json!({"name": "sms2", "platform": "sms", "token": "TWILIO_AUTH_TOKEN_2",
            "settings": {"phoneNumber": "TWILIO_PHONE_NUMBER_2"}}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let b = app.wait_bot_status(body["id"].as_i64().unwrap(), "error", Duration::from_secs(8)).await;
    assert!(b["lastError"].as_str().unwrap().contains("TWILIO_AUTH_TOKEN_2"), "{b}");
    app.stop().await;
});

both_backends!(a_429_a_500_and_a_cut_connection_on_send_are_retried_and_delivered_once, |backend| async move {
    let mock = MockLlm::start().await;
    mock.set_default(MockReply::text("patience"));
    let tw = FakeTwilio::start(SID, AUTH_TOKEN, NUMBER).await;
    tw.fail_next(&[Failure::RateLimited { retry_after_secs: 2 }, Failure::ServerError, Failure::Disconnect]);
    let app = app(backend, &mock, &tw, true).await;
    create_bot(&app, app.helper_agent().await).await;
    assert_eq!(text(&app, &tw, &tw.sms_params(USER, "hello?")).await.status, 200);
    let sent = tw.wait_sent(USER, 1, REPLY_WITHIN).await;
    let failed = tw.failed_at();
    assert_eq!(failed.len(), 3, "{failed:?}");
    let waited = failed[1].1.duration_since(failed[0].1);
    assert!(waited >= Duration::from_millis(1950), "Retry-After 2 s honoured, waited {waited:?}");
    assert!(sent[0].at > failed[2].1);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(tw.sent_to(USER).len(), 1, "delivered once");
    app.wait_sent_deliveries(1).await;
    let (_, d) = app.get("/api/deliveries?status=sent").await;
    assert_eq!(d[0]["attempts"], 4, "{d}");
    let last = d[0]["lastError"].as_str().unwrap();
    assert!(last.starts_with("Twilio sending a message") && !last.contains(AUTH_TOKEN), "the cut connection: {last}");
    assert!(d[0]["platformMessageId"].as_str().unwrap().starts_with("SM"), "{d}");
    app.stop().await;
});

both_backends!(a_restart_of_the_bridge_answers_nothing_twice, |backend| async move {
    let mock = MockLlm::start().await;
    mock.set_default(MockReply::text("once"));
    let tw = FakeTwilio::start(SID, AUTH_TOKEN, NUMBER).await;
    let app = app(backend, &mock, &tw, false).await;
    let id = create_bot(&app, app.helper_agent().await).await;
    let first = app.spawn_bridge().await;
    let params = tw.sms_params(USER, "first");
    assert_eq!(text(&app, &tw, &params).await.status, 200);
    tw.wait_sent(USER, 1, REPLY_WITHIN).await;
    first.stop().await;
    assert_eq!(app.bot(id).await["status"], "stopped");

    // No bridge runs: the gateway still takes texts in, and Twilio redelivers the first.
    assert_eq!(text(&app, &tw, &tw.sms_params(USER, "second")).await.status, 200);
    assert_eq!(text(&app, &tw, &params).await.status, 200);
    let again = app.spawn_bridge().await;
    tw.wait_sent(USER, 2, REPLY_WITHIN).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(tw.sent_to(USER).len(), 2, "the first reply was not sent again");
    assert_eq!(mock.request_count(), 2);
    again.stop().await;
    app.stop().await;
});

both_backends!(a_long_reply_is_split_at_1600_characters_in_order, |backend| async move {
    let mock = MockLlm::start().await;
    let words: Vec<String> = (0..600).map(|i| format!("w{i:04}")).collect();
    let long = words.join(" ");
    assert!(long.chars().count() > 2 * 1600 && long.chars().count() < 3 * 1600);
    mock.set_default(MockReply::text(&long));
    let tw = FakeTwilio::start(SID, AUTH_TOKEN, NUMBER).await;
    let app = app(backend, &mock, &tw, true).await;
    create_bot(&app, app.helper_agent().await).await;
    assert_eq!(text(&app, &tw, &tw.sms_params(USER, "tell me everything")).await.status, 200);
    let sent = tw.wait_sent(USER, 3, REPLY_WITHIN).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(tw.sent_to(USER).len(), 3, "three chunks, no more");
    assert!(sent.iter().all(|s| s.body.chars().count() <= 1600));
    let joined: Vec<&str> = sent.iter().map(|s| s.body.as_str()).collect();
    assert_eq!(joined.join(" "), long, "in order, nothing lost");
    app.stop().await;
});
