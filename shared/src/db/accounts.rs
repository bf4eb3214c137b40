//! LLM accounts. Discovered from the environment at start and upserted by
//! name; the API may change priority, activity and model only.

use super::{Flag, Result, Store, classify};
use crate::clock::{now_ms, opt_rfc3339};
use crate::config::AccountSpec;
use crate::domain::account::{Account, AccountPatch};

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

any_row! {
    struct AccountRow {
        id: i64,
        name: String,
        kind: String => "type",
        provider: String,
        model: String,
        base_url: Option<String>,
        priority: i64,
        is_active: Flag,
        rate_limited_until: Option<i64>,
    }
}

impl From<AccountRow> for Account {
    fn from(r: AccountRow) -> Account {
        Account {
            id: r.id,
            name: r.name,
            kind: r.kind,
            provider: r.provider,
            model: r.model,
            base_url: r.base_url,
            priority: r.priority,
            is_active: r.is_active.0,
            rate_limited_until: opt_rfc3339(r.rate_limited_until),
        }
    }
}

const ACCOUNT_COLUMNS: &str = "id, name, type, provider, model, base_url, priority, is_active, rate_limited_until";

impl Store {
    /// Accounts by priority (lowest first), then name. Never the key.
    pub async fn list_accounts(&self) -> Result<Vec<Account>> {
        let rows: Vec<AccountRow> =
            sqlx::query_as(super::sql(format!("SELECT {ACCOUNT_COLUMNS} FROM accounts ORDER BY priority, name")))
                .fetch_all(self.r())
                .await?;
        Ok(rows.into_iter().map(Account::from).collect())
    }

    /// Applies priority / activity / model; `None` when there is no such account.
    pub async fn update_account(&self, id: i64, p: &AccountPatch) -> Result<Option<Account>> {
        let row: Option<AccountRow> = sqlx::query_as(super::sql(format!(
            "UPDATE accounts SET priority = COALESCE($1, priority), is_active = COALESCE($2, is_active), \
             model = COALESCE($3, model), updated_at = $4 WHERE id = $5 RETURNING {ACCOUNT_COLUMNS}"
        )))
        .bind(p.priority)
        .bind(p.is_active)
        .bind(&p.model)
        .bind(now_ms())
        .bind(id)
        .fetch_optional(self.w())
        .await
        .map_err(classify)?;
        Ok(row.map(Account::from))
    }
}
