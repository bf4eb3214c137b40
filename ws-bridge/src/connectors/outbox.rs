//! Replies of a held bot: from finished jobs to outbox rows to the platform.
//!
//! - [`watch_replies`] turns the jobs a bot owes an answer for into
//!   deliveries. It reads the owed jobs that ended from the database — on
//!   every final reply event of the platform (the fast path) and once a second
//!   (the bus is at-most-once: a lost event only delays a reply) — splits each
//!   reply at the platform's limit and writes the chunks and the settlement in
//!   one transaction. Typing events of owed jobs become typing indicators.
//! - [`send_deliveries`] drains the bot's outbox in id order, independent of
//!   the platform session (REST keeps working while a gateway socket
//!   reconnects). A channel's rows go out in order: a row waiting for its
//!   next attempt holds back the rows behind it in that channel. A retry-after
//!   from the platform is honoured to the millisecond; other transient
//!   failures back off (1 s … 60 s, jittered) for up to [`MAX_ATTEMPTS`];
//!   permanent refusals (4xx other than 429) fail at once with the platform's
//!   text. Every failure is visible in `GET /api/deliveries`.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use arvis_shared::bus::events::{ReplyEvent, ReplyKind};
use arvis_shared::bus::subjects;
use arvis_shared::clock::now_ms;
use arvis_shared::db::outbox::{DueDelivery, FinishedReply};
use arvis_shared::domain::delivery::NewDelivery;
use arvis_shared::domain::job::failure;

use super::chunk;
use super::http::delivery_delay;
use super::{BotCtx, metric};

/// Attempts before a transiently failing delivery is marked failed.
pub const MAX_ATTEMPTS: i64 = 8;
/// How often owed replies are looked up without an event.
const POLL_EVERY: Duration = Duration::from_secs(1);
/// Telegram shows "typing…" for 5 s; refresh it while the agent works.
const TYPING_REFRESH: Duration = Duration::from_millis(4500);

/// Why a send did not go through.
#[derive(Debug, Clone, PartialEq)]
pub enum SendError {
    /// The platform asked us to wait (429).
    RetryAfter(Duration, String),
    /// Worth trying again (5xx, a timeout, a refused connection).
    Transient(String),
    /// Refused for good (a 4xx other than 429): the platform's error text.
    Permanent(String),
}

/// A platform's outbound side.
pub trait Outbound: Send + Sync {
    /// Longest message the platform takes, in characters.
    fn limit(&self) -> usize;
    /// Sends one message; the platform's id of it on success.
    fn send(&self, d: &DueDelivery) -> impl Future<Output = Result<Option<String>, SendError>> + Send;
    /// Shows "typing…" in a channel (best effort).
    fn typing(&self, channel_id: &str) -> impl Future<Output = ()> + Send;
}

/// Jobs the bot owes an answer for, by id, with their channel: filled when a
/// message is taken in, refreshed from the database, emptied on settlement.
#[derive(Default)]
pub struct Owed {
    jobs: Mutex<HashMap<i64, String>>,
}

impl Owed {
    pub fn insert(&self, job_id: i64, channel_id: &str) {
        if let Ok(mut m) = self.jobs.lock() {
            m.insert(job_id, channel_id.to_string());
        }
    }
    fn channel(&self, job_id: i64) -> Option<String> {
        self.jobs.lock().ok().and_then(|m| m.get(&job_id).cloned())
    }
    fn replace(&self, jobs: HashMap<i64, String>) {
        if let Ok(mut m) = self.jobs.lock() {
            *m = jobs;
        }
    }
    fn remove(&self, job_id: i64) {
        if let Ok(mut m) = self.jobs.lock() {
            m.remove(&job_id);
        }
    }
}

/// Derives deliveries from finished jobs until the lease is lost.
pub async fn watch_replies<O: Outbound>(bot: &BotCtx, out: &O) {
    let mut events = match bot.deps.bus.subscribe(&subjects::replies_for_platform(&bot.bot.platform)).await {
        Ok(s) => Some(s),
        Err(error) => {
            tracing::warn!(%error, bot_id = bot.bot.id, "no reply events; replies are found by polling");
            None
        }
    };
    let mut tick = tokio::time::interval(POLL_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut typing: HashMap<i64, (String, Instant)> = HashMap::new();
    loop {
        let mut settle = false;
        tokio::select! {
            () = bot.lease.lost.cancelled() => return,
            msg = async {
                match events.as_mut() {
                    Some(s) => s.next().await,
                    None => std::future::pending().await,
                }
            } => match msg {
                // The bus closed: polling is all there is now.
                None => events = None,
                Some(m) => match m.decode::<ReplyEvent>() {
                    Some(e) if e.kind == ReplyKind::Typing => {
                        if let Some(channel) = bot.owed.channel(e.job_id) {
                            out.typing(&channel).await;
                            typing.insert(e.job_id, (channel, Instant::now()));
                        }
                    }
                    Some(e) if matches!(e.kind, ReplyKind::Message | ReplyKind::Error) => {
                        settle = bot.owed.channel(e.job_id).is_some();
                    }
                    _ => {}
                },
            },
            _ = tick.tick() => {
                settle = true;
                match bot.deps.store.owed_bot_replies(bot.bot.id).await {
                    Ok(rows) => bot.owed.replace(rows.into_iter().map(|r| (r.job_id, r.channel_id)).collect()),
                    Err(error) => tracing::warn!(%error, bot_id = bot.bot.id, "cannot read the owed replies"),
                }
                typing.retain(|job, _| bot.owed.channel(*job).is_some());
                for (channel, at) in typing.values_mut() {
                    if at.elapsed() >= TYPING_REFRESH {
                        out.typing(channel).await;
                        *at = Instant::now();
                    }
                }
            }
        }
        if settle {
            settle_finished(bot, out.limit()).await;
        }
    }
}

/// Writes the deliveries of every owed job that ended.
async fn settle_finished(bot: &BotCtx, limit: usize) {
    let finished = match bot.deps.store.finished_bot_replies(bot.bot.id, 100).await {
        Ok(f) => f,
        Err(error) => {
            tracing::warn!(%error, bot_id = bot.bot.id, "cannot read the finished replies");
            return;
        }
    };
    for f in finished {
        let rows = deliveries_for(bot.bot.id, &bot.bot.platform, &f, limit);
        match bot.deps.store.settle_bot_reply(bot.bot.id, f.job_id, &rows).await {
            Ok(_) => {
                bot.owed.remove(f.job_id);
                bot.outbox_ready.notify_one();
            }
            Err(error) => tracing::warn!(%error, bot_id = bot.bot.id, job_id = f.job_id, "cannot write the reply"),
        }
    }
}

/// The outbox rows of a finished job: the reply in chunks, or the failure's
/// reason (never silence).
fn deliveries_for(bot_id: i64, platform: &str, f: &FinishedReply, limit: usize) -> Vec<NewDelivery> {
    let text = match f.status.as_deref() {
        Some("completed") => f.result.clone().unwrap_or_default(),
        Some("cancelled") => "The request was cancelled before it was answered.".to_string(),
        Some(_) => {
            let error = f.error.as_deref().unwrap_or("the run failed");
            format!("Sorry, I could not answer: {}", failure::split(error).0)
        }
        None => "Sorry, the request was removed before it was answered.".to_string(),
    };
    if text.trim().is_empty() {
        return Vec::new();
    }
    chunk::split(&text, limit)
        .into_iter()
        .enumerate()
        .map(|(i, content)| NewDelivery {
            bot_id,
            platform: platform.to_string(),
            channel_id: f.channel_id.clone(),
            job_id: Some(f.job_id),
            chunk_index: i as i64,
            dedupe_key: format!("job:{}:{i}", f.job_id),
            content,
            // The first chunk answers the message; the rest follow it.
            reply_to: if i == 0 { f.reply_to.clone() } else { None },
            thread_id: f.thread_id.clone(),
        })
        .collect()
}

/// Sends the bot's outbox until the lease is lost.
pub async fn send_deliveries<O: Outbound>(bot: &BotCtx, out: &O) {
    let platform = bot.bot.platform.clone();
    let mut wait = Duration::ZERO;
    loop {
        tokio::select! {
            () = bot.lease.lost.cancelled() => return,
            () = bot.outbox_ready.notified() => {}
            () = tokio::time::sleep(wait) => {}
        }
        wait = POLL_EVERY;
        let rows = match bot.deps.store.pending_deliveries(bot.bot.id, 50).await {
            Ok(r) => r,
            Err(error) => {
                tracing::warn!(%error, bot_id = bot.bot.id, "cannot read the outbox");
                continue;
            }
        };
        let mut held_back: HashSet<String> = HashSet::new();
        for row in rows {
            if held_back.contains(&row.channel_id) {
                continue;
            }
            let now = now_ms();
            if row.next_attempt_at > now {
                wait = wait.min(Duration::from_millis((row.next_attempt_at - now) as u64));
                held_back.insert(row.channel_id.clone());
                continue;
            }
            if !bot.lease.valid() {
                return;
            }
            let store = &bot.deps.store;
            let outcome = out.send(&row).await;
            let written = match outcome {
                Ok(id) => {
                    metric(&platform, "sent");
                    store.mark_delivery_sent(row.id, id.as_deref()).await
                }
                Err(SendError::RetryAfter(after, text)) => {
                    metric(&platform, "retried");
                    held_back.insert(row.channel_id.clone());
                    wait = wait.min(after);
                    store.mark_delivery_retry(row.id, &text, now_ms() + after.as_millis() as i64).await
                }
                Err(SendError::Transient(text)) if row.attempts + 1 < MAX_ATTEMPTS => {
                    metric(&platform, "retried");
                    held_back.insert(row.channel_id.clone());
                    let after = delivery_delay(row.attempts);
                    wait = wait.min(after);
                    store.mark_delivery_retry(row.id, &text, now_ms() + after.as_millis() as i64).await
                }
                Err(SendError::Transient(text)) => {
                    metric(&platform, "failed");
                    store.mark_delivery_failed(row.id, &format!("gave up after {MAX_ATTEMPTS} attempts: {text}")).await
                }
                Err(SendError::Permanent(text)) => {
                    metric(&platform, "failed");
                    store.mark_delivery_failed(row.id, &text).await
                }
            };
            if let Err(error) = written {
                tracing::warn!(%error, delivery = row.id, "cannot record a delivery attempt");
                held_back.insert(row.channel_id.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finished(status: Option<&str>, result: &str) -> FinishedReply {
        FinishedReply {
            job_id: 7,
            channel_id: "42".into(),
            reply_to: Some("99".into()),
            thread_id: None,
            status: status.map(str::to_string),
            result: Some(result.into()),
            error: Some("every AI account is rate-limited (detail: HTTP 429)".into()),
        }
    }

    #[test]
    fn a_long_reply_becomes_ordered_chunks_keyed_by_job_and_index() {
        let rows = deliveries_for(1, "telegram", &finished(Some("completed"), &"word ".repeat(1000)), 4096);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].dedupe_key, "job:7:0");
        assert_eq!(rows[1].dedupe_key, "job:7:1");
        assert_eq!(rows[0].reply_to.as_deref(), Some("99"));
        assert_eq!(rows[1].reply_to, None);
    }

    #[test]
    fn a_failed_run_still_answers_with_its_reason_only() {
        let rows = deliveries_for(1, "telegram", &finished(Some("failed"), ""), 4096);
        assert_eq!(rows.len(), 1);
        assert!(rows[0].content.contains("rate-limited"), "{}", rows[0].content);
        assert!(!rows[0].content.contains("HTTP 429"), "the technical cause stays out: {}", rows[0].content);
    }
}
