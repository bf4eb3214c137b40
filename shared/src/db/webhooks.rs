//! Webhooks (management side).

use super::{Flag, Result, Store, classify, sql};
use crate::clock::{now_ms, opt_rfc3339};
use crate::domain::webhook::{Webhook, WebhookFields};

any_row! {
    struct WebhookRow {
        id: i64,
        name: String,
        path: String,
        agent_id: i64,
        secret: Option<String>,
        prompt_template: String,
        channel_id: Option<String>,
        platform: Option<String>,
        is_enabled: Flag,
        last_triggered_at: Option<i64>,
        trigger_count: i64,
    }
}

impl WebhookRow {
    fn into_parts(self) -> (Webhook, String) {
        (
            Webhook {
                id: self.id,
                name: self.name,
                url: format!("/webhook/{}", self.path),
                secret: self.secret,
                agent_id: self.agent_id,
                is_enabled: self.is_enabled.0,
                prompt_template: self.prompt_template,
                channel_id: self.channel_id,
                platform: self.platform,
                trigger_count: self.trigger_count,
                last_triggered_at: opt_rfc3339(self.last_triggered_at),
            },
            self.path,
        )
    }
}

const WH_COLUMNS: &str = "id, name, path, agent_id, secret, prompt_template, channel_id, platform, is_enabled, \
                          last_triggered_at, trigger_count";

impl Store {
    pub async fn list_webhooks(&self) -> Result<Vec<Webhook>> {
        let rows: Vec<WebhookRow> =
            sqlx::query_as(sql(format!("SELECT {WH_COLUMNS} FROM webhooks ORDER BY id"))).fetch_all(self.r()).await?;
        Ok(rows.into_iter().map(|r| r.into_parts().0).collect())
    }

    /// A webhook with its path.
    pub async fn get_webhook(&self, id: i64) -> Result<Option<(Webhook, String)>> {
        let row: Option<WebhookRow> = sqlx::query_as(sql(format!("SELECT {WH_COLUMNS} FROM webhooks WHERE id = $1")))
            .bind(id)
            .fetch_optional(self.w())
            .await?;
        Ok(row.map(WebhookRow::into_parts))
    }

    /// Inserts a webhook; a duplicate path is [`super::DbError::Conflict`].
    pub async fn create_webhook(&self, f: &WebhookFields) -> Result<Webhook> {
        let row: WebhookRow = sqlx::query_as(sql(format!(
            "INSERT INTO webhooks (name, path, agent_id, secret, prompt_template, channel_id, platform, is_enabled, \
             created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9) RETURNING {WH_COLUMNS}"
        )))
        .bind(&f.name)
        .bind(&f.path)
        .bind(f.agent_id)
        .bind(&f.secret)
        .bind(&f.prompt_template)
        .bind(&f.channel_id)
        .bind(&f.platform)
        .bind(f.is_enabled)
        .bind(now_ms())
        .fetch_one(self.w())
        .await
        .map_err(classify)?;
        Ok(row.into_parts().0)
    }

    pub async fn update_webhook(&self, id: i64, f: &WebhookFields) -> Result<Option<Webhook>> {
        let row: Option<WebhookRow> = sqlx::query_as(sql(format!(
            "UPDATE webhooks SET name = $1, path = $2, agent_id = $3, secret = $4, prompt_template = $5, \
             channel_id = $6, platform = $7, is_enabled = $8, updated_at = $9 WHERE id = $10 RETURNING {WH_COLUMNS}"
        )))
        .bind(&f.name)
        .bind(&f.path)
        .bind(f.agent_id)
        .bind(&f.secret)
        .bind(&f.prompt_template)
        .bind(&f.channel_id)
        .bind(&f.platform)
        .bind(f.is_enabled)
        .bind(now_ms())
        .bind(id)
        .fetch_optional(self.w())
        .await
        .map_err(classify)?;
        Ok(row.map(|r| r.into_parts().0))
    }

    pub async fn delete_webhook(&self, id: i64) -> Result<bool> {
        let done = sqlx::query("DELETE FROM webhooks WHERE id = $1").bind(id).execute(self.w()).await?;
        Ok(done.rows_affected() > 0)
    }
}
