//! The worker's copy of the conversations it answers: their messages, latest
//! compaction summaries and counters, brought up to date with one small read
//! per run instead of re-reading the whole history.
//!
//! Why: every run needs the conversation's history (all of it that fits the
//! model's window — up to ~96k tokens before compaction) and its totals. Read
//! whole, that read grew with the conversation and was the largest single cost
//! of a chat in the profile (~10 % of the launcher's CPU on the async side
//! alone, plus the SQLite pages and row copies behind it).
//!
//! How it stays right without any signal from the writers:
//! [`Store::conversation_tail`] returns, in one statement (one snapshot), the
//! conversation's `message_count`, its latest compaction id and only the
//! messages newer than the newest one held here. Every writer of `messages`
//! moves `message_count` in the same transaction (+1 per insert; compaction
//! resets it to what remains). So the copy is extended only when
//! `message_count` grew by exactly the number of new rows and no compaction
//! happened; anything else — a compaction, a deletion, a hand edit that moved
//! the counter — makes it read the whole conversation again. A conversation
//! that no longer exists is dropped.
//!
//! Messages are held as [`Turn`]s, prepared once when they enter the cache:
//! the text shared with the requests built from it, the token estimate
//! computed, and whether the history carries the message at all. Under load
//! each chat's history is hundreds of turns; redoing that per run (a copy, a
//! character count and a prefix check per message) was ~12 % of the
//! launcher's CPU.
//!
//! An entry is taken out of the cache for the run and put back after, so two
//! runs never share one (two runs of one conversation do not run at once; if
//! they did, the second would simply read everything). Bounded by
//! [`MAX_BYTES`] of message text and [`MAX_ENTRIES`] conversations; the least
//! recently used go first.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arvis_shared::db::queue::{StoredMessage, estimate_tokens};
use arvis_shared::db::{DbError, Store};

use crate::llm::Role;

/// How many compaction summaries go into the context.
pub const SUMMARIES_IN_CONTEXT: i64 = 3;

/// The role a stored message is sent as, or `None` for messages the history
/// never carries: system rows and prompts frozen by the original's format
/// (`<instructions>`, `[user]:`, `[assistant]:`).
pub fn carried_role(role: &str, content: &str) -> Option<Role> {
    let c = content.trim_start();
    if c.starts_with("<instructions>") || c.starts_with("[user]:") || c.starts_with("[assistant]:") {
        return None;
    }
    match role {
        "user" => Some(Role::User),
        "assistant" => Some(Role::Assistant),
        _ => None,
    }
}

/// Message text held across all conversations, at most.
pub const MAX_BYTES: usize = 64 << 20;
/// Conversations held, at most.
pub const MAX_ENTRIES: usize = 4096;

/// A stored message, prepared for the history once.
#[derive(Debug, Clone, PartialEq)]
pub struct Turn {
    pub id: i64,
    /// The role it is sent as; `None` for messages the history never carries
    /// (see [`carried_role`]).
    pub role: Option<Role>,
    /// Shared with every request built from it.
    pub content: Arc<str>,
    /// [`estimate_tokens`] of the content.
    pub tokens: i64,
}

impl From<StoredMessage> for Turn {
    fn from(m: StoredMessage) -> Turn {
        Turn {
            id: m.id,
            role: carried_role(&m.role, &m.content),
            tokens: estimate_tokens(&m.content),
            content: Arc::from(m.content),
        }
    }
}

/// A conversation as a run sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Conversation {
    pub id: String,
    pub agent_id: i64,
    pub total_tokens: i64,
    /// Every stored message, oldest first.
    pub messages: Vec<Turn>,
    /// The last [`SUMMARIES_IN_CONTEXT`] compaction summaries, oldest first.
    pub summaries: Vec<String>,
    message_count: i64,
    last_compaction_id: Option<i64>,
}

impl Conversation {
    /// The messages up to and including `id` (all of them with `None`).
    pub fn messages_up_to(&self, id: Option<i64>) -> &[Turn] {
        match id {
            Some(last) => &self.messages[..self.messages.partition_point(|m| m.id <= last)],
            None => &self.messages,
        }
    }

    fn bytes(&self) -> usize {
        self.messages.iter().map(|m| m.content.len()).sum::<usize>()
            + self.summaries.iter().map(String::len).sum::<usize>()
    }
}

struct Entry {
    conversation: Conversation,
    bytes: usize,
    used: u64,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<String, Entry>,
    bytes: usize,
    tick: u64,
}

/// How loads were served (for tests and diagnostics).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Brought up to date with the newer messages only.
    pub extended: u64,
    /// Read whole: not held, or the held copy no longer matched.
    pub full: u64,
}

#[derive(Default)]
pub struct ConversationCache {
    inner: Mutex<Inner>,
    extended: AtomicU64,
    full: AtomicU64,
}

impl ConversationCache {
    pub fn stats(&self) -> CacheStats {
        CacheStats { extended: self.extended.load(Ordering::Relaxed), full: self.full.load(Ordering::Relaxed) }
    }

    fn take(&self, id: &str) -> Option<Conversation> {
        let mut inner = self.inner.lock().ok()?;
        let entry = inner.entries.remove(id)?;
        inner.bytes -= entry.bytes;
        Some(entry.conversation)
    }

    /// The conversation, up to date; `None` when it does not exist. Hand it
    /// back with [`ConversationCache::keep`] when the run is done with it.
    pub async fn load(&self, store: &Store, id: &str) -> Result<Option<Conversation>, DbError> {
        if let Some(mut held) = self.take(id) {
            let after = held.messages.last().map_or(0, |m| m.id);
            let Some(tail) = store.conversation_tail(id, after).await? else { return Ok(None) };
            if tail.message_count == held.message_count + tail.messages.len() as i64
                && tail.last_compaction_id == held.last_compaction_id
            {
                held.messages.extend(tail.messages.into_iter().map(Turn::from));
                held.message_count = tail.message_count;
                held.total_tokens = tail.total_tokens;
                held.agent_id = tail.agent_id;
                self.extended.fetch_add(1, Ordering::Relaxed);
                return Ok(Some(held));
            }
        }
        self.full.fetch_add(1, Ordering::Relaxed);
        let Some(tail) = store.conversation_tail(id, 0).await? else { return Ok(None) };
        let summaries = match tail.last_compaction_id {
            Some(_) => {
                store.compaction_summaries(id, SUMMARIES_IN_CONTEXT).await?.into_iter().map(|c| c.summary).collect()
            }
            None => Vec::new(),
        };
        Ok(Some(Conversation {
            id: id.to_string(),
            agent_id: tail.agent_id,
            total_tokens: tail.total_tokens,
            messages: tail.messages.into_iter().map(Turn::from).collect(),
            summaries,
            message_count: tail.message_count,
            last_compaction_id: tail.last_compaction_id,
        }))
    }

    /// Holds the conversation for the next run, evicting the least recently
    /// used ones beyond the bounds.
    pub fn keep(&self, conversation: Conversation) {
        let bytes = conversation.bytes();
        if bytes > MAX_BYTES {
            return;
        }
        let Ok(mut inner) = self.inner.lock() else { return };
        if let Some(old) = inner.entries.remove(&conversation.id) {
            inner.bytes -= old.bytes;
        }
        while !inner.entries.is_empty() && (inner.bytes + bytes > MAX_BYTES || inner.entries.len() >= MAX_ENTRIES) {
            let Some(oldest) = inner.entries.iter().min_by_key(|(_, e)| e.used).map(|(k, _)| k.clone()) else { break };
            if let Some(e) = inner.entries.remove(&oldest) {
                inner.bytes -= e.bytes;
            }
        }
        inner.tick += 1;
        let used = inner.tick;
        inner.bytes += bytes;
        inner.entries.insert(conversation.id.clone(), Entry { conversation, bytes, used });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conv(id: &str, ids: &[i64], text: &str) -> Conversation {
        Conversation {
            id: id.into(),
            agent_id: 1,
            total_tokens: 0,
            messages: ids
                .iter()
                .map(|&i| {
                    Turn::from(StoredMessage {
                        id: i,
                        role: "user".into(),
                        content: text.into(),
                        token_estimate: 1,
                        created_at: i,
                    })
                })
                .collect(),
            summaries: vec![],
            message_count: ids.len() as i64,
            last_compaction_id: None,
        }
    }

    #[test]
    fn messages_up_to_cuts_at_the_job_message() {
        let c = conv("a", &[3, 5, 9], "x");
        assert_eq!(c.messages_up_to(Some(5)).len(), 2);
        assert_eq!(c.messages_up_to(Some(4)).len(), 1);
        assert_eq!(c.messages_up_to(Some(2)).len(), 0);
        assert_eq!(c.messages_up_to(None).len(), 3);
    }

    #[test]
    fn least_recently_kept_goes_first_when_over_the_byte_bound() {
        let cache = ConversationCache::default();
        let half = "x".repeat(MAX_BYTES / 2 - 10);
        cache.keep(conv("a", &[1], &half));
        cache.keep(conv("b", &[1], &half));
        assert!(cache.take("a").is_some());
        cache.keep(conv("a", &[1], &half)); // now "b" is the oldest
        cache.keep(conv("c", &[1], &half));
        assert!(cache.take("b").is_none(), "the least recently kept entry was evicted");
        assert!(cache.take("a").is_some() && cache.take("c").is_some());
        let inner = cache.inner.lock().unwrap();
        assert_eq!((inner.entries.len(), inner.bytes), (0, 0));
    }

    #[test]
    fn a_conversation_larger_than_the_bound_is_not_held() {
        let cache = ConversationCache::default();
        cache.keep(conv("big", &[1, 2], &"x".repeat(MAX_BYTES / 2 + 1)));
        assert!(cache.take("big").is_none());
    }
}
