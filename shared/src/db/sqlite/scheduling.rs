//! The scheduler's batch claim on SQLite, in the writer lane: the sqlx path's
//! statements (`db::scheduling`: `due_batch_sql`, `unfinished_sql`,
//! `move_due_sql`, `SET_LAST_ERROR`, the queue's job insert) in the same
//! order, on the lane's connection. Two statements per due time through sqlx
//! were ~100 µs of round trips to its connection thread, and 10 000 due
//! workflows took 1.2–1.6 s to enqueue (cron-burst).

use std::collections::HashMap;

use rusqlite::Connection;

use super::lane::Lane;
use super::{all, execute, scalar};
use crate::db::Result;
use crate::db::args::Arg;
use crate::db::queue::{INSERT_JOB, job_args};
use crate::db::scheduling::*;

/// `Store::claim_due_workflow_runs` in the lane.
pub(crate) async fn claim_due_workflow_runs(
    lane: &Lane,
    now: i64,
    limit: i64,
    plan: impl Fn(&DueWorkflow) -> DuePlan + Send + 'static,
) -> Result<Vec<(DueWorkflow, ClaimOutcome)>> {
    lane.run(move |conn| {
        // Alone in the lane this is the whole transaction: take the write
        // lock before reading anything, as BEGIN IMMEDIATE does for the sqlx
        // path. In a batch, the lane's own BEGIN IMMEDIATE holds it already
        // and a savepoint keeps this all-or-nothing.
        if conn.is_autocommit() {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let claimed = claim_batch(&tx, now, limit, &plan)?;
            tx.commit()?;
            Ok(claimed)
        } else {
            let sp = conn.savepoint()?;
            let claimed = claim_batch(&sp, now, limit, &plan)?;
            sp.commit()?;
            Ok(claimed)
        }
    })
    .await
}

/// The batch claim inside the caller's transaction.
fn claim_batch(
    conn: &Connection,
    now: i64,
    limit: i64,
    plan: &dyn Fn(&DueWorkflow) -> DuePlan,
) -> Result<Vec<(DueWorkflow, ClaimOutcome)>> {
    let due: Vec<DueWorkflow> = all(conn, &due_batch_sql(""), &args![now, limit])?;
    if due.is_empty() {
        return Ok(vec![]);
    }
    let ids: Vec<Arg> = due.iter().map(|w| Arg::from(w.id)).collect();
    let unfinished: HashMap<i64, i64> =
        all::<(i64, i64)>(conn, &unfinished_sql(due.len()), &ids)?.into_iter().collect();
    let move_due = |id: i64, due_at: i64, next_run_at: i64, also: &str| -> Result<bool> {
        Ok(execute(conn, &move_due_sql(also), &move_due_args(id, due_at, next_run_at))? > 0)
    };
    let mut outcomes = Vec::with_capacity(due.len());
    for wf in due {
        let Some(due_at) = wf.next_run_at else { continue };
        let outcome = match plan(&wf) {
            DuePlan::Postpone { next_run_at } => match move_due(wf.id, due_at, next_run_at, "")? {
                true => ClaimOutcome::Postponed,
                false => ClaimOutcome::Lost,
            },
            DuePlan::OverBudget { next_run_at, reason } => match move_due(wf.id, due_at, next_run_at, SKIPPED)? {
                true => {
                    execute(conn, SET_LAST_ERROR, &args![&reason, wf.id])?;
                    ClaimOutcome::OverBudget
                }
                false => ClaimOutcome::Lost,
            },
            DuePlan::Fire { next_run_at, mut job } => match unfinished.get(&wf.id) {
                Some(&unfinished_job_id) => match move_due(wf.id, due_at, next_run_at, SKIPPED)? {
                    true => ClaimOutcome::Skipped { unfinished_job_id },
                    false => ClaimOutcome::Lost,
                },
                None => match move_due(wf.id, due_at, next_run_at, RAN)? {
                    true => {
                        job.workflow_id = Some(wf.id);
                        ClaimOutcome::Enqueued { job_id: scalar(conn, INSERT_JOB, &job_args(&job, now))? }
                    }
                    false => ClaimOutcome::Lost,
                },
            },
        };
        outcomes.push((wf, outcome));
    }
    Ok(outcomes)
}
