//! Reads the dashboard's Conversations, Queue and Usage pages make besides the
//! REST API's own (gateway `dashboard/{conversations,queue,usage}.rs`): a
//! count to page the conversation list by, one conversation's header and one
//! page of its thread (a thread of 10 000 messages is not read whole to show
//! 100), the number of jobs in each status, and usage per time bucket for the
//! charts. The pages' numbers otherwise come from the API's methods
//! (`list_sessions`, `usage_report`, …), so the two cannot disagree.
//!
//! Kept apart from `dashboard.rs` (the overview's and agents' reads) so the
//! pages built in parallel each add to a file of their own.

use super::{Result, Store, sql};
use crate::clock::to_rfc3339;
use crate::domain::conversation::{ChatMessage, SessionSummary};

any_row! {
    /// How many jobs have one status.
    #[derive(Debug, Clone, PartialEq)]
    pub struct StatusCount {
        pub status: String,
        pub count: i64,
    }
}

any_row! {
    /// The usage of one time bucket (`bucket` = `created_at / bucket_ms`).
    #[derive(Debug, Clone, PartialEq)]
    pub struct UsageBucket {
        pub bucket: i64,
        pub requests: i64,
        pub input_tokens: i64,
        pub output_tokens: i64,
        /// The priced calls' cost, as `totalCostUsd` counts it.
        pub cost_usd: f64,
        pub unpriced_requests: i64,
    }
}

any_row! {
    struct HeaderRow {
        id: String,
        agent_id: i64,
        agent_name: String,
        platform: String,
        channel_id: String,
        message_count: i64,
        started_at: i64,
        last_message_at: i64,
    }
}

any_row! {
    struct MessageRow {
        role: String,
        content: String,
        created_at: i64,
    }
}

impl Store {
    /// How many conversations there are (`list_sessions` pages through them).
    pub async fn conversation_total(&self) -> Result<i64> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM conversations").fetch_one(self.r()).await?)
    }

    /// One conversation's header (agent, platform, channel, times, message
    /// count); `last_message` is left `None` — the thread shows it.
    pub async fn conversation_summary(&self, id: &str) -> Result<Option<SessionSummary>> {
        let row: Option<HeaderRow> = sqlx::query_as(
            "SELECT c.id, c.agent_id, a.name AS agent_name, c.platform, c.channel_id, \
             (SELECT COUNT(*) FROM messages m WHERE m.conversation_id = c.id) AS message_count, \
             c.started_at, c.last_message_at FROM conversations c JOIN agents a ON a.id = c.agent_id WHERE c.id = $1",
        )
        .bind(id)
        .fetch_optional(self.r())
        .await?;
        Ok(row.map(|r| SessionSummary {
            id: r.id,
            agent_id: r.agent_id,
            agent_name: r.agent_name,
            platform: r.platform,
            channel_id: r.channel_id,
            message_count: r.message_count,
            started_at: to_rfc3339(r.started_at),
            last_message_at: to_rfc3339(r.last_message_at),
            last_message: None,
        }))
    }

    /// One page of a conversation's messages, oldest first, as
    /// `thread_messages` orders them.
    pub async fn thread_page(&self, conversation_id: &str, limit: i64, offset: i64) -> Result<Vec<ChatMessage>> {
        let rows: Vec<MessageRow> = sqlx::query_as(
            "SELECT role, content, created_at FROM messages WHERE conversation_id = $1 ORDER BY id \
             LIMIT $2 + 0 OFFSET $3",
        )
        .bind(conversation_id)
        .bind(limit)
        .bind(offset)
        .fetch_all(self.r())
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| ChatMessage { role: r.role, content: r.content, created_at: to_rfc3339(r.created_at) })
            .collect())
    }

    /// Jobs per status; statuses without jobs are absent.
    pub async fn job_status_counts(&self) -> Result<Vec<StatusCount>> {
        Ok(sqlx::query_as("SELECT status, COUNT(*) AS count FROM jobs GROUP BY status ORDER BY status")
            .fetch_all(self.r())
            .await?)
    }

    /// Usage from `since_ms` on in buckets of `bucket_ms` (UTC hours or days
    /// counted from the epoch), oldest first; buckets without calls are
    /// absent. Same filter and sums as `usage_report`'s totals, so the buckets
    /// add up to them.
    pub async fn usage_series(&self, since_ms: i64, bucket_ms: i64) -> Result<Vec<UsageBucket>> {
        let bucket_ms = bucket_ms.max(1);
        // `bucket_ms` is a number made here, not outside text; integer
        // division on BIGINT is integer division in both dialects.
        Ok(sqlx::query_as(sql(format!(
            "SELECT created_at / {bucket_ms} AS bucket, COUNT(*) AS requests, \
             CAST(COALESCE(SUM(input_tokens), 0) AS BIGINT) AS input_tokens, \
             CAST(COALESCE(SUM(output_tokens), 0) AS BIGINT) AS output_tokens, \
             CAST(COALESCE(SUM(cost_usd), 0) AS DOUBLE PRECISION) AS cost_usd, \
             CAST(COALESCE(SUM(CASE WHEN cost_usd IS NULL THEN 1 ELSE 0 END), 0) AS BIGINT) AS unpriced_requests \
             FROM usage WHERE created_at >= $1 GROUP BY created_at / {bucket_ms} ORDER BY bucket"
        )))
        .bind(since_ms)
        .fetch_all(self.r())
        .await?)
    }
}
