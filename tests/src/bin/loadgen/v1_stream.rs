//! v1-stream: streamed `/v1/chat/completions` against the launcher (SQLite),
//! with an `arvis_sk_` key and the instant loopback provider (one content
//! piece per answer). Measures what the OpenAI-compatible door costs: key
//! lookup → intake → worker → reply events → SSE chunks.
//!
//! Time to first token (TTFT) is from sending the request to receiving the
//! first chunk with non-empty `delta.content` (the role chunk, sent at once,
//! does not count). Two parts: one client at a time (p50/p99 TTFT and
//! completions/s), then `CLIENTS` clients back to back (completions/s and
//! their TTFT p50/p99). Each completion is read to `data: [DONE]`.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{KEY, Report, percentile};

const SC: &str = "v1-stream/sqlite-launcher";
/// Concurrent clients of the second part.
const CLIENTS: usize = 16;

/// One streamed completion: its time to first token, or `None` when no
/// content came (counted as a failure).
async fn one(client: &reqwest::Client, url: &str, key: &str) -> Option<Duration> {
    let body = json!({"model": "chat-0", "stream": true, "messages": [{"role": "user", "content": "hi"}]});
    let started = Instant::now();
    let mut resp = client.post(url).bearer_auth(key).json(&body).send().await.ok()?;
    if !resp.status().is_success() {
        return None;
    }
    let (mut buf, mut first, mut done) = (String::new(), None, false);
    while let Ok(Some(bytes)) = resp.chunk().await {
        buf.push_str(&String::from_utf8_lossy(&bytes));
        while let Some(end) = buf.find("\n\n") {
            let frame: String = buf.drain(..end + 2).collect();
            let data = frame.trim().strip_prefix("data: ").unwrap_or("");
            if data == "[DONE]" {
                done = true;
                continue;
            }
            let Ok(chunk) = serde_json::from_str::<Value>(data) else { continue };
            let content = chunk["choices"][0]["delta"]["content"].as_str().unwrap_or("");
            if first.is_none() && !content.is_empty() {
                first = Some(started.elapsed());
            }
        }
    }
    if done { first } else { None }
}

pub async fn v1_stream(report: &mut Report, secs: f64) {
    let launcher = super::launcher(&[]).await;
    let base = launcher.base.clone();
    super::seed_chat_agents(&base, 1).await;
    let client = reqwest::Client::builder().pool_max_idle_per_host(CLIENTS).tcp_nodelay(true).build().unwrap();
    let created: Value = client
        .post(format!("{base}/api/keys"))
        .header("x-api-key", KEY)
        .json(&json!({"name": "loadgen", "agents": ["chat-0"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = created["key"].as_str().expect("v1-stream: no key created").to_string();
    let url = format!("{base}/v1/chat/completions");
    for _ in 0..3 {
        one(&client, &url, &key).await.expect("v1-stream: the warm-up completion failed");
    }

    // One client at a time.
    let (mut ttft, mut failed) = (Vec::<u32>::new(), 0u64);
    let started = Instant::now();
    while started.elapsed().as_secs_f64() < secs / 2.0 {
        match one(&client, &url, &key).await {
            Some(t) => ttft.push(t.as_micros() as u32),
            None => failed += 1,
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    ttft.sort_unstable();
    report.add(SC, "p50_ttft_one_client", percentile(&ttft, 0.5), "ms");
    report.add(SC, "p99_ttft_one_client", percentile(&ttft, 0.99), "ms");
    report.add(SC, "completions_per_sec_one_client", ttft.len() as f64 / elapsed, "completions/s");

    // CLIENTS clients back to back.
    let deadline = Instant::now() + Duration::from_secs_f64(secs / 2.0);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        let (client, url, key) = (client.clone(), url.clone(), key.clone());
        tasks.push(tokio::spawn(async move {
            let (mut ttft, mut failed) = (Vec::<u32>::new(), 0u64);
            while Instant::now() < deadline {
                match one(&client, &url, &key).await {
                    Some(t) => ttft.push(t.as_micros() as u32),
                    None => failed += 1,
                }
            }
            (ttft, failed)
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        let (ttft, f) = t.await.unwrap();
        all.extend(ttft);
        failed += f;
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort_unstable();
    report.add(SC, &format!("completions_per_sec_{CLIENTS}_clients"), all.len() as f64 / elapsed, "completions/s");
    report.add(SC, &format!("p50_ttft_{CLIENTS}_clients"), percentile(&all, 0.5), "ms");
    report.add(SC, &format!("p99_ttft_{CLIENTS}_clients"), percentile(&all, 0.99), "ms");
    report.add(SC, "failed", failed as f64, "count");
}
