//! Durations as LiteLLM writes them (`"30s"`, `"15m"`, `"1h"`, `"7d"`, `"30d"`, and the calendar month `"1mo"`)
//! and Unix-second instants rendered as ISO 8601 for the management API. Pure functions: the current time comes
//! in as an argument.

pub use crate::clock::iso8601;
use crate::clock::{civil_from_days, days_from_civil};

/// A key's lifetime or a budget's period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    Seconds(i64),
    /// Calendar months: `"1mo"` from 31 January ends on the last day of February.
    Months(u32),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{0}` is not a duration: write a whole number and a unit, s, m, h, d or mo (\"30s\", \"1h\", \"30d\", \"1mo\")"
)]
pub struct BadPeriod(pub String);

impl Period {
    pub fn parse(text: &str) -> Result<Period, BadPeriod> {
        let bad = || BadPeriod(text.to_owned());
        let t = text.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        let (number, unit) = t.split_at(split);
        let n: i64 = number.parse().map_err(|_| bad())?;
        if n <= 0 {
            return Err(bad());
        }
        let seconds = |per: i64| n.checked_mul(per).map(Period::Seconds).ok_or_else(bad);
        match unit {
            "s" => seconds(1),
            "m" => seconds(60),
            "h" => seconds(3600),
            "d" => seconds(86_400),
            "mo" => u32::try_from(n).map(Period::Months).map_err(|_| bad()),
            _ => Err(bad()),
        }
    }

    /// The instant this period after `from` (Unix seconds, UTC).
    pub fn after(self, from: i64) -> i64 {
        match self {
            Period::Seconds(s) => from.saturating_add(s),
            Period::Months(m) => add_months(from, i64::from(m)),
        }
    }

    /// The budget period `now` falls in, `(start, end)`, for a budget whose first reset is `anchor` (the stored
    /// `budget_reset_at`). Resets follow each other by `after` counted from the anchor (the `k`-th reset is the
    /// anchor plus `k` periods, so "1mo" from 31 January keeps its day where months have it instead of drifting to
    /// the 28th), and a period's start is the previous reset: every replica and every restart computes the same
    /// periods from the same anchor, with no write when a period passes.
    pub fn window(self, anchor: i64, now: i64) -> (i64, i64) {
        match self {
            Period::Seconds(s) => {
                let s = s.max(1);
                if now < anchor {
                    let back = (anchor - now - 1) / s;
                    let end = anchor - back * s;
                    return (end - s, end);
                }
                let k = (now - anchor) / s;
                let start = anchor + k * s;
                (start, start + s)
            }
            Period::Months(m) => {
                let m = i64::from(m.max(1));
                let nth = |k: i64| add_months(anchor, k * m);
                // Months between the anchor and now, give or take one: then step to the exact period.
                let mut k = (now - anchor).div_euclid(2_629_746 * m);
                while nth(k) > now {
                    k -= 1;
                }
                while nth(k + 1) <= now {
                    k += 1;
                }
                (nth(k), nth(k + 1))
            }
        }
    }
}

/// `from` plus `months` calendar months (negative: earlier), the day clamped to the target month's length, time
/// of day kept.
fn add_months(from: i64, months: i64) -> i64 {
    let (days, secs) = (from.div_euclid(86_400), from.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    let total = i64::from(m) - 1 + months;
    let (y, m) = (y + total.div_euclid(12), (total.rem_euclid(12) + 1) as u32);
    let d = d.min(days_in_month(y, m));
    days_from_civil(y, m, d) * 86_400 + secs
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_litellm_durations() {
        let cases: &[(&str, Result<Period, ()>)] = &[
            ("30s", Ok(Period::Seconds(30))),
            ("15m", Ok(Period::Seconds(900))),
            ("1h", Ok(Period::Seconds(3600))),
            ("7d", Ok(Period::Seconds(604_800))),
            (" 30d ", Ok(Period::Seconds(2_592_000))),
            ("1mo", Ok(Period::Months(1))),
            ("0d", Err(())),
            ("d", Err(())),
            ("10", Err(())),
            ("1w", Err(())),
            ("-1d", Err(())),
            ("99999999999999999999d", Err(())),
            ("1.5h", Err(())),
        ];
        for (text, want) in cases {
            assert_eq!(Period::parse(text).map_err(|_| ()), *want, "{text}");
        }
    }

    #[test]
    fn calendar_months_clamp_the_day_and_keep_the_time() {
        let at = |y, m, d, secs| days_from_civil(y, m, d) * 86_400 + secs;
        let cases = [
            (at(2026, 1, 31, 3600), 1, at(2026, 2, 28, 3600)),
            (at(2028, 1, 31, 0), 1, at(2028, 2, 29, 0)),
            (at(2026, 11, 30, 59), 2, at(2027, 1, 30, 59)),
            (at(2026, 12, 1, 0), 12, at(2027, 12, 1, 0)),
        ];
        for (from, months, want) in cases {
            assert_eq!(Period::Months(months).after(from), want, "{}", iso8601(from));
        }
        assert_eq!(Period::Seconds(60).after(100), 160);
    }

    #[test]
    fn budget_periods_follow_the_anchor() {
        let at = |y, m, d, secs| days_from_civil(y, m, d) * 86_400 + secs;
        let jan31 = at(2026, 1, 31, 0);
        let cases = [
            // (period, anchor, now, (start, end))
            (Period::Seconds(10), 100, 100, (100, 110)),
            (Period::Seconds(10), 100, 109, (100, 110)),
            (Period::Seconds(10), 100, 135, (130, 140)),
            (Period::Seconds(10), 100, 95, (90, 100)),
            (Period::Seconds(10), 100, 90, (90, 100)),
            (Period::Seconds(10), 100, 89, (80, 90)),
            (Period::Months(1), jan31, jan31 - 1, (at(2025, 12, 31, 0), jan31)),
            (Period::Months(1), jan31, jan31, (jan31, at(2026, 2, 28, 0))),
            (Period::Months(1), jan31, at(2026, 3, 1, 0), (at(2026, 2, 28, 0), at(2026, 3, 31, 0))),
            (Period::Months(1), jan31, at(2026, 4, 15, 0), (at(2026, 3, 31, 0), at(2026, 4, 30, 0))),
            (Period::Months(2), at(2026, 1, 1, 0), at(2027, 1, 1, 0), (at(2027, 1, 1, 0), at(2027, 3, 1, 0))),
        ];
        for (period, anchor, now, want) in cases {
            assert_eq!(period.window(anchor, now), want, "{period:?} from {} at {}", iso8601(anchor), iso8601(now));
        }
    }

    #[test]
    fn renders_iso_8601() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso8601(1_796_022_310), "2026-11-30T07:05:10Z");
        assert_eq!(iso8601(951_782_400), "2000-02-29T00:00:00Z");
        for days in [-800_000, -1, 0, 59, 60, 11_016, 20_000, 700_000] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }
}
