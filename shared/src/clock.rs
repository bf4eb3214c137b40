//! Time as the database stores it: integer milliseconds since the Unix epoch,
//! UTC, identical on SQLite and Postgres; and as the API shows it: RFC 3339.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// `2025-03-01T12:00:00.123Z`-style text for a stored timestamp.
pub fn to_rfc3339(ms: i64) -> String {
    let nanos = i128::from(ms) * 1_000_000;
    OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| ms.to_string())
}

/// Optional variant of [`to_rfc3339`].
pub fn opt_rfc3339(ms: Option<i64>) -> Option<String> {
    ms.map(to_rfc3339)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_milliseconds_as_utc_rfc3339() {
        assert_eq!(to_rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(to_rfc3339(1_740_830_400_123), "2025-03-01T12:00:00.123Z");
    }
}
