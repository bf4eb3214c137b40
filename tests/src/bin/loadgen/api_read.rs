use super::*;

pub async fn api_read(report: &mut Report, secs: f64, pg_admin: &str) {
    let work = tempfile::tempdir().unwrap();
    let mut scratch = Vec::new(); // before `targets`: dropped after the processes
    let mut targets: Vec<(String, Proc, String)> = Vec::new();
    for backend in ["sqlite", "postgres"] {
        let port = free_port();
        let mut envs = vec![
            ("GATEWAY_ADDR", format!("127.0.0.1:{port}")),
            ("WS_BRIDGE_ADDR", format!("127.0.0.1:{}", free_port())),
            ("DASHBOARD_API_KEY", KEY.to_string()),
            ("ARVIS_DATA_DIR", work.path().join(backend).display().to_string()),
        ];
        if backend == "postgres" {
            let Some(db) = ScratchPg::create(pg_admin, &format!("bench_{}", std::process::id())) else {
                eprintln!("api-read: Postgres unavailable at {pg_admin}, skipping the Postgres run");
                continue;
            };
            envs.push(("DATABASE_URL", db.url.clone()));
            scratch.push(db);
        }
        let proc = spawn("arvis", &envs, work.path());
        let base = format!("http://127.0.0.1:{port}");
        wait_http(&format!("{base}/api/health")).await;
        let client = reqwest::Client::new();
        for i in 0..19 {
            let r = client
                .post(format!("{base}/api/agents"))
                .header("x-api-key", KEY)
                .json(&json!({"slug": format!("agent-{i}"), "name": format!("Agent {i}"), "systemPrompt": "You are a helpful agent. ".repeat(8), "allowedTools": ["calculate", "get_time"]}))
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success(), "seeding agents failed: {}", r.status());
        }
        targets.push((backend.to_string(), proc, base));
    }
    // The baseline serves the exact bytes the gateway returns.
    let (_, _, first) = &targets[0];
    let bytes = reqwest::Client::new()
        .get(format!("{first}/api/agents"))
        .header("x-api-key", KEY)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&bytes).unwrap().as_array().unwrap().len(), 20);
    let file = work.path().join("agents.json");
    std::fs::write(&file, &bytes).unwrap();
    let bport = free_port();
    let _baseline = self_process(&["--baseline-server", &bport.to_string(), &file.display().to_string()]);
    let baseline_url = format!("http://127.0.0.1:{bport}/api/agents");
    wait_http(&baseline_url).await;

    let rounds = 2;
    let slice = secs / rounds as f64;
    for (backend, _proc, base) in &targets {
        let (mut b_rps, mut s_rps, mut p50, mut p99, mut errors) = (0.0, 0.0, 0.0f64, 0.0f64, 0);
        for _ in 0..rounds {
            let b = http_load(&baseline_url, &[], 64, slice).await;
            let s = http_load(&format!("{base}/api/agents"), &[("x-api-key", KEY)], 64, slice).await;
            b_rps += b.rps / rounds as f64;
            s_rps += s.rps / rounds as f64;
            p50 = p50.max(s.p50_ms);
            p99 = p99.max(s.p99_ms);
            errors += s.errors + b.errors;
        }
        let sc = format!("api-read/{backend}");
        report.add(&sc, "requests_per_sec", s_rps, "req/s");
        report.add(&sc, "p50", p50, "ms");
        report.add(&sc, "p99", p99, "ms");
        report.add(&sc, "baseline_requests_per_sec", b_rps, "req/s");
        report.add(&sc, "ratio_to_baseline", s_rps / b_rps, "x");
        report.add(&sc, "errors", errors as f64, "count");
    }
}
