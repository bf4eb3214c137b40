//! Spend budgets (issue 21), on both databases: checked before a run is
//! queued (REST chat, `/v1`), before a workflow's run, and before every model
//! call of a run in flight; reported by `GET /api/usage` and `/metrics`.
//!
//! One loopback call of `openai/gpt-4o-mini` costs
//! 12 × $0.15/M + 7 × $0.60/M = $0.000006, so a budget of $0.000005 lets
//! exactly one call start: the spend is below it before, above it after.

#![expect(clippy::unwrap_used)] // a test fails by panicking

use std::time::Duration;

use arvis_testkit::{Backend, MockLlm, MockReply, TestApp, both_backends};
use jiff::tz::TimeZone;
use serde_json::{Value, json};

const ONE_CALL_USD: f64 = 0.000006;
const LIMIT: f64 = 0.000005;

async fn app(backend: Backend, mock: &MockLlm) -> TestApp {
    TestApp::builder(backend)
        .with_worker()
        .env("OPENAI_API_KEY", "sk-test")
        .env("OPENAI_BASE_URL", &format!("{}/v1", mock.url))
        .start()
        .await
}

async fn agent(app: &TestApp, slug: &str, model: &str, extra: Value) -> i64 {
    let mut body = json!({"slug": slug, "name": slug, "model": model});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    let (status, body) = app.post("/api/agents", body).await;
    assert_eq!(status, 201, "{body}");
    body["id"].as_i64().unwrap()
}

async fn chat(app: &TestApp, agent: i64, text: &str) -> (u16, Value) {
    app.post(&format!("/api/agents/{agent}/chat"), json!({"message": text})).await
}

both_backends!(
    a_cheap_agent_runs_under_its_limit_and_is_refused_over_it_with_the_numbers,
    |backend: Backend| async move {
        let mock = MockLlm::start().await;
        let app = app(backend, &mock).await;
        let id = agent(&app, "cheap", "openai/gpt-4o-mini", json!({"dailyBudgetUsd": LIMIT})).await;
        let (_, agents) = app.get("/api/agents").await;
        let shown = agents.as_array().unwrap().iter().find(|a| a["id"] == id).unwrap().clone();
        assert_eq!(shown["dailyBudgetUsd"], LIMIT, "{shown}");
        assert_eq!(shown["monthlyBudgetUsd"], Value::Null);

        let (status, body) = chat(&app, id, "first").await;
        assert_eq!((status, body["content"].as_str()), (200, Some("Hello there friend")), "{body}");

        // Over the limit now: refused before anything is stored or queued.
        let (status, body) = chat(&app, id, "second").await;
        assert_eq!(status, 429, "{body}");
        let text = body["error"].as_str().unwrap();
        assert!(text.contains("agent cheap's daily budget of $0.000005 is used up"), "{text}");
        assert!(text.contains("($0.000006 spent this day, UTC)"), "names the spend: {text}");
        assert_eq!(mock.request_count(), 1);
        let (_, history) = app.get(&format!("/api/agents/{id}/history")).await;
        assert_eq!(history.as_array().unwrap().len(), 2, "the refused message is not stored: {history}");

        // /v1 answers 429 insufficient_quota in OpenAI's shape.
        let (status, body) = app
            .post("/v1/chat/completions", json!({"model": "cheap", "messages": [{"role": "user", "content": "hi"}]}))
            .await;
        assert_eq!(status, 429, "{body}");
        assert_eq!(body["error"]["type"], "insufficient_quota");
        assert_eq!(body["error"]["code"], "insufficient_quota");

        // GET /api/usage: the agent's spend against its budget; the metrics too.
        let (_, usage) = app.get("/api/usage?period=day").await;
        assert_eq!(usage["totalRequests"], 1, "the reference's fields stay: {usage}");
        let line =
            usage["budgets"]["agents"].as_array().unwrap().iter().find(|a| a["name"] == "cheap").unwrap().clone();
        assert_eq!(line["dailyBudgetUsd"], LIMIT);
        assert!((line["spentTodayUsd"].as_f64().unwrap() - ONE_CALL_USD).abs() < 1e-12, "{line}");
        assert!((line["spentThisMonthUsd"].as_f64().unwrap() - ONE_CALL_USD).abs() < 1e-12, "{line}");
        let metrics = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
        assert!(
            metrics.lines().any(|l| l.starts_with("arvis_budget_limit_usd")
                && l.contains("name=\"cheap\"")
                && l.contains("period=\"day\"")),
            "{metrics}"
        );
        assert!(metrics.lines().any(|l| l.starts_with("arvis_budget_spent_usd") && l.contains("name=\"cheap\"")));

        // Raising the budget lets it run again.
        let (status, _) = app.patch(&format!("/api/agents/{id}"), json!({"dailyBudgetUsd": 1.0})).await;
        assert_eq!(status, 200);
        assert_eq!(chat(&app, id, "third").await.0, 200);
        assert_eq!(app.patch(&format!("/api/agents/{id}"), json!({"dailyBudgetUsd": -1})).await.0, 400);
        app.stop().await;
    }
);

both_backends!(a_run_that_crosses_its_limit_stops_after_the_current_call, |backend: Backend| async move {
    let mock = MockLlm::start().await;
    let app = app(backend, &mock).await;
    let id =
        agent(&app, "looper", "openai/gpt-4o-mini", json!({"monthlyBudgetUsd": LIMIT, "allowedTools": ["calculate"]}))
            .await;
    mock.push(MockReply::tool("calculate", json!({"expression": "1+1"})));
    mock.push(MockReply::text("the answer is 2"));

    let (status, body) = chat(&app, id, "add one and one").await;
    assert_eq!(status, 200, "{body}");
    let reply = body["content"].as_str().unwrap();
    assert!(reply.starts_with("I stopped before calling the model again: agent looper's monthly budget"), "{reply}");
    assert_eq!(mock.request_count(), 1, "the tool round's second call was not made");
    // Stored whole: the reply, with the one call's usage.
    let (_, history) = app.get(&format!("/api/agents/{id}/history")).await;
    assert_eq!(history.as_array().unwrap().len(), 2, "{history}");
    let (_, usage) = app.get("/api/usage?period=day").await;
    assert_eq!(usage["totalRequests"], 1, "{usage}");
    app.stop().await;
});

both_backends!(two_concurrent_runs_at_the_limit_overshoot_by_the_calls_in_flight_only, |backend: Backend| async move {
    let mock = MockLlm::start().await;
    // Slow answers: both runs are past their checks before either is billed.
    mock.set_default(MockReply::slow(Duration::from_millis(600), MockReply::text("done")));
    let app = app(backend, &mock).await;
    let id = agent(&app, "pair", "openai/gpt-4o-mini", json!({"dailyBudgetUsd": LIMIT})).await;
    // Two conversations (one chat's runs are answered in order, one at a time).
    let completion = |text: &str| {
        app.post("/v1/chat/completions", json!({"model": "pair", "messages": [{"role": "user", "content": text}]}))
    };
    let (a, b) = tokio::join!(completion("one"), completion("two"));
    assert_eq!((a.0, b.0), (200, 200), "{a:?} {b:?}");
    assert_eq!(
        (a.1["choices"][0]["message"]["content"].as_str(), b.1["choices"][0]["message"]["content"].as_str()),
        (Some("done"), Some("done"))
    );
    assert_eq!(mock.request_count(), 2);
    // Two calls spent ($0.000012 against $0.000005); the next run is refused.
    let (status, body) = chat(&app, id, "three").await;
    assert_eq!(status, 429, "{body}");
    assert!(body["error"].as_str().unwrap().contains("($0.000012 spent this day"), "{body}");
    assert_eq!(mock.request_count(), 2);
    app.stop().await;
});

both_backends!(unpriced_calls_count_as_zero, |backend: Backend| async move {
    let mock = MockLlm::start().await;
    let app = app(backend, &mock).await;
    let id = agent(&app, "free", "openai/gpt-imaginary-9", json!({"dailyBudgetUsd": LIMIT})).await;
    assert_eq!(chat(&app, id, "one").await.0, 200);
    assert_eq!(chat(&app, id, "two").await.0, 200, "an unpriced call spends nothing known");
    app.stop().await;
});

both_backends!(a_key_over_its_monthly_budget_gets_insufficient_quota, |backend: Backend| async move {
    let mock = MockLlm::start().await;
    let app = app(backend, &mock).await;
    agent(&app, "helper", "openai/gpt-4o-mini", json!({})).await;
    let (_, key) = app.post("/api/keys", json!({"name": "small", "monthlyBudgetUsd": LIMIT})).await;
    let bearer = format!("Bearer {}", key["key"].as_str().unwrap());
    let body = json!({"model": "helper", "messages": [{"role": "user", "content": "hi"}]});
    let headers = [("authorization", bearer.as_str())];
    let call = || app.call(reqwest::Method::POST, "/v1/chat/completions", Some(body.clone()), &headers);
    assert_eq!(call().await.0, 200);
    let (status, refused) = call().await;
    assert_eq!(status, 429, "{refused}");
    assert_eq!(refused["error"]["code"], "insufficient_quota");
    assert!(refused["error"]["message"].as_str().unwrap().contains("API key small's monthly budget"), "{refused}");
    let (_, keys) = app.get("/api/keys").await;
    assert!((keys[0]["spentThisMonthUsd"].as_f64().unwrap() - ONE_CALL_USD).abs() < 1e-12, "{keys}");
    let (_, usage) = app.get("/api/usage").await;
    assert_eq!(usage["budgets"]["keys"][0]["name"], "small", "{usage}");
    app.stop().await;
});

both_backends!(a_workflow_over_budget_is_skipped_counted_and_says_why, |backend: Backend| async move {
    let mock = MockLlm::start().await;
    let app = app(backend, &mock).await;
    let id = agent(&app, "nightly-agent", "openai/gpt-4o-mini", json!({})).await;
    let (status, wf) = app
        .post(
            "/api/workflows",
            json!({"name": "nightly", "agentId": id, "schedule": "every 10s", "prompt": "report", "dailyBudgetUsd": 0}),
        )
        .await;
    assert_eq!(status, 201, "{wf}");
    let wf_id = wf["id"].as_i64().unwrap();
    let later = arvis_shared::clock::now_ms() + 60_000;
    let report = arvis_scheduler::tick(&app.deps.store, &app.deps.bus, later, &TimeZone::UTC).await.unwrap();
    assert_eq!(report.over_budget, [wf_id]);
    assert!(report.fired.is_empty());
    let (_, list) = app.get("/api/workflows").await;
    let shown = list.as_array().unwrap().iter().find(|w| w["id"] == wf_id).unwrap().clone();
    assert_eq!(shown["skippedRuns"], 1, "{shown}");
    let why = shown["lastError"].as_str().unwrap();
    assert!(why.starts_with("run skipped: workflow nightly's daily budget of $0.00 is used up"), "{why}");
    let (_, queue) = app.get("/api/queue?status=pending").await;
    assert_eq!(queue.as_array().unwrap().len(), 0, "{queue}");

    // With a budget it has room for, the next due time fires and clears the error.
    let (status, _) = app.patch(&format!("/api/workflows/{wf_id}"), json!({"dailyBudgetUsd": 1.0})).await;
    assert_eq!(status, 200);
    let (_, list) = app.get("/api/workflows").await;
    let next = list[0]["nextRunAt"].as_str().unwrap().parse::<jiff::Timestamp>().unwrap().as_millisecond();
    let report =
        arvis_scheduler::tick(&app.deps.store, &app.deps.bus, next.max(later + 10_000), &TimeZone::UTC).await.unwrap();
    assert_eq!(report.fired.len(), 1, "{report:?}");
    let (_, list) = app.get("/api/workflows").await;
    assert_eq!(list[0]["lastError"], Value::Null);
    app.stop().await;
});

both_backends!(a_queued_run_whose_agent_went_over_budget_meanwhile_does_not_start, |backend: Backend| async move {
    let mock = MockLlm::start().await;
    mock.set_default(MockReply::slow(Duration::from_millis(600), MockReply::text("done")));
    let app = app(backend, &mock).await;
    let id = agent(&app, "queued", "openai/gpt-4o-mini", json!({"dailyBudgetUsd": LIMIT})).await;
    // Both are taken in while nothing is spent; one conversation answers them
    // in order, so the second run starts after the first was billed.
    let (a, b) = tokio::join!(chat(&app, id, "one"), chat(&app, id, "two"));
    let replies = [a.1["content"].as_str().unwrap().to_string(), b.1["content"].as_str().unwrap().to_string()];
    assert!(replies.contains(&"done".to_string()), "{replies:?}");
    let refused = replies.iter().find(|r| *r != "done").unwrap();
    assert!(refused.starts_with("I did not start: agent queued's daily budget of $0.000005 is used up"), "{refused}");
    assert_eq!(mock.request_count(), 1);
    app.stop().await;
});

both_backends!(
    the_websocket_refuses_a_message_to_an_agent_over_budget_with_the_numbers,
    |backend: Backend| async move {
        use futures::{SinkExt as _, StreamExt as _};
        use tokio_tungstenite::tungstenite::Message;
        let mock = MockLlm::start().await;
        let app = TestApp::builder(backend)
            .with_worker()
            .with_bridge()
            .env("OPENAI_API_KEY", "sk-test")
            .env("OPENAI_BASE_URL", &format!("{}/v1", mock.url))
            .start()
            .await;
        let id = agent(&app, "broke", "openai/gpt-4o-mini", json!({"monthlyBudgetUsd": 0})).await;
        let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws", app.ws_addr.unwrap())).await.unwrap();
        let frame = json!({"type": "message", "content": "hi", "agentId": id});
        ws.send(Message::text(frame.to_string())).await.unwrap();
        let error = loop {
            let msg = tokio::time::timeout(Duration::from_secs(10), ws.next()).await.unwrap().unwrap().unwrap();
            let Message::Text(text) = msg else { continue };
            let v: Value = serde_json::from_str(text.as_str()).unwrap();
            if v["type"] != "connected" {
                break v;
            }
        };
        assert_eq!(error["type"], "error", "{error}");
        let text = error["error"].as_str().unwrap();
        assert!(
            text.contains("agent broke's monthly budget of $0.00 is used up ($0.00 spent this month, UTC)"),
            "{text}"
        );
        assert_eq!(mock.request_count(), 0);
        app.stop().await;
    }
);
