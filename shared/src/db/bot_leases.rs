//! Bot leases: which bridge holds which bot (issue #19, "exactly one replica
//! holds a bot"), the bot's resume cursor, and the status its holder reports.
//!
//! A lease is a row (bot, holder, epoch, expiry) in the database — not NATS
//! KV, which Debian's nats-server 2.9 does not serve (PITFALLS.md). Taking a
//! lease is one conditional upsert: it succeeds when there is no row, the row
//! expired, or the caller already holds it; every new holder gets the next
//! epoch. Renewals, cursor writes, status writes and the release all name
//! (holder, epoch), so a holder that was paused past its expiry and then
//! wakes up changes nothing: its writes match no row and it learns it lost
//! the bot.

use super::{Result, Store, classify};
use crate::clock::now_ms;

/// A lease as taken: the epoch fences every later write of this holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    pub bot_id: i64,
    pub epoch: i64,
    /// Milliseconds since the epoch; the holder must not act past it.
    pub expires_at: i64,
    /// The resume point the previous holder left (JSON, platform-specific).
    pub cursor: Option<String>,
}

any_row! {
    struct HeldRow {
        epoch: i64,
        expires_at: i64,
        cursor: Option<String>,
    }
}

impl Store {
    /// Takes the bot's lease for `ttl_ms` when it is free, expired or already
    /// ours; `None` when another holder has it.
    pub async fn acquire_bot_lease(&self, bot_id: i64, holder: &str, ttl_ms: i64) -> Result<Option<Held>> {
        let now = now_ms();
        let row: Option<HeldRow> = sqlx::query_as(
            "INSERT INTO bot_leases (bot_id, holder, epoch, expires_at, acquired_at) VALUES ($1, $2, 1, $3, $4) \
             ON CONFLICT (bot_id) DO UPDATE SET holder = excluded.holder, epoch = bot_leases.epoch + 1, \
             expires_at = excluded.expires_at, acquired_at = excluded.acquired_at \
             WHERE bot_leases.expires_at < $4 OR bot_leases.holder = excluded.holder \
             RETURNING epoch, expires_at, cursor",
        )
        .bind(bot_id)
        .bind(holder)
        .bind(now + ttl_ms)
        .bind(now)
        .fetch_optional(self.w())
        .await
        .map_err(classify)?;
        Ok(row.map(|r| Held { bot_id, epoch: r.epoch, expires_at: r.expires_at, cursor: r.cursor }))
    }

    /// Extends a held lease; the new expiry, or `None` when it is no longer ours.
    pub async fn renew_bot_lease(&self, bot_id: i64, holder: &str, epoch: i64, ttl_ms: i64) -> Result<Option<i64>> {
        let expires_at = now_ms() + ttl_ms;
        let done = sqlx::query(
            "UPDATE bot_leases SET expires_at = $1 WHERE bot_id = $2 AND holder = $3 AND epoch = $4 \
             AND expires_at >= $5",
        )
        .bind(expires_at)
        .bind(bot_id)
        .bind(holder)
        .bind(epoch)
        .bind(now_ms())
        .execute(self.w())
        .await?;
        Ok((done.rows_affected() == 1).then_some(expires_at))
    }

    /// Gives the lease up at once (another bridge may take it on its next look).
    pub async fn release_bot_lease(&self, bot_id: i64, holder: &str, epoch: i64) -> Result<()> {
        sqlx::query("UPDATE bot_leases SET expires_at = 0 WHERE bot_id = $1 AND holder = $2 AND epoch = $3")
            .bind(bot_id)
            .bind(holder)
            .bind(epoch)
            .execute(self.w())
            .await?;
        Ok(())
    }

    /// Stores the resume cursor under the lease; false when the lease is no
    /// longer ours (the write was refused).
    pub async fn write_bot_cursor(&self, bot_id: i64, holder: &str, epoch: i64, cursor: &str) -> Result<bool> {
        let done = sqlx::query("UPDATE bot_leases SET cursor = $1 WHERE bot_id = $2 AND holder = $3 AND epoch = $4")
            .bind(cursor)
            .bind(bot_id)
            .bind(holder)
            .bind(epoch)
            .execute(self.w())
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Records what the holder of the bot reports; ignored when `epoch` is no
    /// longer the bot's (a stale holder cannot overwrite the new one's status).
    pub async fn set_bot_status(
        &self,
        bot_id: i64,
        holder: &str,
        epoch: i64,
        status: &str,
        last_error: Option<&str>,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE bots SET status = $1, last_error = $2, status_at = $3 WHERE id = $4 AND EXISTS \
             (SELECT 1 FROM bot_leases l WHERE l.bot_id = $4 AND l.holder = $5 AND l.epoch = $6)",
        )
        .bind(status)
        .bind(last_error)
        .bind(now_ms())
        .bind(bot_id)
        .bind(holder)
        .bind(epoch)
        .execute(self.w())
        .await?;
        Ok(())
    }

    /// The holder of a bot's live lease, if any (tests and the status shown by the API).
    pub async fn bot_lease_holder(&self, bot_id: i64) -> Result<Option<(String, i64)>> {
        let row: Option<(String, i64)> =
            sqlx::query_as("SELECT holder, epoch FROM bot_leases WHERE bot_id = $1 AND expires_at >= $2")
                .bind(bot_id)
                .bind(now_ms())
                .fetch_optional(self.r())
                .await?;
        Ok(row)
    }
}
