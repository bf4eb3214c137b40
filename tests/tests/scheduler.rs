//! The scheduler, on both databases: due times fire once and not before, across
//! three replicas; missed runs after downtime fire once; the flood guard skips
//! and counts; disabling works without a restart; a `ConfigChanged` notice wakes
//! the running loop; `SCHEDULER_TZ` moves the wall clock. Most tests drive
//! [`arvis_scheduler::tick`] with simulated times instead of waiting.

#![expect(clippy::unwrap_used)] // a test fails by panicking

use std::time::Duration;

use arvis_scheduler::{SCHEDULED_TASK_PREAMBLE, tick};
use arvis_shared::bus::Bus;
use arvis_shared::bus::events::{ConfigChanged, JobReady};
use arvis_shared::bus::subjects;
use arvis_shared::db::Store;
use arvis_shared::domain::schedule;
use arvis_testkit::{TestApp, TestDb, both_backends};
use jiff::tz::TimeZone;
use sqlx::AnyPool;

/// Saturday 2026-11-28 12:00:00 UTC.
const T0: i64 = 1_795_867_200_000;

fn ms(s: &str) -> i64 {
    s.parse::<jiff::Timestamp>().unwrap().as_millisecond()
}

async fn pool(db: &TestDb) -> AnyPool {
    sqlx::any::install_default_drivers();
    AnyPool::connect(&db.url).await.unwrap()
}

async fn agent(store: &Store) -> i64 {
    arvis_shared::bootstrap::ensure_conductor(store, "anthropic/claude-haiku-4-5-20251001").await.unwrap().id
}

/// Inserts an enabled workflow (the REST endpoints belong to another module).
async fn workflow(pool: &AnyPool, agent_id: i64, schedule: &str, next_run_at: Option<i64>) -> i64 {
    sqlx::query_scalar(
        "INSERT INTO workflows (name, agent_id, schedule, prompt, channel_id, platform, is_enabled, next_run_at, \
         created_at, updated_at) VALUES ($1, $2, $3, $4, 'chan-7', 'web', $5, $6, 0, 0) RETURNING id",
    )
    .bind(format!("wf {schedule}"))
    .bind(agent_id)
    .bind(schedule)
    .bind("Summarise the news.")
    .bind(true)
    .bind(next_run_at)
    .fetch_one(pool)
    .await
    .unwrap()
}

#[derive(Debug)]
struct WfState {
    next_run_at: Option<i64>,
    last_run_at: Option<i64>,
    skipped_runs: i64,
}

async fn state(pool: &AnyPool, id: i64) -> WfState {
    let (next_run_at, last_run_at, skipped_runs) =
        sqlx::query_as("SELECT next_run_at, last_run_at, skipped_runs FROM workflows WHERE id = $1")
            .bind(id)
            .fetch_one(pool)
            .await
            .unwrap();
    WfState { next_run_at, last_run_at, skipped_runs }
}

async fn job_count(pool: &AnyPool, workflow_id: i64) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE workflow_id = $1")
        .bind(workflow_id)
        .fetch_one(pool)
        .await
        .unwrap()
}

/// Plays the worker: every pending or running job is done.
async fn complete_all(pool: &AnyPool) {
    sqlx::query("UPDATE jobs SET status = 'completed' WHERE status IN ('pending', 'running')")
        .execute(pool)
        .await
        .unwrap();
}

async fn set_enabled(pool: &AnyPool, id: i64, enabled: bool) {
    sqlx::query("UPDATE workflows SET is_enabled = $1 WHERE id = $2")
        .bind(enabled)
        .bind(id)
        .execute(pool)
        .await
        .unwrap();
}

both_backends!(a_workflow_fires_at_its_due_time_and_not_before, |backend| async move {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let pool = pool(&db).await;
    let bus = Bus::local();
    let mut ready = bus.subscribe(subjects::JOBS_READY).await.unwrap();
    let utc = TimeZone::UTC;
    let wf = workflow(&pool, agent(&store).await, "every 10s", None).await;

    // A new workflow gets its first due time; it does not fire at once.
    let r = tick(&store, &bus, T0, &utc).await.unwrap();
    assert_eq!(r.initialised, [wf]);
    assert!(r.fired.is_empty());
    assert_eq!(r.next_due_at, Some(T0 + 10_000));
    assert_eq!(state(&pool, wf).await.next_run_at, Some(T0 + 10_000));

    let r = tick(&store, &bus, T0 + 9_999, &utc).await.unwrap();
    assert!(r.fired.is_empty(), "not before the due time");
    assert_eq!(job_count(&pool, wf).await, 0);

    let r = tick(&store, &bus, T0 + 10_000, &utc).await.unwrap();
    assert_eq!(r.fired.len(), 1);
    let (_, job_id) = r.fired[0];
    let job = store.job(job_id).await.unwrap().unwrap();
    assert_eq!(job.kind, "workflow");
    assert_eq!(job.priority, 10);
    assert_eq!(job.workflow_id, Some(wf));
    assert_eq!(job.status, "pending");
    assert_eq!(job.payload.prompt, format!("{SCHEDULED_TASK_PREAMBLE}Summarise the news."));
    assert!(job.payload.prompt.starts_with("SCHEDULED TASK — EXECUTE ONLY."));
    assert_eq!(job.payload.channel_id.as_deref(), Some("chan-7"));
    assert_eq!(job.payload.platform.as_deref(), Some("web"));
    let s = state(&pool, wf).await;
    assert_eq!((s.last_run_at, s.next_run_at), (Some(T0 + 10_000), Some(T0 + 20_000)));
    let signal = tokio::time::timeout(Duration::from_secs(2), ready.next()).await.unwrap().unwrap();
    assert_eq!(signal.decode::<JobReady>().unwrap().job_id, job_id);

    // A second tick within the same period finds nothing to do.
    let r = tick(&store, &bus, T0 + 10_500, &utc).await.unwrap();
    assert!(r.fired.is_empty() && r.skipped.is_empty());
    assert_eq!(job_count(&pool, wf).await, 1);
});

both_backends!(three_replicas_enqueue_every_due_time_exactly_once, |backend| async move {
    let db = TestDb::new(backend).await;
    let setup = db.store().await;
    let pool = pool(&db).await;
    let a = agent(&setup).await;
    let schedules = ["every 10s", "every 25s", "* * * * *", "*/2 * * * *"];
    let mut wfs = Vec::new();
    for s in schedules {
        wfs.push(workflow(&pool, a, s, None).await);
    }
    // Three replicas, each with its own connection pool.
    let mut replicas = Vec::new();
    for _ in 0..3 {
        replicas.push(db.store().await);
    }
    let bus = Bus::local();
    let steps = 300; // one simulated second each
    let mut fired_by_replica = [0usize; 3];
    let mut lost = 0;
    for step in 0..=steps {
        let now = T0 + step * 1_000;
        let mut handles = Vec::new();
        for store in &replicas {
            let (store, bus) = (store.clone(), bus.clone());
            handles.push(tokio::spawn(async move { tick(&store, &bus, now, &TimeZone::UTC).await.unwrap() }));
        }
        for (i, h) in handles.into_iter().enumerate() {
            let report = h.await.unwrap();
            assert!(report.skipped.is_empty(), "no job is left unfinished between due times");
            fired_by_replica[i] += report.fired.len();
            lost += report.lost;
        }
        complete_all(&pool).await;
    }
    for (wf, s) in wfs.iter().zip(schedules) {
        let parsed = schedule::parse(s).unwrap();
        let mut due = Vec::new();
        let mut t = parsed.next_after(T0).unwrap();
        while t <= T0 + steps * 1_000 {
            due.push(t);
            t = parsed.next_after(t).unwrap();
        }
        assert_eq!(job_count(&pool, *wf).await, due.len() as i64, "{s}: one job per due time");
        assert_eq!(state(&pool, *wf).await.last_run_at, due.last().copied(), "{s}");
    }
    let total: usize = fired_by_replica.iter().sum();
    let jobs: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM jobs").fetch_one(&pool).await.unwrap();
    assert_eq!(total as i64, jobs, "every enqueued job was reported by exactly one replica");
    println!("fired per replica: {fired_by_replica:?}; claims lost to another replica: {lost}");
});

both_backends!(a_due_time_is_claimed_by_one_claimer_only, |backend| async move {
    use arvis_shared::db::scheduling::{ClaimOutcome, WorkflowRun};
    use arvis_shared::domain::job::{JobKind, JobPayload, NewJob};
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let pool = pool(&db).await;
    let a = agent(&store).await;
    let wf = workflow(&pool, a, "every 10s", Some(T0)).await;
    let job = NewJob::new(a, JobKind::Workflow, 10, JobPayload { prompt: "p".into(), ..Default::default() });
    let run = WorkflowRun { workflow_id: wf, due_at: T0, next_run_at: T0 + 10_000, job: &job, now: T0 };
    let (first, second) =
        tokio::join!(store.claim_and_enqueue_workflow_run(&run), store.claim_and_enqueue_workflow_run(&run));
    let mut outcomes = [first.unwrap(), second.unwrap()];
    outcomes.sort_by_key(|o| matches!(o, ClaimOutcome::Lost));
    assert!(matches!(outcomes[0], ClaimOutcome::Enqueued { .. }), "{outcomes:?}");
    assert_eq!(outcomes[1], ClaimOutcome::Lost);
    assert_eq!(job_count(&pool, wf).await, 1);
    // A stale due time (already moved on) claims nothing.
    assert_eq!(store.claim_and_enqueue_workflow_run(&run).await.unwrap(), ClaimOutcome::Lost);
});

both_backends!(a_restarted_scheduler_fires_missed_runs_once_then_resumes, |backend| async move {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let pool = pool(&db).await;
    let bus = Bus::local();
    let utc = TimeZone::UTC;
    let a = agent(&store).await;
    let every = workflow(&pool, a, "every 10s", None).await;
    let cron = workflow(&pool, a, "* * * * *", None).await;
    tick(&store, &bus, T0, &utc).await.unwrap();
    assert_eq!(tick(&store, &bus, T0 + 10_000, &utc).await.unwrap().fired.len(), 1);
    complete_all(&pool).await;

    // Down from 12:00:10 to 12:05:05: five cron minutes and 29 intervals missed.
    let back = T0 + 305_000;
    let r = tick(&store, &bus, back, &utc).await.unwrap();
    let mut fired: Vec<i64> = r.fired.iter().map(|(wf, _)| *wf).collect();
    fired.sort();
    assert_eq!(fired, [every, cron], "each missed workflow fires once");
    assert_eq!(job_count(&pool, every).await, 2);
    assert_eq!(job_count(&pool, cron).await, 1);
    // …and resumes from now, not from the missed due times.
    assert_eq!(state(&pool, every).await.next_run_at, Some(back + 10_000));
    assert_eq!(state(&pool, cron).await.next_run_at, Some(ms("2026-11-28T12:06:00Z")));
    assert_eq!(state(&pool, every).await.last_run_at, Some(T0 + 20_000), "the due time that was claimed");
    complete_all(&pool).await;
    assert!(tick(&store, &bus, back + 1_000, &utc).await.unwrap().fired.is_empty());
    assert_eq!(tick(&store, &bus, back + 10_000, &utc).await.unwrap().fired.len(), 1);
    complete_all(&pool).await;
    let r = tick(&store, &bus, ms("2026-11-28T12:06:00Z"), &utc).await.unwrap();
    assert!(r.fired.iter().any(|(wf, _)| *wf == cron), "the cron schedule resumed: {r:?}");
    assert_eq!(job_count(&pool, cron).await, 2);
    // every 10s: 12:00:10, the missed run at 12:05:05, 12:05:15, then 12:05:25 (due by 12:06:00).
    assert_eq!(job_count(&pool, every).await, 4);
});

both_backends!(the_flood_guard_skips_and_counts, |backend| async move {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let pool = pool(&db).await;
    let bus = Bus::local();
    let utc = TimeZone::UTC;
    let wf = workflow(&pool, agent(&store).await, "every 10s", Some(T0 + 10_000)).await;
    assert_eq!(tick(&store, &bus, T0 + 10_000, &utc).await.unwrap().fired.len(), 1);

    // The job is still pending at the next due time: skipped, counted, advanced.
    let r = tick(&store, &bus, T0 + 20_000, &utc).await.unwrap();
    assert_eq!(r.skipped, [wf]);
    assert!(r.fired.is_empty());
    let s = state(&pool, wf).await;
    assert_eq!((s.skipped_runs, s.next_run_at, s.last_run_at), (1, Some(T0 + 30_000), Some(T0 + 10_000)));
    // Advanced, so the next tick does not retry at once.
    let r = tick(&store, &bus, T0 + 21_000, &utc).await.unwrap();
    assert!(r.fired.is_empty() && r.skipped.is_empty());
    assert_eq!(job_count(&pool, wf).await, 1);

    // A running job blocks too.
    sqlx::query("UPDATE jobs SET status = 'running'").execute(&pool).await.unwrap();
    assert_eq!(tick(&store, &bus, T0 + 30_000, &utc).await.unwrap().skipped, [wf]);
    assert_eq!(store.workflow_skipped_runs(wf).await.unwrap(), Some(2));

    complete_all(&pool).await;
    assert_eq!(tick(&store, &bus, T0 + 40_000, &utc).await.unwrap().fired.len(), 1);
    assert_eq!(job_count(&pool, wf).await, 2);
    assert_eq!(state(&pool, wf).await.last_run_at, Some(T0 + 40_000));
});

both_backends!(disabling_takes_effect_without_a_restart, |backend| async move {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let pool = pool(&db).await;
    let bus = Bus::local();
    let utc = TimeZone::UTC;
    let wf = workflow(&pool, agent(&store).await, "every 10s", Some(T0 + 10_000)).await;
    set_enabled(&pool, wf, false).await;
    let r = tick(&store, &bus, T0 + 10_000, &utc).await.unwrap();
    assert!(r.fired.is_empty());
    assert_eq!(r.next_due_at, None, "a disabled workflow is not waited for");
    assert_eq!(job_count(&pool, wf).await, 0);

    set_enabled(&pool, wf, true).await;
    assert_eq!(tick(&store, &bus, T0 + 11_000, &utc).await.unwrap().fired.len(), 1);
    // An edit that clears next_run_at re-initialises it from now.
    sqlx::query("UPDATE workflows SET next_run_at = NULL, schedule = 'every 1h'").execute(&pool).await.unwrap();
    complete_all(&pool).await;
    let r = tick(&store, &bus, T0 + 12_000, &utc).await.unwrap();
    assert_eq!((r.initialised.as_slice(), r.fired.len()), ([wf].as_slice(), 0));
    assert_eq!(state(&pool, wf).await.next_run_at, Some(T0 + 12_000 + 3_600_000));
});

both_backends!(a_config_changed_notice_wakes_the_running_scheduler, |backend| async move {
    notice_wakes_the_scheduler(TestApp::builder(backend).with_scheduler().start().await).await;
});

both_backends!(a_config_changed_notice_over_nats_wakes_the_running_scheduler, |backend| async move {
    notice_wakes_the_scheduler(TestApp::builder(backend).with_nats().with_scheduler().start().await).await;
});

async fn notice_wakes_the_scheduler(app: TestApp) {
    let store = app.deps.store.clone();
    let pool = pool(&app.db).await;
    let a = agent(&store).await;
    // Let the scheduler run its first tick over an empty table and go to sleep
    // (up to 10 s: the lease sweep's period).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = std::time::Instant::now();
    let wf = workflow(&pool, a, "every 1h", Some(arvis_shared::clock::now_ms())).await;
    app.deps.bus.signal(&ConfigChanged { v: 1, entity: "workflow".into(), id: Some(wf) }).await;
    while job_count(&pool, wf).await == 0 {
        assert!(started.elapsed() < Duration::from_secs(4), "the notice did not wake the scheduler");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Disabling, then a notice: nothing more fires (the next due is an hour away anyway).
    set_enabled(&pool, wf, false).await;
    app.deps.bus.signal(&ConfigChanged { v: 1, entity: "workflow".into(), id: Some(wf) }).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(job_count(&pool, wf).await, 1);
    app.stop().await;
}

both_backends!(scheduler_tz_moves_the_wall_clock, |backend| async move {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let pool = pool(&db).await;
    let bus = Bus::local();
    let a = agent(&store).await;
    let berlin = TimeZone::get("Europe/Berlin").unwrap();
    let midnight = ms("2026-11-28T00:00:00Z");
    let in_utc = workflow(&pool, a, "0 9 * * *", None).await;
    tick(&store, &bus, midnight, &TimeZone::UTC).await.unwrap();
    let in_berlin = workflow(&pool, a, "0 9 * * *", None).await;
    tick(&store, &bus, midnight, &berlin).await.unwrap();
    assert_eq!(state(&pool, in_utc).await.next_run_at, Some(ms("2026-11-28T09:00:00Z")));
    // 09:00 in Berlin (UTC+1 in November) is 08:00 UTC.
    assert_eq!(state(&pool, in_berlin).await.next_run_at, Some(ms("2026-11-28T08:00:00Z")));
    let r = tick(&store, &bus, ms("2026-11-28T08:00:00Z"), &berlin).await.unwrap();
    assert_eq!(r.fired.iter().map(|(wf, _)| *wf).collect::<Vec<_>>(), [in_berlin]);
    assert_eq!(state(&pool, in_berlin).await.next_run_at, Some(ms("2026-11-29T08:00:00Z")));

    // The configuration reads the zone from SCHEDULER_TZ.
    let config =
        arvis_shared::config::Config::from_lookup(|k| (k == "SCHEDULER_TZ").then(|| "Europe/Berlin".to_string()))
            .unwrap();
    assert_eq!(config.scheduler_tz.iana_name(), Some("Europe/Berlin"));
});

both_backends!(a_broken_schedule_is_postponed_without_holding_others_back, |backend| async move {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let pool = pool(&db).await;
    let bus = Bus::local();
    let a = agent(&store).await;
    // Stored before validation got stricter, say: it no longer parses.
    let broken = workflow(&pool, a, "every blue moon", Some(T0)).await;
    let fresh_broken = workflow(&pool, a, "61 * * * *", None).await;
    let good = workflow(&pool, a, "every 10s", Some(T0)).await;
    let r = tick(&store, &bus, T0, &TimeZone::UTC).await.unwrap();
    assert_eq!(r.fired.iter().map(|(wf, _)| *wf).collect::<Vec<_>>(), [good]);
    assert!(r.failed.is_empty());
    assert_eq!(state(&pool, broken).await.next_run_at, Some(T0 + 3_600_000), "retried in an hour");
    assert_eq!(state(&pool, fresh_broken).await.next_run_at, Some(T0 + 3_600_000));
    assert_eq!(job_count(&pool, broken).await, 0);
});

both_backends!(the_running_scheduler_returns_jobs_of_dead_workers, |backend| async move {
    use arvis_shared::domain::job::{JobKind, JobPayload, NewJob};
    arvis_testkit::init_test_logging();
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let a = agent(&store).await;
    let job_id = store
        .enqueue(&NewJob::new(a, JobKind::Message, 5, JobPayload { prompt: "hi".into(), ..Default::default() }))
        .await
        .unwrap();
    // A worker claims it with a 1 ms lease and dies.
    assert_eq!(store.claim_jobs("dead-worker", 1, 1).await.unwrap().len(), 1);
    tokio::time::sleep(Duration::from_millis(20)).await;

    let url = db.url.clone();
    let config = arvis_shared::config::Config::from_lookup(|k| (k == "DATABASE_URL").then(|| url.clone())).unwrap();
    let deps = arvis_shared::Deps::connect(config).await.unwrap();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let scheduler = tokio::spawn(arvis_scheduler::run(deps, shutdown.clone()));
    let started = std::time::Instant::now();
    loop {
        let job = store.job(job_id).await.unwrap().unwrap();
        if job.status == "pending" {
            assert_eq!(job.locked_by, None);
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "lease not swept: {job:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), scheduler).await.unwrap().unwrap().unwrap();
});

both_backends!(a_burst_larger_than_a_batch_fires_each_workflow_once_across_replicas, |backend| async move {
    // 600 workflows due at the same instant (more than two batches), three
    // replicas ticking at once: every due time becomes exactly one job.
    let db = TestDb::new(backend).await;
    let first = db.store().await;
    let pool = pool(&db).await;
    let a = agent(&first).await;
    let n = 2 * arvis_scheduler::CLAIM_BATCH as usize + 88;
    for _ in 0..n {
        workflow(&pool, a, "every 10s", Some(T0)).await;
    }
    let mut replicas = vec![first];
    for _ in 0..2 {
        replicas.push(db.store().await);
    }
    let bus = Bus::local();
    let handles: Vec<_> = replicas
        .into_iter()
        .map(|store| {
            let bus = bus.clone();
            tokio::spawn(async move { tick(&store, &bus, T0 + 500, &TimeZone::UTC).await.unwrap() })
        })
        .collect();
    let mut fired = 0;
    for h in handles {
        let report = h.await.unwrap();
        assert!(report.failed.is_empty(), "{report:?}");
        fired += report.fired.len();
    }
    let (jobs, distinct): (i64, i64) =
        sqlx::query_as("SELECT COUNT(*), COUNT(DISTINCT workflow_id) FROM jobs").fetch_one(&pool).await.unwrap();
    assert_eq!((jobs, distinct), (n as i64, n as i64), "one job per workflow, none twice");
    assert_eq!(fired, n, "every job was reported by exactly one replica");
    let moved: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM workflows WHERE next_run_at = $1 AND last_run_at = $2")
        .bind(T0 + 10_000)
        .bind(T0)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(moved, n as i64, "every due time moved on and recorded its run");
});

both_backends!(a_workflow_whose_job_cannot_be_written_does_not_hold_back_the_others, |backend| async move {
    // A trigger makes enqueueing one workflow's job fail: its batch rolls back,
    // the tick claims one due time at a time, and every other workflow fires.
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let pool = pool(&db).await;
    let a = agent(&store).await;
    let good_before = workflow(&pool, a, "every 10s", Some(T0)).await;
    let broken = workflow(&pool, a, "every 10s", Some(T0)).await;
    let good_after = workflow(&pool, a, "every 10s", Some(T0)).await;
    match backend {
        arvis_testkit::Backend::Sqlite => {
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "CREATE TRIGGER refuse BEFORE INSERT ON jobs WHEN NEW.workflow_id = {broken} \
                 BEGIN SELECT RAISE(ABORT, 'refused by the test'); END;"
            )))
            .execute(&pool)
            .await
            .unwrap();
        }
        arvis_testkit::Backend::Postgres => {
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "CREATE FUNCTION refuse() RETURNS trigger AS $$ BEGIN \
                 IF NEW.workflow_id = {broken} THEN RAISE EXCEPTION 'refused by the test'; END IF; \
                 RETURN NEW; END $$ LANGUAGE plpgsql; \
                 CREATE TRIGGER refuse BEFORE INSERT ON jobs FOR EACH ROW EXECUTE FUNCTION refuse();"
            )))
            .execute(&pool)
            .await
            .unwrap();
        }
    }
    let report = tick(&store, &Bus::local(), T0 + 500, &TimeZone::UTC).await.unwrap();
    assert_eq!(report.failed, [broken]);
    let mut fired: Vec<i64> = report.fired.iter().map(|(wf, _)| *wf).collect();
    fired.sort();
    assert_eq!(fired, [good_before, good_after]);
    assert_eq!(job_count(&pool, broken).await, 0);
    assert_eq!(state(&pool, broken).await.next_run_at, Some(T0), "the broken due time stays unclaimed for a retry");
});
