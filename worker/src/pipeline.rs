//! The seams of an agent run, where the agent modules (context builder, tags,
//! tools, memory — `agent/`) plug in:
//!
//! - [`build_request`]: agent + job + stored history → the first [`LlmRequest`];
//! - [`RunHooks::execute_tool`]: runs one tool call and returns its text result;
//! - [`RunHooks::post_process`]: the model's final text → the clean reply that
//!   is stored and sent (tags stripped, memory written, …).
//!
//! [`DefaultHooks`] is what runs today: no tools, the reply as it came.

use futures::future::BoxFuture;

use arvis_shared::db::queue::StoredMessage;
use arvis_shared::domain::agent::Agent;
use arvis_shared::domain::job::Job;
use arvis_shared::domain::split_model;

use crate::llm::{ChatMessage, LlmRequest, ToolCall};

/// How many earlier messages of the conversation go into a request (until the
/// context builder applies the model's token budget).
pub const HISTORY_LIMIT: usize = 100;

/// The first request of a run: the agent's system prompt, the conversation's
/// earlier messages (user and assistant turns, oldest first, without the
/// message being answered and anything after it), then the prompt as the
/// final user turn. The model is the agent's (without its provider prefix);
/// failover replaces it when another provider's account serves the call.
pub fn build_request(agent: &Agent, job: &Job, history: &[StoredMessage]) -> LlmRequest {
    let answering = job.payload.message_id;
    let earlier: Vec<&StoredMessage> = history
        .iter()
        .filter(|m| answering.is_none_or(|id| m.id < id))
        .filter(|m| m.role == "user" || m.role == "assistant")
        .collect();
    let skip = earlier.len().saturating_sub(HISTORY_LIMIT);
    let mut messages: Vec<ChatMessage> = earlier
        .into_iter()
        .skip(skip)
        .map(|m| if m.role == "user" { ChatMessage::user(&m.content) } else { ChatMessage::assistant(&m.content) })
        .collect();
    messages.push(ChatMessage::user(&job.payload.prompt));
    LlmRequest {
        model: split_model(&agent.model).1.to_string(),
        system: agent.system_prompt.clone(),
        messages,
        tools: vec![],
        max_tokens: if agent.max_tokens > 0 { agent.max_tokens } else { 4096 },
        temperature: agent.temperature,
    }
}

/// What the agent modules add to a run. Every method has a default, so an
/// implementation overrides only what it owns.
pub trait RunHooks: Send + Sync {
    /// Runs one tool call; the returned text goes back to the model as the
    /// tool's result (errors too, as text: "Error: …").
    fn execute_tool<'a>(&'a self, _agent: &'a Agent, _job: &'a Job, _call: &'a ToolCall) -> BoxFuture<'a, String> {
        Box::pin(async { "Error: unknown tool".to_string() })
    }

    /// The model's final text → the reply to store and send.
    fn post_process(&self, _agent: &Agent, _job: &Job, reply: &str) -> String {
        reply.trim().to_string()
    }
}

/// No tools, the reply as the model wrote it (trimmed).
#[derive(Debug, Default, Clone, Copy)]
pub struct DefaultHooks;

impl RunHooks for DefaultHooks {}
