//! Conversations (sessions) and their messages, as the API shows them.

use serde::Serialize;
use utoipa::ToSchema;

/// `GET /api/sessions` entry.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SessionSummary {
    pub id: String,
    pub agent_id: i64,
    pub agent_name: String,
    pub platform: String,
    pub channel_id: String,
    pub message_count: i64,
    pub started_at: String,
    pub last_message_at: String,
    /// Content of the newest message, null when there is none.
    pub last_message: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ChatMessage {
    pub role: String,
    pub content: String,
    pub created_at: String,
}

/// `GET /api/conversations/{id}`.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ConversationThread {
    pub id: String,
    pub agent_name: String,
    pub messages: Vec<ChatMessage>,
}

/// Platform and channel of an agent's dashboard chat.
pub const DASHBOARD_PLATFORM: &str = "dashboard";

pub fn dashboard_channel(agent_id: i64) -> String {
    format!("dashboard-agent-{agent_id}")
}

/// Roles a stored message may have.
pub const ROLES: &[&str] = &["user", "assistant", "system", "tool"];
