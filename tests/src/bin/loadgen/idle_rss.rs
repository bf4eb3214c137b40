use super::*;

/// idle-rss: each binary idle after start.
pub async fn idle_rss(report: &mut Report) {
    let work = tempfile::tempdir().unwrap();
    let nats = NatsServer::start_with(false, None);
    let db = format!("sqlite://{}", work.path().join("rss.db").display());
    for bin in ["arvis", "arvis-gateway", "arvis-worker", "arvis-scheduler", "arvis-ws-bridge"] {
        let gport = free_port();
        let mut envs = vec![
            ("GATEWAY_ADDR", format!("127.0.0.1:{gport}")),
            ("WS_BRIDGE_ADDR", format!("127.0.0.1:{}", free_port())),
            ("DATABASE_URL", db.clone()),
            ("ARVIS_DATA_DIR", work.path().display().to_string()),
        ];
        if bin != "arvis" {
            envs.push(("NATS_URL", nats.url()));
        }
        let p = spawn(bin, &envs, work.path());
        if bin == "arvis" || bin == "arvis-gateway" {
            wait_http(&format!("http://127.0.0.1:{gport}/api/health")).await;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        report.add(&format!("idle-rss/{bin}"), "rss", rss_mb(p.pid()), "MB");
    }
}
