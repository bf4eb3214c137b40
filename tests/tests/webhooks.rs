//! Inbound webhooks over HTTP, on both databases: a signed delivery queues the
//! templated prompt; bad, missing and replayed deliveries queue nothing; stale
//! timestamps, oversized and non-UTF-8 bodies, unknown and disabled webhooks,
//! and the per-webhook rate limit each get their status with a JSON error.

#![expect(clippy::unwrap_used)] // a test fails by panicking

use arvis_testkit::{TestApp, both_backends};
use hmac::{KeyInit as _, Mac as _};
use serde_json::{Value, json};
use sqlx::AnyPool;

const SECRET: &str = "0123456789abcdef0123456789abcdef0123456789abcdef";

async fn pool(app: &TestApp) -> AnyPool {
    sqlx::any::install_default_drivers();
    AnyPool::connect(&app.db.url).await.unwrap()
}

/// Inserts a webhook (the REST endpoints belong to another module).
async fn webhook(pool: &AnyPool, path: &str, secret: Option<&str>, template: &str, enabled: bool) -> i64 {
    let agent_id: i64 = sqlx::query_scalar("SELECT MIN(id) FROM agents").fetch_one(pool).await.unwrap();
    sqlx::query_scalar(
        "INSERT INTO webhooks (name, path, agent_id, secret, prompt_template, channel_id, platform, is_enabled, \
         created_at, updated_at) VALUES ($1, $2, $3, $4, $5, 'ops-channel', 'discord', $6, 0, 0) RETURNING id",
    )
    .bind(format!("hook {path}"))
    .bind(path)
    .bind(agent_id)
    .bind(secret)
    .bind(template)
    .bind(enabled)
    .fetch_one(pool)
    .await
    .unwrap()
}

fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

async fn deliver(app: &TestApp, path: &str, body: &[u8], headers: &[(&str, String)]) -> (u16, Value, Option<String>) {
    let mut req = app.client.post(app.url(&format!("/webhook/{path}"))).body(body.to_vec());
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let retry_after = resp.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string());
    let text = resp.text().await.unwrap();
    let json = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, json, retry_after)
}

async fn jobs(pool: &AnyPool, webhook_id: i64) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE webhook_id = $1")
        .bind(webhook_id)
        .fetch_one(pool)
        .await
        .unwrap()
}

fn now_secs() -> i64 {
    arvis_shared::clock::now_ms() / 1000
}

both_backends!(a_signed_delivery_queues_the_templated_prompt, |backend| async move {
    let app = TestApp::spawn(backend).await;
    let pool = pool(&app).await;
    let id = webhook(
        &pool,
        "github-issues",
        Some(SECRET),
        "Issue #{{payload.issue.number}} {{payload.action}}: {{payload.issue.title}} (labels {{payload.issue.labels}}){{payload.nope}}",
        true,
    )
    .await;
    let body = serde_json::to_vec(
        &json!({"action": "opened", "issue": {"number": 42, "title": "Crash on start", "labels": ["bug"]}}),
    )
    .unwrap();
    let (status, reply, _) = deliver(
        &app,
        "github-issues",
        &body,
        &[
            ("x-hub-signature-256", sign(SECRET, &body)),
            ("x-github-delivery", "d-1".into()),
            ("content-type", "application/json".into()),
        ],
    )
    .await;
    assert_eq!(status, 202, "{reply}");
    assert_eq!(reply["ok"], true);
    let job_id = reply["jobId"].as_i64().unwrap();
    let job = app.deps.store.job(job_id).await.unwrap().unwrap();
    assert_eq!(job.payload.prompt, r#"Issue #42 opened: Crash on start (labels ["bug"])"#);
    assert_eq!((job.kind.as_str(), job.priority, job.webhook_id), ("webhook", 5, Some(id)));
    assert_eq!(job.payload.channel_id.as_deref(), Some("ops-channel"));
    assert_eq!(job.payload.platform.as_deref(), Some("discord"));
    assert_eq!(job.status, "pending");

    // The other signature header works too; a text body fills {{payload}} as sent.
    let plain = webhook(&pool, "plain", Some(SECRET), "", true).await;
    let (status, reply, _) =
        deliver(&app, "plain", b"disk almost full", &[("x-webhook-signature", sign(SECRET, b"disk almost full"))])
            .await;
    assert_eq!(status, 202, "{reply}");
    let job = app.deps.store.job(reply["jobId"].as_i64().unwrap()).await.unwrap().unwrap();
    assert_eq!(job.payload.prompt, "disk almost full");
    assert_eq!(job.webhook_id, Some(plain));

    let (count, last): (i64, Option<i64>) =
        sqlx::query_as("SELECT trigger_count, last_triggered_at FROM webhooks WHERE id = $1")
            .bind(id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(count, 1);
    assert!(last.is_some());
    app.stop().await;
});

both_backends!(bad_missing_and_replayed_deliveries_queue_nothing, |backend| async move {
    let app = TestApp::spawn(backend).await;
    let pool = pool(&app).await;
    let id = webhook(&pool, "deploys", Some(SECRET), "{{payload}}", true).await;
    let body = br#"{"ref":"main"}"#;
    for headers in [
        vec![],
        vec![("x-hub-signature-256", sign("wrong-secret", body))],
        vec![("x-hub-signature-256", sign(SECRET, b"{\"ref\":\"evil\"}"))],
        vec![("x-hub-signature-256", sign(SECRET, body).replace("sha256=", "sha1="))],
        vec![("x-hub-signature-256", "sha256=not-hex".to_string())],
        vec![("x-webhook-signature", String::new())],
    ] {
        let (status, reply, _) = deliver(&app, "deploys", body, &headers).await;
        assert_eq!(status, 401, "{headers:?}: {reply}");
        assert!(reply["error"].is_string());
    }
    assert_eq!(jobs(&pool, id).await, 0);

    let signed = |delivery: &str| vec![("x-hub-signature-256", sign(SECRET, body)), ("x-webhook-id", delivery.into())];
    let (status, _, _) = deliver(&app, "deploys", body, &signed("abc")).await;
    assert_eq!(status, 202);
    let (status, reply, _) = deliver(&app, "deploys", body, &signed("abc")).await;
    assert_eq!((status, reply.clone()), (200, json!({"ok": true, "duplicate": true})), "{reply}");
    let (status, _, _) = deliver(&app, "deploys", body, &signed("abd")).await;
    assert_eq!(status, 202, "another delivery id is new");
    assert_eq!(jobs(&pool, id).await, 2);

    // Delivery ids are forgotten after the replay window.
    let now = arvis_shared::clock::now_ms();
    assert_eq!(app.deps.store.prune_webhook_deliveries(now - 7 * 24 * 3600 * 1000).await.unwrap(), 0);
    assert_eq!(app.deps.store.prune_webhook_deliveries(now + 1).await.unwrap(), 2);
    let (status, _, _) = deliver(&app, "deploys", body, &signed("abc")).await;
    assert_eq!(status, 202, "a forgotten id is new again");
    app.stop().await;
});

both_backends!(concurrent_replays_of_one_delivery_queue_one_job, |backend| async move {
    let app = std::sync::Arc::new(TestApp::spawn(backend).await);
    let pool = pool(&app).await;
    let id = webhook(&pool, "race", Some(SECRET), "{{payload}}", true).await;
    let mut handles = Vec::new();
    for _ in 0..8 {
        let app = app.clone();
        handles.push(tokio::spawn(async move {
            let body = b"same delivery";
            let headers = [("x-webhook-signature", sign(SECRET, body)), ("x-webhook-id", "dup-1".to_string())];
            deliver(&app, "race", body, &headers).await.0
        }));
    }
    let mut statuses = Vec::new();
    for h in handles {
        statuses.push(h.await.unwrap());
    }
    statuses.sort();
    assert_eq!(statuses, [200, 200, 200, 200, 200, 200, 200, 202]);
    assert_eq!(jobs(&pool, id).await, 1);
});

both_backends!(stale_and_future_timestamps_are_refused, |backend| async move {
    let app = TestApp::spawn(backend).await;
    let pool = pool(&app).await;
    let id = webhook(&pool, "ts", Some(SECRET), "{{payload}}", true).await;
    let body = b"ping";
    let with_ts = |ts: String| vec![("x-webhook-signature", sign(SECRET, body)), ("x-webhook-timestamp", ts)];
    for ts in [(now_secs() - 301).to_string(), (now_secs() + 400).to_string(), "yesterday".into()] {
        let (status, reply, _) = deliver(&app, "ts", body, &with_ts(ts.clone())).await;
        assert_eq!(status, 401, "{ts}: {reply}");
    }
    assert_eq!(jobs(&pool, id).await, 0);
    let (status, _, _) = deliver(&app, "ts", body, &with_ts((now_secs() - 10).to_string())).await;
    assert_eq!(status, 202);
    app.stop().await;
});

both_backends!(oversized_non_utf8_unknown_and_disabled_deliveries_are_refused, |backend| async move {
    let app = TestApp::spawn(backend).await;
    let pool = pool(&app).await;
    let id = webhook(&pool, "open", None, "{{payload}}", true).await;
    webhook(&pool, "off", None, "{{payload}}", false).await;

    let big = vec![b'a'; 1024 * 1024 + 1];
    let (status, reply, _) = deliver(&app, "open", &big, &[]).await;
    assert_eq!(status, 413);
    assert!(reply["error"].is_string(), "{reply}");

    let (status, reply, _) = deliver(&app, "open", &[0xff, 0xfe, b'x'], &[]).await;
    assert_eq!(status, 400);
    assert!(reply["error"].is_string(), "{reply}");

    for path in ["nope", "off"] {
        let (status, reply, _) = deliver(&app, path, b"{}", &[]).await;
        assert_eq!(status, 404, "{path}");
        assert!(reply["error"].is_string(), "{reply}");
    }
    assert_eq!(jobs(&pool, id).await, 0);
    // Without a secret, an unsigned delivery is accepted.
    let (status, _, _) = deliver(&app, "open", b"{}", &[]).await;
    assert_eq!(status, 202);
    app.stop().await;
});

both_backends!(the_rate_limit_answers_429_with_retry_after, |backend| async move {
    let mut app = TestApp::builder(backend).env("WEBHOOK_RATE_LIMIT_PER_MIN", "3").start().await;
    let replica = app.spawn_gateway().await;
    let pool = pool(&app).await;
    let id = webhook(&pool, "busy", Some(SECRET), "{{payload}}", true).await;
    let other = webhook(&pool, "quiet", None, "{{payload}}", true).await;
    // Forged deliveries do not use up the sender's quota.
    for _ in 0..5 {
        assert_eq!(deliver(&app, "busy", b"x", &[("x-webhook-signature", sign("forged", b"x"))]).await.0, 401);
    }
    let signed = [("x-webhook-signature", sign(SECRET, b"x"))];
    // The quota is shared by the gateway replicas: two deliveries here, one there…
    for _ in 0..2 {
        assert_eq!(deliver(&app, "busy", b"x", &signed).await.0, 202);
    }
    let via_replica = app
        .client
        .post(format!("{replica}/webhook/busy"))
        .header("x-webhook-signature", sign(SECRET, b"x"))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(via_replica.status(), 202);
    // …and the fourth is refused on either.
    let (status, reply, retry_after) = deliver(&app, "busy", b"x", &signed).await;
    assert_eq!(status, 429, "{reply}");
    assert!(reply["error"].is_string());
    let secs: u64 = retry_after.expect("Retry-After").parse().unwrap();
    assert!((1..=60).contains(&secs), "{secs}");
    let refused = app
        .client
        .post(format!("{replica}/webhook/busy"))
        .header("x-webhook-signature", sign(SECRET, b"x"))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 429);
    assert_eq!(jobs(&pool, id).await, 3);
    // The limit is per webhook.
    assert_eq!(deliver(&app, "quiet", b"x", &[]).await.0, 202);
    assert_eq!(jobs(&pool, other).await, 1);
    app.stop().await;
});

#[test]
fn the_webhook_route_is_documented_as_public() {
    let doc = serde_json::to_value(arvis_gateway::openapi()).unwrap();
    let op = &doc["paths"]["/webhook/{path}"]["post"];
    assert!(op.is_object(), "POST /webhook/{{path}} is in the OpenAPI document");
    assert_eq!(op["security"], json!([{}]), "{op}");
    for status in ["202", "200", "400", "401", "404", "413", "429"] {
        assert!(op["responses"][status].is_object(), "{status} documented");
    }
}
