//! Prometheus metrics: one recorder per process (the launcher's four services
//! share it), rendered in the text exposition format by the gateway's
//! `/metrics` and by the health listener of the other binaries.
//!
//! Metric names (all prefixed `arvis_`): `http_requests_total{route,method,status}`,
//! `http_request_duration_seconds{route,method}`, `jobs_total{status,agent_id}`,
//! `job_duration_seconds{status}`, `provider_calls_total{provider,model,outcome}`,
//! `provider_call_duration_seconds{provider,model}`, `tokens_total{direction,provider,model}`,
//! `cost_microdollars_total{provider,model}`, `accounts_rate_limited`, `queue_depth`,
//! `jobs_running`, `ws_connections`, `scheduler_fires_total`, `scheduler_skips_total`,
//! `scheduler_budget_skips_total`, `budget_spent_usd{scope,name,period}` and
//! `budget_limit_usd{scope,name,period}` (scope agent / key / workflow, period day / month, UTC).

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::db::Store;

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Latency buckets from 1 ms to 2 minutes (model calls are slow).
const BUCKETS: &[f64] = &[0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0];

/// Installs the global recorder once; later calls return the same handle.
/// `None` if another recorder was installed first (then metrics are not exported).
pub fn install() -> Option<PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new().set_buckets_for_metric(Matcher::Suffix("_seconds".into()), BUCKETS);
            match builder {
                Ok(b) => match b.install_recorder() {
                    Ok(handle) => Some(handle),
                    Err(error) => {
                        tracing::warn!(%error, "metrics recorder not installed");
                        None
                    }
                },
                Err(error) => {
                    tracing::warn!(%error, "metrics buckets rejected");
                    None
                }
            }
        })
        .clone()
}

/// Refreshes the gauges read from the database, then renders everything.
pub async fn render(store: &Store) -> String {
    let Some(handle) = install() else { return String::new() };
    match store.queue_gauges().await {
        Ok(g) => {
            metrics::gauge!("arvis_queue_depth").set(g.pending as f64);
            metrics::gauge!("arvis_jobs_running").set(g.running as f64);
            metrics::gauge!("arvis_accounts_rate_limited").set(g.rate_limited_accounts as f64);
        }
        Err(error) => tracing::warn!(%error, "cannot read queue gauges for /metrics"),
    }
    match crate::budget::report(store).await {
        Ok(report) => report.set_gauges(),
        Err(error) => tracing::warn!(%error, "cannot read budget gauges for /metrics"),
    }
    handle.render()
}
