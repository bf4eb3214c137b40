//! Taking a platform message in, the same way for every connector: the
//! bridge's side of [`arvis_shared::bot_inbound`] (which the gateway's
//! platform webhooks call too), plus what only a holder has — the in-memory
//! list of owed jobs and the sender's wake-up.
//!
//! Only after [`take_in`] returned `Ok` may a connector move its cursor
//! (Telegram offset, Discord seq) or acknowledge (a Slack envelope). An
//! `Err` means "not taken in": the connector must see the message again.

use arvis_shared::bot_inbound::{self, ForBot, Taken};
use arvis_shared::intake::Incoming;

pub use arvis_shared::bot_inbound::ReplyAt;

use super::BotCtx;

fn for_bot(ctx: &BotCtx) -> ForBot<'_> {
    ForBot { bot_id: ctx.bot.id, platform: &ctx.bot.platform }
}

/// One message through the intake; `Err` (with a text for the bot's
/// `lastError`) when it could not be stored and must be seen again.
pub async fn take_in(ctx: &BotCtx, msg: Incoming, at: ReplyAt) -> Result<(), String> {
    let channel_id = msg.channel_id.clone();
    let taken = bot_inbound::take_in(&ctx.intake, &ctx.deps.store, for_bot(ctx), msg, at, |accepted| {
        ctx.owed.insert(accepted.job_id, &channel_id)
    })
    .await?;
    if taken == Taken::Noticed {
        ctx.outbox_ready.notify_one();
    }
    Ok(())
}

/// An answer that is not an agent's (only text is read, no agent can answer),
/// written once per platform message.
pub async fn notice(ctx: &BotCtx, channel_id: &str, external: &str, at: ReplyAt, text: &str) -> Result<(), String> {
    bot_inbound::notice(&ctx.deps.store, for_bot(ctx), channel_id, external, at, text).await?;
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
