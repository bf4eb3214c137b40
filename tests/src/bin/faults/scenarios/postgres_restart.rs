use super::*;

/// 3. Postgres restarted (`pg_ctl restart -m fast`) under load, on a private cluster.
pub async fn postgres_restart(ctx: &Ctx) -> Outcome {
    let mut o = Outcome {
        scenario: "postgres-restart".into(),
        load: "8 chats/s, 2 workers".into(),
        faults: "pg_ctl restart -m fast (private cluster)".into(),
        ..Default::default()
    };
    let pg = match PrivatePg::start() {
        Ok(pg) => pg,
        Err(e) => {
            o.skipped = true;
            o.ok = true;
            o.notes.push(format!("skipped: {e}"));
            return o;
        }
    };
    let mock = MockLlm::start().await;
    mock.set_default(MockReply::slow(Duration::from_millis(500), MockReply::Echo));
    let c = Cluster::start("postgres-restart", &ctx.logs, &pg.admin(), &mock, 2, 1, &[]).await;
    let load = Load::start(&c, "postgres-restart", 8, 5);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let t = Instant::now();
    let restarted = pg.ctl("restart");
    o.notes.push(format!("restart took {:.1} s (ok: {restarted})", t.elapsed().as_secs_f64()));
    tokio::time::sleep(Duration::from_secs(8)).await;
    let (sent, errors) = load.finish().await;
    o.notes.push(format!("{errors} enqueue attempts refused while Postgres restarted (not counted as sent)"));
    let non_final = c.wait_final(Duration::from_secs(60)).await;
    let mut dead = Vec::new();
    let mut c = c;
    for p in c.services() {
        if p.exited() {
            dead.push(p.name.clone());
        }
    }
    account(&c, &mut o, &sent, false).await;
    o.non_final = o.non_final.max(non_final);
    if !dead.is_empty() {
        o.notes.push(format!("processes that exited: {dead:?}"));
        o.ok = false;
    }
    c.close().await;
    drop(pg);
    o
}
