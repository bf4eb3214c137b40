//! Shutdown: one root [`CancellationToken`] per process, cancelled on SIGINT or
//! SIGTERM, and [`Tasks`], the owner of every task a service spawns.
//!
//! The rule (enforced by `clippy.toml`'s `disallowed-methods`): no bare
//! `tokio::spawn` or `std::thread::spawn` in the services. A task is spawned
//! through [`Tasks`] (held by [`crate::Deps`]), so that at the end of `main`
//! [`crate::Deps::close`] can stop the daemons and wait — for a bounded time —
//! for the rest; threads through [`spawn_thread`]. Before this, a task blocked on an unreachable NATS server
//! kept each split binary alive after SIGTERM until it was killed.
//!
//! Every service's `run` lists its own drain phases; the process then calls
//! `Deps::close` (tasks, bus, database, each with a bounded wait).

use std::future::Future;
use std::time::Duration;

use tokio::task::JoinHandle;
pub use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Resolves on the first SIGINT (Ctrl-C) or SIGTERM.
pub async fn signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("SIGINT received, shutting down"),
        () = term => tracing::info!("SIGTERM received, shutting down"),
    }
}

/// A root token that is cancelled when the process receives SIGINT or SIGTERM.
/// Call it first thing in `main`, so a signal during start-up counts too.
pub fn on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let child = token.clone();
    // The one untracked task: it lives exactly as long as the process.
    #[expect(clippy::disallowed_methods, reason = "the signal listener outlives every tracker")]
    tokio::spawn(async move {
        signal().await;
        child.cancel();
    });
    token
}

/// The tasks of one process (the launcher's four services share one).
/// Cheap to clone.
#[derive(Clone, Default)]
pub struct Tasks {
    tracker: TaskTracker,
    /// Cancelled by [`Tasks::stop`]: ends the daemons.
    stop: CancellationToken,
}

impl Tasks {
    /// A task that ends by itself (a request's forwarder, a connection) or on
    /// a shutdown token it was given.
    pub fn spawn<F>(&self, task: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.tracker.spawn(task)
    }

    /// A task that would run as long as the process (a listener loop, a bus
    /// subscription): it is dropped at [`Tasks::stop`].
    pub fn spawn_daemon<F>(&self, task: F) -> JoinHandle<()>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let stop = self.stop.clone();
        self.tracker.spawn(async move {
            tokio::select! {
                () = task => {}
                () = stop.cancelled() => {}
            }
        })
    }

    /// A token cancelled when [`Tasks::stop`] begins: for a task that must
    /// finish its own work on the way out (the log writer flushes its queue).
    pub fn stopping(&self) -> CancellationToken {
        self.stop.clone()
    }

    /// Ends the daemons and waits at most `grace` for every other task.
    /// Returns how many were still running when the wait ended.
    pub async fn stop(&self, grace: Duration) -> usize {
        self.stop.cancel();
        self.tracker.close();
        if tokio::time::timeout(grace, self.tracker.wait()).await.is_err() {
            return self.tracker.len();
        }
        0
    }

    /// Tasks running now.
    pub fn len(&self) -> usize {
        self.tracker.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tracker.is_empty()
    }
}

/// Starts a named OS thread (the SQLite writer lane, the WAL checkpointer).
/// Such a thread must end when its input channel closes — the store closes
/// both — and must never hold the process open: a process exits when `main`
/// returns, whatever its other threads do.
pub fn spawn_thread<F>(name: &str, f: F) -> std::io::Result<()>
where
    F: FnOnce() + Send + 'static,
{
    #[expect(clippy::disallowed_methods, reason = "the one place threads are started")]
    std::thread::Builder::new().name(name.to_string()).spawn(f).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn stop_ends_daemons_and_bounds_the_wait_for_the_rest() {
        let tasks = Tasks::default();
        tasks.spawn_daemon(std::future::pending());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tasks.spawn(async move {
            let _ = rx.await;
        });
        assert_eq!(tasks.len(), 2);
        // The plain task is still waiting: the bounded wait reports it.
        assert_eq!(tasks.stop(Duration::from_millis(50)).await, 1);
        drop(tx);
        assert_eq!(tasks.stop(Duration::from_secs(5)).await, 0);
    }
}
