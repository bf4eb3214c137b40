//! A reply's effects — the writes its tags ask for (memory facts, state,
//! delegated jobs, the conductor's agents and workflows) — applied exactly
//! once, however the worker dies.
//!
//! How (issue #17, point 5): [`super::queue::Finish::effects`] records the
//! parsed tags as JSON on the job row, in the same write that stores the
//! reply and completes the job. Applying them is a second transaction,
//! [`EffectsTx`], whose *first* statement marks the job
//! (`effects_applied_at`) on the condition that nobody has yet; every write
//! of the effects follows in that transaction, and they commit together. So:
//!
//! - a crash before that commit leaves the job unmarked, and
//!   [`Store::unapplied_effects`] finds it for a sweep (the workers run one at
//!   start and every few seconds);
//! - a crash after it leaves nothing to do: the writes and the mark are one
//!   commit, so no applier can see the writes without the mark;
//! - two appliers at once (the job's own worker and a sweep) cannot both
//!   apply: on Postgres the second one's mark waits on the first one's row
//!   lock, then matches no row; on SQLite the write lock serialises them.
//!
//! A reply without tags records nothing (`effects` NULL) and costs no second
//! transaction: the chat's hot path keeps its single write.
//!
//! Each write of the effects runs in a savepoint of its own, so one refused
//! write (a duplicate slug, an agent deleted meanwhile) is rolled back alone
//! and reported, and the rest still commit: on Postgres a failed statement
//! would otherwise abort the whole transaction. Reads inside the transaction
//! go through it too, so a conductor's `UPDATE_AGENT` sees the agent its
//! `CREATE_AGENT` made a line earlier.
//!
//! What the JSON holds is the worker's business (`arvis_worker::agent::tags`);
//! this module only stores it, hands it back and runs the writes.
//!
//! While an [`EffectsTx`] is open it holds a write connection (on SQLite *the*
//! write connection): its holder must not use the store's own write methods
//! until it commits or drops it, or it waits for itself.

use super::memory_ctx::ActionWorkflow;
use super::{DbError, Result, Store, classify};
use crate::clock::now_ms;
use crate::domain::agent::{Agent, AgentFields};
use crate::domain::job::NewJob;

type Tx = sqlx::Transaction<'static, sqlx::Any>;

/// An open transaction that applies one reply's effects; see the module docs.
/// Dropped without [`EffectsTx::commit`], it rolls back (mark included).
pub struct EffectsTx {
    tx: Tx,
    store: Store,
    /// An agent row was written: the agent cache is invalidated on commit.
    agents_written: bool,
}

/// A job's recorded effects, claimed for applying.
pub struct Recorded {
    /// The JSON the worker recorded with the reply.
    pub effects: String,
    /// The transaction to apply them in; it already holds the job's mark.
    pub tx: EffectsTx,
}

impl Store {
    /// Opens the transaction that applies job `job_id`'s recorded effects and
    /// marks them applied in it. `None` when there is nothing to apply: no
    /// effects were recorded, or another applier already committed them.
    pub async fn begin_effects(&self, job_id: i64) -> Result<Option<Recorded>> {
        let mut tx = self.begin_write().await?;
        let effects: Option<Option<String>> = sqlx::query_scalar(
            "UPDATE jobs SET effects_applied_at = $1 \
             WHERE id = $2 AND effects IS NOT NULL AND effects_applied_at IS NULL RETURNING effects",
        )
        .bind(now_ms())
        .bind(job_id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(classify)?;
        match effects.flatten() {
            Some(effects) => {
                Ok(Some(Recorded { effects, tx: EffectsTx { tx, store: self.clone(), agents_written: false } }))
            }
            None => {
                tx.rollback().await?;
                Ok(None)
            }
        }
    }

    /// A transaction that applies effects which were never recorded on a job
    /// (tests and tools): the same writes, without the exactly-once mark.
    pub async fn begin_unrecorded_effects(&self) -> Result<EffectsTx> {
        Ok(EffectsTx { tx: self.begin_write().await?, store: self.clone(), agents_written: false })
    }

    /// Jobs completed before `completed_before` (ms) whose recorded effects
    /// were never applied — their worker stopped between the reply and the
    /// effects — oldest first, at most `limit`.
    pub async fn unapplied_effects(&self, completed_before: i64, limit: i64) -> Result<Vec<i64>> {
        Ok(sqlx::query_scalar(
            "SELECT id FROM jobs WHERE effects IS NOT NULL AND effects_applied_at IS NULL AND completed_at < $1 \
             ORDER BY completed_at LIMIT $2 + 0",
        )
        .bind(completed_before)
        .bind(limit.max(0))
        .fetch_all(self.r())
        .await?)
    }
}

/// Ends a savepoint: released on success, rolled back on failure (so the
/// enclosing transaction stays usable), and the write's own result returned.
async fn settle<T>(sp: sqlx::Transaction<'_, sqlx::Any>, result: Result<T>) -> Result<T> {
    match result {
        Ok(value) => {
            sp.commit().await?;
            Ok(value)
        }
        Err(error) => {
            sp.rollback().await?;
            Err(error)
        }
    }
}

async fn savepoint(tx: &mut Tx) -> Result<sqlx::Transaction<'_, sqlx::Any>> {
    Ok(sqlx::Acquire::begin(&mut *tx).await?)
}

impl EffectsTx {
    /// The settings, from the store's cache. On a cache miss this reads on
    /// another connection (on Postgres, of the same pool): callers warm the
    /// cache with [`Store::settings`] before they begin.
    pub async fn settings(&mut self) -> Result<crate::domain::settings::Settings> {
        self.store.settings().await
    }

    /// The agent of `slug`, as this transaction sees it.
    pub async fn agent_by_slug(&mut self, slug: &str) -> Result<Option<Agent>> {
        super::agents::agent_by_slug(&mut *self.tx, slug).await
    }

    /// [`Store::save_fact`] in this transaction.
    pub async fn save_fact(
        &mut self,
        agent_id: i64,
        category: &str,
        content: &str,
        conversation_id: Option<&str>,
    ) -> Result<i64> {
        let mut sp = savepoint(&mut self.tx).await?;
        let result = super::memory_ctx::upsert_fact(&mut *sp, agent_id, category, content, conversation_id).await;
        settle(sp, result).await
    }

    /// [`Store::set_state`] in this transaction.
    pub async fn set_state(&mut self, agent_id: i64, key: &str, value: &str) -> Result<()> {
        let mut sp = savepoint(&mut self.tx).await?;
        let result = super::memory_ctx::upsert_state(&mut *sp, agent_id, key, value).await;
        settle(sp, result).await
    }

    /// [`Store::enqueue`] in this transaction; the caller signals `JobReady`
    /// after [`EffectsTx::commit`].
    pub async fn enqueue(&mut self, job: &NewJob) -> Result<i64> {
        let mut sp = savepoint(&mut self.tx).await?;
        let result = super::queue::insert_job(&mut *sp, job, now_ms()).await;
        settle(sp, result).await
    }

    /// [`Store::create_agent`] in this transaction.
    pub async fn create_agent(&mut self, f: &AgentFields) -> Result<Agent> {
        let mut sp = savepoint(&mut self.tx).await?;
        let result = super::agents::insert_agent(&mut *sp, f).await;
        let agent = settle(sp, result).await?;
        self.agents_written = true;
        Ok(agent)
    }

    /// [`Store::update_agent`] in this transaction.
    pub async fn update_agent(&mut self, id: i64, f: &AgentFields) -> Result<Option<Agent>> {
        let mut sp = savepoint(&mut self.tx).await?;
        let result = super::agents::replace_agent(&mut *sp, id, f).await;
        let agent = settle(sp, result).await?;
        self.agents_written = true;
        Ok(agent)
    }

    /// Inserts a workflow the conductor asked for (`CREATE_CRON`); returns its id.
    pub async fn create_workflow_from_action(&mut self, w: &ActionWorkflow) -> Result<i64> {
        let mut sp = savepoint(&mut self.tx).await?;
        let result = super::workflows::insert_workflow(&mut *sp, &w.into(), now_ms()).await;
        settle(sp, result).await
    }

    /// Commits every write together with the mark.
    pub async fn commit(self) -> Result<()> {
        let EffectsTx { tx, store, agents_written } = self;
        tx.commit().await.map_err(DbError::from)?;
        if agents_written {
            store.agents.invalidate();
        }
        Ok(())
    }
}
