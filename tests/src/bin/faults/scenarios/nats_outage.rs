use super::*;

/// 2. nats-server down for 10 s under load, restarted on the same port.
pub async fn nats_outage(ctx: &Ctx) -> Outcome {
    let mock = MockLlm::start().await;
    mock.set_default(MockReply::slow(Duration::from_millis(300), MockReply::Echo));
    let mut c = Cluster::start("nats-outage", &ctx.logs, &ctx.pg_admin, &mock, 2, 1, &[]).await;
    let rate = if ctx.quick { 6 } else { 10 };
    let down = if ctx.quick { 6 } else { 10 };
    let load = Load::start(&c, "nats-outage", rate, 3);
    tokio::time::sleep(Duration::from_secs(2)).await;
    c.nats.kill();
    let completed_before = c.count("SELECT COUNT(*) FROM jobs WHERE status = 'completed'").await;
    tokio::time::sleep(Duration::from_secs(down)).await;
    let completed_during = c.count("SELECT COUNT(*) FROM jobs WHERE status = 'completed'").await - completed_before;
    c.nats.restart();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let (sent, _) = load.finish().await;
    let non_final = c.wait_final(Duration::from_secs(60)).await;
    // Every service must still be alive (they reconnect by themselves).
    let mut dead = Vec::new();
    for p in c.services() {
        if p.exited() {
            dead.push(p.name.clone());
        }
    }
    let mut o = Outcome {
        scenario: "nats-outage".into(),
        load: format!("{rate} chats/s, 2 workers"),
        faults: format!("nats-server killed for {down} s"),
        ..Default::default()
    };
    o.notes.push(format!("jobs completed while NATS was down (polling): {completed_during}"));
    account(&c, &mut o, &sent, false).await;
    o.non_final = o.non_final.max(non_final);
    if !dead.is_empty() {
        o.notes.push(format!("processes that exited: {dead:?}"));
        o.ok = false;
    }
    if completed_during == 0 {
        o.notes.push("no job completed during the outage".into());
        o.ok = false;
    }
    c.close().await;
    o
}
