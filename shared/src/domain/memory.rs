//! Memory facts ("sticky facts") as the API shows them.

use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MemoryEntry {
    pub id: i64,
    pub agent_id: i64,
    pub conversation_id: Option<String>,
    /// The fact's category.
    pub key: String,
    /// The fact.
    pub value: String,
    pub created_at: String,
}
