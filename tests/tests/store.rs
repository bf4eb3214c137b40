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
