//! The durable job queue and the chat writes that feed it.
//!
//! Guarantees (DESIGN.md):
//! - a job is enqueued in the same transaction as the user message it answers;
//! - a claim is atomic: `FOR UPDATE SKIP LOCKED` on Postgres, one `UPDATE …
//!   RETURNING` through the single write connection on SQLite — two workers
//!   never hold the same attempt;
//! - a claimed job carries a lease (`locked_by`, `lease_expires_at`) that its
//!   worker renews; [`Store::sweep_expired_leases`] returns jobs of dead workers
//!   to pending (or fails them when their attempts are used up);
//! - finishing is conditional on still holding the lease, and the reply is
//!   written in the same transaction (with a unique index on `messages.job_id`),
//!   so a late or duplicate finisher never stores a second reply; the reply's
//!   effects (its tags) are recorded in that same write and applied exactly
//!   once afterwards ([`super::effects`]);
//! - per conversation, a job is claimable only when no earlier job of the same
//!   conversation is pending or running, so replies come in message order.
//!
//! On SQLite the hot writes here (enqueue, claim, finish) run in the writer
//! lane ([`super::sqlite::queue`]): the same statements — the `const`s and
//! `…_args` functions below — in the same order, on rusqlite. The usage of
//! a run's calls is written with its finish (or failure); each serving
//! account's success (rest cleared, message counted) comes last, best effort,
//! on both dialects: after the commit on Postgres, at the end of the lane's
//! savepoint on SQLite (the module docs of `db` say why).

use super::args::{Arg, query, query_scalar};
use super::{DbError, Dialect, Result, Store, classify, from_json, sql, to_json};
use crate::clock::now_ms;
use crate::domain::job::{FailOutcome, Job, JobPayload, NewJob};
use crate::domain::usage::UsageRecord;

const JOB_COLUMNS: &str = "id, agent_id, conversation_id, kind, priority, status, payload, result, error, attempts, \
     max_attempts, run_after, locked_by, lease_expires_at, workflow_id, webhook_id, created_at, started_at, completed_at";

any_row! {
    /// A `jobs` row as the queue reads it ([`JOB_COLUMNS`]); the API's view is `jobs::JobViewRow`.
    pub(crate) struct JobRow {
        id: i64,
        agent_id: i64,
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
        locked_by: Option<String>,
        lease_expires_at: Option<i64>,
        workflow_id: Option<i64>,
        webhook_id: Option<i64>,
        created_at: i64,
        started_at: Option<i64>,
        completed_at: Option<i64>,
    }
}

impl TryFrom<JobRow> for Job {
    type Error = super::DbError;
    fn try_from(r: JobRow) -> Result<Job> {
        Ok(Job {
            payload: from_json::<JobPayload>("jobs.payload", &r.payload)?,
            id: r.id,
            agent_id: r.agent_id,
            conversation_id: r.conversation_id,
            kind: r.kind,
            priority: r.priority,
            status: r.status,
            result: r.result,
            error: r.error,
            attempts: r.attempts,
            max_attempts: r.max_attempts,
            run_after: r.run_after,
            locked_by: r.locked_by,
            lease_expires_at: r.lease_expires_at,
            workflow_id: r.workflow_id,
            webhook_id: r.webhook_id,
            created_at: r.created_at,
            started_at: r.started_at,
            completed_at: r.completed_at,
        })
    }
}

/// A user message to store and answer.
#[derive(Debug, Clone)]
pub struct ChatRequest {
    pub agent_id: i64,
    pub platform: String,
    pub channel_id: String,
    pub user_id: Option<String>,
    pub user_name: Option<String>,
    pub content: String,
    pub priority: i64,
    pub max_attempts: i64,
    /// The platform's own id of the message (a Telegram update, a Discord
    /// message id, an e-mail `Message-ID`): a second message with the same
    /// (platform, channel, id) is not stored again — [`Enqueued::duplicate`].
    pub external_id: Option<String>,
    /// A `/v1` run's transcript, carried in the job's payload.
    pub api: Option<crate::domain::job::ApiChat>,
}

/// What [`Store::enqueue_chat`] wrote — or, for a duplicate, found.
#[derive(Debug, Clone, PartialEq)]
pub struct Enqueued {
    pub conversation_id: String,
    pub message_id: i64,
    pub job_id: i64,
    pub priority: i64,
    /// True when `external_id` was taken in before: nothing was written, and
    /// the ids are those of the first message.
    pub duplicate: bool,
}

/// The end of a successful run.
#[derive(Debug, Clone)]
pub struct Finish<'a> {
    pub job_id: i64,
    pub worker_id: &'a str,
    /// The clean reply (tags stripped); also stored as `jobs.result`.
    pub reply: &'a str,
    /// Store the reply as an assistant message in this conversation.
    pub conversation_id: Option<&'a str>,
    /// The usage of every model call of the run (tool rounds, compaction and
    /// the answer): written in the same write as the reply — and also when
    /// the lease was lost, because the calls were made and billed either way.
    /// Each account's success follows that write (see the module docs).
    pub usage: &'a [UsageRecord],
    /// The reply's effects (its tags: memory, state, delegations, conductor
    /// actions) as JSON, recorded on the job in the same write and applied
    /// later exactly once ([`super::effects`]); `None` when the reply had no
    /// tags, which keeps the finish a single write.
    pub effects: Option<&'a str>,
}

/// What [`Store::finish_job`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finished {
    /// The job is completed; `message_id` is the stored reply, `None` when the
    /// job has no conversation or the conversation was deleted meanwhile.
    Stored { message_id: Option<i64> },
    /// The caller no longer held the lease: only the usage was written.
    LeaseLost,
}

/// Tokens as the original estimates them: ceil(chars / 3.5).
pub fn estimate_tokens(text: &str) -> i64 {
    ((text.chars().count() as f64) / 3.5).ceil() as i64
}

pub(crate) fn new_conversation_id() -> String {
    format!("conv_{}", hex::encode(rand::random::<[u8; 9]>()))
}

type Tx<'c> = sqlx::Transaction<'c, sqlx::Any>;

impl Store {
    /// Enqueues a job on its own.
    /// One statement, so no explicit transaction (two round trips fewer).
    pub async fn enqueue(&self, job: &NewJob) -> Result<i64> {
        insert_job(self.w(), job, now_ms()).await
    }

    /// Finds (or opens) the active conversation of (agent, platform, channel),
    /// stores the user message and enqueues the job that answers it — one
    /// transaction. The caller publishes `JobReady` after this returns.
    pub async fn enqueue_chat(&self, req: &ChatRequest) -> Result<Enqueued> {
        if let Some(lite) = self.sqlite() {
            return super::sqlite::queue::enqueue_chat(&lite.lane, req).await;
        }
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        if let Some(seen) = inbound_seen(&mut *tx, req).await? {
            tx.rollback().await?;
            return Ok(seen);
        }
        let conversation_id = open_conversation(&mut tx, req, now).await?;
        let message_id = insert_message(&mut tx, &conversation_id, "user", &req.content, None, now).await?;
        let job_id = insert_job(&mut *tx, &chat_job(req.clone(), &conversation_id, message_id), now).await?;
        let enqueued = Enqueued { conversation_id, message_id, job_id, priority: req.priority, duplicate: false };
        if let Some(recorded) = inbound_record_args(req, &enqueued, now) {
            let recorded = query(INBOUND_RECORD, recorded).execute(&mut *tx).await.map_err(classify);
            match recorded {
                Ok(_) => {}
                // A concurrent transaction took the same message in first (its
                // commit released our wait on the key): ours is the duplicate.
                Err(DbError::Conflict(_)) => {
                    drop(tx);
                    return inbound_seen(self.w(), req).await?.ok_or(DbError::NotFound);
                }
                Err(e) => return Err(e),
            }
        }
        tx.commit().await?;
        Ok(enqueued)
    }

    pub async fn job(&self, id: i64) -> Result<Option<Job>> {
        let row: Option<JobRow> = sqlx::query_as(sql(format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1")))
            .bind(id)
            .fetch_optional(self.r())
            .await?;
        row.map(Job::try_from).transpose()
    }

    /// Claims up to `limit` due jobs for `worker_id`, holding each for `lease_ms`.
    /// Lower priority number first, then oldest; at most the oldest unfinished
    /// job of each conversation.
    pub async fn claim_jobs(&self, worker_id: &str, limit: i64, lease_ms: i64) -> Result<Vec<Job>> {
        let now = now_ms();
        let statement = claim_sql(self.dialect());
        let rows = match self.sqlite() {
            Some(lite) => {
                super::sqlite::queue::claim_jobs(&lite.lane, statement, worker_id, now, lease_ms, limit).await?
            }
            None => super::args::query_as::<JobRow>(sql(statement), claim_args(worker_id, now, lease_ms, limit))
                .fetch_all(self.w())
                .await
                .map_err(classify)?,
        };
        let mut jobs = rows.into_iter().map(Job::try_from).collect::<Result<Vec<_>>>()?;
        jobs.sort_by_key(|j| (j.priority, j.id));
        Ok(jobs)
    }

    /// Extends the leases `worker_id` holds on `job_ids`; returns how many it still held.
    pub async fn renew_leases(&self, worker_id: &str, job_ids: &[i64], lease_ms: i64) -> Result<u64> {
        if job_ids.is_empty() {
            return Ok(0);
        }
        let statement = format!(
            "UPDATE jobs SET lease_expires_at = $1 WHERE status = 'running' AND locked_by = $2 AND id IN ({})",
            super::placeholders(3, job_ids.len())
        );
        let mut q = sqlx::query(sql(statement)).bind(now_ms() + lease_ms).bind(worker_id);
        for id in job_ids {
            q = q.bind(*id);
        }
        Ok(q.execute(self.w()).await.map_err(classify)?.rows_affected())
    }

    /// Completes a job and stores its reply, if the worker still holds the lease.
    /// Returns the stored message id (or `Some(None)` with no conversation);
    /// `None` when the lease was lost and nothing was written.
    pub async fn finish_job(&self, f: &Finish<'_>) -> Result<Finished> {
        let now = now_ms();
        if f.conversation_id.is_none() && f.usage.is_empty() {
            // Nothing but the job row to write: one statement, no transaction.
            let done = query(COMPLETE_JOB, complete_args(f, now)).execute(self.w()).await.map_err(classify)?;
            return Ok(if done.rows_affected() > 0 {
                Finished::Stored { message_id: None }
            } else {
                Finished::LeaseLost
            });
        }
        if let Some(lite) = self.sqlite() {
            return super::sqlite::queue::finish_job(&lite.lane, f, now).await;
        }
        // The usage rows, the completion and the reply in one transaction;
        // the accounts' success after it (see the module docs of `db`).
        let mut tx = self.w().begin().await?;
        for usage in f.usage {
            insert_usage(&mut tx, usage).await?;
        }
        let done = query(COMPLETE_JOB, complete_args(f, now)).execute(&mut *tx).await.map_err(classify)?;
        if done.rows_affected() == 0 {
            tx.commit().await?; // the usage stays: the calls were made
            self.accounts_served(f.usage).await;
            return Ok(Finished::LeaseLost);
        }
        let message_id = match f.conversation_id {
            Some(conv) => {
                insert_message_if_conversation(&mut tx, conv, "assistant", f.reply, Some(f.job_id), now).await?
            }
            None => None,
        };
        tx.commit().await?;
        self.accounts_served(f.usage).await;
        Ok(Finished::Stored { message_id })
    }

    /// Reports a failed attempt. With `retry_at` and attempts left, the job goes
    /// back to pending until then; otherwise it fails for good.
    /// `usage` is every model call the attempt made: written in the same
    /// transaction (whether or not the lease still holds — the calls were
    /// made), so a failed run is billed like a successful one.
    pub async fn fail_job(
        &self,
        job_id: i64,
        worker_id: &str,
        error: &str,
        retry_at: Option<i64>,
        usage: &[UsageRecord],
    ) -> Result<FailOutcome> {
        let now = now_ms();
        let mut tx = self.w().begin().await?;
        for u in usage {
            insert_usage(&mut tx, u).await?;
        }
        let row: Option<(i64, i64)> = sqlx::query_as(
            "SELECT attempts, max_attempts FROM jobs WHERE id = $1 AND status = 'running' AND locked_by = $2",
        )
        .bind(job_id)
        .bind(worker_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((attempts, max_attempts)) = row else {
            tx.commit().await?; // the usage only
            self.accounts_served(usage).await;
            return Ok(FailOutcome::LostLease);
        };
        let outcome = match retry_at {
            Some(at) if attempts < max_attempts => {
                sqlx::query(
                    "UPDATE jobs SET status = 'pending', error = $1, run_after = $2, locked_by = NULL, \
                     lease_expires_at = NULL WHERE id = $3",
                )
                .bind(error)
                .bind(at)
                .bind(job_id)
                .execute(&mut *tx)
                .await?;
                FailOutcome::Retrying { run_after: at }
            }
            _ => {
                sqlx::query(
                    "UPDATE jobs SET status = 'failed', error = $1, completed_at = $2, locked_by = NULL, \
                     lease_expires_at = NULL WHERE id = $3",
                )
                .bind(error)
                .bind(now)
                .bind(job_id)
                .execute(&mut *tx)
                .await?;
                FailOutcome::Failed
            }
        };
        tx.commit().await?;
        self.accounts_served(usage).await;
        Ok(outcome)
    }

    /// Gives a claimed job back until `run_after` without counting the attempt
    /// (nothing was tried: every provider account rests until then).
    pub async fn defer_job(&self, job_id: i64, worker_id: &str, note: &str, run_after: i64) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE jobs SET status = 'pending', attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END, \
             locked_by = NULL, lease_expires_at = NULL, run_after = $1, error = $2 \
             WHERE id = $3 AND status = 'running' AND locked_by = $4",
        )
        .bind(run_after)
        .bind(note)
        .bind(job_id)
        .bind(worker_id)
        .execute(self.w())
        .await
        .map_err(classify)?;
        Ok(done.rows_affected() > 0)
    }

    /// Gives a claimed job back without counting the attempt (graceful shutdown).
    pub async fn release_job(&self, job_id: i64, worker_id: &str) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE jobs SET status = 'pending', attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END, \
             locked_by = NULL, lease_expires_at = NULL, run_after = $1 WHERE id = $2 AND status = 'running' AND locked_by = $3",
        )
        .bind(now_ms())
        .bind(job_id)
        .bind(worker_id)
        .execute(self.w())
        .await
        .map_err(classify)?;
        Ok(done.rows_affected() > 0)
    }

    /// Returns jobs whose lease expired (their worker died) to pending, or fails
    /// them when their attempts are used up. Returns (requeued, failed).
    pub async fn sweep_expired_leases(&self) -> Result<(u64, u64)> {
        let now = now_ms();
        let mut tx = self.w().begin().await?;
        let failed = sqlx::query(
            "UPDATE jobs SET status = 'failed', error = 'lease expired: the worker running it stopped responding', \
             completed_at = $1, locked_by = NULL, lease_expires_at = NULL \
             WHERE status = 'running' AND lease_expires_at < $1 AND attempts >= max_attempts",
        )
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let requeued = sqlx::query(
            "UPDATE jobs SET status = 'pending', run_after = $1, locked_by = NULL, lease_expires_at = NULL, \
             error = 'lease expired: the worker running it stopped responding; retrying' \
             WHERE status = 'running' AND lease_expires_at < $1",
        )
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok((requeued, failed))
    }

    /// The earliest `run_after` among pending jobs (workers sleep until then).
    pub async fn next_due_at(&self) -> Result<Option<i64>> {
        const DUE: &str = "SELECT MIN(run_after) FROM jobs WHERE status = 'pending'";
        match self.sqlite() {
            Some(lite) => lite.hot.read(|conn| super::sqlite::scalar(conn, DUE, &[])),
            None => Ok(sqlx::query_scalar(DUE).fetch_one(self.r()).await?),
        }
    }

    /// Messages of a conversation, oldest first (id, role, content, created_at).
    pub async fn conversation_messages(&self, conversation_id: &str) -> Result<Vec<StoredMessage>> {
        Ok(sqlx::query_as(
            "SELECT id, role, content, token_estimate, created_at FROM messages WHERE conversation_id = $1 ORDER BY id",
        )
        .bind(conversation_id)
        .fetch_all(self.r())
        .await?)
    }
}

any_row! {
    /// A stored message.
    #[derive(Debug, Clone, PartialEq)]
    pub struct StoredMessage {
        pub id: i64,
        pub role: String,
        pub content: String,
        pub token_estimate: i64,
        pub created_at: i64,
    }
}

// The queue's statements. Each is written once and run by both drivers: by
// sqlx in this file (Postgres; SQLite outside the hot path) and by the SQLite
// writer lane in `sqlite::queue`, with the values of the `…_args` function
// beside it.

/// The message a platform id was stored as (`$1` platform, `$2` channel, `$3` id).
pub(crate) const INBOUND_SEEN: &str = "SELECT conversation_id, message_id, job_id, priority FROM inbound_messages \
     WHERE platform = $1 AND channel_id = $2 AND external_id = $3";

any_row! {
    /// An [`INBOUND_SEEN`] row.
    pub(crate) struct InboundRow {
        conversation_id: String,
        message_id: i64,
        job_id: i64,
        priority: i64,
    }
}

impl From<InboundRow> for Enqueued {
    fn from(r: InboundRow) -> Enqueued {
        Enqueued {
            conversation_id: r.conversation_id,
            message_id: r.message_id,
            job_id: r.job_id,
            priority: r.priority,
            duplicate: true,
        }
    }
}

/// [`INBOUND_SEEN`]'s values; `None` for a message without a platform id.
pub(crate) fn inbound_key_args(req: &ChatRequest) -> Option<[Arg<'_>; 3]> {
    let external_id = req.external_id.as_deref()?;
    Some(args![&req.platform, &req.channel_id, external_id])
}

/// Records which message and job a platform id became.
pub(crate) const INBOUND_RECORD: &str = "INSERT INTO inbound_messages (platform, channel_id, external_id, \
     conversation_id, message_id, job_id, agent_id, priority, received_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";

/// [`INBOUND_RECORD`]'s values; `None` for a message without a platform id.
pub(crate) fn inbound_record_args<'a>(req: &'a ChatRequest, e: &'a Enqueued, now: i64) -> Option<[Arg<'a>; 9]> {
    let external_id = req.external_id.as_deref()?;
    Some(args![
        &req.platform,
        &req.channel_id,
        external_id,
        &e.conversation_id,
        e.message_id,
        e.job_id,
        req.agent_id,
        req.priority,
        now
    ])
}

/// The active conversation of (`$1` agent, `$2` platform, `$3` channel).
pub(crate) const ACTIVE_CONVERSATION: &str =
    "SELECT id FROM conversations WHERE agent_id = $1 AND platform = $2 AND channel_id = $3 AND status = 'active'";

pub(crate) fn conversation_key_args(req: &ChatRequest) -> [Arg<'_>; 3] {
    args![req.agent_id, &req.platform, &req.channel_id]
}

/// Opens the active conversation of (agent, platform, channel) unless one is
/// open: concurrent openers meet on the `conversations_one_active` unique index.
pub(crate) const OPEN_CONVERSATION: &str = "INSERT INTO conversations (id, agent_id, platform, channel_id, user_id, \
     user_name, status, started_at, last_message_at) VALUES ($1, $2, $3, $4, $5, $6, 'active', $7, $7) \
     ON CONFLICT (agent_id, platform, channel_id) WHERE status = 'active' DO NOTHING";

pub(crate) fn open_conversation_args<'a>(id: &'a str, req: &'a ChatRequest, now: i64) -> [Arg<'a>; 7] {
    args![id, req.agent_id, &req.platform, &req.channel_id, &req.user_id, &req.user_name, now]
}

/// Counts a new message in its conversation (`$1` its tokens, `$2` now, `$3`
/// the conversation); changes no row when the conversation is gone, which
/// makes it the existence check too.
pub(crate) const COUNT_MESSAGE: &str = "UPDATE conversations SET message_count = message_count + 1, \
     total_tokens = total_tokens + $1, last_message_at = $2 WHERE id = $3";

pub(crate) fn count_message_args(conversation_id: &str, tokens: i64, now: i64) -> [Arg<'_>; 3] {
    args![tokens, now, conversation_id]
}

pub(crate) const INSERT_MESSAGE: &str = "INSERT INTO messages (conversation_id, role, content, token_estimate, \
     job_id, created_at) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id";

pub(crate) fn insert_message_args<'a>(
    conversation_id: &'a str,
    role: &'a str,
    content: &'a str,
    tokens: i64,
    job_id: Option<i64>,
    now: i64,
) -> [Arg<'a>; 6] {
    args![conversation_id, role, content, tokens, job_id, now]
}

/// A new job's row.
pub(crate) const INSERT_JOB: &str = "INSERT INTO jobs (agent_id, conversation_id, kind, priority, status, payload, \
     attempts, max_attempts, run_after, workflow_id, webhook_id, created_at) \
     VALUES ($1, $2, $3, $4, 'pending', $5, 0, $6, $7, $8, $9, $10) RETURNING id";

pub(crate) fn job_args(job: &NewJob, now: i64) -> [Arg<'_>; 10] {
    args![
        job.agent_id,
        &job.conversation_id,
        job.kind.as_str(),
        job.priority,
        to_json(&job.payload),
        job.max_attempts.max(1),
        job.run_after.unwrap_or(now),
        job.workflow_id,
        job.webhook_id,
        now
    ]
}

/// The claim of up to `$4` due jobs for worker `$1` until `$2`, at `$3`.
/// Lower priority number first, then oldest; at most the oldest unfinished
/// job of each conversation.
///
/// Postgres locks the candidates (`FOR UPDATE SKIP LOCKED`: concurrent
/// claimers take disjoint jobs). SQLite has one writer; there `+status`
/// keeps the outer check off the status index, so the claimed ids are looked
/// up by rowid instead of by scanning every pending job (EXPLAIN QUERY PLAN:
/// "SEARCH jobs USING INTEGER PRIMARY KEY" instead of "USING COVERING INDEX
/// jobs_claim (status=?)").
pub(crate) fn claim_sql(dialect: Dialect) -> String {
    let (lock, status) = match dialect {
        Dialect::Postgres => ("FOR UPDATE SKIP LOCKED", "status"),
        Dialect::Sqlite => ("", "+status"),
    };
    format!(
        "UPDATE jobs SET status = 'running', attempts = attempts + 1, locked_by = $1, lease_expires_at = $2, \
         started_at = $3 WHERE id IN (SELECT j.id FROM jobs j WHERE j.status = 'pending' AND j.run_after <= $3 \
         AND (j.conversation_id IS NULL OR NOT EXISTS (SELECT 1 FROM jobs e WHERE e.conversation_id = j.conversation_id \
         AND e.id < j.id AND e.status IN ('pending', 'running'))) ORDER BY j.priority, j.id LIMIT $4 + 0 {lock}) \
         AND {status} = 'pending' RETURNING {JOB_COLUMNS}"
    )
}

pub(crate) fn claim_args(worker_id: &str, now: i64, lease_ms: i64, limit: i64) -> [Arg<'_>; 4] {
    args![worker_id, now + lease_ms, now, limit]
}

/// The conditional completion of a job: only while `$4` holds it.
pub(crate) const COMPLETE_JOB: &str = "UPDATE jobs SET status = 'completed', result = $1, error = NULL, \
     completed_at = $2, locked_by = NULL, lease_expires_at = NULL, effects = $5 \
     WHERE id = $3 AND status = 'running' AND locked_by = $4";

pub(crate) fn complete_args<'a>(f: &'a Finish<'a>, now: i64) -> [Arg<'a>; 5] {
    args![f.reply, now, f.job_id, f.worker_id, f.effects]
}

/// The job that answers a stored chat message (both dialects' enqueue).
pub(crate) fn chat_job(req: ChatRequest, conversation_id: &str, message_id: i64) -> NewJob {
    let payload = JobPayload {
        prompt: req.content,
        conversation_id: Some(conversation_id.to_string()),
        channel_id: Some(req.channel_id),
        platform: Some(req.platform),
        message_id: Some(message_id),
        user_name: req.user_name,
        extra: serde_json::Value::Null,
        api: req.api,
    };
    let mut job = NewJob::new(req.agent_id, crate::domain::job::JobKind::Message, req.priority, payload);
    job.conversation_id = Some(conversation_id.to_string());
    job.max_attempts = req.max_attempts;
    job
}

pub(crate) async fn insert_job<'e>(
    ex: impl sqlx::Executor<'e, Database = sqlx::Any>,
    job: &NewJob,
    now: i64,
) -> Result<i64> {
    query_scalar(INSERT_JOB, job_args(job, now)).fetch_one(ex).await.map_err(classify)
}

async fn insert_usage(tx: &mut Tx<'_>, u: &UsageRecord) -> Result<()> {
    super::usage::insert_usage_row(&mut **tx, u).await.map(|_| ())
}

impl Store {
    /// Records a served model call on its own (usage row, then its account's
    /// success), for calls whose usage does not travel with a reply (tool
    /// rounds, compaction summaries, runs that failed after the call).
    pub async fn record_call(&self, u: &UsageRecord) -> Result<()> {
        super::usage::insert_usage_row(self.w(), u).await?;
        self.accounts_served(std::slice::from_ref(u)).await;
        Ok(())
    }
}

/// The message `req.external_id` was first stored as, if it was.
async fn inbound_seen<'e, E>(executor: E, req: &ChatRequest) -> Result<Option<Enqueued>>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let Some(key) = inbound_key_args(req) else { return Ok(None) };
    let row: Option<InboundRow> = super::args::query_as(INBOUND_SEEN, key).fetch_optional(executor).await?;
    Ok(row.map(Enqueued::from))
}

/// The active conversation of (agent, platform, channel), opened if missing.
/// Concurrent openers meet on the `conversations_one_active` unique index.
async fn open_conversation(tx: &mut Tx<'_>, req: &ChatRequest, now: i64) -> Result<String> {
    // Most messages continue a conversation: one lookup, no insert attempt.
    if let Some(id) = active_conversation(tx, req).await? {
        return Ok(id);
    }
    query(OPEN_CONVERSATION, open_conversation_args(&new_conversation_id(), req, now))
        .execute(&mut **tx)
        .await
        .map_err(classify)?;
    active_conversation(tx, req).await?.ok_or(super::DbError::NotFound)
}

async fn active_conversation(tx: &mut Tx<'_>, req: &ChatRequest) -> Result<Option<String>> {
    Ok(query_scalar(ACTIVE_CONVERSATION, conversation_key_args(req)).fetch_optional(&mut **tx).await?)
}

/// Stores a message (tokens estimated as the original does) and advances the
/// conversation's counters, inside the caller's transaction. An unknown
/// conversation is [`DbError::MissingReference`] (nothing written).
pub(crate) async fn insert_message(
    tx: &mut Tx<'_>,
    conversation_id: &str,
    role: &str,
    content: &str,
    job_id: Option<i64>,
    now: i64,
) -> Result<i64> {
    insert_message_if_conversation(tx, conversation_id, role, content, job_id, now)
        .await?
        .ok_or_else(|| DbError::MissingReference(format!("conversation {conversation_id}")))
}

/// Like [`insert_message`], when the conversation still exists (it may have
/// been deleted while its job ran); `None` and nothing written otherwise. The
/// counter update comes first and doubles as the existence check.
async fn insert_message_if_conversation(
    tx: &mut Tx<'_>,
    conversation_id: &str,
    role: &str,
    content: &str,
    job_id: Option<i64>,
    now: i64,
) -> Result<Option<i64>> {
    let tokens = estimate_tokens(content);
    let counted = query(COUNT_MESSAGE, count_message_args(conversation_id, tokens, now)).execute(&mut **tx).await?;
    if counted.rows_affected() == 0 {
        return Ok(None);
    }
    let args = insert_message_args(conversation_id, role, content, tokens, job_id, now);
    Ok(Some(query_scalar(INSERT_MESSAGE, args).fetch_one(&mut **tx).await.map_err(classify)?))
}

/// Queue figures for the metrics gauges.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueGauges {
    pub pending: i64,
    pub running: i64,
    pub rate_limited_accounts: i64,
}

impl Store {
    pub async fn queue_gauges(&self) -> Result<QueueGauges> {
        let (pending, running): (i64, i64) = sqlx::query_as(
            "SELECT CAST(COALESCE(SUM(CASE WHEN status = 'pending' THEN 1 ELSE 0 END), 0) AS BIGINT), \
             CAST(COALESCE(SUM(CASE WHEN status = 'running' THEN 1 ELSE 0 END), 0) AS BIGINT) \
             FROM jobs WHERE status IN ('pending', 'running')",
        )
        .fetch_one(self.r())
        .await?;
        let rate_limited_accounts: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM accounts WHERE rate_limited_until IS NOT NULL AND rate_limited_until > $1",
        )
        .bind(now_ms())
        .fetch_one(self.r())
        .await?;
        Ok(QueueGauges { pending, running, rate_limited_accounts })
    }
}

impl Store {
    /// Creates the scratch table of [`Store::bench_raw_insert_update`].
    #[doc(hidden)]
    pub async fn bench_raw_prepare(&self) -> Result<()> {
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS bench_raw (id BIGINT PRIMARY KEY, status TEXT NOT NULL, payload TEXT NOT NULL)",
        )
        .execute(self.w())
        .await?;
        Ok(())
    }

    /// The queue benchmark's baseline: one raw single-row insert and update in
    /// one transaction, on a scratch table shaped like `jobs`.
    #[doc(hidden)]
    pub async fn bench_raw_insert_update(&self) -> Result<()> {
        let mut tx = self.w().begin().await?;
        let id = rand::random::<i64>().abs();
        sqlx::query("INSERT INTO bench_raw (id, status, payload) VALUES ($1, 'pending', '{\"prompt\":\"noop\"}')")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE bench_raw SET status = 'completed' WHERE id = $1").bind(id).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }
}

impl Store {
    /// For the cron benchmark: workflow jobs in all, and distinct workflows among them.
    #[doc(hidden)]
    pub async fn workflow_job_counts(&self) -> Result<(i64, i64)> {
        Ok(sqlx::query_as(
            "SELECT COUNT(*), COUNT(DISTINCT workflow_id) FROM jobs WHERE kind = 'workflow' AND workflow_id IS NOT NULL",
        )
        .fetch_one(self.r())
        .await?)
    }
}
