//! The chat intake: the one way a message from outside becomes an agent run.
//!
//! Every chat entry point — REST chat, the WebSocket bridge, the platform
//! connectors and `/v1/chat/completions` — hands an [`Incoming`]
//! message to [`Intake`], which
//! 1. checks it against the limits of [`crate::domain::limits`] (one set of
//!    rules, one set of error texts, whichever door the message came in by);
//! 2. routes it ([`crate::routing`]: explicit agent, binding, mention, …),
//!    and refuses it when the agent's daily or monthly budget is used up
//!    ([`crate::budget`]; nothing is stored);
//! 3. stores the user message and the job that answers it in one transaction
//!    ([`Store::enqueue_chat`]), opening the conversation if needed and taking a
//!    platform message id in only once (a redelivered message is reported as
//!    [`Accepted::duplicate`], nothing is written);
//! 4. signals `JobReady` after the commit;
//! 5. on request, hands back a [`RunWatch`] that yields the run's typed
//!    [`RunEvent`]s — typing, deltas, the final reply, or a failure with its
//!    reason and cause — from the bus, with the job row read every
//!    [`POLL_EVERY`] as the fallback (the bus is at-most-once: a lost event
//!    only delays the answer).
//!
//! Webhook deliveries and cron workflows do not come through here: their job
//! is written in the same transaction as a row of their own (the delivery id,
//! the claimed due time), which is what makes them exactly-once. They share the
//! limits and the `JobReady`-after-commit rule, and their replies are watched
//! like any other ([`Intake::watch`]).
//!
//! Why a struct and not free functions: entry points hold one `Intake` (cheap
//! to clone), so a test or a future entry point cannot skip a step.

use std::time::Duration;

use futures::future::BoxFuture;

use crate::bus::events::{JobReady, ReplyEvent, ReplyKind, RunFailure};
use crate::bus::{Bus, Subscription, subjects};
use crate::db::queue::{ChatRequest, Enqueued};
use crate::db::{DbError, Store};
use crate::domain::job::{DEFAULT_MAX_ATTEMPTS, failure};
use crate::domain::limits::{MAX_EXTERNAL_ID_CHARS, MAX_MESSAGE_CHARS, check_id};
use crate::domain::{Invalid, check_text};
use crate::routing::{self, Route, RouteError};

/// How often a watcher reads the job row when no event came.
pub const POLL_EVERY: Duration = Duration::from_millis(500);
/// How long one bus step (subscribe, flush, signal) may take before the intake
/// goes on without it; polling covers what the bus did not deliver.
const BUS_STEP_TIMEOUT: Duration = Duration::from_secs(2);

/// A message from outside, as an entry point received it.
#[derive(Debug, Clone, Default)]
pub struct Incoming {
    /// `dashboard`, `web`, `telegram`, `discord`, `api`, …
    pub platform: String,
    pub channel_id: String,
    pub user_id: Option<String>,
    pub user_name: Option<String>,
    pub content: String,
    /// The agent the sender picked (the dashboard's agent, a `/v1` model).
    pub agent_id: Option<i64>,
    /// A private conversation (web chat, a bot DM).
    pub is_dm: bool,
    /// The platform's id of this message, for de-duplication.
    pub external_id: Option<String>,
    /// A stateless `/v1/chat/completions` request: its transcript goes with
    /// the job, and the worker answers it instead of the stored conversation.
    /// `content` is then the transcript's last user message (what is stored).
    pub api: Option<crate::domain::job::ApiChat>,
}

/// Why a message was not taken in. [`IntakeError::user_message`] is the text
/// for the sender; nothing was stored.
#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    /// The message breaks a rule (empty, too long, a bad id).
    #[error(transparent)]
    Invalid(#[from] Invalid),
    /// No agent can take it: unknown or paused agent, a read-only channel, no conductor.
    #[error(transparent)]
    Route(RouteError),
    /// The agent's budget is used up (the text names it, with the numbers).
    #[error(transparent)]
    OverBudget(crate::budget::OverBudget),
    /// The database could not route or store it; the sender should try again.
    #[error("the message could not be stored: {0}")]
    Unavailable(#[source] DbError),
}

impl IntakeError {
    /// What to tell the sender (no internal detail).
    pub fn user_message(&self) -> String {
        match self {
            IntakeError::Invalid(e) => e.to_string(),
            IntakeError::Route(e) => e.to_string(),
            IntakeError::OverBudget(e) => e.to_string(),
            IntakeError::Unavailable(_) => "the message could not be stored; try again".into(),
        }
    }
}

impl From<RouteError> for IntakeError {
    fn from(e: RouteError) -> IntakeError {
        match e {
            RouteError::Db(db) => IntakeError::Unavailable(db),
            other => IntakeError::Route(other),
        }
    }
}

/// A message taken in: where it was stored and which job answers it.
#[derive(Debug, Clone, PartialEq)]
pub struct Accepted {
    pub agent_id: i64,
    pub platform: String,
    pub channel_id: String,
    pub conversation_id: String,
    pub message_id: i64,
    pub job_id: i64,
    pub priority: i64,
    /// The platform message id was taken in before: nothing new was stored or
    /// enqueued, and the ids are the first message's.
    pub duplicate: bool,
}

/// What happens to a run, as a watcher sees it.
#[derive(Debug, Clone, PartialEq)]
pub enum RunEvent {
    /// The agent is working on it.
    Typing,
    /// A streamed piece of the reply.
    Delta(String),
    /// The final, stored reply (`message_id` is absent when it came from the job row).
    Reply { content: String, message_id: Option<i64> },
    /// The run failed for good.
    Failed(RunFailure),
}

impl RunEvent {
    fn is_final(&self) -> bool {
        matches!(self, RunEvent::Reply { .. } | RunEvent::Failed(_))
    }
}

/// The chat intake of one process. Cheap to clone.
#[derive(Clone)]
pub struct Intake {
    store: Store,
    bus: Bus,
}

impl Intake {
    pub fn new(store: Store, bus: Bus) -> Intake {
        Intake { store, bus }
    }

    /// Checks, routes and stores the message; the job is not announced yet.
    /// The caller sends whatever must reach its client before any reply event
    /// (the WebSocket ack), then calls [`Intake::announce`]. Most callers want
    /// [`Intake::submit`].
    ///
    /// Boxed, like the other intake entry points: the gateway and the bridge
    /// both call it, and an `async fn` awaited from another crate is compiled
    /// again there with every query it runs (see [`crate::ServiceFuture`]).
    #[inline(never)]
    pub fn accept(&self, msg: Incoming) -> BoxFuture<'_, Result<Accepted, IntakeError>> {
        Box::pin(self.accept_unboxed(msg))
    }

    async fn accept_unboxed(&self, msg: Incoming) -> Result<Accepted, IntakeError> {
        check(&msg)?;
        let route = self.route(&msg).await?;
        self.check_budget(route.agent_id).await?;
        let request = ChatRequest {
            agent_id: route.agent_id,
            platform: msg.platform,
            channel_id: msg.channel_id,
            user_id: msg.user_id,
            user_name: msg.user_name,
            content: msg.content,
            priority: route.priority,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            external_id: msg.external_id,
            api: msg.api,
        };
        let enqueued: Enqueued = self.store.enqueue_chat(&request).await.map_err(|e| match e {
            // The agent was deleted between routing and the write.
            DbError::MissingReference(_) => IntakeError::Route(RouteError::UnknownAgent(route.agent_id)),
            other => IntakeError::Unavailable(other),
        })?;
        Ok(Accepted {
            agent_id: route.agent_id,
            platform: request.platform,
            channel_id: request.channel_id,
            conversation_id: enqueued.conversation_id,
            message_id: enqueued.message_id,
            job_id: enqueued.job_id,
            priority: enqueued.priority,
            duplicate: enqueued.duplicate,
        })
    }

    /// Wakes the workers for an accepted message (nothing for a duplicate).
    /// A signal the bus does not take in time is left to the workers' poll.
    pub async fn announce(&self, accepted: &Accepted) {
        if accepted.duplicate {
            return;
        }
        let ready = JobReady { v: 1, job_id: accepted.job_id, priority: accepted.priority };
        if tokio::time::timeout(BUS_STEP_TIMEOUT, self.bus.signal(&ready)).await.is_err() {
            tracing::warn!(
                job_id = accepted.job_id,
                "job signal not sent in time; workers will find the job by polling"
            );
        }
    }

    /// [`Intake::accept`] then [`Intake::announce`].
    #[inline(never)]
    pub fn submit(&self, msg: Incoming) -> BoxFuture<'_, Result<Accepted, IntakeError>> {
        Box::pin(self.submit_unboxed(msg))
    }

    /// Inside a boxed entry point, the steps are awaited unboxed: one
    /// allocation per call, not one per step.
    async fn submit_unboxed(&self, msg: Incoming) -> Result<Accepted, IntakeError> {
        let accepted = self.accept_unboxed(msg).await?;
        self.announce(&accepted).await;
        Ok(accepted)
    }

    /// Like [`Intake::submit`], and watches the run: the subscription is made
    /// before the message is stored, so no event can outrun it.
    #[inline(never)]
    pub fn submit_and_watch(&self, msg: Incoming) -> BoxFuture<'_, Result<(Accepted, RunWatch), IntakeError>> {
        Box::pin(async move {
            check(&msg)?; // before subscribing: a refused message costs no subscription
            let events = self.subscribe(&msg.platform, &msg.channel_id).await;
            let accepted = self.submit_unboxed(msg).await?;
            let watch = RunWatch::new(self.store.clone(), events, accepted.job_id);
            Ok((accepted, watch))
        })
    }

    /// Watches a job that is already queued (a webhook's or workflow's run, a
    /// duplicate's first run). Events published before this call are not seen;
    /// the job row still tells the outcome.
    pub async fn watch(&self, platform: &str, channel_id: &str, job_id: i64) -> RunWatch {
        let events = self.subscribe(platform, channel_id).await;
        RunWatch::new(self.store.clone(), events, job_id)
    }

    /// Refuses a message to an agent whose budget is used up. No query for
    /// an agent without a budget (the agent comes from the store's cache).
    async fn check_budget(&self, agent_id: i64) -> Result<(), IntakeError> {
        let Some(agent) = self.store.get_agent(agent_id).await.map_err(IntakeError::Unavailable)? else {
            return Ok(()); // deleted meanwhile: the write reports it
        };
        let limits = crate::budget::limits(agent.daily_budget_usd, agent.monthly_budget_usd);
        if limits.is_empty() {
            return Ok(());
        }
        let who = crate::db::usage::Spender::Agent(agent_id);
        match crate::budget::check(&self.store, who, &format!("agent {}", agent.slug), &limits, 0.0).await {
            Ok(()) => Ok(()),
            Err(crate::budget::BudgetError::Over(over)) => Err(IntakeError::OverBudget(over)),
            Err(crate::budget::BudgetError::Db(e)) => Err(IntakeError::Unavailable(e)),
        }
    }

    async fn route(&self, msg: &Incoming) -> Result<Route, IntakeError> {
        let incoming = routing::Incoming {
            platform: &msg.platform,
            channel_id: &msg.channel_id,
            user_id: msg.user_id.as_deref(),
            content: &msg.content,
            agent_id: msg.agent_id,
            is_dm: msg.is_dm,
        };
        Ok(routing::route(&self.store, &incoming).await?)
    }

    /// The channel's reply events, registered with the server before return;
    /// `None` (and polling only) when the bus cannot subscribe right now.
    async fn subscribe(&self, platform: &str, channel_id: &str) -> Option<Subscription> {
        let subject = subjects::reply(platform, channel_id);
        match tokio::time::timeout(BUS_STEP_TIMEOUT, self.bus.subscribe(&subject)).await {
            Ok(Ok(sub)) => {
                if !matches!(tokio::time::timeout(BUS_STEP_TIMEOUT, self.bus.flush()).await, Ok(Ok(()))) {
                    tracing::warn!("bus flush failed; the reply may be found by polling only");
                }
                Some(sub)
            }
            Ok(Err(error)) => {
                tracing::warn!(%error, "cannot subscribe to replies; the reply will be found by polling");
                None
            }
            Err(_) => {
                tracing::warn!("subscribing to replies timed out; the reply will be found by polling");
                None
            }
        }
    }
}

/// The rules every incoming message must meet.
fn check(msg: &Incoming) -> Result<(), Invalid> {
    if msg.content.trim().is_empty() {
        return Err(Invalid::new("the message is empty"));
    }
    check_text("the message", &msg.content, MAX_MESSAGE_CHARS)?;
    check_id("platform", &msg.platform)?;
    check_id("channelId", &msg.channel_id)?;
    if let Some(user) = &msg.user_id {
        check_id("userId", user)?;
    }
    if let Some(name) = &msg.user_name {
        check_id("userName", name)?;
    }
    if let Some(id) = &msg.external_id
        && (id.is_empty() || id.chars().count() > MAX_EXTERNAL_ID_CHARS || id.contains('\0'))
    {
        return Err(Invalid::new(format!("a platform message id must be 1-{MAX_EXTERNAL_ID_CHARS} characters")));
    }
    Ok(())
}

/// The events of one run, in order, ending with its reply or failure.
pub struct RunWatch {
    store: Store,
    events: Option<Subscription>,
    job_id: i64,
    poll: tokio::time::Interval,
    done: bool,
}

impl RunWatch {
    fn new(store: Store, events: Option<Subscription>, job_id: i64) -> RunWatch {
        // The first look at the job row is one period in: until then the
        // event is the fast path, and reading at once would cost every chat
        // a query for nothing.
        let mut poll = tokio::time::interval_at(tokio::time::Instant::now() + POLL_EVERY, POLL_EVERY);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        RunWatch { store, events, job_id, poll, done: false }
    }

    pub fn job_id(&self) -> i64 {
        self.job_id
    }

    /// The next event; `None` once the reply or the failure was yielded.
    /// Waits as long as the run takes: bound it with a timeout.
    pub async fn next(&mut self) -> Option<RunEvent> {
        if self.done {
            return None;
        }
        let event = loop {
            tokio::select! {
                msg = async {
                    match self.events.as_mut() {
                        Some(s) => s.next().await,
                        None => std::future::pending().await,
                    }
                } => match msg {
                    Some(m) => {
                        if let Some(e) = m.decode::<ReplyEvent>().filter(|e| e.job_id == self.job_id) {
                            break from_event(e);
                        }
                    }
                    // The bus closed: the job row is all there is now.
                    None => self.events = None,
                },
                _ = self.poll.tick() => {
                    if let Some(event) = self.poll_job().await {
                        break event;
                    }
                }
            }
        };
        self.done = event.is_final();
        Some(event)
    }

    /// Waits for the reply or the failure, skipping typing and deltas.
    pub async fn outcome(mut self) -> Result<String, RunFailure> {
        while let Some(event) = self.next().await {
            match event {
                RunEvent::Reply { content, .. } => return Ok(content),
                RunEvent::Failed(f) => return Err(f),
                RunEvent::Typing | RunEvent::Delta(_) => {}
            }
        }
        Err(RunFailure { reason: "the run ended without an answer".into(), cause: None })
    }

    /// The final event from the job row, when the job has ended.
    async fn poll_job(&self) -> Option<RunEvent> {
        match self.store.job(self.job_id).await {
            Ok(Some(job)) if job.status == "completed" => {
                Some(RunEvent::Reply { content: job.result.unwrap_or_default(), message_id: None })
            }
            Ok(Some(job)) if job.status == "failed" || job.status == "cancelled" => {
                let text = job.error.as_deref().unwrap_or(if job.status == "cancelled" {
                    "the run was cancelled"
                } else {
                    "the run failed"
                });
                let (reason, cause) = failure::split(text);
                Some(RunEvent::Failed(RunFailure { reason: reason.to_string(), cause: cause.map(str::to_string) }))
            }
            Ok(Some(_)) => None,
            Ok(None) => Some(RunEvent::Failed(RunFailure {
                reason: "the run was removed before it answered".into(),
                cause: Some(format!("job {} no longer exists", self.job_id)),
            })),
            Err(error) => {
                tracing::warn!(%error, job_id = self.job_id, "cannot read the job while waiting for the reply");
                None
            }
        }
    }
}

fn from_event(e: ReplyEvent) -> RunEvent {
    match e.kind {
        ReplyKind::Typing => RunEvent::Typing,
        ReplyKind::Delta => RunEvent::Delta(e.content),
        ReplyKind::Message => RunEvent::Reply { content: e.content, message_id: e.message_id },
        ReplyKind::Error => RunEvent::Failed(e.failure.unwrap_or(RunFailure { reason: e.content, cause: None })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(content: &str) -> Incoming {
        Incoming { platform: "web".into(), channel_id: "web-1".into(), content: content.into(), ..Default::default() }
    }

    #[test]
    fn the_rules_hold_for_every_entry_point() {
        assert!(check(&msg("hi")).is_ok());
        assert!(check(&msg("  \n")).is_err());
        assert!(check(&msg(&"x".repeat(MAX_MESSAGE_CHARS))).is_ok());
        let long = check(&msg(&"x".repeat(MAX_MESSAGE_CHARS + 1))).unwrap_err();
        assert!(long.to_string().contains("100000"), "{long}");
        assert!(check(&msg("a\0b")).unwrap_err().to_string().contains("NUL"));
        assert!(check(&Incoming { channel_id: String::new(), ..msg("hi") }).is_err());
        assert!(check(&Incoming { user_id: Some("a\nb".into()), ..msg("hi") }).is_err());
        assert!(check(&Incoming { external_id: Some(String::new()), ..msg("hi") }).is_err());
        assert!(check(&Incoming { external_id: Some("123".into()), ..msg("hi") }).is_ok());
    }

    #[test]
    fn an_error_event_without_a_typed_failure_still_fails() {
        let e = ReplyEvent {
            v: 1,
            kind: ReplyKind::Error,
            platform: "web".into(),
            channel_id: "c".into(),
            conversation_id: None,
            job_id: 1,
            agent_id: 1,
            message_id: None,
            content: "old worker text".into(),
            timestamp: 0,
            failure: None,
        };
        assert_eq!(from_event(e), RunEvent::Failed(RunFailure { reason: "old worker text".into(), cause: None }));
    }
}
