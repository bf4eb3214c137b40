//! LLM accounts. Discovered from the environment at start and upserted by
//! name; the API may change priority, activity and model only.

use super::{Result, Store, classify};
use crate::clock::now_ms;
use crate::config::AccountSpec;

impl Store {
    /// Creates or refreshes an account discovered from the environment. The
    /// environment is the source of credentials, model and priority (as in the
    /// original); activity and usage counters are kept.
    pub async fn upsert_account(&self, a: &AccountSpec) -> Result<()> {
        let now = now_ms();
        sqlx::query(
            "INSERT INTO accounts (name, type, provider, model, base_url, api_key_env, priority, created_at, updated_at) \
             VALUES ($1, 'api_key', $2, $3, $4, $5, $6, $7, $7) \
             ON CONFLICT (name) DO UPDATE SET provider = excluded.provider, model = excluded.model, \
             base_url = excluded.base_url, api_key_env = excluded.api_key_env, priority = excluded.priority, \
             updated_at = excluded.updated_at",
        )
        .bind(&a.name)
        .bind(&a.provider)
        .bind(&a.model)
        .bind(&a.base_url)
        .bind(&a.api_key_env)
        .bind(a.priority)
        .bind(now)
        .execute(self.w())
        .await
        .map_err(classify)?;
        Ok(())
    }
}
