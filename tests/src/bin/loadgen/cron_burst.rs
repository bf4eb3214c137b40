use super::*;

/// cron-burst: 10,000 workflows due at the same instant, three schedulers.
pub async fn cron_burst(report: &mut Report, workflows: usize) {
    use arvis_shared::domain::workflow::WorkflowFields;
    let work = tempfile::tempdir().unwrap();
    let nats = NatsServer::start_with(false, None);
    let url = format!("sqlite://{}", work.path().join("cron.db").display());
    let store = arvis_shared::db::Store::connect(&url, 4).await.unwrap();
    store.migrate().await.unwrap();
    let agent = arvis_shared::bootstrap::ensure_conductor(&store, "openai/gpt-4o-mini").await.unwrap().id;
    let env = vec![
        ("NATS_URL", nats.url()),
        ("DATABASE_URL", url.clone()),
        ("ARVIS_DATA_DIR", work.path().display().to_string()),
    ];
    let _schedulers: Vec<Proc> = (0..3).map(|_| spawn("arvis-scheduler", &env, work.path())).collect();
    // Due at the next whole ten seconds, at least 8 s from now (time to insert).
    let now = arvis_shared::clock::now_ms();
    let due = ((now + 8_000) / 10_000 + 1) * 10_000;
    for i in 0..workflows {
        store
            .create_workflow(&WorkflowFields {
                name: format!("burst {i}"),
                agent_id: agent,
                schedule: "0 0 1 1 *".into(),
                prompt: "noop".into(),
                channel_id: None,
                platform: None,
                is_enabled: true,
                next_run_at: Some(due),
                daily_budget_usd: None,
                monthly_budget_usd: None,
            })
            .await
            .unwrap();
    }
    let inserted_at = arvis_shared::clock::now_ms();
    assert!(inserted_at < due, "inserting {workflows} workflows took past the due time; raise the lead time");
    let bus = arvis_shared::bus::Bus::connect_nats(&nats.url()).await.unwrap();
    bus.publish(&arvis_shared::bus::events::ConfigChanged { v: 1, entity: "workflow".into(), id: None }).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    let (mut total, mut distinct) = (0, 0);
    let mut all_at = None;
    while Instant::now() < deadline {
        (total, distinct) = store.workflow_job_counts().await.unwrap();
        if distinct as usize >= workflows {
            all_at = Some(arvis_shared::clock::now_ms());
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await; // let late duplicates show up, if any
    (total, distinct) = store.workflow_job_counts().await.unwrap_or((total, distinct));
    let sc = format!("cron-burst/{workflows}-workflows-3-schedulers-sqlite");
    report.add(&sc, "time_to_all_enqueued", all_at.map(|t| (t - due) as f64 / 1000.0).unwrap_or(f64::NAN), "s");
    report.add(&sc, "enqueued", distinct as f64, "count");
    report.add(&sc, "duplicates", (total - distinct) as f64, "count");
    report.add(&sc, "missed", (workflows as i64 - distinct) as f64, "count");
}
