//! Runs one claimed job to its end: load the agent, announce "typing", build
//! the request ([`crate::pipeline::prepare`]), call the model with
//! failover and the tool loop (at most [`MAX_TOOL_ROUNDS`] rounds), streaming
//! text deltas as reply events, then either finish the job (the reply is stored
//! in the same transaction, conditional on the lease) and publish the final
//! message — after the commit — or report the failure: permanent errors fail at
//! once, retryable ones back off exponentially with jitter (or until the first
//! rate-limited account is free again). A final failure is published as an
//! error event with a user-readable text. The reply's tags (memory, state,
//! delegations, conductor actions) are recorded with the reply, in its write,
//! and applied right after in one transaction that marks them applied
//! ([`crate::agent::apply::apply_recorded`]); should the worker die in
//! between, [`sweep_effects`] (every worker, at start and every few seconds)
//! applies them — exactly once either way.
//!
//! Between tool rounds the assistant turn carries the provider's own content
//! ([`crate::llm::Replay`]: Claude's signed thinking blocks, Gemini's thought
//! signatures) back unchanged. The models' readable thinking is never streamed
//! and never part of the reply, unless the agent has `showThinking` (then it
//! is quoted before the reply, after the tags were parsed).

use std::sync::Arc;
use std::time::Duration;

use crate::context::Bill;
pub use crate::context::{RunCtx, Settings};
use arvis_shared::Deps;
use arvis_shared::bus::events::{ReplyEvent, ReplyKind, RunFailure};
use arvis_shared::clock::now_ms;
use arvis_shared::db::queue::{Finish, Finished};
use arvis_shared::domain::agent::Agent;
use arvis_shared::domain::job::{FailOutcome, Job};
use arvis_shared::domain::usage::UsageRecord;
use tokio::sync::mpsc;

use crate::agent;
use crate::agent::tags::ParsedReply;
use crate::error::JobError;
use crate::llm::{ChatMessage, Role};

/// Tool rounds per run (behaviour reference §5).
pub const MAX_TOOL_ROUNDS: usize = 5;
/// A reply event that cannot be published within this is dropped (the bus is
/// at-most-once anyway; the reply is in the database).
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(2);

/// Where a job's reply events go, when it has an outside channel.
fn channel(job: &Job) -> Option<(&str, &str)> {
    Some((job.payload.platform.as_deref()?, job.payload.channel_id.as_deref()?))
}

fn reply_event(job: &Job, kind: ReplyKind, content: String, message_id: Option<i64>) -> Option<ReplyEvent> {
    reply_event_with(job, kind, content, message_id, None)
}

fn reply_event_with(
    job: &Job,
    kind: ReplyKind,
    content: String,
    message_id: Option<i64>,
    failure: Option<RunFailure>,
) -> Option<ReplyEvent> {
    let (platform, channel_id) = channel(job)?;
    Some(ReplyEvent {
        v: 1,
        kind,
        platform: platform.to_string(),
        channel_id: channel_id.to_string(),
        conversation_id: job.conversation_id.clone().or_else(|| job.payload.conversation_id.clone()),
        job_id: job.id,
        agent_id: job.agent_id,
        message_id,
        content,
        timestamp: now_ms(),
        failure,
    })
}

/// Publishes a reply event when the job has a channel; never blocks long.
async fn publish(deps: &Deps, job: &Job, kind: ReplyKind, content: String, message_id: Option<i64>) -> bool {
    publish_event(deps, job, reply_event(job, kind, content, message_id)).await
}

async fn publish_event(deps: &Deps, job: &Job, event: Option<ReplyEvent>) -> bool {
    let Some(event) = event else { return true };
    match tokio::time::timeout(PUBLISH_TIMEOUT, deps.bus.publish(&event)).await {
        Ok(Ok(())) => true,
        Ok(Err(error)) => {
            tracing::warn!(%error, job_id = job.id, "reply event not published; the reply is in the history");
            false
        }
        Err(_) => {
            tracing::warn!(job_id = job.id, "reply event not published in time; the reply is in the history");
            false
        }
    }
}

/// Runs the job and records its outcome. Never fails: every error ends in the job row.
pub async fn process(ctx: Arc<RunCtx>, job: Job) {
    let started = std::time::Instant::now();
    let bill = Bill::default();
    let outcome = run(&ctx, &job, &bill).await;
    let calls = bill.calls();
    let store = &ctx.deps.store;
    let status = match &outcome {
        Ok(_) => "completed",
        Err(JobError::Permanent(_)) => "failed",
        Err(JobError::Retryable { .. }) if job.attempts >= job.max_attempts => "failed",
        Err(JobError::Retryable { .. }) => "retrying",
        Err(JobError::Deferred { .. }) => "deferred",
    };
    metrics::counter!("arvis_jobs_total", "status" => status, "agent_id" => job.agent_id.to_string()).increment(1);
    metrics::histogram!("arvis_job_duration_seconds", "status" => status).record(started.elapsed().as_secs_f64());
    match outcome {
        Ok(Answer { reply, agent, parsed }) => {
            for ignored in agent::apply::ignored(&parsed) {
                tracing::warn!(job_id = job.id, "{}", ignored.what);
            }
            // Only a reply with tags records effects; the rest stays one write.
            let effects = parsed.effects().map(|e| serde_json::to_string(&e)).transpose();
            let effects = match effects {
                Ok(effects) => effects,
                Err(error) => {
                    tracing::error!(%error, job_id = job.id, "cannot encode the reply's effects; they are dropped");
                    None
                }
            };
            let finish = Finish {
                job_id: job.id,
                worker_id: &ctx.worker_id,
                reply: &reply,
                conversation_id: job.conversation_id.as_deref(),
                usage: &calls,
                effects: effects.as_deref(),
            };
            let mut result = store.finish_job(&finish).await;
            for delay in [200u64, 1000] {
                if result.is_ok() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(delay)).await;
                result = store.finish_job(&finish).await;
            }
            match result {
                Ok(Finished::Stored { message_id }) => {
                    tracing::info!(
                        job_id = job.id,
                        agent_id = job.agent_id,
                        duration_ms = started.elapsed().as_millis() as u64,
                        "job completed"
                    );
                    publish(&ctx.deps, &job, ReplyKind::Message, reply, message_id).await;
                    if effects.is_some() {
                        if !ctx.settings.effects_delay.is_zero() {
                            // Fault injection only (WORKER_EFFECTS_DELAY_MS):
                            // widens the window a crash must hit to strand them.
                            tokio::time::sleep(ctx.settings.effects_delay).await;
                        }
                        apply_effects(&ctx, Some(&agent), &job).await;
                    }
                }
                Ok(Finished::LeaseLost) => {
                    tracing::warn!(job_id = job.id, "job finished after its lease was lost; the reply was not stored")
                }
                Err(error) => {
                    tracing::error!(%error, job_id = job.id, "cannot store the reply; the lease will expire and the job rerun");
                    // The calls were made and billed either way.
                    record_apart(&ctx, &job, &calls).await;
                }
            }
        }
        Err(JobError::Deferred { msg, retry_at }) => {
            // Nothing was answered, but calls before the deferral (a compaction
            // summary) were made.
            record_apart(&ctx, &job, &calls).await;
            match store.defer_job(job.id, &ctx.worker_id, &msg, retry_at).await {
                Ok(true) => tracing::info!(job_id = job.id, in_ms = retry_at - now_ms(), "{msg}; job deferred"),
                Ok(false) => tracing::warn!(job_id = job.id, "job deferred after its lease was lost; nothing recorded"),
                Err(error) => tracing::error!(%error, job_id = job.id, "cannot defer the job; the lease will expire"),
            }
        }
        Err(e) => {
            let retry_at = match &e {
                JobError::Permanent(_) | JobError::Deferred { .. } => None,
                JobError::Retryable { retry_at: Some(at), .. } => Some(*at),
                JobError::Retryable { retry_at: None, .. } => {
                    Some(crate::error::retry_at(now_ms(), ctx.settings.retry_base_ms, job.attempts))
                }
            };
            match store.fail_job(job.id, &ctx.worker_id, e.message(), retry_at, &calls).await {
                Ok(FailOutcome::Retrying { run_after }) => {
                    tracing::warn!(job_id = job.id, attempt = job.attempts, error = %e, in_ms = run_after - now_ms(), "job failed; will retry");
                }
                Ok(FailOutcome::Failed) => {
                    tracing::warn!(job_id = job.id, attempt = job.attempts, error = %e, "job failed for good");
                    let failure =
                        RunFailure { reason: e.user_message().to_string(), cause: e.cause().map(str::to_string) };
                    let text = format!("Sorry, the agent run failed: {}", failure.reason);
                    publish_event(&ctx.deps, &job, reply_event_with(&job, ReplyKind::Error, text, None, Some(failure)))
                        .await;
                }
                Ok(FailOutcome::LostLease) => {
                    tracing::warn!(job_id = job.id, error = %e, "job failed after its lease was lost; only its usage was recorded")
                }
                Err(error) => {
                    tracing::error!(%error, job_id = job.id, "cannot record the job's failure");
                    record_apart(&ctx, &job, &calls).await;
                }
            }
        }
    }
}

/// Writes a run's calls on their own, when the write that should have carried
/// them (the reply's, the failure's) did not happen. Best effort: logged.
async fn record_apart(ctx: &RunCtx, job: &Job, calls: &[UsageRecord]) {
    for usage in calls {
        if let Err(error) = ctx.deps.store.record_call(usage).await {
            tracing::warn!(%error, job_id = job.id, "cannot record a model call's usage");
        }
    }
}

/// A run's answer: the clean reply (tags stripped) and what its tags say.
pub struct Answer {
    pub reply: String,
    pub agent: Agent,
    pub parsed: ParsedReply,
}

/// Applies the recorded effects (memory, state, delegations, conductor
/// actions) of a stored reply, unless another applier already did, then
/// signals what they created. True when this call applied them. A failure
/// leaves them recorded for [`sweep_effects`].
async fn apply_effects(ctx: &RunCtx, agent: Option<&Agent>, job: &Job) -> bool {
    let applied = match agent::apply::apply_recorded(&ctx.deps.store, agent, job).await {
        Ok(Some(applied)) => applied,
        Ok(None) => return false,
        Err(error) => {
            tracing::warn!(%error, job_id = job.id, "cannot apply the reply's effects now; a sweep will");
            return false;
        }
    };
    applied.log(job.id);
    for (job_id, priority) in applied.job_ids.iter().map(|id| (*id, arvis_shared::domain::job::priority::DELEGATION)) {
        ctx.deps.bus.signal(&arvis_shared::bus::events::JobReady { v: 1, job_id, priority }).await;
    }
    for (entity, ids) in [("agent", &applied.agent_ids), ("workflow", &applied.workflow_ids)] {
        for id in ids {
            let notice = arvis_shared::bus::events::ConfigChanged { v: 1, entity: entity.into(), id: Some(*id) };
            ctx.deps.bus.signal(&notice).await;
        }
    }
    true
}

/// A reply's effects are left to its own worker this long before a sweep
/// takes them: that worker applies them right after storing the reply (a few
/// milliseconds), and a sweep racing it would only find them taken. Past
/// this, the worker is taken to have died in between.
pub const EFFECTS_GRACE_MS: i64 = 3_000;
/// Stranded effects applied per sweep (the rest wait for the next one).
const EFFECTS_PER_SWEEP: i64 = 100;

/// Applies the effects of replies whose worker stopped between storing the
/// reply and applying them; returns how many this call applied. Idempotent
/// and safe on any number of workers at once (see `arvis_shared::db::effects`).
pub async fn sweep_effects(ctx: &RunCtx) -> usize {
    let store = &ctx.deps.store;
    let ids = match store.unapplied_effects(now_ms() - EFFECTS_GRACE_MS, EFFECTS_PER_SWEEP).await {
        Ok(ids) => ids,
        Err(error) => {
            tracing::warn!(%error, "cannot look for unapplied reply effects");
            return 0;
        }
    };
    let mut applied = 0;
    for id in ids {
        let job = match store.job(id).await {
            Ok(Some(job)) => job,
            Ok(None) => continue,
            Err(error) => {
                tracing::warn!(%error, job_id = id, "cannot load a job with unapplied effects");
                continue;
            }
        };
        let agent = match store.get_agent(job.agent_id).await {
            Ok(agent) => agent,
            Err(error) => {
                tracing::warn!(%error, job_id = id, "cannot load the agent of a job with unapplied effects");
                continue;
            }
        };
        if apply_effects(ctx, agent.as_ref(), &job).await {
            tracing::warn!(
                job_id = id,
                "applied the effects of a reply its own worker did not apply (it stopped, or its apply failed)"
            );
            applied += 1;
        }
    }
    applied
}

/// The run itself: its answer, or why there is none. Every model call it
/// makes goes into `bill`, which [`process`] writes with the outcome.
pub async fn run(ctx: &RunCtx, job: &Job, bill: &Bill) -> Result<Answer, JobError> {
    let store = &ctx.deps.store;
    let agent: Agent = store
        .get_agent(job.agent_id)
        .await
        .map_err(|e| JobError::retryable("the worker could not reach its database", e))?
        .ok_or_else(|| JobError::permanent("the agent no longer exists", format_args!("agent {}", job.agent_id)))?;
    if job.payload.prompt.trim().is_empty() {
        return Err(JobError::permanent("the job has nothing to answer", "empty prompt"));
    }
    publish(&ctx.deps, job, ReplyKind::Typing, String::new(), None).await;
    let prepared = crate::pipeline::prepare(ctx, &agent, job, bill).await?;
    let mut request = prepared.request;

    // Deltas go through a channel to one forwarder task, so they are published
    // in order and the model stream never waits for the bus.
    let (tx, rx) = mpsc::unbounded_channel::<String>();
    let forwarder = channel(job).map(|_| ctx.deps.tasks.spawn(forward_deltas(ctx.deps.clone(), job.clone(), rx)));
    let mut on_delta = move |d: &str| {
        let _ = tx.send(d.to_string());
    };

    let mut last = None;
    // The models' readable thinking of every round: never streamed, shown
    // with the reply only when the agent asks for it.
    let mut thinking = String::new();
    for round in 1..=MAX_TOOL_ROUNDS {
        let served = crate::failover::call(ctx, &agent, job, &mut request, &mut on_delta, bill).await?;
        let response = served.response;
        if !response.thinking.trim().is_empty() {
            if !thinking.is_empty() {
                thinking.push_str("\n\n");
            }
            thinking.push_str(response.thinking.trim());
        }
        if response.tool_calls.is_empty() {
            last = Some(response.text);
            break;
        }
        if round == MAX_TOOL_ROUNDS {
            if response.text.trim().is_empty() {
                return Err(JobError::Permanent(format!(
                    "the agent used up its {MAX_TOOL_ROUNDS} tool rounds without answering"
                )));
            }
            last = Some(response.text);
            break;
        }
        let calls = response.tool_calls.clone();
        // The provider's own turn (thinking blocks, signatures) goes back unchanged.
        request.messages.push(ChatMessage {
            role: Role::Assistant,
            content: response.text.into(),
            tool_calls: calls.clone(),
            tool_call_id: None,
            tool_name: None,
            replay: response.replay,
        });
        // Tools of one round run in parallel; results come back in call order.
        request.messages.extend(agent::tools::call_all(&calls, &prepared.tools).await);
    }
    drop(on_delta);
    if let Some(f) = forwarder {
        let _ = f.await;
    }
    let Some(final_text) = last else {
        return Err(JobError::Permanent("the run ended without a model answer".into()));
    };
    let (reply, parsed) = crate::pipeline::finish(&agent, &final_text)?;
    let reply = if agent.show_thinking { crate::pipeline::with_thinking(reply, &thinking) } else { reply };
    Ok(Answer { reply, agent, parsed })
}

async fn forward_deltas(deps: Deps, job: Job, mut rx: mpsc::UnboundedReceiver<String>) {
    let mut healthy = true;
    while let Some(delta) = rx.recv().await {
        if healthy {
            healthy = publish(&deps, &job, ReplyKind::Delta, delta, None).await;
        }
    }
}
