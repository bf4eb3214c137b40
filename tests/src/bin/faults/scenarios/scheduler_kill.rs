use super::*;

/// 4. Three schedulers, one killed (-9) and restarted repeatedly, over `every 10s` workflows.
pub async fn scheduler_kill(ctx: &Ctx) -> Outcome {
    let mock = MockLlm::start().await;
    mock.set_default(MockReply::slow(Duration::from_millis(100), MockReply::Echo));
    let mut c = Cluster::start("scheduler-kill", &ctx.logs, &ctx.pg_admin, &mock, 2, 3, &[]).await;
    let mut ids = Vec::new();
    for i in 0..3 {
        let w = c
            .api_post(
                "/api/workflows",
                json!({"name": format!("tick {i}"), "agentId": c.agent_id, "schedule": "every 10s",
                    "prompt": format!("workflow {i}"), "channelId": format!("wf-{i}"), "platform": "web"}),
            )
            .await;
        ids.push(w["id"].as_i64().unwrap());
    }
    let started = now_ms();
    let secs = 45;
    let mut kills = 0;
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(3500)).await;
        let i = kills % 3;
        c.schedulers[i].signal("-KILL");
        c.schedulers[i].wait_exit(Duration::from_secs(5));
        c.schedulers[i] = c.spawn("arvis-scheduler");
        kills += 1;
    }
    let ended = now_ms();
    let non_final = c.wait_final(Duration::from_secs(30)).await;
    let mut o = Outcome {
        scenario: "scheduler-kill".into(),
        load: "3 workflows every 10 s, 3 schedulers".into(),
        faults: format!("{kills}× kill -9 scheduler over {secs} s"),
        ..Default::default()
    };
    let mut expected_total = 0;
    let mut bad = Vec::new();
    for id in &ids {
        let created: Vec<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT created_at FROM jobs WHERE workflow_id = {id} ORDER BY created_at"
        )))
        .fetch_all(&c.pool)
        .await
        .unwrap();
        let skipped = c.count(&format!("SELECT skipped_runs FROM workflows WHERE id = {id}")).await;
        // Due times: every 10 s from the first after creation; the window holds
        // floor(elapsed / 10) or one fewer.
        let due = (ended - started) / 10_000;
        expected_total += due;
        let n = created.len() as i64 + skipped;
        let close_pairs = created.windows(2).filter(|w| w[1] - w[0] < 5_000).count() as i64;
        o.duplicated += close_pairs;
        if n < due - 1 || n > due + 1 {
            bad.push(format!("workflow {id}: {} jobs + {skipped} skipped for ~{due} due times", created.len()));
        }
        o.sent += created.len() as i64;
    }
    o.completed = c.count("SELECT COUNT(*) FROM jobs WHERE status = 'completed'").await;
    o.failed = c.count("SELECT COUNT(*) FROM jobs WHERE status = 'failed'").await;
    o.stored = c.count("SELECT COUNT(*) FROM messages WHERE role = 'assistant'").await;
    o.non_final = non_final;
    o.lost = bad.len() as i64 + non_final;
    o.notes.push(format!("~{expected_total} due times in the window; jobs = sent column"));
    o.notes.extend(bad);
    o.ok = o.lost == 0 && o.duplicated == 0 && o.failed == 0;
    c.close().await;
    o
}
