//! The dashboard's configuration pages — Workflows, Webhooks, Skills, Bots &
//! connectors, Accounts, Settings — rendered with an empty database and with
//! 10 000 rows, and driven through their forms: every refusal shows the
//! REST API's own message (asked of the API with the same input) next to the
//! field it names; a webhook's secret is on exactly one page, the answer to
//! the post that made it; no configured secret (platform tokens, LLM keys,
//! webhook secrets) is on any page; hostile text is escaped.

#![expect(clippy::unwrap_used)]

use arvis_testkit::dashboard::{Page, seed};
use arvis_testkit::{Backend, TestApp, both_backends};
use serde_json::{Value, json};

// --- helpers

async fn agent(app: &TestApp, slug: &str, name: &str) -> i64 {
    let (status, body) = app.post("/api/agents", json!({"slug": slug, "name": name})).await;
    assert_eq!(status, 201, "{body}");
    body["id"].as_i64().unwrap()
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", "\"").replace("&#39;", "'").replace("&amp;", "&")
}

/// The error shown next to `field` (`<span id="{field}-error">`), unescaped.
fn field_error(page: &Page, field: &str) -> Option<String> {
    let marker = format!("id=\"{field}-error\" role=\"alert\">");
    let start = page.html.find(&marker)? + marker.len();
    let end = page.html[start..].find("</span>")? + start;
    Some(unescape(&page.html[start..end]))
}

/// The errors shown above a form (naming no field).
fn form_errors(page: &Page) -> Vec<String> {
    let marker = "<p class=\"error\" role=\"alert\">";
    page.html.split(marker).skip(1).map(|rest| unescape(rest.split("</p>").next().unwrap())).collect()
}

/// The message the REST API answers `body` with (asserting it refuses).
async fn api_refusal(app: &TestApp, method: &str, path: &str, body: Value) -> (u16, String) {
    let (status, e) = match method {
        "POST" => app.post(path, body).await,
        "PATCH" => app.patch(path, body).await,
        _ => unreachable!(),
    };
    assert!((400..500).contains(&status), "{method} {path}: {status} {e}");
    (status, e["error"].as_str().unwrap().to_string())
}

/// No script the page did not mean, where hostile text also lands in
/// attribute values (a form's `value="…"`): like `Page::assert_no_injected_script`,
/// but the tag is read with its quoted values taken out — an escaped
/// `onerror=` inside `value="…"` is text, an attribute `onerror=` is not.
fn assert_no_live_script(page: &Page) {
    assert_eq!(page.count("<script"), page.count("<script src=\"/assets/"), "a <script> not ours:\n{}", page.html);
    for tag in page.html.split('<').skip(1).map(|t| t.split('>').next().unwrap()) {
        let mut outside = String::new();
        let mut in_value = false;
        for c in tag.chars() {
            if c == '"' {
                in_value = !in_value;
            } else if !in_value {
                outside.push(c.to_ascii_lowercase());
            }
        }
        assert!(!outside.split_whitespace().any(|w| w.starts_with("on")), "an event handler in <{tag}>");
        assert!(!tag.to_ascii_lowercase().contains("javascript:"), "javascript: in <{tag}>");
        assert!(!outside.starts_with("img ") || tag.contains("src=\"/assets/"), "an image not ours: <{tag}>");
    }
}

fn location(page: &Page) -> String {
    assert_eq!(page.status, 303, "{}", page.html);
    page.headers.get("location").unwrap().to_str().unwrap().to_string()
}

/// Every page of this file's section, for "absent from every page" checks.
async fn every_page(app: &TestApp, extra: &[String]) -> Vec<(String, Page)> {
    let mut paths: Vec<String> = [
        "/",
        "/agents",
        "/workflows",
        "/workflows/new",
        "/webhooks",
        "/webhooks/new",
        "/skills",
        "/skills/new",
        "/bots",
        "/bots/new",
        "/accounts",
        "/settings",
    ]
    .iter()
    .map(|p| p.to_string())
    .collect();
    paths.extend(extra.iter().cloned());
    let mut pages = Vec::new();
    for p in paths {
        let page = app.page(&p).await;
        assert_eq!(page.status, 200, "{p}: {}", page.html);
        pages.push((p, page));
    }
    pages
}

// --- empty database

both_backends!(the_config_pages_render_on_an_empty_database, |backend: Backend| async move {
    let app = TestApp::spawn(backend).await;
    for (path, empty) in [
        ("/workflows", Some("No workflows yet")),
        ("/webhooks", Some("No webhooks yet")),
        ("/bots", Some("No bots yet")),
        ("/accounts", Some("No accounts")),
        ("/skills", None),
        ("/settings", None),
        ("/workflows/new", None),
        ("/webhooks/new", None),
        ("/skills/new", None),
        ("/bots/new", None),
    ] {
        let page = app.page(path).await;
        page.assert_shell().assert_no_injected_script();
        assert!(!page.contains("coming soon"), "{path} is built");
        assert!(!page.contains("rel=\"next\""), "{path}: no pager for an empty list");
        if let Some(text) = empty {
            assert!(page.contains(text), "{path}: {}", page.html);
        }
        assert!(page.contains("aria-current=\"page\""), "{path}: the nav marks the section");
    }
    let bots = app.page("/bots").await;
    assert!(bots.contains("No failed deliveries"), "{}", bots.html);
    for platform in ["discord", "telegram", "slack", "sms"] {
        assert!(bots.contains(&format!("<td>{platform}</td>")), "connector {platform}");
    }
    assert!(bots.contains("<code>DISCORD_BOT_TOKEN</code> <span class=\"state off\">not set</span>"), "{}", bots.html);
    // The builtin skills are there from the start.
    let skills = app.page("/skills").await;
    assert!(skills.contains("<code>summarize</code>"), "{}", skills.html);
    // The conductor made at bootstrap is the settings' conductor.
    let (_, settings) = app.get("/api/settings").await;
    let page = app.page("/settings").await;
    assert!(page.contains(&format!("href=\"/agents/{}\"", settings["conductorAgentId"])), "{}", page.html);
    assert!(page.contains(settings["defaultModel"].as_str().unwrap()));
    // A form with no agent to pick says so.
    let (_, agents) = app.get("/api/agents").await;
    assert!(!agents.as_array().unwrap().is_empty(), "the bootstrap conductor");
    app.stop().await;
});

// --- 10 000 rows

both_backends!(the_workflows_page_pages_10000_workflows_with_their_next_run, |backend: Backend| async move {
    let app = TestApp::spawn(backend).await;
    let id = agent(&app, "sched", "Scheduler agent").await;
    seed::workflows(&app, id, 10_000).await;
    let page = app.page("/workflows").await;
    page.assert_shell().assert_no_injected_script();
    assert_eq!(page.count("<td class=\"next-run\">"), 50, "one page of rows");
    assert!(page.contains("Page 1 of 200 · 10000 items"), "{}", page.html);
    assert!(page.contains(">Bulk workflow 1<") && !page.contains(">Bulk workflow 51<"));
    // The next run shown is the stored one the API reports.
    let (_, list) = app.get("/api/workflows").await;
    let first = &list.as_array().unwrap()[0];
    let next = first["nextRunAt"].as_str().unwrap();
    let shown = format!("<td class=\"next-run\">{} UTC</td>", next[..16].replace('T', " "));
    assert!(page.contains(&shown), "{shown} in the list");
    let last = app.page("/workflows?page=200").await;
    assert!(last.contains(">Bulk workflow 10000<") && !last.contains("rel=\"next\""));
    assert_eq!(app.page("/workflows?page=99999").await.count(">Bulk workflow 10000<"), 1, "past the end: the last");
    app.stop().await;
});

both_backends!(the_webhooks_page_pages_10000_webhooks_without_their_secrets, |backend: Backend| async move {
    let app = TestApp::spawn(backend).await;
    let id = agent(&app, "hooks", "Hook agent").await;
    seed::webhooks(&app, id, 10_000).await;
    let page = app.page("/webhooks").await;
    page.assert_shell().assert_no_injected_script();
    assert!(page.contains("Page 1 of 200 · 10000 items"), "{}", page.html);
    assert_eq!(page.count("<code>/webhook/bulk-"), 50);
    assert_eq!(page.count("class=\"masked\""), 50, "each secret masked");
    let last = app.page("/webhooks?page=200").await;
    assert!(last.contains("<code>/webhook/bulk-10000</code>"));
    let (_, hook) = app.get("/api/webhooks").await;
    let hook_id = hook[0]["id"].as_i64().unwrap();
    for p in [page, last, app.page(&format!("/webhooks/{hook_id}")).await] {
        assert!(!p.contains("bulk-secret-"), "a secret in a page:\n{}", p.html);
    }
    app.stop().await;
});

both_backends!(the_skills_page_pages_10000_skills, |backend: Backend| async move {
    let app = TestApp::spawn(backend).await;
    seed::skills(&app, 10_000).await;
    let page = app.page("/skills").await;
    page.assert_shell().assert_no_injected_script();
    let (_, all) = app.get("/api/skills").await;
    let total = all.as_array().unwrap().len();
    assert!(total > 10_000, "the builtins too");
    let pages = total.div_ceil(50);
    assert!(page.contains(&format!("Page 1 of {pages} · {total} items")), "{}", page.html);
    assert_eq!(page.count("<code>bulk-skill-"), 50, "name order: the bulk skills come first");
    let last = app.page(&format!("/skills?page={pages}")).await;
    assert!(last.contains("<code>web-research</code>"), "the last by name");
    app.stop().await;
});

both_backends!(the_bots_page_pages_10000_bots_and_10000_failed_deliveries, |backend: Backend| async move {
    let app = TestApp::spawn(backend).await;
    let first = seed::bots(&app, 10_000).await;
    seed::failed_deliveries(&app, first, 10_000).await;
    let page = app.page("/bots").await;
    page.assert_shell().assert_no_injected_script();
    assert!(page.contains("Bots (10000)") && page.contains("Failed deliveries (10000)"));
    assert_eq!(page.count("Page 1 of 200 · 10000 items"), 2, "both lists paged");
    assert_eq!(page.count("<span class=\"state bad\">error</span>"), 50, "each bot's status");
    assert!(page.contains("seeded error 1<"), "the last error");
    assert_eq!(page.count("aria-label=\"Retry delivery "), 50);
    let (_, newest) = app.get("/api/deliveries?status=failed&limit=1").await;
    assert!(page.contains(&format!(">{}<", newest[0]["content"].as_str().unwrap())), "newest first, as the API lists");
    // Each list pages on its own, keeping the other's page.
    let later = app.page("/bots?page=3&dpage=200").await;
    assert!(later.contains(">Bulk bot 101<") && !later.contains(">Bulk bot 151<"), "{}", later.html);
    assert_eq!(later.count("aria-label=\"Retry delivery "), 50, "the last page of deliveries is full");
    assert!(later.contains("href=\"/bots?dpage=200&amp;page=4\""), "{}", later.html);
    assert!(later.contains("href=\"/bots?page=3&amp;dpage=199\""), "{}", later.html);
    assert!(!later.contains("dpage=201"), "no page after the last");
    let bot = app.page(&format!("/bots/{first}")).await;
    bot.assert_shell();
    assert!(bot.contains("0 sent · 0 pending · 10000 failed"), "{}", bot.html);
    app.stop().await;
});

both_backends!(the_accounts_page_pages_10000_accounts_without_keys, |backend: Backend| async move {
    let app = TestApp::builder(backend).env("OPENAI_API_KEY", "sk-config-secret-openai-1").start().await;
    seed::accounts(&app, 10_000).await;
    let page = app.page("/accounts").await;
    page.assert_shell().assert_no_injected_script();
    assert!(page.contains("Page 1 of 201 · 10001 items"), "{}", page.html);
    assert_eq!(page.count("aria-label=\"Save "), 50);
    let last = app.page("/accounts?page=201").await;
    assert!(last.contains(">bulk-account-10000<"), "priority order: the highest last");
    for p in [&page, &last] {
        assert!(!p.contains("sk-config-secret-openai-1") && !p.contains("BULK_KEY_") && !p.contains("OPENAI_API_KEY"));
    }
    app.stop().await;
});

both_backends!(pickers_with_10000_agents_take_an_id, |backend: Backend| async move {
    let app = TestApp::spawn(backend).await;
    seed::agents(&app, 10_000).await;
    for path in ["/workflows/new", "/webhooks/new", "/bots/new", "/settings"] {
        let page = app.page(path).await;
        page.assert_shell();
        assert!(page.count("<option") < 20, "{path}: no select of 10 000 agents");
        assert!(page.contains("the agent's id"), "{path}");
    }
    app.stop().await;
});

// --- workflows through the pages

both_backends!(workflows_are_created_edited_toggled_and_deleted_through_the_page, |backend: Backend| async move {
    let app = TestApp::spawn(backend).await;
    let a = agent(&app, "wf", "Workflow agent").await;
    let a_s = a.to_string();
    // A bad schedule: the API's message next to the schedule field, what was typed kept.
    let (status, message) = api_refusal(
        &app,
        "POST",
        "/api/workflows",
        json!({"name": "Digest", "agentId": a, "schedule": "every 3 s", "prompt": "sum up"}),
    )
    .await;
    let form = [("name", "Digest"), ("agentId", a_s.as_str()), ("schedule", "every 3 s"), ("prompt", "sum up")];
    let page = app.post_form("/workflows/new", &form, &[]).await;
    assert_eq!(page.status, status, "{}", page.html);
    assert_eq!(field_error(&page, "schedule").as_deref(), Some(message.as_str()), "{}", page.html);
    assert!(page.contains("value=\"every 3 s\""), "the form keeps the input");
    let (_, message) = api_refusal(
        &app,
        "POST",
        "/api/workflows",
        json!({"name": "Digest", "agentId": a, "schedule": "61 * * * *", "prompt": "sum up"}),
    )
    .await;
    let cron = [("name", "Digest"), ("agentId", a_s.as_str()), ("schedule", "61 * * * *"), ("prompt", "sum up")];
    let page = app.post_form("/workflows/new", &cron, &[]).await;
    assert_eq!(field_error(&page, "schedule").as_deref(), Some(message.as_str()), "{}", page.html);
    // A missing agent: the API's message next to the agent.
    let (_, message) = api_refusal(
        &app,
        "POST",
        "/api/workflows",
        json!({"name": "Digest", "agentId": 99999, "schedule": "every 1 h", "prompt": "sum up"}),
    )
    .await;
    let page = app
        .post_form(
            "/workflows/new",
            &[("name", "Digest"), ("agentId", "99999"), ("schedule", "every 1 h"), ("prompt", "sum up")],
            &[],
        )
        .await;
    assert_eq!(field_error(&page, "agentId").as_deref(), Some(message.as_str()), "{}", page.html);
    // Created.
    let ok = [
        ("name", "Digest"),
        ("agentId", a_s.as_str()),
        ("schedule", "every 1 h"),
        ("prompt", "sum up"),
        ("isEnabled", "on"),
    ];
    let page = app.post_form("/workflows/new", &ok, &[]).await;
    assert_eq!(location(&page), "/workflows");
    let (_, list) = app.get("/api/workflows").await;
    let wf = list[0].clone();
    let id = wf["id"].as_i64().unwrap();
    assert_eq!((wf["name"].as_str(), wf["isEnabled"].as_bool()), (Some("Digest"), Some(true)));
    let next = wf["nextRunAt"].as_str().unwrap();
    let list_page = app.page("/workflows").await;
    assert!(list_page.contains(&format!("{} UTC", next[..16].replace('T', " "))), "{}", list_page.html);
    // Edited; an empty prompt refused with the API's message.
    let (_, message) = api_refusal(&app, "PATCH", &format!("/api/workflows/{id}"), json!({"prompt": " "})).await;
    let bad = [
        ("name", "Digest"),
        ("agentId", a_s.as_str()),
        ("schedule", "every 1 h"),
        ("prompt", " "),
        ("isEnabled", "on"),
    ];
    let page = app.post_form(&format!("/workflows/{id}"), &bad, &[]).await;
    assert_eq!(page.status, 400);
    assert_eq!(field_error(&page, "prompt").as_deref(), Some(message.as_str()));
    let edit = [
        ("name", "Weekly"),
        ("agentId", a_s.as_str()),
        ("schedule", "0 9 * * 1"),
        ("prompt", "week"),
        ("isEnabled", "on"),
    ];
    assert_eq!(location(&app.post_form(&format!("/workflows/{id}"), &edit, &[]).await), format!("/workflows/{id}"));
    let (_, list) = app.get("/api/workflows").await;
    assert_eq!((list[0]["name"].as_str(), list[0]["schedule"].as_str()), (Some("Weekly"), Some("0 9 * * 1")));
    // Disabled: no next run.
    assert_eq!(
        location(&app.post_form(&format!("/workflows/{id}/enabled"), &[("enabled", "false")], &[]).await),
        "/workflows"
    );
    let (_, list) = app.get("/api/workflows").await;
    assert_eq!((list[0]["isEnabled"].as_bool(), &list[0]["nextRunAt"]), (Some(false), &Value::Null));
    let detail = app.page(&format!("/workflows/{id}")).await;
    assert!(detail.contains("<dd class=\"next-run\">—</dd>") && detail.contains("disabled"), "{}", detail.html);
    app.post_form(&format!("/workflows/{id}/enabled"), &[("enabled", "true")], &[]).await;
    assert!(app.get("/api/workflows").await.1[0]["nextRunAt"].is_string(), "enabled again: scheduled");
    // Deleted.
    assert_eq!(location(&app.post_form(&format!("/workflows/{id}/delete"), &[], &[]).await), "/workflows");
    assert_eq!(app.get("/api/workflows").await.1, json!([]));
    assert_eq!(app.page(&format!("/workflows/{id}")).await.status, 404);
    app.stop().await;
});

// --- webhooks: the secret once

both_backends!(a_webhook_secret_is_shown_once_and_never_again, |backend: Backend| async move {
    let app = TestApp::spawn(backend).await;
    let a = agent(&app, "hook", "Hook agent").await.to_string();
    let created = app
        .post_form(
            "/webhooks/new",
            &[("name", "GitHub issues"), ("agentId", &a), ("promptTemplate", "{{payload}}"), ("isEnabled", "on")],
            &[],
        )
        .await;
    assert_eq!(created.status, 200, "{}", created.html);
    created.assert_shell().assert_no_injected_script();
    let (_, list) = app.get("/api/webhooks").await;
    let id = list[0]["id"].as_i64().unwrap();
    let secret = list[0]["secret"].as_str().unwrap().to_string();
    assert_eq!(secret.len(), 64, "generated");
    assert_eq!(created.count(&secret), 1, "the secret once, in the copy field");
    assert!(created.contains("data-copy=\"#webhook-secret\""), "a copy button");
    assert!(created.contains("/webhook/github-issues"));
    let pages = every_page(&app, &[format!("/webhooks/{id}")]).await;
    for (path, page) in &pages {
        assert!(!page.contains(&secret), "the secret on {path}");
    }
    // Editing keeps it hidden (and keeps it).
    let edit =
        [("name", "GitHub"), ("agentId", a.as_str()), ("promptTemplate", "issue: {{payload}}"), ("isEnabled", "on")];
    assert_eq!(location(&app.post_form(&format!("/webhooks/{id}"), &edit, &[]).await), format!("/webhooks/{id}"));
    let detail = app.page(&format!("/webhooks/{id}")).await;
    assert!(!detail.contains(&secret) && detail.contains("class=\"masked\""));
    assert_eq!(app.get("/api/webhooks").await.1[0]["secret"].as_str(), Some(secret.as_str()));
    // A new secret: shown once, the old one gone from the API too.
    let rotated = app.post_form(&format!("/webhooks/{id}/secret"), &[], &[]).await;
    assert_eq!(rotated.status, 200);
    let new_secret = app.get("/api/webhooks").await.1[0]["secret"].as_str().unwrap().to_string();
    assert_ne!(new_secret, secret);
    assert_eq!(rotated.count(&new_secret), 1);
    for (path, page) in every_page(&app, &[format!("/webhooks/{id}")]).await {
        assert!(!page.contains(&new_secret) && !page.contains(&secret), "a secret on {path}");
    }
    app.stop().await;
});

both_backends!(webhook_refusals_show_the_api_message_and_never_echo_a_secret, |backend: Backend| async move {
    let app = TestApp::spawn(backend).await;
    let a = agent(&app, "hook", "Hook agent").await;
    let a_s = a.to_string();
    // Too short a secret: next to the secret field, the typed value not echoed.
    let typed = "short-secret-15";
    let (status, message) =
        api_refusal(&app, "POST", "/api/webhooks", json!({"name": "Alerts", "agentId": a, "secret": typed})).await;
    let page = app.post_form("/webhooks/new", &[("name", "Alerts"), ("agentId", &a_s), ("secret", typed)], &[]).await;
    assert_eq!(page.status, status);
    assert_eq!(field_error(&page, "secret").as_deref(), Some(message.as_str()), "{}", page.html);
    assert!(!page.contains(typed), "the typed secret is not put back");
    assert!(page.contains("value=\"Alerts\""), "the rest is");
    // A name whose URL is taken: the API's 409 above the form, a long typed secret not echoed either.
    let long = "my-own-secret-value-0123456789";
    let first = app.post_form("/webhooks/new", &[("name", "Alerts"), ("agentId", &a_s), ("secret", long)], &[]).await;
    assert_eq!(first.status, 200);
    assert_eq!(first.count(long), 1, "a given secret is shown once too");
    let (status, message) =
        api_refusal(&app, "POST", "/api/webhooks", json!({"name": "alerts!", "agentId": a, "secret": long})).await;
    assert_eq!(status, 409);
    let dup = app.post_form("/webhooks/new", &[("name", "alerts!"), ("agentId", &a_s), ("secret", long)], &[]).await;
    assert_eq!(dup.status, 409);
    assert_eq!(form_errors(&dup), vec![message]);
    assert!(!dup.contains(long));
    // No agent: next to the agent.
    let (_, message) = api_refusal(&app, "POST", "/api/webhooks", json!({"name": "Other", "agentId": 4242})).await;
    let page = app.post_form("/webhooks/new", &[("name", "Other"), ("agentId", "4242")], &[]).await;
    assert_eq!(field_error(&page, "agentId").as_deref(), Some(message.as_str()));
    // Disable, delete.
    let id = app.get("/api/webhooks").await.1[0]["id"].as_i64().unwrap();
    app.post_form(&format!("/webhooks/{id}/enabled"), &[("enabled", "false")], &[]).await;
    assert_eq!(app.get("/api/webhooks").await.1[0]["isEnabled"], false);
    assert!(app.page("/webhooks").await.contains("aria-label=\"Enable Alerts\""));
    assert_eq!(location(&app.post_form(&format!("/webhooks/{id}/delete"), &[], &[]).await), "/webhooks");
    assert_eq!(app.get("/api/webhooks").await.1, json!([]));
    app.stop().await;
});

// --- skills

async fn file_server() -> String {
    use axum::routing::get;
    let app = axum::Router::new().route(
        "/weather.md",
        get(|| async {
            "---\nname: weather\ndescription: The weather <b>now</b>\nkeywords: [weather, rain]\n---\n# Weather\n"
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

both_backends!(skills_are_created_edited_toggled_and_deleted_through_the_page, |backend: Backend| async move {
    let app = TestApp::spawn(backend).await;
    // A pattern that is no regular expression: the API's message next to the patterns.
    let (status, message) = api_refusal(
        &app,
        "POST",
        "/api/skills",
        json!({"name": "deploy", "content": "x", "triggerPatterns": ["(unclosed"]}),
    )
    .await;
    let page = app
        .post_form("/skills/new", &[("name", "deploy"), ("content", "x"), ("triggerPatterns", "(unclosed")], &[])
        .await;
    assert_eq!(page.status, status);
    assert_eq!(field_error(&page, "triggerPatterns").as_deref(), Some(message.as_str()), "{}", page.html);
    let (_, message) = api_refusal(&app, "POST", "/api/skills", json!({"name": "Bad Name", "content": "x"})).await;
    let page = app.post_form("/skills/new", &[("name", "Bad Name"), ("content", "x")], &[]).await;
    assert_eq!(field_error(&page, "name").as_deref(), Some(message.as_str()), "{}", page.html);
    // Created, keywords split at commas, patterns one per line.
    let form = [
        ("name", "deploy"),
        ("displayName", "Deploy"),
        ("triggerKeywords", "deploy, ship it"),
        ("triggerPatterns", "(?i)deploy\n^ship,now$"),
        ("content", "# Deploy\nSteps."),
        ("isEnabled", "on"),
    ];
    let page = app.post_form("/skills/new", &form, &[]).await;
    let to = location(&page);
    let id: i64 = to.trim_start_matches("/skills/").parse().unwrap();
    let (_, skills) = app.get("/api/skills").await;
    let s = skills.as_array().unwrap().iter().find(|s| s["id"] == id).unwrap().clone();
    assert_eq!(s["triggerKeywords"], json!(["deploy", "ship it"]));
    assert_eq!(s["triggerPatterns"], json!(["(?i)deploy", "^ship,now$"]));
    // Edited: an empty display name refused with the API's message.
    let (_, message) = api_refusal(&app, "PATCH", &format!("/api/skills/{id}"), json!({"displayName": " "})).await;
    let page = app.post_form(&format!("/skills/{id}"), &[("displayName", " "), ("content", "x")], &[]).await;
    assert_eq!(field_error(&page, "displayName").as_deref(), Some(message.as_str()));
    let edit = [("displayName", "Deploy it"), ("content", "new steps"), ("triggerKeywords", "deploy")];
    assert_eq!(location(&app.post_form(&format!("/skills/{id}"), &edit, &[]).await), format!("/skills/{id}"));
    let (_, skills) = app.get("/api/skills").await;
    let s = skills.as_array().unwrap().iter().find(|s| s["id"] == id).unwrap().clone();
    assert_eq!(
        (s["displayName"].as_str(), s["isEnabled"].as_bool()),
        (Some("Deploy it"), Some(false)),
        "unticked: off"
    );
    // Toggle.
    app.post_form(&format!("/skills/{id}/enabled"), &[("enabled", "true")], &[]).await;
    let (_, skills) = app.get("/api/skills").await;
    assert_eq!(skills.as_array().unwrap().iter().find(|s| s["id"] == id).unwrap()["isEnabled"], true);
    // A builtin skill cannot be deleted: the API's message, on its page; it has no delete button.
    let builtin = skills.as_array().unwrap().iter().find(|s| s["source"] == "builtin").unwrap()["id"].as_i64().unwrap();
    let (api_status, e) = app.delete(&format!("/api/skills/{builtin}")).await;
    let refused = app.post_form(&format!("/skills/{builtin}/delete"), &[], &[]).await;
    assert_eq!(refused.status, api_status);
    assert_eq!(form_errors(&refused), vec![e["error"].as_str().unwrap().to_string()]);
    let list = app.page("/skills").await;
    assert!(!list.contains(&format!("action=\"/skills/{builtin}/delete\"")));
    assert!(list.contains(&format!("action=\"/skills/{id}/delete\"")));
    // Deleted.
    assert_eq!(location(&app.post_form(&format!("/skills/{id}/delete"), &[], &[]).await), "/skills");
    assert_eq!(app.page(&format!("/skills/{id}")).await.status, 404);
    app.stop().await;
});

both_backends!(skill_import_keeps_the_private_address_guard, |backend: Backend| async move {
    let app = TestApp::spawn(backend).await;
    let base = file_server().await;
    let url = format!("{base}/weather.md");
    let (status, message) = api_refusal(&app, "POST", "/api/skills/import", json!({"url": url})).await;
    assert!(message.contains("refusing to fetch"), "{message}");
    let page = app.post_form("/skills/import", &[("url", &url)], &[]).await;
    assert_eq!(page.status, status);
    page.assert_headers();
    assert!(page.contains("<h1>Skills</h1>"), "the list with the form");
    assert_eq!(field_error(&page, "url").as_deref(), Some(message.as_str()), "{}", page.html);
    assert!(page.contains(&format!("value=\"{url}\"")), "the URL typed is kept");
    let (_, skills) = app.get("/api/skills").await;
    assert!(!skills.as_array().unwrap().iter().any(|s| s["name"] == "weather"), "nothing stored");
    app.stop().await;
});

both_backends!(a_skill_is_imported_from_a_url, |backend: Backend| async move {
    let app = TestApp::builder(backend).env("HTTP_FETCH_ALLOW_PRIVATE", "true").start().await;
    let base = file_server().await;
    let page = app.post_form("/skills/import", &[("url", &format!("{base}/weather.md"))], &[]).await;
    let to = location(&page);
    let detail = app.page(&to).await;
    detail.assert_shell().assert_no_injected_script();
    assert!(detail.contains("<code>weather</code>") && detail.contains("community"));
    assert!(detail.contains("The weather &lt;b&gt;now&lt;/b&gt;"), "escaped: {}", detail.html);
    // Again: the name is taken — the API's 409, next to the URL.
    let (status, message) =
        api_refusal(&app, "POST", "/api/skills/import", json!({"url": format!("{base}/weather.md")})).await;
    let again = app.post_form("/skills/import", &[("url", &format!("{base}/weather.md"))], &[]).await;
    assert_eq!((again.status, field_error(&again, "url")), (status, Some(message)));
    app.stop().await;
});

// --- bots & connectors

both_backends!(bots_are_created_bound_toggled_and_deleted_through_the_page, |backend: Backend| async move {
    let app = TestApp::builder(backend).env("DISCORD_BOT_TOKEN", "discord-config-secret-1").start().await;
    let a1 = agent(&app, "one", "Agent one").await;
    let a2 = agent(&app, "two", "Agent two").await;
    let (a1s, a2s) = (a1.to_string(), a2.to_string());
    // A token that is a secret, not a variable name: the API's message next to it.
    let (status, message) =
        api_refusal(&app, "POST", "/api/bots", json!({"name": "D", "platform": "discord", "token": "MTA4.abc"})).await;
    let page = app.post_form("/bots/new", &[("name", "D"), ("platform", "discord"), ("token", "MTA4.abc")], &[]).await;
    assert_eq!(page.status, status);
    assert_eq!(field_error(&page, "token").as_deref(), Some(message.as_str()), "{}", page.html);
    let (_, message) = api_refusal(
        &app,
        "POST",
        "/api/bots",
        json!({"name": "D", "platform": "discord", "token": "DISCORD_BOT_TOKEN", "settings": {"appToken": "X_APP"}}),
    )
    .await;
    let page = app
        .post_form(
            "/bots/new",
            &[("name", "D"), ("platform", "discord"), ("token", "DISCORD_BOT_TOKEN"), ("appToken", "X_APP")],
            &[],
        )
        .await;
    assert_eq!(field_error(&page, "settings").as_deref(), Some(message.as_str()), "{}", page.html);
    // Created (disabled, so no bridge tries to connect).
    let form = [
        ("name", "Discord main"),
        ("platform", "discord"),
        ("token", "DISCORD_BOT_TOKEN"),
        ("defaultAgentId", a1s.as_str()),
    ];
    let to = location(&app.post_form("/bots/new", &form, &[]).await);
    let id: i64 = to.trim_start_matches("/bots/").parse().unwrap();
    let detail = app.page(&to).await;
    detail.assert_shell().assert_no_injected_script();
    assert!(detail.contains("<code>DISCORD_BOT_TOKEN</code> <span class=\"state on\">set</span>"), "{}", detail.html);
    assert!(detail.contains("<span class=\"state off\">stopped</span>"));
    // Bindings: two channels.
    let bind = [
        ("channelId", "c1"),
        ("agentId", a1s.as_str()),
        ("channelId", "c2"),
        ("agentId", a2s.as_str()),
        ("channelId", ""),
        ("agentId", ""),
    ];
    assert_eq!(
        location(&app.post_form(&format!("/bots/{id}/bindings"), &bind, &[]).await),
        format!("/bots/{id}#bindings")
    );
    let bot = app.bot(id).await;
    assert_eq!(bot["channelBindings"], json!([{"channelId": "c1", "agentId": a1}, {"channelId": "c2", "agentId": a2}]));
    let detail = app.page(&to).await;
    assert!(detail.contains("Channel bindings (2)") && detail.contains("value=\"c2\""));
    // A channel twice, an agent that does not exist: the API's messages next to the editor.
    for (rows, body) in [
        (
            vec![("channelId", "c1"), ("agentId", a1s.as_str()), ("channelId", "c1"), ("agentId", a2s.as_str())],
            json!({"channelBindings": [{"channelId": "c1", "agentId": a1}, {"channelId": "c1", "agentId": a2}]}),
        ),
        (
            vec![("channelId", "c9"), ("agentId", "77777")],
            json!({"channelBindings": [{"channelId": "c9", "agentId": 77777}]}),
        ),
    ] {
        let (status, message) = api_refusal(&app, "PATCH", &format!("/api/bots/{id}"), body).await;
        let page = app.post_form(&format!("/bots/{id}/bindings"), &rows, &[]).await;
        assert_eq!(page.status, status);
        assert_eq!(field_error(&page, "channelBindings").as_deref(), Some(message.as_str()), "{}", page.html);
    }
    assert_eq!(app.bot(id).await["channelBindings"].as_array().unwrap().len(), 2, "unchanged");
    // Emptying a channel removes the row.
    let bind = [("channelId", "c1"), ("agentId", a2s.as_str()), ("channelId", ""), ("agentId", a2s.as_str())];
    app.post_form(&format!("/bots/{id}/bindings"), &bind, &[]).await;
    assert_eq!(app.bot(id).await["channelBindings"], json!([{"channelId": "c1", "agentId": a2}]));
    // Edit: renamed, no default agent.
    let edit = [("name", "Discord"), ("platform", "discord"), ("token", "DISCORD_BOT_TOKEN"), ("defaultAgentId", "")];
    app.post_form(&format!("/bots/{id}"), &edit, &[]).await;
    let bot = app.bot(id).await;
    assert_eq!(
        (bot["name"].as_str(), &bot["defaultAgentId"], bot["isEnabled"].as_bool()),
        (Some("Discord"), &Value::Null, Some(false))
    );
    // Enable, disable through the list's buttons.
    app.post_form(&format!("/bots/{id}/enabled"), &[("enabled", "true")], &[]).await;
    assert_eq!(app.bot(id).await["isEnabled"], true);
    app.post_form(&format!("/bots/{id}/enabled"), &[("enabled", "false")], &[]).await;
    assert_eq!(app.bot(id).await["isEnabled"], false);
    // The token's value is on no page.
    for (path, page) in every_page(&app, std::slice::from_ref(&to)).await {
        assert!(!page.contains("discord-config-secret-1"), "the token on {path}");
    }
    assert_eq!(location(&app.post_form(&format!("/bots/{id}/delete"), &[], &[]).await), "/bots");
    assert_eq!(app.get("/api/bots").await.1, json!([]));
    app.stop().await;
});

both_backends!(failed_deliveries_are_listed_and_retried, |backend: Backend| async move {
    let app = TestApp::spawn(backend).await;
    let bot = seed::bots(&app, 1).await;
    seed::failed_deliveries(&app, bot, 3).await;
    let page = app.page("/bots").await;
    assert!(page.contains("Failed deliveries (3)") && page.contains(">refused 2<"), "{}", page.html);
    let (_, failed) = app.get("/api/deliveries?status=failed").await;
    let id = failed[0]["id"].as_i64().unwrap();
    assert_eq!(location(&app.post_form(&format!("/bots/deliveries/{id}/retry"), &[], &[]).await), "/bots#deliveries");
    let (_, pending) = app.get("/api/deliveries?status=pending").await;
    assert_eq!(pending[0]["id"].as_i64(), Some(id), "retried: pending again");
    assert!(app.page("/bots").await.contains("Failed deliveries (2)"));
    // Not failed any more: the API's 409 and its message.
    let (status, message) =
        api_refusal(&app, "PATCH", &format!("/api/deliveries/{id}"), json!({"action": "retry"})).await;
    let again = app.post_form(&format!("/bots/deliveries/{id}/retry"), &[], &[]).await;
    assert_eq!(again.status, status);
    assert_eq!(form_errors(&again), vec![message]);
    assert_eq!(app.post_form("/bots/deliveries/987654/retry", &[], &[]).await.status, 404);
    app.stop().await;
});

// --- accounts

both_backends!(accounts_are_edited_with_the_api_rules_and_keys_are_never_shown, |backend: Backend| async move {
    let app = TestApp::builder(backend)
        .env("OPENAI_API_KEY", "sk-config-secret-openai-2")
        .env("ANTHROPIC_API_KEY", "sk-ant-config-secret-3")
        .start()
        .await;
    let (_, list) = app.get("/api/accounts").await;
    let openai = list.as_array().unwrap().iter().find(|a| a["provider"] == "openai").unwrap().clone();
    let id = openai["id"].as_i64().unwrap();
    app.deps.store.mark_rate_limited(id, arvis_shared::clock::now_ms() + 3_600_000).await.unwrap();
    let page = app.page("/accounts").await;
    page.assert_shell().assert_no_injected_script();
    let (_, list) = app.get("/api/accounts").await;
    let until = list.as_array().unwrap().iter().find(|a| a["id"] == id).unwrap()["rateLimitedUntil"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        page.contains(&format!("<span class=\"state bad\">{} UTC</span>", until[..16].replace('T', " "))),
        "{}",
        page.html
    );
    for secret in ["sk-config-secret-openai-2", "sk-ant-config-secret-3", "OPENAI_API_KEY", "ANTHROPIC_API_KEY"] {
        assert!(!page.contains(secret), "{secret} on the page");
    }
    // Refusals: the API's message next to the field, in the account's row.
    for (form_priority, form_model, json_body, field) in [
        ("high", "gpt-4o", json!({"priority": "high"}), "priority"),
        ("-1", "gpt-4o", json!({"priority": -1}), "priority"),
        ("3", "a b", json!({"model": "a b"}), "model"),
    ] {
        let (status, message) = api_refusal(&app, "PATCH", &format!("/api/accounts/{id}"), json_body).await;
        let page = app
            .post_form(
                &format!("/accounts/{id}"),
                &[("priority", form_priority), ("model", form_model), ("isActive", "on")],
                &[],
            )
            .await;
        assert_eq!(page.status, status, "{}", page.html);
        assert_eq!(field_error(&page, field).as_deref(), Some(message.as_str()), "{}", page.html);
        assert!(page.contains(&format!("value=\"{form_model}\"")), "what was typed is kept");
    }
    // Saved: priority, inactive (unticked), model.
    let page = app
        .post_form(&format!("/accounts/{id}"), &[("priority", "7"), ("model", "gpt-4o-mini"), ("page", "1")], &[])
        .await;
    assert_eq!(location(&page), "/accounts?page=1");
    let (_, list) = app.get("/api/accounts").await;
    let a = list.as_array().unwrap().iter().find(|a| a["id"] == id).unwrap().clone();
    assert_eq!(
        (a["priority"].as_i64(), a["isActive"].as_bool(), a["model"].as_str()),
        (Some(7), Some(false), Some("gpt-4o-mini"))
    );
    for (path, page) in every_page(&app, &[]).await {
        for secret in ["sk-config-secret-openai-2", "sk-ant-config-secret-3"] {
            assert!(!page.contains(secret), "{secret} on {path}");
        }
    }
    assert_eq!(app.post_form("/accounts/99999", &[("priority", "1"), ("model", "m")], &[]).await.status, 404);
    app.stop().await;
});

// --- settings

both_backends!(settings_follow_the_api_rules, |backend: Backend| async move {
    let app = TestApp::spawn(backend).await;
    let a = agent(&app, "boss", "Boss").await;
    let (status, message) = api_refusal(&app, "PATCH", "/api/settings", json!({"conductorAgentId": 99999})).await;
    let page =
        app.post_form("/settings", &[("conductorAgentId", "99999"), ("defaultModel", "openai/gpt-6-luna")], &[]).await;
    assert_eq!(page.status, status);
    assert_eq!(field_error(&page, "conductorAgentId").as_deref(), Some(message.as_str()), "{}", page.html);
    let (status, message) = api_refusal(&app, "PATCH", "/api/settings", json!({"defaultModel": "no model here"})).await;
    let page = app
        .post_form("/settings", &[("conductorAgentId", &a.to_string()), ("defaultModel", "no model here")], &[])
        .await;
    assert_eq!(page.status, status);
    assert_eq!(field_error(&page, "defaultModel").as_deref(), Some(message.as_str()), "{}", page.html);
    assert!(page.contains("value=\"no model here\""));
    let before = app.get("/api/settings").await.1;
    assert_ne!(before["conductorAgentId"].as_i64(), Some(a), "nothing saved by a refusal");
    let page = app
        .post_form(
            "/settings",
            &[("conductorAgentId", &a.to_string()), ("defaultModel", "anthropic/claude-haiku-4-5")],
            &[],
        )
        .await;
    assert_eq!(location(&page), "/settings");
    let (_, s) = app.get("/api/settings").await;
    assert_eq!(
        (s["conductorAgentId"].as_i64(), s["defaultModel"].as_str()),
        (Some(a), Some("anthropic/claude-haiku-4-5"))
    );
    let page = app.page("/settings").await;
    assert!(page.contains(&format!("<a href=\"/agents/{a}\">Boss</a>")), "{}", page.html);
    // The conductor cannot be deleted now (the Agents page's rule follows the setting).
    assert_eq!(app.delete(&format!("/api/agents/{a}")).await.0, 409);
    app.stop().await;
});

// --- hostile text and configured secrets

both_backends!(hostile_text_is_escaped_and_no_configured_secret_is_on_any_page, |backend: Backend| async move {
    let app = TestApp::builder(backend)
        .env("TELEGRAM_BOT_TOKEN", "123456:telegram-config-secret")
        .env("SLACK_BOT_TOKEN", "xoxb-slack-config-secret")
        .env("SLACK_APP_TOKEN", "xapp-slack-config-secret")
        .env("OPENAI_API_KEY", "sk-openai-config-secret")
        .start()
        .await;
    let evil = "<img src=x onerror=alert(1)>";
    let script = "<script>alert('x')</script>";
    let a = agent(&app, "evil", evil).await;
    let (s, wf) = app
        .post(
            "/api/workflows",
            json!({"name": script, "agentId": a, "schedule": "every 1 h", "prompt": evil, "channelId": evil}),
        )
        .await;
    assert_eq!(s, 201, "{wf}");
    let (s, wh) = app
        .post("/api/webhooks", json!({"name": format!("{script} hook"), "agentId": a, "promptTemplate": evil}))
        .await;
    assert_eq!(s, 201, "{wh}");
    let (s, sk) = app
        .post("/api/skills", json!({"name": "evil", "displayName": script, "description": evil, "content": script, "triggerKeywords": [evil]}))
        .await;
    assert_eq!(s, 201, "{sk}");
    let (s, bot) = app
        .post(
            "/api/bots",
            json!({"name": script, "platform": "telegram", "token": "TELEGRAM_BOT_TOKEN",
            "channelBindings": [{"channelId": evil, "agentId": a}]}),
        )
        .await;
    assert_eq!(s, 201, "{bot}");
    let bot_id = bot["id"].as_i64().unwrap();
    seed::failed_deliveries(&app, bot_id, 1).await;
    let pool = app.db.pool().await;
    sqlx::query("UPDATE deliveries SET content = $1, last_error = $2")
        .bind(script)
        .bind(evil)
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("UPDATE bots SET status = 'error', last_error = $1").bind(script).execute(&pool).await.unwrap();
    pool.close().await;
    let (_, hooks) = app.get("/api/webhooks").await;
    let hook_secret = hooks[0]["secret"].as_str().unwrap().to_string();
    let extra = [
        format!("/workflows/{}", wf["id"]),
        format!("/webhooks/{}", wh["id"]),
        format!("/skills/{}", sk["id"]),
        format!("/bots/{bot_id}"),
    ];
    let secrets = [
        "123456:telegram-config-secret",
        "xoxb-slack-config-secret",
        "xapp-slack-config-secret",
        "sk-openai-config-secret",
        hook_secret.as_str(),
    ];
    let mut escaped_seen = 0;
    for (path, page) in every_page(&app, &extra).await {
        page.assert_shell();
        assert_no_live_script(&page);
        assert!(!page.contains(script) && !page.contains(evil), "raw hostile text on {path}");
        if page.contains("&lt;script&gt;alert(") || page.contains("&lt;img src=x onerror=alert(1)&gt;") {
            escaped_seen += 1;
        }
        for secret in secrets {
            assert!(!page.contains(secret), "a configured secret on {path}");
        }
    }
    assert!(escaped_seen >= 12, "the hostile names show, escaped, on the pages: {escaped_seen}");
    // The bot's page shows its error and binding, escaped.
    let page = app.page(&format!("/bots/{bot_id}")).await;
    assert!(page.contains("Last error: &lt;script&gt;"), "{}", page.html);
    assert!(page.contains("value=\"&lt;img src=x onerror=alert(1)&gt;\""), "{}", page.html);
    let page = app.page("/bots").await;
    assert!(page.contains("<span class=\"state bad\">error</span>"));
    assert!(page.contains("<code>TELEGRAM_BOT_TOKEN</code> <span class=\"state on\">set</span>"));
    assert!(page.contains("<code>SLACK_APP_TOKEN</code> <span class=\"state on\">set</span>"));
    app.stop().await;
});
