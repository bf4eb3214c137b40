//! Versioned bus payloads. Each carries `v`; a consumer ignores versions it
//! does not know. Field names are camelCase, like the REST API.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::subjects;

/// A payload with its own subject.
pub trait Event: Serialize + DeserializeOwned {
    fn subject(&self) -> String;
}

/// A job was enqueued (or became due); workers should claim.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct JobReady {
    pub v: u8,
    pub job_id: i64,
    pub priority: i64,
}

impl Event for JobReady {
    fn subject(&self) -> String {
        subjects::JOBS_READY.to_string()
    }
}

/// What kind of reply event.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ReplyKind {
    /// The agent is working on it.
    Typing,
    /// A streamed piece of the reply.
    Delta,
    /// The final, stored reply.
    Message,
    /// The run failed for good; `content` is the text for the user, `failure` says why.
    Error,
}

/// Why a run failed for good, as the worker knows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RunFailure {
    /// For the person waiting for the reply ("every AI account is rate-limited").
    pub reason: String,
    /// The technical cause (for logs and the dashboard), when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
}

/// An event addressed to an outside conversation (a web channel, a Discord channel…).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ReplyEvent {
    pub v: u8,
    pub kind: ReplyKind,
    pub platform: String,
    pub channel_id: String,
    pub conversation_id: Option<String>,
    pub job_id: i64,
    pub agent_id: i64,
    /// The stored message id (final messages only).
    pub message_id: Option<i64>,
    pub content: String,
    /// Milliseconds since the epoch.
    pub timestamp: i64,
    /// Error events only: the reason and the cause, typed (no parsing of `content`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<RunFailure>,
}

impl Event for ReplyEvent {
    fn subject(&self) -> String {
        subjects::reply(&self.platform, &self.channel_id)
    }
}

/// Something editable changed; `entity` is e.g. `workflow`, `bot`, `skill`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ConfigChanged {
    pub v: u8,
    pub entity: String,
    pub id: Option<i64>,
}

impl Event for ConfigChanged {
    fn subject(&self) -> String {
        subjects::CONFIG_CHANGED.to_string()
    }
}
