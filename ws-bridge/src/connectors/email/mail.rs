//! What the email connector reads out of a message and writes into a reply:
//! pure functions over bytes and strings, unit-tested here, so the IMAP and
//! SMTP code around them only moves data.
//!
//! - [`read`]: a raw RFC 5322 message (as IMAP `BODY[]` gives it) to an
//!   [`Inbound`]: the sender (lowercased: the channel), the Message-ID, the
//!   thread (`References`), and the content the agent gets — the subject and
//!   the plain-text body (an HTML-only mail converted to text by
//!   mail-parser), with the quoted history trimmed ([`trim_quoted`]).
//! - [`skip_reason`]: mail the bot must not answer — its own, auto-replies
//!   (`Auto-Submitted` other than `no`), bulk and list mail (`Precedence`),
//!   delivery reports — so two bots (or a bot and a vacation responder)
//!   cannot answer each other forever.
//! - [`Thread`]: what a reply needs besides the text (its subject and
//!   `References`), stored as JSON in the owed reply's and the delivery's
//!   `thread_id`; the answered Message-ID goes in `reply_to`.

use mail_parser::{HeaderValue, MessageParser, MimeHeaders as _};
use serde::{Deserialize, Serialize};

use arvis_shared::domain::limits::MAX_MESSAGE_CHARS;

/// What a reply threads under, as stored in a delivery's `thread_id`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Thread {
    /// The reply's subject (`Re: …`).
    pub subject: String,
    /// The reply's `References`: the answered mail's, then its Message-ID
    /// (RFC 5322 §3.6.4), each in angle brackets, space-separated.
    pub references: String,
}

/// A mail worth answering, as the intake and the reply need it.
#[derive(Debug, Clone, PartialEq)]
pub struct Inbound {
    /// The sender's address, lowercased: the channel id.
    pub from: String,
    /// The sender's display name, when there is one.
    pub name: Option<String>,
    /// The Message-ID in angle brackets, when the mail has one.
    pub message_id: Option<String>,
    /// What the agent is given: subject and trimmed body.
    pub content: String,
    pub thread: Thread,
}

/// Why a mail is not answered (logged at debug level, never an error).
#[derive(Debug, Clone, PartialEq)]
pub enum Skip {
    Unparsable,
    NoSender,
    Own,
    AutoSubmitted(String),
    Bulk(String),
    DeliveryReport,
    Empty,
}

/// Reads a raw message; `Err` says why it is not answered.
pub fn read(raw: &[u8], own: &[String]) -> Result<Inbound, Skip> {
    let msg = MessageParser::default().parse(raw).ok_or(Skip::Unparsable)?;
    let sender = msg.from().and_then(|a| a.first());
    let from = sender.and_then(|a| a.address()).map(|a| a.trim().to_lowercase()).filter(|a| a.contains('@'));
    let Some(from) = from else { return Err(Skip::NoSender) };
    if own.iter().any(|o| o.eq_ignore_ascii_case(&from)) {
        return Err(Skip::Own);
    }
    let header = |name: &str| msg.header_raw(name).map(|v| v.trim().to_ascii_lowercase());
    if let Some(reason) = skip_reason(header("Auto-Submitted").as_deref(), header("Precedence").as_deref()) {
        return Err(reason);
    }
    let ctype = msg.content_type();
    if ctype.is_some_and(|c| {
        c.ctype().eq_ignore_ascii_case("multipart") && c.subtype().is_some_and(|s| s.eq_ignore_ascii_case("report"))
    }) {
        return Err(Skip::DeliveryReport);
    }
    let subject = msg.subject().map(|s| s.split_whitespace().collect::<Vec<_>>().join(" ")).unwrap_or_default();
    let body = msg.body_text(0).map(|b| trim_quoted(&b)).unwrap_or_default();
    let content = content(&subject, &body);
    if content.is_empty() {
        return Err(Skip::Empty);
    }
    let message_id = msg.message_id().map(bracket);
    let mut references: Vec<String> = ids(msg.references());
    if references.is_empty() {
        // RFC 5322: without References, the parent's In-Reply-To (one id) starts the chain.
        references = ids(msg.in_reply_to()).into_iter().take(1).collect();
    }
    references.extend(message_id.clone());
    Ok(Inbound {
        from,
        name: sender.and_then(|a| a.name()).map(|n| n.trim().to_string()).filter(|n| !n.is_empty()),
        message_id,
        content,
        thread: Thread { subject: reply_subject(&subject), references: references.join(" ") },
    })
}

/// `Some` when the headers mark a mail no one should answer automatically.
/// Values are given trimmed and lowercased.
pub fn skip_reason(auto_submitted: Option<&str>, precedence: Option<&str>) -> Option<Skip> {
    // RFC 3834: "no" is the only value a human's mail carries; parameters follow a ';'.
    if let Some(a) = auto_submitted.map(|a| a.split(';').next().unwrap_or_default().trim())
        && !a.is_empty()
        && a != "no"
    {
        return Some(Skip::AutoSubmitted(a.to_string()));
    }
    if let Some(p) = precedence
        && matches!(p, "bulk" | "list" | "junk")
    {
        return Some(Skip::Bulk(p.to_string()));
    }
    None
}

/// The agent's view: `Subject: …`, a blank line, the body; either may be
/// missing. Cut to the intake's limit (with a note) rather than refused.
fn content(subject: &str, body: &str) -> String {
    let text = match (subject.is_empty(), body.is_empty()) {
        (true, true) => return String::new(),
        (false, true) => format!("Subject: {subject}"),
        (true, false) => body.to_string(),
        (false, false) => format!("Subject: {subject}\n\n{body}"),
    };
    const CUT: &str = "\n\n[… the rest of this email was cut: it is too long]";
    if text.chars().count() <= MAX_MESSAGE_CHARS {
        return text;
    }
    let keep = MAX_MESSAGE_CHARS - CUT.chars().count();
    let mut cut: String = text.chars().take(keep).collect();
    cut.push_str(CUT);
    cut
}

/// `Re: <subject>`, without stacking `Re:` on a subject that has one.
pub fn reply_subject(subject: &str) -> String {
    let s = subject.trim();
    if s.is_empty() {
        return "Re: your message".to_string();
    }
    let lower = s.to_lowercase();
    if lower.starts_with("re:") || lower.starts_with("re :") { s.to_string() } else { format!("Re: {s}") }
}

/// Message ids of a header, each in angle brackets (mail-parser strips them).
fn ids(v: &HeaderValue<'_>) -> Vec<String> {
    match v {
        HeaderValue::Text(t) => vec![bracket(t)],
        HeaderValue::TextList(l) => l.iter().map(|t| bracket(t)).collect(),
        _ => Vec::new(),
    }
    .into_iter()
    .filter(|id| id.len() > 2 && !id.contains(char::is_whitespace))
    .collect()
}

fn bracket(id: &str) -> String {
    let id = id.trim().trim_start_matches('<').trim_end_matches('>');
    format!("<{id}>")
}

/// The body without the quoted history a reply carries: lines starting with
/// `>` (any depth), the attribution line that introduces them (`On … wrote:`,
/// also wrapped over two lines), Outlook's `-----Original Message-----` and
/// everything after it, and a signature after the standard `-- ` line.
/// An attribution-like line not followed by a quote is kept (it may be text).
pub fn trim_quoted(body: &str) -> String {
    let lines: Vec<&str> = body.lines().map(|l| l.trim_end_matches('\r')).collect();
    let mut end = lines.len();
    for (i, l) in lines.iter().enumerate() {
        let t = l.trim();
        let outlook = t.eq_ignore_ascii_case("-----Original Message-----")
            || (t.starts_with("________________________________")
                && lines.get(i + 1).is_some_and(|n| n.trim_start().starts_with("From:")));
        if outlook || *l == "-- " {
            end = i;
            break;
        }
    }
    let lines = &lines[..end];
    let quoted = |l: &str| l.trim_start().starts_with('>');
    // Is everything after line `i` (blank lines skipped) a quote or the end?
    let quote_follows = |i: usize| lines[i + 1..].iter().find(|l| !l.trim().is_empty()).is_none_or(|l| quoted(l));
    let mut keep: Vec<&str> = Vec::with_capacity(lines.len());
    let mut i = 0;
    while i < lines.len() {
        let t = lines[i].trim();
        if quoted(lines[i]) {
            i += 1;
            continue;
        }
        if t.starts_with("On ") && t.ends_with("wrote:") && quote_follows(i) {
            i += 1;
            continue;
        }
        if t.starts_with("On ")
            && lines.get(i + 1).is_some_and(|n| n.trim().ends_with("wrote:"))
            && i + 1 < lines.len()
            && quote_follows(i + 1)
        {
            i += 2;
            continue;
        }
        keep.push(lines[i]);
        i += 1;
    }
    // Blank runs collapsed, ends trimmed.
    let mut out: Vec<&str> = Vec::with_capacity(keep.len());
    for l in keep {
        if l.trim().is_empty() && out.last().is_none_or(|p| p.trim().is_empty()) {
            continue;
        }
        out.push(l);
    }
    while out.last().is_some_and(|l| l.trim().is_empty()) {
        out.pop();
    }
    out.join("\n").trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mail(headers: &str, body: &str) -> Vec<u8> {
        format!("{headers}\r\n\r\n{body}").replace('\n', "\r\n").replace("\r\r\n", "\r\n").into_bytes()
    }

    const OWN: &[&str] = &["bot@example.test"];

    fn own() -> Vec<String> {
        OWN.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_plain_mail_gives_sender_subject_body_and_thread() {
        let raw = mail(
            "From: Ada Lovelace <Ada@Example.TEST>\nTo: bot@example.test\nSubject: Engines\n\
             Message-ID: <m2@example.test>\nReferences: <m0@example.test> <m1@example.test>",
            "Can it compute Bernoulli numbers?\n",
        );
        let m = read(&raw, &own()).unwrap();
        assert_eq!(m.from, "ada@example.test");
        assert_eq!(m.name.as_deref(), Some("Ada Lovelace"));
        assert_eq!(m.message_id.as_deref(), Some("<m2@example.test>"));
        assert_eq!(m.content, "Subject: Engines\n\nCan it compute Bernoulli numbers?");
        assert_eq!(m.thread.subject, "Re: Engines");
        assert_eq!(m.thread.references, "<m0@example.test> <m1@example.test> <m2@example.test>");
    }

    #[test]
    fn an_html_only_mail_is_read_as_text() {
        let raw = mail(
            "From: ada@example.test\nSubject: Hi\nMessage-ID: <h@x>\nContent-Type: text/html; charset=utf-8",
            "<html><body><p>Hello <b>there</b></p><p>Second paragraph</p></body></html>",
        );
        let m = read(&raw, &own()).unwrap();
        assert!(!m.content.contains('<'), "{}", m.content);
        assert!(m.content.contains("Hello there") && m.content.contains("Second paragraph"), "{}", m.content);
    }

    #[test]
    fn quoted_history_is_trimmed() {
        let body = "Yes, Tuesday works.\n\nOn Mon, 1 Dec 2026 at 10:00, Bot <bot@example.test> wrote:\n\
                    > Does Tuesday work?\n>> older\n";
        assert_eq!(trim_quoted(body), "Yes, Tuesday works.");
        let wrapped = "Fine.\nOn Mon, 1 Dec 2026 at 10:00, A Very Long Name\n<bot@example.test> wrote:\n\n> q\n";
        assert_eq!(trim_quoted(wrapped), "Fine.");
        let inline = "> first question\nfirst answer\n> second question\nsecond answer";
        assert_eq!(trim_quoted(inline), "first answer\nsecond answer");
        let outlook = "Sure.\n\n-----Original Message-----\nFrom: bot\nSent: Monday\n\nold text";
        assert_eq!(trim_quoted(outlook), "Sure.");
        assert_eq!(trim_quoted("Thanks\n-- \nAda\nEngines Ltd"), "Thanks");
        let text = "On Monday the plan I wrote:\nbuild it.";
        assert_eq!(trim_quoted(text), text, "an attribution-like line without a quote is text");
    }

    #[test]
    fn own_mail_auto_replies_and_lists_are_not_answered() {
        let from_self = mail("From: Bot <BOT@example.test>\nSubject: x", "loop?");
        assert_eq!(read(&from_self, &own()), Err(Skip::Own));
        let vacation = mail("From: ada@example.test\nAuto-Submitted: auto-replied; owner-email=\"a@b\"", "away");
        assert_eq!(read(&vacation, &own()), Err(Skip::AutoSubmitted("auto-replied".into())));
        let human = mail("From: ada@example.test\nAuto-Submitted: no\nSubject: s", "hi");
        assert!(read(&human, &own()).is_ok());
        for p in ["bulk", "list", "junk"] {
            let m = mail(&format!("From: ada@example.test\nPrecedence: {p}"), "news");
            assert_eq!(read(&m, &own()), Err(Skip::Bulk(p.into())));
        }
        let dsn = mail(
            "From: MAILER-DAEMON@example.test\nContent-Type: multipart/report; report-type=delivery-status; boundary=b",
            "--b\nContent-Type: text/plain\n\nundeliverable\n--b--\n",
        );
        assert_eq!(read(&dsn, &own()), Err(Skip::DeliveryReport));
        assert_eq!(read(&mail("Subject: no sender", "x"), &own()), Err(Skip::NoSender));
        assert_eq!(read(&mail("From: ada@example.test", "> only a quote"), &own()), Err(Skip::Empty));
    }

    #[test]
    fn subjects_get_one_re() {
        assert_eq!(reply_subject("Hello"), "Re: Hello");
        assert_eq!(reply_subject("RE: Hello"), "RE: Hello");
        assert_eq!(reply_subject("  "), "Re: your message");
    }

    #[test]
    fn in_reply_to_starts_the_chain_without_references() {
        let raw = mail("From: ada@example.test\nSubject: s\nMessage-ID: <b@x>\nIn-Reply-To: <a@x>", "hi");
        assert_eq!(read(&raw, &own()).unwrap().thread.references, "<a@x> <b@x>");
        let raw = mail("From: ada@example.test\nSubject: s", "no id at all");
        let m = read(&raw, &own()).unwrap();
        assert_eq!((m.message_id, m.thread.references), (None, String::new()));
    }

    #[test]
    fn a_huge_mail_is_cut_to_the_limit() {
        let body = "word ".repeat(30_000);
        let c = content("s", &body);
        assert_eq!(c.chars().count(), MAX_MESSAGE_CHARS);
        assert!(c.ends_with("too long]"));
    }
}
