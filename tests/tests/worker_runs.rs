//! The worker end to end: gateway chat → queue → worker → loopback provider →
//! stored reply and reply events, on both databases; failover, retries,
//! concurrency, crashes and bus outages.

#![expect(clippy::unwrap_used)] // a test fails by panicking

use std::time::{Duration, Instant};

use arvis_shared::bus::events::{JobReady, ReplyEvent, ReplyKind};

use arvis_shared::db::Store;
use arvis_shared::db::queue::ChatRequest;
use arvis_testkit::mock_llm::{INPUT_TOKENS, OUTPUT_TOKENS};
use arvis_testkit::{Backend, MockLlm, MockReply, TestApp, both_backends, events_until_final};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

async fn create_agent(app: &TestApp, slug: &str, model: &str) -> i64 {
    let (status, body) = app
        .post("/api/agents", json!({"slug": slug, "name": slug, "model": model, "systemPrompt": "You are terse."}))
        .await;
    assert_eq!(status, 201, "{body}");
    body["id"].as_i64().unwrap()
}

fn chat_request(agent_id: i64, channel: &str, text: &str) -> ChatRequest {
    ChatRequest {
        agent_id,
        platform: "web".into(),
        channel_id: channel.into(),
        user_id: None,
        user_name: None,
        content: text.into(),
        priority: 5,
        max_attempts: 3,
        external_id: None,
        api: None,
    }
}

async fn wait_status(store: &Store, job_id: i64, status: &str, within: Duration) -> arvis_shared::domain::job::Job {
    let deadline = Instant::now() + within;
    loop {
        let job = store.job(job_id).await.unwrap().unwrap();
        if job.status == status {
            return job;
        }
        assert!(Instant::now() < deadline, "job {job_id} is {} (error {:?}), not {status}", job.status, job.error);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn assistant_count(store: &Store, conversation_id: &str) -> usize {
    store.conversation_messages(conversation_id).await.unwrap().iter().filter(|m| m.role == "assistant").count()
}

both_backends!(chat_through_openai_streams_deltas_and_records_usage, |backend: Backend| async move {
    let mock = MockLlm::start().await;
    let app = TestApp::builder(backend)
        .with_worker()
        .env("OPENAI_API_KEY", "sk-test")
        .env("OPENAI_BASE_URL", &format!("{}/v1", mock.url))
        .start()
        .await;
    let agent = create_agent(&app, "helper", "openai/gpt-4o-mini").await;
    let mut sub = app.subscribe_dashboard(agent).await;
    let (status, body) = app.post(&format!("/api/agents/{agent}/chat"), json!({"message": "hi"})).await;
    assert_eq!((status, body["content"].as_str()), (200, Some("Hello there friend")), "{body}");

    let events = events_until_final(&mut sub).await;
    assert_eq!(events[0].kind, ReplyKind::Typing);
    let deltas: String = events.iter().filter(|e| e.kind == ReplyKind::Delta).map(|e| e.content.as_str()).collect();
    let last = events.last().unwrap();
    assert_eq!(last.kind, ReplyKind::Message);
    assert_eq!(deltas, last.content, "the deltas add up to the final message");
    assert!(events.iter().filter(|e| e.kind == ReplyKind::Delta).count() >= 3);
    assert!(last.message_id.is_some());

    let req = &mock.requests()[0];
    assert_eq!(req.path, "/v1/chat/completions");
    assert_eq!(req.header("authorization"), Some("Bearer sk-test"));
    assert_eq!(req.body["model"], "gpt-4o-mini");
    assert_eq!(req.body["stream"], true);
    assert_eq!(req.body["stream_options"]["include_usage"], true);
    // The system prompt is the agent layout (identity, rules, the agent's own prompt, …).
    let messages = req.body["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[0]["role"], "system");
    let system = messages[0]["content"].as_str().unwrap();
    assert!(system.starts_with("You are helper, an agent on Arvis."), "{system}");
    assert!(system.contains("\n\nYou are terse.\n"), "{system}");
    assert_eq!(messages[1], json!({"role": "user", "content": "hi"}));

    // Usage: one row for the call, with tokens, price and duration.
    let usage = app.deps.store.usage_for_job(last.job_id).await.unwrap();
    assert_eq!(usage.len(), 1);
    let u = &usage[0];
    assert_eq!((u.provider.as_str(), u.model.as_str()), ("openai", "gpt-4o-mini"));
    assert_eq!((u.input_tokens, u.output_tokens), (INPUT_TOKENS, OUTPUT_TOKENS));
    let expected = (INPUT_TOKENS as f64 * 0.15 + OUTPUT_TOKENS as f64 * 0.6) / 1e6;
    assert!((u.cost_usd.unwrap() - expected).abs() < 1e-12, "{:?}", u.cost_usd);
    assert_eq!(u.agent_id, Some(agent));

    // The second message carries the first exchange as history.
    mock.push(MockReply::PlainJson("Second answer".into()));
    let (status, body) = app.post(&format!("/api/agents/{agent}/chat"), json!({"message": "again"})).await;
    assert_eq!((status, body["content"].as_str()), (200, Some("Second answer")), "{body}");
    let req = &mock.requests()[1];
    let roles: Vec<(&str, &str)> = req.body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["role"].as_str().unwrap(), m["content"].as_str().unwrap()))
        .collect();
    assert!(roles[0].0 == "system" && roles[0].1.contains("You are terse."));
    assert_eq!(roles[1..], [("user", "hi"), ("assistant", "Hello there friend"), ("user", "again")]);
    let accounts = app.deps.store.account_rows().await.unwrap();
    assert_eq!(accounts[0].total_messages, 2);
    app.stop().await;
});

both_backends!(anthropic_and_gemini_speak_their_wire_formats, |backend: Backend| async move {
    let mock = MockLlm::start().await;
    let app = TestApp::builder(backend)
        .with_worker()
        .env("ANTHROPIC_API_KEY", "sk-ant-test")
        .env("ANTHROPIC_BASE_URL", &mock.url)
        .env("GOOGLE_API_KEY", "goog-test")
        .env("GOOGLE_BASE_URL", &mock.url)
        .start()
        .await;
    let claude = create_agent(&app, "claude", "anthropic/claude-haiku-4-5-20251001").await;
    let gemini = create_agent(&app, "gemini", "google/gemini-2.0-flash").await;

    let mut sub = app.subscribe_dashboard(claude).await;
    let (status, body) = app.post(&format!("/api/agents/{claude}/chat"), json!({"message": "hi claude"})).await;
    assert_eq!((status, body["content"].as_str()), (200, Some("Hello there friend")), "{body}");
    let events = events_until_final(&mut sub).await;
    let deltas: String = events.iter().filter(|e| e.kind == ReplyKind::Delta).map(|e| e.content.as_str()).collect();
    assert_eq!(deltas, "Hello there friend");
    let req = &mock.requests()[0];
    assert_eq!(req.path, "/v1/messages");
    assert_eq!(req.header("x-api-key"), Some("sk-ant-test"));
    assert_eq!(req.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(req.body["model"], "claude-haiku-4-5-20251001");
    // The system prompt is one text block marked for prompt caching.
    assert_eq!(req.body["system"][0]["cache_control"], json!({"type": "ephemeral"}));
    let system = req.body["system"][0]["text"].as_str().unwrap();
    assert!(system.starts_with("You are claude, an agent on Arvis.") && system.contains("You are terse."), "{system}");
    assert_eq!(req.body["stream"], true);
    assert_eq!(req.body["messages"], json!([{"role": "user", "content": "hi claude"}]));
    let usage = app.deps.store.usage_for_job(events.last().unwrap().job_id).await.unwrap();
    assert_eq!((usage[0].input_tokens, usage[0].output_tokens), (INPUT_TOKENS, OUTPUT_TOKENS));
    assert!(
        (usage[0].cost_usd.unwrap() - (INPUT_TOKENS as f64 * 1.0 + OUTPUT_TOKENS as f64 * 5.0) / 1e6).abs() < 1e-12
    );

    let (status, body) = app.post(&format!("/api/agents/{gemini}/chat"), json!({"message": "hi gemini"})).await;
    assert_eq!((status, body["content"].as_str()), (200, Some("Hello there friend")), "{body}");
    let req = &mock.requests()[1];
    assert_eq!(req.path, "/v1beta/models/gemini-2.0-flash:streamGenerateContent");
    assert_eq!(req.query.as_deref(), Some("alt=sse"), "the key never goes into the URL");
    assert_eq!(req.header("x-goog-api-key"), Some("goog-test"));
    let system = req.body["systemInstruction"]["parts"][0]["text"].as_str().unwrap();
    assert!(system.starts_with("You are gemini, an agent on Arvis.") && system.contains("You are terse."), "{system}");
    assert_eq!(req.body["contents"], json!([{"role": "user", "parts": [{"text": "hi gemini"}]}]));
    app.stop().await;
});

// The tool loop: a tool call runs the built-in tool and goes back to the model with its result.
both_backends!(tool_calls_loop_back_to_the_model, |backend: Backend| async move {
    let mock = MockLlm::start().await;
    let app = TestApp::builder(backend)
        .with_worker()
        .env("OPENAI_API_KEY", "sk-test")
        .env("OPENAI_BASE_URL", &format!("{}/v1", mock.url))
        .start()
        .await;
    let agent = create_agent(&app, "tooly", "openai/gpt-4o-mini").await;
    let (status, _) = app.patch(&format!("/api/agents/{agent}"), json!({"allowedTools": ["calculate"]})).await;
    assert_eq!(status, 200);
    mock.push(MockReply::tool("calculate", json!({"expression": "6*(3+4)"})));
    mock.push(MockReply::text("It is 42"));
    let (status, body) = app.post(&format!("/api/agents/{agent}/chat"), json!({"message": "6*(3+4)?"})).await;
    assert_eq!((status, body["content"].as_str()), (200, Some("It is 42")), "{body}");
    let reqs = mock.requests();
    assert_eq!(reqs.len(), 2);
    let offered: Vec<&str> =
        reqs[0].body["tools"].as_array().unwrap().iter().map(|t| t["function"]["name"].as_str().unwrap()).collect();
    assert_eq!(offered, ["calculate"], "only the agent's allowed tools are offered");
    let msgs = reqs[1].body["messages"].as_array().unwrap().clone();
    let call = &msgs[msgs.len() - 2];
    assert_eq!(call["role"], "assistant");
    assert_eq!(call["tool_calls"][0]["id"], "call_mock");
    assert_eq!(call["tool_calls"][0]["function"]["name"], "calculate");
    let args: Value = serde_json::from_str(call["tool_calls"][0]["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(args, json!({"expression": "6*(3+4)"}));
    let result = &msgs[msgs.len() - 1];
    assert_eq!(result["role"], "tool");
    assert_eq!(result["tool_call_id"], "call_mock");
    assert_eq!(result["content"], "42");
    // A tool the agent may not use is refused, as text the model can read.
    mock.push(MockReply::tool("get_time", json!({})));
    mock.push(MockReply::text("fine"));
    let (status, _) = app.post(&format!("/api/agents/{agent}/chat"), json!({"message": "time?"})).await;
    assert_eq!(status, 200);
    let msgs = mock.requests()[3].body["messages"].as_array().unwrap().clone();
    assert!(msgs[msgs.len() - 1]["content"].as_str().unwrap().starts_with("Error: tool get_time is not enabled"));
    // At most five rounds: a model that keeps calling tools is cut off.
    mock.set_default(MockReply::tool("loop", json!({})));
    let before = mock.request_count();
    let (status, _) = app.post(&format!("/api/agents/{agent}/chat"), json!({"message": "loop"})).await;
    assert_eq!(mock.request_count() - before, 5, "at most 5 rounds, and no retry");
    assert_eq!(status, 502);
    app.stop().await;
});

both_backends!(a_rate_limited_account_fails_over_to_the_next, |backend: Backend| async move {
    let first = MockLlm::start().await;
    let second = MockLlm::start().await;
    first.push(MockReply::rate_limited("120"));
    let app = TestApp::builder(backend)
        .with_worker()
        .env("OPENAI_API_KEY", "sk-one")
        .env("OPENAI_BASE_URL", &format!("{}/v1", first.url))
        .env("OPENAI_API_KEY_1", "sk-two")
        .env("OPENAI_BASE_URL_1", &format!("{}/v1", second.url))
        .start()
        .await;
    let agent = create_agent(&app, "failover", "openai/gpt-4o-mini").await;
    let before = arvis_shared::clock::now_ms();
    let (status, body) = app.post(&format!("/api/agents/{agent}/chat"), json!({"message": "hi"})).await;
    assert_eq!((status, body["content"].as_str()), (200, Some("Hello there friend")), "{body}");
    assert_eq!((first.request_count(), second.request_count()), (1, 1));
    assert_eq!(second.requests()[0].header("authorization"), Some("Bearer sk-two"));
    let accounts = app.deps.store.account_rows().await.unwrap();
    let limited = accounts.iter().find(|a| a.name == "openai-api").unwrap();
    let until = limited.rate_limited_until.expect("rate_limited_until set");
    assert!(until >= before + 119_000 && until <= arvis_shared::clock::now_ms() + 121_000, "{until}");
    assert_eq!(limited.retry_count, 1);
    let ok = accounts.iter().find(|a| a.name == "openai-api-2").unwrap();
    assert_eq!((ok.total_messages, ok.rate_limited_until), (1, None));
    // The limited account is skipped while it rests.
    let (status, _) = app.post(&format!("/api/agents/{agent}/chat"), json!({"message": "again"})).await;
    assert_eq!(status, 200);
    assert_eq!((first.request_count(), second.request_count()), (1, 2));
    // An agent of a provider with no account falls to another provider with
    // that account's own model: a Claude model name never goes to OpenAI.
    let claude = create_agent(&app, "claude", "anthropic/claude-sonnet-4-5").await;
    let (status, body) = app.post(&format!("/api/agents/{claude}/chat"), json!({"message": "hi"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(second.requests()[2].body["model"], "gpt-6-luna", "the OpenAI account's default model");
    app.stop().await;
});

both_backends!(retryable_errors_back_off_then_fail_with_an_error_event, |backend: Backend| async move {
    let mock = MockLlm::start().await;
    mock.set_default(MockReply::status(500));
    let app = TestApp::builder(backend)
        .with_worker()
        .env("OPENAI_API_KEY", "sk-test")
        .env("OPENAI_BASE_URL", &format!("{}/v1", mock.url))
        .env("WORKER_RETRY_BASE_MS", "200")
        .start()
        .await;
    let agent = create_agent(&app, "flaky", "openai/gpt-4o-mini").await;
    let mut sub = app.subscribe_dashboard(agent).await;
    let (status, body) = app.post(&format!("/api/agents/{agent}/chat"), json!({"message": "hi"})).await;
    assert_eq!(status, 502, "{body}");
    let error = body["error"].as_str().unwrap();
    assert!(error.starts_with("the agent run failed: the model provider is unavailable"), "{error}");
    assert!(!error.contains("500") && !error.contains("sk-test"), "no internals: {error}");
    let events = events_until_final(&mut sub).await;
    let last = events.last().unwrap();
    assert_eq!(last.kind, ReplyKind::Error);
    let job = app.deps.store.job(last.job_id).await.unwrap().unwrap();
    assert_eq!((job.status.as_str(), job.attempts), ("failed", 3));
    assert!(job.error.unwrap().contains("HTTP 500"));
    let at: Vec<Instant> = mock.requests().iter().map(|r| r.at).collect();
    assert_eq!(at.len(), 3);
    assert!(at[1] - at[0] >= Duration::from_millis(140), "{:?}", at[1] - at[0]);
    assert!(at[2] - at[1] >= Duration::from_millis(290), "{:?}", at[2] - at[1]);

    // A 400-class refusal is permanent: one call, failed at once. The key the
    // provider echoes back is scrubbed from the stored error.
    mock.set_default(MockReply::Status { status: 401, retry_after: None, message: "invalid key sk-test".into() });
    let before = mock.request_count();
    let (status, body) = app.post(&format!("/api/agents/{agent}/chat"), json!({"message": "bad"})).await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["error"], "the agent run failed: the model provider refused the request");
    assert_eq!(mock.request_count() - before, 1);
    let events = events_until_final(&mut sub).await;
    let last = events.last().unwrap();
    assert_eq!(last.kind, ReplyKind::Error);
    assert!(!last.content.contains("sk-test"));
    let job = app.deps.store.job(last.job_id).await.unwrap().unwrap();
    assert_eq!((job.status.as_str(), job.attempts), ("failed", 1));
    let error = job.error.unwrap();
    assert!(error.contains("HTTP 401") && error.contains("[REDACTED]") && !error.contains("sk-test"), "{error}");
    app.stop().await;
});

both_backends!(two_workers_complete_200_jobs_exactly_once, |backend: Backend| async move {
    let mock = MockLlm::start().await;
    mock.set_default(MockReply::text("done"));
    let app = TestApp::builder(backend)
        .with_worker()
        .env("OPENAI_API_KEY", "sk-test")
        .env("OPENAI_BASE_URL", &format!("{}/v1", mock.url))
        .start()
        .await;
    let second = CancellationToken::new();
    let other = tokio::spawn(arvis_worker::run(app.deps.clone(), second.clone()));
    let agent = create_agent(&app, "busy", "openai/gpt-4o-mini").await;
    let store = &app.deps.store;
    let mut enqueued = Vec::new();
    for i in 0..200 {
        // 100 conversations with two messages each: replies in order per conversation.
        let e = store.enqueue_chat(&chat_request(agent, &format!("c{}", i % 100), &format!("m{i}"))).await.unwrap();
        app.deps.bus.signal(&JobReady { v: 1, job_id: e.job_id, priority: 5 }).await;
        enqueued.push(e);
    }
    for e in &enqueued {
        wait_status(store, e.job_id, "completed", Duration::from_secs(60)).await;
    }
    assert_eq!(mock.request_count(), 200, "every job called the model exactly once");
    let mut replies = 0;
    for e in enqueued.iter().take(100) {
        let msgs = store.conversation_messages(&e.conversation_id).await.unwrap();
        let roles: Vec<&str> = msgs.iter().map(|m| m.role.as_str()).collect();
        assert_eq!(roles.iter().filter(|r| **r == "user").count(), 2);
        replies += roles.iter().filter(|r| **r == "assistant").count();
    }
    assert_eq!(replies, 200);
    let mut owners = std::collections::HashSet::new();
    for e in &enqueued {
        owners.insert(store.job(e.job_id).await.unwrap().unwrap().attempts);
    }
    assert_eq!(owners, [1].into(), "no job ran twice");
    second.cancel();
    other.await.unwrap().unwrap();
    app.stop().await;
});

both_backends!(a_killed_worker_s_job_completes_on_another, |backend: Backend| async move {
    let mock = MockLlm::start().await;
    mock.push(MockReply::slow(Duration::from_secs(5), MockReply::text("too late")));
    mock.set_default(MockReply::text("rescued"));
    let app = TestApp::builder(backend)
        .env("OPENAI_API_KEY", "sk-test")
        .env("OPENAI_BASE_URL", &format!("{}/v1", mock.url))
        .env("WORKER_LEASE_MS", "1000")
        .start()
        .await;
    let agent = create_agent(&app, "crashy", "openai/gpt-4o-mini").await;
    let store = &app.deps.store;
    let doomed = tokio::spawn(arvis_worker::run(app.deps.clone(), CancellationToken::new()));
    let e = store.enqueue_chat(&chat_request(agent, "crash", "hello")).await.unwrap();
    let running = wait_status(store, e.job_id, "running", Duration::from_secs(10)).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while mock.request_count() == 0 {
        assert!(Instant::now() < deadline, "the first worker never called the model");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    doomed.abort(); // a crash: no drain, no release
    let _ = doomed.await;
    let stop = CancellationToken::new();
    let rescuer = tokio::spawn(arvis_worker::run(app.deps.clone(), stop.clone()));
    let done = wait_status(store, e.job_id, "completed", Duration::from_secs(15)).await;
    assert_eq!(done.result.as_deref(), Some("rescued"));
    assert_eq!(done.attempts, 2);
    assert_ne!(running.locked_by, None);
    assert_eq!(assistant_count(store, &e.conversation_id).await, 1);
    stop.cancel();
    rescuer.await.unwrap().unwrap();
    app.stop().await;
});

both_backends!(jobs_complete_by_polling_while_the_bus_is_down, |backend: Backend| async move {
    let mock = MockLlm::start().await;
    let mut app = TestApp::builder(backend)
        .with_nats()
        .with_worker()
        .env("OPENAI_API_KEY", "sk-test")
        .env("OPENAI_BASE_URL", &format!("{}/v1", mock.url))
        .start()
        .await;
    let agent = create_agent(&app, "offline", "openai/gpt-4o-mini").await;
    app.nats.as_mut().unwrap().kill();
    let store = app.deps.store.clone();
    let e = store.enqueue_chat(&chat_request(agent, "no-bus", "anyone there?")).await.unwrap();
    let done = wait_status(&store, e.job_id, "completed", Duration::from_secs(20)).await;
    assert_eq!(done.result.as_deref(), Some("Hello there friend"));
    assert_eq!(assistant_count(&store, &e.conversation_id).await, 1);
    app.stop().await;
});

both_backends!(chat_endpoint_validates_and_times_out, |backend: Backend| async move {
    let mock = MockLlm::start().await;
    mock.push(MockReply::slow(Duration::from_secs(3), MockReply::text("late reply")));
    let app = TestApp::builder(backend)
        .with_worker()
        .env("OPENAI_API_KEY", "sk-test")
        .env("OPENAI_BASE_URL", &format!("{}/v1", mock.url))
        .env("CHAT_TIMEOUT_SECS", "1")
        .start()
        .await;
    let agent = create_agent(&app, "slowpoke", "openai/gpt-4o-mini").await;
    let (status, body) = app.post("/api/agents/999999/chat", json!({"message": "hi"})).await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = app.post(&format!("/api/agents/{agent}/chat"), json!({"message": "  "})).await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = app.post(&format!("/api/agents/{agent}/chat"), json!({"message": "x".repeat(100_001)})).await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = app.post(&format!("/api/agents/{agent}/chat"), json!({})).await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = app.post(&format!("/api/agents/{agent}/chat"), json!({"message": "hi"})).await;
    assert_eq!(status, 504, "{body}");
    assert!(body["error"].as_str().unwrap().contains("did not answer"));
    // The run goes on and its reply lands in the history.
    let probe = chat_request(agent, &format!("dashboard-agent-{agent}"), "probe");
    let conv = app.deps.store.enqueue_chat(&ChatRequest { platform: "dashboard".into(), ..probe }).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let msgs = app.deps.store.conversation_messages(&conv.conversation_id).await.unwrap();
        if msgs.iter().any(|m| m.role == "assistant" && m.content == "late reply") {
            break;
        }
        assert!(Instant::now() < deadline, "the late reply never landed: {msgs:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    app.stop().await;
});

/// The providers' request bodies carry tools in each wire format.
#[tokio::test]
async fn tools_are_declared_in_each_wire_format() {
    use arvis_worker::llm::{ChatMessage, LlmRequest, ToolSpec};
    use arvis_worker::providers::{Endpoint, call};
    arvis_testkit::init_test_logging();
    let mock = MockLlm::start().await;
    let client = arvis_worker::http_client().unwrap();
    let key = secrecy::SecretString::from("k-123".to_string());
    let schema = json!({"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"], "additionalProperties": false});
    let req = LlmRequest {
        model: "m".into(),
        system: "sys".into(),
        messages: vec![ChatMessage::user("hi")],
        tools: vec![ToolSpec { name: "web_search".into(), description: "search".into(), parameters: schema.clone() }],
        max_tokens: 100,
        temperature: 0.5,
        ..Default::default()
    };
    let openai_base = format!("{}/v1", mock.url);
    for (provider, base) in
        [("openai", openai_base.as_str()), ("anthropic", mock.url.as_str()), ("google", mock.url.as_str())]
    {
        mock.push(MockReply::tool("web_search", json!({"q": "rust"})));
        let endpoint = Endpoint {
            provider,
            base_url: Some(base),
            api_key: Some(&key),
            timeout: Duration::from_secs(5),
            account_id: 1,
            memory: None,
        };
        let mut deltas = String::new();
        let out = call(&client, &endpoint, &req, &mut |d| deltas.push_str(d)).await.unwrap();
        assert_eq!(out.tool_calls.len(), 1, "{provider}");
        assert_eq!(out.tool_calls[0].name, "web_search");
        assert_eq!(out.tool_calls[0].arguments, json!({"q": "rust"}), "{provider}");
        assert_eq!((out.input_tokens, out.output_tokens), (INPUT_TOKENS, OUTPUT_TOKENS), "{provider}");
    }
    let reqs = mock.requests();
    assert_eq!(
        reqs[0].body["tools"][0],
        json!({"type": "function", "function": {"name": "web_search", "description": "search", "parameters": schema}})
    );
    assert_eq!(reqs[0].body["tool_choice"], "auto");
    assert_eq!(
        reqs[1].body["tools"][0],
        json!({"name": "web_search", "description": "search", "input_schema": schema, "cache_control": {"type": "ephemeral"}})
    );
    let decl = &reqs[2].body["tools"][0]["functionDeclarations"][0];
    assert_eq!(decl["name"], "web_search");
    assert_eq!(decl["parameters"]["properties"]["q"]["type"], "string");
    assert!(decl["parameters"].get("additionalProperties").is_none());

    // Errors: a timeout and a refusal, with the key nowhere in the text.
    mock.push(MockReply::slow(Duration::from_secs(3), MockReply::text("late")));
    let endpoint = Endpoint {
        provider: "openai",
        base_url: Some(&openai_base),
        api_key: Some(&key),
        timeout: Duration::from_secs(1),
        account_id: 1,
        memory: None,
    };
    let err = call(&client, &endpoint, &req, &mut |_| {}).await.unwrap_err();
    assert_eq!(err, arvis_worker::providers::ProviderError::Timeout);
    mock.push(MockReply::Status { status: 401, retry_after: None, message: "bad key k-123".into() });
    let err = call(&client, &endpoint, &req, &mut |_| {}).await.unwrap_err();
    assert!(err.is_permanent());
    assert!(!err.to_string().contains("k-123"), "{err}");
    mock.push(MockReply::Status {
        status: 503,
        retry_after: Some("Wed, 21 Oct 2015 07:28:00 GMT".into()),
        message: "busy".into(),
    });
    let err = call(&client, &endpoint, &req, &mut |_| {}).await.unwrap_err();
    assert!(matches!(err, arvis_worker::providers::ProviderError::RateLimited { status: 503, .. }), "{err:?}");
}

both_backends!(shutdown_lets_jobs_finish_within_the_grace_then_releases, |backend: Backend| async move {
    let mock = MockLlm::start().await;
    let app = TestApp::builder(backend)
        .env("OPENAI_API_KEY", "sk-test")
        .env("OPENAI_BASE_URL", &format!("{}/v1", mock.url))
        .env("WORKER_SHUTDOWN_GRACE_SECS", "1")
        .start()
        .await;
    let agent = create_agent(&app, "drainer", "openai/gpt-4o-mini").await;
    let store = &app.deps.store;

    // Finishes within the grace period: completed.
    mock.push(MockReply::slow(Duration::from_millis(500), MockReply::text("just in time")));
    let stop = CancellationToken::new();
    let worker = tokio::spawn(arvis_worker::run(app.deps.clone(), stop.clone()));
    let quick = store.enqueue_chat(&chat_request(agent, "quick", "hi")).await.unwrap();
    wait_status(store, quick.job_id, "running", Duration::from_secs(10)).await;
    while mock.request_count() < 1 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.cancel();
    worker.await.unwrap().unwrap();
    let done = store.job(quick.job_id).await.unwrap().unwrap();
    assert_eq!((done.status.as_str(), done.result.as_deref()), ("completed", Some("just in time")));

    // Outlasts the grace period: released, attempt given back.
    mock.push(MockReply::slow(Duration::from_secs(10), MockReply::text("never")));
    let stop = CancellationToken::new();
    let worker = tokio::spawn(arvis_worker::run(app.deps.clone(), stop.clone()));
    let slow = store.enqueue_chat(&chat_request(agent, "slow", "hi")).await.unwrap();
    wait_status(store, slow.job_id, "running", Duration::from_secs(10)).await;
    while mock.request_count() < 2 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let started = Instant::now();
    stop.cancel();
    worker.await.unwrap().unwrap();
    assert!(started.elapsed() < Duration::from_secs(4), "{:?}", started.elapsed());
    let released = store.job(slow.job_id).await.unwrap().unwrap();
    assert_eq!((released.status.as_str(), released.attempts, released.locked_by), ("pending", 0, None));
    app.stop().await;
});

both_backends!(when_every_account_is_limited_the_job_waits_for_the_first_to_rest, |backend: Backend| async move {
    let mock = MockLlm::start().await;
    mock.push(MockReply::rate_limited("1"));
    let app = TestApp::builder(backend)
        .with_worker()
        .env("OPENAI_API_KEY", "sk-test")
        .env("OPENAI_BASE_URL", &format!("{}/v1", mock.url))
        .start()
        .await;
    let agent = create_agent(&app, "patient", "openai/gpt-4o-mini").await;
    let store = &app.deps.store;
    let e = store.enqueue_chat(&chat_request(agent, "wait", "hi")).await.unwrap();
    let done = wait_status(store, e.job_id, "completed", Duration::from_secs(15)).await;
    assert_eq!(done.attempts, 2, "one attempt hit the limit, the next ran after it");
    let at: Vec<Instant> = mock.requests().iter().map(|r| r.at).collect();
    assert_eq!(at.len(), 2);
    assert!(at[1] - at[0] >= Duration::from_millis(900), "waited for Retry-After: {:?}", at[1] - at[0]);
    let account = &store.account_rows().await.unwrap()[0];
    assert_eq!((account.rate_limited_until, account.retry_count, account.total_messages), (None, 0, 1));
    app.stop().await;
});

both_backends!(usable_accounts_skip_limited_and_inactive_ones, |backend: Backend| async move {
    let db = arvis_testkit::TestDb::new(backend).await;
    let store = db.store().await;
    let spec = |name: &str, provider: &str, priority| arvis_shared::config::AccountSpec {
        name: name.into(),
        provider: provider.into(),
        model: "m".into(),
        base_url: None,
        api_key_env: Some(format!("{}_KEY", name.to_uppercase())),
        priority,
    };
    for s in [spec("a", "openai", 50), spec("b", "openai", 51), spec("c", "anthropic", 20)] {
        store.upsert_account(&s).await.unwrap();
    }
    let now = arvis_shared::clock::now_ms();
    let names = |v: Vec<arvis_shared::db::accounts::AccountRow>| v.into_iter().map(|a| a.name).collect::<Vec<_>>();
    assert_eq!(names(store.usable_accounts(None, now).await.unwrap()), ["c", "a", "b"]);
    assert_eq!(names(store.usable_accounts(Some("openai"), now).await.unwrap()), ["a", "b"]);
    let a = store.usable_accounts(Some("openai"), now).await.unwrap()[0].id;
    store.mark_rate_limited(a, now + 60_000).await.unwrap();
    assert_eq!(names(store.usable_accounts(Some("openai"), now).await.unwrap()), ["b"]);
    assert_eq!(
        names(store.usable_accounts(Some("openai"), now + 60_000).await.unwrap()),
        ["a", "b"],
        "the rest is over"
    );
    assert_eq!(store.earliest_rate_limit_end(now).await.unwrap(), Some(now + 60_000));
    store.record_account_success(a).await.unwrap();
    let row = store.account_rows().await.unwrap().into_iter().find(|r| r.id == a).unwrap();
    assert_eq!((row.rate_limited_until, row.retry_count, row.total_messages), (None, 0, 1));
    // Fewest messages first among equal priorities.
    let b = store.usable_accounts(Some("openai"), now).await.unwrap()[1].id;
    sqlx::query("UPDATE accounts SET priority = 50, is_active = $1 WHERE id = $2")
        .bind(true)
        .bind(b)
        .execute(&sqlx::AnyPool::connect(&db.url).await.unwrap())
        .await
        .unwrap();
    assert_eq!(names(store.usable_accounts(Some("openai"), now).await.unwrap()), ["b", "a"]);
    // Disabled accounts are never used.
    sqlx::query("UPDATE accounts SET is_active = $1 WHERE name = 'c'")
        .bind(false)
        .execute(&sqlx::AnyPool::connect(&db.url).await.unwrap())
        .await
        .unwrap();
    assert_eq!(names(store.usable_accounts(None, now).await.unwrap()), ["b", "a"]);
    let id = store
        .insert_usage(&arvis_shared::domain::usage::UsageRecord {
            account_id: Some(a),
            agent_id: None,
            conversation_id: None,
            job_id: Some(77),
            provider: "openai".into(),
            model: "gpt-4o".into(),
            input_tokens: 1,
            output_tokens: 2,
            cost_usd: Some(0.5),
            duration_ms: 9,
            created_at: now,
            ..Default::default()
        })
        .await
        .unwrap();
    let rows = store.usage_for_job(77).await.unwrap();
    assert_eq!((rows[0].id, rows[0].cost_usd, rows[0].duration_ms), (id, Some(0.5), 9));
});

// The reply's tags: stripped from what is stored and sent, memory saved, and a
// delegation runs as its own priority-4 job whose reply lands in the same channel.
both_backends!(reply_tags_take_effect_after_the_reply_is_stored, |backend: Backend| async move {
    let mock = MockLlm::start().await;
    let app = TestApp::builder(backend)
        .with_worker()
        .env("OPENAI_API_KEY", "sk-test")
        .env("OPENAI_BASE_URL", &format!("{}/v1", mock.url))
        .start()
        .await;
    let boss = create_agent(&app, "boss", "openai/gpt-4o-mini").await;
    let helper = create_agent(&app, "researcher", "openai/gpt-4o-mini").await;
    mock.push(MockReply::text(
        "On it.\n[MEMORY:user_preference] likes green tea\n[STATE:mood] curious\n[DELEGATE:researcher]Find three teas[/DELEGATE]",
    ));
    mock.push(MockReply::text("Sencha, Gyokuro, Matcha."));
    let mut sub = app.subscribe_dashboard(boss).await;
    let (status, body) = app.post(&format!("/api/agents/{boss}/chat"), json!({"message": "tea?"})).await;
    assert_eq!((status, body["content"].as_str()), (200, Some("On it.")), "tags are stripped: {body}");

    // The delegated job answers in the same channel.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let delegated = loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let msg = tokio::time::timeout(left, sub.next()).await.expect("the delegated reply arrives").unwrap();
        let event: ReplyEvent = msg.decode().unwrap();
        if event.kind == ReplyKind::Message && event.agent_id == helper {
            break event;
        }
    };
    assert_eq!(delegated.content, "Sencha, Gyokuro, Matcha.");
    let job = app.deps.store.job(delegated.job_id).await.unwrap().unwrap();
    assert_eq!((job.priority, job.kind.as_str(), job.payload.prompt.as_str()), (4, "delegation", "Find three teas"));

    let (_, memory) = app.get(&format!("/api/memory?agentId={boss}")).await;
    let facts: Vec<(&str, &str)> =
        memory.as_array().unwrap().iter().map(|m| (m["key"].as_str().unwrap(), m["value"].as_str().unwrap())).collect();
    assert_eq!(facts, [("user_preference", "likes green tea")]);
    // The next run of the boss sees its memory and state in the system prompt.
    mock.push(MockReply::text("Noted"));
    app.post(&format!("/api/agents/{boss}/chat"), json!({"message": "again"})).await;
    let last = mock.requests().pop().unwrap();
    let system = last.body["messages"][0]["content"].as_str().unwrap().to_string();
    assert!(system.contains("likes green tea") && system.contains("mood: curious"), "{system}");
    app.stop().await;
});

// Found by `faults` (provider-chaos): waiting for a resting account used to
// burn an attempt per claim, so jobs failed for good without calling anything.
both_backends!(waiting_for_a_resting_account_uses_no_attempt, |backend: Backend| async move {
    let mock = MockLlm::start().await;
    let app = TestApp::builder(backend)
        .with_worker()
        .env("OPENAI_API_KEY", "sk-test")
        .env("OPENAI_BASE_URL", &format!("{}/v1", mock.url))
        .env("WORKER_RETRY_BASE_MS", "50")
        .start()
        .await;
    let agent = create_agent(&app, "rested", "openai/gpt-4o-mini").await;
    let store = &app.deps.store;
    let account = store.account_rows().await.unwrap()[0].id;
    store.mark_rate_limited(account, arvis_shared::clock::now_ms() + 1500).await.unwrap();
    let mut req = chat_request(agent, "rest", "hi");
    req.max_attempts = 1;
    let e = store.enqueue_chat(&req).await.unwrap();
    let done = wait_status(store, e.job_id, "completed", Duration::from_secs(15)).await;
    assert_eq!(done.attempts, 1, "only the call that ran counts");
    assert_eq!(mock.request_count(), 1);
    app.stop().await;
});

// Every model call of a run is billed, written with the run's outcome: the
// tool rounds with the reply, and the calls made before a failure with the
// failure (a run's usage is collected in one place, `worker::context::Bill`).
both_backends!(every_call_of_a_run_is_billed_with_its_outcome, |backend: Backend| async move {
    let mock = MockLlm::start().await;
    let app = TestApp::builder(backend)
        .with_worker()
        .env("OPENAI_API_KEY", "sk-test")
        .env("OPENAI_BASE_URL", &format!("{}/v1", mock.url))
        .start()
        .await;
    let agent = create_agent(&app, "billed", "openai/gpt-4o-mini").await;
    let (status, _) = app.patch(&format!("/api/agents/{agent}"), json!({"allowedTools": ["calculate"]})).await;
    assert_eq!(status, 200);
    let mut sub = app.subscribe_dashboard(agent).await;

    // Two tool rounds, then the answer: three calls, three rows, all with the job.
    mock.push(MockReply::tool("calculate", json!({"expression": "1+1"})));
    mock.push(MockReply::tool("calculate", json!({"expression": "2+2"})));
    mock.push(MockReply::text("done"));
    let (status, body) = app.post(&format!("/api/agents/{agent}/chat"), json!({"message": "go"})).await;
    assert_eq!(status, 200, "{body}");
    let last = events_until_final(&mut sub).await.pop().unwrap();
    let rows = app.deps.store.usage_for_job(last.job_id).await.unwrap();
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert!(rows.iter().all(|u| u.input_tokens == INPUT_TOKENS && u.output_tokens == OUTPUT_TOKENS));

    // One tool round served, then the provider refuses: the job fails, and the
    // served call is billed with the failure.
    mock.push(MockReply::tool("calculate", json!({"expression": "3+3"})));
    mock.push(MockReply::Status { status: 401, retry_after: None, message: "bad key".into() });
    let (status, _) = app.post(&format!("/api/agents/{agent}/chat"), json!({"message": "again"})).await;
    assert_eq!(status, 502);
    let last = events_until_final(&mut sub).await.pop().unwrap();
    assert_eq!(last.kind, ReplyKind::Error);
    let job = app.deps.store.job(last.job_id).await.unwrap().unwrap();
    assert_eq!(job.status, "failed");
    assert_eq!(app.deps.store.usage_for_job(last.job_id).await.unwrap().len(), 1);
    app.stop().await;
});
