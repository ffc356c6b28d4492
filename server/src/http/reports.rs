//! Spend reports, LiteLLM's paths: `GET /spend/logs` (the request log, filtered, newest first, keyset pages),
//! `GET /global/spend/report` (spend grouped by team, key, model, provider, day, user or end user) and
//! `GET /global/activity` (requests, tokens and errors per day). Reports and activity read the daily rollups
//! only (`store::rollups`), never the log rows. See docs/spend.md.
//!
//! Role rules: `access::roles` (admins and viewers read everything; a team's members and viewers read their
//! own teams' rows, by the query's filter). Answers name keys by hash and alias, never by value.

use std::collections::BTreeMap;

use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{
    keys::logged,
    principal::{authorize, store_error},
    AppState,
};
use crate::{
    access::{roles::Route, token::KeyHash, AccessError},
    clock::{self, civil_from_days, iso8601_ms},
    error::ApiError,
    logs::query::{self, Dimension, GroupBy, LogFilter, Outcome, PageToken, UsageFilter},
    store::reports::{LogRow, UsageRow},
};

const DEFAULT_LIMIT: u64 = 50;
const MAX_LIMIT: u64 = 1000;
/// A report without `start_date` covers this many days, ending with `end_date` (default today, UTC).
const DEFAULT_REPORT_DAYS: i64 = 30;
const MS_PER_DAY: i64 = 86_400_000;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/spend/logs", web::get().to(spend_logs))
        .route("/global/spend/report", web::get().to(spend_report))
        .route("/global/activity", web::get().to(activity));
}

/// Parameters arrive as text and are checked here, so a bad one gets an OpenAI-shaped 400 naming it.
fn params<T: for<'de> Deserialize<'de>>(req: &HttpRequest) -> Result<T, ApiError> {
    web::Query::<T>::from_query(req.query_string())
        .map(web::Query::into_inner)
        .map_err(|e| AccessError::bad_input("query", format!("bad query string: {e}")).into())
}

fn bound(param: &str, text: Option<&str>, end: bool) -> Result<Option<i64>, ApiError> {
    text.map(|t| query::parse_bound(t, end).map_err(|e| AccessError::bad_input(param, e.to_string()).into()))
        .transpose()
}

fn usd(nanos: i64) -> f64 {
    nanos as f64 / 1e9
}

/// `2026-11-30`.
fn date(day: i64) -> String {
    let (y, m, d) = civil_from_days(day);
    format!("{y:04}-{m:02}-{d:02}")
}

#[derive(Debug, Default, Deserialize)]
struct LogsQuery {
    api_key: Option<String>,
    team_id: Option<String>,
    user_id: Option<String>,
    model: Option<String>,
    status: Option<String>,
    start_date: Option<String>,
    end_date: Option<String>,
    request_id: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

/// The query as a store filter (the caller's team scope is added by the handler).
fn log_filter(q: &LogsQuery) -> Result<LogFilter, ApiError> {
    let limit = match q.limit.as_deref() {
        None => DEFAULT_LIMIT,
        Some(text) => match text.trim().parse::<u64>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
            _ => {
                return Err(
                    AccessError::bad_input("limit", format!("`limit` must be 1 to {MAX_LIMIT}, got `{text}`")).into()
                )
            }
        },
    };
    let outcome = match q.status.as_deref() {
        None => None,
        Some(text) => Some(Outcome::parse(text).ok_or_else(|| {
            AccessError::bad_input("status", format!("`status` is `success` or `failure`, got `{text}`"))
        })?),
    };
    let after = match q.cursor.as_deref() {
        None | Some("") => None,
        Some(text) => Some(PageToken::decode(text).ok_or_else(|| {
            AccessError::bad_input("cursor", "`cursor` is not a cursor this route returned (`next_cursor`)")
        })?),
    };
    Ok(LogFilter {
        key_hash: q.api_key.as_deref().map(|k| KeyHash::from_reference(k.trim()).hex()),
        team_id: q.team_id.clone(),
        user_id: q.user_id.clone(),
        model: q.model.clone(),
        outcome,
        start_ms: bound("start_date", q.start_date.as_deref(), false)?,
        end_ms: bound("end_date", q.end_date.as_deref(), true)?,
        request_id: q.request_id.clone(),
        team_ids: None,
        after,
        limit,
    })
}

/// One log row as `/spend/logs` shows it: LiteLLM's field names where it has them.
fn log_json(r: &LogRow) -> Value {
    json!({
        "request_id": r.request_id,
        "call_type": r.route,
        "api_key": r.key_hash,
        "key_alias": r.key_alias,
        "spend": usd(r.cost_nanos.unwrap_or(0)),
        "spend_nanos": r.cost_nanos,
        "accounting": r.accounting,
        "total_tokens": r.prompt_tokens.saturating_add(r.completion_tokens),
        "prompt_tokens": r.prompt_tokens,
        "completion_tokens": r.completion_tokens,
        "cache_read_tokens": r.cache_read_tokens,
        "cache_write_tokens": r.cache_write_tokens,
        "reasoning_tokens": r.reasoning_tokens,
        "startTime": iso8601_ms(r.started_at_ms),
        "endTime": iso8601_ms(r.ended_at_ms),
        "completionStartTime": r.first_byte_at_ms.map(iso8601_ms),
        "latency_ms": r.ended_at_ms - r.started_at_ms,
        "model": r.model_group,
        "model_group": r.model_group,
        "model_id": r.deployment,
        "custom_llm_provider": r.provider,
        "api_base": r.api_base,
        "user": r.user_id,
        "team_id": r.team_id,
        "end_user": r.end_user,
        "status": if r.status < 400 { "success" } else { "failure" },
        "status_code": r.status,
        "error_class": r.error_class,
        "error_message": r.error_message,
        "stream": r.streamed,
        "attempts": r.attempts,
        "fallback": r.fallback,
        "request_tags": r.tags,
        "requester_ip_address": r.client_ip,
    })
}

async fn spend_logs(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    logged(&req, async || {
        let (principal, scope) = authorize(&req, &state, Route::SpendLogs).await?;
        let q: LogsQuery = params(&req)?;
        let mut filter = log_filter(&q)?;
        // A team's members see their own teams' rows: the query's filter, so pages stay full.
        filter.team_ids = principal.visible_teams(scope);
        let limit = filter.limit;
        filter.limit = limit + 1;
        let mut rows = state.keys.store().spend_logs(&filter).await.map_err(store_error)?;
        let more = rows.len() as u64 > limit;
        rows.truncate(limit as usize);
        let next_cursor = match rows.last() {
            Some(last) if more => Some(PageToken { started_at_ms: last.started_at_ms, id: last.id }.encode()),
            _ => None,
        };
        Ok(HttpResponse::Ok().json(json!({
            "data": rows.iter().map(log_json).collect::<Vec<_>>(),
            "next_cursor": next_cursor,
        })))
    })
    .await
}

#[derive(Debug, Default, Deserialize)]
struct ReportQuery {
    start_date: Option<String>,
    end_date: Option<String>,
    group_by: Option<String>,
}

/// The days a report covers: `start_date` to `end_date` (inclusive, whole UTC days), by default the last
/// [`DEFAULT_REPORT_DAYS`] days up to today.
fn report_days(q: &ReportQuery) -> Result<(i64, i64), ApiError> {
    let end = bound("end_date", q.end_date.as_deref(), true)?.unwrap_or_else(|| {
        let today = clock::unix_ms().div_euclid(MS_PER_DAY);
        (today + 1) * MS_PER_DAY
    });
    let start = bound("start_date", q.start_date.as_deref(), false)?
        .unwrap_or_else(|| (end - 1).div_euclid(MS_PER_DAY) * MS_PER_DAY - (DEFAULT_REPORT_DAYS - 1) * MS_PER_DAY);
    if start >= end {
        return Err(AccessError::bad_input("start_date", "`start_date` must not be after `end_date`").into());
    }
    Ok(query::days_between(start, end))
}

/// A group's sums, as every report shows them. Typed rather than `serde_json::Value`: a month of a team report
/// is thousands of groups, serialized straight into the response.
#[derive(Debug, Serialize)]
struct Sums {
    spend: f64,
    spend_nanos: i64,
    requests: i64,
    failed_requests: i64,
    total_tokens: i64,
    prompt_tokens: i64,
    completion_tokens: i64,
    cache_read_tokens: i64,
    cache_write_tokens: i64,
    reasoning_tokens: i64,
    unpriced_requests: i64,
}

impl Sums {
    fn of(u: &UsageRow) -> Sums {
        Sums {
            spend: usd(u.cost_nanos),
            spend_nanos: u.cost_nanos,
            requests: u.requests,
            failed_requests: u.failed_requests,
            total_tokens: u.prompt_tokens.saturating_add(u.completion_tokens),
            prompt_tokens: u.prompt_tokens,
            completion_tokens: u.completion_tokens,
            cache_read_tokens: u.cache_read_tokens,
            cache_write_tokens: u.cache_write_tokens,
            reasoning_tokens: u.reasoning_tokens,
            unpriced_requests: u.unpriced_requests,
        }
    }

    /// The sums of several groups.
    fn total<'a>(rows: impl IntoIterator<Item = &'a UsageRow>) -> Sums {
        let mut t = UsageRow::default();
        for u in rows {
            t.requests += u.requests;
            t.failed_requests += u.failed_requests;
            t.prompt_tokens += u.prompt_tokens;
            t.completion_tokens += u.completion_tokens;
            t.cache_read_tokens += u.cache_read_tokens;
            t.cache_write_tokens += u.cache_write_tokens;
            t.reasoning_tokens += u.reasoning_tokens;
            t.cost_nanos += u.cost_nanos;
            t.unpriced_requests += u.unpriced_requests;
        }
        Sums::of(&t)
    }
}

/// One group of a flat report: its dimension under its name, and its sums.
#[derive(Debug, Serialize)]
struct Group<'a> {
    #[serde(flatten)]
    dimension: BTreeMap<&'static str, Option<&'a str>>,
    #[serde(flatten)]
    sums: Sums,
}

fn first_key(u: &UsageRow) -> &str {
    u.keys.first().map_or("", String::as_str)
}

/// `""` (a request without that dimension) is shown as null.
fn dimension_value(text: &str) -> Option<&str> {
    (!text.is_empty()).then_some(text)
}

async fn spend_report(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    logged(&req, async || {
        let (principal, scope) = authorize(&req, &state, Route::SpendReport).await?;
        let q: ReportQuery = params(&req)?;
        let group = match q.group_by.as_deref() {
            None => GroupBy::Team,
            Some(text) => GroupBy::parse(text).ok_or_else(|| {
                AccessError::bad_input("group_by", format!("`group_by` is one of {}, got `{text}`", GroupBy::NAMES))
            })?,
        };
        let (first_day, last_day) = report_days(&q)?;
        let filter = UsageFilter { first_day, last_day, team_ids: principal.visible_teams(scope) };
        let store = state.keys.store();
        let mut rows = store.usage(group.dimensions(), &filter).await.map_err(store_error)?;
        match group {
            GroupBy::Team => team_report(&state, rows).await,
            GroupBy::Day => {
                rows.sort_by_key(|u| u.day);
                let days: Vec<String> = rows.iter().map(|u| date(u.day.unwrap_or(0))).collect();
                let groups: Vec<Group<'_>> = rows
                    .iter()
                    .zip(&days)
                    .map(|(u, day)| Group {
                        dimension: BTreeMap::from([("day", Some(day.as_str()))]),
                        sums: Sums::of(u),
                    })
                    .collect();
                Ok(HttpResponse::Ok().json(groups))
            }
            _ => {
                rows.sort_by(|a, b| b.cost_nanos.cmp(&a.cost_nanos).then_with(|| a.keys.cmp(&b.keys)));
                let aliases = if group == GroupBy::Key {
                    let hashes: Vec<&str> = rows.iter().map(first_key).filter(|k| !k.is_empty()).collect();
                    store.key_aliases(&hashes).await.map_err(store_error)?
                } else {
                    Default::default()
                };
                let name = match group {
                    GroupBy::Key => "api_key",
                    GroupBy::Model => "model",
                    GroupBy::Provider => "provider",
                    GroupBy::User => "user_id",
                    _ => "end_user",
                };
                let groups: Vec<Group<'_>> = rows
                    .iter()
                    .map(|u| {
                        let mut dimension = BTreeMap::from([(name, dimension_value(first_key(u)))]);
                        if group == GroupBy::Key {
                            dimension.insert("key_alias", aliases.get(first_key(u)).map(String::as_str));
                        }
                        Group { dimension, sums: Sums::of(u) }
                    })
                    .collect();
                Ok(HttpResponse::Ok().json(groups))
            }
        }
    })
    .await
}

/// LiteLLM's team report: one entry per day.
#[derive(Debug, Serialize)]
struct TeamDay<'a> {
    group_by_day: String,
    /// By spend, descending.
    teams: Vec<TeamSpend<'a>>,
}

#[derive(Debug, Serialize)]
struct TeamSpend<'a> {
    team_id: Option<&'a str>,
    /// The team's alias, else its id.
    team_name: Option<&'a str>,
    total_spend: f64,
    #[serde(flatten)]
    sums: Sums,
    /// Its spend by model and key.
    metadata: Vec<TeamPart<'a>>,
}

/// LiteLLM's fields (and the request count).
#[derive(Debug, Serialize)]
struct TeamPart<'a> {
    model: Option<&'a str>,
    api_key: Option<&'a str>,
    spend: f64,
    spend_nanos: i64,
    total_tokens: i64,
    requests: i64,
}

/// LiteLLM's team report: per day, per team (spend, and its spend by model and key in `metadata`).
async fn team_report(state: &AppState, rows: Vec<UsageRow>) -> Result<HttpResponse, ApiError> {
    // day -> team -> (its rows)
    let mut days: BTreeMap<i64, BTreeMap<&str, Vec<&UsageRow>>> = BTreeMap::new();
    for u in &rows {
        days.entry(u.day.unwrap_or(0)).or_default().entry(first_key(u)).or_default().push(u);
    }
    let mut teams: Vec<&str> = rows.iter().map(first_key).filter(|t| !t.is_empty()).collect();
    teams.sort_unstable();
    teams.dedup();
    let aliases = state.keys.store().team_aliases(&teams).await.map_err(store_error)?;
    let mut out = Vec::with_capacity(days.len());
    for (day, by_team) in days {
        let mut teams: Vec<TeamSpend<'_>> = by_team
            .into_iter()
            .map(|(team, parts)| {
                let sums = Sums::total(parts.iter().copied());
                let metadata = parts
                    .iter()
                    .map(|u| TeamPart {
                        api_key: dimension_value(u.keys.get(1).map_or("", String::as_str)),
                        model: dimension_value(u.keys.get(2).map_or("", String::as_str)),
                        spend: usd(u.cost_nanos),
                        spend_nanos: u.cost_nanos,
                        total_tokens: u.prompt_tokens.saturating_add(u.completion_tokens),
                        requests: u.requests,
                    })
                    .collect();
                TeamSpend {
                    team_id: dimension_value(team),
                    team_name: dimension_value(aliases.get(team).map_or(team, String::as_str)),
                    total_spend: sums.spend,
                    sums,
                    metadata,
                }
            })
            .collect();
        teams.sort_by_key(|t| std::cmp::Reverse(t.sums.spend_nanos));
        out.push(TeamDay { group_by_day: format!("{}T00:00:00+00:00", date(day)), teams });
    }
    Ok(HttpResponse::Ok().json(out))
}

/// One day of `/global/activity`.
#[derive(Debug, Serialize)]
struct ActivityDay {
    date: String,
    api_requests: i64,
    #[serde(flatten)]
    sums: Sums,
}

/// LiteLLM's activity shape: `daily_data` (one entry per day with requests) and the sums.
async fn activity(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    logged(&req, async || {
        let (principal, scope) = authorize(&req, &state, Route::GlobalActivity).await?;
        let q: ReportQuery = params(&req)?;
        let (first_day, last_day) = report_days(&q)?;
        let filter = UsageFilter { first_day, last_day, team_ids: principal.visible_teams(scope) };
        let mut rows = state.keys.store().usage(&[Dimension::Day], &filter).await.map_err(store_error)?;
        rows.sort_by_key(|u| u.day);
        let total = Sums::total(&rows);
        let daily: Vec<ActivityDay> = rows
            .iter()
            .map(|u| ActivityDay { date: date(u.day.unwrap_or(0)), api_requests: u.requests, sums: Sums::of(u) })
            .collect();
        Ok(HttpResponse::Ok().json(json!({
            "daily_data": daily,
            "sum_api_requests": total.requests,
            "sum_failed_requests": total.failed_requests,
            "sum_total_tokens": total.total_tokens,
            "sum_spend": total.spend,
        })))
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_cursor_limit_status_or_date_is_refused_naming_the_parameter() {
        let q = |f: fn(&mut LogsQuery)| {
            let mut q = LogsQuery::default();
            f(&mut q);
            log_filter(&q).err().map(|e| {
                let ApiError::Access(AccessError::BadInput { param, .. }) = e else { return "other".to_owned() };
                param.unwrap_or_default()
            })
        };
        assert_eq!(q(|q| q.cursor = Some("garbage".into())), Some("cursor".into()));
        assert_eq!(q(|q| q.limit = Some("0".into())), Some("limit".into()));
        assert_eq!(q(|q| q.limit = Some("1001".into())), Some("limit".into()));
        assert_eq!(q(|q| q.limit = Some("ten".into())), Some("limit".into()));
        assert_eq!(q(|q| q.status = Some("ok".into())), Some("status".into()));
        assert_eq!(q(|q| q.start_date = Some("2026/11/30".into())), Some("start_date".into()));
        assert_eq!(q(|q| q.limit = Some("1000".into())), None);
        let token = PageToken { started_at_ms: 5, id: 6 }.encode();
        let filter = log_filter(&LogsQuery { cursor: Some(token), ..LogsQuery::default() }).ok();
        assert_eq!(filter.and_then(|f| f.after), Some(PageToken { started_at_ms: 5, id: 6 }));
        let by_key = log_filter(&LogsQuery { api_key: Some("sk-abc".into()), ..LogsQuery::default() }).ok();
        assert_eq!(by_key.and_then(|f| f.key_hash), Some(KeyHash::of("sk-abc").hex()), "a key is looked up by hash");
    }

    #[test]
    fn report_days_default_to_thirty_ending_today_and_refuse_a_reversed_range() {
        let q = |s: Option<&str>, e: Option<&str>| ReportQuery {
            start_date: s.map(str::to_owned),
            end_date: e.map(str::to_owned),
            group_by: None,
        };
        let day = |t: &str| query::parse_bound(t, false).unwrap_or_default() / MS_PER_DAY;
        assert_eq!(
            report_days(&q(Some("2026-11-01"), Some("2026-11-30"))).ok(),
            Some((day("2026-11-01"), day("2026-11-30")))
        );
        assert_eq!(report_days(&q(None, Some("2026-11-30"))).ok(), Some((day("2026-11-01"), day("2026-11-30"))));
        assert!(report_days(&q(Some("2026-12-01"), Some("2026-11-30"))).is_err());
        let (first, last) = report_days(&q(None, None)).unwrap_or_default();
        assert_eq!(last - first, DEFAULT_REPORT_DAYS - 1);
    }
}
