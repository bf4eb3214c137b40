//! The common start of every binary: TLS provider, configuration, logging,
//! database (migrated) and bus. The split binaries require NATS.

use anyhow::Context as _;

use crate::Deps;
use crate::config::Config;
use crate::shutdown::CancellationToken;

/// Environment variables, for every binary's `--help`.
pub const ENV_HELP: &str = "\
Environment (also read from ./.env; see README for every variable):
  DATABASE_URL         sqlite://path or postgres://… (default sqlite://$ARVIS_DATA_DIR/arvis.db)
  NATS_URL             NATS server (required by the split binaries)
  GATEWAY_ADDR         REST API address (default 127.0.0.1:5100)
  WS_BRIDGE_ADDR       WebSocket chat address (default 127.0.0.1:5070)
  ARVIS_DATA_DIR       data directory (default ./data)
  DASHBOARD_PASSWORD   enables login; DASHBOARD_API_KEY  API key for scripts
  JWT_SECRET           session signing key (generated into the data dir when unset)
  WEB_API_KEY          key required by the WebSocket bridge
  WORKER_CONCURRENCY   jobs per worker (default 8); WORKER_SHUTDOWN_GRACE_SECS, WORKER_LEASE_MS, PROVIDER_TIMEOUT_SECS …
  SCHEDULER_TZ         IANA zone for cron schedules (else TZ; default UTC)
  HEALTH_ADDR          /healthz, /readyz, /metrics for worker and scheduler;  METRICS_PUBLIC  open /metrics
  LOG_FORMAT           pretty | json;  RUST_LOG  log level (default info)
  ANTHROPIC_API_KEY[_n] OPENAI_API_KEY[_n] OPENROUTER_API_KEY[_n] GOOGLE_API_KEY[_n] OLLAMA_BASE_URL …";

/// Reads the configuration and initialises logging.
pub fn config() -> anyhow::Result<Config> {
    crate::install_crypto_provider();
    let config = Config::from_env().context("invalid configuration")?;
    crate::telemetry::init(config.log_format);
    Ok(config)
}

/// For `arvis-gateway`, `arvis-worker`, `arvis-scheduler`, `arvis-ws-bridge`:
/// they coordinate over NATS and refuse to start without it. `None` when
/// `shutdown` fired before the connections were made (a SIGTERM during start:
/// the process exits cleanly instead of finishing a start nobody wants).
#[inline(never)]
pub fn split_service<'a>(name: &'a str, shutdown: &'a CancellationToken) -> crate::ServiceFuture<'a, Option<Deps>> {
    Box::pin(start_split_service(name, shutdown))
}

async fn start_split_service(name: &str, shutdown: &CancellationToken) -> anyhow::Result<Option<Deps>> {
    let config = config()?;
    if config.nats_url.is_none() {
        anyhow::bail!(
            "{name} needs NATS_URL: the split services coordinate over NATS. \
             To run everything in one process without NATS, use the `arvis` launcher (cargo run --release)."
        );
    }
    tracing::info!(service = name, database = %config.database_url_redacted(), "starting");
    connect(config, shutdown).await
}

/// [`Deps::connect`], given up when `shutdown` fires first.
/// Boxed, like the services' entry points ([`crate::ServiceFuture`]).
#[inline(never)]
pub fn connect(config: Config, shutdown: &CancellationToken) -> crate::ServiceFuture<'_, Option<Deps>> {
    Box::pin(connect_or_stop(config, shutdown))
}

async fn connect_or_stop(config: Config, shutdown: &CancellationToken) -> anyhow::Result<Option<Deps>> {
    tokio::select! {
        deps = Deps::connect(config) => deps.map(Some),
        () = shutdown.cancelled() => {
            tracing::info!("stopped during start-up");
            Ok(None)
        }
    }
}
