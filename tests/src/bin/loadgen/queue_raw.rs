use super::*;

/// queue-raw: no-op jobs enqueued and completed through the Store (claim +
/// finish, like a worker with a provider that answers instantly), against raw
/// single-row insert+update transactions on the same database.
pub async fn queue_raw(report: &mut Report, secs: f64, pg_admin: &str) {
    use arvis_shared::db::Store;
    use arvis_shared::db::queue::Finish;
    use arvis_shared::domain::job::{JobKind, JobPayload, NewJob};
    for backend in ["sqlite", "postgres"] {
        let dir = tempfile::tempdir().unwrap();
        let mut _scratch = None;
        let url = if backend == "sqlite" {
            format!("sqlite://{}", dir.path().join("q.db").display())
        } else {
            let Some(db) = ScratchPg::create(pg_admin, &format!("bench_q_{}", std::process::id())) else { continue };
            let url = db.url.clone();
            _scratch = Some(db);
            url
        };
        let store = Store::connect(&url, 10).await.unwrap();
        store.migrate().await.unwrap();
        store.bench_raw_prepare().await.unwrap();
        let agent = arvis_shared::bootstrap::ensure_conductor(&store, "openai/gpt-4o-mini").await.unwrap().id;
        for workers in [1usize, 2] {
            let slice = secs / 4.0;
            // Baseline: raw insert + update, one transaction each.
            let raw = {
                let store = store.clone();
                let deadline = Instant::now() + Duration::from_secs_f64(slice);
                let mut n = 0u64;
                while Instant::now() < deadline {
                    store.bench_raw_insert_update().await.unwrap();
                    n += 1;
                }
                n as f64 / slice
            };
            // Subject: a producer enqueues while `workers` claim and finish.
            // Like the real worker loop, a worker that finds nothing waits for
            // the producer's "job ready" signal (a `Notify` here, NATS or the
            // in-process bus in the platform) instead of re-claiming at once.
            let deadline = Instant::now() + Duration::from_secs_f64(slice);
            let ready = std::sync::Arc::new(tokio::sync::Notify::new());
            let producer = {
                let store = store.clone();
                let ready = ready.clone();
                tokio::spawn(async move {
                    while Instant::now() < deadline {
                        let job = NewJob::new(
                            agent,
                            JobKind::Message,
                            5,
                            JobPayload { prompt: "noop".into(), ..Default::default() },
                        );
                        store.enqueue(&job).await.unwrap();
                        ready.notify_waiters();
                    }
                    ready.notify_waiters();
                })
            };
            let mut handles = Vec::new();
            for w in 0..workers {
                let store = store.clone();
                let ready = ready.clone();
                handles.push(tokio::spawn(async move {
                    let id = format!("bench-{w}");
                    let mut done = 0u64;
                    while Instant::now() < deadline {
                        let mut signalled = std::pin::pin!(ready.notified());
                        signalled.as_mut().enable();
                        let jobs = store.claim_jobs(&id, 16, 30_000).await.unwrap();
                        if jobs.is_empty() {
                            let _ = tokio::time::timeout(Duration::from_millis(50), signalled).await;
                            continue;
                        }
                        for j in jobs {
                            if store
                                .finish_job(&Finish {
                                    job_id: j.id,
                                    worker_id: &id,
                                    reply: "ok",
                                    conversation_id: None,
                                    usage: &[],
                                    effects: None,
                                })
                                .await
                                .unwrap()
                                != arvis_shared::db::queue::Finished::LeaseLost
                            {
                                done += 1;
                            }
                        }
                    }
                    done
                }));
            }
            producer.await.unwrap();
            let mut done = 0;
            for h in handles {
                done += h.await.unwrap();
            }
            let rate = done as f64 / slice;
            let sc = format!("queue-raw/{backend}/{workers}w");
            report.add(&sc, "jobs_completed_per_sec", rate, "jobs/s");
            report.add(&sc, "raw_txn_per_sec", raw, "txn/s");
            report.add(&sc, "ratio_to_raw", rate / raw, "x");
        }
        store.close().await;
    }
}
