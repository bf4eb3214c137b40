//! `arvis-scheduler` as its own process (split topology, needs NATS_URL).

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    arvis_shared::cli::handle(
        "arvis-scheduler",
        env!("CARGO_PKG_VERSION"),
        "Arvis scheduler (split topology; requires NATS_URL)",
    );
    let shutdown = arvis_shared::shutdown::on_signal();
    let Some(deps) = arvis_shared::startup::split_service("arvis-scheduler", &shutdown).await? else { return Ok(()) };
    arvis_shared::health::spawn_if_configured(&deps, &shutdown).await?;
    let result = arvis_scheduler::run(deps.clone(), shutdown).await;
    deps.close().await;
    result
}
