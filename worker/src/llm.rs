//! The provider-neutral shape of a model call, shared by the provider adapters
//! (`providers/*`), the agent context builder and the tool loop.
//!
//! Neutral, except for one thing: an assistant turn of the tool loop may carry
//! a [`Replay`] — the provider's own content of that turn (Anthropic's blocks
//! with `thinking` / `redacted_thinking` signatures, Gemini's parts with their
//! `thoughtSignature`s), which that provider requires back unchanged in the
//! next request. The neutral fields (`content`, `tool_calls`) stay filled, so a
//! failover to another provider rebuilds the turn from them instead.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Assistant,
    /// The result of a tool call, answering `tool_call_id`.
    Tool,
}

/// One message of the conversation sent to the model (the system prompt is separate).
///
/// The text is shared (`Arc<str>`): a run's history points at the strings the
/// worker's conversation cache holds, so building a request of 300 turns
/// copies no text (copying it was ~6 % of the launcher's CPU under load).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: Role,
    pub content: Arc<str>,
    /// Tool calls the assistant made in this message.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// For `Role::Tool`: which call this answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// For `Role::Tool`: the tool's name (Gemini needs it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_name: Option<String>,
    /// For an assistant turn of the tool loop: the provider's own content, sent
    /// back exactly as received to the same provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay: Option<Replay>,
}

/// Whose wire format a [`Replay`] is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReplayFormat {
    /// Anthropic Messages: `content` is the array of content blocks.
    Anthropic,
    /// Gemini: `content` is the array of parts of the `model` turn.
    Gemini,
}

/// A provider's own assistant content (shared: the tool loop re-sends it each round).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Replay {
    pub format: ReplayFormat,
    pub content: Arc<Value>,
}

impl ChatMessage {
    pub fn user(content: impl Into<Arc<str>>) -> ChatMessage {
        ChatMessage {
            role: Role::User,
            content: content.into(),
            tool_calls: vec![],
            tool_call_id: None,
            tool_name: None,
            replay: None,
        }
    }
    pub fn assistant(content: impl Into<Arc<str>>) -> ChatMessage {
        ChatMessage {
            role: Role::Assistant,
            content: content.into(),
            tool_calls: vec![],
            tool_call_id: None,
            tool_name: None,
            replay: None,
        }
    }
    pub fn tool_result(call: &ToolCall, content: impl Into<Arc<str>>) -> ChatMessage {
        ChatMessage {
            role: Role::Tool,
            content: content.into(),
            tool_calls: vec![],
            tool_call_id: Some(call.id.clone()),
            tool_name: Some(call.name.clone()),
            replay: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    /// The arguments object the model produced.
    pub arguments: Value,
}

/// A tool offered to the model: a name, what it does, and a JSON Schema of its arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolSpec {
    pub name: String,
    pub description: String,
    pub parameters: Value,
}

/// How hard a reasoning model should think (the agent's `reasoningEffort`).
/// Each provider maps it to its own control: OpenAI `reasoning_effort`,
/// Anthropic adaptive thinking's `output_config.effort`, Gemini's
/// `thinkingLevel` / `thinkingBudget`. `None` in [`LlmRequest`] = the model's default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effort {
    /// Think as little as the model allows (no thinking where it can be turned off).
    None,
    Minimal,
    Low,
    Medium,
    High,
    XHigh,
    Max,
}

impl Effort {
    /// The stored/API spelling (`none`, `minimal`, `low`, `medium`, `high`, `xhigh`, `max`).
    pub fn parse(text: &str) -> Option<Effort> {
        Some(match text {
            "none" => Effort::None,
            "minimal" => Effort::Minimal,
            "low" => Effort::Low,
            "medium" => Effort::Medium,
            "high" => Effort::High,
            "xhigh" => Effort::XHigh,
            "max" => Effort::Max,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Effort::None => "none",
            Effort::Minimal => "minimal",
            Effort::Low => "low",
            Effort::Medium => "medium",
            Effort::High => "high",
            Effort::XHigh => "xhigh",
            Effort::Max => "max",
        }
    }
}

/// One call to a model.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LlmRequest {
    /// The model name without the provider prefix (`claude-haiku-4-5-20251001`).
    pub model: String,
    pub system: String,
    pub messages: Vec<ChatMessage>,
    pub tools: Vec<ToolSpec>,
    pub max_tokens: i64,
    /// The agent's temperature; providers leave it out for models that refuse
    /// a non-default one (GPT-5 and o-series, Claude 5.x / Opus 4.7+, Gemini 3).
    pub temperature: f64,
    /// The agent's reasoning effort; `None` = the model's default.
    pub effort: Option<Effort>,
    /// Ask the provider for readable thinking (Gemini `includeThoughts`); the
    /// runner shows it only when the agent says so.
    pub show_thinking: bool,
}

/// What the model answered.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LlmResponse {
    /// The answer's text: never any thinking.
    pub text: String,
    /// The model's readable thinking (summaries), kept apart from `text`.
    pub thinking: String,
    pub tool_calls: Vec<ToolCall>,
    /// All prompt tokens, cached ones included (OpenAI `prompt_tokens`, Gemini
    /// `promptTokenCount`, Anthropic `input_tokens` + both cache counts).
    pub input_tokens: i64,
    /// All generated tokens, thinking included.
    pub output_tokens: i64,
    /// Of `input_tokens`: read from the provider's prompt cache.
    pub cache_read_tokens: i64,
    /// Of `input_tokens`: written to the prompt cache (Anthropic only).
    pub cache_write_tokens: i64,
    pub stop_reason: Option<String>,
    /// The provider's own content of this turn, for the next round of the tool loop.
    pub replay: Option<Replay>,
}
