//! Carrying out a parsed reply: memories (deduplicated) and state are saved,
//! delegations become new jobs for the named agents, and the conductor's
//! actions are validated exactly as the REST API validates them (the same
//! domain types) and written. Every item is best-effort: a failure is recorded
//! as an [`Outcome`] and the rest still runs (behaviour reference §3:
//! "Actions run in order. Failures are only logged.").
//!
//! Exactly once: every write of one reply runs in one transaction
//! ([`arvis_shared::db::effects::EffectsTx`]) that also marks the job's
//! recorded effects applied, so a crash either leaves all of them for the
//! sweep ([`apply_recorded`] again, from another worker or after a restart)
//! or none. The caller publishes `JobReady` for [`Applied::job_ids`] and the
//! config notices after the commit.

use arvis_shared::clock::now_ms;
use arvis_shared::db::effects::EffectsTx;
use arvis_shared::db::memory_ctx::ActionWorkflow;
use arvis_shared::db::{DbError, Store};
use arvis_shared::domain::agent::{Agent, AgentPatch, NewAgent};
use arvis_shared::domain::job::{Job, JobKind, JobPayload, NewJob, priority};
use arvis_shared::domain::{Invalid, check_text, schedule};
use serde_json::{Value, json};

use super::is_conductor;
use super::tags::{ConductorAction, Effects, Fields, ParsedReply};

/// Delegation chains stop here: a job at this depth may not delegate further.
pub const MAX_DELEGATION_DEPTH: i64 = 3;
/// Model-created schedules must be at least this far apart.
pub const MIN_ACTION_INTERVAL_MS: i64 = 30_000;
/// The longest memory fact or state value saved from a reply.
pub const MAX_FACT_CHARS: usize = 2_000;
/// The `extra` key carrying the delegation depth.
pub const DEPTH_KEY: &str = "delegationDepth";

/// One item's result, for the log.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub ok: bool,
    pub what: String,
}

impl Outcome {
    fn ok(what: impl Into<String>) -> Outcome {
        Outcome { ok: true, what: what.into() }
    }
    fn refused(what: impl Into<String>) -> Outcome {
        Outcome { ok: false, what: what.into() }
    }
}

/// Everything [`apply_reply`] did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Applied {
    pub outcomes: Vec<Outcome>,
    /// Jobs enqueued (delegations): publish `JobReady` for each.
    pub job_ids: Vec<i64>,
    /// Agents created or updated by conductor actions.
    pub agent_ids: Vec<i64>,
    /// Workflows created by conductor actions.
    pub workflow_ids: Vec<i64>,
}

impl Applied {
    /// Logs every outcome.
    pub fn log(&self, job_id: i64) {
        for o in &self.outcomes {
            if o.ok {
                tracing::info!(job_id, "{}", o.what);
            } else {
                tracing::warn!(job_id, "{}", o.what);
            }
        }
    }
}

/// The delegation depth of a job (0 for a job nobody delegated).
pub fn delegation_depth(job: &Job) -> i64 {
    job.payload.extra.get(DEPTH_KEY).and_then(Value::as_i64).unwrap_or(0)
}

/// Applies job `job`'s recorded effects, written by `agent`, if nobody has:
/// `Ok(None)` when there was nothing left to apply (no effects recorded, or
/// another applier committed them first). Effects that cannot be read (a
/// corrupt or future record) are marked applied with a refusal, never retried
/// forever. A database error leaves them recorded for the next sweep.
pub async fn apply_recorded(store: &Store, agent: Option<&Agent>, job: &Job) -> Result<Option<Applied>, DbError> {
    // Warm the settings cache before the transaction holds a connection
    // (conductor actions read them; see `EffectsTx::settings`).
    store.settings().await?;
    let Some(recorded) = store.begin_effects(job.id).await? else { return Ok(None) };
    let mut tx = recorded.tx;
    let applied = match (serde_json::from_str::<Effects>(&recorded.effects), agent) {
        (Ok(effects), Some(agent)) => apply_in(&mut tx, agent, job, &effects).await,
        (Err(e), _) => {
            let mut applied = Applied::default();
            applied.outcomes.push(Outcome::refused(format!("recorded effects unreadable, dropped: {e}")));
            applied
        }
        (Ok(_), None) => {
            let mut applied = Applied::default();
            applied.outcomes.push(Outcome::refused("the agent no longer exists; its reply's effects were dropped"));
            applied
        }
    };
    tx.commit().await?;
    Ok(Some(applied))
}

/// Carries out `reply`, written by `agent` while running `job`, at once and
/// in one transaction, without a record on the job (tests and tools: the
/// worker records the effects with the reply and uses [`apply_recorded`]).
pub async fn apply_reply(store: &Store, agent: &Agent, job: &Job, reply: &ParsedReply) -> Result<Applied, DbError> {
    store.settings().await?;
    let mut applied = match reply.effects() {
        Some(effects) => {
            let mut tx = store.begin_unrecorded_effects().await?;
            let applied = apply_in(&mut tx, agent, job, &effects).await;
            tx.commit().await?;
            applied
        }
        None => Applied::default(),
    };
    applied.outcomes.extend(ignored(reply));
    Ok(applied)
}

/// The reply's tags that were stripped without effect, as outcomes for the log.
pub fn ignored(reply: &ParsedReply) -> Vec<Outcome> {
    reply.ignored.iter().map(|i| Outcome::refused(format!("tag ignored: {i}"))).collect()
}

/// Every write of `effects`, in `tx`; each item best-effort.
async fn apply_in(tx: &mut EffectsTx, agent: &Agent, job: &Job, reply: &Effects) -> Applied {
    let mut applied = Applied::default();
    let conversation = job.conversation_id.as_deref().or(job.payload.conversation_id.as_deref());
    for (category, fact) in &reply.memories {
        if let Err(e) = check_text("memory", fact, MAX_FACT_CHARS).and(check_text("category", category, 100)) {
            applied.outcomes.push(Outcome::refused(format!("memory [{category}] not saved: {e}")));
            continue;
        }
        let o = match tx.save_fact(agent.id, category, fact, conversation).await {
            Ok(id) => Outcome::ok(format!("memory {id} saved [{category}]")),
            Err(e) => Outcome::refused(format!("memory [{category}] not saved: {e}")),
        };
        applied.outcomes.push(o);
    }
    for (key, value) in &reply.states {
        if let Err(e) = check_text("state", value, MAX_FACT_CHARS).and(check_text("key", key, 100)) {
            applied.outcomes.push(Outcome::refused(format!("state {key} not set: {e}")));
            continue;
        }
        let o = match tx.set_state(agent.id, key, value).await {
            Ok(()) => Outcome::ok(format!("state {key} set")),
            Err(e) => Outcome::refused(format!("state {key} not set: {e}")),
        };
        applied.outcomes.push(o);
    }
    for (slug, task) in &reply.delegations {
        let o = delegate(tx, agent, job, slug, task, &mut applied.job_ids).await;
        applied.outcomes.push(o);
    }
    if !reply.actions.is_empty() {
        if is_conductor(agent) {
            for action in &reply.actions {
                let o = run_action(tx, agent, job, action, &mut applied).await;
                applied.outcomes.push(o);
            }
        } else {
            applied.outcomes.push(Outcome::refused(format!(
                "{} conductor action(s) from {} ignored",
                reply.actions.len(),
                agent.slug
            )));
        }
    }
    applied
}

async fn delegate(
    store: &mut EffectsTx,
    agent: &Agent,
    job: &Job,
    slug: &str,
    task: &str,
    ids: &mut Vec<i64>,
) -> Outcome {
    let depth = delegation_depth(job) + 1;
    if depth > MAX_DELEGATION_DEPTH {
        return Outcome::refused(format!(
            "delegation to {slug} refused: the chain is already {} deep (max {MAX_DELEGATION_DEPTH})",
            depth - 1
        ));
    }
    if let Err(e) = check_text("delegation task", task, arvis_shared::domain::limits::MAX_MESSAGE_CHARS) {
        return Outcome::refused(format!("delegation to {slug} refused: {e}"));
    }
    let target = match store.agent_by_slug(slug).await {
        Ok(Some(a)) if a.is_active => a,
        Ok(Some(_)) => return Outcome::refused(format!("delegation to {slug} skipped: the agent is not active")),
        Ok(None) => return Outcome::refused(format!("delegation to {slug} skipped: no such agent")),
        Err(e) => return Outcome::refused(format!("delegation to {slug} failed: {e}")),
    };
    let payload = JobPayload {
        prompt: task.to_string(),
        conversation_id: None,
        channel_id: job.payload.channel_id.clone(),
        platform: job.payload.platform.clone(),
        message_id: None,
        user_name: None,
        extra: json!({ DEPTH_KEY: depth, "delegatedBy": agent.slug, "parentJobId": job.id }),
    };
    match store.enqueue(&NewJob::new(target.id, JobKind::Delegation, priority::DELEGATION, payload)).await {
        Ok(id) => {
            ids.push(id);
            Outcome::ok(format!("delegated to {slug} as job {id} (depth {depth})"))
        }
        Err(e) => Outcome::refused(format!("delegation to {slug} failed: {e}")),
    }
}

async fn run_action(
    store: &mut EffectsTx,
    conductor: &Agent,
    job: &Job,
    action: &ConductorAction,
    applied: &mut Applied,
) -> Outcome {
    let result = match action {
        ConductorAction::CreateAgent(fields) => create_agent(store, fields, applied).await,
        ConductorAction::UpdateAgent { slug, fields } => update_agent(store, slug, fields, applied).await,
        ConductorAction::CreateCron(fields) => create_cron(store, conductor, job, fields, applied).await,
    };
    match result {
        Ok(o) => o,
        Err(ActionError::Invalid(e)) => Outcome::refused(format!("{}: refused: {e}", action_name(action))),
        Err(ActionError::Db(e)) => Outcome::refused(format!("{}: failed: {e}", action_name(action))),
    }
}

fn action_name(action: &ConductorAction) -> String {
    match action {
        ConductorAction::CreateAgent(f) => {
            format!("CREATE_AGENT {}", f.get("slug").and_then(Value::as_str).unwrap_or("?"))
        }
        ConductorAction::UpdateAgent { slug, .. } => format!("UPDATE_AGENT {slug}"),
        ConductorAction::CreateCron(f) => {
            format!("CREATE_CRON {}", f.get("name").and_then(Value::as_str).unwrap_or("?"))
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum ActionError {
    #[error(transparent)]
    Invalid(#[from] Invalid),
    #[error(transparent)]
    Db(#[from] DbError),
}

/// Fields an action may set on an agent (the model may never set the system prompt).
const AGENT_KEYS: &[&str] =
    &["slug", "name", "role", "description", "model", "allowed_tools", "temperature", "max_tokens", "is_active"];

fn string_field(fields: &Fields, key: &str) -> Result<Option<String>, Invalid> {
    match fields.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.trim().to_string())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(Value::Bool(b)) => Ok(Some(b.to_string())),
        Some(_) => Err(Invalid::new(format!("{key} must be text"))),
    }
}

fn tools_field(fields: &Fields) -> Result<Option<Vec<String>>, Invalid> {
    match fields.get("allowed_tools").or_else(|| fields.get("tools")) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_str().map(str::to_string).ok_or_else(|| Invalid::new("allowed_tools must be a list of names"))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(Value::String(s)) => {
            Ok(Some(s.split(',').map(|t| t.trim().to_string()).filter(|t| !t.is_empty()).collect()))
        }
        Some(_) => Err(Invalid::new("allowed_tools must be a list of names")),
    }
}

fn number_field(fields: &Fields, key: &str) -> Result<Option<f64>, Invalid> {
    match fields.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_f64().map(Some).ok_or_else(|| Invalid::new(format!("{key} must be a number"))),
    }
}

fn int_field(fields: &Fields, key: &str) -> Result<Option<i64>, Invalid> {
    match fields.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_i64().map(Some).ok_or_else(|| Invalid::new(format!("{key} must be a whole number"))),
    }
}

fn bool_field(fields: &Fields, key: &str) -> Result<Option<bool>, Invalid> {
    match fields.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_bool().map(Some).ok_or_else(|| Invalid::new(format!("{key} must be true or false"))),
    }
}

/// Keys the action carried that were not applied, for the outcome text.
fn ignored_keys(fields: &Fields, known: &[&str]) -> String {
    let extra: Vec<&str> = fields.keys().map(String::as_str).filter(|k| !known.contains(k) && *k != "tools").collect();
    if extra.is_empty() { String::new() } else { format!(" (ignored: {})", extra.join(", ")) }
}

fn refuse_conductor_role(role: &Option<String>) -> Result<(), Invalid> {
    if role.as_deref() == Some("conductor") {
        return Err(Invalid::new("role conductor cannot be given by an action"));
    }
    Ok(())
}

async fn create_agent(store: &mut EffectsTx, fields: &Fields, applied: &mut Applied) -> Result<Outcome, ActionError> {
    let slug = string_field(fields, "slug")?.ok_or_else(|| Invalid::new("slug is required"))?;
    let role = string_field(fields, "role")?;
    refuse_conductor_role(&role)?;
    let new = NewAgent {
        name: string_field(fields, "name")?.filter(|n| !n.is_empty()).unwrap_or_else(|| slug.clone()),
        slug,
        role,
        description: string_field(fields, "description")?,
        model: string_field(fields, "model")?,
        system_prompt: None,
        allowed_tools: tools_field(fields)?,
        temperature: number_field(fields, "temperature")?,
        max_tokens: int_field(fields, "max_tokens")?,
        is_active: bool_field(fields, "is_active")?,
        created_by: Some("conductor".into()),
        reasoning_effort: None,
        show_thinking: None,
    };
    let default_model = store.settings().await?.default_model;
    let agent_fields = new.into_fields(&default_model)?;
    let agent = match store.create_agent(&agent_fields).await {
        Err(DbError::Conflict(_)) => {
            return Err(Invalid::new(format!("an agent with slug {} exists", agent_fields.slug)).into());
        }
        other => other?,
    };
    applied.agent_ids.push(agent.id);
    Ok(Outcome::ok(format!("agent {} created (id {}){}", agent.slug, agent.id, ignored_keys(fields, AGENT_KEYS))))
}

async fn update_agent(
    store: &mut EffectsTx,
    slug: &str,
    fields: &Fields,
    applied: &mut Applied,
) -> Result<Outcome, ActionError> {
    let current = store.agent_by_slug(slug).await?.ok_or_else(|| Invalid::new(format!("no agent {slug}")))?;
    let conductor_id = store.settings().await?.conductor_agent_id;
    if is_conductor(&current) || conductor_id == Some(current.id) {
        return Err(Invalid::new("the conductor cannot be updated by an action").into());
    }
    let role = string_field(fields, "role")?;
    refuse_conductor_role(&role)?;
    let patch = AgentPatch {
        slug: string_field(fields, "slug")?,
        name: string_field(fields, "name")?,
        role,
        description: string_field(fields, "description")?,
        model: string_field(fields, "model")?,
        system_prompt: None,
        allowed_tools: tools_field(fields)?,
        temperature: number_field(fields, "temperature")?,
        max_tokens: int_field(fields, "max_tokens")?,
        is_active: bool_field(fields, "is_active")?,
        reasoning_effort: None,
        show_thinking: None,
    };
    let agent_fields = patch.apply(&current)?;
    let agent = match store.update_agent(current.id, &agent_fields).await {
        Err(DbError::Conflict(_)) => {
            return Err(Invalid::new(format!("an agent with slug {} exists", agent_fields.slug)).into());
        }
        other => other?.ok_or(DbError::NotFound)?,
    };
    applied.agent_ids.push(agent.id);
    Ok(Outcome::ok(format!("agent {} updated{}", agent.slug, ignored_keys(fields, AGENT_KEYS))))
}

const CRON_KEYS: &[&str] =
    &["agent", "agent_slug", "name", "schedule", "prompt", "channel", "channel_id", "channelid", "platform"];

async fn create_cron(
    store: &mut EffectsTx,
    conductor: &Agent,
    job: &Job,
    fields: &Fields,
    applied: &mut Applied,
) -> Result<Outcome, ActionError> {
    let target_slug = match string_field(fields, "agent")? {
        Some(s) => Some(s),
        None => string_field(fields, "agent_slug")?,
    };
    let target = match target_slug.filter(|s| !s.is_empty()) {
        Some(slug) => store.agent_by_slug(&slug).await?.ok_or_else(|| Invalid::new(format!("no agent {slug}")))?,
        None => conductor.clone(),
    };
    let prompt =
        string_field(fields, "prompt")?.filter(|p| !p.is_empty()).ok_or_else(|| Invalid::new("prompt is required"))?;
    check_text("prompt", &prompt, arvis_shared::domain::limits::MAX_MESSAGE_CHARS)?;
    let schedule_text =
        string_field(fields, "schedule")?.filter(|s| !s.is_empty()).unwrap_or_else(|| "* * * * *".into());
    let parsed = schedule::parse(&schedule_text)?;
    if let schedule::Schedule::Every(ms) = parsed
        && ms < MIN_ACTION_INTERVAL_MS
    {
        return Err(Invalid::new("schedules created by an agent must be at least 30 seconds apart").into());
    }
    let name =
        string_field(fields, "name")?.filter(|n| !n.is_empty()).unwrap_or_else(|| format!("{} task", target.slug));
    check_text("name", &name, 200)?;
    let channel_id = match string_field(fields, "channel_id")? {
        Some(c) => Some(c),
        None => match string_field(fields, "channel")? {
            Some(c) => Some(c),
            None => string_field(fields, "channelid")?,
        },
    }
    .or_else(|| job.payload.channel_id.clone());
    let platform = string_field(fields, "platform")?.or_else(|| job.payload.platform.clone());
    for (field, value) in [("channel", &channel_id), ("platform", &platform)] {
        if let Some(v) = value {
            check_text(field, v, 200)?;
        }
    }
    let workflow = ActionWorkflow {
        name,
        agent_id: target.id,
        schedule: schedule_text.clone(),
        prompt,
        channel_id,
        platform,
        next_run_at: parsed.next_after(now_ms()),
    };
    let id = store.create_workflow_from_action(&workflow).await?;
    applied.workflow_ids.push(id);
    Ok(Outcome::ok(format!(
        "workflow {id} created for {} ({schedule_text}){}",
        target.slug,
        ignored_keys(fields, CRON_KEYS)
    )))
}
