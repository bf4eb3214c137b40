//! The agent's brain, as pure pieces the worker loop calls around a model run:
//!
//! 0. [`conversation_cache`] — the conversation as the run sees it, kept up to date;
//! 1. [`compaction::compact_if_needed`] — shrink a long conversation first;
//! 2. [`prompt::system_prompt`] — the system prompt (memory, state, skills);
//! 3. [`budget::history`] — the conversation turns that fit the model's window;
//! 4. [`tools::specs`] / [`tools::call`] — the built-in tools for the tool loop;
//! 5. [`tags::parse_reply`] — take the reply apart (memory, state, delegation, actions);
//! 6. [`apply::apply_recorded`] — carry the tags out (store, enqueue, conductor
//!    actions) exactly once: recorded with the reply, applied in one transaction
//!    with their mark.
//!
//! [`skills`] is the skill matcher used by the prompt builder.

pub mod apply;
pub mod budget;
pub mod compaction;
pub mod conversation_cache;
pub mod prompt;
pub mod skills;
pub mod tags;
pub mod tools;

use arvis_shared::domain::agent::Agent;

/// The conductor is the agent with role `conductor`: its prompt is used verbatim
/// and only it may run action tags.
pub fn is_conductor(agent: &Agent) -> bool {
    agent.role == "conductor"
}
