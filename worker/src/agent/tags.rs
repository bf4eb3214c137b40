//! Parsing a model reply's in-text tags (behaviour reference §3, §6):
//! `[MEMORY:category] fact` and `[STATE:key] value` lines (any agent),
//! `[DELEGATE:slug]task[/DELEGATE]` blocks (any agent), and the conductor's
//! `[CREATE_AGENT]`, `[UPDATE_AGENT:slug]` and `[CREATE_CRON]` action blocks
//! with `key: value` bodies. Every tag is stripped from the text the user sees;
//! conductor-only tags in another agent's reply are stripped and ignored.
//!
//! Pure: no I/O. [`super::apply`] carries the result out: [`ParsedReply::effects`]
//! is what the worker records with the reply (as JSON) and applies once.

use std::sync::LazyLock;

use regex::{Captures, Regex};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The `key: value` fields of an action block, values JSON-parsed when they parse.
pub type Fields = Map<String, Value>;

/// A conductor action, in the order it appeared.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ConductorAction {
    CreateAgent(Fields),
    UpdateAgent { slug: String, fields: Fields },
    CreateCron(Fields),
}

/// A reply taken apart.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ParsedReply {
    /// The reply with every tag removed and whitespace tidied: what the user sees.
    pub clean: String,
    /// (category, fact), categories lower-cased.
    pub memories: Vec<(String, String)>,
    /// (key, value).
    pub states: Vec<(String, String)>,
    /// (agent slug lower-cased, task).
    pub delegations: Vec<(String, String)>,
    /// Conductor actions (empty for other agents).
    pub actions: Vec<ConductorAction>,
    /// Tags that were stripped without effect (conductor-only tags from another
    /// agent, unsupported blocks, empty tags), described for the log.
    pub ignored: Vec<String>,
}

/// What a reply's tags ask to be written: recorded as JSON on the job with
/// the reply (`jobs.effects`) and applied once ([`super::apply::apply_recorded`]).
/// Versioned, since a job recorded by one release may be applied by the next.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Effects {
    pub v: u32,
    #[serde(default)]
    pub memories: Vec<(String, String)>,
    #[serde(default)]
    pub states: Vec<(String, String)>,
    #[serde(default)]
    pub delegations: Vec<(String, String)>,
    #[serde(default)]
    pub actions: Vec<ConductorAction>,
}

impl ParsedReply {
    /// The writes the tags ask for; `None` when there are none (tags that
    /// were only ignored write nothing), so the reply is stored in one write.
    pub fn effects(&self) -> Option<Effects> {
        if self.memories.is_empty() && self.states.is_empty() && self.delegations.is_empty() && self.actions.is_empty()
        {
            return None;
        }
        Some(Effects {
            v: 1,
            memories: self.memories.clone(),
            states: self.states.clone(),
            delegations: self.delegations.clone(),
            actions: self.actions.clone(),
        })
    }
}

/// Block tags. Leftmost-first alternation keeps the order of appearance.
static BLOCKS: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(
        r"(?is)\[DELEGATE:(?P<dslug>[a-z0-9_-]+)\](?P<dbody>.*?)\[/DELEGATE\]|\[CREATE_AGENT\](?P<cabody>.*?)\[/CREATE_AGENT\]|\[UPDATE_AGENT:(?P<uslug>[a-z0-9_-]+)\](?P<ubody>.*?)\[/UPDATE_AGENT\]|\[CREATE_CRON\](?P<ccbody>.*?)\[/CREATE_CRON\]|\[(?P<other>CREATE_HEARTBEAT|CREATE_CLIENT)\](?P<obody>.*?)\[/(?:CREATE_HEARTBEAT|CREATE_CLIENT)\]",
    )
    .ok()
});

/// `[MEMORY:cat]`/`[STATE:key]`: either closed on the same or a following line
/// with `[/MEMORY]`/`[/STATE]` (no other `[` in between), or running to the end of the line.
static LINE_TAGS: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(
        r"(?i)\[(?P<kind>MEMORY|STATE):(?P<name>\w+)\](?:(?P<closed>[^\[]*?)\[/(?:MEMORY|STATE)\]|(?P<rest>[^\n]*))",
    )
    .ok()
});

static CLOSER: LazyLock<Option<Regex>> = LazyLock::new(|| Regex::new(r"(?i)\[/(?:MEMORY|STATE)\]").ok());

static KEY_LINE: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"^\s*(?P<key>[A-Za-z_][A-Za-z0-9_]*)\s*:(?P<value>.*)$").ok());

fn re(cell: &'static LazyLock<Option<Regex>>) -> Option<&'static Regex> {
    cell.as_ref()
}

/// Takes a reply apart. `is_conductor` enables the action blocks.
pub fn parse_reply(text: &str, is_conductor: bool) -> ParsedReply {
    let mut out = ParsedReply::default();
    let after_blocks = match re(&BLOCKS) {
        Some(blocks) => blocks.replace_all(text, |c: &Captures<'_>| {
            take_block(c, is_conductor, &mut out);
            REMOVED.to_string()
        }),
        None => text.into(),
    };
    let after_lines = match re(&LINE_TAGS) {
        Some(lines) => lines.replace_all(&after_blocks, |c: &Captures<'_>| {
            take_line_tag(c, &mut out);
            REMOVED.to_string()
        }),
        None => after_blocks.clone(),
    };
    out.clean = tidy(&after_lines);
    out
}

fn take_block(c: &Captures<'_>, is_conductor: bool, out: &mut ParsedReply) {
    if let (Some(slug), Some(body)) = (c.name("dslug"), c.name("dbody")) {
        let task = body.as_str().trim();
        if task.is_empty() {
            out.ignored.push(format!("empty delegation to {}", slug.as_str()));
        } else {
            out.delegations.push((slug.as_str().to_ascii_lowercase(), task.to_string()));
        }
        return;
    }
    let action = if let Some(body) = c.name("cabody") {
        ConductorAction::CreateAgent(parse_fields(body.as_str()))
    } else if let (Some(slug), Some(body)) = (c.name("uslug"), c.name("ubody")) {
        ConductorAction::UpdateAgent { slug: slug.as_str().to_ascii_lowercase(), fields: parse_fields(body.as_str()) }
    } else if let Some(body) = c.name("ccbody") {
        ConductorAction::CreateCron(parse_fields(body.as_str()))
    } else {
        let tag = c.name("other").map(|m| m.as_str().to_ascii_uppercase()).unwrap_or_default();
        tracing::info!(tag = %tag, "unsupported action tag stripped");
        out.ignored.push(format!("unsupported action [{tag}]"));
        return;
    };
    if is_conductor {
        out.actions.push(action);
    } else {
        let name = match &action {
            ConductorAction::CreateAgent(_) => "CREATE_AGENT",
            ConductorAction::UpdateAgent { .. } => "UPDATE_AGENT",
            ConductorAction::CreateCron(_) => "CREATE_CRON",
        };
        tracing::warn!(tag = name, "conductor-only action tag from another agent stripped and ignored");
        out.ignored.push(format!("conductor-only [{name}] ignored"));
    }
}

fn take_line_tag(c: &Captures<'_>, out: &mut ParsedReply) {
    let kind = c.name("kind").map(|m| m.as_str().to_ascii_uppercase()).unwrap_or_default();
    let name = c.name("name").map(|m| m.as_str()).unwrap_or_default();
    let raw = c.name("closed").or_else(|| c.name("rest")).map(|m| m.as_str()).unwrap_or_default();
    let without_closer = match re(&CLOSER) {
        Some(closer) => closer.replace_all(raw, "").into_owned(),
        None => raw.to_string(),
    };
    let value = without_closer.split_whitespace().collect::<Vec<_>>().join(" ");
    if value.is_empty() {
        out.ignored.push(format!("empty [{kind}:{name}]"));
        return;
    }
    if kind == "MEMORY" {
        out.memories.push((name.to_ascii_lowercase(), value));
    } else {
        out.states.push((name.to_string(), value));
    }
}

/// Marks where a tag was removed, so that a line holding only a tag disappears
/// entirely (a private-use character; any already in the text is dropped too).
const REMOVED: char = '\u{E000}';

/// Lines that held only tags removed, trailing spaces off every line, runs of
/// blank lines collapsed to one, blank lines at the ends dropped.
fn tidy(text: &str) -> String {
    let mut lines: Vec<String> = Vec::new();
    for raw in text.lines() {
        let had_tag = raw.contains(REMOVED);
        let line = if had_tag {
            // Text on both sides of a removed tag is joined by one space.
            let mut parts = raw.split(REMOVED);
            let first = parts.next().unwrap_or_default().trim_end().to_string();
            parts.fold(first, |acc, p| {
                let p = p.trim();
                if p.is_empty() {
                    acc
                } else if acc.trim().is_empty() {
                    format!("{acc}{p}")
                } else {
                    format!("{acc} {p}")
                }
            })
        } else {
            raw.to_string()
        };
        let line = line.trim_end();
        if line.trim().is_empty() && had_tag {
            continue;
        }
        if line.is_empty() && lines.last().is_none_or(|l| l.is_empty()) {
            continue;
        }
        lines.push(line.to_string());
    }
    while lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    lines.join("\n")
}

/// Parses an action body: `key: value` lines; an empty value starts a
/// multi-line value that runs until the next `key:` line. Values are JSON when
/// they parse as JSON (except integers of 15+ digits, kept as strings: chat
/// platform ids), text otherwise. Keys are lower-cased.
pub fn parse_fields(body: &str) -> Fields {
    let mut fields = Fields::new();
    let mut open: Option<(String, Vec<String>)> = None;
    let close = |open: &mut Option<(String, Vec<String>)>, fields: &mut Fields| {
        if let Some((key, lines)) = open.take() {
            let text = lines.join("\n");
            fields.insert(key, parse_value(text.trim()));
        }
    };
    for line in body.lines() {
        let caps = re(&KEY_LINE).and_then(|r| r.captures(line));
        match caps {
            Some(c) => {
                close(&mut open, &mut fields);
                let key = c.name("key").map(|m| m.as_str().to_ascii_lowercase()).unwrap_or_default();
                let value = c.name("value").map(|m| m.as_str().trim()).unwrap_or_default();
                if value.is_empty() {
                    open = Some((key, Vec::new()));
                } else {
                    fields.insert(key, parse_value(value));
                }
            }
            None => {
                if let Some((_, lines)) = open.as_mut() {
                    lines.push(line.to_string());
                }
            }
        }
    }
    close(&mut open, &mut fields);
    fields
}

/// One value: JSON when it parses (numbers of 15+ digits stay text), else the text.
pub fn parse_value(raw: &str) -> Value {
    let t = raw.trim();
    let digits = t.strip_prefix('-').unwrap_or(t);
    if digits.len() >= 15 && digits.bytes().all(|b| b.is_ascii_digit()) {
        return Value::String(t.to_string());
    }
    serde_json::from_str(t).unwrap_or_else(|_| Value::String(t.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn all_patterns_compile() {
        for cell in [&BLOCKS, &LINE_TAGS, &CLOSER, &KEY_LINE] {
            assert!(re(cell).is_some());
        }
    }

    #[test]
    fn memory_and_state_lines_are_saved_and_stripped() {
        let p =
            parse_reply("Sure thing.\n[MEMORY:user_preference] Likes short answers\n[STATE:mood] happy \nDone.", false);
        assert_eq!(p.memories, vec![("user_preference".into(), "Likes short answers".into())]);
        assert_eq!(p.states, vec![("mood".into(), "happy".into())]);
        assert_eq!(p.clean, "Sure thing.\nDone.");
    }

    #[test]
    fn tag_mid_line_strips_to_end_of_line() {
        let p = parse_reply("Noted. [MEMORY:sticky] Owner is Ada\nBye", false);
        assert_eq!(p.memories, vec![("sticky".into(), "Owner is Ada".into())]);
        assert_eq!(p.clean, "Noted.\nBye");
    }

    #[test]
    fn docs_style_closer_is_stripped_not_saved() {
        let p = parse_reply("[MEMORY:project_context] Uses Rust[/MEMORY] ok", false);
        assert_eq!(p.memories, vec![("project_context".into(), "Uses Rust".into())]);
        assert_eq!(p.clean, "ok");
        let p = parse_reply("[MEMORY:learned_pattern]\nDeploys on Fridays\n[/MEMORY]\nThanks", false);
        assert_eq!(p.memories, vec![("learned_pattern".into(), "Deploys on Fridays".into())]);
        assert_eq!(p.clean, "Thanks");
        // A closer on a later tag does not swallow an earlier open tag.
        let p = parse_reply("[MEMORY:a] one\n[MEMORY:b] two[/MEMORY]", false);
        assert_eq!(p.memories, vec![("a".into(), "one".into()), ("b".into(), "two".into())]);
    }

    #[test]
    fn empty_tags_are_stripped_and_ignored() {
        let p = parse_reply("[MEMORY:x]   \nhello", false);
        assert!(p.memories.is_empty());
        assert_eq!(p.clean, "hello");
        assert_eq!(p.ignored.len(), 1);
    }

    #[test]
    fn delegation_blocks_multiline_case_insensitive() {
        let p = parse_reply("On it.\n[delegate:Research-Bot]Find the\nlatest numbers[/Delegate]\nLater.", false);
        assert_eq!(p.delegations, vec![("research-bot".into(), "Find the\nlatest numbers".into())]);
        assert_eq!(p.clean, "On it.\nLater.");
        // An unclosed block stays text.
        let p = parse_reply("[DELEGATE:x] no closer", false);
        assert!(p.delegations.is_empty());
        assert_eq!(p.clean, "[DELEGATE:x] no closer");
        // Bad slug characters: not a tag.
        let p = parse_reply("[DELEGATE:a b]t[/DELEGATE]", false);
        assert!(p.delegations.is_empty());
    }

    #[test]
    fn memory_lines_inside_a_delegation_task_belong_to_the_task() {
        let p = parse_reply("[DELEGATE:w]remember [MEMORY:x] y[/DELEGATE]", false);
        assert!(p.memories.is_empty());
        assert_eq!(p.delegations[0].1, "remember [MEMORY:x] y");
    }

    #[test]
    fn conductor_actions_in_order_with_typed_values() {
        let text = "Creating.\n[CREATE_AGENT]\nslug: helper\nname: Helper\nallowed_tools: [\"calculate\"]\n\
                    channel_id: 123456789012345678\ntemperature: 0.2\ndescription:\n  line one\n  line two\n\
                    [/CREATE_AGENT]\n[UPDATE_AGENT:Helper]\nmodel: openai/gpt-4o\n[/UPDATE_AGENT]\n\
                    [CREATE_CRON]\nagent: helper\nschedule: every 5m\nprompt: ping\n[/CREATE_CRON]\nDone.";
        let p = parse_reply(text, true);
        assert_eq!(p.clean, "Creating.\nDone.");
        assert_eq!(p.actions.len(), 3);
        let ConductorAction::CreateAgent(f) = &p.actions[0] else { panic!("{:?}", p.actions[0]) };
        assert_eq!(f["slug"], json!("helper"));
        assert_eq!(f["allowed_tools"], json!(["calculate"]));
        assert_eq!(f["channel_id"], json!("123456789012345678"), "15+ digits stay text");
        assert_eq!(f["temperature"], json!(0.2));
        assert_eq!(f["description"], json!("line one\n  line two"));
        assert_eq!(
            p.actions[1],
            ConductorAction::UpdateAgent {
                slug: "helper".into(),
                fields: Fields::from_iter([("model".to_string(), json!("openai/gpt-4o"))])
            }
        );
        let ConductorAction::CreateCron(f) = &p.actions[2] else { panic!() };
        assert_eq!(f["schedule"], json!("every 5m"));
    }

    #[test]
    fn conductor_tags_from_other_agents_are_stripped_and_ignored() {
        let p = parse_reply("Hi\n[CREATE_AGENT]\nslug: evil\n[/CREATE_AGENT]\nthere", false);
        assert!(p.actions.is_empty());
        assert_eq!(p.clean, "Hi\nthere");
        assert_eq!(p.ignored.len(), 1);
    }

    #[test]
    fn values() {
        assert_eq!(parse_value("42"), json!(42));
        assert_eq!(parse_value("12345678901234"), json!(12345678901234_i64));
        assert_eq!(parse_value("-123456789012345"), json!("-123456789012345"));
        assert_eq!(parse_value("true"), json!(true));
        assert_eq!(parse_value("\"quoted\""), json!("quoted"));
        assert_eq!(parse_value("plain words: yes"), json!("plain words: yes"));
        assert_eq!(parse_value("[{\"platform\":\"web\"}]"), json!([{"platform": "web"}]));
    }

    #[test]
    fn plain_text_is_untouched_except_whitespace() {
        let p = parse_reply("  a  \n\n\n\nb [not a tag]\n", false);
        assert_eq!(p.clean, "  a\n\nb [not a tag]");
        assert_eq!(p, ParsedReply { clean: p.clean.clone(), ..Default::default() });
    }

    #[test]
    fn effects_round_trip_as_json_and_are_none_without_writes() {
        let p = parse_reply(
            "Ok.\n[MEMORY:fact] tea\n[STATE:mood] fine\n[DELEGATE:helper]sum it[/DELEGATE]\n\
             [CREATE_AGENT]\nslug: x\ntemperature: 0.2\n[/CREATE_AGENT]\n[UPDATE_AGENT:x]\nname: X\n[/UPDATE_AGENT]",
            true,
        );
        let effects = p.effects().unwrap();
        assert_eq!((effects.memories.len(), effects.states.len(), effects.delegations.len()), (1, 1, 1));
        assert_eq!(effects.actions.len(), 2);
        let text = serde_json::to_string(&effects).unwrap();
        assert_eq!(serde_json::from_str::<Effects>(&text).unwrap(), effects);
        assert_eq!(parse_reply("Just text.", false).effects(), None);
        // Ignored tags write nothing: no effects to record.
        assert_eq!(parse_reply("[CREATE_AGENT]\nslug: x\n[/CREATE_AGENT] hi", false).effects(), None);
    }
}
