//! Splitting a reply at a platform's length limit (Telegram 4096 characters,
//! Discord 2000): at a paragraph break if one fits, else a line break, else a
//! space, else wherever the limit falls. A code fence (```) open at a cut is
//! closed at the end of the chunk and reopened, with its language, at the
//! start of the next, so every chunk renders on its own. The separator a cut
//! falls on is dropped; nothing else is changed.

/// Room kept for the closing fence a chunk may need (`\n` + "```").
const CLOSE: &str = "\n```";

/// `text` as pieces of at most `limit` characters, in order.
pub fn split(text: &str, limit: usize) -> Vec<String> {
    let limit = limit.max(32);
    if text.chars().count() <= limit {
        return vec![text.to_string()];
    }
    let mut chunks = Vec::new();
    let mut rest = text;
    // The fence line (```lang) open at the start of `rest`, if any.
    let mut open: Option<String> = None;
    while !rest.is_empty() {
        let prefix = open.as_ref().map(|f| format!("{f}\n")).unwrap_or_default();
        let room = limit.saturating_sub(prefix.chars().count());
        if rest.chars().count() <= room {
            chunks.push(format!("{prefix}{rest}"));
            break;
        }
        let budget = room.saturating_sub(CLOSE.len()).max(1);
        let (piece, next) = cut(rest, budget);
        let fence = fence_after(open.clone(), piece);
        let mut chunk = format!("{prefix}{piece}");
        if fence.is_some() {
            chunk.push_str(CLOSE);
        }
        chunks.push(chunk);
        open = fence;
        rest = next;
    }
    chunks
}

/// The first piece of `text` of at most `budget` characters, and the rest
/// after the separator the cut fell on.
fn cut(text: &str, budget: usize) -> (&str, &str) {
    let end = text.char_indices().nth(budget).map(|(i, _)| i).unwrap_or(text.len());
    let window = &text[..end];
    // A cut at the very start would make no progress.
    for sep in ["\n\n", "\n", " "] {
        if let Some(i) = window.rfind(sep).filter(|&i| i > 0) {
            return (&text[..i], &text[i + sep.len()..]);
        }
    }
    (window, &text[end..])
}

/// The fence open after `piece`, given the one open before it.
fn fence_after(mut open: Option<String>, piece: &str) -> Option<String> {
    for line in piece.lines() {
        let t = line.trim_start();
        if t.starts_with("```") {
            open = match open {
                Some(_) => None,
                None => Some(t.trim_end().to_string()),
            };
        }
    }
    open
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_is_one_chunk() {
        assert_eq!(split("hello", 4096), vec!["hello".to_string()]);
    }

    #[test]
    fn cuts_prefer_paragraphs_then_lines_then_words() {
        let text = format!("{}\n\n{}", "a".repeat(60), "b".repeat(60));
        assert_eq!(split(&text, 100), vec!["a".repeat(60), "b".repeat(60)]);
        let text = format!("{}\n{}", "a".repeat(60), "b".repeat(60));
        assert_eq!(split(&text, 100), vec!["a".repeat(60), "b".repeat(60)]);
        let words: Vec<String> = (0..40).map(|i| format!("w{i:03}")).collect();
        let text = words.join(" ");
        let chunks = split(&text, 50);
        assert!(chunks.iter().all(|c| c.chars().count() <= 50), "{chunks:?}");
        assert_eq!(chunks.join(" "), text, "in order, nothing lost");
        assert!(chunks.iter().all(|c| !c.starts_with(' ') && !c.ends_with(' ')));
    }

    #[test]
    fn a_word_longer_than_the_limit_is_cut_hard() {
        let text = "x".repeat(250);
        let chunks = split(&text, 100);
        assert!(chunks.iter().all(|c| c.chars().count() <= 100));
        assert_eq!(chunks.concat(), text);
    }

    #[test]
    fn code_fences_are_closed_and_reopened() {
        let code: Vec<String> = (0..30).map(|i| format!("let v{i} = {i};")).collect();
        let text = format!("Here:\n```rust\n{}\n```\nDone.", code.join("\n"));
        let chunks = split(&text, 120);
        assert!(chunks.len() > 2, "{chunks:?}");
        for c in &chunks {
            assert!(c.chars().count() <= 120, "{c:?}");
            assert_eq!(c.matches("```").count() % 2, 0, "every chunk balances its fences: {c:?}");
        }
        assert!(chunks[1].starts_with("```rust\n"), "{:?}", chunks[1]);
    }

    #[test]
    fn multibyte_text_is_cut_on_character_boundaries() {
        let text = "é".repeat(5000);
        let chunks = split(&text, 4096);
        assert_eq!(chunks.len(), 2);
        assert_eq!(chunks.concat(), text);
    }
}
