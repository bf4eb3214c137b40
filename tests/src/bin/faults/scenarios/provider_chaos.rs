use super::*;

/// 5. A provider answering with random 429s, 500s, hangs past the timeout and dropped streams.
pub async fn provider_chaos(ctx: &Ctx) -> Outcome {
    let mock = MockLlm::start().await;
    mock.set_default(MockReply::Chaos(Chaos {
        rate_limited: 0.15,
        server_error: 0.15,
        hang: 0.1,
        hang_for: Duration::from_secs(3),
        drop_mid_stream: 0.1,
        ok_delay: Duration::from_millis(200),
    }));
    let c = Cluster::start("provider-chaos", &ctx.logs, &ctx.pg_admin, &mock, 2, 1, &[]).await;
    let load = Load::start(&c, "provider-chaos", 8, 3);
    tokio::time::sleep(Duration::from_secs(15)).await;
    let (mut sent, _) = load.finish().await;
    let non_final = c.wait_final(Duration::from_secs(90)).await;
    let requests = mock.request_count();
    // Recovery: the provider heals; the account's rest passes; new chats succeed.
    mock.set_default(MockReply::slow(Duration::from_millis(100), MockReply::Echo));
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut resting = 1;
    while Instant::now() < deadline {
        resting = c
            .count(&format!(
                "SELECT COUNT(*) FROM accounts WHERE rate_limited_until IS NOT NULL AND rate_limited_until > {}",
                now_ms()
            ))
            .await;
        if resting == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let after = Load::start(&c, "provider-chaos-after", 5, 3);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (after_sent, _) = after.finish().await;
    c.wait_final(Duration::from_secs(30)).await;
    let after_ids: Vec<i64> = after_sent.iter().map(|s| s.0).collect();
    let mut after_ok = 0;
    for id in &after_ids {
        after_ok += c.count(&format!("SELECT COUNT(*) FROM jobs WHERE id = {id} AND status = 'completed'")).await;
    }
    let mut o = Outcome {
        scenario: "provider-chaos".into(),
        load: "8 chats/s for 15 s, 2 workers, 1 account".into(),
        faults: "15% 429 (Retry-After 1), 15% 500, 10% hang 3 s (> timeout 2 s), 10% dropped mid-stream".into(),
        ..Default::default()
    };
    o.notes.push(format!("provider requests: {requests}"));
    sent.extend(after_sent);
    account(&c, &mut o, &sent, true).await;
    o.non_final = o.non_final.max(non_final);
    o.notes.push(format!(
        "after recovery: {after_ok}/{} chats completed; accounts still resting: {resting}",
        after_ids.len()
    ));
    if resting != 0 || after_ok != after_ids.len() as i64 || after_ids.is_empty() {
        o.ok = false;
    }
    c.close().await;
    o
}
