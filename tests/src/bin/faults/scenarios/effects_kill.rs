use super::*;

/// Scenario 7: every worker killed (-9) while replies are stored but their effects not
/// yet applied (issue #17, point 5). Each chat's echoed reply carries a
/// delegation and a memory fact with the chat's token; the workers pause
/// `WORKER_EFFECTS_DELAY_MS` between the reply and its effects, so that a
/// kill lands in that window. Checked: each completed chat has exactly one
/// fact and exactly one delegated job, and no effects stay unapplied.
pub async fn effects_kill(ctx: &Ctx) -> Outcome {
    let mock = MockLlm::start().await;
    mock.set_default(MockReply::slow(Duration::from_millis(200), MockReply::Echo));
    let delay = 400;
    let mut c = Cluster::start(
        "effects-kill",
        &ctx.logs,
        &ctx.pg_admin,
        &mock,
        2,
        1,
        &[("WORKER_EFFECTS_DELAY_MS", &delay.to_string())],
    )
    .await;
    c.api_post(
        "/api/agents",
        json!({"slug": "helper", "name": "Helper", "model": "openai/gpt-4o-mini", "systemPrompt": "Echo."}),
    )
    .await;
    let (rate, kills) = if ctx.quick { (6, 2) } else { (8, 4) };
    let load = Load::start_tagged(&c, "effects-kill", rate, 6);
    let unapplied = "SELECT COUNT(*) FROM jobs WHERE effects IS NOT NULL AND effects_applied_at IS NULL";
    let mut stranded = std::collections::BTreeSet::new();
    let mut missed = 0;
    for _ in 0..kills {
        tokio::time::sleep(Duration::from_secs(3)).await;
        // Kill when some reply is between its write and its effects.
        let deadline = Instant::now() + Duration::from_secs(5);
        while c.count(unapplied).await == 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        for w in c.workers.iter_mut() {
            w.signal("-KILL");
        }
        for w in c.workers.iter_mut() {
            w.wait_exit(Duration::from_secs(5));
        }
        // No worker is alive: what is unapplied now was stranded by the kill
        // (by this one or, if no sweep took it yet, an earlier one: a set).
        let ids: Vec<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(unapplied.replace("COUNT(*)", "id")))
            .fetch_all(&c.pool)
            .await
            .unwrap_or_default();
        if ids.is_empty() {
            missed += 1;
        }
        stranded.extend(ids);
        tokio::time::sleep(Duration::from_millis(500)).await;
        for i in 0..c.workers.len() {
            c.workers[i] = c.spawn("arvis-worker");
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (sent, errors) = load.finish().await;
    // Final: every job, then every stranded effect (a late sweep enqueues
    // delegations), then the delegations those created.
    let mut non_final = c.wait_final(Duration::from_secs(60)).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while c.count(unapplied).await > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    non_final = non_final.max(c.wait_final(Duration::from_secs(60)).await);
    let left_unapplied = c.count(unapplied).await;
    let mut o = Outcome {
        scenario: "effects-kill".into(),
        load: format!("{rate} tagged chats/s, 2 workers, {delay} ms between reply and effects"),
        faults: format!("{kills}× kill -9 of every worker with effects pending"),
        ..Default::default()
    };
    if errors > 0 {
        o.notes.push(format!("{errors} enqueue errors"));
    }
    // As in kill-worker, a job under `max_attempts` kills fails for good (recorded, not lost).
    account(&c, &mut o, &sent, true).await;
    o.non_final = o.non_final.max(non_final);
    // The effects of every completed chat: one fact, one delegation.
    let (mut facts_lost, mut delegations_lost, mut delegations_doubled) = (0, 0, 0);
    for (id, text) in &sent {
        let Some(token) = text.split(' ').nth(3) else { continue };
        let completed = c.count(&format!("SELECT COUNT(*) FROM jobs WHERE id = {id} AND status = 'completed'")).await;
        if completed != 1 {
            continue;
        }
        let facts = c.count(&format!("SELECT COUNT(*) FROM memory_facts WHERE content = 'fact {token}'")).await;
        let delegated = c
            .count(&format!(
                "SELECT COUNT(*) FROM jobs WHERE kind = 'delegation' AND payload LIKE '%\"prompt\":\"task {token}\"%'"
            ))
            .await;
        facts_lost += i64::from(facts == 0);
        delegations_lost += i64::from(delegated == 0);
        delegations_doubled += (delegated - 1).max(0);
    }
    let delegations = c.count("SELECT COUNT(*) FROM jobs WHERE kind = 'delegation'").await;
    o.notes.push(format!(
        "replies whose effects a kill stranded (applied later by a sweep): {}; kills that found none: {missed}",
        stranded.len()
    ));
    o.notes.push(format!(
        "delegated jobs: {delegations}; facts lost: {facts_lost}; delegations lost: {delegations_lost}; \
         delegations doubled: {delegations_doubled}; effects left unapplied: {left_unapplied}"
    ));
    o.lost += facts_lost + delegations_lost + left_unapplied;
    o.duplicated += delegations_doubled;
    // Without a stranded reply the scenario tested nothing.
    if stranded.is_empty() {
        o.notes.push("no kill landed between a reply and its effects".into());
    }
    o.ok = o.ok && facts_lost + delegations_lost + delegations_doubled + left_unapplied == 0 && !stranded.is_empty();
    c.close().await;
    o
}
