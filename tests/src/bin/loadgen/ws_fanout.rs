use super::*;

/// ws-fanout: 10,000 sockets on one bridge; replies published on NATS at
/// 100/s to random channels; delivery latency measured at the clients.
pub async fn ws_fanout(report: &mut Report, secs: f64, clients: usize) {
    use futures::{SinkExt as _, StreamExt as _};
    use tokio_tungstenite::tungstenite::Message as WsMessage;
    let work = tempfile::tempdir().unwrap();
    let nats = NatsServer::start_with(false, None);
    let wport = free_port();
    let env = vec![
        ("WS_BRIDGE_ADDR", format!("127.0.0.1:{wport}")),
        ("NATS_URL", nats.url()),
        ("DATABASE_URL", format!("sqlite://{}", work.path().join("ws.db").display())),
        ("ARVIS_DATA_DIR", work.path().display().to_string()),
    ];
    let bridge = spawn("arvis-ws-bridge", &env, work.path());
    wait_http(&format!("http://127.0.0.1:{wport}/healthz")).await;
    let idle_rss = rss_mb(bridge.pid());
    let latencies = Arc::new(std::sync::Mutex::new(Vec::<u32>::new()));
    let epoch = Instant::now();
    let connected = Arc::new(tokio::sync::Semaphore::new(0));
    let stop = tokio_util::sync::CancellationToken::new();
    let gate = Arc::new(tokio::sync::Semaphore::new(200));
    for i in 0..clients {
        let (lat, connected, stop, gate) = (latencies.clone(), connected.clone(), stop.clone(), gate.clone());
        tokio::spawn(async move {
            let permit = gate.acquire_owned().await.unwrap();
            let (mut ws, _) = match tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{wport}/")).await {
                Ok(c) => c,
                Err(_) => return,
            };
            let auth = json!({"type": "auth", "channelId": format!("bench-{i}")}).to_string();
            if ws.send(WsMessage::text(auth)).await.is_err() {
                return;
            }
            // auth_ok
            let _ = ws.next().await;
            drop(permit);
            connected.add_permits(1);
            loop {
                tokio::select! {
                    () = stop.cancelled() => break,
                    m = ws.next() => match m {
                        Some(Ok(WsMessage::Text(t))) => {
                            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&t)
                                && v["type"] == "message"
                                && let Some(sent) = v["content"].as_str().and_then(|c| c.parse::<u64>().ok())
                            {
                                let now = epoch.elapsed().as_micros() as u64;
                                lat.lock().unwrap().push(now.saturating_sub(sent) as u32);
                            }
                        }
                        Some(Ok(_)) => {}
                        _ => break,
                    }
                }
            }
        });
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while connected.available_permits() < clients && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let open = connected.available_permits();
    let connected_rss = rss_mb(bridge.pid());
    let bus = arvis_shared::bus::Bus::connect_nats(&nats.url()).await.unwrap();
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    let total = (100.0 * secs) as usize;
    for k in 0..total {
        tick.tick().await;
        let channel = format!("bench-{}", (k * 7919) % clients);
        let event = arvis_shared::bus::events::ReplyEvent {
            v: 1,
            kind: arvis_shared::bus::events::ReplyKind::Message,
            platform: "web".into(),
            channel_id: channel,
            conversation_id: None,
            job_id: k as i64,
            agent_id: 1,
            message_id: Some(k as i64),
            content: (epoch.elapsed().as_micros() as u64).to_string(),
            timestamp: 0,
            failure: None,
        };
        bus.publish(&event).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let peak_rss = rss_mb(bridge.pid());
    stop.cancel();
    let mut lat = latencies.lock().unwrap().clone();
    lat.sort_unstable();
    let sc = format!("ws-fanout/{clients}-clients");
    report.add(&sc, "connected", open as f64, "count");
    report.add(&sc, "bridge_rss_idle", idle_rss, "MB");
    report.add(&sc, "bridge_rss_connected", connected_rss, "MB");
    report.add(&sc, "bridge_rss_peak", peak_rss, "MB");
    report.add(&sc, "replies_published", total as f64, "count");
    report.add(&sc, "replies_delivered", lat.len() as f64, "count");
    report.add(&sc, "delivery_p50", percentile(&lat, 0.5), "ms");
    report.add(&sc, "delivery_p99", percentile(&lat, 0.99), "ms");
}
