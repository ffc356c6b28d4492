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
