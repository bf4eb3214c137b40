use super::*;

/// 6. SIGTERM to every service under load: nothing left running; then restart.
pub async fn sigterm_all(ctx: &Ctx) -> Outcome {
    let mock = MockLlm::start().await;
    mock.set_default(MockReply::slow(Duration::from_millis(1500), MockReply::Echo));
    let mut c = Cluster::start("sigterm-all", &ctx.logs, &ctx.pg_admin, &mock, 2, 1, &[]).await;
    let rate = if ctx.quick { 6 } else { 10 };
    let load = Load::start(&c, "sigterm-all", rate, 3);
    tokio::time::sleep(Duration::from_secs(4)).await;
    let running_before = c.count("SELECT COUNT(*) FROM jobs WHERE status = 'running'").await;
    for p in c.services() {
        p.signal("-TERM");
    }
    let mut hung = Vec::new();
    for p in c.services() {
        if !p.wait_exit(Duration::from_secs(15)) {
            hung.push(p.name.clone());
        }
    }
    let running_after = c.count("SELECT COUNT(*) FROM jobs WHERE status = 'running'").await;
    let mut o = Outcome {
        scenario: "sigterm-all".into(),
        load: format!("{rate} chats/s, 2 workers, 1.5 s replies"),
        faults: "SIGTERM to gateway, workers, scheduler, bridge".into(),
        ..Default::default()
    };
    o.notes.push(format!("running at SIGTERM: {running_before}; running after exit: {running_after}"));
    if !hung.is_empty() {
        o.notes.push(format!("did not exit within 15 s: {hung:?}"));
    }
    // Restart everything and let the rest finish.
    tokio::time::sleep(Duration::from_secs(1)).await;
    c.gateway = Some(c.spawn("arvis-gateway"));
    for i in 0..c.workers.len() {
        c.workers[i] = c.spawn("arvis-worker");
    }
    c.schedulers[0] = c.spawn("arvis-scheduler");
    c.bridge = Some(c.spawn("arvis-ws-bridge"));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (sent, _) = load.finish().await;
    let non_final = c.wait_final(Duration::from_secs(60)).await;
    account(&c, &mut o, &sent, false).await;
    o.non_final = o.non_final.max(non_final);
    if running_after > 0 || !hung.is_empty() {
        o.ok = false;
    }
    c.close().await;
    o
}
