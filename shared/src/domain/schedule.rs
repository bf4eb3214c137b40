//! Workflow schedules: a standard 5-field cron expression (POSIX semantics:
//! 0 and 7 are Sunday; day-of-month and day-of-week OR-ed when both are
//! restricted), or the original's interval form `every N s|sec|m|min|h|hour|hours`.
//! Times are UTC. The gateway validates with [`parse`]; the scheduler uses
//! [`Schedule::next_after`] to find the next due time.

use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};

use super::Invalid;

/// Shortest interval accepted by the `every …` form.
pub const MIN_INTERVAL_SECS: i64 = 10;
/// Longest interval accepted by the `every …` form (a year).
pub const MAX_INTERVAL_SECS: i64 = 366 * 24 * 3600;

#[derive(Debug, Clone)]
pub enum Schedule {
    /// A cron expression (minute resolution).
    Cron(Box<Cron>),
    /// A fixed interval, in milliseconds.
    Every(i64),
}

/// Parses a schedule; the error says what is wrong.
pub fn parse(s: &str) -> Result<Schedule, Invalid> {
    let text = s.trim();
    if text.is_empty() {
        return Err(Invalid::new("schedule must not be empty"));
    }
    if text.len() > 200 || text.contains('\0') {
        return Err(Invalid::new("schedule is not a valid cron expression"));
    }
    let lower = text.to_ascii_lowercase();
    if let Some(rest) = lower.strip_prefix("every") {
        return parse_every(rest.trim()).map(Schedule::Every);
    }
    let fields = text.split_whitespace().count();
    if !text.starts_with('@') && fields != 5 {
        return Err(Invalid::new(format!(
            "schedule must be a 5-field cron expression (minute hour day-of-month month day-of-week) \
             or \"every N s|min|h\"; got {fields} fields"
        )));
    }
    let parser = CronParser::builder().seconds(Seconds::Disallowed).year(Year::Disallowed).build();
    let cron = parser.parse(text).map_err(|e| Invalid::new(format!("schedule is not a valid cron expression: {e}")))?;
    let schedule = Schedule::Cron(Box::new(cron));
    // `0 0 30 2 *` parses but never fires.
    if schedule.next_after(crate::clock::now_ms()).is_none() {
        return Err(Invalid::new("schedule never matches a date (e.g. February 30th)"));
    }
    Ok(schedule)
}

fn parse_every(rest: &str) -> Result<i64, Invalid> {
    let bad = || Invalid::new("schedule: expected \"every N s|sec|m|min|h|hour|hours\", e.g. \"every 30s\"");
    let digits_end = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
    let (num, unit) = rest.split_at(digits_end);
    let n: i64 = num.parse().map_err(|_| bad())?;
    let unit_secs = match unit.trim() {
        "s" | "sec" | "secs" | "second" | "seconds" => 1,
        "m" | "min" | "mins" | "minute" | "minutes" => 60,
        "h" | "hr" | "hrs" | "hour" | "hours" => 3600,
        _ => return Err(bad()),
    };
    let secs = n.checked_mul(unit_secs).ok_or_else(bad)?;
    if secs < MIN_INTERVAL_SECS {
        return Err(Invalid::new(format!("schedule: the interval must be at least {MIN_INTERVAL_SECS} seconds")));
    }
    if secs > MAX_INTERVAL_SECS {
        return Err(Invalid::new("schedule: the interval must be at most 366 days"));
    }
    Ok(secs * 1000)
}

impl Schedule {
    /// The first due time strictly after `ms` (milliseconds since the epoch, UTC).
    pub fn next_after(&self, ms: i64) -> Option<i64> {
        match self {
            Schedule::Every(interval) => ms.checked_add(*interval),
            Schedule::Cron(cron) => {
                let t = chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms)?;
                cron.find_next_occurrence(&t, false).ok().map(|n| n.timestamp_millis())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Datelike as _, TimeZone as _, Timelike as _, Utc, Weekday};

    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> i64 {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).single().unwrap().timestamp_millis()
    }

    fn next(expr: &str, from: i64) -> chrono::DateTime<Utc> {
        let ms = parse(expr).unwrap().next_after(from).unwrap();
        Utc.timestamp_millis_opt(ms).single().unwrap()
    }

    // 2025-03-05 is a Wednesday.
    const WED: (i32, u32, u32) = (2025, 3, 5);

    #[test]
    fn monday_means_monday() {
        let n = next("0 9 * * 1", at(WED.0, WED.1, WED.2, 12, 0));
        assert_eq!(n.weekday(), Weekday::Mon);
        assert_eq!((n.day(), n.hour(), n.minute()), (10, 9, 0));
        assert_eq!(next("0 9 * * MON", at(WED.0, WED.1, WED.2, 12, 0)), n);
    }

    #[test]
    fn zero_and_seven_are_sunday() {
        for expr in ["0 9 * * 0", "0 9 * * 7", "0 9 * * SUN"] {
            let n = next(expr, at(WED.0, WED.1, WED.2, 12, 0));
            assert_eq!(n.weekday(), Weekday::Sun, "{expr}");
            assert_eq!((n.day(), n.hour()), (9, 9), "{expr}");
        }
    }

    #[test]
    fn daily_and_steps() {
        let n = next("0 9 * * *", at(2025, 3, 5, 8, 59));
        assert_eq!((n.day(), n.hour(), n.minute()), (5, 9, 0));
        // Strictly after: at 09:00 exactly, the next run is tomorrow.
        let n = next("0 9 * * *", at(2025, 3, 5, 9, 0));
        assert_eq!((n.day(), n.hour()), (6, 9));
        let n = next("*/15 * * * *", at(2025, 3, 5, 9, 1));
        assert_eq!((n.hour(), n.minute()), (9, 15));
        // Year boundary.
        let n = next("0 0 1 1 *", at(2025, 12, 31, 23, 59));
        assert_eq!((n.year(), n.month(), n.day()), (2026, 1, 1));
    }

    #[test]
    fn day_of_month_and_weekday_are_ored_like_posix() {
        // The 13th or any Friday: from Wed 2025-03-05, Friday the 7th comes first.
        let n = next("0 0 13 * 5", at(2025, 3, 5, 0, 0));
        assert_eq!(n.day(), 7);
    }

    #[test]
    fn intervals() {
        let base = at(2025, 3, 5, 0, 0);
        for (expr, secs) in [
            ("every 30s", 30),
            ("every 30 sec", 30),
            ("every 10s", 10),
            ("every 5m", 300),
            ("every 5 min", 300),
            ("every 2h", 7200),
            ("every 1 hour", 3600),
            ("every 3 hours", 10800),
            ("Every 45 Seconds", 45),
        ] {
            assert_eq!(parse(expr).unwrap().next_after(base), Some(base + secs * 1000), "{expr}");
        }
        for bad in ["every", "every 5", "every 5 days", "every 9s", "every -5m", "every 0h", "every xs"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn malformed_expressions_are_refused_with_a_reason() {
        for bad in ["", "garbage", "0 0 9 * * 1", "* * * *", "61 * * * *", "0 25 * * *", "0 9 * * 8", "0 9 32 * *"] {
            let err = parse(bad).unwrap_err();
            assert!(!err.0.is_empty(), "{bad}");
        }
        assert!(parse("0 0 9 * * 1").unwrap_err().0.contains("5-field"));
        let started = std::time::Instant::now();
        assert!(parse("0 0 30 2 *").unwrap_err().0.contains("never"));
        assert!(started.elapsed() < std::time::Duration::from_secs(2), "{:?}", started.elapsed());
        assert!(parse("@daily").is_ok());
        assert!(parse("0 0 29 2 *").is_ok(), "leap days exist");
    }
}
