//! Jobs as the REST API sees them: list, retry, cancel; a minimal enqueue.
//! (The worker's claim/complete cycle lives with the queue.)

use super::{DbError, Result, Store, classify, from_json, sql};
use crate::clock::{now_ms, opt_rfc3339, to_rfc3339};
use crate::domain::jobs::{JobView, NewJobRow};

any_row! {
    /// A job as the API lists it: the queue's row (`queue::JobRow`) less the
    /// lease and workflow columns, plus its agent's name.
    struct JobViewRow {
        id: i64,
        agent_id: i64,
        agent_name: String,
        conversation_id: Option<String>,
        kind: String,
        priority: i64,
        status: String,
        payload: String,
        result: Option<String>,
        error: Option<String>,
        attempts: i64,
        max_attempts: i64,
        run_after: i64,
        created_at: i64,
        started_at: Option<i64>,
        completed_at: Option<i64>,
    }
}

impl TryFrom<JobViewRow> for JobView {
    type Error = DbError;
    fn try_from(r: JobViewRow) -> Result<JobView> {
        Ok(JobView {
            payload: from_json("jobs.payload", &r.payload)?,
            id: r.id,
            agent_id: r.agent_id,
            agent_name: r.agent_name,
            priority: r.priority,
            status: r.status,
            attempts: r.attempts,
            max_attempts: r.max_attempts,
            created_at: to_rfc3339(r.created_at),
            kind: r.kind,
            conversation_id: r.conversation_id,
            error: r.error,
            result: r.result,
            run_after: to_rfc3339(r.run_after),
            started_at: opt_rfc3339(r.started_at),
            completed_at: opt_rfc3339(r.completed_at),
        })
    }
}

const JOB_SELECT: &str = "SELECT j.id, j.agent_id, a.name AS agent_name, j.conversation_id, j.kind, j.priority, \
     j.status, j.payload, j.result, j.error, j.attempts, j.max_attempts, j.run_after, j.created_at, \
     j.started_at, j.completed_at FROM jobs j JOIN agents a ON a.id = j.agent_id";

/// What a conditional job update found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobUpdate {
    /// Done; the job's priority.
    Done { priority: i64 },
    /// No such job.
    NotFound,
    /// The job exists with another status.
    WrongStatus(String),
}

impl Store {
    /// Jobs with one of `statuses`, newest first, at most `limit`.
    pub async fn list_jobs(&self, statuses: &[&str], limit: i64) -> Result<Vec<JobView>> {
        let placeholders: Vec<String> = (1..=statuses.len()).map(|i| format!("${i}")).collect();
        let text = format!(
            "{JOB_SELECT} WHERE j.status IN ({}) ORDER BY j.created_at DESC, j.id DESC LIMIT ${} + 0",
            placeholders.join(", "),
            statuses.len() + 1
        );
        let mut q = sqlx::query_as::<_, JobViewRow>(sql(text));
        for s in statuses {
            q = q.bind(*s);
        }
        let rows = q.bind(limit).fetch_all(self.r()).await?;
        rows.into_iter().map(JobView::try_from).collect()
    }

    /// One page of the jobs with one of `statuses`, in `list_jobs`' order,
    /// and how many there are (the dashboard's queue pages past 500).
    pub async fn jobs_page(&self, statuses: &[&str], limit: i64, offset: i64) -> Result<(Vec<JobView>, i64)> {
        let placeholders = super::placeholders(1, statuses.len());
        let n = statuses.len();
        let count_text = format!("SELECT COUNT(*) FROM jobs WHERE status IN ({placeholders})");
        let mut count = sqlx::query_scalar::<_, i64>(sql(count_text));
        for s in statuses {
            count = count.bind(*s);
        }
        let total = count.fetch_one(self.r()).await?;
        let text = format!(
            "{JOB_SELECT} WHERE j.status IN ({placeholders}) ORDER BY j.created_at DESC, j.id DESC \
             LIMIT ${} + 0 OFFSET ${}",
            n + 1,
            n + 2
        );
        let mut q = sqlx::query_as::<_, JobViewRow>(sql(text));
        for s in statuses {
            q = q.bind(*s);
        }
        let rows = q.bind(limit).bind(offset).fetch_all(self.r()).await?;
        Ok((rows.into_iter().map(JobView::try_from).collect::<Result<_>>()?, total))
    }

    pub async fn get_job(&self, id: i64) -> Result<Option<JobView>> {
        let row: Option<JobViewRow> =
            sqlx::query_as(sql(format!("{JOB_SELECT} WHERE j.id = $1"))).bind(id).fetch_optional(self.r()).await?;
        row.map(JobView::try_from).transpose()
    }

    async fn job_status(&self, id: i64) -> Result<JobUpdate> {
        let status: Option<String> =
            sqlx::query_scalar("SELECT status FROM jobs WHERE id = $1").bind(id).fetch_optional(self.w()).await?;
        Ok(status.map(JobUpdate::WrongStatus).unwrap_or(JobUpdate::NotFound))
    }

    /// A failed job goes back to pending (attempts reset, due now). Conditional
    /// in SQL, so a concurrent change cannot be overwritten.
    pub async fn retry_job(&self, id: i64) -> Result<JobUpdate> {
        let priority: Option<i64> = sqlx::query_scalar(
            "UPDATE jobs SET status = 'pending', attempts = 0, run_after = $1, error = NULL, locked_by = NULL, \
             lease_expires_at = NULL, started_at = NULL, completed_at = NULL \
             WHERE id = $2 AND status = 'failed' RETURNING priority",
        )
        .bind(now_ms())
        .bind(id)
        .fetch_optional(self.w())
        .await?;
        match priority {
            Some(priority) => Ok(JobUpdate::Done { priority }),
            None => self.job_status(id).await,
        }
    }

    /// A pending job becomes `cancelled` (the row is kept).
    pub async fn cancel_job(&self, id: i64) -> Result<JobUpdate> {
        let priority: Option<i64> = sqlx::query_scalar(
            "UPDATE jobs SET status = 'cancelled', completed_at = $1 WHERE id = $2 AND status = 'pending' \
             RETURNING priority",
        )
        .bind(now_ms())
        .bind(id)
        .fetch_optional(self.w())
        .await?;
        match priority {
            Some(priority) => Ok(JobUpdate::Done { priority }),
            None => self.job_status(id).await,
        }
    }

    /// Inserts a job row as given (due now). Returns its id.
    pub async fn insert_job_row(&self, j: &NewJobRow) -> Result<i64> {
        let now = now_ms();
        sqlx::query_scalar(
            "INSERT INTO jobs (agent_id, conversation_id, kind, priority, status, payload, error, attempts, \
             max_attempts, run_after, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10) RETURNING id",
        )
        .bind(j.agent_id)
        .bind(&j.conversation_id)
        .bind(&j.kind)
        .bind(j.priority)
        .bind(&j.status)
        .bind(&j.payload)
        .bind(&j.error)
        .bind(j.attempts)
        .bind(j.max_attempts)
        .bind(now)
        .fetch_one(self.w())
        .await
        .map_err(classify)
    }

    /// Enqueues a pending job (3 attempts), due now. Returns its id.
    pub async fn enqueue_job(
        &self,
        agent_id: i64,
        priority: i64,
        kind: &str,
        payload_json: &str,
        conversation_id: Option<&str>,
    ) -> Result<i64> {
        self.insert_job_row(&NewJobRow {
            agent_id,
            conversation_id: conversation_id.map(str::to_string),
            kind: kind.to_string(),
            priority,
            status: "pending".into(),
            payload: payload_json.to_string(),
            error: None,
            attempts: 0,
            max_attempts: 3,
        })
        .await
    }

    /// Pending and running job counts (metrics).
    pub async fn job_counts(&self) -> Result<(i64, i64)> {
        let (pending, running): (i64, i64) = sqlx::query_as(
            "SELECT (SELECT COUNT(*) FROM jobs WHERE status = 'pending'), \
             (SELECT COUNT(*) FROM jobs WHERE status = 'running')",
        )
        .fetch_one(self.r())
        .await?;
        Ok((pending, running))
    }

    /// Total and active agent counts (metrics).
    pub async fn agent_counts(&self) -> Result<(i64, i64)> {
        let (total, active): (i64, i64) =
            sqlx::query_as("SELECT (SELECT COUNT(*) FROM agents), (SELECT COUNT(*) FROM agents WHERE is_active = $1)")
                .bind(true)
                .fetch_one(self.r())
                .await?;
        Ok((total, active))
    }
}
