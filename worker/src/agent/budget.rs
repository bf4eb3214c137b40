//! The conversation history that fits the model's context window (behaviour
//! reference §6, "Budget"): tokens are estimated as ceil(chars / 3.5); the
//! budget is the window minus 20k reserved for the answer and tools, minus the
//! system prompt, minus the compaction summaries. Messages are taken newest
//! first (always at least the newest one) and returned oldest first as
//! user/assistant turns, after one `[Previous conversation summary]` turn built
//! from the last three summaries.
//!
//! The window comes from the worker's price table (LiteLLM's `max_input_tokens`,
//! see [`crate::pricing::PriceTable::context_window`]), looked up by the
//! model as its provider names it, not by the raw `provider/model` spec (the
//! original did, and so fell back for every prefixed name).

use arvis_shared::db::queue::estimate_tokens;

use super::conversation_cache::{Conversation, Turn};
use crate::llm::{ChatMessage, Role};

/// Tokens kept free for the answer, tool calls and tool results.
pub const RESERVED_TOKENS: i64 = 20_000;
/// The turns to send, and how they were chosen.
#[derive(Debug, Clone, PartialEq)]
pub struct History {
    /// Oldest first; starts with the summary turn when there are summaries.
    pub messages: Vec<ChatMessage>,
    /// How many stored messages made it in.
    pub included: usize,
    /// How many stored messages did not fit.
    pub dropped: usize,
    /// The tokens available for messages (may be ≤ 0 with a huge prompt).
    pub budget: i64,
}

/// The summary turn's text, or `None` without summaries.
pub fn summary_turn(summaries: &[String]) -> Option<String> {
    let parts: Vec<&str> = summaries.iter().map(|s| s.trim()).filter(|s| !s.is_empty()).collect();
    if parts.is_empty() {
        return None;
    }
    Some(format!("[Previous conversation summary]\n{}", parts.join("\n---\n")))
}

/// A `/v1` client's transcript (oldest first, the last turn the user's) cut
/// to the window like a stored history: the newest turns that fit the budget
/// (always the last), no leading assistant turn, and two turns of one role in
/// a row merged, as providers expect alternation.
pub fn fit_transcript(turns: &[(Role, &str)], window: i64, system_prompt: &str) -> Vec<ChatMessage> {
    let budget = window - RESERVED_TOKENS - estimate_tokens(system_prompt);
    let mut used = 0i64;
    let mut first = turns.len();
    for (i, (_, text)) in turns.iter().enumerate().rev() {
        let tokens = estimate_tokens(text);
        if first != turns.len() && used + tokens > budget {
            break;
        }
        used += tokens;
        first = i;
    }
    let mut out: Vec<ChatMessage> = Vec::new();
    for (role, text) in &turns[first.min(turns.len())..] {
        if out.is_empty() && *role == Role::Assistant {
            continue;
        }
        match out.last_mut() {
            Some(last) if last.role == *role => last.content = format!("{}\n\n{}", last.content, text).into(),
            _ => out.push(if *role == Role::Assistant {
                ChatMessage::assistant(*text)
            } else {
                ChatMessage::user(*text)
            }),
        }
    }
    out
}

/// Chooses the history for a model with `window` tokens. `messages` are oldest first.
pub fn fit_history(messages: &[Turn], summaries: &[String], window: i64, system_prompt: &str) -> History {
    let summary = summary_turn(summaries);
    let budget = window
        - RESERVED_TOKENS
        - estimate_tokens(system_prompt)
        - summary.as_deref().map(estimate_tokens).unwrap_or(0);
    // Newest first until the budget is spent (always at least one message).
    let (mut used, mut candidates, mut included, mut first) = (0i64, 0usize, 0usize, messages.len());
    for (i, m) in messages.iter().enumerate().rev() {
        if m.role.is_none() {
            continue;
        }
        candidates += 1;
        if included == candidates - 1 && (included == 0 || used + m.tokens <= budget) {
            used += m.tokens;
            included += 1;
            first = i;
        }
    }
    let mut turns: Vec<ChatMessage> = Vec::with_capacity(included + 1);
    if let Some(s) = summary {
        turns.push(ChatMessage::user(s));
    }
    for m in &messages[first.min(messages.len())..] {
        let Some(role) = m.role else { continue };
        if turns.is_empty() && role == Role::Assistant {
            // Providers want the first turn to be the user's; an assistant turn
            // cut off from its question carries little.
            continue;
        }
        match turns.last_mut() {
            // Two turns of the same role in a row (a failed job, the summary
            // before a user message) are merged: providers expect alternation.
            Some(last) if last.role == role => {
                last.content = format!("{}\n\n{}", last.content, m.content).into();
            }
            _ => turns.push(match role {
                Role::Assistant => ChatMessage::assistant(m.content.clone()),
                _ => ChatMessage::user(m.content.clone()),
            }),
        }
    }
    History { messages: turns, included, dropped: candidates - included, budget }
}

/// The history of a conversation for a model with `window` tokens, up to and including the message
/// `up_to_message_id` (the job's user message; later messages belong to later
/// jobs). The job's own prompt is the last turn — do not append it again.
pub fn history(
    conversation: &Conversation,
    up_to_message_id: Option<i64>,
    window: i64,
    system_prompt: &str,
) -> History {
    fit_history(conversation.messages_up_to(up_to_message_id), &conversation.summaries, window, system_prompt)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(id: i64, role: &str, content: &str) -> Turn {
        Turn::from(arvis_shared::db::queue::StoredMessage {
            id,
            role: role.into(),
            content: content.into(),
            token_estimate: estimate_tokens(content),
            created_at: id,
        })
    }

    #[test]
    fn token_estimate_is_ceil_chars_over_3_5() {
        assert_eq!(estimate_tokens(""), 0);
        assert_eq!(estimate_tokens("abc"), 1);
        assert_eq!(estimate_tokens(&"a".repeat(7)), 2);
        assert_eq!(estimate_tokens(&"a".repeat(8)), 3);
    }

    #[test]
    fn budget_is_window_minus_reserve_prompt_and_summaries() {
        let system = "s".repeat(35); // 10 tokens
        let h = fit_history(&[], &["x".repeat(10)], 100_000, &system);
        let summary_tokens = estimate_tokens(&format!("[Previous conversation summary]\n{}", "x".repeat(10)));
        assert_eq!(h.budget, 100_000 - 20_000 - 10 - summary_tokens);
    }

    #[test]
    fn fills_newest_first_and_returns_oldest_first() {
        // Each message is 3500 chars = 1000 tokens. Window 23_000 → budget 3000 − prompt 0.
        let big = |c: char| c.to_string().repeat(3500);
        let msgs = vec![
            msg(1, "user", &big('a')),
            msg(2, "assistant", &big('b')),
            msg(3, "user", &big('c')),
            msg(4, "assistant", &big('d')),
            msg(5, "user", &big('e')),
        ];
        let h = fit_history(&msgs, &[], 23_000, "");
        assert_eq!(h.budget, 3000);
        assert_eq!(h.included, 3);
        assert_eq!(h.dropped, 2);
        let firsts: Vec<char> = h.messages.iter().map(|m| m.content.chars().next().unwrap()).collect();
        assert_eq!(firsts, vec!['c', 'd', 'e']);
        assert_eq!(h.messages[0].role, Role::User);
    }

    #[test]
    fn skipped_rows_cost_nothing_and_count_neither_way() {
        let big = |c: char| c.to_string().repeat(3500); // 1000 tokens each
        let msgs = vec![
            msg(1, "user", &big('a')),
            msg(2, "system", &big('s')),
            msg(3, "user", &big('c')),
            msg(4, "user", &format!("[user]: {}", big('l'))),
            msg(5, "assistant", &big('d')),
        ];
        let h = fit_history(&msgs, &[], 22_000, ""); // budget 2000
        assert_eq!((h.included, h.dropped), (2, 1));
        let firsts: Vec<char> = h.messages.iter().map(|m| m.content.chars().next().unwrap()).collect();
        assert_eq!(firsts, vec!['c', 'd']);
    }

    #[test]
    fn at_least_the_newest_message_even_over_budget() {
        let msgs = vec![msg(1, "user", "old"), msg(2, "user", &"z".repeat(100_000))];
        let h = fit_history(&msgs, &[], 21_000, "");
        assert_eq!(h.included, 1);
        assert_eq!(h.messages.len(), 1);
        assert!(h.messages[0].content.starts_with('z'));
    }

    #[test]
    fn summary_turn_first_same_roles_merged_system_and_legacy_skipped() {
        let msgs = vec![
            msg(1, "assistant", "orphan answer"),
            msg(2, "system", "internal"),
            msg(3, "user", "[user]: legacy frozen prompt"),
            msg(4, "user", "first"),
            msg(5, "user", "second"),
            msg(6, "assistant", "reply"),
        ];
        let h = fit_history(&msgs, &["one".into(), "two".into(), "three".into()], 200_000, "");
        let got: Vec<(Role, &str)> = h.messages.iter().map(|m| (m.role, &*m.content)).collect();
        assert_eq!(
            got,
            vec![
                (Role::User, "[Previous conversation summary]\none\n---\ntwo\n---\nthree"),
                (Role::Assistant, "orphan answer"),
                (Role::User, "first\n\nsecond"),
                (Role::Assistant, "reply"),
            ]
        );
        assert_eq!(h.included, 4, "system and legacy rows are skipped");
        // Without a summary, a leading assistant turn is dropped.
        let h = fit_history(&msgs[..1], &[], 200_000, "");
        assert!(h.messages.is_empty());
    }
}
