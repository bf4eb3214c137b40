//! Whole-API checks: every documented route is served, every reference
//! endpoint is documented, hostile input never gets a 500, and no response
//! ever contains a configured secret.

#![expect(clippy::unwrap_used)] // a test fails by panicking

use arvis_shared::domain::usage::UsageRecord;
use arvis_testkit::{TestApp, both_backends};
use reqwest::Method;
use serde_json::{Value, json};

/// Every (method, OpenAPI path) the router documents.
fn documented() -> Vec<(Method, String)> {
    let doc = serde_json::to_value(arvis_gateway::openapi()).unwrap();
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            if let Ok(m) = method.to_uppercase().parse::<Method>() {
                out.push((m, path.clone()));
            }
        }
    }
    out
}

/// The endpoints of the REST reference (Agents' chat belongs to another issue).
const REFERENCE: &[(&str, &str)] = &[
    ("GET", "/api/health"),
    ("POST", "/api/auth/login"),
    ("GET", "/api/agents"),
    ("POST", "/api/agents"),
    ("PATCH", "/api/agents/{id}"),
    ("DELETE", "/api/agents/{id}"),
    ("GET", "/api/agents/{id}/history"),
    ("GET", "/api/accounts"),
    ("PATCH", "/api/accounts/{id}"),
    ("GET", "/api/bots"),
    ("POST", "/api/bots"),
    ("PATCH", "/api/bots/{id}"),
    ("DELETE", "/api/bots/{id}"),
    ("GET", "/api/sessions"),
    ("GET", "/api/conversations/{id}"),
    ("GET", "/api/memory"),
    ("DELETE", "/api/memory/{id}"),
    ("GET", "/api/queue"),
    ("PATCH", "/api/queue/{id}"),
    ("DELETE", "/api/queue/{id}"),
    ("GET", "/api/skills"),
    ("POST", "/api/skills"),
    ("PATCH", "/api/skills/{id}"),
    ("DELETE", "/api/skills/{id}"),
    ("POST", "/api/skills/import"),
    ("GET", "/api/workflows"),
    ("POST", "/api/workflows"),
    ("PATCH", "/api/workflows/{id}"),
    ("DELETE", "/api/workflows/{id}"),
    ("GET", "/api/webhooks"),
    ("POST", "/api/webhooks"),
    ("PATCH", "/api/webhooks/{id}"),
    ("DELETE", "/api/webhooks/{id}"),
    ("GET", "/api/connectors"),
    ("GET", "/api/usage"),
    ("GET", "/api/metrics"),
    ("GET", "/api/logs"),
    ("GET", "/api/settings"),
    ("PATCH", "/api/settings"),
];

#[test]
fn every_reference_endpoint_is_documented() {
    let doc = documented();
    for (method, path) in REFERENCE {
        assert!(
            doc.iter().any(|(m, p)| m.as_str() == *method && p == path),
            "{method} {path} is missing from /api/openapi.json"
        );
    }
}

/// Every `$ref` in the document points at a schema it defines.
#[test]
fn the_openapi_document_is_self_contained() {
    let doc = serde_json::to_value(arvis_gateway::openapi()).unwrap();
    fn walk(v: &Value, refs: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get("$ref") {
                    refs.push(r.clone());
                }
                m.values().for_each(|x| walk(x, refs));
            }
            Value::Array(a) => a.iter().for_each(|x| walk(x, refs)),
            _ => {}
        }
    }
    let mut refs = Vec::new();
    walk(&doc, &mut refs);
    assert!(!refs.is_empty());
    for r in refs {
        let name = r.strip_prefix("#/components/schemas/").unwrap_or_else(|| panic!("unexpected ref {r}"));
        assert!(doc["components"]["schemas"].get(name).is_some(), "{r} is not defined");
    }
    assert_eq!(doc["openapi"].as_str().map(|v| v.starts_with("3.1")), Some(true));
}

fn concrete(path: &str) -> String {
    path.replace("{id}", "1").replace("{path}", "x")
}

both_backends!(every_documented_route_is_served_and_nothing_else, |backend| async move {
    let app = TestApp::spawn(backend).await;
    let doc = documented();
    for (method, path) in &doc {
        let body = (*method != Method::GET && *method != Method::DELETE).then(|| json!({}));
        let (status, resp) = app.call(method.clone(), &concrete(path), body, &[]).await;
        assert!(status < 500, "{method} {path} → {status} {resp}");
        assert_ne!(status, 405, "{method} {path} is documented but not routed");
        if status == 404 {
            assert_ne!(resp["error"], "no such route", "{method} {path} is documented but not routed");
        }
    }
    // Methods a documented path does not document are not served either.
    let all = [Method::GET, Method::POST, Method::PATCH, Method::DELETE, Method::PUT];
    let mut paths: Vec<&String> = doc.iter().map(|(_, p)| p).collect();
    paths.dedup();
    for path in paths {
        for m in &all {
            if doc.iter().any(|(dm, dp)| dm == m && dp == path) {
                continue;
            }
            let (status, _) = app.call(m.clone(), &concrete(path), Some(json!({})), &[]).await;
            assert!(status == 405 || status == 404, "{m} {path} answered {status} but is not documented");
        }
    }
});

both_backends!(hostile_input_never_gets_a_500, |backend| async move {
    let app = TestApp::spawn(backend).await;
    let bodies = [
        json!({}),
        json!([]),
        json!(null),
        json!("text"),
        json!({"name": "\u{0}", "agentId": 1, "schedule": "\u{0}", "prompt": "\u{0}", "url": "http://\u{0}"}),
        json!({"name": "x".repeat(10_000), "agentId": i64::MAX, "platform": "discord", "token": "A", "content": "c"}),
        json!({"id": -1, "priority": i64::MIN, "isActive": "yes", "action": "retry", "channelBindings": [{}]}),
        json!({"agentId": -5, "name": "ok", "schedule": "*/0 * * * *", "prompt": "p"}),
        json!({"name": "n", "content": "c", "triggerPatterns": ["a{99999}"]}),
    ];
    let ids = ["0", "-1", "9223372036854775807", "abc", "%00", "conv_%27%20OR%201%3D1"];
    for (method, path) in documented() {
        if path == "/api/auth/login" {
            continue; // the login limiter answers 429 after a few attempts
        }
        for id in ids {
            let p = path.replace("{id}", id);
            if method == Method::GET || method == Method::DELETE {
                let (s, r) = app.call(method.clone(), &p, None, &[]).await;
                assert!(s < 500, "{method} {p} → {s} {r}");
                assert!(s < 300 || r["error"].is_string(), "{method} {p} → {s} {r}");
            } else {
                for body in &bodies {
                    let (s, r) = app.call(method.clone(), &p, Some(body.clone()), &[]).await;
                    assert!(s < 500, "{method} {p} {body} → {s} {r}");
                    assert!(s < 300 || r["error"].is_string(), "{method} {p} → {s} {r}");
                }
            }
            if !path.contains("{id}") {
                break;
            }
        }
    }
    for q in [
        "/api/sessions?limit=1e3",
        "/api/queue?status=%00",
        "/api/logs?level=%00&limit=1",
        "/api/memory?agentId=-1",
        "/api/usage?period=%00",
    ] {
        let (s, r) = app.get(q).await;
        assert!(s < 500, "{q} → {s} {r}");
    }
});

both_backends!(no_response_contains_a_secret, |backend| async move {
    let secrets = [
        ("OPENAI_API_KEY", "sk-secret-xyz-openai"),
        ("ANTHROPIC_API_KEY", "sk-ant-secret-xyz"),
        ("DASHBOARD_API_KEY", "dashboard-key-secret-123"),
        ("DASHBOARD_PASSWORD", "dashboard-password-secret"),
        ("JWT_SECRET", "jwt-secret-value-0123456789"),
        ("WEB_API_KEY", "web-api-key-secret"),
        ("DISCORD_BOT_TOKEN", "discord-token-secret-value"),
        ("TELEGRAM_BOT_TOKEN", "telegram-token-secret-value"),
    ];
    let mut b = TestApp::builder(backend);
    for (k, v) in secrets {
        b = b.env(k, v);
    }
    let app = b.start().await;
    let key = ("x-api-key", "dashboard-key-secret-123");
    // Some data in every table the API shows.
    let store = &app.deps.store;
    let agent = app.call(Method::GET, "/api/agents", None, &[key]).await.1[0]["id"].as_i64().unwrap();
    app.call(
        Method::POST,
        "/api/bots",
        Some(json!({"name": "d", "platform": "discord", "token": "DISCORD_BOT_TOKEN",
        "channelBindings": [{"channelId": "c", "agentId": agent}]})),
        &[key],
    )
    .await;
    app.call(Method::POST, "/api/webhooks", Some(json!({"name": "hook", "agentId": agent})), &[key]).await;
    app.call(
        Method::POST,
        "/api/workflows",
        Some(json!({"name": "w", "agentId": agent, "schedule": "0 9 * * *", "prompt": "p"})),
        &[key],
    )
    .await;
    let conv =
        store.create_conversation(agent, "dashboard", &format!("dashboard-agent-{agent}"), None, None).await.unwrap();
    store.append_message(&conv, "user", "hello", None).await.unwrap();
    store.save_memory_fact(agent, Some(&conv), "k", "v").await.unwrap();
    store.enqueue_job(agent, 5, "message", r#"{"prompt":"p"}"#, Some(&conv)).await.unwrap();
    store
        .insert_usage(&UsageRecord {
            agent_id: Some(agent),
            provider: "openai".into(),
            model: "m".into(),
            created_at: arvis_shared::clock::now_ms(),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut values: Vec<String> = secrets.iter().map(|(_, v)| v.to_string()).collect();
    values.extend(app.deps.config.all_secret_values());

    let mut checked = 0;
    for (method, path) in documented() {
        if method != Method::GET {
            continue;
        }
        let p = path.replace("{id}", &agent.to_string());
        let resp = app.client.get(app.url(&p)).header(key.0, key.1).send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        assert!(status < 500, "{p} → {status}");
        for v in &values {
            assert!(!text.contains(v.as_str()), "GET {p} leaks a secret value: {text}");
        }
        checked += 1;
    }
    assert!(checked >= 15, "{checked}");
    let (_, conversation) = app.call(Method::GET, &format!("/api/conversations/{conv}"), None, &[key]).await;
    assert!(!values.iter().any(|v| conversation.to_string().contains(v.as_str())));
    let _: Value = conversation;
});

// Bodies are read as the document's JSON Schema reads them: an integer may be
// written `456.0`, a body must be an object, and what the document's patterns
// allow is what the validators allow (scripts/fuzz-api.sh checks the rest).
both_backends!(bodies_are_read_as_the_document_describes_them, |backend| async move {
    let app = TestApp::spawn(backend).await;
    let (s, agent) = app.post("/api/agents", json!({"slug": "schema", "name": "Schema"})).await;
    assert_eq!(s, 201, "{agent}");
    let id = agent["id"].as_i64().unwrap();

    let (s, body) = app.patch(&format!("/api/agents/{id}"), json!({"maxTokens": 456.0})).await;
    assert_eq!((s, body["maxTokens"].as_i64()), (200, Some(456)), "{body}");
    let (s, body) = app.patch(&format!("/api/agents/{id}"), json!({"maxTokens": 456.5})).await;
    assert_eq!(s, 400, "{body}");
    assert!(body["error"].as_str().unwrap().contains("maxTokens"), "{body}");
    let (_, agents) = app.get("/api/agents").await;
    let after = agents.as_array().unwrap().iter().find(|a| a["id"] == id).unwrap();
    assert_eq!(after["maxTokens"], 456, "a refused patch changes nothing");

    let (s, body) = app.patch("/api/settings", json!([null, null])).await;
    assert_eq!((s, body["error"].as_str()), (400, Some("request body must be a JSON object")), "{body}");

    let (s, hook) = app.post("/api/webhooks", json!({"name": "Deploys", "agentId": id})).await;
    assert_eq!(s, 201, "{hook}");
    let (s, body) = app.patch(&format!("/api/webhooks/{}", hook["id"]), json!({"name": "--"})).await;
    assert_eq!(s, 400, "a renamed webhook needs a letter or digit too: {body}");

    // U+0085 is whitespace to Rust's trim and to the document's pattern alike.
    let (s, body) = app.post(&format!("/api/agents/{id}/chat"), json!({"message": "\u{85}"})).await;
    assert_eq!(s, 400, "{body}");
    let doc = serde_json::to_value(arvis_gateway::openapi()).unwrap();
    let pattern = doc["components"]["schemas"]["ChatBody"]["properties"]["message"]["pattern"].as_str().unwrap();
    assert_eq!(pattern, arvis_shared::domain::schema::NOT_BLANK);
});
