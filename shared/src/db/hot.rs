//! Read connections for the chat's hot path, reused without sqlx's ping.
//!
//! sqlx pings every connection it takes back into a pool (one more round
//! trip to the connection's thread on SQLite, one more network round trip on
//! Postgres), to catch connections left half-way by a cancelled query. On the
//! chat path that doubled the hand-offs of every read: in the launcher's
//! profile about 40 % of the trips to SQLite's connection threads were those
//! pings.
//!
//! So on SQLite the store keeps a small stash of read connections outside the
//! pool. [`Store::hot_read`] takes one from the stash (or the pool);
//! [`HotConn::done`] — called only after every statement on it finished —
//! puts it back in the stash with no ping. A `HotConn` dropped without `done`
//! (an error, a cancelled caller) goes back to the pool the usual way, ping
//! included, so a connection in an unknown state is never reused unchecked.
//!
//! The stash holds at most half the read pool, so stashed connections can
//! never starve the pool's other users; [`Store::close`] empties it first
//! (a pool closes only once all its connections are back). Postgres keeps
//! the plain pool: its connections can drop, and the pool's checks are
//! worth their round trip there.

use std::ops::{Deref, DerefMut};
use std::sync::Mutex;

use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyConnection};

use super::{Dialect, Result, Store};

/// Idle read connections kept outside the pool (SQLite only).
#[derive(Default)]
pub struct Stash {
    slot: Mutex<Slot>,
    max: usize,
}

#[derive(Default)]
struct Slot {
    conns: Vec<PoolConnection<Any>>,
    /// Set by [`Stash::drain`]: nothing is stashed any more.
    closed: bool,
}

impl Stash {
    pub(crate) fn new(max: usize) -> Stash {
        Stash { slot: Mutex::default(), max }
    }

    fn take(&self) -> Option<PoolConnection<Any>> {
        self.slot.lock().ok()?.conns.pop()
    }

    /// Gives every stashed connection back to its pool and stashes no more
    /// (shutdown: a pool closes only when all its connections are back).
    pub(crate) fn drain(&self) {
        if let Ok(mut slot) = self.slot.lock() {
            slot.closed = true;
            slot.conns.clear();
        }
    }
}

/// A read connection of the hot path; see the module docs.
pub struct HotConn<'a> {
    conn: PoolConnection<Any>,
    stash: Option<&'a Stash>,
}

impl HotConn<'_> {
    /// Every statement on the connection finished: keep it for the next hot read.
    pub fn done(self) {
        let HotConn { conn, stash } = self;
        if let Some(stash) = stash
            && let Ok(mut slot) = stash.slot.lock()
            && !slot.closed
            && slot.conns.len() < stash.max
        {
            slot.conns.push(conn);
        }
        // Otherwise `conn` drops here, back into the pool.
    }
}

impl Deref for HotConn<'_> {
    type Target = AnyConnection;
    fn deref(&self) -> &AnyConnection {
        &self.conn
    }
}

impl DerefMut for HotConn<'_> {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        &mut self.conn
    }
}

impl Store {
    /// A read connection for a hot-path read; call [`HotConn::done`] after
    /// the last statement succeeded.
    pub async fn hot_read(&self) -> Result<HotConn<'_>> {
        if self.dialect == Dialect::Sqlite
            && let Some(conn) = self.hot.take()
        {
            return Ok(HotConn { conn, stash: Some(&self.hot) });
        }
        let conn = self.r().acquire().await?;
        let stash = (self.dialect == Dialect::Sqlite).then_some(&*self.hot);
        Ok(HotConn { conn, stash })
    }

    /// How many read connections the stash holds now (diagnostics and tests).
    pub fn hot_stashed(&self) -> usize {
        self.hot.slot.lock().map(|s| s.conns.len()).unwrap_or(0)
    }
}
