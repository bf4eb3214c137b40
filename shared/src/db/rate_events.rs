//! Sliding-window rate limits kept in the database (`rate_events`), so that
//! every gateway replica counts the same events: the login throttle (failed
//! logins per client address) and the inbound-webhook quota (deliveries per
//! webhook). One row per counted event; the count is over the last `window`.
//!
//! A limit holds exactly on SQLite (one writer). On Postgres two replicas that
//! check at the same instant may both pass the last free slot, so a burst can
//! exceed the limit by the number of replicas at most — never by N times it.

use super::{Result, Store};

/// How long events are kept: longer than any window that counts them (the
/// login throttle's is 15 minutes).
pub const KEPT_MS: i64 = 3600 * 1000;

/// The events of one key within a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowCount {
    pub count: i64,
    /// The oldest event still in the window (ms), when there is one.
    pub oldest: Option<i64>,
}

impl WindowCount {
    /// Milliseconds until a slot frees up, for a key at its limit.
    pub fn wait_ms(&self, now: i64, window_ms: i64) -> i64 {
        self.oldest.map_or(0, |oldest| (oldest + window_ms - now).max(0))
    }
}

impl Store {
    /// The events of `key` after `since` (ms).
    pub async fn rate_window(&self, key: &str, since: i64) -> Result<WindowCount> {
        let (count, oldest): (i64, Option<i64>) =
            sqlx::query_as("SELECT COUNT(*), MIN(at) FROM rate_events WHERE key = $1 AND at > $2")
                .bind(key)
                .bind(since)
                .fetch_one(self.w())
                .await?;
        Ok(WindowCount { count, oldest })
    }

    /// Counts one event of `key` at `now`.
    pub async fn rate_record(&self, key: &str, now: i64) -> Result<()> {
        sqlx::query("INSERT INTO rate_events (key, at) VALUES ($1, $2)").bind(key).bind(now).execute(self.w()).await?;
        Ok(())
    }

    /// Counts one event of `key` at `now` unless `limit` events happened after
    /// `since`: `Ok(None)` when counted, `Ok(Some(window))` when refused.
    pub async fn rate_take(&self, key: &str, now: i64, since: i64, limit: i64) -> Result<Option<WindowCount>> {
        let taken = sqlx::query(
            "INSERT INTO rate_events (key, at) SELECT $1, $2 \
             WHERE (SELECT COUNT(*) FROM rate_events WHERE key = $1 AND at > $3) < $4",
        )
        .bind(key)
        .bind(now)
        .bind(since)
        .bind(limit)
        .execute(self.w())
        .await?;
        if taken.rows_affected() > 0 {
            return Ok(None);
        }
        Ok(Some(self.rate_window(key, since).await?))
    }

    /// Forgets events older than [`KEPT_MS`] before `now`: no window is longer.
    pub async fn rate_prune(&self, now: i64) -> Result<u64> {
        Ok(sqlx::query("DELETE FROM rate_events WHERE at < $1")
            .bind(now - KEPT_MS)
            .execute(self.w())
            .await?
            .rows_affected())
    }
}
