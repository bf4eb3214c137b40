//! Log entries kept in the database for `GET /api/logs`.

use serde::Serialize;
use utoipa::ToSchema;

use super::Invalid;

/// Level names and their numbers (higher is more severe).
pub const LEVELS: &[(&str, i64)] = &[("trace", 0), ("debug", 1), ("info", 2), ("warn", 3), ("error", 4)];

pub fn level_num(level: &str) -> Option<i64> {
    LEVELS.iter().find(|(n, _)| *n == level).map(|(_, v)| *v)
}

/// The values of `?level=`, for the OpenAPI document.
#[derive(Debug, Clone, Copy, ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
}

/// `?level=` (minimum level): debug, info, warn or error; default: everything.
pub fn parse_min_level(level: Option<&str>) -> Result<i64, Invalid> {
    match level {
        None => Ok(0),
        Some(l @ ("debug" | "info" | "warn" | "error")) => Ok(level_num(l).unwrap_or(0)),
        Some(_) => Err(Invalid::new("level must be one of: debug, info, warn, error")),
    }
}

/// `?limit=` for logs: default 100, at most 1000.
pub const DEFAULT_LIMIT: i64 = 100;
pub const MAX_LIMIT: i64 = 1000;

#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct LogEntry {
    pub level: String,
    pub msg: String,
    pub agent_id: Option<i64>,
    pub job_id: Option<i64>,
    pub duration_ms: Option<i64>,
    pub time: String,
    pub service: String,
    pub target: String,
}

/// A log line to store.
#[derive(Debug, Clone, PartialEq)]
pub struct NewLogRow {
    pub level: String,
    pub service: String,
    pub target: String,
    pub msg: String,
    /// Other fields, as a JSON object's text.
    pub fields: String,
    pub agent_id: Option<i64>,
    pub job_id: Option<i64>,
    pub duration_ms: Option<i64>,
    pub created_at: i64,
}
