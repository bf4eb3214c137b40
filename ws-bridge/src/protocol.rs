//! The web chat protocol: the JSON frames a client sends and the frames the
//! bridge answers with (README, "WebSocket chat"). Every frame is a JSON
//! object with a `type`; field names are camelCase like the REST API.

use arvis_shared::bus::events::{ReplyEvent, ReplyKind};
use arvis_shared::clock::to_rfc3339;
use arvis_shared::db::routing::ChannelMessage;
use axum::extract::ws::Utf8Bytes;
use serde::Deserialize;
use serde_json::{Value, json};

/// `{"type":"auth", …}`: credentials and identity, all optional.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthFrame {
    pub api_key: Option<String>,
    pub user_id: Option<String>,
    pub user_name: Option<String>,
    pub channel_id: Option<String>,
}

/// `{"type":"message", "content": …}`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageFrame {
    pub content: String,
    pub agent_id: Option<i64>,
    pub channel_id: Option<String>,
}

/// `{"type":"resume", "channelId": …, "after": <messageId>}`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResumeFrame {
    pub channel_id: Option<String>,
    #[serde(default)]
    pub after: i64,
}

/// A parsed client frame.
#[derive(Debug)]
pub enum ClientFrame {
    Auth(AuthFrame),
    Message(MessageFrame),
    Resume(ResumeFrame),
    Ping,
}

/// Why a frame could not be read; the text goes back in an error frame.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("malformed frame: expected a JSON object with a \"type\"")]
    NotJson,
    #[error("malformed frame: missing \"type\"")]
    NoType,
    #[error("unknown frame type {0:?} (expected auth, message, resume or ping)")]
    UnknownType(String),
    #[error("malformed {kind} frame: {problem}")]
    Fields { kind: &'static str, problem: String },
}

impl ClientFrame {
    pub fn parse(text: &str) -> Result<ClientFrame, FrameError> {
        let value: Value = serde_json::from_str(text).map_err(|_| FrameError::NotJson)?;
        if !value.is_object() {
            return Err(FrameError::NotJson);
        }
        let kind = value.get("type").and_then(Value::as_str).ok_or(FrameError::NoType)?;
        fn fields<T: serde::de::DeserializeOwned>(kind: &'static str, value: Value) -> Result<T, FrameError> {
            serde_json::from_value(value).map_err(|e| FrameError::Fields { kind, problem: e.to_string() })
        }
        match kind {
            "auth" => fields("auth", value).map(ClientFrame::Auth),
            "message" => fields("message", value).map(ClientFrame::Message),
            "resume" => fields("resume", value).map(ClientFrame::Resume),
            "ping" => Ok(ClientFrame::Ping),
            other => Err(FrameError::UnknownType(other.chars().take(40).collect())),
        }
    }

    pub fn is_auth(&self) -> bool {
        matches!(self, ClientFrame::Auth(_))
    }
}

fn text(value: Value) -> Utf8Bytes {
    Utf8Bytes::from(value.to_string())
}

pub fn error(message: &str) -> Utf8Bytes {
    text(json!({"type": "error", "error": message}))
}

pub fn pong() -> Utf8Bytes {
    Utf8Bytes::from_static(r#"{"type":"pong"}"#)
}

pub fn auth_ok(client_id: &str, user_id: &str, channel_id: &str) -> Utf8Bytes {
    text(json!({"type": "auth_ok", "clientId": client_id, "userId": user_id, "channelId": channel_id}))
}

pub struct Ack<'a> {
    pub message_id: i64,
    pub job_id: i64,
    pub conversation_id: &'a str,
    pub channel_id: &'a str,
    pub agent_id: i64,
}

pub fn ack(a: &Ack<'_>) -> Utf8Bytes {
    text(json!({
        "type": "ack",
        "messageId": a.message_id,
        "jobId": a.job_id,
        "conversationId": a.conversation_id,
        "channelId": a.channel_id,
        "agentId": a.agent_id,
    }))
}

/// A reply event as the frame every socket on its channel gets.
pub fn reply(e: &ReplyEvent) -> Utf8Bytes {
    let timestamp = to_rfc3339(e.timestamp);
    text(match e.kind {
        ReplyKind::Typing => json!({
            "type": "typing", "channelId": e.channel_id, "agentId": e.agent_id, "jobId": e.job_id,
            "conversationId": e.conversation_id, "timestamp": timestamp,
        }),
        ReplyKind::Delta => json!({
            "type": "delta", "content": e.content, "channelId": e.channel_id, "agentId": e.agent_id,
            "jobId": e.job_id, "conversationId": e.conversation_id, "timestamp": timestamp,
        }),
        ReplyKind::Message => json!({
            "type": "message", "content": e.content, "role": "assistant", "messageId": e.message_id,
            "channelId": e.channel_id, "agentId": e.agent_id, "jobId": e.job_id,
            "conversationId": e.conversation_id, "timestamp": timestamp,
        }),
        ReplyKind::Error => json!({
            "type": "error", "error": e.content, "channelId": e.channel_id, "agentId": e.agent_id,
            "jobId": e.job_id, "conversationId": e.conversation_id, "timestamp": timestamp,
        }),
    })
}

/// A stored message replayed by `resume`.
pub fn stored(m: &ChannelMessage, channel_id: &str) -> Utf8Bytes {
    text(json!({
        "type": "message", "content": m.content, "role": m.role, "messageId": m.id, "channelId": channel_id,
        "agentId": m.agent_id, "jobId": m.job_id, "conversationId": m.conversation_id,
        "timestamp": to_rfc3339(m.created_at),
    }))
}

/// The end of a replay: `more` when the limit cut it short (resume again from `lastMessageId`).
pub fn resumed(channel_id: &str, count: usize, last_message_id: Option<i64>, more: bool) -> Utf8Bytes {
    text(json!({
        "type": "resumed", "channelId": channel_id, "count": count, "lastMessageId": last_message_id, "more": more,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_parse_or_say_what_is_wrong() {
        assert!(matches!(ClientFrame::parse(r#"{"type":"ping"}"#), Ok(ClientFrame::Ping)));
        let Ok(ClientFrame::Message(m)) =
            ClientFrame::parse(r#"{"type":"message","content":"hi","agentId":2,"channelId":"c"}"#)
        else {
            panic!("message frame");
        };
        assert_eq!((m.content.as_str(), m.agent_id, m.channel_id.as_deref()), ("hi", Some(2), Some("c")));
        assert!(matches!(ClientFrame::parse("nope"), Err(FrameError::NotJson)));
        assert!(matches!(ClientFrame::parse("[1]"), Err(FrameError::NotJson)));
        assert!(matches!(ClientFrame::parse("{}"), Err(FrameError::NoType)));
        assert!(matches!(ClientFrame::parse(r#"{"type":"dance"}"#), Err(FrameError::UnknownType(_))));
        assert!(matches!(ClientFrame::parse(r#"{"type":"message"}"#), Err(FrameError::Fields { .. })));
    }
}
