//! The claim loop of one worker process.
//!
//! - Claims up to the free slots of `WORKER_CONCURRENCY` with a lease
//!   (`WORKER_LEASE_MS`), each job in its own task ([`crate::runner::process`]).
//! - Wakes on a `JobReady` signal (a plain subscription: every worker wakes,
//!   the claim is atomic in the database), when a slot frees, at the earliest
//!   `run_after` of a pending job, or on a 2 s poll — so a bus outage only
//!   delays work.
//! - Renews the leases of its running jobs in one batched statement (every
//!   lease/3, at most 10 s) and sweeps expired leases of dead workers (every
//!   5 s; idempotent, any worker may do it). The same tick, and the first one
//!   right at start, applies the reply effects a dead worker stored but never
//!   applied ([`crate::runner::sweep_effects`]; exactly once).
//! - On shutdown: stops claiming, lets running jobs finish for up to
//!   `WORKER_SHUTDOWN_GRACE_SECS` (logging the in-flight count), then aborts
//!   and releases the rest so another worker takes them without losing an attempt.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt as _;
use tokio::task::{Id, JoinSet};
use tokio::time::{Instant, MissedTickBehavior, interval, sleep_until};
use tokio_util::sync::CancellationToken;

use arvis_shared::bus::{Message, Subscription, subjects};
use arvis_shared::clock::now_ms;

use crate::context::RunCtx;
use crate::runner::process;

struct Running {
    set: JoinSet<i64>,
    jobs: HashMap<Id, i64>,
}

impl Running {
    fn ids(&self) -> Vec<i64> {
        self.jobs.values().copied().collect()
    }
    fn done(&mut self, r: Result<(Id, i64), tokio::task::JoinError>) {
        match r {
            Ok((id, _)) => {
                self.jobs.remove(&id);
            }
            Err(e) => {
                let job = self.jobs.remove(&e.id());
                if e.is_panic() {
                    tracing::error!(job_id = ?job, "a job task panicked; its lease will expire and the job rerun");
                }
            }
        }
    }
}

async fn next_signal(sub: &mut Option<Subscription>) -> Option<Message> {
    match sub {
        Some(s) => s.next().await,
        None => std::future::pending().await,
    }
}

async fn renew(ctx: &RunCtx, running: &Running) {
    let ids = running.ids();
    if ids.is_empty() {
        return;
    }
    match ctx.deps.store.renew_leases(&ctx.worker_id, &ids, ctx.settings.lease_ms).await {
        Ok(n) if (n as usize) < ids.len() => {
            tracing::warn!(held = n, running = ids.len(), "some leases were lost (expired and taken over)")
        }
        Ok(_) => {}
        Err(error) => tracing::warn!(%error, "cannot renew leases"),
    }
}

/// Runs the loop until `shutdown`, then drains.
pub async fn run(ctx: Arc<RunCtx>, shutdown: CancellationToken) -> anyhow::Result<()> {
    let store = ctx.deps.store.clone();
    let settings = ctx.settings.clone();
    let mut sub = match ctx.deps.bus.subscribe(subjects::JOBS_READY).await {
        Ok(s) => Some(s),
        Err(error) => {
            tracing::warn!(%error, "cannot subscribe to job signals; polling only");
            None
        }
    };
    tracing::info!(worker_id = %ctx.worker_id, concurrency = settings.concurrency, "worker started");
    let mut running = Running { set: JoinSet::new(), jobs: HashMap::new() };
    let mut renew_tick = interval(settings.renew_every);
    renew_tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut sweep_tick = interval(settings.sweep_every);
    sweep_tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut claim_now = true;
    let mut wake_at = Instant::now();

    loop {
        if claim_now || Instant::now() >= wake_at {
            claim_now = false;
            let free = settings.concurrency.saturating_sub(running.jobs.len());
            if free > 0 {
                match store.claim_jobs(&ctx.worker_id, free as i64, settings.lease_ms).await {
                    Ok(jobs) => {
                        for job in jobs {
                            let job_id = job.id;
                            tracing::debug!(job_id, attempt = job.attempts, "claimed");
                            let ctx = ctx.clone();
                            let handle = running.set.spawn(async move {
                                process(ctx, job).await;
                                job_id
                            });
                            running.jobs.insert(handle.id(), job_id);
                        }
                    }
                    Err(error) => tracing::warn!(%error, "cannot claim jobs; retrying at the next poll"),
                }
            }
            wake_at = Instant::now() + settings.poll_every;
            // A slot still free after the claim means nothing pending was
            // claimable: wake when the earliest pending job becomes due.
            if running.jobs.len() < settings.concurrency
                && let Ok(Some(due)) = store.next_due_at().await
            {
                let in_ms = due - now_ms();
                if in_ms > 0 && (in_ms as u128) < settings.poll_every.as_millis() {
                    wake_at = Instant::now() + Duration::from_millis(in_ms as u64);
                }
            }
        }
        tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            Some(done) = running.set.join_next_with_id(), if !running.set.is_empty() => {
                running.done(done);
                // Join every other finished job too before claiming: one claim
                // for all the freed slots. (Joining one per loop turn made the
                // claim rate — two database round trips a turn — the worker's
                // throughput limit: under load the rows were completed while
                // their tasks waited to be joined, and each claim got 1 job.)
                while let Some(Some(done)) = running.set.join_next_with_id().now_or_never() {
                    running.done(done);
                }
                claim_now = true;
            }
            signal = next_signal(&mut sub) => match signal {
                Some(_) => {
                    // Coalesce a burst of signals into one claim.
                    if let Some(s) = sub.as_mut() {
                        while let Some(Some(_)) = s.next().now_or_never() {}
                    }
                    claim_now = true;
                }
                None => {
                    tracing::warn!("job signal subscription closed; polling only");
                    sub = None;
                }
            },
            _ = renew_tick.tick() => renew(&ctx, &running).await,
            _ = sweep_tick.tick() => {
                match store.sweep_expired_leases().await {
                    Ok((requeued, failed)) => {
                        if requeued + failed > 0 {
                            tracing::warn!(requeued, failed, "jobs of a stopped worker recovered");
                        }
                        if requeued > 0 {
                            claim_now = true;
                        }
                    }
                    Err(error) => tracing::warn!(%error, "cannot sweep expired leases"),
                }
                if crate::runner::sweep_effects(&ctx).await > 0 {
                    claim_now = true; // delegations may have been enqueued
                }
            }
            () = sleep_until(wake_at) => claim_now = true,
        }
    }

    drop(sub);
    drain(&ctx, running, renew_tick).await;
    tracing::info!(worker_id = %ctx.worker_id, "worker stopped");
    Ok(())
}

/// Lets running jobs finish within the grace period, then releases the rest.
async fn drain(ctx: &RunCtx, mut running: Running, mut renew_tick: tokio::time::Interval) {
    if running.jobs.is_empty() {
        return;
    }
    let deadline = Instant::now() + ctx.settings.shutdown_grace;
    let mut log_tick = interval(Duration::from_secs(1));
    tracing::info!(
        in_flight = running.jobs.len(),
        grace_secs = ctx.settings.shutdown_grace.as_secs(),
        "draining running jobs"
    );
    while !running.set.is_empty() {
        tokio::select! {
            Some(done) = running.set.join_next_with_id() => running.done(done),
            () = sleep_until(deadline) => break,
            _ = log_tick.tick() => tracing::info!(in_flight = running.jobs.len(), "draining running jobs"),
            _ = renew_tick.tick() => renew(ctx, &running).await,
        }
    }
    let left = running.ids();
    running.set.abort_all();
    while running.set.join_next().await.is_some() {}
    for job_id in left {
        match ctx.deps.store.release_job(job_id, &ctx.worker_id).await {
            Ok(true) => tracing::info!(job_id, "released an unfinished job for another worker"),
            Ok(false) => {}
            Err(error) => tracing::warn!(%error, job_id, "cannot release a job; its lease will expire"),
        }
    }
}
