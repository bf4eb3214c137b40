//! Skills: markdown instructions an agent gets when a message matches the
//! skill's trigger keywords or patterns. Builtin skills ship with the binary
//! (`shared/skills/*.md`); community skills are created or imported through the API.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::agent::check_slug;
use super::{Invalid, check_text};

/// The builtin skills' markdown, front matter included.
pub const BUILTIN_SKILLS: &[&str] = &[
    include_str!("../../skills/summarize.md"),
    include_str!("../../skills/code-review.md"),
    include_str!("../../skills/web-research.md"),
];

/// Largest skill content accepted (and the import download cap).
pub const MAX_CONTENT_BYTES: usize = 256 * 1024;

#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Skill {
    pub id: i64,
    pub name: String,
    pub display_name: String,
    pub description: String,
    pub trigger_keywords: Vec<String>,
    pub trigger_patterns: Vec<String>,
    pub required_tools: Vec<String>,
    pub is_enabled: bool,
    /// `builtin` or `community`.
    pub source: String,
    /// The markdown instructions.
    pub content: String,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewSkill {
    /// Unique slug, `[a-z0-9_-]`.
    #[schema(pattern = "^[a-z0-9_-]{1,64}$")]
    pub name: String,
    #[serde(default)]
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = "[^\\t-\\r \\u0085\\u00A0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000]"
    )]
    pub display_name: Option<String>,
    #[serde(default)]
    #[schema(max_length = 2000)]
    pub description: Option<String>,
    #[serde(default)]
    #[schema(schema_with = super::schema::keyword_list)]
    pub trigger_keywords: Option<Vec<String>>,
    #[serde(default)]
    #[schema(schema_with = super::schema::pattern_list)]
    pub trigger_patterns: Option<Vec<String>>,
    #[serde(default)]
    #[schema(schema_with = super::schema::keyword_list)]
    pub required_tools: Option<Vec<String>>,
    #[schema(
        min_length = 1,
        pattern = "[^\\t-\\r \\u0085\\u00A0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000]"
    )]
    pub content: String,
    #[serde(default)]
    pub is_enabled: Option<bool>,
}

/// `PATCH /api/skills/{id}`.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SkillPatch {
    pub is_enabled: Option<bool>,
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = "[^\\t-\\r \\u0085\\u00A0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000]"
    )]
    pub display_name: Option<String>,
    #[schema(max_length = 2000)]
    pub description: Option<String>,
    #[schema(schema_with = super::schema::keyword_list)]
    pub trigger_keywords: Option<Vec<String>>,
    #[schema(schema_with = super::schema::pattern_list)]
    pub trigger_patterns: Option<Vec<String>>,
    #[schema(
        min_length = 1,
        pattern = "[^\\t-\\r \\u0085\\u00A0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000]"
    )]
    pub content: Option<String>,
}

/// `POST /api/skills/import`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SkillImport {
    /// http(s) URL of a markdown file with front matter, on a public address
    /// (unless `HTTP_FETCH_ALLOW_PRIVATE`).
    #[schema(format = "uri", pattern = "^https?://")]
    pub url: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SkillFields {
    pub name: String,
    pub display_name: String,
    pub description: String,
    pub category: String,
    pub content: String,
    pub trigger_keywords: Vec<String>,
    pub trigger_patterns: Vec<String>,
    pub required_tools: Vec<String>,
    pub is_enabled: bool,
    pub source: String,
}

impl NewSkill {
    pub fn into_fields(self) -> Result<SkillFields, Invalid> {
        let f = SkillFields {
            display_name: self.display_name.unwrap_or_else(|| self.name.clone()),
            name: self.name,
            description: self.description.unwrap_or_default(),
            category: String::new(),
            content: self.content,
            trigger_keywords: self.trigger_keywords.unwrap_or_default(),
            trigger_patterns: self.trigger_patterns.unwrap_or_default(),
            required_tools: self.required_tools.unwrap_or_default(),
            is_enabled: self.is_enabled.unwrap_or(true),
            source: "community".into(),
        };
        f.validate()?;
        Ok(f)
    }
}

impl SkillPatch {
    pub fn apply(self, current: &Skill) -> Result<SkillFields, Invalid> {
        let f = SkillFields {
            name: current.name.clone(),
            display_name: self.display_name.unwrap_or_else(|| current.display_name.clone()),
            description: self.description.unwrap_or_else(|| current.description.clone()),
            category: String::new(),
            content: self.content.unwrap_or_else(|| current.content.clone()),
            trigger_keywords: self.trigger_keywords.unwrap_or_else(|| current.trigger_keywords.clone()),
            trigger_patterns: self.trigger_patterns.unwrap_or_else(|| current.trigger_patterns.clone()),
            required_tools: current.required_tools.clone(),
            is_enabled: self.is_enabled.unwrap_or(current.is_enabled),
            source: current.source.clone(),
        };
        f.validate()?;
        Ok(f)
    }
}

fn check_list(field: &str, items: &[String], max_items: usize, max_len: usize) -> Result<(), Invalid> {
    if items.len() > max_items {
        return Err(Invalid::new(format!("{field} has more than {max_items} entries")));
    }
    for item in items {
        check_text(field, item, max_len)?;
        if item.trim().is_empty() {
            return Err(Invalid::new(format!("{field} entries must not be empty")));
        }
    }
    Ok(())
}

/// Compiles a trigger pattern as the worker will (the `regex` crate, size-limited).
pub fn compile_pattern(pattern: &str) -> Result<regex::Regex, Invalid> {
    regex::RegexBuilder::new(pattern)
        .size_limit(1 << 20)
        .build()
        .map_err(|e| Invalid::new(format!("triggerPatterns: {pattern:?} is not a valid regular expression: {e}")))
}

impl SkillFields {
    pub fn validate(&self) -> Result<(), Invalid> {
        check_slug("name", &self.name)?;
        check_text("displayName", &self.display_name, 200)?;
        if self.display_name.trim().is_empty() {
            return Err(Invalid::new("displayName must not be empty"));
        }
        check_text("description", &self.description, 2_000)?;
        check_text("category", &self.category, 100)?;
        check_text("content", &self.content, MAX_CONTENT_BYTES)?;
        if self.content.trim().is_empty() {
            return Err(Invalid::new("content must not be empty"));
        }
        check_list("triggerKeywords", &self.trigger_keywords, 100, 100)?;
        check_list("triggerPatterns", &self.trigger_patterns, 50, 500)?;
        check_list("requiredTools", &self.required_tools, 100, 100)?;
        for p in &self.trigger_patterns {
            compile_pattern(p)?;
        }
        Ok(())
    }
}

/// A value of the front matter: `key: text` or `key: [a, b]` (or a `- item` block).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrontValue {
    Text(String),
    List(Vec<String>),
}

impl FrontValue {
    fn text(&self) -> String {
        match self {
            FrontValue::Text(t) => t.clone(),
            FrontValue::List(l) => l.join(", "),
        }
    }
    fn list(&self) -> Vec<String> {
        match self {
            FrontValue::List(l) => l.clone(),
            FrontValue::Text(t) if t.is_empty() => vec![],
            FrontValue::Text(t) => split_list(t),
        }
    }
}

/// A scalar as YAML writes it: `"double"` (with `\\`, `\"`, `\n`, `\t`
/// escapes), `'single'` (`''` is a quote) or plain.
fn unquote(s: &str) -> String {
    let s = s.trim();
    if s.len() >= 2 && s.starts_with('"') && s.ends_with('"') {
        let inner = &s[1..s.len() - 1];
        let mut out = String::with_capacity(inner.len());
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            if c != '\\' {
                out.push(c);
                continue;
            }
            match chars.next() {
                Some('\\') => out.push('\\'),
                Some('"') => out.push('"'),
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some(other) => {
                    out.push('\\');
                    out.push(other);
                }
                None => out.push('\\'),
            }
        }
        return out;
    }
    if s.len() >= 2 && s.starts_with('\'') && s.ends_with('\'') {
        return s[1..s.len() - 1].replace("''", "'");
    }
    s.to_string()
}

/// Splits `a, "b, c", 'd'` at the commas outside quotes.
fn split_list(inner: &str) -> Vec<String> {
    let mut items = Vec::new();
    let mut current = String::new();
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for c in inner.chars() {
        match quote {
            Some('"') if escaped => escaped = false,
            Some('"') if c == '\\' => escaped = true,
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '"' || c == '\'' => quote = Some(c),
            None if c == ',' => {
                items.push(unquote(&current));
                current.clear();
                continue;
            }
            None => {}
        }
        current.push(c);
    }
    items.push(unquote(&current));
    items.into_iter().filter(|s| !s.is_empty()).collect()
}

/// Splits `---\nkey: value\n…\n---\nbody` into its keys and the body. `None`
/// when the text does not start with a front matter block.
pub fn parse_front_matter(text: &str) -> Option<(BTreeMap<String, FrontValue>, String)> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines = text.lines();
    if lines.next()?.trim_end() != "---" {
        return None;
    }
    let mut map = BTreeMap::new();
    let mut last_key: Option<String> = None;
    let mut consumed = text.find('\n')? + 1;
    let mut closed = false;
    for line in lines {
        consumed += line.len() + 1;
        let trimmed = line.trim();
        if trimmed == "---" || trimmed == "..." {
            closed = true;
            break;
        }
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        if let Some(item) = trimmed.strip_prefix("- ")
            && let Some(key) = &last_key
        {
            let entry = map.entry(key.clone()).or_insert_with(|| FrontValue::List(vec![]));
            match entry {
                FrontValue::List(l) => l.push(unquote(item)),
                FrontValue::Text(t) if t.is_empty() => *entry = FrontValue::List(vec![unquote(item)]),
                FrontValue::Text(_) => {}
            }
            continue;
        }
        let (key, value) = trimmed.split_once(':')?;
        let key = key.trim().to_string();
        let value = value.trim();
        let parsed = if let Some(inner) = value.strip_prefix('[').and_then(|v| v.strip_suffix(']')) {
            FrontValue::List(split_list(inner))
        } else {
            FrontValue::Text(unquote(value))
        };
        map.insert(key.clone(), parsed);
        last_key = Some(key);
    }
    if !closed {
        return None;
    }
    let body = text.get(consumed.min(text.len())..).unwrap_or("").trim_start_matches(['\r', '\n']).to_string();
    Some((map, body))
}

/// A skill from a markdown file with front matter (`name` required; also
/// `displayName`/`display_name`/`title`, `description`, `keywords`/`triggers`/
/// `triggerKeywords`, `patterns`/`triggerPatterns`, `tools`/`requiredTools`, `category`).
pub fn skill_from_markdown(text: &str, source: &str) -> Result<SkillFields, Invalid> {
    let (fm, body) = parse_front_matter(text).ok_or_else(|| {
        Invalid::new("the skill file has no front matter (a --- block with at least `name: …` at the top)")
    })?;
    let get = |keys: &[&str]| keys.iter().find_map(|k| fm.get(*k));
    let name = get(&["name", "slug"])
        .map(FrontValue::text)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| Invalid::new("the skill's front matter has no name"))?;
    let f = SkillFields {
        display_name: get(&["displayName", "display_name", "title"])
            .map(FrontValue::text)
            .unwrap_or_else(|| name.clone()),
        name,
        description: get(&["description"]).map(FrontValue::text).unwrap_or_default(),
        category: get(&["category"]).map(FrontValue::text).unwrap_or_default(),
        content: body,
        trigger_keywords: get(&["keywords", "triggers", "triggerKeywords", "trigger_keywords"])
            .map(FrontValue::list)
            .unwrap_or_default(),
        trigger_patterns: get(&["patterns", "triggerPatterns", "trigger_patterns"])
            .map(FrontValue::list)
            .unwrap_or_default(),
        required_tools: get(&["tools", "requiredTools", "required_tools"]).map(FrontValue::list).unwrap_or_default(),
        is_enabled: true,
        source: source.to_string(),
    };
    f.validate()?;
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_parse() {
        for text in BUILTIN_SKILLS {
            let s = skill_from_markdown(text, "builtin").unwrap();
            assert!(!s.trigger_keywords.is_empty(), "{}", s.name);
            assert!(!s.content.starts_with("---"));
        }
    }

    #[test]
    fn front_matter_forms() {
        let text = "---\nname: btc\ndescription: \"Price, now\"\nkeywords: [bitcoin, 'btc', price]\npatterns:\n  - \\bbtc\\b\n---\n# BTC\nDo it.\n";
        let s = skill_from_markdown(text, "community").unwrap();
        assert_eq!(s.name, "btc");
        assert_eq!(s.display_name, "btc");
        assert_eq!(s.description, "Price, now");
        assert_eq!(s.trigger_keywords, vec!["bitcoin", "btc", "price"]);
        assert_eq!(s.trigger_patterns, vec!["\\bbtc\\b"]);
        assert_eq!(s.content, "# BTC\nDo it.\n");
        let text = "---\nname: q\npatterns: [\"a{1,3}\", 'it''s', \"\\\\d+\"]\n---\nbody";
        let s = skill_from_markdown(text, "community").unwrap();
        assert_eq!(s.trigger_patterns, vec!["a{1,3}", "it's", "\\d+"]);
    }

    #[test]
    fn unusable_files_are_refused() {
        assert!(skill_from_markdown("# no front matter", "community").is_err());
        assert!(skill_from_markdown("---\ndescription: x\n---\nbody", "community").unwrap_err().0.contains("name"));
        assert!(skill_from_markdown("---\nname: x\n", "community").is_err());
        assert!(skill_from_markdown("---\nname: Bad Name\n---\nbody", "community").is_err());
        assert!(skill_from_markdown("---\nname: x\npatterns: [\"(\"]\n---\nbody", "community").is_err());
        assert!(skill_from_markdown("---\nname: x\n---\n", "community").unwrap_err().0.contains("content"));
    }
}
