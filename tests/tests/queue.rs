//! The job queue's guarantees, on both databases.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails by panicking

use std::collections::HashSet;

use arvis_shared::db::Store;
use arvis_shared::db::queue::{ChatRequest, Finish};
use arvis_shared::domain::job::{FailOutcome, JobKind, JobPayload, NewJob};
use arvis_testkit::{TestDb, both_backends};

async fn agent(store: &Store) -> i64 {
    arvis_shared::bootstrap::ensure_conductor(store, "anthropic/claude-haiku-4-5-20251001").await.unwrap().id
}

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
    }
}

both_backends!(concurrent_claimers_never_share_a_job, |backend| async move {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let a = agent(&store).await;
    for i in 0..200 {
        store
            .enqueue(&NewJob::new(
                a,
                JobKind::Message,
                5,
                JobPayload { prompt: format!("job {i}"), ..Default::default() },
            ))
            .await
            .unwrap();
    }
    let mut handles = Vec::new();
    for w in 0..4 {
        let store = store.clone();
        handles.push(tokio::spawn(async move {
            let worker = format!("w{w}");
            let mut mine = Vec::new();
            loop {
                let jobs = store.claim_jobs(&worker, 7, 60_000).await.unwrap();
                if jobs.is_empty() {
                    break;
                }
                for j in jobs {
                    assert_eq!(j.locked_by.as_deref(), Some(worker.as_str()));
                    assert!(
                        store
                            .finish_job(&Finish {
                                job_id: j.id,
                                worker_id: &worker,
                                reply: "ok",
                                conversation_id: None
                            })
                            .await
                            .unwrap()
                            .is_some()
                    );
                    mine.push(j.id);
                }
            }
            mine
        }));
    }
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.await.unwrap());
    }
    let unique: HashSet<_> = all.iter().collect();
    assert_eq!(all.len(), 200, "every job claimed");
    assert_eq!(unique.len(), 200, "no job claimed twice");
});

both_backends!(priority_then_age_and_one_job_per_conversation_at_a_time, |backend| async move {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let a = agent(&store).await;
    let first = store.enqueue_chat(&chat(a, "c1", "first")).await.unwrap();
    let second = store.enqueue_chat(&chat(a, "c1", "second")).await.unwrap();
    assert_eq!(first.conversation_id, second.conversation_id, "one active conversation per channel");
    let urgent = store.enqueue(&NewJob::new(a, JobKind::Message, 1, JobPayload::default())).await.unwrap();
    let claimed = store.claim_jobs("w", 10, 60_000).await.unwrap();
    let ids: Vec<_> = claimed.iter().map(|j| j.id).collect();
    assert_eq!(ids, vec![urgent, first.job_id], "the second message of c1 waits for the first");
    store
        .finish_job(&Finish {
            job_id: first.job_id,
            worker_id: "w",
            reply: "one",
            conversation_id: Some(&first.conversation_id),
        })
        .await
        .unwrap();
    let next = store.claim_jobs("w", 10, 60_000).await.unwrap();
    assert_eq!(next.iter().map(|j| j.id).collect::<Vec<_>>(), vec![second.job_id]);
    let msgs = store.conversation_messages(&first.conversation_id).await.unwrap();
    let roles: Vec<_> = msgs.iter().map(|m| (m.role.as_str(), m.content.as_str())).collect();
    assert_eq!(roles, [("user", "first"), ("user", "second"), ("assistant", "one")]);
});

both_backends!(a_lost_lease_cannot_store_a_second_reply, |backend| async move {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let a = agent(&store).await;
    let e = store.enqueue_chat(&chat(a, "c", "hello")).await.unwrap();
    let job = store.claim_jobs("dead-worker", 1, -1).await.unwrap().remove(0); // lease already expired
    assert_eq!(store.sweep_expired_leases().await.unwrap(), (1, 0));
    let again = store.claim_jobs("live-worker", 1, 60_000).await.unwrap().remove(0);
    assert_eq!(again.id, job.id);
    assert_eq!(again.attempts, 2);
    assert_eq!(
        store.renew_leases("dead-worker", &[job.id], 60_000).await.unwrap(),
        0,
        "a lost lease cannot be renewed"
    );
    assert_eq!(store.renew_leases("live-worker", &[job.id, job.id + 1000], 60_000).await.unwrap(), 1);
    // The dead worker wakes up and tries to finish: refused, nothing written.
    let late =
        Finish { job_id: job.id, worker_id: "dead-worker", reply: "late", conversation_id: Some(&e.conversation_id) };
    assert_eq!(store.finish_job(&late).await.unwrap(), None);
    assert_eq!(store.fail_job(job.id, "dead-worker", "x", None).await.unwrap(), FailOutcome::LostLease);
    let ok =
        Finish { job_id: job.id, worker_id: "live-worker", reply: "hi", conversation_id: Some(&e.conversation_id) };
    assert!(store.finish_job(&ok).await.unwrap().unwrap().is_some());
    assert_eq!(store.finish_job(&ok).await.unwrap(), None, "a duplicate finish is refused too");
    let replies = store
        .conversation_messages(&e.conversation_id)
        .await
        .unwrap()
        .into_iter()
        .filter(|m| m.role == "assistant")
        .count();
    assert_eq!(replies, 1);
    assert_eq!(store.job(job.id).await.unwrap().unwrap().status, "completed");
});

both_backends!(retries_back_off_then_fail_and_leases_expire_into_failure, |backend| async move {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let a = agent(&store).await;
    let mut job = NewJob::new(a, JobKind::Message, 5, JobPayload::default());
    job.max_attempts = 2;
    let id = store.enqueue(&job).await.unwrap();
    store.claim_jobs("w", 1, 60_000).await.unwrap();
    let later = arvis_shared::clock::now_ms() + 60_000;
    assert_eq!(
        store.fail_job(id, "w", "HTTP 503", Some(later)).await.unwrap(),
        FailOutcome::Retrying { run_after: later }
    );
    assert!(store.claim_jobs("w", 1, 60_000).await.unwrap().is_empty(), "not before its run_after");
    assert_eq!(store.next_due_at().await.unwrap(), Some(later));
    // Make it due, claim, let the lease expire: attempts are used up → failed.
    let due = store.fail_job(id, "w", "x", None).await.unwrap();
    assert_eq!(due, FailOutcome::LostLease, "it is pending, not held");
    let id2 = store.enqueue(&job).await.unwrap();
    store.claim_jobs("w", 1, -1).await.unwrap();
    store.sweep_expired_leases().await.unwrap();
    store.claim_jobs("w", 1, -1).await.unwrap();
    assert_eq!(store.sweep_expired_leases().await.unwrap(), (0, 1));
    let failed = store.job(id2).await.unwrap().unwrap();
    assert_eq!(failed.status, "failed");
    assert!(failed.error.unwrap().contains("lease expired"));
    // Release on shutdown gives the attempt back.
    let id3 = store.enqueue(&job).await.unwrap();
    store.claim_jobs("w", 1, 60_000).await.unwrap();
    assert!(store.release_job(id3, "w").await.unwrap());
    let released = store.job(id3).await.unwrap().unwrap();
    assert_eq!((released.status.as_str(), released.attempts), ("pending", 0));
});
