//! Agents: a model, a system prompt and the tools it may use.
//!
//! Two extensions of the reference's agent: `reasoningEffort` (how hard a
//! reasoning model thinks: one of [`REASONING_EFFORTS`], `null` = the model's
//! default; each provider adapter maps it to its own control) and
//! `showThinking` (whether the model's readable thinking is shown with the
//! reply; off by default — thinking is never shown unless asked for).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{Invalid, check_model, check_text};

/// Roles the REST reference allows.
pub const ROLES: &[&str] = &["conductor", "specialist", "analyst", "creative", "technical"];

pub const DEFAULT_MODEL: &str = "anthropic/claude-haiku-4-5-20251001";

/// The values of `reasoningEffort`, least to most.
pub const REASONING_EFFORTS: &[&str] = &["none", "minimal", "low", "medium", "high", "xhigh", "max"];

/// The roles, for the OpenAPI document.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AgentRole {
    Conductor,
    Specialist,
    Analyst,
    Creative,
    Technical,
}

/// An agent as stored and as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Agent {
    pub id: i64,
    pub slug: String,
    pub name: String,
    pub role: String,
    pub description: String,
    pub model: String,
    pub system_prompt: String,
    pub allowed_tools: Vec<String>,
    pub temperature: f64,
    pub max_tokens: i64,
    pub is_active: bool,
    pub created_by: Option<String>,
    /// Extension: how hard a reasoning model thinks; `null` = the model's default.
    #[schema(value_type = Option<String>, example = "medium")]
    pub reasoning_effort: Option<String>,
    /// Extension: show the model's readable thinking with the reply (default false).
    pub show_thinking: bool,
    /// Extension: the most the agent may spend per UTC day (USD); `null` = no limit.
    pub daily_budget_usd: Option<f64>,
    /// Extension: the most the agent may spend per UTC calendar month (USD); `null` = no limit.
    pub monthly_budget_usd: Option<f64>,
}

/// `POST /api/agents` body. `slug` and `name` are required.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewAgent {
    #[schema(pattern = "^[a-z0-9_-]{1,64}$")]
    pub slug: String,
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = "[^\\t-\\r \\u0085\\u00A0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000]"
    )]
    pub name: String,
    #[serde(default)]
    #[schema(value_type = Option<AgentRole>)]
    pub role: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    #[schema(
        pattern = "^((anthropic|openai|openrouter|google|ollama|custom)/)?[^/\\t-\\r \\u0085\\u00A0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000][^\\t-\\r \\u0085\\u00A0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000]*$",
        max_length = 200
    )]
    pub model: Option<String>,
    #[serde(default)]
    pub system_prompt: Option<String>,
    #[serde(default)]
    #[schema(schema_with = super::schema::tool_list)]
    pub allowed_tools: Option<Vec<String>>,
    #[serde(default)]
    #[schema(minimum = 0.0, maximum = 2.0)]
    pub temperature: Option<f64>,
    #[serde(default)]
    #[schema(minimum = 1, maximum = 1_000_000)]
    pub max_tokens: Option<i64>,
    #[serde(default)]
    pub is_active: Option<bool>,
    #[serde(default)]
    pub created_by: Option<String>,
    /// Extension: one of none, minimal, low, medium, high, xhigh, max; omitted or null = the model's default.
    #[serde(default)]
    #[schema(pattern = "^(none|minimal|low|medium|high|xhigh|max)$")]
    pub reasoning_effort: Option<String>,
    /// Extension: show the model's readable thinking with the reply (default false).
    #[serde(default)]
    pub show_thinking: Option<bool>,
    /// Extension: spend limit per UTC day in USD (≥ 0); omitted or null = none.
    #[serde(default)]
    #[schema(minimum = 0.0)]
    pub daily_budget_usd: Option<f64>,
    /// Extension: spend limit per UTC calendar month in USD (≥ 0); omitted or null = none.
    #[serde(default)]
    #[schema(minimum = 0.0)]
    pub monthly_budget_usd: Option<f64>,
}

/// `PATCH /api/agents/{id}` body: only the fields to change.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AgentPatch {
    #[schema(pattern = "^[a-z0-9_-]{1,64}$")]
    pub slug: Option<String>,
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = "[^\\t-\\r \\u0085\\u00A0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000]"
    )]
    pub name: Option<String>,
    #[schema(value_type = Option<AgentRole>)]
    pub role: Option<String>,
    pub description: Option<String>,
    #[schema(
        pattern = "^((anthropic|openai|openrouter|google|ollama|custom)/)?[^/\\t-\\r \\u0085\\u00A0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000][^\\t-\\r \\u0085\\u00A0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000]*$",
        max_length = 200
    )]
    pub model: Option<String>,
    pub system_prompt: Option<String>,
    #[schema(schema_with = super::schema::tool_list)]
    pub allowed_tools: Option<Vec<String>>,
    #[schema(minimum = 0.0, maximum = 2.0)]
    pub temperature: Option<f64>,
    #[schema(minimum = 1, maximum = 1_000_000)]
    pub max_tokens: Option<i64>,
    pub is_active: Option<bool>,
    /// Extension: one of none, minimal, low, medium, high, xhigh, max; `null` clears it (the model's default).
    #[serde(default, deserialize_with = "super::nullable::field")]
    #[schema(value_type = Option<String>, pattern = "^(none|minimal|low|medium|high|xhigh|max)$")]
    pub reasoning_effort: Option<Option<String>>,
    /// Extension: show the model's readable thinking with the reply.
    pub show_thinking: Option<bool>,
    /// Extension: spend limit per UTC day in USD; `null` removes it.
    #[serde(default, deserialize_with = "super::nullable::field")]
    #[schema(value_type = Option<f64>, minimum = 0.0)]
    pub daily_budget_usd: Option<Option<f64>>,
    /// Extension: spend limit per UTC calendar month in USD; `null` removes it.
    #[serde(default, deserialize_with = "super::nullable::field")]
    #[schema(value_type = Option<f64>, minimum = 0.0)]
    pub monthly_budget_usd: Option<Option<f64>>,
}

/// A complete, validated agent definition ready to be written.
#[derive(Debug, Clone)]
pub struct AgentFields {
    pub slug: String,
    pub name: String,
    pub role: String,
    pub description: String,
    pub model: String,
    pub system_prompt: String,
    pub allowed_tools: Vec<String>,
    pub temperature: f64,
    pub max_tokens: i64,
    pub is_active: bool,
    pub created_by: Option<String>,
    pub reasoning_effort: Option<String>,
    pub show_thinking: bool,
    pub daily_budget_usd: Option<f64>,
    pub monthly_budget_usd: Option<f64>,
}

impl NewAgent {
    /// Fills defaults (`default_model` from the settings) and validates.
    pub fn into_fields(self, default_model: &str) -> Result<AgentFields, Invalid> {
        let fields = AgentFields {
            slug: self.slug,
            name: self.name,
            role: self.role.unwrap_or_else(|| "specialist".into()),
            description: self.description.unwrap_or_default(),
            model: self.model.unwrap_or_else(|| default_model.to_string()),
            system_prompt: self.system_prompt.unwrap_or_default(),
            allowed_tools: self.allowed_tools.unwrap_or_default(),
            temperature: self.temperature.unwrap_or(0.7),
            max_tokens: self.max_tokens.unwrap_or(4096),
            is_active: self.is_active.unwrap_or(true),
            created_by: self.created_by,
            reasoning_effort: self.reasoning_effort,
            show_thinking: self.show_thinking.unwrap_or(false),
            daily_budget_usd: self.daily_budget_usd,
            monthly_budget_usd: self.monthly_budget_usd,
        };
        fields.validate()?;
        Ok(fields)
    }
}

impl AgentPatch {
    /// Applies the patch over the current agent and validates the result.
    /// `allowedTools` entries are checked against the known forms only when the
    /// patch sets them: an agent stored before a name became unknown (the
    /// original accepted any name and ignored what was not built in) can still
    /// be renamed or paused without first cleaning its tool list.
    pub fn apply(self, current: &Agent) -> Result<AgentFields, Invalid> {
        let tools_given = self.allowed_tools.is_some();
        let fields = AgentFields {
            slug: self.slug.unwrap_or_else(|| current.slug.clone()),
            name: self.name.unwrap_or_else(|| current.name.clone()),
            role: self.role.unwrap_or_else(|| current.role.clone()),
            description: self.description.unwrap_or_else(|| current.description.clone()),
            model: self.model.unwrap_or_else(|| current.model.clone()),
            system_prompt: self.system_prompt.unwrap_or_else(|| current.system_prompt.clone()),
            allowed_tools: self.allowed_tools.unwrap_or_else(|| current.allowed_tools.clone()),
            temperature: self.temperature.unwrap_or(current.temperature),
            max_tokens: self.max_tokens.unwrap_or(current.max_tokens),
            is_active: self.is_active.unwrap_or(current.is_active),
            created_by: current.created_by.clone(),
            reasoning_effort: super::nullable::apply(self.reasoning_effort, &current.reasoning_effort),
            show_thinking: self.show_thinking.unwrap_or(current.show_thinking),
            daily_budget_usd: super::nullable::apply(self.daily_budget_usd, &current.daily_budget_usd),
            monthly_budget_usd: super::nullable::apply(self.monthly_budget_usd, &current.monthly_budget_usd),
        };
        fields.check(tools_given)?;
        Ok(fields)
    }
}

/// `[a-z0-9_-]{1,64}`.
pub fn check_slug(field: &str, slug: &str) -> Result<(), Invalid> {
    if slug.is_empty()
        || slug.len() > 64
        || !slug.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
    {
        return Err(Invalid::new(format!("{field} must be 1-64 characters of a-z, 0-9, - and _")));
    }
    Ok(())
}

impl AgentFields {
    /// Every rule, `allowedTools` entries included (each a built-in or an
    /// `mcp:` form).
    pub fn validate(&self) -> Result<(), Invalid> {
        self.check(true)
    }

    /// [`AgentFields::validate`]; with `tools_strict` false, `allowedTools`
    /// entries are only checked as text (a stored unknown name is kept and, as
    /// before, ignored at run time).
    fn check(&self, tools_strict: bool) -> Result<(), Invalid> {
        check_slug("slug", &self.slug)?;
        check_text("name", &self.name, 200)?;
        if self.name.trim().is_empty() {
            return Err(Invalid::new("name must not be empty"));
        }
        if !ROLES.contains(&self.role.as_str()) {
            return Err(Invalid::new(format!("role must be one of: {}", ROLES.join(", "))));
        }
        check_text("description", &self.description, 2_000)?;
        check_model("model", &self.model)?;
        check_text("systemPrompt", &self.system_prompt, super::limits::MAX_MESSAGE_CHARS)?;
        if self.allowed_tools.len() > 100 {
            return Err(Invalid::new("allowedTools has more than 100 entries"));
        }
        for tool in &self.allowed_tools {
            check_text("allowedTools", tool, 100)?;
            if tool.trim().is_empty() {
                return Err(Invalid::new("allowedTools entries must not be empty"));
            }
            if tools_strict {
                super::mcp::ToolRef::parse(tool)?;
            }
        }
        if !(0.0..=2.0).contains(&self.temperature) || !self.temperature.is_finite() {
            return Err(Invalid::new("temperature must be between 0 and 2"));
        }
        if !(1..=1_000_000).contains(&self.max_tokens) {
            return Err(Invalid::new("maxTokens must be between 1 and 1000000"));
        }
        if let Some(by) = &self.created_by {
            check_text("createdBy", by, 200)?;
        }
        if let Some(effort) = &self.reasoning_effort
            && !REASONING_EFFORTS.contains(&effort.as_str())
        {
            return Err(Invalid::new(format!("reasoningEffort must be one of: {}", REASONING_EFFORTS.join(", "))));
        }
        super::api_key::check_budget("dailyBudgetUsd", self.daily_budget_usd)?;
        super::api_key::check_budget("monthlyBudgetUsd", self.monthly_budget_usd)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new(slug: &str) -> NewAgent {
        serde_json::from_value(serde_json::json!({"slug": slug, "name": "N"})).unwrap()
    }

    #[test]
    fn defaults_fill_a_minimal_agent() {
        let f = new("support").into_fields(DEFAULT_MODEL).unwrap();
        assert_eq!(f.role, "specialist");
        assert_eq!(f.model, DEFAULT_MODEL);
        assert_eq!(f.max_tokens, 4096);
        assert!(f.is_active);
    }

    #[test]
    fn invalid_fields_are_refused_with_the_field_name() {
        assert!(new("Bad Slug").into_fields(DEFAULT_MODEL).unwrap_err().0.contains("slug"));
        let mut a = new("ok");
        a.role = Some("wizard".into());
        assert!(a.into_fields(DEFAULT_MODEL).unwrap_err().0.contains("role"));
        let mut a = new("ok");
        a.temperature = Some(2.5);
        assert!(a.into_fields(DEFAULT_MODEL).unwrap_err().0.contains("temperature"));
        let mut a = new("ok");
        a.model = Some("nope/".into());
        assert!(a.into_fields(DEFAULT_MODEL).unwrap_err().0.contains("model"));
        let mut a = new("ok");
        a.name = "a\0b".into();
        assert!(a.into_fields(DEFAULT_MODEL).unwrap_err().0.contains("NUL"));
    }

    #[test]
    fn a_stored_unknown_tool_does_not_block_other_edits_but_a_new_one_is_refused() {
        let stored = Agent {
            id: 1,
            slug: "old".into(),
            name: "Old".into(),
            role: "specialist".into(),
            description: String::new(),
            model: DEFAULT_MODEL.into(),
            system_prompt: String::new(),
            // Accepted (and ignored at run time) before MCP came with its strict forms.
            allowed_tools: vec!["web_search".into(), "write_file".into()],
            temperature: 0.7,
            max_tokens: 1000,
            is_active: true,
            created_by: None,
            reasoning_effort: None,
            show_thinking: false,
            daily_budget_usd: None,
            monthly_budget_usd: None,
        };
        let rename = AgentPatch { name: Some("Renamed".into()), ..Default::default() };
        let f = rename.apply(&stored).unwrap();
        assert_eq!(f.allowed_tools, stored.allowed_tools);
        let retool = AgentPatch { allowed_tools: Some(vec!["write_file".into()]), ..Default::default() };
        assert!(retool.apply(&stored).unwrap_err().0.contains("unknown tool"));
        let mcp = AgentPatch { allowed_tools: Some(vec!["mcp:files/read".into()]), ..Default::default() };
        assert_eq!(mcp.apply(&stored).unwrap().allowed_tools, ["mcp:files/read"]);
    }
}
