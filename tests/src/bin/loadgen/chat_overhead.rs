use super::*;

/// chat-overhead: at a fixed 200 chats/s, the round trip through the platform
/// against the same client calling the provider directly, interleaved.
pub async fn chat_overhead(report: &mut Report, secs: f64) {
    let launcher = launcher(&[]).await;
    let (base, provider) = (launcher.base.clone(), launcher.provider_url.clone());
    let agents = seed_chat_agents(&base, CHAT_AGENTS).await;
    let client = reqwest::Client::builder().tcp_nodelay(true).build().unwrap();
    let body = json!({"model": "gpt-4o-mini", "stream": true, "messages": [{"role": "user", "content": "hi"}]});
    let mut platform = Vec::new();
    let mut direct = Vec::new();
    let rounds = 4;
    for round in 0..rounds {
        for which in [0, 1] {
            let n = (200.0 * secs / (2.0 * rounds as f64)) as usize;
            let mut tasks = Vec::new();
            let mut tick = tokio::time::interval(Duration::from_millis(5));
            for i in 0..n {
                tick.tick().await;
                let client = client.clone();
                let (url, payload, key) = if which == 0 {
                    (
                        format!("{base}/api/agents/{}/chat", agents[(i + round) % agents.len()]),
                        json!({"message": "hi"}),
                        Some(KEY),
                    )
                } else {
                    (provider.clone(), body.clone(), None)
                };
                tasks.push(tokio::spawn(async move {
                    let started = Instant::now();
                    let mut req = client.post(&url).json(&payload);
                    if let Some(k) = key {
                        req = req.header("x-api-key", k);
                    }
                    let ok = match req.send().await {
                        Ok(r) if r.status().is_success() => r.bytes().await.is_ok(),
                        _ => false,
                    };
                    ok.then(|| started.elapsed().as_micros() as u32)
                }));
            }
            for t in tasks {
                if let Some(us) = t.await.unwrap() {
                    if which == 0 { platform.push(us) } else { direct.push(us) }
                }
            }
        }
    }
    platform.sort_unstable();
    direct.sort_unstable();
    for (name, p) in [("p50", 0.5), ("p99", 0.99)] {
        let overhead = percentile(&platform, p) - percentile(&direct, p);
        report.add("chat-overhead/sqlite-launcher", &format!("{name}_round_trip"), percentile(&platform, p), "ms");
        report.add("chat-overhead/sqlite-launcher", &format!("{name}_provider_direct"), percentile(&direct, p), "ms");
        report.add("chat-overhead/sqlite-launcher", &format!("{name}_added"), overhead, "ms");
    }
    report.add("chat-overhead/sqlite-launcher", "samples", platform.len() as f64, "count");
}
