//! telegram-inbound: Telegram messages through the loopback Bot API
//! (`FakeTelegram`, in this process) to the launcher's bot connector and
//! back as delivered replies, with the instant loopback provider answering.
//! Measures what the connector path costs end to end: `getUpdates` long
//! poll → intake (message + job + platform id in one transaction) → worker →
//! reply watcher → outbox row → `sendMessage`.
//!
//! Two parts: one chat at a time (send, wait for the reply, repeat: p50/p99
//! of push → `sendMessage` received), then a burst of messages from as many
//! private chats pushed at once (messages/s from the first push to the last
//! reply, and the burst's p50/p99). Lives in its own file so that the other
//! scenarios' edits do not meet it.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use arvis_testkit::fake_telegram::FakeTelegram;
use serde_json::json;

use super::{KEY, Report, percentile};

const TOKEN: &str = "424242:loadgen-telegram-token";
const SC: &str = "telegram-inbound/sqlite-launcher";

pub async fn telegram_inbound(report: &mut Report, secs: f64) {
    let tg = FakeTelegram::start(TOKEN).await;
    let launcher =
        super::launcher(&[("TELEGRAM_BOT_TOKEN", TOKEN.to_string()), ("TELEGRAM_API_URL", tg.url.clone())]).await;
    let base = launcher.base.clone();
    let client = reqwest::Client::new();
    let agent = super::seed_chat_agents(&base, 1).await[0];
    // The seeded "Telegram bot" answers with that agent.
    let deadline = Instant::now() + Duration::from_secs(30);
    let bot_id = loop {
        let bots: serde_json::Value =
            client.get(format!("{base}/api/bots")).header("x-api-key", KEY).send().await.unwrap().json().await.unwrap();
        if let Some(id) = bots.as_array().and_then(|b| b.first()).and_then(|b| b["id"].as_i64()) {
            break id;
        }
        assert!(Instant::now() < deadline, "telegram-inbound: no bot was seeded");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let r = client
        .patch(format!("{base}/api/bots/{bot_id}"))
        .header("x-api-key", KEY)
        .json(&json!({"defaultAgentId": agent}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "telegram-inbound: cannot set the bot's agent: {}", r.status());
    tg.wait_polling(Duration::from_secs(30)).await;

    let wait_count = |n: usize, within: Duration| {
        let tg = &tg;
        async move {
            let deadline = Instant::now() + within;
            while tg.sent_count() < n {
                assert!(Instant::now() < deadline, "telegram-inbound: {} of {n} replies", tg.sent_count());
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    };
    // Warm-up (the restart after the PATCH, the first connections), then one chat at a time.
    tg.dm(1, "warm up");
    wait_count(1, Duration::from_secs(30)).await;
    let until = Instant::now() + Duration::from_secs_f64(secs / 2.0);
    let mut one: Vec<u32> = Vec::new();
    while Instant::now() < until {
        let n = tg.sent_count();
        let started = Instant::now();
        tg.dm(2, "hi");
        wait_count(n + 1, Duration::from_secs(30)).await;
        one.push(started.elapsed().as_micros() as u32);
    }
    one.sort_unstable();
    report.add(SC, "p50_one_chat", percentile(&one, 0.5), "ms");
    report.add(SC, "p99_one_chat", percentile(&one, 0.99), "ms");
    report.add(SC, "samples_one_chat", one.len() as f64, "count");

    // A burst: one message from each of `burst` private chats, pushed at once.
    let burst = ((secs * 50.0) as usize).clamp(100, 2000);
    let before = tg.sent_count();
    let mut pushed: HashMap<String, Instant> = HashMap::new();
    let started = Instant::now();
    for i in 0..burst {
        let chat = 100_000 + i as i64;
        pushed.insert(chat.to_string(), Instant::now());
        tg.dm(chat, "hello");
    }
    wait_count(before + burst, Duration::from_secs(120)).await;
    let sent = tg.sent();
    let replies: Vec<_> = sent.iter().filter(|s| pushed.contains_key(&s.chat_id)).collect();
    let last = replies.iter().map(|s| s.at).max().unwrap_or(started);
    let mut lat: Vec<u32> =
        replies.iter().map(|s| s.at.duration_since(pushed[&s.chat_id]).as_micros() as u32).collect();
    lat.sort_unstable();
    report.add(
        SC,
        "messages_per_sec_burst",
        replies.len() as f64 / last.duration_since(started).as_secs_f64(),
        "msg/s",
    );
    report.add(SC, "p50_burst", percentile(&lat, 0.5), "ms");
    report.add(SC, "p99_burst", percentile(&lat, 0.99), "ms");
    report.add(SC, "burst", burst as f64, "count");
    report.add(SC, "duplicates", (replies.len() as f64 - burst as f64).max(0.0), "count");
}
