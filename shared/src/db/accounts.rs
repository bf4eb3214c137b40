//! LLM accounts: every statement on the `accounts` table. Discovered from the
//! environment at start and upserted by name; the API may change priority,
//! activity and model only; the worker reads the usable ones for each run and
//! updates their run-time state (a call's success, a rate limit).
//!
//! One row type, [`AccountRow`], serves both: the worker uses it as is, the
//! API's [`Account`] is made from it (without the counters and never with a
//! key — only `api_key_env`, the name of the variable that holds it, is stored).

use super::args::Arg;
use super::{Flag, Result, Store, classify, sql};
use crate::clock::{now_ms, opt_rfc3339};
use crate::config::AccountSpec;
use crate::domain::account::{Account, AccountPatch};
use crate::domain::usage::UsageRecord;

any_row! {
    /// An account with its run-time state, as the worker sees it.
    #[derive(Debug, Clone, PartialEq)]
    pub struct AccountRow {
        pub id: i64,
        pub name: String,
        pub kind: String => "type",
        pub provider: String,
        pub model: String,
        pub base_url: Option<String>,
        pub api_key_env: Option<String>,
        pub priority: i64,
        pub is_active: bool as Flag,
        pub rate_limited_until: Option<i64>,
        pub retry_count: i64,
        pub total_messages: i64,
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
            is_active: r.is_active,
            rate_limited_until: opt_rfc3339(r.rate_limited_until),
        }
    }
}

const COLUMNS: &str = "id, name, type, provider, model, base_url, api_key_env, priority, is_active, \
     rate_limited_until, retry_count, total_messages";

/// Accounts that may be called at `$1`, optionally of one provider (`$2`).
fn usable_sql(by_provider: bool) -> String {
    format!(
        "SELECT {COLUMNS} FROM accounts WHERE is_active AND (rate_limited_until IS NULL \
         OR rate_limited_until <= $1) {} ORDER BY priority, total_messages, id",
        if by_provider { "AND provider = $2" } else { "" }
    )
}

/// A served call: its account's rest cleared and its message counted (`$1`
/// the time, `$2` the account).
pub(crate) const ACCOUNT_SUCCESS: &str = "UPDATE accounts SET rate_limited_until = NULL, retry_count = 0, \
     total_messages = total_messages + 1, updated_at = $1 WHERE id = $2";

/// [`ACCOUNT_SUCCESS`]'s values.
pub(crate) fn account_success_args(account_id: i64, at: i64) -> [Arg<'static>; 2] {
    args![at, account_id]
}

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

    /// Accounts by priority (lowest first), then name. Never the key.
    pub async fn list_accounts(&self) -> Result<Vec<Account>> {
        let rows: Vec<AccountRow> =
            sqlx::query_as(sql(format!("SELECT {COLUMNS} FROM accounts ORDER BY priority, name")))
                .fetch_all(self.r())
                .await?;
        Ok(rows.into_iter().map(Account::from).collect())
    }

    /// Applies priority / activity / model; `None` when there is no such account.
    pub async fn update_account(&self, id: i64, p: &AccountPatch) -> Result<Option<Account>> {
        let row: Option<AccountRow> = sqlx::query_as(sql(format!(
            "UPDATE accounts SET priority = COALESCE($1, priority), is_active = COALESCE($2, is_active), \
             model = COALESCE($3, model), updated_at = $4 WHERE id = $5 RETURNING {COLUMNS}"
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

    /// Accounts that may be called now: active and not rate-limited (or limited
    /// until a time already past), optionally of one provider; by priority,
    /// then the fewest messages sent (spreads load over equal accounts). Read
    /// once per run: on SQLite a hot read ([`super::sqlite::hot`]).
    pub async fn usable_accounts(&self, provider: Option<&str>, now: i64) -> Result<Vec<AccountRow>> {
        let statement = usable_sql(provider.is_some());
        let args: [Option<Arg>; 2] = [Some(Arg::from(now)), provider.map(Arg::from)];
        let args = args.into_iter().flatten();
        if let Some(lite) = self.sqlite() {
            return lite.hot.all(&statement, &args.collect::<Vec<_>>());
        }
        Ok(super::args::query_as(sql(statement), args).fetch_all(self.r()).await?)
    }

    /// Every account with its run-time state, by priority (whether usable or not).
    pub async fn account_rows(&self) -> Result<Vec<AccountRow>> {
        Ok(sqlx::query_as(sql(format!("SELECT {COLUMNS} FROM accounts ORDER BY priority, id")))
            .fetch_all(self.r())
            .await?)
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

    /// The success of each served call's account, after the write that
    /// recorded the calls — best effort: a failure is logged, not returned
    /// (see the module docs of `db`: the counters are advisory, the calls and
    /// the reply are already committed). The SQLite lane does the same in
    /// [`super::sqlite::queue`].
    pub(crate) async fn accounts_served(&self, usage: &[UsageRecord]) {
        let now = now_ms();
        for account_id in usage.iter().filter_map(|u| u.account_id) {
            let done =
                super::args::query(ACCOUNT_SUCCESS, account_success_args(account_id, now)).execute(self.w()).await;
            if let Err(error) = done {
                tracing::warn!(%error, account_id, "cannot record the account's success; its counters lag");
            }
        }
    }

    /// The account answered: clear its limit and strikes, count the message.
    pub async fn record_account_success(&self, id: i64) -> Result<()> {
        super::args::query(ACCOUNT_SUCCESS, account_success_args(id, now_ms())).execute(self.w()).await?;
        Ok(())
    }
}
