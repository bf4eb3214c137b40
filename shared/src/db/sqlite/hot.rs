//! The chat's hot reads on SQLite, run on the calling thread.
//!
//! Every run reads its conversation's tail, the agent's memory and the usable
//! accounts. Through sqlx each statement is a hand-off to the connection's own
//! thread and back (and sqlx pings every connection it takes back into a
//! pool: one more). Those reads take tens of microseconds in SQLite; the
//! hand-offs and thread switches around them cost more than the reads. So on
//! SQLite the store keeps a few `rusqlite` read connections of its own and
//! runs these statements directly on the caller's thread ([`Readers::read`]):
//! a WAL reader never waits for the writer, and each of these statements reads
//! a handful of rows by index. (The one that can read more, a conversation's
//! first full load, reads one conversation once per worker.)
//!
//! A connection goes back to the idle list after its closure returns (at most
//! [`MAX_IDLE`] are kept); `Store::close` empties the list and refuses hot
//! reads from then on, like a closed pool. Postgres keeps the pool: its round
//! trips are network round trips either way.

use std::sync::Mutex;

use rusqlite::{Connection, OpenFlags};

use super::Arg;
use crate::db::{DbError, Result};

/// The most idle read connections kept (about the number of threads that read at once).
pub const MAX_IDLE: usize = 8;

/// Idle hot-read connections (SQLite only).
#[derive(Default)]
pub(crate) struct Readers {
    path: String,
    slot: Mutex<Slot>,
}

#[derive(Default)]
struct Slot {
    idle: Vec<Connection>,
    /// Set by [`Readers::close`]: no more hot reads.
    closed: bool,
}

impl Readers {
    pub(crate) fn new(path: &str) -> Readers {
        Readers { path: path.to_string(), slot: Mutex::default() }
    }

    /// Drops the idle connections and refuses hot reads from now on.
    pub(crate) fn close(&self) {
        if let Ok(mut slot) = self.slot.lock() {
            slot.closed = true;
            slot.idle.clear();
        }
    }

    fn take(&self) -> Result<Connection> {
        {
            let mut slot = self.slot.lock().map_err(|_| closed())?;
            if slot.closed {
                return Err(closed());
            }
            if let Some(conn) = slot.idle.pop() {
                return Ok(conn);
            }
        }
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        // Set up like the read pool these reads used to go through.
        conn.execute_batch(crate::db::SQLITE_SETUP)?;
        Ok(conn)
    }

    fn give_back(&self, conn: Connection) {
        if let Ok(mut slot) = self.slot.lock()
            && !slot.closed
            && slot.idle.len() < MAX_IDLE
        {
            slot.idle.push(conn);
        }
    }

    pub(crate) fn idle(&self) -> usize {
        self.slot.lock().map(|s| s.idle.len()).unwrap_or(0)
    }
}

fn closed() -> DbError {
    DbError::Closed
}

impl Readers {
    /// Runs `f` on a hot-read connection on this thread.
    pub(crate) fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let conn = self.take()?;
        let result = f(&conn);
        // A failed statement leaves nothing open (each is its own implicit
        // transaction, reset when its handle is dropped): the connection is
        // reusable either way.
        self.give_back(conn);
        result
    }

    /// Every row of one statement ([`super::all`]) on a hot-read connection.
    pub(crate) fn all<R: super::FromSqlite>(&self, sql: &str, args: &[Arg<'_>]) -> Result<Vec<R>> {
        self.read(|conn| super::all(conn, sql, args))
    }
}
