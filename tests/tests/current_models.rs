//! Today's models through the whole stack (gateway chat → worker → loopback
//! provider → stored reply and usage), on both databases: Claude 5.x thinking
//! through a two-round tool loop, Gemini 3's signatures through the tool loop,
//! GPT-5's parameters, cached tokens priced at cache rates, unpriced models.

#![expect(clippy::unwrap_used)] // a test fails by panicking

use arvis_shared::bus::events::ReplyKind;
use arvis_testkit::mock_llm::{GEMINI_SIGNATURE, REDACTED_THINKING, THINKING_SIGNATURE, THINKING_TEXT};
use arvis_testkit::{Backend, MockLlm, MockReply, TestApp, both_backends, events_until_final};
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

both_backends!(claude_thinking_goes_through_a_two_round_tool_loop_unseen, |backend: Backend| async move {
    let mock = MockLlm::start().await;
    let app = TestApp::builder(backend)
        .with_worker()
        .env("ANTHROPIC_API_KEY", "sk-ant-test")
        .env("ANTHROPIC_BASE_URL", &mock.url)
        .start()
        .await;
    let agent = create_agent(&app, "opus", "anthropic/claude-opus-5-5", json!({})).await;
    let mut sub = app.subscribe_dashboard(agent).await;
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

// Cached tokens from each provider's usage land in the usage rows and are
// priced at the table's cache rates; GET /api/usage shows them.
both_backends!(cached_tokens_are_recorded_and_priced_at_cache_rates, |backend: Backend| async move {
    use arvis_testkit::mock_llm::{INPUT_TOKENS, OUTPUT_TOKENS};
    let mock = MockLlm::start().await;
    let app = TestApp::builder(backend)
        .with_worker()
        .env("ANTHROPIC_API_KEY", "sk-ant-test")
        .env("ANTHROPIC_BASE_URL", &mock.url)
        .env("OPENAI_API_KEY", "sk-test")
        .env("OPENAI_BASE_URL", &format!("{}/v1", mock.url))
        .env("GOOGLE_API_KEY", "goog-test")
        .env("GOOGLE_BASE_URL", &mock.url)
        .start()
        .await;
    let prices = arvis_worker::pricing::PriceTable::embedded().unwrap();
    // (model, cache read, cache write): Anthropic reports both, OpenAI and Gemini reads only.
    let cases = [
        ("anthropic/claude-opus-4-5", 2000, 300),
        ("openai/gpt-5-mini", 1024, 0),
        ("google/gemini-2.5-flash", 4096, 0),
    ];
    let mut cost_sum = 0.0;
    for (i, (spec, read, write)) in cases.into_iter().enumerate() {
        let agent = create_agent(&app, &format!("cache{i}"), spec, json!({"allowedTools": []})).await;
        mock.push(MockReply::Cached { text: "cached answer".into(), cache_read: read, cache_write: write });
        let mut sub = app.subscribe_dashboard(agent).await;
        let (status, body) = app.post(&format!("/api/agents/{agent}/chat"), json!({"message": "hi"})).await;
        assert_eq!((status, body["content"].as_str()), (200, Some("cached answer")), "{spec}: {body}");
        let job_id = events_until_final(&mut sub).await.last().unwrap().job_id;
        let rows = app.deps.store.usage_for_job(job_id).await.unwrap();
        let u = &rows[0];
        assert_eq!((u.input_tokens, u.output_tokens), (INPUT_TOKENS + read + write, OUTPUT_TOKENS), "{spec}");
        assert_eq!((u.cache_read_tokens, u.cache_write_tokens), (read, write), "{spec}");
        let (provider, model) = spec.split_once('/').unwrap();
        let p = prices.lookup(provider, model).unwrap();
        let expected = INPUT_TOKENS as f64 * p.input_cost_per_token.unwrap()
            + read as f64 * p.cache_read_input_token_cost.unwrap()
            + write as f64 * p.cache_creation_input_token_cost.unwrap_or(0.0)
            + OUTPUT_TOKENS as f64 * p.output_cost_per_token.unwrap();
        let cost = u.cost_usd.unwrap();
        assert!((cost - expected).abs() < 1e-12, "{spec}: {cost} vs {expected}");
        // Cheaper than the same tokens at the full input price.
        let full = (INPUT_TOKENS + read + write) as f64 * p.input_cost_per_token.unwrap()
            + OUTPUT_TOKENS as f64 * p.output_cost_per_token.unwrap();
        assert!(cost < full || read == 0, "{spec}");
        cost_sum += cost;
    }
    let (_, usage) = app.get("/api/usage").await;
    assert_eq!(usage["totalCacheReadTokens"], 2000 + 1024 + 4096);
    assert_eq!(usage["totalCacheWriteTokens"], 300);
    assert_eq!(usage["unpricedRequests"], 0);
    assert!((usage["totalCostUsd"].as_f64().unwrap() - cost_sum).abs() < 1e-9, "{usage}");
    app.stop().await;
});

// A model the table does not know is recorded as unpriced — NULL cost, never
// $0 — and counted so in GET /api/usage; MODEL_PRICES_FILE can price it.
both_backends!(unknown_models_are_unpriced_until_the_prices_file_knows_them, |backend: Backend| async move {
    let mock = MockLlm::start().await;
    let dir = tempfile::tempdir().unwrap();
    let prices_file = dir.path().join("prices.json");
    std::fs::write(
        &prices_file,
        r#"{"ollama/house-model:7b": {"input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6, "max_input_tokens": 8192}}"#,
    )
    .unwrap();
    let app = TestApp::builder(backend)
        .with_worker()
        .env("OPENAI_API_KEY", "sk-test")
        .env("OPENAI_BASE_URL", &format!("{}/v1", mock.url))
        .env("OLLAMA_BASE_URL", &mock.url)
        .env("MODEL_PRICES_FILE", prices_file.to_str().unwrap())
        .start()
        .await;
    let unknown = create_agent(&app, "unknown", "openai/gpt-imaginary-9", json!({})).await;
    let mut sub = app.subscribe_dashboard(unknown).await;
    let (status, _) = app.post(&format!("/api/agents/{unknown}/chat"), json!({"message": "hi"})).await;
    assert_eq!(status, 200);
    let job_id = events_until_final(&mut sub).await.last().unwrap().job_id;
    assert_eq!(app.deps.store.usage_for_job(job_id).await.unwrap()[0].cost_usd, None, "NULL, not 0");
    let (_, usage) = app.get("/api/usage").await;
    assert_eq!((usage["totalRequests"].as_i64(), usage["unpricedRequests"].as_i64()), (Some(1), Some(1)), "{usage}");
    assert_eq!(usage["totalCostUsd"], 0.0);
    assert_eq!(usage["byModel"][0]["unpricedRequests"], 1);

    // The prices file knows the local model: priced, and not unpriced.
    let local = create_agent(&app, "local", "ollama/house-model:7b", json!({})).await;
    let mut sub = app.subscribe_dashboard(local).await;
    let (status, body) = app.post(&format!("/api/agents/{local}/chat"), json!({"message": "hi"})).await;
    assert_eq!(status, 200, "{body}");
    let job_id = events_until_final(&mut sub).await.last().unwrap().job_id;
    let row = &app.deps.store.usage_for_job(job_id).await.unwrap()[0];
    assert_eq!(row.provider, "ollama");
    let expected = (arvis_testkit::mock_llm::INPUT_TOKENS as f64 * 1.0
        + arvis_testkit::mock_llm::OUTPUT_TOKENS as f64 * 2.0)
        / 1e6;
    assert!((row.cost_usd.unwrap() - expected).abs() < 1e-12, "{:?}", row.cost_usd);
    let (_, usage) = app.get("/api/usage").await;
    assert_eq!((usage["totalRequests"].as_i64(), usage["unpricedRequests"].as_i64()), (Some(2), Some(1)));
    app.stop().await;
});

// The agent's reasoning effort reaches the provider; its thinking is shown
// only with showThinking, before the reply, never in the deltas.
both_backends!(effort_reaches_the_provider_and_thinking_shows_only_when_asked, |backend: Backend| async move {
    let mock = MockLlm::start().await;
    let app = TestApp::builder(backend)
        .with_worker()
        .env("ANTHROPIC_API_KEY", "sk-ant-test")
        .env("ANTHROPIC_BASE_URL", &mock.url)
        .start()
        .await;
    let agent = create_agent(
        &app,
        "show",
        "anthropic/claude-sonnet-5-5",
        json!({"reasoningEffort": "low", "showThinking": true}),
    )
    .await;
    let mut sub = app.subscribe_dashboard(agent).await;
    mock.push(MockReply::ThinkingText("Forty-two.".into()));
    let (status, body) = app.post(&format!("/api/agents/{agent}/chat"), json!({"message": "?"})).await;
    assert_eq!(status, 200, "{body}");
    let content = body["content"].as_str().unwrap();
    assert_eq!(content, format!("> **Thinking**\n> {THINKING_TEXT}\n\nForty-two."));
    let events = events_until_final(&mut sub).await;
    let deltas: String = events.iter().filter(|e| e.kind == ReplyKind::Delta).map(|e| e.content.as_str()).collect();
    assert_eq!(deltas, "Forty-two.", "thinking is never streamed");
    let req = &mock.requests()[0].body;
    assert_eq!(
        (req["thinking"]["type"].as_str(), req["output_config"]["effort"].as_str()),
        (Some("adaptive"), Some("low"))
    );

    // Without showThinking the same answer shows no thinking.
    let (status, _) = app.patch(&format!("/api/agents/{agent}"), json!({"showThinking": false})).await;
    assert_eq!(status, 200);
    mock.push(MockReply::ThinkingText("Forty-two.".into()));
    let (_, body) = app.post(&format!("/api/agents/{agent}/chat"), json!({"message": "again?"})).await;
    assert_eq!(body["content"], "Forty-two.");
    app.stop().await;
});

// A parameter refusal is retried within the job and remembered by the worker:
// the next job of the same account and model leaves the parameter out at once.
both_backends!(a_refused_parameter_is_remembered_across_jobs, |backend: Backend| async move {
    let mock = MockLlm::start().await;
    let app = TestApp::builder(backend)
        .with_worker()
        .env("OPENAI_API_KEY", "sk-test")
        .env("OPENAI_BASE_URL", &format!("{}/v1", mock.url))
        .start()
        .await;
    let agent = create_agent(&app, "strict", "openai/house-reasoner", json!({})).await;
    mock.push(MockReply::Json {
        status: 400,
        body: json!({"error": {"message": "Unsupported value: 'temperature' does not support 0.7 with this model. Only the default (1) value is supported.",
            "type": "invalid_request_error", "param": "temperature", "code": "unsupported_value"}}),
    });
    let (status, body) = app.post(&format!("/api/agents/{agent}/chat"), json!({"message": "one"})).await;
    assert_eq!((status, body["content"].as_str()), (200, Some("Hello there friend")), "{body}");
    let (status, _) = app.post(&format!("/api/agents/{agent}/chat"), json!({"message": "two"})).await;
    assert_eq!(status, 200);
    let reqs = mock.requests();
    assert_eq!(reqs.len(), 3, "one refusal, its retry, then the second job at once");
    assert_eq!(reqs[0].body["temperature"], 0.7);
    assert!(reqs[1].body.get("temperature").is_none() && reqs[2].body.get("temperature").is_none());
    app.stop().await;
});
