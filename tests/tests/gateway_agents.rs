//! Agents CRUD and the API's handling of bad input, on both databases.

use arvis_testkit::{TestApp, both_backends};
use reqwest::Method;
use serde_json::json;

both_backends!(agents_crud_follows_the_reference, |backend| async move {
    let app = TestApp::spawn(backend).await;
    // The conductor exists from the first start and is recorded in the settings.
    let (_, agents) = app.get("/api/agents").await;
    assert_eq!(agents.as_array().unwrap().len(), 1);
    let conductor_id = agents[0]["id"].as_i64().unwrap();
    assert_eq!(agents[0]["role"], "conductor");

    let (status, created) = app
        .post(
            "/api/agents",
            json!({"slug": "support", "name": "Support Bot", "role": "specialist",
                   "model": "anthropic/claude-haiku-4-5-20251001", "systemPrompt": "You are a helpful support agent.",
                   "allowedTools": ["web_search"], "temperature": 0.7, "maxTokens": 4096}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    for field in [
        "id",
        "slug",
        "name",
        "role",
        "model",
        "systemPrompt",
        "allowedTools",
        "temperature",
        "maxTokens",
        "isActive",
        "createdBy",
    ] {
        assert!(created.get(field).is_some(), "missing {field} in {created}");
    }
    assert_eq!(created["isActive"], true);
    assert_eq!(created["createdBy"], serde_json::Value::Null);
    let id = created["id"].as_i64().unwrap();

    let (status, body) = app.post("/api/agents", json!({"slug": "support", "name": "Again"})).await;
    assert_eq!(status, 409, "{body}");
    assert!(body["error"].as_str().unwrap().contains("slug"));

    let (status, patched) = app.patch(&format!("/api/agents/{id}"), json!({"isActive": false})).await;
    assert_eq!(status, 200);
    assert_eq!(patched["isActive"], false);
    assert_eq!(patched["name"], "Support Bot", "untouched fields keep their value");

    let (_, list) = app.get("/api/agents").await;
    assert_eq!(list.as_array().unwrap().len(), 2);
    assert_eq!(list[1]["isActive"], false);

    assert_eq!(app.delete(&format!("/api/agents/{conductor_id}")).await.0, 409);
    assert_eq!(app.delete(&format!("/api/agents/{id}")).await, (200, json!({"ok": true})));
    assert_eq!(app.delete(&format!("/api/agents/{id}")).await.0, 404);
    assert_eq!(app.patch(&format!("/api/agents/{id}"), json!({"name": "x"})).await.0, 404);
});

both_backends!(invalid_agents_are_refused_and_nothing_is_written, |backend| async move {
    let app = TestApp::spawn(backend).await;
    let cases = [
        (json!({"name": "No slug"}), "slug"),
        (json!({"slug": "no-name"}), "name"),
        (json!({"slug": "Bad Slug!", "name": "x"}), "slug"),
        (json!({"slug": "ok", "name": "x", "role": "wizard"}), "role"),
        (json!({"slug": "ok", "name": "x", "temperature": 2.5}), "temperature"),
        (json!({"slug": "ok", "name": "x", "temperature": -0.1}), "temperature"),
        (json!({"slug": "ok", "name": "x", "maxTokens": 0}), "maxTokens"),
        (json!({"slug": "ok", "name": "x", "model": "nosuch/model"}), "model"),
        (json!({"slug": "ok", "name": "x", "allowedTools": "calculate"}), "allowedTools"),
        (json!({"slug": "ok", "name": "x", "unknownField": 1}), "unknownField"),
        (json!({"slug": "ok", "name": "nul\u{0}byte"}), "NUL"),
        (json!([1, 2]), ""),
    ];
    for (body, needle) in cases {
        let (status, resp) = app.post("/api/agents", body.clone()).await;
        assert_eq!(status, 400, "{body} → {resp}");
        let msg = resp["error"].as_str().unwrap_or_else(|| panic!("no error text for {body}: {resp}"));
        assert!(msg.contains(needle), "{body}: {msg:?} should mention {needle}");
    }
    let (status, resp) = app.patch("/api/agents/1", json!({"temperature": 9})).await;
    assert_eq!(status, 400, "{resp}");
    let (_, list) = app.get("/api/agents").await;
    assert_eq!(list.as_array().unwrap().len(), 1, "nothing but the conductor was written");
    assert_eq!(list[0]["temperature"], 0.7);
});

both_backends!(malformed_requests_get_json_errors_never_500, |backend| async move {
    let app = TestApp::spawn(backend).await;
    let raw = |method: Method, path: &str, ctype: Option<&str>, body: Vec<u8>| {
        let mut req = app.client.request(method, app.url(path)).body(body);
        if let Some(c) = ctype {
            req = req.header("content-type", c);
        }
        async move {
            let r = req.send().await.unwrap();
            let status = r.status().as_u16();
            let json: serde_json::Value = r.json().await.expect("every error is JSON");
            (status, json)
        }
    };
    let (s, b) = raw(Method::POST, "/api/agents", Some("application/json"), b"{not json".to_vec()).await;
    assert_eq!(s, 400);
    assert!(b["error"].is_string());
    let (s, _) = raw(Method::POST, "/api/agents", Some("text/plain"), br#"{"slug":"a","name":"b"}"#.to_vec()).await;
    assert_eq!(s, 400);
    let (s, _) = raw(Method::POST, "/api/agents", None, br#"{"slug":"a","name":"b"}"#.to_vec()).await;
    assert_eq!(s, 400);
    let big = format!(r#"{{"slug":"big","name":"{}"}}"#, "x".repeat(arvis_gateway::BODY_LIMIT + 10));
    let (s, b) = raw(Method::POST, "/api/agents", Some("application/json"), big.into_bytes()).await;
    assert_eq!(s, 413, "{b}");
    let (s, b) = raw(Method::POST, "/api/agents", Some("application/json"), vec![0xff, 0xfe, 0x00]).await;
    assert_eq!(s, 400, "{b}");
    let (s, b) = raw(Method::GET, "/api/nope", None, vec![]).await;
    assert_eq!(s, 404);
    assert!(b["error"].is_string());
    let (s, _) = raw(Method::PATCH, "/api/agents/not-a-number", Some("application/json"), b"{}".to_vec()).await;
    assert_eq!(s, 400);
    let (s, _) = raw(Method::PUT, "/api/agents", Some("application/json"), b"{}".to_vec()).await;
    assert_eq!(s, 405);
    let (s, _) = raw(Method::PATCH, "/api/agents/99999999999999999999", Some("application/json"), b"{}".to_vec()).await;
    assert_eq!(s, 400);
});

// Extensions: reasoningEffort (validated, clearable with null) and showThinking.
both_backends!(reasoning_settings_are_optional_validated_and_clearable, |backend| async move {
    let app = TestApp::spawn(backend).await;
    let (status, plain) = app.post("/api/agents", json!({"slug": "plain", "name": "Plain"})).await;
    assert_eq!(status, 201, "{plain}");
    assert_eq!((plain["reasoningEffort"].clone(), plain["showThinking"].clone()), (json!(null), json!(false)));

    let (status, a) = app
        .post("/api/agents", json!({"slug": "deep", "name": "Deep", "reasoningEffort": "high", "showThinking": true}))
        .await;
    assert_eq!(status, 201, "{a}");
    assert_eq!((a["reasoningEffort"].as_str(), a["showThinking"].as_bool()), (Some("high"), Some(true)));
    let id = a["id"].as_i64().unwrap();

    for bad in [json!("extreme"), json!("HIGH"), json!(3), json!("")] {
        let (status, e) = app.post("/api/agents", json!({"slug": "bad", "name": "Bad", "reasoningEffort": bad})).await;
        assert_eq!(status, 400, "{bad}: {e}");
        assert!(e["error"].is_string(), "{e}");
        let (status, _) = app.patch(&format!("/api/agents/{id}"), json!({"reasoningEffort": bad})).await;
        assert_eq!(status, 400, "{bad}");
    }
    let (status, e) =
        app.post("/api/agents", json!({"slug": "bad", "name": "Bad", "reasoningEffort": "extreme"})).await;
    assert_eq!(status, 400);
    assert!(e["error"].as_str().unwrap().contains("reasoningEffort must be one of"), "{e}");
    let (status, _) = app.post("/api/agents", json!({"slug": "bad2", "name": "Bad", "showThinking": "yes"})).await;
    assert_eq!(status, 400);

    // PATCH: absent keeps, a value changes, null clears.
    let (status, p) = app.patch(&format!("/api/agents/{id}"), json!({"name": "Deeper"})).await;
    assert_eq!((status, p["reasoningEffort"].as_str()), (200, Some("high")));
    let (_, p) =
        app.patch(&format!("/api/agents/{id}"), json!({"reasoningEffort": "minimal", "showThinking": false})).await;
    assert_eq!((p["reasoningEffort"].as_str(), p["showThinking"].as_bool()), (Some("minimal"), Some(false)));
    let (_, p) = app.patch(&format!("/api/agents/{id}"), json!({"reasoningEffort": null})).await;
    assert_eq!(p["reasoningEffort"], json!(null));
    let (_, listed) = app.get("/api/agents").await;
    let stored = listed.as_array().unwrap().iter().find(|x| x["id"] == id).unwrap().clone();
    assert_eq!((stored["reasoningEffort"].clone(), stored["showThinking"].clone()), (json!(null), json!(false)));
});
