//! The worker: claims jobs from the queue and runs agents.
//!
//! Layout:
//! - [`llm`]: the provider-neutral request/response types.
//! - [`agent`]: the agent's brain — system prompt, skills, history budget,
//!   compaction, reply tags and their effects, built-in tools.
//!
//! Not implemented yet (issue #4): `run` waits for shutdown.

pub mod agent;
pub mod llm;

use arvis_shared::Deps;
use tokio_util::sync::CancellationToken;

pub async fn run(_deps: Deps, shutdown: CancellationToken) -> anyhow::Result<()> {
    shutdown.cancelled().await;
    Ok(())
}
