//! Workflow schedules: standard 5-field cron as users write it (POSIX: minute
//! hour day-of-month month day-of-week, 0 and 7 = Sunday, names, ranges,
//! steps, `@daily`-style aliases), or the original's `every N s|m|h` forms.
//!
//! Parsing uses `croner` (which reads weekdays the POSIX way, unlike the `cron`
//! crate — PITFALLS.md); due times are computed in a time zone (UTC unless the
//! scheduler is configured otherwise) and returned as epoch milliseconds.

use croner::Cron;
use croner::parser::{CronParser, Seconds};
use jiff::tz::TimeZone;

use super::Invalid;

/// The shortest `every` interval accepted.
pub const MIN_INTERVAL_SECS: i64 = 10;

#[derive(Debug, Clone)]
pub enum Schedule {
    Cron(Box<Cron>),
    /// A fixed interval in milliseconds.
    Every(i64),
}

/// Parses a schedule; the error says what is wrong.
pub fn parse(text: &str) -> Result<Schedule, Invalid> {
    let t = text.trim();
    if t.is_empty() {
        return Err(Invalid::new("schedule must not be empty"));
    }
    if let Some(rest) = t.strip_prefix("every ") {
        return parse_every(rest.trim()).map(Schedule::Every);
    }
    if t.len() > 200 || t.contains('\0') {
        return Err(Invalid::new("schedule is not a valid cron expression"));
    }
    let fields = t.split_whitespace().count();
    if !t.starts_with('@') && fields != 5 {
        return Err(Invalid::new(format!(
            "schedule must be a standard 5-field cron expression (minute hour day month weekday) or 'every N m'; got {fields} fields"
        )));
    }
    let parser = CronParser::builder().seconds(Seconds::Disallowed).build();
    let cron =
        parser.parse(t).map_err(|e| Invalid::new(format!("schedule {t:?} is not a valid cron expression: {e}")))?;
    // A pattern that never fires (e.g. 30 February) is refused up front.
    let probe = jiff::Timestamp::UNIX_EPOCH.to_zoned(TimeZone::UTC);
    if cron.find_next_occurrence(&probe, false).is_err() {
        return Err(Invalid::new(format!("schedule {t:?} never fires")));
    }
    Ok(Schedule::Cron(Box::new(cron)))
}

fn parse_every(rest: &str) -> Result<i64, Invalid> {
    let split = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
    let (num, unit) = rest.split_at(split);
    let n: i64 = num.parse().map_err(|_| Invalid::new(format!("schedule: invalid interval 'every {rest}'")))?;
    let unit_secs = match unit.trim() {
        "s" | "sec" | "secs" | "second" | "seconds" => 1,
        "m" | "min" | "mins" | "minute" | "minutes" => 60,
        "h" | "hour" | "hours" => 3600,
        other => return Err(Invalid::new(format!("invalid interval unit {other:?}: use s, m or h"))),
    };
    let secs = n.checked_mul(unit_secs).ok_or_else(|| Invalid::new("interval is too large"))?;
    if secs < MIN_INTERVAL_SECS {
        return Err(Invalid::new(format!("interval must be at least {MIN_INTERVAL_SECS} seconds")));
    }
    if secs > 366 * 24 * 3600 {
        return Err(Invalid::new("interval must be at most a year"));
    }
    Ok(secs * 1000)
}

impl Schedule {
    /// The first due time strictly after `after_ms`, in UTC.
    pub fn next_after(&self, after_ms: i64) -> Option<i64> {
        self.next_after_in(after_ms, &TimeZone::UTC)
    }

    /// The first due time strictly after `after_ms`, reading the cron fields in `tz`.
    pub fn next_after_in(&self, after_ms: i64, tz: &TimeZone) -> Option<i64> {
        match self {
            Schedule::Every(ms) => after_ms.checked_add(*ms),
            Schedule::Cron(cron) => {
                let start = jiff::Timestamp::from_millisecond(after_ms).ok()?.to_zoned(tz.clone());
                let next = cron.find_next_occurrence(&start, false).ok()?;
                Some(next.timestamp().as_millisecond())
            }
        }
    }
}

/// Checks a schedule without keeping it.
pub fn validate(text: &str) -> Result<(), Invalid> {
    parse(text).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(s: &str) -> i64 {
        s.parse::<jiff::Timestamp>().unwrap().as_millisecond()
    }

    #[test]
    fn weekdays_are_posix_monday_is_one_sunday_is_zero_and_seven() {
        // 2026-11-28 is a Saturday.
        let sat = ms("2026-11-28T12:00:00Z");
        assert_eq!(parse("0 9 * * 1").unwrap().next_after(sat), Some(ms("2026-11-30T09:00:00Z")), "Monday");
        assert_eq!(parse("0 9 * * 0").unwrap().next_after(sat), Some(ms("2026-11-29T09:00:00Z")), "Sunday");
        assert_eq!(parse("0 9 * * 7").unwrap().next_after(sat), Some(ms("2026-11-29T09:00:00Z")), "Sunday as 7");
        assert_eq!(parse("0 9 * * MON-FRI").unwrap().next_after(sat), Some(ms("2026-11-30T09:00:00Z")));
        assert_eq!(parse("*/15 * * * *").unwrap().next_after(sat), Some(ms("2026-11-28T12:15:00Z")));
        assert_eq!(parse("@daily").unwrap().next_after(sat), Some(ms("2026-11-29T00:00:00Z")));
    }

    #[test]
    fn next_is_strictly_after() {
        let due = ms("2026-11-28T09:00:00Z");
        assert_eq!(parse("0 9 * * *").unwrap().next_after(due), Some(ms("2026-11-29T09:00:00Z")));
    }

    #[test]
    fn time_zones_shift_the_wall_clock() {
        let tz = TimeZone::get("Europe/Berlin").unwrap();
        let sat = ms("2026-11-28T00:00:00Z");
        // 09:00 in Berlin (UTC+1 in November) is 08:00 UTC.
        assert_eq!(parse("0 9 * * *").unwrap().next_after_in(sat, &tz), Some(ms("2026-11-28T08:00:00Z")));
    }

    #[test]
    fn every_forms() {
        assert_eq!(parse("every 30s").unwrap().next_after(1000), Some(31_000));
        assert_eq!(parse("every 5 min").unwrap().next_after(0), Some(300_000));
        assert_eq!(parse("every 2h").unwrap().next_after(0), Some(7_200_000));
        assert!(parse("every 5s").is_err());
        assert!(parse("every 3 days").is_err());
    }

    #[test]
    fn bad_expressions_say_why() {
        for bad in ["", "0 9 * *", "0 0 9 * * *", "61 * * * *", "* * 31 2 *", "hello world", "0 9 * * 8"] {
            let err = parse(bad).err().unwrap_or_else(|| panic!("{bad:?} must be refused")).0;
            assert!(!err.is_empty());
        }
    }
}
