//! The OpenAI-compatible `/v1` API end to end (issue 21), on both databases:
//! the official `openai` Python SDK against the real gateway and worker with
//! the loopback provider; every error shape; the client's transcript reaching
//! the model after the agent's prompt; streaming chunks; a client that hangs
//! up mid-stream; API keys (shown once, scoped, revoked on every replica).

#![expect(clippy::unwrap_used)] // a test fails by panicking

use std::time::{Duration, Instant};

use arvis_testkit::{Backend, MockLlm, MockReply, TestApp, both_backends};
use reqwest::Method;
use serde_json::{Value, json};

const ADMIN: &str = "admin-key-for-tests";

async fn app_with_worker(backend: Backend, mock: &MockLlm) -> TestApp {
    TestApp::builder(backend)
        .with_worker()
        .env("DASHBOARD_API_KEY", ADMIN)
        .env("OPENAI_API_KEY", "sk-test")
        .env("OPENAI_BASE_URL", &format!("{}/v1", mock.url))
        .start()
        .await
}

async fn admin(app: &TestApp, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    app.call(method, path, body, &[("x-api-key", ADMIN)]).await
}

async fn create_agent(app: &TestApp, slug: &str) -> i64 {
    let body = json!({"slug": slug, "name": slug, "model": "openai/gpt-4o-mini", "systemPrompt": "You are terse."});
    let (status, body) = admin(app, Method::POST, "/api/agents", Some(body)).await;
    assert_eq!(status, 201, "{body}");
    body["id"].as_i64().unwrap()
}

async fn create_key(app: &TestApp, body: Value) -> Value {
    let (status, body) = admin(app, Method::POST, "/api/keys", Some(body)).await;
    assert_eq!(status, 201, "{body}");
    body
}

async fn v1(app: &TestApp, base: &str, method: Method, path: &str, key: &str, body: Option<Value>) -> (u16, Value) {
    let mut req = app.client.request(method, format!("{base}{path}")).bearer_auth(key);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

/// OpenAI's error shape, with this type and code.
fn assert_openai_error(body: &Value, kind: &str, code: Option<&str>) {
    let e = &body["error"];
    assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
    assert_eq!(e["type"], kind, "{body}");
    assert_eq!(e["code"].as_str(), code, "{body}");
    assert!(e.as_object().unwrap().contains_key("param"), "{body}");
}

fn user(text: &str) -> Value {
    json!([{"role": "user", "content": text}])
}

both_backends!(the_official_openai_sdk_talks_to_an_agent, |backend: Backend| async move {
    // Not canonicalized: the venv's python is a symlink, and only its own
    // path makes it the venv's.
    let python = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/openai-venv/bin/python");
    assert!(
        python.exists(),
        "the openai SDK venv is missing ({}): run scripts/test.sh, which creates it",
        python.display()
    );
    let mock = MockLlm::start().await;
    let app = app_with_worker(backend, &mock).await;
    create_agent(&app, "helper").await;
    let key = create_key(&app, json!({"name": "sdk"})).await;
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("python/openai_client.py");
    let out = tokio::process::Command::new(python)
        .arg(script)
        .arg(&app.base)
        .arg(key["key"].as_str().unwrap())
        .arg("helper")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("all ok"), "{stdout}");

    // The runs are conversations on platform `api`, with their usage billed to the key.
    let (_, sessions) = admin(&app, Method::GET, "/api/sessions", None).await;
    let api: Vec<&Value> = sessions.as_array().unwrap().iter().filter(|s| s["platform"] == "api").collect();
    assert_eq!(api.len(), 2, "{sessions}");
    let (_, keys) = admin(&app, Method::GET, "/api/keys", None).await;
    let spent = keys[0]["spentThisMonthUsd"].as_f64().unwrap();
    assert!(spent > 0.0, "{keys}");
    app.stop().await;
});

both_backends!(a_completion_answers_the_clients_transcript_after_the_agents_prompt, |backend: Backend| async move {
    let mock = MockLlm::start().await;
    let app = app_with_worker(backend, &mock).await;
    create_agent(&app, "helper").await;
    let body = json!({
        "model": "helper",
        "messages": [
            {"role": "system", "content": "Client rule: answer in French."},
            {"role": "user", "content": "first question"},
            {"role": "assistant", "content": "first answer"},
            {"role": "user", "content": [{"type": "text", "text": "second question"}]}
        ],
        "temperature": 0.3,
        "max_tokens": 77,
        "user": "end-user-1",
        "metadata": {"trace": "x"},
        "top_p": 0.9
    });
    let (status, reply) = v1(&app, &app.base, Method::POST, "/v1/chat/completions", ADMIN, Some(body)).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["object"], "chat.completion");
    assert_eq!(reply["model"], "helper");
    assert_eq!(
        reply["choices"][0]["message"],
        json!({"role": "assistant", "content": "Hello there friend", "refusal": null})
    );
    assert_eq!(reply["usage"], json!({"prompt_tokens": 12, "completion_tokens": 7, "total_tokens": 19}));

    let sent = &mock.requests()[0].body;
    let messages = sent["messages"].as_array().unwrap();
    let system = messages[0]["content"].as_str().unwrap();
    let agent_at = system.find("You are terse.").unwrap();
    let client_at = system.find("Client rule: answer in French.").unwrap();
    assert!(agent_at < client_at, "the client's system message comes after the agent's prompt: {system}");
    let turns: Vec<(&str, &str)> =
        messages[1..].iter().map(|m| (m["role"].as_str().unwrap(), m["content"].as_str().unwrap())).collect();
    assert_eq!(turns, [("user", "first question"), ("assistant", "first answer"), ("user", "second question")]);
    assert_eq!(sent["temperature"], 0.3);
    assert_eq!(sent["max_completion_tokens"].as_i64().or(sent["max_tokens"].as_i64()), Some(77), "{sent}");

    // Stored: the user's last message and the reply, in a conversation of its own.
    let (_, sessions) = admin(&app, Method::GET, "/api/sessions", None).await;
    let conv = sessions.as_array().unwrap().iter().find(|s| s["platform"] == "api").unwrap().clone();
    let (_, detail) =
        admin(&app, Method::GET, &format!("/api/conversations/{}", conv["id"].as_str().unwrap()), None).await;
    let stored: Vec<&str> =
        detail["messages"].as_array().unwrap().iter().map(|m| m["content"].as_str().unwrap()).collect();
    assert_eq!(stored, ["second question", "Hello there friend"], "{detail}");
    app.stop().await;
});

both_backends!(streamed_chunks_come_in_openai_order_and_add_up, |backend: Backend| async move {
    let mock = MockLlm::start().await;
    let app = app_with_worker(backend, &mock).await;
    create_agent(&app, "helper").await;
    let body =
        json!({"model": "helper", "messages": user("hi"), "stream": true, "stream_options": {"include_usage": true}});
    let resp = app.client.post(app.url("/v1/chat/completions")).bearer_auth(ADMIN).json(&body).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let text = resp.text().await.unwrap();
    let events: Vec<&str> = text.split("\n\n").filter(|e| !e.is_empty()).collect();
    assert_eq!(*events.last().unwrap(), "data: [DONE]");
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e.strip_prefix("data: ").unwrap()).unwrap())
        .collect();
    assert!(chunks.iter().all(|c| c["object"] == "chat.completion.chunk" && c["id"] == chunks[0]["id"]));
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let content: String =
        chunks.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect::<Vec<_>>().concat();
    assert_eq!(content, "Hello there friend");
    let pieces =
        chunks.iter().filter(|c| c["choices"][0]["delta"]["content"].as_str().is_some_and(|s| !s.is_empty())).count();
    assert!(pieces >= 3, "the provider's pieces are passed on as they come: {pieces}");
    let n = chunks.len();
    assert_eq!(chunks[n - 2]["choices"][0]["finish_reason"], "stop");
    assert_eq!(chunks[n - 1]["choices"], json!([]));
    assert_eq!(chunks[n - 1]["usage"]["total_tokens"], 19);
    app.stop().await;
});

both_backends!(a_client_that_hangs_up_mid_stream_leaves_the_run_to_finish, |backend: Backend| async move {
    let mock = MockLlm::start().await;
    mock.push(MockReply::slow(Duration::from_millis(800), MockReply::text("finished after all")));
    let app = app_with_worker(backend, &mock).await;
    create_agent(&app, "helper").await;
    let body = json!({"model": "helper", "messages": user("take your time"), "stream": true});
    let mut resp =
        app.client.post(app.url("/v1/chat/completions")).bearer_auth(ADMIN).json(&body).send().await.unwrap();
    let first = resp.chunk().await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&first).contains("\"role\":\"assistant\""), "the role chunk comes at once");
    drop(resp); // hang up before the model answered

    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, sessions) = admin(&app, Method::GET, "/api/sessions", None).await;
        if let Some(conv) = sessions.as_array().unwrap().iter().find(|s| s["platform"] == "api") {
            let path = format!("/api/conversations/{}", conv["id"].as_str().unwrap());
            let (_, detail) = admin(&app, Method::GET, &path, None).await;
            let messages = detail["messages"].as_array().unwrap();
            if messages.len() == 2 {
                assert_eq!(messages[1]["content"], "finished after all");
                break;
            }
        }
        assert!(Instant::now() < deadline, "the run was not stored after the client left");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    app.stop().await;
});

both_backends!(every_v1_failure_is_in_openais_error_shape, |backend: Backend| async move {
    let mock = MockLlm::start().await;
    let app = app_with_worker(backend, &mock).await;
    create_agent(&app, "helper").await;
    let base = app.base.clone();
    let post = |body: Value| {
        let app = &app;
        let base = base.clone();
        async move { v1(app, &base, Method::POST, "/v1/chat/completions", ADMIN, Some(body)).await }
    };

    // Authentication: none, a wrong dashboard key, an unknown arvis_sk_ key.
    let resp = app.client.get(app.url("/v1/models")).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    assert_openai_error(&resp.json().await.unwrap(), "invalid_request_error", Some("invalid_api_key"));
    let (status, body) = v1(&app, &base, Method::GET, "/v1/models", "wrong", None).await;
    assert_eq!(status, 401);
    assert_openai_error(&body, "invalid_request_error", Some("invalid_api_key"));
    let (status, body) =
        v1(&app, &base, Method::GET, "/v1/models", &format!("arvis_sk_{}", "1".repeat(64)), None).await;
    assert_eq!(status, 401);
    assert_openai_error(&body, "invalid_request_error", Some("invalid_api_key"));
    // The session-less REST API keeps its own shape.
    let (status, body) = app.get("/api/agents").await;
    assert_eq!((status, body["error"].is_string()), (401, true), "{body}");

    // Unknown model, route and method.
    let (status, body) = post(json!({"model": "nope", "messages": user("hi")})).await;
    assert_eq!(status, 404);
    assert_openai_error(&body, "invalid_request_error", Some("model_not_found"));
    assert_eq!(body["error"]["param"], "model");
    let (status, body) = v1(&app, &base, Method::GET, "/v1/models/nope", ADMIN, None).await;
    assert_eq!(status, 404);
    assert_openai_error(&body, "invalid_request_error", Some("model_not_found"));
    let (status, body) = v1(&app, &base, Method::GET, "/v1/embeddings", ADMIN, None).await;
    assert_eq!(status, 404);
    assert_openai_error(&body, "invalid_request_error", Some("not_found"));
    let (status, body) = v1(&app, &base, Method::DELETE, "/v1/chat/completions", ADMIN, None).await;
    assert_eq!(status, 405);
    assert_openai_error(&body, "invalid_request_error", None);

    // Bad bodies.
    let resp = app
        .client
        .post(app.url("/v1/chat/completions"))
        .bearer_auth(ADMIN)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_openai_error(&resp.json().await.unwrap(), "invalid_request_error", None);
    let (status, body) = post(json!({"messages": user("hi")})).await;
    assert_eq!(status, 400);
    assert_openai_error(&body, "invalid_request_error", None);
    let big = "x".repeat(arvis_gateway::BODY_LIMIT + 10);
    let (status, body) = post(json!({"model": "helper", "messages": user(&big)})).await;
    assert_eq!(status, 413);
    assert_openai_error(&body, "invalid_request_error", None);

    // What is not supported is refused, not ignored.
    for (extra, param) in [
        (json!({"tools": [{"type": "function", "function": {"name": "f"}}]}), "tools"),
        (json!({"functions": [{"name": "f"}]}), "functions"),
        (json!({"n": 2}), "n"),
        (json!({"audio": {"voice": "alloy", "format": "wav"}}), "audio"),
    ] {
        let mut body = json!({"model": "helper", "messages": user("hi")});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        let (status, answer) = post(body).await;
        assert_eq!(status, 400, "{answer}");
        assert_openai_error(&answer, "invalid_request_error", None);
        assert_eq!(answer["error"]["param"], param);
    }
    let image = json!([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "http://x/y.png"}}]}]);
    let (status, body) = post(json!({"model": "helper", "messages": image})).await;
    assert_eq!(status, 400);
    assert!(body["error"]["message"].as_str().unwrap().contains("image_url"), "{body}");
    let (status, body) = post(json!({"model": "helper", "messages": user("")})).await;
    assert_eq!(status, 400, "{body}");
    assert_openai_error(&body, "invalid_request_error", None);
    let (status, body) = post(json!({"model": "helper", "messages": user("hi"), "user": "a\nb"})).await;
    assert_eq!((status, &body["error"]["param"]), (400, &json!("user")), "{body}");

    // The providers fail: 502 with the reason.
    mock.set_default(MockReply::status(400));
    let (status, body) = post(json!({"model": "helper", "messages": user("hi")})).await;
    assert_eq!(status, 502, "{body}");
    assert_openai_error(&body, "api_error", Some("upstream_error"));
    assert_eq!(mock.requests().iter().filter(|r| r.path.ends_with("/chat/completions")).count(), 1);
    app.stop().await;
});

both_backends!(
    a_scoped_key_sees_and_uses_only_its_agents_and_revocation_holds_on_every_replica,
    |backend: Backend| async move {
        let mock = MockLlm::start().await;
        let mut app = app_with_worker(backend, &mock).await;
        create_agent(&app, "alpha").await;
        create_agent(&app, "beta").await;
        let second = app.spawn_gateway().await;

        let created = create_key(&app, json!({"name": "only alpha", "agents": ["alpha"]})).await;
        let key = created["key"].as_str().unwrap().to_string();
        assert!(key.starts_with("arvis_sk_") && key.len() == 9 + 64, "{key}");
        assert!(key.starts_with(created["prefix"].as_str().unwrap()));
        // Listed without the key; the key authenticates /v1 only.
        let (_, list) = admin(&app, Method::GET, "/api/keys", None).await;
        assert_eq!(list[0]["name"], "only alpha");
        assert!(!list.to_string().contains(&key[9..]), "{list}");
        assert_eq!(list[0]["agents"], json!(["alpha"]));
        let (status, _) =
            app.call(Method::GET, "/api/agents", None, &[("authorization", &format!("Bearer {key}"))]).await;
        assert_eq!(status, 401, "an /api/keys key is not a dashboard credential");
        assert_eq!(
            admin(&app, Method::POST, "/api/keys", Some(json!({"name": "x", "agents": ["ghost"]}))).await.0,
            400
        );

        for base in [app.base.clone(), second.clone()] {
            let (status, models) = v1(&app, &base, Method::GET, "/v1/models", &key, None).await;
            assert_eq!(status, 200, "{models}");
            let ids: Vec<&str> = models["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
            assert_eq!(ids, ["alpha"]);
            assert_eq!(models["data"][0]["object"], "model");
            assert_eq!(models["data"][0]["owned_by"], "arvis");
            assert!(models["data"][0]["created"].as_i64().unwrap() > 1_700_000_000);
            assert_eq!(v1(&app, &base, Method::GET, "/v1/models/beta", &key, None).await.0, 404);
        }
        let (status, body) = v1(
            &app,
            &second,
            Method::POST,
            "/v1/chat/completions",
            &key,
            Some(json!({"model": "beta", "messages": user("hi")})),
        )
        .await;
        assert_eq!(status, 404, "a key limited to alpha may not use beta: {body}");
        let (status, body) = v1(
            &app,
            &second,
            Method::POST,
            "/v1/chat/completions",
            &key,
            Some(json!({"model": "alpha", "messages": user("hi")})),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let (_, list) = admin(&app, Method::GET, "/api/keys", None).await;
        assert!(list[0]["lastUsedAt"].is_string(), "{list}");

        // Disabled through one replica: refused by both at once; enabled again: accepted.
        let id = created["id"].as_i64().unwrap();
        let (status, patched) =
            admin(&app, Method::PATCH, &format!("/api/keys/{id}"), Some(json!({"isEnabled": false}))).await;
        assert_eq!((status, &patched["isEnabled"]), (200, &json!(false)), "{patched}");
        for base in [app.base.clone(), second.clone()] {
            assert_eq!(v1(&app, &base, Method::GET, "/v1/models", &key, None).await.0, 401);
        }
        admin(&app, Method::PATCH, &format!("/api/keys/{id}"), Some(json!({"isEnabled": true, "agents": null}))).await;
        let (_, models) = v1(&app, &second, Method::GET, "/v1/models", &key, None).await;
        assert_eq!(models["data"].as_array().unwrap().len(), 3, "alpha, beta and the conductor: {models}");

        // Revoked on the first replica: the second refuses the very next request.
        assert_eq!(admin(&app, Method::DELETE, &format!("/api/keys/{id}"), None).await.0, 200);
        let (status, body) = v1(&app, &second, Method::GET, "/v1/models", &key, None).await;
        assert_eq!(status, 401);
        assert_openai_error(&body, "invalid_request_error", Some("invalid_api_key"));
        assert_eq!(admin(&app, Method::DELETE, &format!("/api/keys/{id}"), None).await.0, 404);

        // An expired key is refused.
        let expired = create_key(&app, json!({"name": "old", "expiresAt": "2020-01-01T00:00:00Z"})).await;
        assert_eq!(v1(&app, &second, Method::GET, "/v1/models", expired["key"].as_str().unwrap(), None).await.0, 401);
        app.stop().await;
    }
);

both_backends!(a_slow_run_is_a_504_and_a_failed_stream_ends_with_an_error_event, |backend: Backend| async move {
    let mock = MockLlm::start().await;
    let app = TestApp::builder(backend)
        .with_worker()
        .env("DASHBOARD_API_KEY", ADMIN)
        .env("CHAT_TIMEOUT_SECS", "1")
        .env("OPENAI_API_KEY", "sk-test")
        .env("OPENAI_BASE_URL", &format!("{}/v1", mock.url))
        .start()
        .await;
    create_agent(&app, "helper").await;

    // Longer than CHAT_TIMEOUT_SECS: 504, and the run still finishes and is stored.
    mock.push(MockReply::slow(Duration::from_millis(1500), MockReply::text("late but stored")));
    let body = json!({"model": "helper", "messages": user("slow one")});
    let (status, answer) = v1(&app, &app.base, Method::POST, "/v1/chat/completions", ADMIN, Some(body)).await;
    assert_eq!(status, 504, "{answer}");
    assert_openai_error(&answer, "api_error", Some("timeout"));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, sessions) = admin(&app, Method::GET, "/api/sessions", None).await;
        let done = sessions.as_array().unwrap().iter().any(|s| s["lastMessage"] == "late but stored");
        if done {
            break;
        }
        assert!(Instant::now() < deadline, "the timed-out run was not stored: {sessions}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A run that fails while streaming: an error event in OpenAI's shape, then [DONE].
    mock.push(MockReply::status(400));
    let body = json!({"model": "helper", "messages": user("fail"), "stream": true});
    let resp = app.client.post(app.url("/v1/chat/completions")).bearer_auth(ADMIN).json(&body).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    let events: Vec<&str> = text.split("\n\n").filter(|e| !e.is_empty()).collect();
    assert_eq!(*events.last().unwrap(), "data: [DONE]", "{text}");
    let error: Value = serde_json::from_str(events[events.len() - 2].strip_prefix("data: ").unwrap()).unwrap();
    assert_openai_error(&error, "api_error", Some("upstream_error"));
    app.stop().await;
});
