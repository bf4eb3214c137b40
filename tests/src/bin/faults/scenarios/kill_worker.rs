use super::*;

/// 1. kill -9 a worker mid-run every ~2 s, starting a replacement each time.
pub async fn kill_worker(ctx: &Ctx) -> Outcome {
    let mock = MockLlm::start().await;
    mock.set_default(MockReply::slow(Duration::from_millis(600), MockReply::Echo));
    let mut c = Cluster::start("kill-worker", &ctx.logs, &ctx.pg_admin, &mock, 3, 1, &[]).await;
    let (rate, kills) = if ctx.quick { (6, 3) } else { (10, 5) };
    let t0 = now_ms();
    let mut kill_times = Vec::new();
    let load = Load::start(&c, "kill-worker", rate, 6);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut killed_running = 0;
    for k in 0..kills {
        let i = k % c.workers.len();
        let pid = c.workers[i].pid();
        killed_running += c
            .count(&format!("SELECT COUNT(*) FROM jobs WHERE status = 'running' AND locked_by LIKE '%-{pid}-%'"))
            .await;
        kill_times.push(format!("{:.1}", (now_ms() - t0) as f64 / 1000.0));
        c.workers[i].signal("-KILL");
        c.workers[i].wait_exit(Duration::from_secs(5));
        let w = c.spawn("arvis-worker");
        c.workers[i] = w;
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (sent, errors) = load.finish().await;
    let non_final = c.wait_final(Duration::from_secs(60)).await;
    let mut o = Outcome {
        scenario: "kill-worker".into(),
        load: format!("{rate} chats/s, 3 workers"),
        faults: format!("{kills}× kill -9 worker"),
        ..Default::default()
    };
    o.notes.push(format!("jobs running in the killed workers (by worker id match): {killed_running}"));
    if errors > 0 {
        o.notes.push(format!("{errors} enqueue errors"));
    }
    // A job whose worker dies under it `max_attempts` times fails for good with
    // "lease expired" (a poison job cannot be told from an unlucky one): final,
    // recorded and reported to the client, so it is not lost.
    account(&c, &mut o, &sent, true).await;
    o.non_final = o.non_final.max(non_final);
    type Failed = (i64, i64, Option<i64>, Option<i64>, String);
    let failed: Vec<Failed> = sqlx::query_as(
        "SELECT id, created_at, started_at, completed_at, payload FROM jobs WHERE status = 'failed' LIMIT 5",
    )
    .fetch_all(&c.pool)
    .await
    .unwrap_or_default();
    for (id, created, started, done, payload) in failed {
        let rel = |t: Option<i64>| t.map(|t| (t - t0) as f64 / 1000.0);
        o.notes.push(format!(
            "failed job {id}: created {:.1} s, last started {:?} s, failed {:?} s after the start; kills at {kill_times:?} s; {}",
            (created - t0) as f64 / 1000.0,
            rel(started),
            rel(done),
            payload.chars().take(160).collect::<String>()
        ));
    }
    c.close().await;
    o
}
