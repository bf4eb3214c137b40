//! The agent's side of a run, around the model calls: [`prepare`] builds the
//! first request from the agent modules (`agent/`) — compaction of a long
//! conversation, the system prompt layout, the history within the model's
//! token budget, the tools the agent may use — and [`finish`] turns the
//! model's final text into the reply to store (tags parsed and stripped).
//! The tags' effects (memory, state, delegations, conductor actions) are
//! recorded with the reply, in its write, and applied by the runner only
//! after that write succeeded — so a run whose lease was lost never applies
//! them, and a crash before they are applied leaves them for the sweep
//! (`arvis_shared::db::effects`).

use arvis_shared::domain::agent::Agent;
use arvis_shared::domain::job::Job;
use arvis_shared::domain::split_model;

use crate::agent;
use crate::agent::tags::ParsedReply;
use crate::agent::tools::ToolContext;
use crate::context::{Bill, RunCtx};
use crate::error::JobError;
use crate::llm::{ChatMessage, LlmRequest};

/// The first request of a run and what its tool rounds need.
pub struct Prepared {
    pub request: LlmRequest,
    pub tools: ToolContext,
}

fn db(e: impl std::fmt::Display) -> JobError {
    JobError::retryable("the worker could not reach its database", e)
}

/// Builds the first request of a run.
pub async fn prepare(ctx: &RunCtx, agent: &Agent, job: &Job, bill: &Bill) -> Result<Prepared, JobError> {
    if let Some(api) = &job.payload.api {
        return prepare_api(ctx, agent, job, api).await;
    }
    let store = &ctx.deps.store;
    let conversation_id = job.conversation_id.as_deref().or(job.payload.conversation_id.as_deref());
    let mut conversation = match conversation_id {
        Some(id) => ctx.conversations.load(store, id).await.map_err(db)?,
        None => None,
    };
    // The model's context window, from the price table (LiteLLM's max_input_tokens).
    let window = ctx.prices.context_window(&agent.model);
    if let Some(conv) = &conversation {
        // Best effort: a failed compaction changes nothing and the run goes on.
        let summarize = |prompt: String| summarize(ctx, agent, job, prompt, bill);
        match agent::compaction::compact_if_needed(store, conv, window, summarize).await {
            Ok(outcome @ agent::compaction::CompactionOutcome::Compacted { .. }) => {
                tracing::debug!(job_id = job.id, ?outcome, "compaction check");
                let id = conv.id.clone();
                conversation = ctx.conversations.load(store, &id).await.map_err(db)?;
            }
            Ok(outcome) => tracing::debug!(job_id = job.id, ?outcome, "compaction check"),
            Err(error) => tracing::warn!(job_id = job.id, %error, "compaction failed; the conversation is unchanged"),
        }
    }
    let system = agent::prompt::system_prompt(store, agent, &job.payload.prompt).await.map_err(db)?;
    let mut messages = match conversation {
        Some(conv) => {
            let turns = agent::budget::history(&conv, job.payload.message_id, window, &system).messages;
            ctx.conversations.keep(conv);
            turns
        }
        None => vec![],
    };
    // Jobs without a conversation (workflows, webhooks, delegations), or whose
    // message is not stored, answer their frozen prompt.
    if job.payload.message_id.is_none() || messages.is_empty() {
        messages.push(ChatMessage::user(job.payload.prompt.as_str()));
    }
    let (specs, tool_ctx) = agent::tools::for_run(&ctx.deps.config, &ctx.mcp, &agent.allowed_tools).await;
    Ok(Prepared {
        request: LlmRequest {
            model: split_model(&agent.model).1.to_string(),
            system,
            messages,
            tools: specs,
            max_tokens: if agent.max_tokens > 0 { agent.max_tokens } else { 4096 },
            temperature: agent.temperature,
            effort: agent.reasoning_effort.as_deref().and_then(crate::llm::Effort::parse),
            show_thinking: agent.show_thinking,
        },
        tools: tool_ctx,
    })
}

/// The first request of a `/v1` run: the client's transcript is the history
/// (the API is stateless, so nothing stored is read or compacted), and its
/// system messages follow the agent's own prompt — which keeps the agent's
/// identity, rules, memory and skills first. Turns that do not fit the
/// model's window are dropped oldest first, as for a stored conversation.
async fn prepare_api(
    ctx: &RunCtx,
    agent: &Agent,
    job: &Job,
    api: &arvis_shared::domain::job::ApiChat,
) -> Result<Prepared, JobError> {
    let store = &ctx.deps.store;
    let mut system = agent::prompt::system_prompt(store, agent, &job.payload.prompt).await.map_err(db)?;
    for extra in api.system.iter().filter(|s| !s.trim().is_empty()) {
        system.push_str("\n\n");
        system.push_str(extra);
    }
    let window = ctx.prices.context_window(&agent.model);
    let turns: Vec<(crate::llm::Role, &str)> = api
        .messages
        .iter()
        .map(|t| {
            let role = if t.role == "assistant" { crate::llm::Role::Assistant } else { crate::llm::Role::User };
            (role, t.content.as_str())
        })
        .collect();
    let messages = agent::budget::fit_transcript(&turns, window, &system);
    let max_tokens = api.max_tokens.unwrap_or(if agent.max_tokens > 0 { agent.max_tokens } else { 4096 });
    let (specs, tool_ctx) = agent::tools::for_run(&ctx.deps.config, &ctx.mcp, &agent.allowed_tools).await;
    Ok(Prepared {
        request: LlmRequest {
            model: split_model(&agent.model).1.to_string(),
            system,
            messages,
            tools: specs,
            max_tokens,
            temperature: api.temperature.unwrap_or(agent.temperature),
            effort: agent.reasoning_effort.as_deref().and_then(crate::llm::Effort::parse),
            show_thinking: agent.show_thinking,
        },
        tools: tool_ctx,
    })
}

/// The compaction summarizer: one plain model call through failover.
async fn summarize(ctx: &RunCtx, agent: &Agent, job: &Job, prompt: String, bill: &Bill) -> Result<String, JobError> {
    let mut request = LlmRequest {
        model: split_model(&agent.model).1.to_string(),
        system: "You condense conversations faithfully and briefly.".into(),
        messages: vec![ChatMessage::user(prompt)],
        tools: vec![],
        max_tokens: 1024,
        temperature: 0.2,
        ..Default::default()
    };
    let served = crate::failover::call(ctx, agent, job, &mut request, &mut |_: &str| {}, bill).await?;
    Ok(served.response.text)
}

/// The reply with the run's thinking before it, for an agent with
/// `showThinking`: a quoted block, added after the tags were parsed (so
/// nothing in the thinking can act as a tag).
pub fn with_thinking(reply: String, thinking: &str) -> String {
    let thinking = thinking.trim();
    if thinking.is_empty() {
        return reply;
    }
    let quoted: Vec<String> =
        thinking.lines().map(|l| if l.is_empty() { ">".into() } else { format!("> {l}") }).collect();
    format!("> **Thinking**\n{}\n\n{reply}", quoted.join("\n"))
}

/// The model's final text → the reply to store, with the parsed tags.
/// A reply that was only tags becomes a short acknowledgement.
pub fn finish(agent: &Agent, text: &str) -> Result<(String, ParsedReply), JobError> {
    let parsed = agent::tags::parse_reply(text, agent::is_conductor(agent));
    let mut reply = parsed.clean.trim().to_string();
    if reply.is_empty() {
        if !parsed.delegations.is_empty() {
            let to: Vec<&str> = parsed.delegations.iter().map(|(slug, _)| slug.as_str()).collect();
            reply = format!("Delegated to {}.", to.join(", "));
        } else if !parsed.memories.is_empty() || !parsed.states.is_empty() || !parsed.actions.is_empty() {
            reply = "Noted.".into();
        } else {
            return Err(JobError::retryable("the model returned an empty reply", "no text"));
        }
    }
    Ok((reply, parsed))
}
