//! The scheduler: fires each enabled workflow once per due time of its
//! schedule, exactly once across any number of replicas, and returns jobs whose
//! worker died to the queue.
//!
//! Layout:
//! - [`run`]: the loop — tick, sleep until the earliest due time
//!   ([`wait_after_tick`]) or until a `ConfigChanged` notice for a workflow,
//!   sweep expired job leases every [`SWEEP_EVERY`].
//! - [`tick`]: one pass over the due workflows at a given "now"; the tests call
//!   it directly with simulated times.
//!
//! Rules of a tick (README, "Workflows"):
//! - a workflow with no `next_run_at` (new or edited) gets the first due time
//!   after now; it does not fire at once;
//! - due times are claimed in batches of [`CLAIM_BATCH`], one transaction
//!   each, with the rows locked first and every update conditional on the due
//!   time read ([`Store::claim_due_workflow_runs`]); only the claimer enqueues,
//!   in the same transaction;
//! - the next due time is the schedule's next one after the claimed due time,
//!   or — when that one has passed too (the scheduler was down) — the next one
//!   after now: missed runs fire once, not once per missed due time;
//! - flood guard: while the workflow's previous job is pending or running, the
//!   due time is claimed and skipped (`skipped_runs` + 1) instead of queued.
//!
//! Shutdown phases: the token stops the loop between ticks; a tick in progress
//! finishes (each claim is one short transaction), then `run` returns.

use std::time::Duration;

use arvis_shared::bus::Bus;
use arvis_shared::bus::events::{ConfigChanged, JobReady};
use arvis_shared::bus::subjects;
use arvis_shared::clock::now_ms;
use arvis_shared::{Deps, ServiceFuture};
use std::collections::HashMap;

use arvis_shared::budget::{self, BudgetError};
use arvis_shared::db::scheduling::{ClaimOutcome, DuePlan, DueWorkflow, WorkflowRun};
use arvis_shared::db::usage::Spender;
use arvis_shared::db::{DbError, Store};
use arvis_shared::domain::job::{JobKind, JobPayload, NewJob, priority};
use arvis_shared::domain::schedule;
use jiff::tz::TimeZone;
use tokio_util::sync::CancellationToken;

/// Put before every workflow prompt: a scheduled run has nobody to answer questions.
pub const SCHEDULED_TASK_PREAMBLE: &str = "SCHEDULED TASK — EXECUTE ONLY. Do not ask questions. Reply with a short result (1–3 lines) or `Error: <reason>`.\n\n";

/// The wait after a tick that left a due time unclaimed (it failed, or the
/// claim lost every race): retry after this, without spinning.
pub const MIN_TICK: Duration = Duration::from_secs(1);
/// The shortest wait between two ticks when the next due time is still ahead.
pub const MIN_GAP: Duration = Duration::from_millis(20);
/// Woken for a due time, wait this much past it: the timer runs on the
/// monotonic clock, due times are wall-clock milliseconds, and a tick that
/// came a millisecond early would find nothing due and sleep on.
pub const DUE_MARGIN: Duration = Duration::from_millis(2);
/// Never sleep longer than this: the periodic re-read that makes up for a
/// missed `ConfigChanged` notice or a workflow written by another process.
pub const MAX_TICK: Duration = Duration::from_secs(15);
/// How often expired job leases are swept (idempotent; workers may sweep too).
pub const SWEEP_EVERY: Duration = Duration::from_secs(10);
/// A stored schedule that no longer parses is retried after this long.
const BAD_SCHEDULE_RETRY_MS: i64 = 3_600_000;

/// What one tick did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TickReport {
    /// (workflow id, job id) of every job this tick enqueued.
    pub fired: Vec<(i64, i64)>,
    /// Workflows whose due time this tick claimed but skipped (flood guard).
    pub skipped: Vec<i64>,
    /// Workflows whose due time this tick claimed but did not run: a budget
    /// of the workflow or of its agent is used up.
    pub over_budget: Vec<i64>,
    /// Workflows whose first due time this tick set.
    pub initialised: Vec<i64>,
    /// Due times another replica claimed first (or that changed meanwhile).
    pub lost: usize,
    /// Workflows whose scheduling failed (logged; retried on the next tick).
    pub failed: Vec<i64>,
    /// The earliest `next_run_at` after the tick, if any workflow is enabled.
    pub next_due_at: Option<i64>,
}

/// Runs the scheduler until `shutdown` fires.
///
/// Boxed and never inlined, like every service entry point (see
/// [`arvis_shared::ServiceFuture`]): the caller polls it through one call and
/// does not compile the service's generic code a second time.
#[inline(never)]
pub fn run(deps: Deps, shutdown: CancellationToken) -> ServiceFuture<'static> {
    Box::pin(run_service(deps, shutdown))
}

async fn run_service(deps: Deps, shutdown: CancellationToken) -> anyhow::Result<()> {
    let tz = deps.config.scheduler_tz.clone();
    let store = deps.store.clone();
    let bus = deps.bus.clone();
    tracing::info!(time_zone = tz.iana_name().unwrap_or("(file)"), "scheduler started");
    let mut notices = match bus.subscribe(subjects::CONFIG_CHANGED).await {
        Ok(s) => Some(s),
        Err(error) => {
            tracing::warn!(%error, "scheduler: no config-change notices; re-reading every {}s", MAX_TICK.as_secs());
            None
        }
    };
    let mut next_sweep = now_ms();
    loop {
        let now = now_ms();
        if now >= next_sweep {
            match store.sweep_expired_leases().await {
                Ok((0, 0)) => {}
                Ok((requeued, failed)) => tracing::info!(requeued, failed, "swept jobs with expired leases"),
                Err(error) => tracing::warn!(%error, "sweeping expired job leases failed"),
            }
            next_sweep = now + SWEEP_EVERY.as_millis() as i64;
        }
        let next_due = match tick(&store, &bus, now, &tz).await {
            Ok(report) => report.next_due_at,
            Err(error) => {
                tracing::warn!(%error, "scheduler tick failed; retrying");
                None
            }
        };
        let sleep = tokio::time::sleep(wait_after_tick(next_due, next_sweep, now_ms()));
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => {
                    tracing::info!("scheduler stopped");
                    return Ok(());
                }
                () = &mut sleep => break,
                msg = next_notice(&mut notices) => match msg {
                    Some(msg) => {
                        if msg.decode::<ConfigChanged>().is_some_and(|c| c.entity == "workflow") {
                            break;
                        }
                    }
                    None => {
                        tracing::warn!("scheduler: config-change subscription ended; polling only");
                        notices = None;
                    }
                },
            }
        }
    }
}

/// How long to sleep after a tick that ended at `now` (ms): until the next due
/// time plus [`DUE_MARGIN`] (at least [`MIN_GAP`]); [`MIN_TICK`] when a due
/// time has already passed unclaimed; never past the next lease sweep nor
/// longer than [`MAX_TICK`] (the periodic re-read that makes up for a missed
/// notice).
///
/// The wait used to be clamped to at least [`MIN_TICK`] in every case, so a
/// tick that woke a little before a due time (for a sweep, or by a
/// millisecond of clock rounding) pushed the due time's run back by up to a
/// second: cron-burst measured 1.2–1.4 s from the due instant to the last
/// enqueue, of which ~1 s was that wait.
pub fn wait_after_tick(next_due: Option<i64>, next_sweep: i64, now: i64) -> Duration {
    let ms = |d: Duration| d.as_millis() as i64;
    let for_due = match next_due {
        Some(due) if due <= now => ms(MIN_TICK),
        Some(due) => (due - now + ms(DUE_MARGIN)).max(ms(MIN_GAP)),
        None => ms(MAX_TICK),
    };
    let wait = for_due.min(next_sweep - now).clamp(ms(MIN_GAP), ms(MAX_TICK));
    Duration::from_millis(wait as u64)
}

/// The next notice, or never when there is no subscription.
async fn next_notice(notices: &mut Option<arvis_shared::bus::Subscription>) -> Option<arvis_shared::bus::Message> {
    match notices {
        Some(s) => s.next().await,
        None => std::future::pending().await,
    }
}

/// Due times claimed per transaction. Large enough that a burst of thousands
/// of due workflows costs a few dozen commits, small enough that one batch
/// holds SQLite's write lock for only a few milliseconds.
pub const CLAIM_BATCH: i64 = 256;

/// One pass at time `now` (ms): sets missing first due times, claims every due
/// time that has come in batches ([`Store::claim_due_workflow_runs`]),
/// enqueues (or skips) their jobs, and publishes `JobReady` after each commit.
/// Should a batch fail, the pass falls back to one transaction per due time,
/// so one broken workflow is logged and retried without holding back the rest.
pub async fn tick(store: &Store, bus: &Bus, now: i64, tz: &TimeZone) -> Result<TickReport, DbError> {
    let mut report = TickReport::default();
    let blocked = std::sync::Arc::new(over_budget(store).await?);
    for wf in store.unscheduled_workflows().await? {
        if let Err(error) = tick_one(store, bus, &wf, now, tz, &blocked, &mut report).await {
            tracing::warn!(workflow_id = wf.id, %error, "scheduling a workflow failed; retrying next tick");
            report.failed.push(wf.id);
        }
    }
    loop {
        let (zone, budgets) = (tz.clone(), blocked.clone());
        match store.claim_due_workflow_runs(now, CLAIM_BATCH, move |wf| plan(wf, now, &zone, &budgets)).await {
            Ok(batch) => {
                let mut progressed = false;
                for (wf, outcome) in &batch {
                    progressed |= outcome != &ClaimOutcome::Lost;
                    record(bus, wf, wf.next_run_at.unwrap_or(now), *outcome, &mut report).await;
                }
                if batch.len() < CLAIM_BATCH as usize || !progressed {
                    break;
                }
            }
            Err(error) => {
                tracing::warn!(%error, "claiming a batch of due workflows failed; claiming one at a time");
                for wf in store.due_workflows(now).await? {
                    if let Err(error) = tick_one(store, bus, &wf, now, tz, &blocked, &mut report).await {
                        tracing::warn!(workflow_id = wf.id, %error, "scheduling a workflow failed; retrying next tick");
                        report.failed.push(wf.id);
                    }
                }
                break;
            }
        }
    }
    report.next_due_at = store.next_workflow_due_at().await?;
    Ok(report)
}

/// The budgets used up at the start of a tick: workflow id → why, agent id →
/// why. Read once per tick (two sums per budgeted workflow or agent; nothing
/// when no budget is set), before the claim transactions, which must not wait
/// on reads.
#[derive(Debug, Default)]
pub struct Blocked {
    pub workflows: HashMap<i64, String>,
    pub agents: HashMap<i64, String>,
}

async fn over_budget(store: &Store) -> Result<Blocked, DbError> {
    let mut blocked = Blocked::default();
    let check = async |who: Spender, owner: String, daily: Option<f64>, monthly: Option<f64>| match budget::check(
        store,
        who,
        &owner,
        &budget::limits(daily, monthly),
        0.0,
    )
    .await
    {
        Ok(()) => Ok(None),
        Err(BudgetError::Over(over)) => Ok(Some(over.to_string())),
        Err(BudgetError::Db(e)) => Err(e),
    };
    for (id, name, daily, monthly) in store.budgeted_workflows().await? {
        if let Some(why) = check(Spender::Workflow(id), format!("workflow {name}"), daily, monthly).await? {
            blocked.workflows.insert(id, why);
        }
    }
    let agents = store.agents().await?;
    for a in agents.iter().filter(|a| a.daily_budget_usd.is_some() || a.monthly_budget_usd.is_some()) {
        let owner = format!("agent {}", a.slug);
        if let Some(why) = check(Spender::Agent(a.id), owner, a.daily_budget_usd, a.monthly_budget_usd).await? {
            blocked.agents.insert(a.id, why);
        }
    }
    Ok(blocked)
}

/// What to do with a due workflow: run it and move on to its next due time;
/// skip it when a budget of it or its agent is used up; or — when its
/// schedule no longer parses — postpone it by an hour.
fn plan(wf: &DueWorkflow, now: i64, tz: &TimeZone, blocked: &Blocked) -> DuePlan {
    let next = wf.next_run_at.and_then(|due| {
        let parsed = schedule::parse(&wf.schedule).ok()?;
        next_due_after(&parsed, due, now, tz)
    });
    let over = blocked.workflows.get(&wf.id).or_else(|| blocked.agents.get(&wf.agent_id));
    match next {
        Some(next_run_at) if let Some(reason) = over => {
            DuePlan::OverBudget { next_run_at, reason: format!("run skipped: {reason}") }
        }
        Some(next_run_at) => DuePlan::Fire { next_run_at, job: Box::new(workflow_job(wf)) },
        None => DuePlan::Postpone { next_run_at: now + BAD_SCHEDULE_RETRY_MS },
    }
}

/// Logs, signals and counts the outcome of one claim.
async fn record(bus: &Bus, wf: &DueWorkflow, due: i64, outcome: ClaimOutcome, report: &mut TickReport) {
    match outcome {
        ClaimOutcome::Enqueued { job_id } => {
            tracing::info!(workflow_id = wf.id, job_id, due_at = due, "workflow fired");
            bus.signal(&JobReady { v: 1, job_id, priority: priority::SCHEDULED }).await;
            metrics::counter!("arvis_scheduler_fires_total").increment(1);
            report.fired.push((wf.id, job_id));
        }
        ClaimOutcome::Skipped { unfinished_job_id } => {
            tracing::warn!(
                workflow_id = wf.id,
                unfinished_job_id,
                due_at = due,
                "workflow run skipped: its previous job is still pending or running"
            );
            metrics::counter!("arvis_scheduler_skips_total").increment(1);
            report.skipped.push(wf.id);
        }
        ClaimOutcome::Postponed => {
            tracing::warn!(workflow_id = wf.id, "workflow schedule does not parse; retrying in an hour")
        }
        ClaimOutcome::OverBudget => {
            tracing::warn!(workflow_id = wf.id, due_at = due, "workflow run skipped: a budget is used up");
            metrics::counter!("arvis_scheduler_budget_skips_total").increment(1);
            report.over_budget.push(wf.id);
        }
        ClaimOutcome::Lost => report.lost += 1,
    }
}

/// One workflow in its own transaction(s): the first due time of a new or
/// edited workflow, or the claim of one due time (the batch's fallback).
async fn tick_one(
    store: &Store,
    bus: &Bus,
    wf: &DueWorkflow,
    now: i64,
    tz: &TimeZone,
    blocked: &Blocked,
    report: &mut TickReport,
) -> Result<(), DbError> {
    let Some(due) = wf.next_run_at else {
        let first = schedule::parse(&wf.schedule).ok().and_then(|s| s.next_after_in(now, tz)).unwrap_or_else(|| {
            tracing::warn!(workflow_id = wf.id, "workflow schedule does not parse; retrying in an hour");
            now + BAD_SCHEDULE_RETRY_MS
        });
        if store.init_next_run(wf.id, first).await? {
            report.initialised.push(wf.id);
        }
        return Ok(());
    };
    let outcome = match plan(wf, now, tz, blocked) {
        DuePlan::Postpone { next_run_at } => match store.postpone_workflow_run(wf.id, due, next_run_at).await? {
            true => ClaimOutcome::Postponed,
            false => ClaimOutcome::Lost,
        },
        DuePlan::Fire { next_run_at, job } => {
            let run = WorkflowRun { workflow_id: wf.id, due_at: due, next_run_at, job: &job, now };
            store.claim_and_enqueue_workflow_run(&run).await?
        }
        DuePlan::OverBudget { next_run_at, reason } => {
            store.skip_workflow_run_over_budget(wf.id, due, next_run_at, &reason).await?
        }
    };
    record(bus, wf, due, outcome, report).await;
    Ok(())
}

/// The due time after `due`: the schedule's next one, unless that has passed
/// as well (the scheduler was down for more than one period) — then the next
/// one after `now`, so missed runs collapse into the one firing now.
pub fn next_due_after(s: &schedule::Schedule, due: i64, now: i64, tz: &TimeZone) -> Option<i64> {
    match s.next_after_in(due, tz) {
        Some(next) if next > now => Some(next),
        _ => s.next_after_in(now, tz),
    }
}

/// The job of one run: the preamble plus the prompt, replying to the workflow's channel.
fn workflow_job(wf: &DueWorkflow) -> NewJob {
    let payload = JobPayload {
        prompt: format!("{SCHEDULED_TASK_PREAMBLE}{}", wf.prompt),
        channel_id: wf.channel_id.clone(),
        platform: wf.platform.clone(),
        extra: serde_json::json!({ "workflowId": wf.id, "workflowName": wf.name }),
        ..Default::default()
    };
    let mut job = NewJob::new(wf.agent_id, JobKind::Workflow, priority::SCHEDULED, payload);
    job.workflow_id = Some(wf.id);
    job
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_000_000;
    const FAR: i64 = NOW + 3_600_000; // no sweep soon

    fn wait(next_due: Option<i64>, next_sweep: i64) -> u128 {
        wait_after_tick(next_due, next_sweep, NOW).as_millis()
    }

    #[test]
    fn sleeps_until_just_past_the_next_due_time() {
        assert_eq!(wait(Some(NOW + 300), FAR), 302, "a due time 300 ms ahead is not pushed to a second");
        assert_eq!(wait(Some(NOW + 5_000), FAR), 5_002);
        assert_eq!(wait(Some(NOW + 1), FAR), 20, "at least MIN_GAP between ticks");
    }

    #[test]
    fn an_unclaimed_past_due_time_is_retried_after_min_tick() {
        assert_eq!(wait(Some(NOW), FAR), 1_000);
        assert_eq!(wait(Some(NOW - 50_000), FAR), 1_000);
    }

    #[test]
    fn never_past_the_sweep_nor_max_tick() {
        assert_eq!(wait(Some(NOW + 5_000), NOW + 700), 700);
        assert_eq!(wait(Some(NOW + 5_000), NOW - 10), 20, "an overdue sweep still waits MIN_GAP");
        assert_eq!(wait(None, FAR), 15_000);
        assert_eq!(wait(Some(NOW + 60_000), FAR), 15_000);
    }
}
