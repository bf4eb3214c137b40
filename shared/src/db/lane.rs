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
//! **Group commit.** When requests are waiting, the lane runs them as one
//! batch inside one `BEGIN IMMEDIATE … COMMIT`, and answers each caller only
//! after that commit. Every chat writes the same few B-tree pages (the last
//! leaf of `jobs` and `messages`, the job-status index, the conversation), so
//! a batch appends each of those pages to the WAL once instead of once per
//! request; fewer WAL pages also mean fewer automatic checkpoints, each of
//! which fsyncs inside a commit while every writer waits. The scripts keep
//! their all-or-nothing through a `SAVEPOINT` of their own (see
//! `queue.rs`), so one failing request is rolled back alone and the rest of
//! its batch still commits. A request that fails ends its batch at once: the
//! batch so far is committed (if SQLite rolled the whole transaction back,
//! that commit fails and every caller of the batch gets the error), and the
//! requests after it start a new batch. A lone request runs without the
//! extra `BEGIN`/`COMMIT` round trips (a script's savepoint is then its
//! transaction).
//!
//! The lane shares the write connection with every other write (API edits,
//! lease renewals, …), which still go through the pool: it gives the
//! connection back whenever its queue is empty and at the latest after
//! [`MAX_HOLD`], so they wait at most about that long.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use sqlx::{AnyConnection, AnyPool};
use tokio::sync::{mpsc, oneshot};

use super::{DbError, Result};

/// The longest the lane keeps the write connection while others may wait for it.
pub const MAX_HOLD: Duration = Duration::from_millis(5);

/// The most requests committed together: bounds how long the first caller
/// of a batch waits for the others.
pub const MAX_BATCH: usize = 32;

/// What a request leaves after its turn: whether it succeeded, and how to
/// answer its caller once the fate of its batch's commit is known (`Some`
/// carries why that commit failed).
pub(crate) struct Ran {
    ok: bool,
    answer: Answer,
}

/// Answers a caller; `Some` says why its batch's commit failed.
type Answer = Box<dyn FnOnce(Option<&str>) + Send>;

/// A unit of work: runs on the write connection, answers after the commit.
pub(crate) type Work = Box<dyn for<'c> FnOnce(&'c mut AnyConnection) -> BoxFuture<'c, Ran> + Send>;

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

    /// Runs `f` on the write connection and returns what it returns, once
    /// what it wrote is committed. `f` may run inside a batch's transaction:
    /// if it fails, it must leave that transaction as it found it (a single
    /// statement does; a script rolls back to its own savepoint).
    pub(crate) async fn run<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut AnyConnection) -> BoxFuture<'c, Result<T>> + Send + 'static,
    {
        let (done, result) = oneshot::channel();
        let work: Work = Box::new(move |conn| {
            Box::pin(async move {
                let result = f(conn).await;
                let ok = result.is_ok();
                let answer = Box::new(move |commit_failed: Option<&str>| {
                    let result = match (commit_failed, result) {
                        (Some(why), Ok(_)) => Err(not_committed(why)),
                        (_, result) => result,
                    };
                    let _ = done.send(result);
                });
                Ran { ok, answer }
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

fn not_committed(why: &str) -> DbError {
    DbError::Sqlx(sqlx::Error::Protocol(format!("the write was not committed: {why}")))
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
        let mut batch = VecDeque::from([first]);
        loop {
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(work) => batch.push_back(work),
                    Err(_) => break,
                }
            }
            turn(&mut conn, &mut batch).await;
            if batch.is_empty() && since.elapsed() >= MAX_HOLD {
                break;
            }
            if batch.is_empty() {
                match rx.try_recv() {
                    Ok(work) => batch.push_back(work),
                    Err(_) => break,
                }
            }
        }
        // Back to the pool (which pings it once) for the other writers.
        drop(conn);
    }
}

/// Runs the front of `batch` as one transaction and answers its callers;
/// leaves in `batch` what comes after a failed request.
async fn turn(conn: &mut AnyConnection, batch: &mut VecDeque<Work>) {
    if batch.len() == 1 {
        if let Some(work) = batch.pop_front() {
            let ran = work(conn).await;
            (ran.answer)(None);
        }
        return;
    }
    if let Err(error) = sqlx::query("BEGIN IMMEDIATE").execute(&mut *conn).await {
        // Not even a transaction: run the first request alone (it gets the
        // error itself if the database is broken); the rest try again.
        tracing::warn!(%error, "the SQLite writer lane could not begin a batch");
        if let Some(work) = batch.pop_front() {
            let ran = work(conn).await;
            (ran.answer)(None);
        }
        return;
    }
    let mut answers = Vec::with_capacity(batch.len());
    while let Some(work) = batch.pop_front() {
        let ran = work(conn).await;
        answers.push(ran.answer);
        if !ran.ok {
            // A failure may have cost the whole transaction (SQLite rolls
            // back on I/O errors, a full disk…): commit now, so that whether
            // the batch so far was written is known for certain.
            break;
        }
    }
    match sqlx::query("COMMIT").execute(&mut *conn).await {
        Ok(_) => answers.into_iter().for_each(|answer| answer(None)),
        Err(error) => {
            tracing::warn!(%error, requests = answers.len(), "the SQLite writer lane could not commit a batch");
            let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
            let why = error.to_string();
            answers.into_iter().for_each(|answer| answer(Some(&why)));
        }
    }
}
