//! The chat's hot writes on SQLite — enqueue, claim, finish — run by the
//! writer lane ([`super::lane`]) on its own connection. The statements and
//! their values are the queue's own (`db::queue`: `INSERT_JOB`, `job_args`,
//! …), run here in the same order as the sqlx transactions there.
//!
//! Each request is plain statements inside a savepoint, which is the
//! request's transaction when it runs alone and a nested one when the lane
//! commits it in a batch with others. Whatever fails rolls back to the
//! savepoint (rusqlite's `Savepoint` does so when dropped uncommitted), so a
//! request writes all of itself or none.

use rusqlite::Connection;

use super::lane::Lane;
use super::{all, execute, first, scalar};
use crate::clock::now_ms;
use crate::db::accounts::{ACCOUNT_SUCCESS, account_success_args};
use crate::db::queue::*;
use crate::db::usage::{INSERT_USAGE, usage_args};
use crate::db::{DbError, Result};
use crate::domain::usage::UsageRecord;

/// [`crate::db::Store::enqueue_chat`] in the lane.
pub(crate) async fn enqueue_chat(lane: &Lane, req: &ChatRequest) -> Result<Enqueued> {
    let req = req.clone();
    let new_id = new_conversation_id();
    let now = now_ms();
    lane.run(move |conn| {
        let sp = conn.savepoint()?;
        // The lane is the only writer, so looking first is enough: no other
        // transaction can take the same id in between.
        if let Some(key) = inbound_key_args(&req)
            && let Some(seen) = first::<InboundRow>(&sp, INBOUND_SEEN, &key)?
        {
            return Ok(Enqueued::from(seen));
        }
        // The active conversation, opened if missing; the savepoint holds the
        // write lock, so nothing can close it before the job is in.
        let key = conversation_key_args(&req);
        let conversation_id = match first::<(String,)>(&sp, ACTIVE_CONVERSATION, &key)? {
            Some((id,)) => id,
            None => {
                execute(&sp, OPEN_CONVERSATION, &open_conversation_args(&new_id, &req, now))?;
                first::<(String,)>(&sp, ACTIVE_CONVERSATION, &key)?.ok_or(DbError::NotFound)?.0
            }
        };
        let message_id = insert_message_if_conversation(&sp, &conversation_id, "user", &req.content, None, now)?
            .ok_or_else(|| DbError::MissingReference(format!("conversation {conversation_id}")))?;
        let job = chat_job(req.clone(), &conversation_id, message_id);
        let job_id = scalar(&sp, INSERT_JOB, &job_args(&job, now))?;
        let enqueued = Enqueued { conversation_id, message_id, job_id, priority: req.priority, duplicate: false };
        if let Some(record) = inbound_record_args(&req, &enqueued, now) {
            execute(&sp, INBOUND_RECORD, &record)?;
        }
        sp.commit()?;
        Ok(enqueued)
    })
    .await
}

/// [`crate::db::Store::claim_jobs`] in the lane; `statement` is [`claim_sql`]'s.
pub(crate) async fn claim_jobs(
    lane: &Lane,
    statement: String,
    worker_id: &str,
    now: i64,
    lease_ms: i64,
    limit: i64,
) -> Result<Vec<JobRow>> {
    let worker_id = worker_id.to_string();
    lane.run(move |conn| all(conn, &statement, &claim_args(&worker_id, now, lease_ms, limit))).await
}

/// [`crate::db::Store::finish_job`] in the lane: the usage rows (whether or
/// not the lease still holds: the calls were made and billed either way), the
/// completion and the reply, then the accounts' success — best effort, as on
/// Postgres, where it follows the commit: a failure there is logged and the
/// finish still commits. Here it can share the request's savepoint (one
/// writer, no row locks to hold), which keeps it in the same commit.
pub(crate) async fn finish_job(lane: &Lane, f: &Finish<'_>, now: i64) -> Result<Finished> {
    let (job_id, worker_id, reply) = (f.job_id, f.worker_id.to_string(), f.reply.to_string());
    let effects = f.effects.map(str::to_string);
    let conversation_id = f.conversation_id.map(str::to_string);
    let usage = f.usage.to_vec();
    lane.run(move |conn| {
        let f = Finish {
            job_id,
            worker_id: &worker_id,
            reply: &reply,
            conversation_id: conversation_id.as_deref(),
            usage: &usage,
            effects: effects.as_deref(),
        };
        let sp = conn.savepoint()?;
        for u in f.usage {
            scalar::<i64>(&sp, INSERT_USAGE, &usage_args(u))?;
        }
        let finished = if execute(&sp, COMPLETE_JOB, &complete_args(&f, now))? == 0 {
            Finished::LeaseLost // only the usage was written
        } else {
            let message_id = match f.conversation_id {
                Some(conv) => insert_message_if_conversation(&sp, conv, "assistant", f.reply, Some(job_id), now)?,
                None => None,
            };
            Finished::Stored { message_id }
        };
        // Last, and never failing the finish: a statement that fails leaves
        // the savepoint as it was, so the rest still commits.
        accounts_served(&sp, f.usage, now);
        sp.commit()?;
        Ok(finished)
    })
    .await
}

/// Like `queue::insert_message_if_conversation`: counts the message in its
/// conversation and stores it; `None` (nothing written) when the
/// conversation is gone.
fn insert_message_if_conversation(
    conn: &Connection,
    conversation_id: &str,
    role: &str,
    content: &str,
    job_id: Option<i64>,
    now: i64,
) -> Result<Option<i64>> {
    let tokens = estimate_tokens(content);
    if execute(conn, COUNT_MESSAGE, &count_message_args(conversation_id, tokens, now))? == 0 {
        return Ok(None);
    }
    let args = insert_message_args(conversation_id, role, content, tokens, job_id, now);
    Ok(Some(scalar(conn, INSERT_MESSAGE, &args)?))
}

/// `Store::accounts_served` on the lane's connection: each statement on its
/// own, a failure logged (a failed statement leaves the transaction as it was).
fn accounts_served(conn: &Connection, usage: &[UsageRecord], now: i64) {
    for account_id in usage.iter().filter_map(|u| u.account_id) {
        if let Err(error) = execute(conn, ACCOUNT_SUCCESS, &account_success_args(account_id, now)) {
            tracing::warn!(%error, account_id, "cannot record the account's success; its counters lag");
        }
    }
}
