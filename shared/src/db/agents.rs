//! Agents.

use std::sync::Arc;

use super::{Flag, Result, Store, classify, from_json, sql, to_json};
use crate::clock::now_ms;
use crate::domain::agent::{Agent, AgentFields};

any_row! {
    struct AgentRow {
        id: i64,
        slug: String,
        name: String,
        role: String,
        description: String,
        model: String,
        system_prompt: String,
        allowed_tools: String,
        temperature: f64,
        max_tokens: i64,
        is_active: Flag,
        created_by: Option<String>,
        reasoning_effort: Option<String>,
        show_thinking: Flag,
    }
}

impl TryFrom<AgentRow> for Agent {
    type Error = super::DbError;
    fn try_from(r: AgentRow) -> Result<Agent> {
        Ok(Agent {
            id: r.id,
            allowed_tools: from_json("agents.allowed_tools", &r.allowed_tools)?,
            slug: r.slug,
            name: r.name,
            role: r.role,
            description: r.description,
            model: r.model,
            system_prompt: r.system_prompt,
            temperature: r.temperature,
            max_tokens: r.max_tokens,
            is_active: r.is_active.0,
            created_by: r.created_by,
            reasoning_effort: r.reasoning_effort,
            show_thinking: r.show_thinking.0,
        })
    }
}

const COLUMNS: &str = "id, slug, name, role, description, model, system_prompt, allowed_tools, \
                       temperature, max_tokens, is_active, created_by, reasoning_effort, show_thinking";

impl Store {
    /// Every agent, by id, from the read-through cache ([`super::cache`]): at
    /// most one database read per invalidation or TTL.
    pub async fn agents(&self) -> Result<Arc<Vec<Agent>>> {
        if let Some(agents) = self.agents.get() {
            return Ok(agents);
        }
        let generation = self.agents.generation();
        let rows: Vec<AgentRow> =
            sqlx::query_as(sql(format!("SELECT {COLUMNS} FROM agents ORDER BY id"))).fetch_all(self.r()).await?;
        let agents = Arc::new(rows.into_iter().map(Agent::try_from).collect::<Result<Vec<_>>>()?);
        self.agents.fill(generation, agents.clone());
        Ok(agents)
    }

    /// Every agent, by id (an owned copy of [`Store::agents`]).
    pub async fn list_agents(&self) -> Result<Vec<Agent>> {
        Ok(self.agents().await?.as_ref().clone())
    }

    /// One agent. Served from the cached list when it is there; an id the
    /// cache does not know is looked up in the database (it may have been
    /// created by another process a moment ago).
    pub async fn get_agent(&self, id: i64) -> Result<Option<Agent>> {
        if let Some(agent) = self.agents.get().and_then(|all| all.iter().find(|a| a.id == id).cloned()) {
            return Ok(Some(agent));
        }
        let row: Option<AgentRow> = sqlx::query_as(sql(format!("SELECT {COLUMNS} FROM agents WHERE id = $1")))
            .bind(id)
            .fetch_optional(self.r())
            .await?;
        row.map(Agent::try_from).transpose()
    }

    pub async fn get_agent_by_slug(&self, slug: &str) -> Result<Option<Agent>> {
        agent_by_slug(self.r(), slug).await
    }

    /// Inserts an agent; a duplicate slug is [`super::DbError::Conflict`].
    pub async fn create_agent(&self, f: &AgentFields) -> Result<Agent> {
        let agent = insert_agent(self.w(), f).await?;
        self.agents.invalidate();
        Ok(agent)
    }

    /// Replaces every editable field; `None` when the agent does not exist.
    pub async fn update_agent(&self, id: i64, f: &AgentFields) -> Result<Option<Agent>> {
        let agent = replace_agent(self.w(), id, f).await?;
        self.agents.invalidate();
        Ok(agent)
    }

    /// Deletes an agent with its conversations, memory, workflows and webhooks
    /// (cascades); usage rows keep their numbers with the agent cleared.
    /// Returns false when there was no such agent.
    pub async fn delete_agent(&self, id: i64) -> Result<bool> {
        let done =
            sqlx::query("DELETE FROM agents WHERE id = $1").bind(id).execute(self.w()).await.map_err(classify)?;
        self.agents.invalidate();
        Ok(done.rows_affected() > 0)
    }

    /// Inserts the agent unless its slug exists; returns the stored agent either way.
    /// Safe when several processes start at once.
    pub async fn ensure_agent(&self, f: &AgentFields) -> Result<Agent> {
        let now = now_ms();
        sqlx::query(
            "INSERT INTO agents (slug, name, role, description, model, system_prompt, allowed_tools, \
             temperature, max_tokens, is_active, created_by, created_at, updated_at, reasoning_effort, \
             show_thinking) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12, $13, $14) \
             ON CONFLICT (slug) DO NOTHING",
        )
        .bind(&f.slug)
        .bind(&f.name)
        .bind(&f.role)
        .bind(&f.description)
        .bind(&f.model)
        .bind(&f.system_prompt)
        .bind(to_json(&f.allowed_tools))
        .bind(f.temperature)
        .bind(f.max_tokens)
        .bind(f.is_active)
        .bind(&f.created_by)
        .bind(now)
        .bind(&f.reasoning_effort)
        .bind(f.show_thinking)
        .execute(self.w())
        .await
        .map_err(classify)?;
        self.agents.invalidate();
        self.get_agent_by_slug(&f.slug).await?.ok_or(super::DbError::NotFound)
    }
}

/// The agent of `slug`, read through `ex` (a pool or a transaction).
pub(crate) async fn agent_by_slug<'e>(
    ex: impl sqlx::Executor<'e, Database = sqlx::Any>,
    slug: &str,
) -> Result<Option<Agent>> {
    let row: Option<AgentRow> = sqlx::query_as(sql(format!("SELECT {COLUMNS} FROM agents WHERE slug = $1")))
        .bind(slug)
        .fetch_optional(ex)
        .await?;
    row.map(Agent::try_from).transpose()
}

/// [`Store::create_agent`]'s insert through `ex`; the caller invalidates the agent cache.
pub(crate) async fn insert_agent<'e>(
    ex: impl sqlx::Executor<'e, Database = sqlx::Any>,
    f: &AgentFields,
) -> Result<Agent> {
    let now = now_ms();
    let row: AgentRow = sqlx::query_as(sql(format!(
        "INSERT INTO agents (slug, name, role, description, model, system_prompt, allowed_tools, \
         temperature, max_tokens, is_active, created_by, created_at, updated_at, reasoning_effort, \
         show_thinking) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12, $13, $14) \
         RETURNING {COLUMNS}"
    )))
    .bind(&f.slug)
    .bind(&f.name)
    .bind(&f.role)
    .bind(&f.description)
    .bind(&f.model)
    .bind(&f.system_prompt)
    .bind(to_json(&f.allowed_tools))
    .bind(f.temperature)
    .bind(f.max_tokens)
    .bind(f.is_active)
    .bind(&f.created_by)
    .bind(now)
    .bind(&f.reasoning_effort)
    .bind(f.show_thinking)
    .fetch_one(ex)
    .await
    .map_err(classify)?;
    row.try_into()
}

/// [`Store::update_agent`]'s update through `ex`; the caller invalidates the agent cache.
pub(crate) async fn replace_agent<'e>(
    ex: impl sqlx::Executor<'e, Database = sqlx::Any>,
    id: i64,
    f: &AgentFields,
) -> Result<Option<Agent>> {
    let row: Option<AgentRow> = sqlx::query_as(sql(format!(
        "UPDATE agents SET slug = $1, name = $2, role = $3, description = $4, model = $5, \
         system_prompt = $6, allowed_tools = $7, temperature = $8, max_tokens = $9, is_active = $10, \
         updated_at = $11, reasoning_effort = $13, show_thinking = $14 WHERE id = $12 RETURNING {COLUMNS}"
    )))
    .bind(&f.slug)
    .bind(&f.name)
    .bind(&f.role)
    .bind(&f.description)
    .bind(&f.model)
    .bind(&f.system_prompt)
    .bind(to_json(&f.allowed_tools))
    .bind(f.temperature)
    .bind(f.max_tokens)
    .bind(f.is_active)
    .bind(now_ms())
    .bind(id)
    .bind(&f.reasoning_effort)
    .bind(f.show_thinking)
    .fetch_optional(ex)
    .await
    .map_err(classify)?;
    row.map(Agent::try_from).transpose()
}
