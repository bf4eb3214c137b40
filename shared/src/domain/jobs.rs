//! Jobs of the queue as the API shows them.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::Invalid;

pub const STATUSES: &[&str] = &["pending", "running", "completed", "failed", "cancelled"];

/// The values of `?status=` and of a job's `status`, for the OpenAPI document
/// (the code keeps them as the strings of [`STATUSES`]).
#[derive(Debug, Clone, Copy, ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum JobStatus {
    Pending,
    Running,
    Completed,
    Failed,
    Cancelled,
}

/// The one action `PATCH /api/queue/{id}` and `PATCH /api/deliveries/{id}` take.
#[derive(Debug, Clone, Copy, ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum RetryAction {
    Retry,
}

/// Parses `?status=`: one status, or the active ones (pending, running) by default.
pub fn parse_status_filter(status: Option<&str>) -> Result<Vec<&'static str>, Invalid> {
    match status {
        None => Ok(vec!["pending", "running"]),
        Some(s) => STATUSES
            .iter()
            .find(|k| **k == s)
            .map(|k| vec![*k])
            .ok_or_else(|| Invalid::new(format!("status must be one of: {}", STATUSES.join(", ")))),
    }
}

#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct JobView {
    pub id: i64,
    pub agent_id: i64,
    pub agent_name: String,
    pub priority: i64,
    pub status: String,
    /// The job's input (a JSON object).
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
    pub attempts: i64,
    pub max_attempts: i64,
    pub created_at: String,
    pub kind: String,
    pub conversation_id: Option<String>,
    pub error: Option<String>,
    pub result: Option<String>,
    pub run_after: String,
    pub started_at: Option<String>,
    pub completed_at: Option<String>,
}

/// `PATCH /api/queue/{id}` body.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JobAction {
    /// `retry` (failed jobs only).
    #[schema(value_type = RetryAction)]
    pub action: String,
}

/// A job row to insert (seeding, the minimal enqueue).
#[derive(Debug, Clone, PartialEq)]
pub struct NewJobRow {
    pub agent_id: i64,
    pub conversation_id: Option<String>,
    pub kind: String,
    pub priority: i64,
    pub status: String,
    /// JSON text.
    pub payload: String,
    pub error: Option<String>,
    pub attempts: i64,
    pub max_attempts: i64,
}
