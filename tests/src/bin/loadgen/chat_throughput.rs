use super::*;

/// chat-throughput: POST chat → queue → worker → provider → stored reply.
pub async fn chat_throughput(report: &mut Report, secs: f64, pg_admin: &str) {
    let work = tempfile::tempdir().unwrap();
    let pport = free_port();
    let _provider = self_process(&["--provider-server", &pport.to_string()]);
    let provider_url = format!("http://127.0.0.1:{pport}/v1");
    let common = |gw: u16| {
        vec![
            ("GATEWAY_ADDR", format!("127.0.0.1:{gw}")),
            ("WS_BRIDGE_ADDR", format!("127.0.0.1:{}", free_port())),
            ("DASHBOARD_API_KEY", KEY.to_string()),
            ("OPENAI_API_KEY", "sk-bench".to_string()),
            ("OPENAI_BASE_URL", provider_url.clone()),
            ("WORKER_CONCURRENCY", "64".to_string()),
            ("ARVIS_DATA_DIR", work.path().display().to_string()),
        ]
    };
    // SQLite: the launcher.
    {
        let gw = free_port();
        let arvis = spawn("arvis", &common(gw), work.path());
        let base = format!("http://127.0.0.1:{gw}");
        wait_http(&format!("{base}/api/health")).await;
        let agents = seed_chat_agents(&base, CHAT_AGENTS).await;
        chat_load(&base, &agents, 1.0).await; // warm-up
        let lane = || async {
            (
                metric(&base, "arvis_sqlite_lane_writes_total").await,
                metric(&base, "arvis_sqlite_lane_commits_total").await,
            )
        };
        let (cpu_before, written_before, lane_before) = (cpu_ms(arvis.pid()), written_kib(arvis.pid()), lane().await);
        let (rate, errors) = chat_load(&base, &agents, secs).await;
        let cpu = cpu_ms(arvis.pid()) - cpu_before;
        let written = written_kib(arvis.pid()) - written_before;
        let lane_after = lane().await;
        report.add("chat-throughput/sqlite-launcher", "jobs_completed_per_sec", rate, "jobs/s");
        report.add("chat-throughput/sqlite-launcher", "errors", errors as f64, "count");
        // CPU per chat carries across machines better than chats/s does: the
        // rate is bounded by the cores the launcher, the load generator and the
        // provider share.
        report.add("chat-throughput/sqlite-launcher", "launcher_cpu_per_job", cpu / (rate * secs), "ms");
        report.add("chat-throughput/sqlite-launcher", "written_per_job", written / (rate * secs), "KiB");
        let (writes, commits) = (lane_after.0 - lane_before.0, lane_after.1 - lane_before.1);
        report.add("chat-throughput/sqlite-launcher", "lane_writes_per_commit", writes / commits, "writes");
    }
    // Postgres: the split binaries with two workers.
    let Some(db) = ScratchPg::create(pg_admin, &format!("bench_chat_{}", std::process::id())) else { return };
    let nats = NatsServer::start_with(false, None);
    let gw = free_port();
    let mut env = common(gw);
    env.push(("DATABASE_URL", db.url.clone()));
    env.push(("NATS_URL", nats.url()));
    let gateway = spawn("arvis-gateway", &env, work.path());
    let base = format!("http://127.0.0.1:{gw}");
    wait_http(&format!("{base}/api/health")).await;
    let w1 = spawn("arvis-worker", &env, work.path());
    let w2 = spawn("arvis-worker", &env, work.path());
    let agents = seed_chat_agents(&base, CHAT_AGENTS).await;
    chat_load(&base, &agents, 1.0).await;
    let split_cpu = || cpu_ms(gateway.pid()) + cpu_ms(w1.pid()) + cpu_ms(w2.pid());
    let (cpu_before, pg_before) = (split_cpu(), postgres_cpu_ms());
    let (rate, errors) = chat_load(&base, &agents, secs).await;
    let (cpu, pg) = (split_cpu() - cpu_before, postgres_cpu_ms() - pg_before);
    report.add("chat-throughput/postgres-split-2w", "jobs_completed_per_sec", rate, "jobs/s");
    report.add("chat-throughput/postgres-split-2w", "errors", errors as f64, "count");
    report.add("chat-throughput/postgres-split-2w", "gateway_workers_cpu_per_job", cpu / (rate * secs), "ms");
    report.add("chat-throughput/postgres-split-2w", "postgres_cpu_per_job", pg / (rate * secs), "ms");
}
