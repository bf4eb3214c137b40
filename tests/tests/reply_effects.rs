//! A reply's effects (its tags: memory, state, delegations, conductor
//! actions) are applied exactly once, however the worker dies (issue #17,
//! point 5), on both databases: recorded with the reply, applied in one
//! transaction with their mark, and swept up by any worker when the one that
//! stored the reply died before applying them.

#![expect(clippy::unwrap_used)] // a test fails by panicking

use std::time::{Duration, Instant};

use arvis_shared::clock::now_ms;
use arvis_shared::db::Store;
use arvis_shared::db::queue::{ChatRequest, Enqueued, Finish, Finished};
use arvis_shared::domain::job::Job;
use arvis_testkit::{Backend, MockLlm, TestApp, TestDb, both_backends};
use arvis_worker::agent::apply::apply_recorded;
use arvis_worker::agent::tags::parse_reply;
use serde_json::json;
use tokio_util::sync::CancellationToken;

const MODEL: &str = "openai/gpt-4o-mini";

/// The reply every test stores: a fact, a state value and a delegation.
const TAGGED: &str = "On it.\n[MEMORY:user_preference] likes green tea\n[STATE:mood] curious\n\
                      [DELEGATE:researcher]Find three teas[/DELEGATE]";

fn chat(agent_id: i64, channel: &str, text: &str) -> ChatRequest {
    ChatRequest {
        agent_id,
        platform: "web".into(),
        channel_id: channel.into(),
        user_id: None,
        user_name: None,
        content: text.into(),
        priority: 5,
        max_attempts: 3,
        external_id: None,
    }
}

async fn agent(store: &Store, slug: &str) -> arvis_shared::domain::agent::Agent {
    let new: arvis_shared::domain::agent::NewAgent =
        serde_json::from_value(json!({"slug": slug, "name": slug, "model": MODEL, "systemPrompt": "Terse."})).unwrap();
    store.create_agent(&new.into_fields(MODEL).unwrap()).await.unwrap()
}

/// What a worker that died right after storing its reply leaves: the job
/// completed with the reply and the reply's effects recorded, none applied.
async fn stored_by_a_worker_that_then_died(store: &Store, agent_id: i64, channel: &str) -> (Enqueued, Job) {
    let e = store.enqueue_chat(&chat(agent_id, channel, "tea?")).await.unwrap();
    let claimed = store.claim_jobs("doomed-worker", 1, 30_000).await.unwrap();
    assert_eq!(claimed.iter().map(|j| j.id).collect::<Vec<_>>(), [e.job_id]);
    let parsed = parse_reply(TAGGED, false);
    let effects = serde_json::to_string(&parsed.effects().unwrap()).unwrap();
    let finish = Finish {
        job_id: e.job_id,
        worker_id: "doomed-worker",
        reply: &parsed.clean,
        conversation_id: Some(&e.conversation_id),
        usage: &[],
        effects: Some(&effects),
    };
    assert!(matches!(store.finish_job(&finish).await.unwrap(), Finished::Stored { message_id: Some(_) }));
    let job = store.job(e.job_id).await.unwrap().unwrap();
    (e, job)
}

async fn count(pool: &sqlx::AnyPool, sql: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_string())).fetch_one(pool).await.unwrap()
}

/// Delegated jobs whose parent is `job_id`.
async fn delegations_of(pool: &sqlx::AnyPool, job_id: i64) -> i64 {
    count(
        pool,
        &format!("SELECT COUNT(*) FROM jobs WHERE kind = 'delegation' AND payload LIKE '%\"parentJobId\":{job_id}%'"),
    )
    .await
}

both_backends!(recorded_effects_are_applied_once_by_whichever_applier_commits_first, |backend| async move {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let other = db.store().await; // a second process on the same database
    let pool = db.pool().await;
    let boss = agent(&store, "boss").await;
    agent(&store, "researcher").await;
    let (e, job) = stored_by_a_worker_that_then_died(&store, boss.id, "c1").await;

    // The crash state: the reply is stored, its effects recorded, none applied.
    assert_eq!(store.conversation_messages(&e.conversation_id).await.unwrap().len(), 2);
    assert_eq!(store.unapplied_effects(now_ms() + 1, 10).await.unwrap(), [e.job_id]);
    assert_eq!(count(&pool, "SELECT COUNT(*) FROM memory_facts").await, 0);
    assert_eq!(delegations_of(&pool, e.job_id).await, 0);

    // An applier that dies mid-way (its transaction never commits) leaves
    // nothing half-written: not the fact it wrote, not the mark.
    let recorded = store.begin_effects(e.job_id).await.unwrap().unwrap();
    let mut tx = recorded.tx;
    tx.save_fact(boss.id, "user_preference", "likes green tea", None).await.unwrap();
    drop(tx);
    assert_eq!(count(&pool, "SELECT COUNT(*) FROM memory_facts").await, 0);
    assert_eq!(store.unapplied_effects(now_ms() + 1, 10).await.unwrap(), [e.job_id]);

    // Two appliers at once (the job's own worker and another's sweep): one applies.
    let (a, b) = tokio::join!(apply_recorded(&store, Some(&boss), &job), apply_recorded(&other, Some(&boss), &job));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert!(a.is_some() != b.is_some(), "exactly one applier applies: {a:?} / {b:?}");
    let applied = a.or(b).unwrap();
    assert_eq!(applied.job_ids.len(), 1, "{:?}", applied.outcomes);
    assert!(applied.outcomes.iter().all(|o| o.ok), "{:?}", applied.outcomes);

    assert_eq!(count(&pool, "SELECT COUNT(*) FROM memory_facts").await, 1);
    assert_eq!(store.prompt_memory(boss.id, 15).await.unwrap().state, vec![("mood".into(), "curious".into())]);
    assert_eq!(delegations_of(&pool, e.job_id).await, 1);
    assert!(store.unapplied_effects(now_ms() + 1, 10).await.unwrap().is_empty());
    let marked = format!("SELECT COUNT(*) FROM jobs WHERE id = {} AND effects_applied_at IS NOT NULL", e.job_id);
    assert_eq!(count(&pool, &marked).await, 1);
    // And any later applier finds nothing left.
    assert!(apply_recorded(&store, Some(&boss), &job).await.unwrap().is_none());
    assert_eq!(delegations_of(&pool, e.job_id).await, 1);
    other.close().await;
});

both_backends!(one_refused_effect_does_not_undo_the_others, |backend| async move {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let pool = db.pool().await;
    let conductor = arvis_shared::bootstrap::ensure_conductor(&store, MODEL).await.unwrap();
    agent(&store, "taken").await;
    let e = store.enqueue_chat(&chat(conductor.id, "c2", "set up")).await.unwrap();
    store.claim_jobs("w", 1, 30_000).await.unwrap();
    // A slug conflict fails inside the transaction (on Postgres that would
    // abort it without the savepoint); the fact before and the agent after still land.
    let parsed = parse_reply(
        "Done.\n[MEMORY:notes] set up twice\n[CREATE_AGENT]\nslug: taken\n[/CREATE_AGENT]\n\
         [CREATE_AGENT]\nslug: fresh\n[/CREATE_AGENT]",
        true,
    );
    let effects = serde_json::to_string(&parsed.effects().unwrap()).unwrap();
    let finish = Finish {
        job_id: e.job_id,
        worker_id: "w",
        reply: &parsed.clean,
        conversation_id: Some(&e.conversation_id),
        usage: &[],
        effects: Some(&effects),
    };
    store.finish_job(&finish).await.unwrap();
    let job = store.job(e.job_id).await.unwrap().unwrap();
    let applied = apply_recorded(&store, Some(&conductor), &job).await.unwrap().unwrap();
    let oks: Vec<bool> = applied.outcomes.iter().map(|o| o.ok).collect();
    assert_eq!(oks, [true, false, true], "{:?}", applied.outcomes);
    assert_eq!(count(&pool, "SELECT COUNT(*) FROM memory_facts").await, 1);
    assert!(store.get_agent_by_slug("fresh").await.unwrap().is_some(), "the agent cache saw the new agent");
    assert_eq!(applied.agent_ids.len(), 1);
});

async fn wait_until(what: &str, within: Duration, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

both_backends!(workers_sweep_up_the_effects_a_dead_worker_left_exactly_once, |backend: Backend| async move {
    let mock = MockLlm::start().await;
    let app = TestApp::builder(backend)
        .env("OPENAI_API_KEY", "sk-test")
        .env("OPENAI_BASE_URL", &format!("{}/v1", mock.url))
        .start()
        .await;
    let store = app.deps.store.clone();
    let pool = app.db.pool().await;
    let boss = agent(&store, "boss").await;
    agent(&store, "researcher").await;
    let (e, _) = stored_by_a_worker_that_then_died(&store, boss.id, "swept").await;
    // The reply is older than the sweep's grace (its worker is long gone).
    sqlx::query("UPDATE jobs SET completed_at = completed_at - 60000 WHERE id = $1")
        .bind(e.job_id)
        .execute(&pool)
        .await
        .unwrap();

    // Two workers start; both sweep at once at start.
    let stop = CancellationToken::new();
    let w1 = tokio::spawn(arvis_worker::run(app.deps.clone(), stop.clone()));
    let w2 = tokio::spawn(arvis_worker::run(app.deps.clone(), stop.clone()));
    wait_until("the delegated job completes", Duration::from_secs(20), async || {
        count(
            &pool,
            &format!(
                "SELECT COUNT(*) FROM jobs WHERE kind = 'delegation' AND status = 'completed' \
                 AND payload LIKE '%\"parentJobId\":{}%'",
                e.job_id
            ),
        )
        .await
            >= 1
    })
    .await;
    // Let a few more sweeps pass (every 5 s with the default lease, at
    // start and on each tick): nothing is applied again.
    tokio::time::sleep(Duration::from_millis(5500)).await;
    stop.cancel();
    w1.await.unwrap().unwrap();
    w2.await.unwrap().unwrap();

    assert_eq!(delegations_of(&pool, e.job_id).await, 1);
    assert_eq!(count(&pool, "SELECT COUNT(*) FROM memory_facts WHERE content = 'likes green tea'").await, 1);
    assert_eq!(store.prompt_memory(boss.id, 15).await.unwrap().state, vec![("mood".into(), "curious".into())]);
    assert!(store.unapplied_effects(now_ms() + 1, 10).await.unwrap().is_empty());
    app.stop().await;
});

both_backends!(
    a_normal_run_applies_its_tags_once_and_an_untagged_reply_records_nothing,
    |backend: Backend| async move {
        let mock = MockLlm::start().await;
        let app = TestApp::builder(backend)
            .with_worker()
            .env("OPENAI_API_KEY", "sk-test")
            .env("OPENAI_BASE_URL", &format!("{}/v1", mock.url))
            .start()
            .await;
        let store = app.deps.store.clone();
        let pool = app.db.pool().await;
        let boss = agent(&store, "boss").await;
        agent(&store, "researcher").await;
        mock.push(arvis_testkit::MockReply::text(TAGGED));
        let (status, body) = app.post(&format!("/api/agents/{}/chat", boss.id), json!({"message": "tea?"})).await;
        assert_eq!((status, body["content"].as_str()), (200, Some("On it.")), "{body}");
        let tagged: i64 =
            sqlx::query_scalar("SELECT id FROM jobs WHERE agent_id = $1").bind(boss.id).fetch_one(&pool).await.unwrap();
        wait_until("the delegated job completes", Duration::from_secs(20), async || {
            count(&pool, "SELECT COUNT(*) FROM jobs WHERE kind = 'delegation' AND status = 'completed'").await >= 1
        })
        .await;
        assert_eq!(delegations_of(&pool, tagged).await, 1);
        assert_eq!(count(&pool, "SELECT COUNT(*) FROM memory_facts").await, 1);
        let marked = format!(
            "SELECT COUNT(*) FROM jobs WHERE id = {tagged} AND effects IS NOT NULL AND effects_applied_at IS NOT NULL"
        );
        assert_eq!(count(&pool, &marked).await, 1, "recorded and marked applied");

        // The delegated job's plain reply recorded no effects: its finish stayed one write.
        let plain =
            "SELECT COUNT(*) FROM jobs WHERE kind = 'delegation' AND effects IS NULL AND effects_applied_at IS NULL";
        assert_eq!(count(&pool, plain).await, 1);
        assert!(store.unapplied_effects(now_ms() + 1, 10).await.unwrap().is_empty());
        app.stop().await;
    }
);
