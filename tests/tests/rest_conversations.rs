//! Sessions, conversations, an agent's dashboard history, memory and the job
//! queue, on both databases.

#![expect(clippy::unwrap_used)] // a test fails by panicking

use arvis_shared::domain::jobs::NewJobRow;
use arvis_testkit::{TestApp, both_backends};
use serde_json::{Value, json};

async fn agent(app: &TestApp, slug: &str) -> i64 {
    let (s, a) = app.post("/api/agents", json!({"slug": slug, "name": format!("Agent {slug}")})).await;
    assert_eq!(s, 201, "{a}");
    a["id"].as_i64().unwrap()
}

both_backends!(sessions_paginate_newest_first, |backend| async move {
    let app = TestApp::spawn(backend).await;
    let store = &app.deps.store;
    let a = agent(&app, "support").await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let c = store.create_conversation(a, "discord", &format!("chan-{i}"), Some("u1"), Some("Alice")).await.unwrap();
        assert!(c.starts_with("conv_"));
        store.append_message(&c, "user", &format!("hello {i}"), None).await.unwrap();
        store.append_message(&c, "assistant", &format!("reply {i}"), None).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(3)).await;
        ids.push(c);
    }
    let empty = store.create_conversation(a, "web", "w", None, None).await.unwrap();

    let (s, list) = app.get("/api/sessions").await;
    assert_eq!(s, 200);
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 6);
    assert_eq!(list[0]["id"], empty.as_str(), "newest activity first");
    assert_eq!(list[0]["messageCount"], 0);
    assert_eq!(list[0]["lastMessage"], Value::Null);
    let s4 = &list[1];
    for f in [
        "id",
        "agentId",
        "agentName",
        "platform",
        "channelId",
        "messageCount",
        "startedAt",
        "lastMessageAt",
        "lastMessage",
    ] {
        assert!(s4.get(f).is_some(), "missing {f} in {s4}");
    }
    assert_eq!(s4["id"], ids[4].as_str());
    assert_eq!(s4["agentId"], a);
    assert_eq!(s4["agentName"], "Agent support");
    assert_eq!(s4["platform"], "discord");
    assert_eq!(s4["channelId"], "chan-4");
    assert_eq!(s4["messageCount"], 2);
    assert_eq!(s4["lastMessage"], "reply 4");
    assert!(s4["startedAt"].as_str().unwrap().ends_with('Z'));

    let page = |q: &'static str| {
        let app = &app;
        async move { app.get(&format!("/api/sessions{q}")).await }
    };
    let (_, p) = page("?limit=2&offset=1").await;
    let got: Vec<&str> = p.as_array().unwrap().iter().map(|x| x["id"].as_str().unwrap()).collect();
    assert_eq!(got, [ids[4].as_str(), ids[3].as_str()]);
    assert_eq!(page("?limit=0").await, (200, json!([])));
    assert_eq!(page("?offset=100").await, (200, json!([])));
    let (s, p) = page("?limit=100000").await;
    assert_eq!((s, p.as_array().unwrap().len()), (200, 6), "limit is capped, not refused");
    for q in ["?limit=-1", "?offset=-1", "?limit=abc", "?offset=1.5", "?limit=99999999999999999999"] {
        let (s, e) = page(q).await;
        assert_eq!(s, 400, "{q}: {e}");
        assert!(e["error"].is_string());
    }

    let (s, thread) = app.get(&format!("/api/conversations/{}", ids[0])).await;
    assert_eq!(s, 200);
    assert_eq!(thread["id"], ids[0].as_str());
    assert_eq!(thread["agentName"], "Agent support");
    assert_eq!(thread["messages"].as_array().unwrap().len(), 2);
    assert_eq!(thread["messages"][0]["role"], "user");
    assert_eq!(thread["messages"][0]["content"], "hello 0");
    assert!(thread["messages"][1]["createdAt"].is_string());
    let (s, e) = app.get("/api/conversations/conv_nope").await;
    assert_eq!(s, 404);
    assert!(e["error"].is_string());
});

both_backends!(agent_history_is_the_newest_dashboard_conversation, |backend| async move {
    let app = TestApp::spawn(backend).await;
    let store = &app.deps.store;
    let a = agent(&app, "helper").await;
    assert_eq!(app.get(&format!("/api/agents/{a}/history")).await, (200, json!([])));
    let channel = format!("dashboard-agent-{a}");
    let old = store.create_conversation(a, "dashboard", &channel, None, None).await.unwrap();
    store.append_message(&old, "user", "old", None).await.unwrap();
    // One active conversation per channel: a second one is refused until the first is closed.
    assert!(store.create_conversation(a, "dashboard", &channel, None, None).await.is_err());
    assert!(store.close_conversation(&old).await.unwrap());
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let new = store.create_conversation(a, "dashboard", &channel, None, None).await.unwrap();
    store.append_message(&new, "user", "Hello", None).await.unwrap();
    store.append_message(&new, "assistant", "Hi there!", None).await.unwrap();
    // Another platform's conversation is not the dashboard history.
    let other = store.create_conversation(a, "discord", &channel, None, None).await.unwrap();
    store.append_message(&other, "user", "elsewhere", None).await.unwrap();

    let (s, h) = app.get(&format!("/api/agents/{a}/history")).await;
    assert_eq!(s, 200);
    let h = h.as_array().unwrap();
    assert_eq!(h.len(), 2);
    assert_eq!((h[0]["role"].as_str(), h[0]["content"].as_str()), (Some("user"), Some("Hello")));
    assert_eq!((h[1]["role"].as_str(), h[1]["content"].as_str()), (Some("assistant"), Some("Hi there!")));
    assert!(h[0]["createdAt"].as_str().unwrap().ends_with('Z'));
    assert_eq!(app.get("/api/agents/99999/history").await.0, 404);
    assert_eq!(app.get("/api/agents/abc/history").await.0, 400);
});

both_backends!(memory_list_filter_delete, |backend| async move {
    let app = TestApp::spawn(backend).await;
    let store = &app.deps.store;
    let a = agent(&app, "m1").await;
    let b = agent(&app, "m2").await;
    let c = store.create_conversation(a, "web", "x", None, None).await.unwrap();
    let f1 = store.save_memory_fact(a, Some(&c), "user_name", "Alice").await.unwrap();
    assert_eq!(store.save_memory_fact(a, Some(&c), "user_name", "Alice").await.unwrap(), f1, "stored once");
    store.save_memory_fact(b, None, "city", "Paris").await.unwrap();

    let (s, all) = app.get("/api/memory").await;
    assert_eq!(s, 200);
    assert_eq!(all.as_array().unwrap().len(), 2);
    let (_, only_a) = app.get(&format!("/api/memory?agentId={a}")).await;
    let only_a = only_a.as_array().unwrap();
    assert_eq!(only_a.len(), 1);
    let e = &only_a[0];
    assert_eq!(e["id"], f1);
    assert_eq!(e["agentId"], a);
    assert_eq!(e["conversationId"], c.as_str());
    assert_eq!(e["key"], "user_name");
    assert_eq!(e["value"], "Alice");
    assert!(e["createdAt"].is_string());
    assert_eq!(app.get("/api/memory?agentId=abc").await.0, 400);
    assert_eq!(app.delete(&format!("/api/memory/{f1}")).await, (200, json!({"ok": true})));
    assert_eq!(app.delete(&format!("/api/memory/{f1}")).await.0, 404);
    assert_eq!(app.get(&format!("/api/memory?agentId={a}")).await.1, json!([]));
});

fn row(agent_id: i64, status: &str) -> NewJobRow {
    NewJobRow {
        agent_id,
        conversation_id: None,
        kind: "message".into(),
        priority: 5,
        status: status.into(),
        payload: r#"{"conversationId":"conv_abc123","prompt":"Hello"}"#.into(),
        error: (status == "failed").then(|| "provider timed out".to_string()),
        attempts: if status == "failed" { 3 } else { 0 },
        max_attempts: 3,
    }
}

both_backends!(queue_lists_retries_and_cancels, |backend| async move {
    let app = TestApp::builder(backend).start().await;
    let store = &app.deps.store;
    let a = agent(&app, "worker").await;
    let pending = store.enqueue_job(a, 2, "message", r#"{"prompt":"p"}"#, None).await.unwrap();
    let running = store.insert_job_row(&row(a, "running")).await.unwrap();
    let failed = store.insert_job_row(&row(a, "failed")).await.unwrap();
    let completed = store.insert_job_row(&row(a, "completed")).await.unwrap();

    let (s, active) = app.get("/api/queue").await;
    assert_eq!(s, 200);
    let ids: Vec<i64> = active.as_array().unwrap().iter().map(|j| j["id"].as_i64().unwrap()).collect();
    assert_eq!(ids.len(), 2);
    assert!(ids.contains(&pending) && ids.contains(&running), "default = pending + running");
    let (_, f) = app.get("/api/queue?status=failed").await;
    let j = &f[0];
    for field in [
        "id",
        "agentId",
        "agentName",
        "priority",
        "status",
        "payload",
        "attempts",
        "maxAttempts",
        "createdAt",
        "error",
        "result",
        "runAfter",
        "startedAt",
        "completedAt",
    ] {
        assert!(j.get(field).is_some(), "missing {field} in {j}");
    }
    assert_eq!(j["id"], failed);
    assert_eq!(j["agentName"], "Agent worker");
    assert_eq!(j["payload"], json!({"conversationId": "conv_abc123", "prompt": "Hello"}), "payload is parsed JSON");
    assert_eq!((j["attempts"].as_i64(), j["maxAttempts"].as_i64()), (Some(3), Some(3)));
    assert_eq!(j["error"], "provider timed out");
    assert_eq!(app.get("/api/queue?status=completed").await.1[0]["id"], completed);
    for q in ["?status=done", "?status=PENDING", "?status=pending,running"] {
        let (s, e) = app.get(&format!("/api/queue{q}")).await;
        assert_eq!(s, 400, "{q}");
        assert!(e["error"].is_string());
    }

    // Retry: failed only.
    let mut sub = app.deps.bus.subscribe(arvis_shared::bus::subjects::JOBS_READY).await.unwrap();
    let (s, r) = app.patch(&format!("/api/queue/{failed}"), json!({"action": "retry"})).await;
    assert_eq!(s, 200, "{r}");
    assert_eq!((r["status"].as_str(), r["attempts"].as_i64()), (Some("pending"), Some(0)));
    assert_eq!(r["error"], Value::Null);
    let msg = tokio::time::timeout(std::time::Duration::from_secs(5), sub.next()).await.unwrap().unwrap();
    let ready: arvis_shared::bus::events::JobReady = msg.decode().unwrap();
    assert_eq!((ready.job_id, ready.priority), (failed, 5));
    assert_eq!(app.patch(&format!("/api/queue/{failed}"), json!({"action": "retry"})).await.0, 409, "now pending");
    assert_eq!(app.patch(&format!("/api/queue/{completed}"), json!({"action": "retry"})).await.0, 409);
    assert_eq!(app.patch(&format!("/api/queue/{running}"), json!({"action": "retry"})).await.0, 409);
    assert_eq!(app.patch(&format!("/api/queue/{completed}"), json!({"action": "rerun"})).await.0, 400);
    assert_eq!(app.patch(&format!("/api/queue/{completed}"), json!({})).await.0, 400);
    assert_eq!(app.patch("/api/queue/99999", json!({"action": "retry"})).await.0, 404);

    // Cancel: pending only; the row stays.
    let (s, c) = app.delete(&format!("/api/queue/{pending}")).await;
    assert_eq!(s, 200, "{c}");
    assert_eq!(c["status"], "cancelled");
    assert_eq!(app.delete(&format!("/api/queue/{pending}")).await.0, 409);
    assert_eq!(app.delete(&format!("/api/queue/{running}")).await.0, 409);
    assert_eq!(app.delete("/api/queue/99999").await.0, 404);
    let (_, cancelled) = app.get("/api/queue?status=cancelled").await;
    assert_eq!(cancelled[0]["id"], pending);
    assert_eq!(store.get_job(pending).await.unwrap().unwrap().status, "cancelled");
});

both_backends!(concurrent_retries_and_cancels_change_a_job_once, |backend| async move {
    use arvis_shared::db::jobs::JobUpdate;
    let db = arvis_testkit::TestDb::new(backend).await;
    let store = db.store().await;
    let agent = arvis_shared::bootstrap::ensure_conductor(&store, "anthropic/claude-haiku-4-5-20251001").await.unwrap();
    let failed = store.insert_job_row(&row(agent.id, "failed")).await.unwrap();
    let pending = store.enqueue_job(agent.id, 1, "message", "{}", None).await.unwrap();
    let retries = futures::future::join_all((0..8).map(|_| store.retry_job(failed))).await;
    let cancels = futures::future::join_all((0..8).map(|_| store.cancel_job(pending))).await;
    let done = |v: &[Result<JobUpdate, _>]| v.iter().filter(|r| matches!(r, Ok(JobUpdate::Done { .. }))).count();
    assert_eq!(done(&retries), 1, "{retries:?}");
    assert_eq!(done(&cancels), 1, "{cancels:?}");
    assert!(retries.iter().all(|r| matches!(r, Ok(JobUpdate::Done { priority: 5 }) | Ok(JobUpdate::WrongStatus(_)))));
    assert_eq!(store.retry_job(999_999).await.unwrap(), JobUpdate::NotFound);
    assert_eq!(
        store.cancel_job(failed).await.unwrap(),
        JobUpdate::Done { priority: 5 },
        "retried → pending → cancellable"
    );
});
