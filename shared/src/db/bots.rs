//! Bot instances and their channel bindings, the status their holder
//! reports, and the seeding of bots from the environment.

use std::collections::BTreeMap;

use super::{DbError, Flag, Result, Store, classify, sql};
use crate::clock::now_ms;
use crate::domain::bot::{Bot, BotFields, BotSettings, ChannelBinding};

any_row! {
    struct BotRow {
        id: i64,
        name: String,
        platform: String,
        token: String,
        default_agent_id: Option<i64>,
        is_enabled: Flag,
        status: String,
        last_error: Option<String>,
        /// JSON ([`BotSettings`]), written only by this module.
        settings: Option<String>,
        /// The expiry of the bot's lease (absent when no bridge ever held it).
        lease_expires_at: Option<i64>,
    }
}

any_row! {
    struct BindingRow {
        bot_id: i64,
        channel_id: String,
        agent_id: i64,
    }
}

/// The bot with the status its holder reported. A `running` bot whose lease
/// ran out (its bridge died) shows `stopped` until another bridge takes it.
const BOT_COLUMNS: &str = "b.id, b.name, b.platform, b.token, b.default_agent_id, b.is_enabled, b.status, \
     b.last_error, b.settings, l.expires_at AS lease_expires_at";
const BOT_FROM: &str = "bots b LEFT JOIN bot_leases l ON l.bot_id = b.id";

fn assemble(rows: Vec<BotRow>, bindings: Vec<BindingRow>) -> Vec<Bot> {
    let now = now_ms();
    let mut by_bot: BTreeMap<i64, Vec<ChannelBinding>> = BTreeMap::new();
    for b in bindings {
        by_bot.entry(b.bot_id).or_default().push(ChannelBinding { channel_id: b.channel_id, agent_id: b.agent_id });
    }
    rows.into_iter()
        .map(|r| {
            let held = r.lease_expires_at.is_some_and(|t| t >= now);
            let status = match r.status.as_str() {
                _ if !r.is_enabled.0 => "stopped",
                // A holder that died reported nothing more; an error stays visible.
                "running" if !held => "stopped",
                "running" => "running",
                "error" => "error",
                _ => "stopped",
            };
            (r, status.to_string())
        })
        .map(|(r, status)| Bot {
            status,
            last_error: r.last_error,
            settings: r.settings.as_deref().and_then(|s| serde_json::from_str::<BotSettings>(s).ok()),
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

/// The settings column's value: JSON, or NULL when there are none.
fn settings_json(f: &BotFields) -> Option<String> {
    f.settings.as_ref().and_then(|s| serde_json::to_string(s).ok())
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
        let rows: Vec<BotRow> = sqlx::query_as(sql(format!("SELECT {BOT_COLUMNS} FROM {BOT_FROM} ORDER BY b.id")))
            .fetch_all(self.r())
            .await?;
        let bindings: Vec<BindingRow> = sqlx::query_as(
            "SELECT bot_id, channel_id, agent_id FROM channel_bindings WHERE bot_id IS NOT NULL ORDER BY id",
        )
        .fetch_all(self.r())
        .await?;
        Ok(assemble(rows, bindings))
    }

    pub async fn get_bot(&self, id: i64) -> Result<Option<Bot>> {
        let rows: Vec<BotRow> = sqlx::query_as(sql(format!("SELECT {BOT_COLUMNS} FROM {BOT_FROM} WHERE b.id = $1")))
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
        let mut tx = self.begin_write().await?;
        check_token_free(&mut tx, f, None).await?;
        let id = insert_bot_row(&mut tx, f, now).await?;
        insert_bindings(&mut tx, id, f, now).await?;
        tx.commit().await?;
        self.get_bot(id).await?.ok_or(DbError::NotFound)
    }

    /// Replaces the bot's fields and bindings in one transaction; `None` when
    /// there is no such bot.
    pub async fn update_bot(&self, id: i64, f: &BotFields) -> Result<Option<Bot>> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        check_token_free(&mut tx, f, Some(id)).await?;
        let done = sqlx::query(
            "UPDATE bots SET name = $1, platform = $2, token = $3, default_agent_id = $4, is_enabled = $5, \
             updated_at = $6, settings = $8 WHERE id = $7",
        )
        .bind(&f.name)
        .bind(&f.platform)
        .bind(&f.token)
        .bind(f.default_agent_id)
        .bind(f.is_enabled)
        .bind(now)
        .bind(id)
        .bind(settings_json(f))
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

/// Two bots on one platform with one token variable would be one platform
/// account polled twice (Telegram answers the second poller with 409, and
/// n8n's second trigger silently stole the first one's updates): refused.
async fn check_token_free(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    f: &BotFields,
    id: Option<i64>,
) -> Result<()> {
    let taken: Option<i64> =
        sqlx::query_scalar("SELECT id FROM bots WHERE platform = $1 AND token = $2 AND id <> $3 LIMIT 1")
            .bind(&f.platform)
            .bind(&f.token)
            .bind(id.unwrap_or(0))
            .fetch_optional(&mut **tx)
            .await?;
    match taken {
        Some(other) => Err(DbError::Conflict(format!(
            "bot {other} already uses {} on {}: one bot per platform and token variable",
            f.token, f.platform
        ))),
        None => Ok(()),
    }
}

/// What [`Store::seed_bot`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum Seeded {
    /// Boxed: a bot is large next to the other variants.
    Created(Box<Bot>),
    /// A bot already uses this (platform, token variable).
    InUse,
    /// Seeded once before (the user may have deleted it since): left alone.
    SeededBefore,
}

impl Store {
    /// Creates the bot for a platform whose variables are set, once per
    /// (platform, token variable) for the life of the database.
    pub async fn seed_bot(&self, f: &BotFields) -> Result<Seeded> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let first = sqlx::query(
            "INSERT INTO bot_seeds (platform, token, seeded_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        )
        .bind(&f.platform)
        .bind(&f.token)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if !first {
            return Ok(Seeded::SeededBefore);
        }
        if check_token_free(&mut tx, f, None).await.is_err() {
            tx.commit().await?;
            return Ok(Seeded::InUse);
        }
        let id = insert_bot_row(&mut tx, f, now).await?;
        tx.commit().await?;
        Ok(self.get_bot(id).await?.map(|b| Seeded::Created(Box::new(b))).unwrap_or(Seeded::InUse))
    }
}

/// The bot's own row (bindings apart); its id.
async fn insert_bot_row(tx: &mut sqlx::Transaction<'static, sqlx::Any>, f: &BotFields, now: i64) -> Result<i64> {
    sqlx::query_scalar(
        "INSERT INTO bots (name, platform, token, default_agent_id, is_enabled, created_at, updated_at, settings) \
         VALUES ($1, $2, $3, $4, $5, $6, $6, $7) RETURNING id",
    )
    .bind(&f.name)
    .bind(&f.platform)
    .bind(&f.token)
    .bind(f.default_agent_id)
    .bind(f.is_enabled)
    .bind(now)
    .bind(settings_json(f))
    .fetch_one(&mut **tx)
    .await
    .map_err(classify)
}

async fn insert_bindings(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
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
