//! The `Store` on both backends.

#![expect(clippy::unwrap_used)] // a test fails by panicking

use arvis_shared::db::DbError;
use arvis_shared::domain::agent::{DEFAULT_MODEL, NewAgent};
use arvis_testkit::{TestDb, both_backends};

fn agent(slug: &str) -> NewAgent {
    serde_json::from_value(serde_json::json!({"slug": slug, "name": "Support Bot", "allowedTools": ["calculate"]}))
        .unwrap()
}

both_backends!(agents_round_trip_with_booleans_json_and_conflicts, |backend| async move {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let created = store.create_agent(&agent("support").into_fields(DEFAULT_MODEL).unwrap()).await.unwrap();
    assert_eq!(created.allowed_tools, vec!["calculate".to_string()]);
    assert!(created.is_active);
    let dup = store.create_agent(&agent("support").into_fields(DEFAULT_MODEL).unwrap()).await.unwrap_err();
    assert!(matches!(dup, DbError::Conflict(_)), "{dup:?}");
    let mut f = agent("support").into_fields(DEFAULT_MODEL).unwrap();
    f.is_active = false;
    let updated = store.update_agent(created.id, &f).await.unwrap().unwrap();
    assert!(!updated.is_active);
    assert_eq!(store.get_agent(created.id).await.unwrap().unwrap(), updated);
    assert!(store.delete_agent(created.id).await.unwrap());
    assert!(!store.delete_agent(created.id).await.unwrap());
    assert!(store.get_agent(created.id).await.unwrap().is_none());
});

both_backends!(migrations_are_idempotent_and_report_ready, |backend| async move {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    store.migrate().await.unwrap();
    assert!(store.ready().await.unwrap());
});

both_backends!(hot_reads_reuse_connections_and_stop_at_close, |backend| async move {
    use std::time::Duration;
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let sqlite = matches!(backend, arvis_testkit::Backend::Sqlite);
    // Hot reads one after another reuse one connection (SQLite); Postgres uses its pool.
    for _ in 0..8 {
        store.usable_accounts(None, 0).await.unwrap();
        store.next_due_at().await.unwrap();
    }
    assert_eq!(store.hot_idle(), usize::from(sqlite));
    // Many at once from several tasks: all answer, and at most MAX_IDLE stay open.
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..20 {
                store.usable_accounts(None, 0).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert!(store.hot_idle() <= arvis_shared::db::sqlite::hot::MAX_IDLE);
    assert_eq!(store.hot_idle() > 0, sqlite);
    // The pool still serves every other read.
    let others = (0..6).map(|_| store.list_skills());
    for r in tokio::time::timeout(Duration::from_secs(10), futures::future::join_all(others)).await.unwrap() {
        r.unwrap();
    }
    // Shutdown closes the idle connections; a hot read after it is an error, not a hang.
    tokio::time::timeout(Duration::from_secs(10), store.close()).await.expect("close completes");
    assert_eq!(store.hot_idle(), 0);
    assert!(store.next_due_at().await.is_err());
});

// The scheduler's two workflow queries, as they run (with bound ids), and
// the plan each gets: `jobs_workflow` is partial (`WHERE workflow_id IS NOT
// NULL`, migration 0004), so this fails if a query stops implying that. Also
// the look-up behind deleting a webhook (its foreign key's ON DELETE SET
// NULL), which scanned the whole jobs table before migration 0005.
both_backends!(job_lookups_by_workflow_and_webhook_use_their_partial_indexes, |backend| async move {
    use sqlx::Connection as _;
    let db = TestDb::new(backend).await;
    let _store = db.store().await;
    const ONE: &str =
        "SELECT id FROM jobs WHERE workflow_id = $1 AND status IN ('pending', 'running') ORDER BY id LIMIT 1";
    const MANY: &str = "SELECT workflow_id, MIN(id) FROM jobs WHERE status IN ('pending', 'running') \
                        AND workflow_id IN ($1, $2) GROUP BY workflow_id";
    // (`$2 > 0` only so that every query takes the same two bound values.)
    const WEBHOOK: &str = "SELECT id FROM jobs WHERE webhook_id = $1 AND $2 > 0";
    let plans: Vec<String> = match backend {
        arvis_testkit::Backend::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
            let mut plans = Vec::new();
            for q in [ONE, MANY, WEBHOOK] {
                let rows: Vec<(i64, i64, i64, String)> =
                    sqlx::query_as(sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {q}")))
                        .bind(1_i64)
                        .bind(2_i64)
                        .fetch_all(&mut conn)
                        .await
                        .unwrap();
                plans.push(rows.into_iter().map(|r| r.3).collect::<Vec<_>>().join("\n"));
            }
            plans
        }
        arvis_testkit::Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
            // A generic plan (what a prepared statement gets), with sequential
            // scans priced out so that a usable index is always chosen.
            sqlx::raw_sql(
                "SET plan_cache_mode = force_generic_plan; SET enable_seqscan = off; \
                 SET enable_bitmapscan = off",
            )
            .execute(&mut conn)
            .await
            .unwrap();
            let mut plans = Vec::new();
            for (name, q) in [("one", ONE), ("many", MANY), ("webhook", WEBHOOK)] {
                let prepare = format!("PREPARE {name}(bigint, bigint) AS {q}");
                sqlx::raw_sql(sqlx::AssertSqlSafe(prepare)).execute(&mut conn).await.unwrap();
                let rows: Vec<(String,)> = sqlx::query_as(sqlx::AssertSqlSafe(format!("EXPLAIN EXECUTE {name}(1, 2)")))
                    .fetch_all(&mut conn)
                    .await
                    .unwrap();
                plans.push(rows.into_iter().map(|r| r.0).collect::<Vec<_>>().join("\n"));
            }
            plans
        }
    };
    let [one, many, webhook] = <[String; 3]>::try_from(plans).unwrap();
    for plan in [one, many] {
        assert!(plan.contains("jobs_workflow"), "the workflow index is not used:\n{plan}");
    }
    assert!(webhook.contains("jobs_webhook"), "the webhook index is not used:\n{webhook}");
});
