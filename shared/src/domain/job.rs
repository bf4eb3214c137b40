//! Jobs: the unit of work of the durable queue (DESIGN.md, "The job queue").

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Priorities: a lower number runs first.
pub mod priority {
    pub const OWNER: i64 = 1;
    pub const CONDUCTOR: i64 = 3;
    pub const DELEGATION: i64 = 4;
    pub const USER: i64 = 5;
    pub const WEBHOOK: i64 = 5;
    pub const SCHEDULED: i64 = 10;
}

pub const DEFAULT_MAX_ATTEMPTS: i64 = 3;

/// How a job's `error` column is written and read, in one place: a summary
/// meant for the person waiting for the reply, optionally followed by
/// ` (detail: …)` with the technical cause (the dashboard shows both; a user
/// sees only the summary). The worker writes it, the chat intake reads it.
pub mod failure {
    const DETAIL: &str = " (detail: ";

    /// `summary (detail: cause)`.
    pub fn compose(summary: &str, cause: impl std::fmt::Display) -> String {
        format!("{summary}{DETAIL}{cause})")
    }

    /// The summary and the cause of a stored error text.
    pub fn split(text: &str) -> (&str, Option<&str>) {
        match text.split_once(DETAIL) {
            Some((summary, rest)) => (summary, Some(rest.strip_suffix(')').unwrap_or(rest))),
            None => (text, None),
        }
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn a_composed_error_splits_back_into_its_parts() {
            let text = super::compose("the model provider refused the request", "HTTP 401: bad key (x)");
            assert_eq!(super::split(&text), ("the model provider refused the request", Some("HTTP 401: bad key (x)")));
            assert_eq!(super::split("lease expired"), ("lease expired", None));
        }
    }
}

/// What started the job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobKind {
    Message,
    Workflow,
    Webhook,
    Delegation,
}

impl JobKind {
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Message => "message",
            JobKind::Workflow => "workflow",
            JobKind::Webhook => "webhook",
            JobKind::Delegation => "delegation",
        }
    }
}

/// A job to enqueue.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub agent_id: i64,
    pub conversation_id: Option<String>,
    pub kind: JobKind,
    pub priority: i64,
    /// The frozen input of the run (prompt, channel, platform, …); reused by every retry.
    pub payload: JobPayload,
    pub max_attempts: i64,
    /// Not before this time (ms); `None` = now.
    pub run_after: Option<i64>,
    pub workflow_id: Option<i64>,
    pub webhook_id: Option<i64>,
}

impl NewJob {
    pub fn new(agent_id: i64, kind: JobKind, priority: i64, payload: JobPayload) -> NewJob {
        NewJob {
            agent_id,
            conversation_id: None,
            kind,
            priority,
            payload,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            run_after: None,
            workflow_id: None,
            webhook_id: None,
        }
    }
}

/// The payload every job kind carries (serialized camelCase into `jobs.payload`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct JobPayload {
    /// The text the agent answers (the user message, the workflow prompt, the templated webhook body).
    pub prompt: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation_id: Option<String>,
    /// Where the reply goes (a web channel, a Discord channel…), when anywhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    /// The stored user message this job answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_name: Option<String>,
    /// Anything else (webhook payload, workflow id…).
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub extra: Value,
    /// A stateless `/v1/chat/completions` run: the client's transcript, used
    /// by the worker instead of the stored conversation. Absent for every
    /// other door, whose history is the conversation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api: Option<ApiChat>,
}

/// What an OpenAI-compatible client sent with a chat completion: its own
/// system messages (placed after the agent's prompt), its conversation, and
/// the sampling settings it asked for. Frozen in the job like the prompt, so a
/// retry on another worker sends the model the same thing.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ApiChat {
    /// The API key the run is billed to (`None`: the dashboard key or session).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<i64>,
    /// The client's system (and developer) messages, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub system: Vec<String>,
    /// The user and assistant turns, oldest first; the last is the user's.
    pub messages: Vec<ApiTurn>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
}

/// One turn of an [`ApiChat`] transcript.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ApiTurn {
    /// `user` or `assistant`.
    pub role: String,
    pub content: String,
}

/// A job row.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub id: i64,
    pub agent_id: i64,
    pub conversation_id: Option<String>,
    pub kind: String,
    pub priority: i64,
    pub status: String,
    pub payload: JobPayload,
    pub result: Option<String>,
    pub error: Option<String>,
    pub attempts: i64,
    pub max_attempts: i64,
    pub run_after: i64,
    pub locked_by: Option<String>,
    pub lease_expires_at: Option<i64>,
    pub workflow_id: Option<i64>,
    pub webhook_id: Option<i64>,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub completed_at: Option<i64>,
}

/// What became of a failure report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailOutcome {
    /// Back to pending, to run again at the given time.
    Retrying { run_after: i64 },
    /// Attempts used up (or a permanent error): the job is `failed`.
    Failed,
    /// The reporter no longer held the lease (it expired and someone else has
    /// the job, or it finished): nothing was changed.
    LostLease,
}
