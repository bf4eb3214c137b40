//! Skill matching (behaviour reference §6): +1 for every trigger keyword found
//! in the user's text (case-insensitive substring), +2 for every trigger regex
//! that matches (case-insensitive; invalid patterns are skipped). Skills whose
//! required tools the agent lacks are skipped; the top 3 with a score above 0
//! are injected as `--- {displayName} ---` plus the content without its front
//! matter.
//!
//! Patterns are compiled once per process and cached by their text.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

use arvis_shared::db::memory_ctx::MatchableSkill;
use regex::{Regex, RegexBuilder};

/// How many skills go into a prompt.
pub const MAX_SKILLS: usize = 3;

/// Compiled patterns by their text; `None` for a pattern that does not compile.
static PATTERNS: LazyLock<Mutex<HashMap<String, Option<Arc<Regex>>>>> = LazyLock::new(Default::default);

/// A bound on the cache: skills are few, but the table is user-editable.
const CACHE_LIMIT: usize = 2_000;

fn compiled(pattern: &str) -> Option<Arc<Regex>> {
    let Ok(mut cache) = PATTERNS.lock() else {
        // A poisoned lock only means another thread panicked mid-insert: compile uncached.
        return compile(pattern).map(Arc::new);
    };
    if let Some(hit) = cache.get(pattern) {
        return hit.clone();
    }
    if cache.len() >= CACHE_LIMIT {
        cache.clear();
    }
    let re = compile(pattern).map(Arc::new);
    if re.is_none() {
        tracing::warn!(pattern, "skill trigger pattern does not compile; skipped");
    }
    cache.insert(pattern.to_string(), re.clone());
    re
}

fn compile(pattern: &str) -> Option<Regex> {
    RegexBuilder::new(pattern).case_insensitive(true).size_limit(1 << 20).build().ok()
}

/// The skill's score for this text.
pub fn score(skill: &MatchableSkill, text: &str) -> u32 {
    let lower = text.to_lowercase();
    let mut score = 0;
    for keyword in &skill.trigger_keywords {
        let k = keyword.trim().to_lowercase();
        if !k.is_empty() && lower.contains(&k) {
            score += 1;
        }
    }
    for pattern in &skill.trigger_patterns {
        if pattern.is_empty() {
            continue;
        }
        if let Some(re) = compiled(pattern)
            && re.is_match(text)
        {
            score += 2;
        }
    }
    score
}

/// The best [`MAX_SKILLS`] skills for `text` among those the agent has the tools
/// for: highest score first, ties by id.
pub fn top_skills<'a>(skills: &'a [MatchableSkill], text: &str, allowed_tools: &[String]) -> Vec<&'a MatchableSkill> {
    let mut scored: Vec<(u32, &MatchableSkill)> = skills
        .iter()
        .filter(|s| s.required_tools.iter().all(|t| allowed_tools.iter().any(|a| a == t)))
        .map(|s| (score(s, text), s))
        .filter(|(score, _)| *score > 0)
        .collect();
    scored.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.id.cmp(&b.1.id)));
    scored.into_iter().take(MAX_SKILLS).map(|(_, s)| s).collect()
}

/// The content without a leading `---` … `---` front matter block.
pub fn strip_front_matter(content: &str) -> &str {
    let trimmed = content.trim_start_matches('\u{feff}');
    let Some(rest) = trimmed.strip_prefix("---") else { return content };
    let Some(rest) = rest.strip_prefix('\n').or_else(|| rest.strip_prefix("\r\n")) else { return content };
    let mut offset = 0;
    for line in rest.split_inclusive('\n') {
        offset += line.len();
        if line.trim_end() == "---" {
            return rest[offset..].trim_start_matches(['\r', '\n']);
        }
    }
    content
}

/// The `ACTIVE SKILLS:` section, or `None` when no skill matched.
pub fn render(selected: &[&MatchableSkill]) -> Option<String> {
    if selected.is_empty() {
        return None;
    }
    let mut out = String::from("ACTIVE SKILLS:");
    for skill in selected {
        out.push_str(&format!("\n\n--- {} ---\n{}", skill.display_name, strip_front_matter(&skill.content).trim_end()));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn skill(id: i64, kw: &[&str], pats: &[&str], tools: &[&str]) -> MatchableSkill {
        MatchableSkill {
            id,
            name: format!("s{id}"),
            display_name: format!("Skill {id}"),
            content: format!("---\nname: s{id}\n---\nBody {id}\n"),
            trigger_keywords: kw.iter().map(|s| s.to_string()).collect(),
            trigger_patterns: pats.iter().map(|s| s.to_string()).collect(),
            required_tools: tools.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn keywords_score_one_patterns_two_case_insensitive() {
        let s = skill(1, &["Deploy", "docker", "absent"], &[r"\bk8s\b", "(unclosed"], &[]);
        assert_eq!(score(&s, "please DEPLOY the docker image to k8s"), 1 + 1 + 2);
        assert_eq!(score(&s, "nothing here"), 0);
    }

    #[test]
    fn top_three_by_score_skipping_missing_tools() {
        let skills = vec![
            skill(1, &["a"], &[], &[]),
            skill(2, &["a", "b"], &[], &[]),
            skill(3, &["a"], &["b"], &["web_search"]),
            skill(4, &["a", "b", "c"], &[], &["run_shell"]),
            skill(5, &["zzz"], &[], &[]),
            skill(6, &["a"], &[], &[]),
        ];
        let tools = vec!["web_search".to_string()];
        let top: Vec<i64> = top_skills(&skills, "a b c", &tools).iter().map(|s| s.id).collect();
        assert_eq!(top, vec![3, 2, 1], "4 lacks run_shell, 5 scores 0, 6 loses the tie");
    }

    #[test]
    fn rendering_drops_front_matter() {
        let skills = [skill(1, &[], &[], &[])];
        let refs: Vec<&MatchableSkill> = skills.iter().collect();
        assert_eq!(render(&refs).unwrap(), "ACTIVE SKILLS:\n\n--- Skill 1 ---\nBody 1");
        assert_eq!(render(&[]), None);
        assert_eq!(strip_front_matter("no front matter\n---\n"), "no front matter\n---\n");
        assert_eq!(strip_front_matter("---\nunterminated"), "---\nunterminated");
    }
}
