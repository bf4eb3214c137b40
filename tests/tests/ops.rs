//! Probes and metrics: /healthz, /readyz and /metrics on the gateway and on
//! the health listener the worker and scheduler use.

use std::time::{Duration, Instant};

use arvis_testkit::{Backend, TestApp, both_backends};

const KEY: &str = "ops-test-key-123456";

both_backends!(probes_are_public_and_metrics_need_credentials, |backend| async move {
    let app = TestApp::builder(backend).env("DASHBOARD_API_KEY", KEY).start().await;
    assert_eq!(app.get("/healthz").await.0, 200);
    let (status, ready) = app.get("/readyz").await;
    assert_eq!(status, 200, "{ready}");
    assert_eq!(ready["database"], true);
    assert_eq!(app.get("/api/agents").await.0, 401);
    assert_eq!(app.get("/metrics").await.0, 401);
    let text = app.client.get(app.url("/metrics")).header("x-api-key", KEY).send().await.unwrap().text().await.unwrap();
    assert!(text.contains("arvis_http_requests_total"), "{text}");
    assert!(text.contains(r#"route="/api/agents""#) && text.contains(r#"status="401""#), "{text}");
    assert!(text.contains("arvis_queue_depth"), "{text}");
    assert!(!text.contains(KEY));
});

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_can_be_made_public() {
    let app =
        TestApp::builder(Backend::Sqlite).env("DASHBOARD_API_KEY", KEY).env("METRICS_PUBLIC", "true").start().await;
    assert_eq!(app.get("/metrics").await.0, 200);
    assert_eq!(app.get("/api/agents").await.0, 401, "only /metrics is opened");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_follows_the_bus() {
    let mut app = TestApp::builder(Backend::Sqlite).with_nats().start().await;
    assert_eq!(app.get("/readyz").await.0, 200);
    app.nats.as_mut().unwrap().kill();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, body) = app.get("/readyz").await;
        if status == 503 {
            assert_eq!(body["bus"], false);
            break;
        }
        assert!(Instant::now() < deadline, "readyz never noticed the bus was down");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    app.nats.as_mut().unwrap().restart();
    let deadline = Instant::now() + Duration::from_secs(20);
    while app.get("/readyz").await.0 != 200 {
        assert!(Instant::now() < deadline, "readyz never recovered after the bus came back");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_health_listener_serves_probes_and_guarded_metrics() {
    let app = TestApp::builder(Backend::Sqlite).env("DASHBOARD_API_KEY", KEY).start().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let stop = tokio_util::sync::CancellationToken::new();
    tokio::spawn(arvis_shared::health::serve(app.deps.clone(), listener, stop.clone()));
    let get = |path: &str, key: Option<&str>| {
        let mut req = app.client.get(format!("{base}{path}"));
        if let Some(k) = key {
            req = req.header("authorization", format!("Bearer {k}"));
        }
        async move { req.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(get("/healthz", None).await, 200);
    assert_eq!(get("/readyz", None).await, 200);
    assert_eq!(get("/metrics", None).await, 401);
    assert_eq!(get("/metrics", Some("wrong")).await, 401);
    assert_eq!(get("/metrics", Some(KEY)).await, 200);
    assert_eq!(get("/nope", None).await, 404);
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bridge_serves_probes_and_counts_its_sockets() {
    let app = TestApp::builder(Backend::Sqlite).env("DASHBOARD_API_KEY", KEY).with_bridge().start().await;
    let base = format!("http://{}", app.ws_addr.unwrap());
    let status = |path: &'static str, key: Option<&'static str>| {
        let mut req = app.client.get(format!("{base}{path}"));
        if let Some(k) = key {
            req = req.header("x-api-key", k);
        }
        async move { req.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(status("/readyz", None).await, 200);
    assert_eq!(status("/metrics", None).await, 401);
    let (_socket, _) = tokio_tungstenite::connect_async(format!("ws://{}/", app.ws_addr.unwrap())).await.unwrap();
    let text =
        app.client.get(format!("{base}/metrics")).header("x-api-key", KEY).send().await.unwrap().text().await.unwrap();
    let line = text.lines().find(|l| l.starts_with("arvis_ws_connections ")).unwrap_or_else(|| panic!("{text}"));
    let open: f64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert!(open >= 1.0, "{line}");
}

both_backends!(api_health_reports_a_lost_database_within_a_second, |backend| async move {
    let app = TestApp::spawn(backend).await;
    let (status, body) = app.get("/api/health").await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ok")));
    // The check behind /api/health is at most a second old: the next one
    // after that sees the database gone.
    app.deps.store.close().await;
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let (status, body) = app.get("/api/health").await;
        if status == 503 {
            assert_eq!(body["status"], "degraded");
            break;
        }
        assert!(Instant::now() < deadline, "still {status} {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(app.get("/readyz").await.0, 503, "the deep check sees it at once");
});
