//! The connectors' durable outbox (issue #19, "no reply is lost").
//!
//! Two tables:
//! - `bot_replies`: the jobs a bot still owes an answer for. The connector
//!   writes the row right after the chat intake took a message in, before it
//!   moves the platform's cursor; a crash in between makes the platform
//!   deliver the message again, the intake reports it as a duplicate with the
//!   same job id, and the row is written then (idempotently).
//! - `deliveries`: one row per message to send. A finished job's reply is
//!   split into chunks, written as rows keyed `job:<id>:<chunk>` (unique per
//!   bot) and its `bot_replies` row removed, all in one transaction: a holder
//!   that takes a bot over and derives the same reply again writes nothing.
//!
//! The sender reads due rows in id order and marks each sent, retried (with
//! the time of its next attempt) or failed.

use super::{DbError, Result, Store, classify, sql};
use crate::clock::{now_ms, opt_rfc3339, to_rfc3339};
use crate::domain::delivery::{Delivery, DeliveryStatus, NewDelivery};

any_row! {
    /// A job a bot owes an answer for.
    #[derive(Debug, Clone, PartialEq)]
    pub struct OwedReply {
        pub bot_id: i64,
        pub job_id: i64,
        pub channel_id: String,
        pub reply_to: Option<String>,
        pub thread_id: Option<String>,
    }
}

any_row! {
    /// An owed reply whose job ended (or vanished).
    #[derive(Debug, Clone, PartialEq)]
    pub struct FinishedReply {
        pub job_id: i64,
        pub channel_id: String,
        pub reply_to: Option<String>,
        pub thread_id: Option<String>,
        /// `completed`, `failed`, `cancelled`; `None` when the job was deleted.
        pub status: Option<String>,
        pub result: Option<String>,
        pub error: Option<String>,
    }
}

any_row! {
    /// A delivery row as the sender needs it.
    #[derive(Debug, Clone, PartialEq)]
    pub struct DueDelivery {
        pub id: i64,
        pub channel_id: String,
        pub job_id: Option<i64>,
        pub chunk_index: i64,
        pub content: String,
        pub reply_to: Option<String>,
        pub thread_id: Option<String>,
        pub attempts: i64,
        pub next_attempt_at: i64,
    }
}

any_row! {
    struct DeliveryRow {
        id: i64,
        bot_id: i64,
        platform: String,
        channel_id: String,
        job_id: Option<i64>,
        chunk_index: i64,
        content: String,
        status: String,
        attempts: i64,
        last_error: Option<String>,
        platform_message_id: Option<String>,
        created_at: i64,
        updated_at: i64,
        next_attempt_at: i64,
        sent_at: Option<i64>,
    }
}

impl From<DeliveryRow> for Delivery {
    fn from(r: DeliveryRow) -> Delivery {
        let pending = r.status == "pending";
        Delivery {
            id: r.id,
            bot_id: r.bot_id,
            platform: r.platform,
            channel_id: r.channel_id,
            job_id: r.job_id,
            chunk_index: r.chunk_index,
            content: r.content,
            status: r.status,
            attempts: r.attempts,
            last_error: r.last_error,
            platform_message_id: r.platform_message_id,
            created_at: to_rfc3339(r.created_at),
            updated_at: to_rfc3339(r.updated_at),
            next_attempt_at: pending.then(|| to_rfc3339(r.next_attempt_at)),
            sent_at: opt_rfc3339(r.sent_at),
        }
    }
}

const DELIVERY_COLUMNS: &str = "id, bot_id, platform, channel_id, job_id, chunk_index, content, status, attempts, \
     last_error, platform_message_id, created_at, updated_at, next_attempt_at, sent_at";

/// What `PATCH /api/deliveries/{id}` `retry` found.
#[derive(Debug, Clone, PartialEq)]
pub enum RetryOutcome {
    Retried(Box<Delivery>),
    NotFound,
    /// Only failed deliveries are retried (a pending one is on its way, a sent one arrived).
    NotFailed(String),
}

impl Store {
    /// Records that `bot` owes the answer of `job` (idempotent).
    pub async fn owe_bot_reply(&self, owed: &OwedReply) -> Result<()> {
        sqlx::query(
            "INSERT INTO bot_replies (bot_id, job_id, channel_id, reply_to, thread_id, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (bot_id, job_id) DO NOTHING",
        )
        .bind(owed.bot_id)
        .bind(owed.job_id)
        .bind(&owed.channel_id)
        .bind(&owed.reply_to)
        .bind(&owed.thread_id)
        .bind(now_ms())
        .execute(self.w())
        .await
        .map_err(classify)?;
        Ok(())
    }

    /// Every reply the bot still owes (for typing indicators after a restart).
    pub async fn owed_bot_replies(&self, bot_id: i64) -> Result<Vec<OwedReply>> {
        Ok(sqlx::query_as(
            "SELECT bot_id, job_id, channel_id, reply_to, thread_id FROM bot_replies WHERE bot_id = $1 ORDER BY job_id",
        )
        .bind(bot_id)
        .fetch_all(self.r())
        .await?)
    }

    /// Owed replies whose job has ended, oldest first.
    pub async fn finished_bot_replies(&self, bot_id: i64, limit: i64) -> Result<Vec<FinishedReply>> {
        Ok(sqlx::query_as(
            "SELECT r.job_id, r.channel_id, r.reply_to, r.thread_id, j.status, j.result, j.error \
             FROM bot_replies r LEFT JOIN jobs j ON j.id = r.job_id \
             WHERE r.bot_id = $1 AND (j.id IS NULL OR j.status IN ('completed', 'failed', 'cancelled')) \
             ORDER BY r.job_id LIMIT $2 + 0",
        )
        .bind(bot_id)
        .bind(limit)
        .fetch_all(self.r())
        .await?)
    }

    /// Writes a finished job's deliveries and settles what the bot owed, in
    /// one transaction. Rows that exist already (another holder derived the
    /// same reply) are left as they are. Returns how many rows were new.
    pub async fn settle_bot_reply(&self, bot_id: i64, job_id: i64, rows: &[NewDelivery]) -> Result<u64> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let mut written = 0;
        for d in rows {
            written += insert_delivery(&mut tx, d, now).await?;
        }
        sqlx::query("DELETE FROM bot_replies WHERE bot_id = $1 AND job_id = $2")
            .bind(bot_id)
            .bind(job_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(written)
    }

    /// Writes one delivery (a notice); false when its key was written before.
    pub async fn enqueue_delivery(&self, d: &NewDelivery) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let n = insert_delivery(&mut tx, d, now_ms()).await?;
        tx.commit().await?;
        Ok(n == 1)
    }

    /// The bot's pending deliveries in id order (due or not: the sender keeps
    /// a channel's order by not sending past a row that is waiting).
    pub async fn pending_deliveries(&self, bot_id: i64, limit: i64) -> Result<Vec<DueDelivery>> {
        Ok(sqlx::query_as(
            "SELECT id, channel_id, job_id, chunk_index, content, reply_to, thread_id, attempts, next_attempt_at \
             FROM deliveries WHERE bot_id = $1 AND status = 'pending' ORDER BY id LIMIT $2 + 0",
        )
        .bind(bot_id)
        .bind(limit)
        .fetch_all(self.r())
        .await?)
    }

    pub async fn mark_delivery_sent(&self, id: i64, platform_message_id: Option<&str>) -> Result<()> {
        let now = now_ms();
        sqlx::query(
            "UPDATE deliveries SET status = 'sent', attempts = attempts + 1, platform_message_id = $1, \
             sent_at = $2, updated_at = $2 WHERE id = $3 AND status = 'pending'",
        )
        .bind(platform_message_id)
        .bind(now)
        .bind(id)
        .execute(self.w())
        .await?;
        Ok(())
    }

    /// A failed attempt that will be tried again at `next_attempt_at`.
    pub async fn mark_delivery_retry(&self, id: i64, error: &str, next_attempt_at: i64) -> Result<()> {
        sqlx::query(
            "UPDATE deliveries SET attempts = attempts + 1, last_error = $1, next_attempt_at = $2, updated_at = $3 \
             WHERE id = $4 AND status = 'pending'",
        )
        .bind(error)
        .bind(next_attempt_at)
        .bind(now_ms())
        .bind(id)
        .execute(self.w())
        .await?;
        Ok(())
    }

    /// A refusal for good (or the last attempt).
    pub async fn mark_delivery_failed(&self, id: i64, error: &str) -> Result<()> {
        sqlx::query(
            "UPDATE deliveries SET status = 'failed', attempts = attempts + 1, last_error = $1, updated_at = $2 \
             WHERE id = $3 AND status = 'pending'",
        )
        .bind(error)
        .bind(now_ms())
        .bind(id)
        .execute(self.w())
        .await?;
        Ok(())
    }

    /// Deliveries, newest first, optionally of one status and one bot.
    pub async fn list_deliveries(
        &self,
        status: Option<DeliveryStatus>,
        bot_id: Option<i64>,
        limit: i64,
    ) -> Result<Vec<Delivery>> {
        let rows: Vec<DeliveryRow> = sqlx::query_as(sql(format!(
            "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE ($1 = '' OR status = $1) AND ($2 = 0 OR bot_id = $2) \
             ORDER BY id DESC LIMIT $3 + 0"
        )))
        .bind(status.map(|s| s.as_str()).unwrap_or(""))
        .bind(bot_id.unwrap_or(0))
        .bind(limit)
        .fetch_all(self.r())
        .await?;
        Ok(rows.into_iter().map(Delivery::from).collect())
    }

    pub async fn get_delivery(&self, id: i64) -> Result<Option<Delivery>> {
        let row: Option<DeliveryRow> =
            sqlx::query_as(sql(format!("SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE id = $1")))
                .bind(id)
                .fetch_optional(self.r())
                .await?;
        Ok(row.map(Delivery::from))
    }

    /// Puts a failed delivery back in the queue, due now, attempts from zero.
    pub async fn retry_delivery(&self, id: i64) -> Result<RetryOutcome> {
        let now = now_ms();
        let done = sqlx::query(
            "UPDATE deliveries SET status = 'pending', attempts = 0, next_attempt_at = $1, updated_at = $1 \
             WHERE id = $2 AND status = 'failed'",
        )
        .bind(now)
        .bind(id)
        .execute(self.w())
        .await?;
        match self.get_delivery(id).await? {
            None => Ok(RetryOutcome::NotFound),
            Some(d) if done.rows_affected() == 1 => Ok(RetryOutcome::Retried(Box::new(d))),
            Some(d) => Ok(RetryOutcome::NotFailed(d.status)),
        }
    }

    /// How many deliveries a bot has in each state (tests, the dashboard).
    pub async fn delivery_counts(&self, bot_id: i64) -> Result<(i64, i64, i64)> {
        let row: (i64, i64, i64) = sqlx::query_as(
            "SELECT COALESCE(SUM(CASE WHEN status = 'pending' THEN 1 ELSE 0 END), 0), \
             COALESCE(SUM(CASE WHEN status = 'sent' THEN 1 ELSE 0 END), 0), \
             COALESCE(SUM(CASE WHEN status = 'failed' THEN 1 ELSE 0 END), 0) FROM deliveries WHERE bot_id = $1",
        )
        .bind(bot_id)
        .fetch_one(self.r())
        .await?;
        Ok(row)
    }
}

async fn insert_delivery(tx: &mut sqlx::Transaction<'static, sqlx::Any>, d: &NewDelivery, now: i64) -> Result<u64> {
    let done = sqlx::query(
        "INSERT INTO deliveries (bot_id, platform, channel_id, job_id, chunk_index, dedupe_key, content, reply_to, \
         thread_id, status, attempts, next_attempt_at, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'pending', 0, $10, $10, $10) \
         ON CONFLICT (bot_id, dedupe_key) DO NOTHING",
    )
    .bind(d.bot_id)
    .bind(&d.platform)
    .bind(&d.channel_id)
    .bind(d.job_id)
    .bind(d.chunk_index)
    .bind(&d.dedupe_key)
    .bind(&d.content)
    .bind(&d.reply_to)
    .bind(&d.thread_id)
    .bind(now)
    .execute(&mut **tx)
    .await
    .map_err(|e| match classify(e) {
        DbError::MissingReference(_) => DbError::NotFound,
        other => other,
    })?;
    Ok(done.rows_affected())
}
