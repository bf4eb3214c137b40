//! The chat intake (`arvis_shared::intake`) on both databases: one set of
//! checks for every entry point, a platform message taken in once (also under
//! concurrent redeliveries), and a watch that yields the run's typed events —
//! from the bus, or from the job row when no event comes.

#![expect(clippy::unwrap_used, clippy::panic)] // a test fails by panicking

use std::time::Duration;

use arvis_shared::db::queue::ChatRequest;
use arvis_shared::intake::{Incoming, IntakeError, RunEvent};
use arvis_shared::routing::RouteError;
use arvis_testkit::{Backend, MockLlm, MockReply, TestApp, TestDb, both_backends};
use serde_json::json;

fn telegram(content: &str, update: Option<&str>) -> Incoming {
    Incoming {
        platform: "telegram".into(),
        channel_id: "chat-42".into(),
        user_id: Some("u-7".into()),
        user_name: Some("Ada".into()),
        content: content.into(),
        is_dm: true,
        external_id: update.map(str::to_string),
        ..Default::default()
    }
}

async fn openai_app(backend: Backend, mock: &MockLlm) -> TestApp {
    TestApp::builder(backend)
        .with_worker()
        .env("OPENAI_API_KEY", "sk-test")
        .env("OPENAI_BASE_URL", &format!("{}/v1", mock.url))
        .start()
        .await
}

async fn create_agent(app: &TestApp, slug: &str) -> i64 {
    let body = json!({"slug": slug, "name": slug, "model": "openai/gpt-4o-mini"});
    let (status, body) = app.post("/api/agents", body).await;
    assert_eq!(status, 201, "{body}");
    body["id"].as_i64().unwrap()
}

async fn count(db: &TestDb, table: &'static str) -> i64 {
    let sql = match table {
        "messages" => "SELECT COUNT(*) FROM messages",
        "jobs" => "SELECT COUNT(*) FROM jobs",
        other => panic!("no count for {other}"),
    };
    sqlx::query_scalar::<_, i64>(sql).fetch_one(&db.pool().await).await.unwrap()
}

both_backends!(a_platform_message_is_taken_in_once, |backend| async move {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let agent = arvis_shared::bootstrap::ensure_conductor(&store, "openai/gpt-4o-mini").await.unwrap().id;
    let request = |channel: &str, external: Option<&str>| ChatRequest {
        agent_id: agent,
        platform: "telegram".into(),
        channel_id: channel.into(),
        user_id: None,
        user_name: None,
        content: "hello".into(),
        priority: 5,
        max_attempts: 3,
        external_id: external.map(str::to_string),
        api: None,
    };
    let first = store.enqueue_chat(&request("chat-1", Some("update-1"))).await.unwrap();
    assert!(!first.duplicate);
    let again = store.enqueue_chat(&request("chat-1", Some("update-1"))).await.unwrap();
    assert!(again.duplicate);
    assert_eq!(
        (again.message_id, again.job_id, &again.conversation_id),
        (first.message_id, first.job_id, &first.conversation_id)
    );
    assert_eq!((count(&db, "messages").await, count(&db, "jobs").await), (1, 1), "the redelivery wrote nothing");

    // The same id in another channel is another message; no id is never a duplicate.
    assert!(!store.enqueue_chat(&request("chat-2", Some("update-1"))).await.unwrap().duplicate);
    assert!(!store.enqueue_chat(&request("chat-1", None)).await.unwrap().duplicate);
    assert!(!store.enqueue_chat(&request("chat-1", None)).await.unwrap().duplicate);
    assert_eq!((count(&db, "messages").await, count(&db, "jobs").await), (4, 4));
});

both_backends!(concurrent_redeliveries_store_one_message, |backend| async move {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let agent = arvis_shared::bootstrap::ensure_conductor(&store, "openai/gpt-4o-mini").await.unwrap().id;
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .enqueue_chat(&ChatRequest {
                    agent_id: agent,
                    platform: "discord".into(),
                    channel_id: "c".into(),
                    user_id: None,
                    user_name: None,
                    content: "same message".into(),
                    priority: 5,
                    max_attempts: 3,
                    external_id: Some("1234567890123456789".into()),
                    api: None,
                })
                .await
                .unwrap()
        }));
    }
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.unwrap());
    }
    assert_eq!(results.iter().filter(|r| !r.duplicate).count(), 1, "{results:?}");
    assert!(results.iter().all(|r| r.job_id == results[0].job_id), "{results:?}");
    assert_eq!((count(&db, "messages").await, count(&db, "jobs").await), (1, 1));
});

both_backends!(the_watch_yields_typing_deltas_and_the_reply, |backend| async move {
    let mock = MockLlm::start().await;
    let app = openai_app(backend, &mock).await;
    let intake = app.deps.intake();
    let (accepted, mut watch) = intake.submit_and_watch(telegram("hi there", Some("u-1"))).await.unwrap();
    assert!(!accepted.duplicate);
    let mut events = Vec::new();
    while let Some(e) = tokio::time::timeout(Duration::from_secs(10), watch.next()).await.unwrap() {
        events.push(e);
    }
    assert_eq!(events[0], RunEvent::Typing, "{events:?}");
    let deltas: String = events
        .iter()
        .filter_map(|e| match e {
            RunEvent::Delta(d) => Some(d.as_str()),
            _ => None,
        })
        .collect();
    let Some(RunEvent::Reply { content, message_id }) = events.last() else { panic!("{events:?}") };
    assert_eq!((content.as_str(), deltas.as_str()), ("Hello there friend", "Hello there friend"));
    assert!(message_id.is_some());

    // Redelivered: nothing new is enqueued, and watching the first job tells its outcome
    // from the job row (its events are long gone).
    let (again, watch) = intake.submit_and_watch(telegram("hi there", Some("u-1"))).await.unwrap();
    assert!(again.duplicate);
    assert_eq!(again.job_id, accepted.job_id);
    let outcome = tokio::time::timeout(Duration::from_secs(5), watch.outcome()).await.unwrap();
    assert_eq!(outcome.as_deref(), Ok("Hello there friend"));
    assert_eq!(mock.request_count(), 1, "one model call for two deliveries");
    app.stop().await;
});

both_backends!(a_failed_run_reaches_the_watcher_with_its_reason_and_cause, |backend| async move {
    let mock = MockLlm::start().await;
    mock.set_default(MockReply::Status { status: 401, retry_after: None, message: "invalid key sk-test".into() });
    let app = openai_app(backend, &mock).await;
    let (_, watch) = app.deps.intake().submit_and_watch(telegram("hi", None)).await.unwrap();
    let failure = tokio::time::timeout(Duration::from_secs(10), watch.outcome()).await.unwrap().unwrap_err();
    assert_eq!(failure.reason, "the model provider refused the request");
    let cause = failure.cause.unwrap();
    assert!(cause.contains("401") && !cause.contains("sk-test"), "{cause}");
    app.stop().await;
});

both_backends!(every_entry_point_gets_the_same_checks, |backend| async move {
    let app = TestApp::spawn(backend).await;
    let intake = app.deps.intake();
    let refused = |r: Result<_, IntakeError>| match r {
        Err(IntakeError::Invalid(e)) => e.to_string(),
        other => panic!("{other:?}"),
    };
    assert_eq!(refused(intake.submit(telegram("  ", None)).await), "the message is empty");
    let long = refused(intake.submit(telegram(&"x".repeat(100_001), None)).await);
    assert!(long.contains("100000"), "{long}");
    assert!(
        refused(intake.submit(Incoming { channel_id: "a\u{7}".into(), ..telegram("hi", None) }).await)
            .contains("channelId")
    );

    // REST chat and WebSocket answer with those texts, and nothing was stored.
    let agent = create_agent(&app, "sleepy").await;
    let (status, body) = app.post(&format!("/api/agents/{agent}/chat"), json!({"message": " \n "})).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("the message is empty")));
    let (status, _) = app.post(&format!("/api/agents/{agent}/chat"), json!({"message": "x".repeat(100_001)})).await;
    assert!(status == 400 || status == 413, "{status}");

    // A paused agent takes no messages, from any door: 409 over REST.
    let (status, _) = app.patch(&format!("/api/agents/{agent}"), json!({"isActive": false})).await;
    assert_eq!(status, 200);
    let (status, body) = app.post(&format!("/api/agents/{agent}/chat"), json!({"message": "hi"})).await;
    assert_eq!(status, 409, "{body}");
    assert!(body["error"].as_str().unwrap().contains("paused"), "{body}");
    let routed = intake.submit(Incoming { agent_id: Some(agent), ..telegram("hi", None) }).await;
    assert!(matches!(routed, Err(IntakeError::Route(RouteError::InactiveAgent { .. }))), "{routed:?}");
    let (status, _) = app.post("/api/agents/999999/chat", json!({"message": "hi"})).await;
    assert_eq!(status, 404);
    assert_eq!(count(&app.db, "messages").await, 0);
    app.stop().await;
});
