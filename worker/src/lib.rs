//! The worker: claims jobs from the queue and runs agents.
//!
//! Not implemented yet (issue #4): `run` waits for shutdown so the launcher and
//! the split topology can already be started.

use arvis_shared::Deps;
use tokio_util::sync::CancellationToken;

pub async fn run(_deps: Deps, shutdown: CancellationToken) -> anyhow::Result<()> {
    shutdown.cancelled().await;
    Ok(())
}
