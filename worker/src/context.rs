//! What a run works with: the worker's shared context ([`RunCtx`], its
//! [`Settings`]) and the run's [`Bill`]. Below `runner`, `pipeline` and
//! `failover`, which all take a `RunCtx`: modules depend downward only
//! (runner → pipeline → failover → context).

use std::sync::Mutex;
use std::time::Duration;

use arvis_shared::Deps;
use arvis_shared::domain::usage::UsageRecord;

/// Tunables of the worker, from the configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    pub concurrency: usize,
    pub lease_ms: i64,
    pub renew_every: Duration,
    pub poll_every: Duration,
    pub sweep_every: Duration,
    pub shutdown_grace: Duration,
    pub retry_base_ms: i64,
    pub provider_timeout: Duration,
    /// Fault injection only (`WORKER_EFFECTS_DELAY_MS`, 0 by default): the
    /// pause between a tagged reply's write and its effects.
    pub effects_delay: Duration,
}

impl Settings {
    pub fn from_config(c: &arvis_shared::config::Config) -> Settings {
        let lease = Duration::from_millis(c.worker_lease_ms.max(100) as u64);
        Settings {
            concurrency: c.worker_concurrency.max(1),
            lease_ms: c.worker_lease_ms,
            renew_every: (lease / 3).min(Duration::from_secs(10)),
            poll_every: Duration::from_secs(2),
            sweep_every: lease.min(Duration::from_secs(5)),
            shutdown_grace: c.worker_shutdown_grace,
            retry_base_ms: c.worker_retry_base_ms,
            provider_timeout: c.provider_timeout,
            effects_delay: Duration::from_millis(c.worker_effects_delay_ms),
        }
    }
}

/// What every job of one worker shares.
pub struct RunCtx {
    pub deps: Deps,
    pub client: reqwest::Client,
    pub worker_id: String,
    pub settings: Settings,
    /// The conversations this worker answers, kept up to date per run.
    pub conversations: crate::agent::conversation_cache::ConversationCache,
    /// Request parameters the models refused, per (account, model).
    pub param_memory: crate::providers::ParamMemory,
    /// Prices and context windows (the embedded table plus `MODEL_PRICES_FILE`).
    pub prices: crate::pricing::PriceTable,
    /// Connections to the MCP servers this worker's agents use.
    pub mcp: std::sync::Arc<crate::mcp::McpManager>,
}

/// Every model call one run made — the answer, tool rounds, compaction
/// summaries — collected as each is served ([`crate::failover::call`] adds
/// it), and written once at the run's end: with the reply in its transaction,
/// or with the failure. So no call goes unbilled because some path forgot to
/// record it.
#[derive(Debug, Default)]
pub struct Bill {
    calls: Mutex<Vec<UsageRecord>>,
}

impl Bill {
    pub fn add(&self, usage: UsageRecord) {
        if let Ok(mut calls) = self.calls.lock() {
            calls.push(usage);
        }
    }

    /// The calls so far, in the order they were served.
    pub fn calls(&self) -> Vec<UsageRecord> {
        self.calls.lock().map(|c| c.clone()).unwrap_or_default()
    }

    /// What the calls so far cost (unpriced ones count 0), not yet stored.
    pub fn cost(&self) -> f64 {
        self.calls.lock().map(|c| c.iter().filter_map(|u| u.cost_usd).sum()).unwrap_or(0.0)
    }
}
