//! The worker: claims jobs from the queue and runs agents.
//!
//! Layout:
//! - [`pool`]: the claim loop — slots, leases, wake-ups, sweeping, graceful drain.
//! - [`runner`]: one job from claim to stored reply (or recorded failure), with reply events.
//! - [`context`]: what every run shares (`RunCtx`, `Settings`) and each run's `Bill` of model calls.
//! - [`pipeline`]: the agent's side of a run: the first request (compaction, system prompt, history, tools) and the reply's tags.
//! - [`failover`]: account order, rate limits, usage rows.
//! - [`providers`]: the Anthropic, OpenAI-compatible and Gemini wire formats, streaming.
//! - [`error`]: `JobError` and the retry schedule; [`pricing`]: prices and context windows per model (LiteLLM's table).
//! - [`llm`]: the provider-neutral request/response types.
//! - [`mcp`]: the MCP client — connections to the MCP servers agents use (stdio children, Streamable HTTP).
//! - [`agent`]: the agent's brain — system prompt, skills, history budget,
//!   compaction, reply tags and their effects, built-in tools.

pub mod agent;

pub mod context;
pub mod error;
pub mod failover;
pub mod llm;
pub use arvis_mcp as mcp;
pub mod pipeline;
pub mod pool;
pub mod pricing;
pub mod providers;
pub mod runner;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use arvis_shared::{Deps, ServiceFuture};
use tokio_util::sync::CancellationToken;

use crate::context::{RunCtx, Settings};

/// Runs a worker until `shutdown` fires, then drains (see [`pool`]).
///
/// Boxed and never inlined, like every service entry point (see
/// [`arvis_shared::ServiceFuture`]): the caller polls it through one call and
/// does not compile the service's generic code a second time.
#[inline(never)]
pub fn run(deps: Deps, shutdown: CancellationToken) -> ServiceFuture<'static> {
    Box::pin(run_service(deps, shutdown))
}

async fn run_service(deps: Deps, shutdown: CancellationToken) -> anyhow::Result<()> {
    arvis_shared::install_crypto_provider();
    let client = http_client()?;
    // Record this process's accounts too (idempotent), so a worker started
    // before any gateway finds them; the keys stay in this process's environment.
    for account in &deps.config.accounts {
        if let Err(error) = deps.store.upsert_account(account).await {
            tracing::warn!(%error, account = %account.name, "cannot record an account");
        }
    }
    let settings = Settings::from_config(&deps.config);
    let prices =
        pricing::PriceTable::load(deps.config.model_prices_file.as_deref()).context("loading the model price table")?;
    let mcp = mcp::McpManager::new(deps.store.clone(), mcp::McpSettings::from_config(&deps.config), deps.tasks.clone());
    mcp.watch_config(&deps.bus).await;
    let ctx = Arc::new(RunCtx {
        deps,
        client,
        worker_id: worker_id(),
        settings,
        conversations: Default::default(),
        param_memory: Default::default(),
        prices,
        mcp: mcp.clone(),
    });
    let result = pool::run(ctx, shutdown).await;
    // After the pool drained (no run calls a tool any more): close every MCP
    // connection and kill every stdio child before the process goes on to exit.
    mcp.shutdown().await;
    result
}

/// The HTTP client of provider calls (per-request timeouts are set per call).
pub fn http_client() -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .tcp_nodelay(true)
        .user_agent(concat!("arvis/", env!("CARGO_PKG_VERSION")))
        .build()
        .context("building the HTTP client")
}

/// `hostname-pid-random`: unique per worker, readable in the jobs table.
pub fn worker_id() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "worker".into());
    format!("{host}-{}-{}", std::process::id(), hex::encode(rand::random::<[u8; 3]>()))
}
