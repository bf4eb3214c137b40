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

use super::{DbError, Dialect, Result, Store, classify, from_json, sql, to_json};
use crate::clock::now_ms;
use crate::domain::job::{FailOutcome, Job, JobPayload, NewJob};
use crate::domain::usage::UsageRecord;

const JOB_COLUMNS: &str = "id, agent_id, conversation_id, kind, priority, status, payload, result, error, attempts, \
     max_attempts, run_after, locked_by, lease_expires_at, workflow_id, webhook_id, created_at, started_at, completed_at";

any_row! {
    struct JobRow {
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

/// The message a platform id was stored as; one text for both write paths.
const INBOUND_SEEN: &str = "SELECT conversation_id, message_id, job_id, priority FROM inbound_messages \
     WHERE platform = $1 AND channel_id = $2 AND external_id = $3";
const INBOUND_RECORD: &str = "INSERT INTO inbound_messages (platform, channel_id, external_id, conversation_id, \
     message_id, job_id, agent_id, priority, received_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";

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
    /// the answer): written, with each account's success, in the same write
    /// as the reply — and also when the lease was lost, because the calls
    /// were made and billed either way.
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

fn new_conversation_id() -> String {
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
        if self.dialect() == Dialect::Sqlite {
            return self.enqueue_chat_sqlite(req).await;
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
        if let Some(external_id) = &req.external_id {
            let recorded = sqlx::query(INBOUND_RECORD)
                .bind(&req.platform)
                .bind(&req.channel_id)
                .bind(external_id)
                .bind(&enqueued.conversation_id)
                .bind(message_id)
                .bind(job_id)
                .bind(req.agent_id)
                .bind(req.priority)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(classify);
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
        // SQLite: `+status` keeps the outer check off the status index, so the
        // claimed ids are looked up by rowid instead of by scanning every
        // pending job (EXPLAIN QUERY PLAN: "SEARCH jobs USING INTEGER PRIMARY
        // KEY" instead of "USING COVERING INDEX jobs_claim (status=?)").
        let (lock, status) = match self.dialect() {
            Dialect::Postgres => ("FOR UPDATE SKIP LOCKED", "status"),
            Dialect::Sqlite => ("", "+status"),
        };
        let statement = format!(
            "UPDATE jobs SET status = 'running', attempts = attempts + 1, locked_by = $1, lease_expires_at = $2, \
             started_at = $3 WHERE id IN (SELECT j.id FROM jobs j WHERE j.status = 'pending' AND j.run_after <= $3 \
             AND (j.conversation_id IS NULL OR NOT EXISTS (SELECT 1 FROM jobs e WHERE e.conversation_id = j.conversation_id \
             AND e.id < j.id AND e.status IN ('pending', 'running'))) ORDER BY j.priority, j.id LIMIT $4 + 0 {lock}) \
             AND {status} = 'pending' RETURNING {JOB_COLUMNS}"
        );
        let rows = match self.dialect() {
            Dialect::Sqlite => self.claim_jobs_sqlite(statement, worker_id, now, lease_ms, limit).await?,
            Dialect::Postgres => sqlx::query_as::<_, JobRow>(sql(statement))
                .bind(worker_id)
                .bind(now + lease_ms)
                .bind(now)
                .bind(limit)
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
            let done = complete_job(self.w(), f, now).await?;
            return Ok(if done.rows_affected() > 0 {
                Finished::Stored { message_id: None }
            } else {
                Finished::LeaseLost
            });
        }
        if self.dialect() == Dialect::Sqlite {
            return self.finish_job_sqlite(f, now).await;
        }
        // Postgres: the usage rows inside the transaction, the accounts'
        // success after the commit — every run updates the same few account
        // rows, and holding their row locks across the transaction serialised
        // the workers (chat-throughput fell from ~430 to ~230 jobs/s when it
        // was inside).
        let mut tx = self.w().begin().await?;
        for usage in f.usage {
            insert_usage(&mut tx, usage).await?;
        }
        let done = complete_job(&mut *tx, f, now).await?;
        if done.rows_affected() == 0 {
            tx.commit().await?; // the usage stays: the calls were made
            self.accounts_served(f.usage).await?;
            return Ok(Finished::LeaseLost);
        }
        let message_id = match f.conversation_id {
            Some(conv) => {
                insert_message_if_conversation(&mut tx, conv, "assistant", f.reply, Some(f.job_id), now).await?
            }
            None => None,
        };
        tx.commit().await?;
        self.accounts_served(f.usage).await?;
        Ok(Finished::Stored { message_id })
    }

    /// Clears each serving account's rest and counts its message (Postgres,
    /// after the commit; the SQLite lane does it inside).
    async fn accounts_served(&self, usage: &[UsageRecord]) -> Result<()> {
        for u in usage {
            if let Some(account_id) = u.account_id {
                account_success(self.w(), account_id, u.created_at).await?;
            }
        }
        Ok(())
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
            record_call(&mut tx, u).await?;
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
        match self.hot_read(|conn| Ok(conn.prepare_cached(DUE)?.query_row([], |r| r.get(0))?)) {
            Some(due) => due,
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

/// The chat's hot writes on SQLite, run by the writer lane ([`super::lane`])
/// on its own connection: each is plain statements inside a savepoint, which
/// is the request's transaction when it runs alone and a nested one when the
/// lane commits it in a batch with others. Whatever fails rolls back to the
/// savepoint (rusqlite's `Savepoint` does so when dropped uncommitted), so a
/// request writes all of itself or none.
///
/// The statements mirror the Postgres transactions above; the contract tests
/// run both. Postgres keeps its plain transactions: its round trips run in
/// parallel over the pool.
impl Store {
    pub(super) fn lane(&self) -> Result<&super::lane::Lane> {
        // Only SQLite comes here, and a SQLite store always has its lane.
        self.lane
            .as_deref()
            .ok_or_else(|| DbError::Other("a SQLite lane write on a store without a writer lane".into()))
    }

    async fn enqueue_chat_sqlite(&self, req: &ChatRequest) -> Result<Enqueued> {
        let req = req.clone();
        let new_id = new_conversation_id();
        let now = now_ms();
        self.lane()?
            .run(move |conn| {
                let tokens = estimate_tokens(&req.content);
                let sp = conn.savepoint()?;
                // The lane is the only writer, so looking first is enough: no
                // other transaction can take the same id in between.
                if let Some(external_id) = &req.external_id {
                    let params: [(&str, &dyn rusqlite::ToSql); 3] =
                        [("$1", &req.platform), ("$2", &req.channel_id), ("$3", external_id)];
                    let seen = sp
                        .prepare_cached(INBOUND_SEEN)?
                        .query_map(&params[..], |r| {
                            Ok(Enqueued {
                                conversation_id: r.get(0)?,
                                message_id: r.get(1)?,
                                job_id: r.get(2)?,
                                priority: r.get(3)?,
                                duplicate: true,
                            })
                        })?
                        .next()
                        .transpose()?;
                    if let Some(seen) = seen {
                        return Ok(seen);
                    }
                }
                // The active conversation of (agent, platform, channel), opened
                // if missing; the savepoint holds the write lock, so nothing can
                // close it before the job is in.
                sp.prepare_cached(
                    "INSERT INTO conversations (id, agent_id, platform, channel_id, user_id, user_name, status, \
                     started_at, last_message_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'active', ?7, ?7) \
                     ON CONFLICT (agent_id, platform, channel_id) WHERE status = 'active' DO NOTHING",
                )?
                .execute(rusqlite::params![
                    new_id,
                    req.agent_id,
                    req.platform,
                    req.channel_id,
                    req.user_id,
                    req.user_name,
                    now
                ])?;
                let conversation_id: String = sp
                    .prepare_cached(
                        "UPDATE conversations SET message_count = message_count + 1, total_tokens = total_tokens + ?1, \
                         last_message_at = ?2 WHERE agent_id = ?3 AND platform = ?4 AND channel_id = ?5 \
                         AND status = 'active' RETURNING id",
                    )?
                    .query_row(rusqlite::params![tokens, now, req.agent_id, req.platform, req.channel_id], |r| {
                        r.get(0)
                    })?;
                let message_id: i64 = sp
                    .prepare_cached(
                        "INSERT INTO messages (conversation_id, role, content, token_estimate, job_id, created_at) \
                         VALUES (?1, 'user', ?2, ?3, NULL, ?4) RETURNING id",
                    )?
                    .query_row(rusqlite::params![conversation_id, req.content, tokens, now], |r| r.get(0))?;
                let (priority, agent_id) = (req.priority, req.agent_id);
                let (platform, channel_id, external_id) =
                    (req.platform.clone(), req.channel_id.clone(), req.external_id.clone());
                let job_id = insert_job_lane(&sp, &chat_job(req, &conversation_id, message_id), now)?;
                if let Some(external_id) = external_id {
                    let params: [(&str, &dyn rusqlite::ToSql); 9] = [
                        ("$1", &platform),
                        ("$2", &channel_id),
                        ("$3", &external_id),
                        ("$4", &conversation_id),
                        ("$5", &message_id),
                        ("$6", &job_id),
                        ("$7", &agent_id),
                        ("$8", &priority),
                        ("$9", &now),
                    ];
                    sp.prepare_cached(INBOUND_RECORD)?.execute(&params[..])?;
                }
                sp.commit()?;
                Ok(Enqueued { conversation_id, message_id, job_id, priority, duplicate: false })
            })
            .await
    }

    async fn claim_jobs_sqlite(
        &self,
        statement: String,
        worker_id: &str,
        now: i64,
        lease_ms: i64,
        limit: i64,
    ) -> Result<Vec<JobRow>> {
        let worker_id = worker_id.to_string();
        self.lane()?
            .run(move |conn| {
                let mut claim = conn.prepare_cached(&statement)?;
                let params: [(&str, &dyn rusqlite::ToSql); 4] =
                    [("$1", &worker_id), ("$2", &(now + lease_ms)), ("$3", &now), ("$4", &limit)];
                let rows = claim.query_map(&params[..], job_row)?.collect::<rusqlite::Result<Vec<_>>>()?;
                Ok(rows)
            })
            .await
    }

    async fn finish_job_sqlite(&self, f: &Finish<'_>, now: i64) -> Result<Finished> {
        let (job_id, worker_id, reply) = (f.job_id, f.worker_id.to_string(), f.reply.to_string());
        let effects = f.effects.map(str::to_string);
        let conversation_id = f.conversation_id.map(str::to_string);
        let usage = f.usage.to_vec();
        self.lane()?
            .run(move |conn| {
                let sp = conn.savepoint()?;
                // The usage rows and the accounts' success whether or not the
                // lease still holds: the calls were made and billed either way.
                for u in &usage {
                    sp.prepare_cached(
                        "INSERT INTO usage (account_id, agent_id, conversation_id, job_id, provider, model, \
                         input_tokens, output_tokens, cost_usd, duration_ms, created_at, cache_read_tokens, \
                         cache_write_tokens) VALUES \
                         ((SELECT id FROM accounts WHERE id = ?1), (SELECT id FROM agents WHERE id = ?2), \
                         ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
                    )?
                    .execute(rusqlite::params![
                        u.account_id,
                        u.agent_id,
                        u.conversation_id,
                        u.job_id,
                        u.provider,
                        u.model,
                        u.input_tokens,
                        u.output_tokens,
                        u.cost_usd,
                        u.duration_ms,
                        u.created_at,
                        u.cache_read_tokens,
                        u.cache_write_tokens
                    ])?;
                    if let Some(account_id) = u.account_id {
                        sp.prepare_cached(
                            "UPDATE accounts SET rate_limited_until = NULL, retry_count = 0, \
                             total_messages = total_messages + 1, updated_at = ?1 WHERE id = ?2",
                        )?
                        .execute(rusqlite::params![now, account_id])?;
                    }
                }
                let done = sp
                    .prepare_cached(
                        "UPDATE jobs SET status = 'completed', result = ?1, error = NULL, completed_at = ?2, \
                         locked_by = NULL, lease_expires_at = NULL, effects = ?5 \
                         WHERE id = ?3 AND status = 'running' AND locked_by = ?4",
                    )?
                    .execute(rusqlite::params![reply, now, job_id, worker_id, effects])?;
                if done == 0 {
                    sp.commit()?;
                    return Ok(Finished::LeaseLost); // only the usage was written
                }
                let mut message_id = None;
                if let Some(conv) = &conversation_id {
                    let tokens = estimate_tokens(&reply);
                    let counted = sp
                        .prepare_cached(
                            "UPDATE conversations SET message_count = message_count + 1, \
                             total_tokens = total_tokens + ?1, last_message_at = ?2 WHERE id = ?3",
                        )?
                        .execute(rusqlite::params![tokens, now, conv])?;
                    if counted == 1 {
                        message_id = Some(
                            sp.prepare_cached(
                                "INSERT INTO messages (conversation_id, role, content, token_estimate, job_id, \
                                 created_at) VALUES (?1, 'assistant', ?2, ?3, ?4, ?5) RETURNING id",
                            )?
                            .query_row(rusqlite::params![conv, reply, tokens, job_id, now], |r| r.get(0))?,
                        );
                    }
                }
                sp.commit()?;
                Ok(Finished::Stored { message_id })
            })
            .await
    }
}

/// A claimed job's row, in [`JOB_COLUMNS`] order, as the lane reads it.
fn job_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<JobRow> {
    Ok(JobRow {
        id: r.get(0)?,
        agent_id: r.get(1)?,
        conversation_id: r.get(2)?,
        kind: r.get(3)?,
        priority: r.get(4)?,
        status: r.get(5)?,
        payload: r.get(6)?,
        result: r.get(7)?,
        error: r.get(8)?,
        attempts: r.get(9)?,
        max_attempts: r.get(10)?,
        run_after: r.get(11)?,
        locked_by: r.get(12)?,
        lease_expires_at: r.get(13)?,
        workflow_id: r.get(14)?,
        webhook_id: r.get(15)?,
        created_at: r.get(16)?,
        started_at: r.get(17)?,
        completed_at: r.get(18)?,
    })
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

/// A new job's row; [`insert_job`] and [`insert_job_lane`] bind it alike.
const INSERT_JOB: &str = "INSERT INTO jobs (agent_id, conversation_id, kind, priority, status, payload, attempts, \
     max_attempts, run_after, workflow_id, webhook_id, created_at) \
     VALUES ($1, $2, $3, $4, 'pending', $5, 0, $6, $7, $8, $9, $10) RETURNING id";

/// The job that answers a stored chat message (both dialects' enqueue).
fn chat_job(req: ChatRequest, conversation_id: &str, message_id: i64) -> NewJob {
    let payload = JobPayload {
        prompt: req.content,
        conversation_id: Some(conversation_id.to_string()),
        channel_id: Some(req.channel_id),
        platform: Some(req.platform),
        message_id: Some(message_id),
        user_name: req.user_name,
        extra: serde_json::Value::Null,
    };
    let mut job = NewJob::new(req.agent_id, crate::domain::job::JobKind::Message, req.priority, payload);
    job.conversation_id = Some(conversation_id.to_string());
    job.max_attempts = req.max_attempts;
    job
}

/// [`insert_job`] on the writer lane's connection, inside its transaction.
pub(crate) fn insert_job_lane(conn: &rusqlite::Connection, job: &NewJob, now: i64) -> Result<i64> {
    let params: [(&str, &dyn rusqlite::ToSql); 10] = [
        ("$1", &job.agent_id),
        ("$2", &job.conversation_id),
        ("$3", &job.kind.as_str()),
        ("$4", &job.priority),
        ("$5", &to_json(&job.payload)),
        ("$6", &job.max_attempts.max(1)),
        ("$7", &job.run_after.unwrap_or(now)),
        ("$8", &job.workflow_id),
        ("$9", &job.webhook_id),
        ("$10", &now),
    ];
    Ok(conn.prepare_cached(INSERT_JOB)?.query_row(&params[..], |r| r.get(0))?)
}

pub(crate) async fn insert_job<'e>(
    ex: impl sqlx::Executor<'e, Database = sqlx::Any>,
    job: &NewJob,
    now: i64,
) -> Result<i64> {
    sqlx::query_scalar(INSERT_JOB)
        .bind(job.agent_id)
        .bind(&job.conversation_id)
        .bind(job.kind.as_str())
        .bind(job.priority)
        .bind(to_json(&job.payload))
        .bind(job.max_attempts.max(1))
        .bind(job.run_after.unwrap_or(now))
        .bind(job.workflow_id)
        .bind(job.webhook_id)
        .bind(now)
        .fetch_one(ex)
        .await
        .map_err(classify)
}

/// A served model call, inside the caller's transaction: its usage row (an
/// account or agent deleted meanwhile is stored as NULL, never refused) and its
/// account's success (rest cleared, message counted).
async fn record_call(tx: &mut Tx<'_>, u: &UsageRecord) -> Result<()> {
    insert_usage(tx, u).await?;
    if let Some(account_id) = u.account_id {
        account_success(&mut **tx, account_id, u.created_at).await?;
    }
    Ok(())
}

pub(crate) async fn account_success<'e>(
    ex: impl sqlx::Executor<'e, Database = sqlx::Any>,
    account_id: i64,
    at: i64,
) -> Result<()> {
    sqlx::query(
        "UPDATE accounts SET rate_limited_until = NULL, retry_count = 0, total_messages = total_messages + 1, \
         updated_at = $1 WHERE id = $2",
    )
    .bind(at)
    .bind(account_id)
    .execute(ex)
    .await?;
    Ok(())
}

async fn insert_usage(tx: &mut Tx<'_>, u: &UsageRecord) -> Result<()> {
    super::usage::insert_usage_row(&mut **tx, u).await.map(|_| ())
}

impl Store {
    /// Records a served model call on its own (usage row + account success),
    /// for calls whose usage does not travel with a reply (tool rounds,
    /// compaction summaries, runs that failed after the call).
    pub async fn record_call(&self, u: &UsageRecord) -> Result<()> {
        let mut tx = self.w().begin().await?;
        record_call(&mut tx, u).await?;
        tx.commit().await?;
        Ok(())
    }
}

/// The conditional completion of a job: only while `f.worker_id` holds it.
async fn complete_job<'e>(
    ex: impl sqlx::Executor<'e, Database = sqlx::Any>,
    f: &Finish<'_>,
    now: i64,
) -> Result<sqlx::any::AnyQueryResult> {
    sqlx::query(
        "UPDATE jobs SET status = 'completed', result = $1, error = NULL, completed_at = $2, locked_by = NULL, \
         lease_expires_at = NULL, effects = $5 WHERE id = $3 AND status = 'running' AND locked_by = $4",
    )
    .bind(f.reply)
    .bind(now)
    .bind(f.job_id)
    .bind(f.worker_id)
    .bind(f.effects)
    .execute(ex)
    .await
    .map_err(classify)
}

/// The message `req.external_id` was first stored as, if it was.
async fn inbound_seen<'e, E>(executor: E, req: &ChatRequest) -> Result<Option<Enqueued>>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let Some(external_id) = &req.external_id else { return Ok(None) };
    let row: Option<(String, i64, i64, i64)> = sqlx::query_as(INBOUND_SEEN)
        .bind(&req.platform)
        .bind(&req.channel_id)
        .bind(external_id)
        .fetch_optional(executor)
        .await?;
    Ok(row.map(|(conversation_id, message_id, job_id, priority)| Enqueued {
        conversation_id,
        message_id,
        job_id,
        priority,
        duplicate: true,
    }))
}

/// The active conversation of (agent, platform, channel), opened if missing.
/// Concurrent openers meet on the `conversations_one_active` unique index.
async fn open_conversation(tx: &mut Tx<'_>, req: &ChatRequest, now: i64) -> Result<String> {
    // Most messages continue a conversation: one lookup, no insert attempt.
    if let Some(id) = active_conversation(tx, req).await? {
        return Ok(id);
    }
    sqlx::query(
        "INSERT INTO conversations (id, agent_id, platform, channel_id, user_id, user_name, status, started_at, last_message_at) \
         VALUES ($1, $2, $3, $4, $5, $6, 'active', $7, $7) \
         ON CONFLICT (agent_id, platform, channel_id) WHERE status = 'active' DO NOTHING",
    )
    .bind(new_conversation_id())
    .bind(req.agent_id)
    .bind(&req.platform)
    .bind(&req.channel_id)
    .bind(&req.user_id)
    .bind(&req.user_name)
    .bind(now)
    .execute(&mut **tx)
    .await
    .map_err(classify)?;
    active_conversation(tx, req).await?.ok_or(super::DbError::NotFound)
}

async fn active_conversation(tx: &mut Tx<'_>, req: &ChatRequest) -> Result<Option<String>> {
    Ok(sqlx::query_scalar(
        "SELECT id FROM conversations WHERE agent_id = $1 AND platform = $2 AND channel_id = $3 AND status = 'active'",
    )
    .bind(req.agent_id)
    .bind(&req.platform)
    .bind(&req.channel_id)
    .fetch_optional(&mut **tx)
    .await?)
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
    let counted = sqlx::query(
        "UPDATE conversations SET message_count = message_count + 1, total_tokens = total_tokens + $1, \
         last_message_at = $2 WHERE id = $3",
    )
    .bind(tokens)
    .bind(now)
    .bind(conversation_id)
    .execute(&mut **tx)
    .await?;
    if counted.rows_affected() == 0 {
        return Ok(None);
    }
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO messages (conversation_id, role, content, token_estimate, job_id, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
    )
    .bind(conversation_id)
    .bind(role)
    .bind(content)
    .bind(tokens)
    .bind(job_id)
    .bind(now)
    .fetch_one(&mut **tx)
    .await
    .map_err(classify)?;
    Ok(Some(id))
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
