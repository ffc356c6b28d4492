//! What the spend routes ask the store: filters of `/spend/logs` (with its page token) and of the usage reports,
//! and the parsing of their parameters (dates, `group_by`, the opaque `cursor`). Pure functions; the store runs
//! the queries (`store::reports`), `http::reports` shapes the answers.

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};

use crate::clock::days_from_civil;

const MS_PER_DAY: i64 = 86_400_000;

/// A request's outcome as `/spend/logs` filters it: `success` (status below 400) or `failure`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure,
}

impl Outcome {
    pub fn parse(text: &str) -> Option<Outcome> {
        match text {
            "success" => Some(Outcome::Success),
            "failure" => Some(Outcome::Failure),
            _ => None,
        }
    }
}

/// Where a `/spend/logs` page ends: the last row's `(started_at_ms, id)`; the next page starts strictly after it
/// (rows are newest first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageToken {
    pub started_at_ms: i64,
    pub id: i64,
}

const TOKEN_VERSION: &str = "v1";

impl PageToken {
    /// Opaque to callers: base64url of `v1:<started_at_ms>:<id>`.
    pub fn encode(self) -> String {
        URL_SAFE_NO_PAD.encode(format!("{TOKEN_VERSION}:{}:{}", self.started_at_ms, self.id))
    }

    pub fn decode(token: &str) -> Option<PageToken> {
        let bytes = URL_SAFE_NO_PAD.decode(token.trim().as_bytes()).ok()?;
        let text = std::str::from_utf8(&bytes).ok()?;
        let mut parts = text.split(':');
        if parts.next()? != TOKEN_VERSION {
            return None;
        }
        let started_at_ms = parts.next()?.parse().ok()?;
        let id = parts.next()?.parse().ok()?;
        parts.next().is_none().then_some(PageToken { started_at_ms, id })
    }
}

/// One `/spend/logs` query. `None`: no condition.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogFilter {
    pub key_hash: Option<String>,
    pub team_id: Option<String>,
    pub user_id: Option<String>,
    pub model: Option<String>,
    pub outcome: Option<Outcome>,
    /// Unix ms, inclusive.
    pub start_ms: Option<i64>,
    /// Unix ms, exclusive.
    pub end_ms: Option<i64>,
    pub request_id: Option<String>,
    /// Only rows of these teams (a team member's view); `None`: any row.
    pub team_ids: Option<Vec<String>>,
    /// Rows after this one (the previous page's last).
    pub after: Option<PageToken>,
    pub limit: u64,
}

/// How long after its id's millisecond a request's row may say it started: rows written before the start was
/// taken from the id (`http::openai::proxied`) read the clock a moment after the id was made.
pub const ID_TO_START_MS: i64 = 1_000;

/// The millisecond a tollgate request id (a UUIDv7 in simple form, `x-tollgate-request-id`) was made at: the
/// request's `started_at_ms`. `None` for anything else.
pub fn request_started_ms(id: &str) -> Option<i64> {
    let hex = id.as_bytes();
    let is_hex = |b: &u8| b.is_ascii_digit() || (b'a'..=b'f').contains(b);
    if hex.len() != 32 || hex[12] != b'7' || !hex.iter().all(is_hex) {
        return None;
    }
    i64::from_str_radix(&id[..12], 16).ok()
}

/// A rollup dimension a report groups by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dimension {
    Day,
    Key,
    Team,
    User,
    EndUser,
    Model,
    Provider,
}

impl Dimension {
    /// Its `usage_daily` column.
    pub fn column(self) -> &'static str {
        match self {
            Dimension::Day => "day",
            Dimension::Key => "key_hash",
            Dimension::Team => "team_id",
            Dimension::User => "user_id",
            Dimension::EndUser => "end_user",
            Dimension::Model => "model_group",
            Dimension::Provider => "provider",
        }
    }
}

/// `/global/spend/report`'s `group_by`: LiteLLM's `team`, `customer` and `api_key`, and ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupBy {
    Team,
    Key,
    Model,
    Provider,
    Day,
    User,
    EndUser,
}

impl GroupBy {
    pub const NAMES: &'static str = "team, key (api_key), model, provider, day, user, end_user (customer)";

    pub fn parse(text: &str) -> Option<GroupBy> {
        Some(match text {
            "team" => GroupBy::Team,
            "key" | "api_key" => GroupBy::Key,
            "model" => GroupBy::Model,
            "provider" => GroupBy::Provider,
            "day" => GroupBy::Day,
            "user" => GroupBy::User,
            "end_user" | "customer" => GroupBy::EndUser,
            _ => return None,
        })
    }

    /// The dimensions the store groups by: LiteLLM's team report is per day, team, and (key, model) within it, in
    /// the order of `usage_daily`'s key (SQLite then aggregates as it scans, without sorting).
    pub fn dimensions(self) -> &'static [Dimension] {
        match self {
            GroupBy::Team => &[Dimension::Day, Dimension::Team, Dimension::Key, Dimension::Model],
            GroupBy::Key => &[Dimension::Key],
            GroupBy::Model => &[Dimension::Model],
            GroupBy::Provider => &[Dimension::Provider],
            GroupBy::Day => &[Dimension::Day],
            GroupBy::User => &[Dimension::User],
            GroupBy::EndUser => &[Dimension::EndUser],
        }
    }
}

/// Which rollup rows a report sums.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UsageFilter {
    /// UTC days since 1970-01-01, both inclusive.
    pub first_day: i64,
    pub last_day: i64,
    /// Only rows of these teams (a team member's view); `None`: every row.
    pub team_ids: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a date: write YYYY-MM-DD or an ISO 8601 time (2026-11-30T07:05:10Z, 2026-11-30T09:05:10+02:00)")]
pub struct BadDate(pub String);

/// `start_date` / `end_date` as a Unix-ms bound. A date (`YYYY-MM-DD`) is the whole UTC day: as a start, its
/// first millisecond; as an end (`end = true`, exclusive), the next day's. A time is that instant (as an end, the
/// millisecond after it, so the instant itself is included).
pub fn parse_bound(text: &str, end: bool) -> Result<i64, BadDate> {
    let bad = || BadDate(text.to_owned());
    let t = text.trim();
    let number = |s: &str| -> Result<i64, BadDate> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        s.parse().map_err(|_| bad())
    };
    let (date, time) = match t.find(['T', 't', ' ']) {
        Some(i) => (&t[..i], Some(&t[i + 1..])),
        None => (t, None),
    };
    let mut parts = date.split('-');
    let (Some(y), Some(m), Some(d), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(bad());
    };
    if y.len() != 4 || m.len() != 2 || d.len() != 2 {
        return Err(bad());
    }
    let (y, m, d) = (number(y)?, number(m)?, number(d)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return Err(bad());
    }
    let (m, d) = (m as u32, d as u32);
    let day = days_from_civil(y, m, d);
    if crate::clock::civil_from_days(day) != (y, m, d) {
        return Err(bad());
    }
    let Some(time) = time else {
        return Ok((day + i64::from(end)) * MS_PER_DAY);
    };
    // The offset: `Z`, `+HH:MM`, `-HH:MM`, `+HHMM`, or none (UTC).
    let (clock, offset_ms) = if let Some(c) = time.strip_suffix(['Z', 'z']) {
        (c, 0)
    } else if let Some(i) = time.rfind(['+', '-']) {
        let (c, o) = time.split_at(i);
        let sign = if o.starts_with('-') { -1 } else { 1 };
        let digits: String = o[1..].chars().filter(|c| *c != ':').collect();
        if digits.len() != 4 {
            return Err(bad());
        }
        let (h, mi) = (number(&digits[..2])?, number(&digits[2..])?);
        if h > 23 || mi > 59 {
            return Err(bad());
        }
        (c, sign * (h * 3600 + mi * 60) * 1000)
    } else {
        (time, 0)
    };
    let (hms, fraction) = clock.split_once('.').map_or((clock, None), |(a, b)| (a, Some(b)));
    let mut fields = hms.split(':');
    let h = number(fields.next().ok_or_else(bad)?)?;
    let mi = number(fields.next().ok_or_else(bad)?)?;
    let s = fields.next().map(number).transpose()?.unwrap_or(0);
    if fields.next().is_some() || h > 23 || mi > 59 || s > 60 {
        return Err(bad());
    }
    let ms = match fraction {
        Some(f) => {
            let digits = number(f).map(|_| f)?;
            let first3: String = digits.chars().chain("000".chars()).take(3).collect();
            number(&first3)?
        }
        None => 0,
    };
    let at = day * MS_PER_DAY + ((h * 60 + mi) * 60 + s) * 1000 + ms - offset_ms;
    Ok(at + i64::from(end))
}

/// A report's days: from `start` to `end` (Unix-ms bounds, end exclusive), whole UTC days; an empty range gives
/// `first_day > last_day`.
pub fn days_between(start_ms: i64, end_ms: i64) -> (i64, i64) {
    (start_ms.div_euclid(MS_PER_DAY), (end_ms - 1).div_euclid(MS_PER_DAY))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_id_names_the_millisecond_its_request_started() {
        let made = uuid::Uuid::now_v7().simple().to_string();
        let ms = made.get(..12).and_then(|h| i64::from_str_radix(h, 16).ok());
        // (id, millisecond)
        let cases: Vec<(&str, Option<i64>)> = vec![
            ("019ad2f07c1e7000800000000000000a", Some(0x019ad2f07c1e)),
            (&made, ms),
            ("019ad2f07c1e4000800000000000000a", None),
            ("019AD2F07C1E7000800000000000000A", None),
            ("019ad2f0-7c1e-7000-8000-00000000", None),
            ("not-an-id", None),
            ("", None),
        ];
        for (id, want) in cases {
            assert_eq!(request_started_ms(id), want, "{id}");
        }
    }

    #[test]
    fn page_tokens_round_trip_and_refuse_anything_else() {
        for token in [
            PageToken { started_at_ms: 1_796_022_310_123, id: 42 },
            PageToken { started_at_ms: 0, id: 0 },
            PageToken { started_at_ms: -5, id: i64::MAX },
        ] {
            let text = token.encode();
            assert!(text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'), "{text}");
            assert_eq!(PageToken::decode(&text), Some(token));
        }
        let encode = |s: &str| URL_SAFE_NO_PAD.encode(s);
        let bad = [
            "".to_owned(),
            "not base64!".to_owned(),
            encode("v1:12"),
            encode("v1:12:x"),
            encode("v2:12:3"),
            encode("v1:12:3:4"),
            encode("12:3"),
            "djE6MTI6Mw==".to_owned(), // padded: not ours
        ];
        for text in bad {
            assert_eq!(PageToken::decode(&text), None, "{text}");
        }
    }

    #[test]
    fn dates_and_times_as_bounds() {
        let day = days_from_civil(2026, 11, 30) * MS_PER_DAY;
        let cases: &[(&str, bool, Result<i64, ()>)] = &[
            ("2026-11-30", false, Ok(day)),
            ("2026-11-30", true, Ok(day + MS_PER_DAY)),
            ("2026-11-30T07:05:10Z", false, Ok(day + 25_510_000)),
            ("2026-11-30T07:05:10Z", true, Ok(day + 25_510_001)),
            ("2026-11-30T07:05:10.5Z", false, Ok(day + 25_510_500)),
            ("2026-11-30T07:05:10.123456Z", false, Ok(day + 25_510_123)),
            ("2026-11-30T09:05:10+02:00", false, Ok(day + 25_510_000)),
            ("2026-11-30T02:05:10-0500", false, Ok(day + 25_510_000)),
            ("2026-11-30 07:05", false, Ok(day + 25_500_000)),
            ("2026-11-30T07:05:10", false, Ok(day + 25_510_000)),
            ("2028-02-29", false, Ok(days_from_civil(2028, 2, 29) * MS_PER_DAY)),
            ("2026-02-29", false, Err(())),
            ("2026-13-01", false, Err(())),
            ("2026-1-01", false, Err(())),
            ("30/11/2026", false, Err(())),
            ("2026-11-30T25:00Z", false, Err(())),
            ("2026-11-30T07:05:10+2", false, Err(())),
            ("2026-11-30Tnoon", false, Err(())),
            ("", false, Err(())),
            ("yesterday", false, Err(())),
        ];
        for (text, end, want) in cases {
            assert_eq!(parse_bound(text, *end).map_err(|_| ()), *want, "{text} end={end}");
        }
        assert_eq!(days_between(day, day + MS_PER_DAY), (day / MS_PER_DAY, day / MS_PER_DAY));
    }

    #[test]
    fn group_by_names() {
        let cases = [
            ("team", Some(GroupBy::Team)),
            ("api_key", Some(GroupBy::Key)),
            ("key", Some(GroupBy::Key)),
            ("customer", Some(GroupBy::EndUser)),
            ("end_user", Some(GroupBy::EndUser)),
            ("day", Some(GroupBy::Day)),
            ("Team", None),
            ("tags", None),
        ];
        for (text, want) in cases {
            assert_eq!(GroupBy::parse(text), want, "{text}");
        }
        assert_eq!(GroupBy::Team.dimensions()[0].column(), "day");
        assert_eq!(Outcome::parse("failure"), Some(Outcome::Failure));
    }
}
