//! `arvis-gateway`: the REST API as its own process (split topology, needs NATS_URL).

use anyhow::Context as _;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    arvis_shared::cli::handle(
        "arvis-gateway",
        env!("CARGO_PKG_VERSION"),
        "Arvis REST API gateway (split topology; requires NATS_URL)",
    );
    let shutdown = arvis_shared::shutdown::on_signal();
    let Some(deps) = arvis_shared::startup::split_service("arvis-gateway", &shutdown).await? else { return Ok(()) };
    let addr = deps.config.gateway_addr;
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("binding GATEWAY_ADDR {addr}"))?;
    let result = arvis_gateway::run(deps.clone(), listener, shutdown).await;
    deps.close().await;
    result
}
