//! A bot's inbound message, taken in the same way wherever it arrived: by a
//! connector of the bridge (Telegram polling, Discord and Slack sockets) or
//! by a platform webhook on the gateway (WhatsApp, Twilio SMS).
//!
//! [`take_in`] is the one sequence: the chat intake with the platform's
//! message id, then the owed reply ([`Store::owe_bot_reply`]), then the job's
//! announcement — so the holder's reply watcher knows the job before a worker
//! can finish it, and a redelivered message (the same platform id) is a
//! duplicate that writes nothing and is answered once. A message the intake
//! refuses (too long, no agent, over budget) is answered by a [`notice`]
//! written once per platform message.
//!
//! Only after `Ok` may a connector move its cursor or acknowledge, and a
//! webhook answer 2xx. `Err` means "not taken in": the platform must deliver
//! the message again (the text is for the bot's `lastError` or a log line).
//!
//! The bot's holder finds what a gateway wrote here by itself: its reply
//! watcher reads the owed replies, and its sender the outbox, from the
//! database every second.

use crate::db::Store;
use crate::db::outbox::OwedReply;
use crate::domain::delivery::NewDelivery;
use crate::intake::{Accepted, Incoming, Intake, IntakeError};

/// Where the answer goes, besides the channel.
#[derive(Debug, Clone, Default)]
pub struct ReplyAt {
    /// The platform message the answer quotes (Telegram, Discord).
    pub reply_to: Option<String>,
    /// The thread the answer goes in (a Slack `thread_ts`).
    pub thread_id: Option<String>,
}

/// The bot a message came to.
#[derive(Debug, Clone, Copy)]
pub struct ForBot<'a> {
    pub bot_id: i64,
    pub platform: &'a str,
}

/// What became of a message that was taken in.
#[derive(Debug, Clone, PartialEq)]
pub enum Taken {
    /// Stored (or a duplicate of one stored before); the bot owes its answer.
    Accepted(Accepted),
    /// Refused by the intake; a notice saying why is in the outbox.
    Noticed,
}

/// One message through the intake, with the owed reply recorded before the
/// job is announced. `owed` runs in between (the bridge notes the job in its
/// in-memory list, so that the first typing event already finds it).
pub async fn take_in(
    intake: &Intake,
    store: &Store,
    bot: ForBot<'_>,
    msg: Incoming,
    at: ReplyAt,
    owed: impl FnOnce(&Accepted),
) -> Result<Taken, String> {
    let channel_id = msg.channel_id.clone();
    let external = msg.external_id.clone().unwrap_or_default();
    match intake.accept(msg).await {
        Ok(accepted) => {
            owed(&accepted);
            let row = OwedReply {
                bot_id: bot.bot_id,
                job_id: accepted.job_id,
                channel_id,
                reply_to: at.reply_to,
                thread_id: at.thread_id,
            };
            store.owe_bot_reply(&row).await.map_err(|e| format!("cannot record the owed reply: {e}"))?;
            intake.announce(&accepted).await;
            Ok(Taken::Accepted(accepted))
        }
        Err(IntakeError::Unavailable(e)) => Err(format!("the message could not be stored: {e}")),
        Err(refused) => {
            notice(store, bot, &channel_id, &external, at, &refused.user_message()).await?;
            Ok(Taken::Noticed)
        }
    }
}

/// An answer that is not an agent's (only text is read, no agent can answer),
/// written once per platform message (`notice:<platform id>`).
pub async fn notice(
    store: &Store,
    bot: ForBot<'_>,
    channel_id: &str,
    external: &str,
    at: ReplyAt,
    text: &str,
) -> Result<(), String> {
    let d = NewDelivery {
        bot_id: bot.bot_id,
        platform: bot.platform.to_string(),
        channel_id: channel_id.to_string(),
        job_id: None,
        chunk_index: 0,
        dedupe_key: format!("notice:{external}"),
        content: text.to_string(),
        reply_to: at.reply_to,
        thread_id: at.thread_id,
    };
    store.enqueue_delivery(&d).await.map(|_| ()).map_err(|e| format!("cannot store the notice: {e}"))
}
