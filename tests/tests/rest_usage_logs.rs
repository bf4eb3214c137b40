//! Usage aggregation and logs (API and the database log writer), on both databases.

#![expect(clippy::unwrap_used)] // a test fails by panicking

use arvis_shared::clock::now_ms;
use arvis_shared::domain::logs::NewLogRow;
use arvis_shared::domain::usage::UsageRecord;
use arvis_testkit::{TestApp, TestDb, both_backends};
use serde_json::{Value, json};

const DAY: i64 = 24 * 3600 * 1000;

async fn agent(app: &TestApp, slug: &str) -> i64 {
    let (s, a) = app.post("/api/agents", json!({"slug": slug, "name": format!("Agent {slug}")})).await;
    assert_eq!(s, 201, "{a}");
    a["id"].as_i64().unwrap()
}

fn usage(
    agent_id: Option<i64>,
    provider: &str,
    model: &str,
    tokens: (i64, i64),
    cost: impl Into<Option<f64>>,
    ms: i64,
    age: i64,
) -> UsageRecord {
    UsageRecord {
        agent_id,
        provider: provider.into(),
        model: model.into(),
        input_tokens: tokens.0,
        output_tokens: tokens.1,
        cost_usd: cost.into(),
        duration_ms: ms,
        created_at: now_ms() - age,
        ..Default::default()
    }
}

both_backends!(usage_is_aggregated_per_period, |backend| async move {
    let app = TestApp::spawn(backend).await;
    let store = &app.deps.store;
    let (status, mut empty) = app.get("/api/usage").await;
    // The budgets extension (tests/tests/budgets.rs) rides beside the reference's fields.
    let budgets = empty.as_object_mut().unwrap().remove("budgets").unwrap();
    assert_eq!(budgets["agents"][0]["name"], "conductor", "{budgets}");
    assert_eq!(
        (status, empty),
        (
            200,
            json!({"totalRequests": 0, "totalInputTokens": 0, "totalOutputTokens": 0, "totalCostUsd": 0.0,
                     "totalCacheReadTokens": 0, "totalCacheWriteTokens": 0, "unpricedRequests": 0,
                     "byAgent": [], "byProvider": [], "byModel": []})
        )
    );
    let a = agent(&app, "support").await;
    let b = agent(&app, "gone").await;
    store.insert_usage(&usage(Some(a), "anthropic", "claude-haiku", (1000, 100), 0.5, 1000, 0)).await.unwrap();
    store.insert_usage(&usage(Some(a), "anthropic", "claude-haiku", (3000, 300), 1.5, 2000, 2 * DAY)).await.unwrap();
    store.insert_usage(&usage(Some(b), "openai", "gpt-4o-mini", (10, 5), 0.25, 501, 0)).await.unwrap();
    store.insert_usage(&usage(Some(a), "openai", "gpt-4o-mini", (7, 7), 7.0, 10, 20 * DAY)).await.unwrap();
    store.insert_usage(&usage(Some(a), "openai", "gpt-4o-mini", (9, 9), 9.0, 10, 40 * DAY)).await.unwrap();

    let (s, week) = app.get("/api/usage").await;
    assert_eq!(s, 200);
    assert_eq!(week, app.get("/api/usage?period=week").await.1);
    assert_eq!(week["totalRequests"], 3);
    assert_eq!(week["totalInputTokens"], 4010);
    assert_eq!(week["totalOutputTokens"], 405);
    assert!((week["totalCostUsd"].as_f64().unwrap() - 2.25).abs() < 1e-9);
    assert_eq!(
        week["byAgent"][0],
        json!({"agentId": a, "agentName": "Agent support", "requests": 2, "inputTokens": 4000, "outputTokens": 400,
               "costUsd": 2.0, "avgDurationMs": 1500, "cacheReadTokens": 0, "cacheWriteTokens": 0, "unpricedRequests": 0})
    );
    assert_eq!(week["byAgent"][1]["avgDurationMs"], 501);
    assert_eq!(
        week["byProvider"],
        json!([{"provider": "anthropic", "requests": 2, "costUsd": 2.0, "inputTokens": 4000, "outputTokens": 400,
                "avgDurationMs": 1500, "cacheReadTokens": 0, "unpricedRequests": 0},
               {"provider": "openai", "requests": 1, "costUsd": 0.25, "inputTokens": 10, "outputTokens": 5,
                "avgDurationMs": 501, "cacheReadTokens": 0, "unpricedRequests": 0}])
    );
    assert_eq!(
        week["byModel"][0],
        json!({"model": "claude-haiku", "requests": 2, "costUsd": 2.0, "inputTokens": 4000, "outputTokens": 400,
               "avgDurationMs": 1500, "cacheReadTokens": 0, "unpricedRequests": 0})
    );

    let (_, day) = app.get("/api/usage?period=day").await;
    assert_eq!(day["totalRequests"], 2);
    let (_, month) = app.get("/api/usage?period=month").await;
    assert_eq!(month["totalRequests"], 4);
    assert_eq!(month["byProvider"][0]["provider"], "anthropic");

    // Usage of a deleted agent keeps its numbers without the agent.
    app.delete(&format!("/api/agents/{b}")).await;
    let (_, week) = app.get("/api/usage").await;
    let orphan = week["byAgent"].as_array().unwrap().iter().find(|r| r["agentId"].is_null()).unwrap().clone();
    assert_eq!((orphan["requests"].as_i64(), orphan["agentName"].clone()), (Some(1), Value::Null));

    // A parameter given must be one the document lists; the default is had by
    // leaving it out (an empty value is refused, as the document's enum says).
    for q in ["?period=year", "?period=", "?period=WEEK"] {
        let (s, e) = app.get(&format!("/api/usage{q}")).await;
        assert_eq!(s, 400, "{q}");
        assert!(e["error"].is_string());
    }
});

// Cached tokens and unpriced calls (cost NULL) are counted apart; an unpriced
// call adds nothing to the cost sums.
both_backends!(cached_tokens_and_unpriced_calls_are_counted_apart, |backend| async move {
    let app = TestApp::spawn(backend).await;
    let store = &app.deps.store;
    let a = agent(&app, "cachey").await;
    let cached = UsageRecord {
        cache_read_tokens: 800,
        cache_write_tokens: 50,
        ..usage(Some(a), "anthropic", "claude-haiku-4-5", (1000, 10), 0.001, 5, 0)
    };
    store.insert_usage(&cached).await.unwrap();
    store.insert_usage(&usage(Some(a), "ollama", "mystery:7b", (100, 10), None, 5, 0)).await.unwrap();
    store.insert_usage(&usage(Some(a), "ollama", "mystery:7b", (100, 10), None, 5, 0)).await.unwrap();
    let (s, week) = app.get("/api/usage").await;
    assert_eq!(s, 200);
    assert_eq!((week["totalRequests"].as_i64(), week["unpricedRequests"].as_i64()), (Some(3), Some(2)));
    assert_eq!((week["totalCacheReadTokens"].as_i64(), week["totalCacheWriteTokens"].as_i64()), (Some(800), Some(50)));
    assert!((week["totalCostUsd"].as_f64().unwrap() - 0.001).abs() < 1e-12, "{week}");
    assert_eq!(
        (week["byAgent"][0]["unpricedRequests"].as_i64(), week["byAgent"][0]["cacheReadTokens"].as_i64()),
        (Some(2), Some(800))
    );
    let model = |name: &str| week["byModel"].as_array().unwrap().iter().find(|m| m["model"] == name).unwrap().clone();
    assert_eq!(
        model("mystery:7b"),
        json!({"model": "mystery:7b", "requests": 2, "costUsd": 0.0, "inputTokens": 200, "outputTokens": 20,
               "avgDurationMs": 5, "cacheReadTokens": 0, "unpricedRequests": 2})
    );
    assert_eq!(model("claude-haiku-4-5")["cacheReadTokens"], 800);
});

fn line(level: &str, msg: &str, age: i64) -> NewLogRow {
    NewLogRow {
        level: level.into(),
        service: "worker".into(),
        target: "arvis_worker::run".into(),
        msg: msg.into(),
        fields: "{}".into(),
        agent_id: Some(2),
        job_id: Some(42),
        duration_ms: Some(1200),
        created_at: now_ms() - age,
    }
}

both_backends!(logs_filter_by_minimum_level, |backend| async move {
    let app = TestApp::spawn(backend).await;
    let store = &app.deps.store;
    let mut rows =
        vec![line("info", "Job completed", 4000), line("warn", "slow provider", 3000), line("error", "boom", 2000)];
    for i in 0..20 {
        rows.push(line("debug", &format!("detail {i}"), 1000));
    }
    store.insert_logs(&rows).await.unwrap();
    let (s, all) = app.get("/api/logs").await;
    assert_eq!(s, 200);
    assert_eq!(all.as_array().unwrap().len(), 23);
    let (_, info) = app.get("/api/logs?level=info").await;
    let msgs: Vec<&str> = info.as_array().unwrap().iter().map(|l| l["msg"].as_str().unwrap()).collect();
    assert_eq!(msgs, ["boom", "slow provider", "Job completed"], "newest first");
    let e = &info[2];
    assert_eq!(
        (e["level"].as_str(), e["agentId"].as_i64(), e["jobId"].as_i64(), e["durationMs"].as_i64()),
        (Some("info"), Some(2), Some(42), Some(1200))
    );
    assert!(e["time"].as_str().unwrap().ends_with('Z'));
    assert_eq!((e["service"].as_str(), e["target"].as_str()), (Some("worker"), Some("arvis_worker::run")));
    assert_eq!(app.get("/api/logs?level=error").await.1.as_array().unwrap().len(), 1);
    assert_eq!(app.get("/api/logs?level=warn&limit=1").await.1[0]["msg"], "boom");
    assert_eq!(app.get("/api/logs?limit=0").await.1, json!([]));
    assert_eq!(app.get("/api/logs?limit=100000").await.1.as_array().unwrap().len(), 23, "capped, not refused");
    for q in ["?level=verbose", "?level=INFO", "?limit=-1", "?limit=ten"] {
        let (s, e) = app.get(&format!("/api/logs{q}")).await;
        assert_eq!(s, 400, "{q}");
        assert!(e["error"].is_string());
    }
    // Pruning keeps the newest lines.
    assert_eq!(store.prune_logs(5).await.unwrap(), 18);
    let (_, left) = app.get("/api/logs").await;
    assert_eq!(left.as_array().unwrap().len(), 5);
});

both_backends!(a_large_log_batch_is_stored_whole_in_order, |backend| async move {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    // More rows than one statement takes: several statements, one transaction.
    let n = arvis_shared::db::logs::LOG_ROWS_PER_STATEMENT * 2 + 17;
    let rows: Vec<NewLogRow> = (0..n).map(|i| line("info", &format!("line {i}"), (n - i) as i64)).collect();
    store.insert_logs(&rows).await.unwrap();
    let stored = store.list_logs(0, 10_000).await.unwrap();
    assert_eq!(stored.len(), n);
    assert_eq!(stored[0].msg, format!("line {}", n - 1), "newest first");
    assert_eq!(stored[n - 1].msg, "line 0");
    // An empty batch writes nothing and is no error.
    store.insert_logs(&[]).await.unwrap();
    assert_eq!(store.list_logs(0, 10_000).await.unwrap().len(), n);
});

both_backends!(the_log_writer_stores_info_and_above, |backend| async move {
    use tracing_subscriber::layer::SubscriberExt as _;
    let app = TestApp::spawn(backend).await;
    let store = app.deps.store.clone();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let writer = arvis_shared::logs::start_writer(
        &Default::default(),
        store.clone(),
        vec!["hunter2-secret".into()],
        10_000,
        shutdown.clone(),
    );
    {
        let _guard =
            tracing::subscriber::set_default(tracing_subscriber::registry().with(arvis_shared::logs::DbLogLayer));
        tracing::info!(target: "arvis_worker::run", agent_id = 7i64, job_id = 9i64, duration_ms = 33i64, "Job completed");
        tracing::debug!(target: "arvis_worker::run", "too verbose");
        tracing::error!(target: "arvis_gateway::x", "it broke");
        tracing::warn!(target: "arvis_gateway::x", token = "hunter2-secret", "leaked hunter2-secret here");
    }
    shutdown.cancel();
    writer.await.unwrap();
    let lines = store.list_logs(0, 10).await.unwrap();
    let ours: Vec<_> =
        lines.iter().filter(|l| l.msg == "Job completed" || l.msg == "it broke" || l.msg == "too verbose").collect();
    assert_eq!(ours.len(), 2, "{lines:?}");
    let done = ours.iter().find(|l| l.msg == "Job completed").unwrap();
    assert_eq!((done.agent_id, done.job_id, done.duration_ms), (Some(7), Some(9), Some(33)));
    assert_eq!(done.service, "worker");
    assert_eq!(ours.iter().find(|l| l.msg == "it broke").unwrap().level, "error");
    let leaked = lines.iter().find(|l| l.msg.starts_with("leaked")).unwrap();
    assert_eq!(leaked.msg, "leaked [REDACTED] here");
});
