//! `arvis-scheduler` as its own process (split topology, needs NATS_URL).

use clap::Parser;

#[derive(Parser)]
#[command(version, about = "Arvis scheduler (split topology; requires NATS_URL)", after_help = arvis_shared::startup::ENV_HELP)]
struct Cli {}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    Cli::parse();
    let shutdown = arvis_shared::shutdown::on_signal();
    let Some(deps) = arvis_shared::startup::split_service("arvis-scheduler", &shutdown).await? else { return Ok(()) };
    arvis_shared::health::spawn_if_configured(&deps, &shutdown).await?;
    let result = arvis_scheduler::run(deps.clone(), shutdown).await;
    deps.close().await;
    result
}
