//! Scheduled workflows: an agent, a prompt and a schedule (see [`super::schedule`]).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{Invalid, check_text, schedule};

#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Workflow {
    pub id: i64,
    pub name: String,
    pub agent_id: i64,
    pub agent_name: String,
    /// 5-field cron (UTC) or `every N s|min|h`.
    pub schedule: String,
    pub prompt: String,
    pub channel_id: Option<String>,
    pub platform: Option<String>,
    pub is_enabled: bool,
    pub last_run_at: Option<String>,
    pub next_run_at: Option<String>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewWorkflow {
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = "[^\\t-\\r \\u0085\\u00A0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000]"
    )]
    pub name: String,
    pub agent_id: i64,
    /// A 5-field cron line (or 6 with seconds), read in `SCHEDULER_TZ`.
    #[schema(min_length = 1)]
    pub schedule: String,
    #[schema(
        min_length = 1,
        max_length = 100000,
        pattern = "[^\\t-\\r \\u0085\\u00A0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000]"
    )]
    pub prompt: String,
    #[serde(default)]
    #[schema(max_length = 200)]
    pub channel_id: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>, pattern = "^[a-z0-9_-]{1,50}$")]
    pub platform: Option<String>,
    #[serde(default)]
    pub is_enabled: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkflowPatch {
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = "[^\\t-\\r \\u0085\\u00A0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000]"
    )]
    pub name: Option<String>,
    pub agent_id: Option<i64>,
    #[schema(min_length = 1)]
    pub schedule: Option<String>,
    #[schema(
        min_length = 1,
        max_length = 100000,
        pattern = "[^\\t-\\r \\u0085\\u00A0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000]"
    )]
    pub prompt: Option<String>,
    /// `null` clears it.
    #[serde(default, deserialize_with = "super::nullable::field")]
    #[schema(value_type = Option<String>, max_length = 200)]
    pub channel_id: Option<Option<String>>,
    /// `null` clears it.
    #[serde(default, deserialize_with = "super::nullable::field")]
    #[schema(value_type = Option<String>, pattern = "^[a-z0-9_-]{1,50}$")]
    pub platform: Option<Option<String>>,
    pub is_enabled: Option<bool>,
}

/// A complete, validated workflow ready to be written.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkflowFields {
    pub name: String,
    pub agent_id: i64,
    pub schedule: String,
    pub prompt: String,
    pub channel_id: Option<String>,
    pub platform: Option<String>,
    pub is_enabled: bool,
    /// Next due time (ms) when enabled.
    pub next_run_at: Option<i64>,
}

impl NewWorkflow {
    /// Validates; the first due time is computed in `tz` (the scheduler's zone).
    pub fn into_fields(self, now_ms: i64, tz: &jiff::tz::TimeZone) -> Result<WorkflowFields, Invalid> {
        let mut f = WorkflowFields {
            name: self.name,
            agent_id: self.agent_id,
            schedule: self.schedule.trim().to_string(),
            prompt: self.prompt,
            channel_id: self.channel_id,
            platform: self.platform,
            is_enabled: self.is_enabled.unwrap_or(true),
            next_run_at: None,
        };
        f.next_run_at = f.validate(now_ms, tz)?;
        Ok(f)
    }
}

impl WorkflowPatch {
    /// Applies the patch; the next run is recomputed when the workflow is
    /// (re-)enabled or its schedule changes, and kept otherwise.
    pub fn apply(
        self,
        current: &Workflow,
        current_next_ms: Option<i64>,
        now_ms: i64,
        tz: &jiff::tz::TimeZone,
    ) -> Result<WorkflowFields, Invalid> {
        let reschedule = self.schedule.as_deref().is_some_and(|s| s.trim() != current.schedule)
            || (self.is_enabled == Some(true) && !current.is_enabled);
        let mut f = WorkflowFields {
            name: self.name.unwrap_or_else(|| current.name.clone()),
            agent_id: self.agent_id.unwrap_or(current.agent_id),
            schedule: self.schedule.map(|s| s.trim().to_string()).unwrap_or_else(|| current.schedule.clone()),
            prompt: self.prompt.unwrap_or_else(|| current.prompt.clone()),
            channel_id: super::nullable::apply(self.channel_id, &current.channel_id),
            platform: super::nullable::apply(self.platform, &current.platform),
            is_enabled: self.is_enabled.unwrap_or(current.is_enabled),
            next_run_at: None,
        };
        let next = f.validate(now_ms, tz)?;
        f.next_run_at = match (f.is_enabled, reschedule, current_next_ms) {
            (false, _, _) => None,
            (true, false, Some(kept)) => Some(kept),
            (true, _, _) => next,
        };
        Ok(f)
    }
}

impl WorkflowFields {
    /// Validates; returns the next due time after `now_ms` (cron fields read in
    /// `tz`, as the scheduler reads them) when enabled.
    pub fn validate(&self, now_ms: i64, tz: &jiff::tz::TimeZone) -> Result<Option<i64>, Invalid> {
        check_text("name", &self.name, 200)?;
        if self.name.trim().is_empty() {
            return Err(Invalid::new("name must not be empty"));
        }
        check_text("prompt", &self.prompt, super::limits::MAX_MESSAGE_CHARS)?;
        if self.prompt.trim().is_empty() {
            return Err(Invalid::new("prompt must not be empty"));
        }
        if let Some(c) = &self.channel_id {
            check_text("channelId", c, 200)?;
        }
        if let Some(p) = &self.platform {
            check_text("platform", p, 50)?;
            if p.is_empty()
                || !p.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
            {
                return Err(Invalid::new("platform must be a lowercase name like discord or web"));
            }
        }
        let parsed = schedule::parse(&self.schedule)?;
        Ok(if self.is_enabled { parsed.next_after_in(now_ms, tz) } else { None })
    }
}
