//! The SQLite writer lane: the chat's hot writes (enqueue, claim, finish)
//! run back to back on a thread of their own, which owns a SQLite connection
//! of its own and calls SQLite directly.
//!
//! Why: SQLite has one writer, so how long each write keeps the writer busy
//! bounds the chat throughput. Through sqlx, every statement is a round trip
//! to the connection's own thread, and every statement's result and every
//! row comes back as a message on a channel: perf showed a third of the
//! sqlx writer thread in waking the waiting task and switching threads, and
//! the task that drove it (this lane, then on sqlx) spent much of its time
//! the same way. Here the lane thread runs the statements itself, through
//! `rusqlite` on the same bundled SQLite: a request costs one hand-off in
//! (an unbounded channel) and one out (a oneshot), however many statements it
//! runs.
//!
//! **Mutual exclusion with the other writers.** Everything else writes
//! through the store's one-connection write pool (API edits, lease renewals,
//! the scheduler…). The lane takes that pool connection and holds it while it
//! writes on its own connection, so the two never contend for SQLite's write
//! lock (which would leave one of them sleeping in SQLite's busy handler). It
//! gives it back whenever its queue is empty and at the latest after
//! [`MAX_HOLD`], so the other writers wait at most about that long.
//!
//! **Group commit.** When requests are waiting, the lane runs them as one
//! batch inside one `BEGIN IMMEDIATE … COMMIT`, and answers each caller only
//! after that commit. Every chat writes the same few B-tree pages (the last
//! leaf of `jobs` and `messages`, the job-status index, the conversation), so
//! a batch appends each of those pages to the WAL once instead of once per
//! request; fewer WAL pages also mean fewer automatic checkpoints, each of
//! which fsyncs inside a commit while every writer waits. Each request keeps
//! its all-or-nothing through a savepoint of its own, so one failing request
//! is rolled back alone and the rest of its batch still commits. A request
//! that fails ends its batch at once: the batch so far is committed (if
//! SQLite rolled the whole transaction back, that commit fails and every
//! caller of the batch gets the error), and the requests after it start a
//! new batch. A lone request runs without the extra `BEGIN`/`COMMIT` (its
//! savepoint is then its transaction).
//!
//! A caller that gives up does not cut a request short: the lane runs it to
//! the end either way.
//!
//! **Checkpoints** run on their own thread ([`super::checkpoint`]): every
//! [`EVERY_COMMITS`] commits the lane asks for one and goes on. Only when that
//! thread finds the WAL long does the lane checkpoint the rest itself, once,
//! between two batches, so that the WAL can start over.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::Connection;
use sqlx::AnyPool;
use tokio::sync::{mpsc, oneshot};

use super::checkpoint::{Checkpointer, EVERY_COMMITS};
use super::{DbError, Result};

/// The longest the lane keeps the write lock while others may wait for it.
pub const MAX_HOLD: Duration = Duration::from_millis(5);

/// The most requests committed together: bounds how long the first caller
/// of a batch waits for the others.
pub const MAX_BATCH: usize = 32;

/// What a request leaves after its turn: whether it succeeded, and how to
/// answer its caller once the fate of its batch's commit is known.
pub(crate) struct Ran {
    ok: bool,
    answer: Answer,
}

/// Answers a caller; `Some` says why its batch's commit failed.
type Answer = Box<dyn FnOnce(Option<&str>) + Send>;

/// A unit of work: runs on the lane's connection, answers after the commit.
pub(crate) type Work = Box<dyn FnOnce(&mut Connection) -> Ran + Send>;

/// The sending side; the lane stops when every clone of its store is gone.
pub(crate) struct Lane {
    tx: mpsc::UnboundedSender<Work>,
}

impl Lane {
    /// Opens the lane's connection to the database file at `path` and starts
    /// its thread; `pool` is the store's one-connection SQLite write pool.
    pub(crate) fn start(pool: AnyPool, path: &str, checkpoints: Arc<Checkpointer>) -> Result<Lane> {
        let conn = open(path)?;
        let (tx, rx) = mpsc::unbounded_channel();
        let started = tokio::runtime::Builder::new_current_thread().enable_all().build().and_then(|runtime| {
            crate::shutdown::spawn_thread("arvis-sqlite-writer", move || {
                runtime.block_on(run(pool, conn, rx, checkpoints))
            })
        });
        started.map_err(|e| DbError::Other(format!("starting the SQLite writer thread: {e}")))?;
        Ok(Lane { tx })
    }

    /// Runs `f` on the lane's connection and returns what it returns, once
    /// what it wrote is committed. `f` may run inside a batch's transaction:
    /// if it fails, it must leave that transaction as it found it (a single
    /// statement does; anything longer works inside a savepoint).
    pub(crate) async fn run<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    {
        let (done, result) = oneshot::channel();
        let work: Work = Box::new(move |conn| {
            let result = f(conn);
            let ok = result.is_ok();
            let answer: Answer = Box::new(move |commit_failed| {
                let result = match (commit_failed, result) {
                    (Some(why), Ok(_)) => Err(not_committed(why)),
                    (_, result) => result,
                };
                let _ = done.send(result);
            });
            Ran { ok, answer }
        });
        self.tx.send(work).map_err(|_| stopped())?;
        result.await.map_err(|_| stopped())?
    }
}

/// The lane's connection, set up like the pools' ([`crate::db::SQLITE_SETUP`]).
fn open(path: &str) -> Result<Connection> {
    let conn = Connection::open(path)?;
    conn.execute_batch(crate::db::SQLITE_SETUP)?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

fn stopped() -> DbError {
    DbError::Closed
}

fn not_committed(why: &str) -> DbError {
    DbError::Other(format!("the write was not committed: {why}"))
}

async fn run(
    pool: AnyPool,
    mut conn: Connection,
    mut rx: mpsc::UnboundedReceiver<Work>,
    checkpoints: Arc<Checkpointer>,
) {
    let mut commits = 0u64;
    while let Some(first) = rx.recv().await {
        // The pool's one write connection is the writers' mutex.
        let token = match pool.acquire().await {
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
            if checkpoints.take_catch_up() {
                super::checkpoint::catch_up(&conn);
            }
            let writes = turn(&mut conn, &mut batch);
            metrics::counter!("arvis_sqlite_lane_commits_total").increment(1);
            metrics::counter!("arvis_sqlite_lane_writes_total").increment(writes as u64);
            commits += 1;
            if commits.is_multiple_of(EVERY_COMMITS) {
                checkpoints.nudge();
            }
            if !batch.is_empty() {
                continue; // what came after a failed request
            }
            if since.elapsed() >= MAX_HOLD {
                break;
            }
            match rx.try_recv() {
                Ok(work) => batch.push_back(work),
                Err(_) => break,
            }
        }
        // Back to the pool (which pings it once) for the other writers.
        drop(token);
    }
}

/// Runs the front of `batch` as one transaction and answers its callers;
/// leaves in `batch` what comes after a failed request. Returns how many
/// requests the transaction held.
fn turn(conn: &mut Connection, batch: &mut VecDeque<Work>) -> usize {
    let alone = |conn: &mut Connection, batch: &mut VecDeque<Work>| match batch.pop_front() {
        Some(work) => {
            let ran = work(conn);
            (ran.answer)(None);
            1
        }
        None => 0,
    };
    if batch.len() == 1 {
        return alone(conn, batch);
    }
    if let Err(error) = conn.execute_batch("BEGIN IMMEDIATE") {
        // Not even a transaction: run the first request alone (it gets the
        // error itself if the database is broken); the rest try again.
        tracing::warn!(%error, "the SQLite writer lane could not begin a batch");
        return alone(conn, batch);
    }
    let mut answers = Vec::with_capacity(batch.len());
    while let Some(work) = batch.pop_front() {
        let ran = work(conn);
        answers.push(ran.answer);
        if !ran.ok {
            // A failure may have cost the whole transaction (SQLite rolls
            // back on I/O errors, a full disk…): commit now, so that whether
            // the batch so far was written is known for certain.
            break;
        }
    }
    let writes = answers.len();
    match conn.execute_batch("COMMIT") {
        Ok(()) => answers.into_iter().for_each(|answer| answer(None)),
        Err(error) => {
            tracing::warn!(%error, requests = writes, "the SQLite writer lane could not commit a batch");
            let _ = conn.execute_batch("ROLLBACK");
            let why = error.to_string();
            answers.into_iter().for_each(|answer| answer(Some(&why)));
        }
    }
    writes
}
