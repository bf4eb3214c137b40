//! The scheduler: fires cron workflows exactly once per due time.
//!
//! Not implemented yet (issue #6): `run` waits for shutdown.

use arvis_shared::Deps;
use tokio_util::sync::CancellationToken;

pub async fn run(_deps: Deps, shutdown: CancellationToken) -> anyhow::Result<()> {
    shutdown.cancelled().await;
    Ok(())
}
