//! The system prompt (behaviour reference §6). Static parts come first so
//! providers can cache the prefix: identity, purpose, the memory/state rules,
//! the agent's own instructions, tool hints, the delegation hint; then the
//! parts that change: sticky facts, top memory facts, state, matched skills.
//!
//! The conductor's prompt is its own system prompt verbatim plus the
//! action-tag instructions (and the list of agents it can address).

use arvis_shared::db::memory_ctx::PromptFact;
use arvis_shared::db::{DbError, Store};
use arvis_shared::domain::agent::Agent;

use super::{is_conductor, skills, tools};

/// How many non-sticky facts go into a prompt.
pub const MAX_PROMPT_FACTS: i64 = 15;

/// The memory and state rules every non-conductor agent gets.
pub const MEMORY_RULES: &str = "RULES:\n\
- To remember a lasting fact, write it on its own line as: [MEMORY:category] the fact\n\
  Categories: user_preference, project_context, learned_pattern, important_event, and sticky \
(critical facts that are always shown to you).\n\
- To record current state, write on its own line: [STATE:key] value (it replaces the key's previous value).\n\
- These tags are removed before your reply is shown. Use them only for information worth keeping; \
never repeat facts you already have.";

/// The conductor's action-tag instructions, appended to its own prompt.
pub const ACTION_TAG_RULES: &str = "ACTIONS (write these blocks in your reply; they are carried out and removed \
before the reply is shown; bodies are `key: value` lines, a key with an empty value starts a multi-line value):\n\
- Delegate: [DELEGATE:agent-slug]the task[/DELEGATE]\n\
- Create an agent: [CREATE_AGENT]\nslug: lowercase-slug\nname: Display Name\nrole: specialist\n\
description: what it does\nmodel: provider/model\nallowed_tools: [\"web_search\", \"calculate\"]\n[/CREATE_AGENT]\n\
  (roles: specialist, analyst, creative, technical; the system prompt cannot be set this way)\n\
- Update an agent: [UPDATE_AGENT:slug]\nmodel: provider/model\n[/UPDATE_AGENT] (not the conductor itself)\n\
- Schedule a task: [CREATE_CRON]\nagent: agent-slug\nname: Daily report\nschedule: 0 9 * * 1\n\
prompt: what to do\n[/CREATE_CRON]\n  (schedule: standard 5-field cron or `every N m`; at least 30 seconds apart)";

/// The dynamic parts of a prompt, already read from the store.
#[derive(Debug, Clone, Default)]
pub struct PromptParts {
    pub sticky: Vec<PromptFact>,
    pub facts: Vec<PromptFact>,
    pub state: Vec<(String, String)>,
    /// Slugs of the other active agents (delegation targets).
    pub other_agents: Vec<String>,
    /// The rendered `ACTIVE SKILLS:` section, when any skill matched.
    pub skills: Option<String>,
}

/// Builds the system prompt for `agent` answering `prompt` (the user's text,
/// used for skill matching). Reading the memory facts bumps their access stats.
pub async fn system_prompt(store: &Store, agent: &Agent, prompt: &str) -> Result<String, DbError> {
    let other_agents: Vec<String> =
        store.agents().await?.iter().filter(|a| a.is_active && a.id != agent.id).map(|a| a.slug.clone()).collect();
    if is_conductor(agent) {
        return Ok(render_conductor(agent, &other_agents));
    }
    let memory = store.prompt_memory(agent.id, MAX_PROMPT_FACTS).await?;
    let ids: Vec<i64> = memory.sticky.iter().chain(memory.facts.iter()).map(|f| f.id).collect();
    store.touch_facts(&ids).await?;
    let (sticky, facts, state) = (memory.sticky, memory.facts, memory.state);
    let all_skills = store.skills_for_matching().await?;
    let selected = skills::top_skills(&all_skills, prompt, &agent.allowed_tools);
    let parts = PromptParts { sticky, facts, state, other_agents, skills: skills::render(&selected) };
    Ok(render(agent, &parts))
}

/// The conductor's prompt: verbatim, then the action rules and the agent list.
pub fn render_conductor(agent: &Agent, other_agents: &[String]) -> String {
    let mut out = String::new();
    if !agent.system_prompt.trim().is_empty() {
        out.push_str(agent.system_prompt.trim_end());
        out.push_str("\n\n");
    }
    out.push_str(ACTION_TAG_RULES);
    if !other_agents.is_empty() {
        out.push_str(&format!("\n\nAgents you can delegate to: {}", other_agents.join(", ")));
    }
    out
}

/// A non-conductor prompt from its parts, in the reference's order.
pub fn render(agent: &Agent, parts: &PromptParts) -> String {
    let mut sections: Vec<String> = vec![format!("You are {}, an agent on Arvis.", agent.name)];
    if !agent.description.trim().is_empty() {
        sections.push(format!("Purpose: {}", agent.description.trim()));
    }
    sections.push(MEMORY_RULES.to_string());
    if !agent.system_prompt.trim().is_empty() {
        sections.push(agent.system_prompt.trim().to_string());
    }
    let hints: Vec<String> = tools::BUILTIN
        .iter()
        .filter(|t| agent.allowed_tools.iter().any(|a| a == t.name))
        .map(|t| format!("- {}: {}", t.name, t.hint))
        .collect();
    if !hints.is_empty() {
        sections.push(format!("TOOLS:\n{}", hints.join("\n")));
    }
    if !parts.other_agents.is_empty() {
        sections.push(format!(
            "DELEGATION: to hand a task to another agent, write [DELEGATE:agent-slug]the task[/DELEGATE]. \
             Its answer is posted separately. Agents: {}",
            parts.other_agents.join(", ")
        ));
    }
    if !parts.sticky.is_empty() {
        let lines: Vec<String> = parts.sticky.iter().map(|f| format!("- {}", f.content)).collect();
        sections.push(format!("CRITICAL CONTEXT (always active):\n{}", lines.join("\n")));
    }
    if !parts.facts.is_empty() {
        let lines: Vec<String> = parts.facts.iter().map(|f| format!("- [{}] {}", f.category, f.content)).collect();
        sections.push(format!("MEMORY:\n{}", lines.join("\n")));
    }
    if !parts.state.is_empty() {
        let lines: Vec<String> = parts.state.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        sections.push(format!("STATE:\n{}", lines.join("\n")));
    }
    if let Some(skills) = &parts.skills {
        sections.push(skills.clone());
    }
    sections.join("\n\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent(role: &str, tools: &[&str]) -> Agent {
        Agent {
            id: 1,
            slug: "helper".into(),
            name: "Helper".into(),
            role: role.into(),
            description: "Helps.".into(),
            model: "anthropic/claude-haiku-4-5".into(),
            system_prompt: "Be kind.".into(),
            allowed_tools: tools.iter().map(|s| s.to_string()).collect(),
            temperature: 0.7,
            max_tokens: 4096,
            is_active: true,
            created_by: None,
            reasoning_effort: None,
            show_thinking: false,
            daily_budget_usd: None,
            monthly_budget_usd: None,
        }
    }

    fn fact(id: i64, category: &str, content: &str) -> PromptFact {
        PromptFact {
            id,
            category: category.into(),
            content: content.into(),
            confidence: 1.0,
            access_count: 0,
            last_accessed: None,
        }
    }

    #[test]
    fn sections_come_in_order() {
        let parts = PromptParts {
            sticky: vec![fact(1, "sticky", "Owner is Ada")],
            facts: vec![fact(2, "user_preference", "Likes tea")],
            state: vec![("mood".into(), "calm".into())],
            other_agents: vec!["writer".into()],
            skills: Some("ACTIVE SKILLS:\n\n--- S ---\nbody".into()),
        };
        let p = render(&agent("specialist", &["calculate", "run_shell"]), &parts);
        let order = [
            "You are Helper, an agent on Arvis.",
            "Purpose: Helps.",
            "RULES:",
            "[MEMORY:category]",
            "[STATE:key]",
            "Be kind.",
            "TOOLS:\n- calculate:",
            "[DELEGATE:agent-slug]",
            "CRITICAL CONTEXT (always active):\n- Owner is Ada",
            "MEMORY:\n- [user_preference] Likes tea",
            "STATE:\nmood: calm",
            "ACTIVE SKILLS:",
        ];
        let mut at = 0;
        for needle in order {
            let found = p[at..].find(needle).unwrap_or_else(|| panic!("{needle:?} missing or out of order in\n{p}"));
            at += found + needle.len();
        }
        assert!(!p.contains("run_shell"), "only built-in tools get hints");
        assert!(!p.to_lowercase().contains("claude"), "no vendor claims");
    }

    #[test]
    fn empty_parts_are_left_out() {
        let p = render(&agent("specialist", &[]), &PromptParts::default());
        assert!(!p.contains("TOOLS:") && !p.contains("DELEGATION") && !p.contains("MEMORY:\n"));
        assert!(!p.contains("CRITICAL CONTEXT") && !p.contains("STATE:\n") && !p.contains("ACTIVE SKILLS"));
    }

    #[test]
    fn conductor_prompt_is_verbatim_plus_actions() {
        let p = render_conductor(&agent("conductor", &[]), &["writer".into()]);
        assert!(p.starts_with("Be kind.\n\nACTIONS"));
        assert!(p.contains("[CREATE_AGENT]") && p.contains("[UPDATE_AGENT:slug]") && p.contains("[CREATE_CRON]"));
        assert!(p.ends_with("Agents you can delegate to: writer"));
    }
}
