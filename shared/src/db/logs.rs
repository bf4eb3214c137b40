//! Log lines kept for `GET /api/logs` (written in batches by [`crate::logs`]).

use sqlx::FromRow;

use super::{Result, Store};
use crate::clock::to_rfc3339;
use crate::domain::logs::{LogEntry, NewLogRow, level_num};

#[derive(FromRow)]
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

impl Store {
    /// Inserts a batch of log lines in one transaction.
    pub async fn insert_logs(&self, rows: &[NewLogRow]) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let mut tx = self.w().begin().await?;
        for r in rows {
            sqlx::query(
                "INSERT INTO logs (level, level_num, service, target, msg, fields, agent_id, job_id, duration_ms, \
                 created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .bind(&r.level)
            .bind(level_num(&r.level).unwrap_or(2))
            .bind(&r.service)
            .bind(&r.target)
            .bind(&r.msg)
            .bind(&r.fields)
            .bind(r.agent_id)
            .bind(r.job_id)
            .bind(r.duration_ms)
            .bind(r.created_at)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The newest lines at or above `min_level`, newest first.
    pub async fn list_logs(&self, min_level: i64, limit: i64) -> Result<Vec<LogEntry>> {
        let rows: Vec<LogRow> = sqlx::query_as(
            "SELECT level, msg, agent_id, job_id, duration_ms, created_at, service, target FROM logs \
             WHERE level_num >= $1 ORDER BY created_at DESC, id DESC LIMIT $2",
        )
        .bind(min_level)
        .bind(limit)
        .fetch_all(self.r())
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| LogEntry {
                level: r.level,
                msg: r.msg,
                agent_id: r.agent_id,
                job_id: r.job_id,
                duration_ms: r.duration_ms,
                time: to_rfc3339(r.created_at),
                service: r.service,
                target: r.target,
            })
            .collect())
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
