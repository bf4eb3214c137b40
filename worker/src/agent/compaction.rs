//! Conversation compaction (behaviour reference §6): when a conversation's
//! tokens pass 75% of the model's window, everything but the last 10 messages
//! is (a) mined for `[MEMORY:…]` facts, which are saved, and (b) summarised;
//! then one transaction deletes the old messages, records the summary in
//! `compactions` and resets the conversation's counters.
//!
//! The model call is the caller's: a closure taking a prompt and returning the
//! model's text. When the summary call fails nothing is written at all; a
//! failed fact extraction is logged and skipped (as in the original).

use std::future::Future;

use arvis_shared::db::memory_ctx::{CompactionDone, CompactionWrite};
use arvis_shared::db::queue::StoredMessage;
use arvis_shared::db::{DbError, Store};

use super::conversation_cache::Conversation;
use super::tags::parse_reply;

/// Compaction starts above this share of the window.
pub const THRESHOLD: f64 = 0.75;
/// Messages kept verbatim.
pub const KEEP_MESSAGES: usize = 10;
/// Each old message is cut to this many characters in the transcript.
const MAX_MESSAGE_CHARS: usize = 4_000;
/// The transcript sent to the summarizer keeps at most this many characters (the newest).
const MAX_TRANSCRIPT_CHARS: usize = 200_000;

/// What happened.
#[derive(Debug, Clone, PartialEq)]
pub enum CompactionOutcome {
    /// Under the threshold, or too few messages to compact.
    NotNeeded,
    Compacted {
        done: CompactionDone,
        facts_saved: usize,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum CompactionError<E: std::fmt::Display> {
    #[error("compaction: database: {0}")]
    Db(#[from] DbError),
    #[error("compaction: the summarizer failed: {0}")]
    Summarizer(E),
}

/// The tokens above which a conversation is compacted, for a model with `window` tokens.
pub fn threshold_tokens(window: i64) -> i64 {
    (window as f64 * THRESHOLD).floor() as i64
}

/// The prompt asking for memory lines.
pub fn facts_prompt(transcript: &str) -> String {
    format!(
        "Read this conversation and extract the facts worth remembering long term: user preferences, \
         project context, learned patterns, important events. Write one per line as \
         [MEMORY:category] fact, with category one of user_preference, project_context, learned_pattern, \
         important_event, sticky (only for critical facts). Write nothing else. If there is nothing worth \
         keeping, answer NONE.\n\nCONVERSATION:\n{transcript}"
    )
}

/// The prompt asking for the summary.
pub fn summary_prompt(transcript: &str) -> String {
    format!(
        "Summarise this conversation so it can be continued without it: the topics, decisions, open \
         questions and anything the user asked to keep in mind. Be concise (at most 300 words), plain \
         text.\n\nCONVERSATION:\n{transcript}"
    )
}

/// `[role]: content` lines, each message cut to a bound, the whole kept to the newest part.
pub fn transcript(messages: &[StoredMessage]) -> String {
    let mut lines: Vec<String> = messages
        .iter()
        .map(|m| {
            let content: String = m.content.chars().take(MAX_MESSAGE_CHARS).collect();
            format!("[{}]: {}", m.role, content)
        })
        .collect();
    let mut total: usize = lines.iter().map(|l| l.len() + 1).sum();
    while total > MAX_TRANSCRIPT_CHARS && lines.len() > 1 {
        total -= lines.remove(0).len() + 1;
    }
    lines.join("\n")
}

/// Compacts the conversation when it is over the threshold for a model with
/// `window` tokens (its totals as the run loaded them).
pub async fn compact_if_needed<F, Fut, E>(
    store: &Store,
    conversation: &Conversation,
    window: i64,
    summarize: F,
) -> Result<CompactionOutcome, CompactionError<E>>
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = Result<String, E>>,
    E: std::fmt::Display,
{
    if conversation.total_tokens <= threshold_tokens(window) {
        return Ok(CompactionOutcome::NotNeeded);
    }
    compact(store, &conversation.id, conversation.agent_id, summarize).await
}

/// Compacts unconditionally (when more than [`KEEP_MESSAGES`] messages exist).
pub async fn compact<F, Fut, E>(
    store: &Store,
    conversation_id: &str,
    agent_id: i64,
    summarize: F,
) -> Result<CompactionOutcome, CompactionError<E>>
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = Result<String, E>>,
    E: std::fmt::Display,
{
    let messages = store.conversation_messages(conversation_id).await?;
    if messages.len() <= KEEP_MESSAGES {
        return Ok(CompactionOutcome::NotNeeded);
    }
    let old = &messages[..messages.len() - KEEP_MESSAGES];
    let Some(last_old) = old.last().map(|m| m.id) else {
        return Ok(CompactionOutcome::NotNeeded);
    };
    let text = transcript(old);
    let facts = match summarize(facts_prompt(&text)).await {
        Ok(reply) => parse_reply(&reply, false).memories,
        Err(e) => {
            tracing::warn!(conversation_id, error = %e, "compaction: fact extraction failed; continuing without it");
            Vec::new()
        }
    };
    let summary = summarize(summary_prompt(&text)).await.map_err(CompactionError::Summarizer)?;
    let summary = summary.trim();
    let mut facts_saved = 0;
    for (category, fact) in &facts {
        store.save_fact(agent_id, category, fact, Some(conversation_id)).await?;
        facts_saved += 1;
    }
    let done = store
        .store_compaction(&CompactionWrite {
            conversation_id,
            agent_id,
            summary: if summary.is_empty() { "(empty summary)" } else { summary },
            delete_through_id: last_old,
        })
        .await?;
    tracing::info!(
        conversation_id,
        messages_before = done.messages_before,
        messages_after = done.messages_after,
        tokens_saved = done.tokens_saved,
        facts_saved,
        "conversation compacted"
    );
    Ok(CompactionOutcome::Compacted { done, facts_saved })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threshold_is_75_percent_of_the_window() {
        let prices = crate::pricing::PriceTable::embedded().unwrap();
        assert_eq!(threshold_tokens(prices.context_window("anthropic/claude-haiku-4-5")), 150_000);
        assert_eq!(threshold_tokens(prices.context_window("openai/gpt-4o-mini")), 96_000);
    }

    #[test]
    fn transcript_is_role_lines_bounded() {
        let m = |id, role: &str, c: &str| StoredMessage {
            id,
            role: role.into(),
            content: c.into(),
            token_estimate: 1,
            created_at: 0,
        };
        assert_eq!(transcript(&[m(1, "user", "hi"), m(2, "assistant", "hello")]), "[user]: hi\n[assistant]: hello");
        let long = "x".repeat(10_000);
        let many: Vec<StoredMessage> = (0..100).map(|i| m(i, "user", &long)).collect();
        let t = transcript(&many);
        assert!(t.len() <= MAX_TRANSCRIPT_CHARS);
        assert!(t.lines().all(|l| l.len() <= MAX_MESSAGE_CHARS + 10));
    }
}
