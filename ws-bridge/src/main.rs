//! `arvis-ws-bridge`: WebSocket chat as its own process (split topology, needs NATS_URL).

use anyhow::Context as _;
use clap::Parser;

#[derive(Parser)]
#[command(version, about = "Arvis WebSocket bridge (split topology; requires NATS_URL)", after_help = arvis_shared::startup::ENV_HELP)]
struct Cli {}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    Cli::parse();
    let shutdown = arvis_shared::shutdown::on_signal();
    let Some(deps) = arvis_shared::startup::split_service("arvis-ws-bridge", &shutdown).await? else { return Ok(()) };
    let addr = deps.config.ws_bridge_addr;
    let listener =
        tokio::net::TcpListener::bind(addr).await.with_context(|| format!("binding WS_BRIDGE_ADDR {addr}"))?;
    let result = arvis_ws_bridge::run(deps.clone(), listener, shutdown).await;
    deps.close().await;
    result
}
