//! Scheduled workflows (management side).

use super::{Flag, Result, Store, classify, sql};
use crate::clock::{now_ms, opt_rfc3339};
use crate::domain::workflow::{Workflow, WorkflowFields};

any_row! {
    struct WorkflowRow {
        id: i64,
        name: String,
        agent_id: i64,
        agent_name: String,
        schedule: String,
        prompt: String,
        channel_id: Option<String>,
        platform: Option<String>,
        is_enabled: Flag,
        last_run_at: Option<i64>,
        next_run_at: Option<i64>,
        daily_budget_usd: Option<f64>,
        monthly_budget_usd: Option<f64>,
        skipped_runs: i64,
        last_error: Option<String>,
    }
}

impl WorkflowRow {
    fn into_parts(self) -> (Workflow, Option<i64>) {
        let next = self.next_run_at;
        (
            Workflow {
                id: self.id,
                name: self.name,
                agent_id: self.agent_id,
                agent_name: self.agent_name,
                schedule: self.schedule,
                prompt: self.prompt,
                channel_id: self.channel_id,
                platform: self.platform,
                is_enabled: self.is_enabled.0,
                last_run_at: opt_rfc3339(self.last_run_at),
                next_run_at: opt_rfc3339(self.next_run_at),
                daily_budget_usd: self.daily_budget_usd,
                monthly_budget_usd: self.monthly_budget_usd,
                skipped_runs: self.skipped_runs,
                last_error: self.last_error,
            },
            next,
        )
    }
}

/// The one insert of a workflow, through `ex` (a pool or a transaction):
/// the API's [`Store::create_workflow`] and the conductor's `CREATE_CRON`
/// ([`super::effects::EffectsTx::create_workflow_from_action`]). Returns its id.
pub(crate) async fn insert_workflow<'e>(
    ex: impl sqlx::Executor<'e, Database = sqlx::Any>,
    f: &WorkflowFields,
    now: i64,
) -> Result<i64> {
    sqlx::query_scalar(
        "INSERT INTO workflows (name, agent_id, schedule, prompt, channel_id, platform, is_enabled, \
         next_run_at, created_at, updated_at, daily_budget_usd, monthly_budget_usd) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $10, $11) RETURNING id",
    )
    .bind(&f.name)
    .bind(f.agent_id)
    .bind(&f.schedule)
    .bind(&f.prompt)
    .bind(&f.channel_id)
    .bind(&f.platform)
    .bind(f.is_enabled)
    .bind(f.next_run_at)
    .bind(now)
    .bind(f.daily_budget_usd)
    .bind(f.monthly_budget_usd)
    .fetch_one(ex)
    .await
    .map_err(classify)
}

const WF_SELECT: &str = "SELECT w.id, w.name, w.agent_id, a.name AS agent_name, w.schedule, w.prompt, w.channel_id, \
     w.platform, w.is_enabled, w.last_run_at, w.next_run_at, w.daily_budget_usd, w.monthly_budget_usd, \
     w.skipped_runs, w.last_error FROM workflows w JOIN agents a ON a.id = w.agent_id";

impl Store {
    pub async fn list_workflows(&self) -> Result<Vec<Workflow>> {
        let rows: Vec<WorkflowRow> =
            sqlx::query_as(sql(format!("{WF_SELECT} ORDER BY w.id"))).fetch_all(self.r()).await?;
        Ok(rows.into_iter().map(|r| r.into_parts().0).collect())
    }

    /// A workflow with its next due time in milliseconds.
    pub async fn get_workflow(&self, id: i64) -> Result<Option<(Workflow, Option<i64>)>> {
        let row: Option<WorkflowRow> =
            sqlx::query_as(sql(format!("{WF_SELECT} WHERE w.id = $1"))).bind(id).fetch_optional(self.w()).await?;
        Ok(row.map(WorkflowRow::into_parts))
    }

    /// Inserts a workflow; a missing agent is [`super::DbError::MissingReference`].
    pub async fn create_workflow(&self, f: &WorkflowFields) -> Result<Workflow> {
        let id = insert_workflow(self.w(), f, now_ms()).await?;
        self.get_workflow(id).await?.map(|(w, _)| w).ok_or(super::DbError::NotFound)
    }

    pub async fn update_workflow(&self, id: i64, f: &WorkflowFields) -> Result<Option<Workflow>> {
        let done = sqlx::query(
            "UPDATE workflows SET name = $1, agent_id = $2, schedule = $3, prompt = $4, channel_id = $5, \
             platform = $6, is_enabled = $7, next_run_at = $8, updated_at = $9, daily_budget_usd = $11, \
             monthly_budget_usd = $12 WHERE id = $10",
        )
        .bind(&f.name)
        .bind(f.agent_id)
        .bind(&f.schedule)
        .bind(&f.prompt)
        .bind(&f.channel_id)
        .bind(&f.platform)
        .bind(f.is_enabled)
        .bind(f.next_run_at)
        .bind(now_ms())
        .bind(id)
        .bind(f.daily_budget_usd)
        .bind(f.monthly_budget_usd)
        .execute(self.w())
        .await
        .map_err(classify)?;
        if done.rows_affected() == 0 {
            return Ok(None);
        }
        Ok(self.get_workflow(id).await?.map(|(w, _)| w))
    }

    pub async fn delete_workflow(&self, id: i64) -> Result<bool> {
        let done = sqlx::query("DELETE FROM workflows WHERE id = $1").bind(id).execute(self.w()).await?;
        Ok(done.rows_affected() > 0)
    }
}

/// One page of the list, for the dashboard (`GET /api/workflows` returns all).
impl Store {
    /// Workflows `offset..offset+limit` in id order, and how many there are.
    pub async fn workflows_page(&self, limit: i64, offset: i64) -> Result<(Vec<Workflow>, i64)> {
        let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM workflows").fetch_one(self.r()).await?;
        let rows: Vec<WorkflowRow> = sqlx::query_as(sql(format!("{WF_SELECT} ORDER BY w.id LIMIT $1 + 0 OFFSET $2")))
            .bind(limit)
            .bind(offset)
            .fetch_all(self.r())
            .await?;
        Ok((rows.into_iter().map(|r| r.into_parts().0).collect(), total))
    }
}
