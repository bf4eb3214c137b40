//! Hostile input in every text field of every POST/PATCH body (agents, bots,
//! skills, workflows, webhooks, settings, chat), on both databases: SQL
//! metacharacters, very long strings, unicode (emoji, RTL, combining marks) and
//! NUL bytes are stored and returned verbatim, or refused with a 400 JSON
//! error — never a 500.

#![expect(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use arvis_testkit::{MockLlm, MockReply, TestApp, both_backends};
use reqwest::Method;
use serde_json::{Value, json};

fn hostile() -> Vec<(&'static str, String)> {
    vec![
        ("sql quote", "x'; DROP TABLE agents; --".to_string()),
        ("sql or", "\" OR 1=1 -- /* */ ; SELECT pg_sleep(5)".to_string()),
        ("like wildcards and backslashes", "100% _under_ \\ \\\\ $1 ? :name".to_string()),
        ("emoji", "family 👩‍👩‍👧‍👦 flag 🇩🇪 astral 𝄞".to_string()),
        ("rtl and bidi controls", "عربى \u{202E}desrever\u{202C} עברית \u{200F}".to_string()),
        ("combining marks", "Z\u{0351}\u{0361}a\u{0308}\u{0301}l\u{0300}g\u{0327}o e\u{301}\u{302}\u{303}".to_string()),
        ("nul byte", "before\u{0}after".to_string()),
        ("control characters", "tab\tnewline\ncr\rbell\u{7}esc\u{1b}[31m".to_string()),
        ("very long", "long ".repeat(20_000)),
    ]
}

/// One request; asserts it is not a server error, and either a 2xx whose body
/// holds `value` verbatim at `field`, or a 400 with a JSON error.
async fn check(app: &TestApp, method: Method, path: &str, body: Value, field: &str, value: &str, what: &str) -> bool {
    let (status, resp) = app.call(method.clone(), path, Some(body), &[]).await;
    assert!(status < 500, "{method} {path} {field} ({what}): {status} {resp}");
    if status == 400 {
        assert!(resp["error"].is_string(), "{method} {path} {field} ({what}): 400 without an error: {resp}");
        return false;
    }
    assert!((200..300).contains(&status), "{method} {path} {field} ({what}): {status} {resp}");
    let got = field.split('.').fold(&resp, |v, k| match k.parse::<usize>() {
        Ok(i) => &v[i],
        Err(_) => &v[k],
    });
    assert_eq!(got.as_str(), Some(value), "{method} {path} {field} ({what}) was not returned verbatim");
    true
}

both_backends!(hostile_text_in_every_field_is_verbatim_or_400, |backend| async move {
    let mock = MockLlm::start().await;
    mock.set_default(MockReply::Echo);
    let app = TestApp::builder(backend)
        .with_worker()
        .env("OPENAI_API_KEY", "sk-test")
        .env("OPENAI_BASE_URL", &format!("{}/v1", mock.url))
        .env("CHAT_TIMEOUT_SECS", "10")
        .start()
        .await;
    let (s, agent) =
        app.post("/api/agents", json!({"slug": "target", "name": "Target", "model": "openai/gpt-4o-mini"})).await;
    assert_eq!(s, 201, "{agent}");
    let agent_id = agent["id"].as_i64().unwrap();
    let mut n = 0;
    let stored = std::cell::Cell::new(0);
    let refused = std::cell::Cell::new(0);
    let tally = |ok: bool| if ok { stored.set(stored.get() + 1) } else { refused.set(refused.get() + 1) };
    for (what, v) in hostile() {
        n += 1;
        let u = format!("{v} #{n}");
        // Agents: create with each free-text field, then patch it.
        for field in ["name", "description", "systemPrompt", "createdBy"] {
            let mut body = json!({"slug": format!("a-{n}-{}", field.to_lowercase()), "name": "A"});
            body[field] = json!(u);
            tally(check(&app, Method::POST, "/api/agents", body, field, &u, what).await);
            tally(
                check(&app, Method::PATCH, &format!("/api/agents/{agent_id}"), json!({field: u}), field, &u, what)
                    .await,
            );
        }
        for field in ["slug", "model", "role"] {
            let (s, r) = app.post("/api/agents", json!({"slug": format!("b-{n}"), "name": "B", field: u})).await;
            assert!(s == 400 || s == 201, "agents {field} ({what}): {s} {r}");
            let (s, r) = app.patch(&format!("/api/agents/{agent_id}"), json!({field: u})).await;
            assert!(s == 400 || s == 200, "agents patch {field} ({what}): {s} {r}");
        }
        // allowedTools entries.
        let (s, r) = app.patch(&format!("/api/agents/{agent_id}"), json!({"allowedTools": [u]})).await;
        assert!(s == 400 || s == 200, "agents allowedTools ({what}): {s} {r}");

        // Bots.
        let (s, bot) = app.post("/api/bots", json!({"name": u, "platform": "discord", "token": "BOT_TOKEN"})).await;
        assert!(s == 400 || s == 201, "bots name ({what}): {s} {bot}");
        if s == 201 {
            assert_eq!(bot["name"].as_str(), Some(u.as_str()));
            let id = bot["id"].as_i64().unwrap();
            tally(check(&app, Method::PATCH, &format!("/api/bots/{id}"), json!({"name": u}), "name", &u, what).await);
            for (field, body) in [
                ("token", json!({"token": u})),
                ("platform", json!({"platform": u})),
                ("channelBindings", json!({"channelBindings": [{"channelId": u, "agentId": agent_id}]})),
            ] {
                let (s, r) = app.patch(&format!("/api/bots/{id}"), body).await;
                assert!(s == 400 || s == 200, "bots {field} ({what}): {s} {r}");
            }
            app.delete(&format!("/api/bots/{id}")).await;
        }

        // Skills.
        for field in ["displayName", "description", "content"] {
            let mut body = json!({"name": format!("skill-{n}-{}", field.to_lowercase()), "content": "c"});
            body[field] = json!(u);
            tally(check(&app, Method::POST, "/api/skills", body, field, &u, what).await);
        }
        let (s, r) = app.post("/api/skills", json!({"name": u, "content": "c"})).await;
        assert!(s == 400 || s == 201, "skills name ({what}): {s} {r}");
        for field in ["triggerKeywords", "triggerPatterns", "requiredTools"] {
            let (s, r) = app
                .post(
                    "/api/skills",
                    json!({"name": format!("sk-{n}-{}", field.to_lowercase()), "content": "c", field: [u]}),
                )
                .await;
            assert!(s == 400 || s == 201, "skills {field} ({what}): {s} {r}");
        }

        // Workflows.
        for field in ["name", "prompt", "channelId", "platform"] {
            let mut body = json!({"name": "w", "agentId": agent_id, "schedule": "every 1h", "prompt": "p"});
            body[field] = json!(u);
            let (s, r) = app.call(Method::POST, "/api/workflows", Some(body), &[]).await;
            assert!(s == 400 || s == 201, "workflows {field} ({what}): {s} {r}");
            if s == 201 {
                assert_eq!(r[field].as_str(), Some(u.as_str()), "workflows {field} ({what})");
                let id = r["id"].as_i64().unwrap();
                tally(
                    check(&app, Method::PATCH, &format!("/api/workflows/{id}"), json!({field: u}), field, &u, what)
                        .await,
                );
            } else {
                tally(false);
            }
        }
        let (s, r) =
            app.post("/api/workflows", json!({"name": "w", "agentId": agent_id, "schedule": u, "prompt": "p"})).await;
        assert_eq!(s, 400, "workflows schedule ({what}): {r}");

        // Webhooks.
        for field in ["name", "secret", "promptTemplate", "channelId", "platform"] {
            let mut body = json!({"name": format!("hook {n} {field}"), "agentId": agent_id});
            body[field] = json!(u);
            let (s, r) = app.call(Method::POST, "/api/webhooks", Some(body), &[]).await;
            assert!(s == 400 || s == 201, "webhooks {field} ({what}): {s} {r}");
            if s == 201 {
                assert_eq!(r[field].as_str(), Some(u.as_str()), "webhooks {field} ({what})");
                let id = r["id"].as_i64().unwrap();
                tally(
                    check(&app, Method::PATCH, &format!("/api/webhooks/{id}"), json!({field: u}), field, &u, what)
                        .await,
                );
            } else {
                tally(false);
            }
        }

        // Settings.
        let (s, r) = app.patch("/api/settings", json!({"defaultModel": u})).await;
        assert!(s == 400 || s == 200, "settings defaultModel ({what}): {s} {r}");

        // Chat: the reply echoes the message, so it went through verbatim.
        let (s, r) = app.post(&format!("/api/agents/{agent_id}/chat"), json!({"message": u})).await;
        assert!(s == 400 || s == 200, "chat ({what}): {s} {r}");
        if s == 200 {
            assert_eq!(r["content"].as_str(), Some(format!("echo: {u}").as_str()), "chat ({what})");
            tally(true);
        } else {
            tally(false);
        }
    }
    // Everything listed afterwards still serializes.
    for path in ["/api/agents", "/api/bots", "/api/skills", "/api/workflows", "/api/webhooks", "/api/settings"] {
        let (s, r) = app.get(path).await;
        assert_eq!(s, 200, "{path}: {r}");
    }
    eprintln!("hostile input: {} stored verbatim, {} refused with 400", stored.get(), refused.get());
    assert!(stored.get() > 0);
    app.stop().await;
});

// ---- WebSocket: what tests/tests/ws_bridge.rs does not cover yet ----

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn ws_connect(addr: std::net::SocketAddr) -> Ws {
    tokio_tungstenite::connect_async(format!("ws://{addr}/ws")).await.unwrap().0
}

/// The next JSON text frame, or None when the socket closed.
async fn ws_next(ws: &mut Ws) -> Option<Value> {
    use futures::StreamExt as _;
    use tokio_tungstenite::tungstenite::Message;
    loop {
        match tokio::time::timeout(std::time::Duration::from_secs(10), ws.next()).await.expect("a frame in time") {
            Some(Ok(Message::Text(t))) => return Some(serde_json::from_str(t.as_str()).unwrap()),
            Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return None,
            Some(Ok(_)) => continue,
        }
    }
}

/// Ten clients flooding at once (pings, deep JSON nesting, hostile unicode,
/// frames just under the size limit) while a bystander chats: the bridge stays
/// up, the bystander's round trips stay fast and its messages are stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flooding_clients_do_not_hurt_a_bystander() {
    use futures::SinkExt as _;
    use tokio_tungstenite::tungstenite::Message;
    let app = TestApp::builder(arvis_testkit::Backend::Sqlite).with_bridge().start().await;
    let addr = app.ws_addr.unwrap();
    let mut flooders = Vec::new();
    for i in 0..10 {
        flooders.push(tokio::spawn(async move {
            let mut ws = ws_connect(addr).await;
            let nested = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
            let near_limit = json!({"type": "message", "content": "é".repeat(60_000)}).to_string();
            for k in 0..300 {
                let frame = match (i + k) % 4 {
                    0 => r#"{"type":"ping"}"#.to_string(),
                    1 => nested.clone(),
                    2 => {
                        json!({"type": "message", "content": "\u{0}\u{202E}👩‍👩‍👧 x'; DROP TABLE messages; --"}).to_string()
                    }
                    _ => near_limit.clone(),
                };
                if ws.send(Message::text(frame)).await.is_err() {
                    break;
                }
            }
            // Drain until the bridge closes us (rate limit) or goes quiet.
            while let Ok(Some(_)) = tokio::time::timeout(std::time::Duration::from_secs(2), ws_next(&mut ws)).await {}
        }));
    }
    let mut bystander = ws_connect(addr).await;
    let mut worst = std::time::Duration::ZERO;
    for n in 0..10 {
        let started = std::time::Instant::now();
        bystander
            .send(Message::text(json!({"type": "message", "content": format!("calm {n}")}).to_string()))
            .await
            .unwrap();
        loop {
            let v = ws_next(&mut bystander).await.expect("the bystander stays connected");
            if v["type"] == "ack" {
                break;
            }
        }
        worst = worst.max(started.elapsed());
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    for f in flooders {
        f.await.unwrap();
    }
    assert!(worst < std::time::Duration::from_secs(3), "bystander round trip {worst:?}");
    let (status, _) = app.get("/api/health").await;
    assert_eq!(status, 200);
    let mut fresh = ws_connect(addr).await;
    fresh.send(Message::text(r#"{"type":"ping"}"#)).await.unwrap();
    assert_eq!(ws_next(&mut fresh).await.unwrap()["type"], "pong");
    eprintln!("bystander worst ack round trip under flood: {worst:?}");
    app.stop().await;
}
