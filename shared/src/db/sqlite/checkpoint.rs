//! WAL checkpoints off the write path: a thread of its own copies the WAL
//! back into the database file, so that no writer ever waits for it.
//!
//! Why: by default SQLite checkpoints inside the commit that pushes the WAL
//! past 1000 pages, on the committing connection — under load that is the
//! writer lane, and every write queued behind it waits for the copy and its
//! fsync. Raising the threshold (fewer, larger checkpoints: less writing in
//! all, +5 % chats/s) made each of those stalls longer: chat-overhead's p99
//! went from 6–7 ms to 9–14 ms.
//!
//! How: every connection of the store has `wal_autocheckpoint=0`
//! ([`crate::db::SQLITE_SETUP`]); this thread runs `PRAGMA wal_checkpoint(PASSIVE)`
//! on its own connection — PASSIVE never blocks writers or readers, it copies
//! what it can while they go on. It runs when the writer lane has committed
//! [`EVERY_COMMITS`] times since the last request ([`Checkpointer::nudge`]),
//! and every [`PERIOD`] when anything was committed meanwhile (the other
//! writers; `PRAGMA data_version` tells without any I/O). Several processes on
//! one database each run one; SQLite lets one checkpoint run at a time and the
//! others simply find less to copy.
//!
//! **Restarting the WAL.** SQLite writes the WAL from its start again only
//! when a write transaction begins with every frame already copied back. A
//! checkpoint running beside a busy writer never gets there — the writer has
//! appended more by the time it ends — and the WAL grew without bound (3.3 GB
//! in 20 s of chat-throughput). So when a pass leaves the WAL longer than
//! [`RESTART_PAGES`], the thread asks the writer lane for a catch-up: the lane
//! checkpoints on its own connection between two batches ([`Checkpointer::take_catch_up`]),
//! copying only what came after the pass, and its next transaction starts the
//! WAL over. That one short stall per WAL cycle (~16 MiB of writes) is what
//! remains of the checkpoint on the write path.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel};
use std::time::Duration;

use rusqlite::Connection;

use super::{DbError, Result};

/// Writer-lane commits between two checkpoint requests. A lane commit under
/// chat load appends ~20–25 pages, so this is ~3 000 pages (~12 MiB) of WAL.
pub const EVERY_COMMITS: u64 = 128;
/// How often commits by anyone else (not counted by the lane) are looked for.
pub const PERIOD: Duration = Duration::from_secs(1);
/// A WAL longer than this (pages; 16 MiB at 4 KiB) after a pass asks the
/// writer lane for a catch-up, so that the WAL starts over.
pub const RESTART_PAGES: i64 = 4096;

/// The handle of the checkpoint thread; the thread ends when every handle is
/// gone or [`Checkpointer::stop`] was called.
pub(crate) struct Checkpointer {
    tx: SyncSender<()>,
    stopped: Arc<AtomicBool>,
    catch_up: Arc<AtomicBool>,
}

impl Checkpointer {
    /// Opens the thread's connection to the database file at `path` and starts it.
    pub(crate) fn start(path: &str) -> Result<Checkpointer> {
        let conn = Connection::open(path)?;
        conn.execute_batch(crate::db::SQLITE_SETUP)?;
        let (tx, rx) = sync_channel(1);
        let stopped = Arc::new(AtomicBool::new(false));
        let catch_up = Arc::new(AtomicBool::new(false));
        let flags = (stopped.clone(), catch_up.clone());
        crate::shutdown::spawn_thread("arvis-sqlite-checkpoint", move || run(&conn, &rx, &flags.0, &flags.1))
            .map_err(|e| DbError::Other(format!("starting the SQLite checkpoint thread: {e}")))?;
        Ok(Checkpointer { tx, stopped, catch_up })
    }

    /// True (once) when the WAL has grown past [`RESTART_PAGES`]: the writer
    /// should then checkpoint on its own connection before its next write
    /// ([`catch_up`]).
    pub(crate) fn take_catch_up(&self) -> bool {
        self.catch_up.swap(false, Ordering::Relaxed)
    }

    /// Asks for a checkpoint soon. Never blocks: one pending request is enough.
    pub(crate) fn nudge(&self) {
        let _ = self.tx.try_send(());
    }

    /// Ends the thread (the store is closing).
    pub(crate) fn stop(&self) {
        self.stopped.store(true, Ordering::Relaxed);
        self.nudge();
    }
}

fn run(conn: &Connection, rx: &Receiver<()>, stopped: &AtomicBool, catch_up: &AtomicBool) {
    // Unknown at first: the first look checkpoints whatever the WAL holds
    // from before this process.
    let mut seen = None;
    let mut failing = false;
    loop {
        let asked = match rx.recv_timeout(PERIOD) {
            Ok(()) => true,
            Err(RecvTimeoutError::Timeout) => false,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        if stopped.load(Ordering::Relaxed) {
            return;
        }
        let version = data_version(conn);
        if !asked && version.is_some() && version == seen {
            continue; // nothing committed since the last look
        }
        seen = version;
        match checkpoint(conn) {
            Ok((wal_pages, copied)) => {
                failing = false;
                tracing::trace!(wal_pages, copied, "WAL checkpoint");
                if wal_pages > RESTART_PAGES {
                    catch_up.store(true, Ordering::Relaxed);
                }
            }
            // Said once per run of failures, not once a second.
            Err(error) if !failing => {
                failing = true;
                tracing::warn!(%error, "WAL checkpoint failed; retrying");
            }
            Err(_) => {}
        }
    }
}

/// A PASSIVE checkpoint on `conn`: the WAL's length and how much of it is now
/// copied back, in pages.
fn checkpoint(conn: &Connection) -> rusqlite::Result<(i64, i64)> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| Ok((r.get(1)?, r.get(2)?)))
}

/// The writer's catch-up (see the module docs): a PASSIVE checkpoint on the
/// writer's own connection, between two of its transactions. Best effort: a
/// checkpoint already running elsewhere makes it a no-op, and the next pass
/// asks again.
pub(crate) fn catch_up(conn: &Connection) {
    match checkpoint(conn) {
        Ok((wal_pages, copied)) => tracing::trace!(wal_pages, copied, "WAL catch-up checkpoint"),
        Err(error) => tracing::debug!(%error, "WAL catch-up checkpoint did not run"),
    }
}

/// Changes whenever another connection commits (`None` if it cannot be read,
/// which then never counts as "unchanged").
fn data_version(conn: &Connection) -> Option<i64> {
    conn.query_row("PRAGMA data_version", [], |r| r.get(0)).ok()
}

#[cfg(test)]
mod tests {

    use std::time::Instant;

    use super::*;

    /// A database with the store's set-up and 2 000 single-row commits (each a
    /// page or more of WAL); returns its path and the writing connection.
    fn busy_db(dir: &std::path::Path) -> (String, Connection) {
        let path = dir.join("t.db").display().to_string();
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(crate::db::SQLITE_SETUP).unwrap();
        conn.execute_batch("CREATE TABLE t (v TEXT)").unwrap();
        for i in 0..2_000 {
            conn.execute("INSERT INTO t (v) VALUES (?1)", [format!("{i:0>400}")]).unwrap();
        }
        (path, conn)
    }

    fn main_file_len(path: &str) -> u64 {
        std::fs::metadata(path).unwrap().len()
    }

    #[test]
    fn without_the_thread_nothing_is_checkpointed() {
        let dir = tempfile::tempdir().unwrap();
        let (path, _conn) = busy_db(dir.path());
        // ~800 KiB of rows, all still in the WAL: no commit checkpointed.
        assert!(main_file_len(&path) < 64 * 1024, "the main file grew to {}", main_file_len(&path));
    }

    #[test]
    fn the_thread_copies_the_wal_into_the_database_file() {
        let dir = tempfile::tempdir().unwrap();
        let (path, conn) = busy_db(dir.path());
        let checkpointer = Checkpointer::start(&path).unwrap();
        let grows_to = |bytes: u64| {
            let deadline = Instant::now() + PERIOD * 10;
            while main_file_len(&path) < bytes && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            assert!(main_file_len(&path) >= bytes, "the main file is {} bytes", main_file_len(&path));
        };
        // Its first look copies what the WAL held before it started…
        grows_to(800 * 1024);
        // …and later ones what others committed since.
        for i in 0..2_000 {
            conn.execute("INSERT INTO t (v) VALUES (?1)", [format!("{i:0>400}")]).unwrap();
        }
        grows_to(1600 * 1024);
        checkpointer.stop();
    }
}
