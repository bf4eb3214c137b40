//! Settings: key/value rows (`conductor_agent_id`, `default_model`).

use super::{Result, Store, classify};
use crate::clock::now_ms;
use crate::domain::agent::DEFAULT_MODEL;
use crate::domain::settings::{KEY_CONDUCTOR, KEY_DEFAULT_MODEL, Settings};

impl Store {
    pub async fn get_setting(&self, key: &str) -> Result<Option<String>> {
        Ok(sqlx::query_scalar("SELECT value FROM settings WHERE key = $1").bind(key).fetch_optional(self.r()).await?)
    }

    pub async fn set_setting(&self, key: &str, value: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO settings (key, value, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
        )
        .bind(key)
        .bind(value)
        .bind(now_ms())
        .execute(self.w())
        .await
        .map_err(classify)?;
        self.settings.invalidate();
        Ok(())
    }

    /// Sets a setting only when it has no value yet; returns the value in force.
    pub async fn init_setting(&self, key: &str, value: &str) -> Result<String> {
        sqlx::query("INSERT INTO settings (key, value, updated_at) VALUES ($1, $2, $3) ON CONFLICT (key) DO NOTHING")
            .bind(key)
            .bind(value)
            .bind(now_ms())
            .execute(self.w())
            .await
            .map_err(classify)?;
        self.settings.invalidate();
        Ok(self.get_setting(key).await?.unwrap_or_else(|| value.to_string()))
    }

    /// The settings, from the cache when it is current (see [`super::cache`]):
    /// every routed message asks who the conductor is.
    pub async fn settings(&self) -> Result<Settings> {
        if let Some(s) = self.settings.get().and_then(|all| all.first().cloned()) {
            return Ok(s);
        }
        let generation = self.settings.generation();
        let conductor = self.get_setting(KEY_CONDUCTOR).await?.and_then(|v| v.parse().ok());
        let default_model = self.get_setting(KEY_DEFAULT_MODEL).await?.unwrap_or_else(|| DEFAULT_MODEL.to_string());
        let settings = Settings { conductor_agent_id: conductor, default_model };
        self.settings.fill(generation, std::sync::Arc::new(vec![settings.clone()]));
        Ok(settings)
    }
}
