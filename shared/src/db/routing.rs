//! The reads the routing chain ([`crate::routing`]) needs, the channel binding
//! write that sets one up, and the channel history a reconnecting chat client
//! replays (`resume`).

use super::{Flag, Result, Store, classify};
use crate::clock::now_ms;
use crate::routing::{AgentRef, ChannelBinding};

any_row! {
    struct AgentRefRow {
        id: i64,
        slug: String,
        name: String,
        role: String,
        is_active: Flag,
    }
}

impl From<AgentRefRow> for AgentRef {
    fn from(r: AgentRefRow) -> AgentRef {
        AgentRef { id: r.id, slug: r.slug, name: r.name, role: r.role, is_active: r.is_active.0 }
    }
}

any_row! {
    /// A stored message of a channel, with the conversation it belongs to.
    #[derive(Debug, Clone, PartialEq)]
    pub struct ChannelMessage {
        pub id: i64,
        pub conversation_id: String,
        pub agent_id: i64,
        pub role: String,
        pub content: String,
        pub job_id: Option<i64>,
        pub created_at: i64,
    }
}

impl Store {
    /// The agent bound to (platform, channel), if any.
    pub async fn channel_binding(&self, platform: &str, channel_id: &str) -> Result<Option<ChannelBinding>> {
        let row: Option<(i64, String)> = sqlx::query_as(
            "SELECT agent_id, permissions FROM channel_bindings WHERE platform = $1 AND channel_id = $2",
        )
        .bind(platform)
        .bind(channel_id)
        .fetch_optional(self.r())
        .await?;
        Ok(row.map(|(agent_id, permissions)| ChannelBinding { agent_id, permissions }))
    }

    /// Binds (platform, channel) to an agent, replacing an earlier binding of
    /// that channel. An unknown agent is [`super::DbError::MissingReference`].
    pub async fn bind_channel(&self, platform: &str, channel_id: &str, agent_id: i64, permissions: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO channel_bindings (platform, channel_id, agent_id, permissions, created_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (platform, channel_id) \
             DO UPDATE SET agent_id = excluded.agent_id, permissions = excluded.permissions",
        )
        .bind(platform)
        .bind(channel_id)
        .bind(agent_id)
        .bind(permissions)
        .bind(now_ms())
        .execute(self.w())
        .await
        .map_err(classify)?;
        Ok(())
    }

    /// One agent's routing facts.
    /// Served from the cached agent list ([`super::cache`]); an id it does not
    /// know is looked up in the database (created by another process a moment ago).
    pub async fn agent_ref(&self, id: i64) -> Result<Option<AgentRef>> {
        if let Some(agent) = self.agents().await?.iter().find(|a| a.id == id) {
            return Ok(Some(agent_ref(agent)));
        }
        let row: Option<AgentRefRow> =
            sqlx::query_as("SELECT id, slug, name, role, is_active FROM agents WHERE id = $1")
                .bind(id)
                .fetch_optional(self.r())
                .await?;
        Ok(row.map(AgentRef::from))
    }

    /// Every active agent, in id order (mention matching, conductor fallback).
    /// From the cached agent list (kept in id order).
    pub async fn active_agent_refs(&self) -> Result<Vec<AgentRef>> {
        Ok(self.agents().await?.iter().filter(|a| a.is_active).map(agent_ref).collect())
    }

    /// Messages stored in the conversations of (platform, channel) after
    /// message id `after`, oldest first, at most `limit`.
    pub async fn channel_messages_after(
        &self,
        platform: &str,
        channel_id: &str,
        after: i64,
        limit: i64,
    ) -> Result<Vec<ChannelMessage>> {
        Ok(sqlx::query_as(
            "SELECT m.id, m.conversation_id, c.agent_id, m.role, m.content, m.job_id, m.created_at \
             FROM messages m JOIN conversations c ON c.id = m.conversation_id \
             WHERE c.platform = $1 AND c.channel_id = $2 AND m.id > $3 ORDER BY m.id LIMIT $4 + 0",
        )
        .bind(platform)
        .bind(channel_id)
        .bind(after)
        .bind(limit)
        .fetch_all(self.r())
        .await?)
    }
}

fn agent_ref(a: &crate::domain::agent::Agent) -> AgentRef {
    AgentRef { id: a.id, slug: a.slug.clone(), name: a.name.clone(), role: a.role.clone(), is_active: a.is_active }
}
