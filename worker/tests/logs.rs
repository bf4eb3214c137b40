//! A worker in its own process (the split topology) writes its log lines —
//! the job completion with its agent, job and duration — where `GET /api/logs`
//! reads them, on both databases.

use std::time::{Duration, Instant};

use arvis_shared::db::queue::ChatRequest;
use arvis_testkit::process::Service;
use arvis_testkit::{Backend, MockLlm, NatsServer, TestDb, both_backends};

both_backends!(a_split_worker_writes_its_job_lines_to_the_logs_table, |backend: Backend| async move {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let mock = MockLlm::start().await;
    let nats = NatsServer::start();
    let agent = arvis_shared::bootstrap::ensure_conductor(&store, "openai/gpt-4o-mini").await.unwrap().id;
    let env = [
        ("DATABASE_URL", db.url.clone()),
        ("NATS_URL", nats.url()),
        ("OPENAI_API_KEY", "sk-test".to_string()),
        ("OPENAI_BASE_URL", format!("{}/v1", mock.url)),
    ];
    let worker = Service::start(env!("CARGO_BIN_EXE_arvis-worker"), &env, "worker started");
    let request = ChatRequest {
        agent_id: agent,
        platform: "web".into(),
        channel_id: "web-logs".into(),
        user_id: None,
        user_name: None,
        content: "hello".into(),
        priority: 5,
        max_attempts: 3,
        external_id: None,
        api: None,
    };
    let job_id = store.enqueue_chat(&request).await.unwrap().job_id;
    // No signal on purpose: the worker's poll finds the job.
    let deadline = Instant::now() + Duration::from_secs(20);
    let line = loop {
        let logs = store.list_logs(0, 200).await.unwrap();
        if let Some(l) = logs.into_iter().find(|l| l.job_id == Some(job_id) && l.msg == "job completed") {
            break l;
        }
        assert!(Instant::now() < deadline, "no 'job completed' line from the worker process");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!((line.service.as_str(), line.level.as_str(), line.agent_id), ("worker", "info", Some(agent)));
    assert!(line.duration_ms.is_some());
    let stopped = worker.sigterm(Duration::from_secs(10));
    assert!(stopped.status.is_some_and(|s| s.success()), "{stopped:?}");
});
