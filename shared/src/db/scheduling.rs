//! The scheduler's queries: which workflows are due, and the atomic claim of
//! one due time.
//!
//! Exactly-once across replicas rests on one conditional update: a due time is
//! claimed by moving `next_run_at` from that due time to the next one
//! (`… WHERE id = $id AND next_run_at = $due AND is_enabled`). Only the replica
//! whose update changed a row goes on, and it enqueues the job (or records a
//! skipped run) in the same transaction, so a claim without its job — or a job
//! without its claim — never commits. Claim transactions start with
//! `BEGIN IMMEDIATE` on SQLite, so they hold the write lock before they read
//! anything (no read-to-write upgrade that could fail with `SQLITE_BUSY`); on
//! Postgres the update takes the row lock: a concurrent claimer blocks, then
//! sees the new `next_run_at` and changes nothing.

use std::collections::HashMap;

use super::queue::insert_job;
use super::{Result, Store, classify};

type Tx<'c> = sqlx::Transaction<'c, sqlx::Any>;
use crate::domain::job::NewJob;

any_row! {
    /// An enabled workflow whose due time has come (or has none yet).
    #[derive(Debug, Clone, PartialEq)]
    pub struct DueWorkflow {
        pub id: i64,
        pub agent_id: i64,
        pub name: String,
        pub schedule: String,
        pub prompt: String,
        pub channel_id: Option<String>,
        pub platform: Option<String>,
        /// `None`: new or edited; the scheduler sets it to the next due time.
        pub next_run_at: Option<i64>,
    }
}

/// One due time to claim.
#[derive(Debug, Clone)]
pub struct WorkflowRun<'a> {
    pub workflow_id: i64,
    /// The `next_run_at` the claimer read; the claim holds only if it is still there.
    pub due_at: i64,
    /// The `next_run_at` to store.
    pub next_run_at: i64,
    /// The job to enqueue when the claim holds and no earlier run is unfinished.
    pub job: &'a NewJob,
    pub now: i64,
}

/// What became of a claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimOutcome {
    /// This claimer won the due time and enqueued the job.
    Enqueued { job_id: i64 },
    /// This claimer won the due time, but the workflow's previous job is still
    /// pending or running (flood guard): no job; `skipped_runs` was incremented.
    Skipped { unfinished_job_id: i64 },
    /// Another claimer won it, or the workflow was disabled, edited or deleted
    /// meanwhile: nothing was written.
    Lost,
    /// The due time was moved on without a run (the schedule no longer parses).
    Postponed,
    /// This claimer won the due time, but a budget of the workflow or its
    /// agent is used up: no job; `skipped_runs` was incremented and
    /// `last_error` says which budget.
    OverBudget,
}

/// What the scheduler decided for one due workflow of a batch claim.
#[derive(Debug, Clone)]
pub enum DuePlan {
    /// Run it (or skip it, when its previous job is unfinished) and move its
    /// due time on to `next_run_at`.
    Fire { next_run_at: i64, job: Box<NewJob> },
    /// Move its due time on without running it.
    Postpone { next_run_at: i64 },
    /// Move its due time on without running it, counted as a skipped run,
    /// with `reason` (the budget used up) as the workflow's last error.
    OverBudget { next_run_at: i64, reason: String },
}

const DUE_COLUMNS: &str = "id, agent_id, name, schedule, prompt, channel_id, platform, next_run_at";

/// A batch of due times, oldest first (`$1` now, `$2` the limit); `lock` locks
/// the rows on Postgres. Both the sqlx and the writer-lane claim use it.
pub(crate) fn due_batch_sql(lock: &str) -> String {
    format!(
        "SELECT {DUE_COLUMNS} FROM workflows WHERE is_enabled AND next_run_at IS NOT NULL AND next_run_at <= $1 \
         ORDER BY next_run_at, id LIMIT $2 + 0 {lock}"
    )
}

/// The flood guard for `n` workflows (`$1`…`$n`): the oldest unfinished job of
/// each workflow that has one.
pub(crate) fn unfinished_sql(n: usize) -> String {
    format!(
        "SELECT workflow_id, MIN(id) FROM jobs WHERE status IN ('pending', 'running') AND workflow_id IN ({}) \
         GROUP BY workflow_id",
        super::placeholders(1, n)
    )
}

/// The conditional move of a due time: `$1` the next due time, `$2` the
/// workflow, `$3` the due time claimed; `also` adds `SET` clauses.
pub(crate) fn move_due_sql(also: &str) -> String {
    format!("UPDATE workflows SET next_run_at = $1{also} WHERE id = $2 AND next_run_at = $3 AND is_enabled")
}

/// [`move_due_sql`]'s values.
pub(crate) fn move_due_args(workflow_id: i64, due_at: i64, next_run_at: i64) -> [super::args::Arg<'static>; 3] {
    args![next_run_at, workflow_id, due_at]
}

/// The `set` clauses of [`move_due_sql`] for each outcome of a claim.
pub(crate) const SKIPPED: &str = ", skipped_runs = skipped_runs + 1";
pub(crate) const RAN: &str = ", last_run_at = $3, last_error = NULL";

impl Store {
    /// Enabled workflows with `next_run_at` at or before `now`, or NULL; oldest due first.
    pub async fn due_workflows(&self, now: i64) -> Result<Vec<DueWorkflow>> {
        Ok(sqlx::query_as(super::sql(format!(
            "SELECT {DUE_COLUMNS} FROM workflows WHERE is_enabled AND (next_run_at IS NULL OR next_run_at <= $1) \
             ORDER BY next_run_at, id"
        )))
        .bind(now)
        .fetch_all(self.r())
        .await?)
    }

    /// Enabled workflows without a due time yet (new or edited).
    pub async fn unscheduled_workflows(&self) -> Result<Vec<DueWorkflow>> {
        Ok(sqlx::query_as(super::sql(format!(
            "SELECT {DUE_COLUMNS} FROM workflows WHERE is_enabled AND next_run_at IS NULL ORDER BY id"
        )))
        .fetch_all(self.r())
        .await?)
    }

    /// The earliest `next_run_at` of the enabled workflows (the scheduler sleeps until then).
    pub async fn next_workflow_due_at(&self) -> Result<Option<i64>> {
        Ok(sqlx::query_scalar("SELECT MIN(next_run_at) FROM workflows WHERE is_enabled").fetch_one(self.r()).await?)
    }

    /// Sets the first due time of a workflow that has none; false when it has one
    /// already (another replica, or the API, set it first).
    pub async fn init_next_run(&self, workflow_id: i64, next_run_at: i64) -> Result<bool> {
        let done = sqlx::query("UPDATE workflows SET next_run_at = $1 WHERE id = $2 AND next_run_at IS NULL")
            .bind(next_run_at)
            .bind(workflow_id)
            .execute(self.w())
            .await
            .map_err(classify)?;
        Ok(done.rows_affected() > 0)
    }

    /// Moves a due time on without running it (a schedule that no longer
    /// parses); false when another claimer moved it first.
    pub async fn postpone_workflow_run(&self, workflow_id: i64, due_at: i64, next_run_at: i64) -> Result<bool> {
        move_due_time(self.w(), workflow_id, due_at, next_run_at, "").await
    }

    /// Claims up to `limit` due times (oldest first) in ONE transaction and
    /// carries out `plan` for each: enqueue its job, or count a skipped run
    /// (flood guard), or postpone it. Returns each claimed workflow with its
    /// outcome.
    ///
    /// The rows are locked before they are read — `BEGIN IMMEDIATE` on SQLite
    /// (the write lock first, so no read-to-write upgrade can fail), `FOR UPDATE
    /// SKIP LOCKED` on Postgres (replicas work on disjoint rows in parallel) —
    /// and each update is still conditional on the due time read, so a due time
    /// is claimed exactly once. One commit per batch instead of one per due
    /// time is what makes a burst of thousands of due workflows cheap.
    ///
    /// Any failure rolls the whole batch back (nothing of it is written); the
    /// caller then falls back to [`Store::claim_and_enqueue_workflow_run`], one
    /// due time per transaction, so one broken workflow cannot hold back the rest.
    ///
    /// On SQLite the batch runs in the writer lane ([`super::sqlite::lane`]), on
    /// rusqlite: two statements per due time through sqlx were ~100 µs of
    /// round trips to its connection thread, and 10 000 due workflows took
    /// 1.2–1.6 s to enqueue (cron-burst).
    pub async fn claim_due_workflow_runs(
        &self,
        now: i64,
        limit: i64,
        plan: impl Fn(&DueWorkflow) -> DuePlan + Send + 'static,
    ) -> Result<Vec<(DueWorkflow, ClaimOutcome)>> {
        if let Some(lite) = self.sqlite() {
            return super::sqlite::scheduling::claim_due_workflow_runs(&lite.lane, now, limit, plan).await;
        }
        let lock = "FOR UPDATE SKIP LOCKED";
        let mut tx = self.begin_write().await?;
        let due: Vec<DueWorkflow> =
            sqlx::query_as(super::sql(due_batch_sql(lock))).bind(now).bind(limit).fetch_all(&mut *tx).await?;
        if due.is_empty() {
            tx.rollback().await?;
            return Ok(vec![]);
        }
        // The flood guard for the whole batch in one query.
        let mut q = sqlx::query_as::<_, (i64, i64)>(super::sql(unfinished_sql(due.len())));
        for wf in &due {
            q = q.bind(wf.id);
        }
        let unfinished: HashMap<i64, i64> = q.fetch_all(&mut *tx).await?.into_iter().collect();
        let mut outcomes = Vec::with_capacity(due.len());
        for wf in due {
            let Some(due_at) = wf.next_run_at else { continue };
            let outcome = match plan(&wf) {
                DuePlan::Postpone { next_run_at } => {
                    if move_due_time(&mut *tx, wf.id, due_at, next_run_at, "").await? {
                        ClaimOutcome::Postponed
                    } else {
                        ClaimOutcome::Lost
                    }
                }
                DuePlan::OverBudget { next_run_at, reason } => {
                    skip_over_budget(&mut tx, wf.id, due_at, next_run_at, &reason).await?
                }
                DuePlan::Fire { next_run_at, job } => {
                    let run = WorkflowRun { workflow_id: wf.id, due_at, next_run_at, job: &job, now };
                    fire(&mut tx, &run, unfinished.get(&wf.id).copied()).await?
                }
            };
            outcomes.push((wf, outcome));
        }
        tx.commit().await?;
        Ok(outcomes)
    }

    /// Claims one due time and, in the same transaction, enqueues its job — or,
    /// when the workflow's previous job is still pending or running, records a
    /// skipped run instead (flood guard). See the module docs.
    pub async fn claim_and_enqueue_workflow_run(&self, run: &WorkflowRun<'_>) -> Result<ClaimOutcome> {
        let mut tx = self.begin_write().await?;
        let unfinished: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM jobs WHERE workflow_id = $1 AND status IN ('pending', 'running') ORDER BY id LIMIT 1",
        )
        .bind(run.workflow_id)
        .fetch_optional(&mut *tx)
        .await?;
        let outcome = fire(&mut tx, run, unfinished).await?;
        tx.commit().await?;
        Ok(outcome)
    }

    /// Claims one due time without running it: a budget is used up (the
    /// batch's fallback, like [`Store::claim_and_enqueue_workflow_run`]).
    pub async fn skip_workflow_run_over_budget(
        &self,
        workflow_id: i64,
        due_at: i64,
        next_run_at: i64,
        reason: &str,
    ) -> Result<ClaimOutcome> {
        let mut tx = self.begin_write().await?;
        let outcome = skip_over_budget(&mut tx, workflow_id, due_at, next_run_at, reason).await?;
        tx.commit().await?;
        Ok(outcome)
    }

    /// Enabled workflows with a budget: (id, name, daily, monthly).
    pub async fn budgeted_workflows(&self) -> Result<Vec<(i64, String, Option<f64>, Option<f64>)>> {
        Ok(sqlx::query_as(
            "SELECT id, name, daily_budget_usd, monthly_budget_usd FROM workflows WHERE is_enabled \
             AND (daily_budget_usd IS NOT NULL OR monthly_budget_usd IS NOT NULL) ORDER BY id",
        )
        .fetch_all(self.r())
        .await?)
    }

    /// How many due times of a workflow the flood guard skipped.
    pub async fn workflow_skipped_runs(&self, workflow_id: i64) -> Result<Option<i64>> {
        Ok(sqlx::query_scalar("SELECT skipped_runs FROM workflows WHERE id = $1")
            .bind(workflow_id)
            .fetch_optional(self.r())
            .await?)
    }
}

/// Claims one due time inside the caller's transaction: moves it on and
/// enqueues the job (recording the run), or — with an unfinished job of the
/// workflow — moves it on and counts a skipped run. Lost when the due time is
/// no longer there (nothing written).
async fn fire(tx: &mut Tx<'_>, run: &WorkflowRun<'_>, unfinished: Option<i64>) -> Result<ClaimOutcome> {
    let (id, due, next) = (run.workflow_id, run.due_at, run.next_run_at);
    Ok(match unfinished {
        Some(unfinished_job_id) => match move_due_time(&mut **tx, id, due, next, SKIPPED).await? {
            true => ClaimOutcome::Skipped { unfinished_job_id },
            false => ClaimOutcome::Lost,
        },
        None => match move_due_time(&mut **tx, id, due, next, RAN).await? {
            true => {
                let mut job = run.job.clone();
                job.workflow_id = Some(id);
                ClaimOutcome::Enqueued { job_id: insert_job(&mut **tx, &job, run.now).await? }
            }
            false => ClaimOutcome::Lost,
        },
    })
}

/// Why a workflow's last due time was not run (`$1` the text, `$2` the workflow).
pub(crate) const SET_LAST_ERROR: &str = "UPDATE workflows SET last_error = $1 WHERE id = $2";

/// Claims a due time without a run (a budget is used up): moved on, counted
/// as skipped, the reason stored; Lost when the due time is no longer there.
async fn skip_over_budget(
    tx: &mut Tx<'_>,
    workflow_id: i64,
    due_at: i64,
    next_run_at: i64,
    reason: &str,
) -> Result<ClaimOutcome> {
    if !move_due_time(&mut **tx, workflow_id, due_at, next_run_at, SKIPPED).await? {
        return Ok(ClaimOutcome::Lost);
    }
    sqlx::query(SET_LAST_ERROR).bind(reason).bind(workflow_id).execute(&mut **tx).await.map_err(classify)?;
    Ok(ClaimOutcome::OverBudget)
}

/// The conditional move of a due time (`also` adds `SET` clauses; `$3` is the
/// due time claimed). False when the due time is no longer there.
async fn move_due_time<'e>(
    ex: impl sqlx::Executor<'e, Database = sqlx::Any>,
    workflow_id: i64,
    due_at: i64,
    next_run_at: i64,
    also: &str,
) -> Result<bool> {
    let done = super::args::query(super::sql(move_due_sql(also)), move_due_args(workflow_id, due_at, next_run_at))
        .execute(ex)
        .await
        .map_err(classify)?;
    Ok(done.rows_affected() > 0)
}
