//! Platform settings (`GET/PATCH /api/settings`), stored as key/value rows.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Settings {
    pub conductor_agent_id: Option<i64>,
    pub default_model: String,
}

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SettingsPatch {
    /// The id of an existing agent.
    pub conductor_agent_id: Option<i64>,
    #[schema(
        pattern = "^((anthropic|openai|openrouter|google|ollama|custom)/)?[^/\\t-\\r \\u0085\\u00A0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000][^\\t-\\r \\u0085\\u00A0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000]*$",
        max_length = 200
    )]
    pub default_model: Option<String>,
}

pub const KEY_CONDUCTOR: &str = "conductor_agent_id";
pub const KEY_DEFAULT_MODEL: &str = "default_model";
