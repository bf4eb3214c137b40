//! The agent's working context as the worker reads and writes it while running
//! a job: memory facts and state for the system prompt, enabled skills for
//! matching, compaction summaries and the compaction transaction, and the
//! workflow rows the conductor's `[CREATE_CRON]` action creates.
//!
//! The REST endpoints for memory and skills keep their own methods elsewhere;
//! the names here are distinct on purpose (`prompt_memory`, `touch_facts`, …).

use super::args::query_as;
use super::queue::StoredMessage;
use super::{DbError, Flag, Result, Store, classify, from_json, sql};
use crate::clock::now_ms;

/// The category whose facts are always in the prompt.
pub const STICKY: &str = "sticky";

any_row! {
    /// A memory fact as the prompt builder sees it.
    #[derive(Debug, Clone, PartialEq)]
    pub struct PromptFact {
        pub id: i64,
        pub category: String,
        pub content: String,
        pub confidence: f64,
        pub access_count: i64,
        pub last_accessed: Option<i64>,
    }
}

/// The agent's memory as a prompt shows it ([`Store::prompt_memory`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PromptMemory {
    pub sticky: Vec<PromptFact>,
    pub facts: Vec<PromptFact>,
    pub state: Vec<(String, String)>,
}

/// An enabled skill with its triggers decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct MatchableSkill {
    pub id: i64,
    pub name: String,
    pub display_name: String,
    pub content: String,
    pub trigger_keywords: Vec<String>,
    pub trigger_patterns: Vec<String>,
    pub required_tools: Vec<String>,
}

any_row! {
    struct SkillRow {
        id: i64,
        name: String,
        display_name: String,
        content: String,
        trigger_keywords: String,
        trigger_patterns: String,
        required_tools: String,
        is_enabled: Flag,
    }
}

any_row! {
    /// A stored compaction summary.
    #[derive(Debug, Clone, PartialEq)]
    pub struct CompactionSummary {
        pub id: i64,
        pub summary: String,
        pub created_at: i64,
    }
}

/// A conversation's counters, its latest compaction and its messages after a
/// given id — what the worker's history cache needs to bring itself up to
/// date, read in one statement (one snapshot).
#[derive(Debug, Clone, PartialEq)]
pub struct ConversationTail {
    pub agent_id: i64,
    pub message_count: i64,
    pub total_tokens: i64,
    pub last_compaction_id: Option<i64>,
    /// Oldest first.
    pub messages: Vec<StoredMessage>,
}

any_row! {
    struct TailRow {
        agent_id: i64,
        message_count: i64,
        total_tokens: i64,
        last_compaction_id: Option<i64>,
        id: Option<i64>,
        role: Option<String>,
        content: Option<String>,
        token_estimate: Option<i64>,
        created_at: Option<i64>,
    }
}

/// What [`Store::store_compaction`] writes.
#[derive(Debug, Clone)]
pub struct CompactionWrite<'a> {
    pub conversation_id: &'a str,
    pub agent_id: i64,
    pub summary: &'a str,
    /// Every message of the conversation with an id up to and including this one is deleted.
    pub delete_through_id: i64,
}

/// What a compaction changed.
#[derive(Debug, Clone, PartialEq)]
pub struct CompactionDone {
    pub compaction_id: i64,
    pub messages_before: i64,
    pub messages_after: i64,
    pub tokens_saved: i64,
}

/// A workflow created by the conductor (already validated by the caller).
#[derive(Debug, Clone)]
pub struct ActionWorkflow {
    pub name: String,
    pub agent_id: i64,
    pub schedule: String,
    pub prompt: String,
    pub channel_id: Option<String>,
    pub platform: Option<String>,
    pub next_run_at: Option<i64>,
}

impl Store {
    /// What a prompt needs from the agent's memory — its sticky facts (oldest
    /// first), its top `limit` other facts (highest confidence first, then
    /// most recently used — never-used last — then newest) and its state (by
    /// key) — in two statements on one connection; on SQLite on the caller's
    /// thread ([`super::sqlite::hot`]).
    pub async fn prompt_memory(&self, agent_id: i64, limit: i64) -> Result<PromptMemory> {
        const FACTS: &str = "SELECT id, category, content, confidence, access_count, last_accessed FROM memory_facts \
             WHERE agent_id = $1 AND category = $2 \
             UNION ALL SELECT * FROM (SELECT id, category, content, confidence, access_count, last_accessed \
             FROM memory_facts WHERE agent_id = $1 AND category <> $2 \
             ORDER BY confidence DESC, COALESCE(last_accessed, 0) DESC, id DESC LIMIT $3 + 0) AS top";
        const STATE: &str = "SELECT key, value FROM memory_state WHERE agent_id = $1 ORDER BY key";
        let limit = limit.max(0);
        let (facts, state): (Vec<PromptFact>, Vec<(String, String)>) = match self.sqlite() {
            Some(lite) => lite.hot.read(|conn| {
                let facts = super::sqlite::all(conn, FACTS, &args![agent_id, STICKY, limit])?;
                Ok((facts, super::sqlite::all(conn, STATE, &args![agent_id])?))
            })?,
            None => {
                let mut conn = self.r().acquire().await?;
                let facts = query_as(FACTS, args![agent_id, STICKY, limit]).fetch_all(&mut *conn).await?;
                let state = query_as(STATE, args![agent_id]).fetch_all(&mut *conn).await?;
                (facts, state)
            }
        };
        // A union has no order of its own: put each part back in its order.
        let (mut sticky, mut top): (Vec<_>, Vec<_>) = facts.into_iter().partition(|f| f.category == STICKY);
        sticky.sort_by_key(|f| f.id);
        top.sort_by(|a, b| {
            b.confidence
                .total_cmp(&a.confidence)
                .then(b.last_accessed.unwrap_or(0).cmp(&a.last_accessed.unwrap_or(0)))
                .then(b.id.cmp(&a.id))
        });
        Ok(PromptMemory { sticky, facts: top, state })
    }

    /// Records that these facts were put in a prompt (access count + 1, last accessed = now).
    pub async fn touch_facts(&self, ids: &[i64]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let statement = format!(
            "UPDATE memory_facts SET access_count = access_count + 1, last_accessed = $1 WHERE id IN ({})",
            super::placeholders(2, ids.len())
        );
        let mut q = sqlx::query(sql(statement)).bind(now_ms());
        for id in ids {
            q = q.bind(*id);
        }
        q.execute(self.w()).await.map_err(classify)?;
        Ok(())
    }

    /// Every enabled skill, by id, from the read-through cache
    /// ([`super::cache`]). Rows whose JSON columns do not decode are skipped.
    pub async fn skills_for_matching(&self) -> Result<std::sync::Arc<Vec<MatchableSkill>>> {
        if let Some(skills) = self.skills.get() {
            return Ok(skills);
        }
        let generation = self.skills.generation();
        let rows: Vec<SkillRow> = sqlx::query_as(
            "SELECT id, name, display_name, content, trigger_keywords, trigger_patterns, required_tools, is_enabled \
             FROM skills ORDER BY id",
        )
        .fetch_all(self.r())
        .await?;
        let mut out = Vec::new();
        for r in rows.into_iter().filter(|r| r.is_enabled.0) {
            // One broken row must not break every prompt: it is skipped and logged.
            let decoded = (|| -> Result<(Vec<String>, Vec<String>, Vec<String>)> {
                Ok((
                    from_json("skills.trigger_keywords", &r.trigger_keywords)?,
                    from_json("skills.trigger_patterns", &r.trigger_patterns)?,
                    from_json("skills.required_tools", &r.required_tools)?,
                ))
            })();
            match decoded {
                Ok((trigger_keywords, trigger_patterns, required_tools)) => out.push(MatchableSkill {
                    trigger_keywords,
                    trigger_patterns,
                    required_tools,
                    id: r.id,
                    name: r.name,
                    display_name: r.display_name,
                    content: r.content,
                }),
                Err(e) => tracing::warn!(skill = %r.name, error = %e, "skill row has invalid triggers; skipped"),
            }
        }
        let out = std::sync::Arc::new(out);
        self.skills.fill(generation, out.clone());
        Ok(out)
    }

    /// Saves a fact; the same (agent, category, content) is not stored twice —
    /// saving it again restores full confidence and marks it as just used.
    /// Returns the fact's id.
    pub async fn save_fact(
        &self,
        agent_id: i64,
        category: &str,
        content: &str,
        conversation_id: Option<&str>,
    ) -> Result<i64> {
        upsert_fact(self.w(), agent_id, category, content, conversation_id).await
    }

    /// Sets (or replaces) one state value of the agent.
    pub async fn set_state(&self, agent_id: i64, key: &str, value: &str) -> Result<()> {
        upsert_state(self.w(), agent_id, key, value).await
    }

    /// The last `limit` compaction summaries of a conversation, oldest first.
    pub async fn compaction_summaries(&self, conversation_id: &str, limit: i64) -> Result<Vec<CompactionSummary>> {
        let mut rows: Vec<CompactionSummary> = sqlx::query_as(
            "SELECT id, summary, created_at FROM compactions WHERE conversation_id = $1 ORDER BY id DESC LIMIT $2 + 0",
        )
        .bind(conversation_id)
        .bind(limit.max(0))
        .fetch_all(self.r())
        .await?;
        rows.reverse();
        Ok(rows)
    }

    /// The conversation's counters and latest compaction with its messages
    /// whose id is above `after_id` (0: all of them); `None` when the
    /// conversation does not exist.
    pub async fn conversation_tail(&self, conversation_id: &str, after_id: i64) -> Result<Option<ConversationTail>> {
        const TAIL: &str = "SELECT c.agent_id, c.message_count, c.total_tokens, \
             (SELECT MAX(k.id) FROM compactions k WHERE k.conversation_id = c.id) AS last_compaction_id, \
             m.id, m.role, m.content, m.token_estimate, m.created_at \
             FROM conversations c LEFT JOIN messages m ON m.conversation_id = c.id AND m.id > $2 \
             WHERE c.id = $1 ORDER BY m.id";
        let rows: Vec<TailRow> = match self.sqlite() {
            Some(lite) => lite.hot.all(TAIL, &args![conversation_id, after_id])?,
            None => query_as(TAIL, args![conversation_id, after_id]).fetch_all(self.r()).await?,
        };
        let Some(first) = rows.first() else { return Ok(None) };
        let mut tail = ConversationTail {
            agent_id: first.agent_id,
            message_count: first.message_count,
            total_tokens: first.total_tokens,
            last_compaction_id: first.last_compaction_id,
            messages: Vec::with_capacity(rows.len()),
        };
        for r in rows {
            // The one row of a conversation without newer messages has no message columns.
            if let (Some(id), Some(role), Some(content), Some(token_estimate), Some(created_at)) =
                (r.id, r.role, r.content, r.token_estimate, r.created_at)
            {
                tail.messages.push(StoredMessage { id, role, content, token_estimate, created_at });
            }
        }
        Ok(Some(tail))
    }

    /// In one transaction: deletes the conversation's messages up to
    /// `delete_through_id`, records the summary in `compactions`, and resets the
    /// conversation's message count and token total to what remains.
    pub async fn store_compaction(&self, c: &CompactionWrite<'_>) -> Result<CompactionDone> {
        let now = now_ms();
        let mut tx = self.w().begin().await?;
        let (before, tokens_before): (i64, i64) = sqlx::query_as(
            "SELECT COUNT(*), CAST(COALESCE(SUM(token_estimate), 0) AS BIGINT) FROM messages WHERE conversation_id = $1",
        )
        .bind(c.conversation_id)
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM messages WHERE conversation_id = $1 AND id <= $2")
            .bind(c.conversation_id)
            .bind(c.delete_through_id)
            .execute(&mut *tx)
            .await?;
        let (after, tokens_after): (i64, i64) = sqlx::query_as(
            "SELECT COUNT(*), CAST(COALESCE(SUM(token_estimate), 0) AS BIGINT) FROM messages WHERE conversation_id = $1",
        )
        .bind(c.conversation_id)
        .fetch_one(&mut *tx)
        .await?;
        let tokens_saved = tokens_before - tokens_after;
        let compaction_id: i64 = sqlx::query_scalar(
            "INSERT INTO compactions (conversation_id, agent_id, summary, messages_before, messages_after, \
             tokens_saved, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        )
        .bind(c.conversation_id)
        .bind(c.agent_id)
        .bind(c.summary)
        .bind(before)
        .bind(after)
        .bind(tokens_saved)
        .bind(now)
        .fetch_one(&mut *tx)
        .await
        .map_err(classify)?;
        let updated = sqlx::query("UPDATE conversations SET message_count = $1, total_tokens = $2 WHERE id = $3")
            .bind(after)
            .bind(tokens_after)
            .bind(c.conversation_id)
            .execute(&mut *tx)
            .await?;
        if updated.rows_affected() == 0 {
            tx.rollback().await?;
            return Err(DbError::NotFound);
        }
        tx.commit().await?;
        Ok(CompactionDone { compaction_id, messages_before: before, messages_after: after, tokens_saved })
    }

    /// How many workflows exist (tests and diagnostics).
    pub async fn count_workflows_for_agent(&self, agent_id: i64) -> Result<i64> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM workflows WHERE agent_id = $1")
            .bind(agent_id)
            .fetch_one(self.r())
            .await?)
    }
}

/// [`Store::save_fact`] through `ex` (a pool or a transaction).
pub(crate) async fn upsert_fact<'e>(
    ex: impl sqlx::Executor<'e, Database = sqlx::Any>,
    agent_id: i64,
    category: &str,
    content: &str,
    conversation_id: Option<&str>,
) -> Result<i64> {
    let now = now_ms();
    sqlx::query_scalar(
        "INSERT INTO memory_facts (agent_id, conversation_id, category, content, confidence, access_count, \
         last_accessed, created_at) VALUES ($1, $2, $3, $4, 1.0, 0, $5, $5) \
         ON CONFLICT (agent_id, category, content) DO UPDATE SET confidence = 1.0, last_accessed = $5 \
         RETURNING id",
    )
    .bind(agent_id)
    .bind(conversation_id)
    .bind(category)
    .bind(content)
    .bind(now)
    .fetch_one(ex)
    .await
    .map_err(classify)
}

/// [`Store::set_state`] through `ex`.
pub(crate) async fn upsert_state<'e>(
    ex: impl sqlx::Executor<'e, Database = sqlx::Any>,
    agent_id: i64,
    key: &str,
    value: &str,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO memory_state (agent_id, key, value, updated_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (agent_id, key) DO UPDATE SET value = $3, updated_at = $4",
    )
    .bind(agent_id)
    .bind(key)
    .bind(value)
    .bind(now_ms())
    .execute(ex)
    .await
    .map_err(classify)?;
    Ok(())
}

impl From<&ActionWorkflow> for crate::domain::workflow::WorkflowFields {
    /// The conductor's workflow as the API would create it: enabled, no budgets.
    fn from(w: &ActionWorkflow) -> Self {
        crate::domain::workflow::WorkflowFields {
            name: w.name.clone(),
            agent_id: w.agent_id,
            schedule: w.schedule.clone(),
            prompt: w.prompt.clone(),
            channel_id: w.channel_id.clone(),
            platform: w.platform.clone(),
            is_enabled: true,
            next_run_at: w.next_run_at,
            daily_budget_usd: None,
            monthly_budget_usd: None,
        }
    }
}
