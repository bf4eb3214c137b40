//! API keys of the `/v1` API (issue 21): only the key's SHA-256 is stored.
//!
//! Authentication reads the row by hash on every request — one indexed read,
//! no cache — so a key deleted or disabled through any gateway replica is
//! refused by all of them from the next request on. `last_used_at` is
//! written only when the stored value is older than [`TOUCH_EVERY_MS`], so a
//! busy key costs one write a minute, not one per request.

use super::{Flag, Result, Store, classify, from_json, sql, to_json};
use crate::domain::api_key::{ApiKey, ApiKeyFields};

/// How stale `last_used_at` may get before a request writes it again.
pub const TOUCH_EVERY_MS: i64 = 60_000;

any_row! {
    struct ApiKeyRow {
        id: i64,
        name: String,
        prefix: String,
        agents: Option<String>,
        monthly_budget_usd: Option<f64>,
        expires_at: Option<i64>,
        is_enabled: Flag,
        last_used_at: Option<i64>,
        created_at: i64,
    }
}

impl TryFrom<ApiKeyRow> for ApiKey {
    type Error = super::DbError;
    fn try_from(r: ApiKeyRow) -> Result<ApiKey> {
        Ok(ApiKey {
            id: r.id,
            name: r.name,
            prefix: r.prefix,
            agents: r.agents.as_deref().map(|a| from_json("api_keys.agents", a)).transpose()?,
            monthly_budget_usd: r.monthly_budget_usd,
            expires_at: r.expires_at,
            is_enabled: r.is_enabled.0,
            last_used_at: r.last_used_at,
            created_at: r.created_at,
        })
    }
}

const COLUMNS: &str = "id, name, prefix, agents, monthly_budget_usd, expires_at, is_enabled, last_used_at, created_at";

impl Store {
    /// Stores a new key by its hash.
    pub async fn create_api_key(&self, f: &ApiKeyFields, prefix: &str, key_hash: &str, now: i64) -> Result<ApiKey> {
        let row: ApiKeyRow = sqlx::query_as(sql(format!(
            "INSERT INTO api_keys (name, prefix, key_hash, agents, monthly_budget_usd, expires_at, is_enabled, \
             created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) RETURNING {COLUMNS}"
        )))
        .bind(&f.name)
        .bind(prefix)
        .bind(key_hash)
        .bind(f.agents.as_ref().map(to_json))
        .bind(f.monthly_budget_usd)
        .bind(f.expires_at)
        .bind(f.is_enabled)
        .bind(now)
        .fetch_one(self.w())
        .await
        .map_err(classify)?;
        row.try_into()
    }

    pub async fn api_keys(&self) -> Result<Vec<ApiKey>> {
        let rows: Vec<ApiKeyRow> =
            sqlx::query_as(sql(format!("SELECT {COLUMNS} FROM api_keys ORDER BY id"))).fetch_all(self.r()).await?;
        rows.into_iter().map(ApiKey::try_from).collect()
    }

    pub async fn api_key(&self, id: i64) -> Result<Option<ApiKey>> {
        let row: Option<ApiKeyRow> = sqlx::query_as(sql(format!("SELECT {COLUMNS} FROM api_keys WHERE id = $1")))
            .bind(id)
            .fetch_optional(self.r())
            .await?;
        row.map(ApiKey::try_from).transpose()
    }

    /// The key whose SHA-256 (hex) is `key_hash`, enabled or not.
    pub async fn api_key_by_hash(&self, key_hash: &str) -> Result<Option<ApiKey>> {
        let row: Option<ApiKeyRow> = sqlx::query_as(sql(format!("SELECT {COLUMNS} FROM api_keys WHERE key_hash = $1")))
            .bind(key_hash)
            .fetch_optional(self.r())
            .await?;
        row.map(ApiKey::try_from).transpose()
    }

    /// Replaces the editable fields; `None` when there is no such key.
    pub async fn update_api_key(&self, id: i64, f: &ApiKeyFields, now: i64) -> Result<Option<ApiKey>> {
        let row: Option<ApiKeyRow> = sqlx::query_as(sql(format!(
            "UPDATE api_keys SET name = $1, agents = $2, monthly_budget_usd = $3, expires_at = $4, \
             is_enabled = $5, updated_at = $6 WHERE id = $7 RETURNING {COLUMNS}"
        )))
        .bind(&f.name)
        .bind(f.agents.as_ref().map(to_json))
        .bind(f.monthly_budget_usd)
        .bind(f.expires_at)
        .bind(f.is_enabled)
        .bind(now)
        .bind(id)
        .fetch_optional(self.w())
        .await
        .map_err(classify)?;
        row.map(ApiKey::try_from).transpose()
    }

    /// Revokes a key; false when there was none.
    pub async fn delete_api_key(&self, id: i64) -> Result<bool> {
        let done =
            sqlx::query("DELETE FROM api_keys WHERE id = $1").bind(id).execute(self.w()).await.map_err(classify)?;
        Ok(done.rows_affected() > 0)
    }

    /// Records a use of the key when the stored `last_used_at` is older than
    /// [`TOUCH_EVERY_MS`]. The caller checks the value it read first and
    /// calls this only when it is stale; the condition in SQL keeps two
    /// replicas from both writing within the same minute.
    pub async fn touch_api_key(&self, id: i64, now: i64) -> Result<()> {
        sqlx::query(
            "UPDATE api_keys SET last_used_at = $1 WHERE id = $2 AND (last_used_at IS NULL OR last_used_at < $3)",
        )
        .bind(now)
        .bind(id)
        .bind(now - TOUCH_EVERY_MS)
        .execute(self.w())
        .await
        .map_err(classify)?;
        Ok(())
    }
}

impl Store {
    /// When each agent was created (ms), for `/v1/models`' `created`.
    pub async fn agent_creation_times(&self) -> Result<std::collections::HashMap<i64, i64>> {
        let rows: Vec<(i64, i64)> = sqlx::query_as("SELECT id, created_at FROM agents").fetch_all(self.r()).await?;
        Ok(rows.into_iter().collect())
    }
}
