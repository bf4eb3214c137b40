//! Token usage and cost, recorded per LLM call and aggregated for the API.

use serde::Serialize;
use utoipa::ToSchema;

use super::Invalid;

/// One LLM call, as the worker records it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UsageRecord {
    pub account_id: Option<i64>,
    pub agent_id: Option<i64>,
    pub conversation_id: Option<String>,
    pub job_id: Option<i64>,
    pub provider: String,
    pub model: String,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cost_usd: f64,
    pub duration_ms: i64,
    /// Milliseconds since the epoch.
    pub created_at: i64,
}

/// `?period=`: day, week (default) or month; returns the window in milliseconds.
pub fn period_ms(period: Option<&str>) -> Result<i64, Invalid> {
    const DAY: i64 = 24 * 3600 * 1000;
    match period {
        None | Some("") | Some("week") => Ok(7 * DAY),
        Some("day") => Ok(DAY),
        Some("month") => Ok(30 * DAY),
        Some(_) => Err(Invalid::new("period must be one of: day, week, month")),
    }
}

#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AgentUsage {
    /// Null for usage of agents deleted since.
    pub agent_id: Option<i64>,
    pub agent_name: Option<String>,
    pub requests: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cost_usd: f64,
    pub avg_duration_ms: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ProviderUsage {
    pub provider: String,
    pub requests: i64,
    pub cost_usd: f64,
}

#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ModelUsage {
    pub model: String,
    pub requests: i64,
    pub cost_usd: f64,
}

#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct UsageReport {
    pub total_requests: i64,
    pub total_input_tokens: i64,
    pub total_output_tokens: i64,
    pub total_cost_usd: f64,
    pub by_agent: Vec<AgentUsage>,
    pub by_provider: Vec<ProviderUsage>,
    pub by_model: Vec<ModelUsage>,
}
