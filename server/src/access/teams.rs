//! The team management API's requests and answers in LiteLLM's shapes (`/team/new`, `/team/update`,
//! `/team/member_add`, ...), and the pure rules: request to stored row, and what a key in a team may ask for
//! ("within the team's": models ⊆ the team's; limits ≤ the team's). The caller passes the time and does the I/O.
//!
//! Team budgets (`max_budget`, `budget_duration`, `soft_budget`) and member budgets (`max_budget_in_team`, over
//! the team's period) are stored and enforced (`budgets/`); team rate limits (`rpm_limit`, `tpm_limit`,
//! `max_parallel_requests`) are stored and enforced on every key of the team (`limits/`, `EntityKind::Team`).
//! `tags` and `model_aliases` are refused with `not_supported_yet` until they are enforced.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::{roles::TeamRole, string_list, AccessError, ALL_MODELS};
use crate::store::teams::{MembershipRow, TeamRow};

/// Fields of LiteLLM's team requests that tollgate enforces nothing for yet.
const NOT_YET: [&str; 2] = ["tags", "model_aliases"];

/// `/team/new`'s body (and, with `team_id` naming the team, `/team/update`'s).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeamRequest {
    pub team_id: Option<String>,
    pub team_alias: Option<String>,
    /// Model groups the team's keys may call; empty means all.
    pub models: Option<Vec<String>>,
    pub blocked: Option<bool>,
    pub metadata: Option<Map<String, Value>>,
    /// `/team/new` only: the first members.
    pub members_with_roles: Option<Vec<Member>>,
    /// USD per period (`budget_duration`), or for the team's lifetime; binds every key of the team.
    pub max_budget: Option<Value>,
    pub budget_duration: Option<Value>,
    /// USD: crossing it warns once per period, never refuses.
    pub soft_budget: Option<Value>,
    /// Requests per minute, tokens per minute and requests in flight across every key of the team.
    pub rpm_limit: Option<Value>,
    pub tpm_limit: Option<Value>,
    pub max_parallel_requests: Option<Value>,
    // Refused until enforced (see NOT_YET).
    pub tags: Option<Value>,
    pub model_aliases: Option<Value>,
}

impl TeamRequest {
    pub fn parse(body: &[u8]) -> Result<TeamRequest, AccessError> {
        let request: TeamRequest = parse_json(body)?;
        refuse_unenforced(&[&request.tags, &request.model_aliases], &NOT_YET, "teams")?;
        Ok(request)
    }
}

/// Refuses every field of `values` that is set (not null), naming it from `names`.
pub fn refuse_unenforced(values: &[&Option<Value>], names: &[&str], on: &str) -> Result<(), AccessError> {
    let refused: Vec<&str> = values
        .iter()
        .zip(names)
        .filter(|(v, _)| v.as_ref().is_some_and(|v| !v.is_null()))
        .map(|(_, name)| *name)
        .collect();
    if refused.is_empty() {
        return Ok(());
    }
    Err(AccessError::NotSupportedYet(format!(
        "not supported yet: {} (tollgate does not enforce these on {on} yet, so it does not accept them)",
        refused.join(", ")
    )))
}

pub fn parse_json<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, AccessError> {
    let body = if body.iter().all(u8::is_ascii_whitespace) { b"{}".as_slice() } else { body };
    serde_json::from_slice(body)
        .map_err(|e| AccessError::BadInput { param: None, message: format!("invalid request body: {e}") })
}

/// LiteLLM's `Member`: a user (by id or email) and a team role (`admin` or `user`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Member {
    #[serde(default = "default_role")]
    pub role: String,
    pub user_id: Option<String>,
    pub user_email: Option<String>,
}

fn default_role() -> String {
    "user".into()
}

impl Member {
    pub fn team_role(&self) -> Result<TeamRole, AccessError> {
        TeamRole::parse(&self.role)
    }
}

/// One member or a list (`/team/member_add`'s `member` takes both).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(Member),
    Many(Vec<Member>),
}

/// `/team/member_add`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberAdd {
    pub team_id: String,
    pub member: OneOrMany,
    /// USD: each added member's budget within the team, over the team's period.
    pub max_budget_in_team: Option<Value>,
}

/// `/team/member_delete` and `/team/member_update`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberChange {
    pub team_id: String,
    pub user_id: Option<String>,
    pub user_email: Option<String>,
    /// `/team/member_update`: the new team role.
    pub role: Option<String>,
    pub max_budget_in_team: Option<Value>,
}

impl MemberAdd {
    pub fn parse(body: &[u8]) -> Result<MemberAdd, AccessError> {
        let request: MemberAdd = parse_json(body)?;
        super::budgets::usd_field("max_budget_in_team", request.max_budget_in_team.as_ref())?;
        Ok(request)
    }

    pub fn members(&self) -> Vec<Member> {
        match &self.member {
            OneOrMany::One(m) => vec![m.clone()],
            OneOrMany::Many(ms) => ms.clone(),
        }
    }
}

impl MemberChange {
    pub fn parse(body: &[u8]) -> Result<MemberChange, AccessError> {
        let request: MemberChange = parse_json(body)?;
        super::budgets::usd_field("max_budget_in_team", request.max_budget_in_team.as_ref())?;
        Ok(request)
    }
}

/// Bodies that name teams: `/team/delete` (`team_ids`), `/team/block`, `/team/unblock` (`team_id`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeamRefs {
    pub team_id: Option<String>,
    #[serde(default)]
    pub team_ids: Vec<String>,
}

impl TeamRefs {
    pub fn parse(body: &[u8]) -> Result<TeamRefs, AccessError> {
        parse_json(body)
    }

    pub fn one(&self) -> Result<&str, AccessError> {
        self.team_id
            .as_deref()
            .filter(|t| !t.is_empty())
            .ok_or_else(|| AccessError::bad_input("team_id", "`team_id` is required"))
    }
}

fn check_models(models: &[String]) -> Result<(), AccessError> {
    match models.iter().find(|m| m.trim().is_empty()) {
        Some(_) => Err(AccessError::bad_input("models", "model names must not be empty")),
        None => Ok(()),
    }
}

/// The row to store for `/team/new`; `team_id` is generated (a UUID, as LiteLLM's) unless given.
pub fn new_team(request: &TeamRequest, now: i64) -> Result<TeamRow, AccessError> {
    let models = request.models.clone().unwrap_or_default();
    check_models(&models)?;
    let team_id = match request.team_id.as_deref() {
        Some("") => return Err(AccessError::bad_input("team_id", "`team_id` must not be empty")),
        Some(id) => id.to_owned(),
        None => uuid::Uuid::new_v4().to_string(),
    };
    let mut row = TeamRow {
        team_id,
        team_alias: request.team_alias.clone(),
        models: json!(models),
        max_budget_nanos: None,
        budget_duration: None,
        budget_reset_at: None,
        soft_budget_nanos: None,
        rpm_limit: None,
        tpm_limit: None,
        max_parallel_requests: None,
        blocked: request.blocked.unwrap_or(false),
        metadata: Value::Object(request.metadata.clone().unwrap_or_default()),
        created_at: now,
        updated_at: now,
    };
    set_budgets(&mut row, request, now)?;
    set_limits(&mut row, request)?;
    Ok(row)
}

/// Writes the budgets `request` sets into `row`; a new `budget_duration` starts a new period now.
fn set_budgets(row: &mut TeamRow, request: &TeamRequest, now: i64) -> Result<(), AccessError> {
    let soft = Some((&mut row.soft_budget_nanos, request.soft_budget.as_ref()));
    let (max_budget, duration) = (request.max_budget.as_ref(), request.budget_duration.as_ref());
    super::budgets::set_budget(
        (&mut row.max_budget_nanos, &mut row.budget_duration, &mut row.budget_reset_at),
        soft,
        max_budget,
        duration,
        now,
    )
}

/// Writes the rate limits `request` sets into `row` (unset ones keep their value), validated as a key's are.
fn set_limits(row: &mut TeamRow, request: &TeamRequest) -> Result<(), AccessError> {
    let values = [request.rpm_limit.as_ref(), request.tpm_limit.as_ref(), request.max_parallel_requests.as_ref()];
    super::manage::set_rate_limits([&mut row.rpm_limit, &mut row.tpm_limit, &mut row.max_parallel_requests], values)
}

/// `row` with the fields `request` sets changed (`/team/update`).
pub fn updated_team(mut row: TeamRow, request: TeamRequest, now: i64) -> Result<TeamRow, AccessError> {
    if request.members_with_roles.is_some() {
        return Err(AccessError::bad_input(
            "members_with_roles",
            "change members with /team/member_add, /team/member_update and /team/member_delete",
        ));
    }
    set_budgets(&mut row, &request, now)?;
    set_limits(&mut row, &request)?;
    if let Some(models) = request.models {
        check_models(&models)?;
        row.models = json!(models);
    }
    if let Some(alias) = request.team_alias {
        row.team_alias = Some(alias);
    }
    if let Some(blocked) = request.blocked {
        row.blocked = blocked;
    }
    if let Some(metadata) = request.metadata {
        row.metadata = Value::Object(metadata);
    }
    row.updated_at = now;
    Ok(row)
}

/// A membership row.
pub fn membership(team_id: &str, user_id: &str, role: TeamRole, budget: Option<i64>, now: i64) -> MembershipRow {
    MembershipRow {
        team_id: team_id.to_owned(),
        user_id: user_id.to_owned(),
        role: role.as_str().to_owned(),
        max_budget_nanos: budget,
        created_at: now,
    }
}

/// A stored membership's role (an unknown stored value counts as a plain member: least power).
pub fn stored_role(row: &MembershipRow) -> TeamRole {
    TeamRole::parse(&row.role).unwrap_or(TeamRole::Member)
}

/// A member as `members_with_roles` shows it.
#[derive(Debug, Serialize)]
pub struct MemberInfo {
    pub role: &'static str,
    pub user_id: String,
    pub user_email: Option<String>,
    /// USD: the member's budget within the team, over the team's period.
    pub max_budget_in_team: Option<f64>,
}

/// A team as the management API shows it.
#[derive(Debug, Serialize)]
pub struct TeamInfo {
    pub team_id: String,
    pub team_alias: Option<String>,
    pub models: Vec<String>,
    pub blocked: bool,
    pub metadata: Value,
    pub members_with_roles: Vec<MemberInfo>,
    /// USD.
    pub max_budget: Option<f64>,
    pub soft_budget: Option<f64>,
    pub budget_duration: Option<String>,
    /// The end of the current budget period (ISO 8601); null without `budget_duration`.
    pub budget_reset_at: Option<String>,
    /// USD spent by the team's keys in the current budget period (its lifetime without `budget_duration`).
    pub spend: f64,
    /// Shared by every key of the team; null: no limit.
    pub rpm_limit: Option<i64>,
    pub tpm_limit: Option<i64>,
    pub max_parallel_requests: Option<i64>,
    pub created_at: String,
    pub updated_at: String,
}

impl TeamInfo {
    pub fn of(row: &TeamRow, members: Vec<MemberInfo>) -> TeamInfo {
        TeamInfo {
            team_id: row.team_id.clone(),
            team_alias: row.team_alias.clone(),
            models: string_list(&row.models),
            blocked: row.blocked,
            metadata: row.metadata.clone(),
            members_with_roles: members,
            max_budget: super::budgets::usd(row.max_budget_nanos),
            soft_budget: super::budgets::usd(row.soft_budget_nanos),
            budget_duration: row.budget_duration.clone(),
            budget_reset_at: None,
            spend: 0.0,
            rpm_limit: row.rpm_limit,
            tpm_limit: row.tpm_limit,
            max_parallel_requests: row.max_parallel_requests,
            created_at: super::period::iso8601(row.created_at),
            updated_at: super::period::iso8601(row.updated_at),
        }
    }
}

/// A key in a team may name only models the team may call: `key_models` ⊆ `team_models` (an empty team list, or
/// one holding `all-proxy-models`, allows all; an empty key list means "the team's").
pub fn models_within_team(team_id: &str, key_models: &[String], team_models: &[String]) -> Result<(), AccessError> {
    if team_models.is_empty() || team_models.iter().any(|m| m == ALL_MODELS) {
        return Ok(());
    }
    let outside: Vec<&str> = key_models.iter().filter(|m| !team_models.contains(m)).map(String::as_str).collect();
    if outside.is_empty() {
        return Ok(());
    }
    Err(AccessError::Forbidden(format!(
        "models outside team {team_id}'s models: {} (the team may call {})",
        outside.join(", "),
        team_models.join(", ")
    )))
}

/// Limits of a key or a team, as far as a key's must stay within its team's. `None`: no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    pub max_budget_nanos: Option<i64>,
    pub rpm_limit: Option<i64>,
    pub tpm_limit: Option<i64>,
    pub max_parallel_requests: Option<i64>,
}

impl Limits {
    pub fn of_key(row: &crate::store::keys::KeyRow) -> Limits {
        Limits {
            max_budget_nanos: row.max_budget_nanos,
            rpm_limit: row.rpm_limit,
            tpm_limit: row.tpm_limit,
            max_parallel_requests: row.max_parallel_requests,
        }
    }

    pub fn of_team(row: &TeamRow) -> Limits {
        Limits {
            max_budget_nanos: row.max_budget_nanos,
            rpm_limit: row.rpm_limit,
            tpm_limit: row.tpm_limit,
            max_parallel_requests: row.max_parallel_requests,
        }
    }
}

/// A key in a team may not ask for more than the team has: each limit the team sets bounds the key's (a key
/// without that limit is bound by the team's anyway, at request time). Checked when a key is made, or its team,
/// models or budget change (`http/keys.rs`).
pub fn limits_within_team(team_id: &str, key: &Limits, team: &Limits) -> Result<(), AccessError> {
    let pairs = [
        ("max_budget", key.max_budget_nanos, team.max_budget_nanos),
        ("rpm_limit", key.rpm_limit, team.rpm_limit),
        ("tpm_limit", key.tpm_limit, team.tpm_limit),
        ("max_parallel_requests", key.max_parallel_requests, team.max_parallel_requests),
    ];
    let over: Vec<String> = pairs
        .iter()
        .filter_map(|(name, k, t)| match (k, t) {
            (Some(k), Some(t)) if k > t && *name == "max_budget" => Some(format!(
                "max_budget {} > the team's {}",
                crate::budgets::usd(u64::try_from(*k).unwrap_or(0)),
                crate::budgets::usd(u64::try_from(*t).unwrap_or(0))
            )),
            (Some(k), Some(t)) if k > t => Some(format!("{name} {k} > the team's {t}")),
            _ => None,
        })
        .collect();
    if over.is_empty() {
        return Ok(());
    }
    Err(AccessError::Forbidden(format!("limits above team {team_id}'s: {}", over.join(", "))))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_796_022_310;

    fn strings(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn key_models_stay_within_the_teams() {
        let cases: &[(&[&str], &[&str], Option<&str>)] = &[
            (&["a"], &[], None),
            (&["z"], &[ALL_MODELS], None),
            (&[], &["a", "b"], None),
            (&["a"], &["a", "b"], None),
            (&["a", "c", "d"], &["a", "b"], Some("models outside team t's models: c, d (the team may call a, b)")),
            (&[ALL_MODELS], &["a"], Some("all-proxy-models")),
        ];
        for (key, team, refused) in cases {
            let got = models_within_team("t", &strings(key), &strings(team));
            match refused {
                None => assert_eq!(got, Ok(()), "{key:?} {team:?}"),
                Some(says) => {
                    let err = got.err().unwrap_or(AccessError::StoreUnavailable);
                    assert_eq!(err.status(), 403);
                    assert!(err.to_string().contains(says), "{err}");
                }
            }
        }
    }

    #[test]
    fn key_limits_stay_within_the_teams() {
        let l = |b, r, t, p| Limits { max_budget_nanos: b, rpm_limit: r, tpm_limit: t, max_parallel_requests: p };
        let cases = [
            (l(None, None, None, None), l(Some(5), Some(5), Some(5), Some(5)), None),
            (l(Some(5), Some(5), Some(5), Some(5)), l(Some(5), Some(5), Some(5), Some(5)), None),
            (l(Some(9), None, None, None), l(None, None, None, None), None),
            (
                l(Some(6_000_000_000), None, None, None),
                l(Some(5_000_000_000), None, None, None),
                Some("max_budget $6.00 > the team's $5.00"),
            ),
            (
                l(None, Some(11), Some(1), Some(3)),
                l(None, Some(10), Some(100), Some(2)),
                Some("limits above team t's: rpm_limit 11 > the team's 10, max_parallel_requests 3 > the team's 2"),
            ),
        ];
        for (key, team, refused) in cases {
            let got = limits_within_team("t", &key, &team);
            match refused {
                None => assert_eq!(got, Ok(()), "{key:?} {team:?}"),
                Some(says) => assert!(got.err().is_some_and(|e| e.to_string().contains(says)), "{key:?}"),
            }
        }
    }

    #[test]
    fn team_requests_refuse_unenforced_fields_and_build_rows() {
        let refused =
            TeamRequest::parse(br#"{"max_budget":1,"rpm_limit":2,"tags":["x"]}"#).err().map(|e| e.to_string());
        assert!(refused.is_some_and(|m| m.contains("not supported yet: tags (")));
        let limited =
            TeamRequest::parse(br#"{"rpm_limit":2,"tpm_limit":300,"max_parallel_requests":1}"#).unwrap_or_default();
        let row = new_team(&limited, NOW).unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!((row.rpm_limit, row.tpm_limit, row.max_parallel_requests), (Some(2), Some(300), Some(1)));
        let info = TeamInfo::of(&row, vec![]);
        assert_eq!((info.rpm_limit, info.tpm_limit, info.max_parallel_requests), (Some(2), Some(300), Some(1)));
        let lower = TeamRequest::parse(br#"{"rpm_limit":1}"#).unwrap_or_default();
        let row = updated_team(row, lower, NOW).unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!((row.rpm_limit, row.tpm_limit), (Some(1), Some(300)), "unset limits keep their value");
        for bad in [br#"{"rpm_limit":-1}"#.as_slice(), br#"{"tpm_limit":1.5}"#, br#"{"max_parallel_requests":"2"}"#] {
            let err = TeamRequest::parse(bad).and_then(|r| new_team(&r, NOW)).err();
            assert_eq!(err.as_ref().map(AccessError::status), Some(400), "{}", String::from_utf8_lossy(bad));
            assert_eq!(err.as_ref().map(AccessError::code), Some("invalid_value"));
        }
        assert!(TeamRequest::parse(br#"{"nope":1}"#).is_err());
        let request = TeamRequest::parse(
            br#"{"team_alias":"ml","models":["a"],"members_with_roles":[{"role":"admin","user_id":"u"}]}"#,
        )
        .unwrap_or_default();
        let row = new_team(&request, NOW).unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(row.team_id.len(), 36, "a UUID");
        assert_eq!(string_list(&row.models), ["a"]);
        let members = request.members_with_roles.unwrap_or_default();
        assert_eq!(members[0].team_role(), Ok(TeamRole::Admin));
        let change = TeamRequest::parse(br#"{"blocked":true}"#).unwrap_or_default();
        let row = updated_team(row, change, NOW + 1).unwrap_or_else(|e| unreachable!("{e}"));
        assert!(row.blocked && row.team_alias.as_deref() == Some("ml") && row.updated_at == NOW + 1);
        let add =
            MemberAdd::parse(br#"{"team_id":"t","member":[{"user_email":"a@x"},{"user_id":"b","role":"admin"}]}"#)
                .map(|m| m.members().len());
        assert_eq!(add.ok(), Some(2));
        assert!(MemberAdd::parse(br#"{"team_id":"t","member":{"user_id":"b"},"max_budget_in_team":5}"#).is_ok());
        assert!(MemberAdd::parse(br#"{"team_id":"t","member":{"user_id":"b"},"max_budget_in_team":-5}"#).is_err());
    }
}
