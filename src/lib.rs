//! `arvis`, the all-in-one launcher: the gateway, a worker, the scheduler and
//! the WebSocket bridge in one process, over the same library code as the split
//! binaries. SQLite at `data/arvis.db` and an in-process bus by default;
//! `NATS_URL` and `DATABASE_URL=postgres://…` switch either.

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use arvis_shared::{Deps, ServiceFuture};

/// Runs the four services until `shutdown` fires or one of them fails (then
/// the others are stopped too). Each drains its own work on the way out.
/// Boxed and never inlined ([`arvis_shared::ServiceFuture`] says why).
#[inline(never)]
pub fn launch(
    deps: Deps,
    gateway: TcpListener,
    ws_bridge: TcpListener,
    shutdown: CancellationToken,
) -> ServiceFuture<'static> {
    Box::pin(launch_all(deps, gateway, ws_bridge, shutdown))
}

async fn launch_all(
    deps: Deps,
    gateway: TcpListener,
    ws_bridge: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let stop = shutdown.child_token();
    let guard = |name: &'static str, stop: CancellationToken| {
        move |r: anyhow::Result<()>| {
            if r.is_err() {
                stop.cancel();
            }
            r.with_context(|| format!("{name} stopped with an error"))
        }
    };
    let (g, w, s, b) = tokio::join!(
        async { arvis_gateway::run(deps.clone(), gateway, stop.clone()).await }
            .then_map(guard("gateway", stop.clone())),
        async { arvis_worker::run(deps.clone(), stop.clone()).await }.then_map(guard("worker", stop.clone())),
        async { arvis_scheduler::run(deps.clone(), stop.clone()).await }.then_map(guard("scheduler", stop.clone())),
        async { arvis_ws_bridge::run(deps.clone(), ws_bridge, stop.clone()).await }
            .then_map(guard("ws-bridge", stop.clone())),
    );
    deps.close().await;
    g.and(w).and(s).and(b)
}

/// `future.then_map(f)`: apply `f` to the output as soon as the future finishes
/// (so a failing service stops the others while they still run).
trait ThenMap: std::future::Future + Sized {
    async fn then_map<T>(self, f: impl FnOnce(Self::Output) -> T) -> T {
        f(self.await)
    }
}
impl<F: std::future::Future> ThenMap for F {}
