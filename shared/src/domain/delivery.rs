//! Deliveries: the outbox rows through which bot replies reach a chat
//! platform (issue #19, "no reply is lost"), as the API shows them.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::Invalid;

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryStatus {
    /// Not sent yet (maybe waiting for its next attempt).
    Pending,
    /// The platform accepted it.
    Sent,
    /// Refused for good (a 4xx other than 429) or out of attempts; `PATCH … retry` sends it again.
    Failed,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Sent => "sent",
            DeliveryStatus::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Result<DeliveryStatus, Invalid> {
        match s {
            "pending" => Ok(DeliveryStatus::Pending),
            "sent" => Ok(DeliveryStatus::Sent),
            "failed" => Ok(DeliveryStatus::Failed),
            other => Err(Invalid::new(format!("status must be pending, sent or failed, not {other:?}"))),
        }
    }
}

/// `GET /api/deliveries` entry.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    pub id: i64,
    pub bot_id: i64,
    pub platform: String,
    pub channel_id: String,
    /// The job whose reply this is (absent for notices such as "only text is read").
    pub job_id: Option<i64>,
    /// Position of this piece in a reply split at the platform's length limit.
    pub chunk_index: i64,
    pub content: String,
    /// `pending` | `sent` | `failed`.
    pub status: String,
    pub attempts: i64,
    /// The platform's error text of the last failed attempt.
    pub last_error: Option<String>,
    /// The platform's id of the sent message.
    pub platform_message_id: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub next_attempt_at: Option<String>,
    pub sent_at: Option<String>,
}

/// A delivery to write.
#[derive(Debug, Clone, PartialEq)]
pub struct NewDelivery {
    pub bot_id: i64,
    pub platform: String,
    pub channel_id: String,
    pub job_id: Option<i64>,
    pub chunk_index: i64,
    /// Unique per bot: `job:<id>:<chunk>` or `notice:<platform message id>`.
    pub dedupe_key: String,
    pub content: String,
    /// The platform message this answers (a Telegram message id, a Discord message id).
    pub reply_to: Option<String>,
    /// The thread it goes in (a Slack `thread_ts`).
    pub thread_id: Option<String>,
}

/// `PATCH /api/deliveries/{id}` body.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeliveryAction {
    /// `retry`: send a failed delivery again (its attempts start over).
    #[schema(value_type = super::jobs::RetryAction)]
    pub action: String,
}
