//! Reads only the web dashboard makes (gateway `dashboard/`): the overview's
//! counters and activity chart, the newest messages across conversations, and
//! one agent's conversations with a count for paging. Everything else the
//! dashboard shows comes from the same `Store` methods the REST handlers use.

use super::{Result, Store};
use crate::clock::to_rfc3339;
use crate::domain::memory::MemoryEntry;

/// One day's length in milliseconds: the activity chart's bucket.
pub const DAY_MS: i64 = 86_400_000;

/// The overview's counters (besides the agent and queue counts of `/api/metrics`).
#[derive(Debug, Clone, PartialEq)]
pub struct OverviewCounts {
    /// Messages (any role) created at or after the `since` given.
    pub messages_since: i64,
    /// Jobs whose status is `failed`.
    pub failed_jobs: i64,
}

any_row! {
    /// Messages per UTC day: `day` is the day's number since the epoch (ms / 86 400 000).
    #[derive(Debug, Clone, PartialEq)]
    pub struct DayCount {
        pub day: i64,
        pub count: i64,
    }
}

/// A message with where it was said, newest first (the overview's last messages).
#[derive(Debug, Clone, PartialEq)]
pub struct RecentMessage {
    pub id: i64,
    pub conversation_id: String,
    pub agent_id: i64,
    pub agent_name: String,
    pub platform: String,
    pub role: String,
    pub content: String,
    pub created_at: String,
}

any_row! {
    struct RecentRow {
        id: i64,
        conversation_id: String,
        agent_id: i64,
        agent_name: String,
        platform: String,
        role: String,
        content: String,
        created_at: i64,
    }
}

/// One of an agent's conversations.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentConversation {
    pub id: String,
    pub platform: String,
    pub channel_id: String,
    pub status: String,
    pub message_count: i64,
    pub last_message_at: String,
}

any_row! {
    struct ConversationRow {
        id: String,
        platform: String,
        channel_id: String,
        status: String,
        message_count: i64,
        last_message_at: i64,
    }
}

any_row! {
    struct FactRow {
        id: i64,
        agent_id: i64,
        conversation_id: Option<String>,
        category: String,
        content: String,
        created_at: i64,
    }
}

impl Store {
    /// One page of an agent's memory facts, newest first, and how many it has
    /// (`GET /api/memory` stops at 1000; a page can go to the last).
    pub async fn agent_memory_page(&self, agent_id: i64, limit: i64, offset: i64) -> Result<(Vec<MemoryEntry>, i64)> {
        let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM memory_facts WHERE agent_id = $1")
            .bind(agent_id)
            .fetch_one(self.r())
            .await?;
        let rows: Vec<FactRow> = sqlx::query_as(
            "SELECT id, agent_id, conversation_id, category, content, created_at FROM memory_facts \
             WHERE agent_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2 + 0 OFFSET $3",
        )
        .bind(agent_id)
        .bind(limit)
        .bind(offset)
        .fetch_all(self.r())
        .await?;
        let facts = rows
            .into_iter()
            .map(|r| MemoryEntry {
                id: r.id,
                agent_id: r.agent_id,
                conversation_id: r.conversation_id,
                key: r.category,
                value: r.content,
                created_at: to_rfc3339(r.created_at),
            })
            .collect();
        Ok((facts, total))
    }

    /// The agent a memory fact belongs to; `None` when there is no such fact.
    pub async fn memory_fact_agent(&self, fact_id: i64) -> Result<Option<i64>> {
        Ok(sqlx::query_scalar("SELECT agent_id FROM memory_facts WHERE id = $1")
            .bind(fact_id)
            .fetch_optional(self.r())
            .await?)
    }

    /// Messages since `since_ms` and the failed-job count, in one round trip.
    pub async fn overview_counts(&self, since_ms: i64) -> Result<OverviewCounts> {
        let (messages_since, failed_jobs): (i64, i64) = sqlx::query_as(
            "SELECT (SELECT COUNT(*) FROM messages WHERE created_at >= $1), \
             (SELECT COUNT(*) FROM jobs WHERE status = 'failed')",
        )
        .bind(since_ms)
        .fetch_one(self.r())
        .await?;
        Ok(OverviewCounts { messages_since, failed_jobs })
    }

    /// Messages per UTC day from `since_ms` on, oldest day first; days without
    /// messages are absent (the chart fills them with zero).
    pub async fn messages_per_day(&self, since_ms: i64) -> Result<Vec<DayCount>> {
        // Integer division on BIGINT is integer division in both dialects.
        Ok(sqlx::query_as(
            "SELECT created_at / 86400000 AS day, COUNT(*) AS count FROM messages \
             WHERE created_at >= $1 GROUP BY created_at / 86400000 ORDER BY day",
        )
        .bind(since_ms)
        .fetch_all(self.r())
        .await?)
    }

    /// The newest `limit` messages of every conversation together.
    pub async fn recent_messages(&self, limit: i64) -> Result<Vec<RecentMessage>> {
        let rows: Vec<RecentRow> = sqlx::query_as(
            "SELECT m.id, m.conversation_id, c.agent_id, a.name AS agent_name, c.platform, m.role, m.content, \
             m.created_at FROM messages m JOIN conversations c ON c.id = m.conversation_id \
             JOIN agents a ON a.id = c.agent_id ORDER BY m.id DESC LIMIT $1 + 0",
        )
        .bind(limit)
        .fetch_all(self.r())
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| RecentMessage {
                id: r.id,
                conversation_id: r.conversation_id,
                agent_id: r.agent_id,
                agent_name: r.agent_name,
                platform: r.platform,
                role: r.role,
                content: r.content,
                created_at: to_rfc3339(r.created_at),
            })
            .collect())
    }

    /// An agent's conversations, newest activity first, and how many it has.
    pub async fn agent_conversations(
        &self,
        agent_id: i64,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<AgentConversation>, i64)> {
        let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM conversations WHERE agent_id = $1")
            .bind(agent_id)
            .fetch_one(self.r())
            .await?;
        let rows: Vec<ConversationRow> = sqlx::query_as(
            "SELECT id, platform, channel_id, status, message_count, last_message_at FROM conversations \
             WHERE agent_id = $1 ORDER BY last_message_at DESC, id DESC LIMIT $2 + 0 OFFSET $3",
        )
        .bind(agent_id)
        .bind(limit)
        .bind(offset)
        .fetch_all(self.r())
        .await?;
        let list = rows
            .into_iter()
            .map(|r| AgentConversation {
                id: r.id,
                platform: r.platform,
                channel_id: r.channel_id,
                status: r.status,
                message_count: r.message_count,
                last_message_at: to_rfc3339(r.last_message_at),
            })
            .collect();
        Ok((list, total))
    }
}
