//! Taking a platform message in, the same way for every connector: through
//! the chat intake with the platform's message id, then the owed reply is
//! recorded, then the job is announced — so the reply watcher knows the job
//! before a worker can start it, and a redelivered message (the same
//! platform id) is a duplicate that writes nothing and is answered once.
//!
//! Only after [`take_in`] returned `Ok` may a connector move its cursor
//! (Telegram offset, Discord seq) or acknowledge (a Slack envelope). An
//! `Err` means "not taken in": the connector must see the message again.

use arvis_shared::db::outbox::OwedReply;
use arvis_shared::domain::delivery::NewDelivery;
use arvis_shared::intake::{Incoming, IntakeError};

use super::BotCtx;

/// Where the answer goes, besides the channel.
#[derive(Debug, Clone, Default)]
pub struct ReplyAt {
    /// The platform message the answer quotes (Telegram, Discord).
    pub reply_to: Option<String>,
    /// The thread the answer goes in (a Slack `thread_ts`).
    pub thread_id: Option<String>,
}

/// One message through the intake; `Err` (with a text for the bot's
/// `lastError`) when it could not be stored and must be seen again.
pub async fn take_in(ctx: &BotCtx, msg: Incoming, at: ReplyAt) -> Result<(), String> {
    let channel_id = msg.channel_id.clone();
    let external = msg.external_id.clone().unwrap_or_default();
    match ctx.intake.accept(msg).await {
        Ok(accepted) => {
            ctx.owed.insert(accepted.job_id, &channel_id);
            let owed = OwedReply {
                bot_id: ctx.bot.id,
                job_id: accepted.job_id,
                channel_id,
                reply_to: at.reply_to,
                thread_id: at.thread_id,
            };
            ctx.deps.store.owe_bot_reply(&owed).await.map_err(|e| format!("cannot record the owed reply: {e}"))?;
            ctx.intake.announce(&accepted).await;
            Ok(())
        }
        Err(IntakeError::Unavailable(e)) => Err(format!("the message could not be stored: {e}")),
        Err(refused) => notice(ctx, &channel_id, &external, at, &refused.user_message()).await,
    }
}

/// An answer that is not an agent's (only text is read, no agent can answer),
/// written once per platform message.
pub async fn notice(ctx: &BotCtx, channel_id: &str, external: &str, at: ReplyAt, text: &str) -> Result<(), String> {
    let d = NewDelivery {
        bot_id: ctx.bot.id,
        platform: ctx.bot.platform.clone(),
        channel_id: channel_id.to_string(),
        job_id: None,
        chunk_index: 0,
        dedupe_key: format!("notice:{external}"),
        content: text.to_string(),
        reply_to: at.reply_to,
        thread_id: at.thread_id,
    };
    ctx.deps.store.enqueue_delivery(&d).await.map_err(|e| format!("cannot store the notice: {e}"))?;
    ctx.outbox_ready.notify_one();
    Ok(())
}

/// `text` with every occurrence of each of `needles` removed and its
/// whitespace collapsed (a mention stripped before routing).
pub fn strip_all(text: &str, needles: &[String]) -> String {
    let mut out = text.to_string();
    for n in needles.iter().filter(|n| !n.is_empty()) {
        out = out.replace(n.as_str(), " ");
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mentions_are_stripped_and_spaces_collapsed() {
        let ids = ["<@42>".to_string(), "<@!42>".to_string()];
        assert_eq!(strip_all("<@42> hello  <@!42> there", &ids), "hello there");
        assert_eq!(strip_all("<@42>", &ids), "");
        assert_eq!(strip_all("<@421> not me", &ids), "<@421> not me");
    }
}
