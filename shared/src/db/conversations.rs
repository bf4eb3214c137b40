//! Conversations and messages: sessions for the API, storage for the worker.

use super::{Result, Store, classify};
use crate::clock::{now_ms, to_rfc3339};
use crate::domain::conversation::{ChatMessage, ConversationThread, SessionSummary};

any_row! {
    struct SessionRow {
        id: String,
        agent_id: i64,
        agent_name: String,
        platform: String,
        channel_id: String,
        message_count: i64,
        started_at: i64,
        last_message_at: i64,
        last_message: Option<String>,
    }
}

any_row! {
    struct MessageRow {
        role: String,
        content: String,
        created_at: i64,
    }
}

impl From<MessageRow> for ChatMessage {
    fn from(r: MessageRow) -> ChatMessage {
        ChatMessage { role: r.role, content: r.content, created_at: to_rfc3339(r.created_at) }
    }
}

fn new_conversation_id() -> String {
    format!("conv_{}", hex::encode(rand::random::<[u8; 8]>()))
}

impl Store {
    /// Starts a conversation; returns its id (`conv_<16 hex>`).
    pub async fn create_conversation(
        &self,
        agent_id: i64,
        platform: &str,
        channel_id: &str,
        user_id: Option<&str>,
        user_name: Option<&str>,
    ) -> Result<String> {
        let id = new_conversation_id();
        let now = now_ms();
        sqlx::query(
            "INSERT INTO conversations (id, agent_id, platform, channel_id, user_id, user_name, status, \
             message_count, total_tokens, started_at, last_message_at) \
             VALUES ($1, $2, $3, $4, $5, $6, 'active', 0, 0, $7, $7)",
        )
        .bind(&id)
        .bind(agent_id)
        .bind(platform)
        .bind(channel_id)
        .bind(user_id)
        .bind(user_name)
        .bind(now)
        .execute(self.w())
        .await
        .map_err(classify)?;
        Ok(id)
    }

    /// Appends a message and advances the conversation's counters, in one
    /// transaction (the same write the queue does for chat messages). Returns
    /// the message id. A second assistant reply for the same `job_id` is
    /// [`super::DbError::Conflict`]; an unknown conversation is [`super::DbError::MissingReference`].
    pub async fn append_message(
        &self,
        conversation_id: &str,
        role: &str,
        content: &str,
        job_id: Option<i64>,
    ) -> Result<i64> {
        let mut tx = self.w().begin().await?;
        let id = super::queue::insert_message(&mut tx, conversation_id, role, content, job_id, now_ms()).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Recent conversations, newest activity first, with their agent's name,
    /// message count and last message — one query.
    pub async fn list_sessions(&self, limit: i64, offset: i64) -> Result<Vec<SessionSummary>> {
        let rows: Vec<SessionRow> = sqlx::query_as(
            "SELECT c.id, c.agent_id, a.name AS agent_name, c.platform, c.channel_id, \
             (SELECT COUNT(*) FROM messages m WHERE m.conversation_id = c.id) AS message_count, \
             c.started_at, c.last_message_at, \
             (SELECT m2.content FROM messages m2 WHERE m2.conversation_id = c.id ORDER BY m2.id DESC LIMIT 1) \
               AS last_message \
             FROM conversations c JOIN agents a ON a.id = c.agent_id \
             ORDER BY c.last_message_at DESC, c.id DESC LIMIT $1 + 0 OFFSET $2",
        )
        .bind(limit)
        .bind(offset)
        .fetch_all(self.r())
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| SessionSummary {
                id: r.id,
                agent_id: r.agent_id,
                agent_name: r.agent_name,
                platform: r.platform,
                channel_id: r.channel_id,
                message_count: r.message_count,
                started_at: to_rfc3339(r.started_at),
                last_message_at: to_rfc3339(r.last_message_at),
                last_message: r.last_message,
            })
            .collect())
    }

    /// Messages of a conversation in order, as the API shows them.
    pub async fn thread_messages(&self, conversation_id: &str) -> Result<Vec<ChatMessage>> {
        let rows: Vec<MessageRow> =
            sqlx::query_as("SELECT role, content, created_at FROM messages WHERE conversation_id = $1 ORDER BY id")
                .bind(conversation_id)
                .fetch_all(self.r())
                .await?;
        Ok(rows.into_iter().map(ChatMessage::from).collect())
    }

    /// Ends a conversation: the next message on its channel opens a new one.
    /// Returns false when no active conversation had this id.
    pub async fn close_conversation(&self, id: &str) -> Result<bool> {
        let done = sqlx::query("UPDATE conversations SET status = 'closed' WHERE id = $1 AND status = 'active'")
            .bind(id)
            .execute(self.w())
            .await
            .map_err(classify)?;
        Ok(done.rows_affected() > 0)
    }

    /// A conversation's whole thread; `None` when it does not exist.
    pub async fn get_conversation_thread(&self, id: &str) -> Result<Option<ConversationThread>> {
        let agent_name: Option<String> =
            sqlx::query_scalar("SELECT a.name FROM conversations c JOIN agents a ON a.id = c.agent_id WHERE c.id = $1")
                .bind(id)
                .fetch_optional(self.r())
                .await?;
        let Some(agent_name) = agent_name else { return Ok(None) };
        let messages = self.thread_messages(id).await?;
        Ok(Some(ConversationThread { id: id.to_string(), agent_name, messages }))
    }

    /// The newest conversation of an agent on a platform and channel.
    pub async fn latest_conversation(&self, agent_id: i64, platform: &str, channel_id: &str) -> Result<Option<String>> {
        Ok(sqlx::query_scalar(
            "SELECT id FROM conversations WHERE agent_id = $1 AND platform = $2 AND channel_id = $3 \
             ORDER BY started_at DESC, id DESC LIMIT 1",
        )
        .bind(agent_id)
        .bind(platform)
        .bind(channel_id)
        .fetch_optional(self.r())
        .await?)
    }
}
