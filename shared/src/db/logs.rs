//! Log lines kept for `GET /api/logs` (written in batches by [`crate::logs`]).

use super::{Result, Store};
use crate::clock::to_rfc3339;
use crate::domain::logs::{LogEntry, NewLogRow, level_num};

any_row! {
    struct LogRow {
        level: String,
        msg: String,
        agent_id: Option<i64>,
        job_id: Option<i64>,
        duration_ms: Option<i64>,
        created_at: i64,
        service: String,
        target: String,
    }
}

impl From<LogRow> for LogEntry {
    fn from(r: LogRow) -> LogEntry {
        LogEntry {
            level: r.level,
            msg: r.msg,
            agent_id: r.agent_id,
            job_id: r.job_id,
            duration_ms: r.duration_ms,
            time: to_rfc3339(r.created_at),
            service: r.service,
            target: r.target,
        }
    }
}

impl Store {
    /// Inserts a batch of log lines, up to [`LOG_ROWS_PER_STATEMENT`] rows a
    /// statement (one transaction when there are more).
    ///
    /// One statement per line held the single SQLite write connection across a
    /// round trip per line — a 200-line batch kept every chat's writes waiting
    /// (chat-overhead's p99 went to hundreds of milliseconds in some runs).
    pub async fn insert_logs(&self, rows: &[NewLogRow]) -> Result<()> {
        match rows.len() {
            0 => Ok(()),
            n if n <= LOG_ROWS_PER_STATEMENT => insert_log_rows(&mut *self.w().acquire().await?, rows).await,
            _ => {
                let mut tx = self.w().begin().await?;
                for chunk in rows.chunks(LOG_ROWS_PER_STATEMENT) {
                    insert_log_rows(&mut tx, chunk).await?;
                }
                tx.commit().await?;
                Ok(())
            }
        }
    }

    /// The newest lines at or above `min_level`, newest first.
    pub async fn list_logs(&self, min_level: i64, limit: i64) -> Result<Vec<LogEntry>> {
        let rows: Vec<LogRow> = sqlx::query_as(
            "SELECT level, msg, agent_id, job_id, duration_ms, created_at, service, target FROM logs \
             WHERE level_num >= $1 ORDER BY created_at DESC, id DESC LIMIT $2 + 0",
        )
        .bind(min_level)
        .bind(limit)
        .fetch_all(self.r())
        .await?;
        Ok(rows.into_iter().map(LogEntry::from).collect())
    }

    /// One page of the lines at or above `min_level`, newest first, and how
    /// many there are (the dashboard's log pages; `list_logs` stops at 1000).
    pub async fn logs_page(&self, min_level: i64, limit: i64, offset: i64) -> Result<(Vec<LogEntry>, i64)> {
        let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM logs WHERE level_num >= $1")
            .bind(min_level)
            .fetch_one(self.r())
            .await?;
        let rows: Vec<LogRow> = sqlx::query_as(
            "SELECT level, msg, agent_id, job_id, duration_ms, created_at, service, target FROM logs \
             WHERE level_num >= $1 ORDER BY created_at DESC, id DESC LIMIT $2 + 0 OFFSET $3",
        )
        .bind(min_level)
        .bind(limit)
        .bind(offset)
        .fetch_all(self.r())
        .await?;
        Ok((rows.into_iter().map(LogEntry::from).collect(), total))
    }

    /// Keeps the newest `keep` lines. Returns how many were deleted.
    pub async fn prune_logs(&self, keep: i64) -> Result<u64> {
        let done = sqlx::query("DELETE FROM logs WHERE id <= (SELECT id FROM logs ORDER BY id DESC LIMIT 1 OFFSET $1)")
            .bind(keep)
            .execute(self.w())
            .await?;
        Ok(done.rows_affected())
    }
}

/// Rows per multi-row log INSERT (10 parameters each: well under both
/// databases' parameter limits).
pub const LOG_ROWS_PER_STATEMENT: usize = 100;

async fn insert_log_rows(conn: &mut sqlx::AnyConnection, rows: &[NewLogRow]) -> Result<()> {
    let values: Vec<String> = (0..rows.len()).map(|i| format!("({})", super::placeholders(i * 10 + 1, 10))).collect();
    let statement = format!(
        "INSERT INTO logs (level, level_num, service, target, msg, fields, agent_id, job_id, duration_ms, created_at) \
         VALUES {}",
        values.join(", ")
    );
    // Not kept in the connection's statement cache: each batch size is its own text.
    let mut q = sqlx::query(super::sql(statement)).persistent(false);
    for r in rows {
        q = q
            .bind(&r.level)
            .bind(level_num(&r.level).unwrap_or(2))
            .bind(&r.service)
            .bind(&r.target)
            .bind(&r.msg)
            .bind(&r.fields)
            .bind(r.agent_id)
            .bind(r.job_id)
            .bind(r.duration_ms)
            .bind(r.created_at);
    }
    q.execute(conn).await?;
    Ok(())
}
