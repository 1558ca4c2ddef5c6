//! Wall-clock helpers: Unix seconds for the database, UTC text for names and reports.
//!
//! Everything is UTC so that runs from machines in different time zones sort and merge
//! without conversion.

use time::OffsetDateTime;
use time::macros::format_description;

/// Seconds since the Unix epoch, now.
pub fn unix_now() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

/// Milliseconds since the Unix epoch, now.
pub(crate) fn unix_now_ms() -> i64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// A duration in whole milliseconds (saturating: no duration btda handles comes near).
pub fn millis(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// `YYYY-mm-dd_HH-MM-SS` (UTC) for file names.
pub(crate) fn file_stamp(unix: i64) -> String {
    let fmt = format_description!("[year]-[month]-[day]_[hour]-[minute]-[second]");
    OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(fmt).ok())
        .unwrap_or_else(|| unix.to_string())
}

/// `YYYY-mm-dd HH:MM:SS UTC` for people.
pub(crate) fn format_utc(unix: i64) -> String {
    let fmt = format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
    OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(fmt).ok())
        .unwrap_or_else(|| unix.to_string())
}

/// `H:MM:SS` (hours may exceed 24) for durations in seconds.
pub(crate) fn format_duration(secs: i64) -> String {
    let s = secs.max(0);
    format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

#[cfg(test)]
mod tests {
    #[test]
    fn formats() {
        assert_eq!(super::file_stamp(0), "1970-01-01_00-00-00");
        assert_eq!(super::format_utc(86_399), "1970-01-01 23:59:59 UTC");
        assert_eq!(super::format_duration(90_061), "25:01:01");
        assert_eq!(super::format_duration(-5), "0:00:00");
    }
}
