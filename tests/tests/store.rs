//! The `Store` on both backends.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails by panicking

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

both_backends!(hot_reads_reuse_connections_without_starving_the_pool_or_blocking_close, |backend| async move {
    use std::time::Duration;
    let db = TestDb::new(backend).await;
    let store = db.store().await; // a pool of 5 read connections
    // Eight hot reads at once: all answer.
    let reads = (0..8).map(|_| store.usable_accounts(None, 0));
    for r in futures::future::join_all(reads).await {
        r.unwrap();
    }
    // SQLite stashes at most half the pool (2 of 5); Postgres keeps the plain pool.
    let expected = match backend {
        arvis_testkit::Backend::Sqlite => 2,
        arvis_testkit::Backend::Postgres => 0,
    };
    assert_eq!(store.hot_stashed(), expected);
    // With the stash full, the pool still serves every other read.
    let others = (0..6).map(|_| store.list_skills());
    for r in tokio::time::timeout(Duration::from_secs(10), futures::future::join_all(others)).await.unwrap() {
        r.unwrap();
    }
    // A hot read takes a stashed connection and gives it back.
    store.next_due_at().await.unwrap();
    assert_eq!(store.hot_stashed(), expected);
    // Shutdown gives the stashed connections back first: closing completes.
    tokio::time::timeout(Duration::from_secs(10), store.close()).await.expect("close completes");
    assert_eq!(store.hot_stashed(), 0);
});
