//! The process's monotonic clock in milliseconds, for deadlines stored in atomics (cooldowns). Wall-clock time
//! jumps (NTP, suspend) must not end or extend a cooldown, so nothing that measures an interval reads
//! `SystemTime`.
//!
//! Routing decisions never call this: callers read the clock once and pass `now` in.
//!
//! [`unix_secs`] is the wall clock, for calendar facts only (a key's expiry, a budget period's reset).

use std::{sync::OnceLock, time::Instant};

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Milliseconds since the first call in this process, starting at 1 so that 0 can mean "never".
pub fn monotonic_ms() -> u64 {
    epoch().elapsed().as_millis() as u64 + 1
}

/// Seconds since the Unix epoch (wall clock): for expiries and budget periods, never for measuring intervals.
pub fn unix_secs() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// Milliseconds since the Unix epoch (wall clock): timestamps of the request log, never intervals.
pub fn unix_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// Howard Hinnant's `days_from_civil`: days since 1970-01-01 of a proleptic Gregorian date.
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The inverse of [`days_from_civil`].
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// `2026-11-30T07:05:10Z`.
pub fn iso8601(unix_secs: i64) -> String {
    let (days, secs) = (unix_secs.div_euclid(86_400), unix_secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", secs / 3600, secs % 3600 / 60, secs % 60)
}

/// `2026-11-30T07:05:10.123Z`, for log lines.
pub fn iso8601_ms(unix_ms: i64) -> String {
    let secs = iso8601(unix_ms.div_euclid(1000));
    format!("{}.{:03}Z", secs.trim_end_matches('Z'), unix_ms.rem_euclid(1000))
}
