//! The WebSocket bridge: live chat on `WS_BRIDGE_ADDR`.
//!
//! Not implemented yet (issue #5): `run` holds the listener until shutdown.

use arvis_shared::Deps;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub async fn run(_deps: Deps, _listener: TcpListener, shutdown: CancellationToken) -> anyhow::Result<()> {
    shutdown.cancelled().await;
    Ok(())
}
