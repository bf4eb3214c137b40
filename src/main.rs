//! `arvis`: the whole platform in one process. `cargo run --release` on a
//! fresh clone starts it with no other setup.

use anyhow::Context as _;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    arvis_shared::cli::handle(
        "arvis",
        env!("CARGO_PKG_VERSION"),
        "Arvis: the self-hosted AI-agent platform, all services in one process (SQLite and an in-process bus by default)",
    );
    let shutdown = arvis_shared::shutdown::on_signal();
    let config = arvis_shared::startup::config()?;
    tracing::info!(database = %config.database_url_redacted(), nats = config.nats_url.is_some(), "starting arvis (all services)");
    let (gateway_addr, ws_addr) = (config.gateway_addr, config.ws_bridge_addr);
    let Some(deps) = arvis_shared::startup::connect(config, &shutdown).await? else { return Ok(()) };
    let gateway = tokio::net::TcpListener::bind(gateway_addr)
        .await
        .with_context(|| format!("binding GATEWAY_ADDR {gateway_addr}"))?;
    let ws =
        tokio::net::TcpListener::bind(ws_addr).await.with_context(|| format!("binding WS_BRIDGE_ADDR {ws_addr}"))?;
    arvis::launch(deps, gateway, ws, shutdown).await
}
