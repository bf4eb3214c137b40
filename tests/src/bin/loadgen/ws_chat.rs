use super::*;

/// ws-chat: chats over the WebSocket bridge of the launcher, with the instant
/// loopback provider — one conversation sending chats back to back (round
/// trip from the `message` frame to the final `message` frame, p50/p99), then
/// 16 conversations closed-loop (chats/s). Before TCP_NODELAY on accepted
/// sockets the round trip was ~42-44 ms (Nagle meeting the client's delayed
/// ACK); the goal is ≤ 2 ms.
pub async fn ws_chat(report: &mut Report, secs: f64) {
    use futures::{SinkExt as _, StreamExt as _};
    use tokio_tungstenite::tungstenite::Message as WsMessage;
    // A closed-loop client sends far more than a person's 20 frames per
    // second (the default per-socket limit); builds without the setting ignore it.
    let launcher = launcher(&[("WS_FRAMES_PER_SEC", "100000".to_string())]).await;
    let (base, wport) = (launcher.base.clone(), launcher.ws_port);
    let agents = seed_chat_agents(&base, 16).await;
    let url = format!("ws://127.0.0.1:{wport}/ws");
    // One conversation: send, wait for the final message, repeat. Returns the round trips (µs).
    let conversation = |agent: i64, until: Instant| {
        let url = url.clone();
        async move {
            let (mut ws, _) = tokio_tungstenite::connect_async_with_config(url.as_str(), None, true).await.unwrap();
            let mut trips = Vec::new();
            let frame = json!({"type": "message", "content": "hi", "agentId": agent}).to_string();
            while Instant::now() < until {
                let started = Instant::now();
                ws.send(WsMessage::text(frame.clone())).await.unwrap();
                loop {
                    let Some(Ok(WsMessage::Text(t))) = ws.next().await else { return trips };
                    let v: serde_json::Value = serde_json::from_str(t.as_str()).unwrap_or_default();
                    match v["type"].as_str() {
                        Some("message") => break,
                        Some("error") => panic!("ws-chat: {v}"),
                        _ => {}
                    }
                }
                trips.push(started.elapsed().as_micros() as u32);
            }
            trips
        }
    };
    // Warm-up, then the single conversation.
    let _ = conversation(agents[0], Instant::now() + Duration::from_millis(500)).await;
    let mut one = conversation(agents[0], Instant::now() + Duration::from_secs_f64(secs / 2.0)).await;
    one.sort_unstable();
    report.add("ws-chat/sqlite-launcher", "p50_round_trip", percentile(&one, 0.5), "ms");
    report.add("ws-chat/sqlite-launcher", "p99_round_trip", percentile(&one, 0.99), "ms");
    report.add("ws-chat/sqlite-launcher", "min_round_trip", one.first().map_or(0.0, |v| *v as f64 / 1000.0), "ms");
    // Sixteen conversations at once, closed loop.
    let window = Duration::from_secs_f64(secs / 2.0);
    let started = Instant::now();
    let tasks: Vec<_> = agents.iter().map(|a| tokio::spawn(conversation(*a, started + window))).collect();
    let mut done = 0usize;
    for t in tasks {
        done += t.await.unwrap().len();
    }
    report.add(
        "ws-chat/sqlite-launcher",
        "chats_per_sec_16_conversations",
        done as f64 / started.elapsed().as_secs_f64(),
        "chats/s",
    );
}
