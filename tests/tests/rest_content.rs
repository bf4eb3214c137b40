//! Skills (with import from a loopback server), workflows and webhooks, on
//! both databases.

#![expect(clippy::unwrap_used)] // a test fails by panicking

use arvis_testkit::{TestApp, both_backends};
use serde_json::{Value, json};

async fn agent(app: &TestApp, slug: &str) -> i64 {
    let (s, a) = app.post("/api/agents", json!({"slug": slug, "name": format!("Agent {slug}")})).await;
    assert_eq!(s, 201, "{a}");
    a["id"].as_i64().unwrap()
}

/// Serves fixed files on a loopback port; returns its base URL.
async fn file_server() -> String {
    use axum::routing::get;
    let big = "x".repeat(300 * 1024);
    let app = axum::Router::new()
        .route(
            "/btc.md",
            get(|| async {
                "---\nname: bitcoin-price\ndisplayName: Bitcoin Price\ndescription: Fetches current BTC/USD price\n\
                 keywords: [bitcoin, btc, price]\npatterns: [\"(?i)\\\\bbtc\\\\b\"]\n---\n# Bitcoin\nLook up the price.\n"
            }),
        )
        .route("/plain.md", get(|| async { "# Just markdown\nNo front matter." }))
        .route("/noname.md", get(|| async { "---\ndescription: nameless\n---\nbody\n" }))
        .route("/badregex.md", get(|| async { "---\nname: bad-regex\npatterns: [\"(unclosed\"]\n---\nbody\n" }))
        .route("/big.md", get(move || async move { format!("---\nname: big\n---\n{big}") }))
        .route("/page.html", get(|| async { axum::response::Html("---\nname: html\n---\n<p>a web page</p>") }))
        .route("/moved.md", get(|| async { axum::response::Redirect::temporary("/btc.md") }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

both_backends!(skills_builtin_crud_and_validation, |backend| async move {
    let app = TestApp::spawn(backend).await;
    let (s, list) = app.get("/api/skills").await;
    assert_eq!(s, 200);
    let builtins: Vec<&Value> = list.as_array().unwrap().iter().filter(|s| s["source"] == "builtin").collect();
    assert!(builtins.len() >= 3, "{list}");
    for b in &builtins {
        for f in [
            "id",
            "name",
            "displayName",
            "description",
            "triggerKeywords",
            "triggerPatterns",
            "isEnabled",
            "source",
            "content",
        ] {
            assert!(b.get(f).is_some(), "missing {f} in {b}");
        }
    }
    let summarize = builtins.iter().find(|s| s["name"] == "summarize").unwrap();
    let builtin_id = summarize["id"].as_i64().unwrap();

    let (s, created) = app
        .post(
            "/api/skills",
            json!({"name": "my-skill", "displayName": "My Skill", "description": "Does something useful",
                   "triggerKeywords": ["keyword1", "keyword2"], "content": "# My Skill\nDo X when triggered."}),
        )
        .await;
    assert_eq!(s, 201, "{created}");
    assert_eq!(created["source"], "community");
    assert_eq!(created["isEnabled"], true);
    assert_eq!(created["triggerPatterns"], json!([]));
    let id = created["id"].as_i64().unwrap();
    assert_eq!(app.post("/api/skills", json!({"name": "my-skill", "content": "x"})).await.0, 409);
    assert_eq!(app.post("/api/skills", json!({"name": "summarize", "content": "x"})).await.0, 409);

    let (s, p) = app
        .patch(
            &format!("/api/skills/{id}"),
            json!({"isEnabled": false, "triggerPatterns": ["^do (x|y)$"], "content": "new"}),
        )
        .await;
    assert_eq!(s, 200, "{p}");
    assert_eq!((p["isEnabled"].as_bool(), p["content"].as_str()), (Some(false), Some("new")));
    assert_eq!(p["triggerPatterns"], json!(["^do (x|y)$"]));
    assert_eq!(p["displayName"], "My Skill");
    let (s, e) = app.patch(&format!("/api/skills/{id}"), json!({"triggerPatterns": ["(unclosed"]})).await;
    assert_eq!(s, 400);
    assert!(e["error"].as_str().unwrap().contains("regular expression"), "{e}");
    assert_eq!(app.patch(&format!("/api/skills/{id}"), json!({"name": "rename"})).await.0, 400, "name is not editable");
    assert_eq!(app.patch(&format!("/api/skills/{id}"), json!({"source": "builtin"})).await.0, 400);
    assert_eq!(app.patch("/api/skills/99999", json!({"isEnabled": true})).await.0, 404);

    for (body, needle) in [
        (json!({"name": "Bad Name", "content": "x"}), "name"),
        (json!({"name": "ok", "content": ""}), "content"),
        (json!({"name": "ok"}), "content"),
        (json!({"name": "ok", "content": "x", "triggerPatterns": ["[z-a]"]}), "triggerPatterns"),
        (json!({"name": "ok", "content": "x", "triggerKeywords": "bitcoin"}), "triggerKeywords"),
        (json!({"name": "ok", "content": "nul\u{0}"}), "NUL"),
    ] {
        let (s, e) = app.post("/api/skills", body.clone()).await;
        assert_eq!(s, 400, "{body}: {e}");
        assert!(e["error"].as_str().unwrap().contains(needle), "{body}: {e}");
    }

    // Builtins can be disabled but not deleted.
    assert_eq!(app.patch(&format!("/api/skills/{builtin_id}"), json!({"isEnabled": false})).await.0, 200);
    let (s, e) = app.delete(&format!("/api/skills/{builtin_id}")).await;
    assert_eq!(s, 400);
    assert!(e["error"].as_str().unwrap().contains("builtin"));
    assert_eq!(app.delete(&format!("/api/skills/{id}")).await, (200, json!({"ok": true})));
    assert_eq!(app.delete(&format!("/api/skills/{id}")).await.0, 404);

    // A restart refreshes builtins but keeps their enabled flag.
    arvis_shared::bootstrap::prepare(&app.deps.store, &app.deps.config).await.unwrap();
    let (_, list) = app.get("/api/skills").await;
    let again = list.as_array().unwrap().iter().find(|s| s["name"] == "summarize").unwrap().clone();
    assert_eq!(again["isEnabled"], false);
    assert_eq!(again["id"], builtin_id);
});

both_backends!(skills_import_refuses_private_addresses_by_default, |backend| async move {
    let app = TestApp::spawn(backend).await;
    let base = file_server().await;
    let port = base.rsplit(':').next().unwrap();
    // The file is there, but on loopback: refused (after resolution for a name), nothing stored.
    for url in [format!("{base}/btc.md"), format!("http://localhost:{port}/btc.md"), "http://10.1.2.3/x.md".into()] {
        let (s, e) = app.post("/api/skills/import", json!({"url": url})).await;
        assert_eq!(s, 400, "{url}: {e}");
        assert!(e["error"].as_str().unwrap().contains("refusing to fetch"), "{url}: {e}");
    }
    let (_, list) = app.get("/api/skills").await;
    assert!(!list.as_array().unwrap().iter().any(|s| s["name"] == "bitcoin-price"));
});

both_backends!(skills_import_from_a_url, |backend| async move {
    // The file server is on loopback: the operator allows private addresses.
    let app = TestApp::builder(backend).env("HTTP_FETCH_ALLOW_PRIVATE", "true").start().await;
    let base = file_server().await;
    let (s, skill) = app.post("/api/skills/import", json!({"url": format!("{base}/moved.md")})).await;
    assert_eq!(s, 201, "a redirect is followed: {skill}");
    assert_eq!(app.delete(&format!("/api/skills/{}", skill["id"])).await.0, 200);
    let (s, skill) = app.post("/api/skills/import", json!({"url": format!("{base}/btc.md")})).await;
    assert_eq!(s, 201, "{skill}");
    assert_eq!(skill["name"], "bitcoin-price");
    assert_eq!(skill["displayName"], "Bitcoin Price");
    assert_eq!(skill["description"], "Fetches current BTC/USD price");
    assert_eq!(skill["triggerKeywords"], json!(["bitcoin", "btc", "price"]));
    assert_eq!(skill["triggerPatterns"], json!(["(?i)\\bbtc\\b"]));
    assert_eq!(skill["source"], "community");
    assert_eq!(skill["content"], "# Bitcoin\nLook up the price.\n");
    assert_eq!(app.post("/api/skills/import", json!({"url": format!("{base}/btc.md")})).await.0, 409);

    for (url, needle) in [
        (format!("{base}/plain.md"), "front matter"),
        (format!("{base}/noname.md"), "name"),
        (format!("{base}/badregex.md"), "regular expression"),
        (format!("{base}/big.md"), "256 KiB"),
        (format!("{base}/missing.md"), "404"),
        ("ftp://example.com/skill.md".to_string(), "http"),
        ("file:///etc/passwd".to_string(), "http"),
        ("not a url".to_string(), "url"),
        ("http://127.0.0.1:1/unreachable.md".to_string(), "cannot import"),
        (format!("{base}/page.html"), "not a markdown or plain-text file"),
    ] {
        let (s, e) = app.post("/api/skills/import", json!({"url": url})).await;
        assert_eq!(s, 400, "{url}: {e}");
        assert!(e["error"].as_str().unwrap().contains(needle), "{url}: {e}");
    }
    assert_eq!(app.post("/api/skills/import", json!({})).await.0, 400);
    assert_eq!(app.post("/api/skills/import", json!({"url": "http://x", "extra": 1})).await.0, 400);
});

both_backends!(workflows_crud_and_schedules, |backend| async move {
    let app = TestApp::spawn(backend).await;
    let a = agent(&app, "reporter").await;
    let before = arvis_shared::clock::now_ms();
    let (s, w) = app
        .post(
            "/api/workflows",
            json!({"name": "Daily Digest", "agentId": a, "schedule": "0 9 * * *",
                                       "prompt": "Generate today's summary."}),
        )
        .await;
    assert_eq!(s, 201, "{w}");
    for f in [
        "id",
        "name",
        "agentId",
        "agentName",
        "schedule",
        "prompt",
        "channelId",
        "platform",
        "isEnabled",
        "lastRunAt",
        "nextRunAt",
    ] {
        assert!(w.get(f).is_some(), "missing {f} in {w}");
    }
    assert_eq!(w["agentName"], "Agent reporter");
    assert_eq!(w["isEnabled"], true);
    assert_eq!(w["lastRunAt"], Value::Null);
    let next = w["nextRunAt"].as_str().unwrap().to_string();
    assert!(next.contains("T09:00:00"), "{next}");
    let id = w["id"].as_i64().unwrap();

    // Mondays at 9: the next run is a Monday.
    let (s, w) = app.patch(&format!("/api/workflows/{id}"), json!({"schedule": "0 9 * * 1"})).await;
    assert_eq!(s, 200, "{w}");
    let next = w["nextRunAt"].as_str().unwrap();
    let date = time::OffsetDateTime::parse(next, &time::format_description::well_known::Rfc3339).unwrap();
    assert_eq!(date.weekday(), time::Weekday::Monday, "{next}");
    assert!(date.unix_timestamp() * 1000 > before);

    // Disable clears the next run; enabling computes it again.
    let (_, w) = app.patch(&format!("/api/workflows/{id}"), json!({"isEnabled": false})).await;
    assert_eq!((w["isEnabled"].as_bool(), w["nextRunAt"].is_null()), (Some(false), true));
    let (_, w) = app.patch(&format!("/api/workflows/{id}"), json!({"isEnabled": true, "schedule": "every 30s"})).await;
    let next =
        time::OffsetDateTime::parse(w["nextRunAt"].as_str().unwrap(), &time::format_description::well_known::Rfc3339)
            .unwrap();
    let delta_ms = next.unix_timestamp() * 1000 - arvis_shared::clock::now_ms();
    assert!((20_000..=31_000).contains(&delta_ms), "{delta_ms}");
    // A prompt edit keeps the scheduled time.
    let (_, w2) = app.patch(&format!("/api/workflows/{id}"), json!({"prompt": "Other"})).await;
    assert_eq!(w2["nextRunAt"], w["nextRunAt"]);
    assert_eq!(w2["prompt"], "Other");
    let (_, w3) =
        app.patch(&format!("/api/workflows/{id}"), json!({"channelId": "updates", "platform": "discord"})).await;
    assert_eq!((w3["channelId"].as_str(), w3["platform"].as_str()), (Some("updates"), Some("discord")));
    let (_, w3) = app.patch(&format!("/api/workflows/{id}"), json!({"channelId": null})).await;
    assert_eq!((w3["channelId"].clone(), w3["platform"].as_str()), (Value::Null, Some("discord")));

    for (body, needle) in [
        (json!({"name": "x", "agentId": a, "schedule": "0 0 9 * * 1", "prompt": "p"}), "5-field"),
        (json!({"name": "x", "agentId": a, "schedule": "garbage here now x y", "prompt": "p"}), "schedule"),
        (json!({"name": "x", "agentId": a, "schedule": "61 * * * *", "prompt": "p"}), "schedule"),
        (json!({"name": "x", "agentId": a, "schedule": "every 5s", "prompt": "p"}), "10 seconds"),
        (json!({"name": "x", "agentId": a, "schedule": "", "prompt": "p"}), "schedule"),
        (json!({"name": "x", "agentId": 99999, "schedule": "0 9 * * *", "prompt": "p"}), "agentId"),
        (json!({"name": "", "agentId": a, "schedule": "0 9 * * *", "prompt": "p"}), "name"),
        (json!({"name": "x", "agentId": a, "schedule": "0 9 * * *", "prompt": ""}), "prompt"),
        (json!({"name": "x", "agentId": a, "schedule": "0 9 * * *"}), "prompt"),
        (json!({"name": "x", "agentId": a, "schedule": "0 9 * * *", "prompt": "p", "cron": "x"}), "cron"),
    ] {
        let (s, e) = app.post("/api/workflows", body.clone()).await;
        assert_eq!(s, 400, "{body}: {e}");
        assert!(e["error"].as_str().unwrap().contains(needle), "{body}: {e}");
    }
    assert_eq!(app.patch(&format!("/api/workflows/{id}"), json!({"agentId": 99999})).await.0, 400);
    assert_eq!(app.patch(&format!("/api/workflows/{id}"), json!({"schedule": "0 9 * *"})).await.0, 400);
    assert_eq!(app.patch("/api/workflows/99999", json!({"isEnabled": true})).await.0, 404);
    let (_, list) = app.get("/api/workflows").await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(app.delete(&format!("/api/workflows/{id}")).await, (200, json!({"ok": true})));
    assert_eq!(app.delete(&format!("/api/workflows/{id}")).await.0, 404);
});

both_backends!(webhooks_crud, |backend| async move {
    let app = TestApp::spawn(backend).await;
    let a = agent(&app, "hooks").await;
    let (s, w) = app.post("/api/webhooks", json!({"name": "GitHub Issues", "agentId": a})).await;
    assert_eq!(s, 201, "{w}");
    for f in [
        "id",
        "name",
        "url",
        "secret",
        "agentId",
        "isEnabled",
        "promptTemplate",
        "channelId",
        "platform",
        "triggerCount",
        "lastTriggeredAt",
    ] {
        assert!(w.get(f).is_some(), "missing {f} in {w}");
    }
    assert_eq!(w["url"], "/webhook/github-issues");
    let secret = w["secret"].as_str().unwrap();
    assert_eq!(secret.len(), 64);
    assert!(secret.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!((w["triggerCount"].as_i64(), w["isEnabled"].as_bool()), (Some(0), Some(true)));
    let id = w["id"].as_i64().unwrap();

    let (s, w2) = app
        .post("/api/webhooks", json!({"name": "Deploys!", "agentId": a, "secret": "my-own-shared-secret-123", "promptTemplate": "Deploy: {{payload}}"}))
        .await;
    assert_eq!(s, 201, "{w2}");
    assert_eq!(w2["secret"], "my-own-shared-secret-123");
    assert_eq!(w2["url"], "/webhook/deploys");
    assert_eq!(app.post("/api/webhooks", json!({"name": "github issues", "agentId": a})).await.0, 409, "same path");
    assert_eq!(app.post("/api/webhooks", json!({"name": "GitHub-Issues", "agentId": a})).await.0, 409);

    let (s, p) = app.patch(&format!("/api/webhooks/{id}"), json!({"name": "Renamed", "isEnabled": false})).await;
    assert_eq!(s, 200, "{p}");
    assert_eq!((p["name"].as_str(), p["isEnabled"].as_bool()), (Some("Renamed"), Some(false)));
    assert_eq!(p["url"], "/webhook/github-issues", "renaming keeps the URL");
    assert_eq!(p["secret"], w["secret"]);

    for (body, needle) in [
        (json!({"name": "!!!", "agentId": a}), "name"),
        (json!({"name": "x", "agentId": 99999}), "agentId"),
        (json!({"name": "x", "agentId": a, "secret": "short"}), "secret"),
        (json!({"agentId": a}), "name"),
        (json!({"name": "x", "agentId": a, "path": "y"}), "path"),
    ] {
        let (s, e) = app.post("/api/webhooks", body.clone()).await;
        assert_eq!(s, 400, "{body}: {e}");
        assert!(e["error"].as_str().unwrap().contains(needle), "{body}: {e}");
    }
    assert_eq!(app.patch(&format!("/api/webhooks/{id}"), json!({"agentId": 99999})).await.0, 400);
    assert_eq!(app.patch("/api/webhooks/99999", json!({"isEnabled": true})).await.0, 404);
    let (_, list) = app.get("/api/webhooks").await;
    assert_eq!(list.as_array().unwrap().len(), 2);
    assert_eq!(app.delete(&format!("/api/webhooks/{id}")).await, (200, json!({"ok": true})));
    assert_eq!(app.delete(&format!("/api/webhooks/{id}")).await.0, 404);
    // The path is free again.
    assert_eq!(app.post("/api/webhooks", json!({"name": "GitHub Issues", "agentId": a})).await.0, 201);
});
