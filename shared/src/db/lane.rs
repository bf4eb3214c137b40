//! The SQLite writer lane: the chat's hot writes (enqueue, finish, claim)
//! run back to back on the single write connection, driven by a task on a
//! thread of its own.
//!
//! Why: SQLite has one writer, so how long the write connection stays
//! *occupied* per write bounds the chat throughput. Through the pool, each
//! write occupied it for far longer than SQLite worked on it: the owning task
//! had to be scheduled on the busy runtime to read the result and drop the
//! connection, the drop spawned a task that pinged the connection (another
//! hand-off to its thread) before the pool handed it to the next waiter,
//! whose task had to be scheduled in turn. perf showed the writer's thread on
//! the CPU only ~35 % of the time while every run queued for it.
//!
//! Here one task holds the write connection while there is hot work and runs
//! each request as soon as the previous one is done, with no ping and no
//! hand-off between requests. It runs on its own current-thread runtime, so
//! the busy main runtime never delays it. Callers get their result through a
//! oneshot; a caller that gives up does not cut a request short (the lane runs
//! it to the end either way — a script is never left half-way).
//!
//! The lane shares the write connection with every other write (API edits,
//! lease renewals, …), which still go through the pool: it gives the
//! connection back whenever its queue is empty and at the latest after
//! [`MAX_HOLD`], so they wait at most about that long.

use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use sqlx::{AnyConnection, AnyPool};
use tokio::sync::{mpsc, oneshot};

use super::{DbError, Result};

/// The longest the lane keeps the write connection while others may wait for it.
pub const MAX_HOLD: Duration = Duration::from_millis(5);

/// A unit of work: runs on the write connection and reports through its own channel.
pub(crate) type Work = Box<dyn for<'c> FnOnce(&'c mut AnyConnection) -> BoxFuture<'c, ()> + Send>;

/// The sending side; the lane stops when every clone of its store is gone.
pub(crate) struct Lane {
    tx: mpsc::UnboundedSender<Work>,
}

impl Lane {
    /// Starts the lane's thread for `pool` (the one-connection SQLite write pool).
    pub(crate) fn start(pool: AnyPool) -> std::io::Result<Lane> {
        let (tx, rx) = mpsc::unbounded_channel();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        std::thread::Builder::new()
            .name("arvis-sqlite-writer".into())
            .spawn(move || runtime.block_on(run(pool, rx)))?;
        Ok(Lane { tx })
    }

    /// Runs `f` on the write connection and returns what it returns.
    pub(crate) async fn run<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut AnyConnection) -> BoxFuture<'c, Result<T>> + Send + 'static,
    {
        let (done, result) = oneshot::channel();
        let work: Work = Box::new(move |conn| {
            Box::pin(async move {
                let _ = done.send(f(conn).await);
            })
        });
        self.tx.send(work).map_err(|_| stopped())?;
        result.await.map_err(|_| stopped())?
    }
}

/// Types a closure as lane work (lets the compiler see that its future
/// borrows the connection for as long as the call lasts).
pub(crate) fn work<T, F>(f: F) -> F
where
    F: for<'c> FnOnce(&'c mut AnyConnection) -> BoxFuture<'c, Result<T>> + Send + 'static,
{
    f
}

fn stopped() -> DbError {
    DbError::Sqlx(sqlx::Error::PoolClosed)
}

async fn run(pool: AnyPool, mut rx: mpsc::UnboundedReceiver<Work>) {
    while let Some(first) = rx.recv().await {
        let mut conn = match pool.acquire().await {
            Ok(c) => c,
            Err(error) => {
                // The pool is closed or broken: each request reports it
                // (its sender is dropped unanswered: `PoolClosed`).
                tracing::warn!(%error, "the SQLite writer lane cannot get the write connection");
                drop(first);
                continue;
            }
        };
        let since = Instant::now();
        first(&mut conn).await;
        while since.elapsed() < MAX_HOLD {
            match rx.try_recv() {
                Ok(work) => work(&mut conn).await,
                Err(_) => break,
            }
        }
        // Back to the pool (which pings it once) for the other writers.
        drop(conn);
    }
}
