//! Bot instances and their channel bindings.

use std::collections::BTreeMap;

use sqlx::FromRow;

use super::{DbError, Flag, Result, Store, classify, sql};
use crate::clock::now_ms;
use crate::domain::bot::{Bot, BotFields, ChannelBinding};

#[derive(FromRow)]
struct BotRow {
    id: i64,
    name: String,
    platform: String,
    token: String,
    default_agent_id: Option<i64>,
    is_enabled: Flag,
}

#[derive(FromRow)]
struct BindingRow {
    bot_id: i64,
    channel_id: String,
    agent_id: i64,
}

const BOT_COLUMNS: &str = "id, name, platform, token, default_agent_id, is_enabled";

fn assemble(rows: Vec<BotRow>, bindings: Vec<BindingRow>) -> Vec<Bot> {
    let mut by_bot: BTreeMap<i64, Vec<ChannelBinding>> = BTreeMap::new();
    for b in bindings {
        by_bot.entry(b.bot_id).or_default().push(ChannelBinding { channel_id: b.channel_id, agent_id: b.agent_id });
    }
    rows.into_iter()
        .map(|r| Bot {
            channel_bindings: by_bot.remove(&r.id).unwrap_or_default(),
            id: r.id,
            name: r.name,
            platform: r.platform,
            token: r.token,
            default_agent_id: r.default_agent_id,
            is_enabled: r.is_enabled.0,
        })
        .collect()
}

/// A binding conflict names the channel bound elsewhere.
fn binding_conflict(e: sqlx::Error) -> DbError {
    match classify(e) {
        DbError::Conflict(_) => DbError::Conflict("a channel in channelBindings is already bound elsewhere".into()),
        other => other,
    }
}

impl Store {
    /// True when every id names an existing agent.
    pub async fn agents_exist(&self, ids: &[i64]) -> Result<bool> {
        if ids.is_empty() {
            return Ok(true);
        }
        let placeholders: Vec<String> = (1..=ids.len()).map(|i| format!("${i}")).collect();
        let text = format!("SELECT COUNT(*) FROM agents WHERE id IN ({})", placeholders.join(", "));
        let mut q = sqlx::query_scalar::<_, i64>(sql(text));
        for id in ids {
            q = q.bind(*id);
        }
        let n = q.fetch_one(self.r()).await?;
        Ok(n as usize == ids.len())
    }

    pub async fn list_bots(&self) -> Result<Vec<Bot>> {
        let rows: Vec<BotRow> =
            sqlx::query_as(sql(format!("SELECT {BOT_COLUMNS} FROM bots ORDER BY id"))).fetch_all(self.r()).await?;
        let bindings: Vec<BindingRow> = sqlx::query_as(
            "SELECT bot_id, channel_id, agent_id FROM channel_bindings WHERE bot_id IS NOT NULL ORDER BY id",
        )
        .fetch_all(self.r())
        .await?;
        Ok(assemble(rows, bindings))
    }

    pub async fn get_bot(&self, id: i64) -> Result<Option<Bot>> {
        let rows: Vec<BotRow> = sqlx::query_as(sql(format!("SELECT {BOT_COLUMNS} FROM bots WHERE id = $1")))
            .bind(id)
            .fetch_all(self.r())
            .await?;
        if rows.is_empty() {
            return Ok(None);
        }
        let bindings: Vec<BindingRow> =
            sqlx::query_as("SELECT bot_id, channel_id, agent_id FROM channel_bindings WHERE bot_id = $1 ORDER BY id")
                .bind(id)
                .fetch_all(self.r())
                .await?;
        Ok(assemble(rows, bindings).pop())
    }

    /// Inserts a bot with its bindings in one transaction. A channel already
    /// bound elsewhere is [`DbError::Conflict`]; a missing agent is
    /// [`DbError::MissingReference`].
    pub async fn create_bot(&self, f: &BotFields) -> Result<Bot> {
        let now = now_ms();
        let mut tx = self.w().begin().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO bots (name, platform, token, default_agent_id, is_enabled, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $6) RETURNING id",
        )
        .bind(&f.name)
        .bind(&f.platform)
        .bind(&f.token)
        .bind(f.default_agent_id)
        .bind(f.is_enabled)
        .bind(now)
        .fetch_one(&mut *tx)
        .await
        .map_err(classify)?;
        insert_bindings(&mut tx, id, f, now).await?;
        tx.commit().await?;
        self.get_bot(id).await?.ok_or(DbError::NotFound)
    }

    /// Replaces the bot's fields and bindings in one transaction; `None` when
    /// there is no such bot.
    pub async fn update_bot(&self, id: i64, f: &BotFields) -> Result<Option<Bot>> {
        let now = now_ms();
        let mut tx = self.w().begin().await?;
        let done = sqlx::query(
            "UPDATE bots SET name = $1, platform = $2, token = $3, default_agent_id = $4, is_enabled = $5, \
             updated_at = $6 WHERE id = $7",
        )
        .bind(&f.name)
        .bind(&f.platform)
        .bind(&f.token)
        .bind(f.default_agent_id)
        .bind(f.is_enabled)
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
        if done.rows_affected() == 0 {
            return Ok(None);
        }
        sqlx::query("DELETE FROM channel_bindings WHERE bot_id = $1").bind(id).execute(&mut *tx).await?;
        insert_bindings(&mut tx, id, f, now).await?;
        tx.commit().await?;
        self.get_bot(id).await
    }

    /// Deletes a bot (its bindings go with it); false when there was none.
    pub async fn delete_bot(&self, id: i64) -> Result<bool> {
        let done = sqlx::query("DELETE FROM bots WHERE id = $1").bind(id).execute(self.w()).await.map_err(classify)?;
        Ok(done.rows_affected() > 0)
    }
}

async fn insert_bindings(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    bot_id: i64,
    f: &BotFields,
    now: i64,
) -> Result<()> {
    for b in &f.channel_bindings {
        sqlx::query(
            "INSERT INTO channel_bindings (bot_id, platform, channel_id, agent_id, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(bot_id)
        .bind(&f.platform)
        .bind(&b.channel_id)
        .bind(b.agent_id)
        .bind(now)
        .execute(&mut **tx)
        .await
        .map_err(binding_conflict)?;
    }
    Ok(())
}
