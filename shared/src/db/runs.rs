//! What an agent run needs from the database besides the queue: the accounts
//! it may call (with their rate limits and counters) and the usage rows it
//! writes, one per provider call.
//!
//! Method names are deliberately distinct from the account CRUD of the API
//! (`accounts.rs`): the worker only reads usable accounts and updates their
//! run-time state.

use super::{Flag, Result, Store, classify};
use crate::clock::now_ms;

/// An account as the worker sees it. The key itself is never stored: `api_key_env`
/// names the environment variable holding it.
#[derive(Debug, Clone, PartialEq)]
pub struct AccountRow {
    pub id: i64,
    pub name: String,
    pub kind: String,
    pub provider: String,
    pub model: String,
    pub base_url: Option<String>,
    pub api_key_env: Option<String>,
    pub priority: i64,
    pub is_active: bool,
    pub rate_limited_until: Option<i64>,
    pub retry_count: i64,
    pub total_messages: i64,
}

any_row! {
    struct Row {
        id: i64,
        name: String,
        kind: String,
        provider: String,
        model: String,
        base_url: Option<String>,
        api_key_env: Option<String>,
        priority: i64,
        is_active: Flag,
        rate_limited_until: Option<i64>,
        retry_count: i64,
        total_messages: i64,
    }
}

/// An account row in [`COLUMNS`] order, as the SQLite hot read gets it.
fn account_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<AccountRow> {
    Ok(AccountRow {
        id: r.get(0)?,
        name: r.get(1)?,
        kind: r.get(2)?,
        provider: r.get(3)?,
        model: r.get(4)?,
        base_url: r.get(5)?,
        api_key_env: r.get(6)?,
        priority: r.get(7)?,
        is_active: r.get(8)?,
        rate_limited_until: r.get(9)?,
        retry_count: r.get(10)?,
        total_messages: r.get(11)?,
    })
}

impl From<Row> for AccountRow {
    fn from(r: Row) -> AccountRow {
        AccountRow {
            id: r.id,
            name: r.name,
            kind: r.kind,
            provider: r.provider,
            model: r.model,
            base_url: r.base_url,
            api_key_env: r.api_key_env,
            priority: r.priority,
            is_active: r.is_active.0,
            rate_limited_until: r.rate_limited_until,
            retry_count: r.retry_count,
            total_messages: r.total_messages,
        }
    }
}

const COLUMNS: &str = "id, name, type AS kind, provider, model, base_url, api_key_env, priority, is_active, \
                       rate_limited_until, retry_count, total_messages";

any_row! {
    /// A stored usage row (tests, reports).
    #[derive(Debug, Clone, PartialEq)]
    pub struct UsageRow {
        pub id: i64,
        pub account_id: Option<i64>,
        pub agent_id: Option<i64>,
        pub conversation_id: Option<String>,
        pub job_id: Option<i64>,
        pub provider: String,
        pub model: String,
        pub input_tokens: i64,
        pub output_tokens: i64,
        /// `None`: the model is unpriced.
        pub cost_usd: Option<f64>,
        pub duration_ms: i64,
        pub created_at: i64,
        pub cache_read_tokens: i64,
        pub cache_write_tokens: i64,
    }
}

impl Store {
    /// Accounts that may be called now: active and not rate-limited (or limited
    /// until a time already past), optionally of one provider; by priority,
    /// then the fewest messages sent (spreads load over equal accounts).
    pub async fn usable_accounts(&self, provider: Option<&str>, now: i64) -> Result<Vec<AccountRow>> {
        let statement = format!(
            "SELECT {COLUMNS} FROM accounts WHERE is_active AND (rate_limited_until IS NULL \
             OR rate_limited_until <= $1) {} ORDER BY priority, total_messages, id",
            if provider.is_some() { "AND provider = $2" } else { "" }
        );
        let hot = self.hot_read(|conn| {
            let mut params: Vec<(&str, &dyn rusqlite::ToSql)> = vec![("$1", &now)];
            if let Some(p) = &provider {
                params.push(("$2", p));
            }
            let mut accounts = conn.prepare_cached(&statement)?;
            Ok(accounts.query_map(&params[..], account_row)?.collect::<rusqlite::Result<Vec<_>>>()?)
        });
        if let Some(rows) = hot {
            return rows;
        }
        let mut query = sqlx::query_as::<_, Row>(super::sql(statement)).bind(now);
        if let Some(p) = provider {
            query = query.bind(p);
        }
        Ok(query.fetch_all(self.r()).await?.into_iter().map(AccountRow::from).collect())
    }

    /// Every account with its run-time state, by priority (whether usable or not).
    pub async fn account_rows(&self) -> Result<Vec<AccountRow>> {
        let rows: Vec<Row> =
            sqlx::query_as(super::sql(format!("SELECT {COLUMNS} FROM accounts ORDER BY priority, id")))
                .fetch_all(self.r())
                .await?;
        Ok(rows.into_iter().map(AccountRow::from).collect())
    }

    /// The earliest time a currently rate-limited active account becomes usable again.
    pub async fn earliest_rate_limit_end(&self, now: i64) -> Result<Option<i64>> {
        Ok(sqlx::query_scalar(
            "SELECT MIN(rate_limited_until) FROM accounts WHERE is_active AND rate_limited_until > $1",
        )
        .bind(now)
        .fetch_one(self.r())
        .await?)
    }

    /// The account answered 429/overloaded: unusable until `until_ms`; counts the strike.
    pub async fn mark_rate_limited(&self, id: i64, until_ms: i64) -> Result<()> {
        sqlx::query(
            "UPDATE accounts SET rate_limited_until = $1, retry_count = retry_count + 1, updated_at = $2 WHERE id = $3",
        )
        .bind(until_ms)
        .bind(now_ms())
        .bind(id)
        .execute(self.w())
        .await
        .map_err(classify)?;
        Ok(())
    }

    /// The account answered: clear its limit and strikes, count the message.
    pub async fn record_account_success(&self, id: i64) -> Result<()> {
        super::queue::account_success(self.w(), id, now_ms()).await
    }

    /// The usage rows of one job, oldest first.
    pub async fn usage_for_job(&self, job_id: i64) -> Result<Vec<UsageRow>> {
        Ok(sqlx::query_as(
            "SELECT id, account_id, agent_id, conversation_id, job_id, provider, model, input_tokens, output_tokens, \
             cost_usd, duration_ms, created_at, cache_read_tokens, cache_write_tokens FROM usage \
             WHERE job_id = $1 ORDER BY id",
        )
        .bind(job_id)
        .fetch_all(self.r())
        .await?)
    }
}
