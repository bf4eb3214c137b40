//! Inbound webhook deliveries: look a webhook up by its path, and accept one
//! delivery — replay record, job and trigger statistics in one transaction.
//!
//! Replay protection: a delivery id (GitHub's `X-GitHub-Delivery`, or
//! `X-Webhook-Id`) is inserted into `webhook_deliveries` with `ON CONFLICT DO
//! NOTHING` as the transaction's first statement; when nothing was inserted the
//! id was seen before and the transaction is rolled back without a job. Two
//! concurrent deliveries of the same id meet on the primary key: one inserts,
//! the other waits for it and then inserts nothing.

use super::queue::insert_job;
use super::{Flag, Result, Store, classify};
use crate::domain::job::NewJob;

/// A webhook as the inbound endpoint needs it. `secret` is a credential: never log it.
#[derive(Clone)]
pub struct InboundWebhook {
    pub id: i64,
    pub agent_id: i64,
    pub path: String,
    pub secret: Option<String>,
    pub prompt_template: String,
    pub channel_id: Option<String>,
    pub platform: Option<String>,
    pub is_enabled: bool,
}

any_row! {
    struct InboundRow {
        id: i64,
        agent_id: i64,
        path: String,
        secret: Option<String>,
        prompt_template: String,
        channel_id: Option<String>,
        platform: Option<String>,
        is_enabled: Flag,
    }
}

impl From<InboundRow> for InboundWebhook {
    fn from(r: InboundRow) -> InboundWebhook {
        InboundWebhook {
            id: r.id,
            agent_id: r.agent_id,
            path: r.path,
            secret: r.secret,
            prompt_template: r.prompt_template,
            channel_id: r.channel_id,
            platform: r.platform,
            is_enabled: r.is_enabled.0,
        }
    }
}

impl std::fmt::Debug for InboundWebhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InboundWebhook")
            .field("id", &self.id)
            .field("agent_id", &self.agent_id)
            .field("path", &self.path)
            .field("secret", &self.secret.as_ref().map(|_| "[REDACTED]"))
            .field("is_enabled", &self.is_enabled)
            .finish_non_exhaustive()
    }
}

/// One accepted delivery.
#[derive(Debug, Clone)]
pub struct Delivery<'a> {
    pub webhook_id: i64,
    /// The sender's delivery id, when it sent one.
    pub delivery_id: Option<&'a str>,
    pub job: &'a NewJob,
    pub now: i64,
}

/// What became of a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryOutcome {
    Enqueued {
        job_id: i64,
    },
    /// The delivery id was accepted before: nothing was written.
    Duplicate,
}

impl Store {
    /// The webhook served at `path` (stored with or without a leading `/` or
    /// `/webhook/`), enabled or not.
    pub async fn webhook_by_path(&self, path: &str) -> Result<Option<InboundWebhook>> {
        let bare = path.trim_start_matches('/');
        let row: Option<InboundRow> = sqlx::query_as(
            "SELECT id, agent_id, path, secret, prompt_template, channel_id, platform, is_enabled FROM webhooks \
             WHERE path IN ($1, $2, $3) ORDER BY id LIMIT 1",
        )
        .bind(bare)
        .bind(format!("/{bare}"))
        .bind(format!("/webhook/{bare}"))
        .fetch_optional(self.r())
        .await?;
        Ok(row.map(InboundWebhook::from))
    }

    /// Records the delivery id, enqueues the job and bumps the webhook's trigger
    /// statistics — one transaction; a delivery id seen before writes nothing.
    pub async fn accept_webhook_delivery(&self, d: &Delivery<'_>) -> Result<DeliveryOutcome> {
        let mut tx = self.w().begin().await?;
        if let Some(delivery_id) = d.delivery_id {
            let inserted = sqlx::query(
                "INSERT INTO webhook_deliveries (webhook_id, delivery_id, received_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (webhook_id, delivery_id) DO NOTHING",
            )
            .bind(d.webhook_id)
            .bind(delivery_id)
            .bind(d.now)
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
            if inserted.rows_affected() == 0 {
                tx.rollback().await?;
                return Ok(DeliveryOutcome::Duplicate);
            }
        }
        let mut job = d.job.clone();
        job.webhook_id = Some(d.webhook_id);
        let job_id = insert_job(&mut *tx, &job, d.now).await?;
        sqlx::query("UPDATE webhooks SET trigger_count = trigger_count + 1, last_triggered_at = $1 WHERE id = $2")
            .bind(d.now)
            .bind(d.webhook_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(DeliveryOutcome::Enqueued { job_id })
    }

    /// Forgets delivery ids received before `before` (ms); returns how many.
    pub async fn prune_webhook_deliveries(&self, before: i64) -> Result<u64> {
        Ok(sqlx::query("DELETE FROM webhook_deliveries WHERE received_at < $1")
            .bind(before)
            .execute(self.w())
            .await
            .map_err(classify)?
            .rows_affected())
    }
}
