//! The key management API's requests and answers in LiteLLM's JSON shapes (`/key/generate`, `/key/update`,
//! `/key/info`, `/key/list`, ...), and the rules that turn a request into a stored key. Pure: the caller passes the
//! time and does the I/O.
//!
//! Rate limits (`rpm_limit`, `tpm_limit`, `max_parallel_requests`, `model_rpm_limit`, `model_tpm_limit`) and
//! budgets (`max_budget`, `budget_duration`, `soft_budget`, `model_max_budget`) are stored and enforced (`limits/`,
//! `budgets/`). Settings LiteLLM has and tollgate does not enforce yet (`tags`, `allowed_routes`) are refused with
//! `not_supported_yet` naming them: a key that looks limited but is not would be worse than no key.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::{budgets, period::Period, token, AccessError};
use crate::store::keys::KeyRow;

/// Fields of LiteLLM's key requests that tollgate stores no limit for yet.
const NOT_YET: [&str; 2] = ["tags", "allowed_routes"];

/// `/key/generate`'s body (and, with `key` naming the key, `/key/update`'s).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyRequest {
    /// generate: a chosen key value (`sk-...`); update: the key to change (value or hash).
    pub key: Option<String>,
    pub key_alias: Option<String>,
    /// Lifetime from now: `"30d"`, `"1h"`, `"1mo"`.
    pub duration: Option<String>,
    pub models: Option<Vec<String>>,
    pub user_id: Option<String>,
    /// The key's team: it may call only models the team may, and stops when the team is blocked.
    pub team_id: Option<String>,
    pub metadata: Option<Map<String, Value>>,
    pub blocked: Option<bool>,
    /// Requests per minute (all models).
    pub rpm_limit: Option<Value>,
    /// Tokens per minute (all models), counted when each call settles.
    pub tpm_limit: Option<Value>,
    /// Requests at a time.
    pub max_parallel_requests: Option<Value>,
    /// Model group → requests per minute with it.
    pub model_rpm_limit: Option<Value>,
    /// Model group → tokens per minute with it.
    pub model_tpm_limit: Option<Value>,
    /// USD per period (`budget_duration`), or for the key's lifetime.
    pub max_budget: Option<Value>,
    /// `"30s"`, `"1h"`, `"1d"`, `"30d"`, `"1mo"`: the budget's period, counted from now.
    pub budget_duration: Option<Value>,
    /// USD: crossing it warns once per period, never refuses.
    pub soft_budget: Option<Value>,
    /// Model group → `{"max_budget": USD, "budget_duration": "1d"}`.
    pub model_max_budget: Option<Value>,
    // Refused until enforced (see NOT_YET); accepted by the parser so the refusal can name them.
    pub tags: Option<Value>,
    pub allowed_routes: Option<Value>,
}

impl KeyRequest {
    pub fn parse(body: &[u8]) -> Result<KeyRequest, AccessError> {
        let request: KeyRequest = parse_json(body)?;
        let set = |v: &Option<Value>| v.as_ref().is_some_and(|v| !v.is_null());
        let refused: Vec<&str> = [&request.tags, &request.allowed_routes]
            .iter()
            .zip(NOT_YET)
            .filter(|(v, _)| set(v))
            .map(|(_, name)| name)
            .collect();
        if !refused.is_empty() {
            return Err(AccessError::NotSupportedYet(format!(
                "not supported yet: {} (tollgate does not enforce these on keys yet, so it does not accept them)",
                refused.join(", ")
            )));
        }
        Ok(request)
    }
}

/// Bodies that name keys: `/key/delete` (`keys`, `key_aliases`), `/key/block`, `/key/unblock`,
/// `/key/regenerate` (`key`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyRefs {
    pub key: Option<String>,
    #[serde(default)]
    pub keys: Vec<String>,
    #[serde(default)]
    pub key_aliases: Vec<String>,
    /// `/key/regenerate`: a chosen new value.
    pub new_key: Option<String>,
}

impl KeyRefs {
    pub fn parse(body: &[u8]) -> Result<KeyRefs, AccessError> {
        parse_json(body)
    }

    /// The one key a block, unblock or regenerate names.
    pub fn one(&self) -> Result<&str, AccessError> {
        self.key.as_deref().filter(|k| !k.is_empty()).ok_or_else(|| AccessError::bad_input("key", "`key` is required"))
    }
}

pub(crate) fn parse_json<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, AccessError> {
    let body = if body.iter().all(u8::is_ascii_whitespace) { b"{}".as_slice() } else { body };
    serde_json::from_slice(body)
        .map_err(|e| AccessError::BadInput { param: None, message: format!("invalid request body: {e}") })
}

/// A limit: a non-negative integer (stored as `i64`).
pub(crate) fn limit(param: &str, value: Option<&Value>) -> Result<Option<i64>, AccessError> {
    let Some(value) = value else { return Ok(None) };
    value
        .as_u64()
        .and_then(|n| i64::try_from(n).ok())
        .map(Some)
        .ok_or_else(|| AccessError::bad_input(param, format!("`{param}` must be a whole number, 0 or more")))
}

/// A per-model limit map: `{"model": n, ...}` with non-negative integers.
fn limit_map(param: &str, value: Option<&Value>) -> Result<Option<Value>, AccessError> {
    let Some(value) = value else { return Ok(None) };
    let valid = value.as_object().is_some_and(|m| m.iter().all(|(k, v)| !k.trim().is_empty() && v.as_u64().is_some()));
    if !valid {
        return Err(AccessError::bad_input(
            param,
            format!("`{param}` must map model names to whole numbers, e.g. {{\"gpt-4o\": 10}}"),
        ));
    }
    Ok(Some(value.clone()))
}

/// Writes the budgets `request` sets into `row` (unset ones keep their value). A new `budget_duration` starts a
/// new period now.
fn set_budgets(row: &mut KeyRow, request: &KeyRequest, now: i64) -> Result<(), AccessError> {
    let soft = Some((&mut row.soft_budget_nanos, request.soft_budget.as_ref()));
    let (max_budget, duration) = (request.max_budget.as_ref(), request.budget_duration.as_ref());
    budgets::set_budget(
        (&mut row.max_budget_nanos, &mut row.budget_duration, &mut row.budget_reset_at),
        soft,
        max_budget,
        duration,
        now,
    )?;
    if let Some(m) = budgets::model_max_budget_field(request.model_max_budget.as_ref(), now)? {
        row.model_max_budget = m;
    }
    Ok(())
}

/// The stored rate limits of a key, team or user: `rpm_limit`, `tpm_limit`, `max_parallel_requests`.
pub(crate) type LimitSlots<'a> = [&'a mut Option<i64>; 3];

/// Writes each of LiteLLM's three rate-limit fields that a request sets (`values`, in [`LimitSlots`] order) into
/// its slot, validated; unset ones keep their value.
pub(crate) fn set_rate_limits(slots: LimitSlots<'_>, values: [Option<&Value>; 3]) -> Result<(), AccessError> {
    const NAMES: [&str; 3] = ["rpm_limit", "tpm_limit", "max_parallel_requests"];
    for ((slot, value), name) in slots.into_iter().zip(values).zip(NAMES) {
        if let Some(n) = limit(name, value)? {
            *slot = Some(n);
        }
    }
    Ok(())
}

/// Writes the limits `request` sets into `row` (unset ones keep their value).
fn set_limits(row: &mut KeyRow, request: &KeyRequest) -> Result<(), AccessError> {
    let values = [request.rpm_limit.as_ref(), request.tpm_limit.as_ref(), request.max_parallel_requests.as_ref()];
    set_rate_limits([&mut row.rpm_limit, &mut row.tpm_limit, &mut row.max_parallel_requests], values)?;
    if let Some(m) = limit_map("model_rpm_limit", request.model_rpm_limit.as_ref())? {
        row.model_rpm_limit = m;
    }
    if let Some(m) = limit_map("model_tpm_limit", request.model_tpm_limit.as_ref())? {
        row.model_tpm_limit = m;
    }
    Ok(())
}

fn check_models(models: &[String]) -> Result<(), AccessError> {
    match models.iter().find(|m| m.trim().is_empty()) {
        Some(_) => Err(AccessError::bad_input("models", "model names must not be empty")),
        None => Ok(()),
    }
}

fn expiry(duration: Option<&str>, now: i64) -> Result<Option<i64>, AccessError> {
    duration
        .map(|d| Period::parse(d).map(|p| p.after(now)).map_err(|e| AccessError::bad_input("duration", e.to_string())))
        .transpose()
}

/// A chosen key value: LiteLLM's rule (it starts with `sk-`) and enough length not to be guessed in a day.
fn check_chosen(key: &str) -> Result<(), AccessError> {
    if !key.starts_with("sk-") || key.len() < 8 || key.chars().any(char::is_whitespace) {
        return Err(AccessError::bad_input(
            "key",
            "a chosen key must start with `sk-`, have no spaces and be at least 8 characters",
        ));
    }
    Ok(())
}

/// The key value (generated unless chosen) and the row to store for `/key/generate`.
pub fn new_key(request: KeyRequest, created_by: &str, now: i64) -> Result<(String, KeyRow), AccessError> {
    let value = match request.key.clone() {
        Some(chosen) => {
            check_chosen(&chosen)?;
            chosen
        }
        None => token::generate(),
    };
    let models = request.models.clone().unwrap_or_default();
    check_models(&models)?;
    let mut row = KeyRow {
        token_hash: token::KeyHash::of(&value).hex(),
        key_name: token::display_name(&value),
        key_alias: request.key_alias.clone(),
        user_id: request.user_id.clone(),
        team_id: request.team_id.clone().filter(|t| !t.is_empty()),
        models: json!(models),
        max_budget_nanos: None,
        budget_duration: None,
        budget_reset_at: None,
        soft_budget_nanos: None,
        model_max_budget: json!({}),
        rpm_limit: None,
        tpm_limit: None,
        max_parallel_requests: None,
        model_rpm_limit: json!({}),
        model_tpm_limit: json!({}),
        expires_at: expiry(request.duration.as_deref(), now)?,
        blocked: request.blocked.unwrap_or(false),
        metadata: Value::Object(request.metadata.clone().unwrap_or_default()),
        created_by: Some(created_by.to_owned()),
        updated_by: Some(created_by.to_owned()),
        created_at: now,
        updated_at: now,
    };
    set_limits(&mut row, &request)?;
    set_budgets(&mut row, &request, now)?;
    Ok((value, row))
}

/// `row` with the fields `request` sets changed (`/key/update`).
pub fn updated(mut row: KeyRow, request: KeyRequest, updated_by: &str, now: i64) -> Result<KeyRow, AccessError> {
    set_limits(&mut row, &request)?;
    set_budgets(&mut row, &request, now)?;
    if let Some(models) = request.models {
        check_models(&models)?;
        row.models = json!(models);
    }
    if let Some(alias) = request.key_alias {
        row.key_alias = Some(alias);
    }
    if let Some(user) = request.user_id {
        row.user_id = Some(user);
    }
    if let Some(team) = request.team_id {
        row.team_id = Some(team).filter(|t| !t.is_empty());
    }
    if let Some(metadata) = request.metadata {
        row.metadata = Value::Object(metadata);
    }
    if let Some(blocked) = request.blocked {
        row.blocked = blocked;
    }
    if request.duration.is_some() {
        row.expires_at = expiry(request.duration.as_deref(), now)?;
    }
    row.updated_by = Some(updated_by.to_owned());
    row.updated_at = now;
    Ok(row)
}

/// `row` under a new value (`/key/regenerate`): same settings, new hash and display name.
pub fn regenerated(row: KeyRow, new_key: Option<String>, by: &str, now: i64) -> Result<(String, KeyRow), AccessError> {
    let value = match new_key {
        Some(chosen) => {
            check_chosen(&chosen)?;
            chosen
        }
        None => token::generate(),
    };
    let row = KeyRow {
        token_hash: token::KeyHash::of(&value).hex(),
        key_name: token::display_name(&value),
        updated_by: Some(by.to_owned()),
        updated_at: now,
        ..row
    };
    Ok((value, row))
}

/// A stored key as the management API shows it: never its value, only its hash (`token`) and display name.
#[derive(Debug, Serialize)]
pub struct KeyInfo {
    pub token: String,
    pub key_name: String,
    pub key_alias: Option<String>,
    pub user_id: Option<String>,
    pub team_id: Option<String>,
    pub models: Vec<String>,
    pub metadata: Value,
    pub blocked: bool,
    pub rpm_limit: Option<i64>,
    pub tpm_limit: Option<i64>,
    pub max_parallel_requests: Option<i64>,
    pub model_rpm_limit: Value,
    pub model_tpm_limit: Value,
    /// USD.
    pub max_budget: Option<f64>,
    pub soft_budget: Option<f64>,
    pub budget_duration: Option<String>,
    /// The end of the current budget period (ISO 8601); null without `budget_duration`.
    pub budget_reset_at: Option<String>,
    pub model_max_budget: Value,
    /// USD spent in the current budget period (the key's lifetime without `budget_duration`).
    pub spend: f64,
    /// ISO 8601, or null for a key that does not expire.
    pub expires: Option<String>,
    pub created_by: Option<String>,
    pub updated_by: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl KeyInfo {
    pub fn of(row: &KeyRow) -> KeyInfo {
        KeyInfo {
            token: row.token_hash.clone(),
            key_name: row.key_name.clone(),
            key_alias: row.key_alias.clone(),
            user_id: row.user_id.clone(),
            team_id: row.team_id.clone(),
            models: super::string_list(&row.models),
            metadata: row.metadata.clone(),
            blocked: row.blocked,
            rpm_limit: row.rpm_limit,
            tpm_limit: row.tpm_limit,
            max_parallel_requests: row.max_parallel_requests,
            model_rpm_limit: row.model_rpm_limit.clone(),
            model_tpm_limit: row.model_tpm_limit.clone(),
            max_budget: budgets::usd(row.max_budget_nanos),
            soft_budget: budgets::usd(row.soft_budget_nanos),
            budget_duration: row.budget_duration.clone(),
            budget_reset_at: None,
            model_max_budget: budgets::model_max_budget_shown(&row.model_max_budget),
            spend: 0.0,
            expires: row.expires_at.map(super::period::iso8601),
            created_by: row.created_by.clone(),
            updated_by: row.updated_by.clone(),
            created_at: super::period::iso8601(row.created_at),
            updated_at: super::period::iso8601(row.updated_at),
        }
    }
}

/// `/key/generate`'s and `/key/regenerate`'s answer: the key's value, shown this once, beside its info.
#[derive(Debug, Serialize)]
pub struct CreatedKey {
    pub key: String,
    #[serde(flatten)]
    pub info: KeyInfo,
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_796_022_310;

    #[test]
    fn generated_keys_store_only_their_hash_and_display_name() {
        let request =
            KeyRequest::parse(br#"{"key_alias":"ci","models":["gpt-4o"],"duration":"1h","metadata":{"env":"ci"}}"#)
                .unwrap_or_else(|e| unreachable!("{e}"));
        let (value, row) = new_key(request, "admin", NOW).unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(row.token_hash, token::KeyHash::of(&value).hex());
        assert_eq!(row.key_name, token::display_name(&value));
        assert!(!format!("{row:?}").contains(&value), "the row holds no key value");
        assert_eq!(row.expires_at, Some(NOW + 3600));
        assert_eq!(super::super::string_list(&row.models), ["gpt-4o"]);
        assert!(super::super::KeyRecord::from_row(&row).is_some());
        let info = serde_json::to_value(KeyInfo::of(&row)).unwrap_or_default();
        assert_eq!(info["expires"], "2026-11-30T08:05:10Z");
        assert!(!info.to_string().contains(&value));
    }

    #[test]
    fn refuses_what_it_cannot_honour_naming_it() {
        let cases: &[(&[u8], &str, &str)] = &[
            (br#"{"tags":["t1"],"rpm_limit":5}"#, "not_supported_yet", "not supported yet: tags ("),
            (br#"{"allowed_routes":["/x"]}"#, "not_supported_yet", "allowed_routes"),
            (br#"{"nope":1}"#, "invalid_value", "unknown field `nope`"),
            (br#"{"models":"gpt-4o"}"#, "invalid_value", "invalid type"),
            (b"{", "invalid_value", "invalid request body"),
        ];
        for (body, code, says) in cases {
            let err = KeyRequest::parse(body).err().unwrap_or(AccessError::StoreUnavailable);
            assert_eq!(err.code(), *code, "{}", String::from_utf8_lossy(body));
            assert!(err.to_string().contains(says), "{err}");
        }
        assert!(KeyRequest::parse(br#"{"tags":null}"#).is_ok(), "null means not set");
        assert!(KeyRequest::parse(b"").is_ok(), "an empty body is an empty request");
        let bad = |body: &[u8]| {
            KeyRequest::parse(body).and_then(|r| new_key(r, "admin", NOW)).err().map(|e| e.param().map(str::to_owned))
        };
        assert_eq!(bad(br#"{"duration":"soon"}"#), Some(Some("duration".into())));
        assert_eq!(bad(br#"{"key":"short"}"#), Some(Some("key".into())));
        assert_eq!(bad(br#"{"models":[""]}"#), Some(Some("models".into())));
        assert_eq!(bad(br#"{"rpm_limit":-1}"#), Some(Some("rpm_limit".into())));
        assert_eq!(bad(br#"{"tpm_limit":1.5}"#), Some(Some("tpm_limit".into())));
        assert_eq!(bad(br#"{"model_rpm_limit":{"a":"ten"}}"#), Some(Some("model_rpm_limit".into())));
        assert_eq!(bad(br#"{"model_tpm_limit":[1]}"#), Some(Some("model_tpm_limit".into())));
        assert_eq!(bad(br#"{"max_budget":-1}"#), Some(Some("max_budget".into())));
        assert_eq!(bad(br#"{"budget_duration":"1w"}"#), Some(Some("budget_duration".into())));
        assert_eq!(bad(br#"{"model_max_budget":{"m":1}}"#), Some(Some("model_max_budget".into())));
    }

    #[test]
    fn limits_are_stored_carried_and_shown() {
        let body = br#"{"rpm_limit":10,"tpm_limit":1000,"max_parallel_requests":2,"model_rpm_limit":{"a":3},"model_tpm_limit":{"b":50}}"#;
        let request = KeyRequest::parse(body).unwrap_or_else(|e| unreachable!("{e}"));
        let (_, row) = new_key(request, "admin", NOW).unwrap_or_else(|e| unreachable!("{e}"));
        let record = super::super::KeyRecord::from_row(&row).unwrap_or_else(|| unreachable!());
        assert_eq!((record.limits.rpm, record.limits.tpm, record.limits.max_parallel), (Some(10), Some(1000), Some(2)));
        assert_eq!(record.limits.model_rpm.get("a"), Some(&3));
        assert_eq!(record.limits.model_tpm.get("b"), Some(&50));
        let info = serde_json::to_value(KeyInfo::of(&row)).unwrap_or_default();
        assert_eq!((info["rpm_limit"].as_i64(), info["model_rpm_limit"]["a"].as_i64()), (Some(10), Some(3)));
        let change = KeyRequest::parse(br#"{"rpm_limit":20}"#).unwrap_or_default();
        let row = updated(row, change, "admin", NOW).unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!((row.rpm_limit, row.tpm_limit), (Some(20), Some(1000)), "an update changes only what it sets");
    }

    #[test]
    fn updates_change_only_what_they_set_and_regeneration_keeps_settings() {
        let request = KeyRequest::parse(br#"{"key":"sk-chosen-key-1","key_alias":"a","models":["m"]}"#)
            .unwrap_or_else(|e| unreachable!("{e}"));
        let (value, row) = new_key(request, "admin", NOW).unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(value, "sk-chosen-key-1");
        let change = KeyRequest::parse(br#"{"blocked":true}"#).unwrap_or_default();
        let row = updated(row, change, "bob", NOW + 5).unwrap_or_else(|e| unreachable!("{e}"));
        assert!(row.blocked);
        assert_eq!(
            (row.key_alias.as_deref(), row.updated_by.as_deref(), row.updated_at),
            (Some("a"), Some("bob"), NOW + 5)
        );
        let old_hash = row.token_hash.clone();
        let (new_value, new_row) = regenerated(row, None, "admin", NOW + 9).unwrap_or_else(|e| unreachable!("{e}"));
        assert_ne!(new_row.token_hash, old_hash);
        assert_eq!(new_row.token_hash, token::KeyHash::of(&new_value).hex());
        assert_eq!((new_row.key_alias.as_deref(), new_row.blocked, new_row.created_at), (Some("a"), true, NOW));
    }
}
