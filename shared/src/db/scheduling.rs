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

use super::queue::{insert_job, insert_job_lane};
use super::{Dialect, Result, Store, classify};

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
}

/// What the scheduler decided for one due workflow of a batch claim.
#[derive(Debug, Clone)]
pub enum DuePlan {
    /// Run it (or skip it, when its previous job is unfinished) and move its
    /// due time on to `next_run_at`.
    Fire { next_run_at: i64, job: Box<NewJob> },
    /// Move its due time on without running it.
    Postpone { next_run_at: i64 },
}

const DUE_COLUMNS: &str = "id, agent_id, name, schedule, prompt, channel_id, platform, next_run_at";

/// A batch of due times, oldest first (`$1` now, `$2` the limit); `lock` locks
/// the rows on Postgres. Both the sqlx and the writer-lane claim use it.
fn due_batch_sql(lock: &str) -> String {
    format!(
        "SELECT {DUE_COLUMNS} FROM workflows WHERE is_enabled AND next_run_at IS NOT NULL AND next_run_at <= $1 \
         ORDER BY next_run_at, id LIMIT $2 + 0 {lock}"
    )
}

/// The flood guard for `n` workflows (`$1`…`$n`): the oldest unfinished job of
/// each workflow that has one.
fn unfinished_sql(n: usize) -> String {
    format!(
        "SELECT workflow_id, MIN(id) FROM jobs WHERE status IN ('pending', 'running') AND workflow_id IN ({}) \
         GROUP BY workflow_id",
        super::placeholders(1, n)
    )
}

/// The conditional move of a due time: `$1` the next due time, `$2` the
/// workflow, `$3` the due time claimed; `also` adds `SET` clauses.
fn move_due_sql(also: &str) -> String {
    format!("UPDATE workflows SET next_run_at = $1{also} WHERE id = $2 AND next_run_at = $3 AND is_enabled")
}

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
    /// On SQLite the batch runs in the writer lane ([`super::lane`]), on
    /// rusqlite: two statements per due time through sqlx were ~100 µs of
    /// round trips to its connection thread, and 10 000 due workflows took
    /// 1.2–1.6 s to enqueue (cron-burst).
    pub async fn claim_due_workflow_runs(
        &self,
        now: i64,
        limit: i64,
        plan: impl Fn(&DueWorkflow) -> DuePlan + Send + 'static,
    ) -> Result<Vec<(DueWorkflow, ClaimOutcome)>> {
        let lock = match self.dialect() {
            Dialect::Sqlite => return self.claim_due_workflow_runs_sqlite(now, limit, plan).await,
            Dialect::Postgres => "FOR UPDATE SKIP LOCKED",
        };
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

    async fn claim_due_workflow_runs_sqlite(
        &self,
        now: i64,
        limit: i64,
        plan: impl Fn(&DueWorkflow) -> DuePlan + Send + 'static,
    ) -> Result<Vec<(DueWorkflow, ClaimOutcome)>> {
        self.lane()?
            .run(move |conn| {
                // Alone in the lane this is the whole transaction: take the
                // write lock before reading anything, as BEGIN IMMEDIATE does
                // for the sqlx path. In a batch, the lane's own BEGIN IMMEDIATE
                // holds it already and a savepoint keeps this all-or-nothing.
                if conn.is_autocommit() {
                    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
                    let claimed = claim_batch_sqlite(&tx, now, limit, &plan)?;
                    tx.commit()?;
                    Ok(claimed)
                } else {
                    let sp = conn.savepoint()?;
                    let claimed = claim_batch_sqlite(&sp, now, limit, &plan)?;
                    sp.commit()?;
                    Ok(claimed)
                }
            })
            .await
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

    /// How many due times of a workflow the flood guard skipped.
    pub async fn workflow_skipped_runs(&self, workflow_id: i64) -> Result<Option<i64>> {
        Ok(sqlx::query_scalar("SELECT skipped_runs FROM workflows WHERE id = $1")
            .bind(workflow_id)
            .fetch_optional(self.r())
            .await?)
    }
}

/// The SQLite batch claim on the lane's connection, inside its transaction:
/// the sqlx path's statements ([`due_batch_sql`], [`unfinished_sql`],
/// [`move_due_sql`], the job insert), bound by name on the lane's connection.
fn claim_batch_sqlite(
    conn: &rusqlite::Connection,
    now: i64,
    limit: i64,
    plan: &dyn Fn(&DueWorkflow) -> DuePlan,
) -> Result<Vec<(DueWorkflow, ClaimOutcome)>> {
    let params: [(&str, &dyn rusqlite::ToSql); 2] = [("$1", &now), ("$2", &limit)];
    let due = conn
        .prepare_cached(&due_batch_sql(""))?
        .query_map(&params[..], |r| {
            Ok(DueWorkflow {
                id: r.get(0)?,
                agent_id: r.get(1)?,
                name: r.get(2)?,
                schedule: r.get(3)?,
                prompt: r.get(4)?,
                channel_id: r.get(5)?,
                platform: r.get(6)?,
                next_run_at: r.get(7)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    if due.is_empty() {
        return Ok(vec![]);
    }
    // `$1`…`$n` appear in order, so they bind by position.
    let unfinished: HashMap<i64, i64> = conn
        .prepare_cached(&unfinished_sql(due.len()))?
        .query_map(rusqlite::params_from_iter(due.iter().map(|w| w.id)), |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let move_due = |id: i64, due_at: i64, next_run_at: i64, also: &str| -> Result<bool> {
        let params: [(&str, &dyn rusqlite::ToSql); 3] = [("$1", &next_run_at), ("$2", &id), ("$3", &due_at)];
        Ok(conn.prepare_cached(&move_due_sql(also))?.execute(&params[..])? > 0)
    };
    let mut outcomes = Vec::with_capacity(due.len());
    for wf in due {
        let Some(due_at) = wf.next_run_at else { continue };
        let outcome = match plan(&wf) {
            DuePlan::Postpone { next_run_at } => match move_due(wf.id, due_at, next_run_at, "")? {
                true => ClaimOutcome::Postponed,
                false => ClaimOutcome::Lost,
            },
            DuePlan::Fire { next_run_at, mut job } => match unfinished.get(&wf.id) {
                Some(&unfinished_job_id) => {
                    match move_due(wf.id, due_at, next_run_at, ", skipped_runs = skipped_runs + 1")? {
                        true => ClaimOutcome::Skipped { unfinished_job_id },
                        false => ClaimOutcome::Lost,
                    }
                }
                None => match move_due(wf.id, due_at, next_run_at, ", last_run_at = $3")? {
                    true => {
                        job.workflow_id = Some(wf.id);
                        ClaimOutcome::Enqueued { job_id: insert_job_lane(conn, &job, now)? }
                    }
                    false => ClaimOutcome::Lost,
                },
            },
        };
        outcomes.push((wf, outcome));
    }
    Ok(outcomes)
}

/// Claims one due time inside the caller's transaction: moves it on and
/// enqueues the job (recording the run), or — with an unfinished job of the
/// workflow — moves it on and counts a skipped run. Lost when the due time is
/// no longer there (nothing written).
async fn fire(tx: &mut Tx<'_>, run: &WorkflowRun<'_>, unfinished: Option<i64>) -> Result<ClaimOutcome> {
    let (id, due, next) = (run.workflow_id, run.due_at, run.next_run_at);
    Ok(match unfinished {
        Some(unfinished_job_id) => {
            match move_due_time(&mut **tx, id, due, next, ", skipped_runs = skipped_runs + 1").await? {
                true => ClaimOutcome::Skipped { unfinished_job_id },
                false => ClaimOutcome::Lost,
            }
        }
        None => match move_due_time(&mut **tx, id, due, next, ", last_run_at = $3").await? {
            true => {
                let mut job = run.job.clone();
                job.workflow_id = Some(id);
                ClaimOutcome::Enqueued { job_id: insert_job(&mut **tx, &job, run.now).await? }
            }
            false => ClaimOutcome::Lost,
        },
    })
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
    let done = sqlx::query(super::sql(move_due_sql(also)))
        .bind(next_run_at)
        .bind(workflow_id)
        .bind(due_at)
        .execute(ex)
        .await
        .map_err(classify)?;
    Ok(done.rows_affected() > 0)
}
