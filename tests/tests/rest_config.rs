//! Accounts, settings, connectors, metrics and bots, on both databases.

#![expect(clippy::unwrap_used)] // a test fails by panicking

use arvis_testkit::{TestApp, both_backends};
use serde_json::{Value, json};

fn assert_fields(v: &Value, fields: &[&str]) {
    for f in fields {
        assert!(v.get(*f).is_some(), "missing {f} in {v}");
    }
}

async fn agent(app: &TestApp, slug: &str) -> i64 {
    let (s, a) = app.post("/api/agents", json!({"slug": slug, "name": slug})).await;
    assert_eq!(s, 201, "{a}");
    a["id"].as_i64().unwrap()
}

both_backends!(accounts_list_and_patch_without_credentials, |backend| async move {
    let app = TestApp::builder(backend)
        .env("OPENAI_API_KEY", "sk-secret-xyz")
        .env("ANTHROPIC_API_KEY", "sk-ant-secret-abc")
        .start()
        .await;
    let (s, list) = app.get("/api/accounts").await;
    assert_eq!(s, 200);
    let list = list.as_array().unwrap().clone();
    assert_eq!(list.len(), 2, "{list:?}");
    for a in &list {
        assert_fields(
            a,
            &["id", "name", "type", "provider", "model", "priority", "isActive", "rateLimitedUntil", "baseUrl"],
        );
        assert_eq!(a["type"], "api_key");
        assert_eq!(a["rateLimitedUntil"], Value::Null);
        assert!(a.get("apiKey").is_none() && a.get("apiKeyEnv").is_none());
    }
    let text = serde_json::to_string(&list).unwrap();
    assert!(!text.contains("sk-secret-xyz") && !text.contains("sk-ant-secret-abc"));
    let openai = list.iter().find(|a| a["provider"] == "openai").unwrap();
    let id = openai["id"].as_i64().unwrap();

    let (s, a) =
        app.patch(&format!("/api/accounts/{id}"), json!({"priority": 1, "isActive": false, "model": "gpt-4o"})).await;
    assert_eq!(s, 200, "{a}");
    assert_eq!(
        (a["priority"].as_i64(), a["isActive"].as_bool(), a["model"].as_str()),
        (Some(1), Some(false), Some("gpt-4o"))
    );
    let (_, list) = app.get("/api/accounts").await;
    assert_eq!(list[0]["id"].as_i64(), Some(id), "ordered by priority");
    let (s, same) = app.patch(&format!("/api/accounts/{id}"), json!({"priority": null})).await;
    assert_eq!((s, same["priority"].as_i64()), (200, Some(1)), "null keeps the value");

    for body in [json!({"apiKey": "sk-new"}), json!({"apiKeyEnv": "OTHER"}), json!({"baseUrl": "http://evil"})] {
        let (s, e) = app.patch(&format!("/api/accounts/{id}"), body).await;
        assert_eq!(s, 400);
        assert!(e["error"].as_str().unwrap().contains("credentials cannot be changed through the API"), "{e}");
    }
    for body in [
        json!({"priority": "high"}),
        json!({"priority": -1}),
        json!({"isActive": 1}),
        json!({"model": ""}),
        json!({"model": "a b"}),
        json!({"model": "x\u{0}"}),
        json!([1]),
    ] {
        let (s, e) = app.patch(&format!("/api/accounts/{id}"), body.clone()).await;
        assert_eq!(s, 400, "{body}: {e}");
        assert!(e["error"].is_string());
    }
    assert_eq!(app.patch("/api/accounts/99999", json!({"priority": 3})).await.0, 404);
});

both_backends!(settings_connectors_and_metrics, |backend| async move {
    let app = TestApp::builder(backend)
        .env("DISCORD_BOT_TOKEN", "discord-secret-token")
        .env("SLACK_BOT_TOKEN", "xoxb-secret")
        .start()
        .await;
    let (s, settings) = app.get("/api/settings").await;
    assert_eq!(s, 200);
    assert_fields(&settings, &["conductorAgentId", "defaultModel"]);
    let other = agent(&app, "other").await;
    let (s, patched) =
        app.patch("/api/settings", json!({"conductorAgentId": other, "defaultModel": "openai/gpt-4o-mini"})).await;
    assert_eq!(s, 200, "{patched}");
    assert_eq!(patched, json!({"conductorAgentId": other, "defaultModel": "openai/gpt-4o-mini"}));
    assert_eq!(app.get("/api/settings").await.1, patched);
    for body in [
        json!({"conductorAgentId": 99999}),
        json!({"defaultModel": "nosuch/x"}),
        json!({"defaultModel": ""}),
        json!({"theme": "dark"}),
        json!({"conductorAgentId": "x"}),
    ] {
        let (s, e) = app.patch("/api/settings", body.clone()).await;
        assert_eq!(s, 400, "{body}: {e}");
        assert!(e["error"].is_string());
    }
    assert_eq!(app.get("/api/settings").await.1, patched, "refused patches change nothing");

    let (s, connectors) = app.get("/api/connectors").await;
    assert_eq!(s, 200);
    let platforms: Vec<&str> = connectors.as_array().unwrap().iter().map(|c| c["platform"].as_str().unwrap()).collect();
    assert_eq!(platforms, ["discord", "telegram", "slack", "whatsapp", "matrix", "sms", "email"]);
    assert_eq!(connectors[0], json!({"platform": "discord", "configured": true, "vars": ["DISCORD_BOT_TOKEN"]}));
    assert_eq!(connectors[1]["configured"], false);
    assert_eq!(
        connectors[2],
        json!({"platform": "slack", "configured": false, "vars": ["SLACK_BOT_TOKEN", "SLACK_APP_TOKEN"]})
    );
    assert_eq!(
        connectors[3],
        json!({"platform": "whatsapp", "configured": false, "vars":
            ["WHATSAPP_ACCESS_TOKEN", "WHATSAPP_PHONE_NUMBER_ID", "WHATSAPP_APP_SECRET", "WHATSAPP_VERIFY_TOKEN"]})
    );
    assert_eq!(connectors[5]["vars"], json!(["TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_PHONE_NUMBER"]));
    assert!(!connectors.to_string().contains("secret"));

    let (s, m) = app.get("/api/metrics").await;
    assert_eq!(s, 200);
    assert_fields(&m, &["queueDepth", "runningJobs", "uptimeSeconds", "totalAgents", "activeAgents"]);
    assert_eq!((m["queueDepth"].as_i64(), m["runningJobs"].as_i64()), (Some(0), Some(0)));
    assert_eq!((m["totalAgents"].as_i64(), m["activeAgents"].as_i64()), (Some(2), Some(2)));
    app.patch(&format!("/api/agents/{other}"), json!({"isActive": false})).await;
    let store = &app.deps.store;
    store.enqueue_job(other, 5, "message", r#"{"prompt":"hi"}"#, None).await.unwrap();
    store.enqueue_job(other, 5, "message", r#"{"prompt":"hi"}"#, None).await.unwrap();
    let (_, m) = app.get("/api/metrics").await;
    assert_eq!((m["queueDepth"].as_i64(), m["activeAgents"].as_i64()), (Some(2), Some(1)));
});

both_backends!(bots_crud_with_channel_bindings, |backend| async move {
    let app = TestApp::spawn(backend).await;
    let a1 = agent(&app, "one").await;
    let a2 = agent(&app, "two").await;
    let mut changes = app.deps.bus.subscribe(arvis_shared::bus::subjects::CONFIG_CHANGED).await.unwrap();
    let (s, bot) = app
        .post(
            "/api/bots",
            json!({"name": "Main Discord Bot", "platform": "discord", "token": "DISCORD_BOT_TOKEN", "defaultAgentId": a1,
                   "channelBindings": [{"channelId": "123456789", "agentId": a2}]}),
        )
        .await;
    assert_eq!(s, 201, "{bot}");
    assert_fields(&bot, &["id", "name", "platform", "token", "defaultAgentId", "channelBindings", "isEnabled"]);
    assert_eq!(bot["channelBindings"], json!([{"channelId": "123456789", "agentId": a2}]));
    assert_eq!(bot["isEnabled"], true);
    let id = bot["id"].as_i64().unwrap();
    let msg = tokio::time::timeout(std::time::Duration::from_secs(5), changes.next()).await.unwrap().unwrap();
    let change: arvis_shared::bus::events::ConfigChanged = msg.decode().unwrap();
    assert_eq!((change.entity.as_str(), change.id), ("bot", Some(id)));

    // Minimal bot: no default agent, no bindings.
    let (s, b2) =
        app.post("/api/bots", json!({"name": "TG", "platform": "telegram", "token": "TELEGRAM_BOT_TOKEN"})).await;
    assert_eq!(s, 201, "{b2}");
    assert_eq!(b2["defaultAgentId"], Value::Null);
    assert_eq!(b2["channelBindings"], json!([]));
    let id2 = b2["id"].as_i64().unwrap();

    let (_, list) = app.get("/api/bots").await;
    assert_eq!(list.as_array().unwrap().len(), 2);
    assert_eq!(list[0], bot);

    // Replace bindings; disable.
    let (s, p) = app
        .patch(
            &format!("/api/bots/{id}"),
            json!({"isEnabled": false, "channelBindings": [{"channelId": "c1", "agentId": a1}, {"channelId": "c2", "agentId": a2}]}),
        )
        .await;
    assert_eq!(s, 200, "{p}");
    assert_eq!(p["isEnabled"], false);
    assert_eq!(p["channelBindings"].as_array().unwrap().len(), 2);
    assert_eq!(p["name"], "Main Discord Bot");

    // A channel bound to another bot on the same platform → 409, nothing changed.
    let (s, b3) =
        app.post("/api/bots", json!({"name": "D2", "platform": "discord", "token": "DISCORD_BOT_TOKEN_2"})).await;
    assert_eq!(s, 201);
    let id3 = b3["id"].as_i64().unwrap();
    let (s, e) =
        app.patch(&format!("/api/bots/{id3}"), json!({"channelBindings": [{"channelId": "c1", "agentId": a1}]})).await;
    assert_eq!(s, 409, "{e}");
    assert!(e["error"].is_string());
    assert_eq!(app.get("/api/bots").await.1[2]["channelBindings"], json!([]), "the failed replace was rolled back");
    let (s, _) = app
        .post("/api/bots", json!({"name": "D3", "platform": "discord", "token": "X", "channelBindings": [{"channelId": "c2", "agentId": a1}]}))
        .await;
    assert_eq!(s, 409);
    assert_eq!(app.get("/api/bots").await.1.as_array().unwrap().len(), 3, "the refused bot was not created");
    // The same channel id on another platform is fine.
    let (s, _) =
        app.patch(&format!("/api/bots/{id2}"), json!({"channelBindings": [{"channelId": "c1", "agentId": a1}]})).await;
    assert_eq!(s, 200);

    for (body, needle) in [
        (json!({"name": "x", "platform": "irc", "token": "T"}), "platform"),
        (json!({"name": "x", "platform": "discord", "token": "MTA4Njk.secret-value"}), "token"),
        (json!({"name": "x", "platform": "discord", "token": "lowercase"}), "token"),
        (json!({"name": "x", "platform": "discord", "token": "T", "defaultAgentId": 99999}), "agent"),
        (
            json!({"name": "x", "platform": "discord", "token": "T", "channelBindings": [{"channelId": "z", "agentId": 99999}]}),
            "agent",
        ),
        (
            json!({"name": "x", "platform": "discord", "token": "T", "channelBindings": [{"channelId": "z", "agentId": a1}, {"channelId": "z", "agentId": a2}]}),
            "twice",
        ),
        (json!({"name": "", "platform": "discord", "token": "T"}), "name"),
        (json!({"platform": "discord", "token": "T"}), "name"),
        (json!({"name": "x", "platform": "discord", "token": "T", "extra": 1}), "extra"),
        (json!({"name": "x\u{0}", "platform": "discord", "token": "T"}), "NUL"),
    ] {
        let (s, e) = app.post("/api/bots", body.clone()).await;
        assert_eq!(s, 400, "{body}: {e}");
        assert!(e["error"].as_str().unwrap().contains(needle), "{body}: {e}");
    }
    assert_eq!(app.patch(&format!("/api/bots/{id}"), json!({"token": "not a name"})).await.0, 400);
    // null clears the default agent; absent keeps it.
    let (_, p) = app.patch(&format!("/api/bots/{id}"), json!({"name": "Renamed"})).await;
    assert_eq!(p["defaultAgentId"], a1);
    let (_, p) = app.patch(&format!("/api/bots/{id}"), json!({"defaultAgentId": null})).await;
    assert_eq!(p["defaultAgentId"], Value::Null);
    assert_eq!(app.patch("/api/bots/99999", json!({"isEnabled": true})).await.0, 404);
    assert_eq!(app.delete(&format!("/api/bots/{id}")).await, (200, json!({"ok": true})));
    assert_eq!(app.delete(&format!("/api/bots/{id}")).await.0, 404);
    // Its bindings went with it: c1 is free again on discord.
    let (s, _) =
        app.patch(&format!("/api/bots/{id3}"), json!({"channelBindings": [{"channelId": "c1", "agentId": a1}]})).await;
    assert_eq!(s, 200);
});
