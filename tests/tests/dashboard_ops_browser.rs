//! The Queue and Usage pages in a real browser (issue #20), in the harness of
//! `dashboard_browser.rs`: Debian's Chromium driven by
//! `tests/browser/scenarios.mjs` (these two scenarios are in
//! `tests/browser/ops_scenarios.mjs`). Each test starts the gateway
//! in-process with `DASHBOARD_PASSWORD` and no worker — a retried job stays
//! pending until the test looks at it — runs one scenario, and checks through
//! the API what the browser did and saw:
//! - retry a failed job (from the keyboard), then see the list follow a change
//!   made behind its back without a reload (htmx polling);
//! - the usage page's numbers equal `GET /api/usage` for each period.
//!
//! Like the harness, a missing browser or `npm ci` fails with what to do.

// Test helpers outside #[test] fns: failing loudly is their job.
#![expect(clippy::unwrap_used)]

use arvis_shared::clock::now_ms;
use arvis_shared::domain::jobs::NewJobRow;
use arvis_shared::domain::usage::UsageRecord;
use arvis_testkit::{Backend, TestApp, both_backends};
use serde_json::{Value, json};

const PASSWORD: &str = "browser-ops-pw";

async fn start(backend: Backend) -> TestApp {
    TestApp::builder(backend).env("DASHBOARD_PASSWORD", PASSWORD).start().await
}

/// Runs one scenario of `scenarios.mjs` (the test kit's browser runner); returns the facts it printed.
async fn run_scenario(app: &TestApp, scenario: &str, env: &[(&str, String)]) -> Value {
    arvis_testkit::dashboard::browser::run_scenario(app, scenario, PASSWORD, env).await
}

/// A GET on the API with a session of our own (a password is set).
async fn api_get(app: &TestApp, path: &str) -> Value {
    let resp = app.client.post(app.url("/api/auth/login")).json(&json!({"password": PASSWORD})).send().await.unwrap();
    let cookie = resp.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string();
    let (status, body) = app.call(reqwest::Method::GET, path, None, &[("cookie", &cookie)]).await;
    assert_eq!(status, 200, "{path}: {body}");
    body
}

async fn agent(app: &TestApp, name: &str) -> i64 {
    let resp = app.client.post(app.url("/api/auth/login")).json(&json!({"password": PASSWORD})).send().await.unwrap();
    let cookie = resp.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string();
    let (status, body) = app
        .call(
            reqwest::Method::POST,
            "/api/agents",
            Some(json!({"slug": name.to_lowercase(), "name": name})),
            &[("cookie", &cookie)],
        )
        .await;
    assert_eq!(status, 201, "{body}");
    body["id"].as_i64().unwrap()
}

both_backends!(retry_a_failed_job_in_the_browser, |backend: Backend| async move {
    let app = start(backend).await;
    let a = agent(&app, "Queued").await;
    let id = app
        .deps
        .store
        .insert_job_row(&NewJobRow {
            agent_id: a,
            conversation_id: None,
            kind: "message".into(),
            priority: 5,
            status: "failed".into(),
            payload: r#"{"prompt":"p"}"#.into(),
            error: Some("provider said no <b>".into()),
            attempts: 3,
            max_attempts: 3,
        })
        .await
        .unwrap();
    let facts = run_scenario(&app, "retry_a_failed_job", &[("JOB_ID", id.to_string())]).await;
    assert_eq!(facts["jobId"], id);
    // Retried (attempts and error reset), then cancelled behind the page's back.
    let cancelled = api_get(&app, "/api/queue?status=cancelled").await;
    let job = cancelled.as_array().unwrap().iter().find(|j| j["id"] == id).expect("cancelled").clone();
    assert_eq!((job["attempts"].as_i64(), job["error"].clone()), (Some(0), Value::Null), "{job}");
    app.stop().await;
});

both_backends!(the_usage_page_numbers_match_get_api_usage_in_the_browser, |backend: Backend| async move {
    let app = start(backend).await;
    let a = agent(&app, "Support").await;
    let b = agent(&app, "Sales").await;
    let call = |agent: Option<i64>, provider: &str, model: &str, cost: Option<f64>, ms: i64, age: i64| UsageRecord {
        agent_id: agent,
        provider: provider.into(),
        model: model.into(),
        input_tokens: 1000 + ms,
        output_tokens: 100 + ms / 10,
        cost_usd: cost,
        duration_ms: ms,
        created_at: now_ms() - age,
        ..Default::default()
    };
    let (hour, day) = (3_600_000, 86_400_000);
    for r in [
        call(Some(a), "anthropic", "claude-haiku", Some(0.5), 1000, hour),
        call(Some(a), "anthropic", "claude-haiku", Some(1.25), 2000, 2 * day),
        call(Some(b), "openai", "gpt-mini", Some(0.004), 501, 3 * hour),
        call(Some(b), "openai", "gpt-mini", Some(0.1), 40, 10 * hour),
        call(Some(b), "local", "llama-unpriced", None, 300, 2 * hour),
        call(Some(a), "openai", "gpt-mini", Some(7.0), 10, 20 * day),
    ] {
        app.deps.store.insert_usage(&r).await.unwrap();
    }
    let facts = run_scenario(&app, "usage_numbers_match_the_api", &[]).await;
    // What the browser read off the page, against the API as this test sees it.
    for period in ["day", "week", "month"] {
        let api = api_get(&app, &format!("/api/usage?period={period}")).await;
        let seen = &facts["seen"][period];
        let totals = seen["totals"].as_object().unwrap();
        assert_eq!(totals.len(), 6, "{seen}");
        for (field, value) in totals {
            assert_eq!(value.as_f64(), api[field].as_f64(), "{period} {field}");
        }
        assert_eq!(seen["totals"]["totalRequests"], api["totalRequests"]);
        let rows = seen["rows"].as_object().unwrap();
        let listed =
            ["byAgent", "byProvider", "byModel"].iter().map(|l| api[l].as_array().unwrap().len()).sum::<usize>();
        assert_eq!(rows.len(), listed, "{period}: every row of the report was read");
        assert_eq!(seen["unpricedCells"], 2, "{period}: the unpriced model and provider say so");
    }
    app.stop().await;
});
