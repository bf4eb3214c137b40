//! Token usage and cost, recorded per LLM call and aggregated for the API.
//!
//! `input_tokens` counts every prompt token, cached ones included;
//! `cache_read_tokens` / `cache_write_tokens` say how many of them were read
//! from / written to the provider's prompt cache. A call to a model without a
//! known price has no cost (`None`, NULL in the row): it is counted in the
//! `unpricedRequests` fields and left out of the cost sums, never taken as $0.

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
    /// Of `input_tokens`: read from the prompt cache.
    pub cache_read_tokens: i64,
    /// Of `input_tokens`: written to the prompt cache.
    pub cache_write_tokens: i64,
    /// `None`: the model is unpriced.
    pub cost_usd: Option<f64>,
    pub duration_ms: i64,
    /// Milliseconds since the epoch.
    pub created_at: i64,
    /// The `/v1` API key the run was made with (its budget counts this call).
    pub api_key_id: Option<i64>,
}

/// The values of `?period=`, for the OpenAPI document.
#[derive(Debug, Clone, Copy, ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum UsagePeriod {
    Day,
    Week,
    Month,
}

/// `?period=`: day, week (default) or month; returns the window in milliseconds.
pub fn period_ms(period: Option<&str>) -> Result<i64, Invalid> {
    const DAY: i64 = 24 * 3600 * 1000;
    match period {
        None | Some("week") => Ok(7 * DAY),
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
    /// Extension: input tokens read from the provider's prompt cache.
    pub cache_read_tokens: i64,
    /// Extension: input tokens written to the prompt cache.
    pub cache_write_tokens: i64,
    /// Extension: calls to models without a known price (not in `costUsd`).
    pub unpriced_requests: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ProviderUsage {
    pub provider: String,
    pub requests: i64,
    pub cost_usd: f64,
    /// Extension: prompt tokens of these calls (as `byAgent` has them).
    pub input_tokens: i64,
    /// Extension: completion tokens of these calls.
    pub output_tokens: i64,
    /// Extension: the calls' average duration (as `byAgent` has it).
    pub avg_duration_ms: i64,
    /// Extension: input tokens read from the prompt cache.
    pub cache_read_tokens: i64,
    /// Extension: calls to models without a known price.
    pub unpriced_requests: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ModelUsage {
    pub model: String,
    pub requests: i64,
    pub cost_usd: f64,
    /// Extension: prompt tokens of these calls (as `byAgent` has them).
    pub input_tokens: i64,
    /// Extension: completion tokens of these calls.
    pub output_tokens: i64,
    /// Extension: the calls' average duration (as `byAgent` has it).
    pub avg_duration_ms: i64,
    /// Extension: input tokens read from the prompt cache.
    pub cache_read_tokens: i64,
    /// Extension: calls to this model without a known price.
    pub unpriced_requests: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct UsageReport {
    pub total_requests: i64,
    pub total_input_tokens: i64,
    pub total_output_tokens: i64,
    /// The cost of the priced calls.
    pub total_cost_usd: f64,
    /// Extension: input tokens read from the providers' prompt caches.
    pub total_cache_read_tokens: i64,
    /// Extension: input tokens written to the prompt caches.
    pub total_cache_write_tokens: i64,
    /// Extension: calls to models without a known price, left out of `totalCostUsd`.
    pub unpriced_requests: i64,
    pub by_agent: Vec<AgentUsage>,
    pub by_provider: Vec<ProviderUsage>,
    pub by_model: Vec<ModelUsage>,
}
