//! Model text → HTML, safely: **every character of the input is escaped
//! first**, and only then are the few markdown forms replies use turned into
//! tags we write ourselves — paragraphs and line breaks, `#` headings (shown
//! one level down), `-`/`*` and `1.` lists, `>` quotes, fenced code blocks,
//! `inline code`, `**bold**`, `*italic*` and `[links](https://…)` (http and
//! https only, `rel="nofollow noopener noreferrer"`). Raw HTML in a reply stays
//! visible text: a `<script>` from the model is the seven characters
//! `&lt;script&gt;`. A few dozen lines instead of a CommonMark crate with an
//! HTML sanitizer behind it: nothing to configure wrongly, nothing to pass raw
//! HTML through.

use std::sync::LazyLock;

use maud::{Markup, PreEscaped};
use regex::Regex;

/// HTML-escapes text for element content and quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Renders markdown as safe HTML.
pub fn render(text: &str) -> Markup {
    PreEscaped(render_string(text))
}

enum Block {
    None,
    Paragraph(Vec<String>),
    List { ordered: bool, items: Vec<String> },
    Quote(Vec<String>),
}

pub fn render_string(text: &str) -> String {
    let mut out = String::new();
    let mut block = Block::None;
    let mut code: Option<Vec<&str>> = None;
    for line in text.lines() {
        if let Some(lines) = code.as_mut() {
            if line.trim_start().starts_with("```") {
                out.push_str("<pre><code>");
                out.push_str(&escape(&lines.join("\n")));
                out.push_str("</code></pre>");
                code = None;
            } else {
                lines.push(line);
            }
            continue;
        }
        let trimmed = line.trim_start();
        if trimmed.starts_with("```") {
            flush(&mut out, &mut block);
            code = Some(Vec::new());
            continue;
        }
        if trimmed.is_empty() {
            flush(&mut out, &mut block);
            continue;
        }
        if let Some((level, rest)) = heading(trimmed) {
            flush(&mut out, &mut block);
            out.push_str(&format!("<h{level}>{}</h{level}>", inline(rest)));
            continue;
        }
        if let Some((ordered, item)) = list_item(trimmed) {
            match &mut block {
                Block::List { ordered: o, items } if *o == ordered => items.push(item.to_string()),
                _ => {
                    flush(&mut out, &mut block);
                    block = Block::List { ordered, items: vec![item.to_string()] };
                }
            }
            continue;
        }
        if let Some(quoted) = trimmed.strip_prefix('>') {
            match &mut block {
                Block::Quote(lines) => lines.push(quoted.trim_start().to_string()),
                _ => {
                    flush(&mut out, &mut block);
                    block = Block::Quote(vec![quoted.trim_start().to_string()]);
                }
            }
            continue;
        }
        match &mut block {
            Block::Paragraph(lines) => lines.push(line.to_string()),
            Block::List { items, .. } if line.starts_with("  ") => {
                if let Some(last) = items.last_mut() {
                    last.push(' ');
                    last.push_str(trimmed);
                }
            }
            _ => {
                flush(&mut out, &mut block);
                block = Block::Paragraph(vec![line.to_string()]);
            }
        }
    }
    if let Some(lines) = code {
        // An unclosed fence (a reply still streaming, or cut off): show it as code anyway.
        out.push_str("<pre><code>");
        out.push_str(&escape(&lines.join("\n")));
        out.push_str("</code></pre>");
    }
    flush(&mut out, &mut block);
    out
}

fn flush(out: &mut String, block: &mut Block) {
    match std::mem::replace(block, Block::None) {
        Block::None => {}
        Block::Paragraph(lines) => {
            let parts: Vec<String> = lines.iter().map(|l| inline(l)).collect();
            out.push_str(&format!("<p>{}</p>", parts.join("<br>")));
        }
        Block::List { ordered, items } => {
            let tag = if ordered { "ol" } else { "ul" };
            out.push_str(&format!("<{tag}>"));
            for item in items {
                out.push_str(&format!("<li>{}</li>", inline(&item)));
            }
            out.push_str(&format!("</{tag}>"));
        }
        Block::Quote(lines) => {
            let parts: Vec<String> = lines.iter().map(|l| inline(l)).collect();
            out.push_str(&format!("<blockquote><p>{}</p></blockquote>", parts.join("<br>")));
        }
    }
}

/// `# x` → (3, "x"): a reply's headings sit below the page's own.
fn heading(line: &str) -> Option<(usize, &str)> {
    let hashes = line.chars().take_while(|c| *c == '#').count();
    if !(1..=6).contains(&hashes) {
        return None;
    }
    let rest = line[hashes..].strip_prefix(' ')?;
    Some(((hashes + 2).min(6), rest.trim()))
}

fn list_item(line: &str) -> Option<(bool, &str)> {
    for bullet in ["- ", "* ", "+ "] {
        if let Some(rest) = line.strip_prefix(bullet) {
            return Some((false, rest));
        }
    }
    let digits = line.chars().take_while(|c| c.is_ascii_digit()).count();
    if (1..=9).contains(&digits) {
        let rest = line[digits..].strip_prefix(". ").or_else(|| line[digits..].strip_prefix(") "))?;
        return Some((true, rest));
    }
    None
}

static LINK: LazyLock<Option<Regex>> = LazyLock::new(|| Regex::new(r#"\[([^\]\n]+)\]\((https?://[^\s()<>"]+)\)"#).ok());
static BOLD: LazyLock<Option<Regex>> = LazyLock::new(|| Regex::new(r"\*\*([^*\n]+)\*\*").ok());
static ITALIC: LazyLock<Option<Regex>> = LazyLock::new(|| Regex::new(r"\*([^*\s][^*\n]*)\*").ok());

/// One line's inline forms. Code spans first (their content is only
/// escaped); the rest is escaped, then links and emphasis become tags.
fn inline(text: &str) -> String {
    let parts: Vec<&str> = text.split('`').collect();
    // An odd number of backticks leaves the last one unpaired: literal text.
    let paired = if parts.len() % 2 == 1 { parts.len() } else { parts.len() - 1 };
    let mut out = String::new();
    for (i, part) in parts.iter().enumerate() {
        if i >= paired {
            out.push('`');
            out.push_str(&emphasis(&escape(part)));
        } else if i % 2 == 1 {
            out.push_str("<code>");
            out.push_str(&escape(part));
            out.push_str("</code>");
        } else {
            out.push_str(&emphasis(&escape(part)));
        }
    }
    out
}

/// Links and emphasis on already-escaped text: the patterns match no `<`,
/// `>` or `"` (escaping removed them), so every tag in the result is ours.
fn emphasis(escaped: &str) -> String {
    let mut s = escaped.to_string();
    if let Some(re) = LINK.as_ref() {
        s = re.replace_all(&s, r#"<a href="$2" rel="nofollow noopener noreferrer">$1</a>"#).into_owned();
    }
    if let Some(re) = BOLD.as_ref() {
        s = re.replace_all(&s, "<strong>$1</strong>").into_owned();
    }
    if let Some(re) = ITALIC.as_ref() {
        s = re.replace_all(&s, "<em>$1</em>").into_owned();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_from_the_model_stays_text() {
        let out = render_string("<script>alert(1)</script> and <img src=x onerror=alert(1)>");
        assert!(!out.contains("<script") && !out.contains("<img"), "{out}");
        assert!(out.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "{out}");
        let link = render_string("[x](javascript:alert(1)) [y](https://e.com/\"onmouseover=1)");
        assert!(!link.contains("href=\"javascript"), "{link}");
        assert!(!link.contains("\"onmouseover"), "{link}");
        let code = render_string("```\n<b>bold</b>\n```");
        assert_eq!(code, "<pre><code>&lt;b&gt;bold&lt;/b&gt;</code></pre>");
    }

    #[test]
    fn the_usual_forms_render() {
        assert_eq!(render_string("a **b** *c* `d<e`"), "<p>a <strong>b</strong> <em>c</em> <code>d&lt;e</code></p>");
        assert_eq!(render_string("- one\n- two"), "<ul><li>one</li><li>two</li></ul>");
        assert_eq!(render_string("1. one\n2. two"), "<ol><li>one</li><li>two</li></ol>");
        assert_eq!(render_string("# Title\nline\nnext"), "<h3>Title</h3><p>line<br>next</p>");
        assert_eq!(
            render_string("see [docs](https://example.com/a?b=1&c=2)"),
            "<p>see <a href=\"https://example.com/a?b=1&amp;c=2\" rel=\"nofollow noopener noreferrer\">docs</a></p>"
        );
        assert_eq!(render_string("> quoted"), "<blockquote><p>quoted</p></blockquote>");
        assert_eq!(render_string("2 * 3 = 6, a `b"), "<p>2 * 3 = 6, a `b</p>");
    }
}
