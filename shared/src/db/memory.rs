//! Memory facts (the API's "memory entries").

use super::{Result, Store, classify};
use crate::clock::{now_ms, to_rfc3339};
use crate::domain::memory::MemoryEntry;

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
    /// Facts, newest first, optionally of one agent (at most 1000).
    pub async fn list_memory(&self, agent_id: Option<i64>) -> Result<Vec<MemoryEntry>> {
        let rows: Vec<FactRow> = sqlx::query_as(
            "SELECT id, agent_id, conversation_id, category, content, created_at FROM memory_facts \
             WHERE ($1 IS NULL OR agent_id = $1) ORDER BY created_at DESC, id DESC LIMIT 1000",
        )
        .bind(agent_id)
        .fetch_all(self.r())
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| MemoryEntry {
                id: r.id,
                agent_id: r.agent_id,
                conversation_id: r.conversation_id,
                key: r.category,
                value: r.content,
                created_at: to_rfc3339(r.created_at),
            })
            .collect())
    }

    /// Stores a fact; the same (agent, category, content) is stored once.
    /// Returns the fact's id.
    pub async fn save_memory_fact(
        &self,
        agent_id: i64,
        conversation_id: Option<&str>,
        category: &str,
        content: &str,
    ) -> Result<i64> {
        sqlx::query(
            "INSERT INTO memory_facts (agent_id, conversation_id, category, content, created_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (agent_id, category, content) DO NOTHING",
        )
        .bind(agent_id)
        .bind(conversation_id)
        .bind(category)
        .bind(content)
        .bind(now_ms())
        .execute(self.w())
        .await
        .map_err(classify)?;
        Ok(sqlx::query_scalar("SELECT id FROM memory_facts WHERE agent_id = $1 AND category = $2 AND content = $3")
            .bind(agent_id)
            .bind(category)
            .bind(content)
            .fetch_one(self.w())
            .await?)
    }

    pub async fn delete_memory(&self, id: i64) -> Result<bool> {
        let done = sqlx::query("DELETE FROM memory_facts WHERE id = $1").bind(id).execute(self.w()).await?;
        Ok(done.rows_affected() > 0)
    }
}
