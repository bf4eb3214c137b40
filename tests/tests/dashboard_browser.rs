//! The dashboard in a real browser: Debian's Chromium, headless, driven by
//! `tests/browser/scenarios.mjs` (playwright-core). Each test starts the
//! platform in-process (gateway with `DASHBOARD_PASSWORD`, a worker, a
//! loopback OpenAI-format provider that streams word by word), runs one
//! scenario, and then checks through the API what the browser did. Scenarios:
//! log in + create an agent + chat with the reply streaming in; a reply with
//! `<script>` renders as text; a dropped stream resumes by job id without
//! losing the reply; cross-origin form and fetch refused; logout revokes.
//!
//! Why Node + playwright-core rather than fantoccini over chromedriver: one
//! npm package with no dependencies (14 MB, `npm ci` in about a second),
//! nothing added to the Rust build (fantoccini brings a WebDriver client on
//! hyper and its TLS stack to every test build), and auto-waiting locators
//! that make the scenarios short.
//!
//! A missing browser or a missing `npm ci` fails the test with what to do —
//! these tests never pass without having run. `scripts/test.sh` installs both.
//! Screenshots go to `target/screenshots/` (a few are committed under
//! `docs/screenshots/` for the README).

// Test helpers outside #[test] fns: failing loudly is their job.
#![expect(clippy::unwrap_used)]

use arvis_testkit::{Backend, MockLlm, MockReply, TestApp, both_backends};
use serde_json::{Value, json};

const PASSWORD: &str = "browser-test-pw";

async fn start(backend: Backend) -> (TestApp, MockLlm) {
    let mock = MockLlm::start().await;
    let app = TestApp::builder(backend)
        .with_worker()
        .env("DASHBOARD_PASSWORD", PASSWORD)
        .env("OPENAI_API_KEY", "sk-test")
        .env("OPENAI_BASE_URL", &format!("{}/v1", mock.url))
        .start()
        .await;
    (app, mock)
}

/// Runs one scenario of `scenarios.mjs` (the test kit's browser runner); returns the facts it printed.
async fn run_scenario(app: &TestApp, scenario: &str, env: &[(&str, String)]) -> Value {
    arvis_testkit::dashboard::browser::run_scenario(app, scenario, PASSWORD, env).await
}

/// The API through a session of our own (the API needs one: a password is set).
async fn session(app: &TestApp) -> String {
    let resp = app.client.post(app.url("/api/auth/login")).json(&json!({"password": PASSWORD})).send().await.unwrap();
    let cookie = resp.headers()["set-cookie"].to_str().unwrap();
    cookie.split(';').next().unwrap().to_string()
}

async fn api_agents(app: &TestApp) -> Vec<Value> {
    let cookie = session(app).await;
    let (status, body) = app.call(reqwest::Method::GET, "/api/agents", None, &[("cookie", &cookie)]).await;
    assert_eq!(status, 200, "{body}");
    body.as_array().cloned().unwrap()
}

both_backends!(log_in_create_an_agent_and_see_the_reply_stream_in, |backend: Backend| async move {
    let (app, mock) = start(backend).await;
    mock.push(MockReply::text("Hello from the loopback model, streamed word by word"));
    let facts = run_scenario(&app, "login_create_agent_and_chat", &[]).await;
    assert_eq!(facts["reply"], "Hello from the loopback model, streamed word by word");
    assert!(facts["deltas"].as_i64().unwrap() > 1, "{facts}");
    // The agent the form made, as the API sees it.
    let agent = api_agents(&app).await.into_iter().find(|a| a["slug"] == "browser-bot").expect("created");
    assert_eq!(
        (agent["id"].as_i64(), agent["model"].as_str()),
        (facts["agentId"].as_i64(), Some("openai/gpt-4o-mini"))
    );
    assert!(mock.last_user_prompt().contains("hello there"), "the message reached the provider");
    app.stop().await;
});

both_backends!(a_reply_containing_script_renders_as_text, |backend: Backend| async move {
    let (app, mock) = start(backend).await;
    let cookie = session(&app).await;
    let (status, agent) = app
        .call(
            reqwest::Method::POST,
            "/api/agents",
            Some(json!({"slug": "html", "name": "HTML", "model": "openai/gpt-4o-mini"})),
            &[("cookie", &cookie)],
        )
        .await;
    assert_eq!(status, 201, "{agent}");
    mock.push(MockReply::text(
        "Look: <script>window.__pwned=1</script> and <img src=x onerror=\"window.__pwned=2\"> done",
    ));
    let facts = run_scenario(&app, "script_reply_renders_as_text", &[("AGENT_ID", agent["id"].to_string())]).await;
    assert!(facts["text"].as_str().unwrap().contains("<script>window.__pwned=1</script>"), "{facts}");
    app.stop().await;
});

both_backends!(a_reply_is_not_lost_when_the_stream_drops, |backend: Backend| async move {
    let (app, mock) = start(backend).await;
    let cookie = session(&app).await;
    let (_, agent) = app
        .call(
            reqwest::Method::POST,
            "/api/agents",
            Some(json!({"slug": "steady", "name": "Steady", "model": "openai/gpt-4o-mini"})),
            &[("cookie", &cookie)],
        )
        .await;
    mock.push(MockReply::text("Still here, and the **whole** reply made it"));
    let facts =
        run_scenario(&app, "a_dropped_stream_resumes_the_reply", &[("AGENT_ID", agent["id"].to_string())]).await;
    assert_eq!(facts["text"], "Still here, and the whole reply made it", "rendered, complete: {facts}");
    app.stop().await;
});

both_backends!(a_cross_origin_form_and_fetch_are_refused, |backend: Backend| async move {
    let (app, _mock) = start(backend).await;
    run_scenario(&app, "cross_origin_post_is_refused", &[]).await;
    let slugs: Vec<String> =
        api_agents(&app).await.iter().map(|a| a["slug"].as_str().unwrap_or("").to_string()).collect();
    assert!(!slugs.iter().any(|s| s.starts_with("forged")), "a forged request created an agent: {slugs:?}");
    app.stop().await;
});

both_backends!(after_logout_the_old_cookie_is_refused, |backend: Backend| async move {
    let (app, _mock) = start(backend).await;
    let facts = run_scenario(&app, "logout_refuses_the_old_cookie", &[]).await;
    let cookie = facts["cookie"].as_str().unwrap();
    let (status, _) = app.call(reqwest::Method::GET, "/api/agents", None, &[("cookie", cookie)]).await;
    assert_eq!(status, 401, "the API refuses the logged-out session too");
    app.stop().await;
});
