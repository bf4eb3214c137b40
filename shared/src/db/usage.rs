//! Usage rows (one per LLM call) and their aggregation for `GET /api/usage`.
//!
//! Sums are cast explicitly: on Postgres `SUM(bigint)` and `AVG(…)` are
//! NUMERIC, which the Any driver cannot decode. `DOUBLE PRECISION` is a valid
//! CAST target in both dialects (SQLite gives it REAL affinity).

use super::args::Arg;
use super::{Result, Store, classify};
use crate::domain::usage::{AgentUsage, ModelUsage, ProviderUsage, UsageRecord, UsageReport};

/// A usage row: one served model call. The one insert of the table, run by
/// sqlx ([`insert_usage_row`]) and by the SQLite writer lane
/// ([`super::sqlite::queue`]) with the values of [`usage_args`].
///
/// An account or agent deleted meanwhile is stored as NULL (the row keeps its
/// numbers) instead of refusing the write. The cost is bound as a number
/// (`$9`) plus a flag that says whether there is one (`$14`): sqlx 0.9's Any
/// driver encodes a NULL `f64` as a `float4` (its `AnyTypeInfoKind::Double`
/// arm adds `Option::<f32>::None`), so when an unpriced call was the first on
/// a connection, the cached statement took parameter 9 as `float4` and
/// Postgres then refused every priced call's 8-byte `float8` on that
/// connection ("incorrect binary data format in bind parameter 9"): its usage
/// row was lost. SQLite takes the same text (the flag binds as 0/1).
pub(crate) const INSERT_USAGE: &str = "INSERT INTO usage (account_id, agent_id, conversation_id, job_id, provider, \
     model, input_tokens, output_tokens, cost_usd, duration_ms, created_at, cache_read_tokens, cache_write_tokens, \
     api_key_id) SELECT (SELECT id FROM accounts WHERE id = $1), (SELECT id FROM agents WHERE id = $2), $3, $4, $5, \
     $6, $7, $8, CASE WHEN $14 THEN $9 ELSE NULL END, $10, $11, $12, $13, $15 RETURNING id";

/// [`INSERT_USAGE`]'s values.
pub(crate) fn usage_args(u: &UsageRecord) -> [Arg<'_>; 15] {
    args![
        u.account_id,
        u.agent_id,
        &u.conversation_id,
        u.job_id,
        &u.provider,
        &u.model,
        u.input_tokens,
        u.output_tokens,
        u.cost_usd.unwrap_or(0.0),
        u.duration_ms,
        u.created_at,
        u.cache_read_tokens,
        u.cache_write_tokens,
        u.cost_usd.is_some(),
        u.api_key_id,
    ]
}

/// Inserts a usage row through `ex` (a pool or a transaction); returns its id.
pub(crate) async fn insert_usage_row<'e>(
    ex: impl sqlx::Executor<'e, Database = sqlx::Any>,
    u: &UsageRecord,
) -> Result<i64> {
    super::args::query_scalar(INSERT_USAGE, usage_args(u)).fetch_one(ex).await.map_err(classify)
}

any_row! {
    impl UsageRecord {
        account_id: Option<i64>,
        agent_id: Option<i64>,
        conversation_id: Option<String>,
        job_id: Option<i64>,
        provider: String,
        model: String,
        input_tokens: i64,
        output_tokens: i64,
        cache_read_tokens: i64,
        cache_write_tokens: i64,
        cost_usd: Option<f64>,
        duration_ms: i64,
        created_at: i64,
        api_key_id: Option<i64>,
    }
}

/// A usage row as stored: the call ([`UsageRecord`], what the worker
/// records) and the row's id. Derefs to the call.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredUsage {
    pub id: i64,
    pub call: UsageRecord,
}

impl std::ops::Deref for StoredUsage {
    type Target = UsageRecord;
    fn deref(&self) -> &UsageRecord {
        &self.call
    }
}

impl<'r> sqlx::FromRow<'r, sqlx::any::AnyRow> for StoredUsage {
    fn from_row(row: &'r sqlx::any::AnyRow) -> std::result::Result<Self, sqlx::Error> {
        use sqlx::Row as _;
        Ok(StoredUsage { id: row.try_get("id")?, call: <UsageRecord as sqlx::FromRow<_>>::from_row(row)? })
    }
}

any_row! {
    struct AgentRow {
        agent_id: Option<i64>,
        agent_name: Option<String>,
        requests: i64,
        input_tokens: i64,
        output_tokens: i64,
        cost_usd: f64,
        avg_duration_ms: f64,
        cache_read_tokens: i64,
        cache_write_tokens: i64,
        unpriced_requests: i64,
    }
}

any_row! {
    struct KeyRow {
        key: String,
        requests: i64,
        cost_usd: f64,
        input_tokens: i64,
        output_tokens: i64,
        avg_duration_ms: f64,
        cache_read_tokens: i64,
        unpriced_requests: i64,
    }
}

any_row! {
    struct TotalsRow {
        requests: i64,
        input_tokens: i64,
        output_tokens: i64,
        cost_usd: f64,
        cache_read_tokens: i64,
        cache_write_tokens: i64,
        unpriced_requests: i64,
    }
}

/// Calls whose cost is NULL (unpriced), as a BIGINT in both dialects.
const UNPRICED: &str = "CAST(COALESCE(SUM(CASE WHEN cost_usd IS NULL THEN 1 ELSE 0 END), 0) AS BIGINT)";

impl Store {
    /// Records one LLM call. Returns the row id.
    pub async fn insert_usage(&self, u: &UsageRecord) -> Result<i64> {
        insert_usage_row(self.w(), u).await
    }

    /// The usage rows of one job, oldest first.
    pub async fn usage_for_job(&self, job_id: i64) -> Result<Vec<StoredUsage>> {
        Ok(sqlx::query_as(
            "SELECT id, account_id, agent_id, conversation_id, job_id, provider, model, input_tokens, output_tokens, \
             cost_usd, duration_ms, created_at, cache_read_tokens, cache_write_tokens, api_key_id FROM usage \
             WHERE job_id = $1 ORDER BY id",
        )
        .bind(job_id)
        .fetch_all(self.r())
        .await?)
    }

    /// Totals and breakdowns of the calls made at or after `since_ms`.
    pub async fn usage_report(&self, since_ms: i64) -> Result<UsageReport> {
        let totals: TotalsRow = sqlx::query_as(super::sql(format!(
            "SELECT COUNT(*) AS requests, CAST(COALESCE(SUM(input_tokens), 0) AS BIGINT) AS input_tokens, \
             CAST(COALESCE(SUM(output_tokens), 0) AS BIGINT) AS output_tokens, \
             CAST(COALESCE(SUM(cost_usd), 0) AS DOUBLE PRECISION) AS cost_usd, \
             CAST(COALESCE(SUM(cache_read_tokens), 0) AS BIGINT) AS cache_read_tokens, \
             CAST(COALESCE(SUM(cache_write_tokens), 0) AS BIGINT) AS cache_write_tokens, \
             {UNPRICED} AS unpriced_requests FROM usage WHERE created_at >= $1"
        )))
        .bind(since_ms)
        .fetch_one(self.r())
        .await?;
        let agents: Vec<AgentRow> = sqlx::query_as(super::sql(format!(
            "SELECT u.agent_id, a.name AS agent_name, COUNT(*) AS requests, \
             CAST(COALESCE(SUM(u.input_tokens), 0) AS BIGINT) AS input_tokens, \
             CAST(COALESCE(SUM(u.output_tokens), 0) AS BIGINT) AS output_tokens, \
             CAST(COALESCE(SUM(u.cost_usd), 0) AS DOUBLE PRECISION) AS cost_usd, \
             CAST(COALESCE(AVG(u.duration_ms), 0) AS DOUBLE PRECISION) AS avg_duration_ms, \
             CAST(COALESCE(SUM(u.cache_read_tokens), 0) AS BIGINT) AS cache_read_tokens, \
             CAST(COALESCE(SUM(u.cache_write_tokens), 0) AS BIGINT) AS cache_write_tokens, \
             {UNPRICED} AS unpriced_requests \
             FROM usage u LEFT JOIN agents a ON a.id = u.agent_id WHERE u.created_at >= $1 \
             GROUP BY u.agent_id, a.name ORDER BY requests DESC, u.agent_id"
        )))
        .bind(since_ms)
        .fetch_all(self.r())
        .await?;
        let by_key = |column: &'static str| {
            let text = format!(
                "SELECT {column} AS key, COUNT(*) AS requests, \
                 CAST(COALESCE(SUM(cost_usd), 0) AS DOUBLE PRECISION) AS cost_usd, \
                 CAST(COALESCE(SUM(input_tokens), 0) AS BIGINT) AS input_tokens, \
                 CAST(COALESCE(SUM(output_tokens), 0) AS BIGINT) AS output_tokens, \
                 CAST(COALESCE(AVG(duration_ms), 0) AS DOUBLE PRECISION) AS avg_duration_ms, \
                 CAST(COALESCE(SUM(cache_read_tokens), 0) AS BIGINT) AS cache_read_tokens, \
                 {UNPRICED} AS unpriced_requests \
                 FROM usage WHERE created_at >= $1 GROUP BY {column} ORDER BY requests DESC, {column}"
            );
            async move {
                let rows: Vec<KeyRow> = sqlx::query_as(super::sql(text)).bind(since_ms).fetch_all(self.r()).await?;
                Ok::<_, super::DbError>(rows)
            }
        };
        let providers = by_key("provider").await?;
        let models = by_key("model").await?;
        Ok(UsageReport {
            total_requests: totals.requests,
            total_input_tokens: totals.input_tokens,
            total_output_tokens: totals.output_tokens,
            total_cost_usd: totals.cost_usd,
            total_cache_read_tokens: totals.cache_read_tokens,
            total_cache_write_tokens: totals.cache_write_tokens,
            unpriced_requests: totals.unpriced_requests,
            by_agent: agents
                .into_iter()
                .map(|r| AgentUsage {
                    agent_id: r.agent_id,
                    agent_name: r.agent_name,
                    requests: r.requests,
                    input_tokens: r.input_tokens,
                    output_tokens: r.output_tokens,
                    cost_usd: r.cost_usd,
                    avg_duration_ms: r.avg_duration_ms.round() as i64,
                    cache_read_tokens: r.cache_read_tokens,
                    cache_write_tokens: r.cache_write_tokens,
                    unpriced_requests: r.unpriced_requests,
                })
                .collect(),
            by_provider: providers
                .into_iter()
                .map(|r| ProviderUsage {
                    provider: r.key,
                    requests: r.requests,
                    cost_usd: r.cost_usd,
                    input_tokens: r.input_tokens,
                    output_tokens: r.output_tokens,
                    avg_duration_ms: r.avg_duration_ms.round() as i64,
                    cache_read_tokens: r.cache_read_tokens,
                    unpriced_requests: r.unpriced_requests,
                })
                .collect(),
            by_model: models
                .into_iter()
                .map(|r| ModelUsage {
                    model: r.key,
                    requests: r.requests,
                    cost_usd: r.cost_usd,
                    input_tokens: r.input_tokens,
                    output_tokens: r.output_tokens,
                    avg_duration_ms: r.avg_duration_ms.round() as i64,
                    cache_read_tokens: r.cache_read_tokens,
                    unpriced_requests: r.unpriced_requests,
                })
                .collect(),
        })
    }
}

/// Whose spend [`Store::spend_since`] sums.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spender {
    Agent(i64),
    ApiKey(i64),
    /// The calls of the workflow's runs (usage → job → workflow).
    Workflow(i64),
}

impl Store {
    /// Cost (USD) of the calls made at or after `since_ms` by one agent, key
    /// or workflow. Unpriced calls (NULL cost) count as 0: a budget bounds
    /// what is known to be spent, and an unpriced model would otherwise stop
    /// an agent for ever.
    pub async fn spend_since(&self, who: Spender, since_ms: i64) -> Result<f64> {
        let (text, id) = match who {
            Spender::Agent(id) => (
                "SELECT CAST(COALESCE(SUM(cost_usd), 0) AS DOUBLE PRECISION) FROM usage \
                 WHERE agent_id = $1 AND created_at >= $2",
                id,
            ),
            Spender::ApiKey(id) => (
                "SELECT CAST(COALESCE(SUM(cost_usd), 0) AS DOUBLE PRECISION) FROM usage \
                 WHERE api_key_id = $1 AND created_at >= $2",
                id,
            ),
            Spender::Workflow(id) => (
                "SELECT CAST(COALESCE(SUM(u.cost_usd), 0) AS DOUBLE PRECISION) FROM usage u \
                 JOIN jobs j ON j.id = u.job_id WHERE j.workflow_id = $1 AND u.created_at >= $2",
                id,
            ),
        };
        Ok(sqlx::query_scalar(text).bind(id).bind(since_ms).fetch_one(self.r()).await?)
    }

    /// Spend per API key since `since_ms` (keys with no call are absent).
    pub async fn spend_by_key_since(&self, since_ms: i64) -> Result<std::collections::HashMap<i64, f64>> {
        let rows: Vec<(i64, f64)> = sqlx::query_as(
            "SELECT api_key_id, CAST(COALESCE(SUM(cost_usd), 0) AS DOUBLE PRECISION) FROM usage \
             WHERE api_key_id IS NOT NULL AND created_at >= $1 GROUP BY api_key_id",
        )
        .bind(since_ms)
        .fetch_all(self.r())
        .await?;
        Ok(rows.into_iter().collect())
    }

    /// Spend per agent since `since_ms` (agents with no call are absent).
    pub async fn spend_by_agent_since(&self, since_ms: i64) -> Result<std::collections::HashMap<i64, f64>> {
        let rows: Vec<(i64, f64)> = sqlx::query_as(
            "SELECT agent_id, CAST(COALESCE(SUM(cost_usd), 0) AS DOUBLE PRECISION) FROM usage \
             WHERE agent_id IS NOT NULL AND created_at >= $1 GROUP BY agent_id",
        )
        .bind(since_ms)
        .fetch_all(self.r())
        .await?;
        Ok(rows.into_iter().collect())
    }
}
