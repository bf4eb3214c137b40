//! `arvis-ws-bridge`: WebSocket chat as its own process (split topology, needs NATS_URL).

use anyhow::Context as _;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    arvis_shared::cli::handle(
        "arvis-ws-bridge",
        env!("CARGO_PKG_VERSION"),
        "Arvis WebSocket bridge (split topology; requires NATS_URL)",
    );
    let shutdown = arvis_shared::shutdown::on_signal();
    let Some(deps) = arvis_shared::startup::split_service("arvis-ws-bridge", &shutdown).await? else { return Ok(()) };
    let addr = deps.config.ws_bridge_addr;
    let listener =
        tokio::net::TcpListener::bind(addr).await.with_context(|| format!("binding WS_BRIDGE_ADDR {addr}"))?;
    let result = arvis_ws_bridge::run(deps.clone(), listener, shutdown).await;
    deps.close().await;
    result
}
