//! The user management API's requests and answers in LiteLLM's shapes (`/user/new`, `/user/update`,
//! `/user/info`, `/user/list`), sign-in and invitation bodies, and the rules from request to stored row.
//! Passwords arrive here in clear and leave only as argon2id PHC strings (`password.rs`); no answer carries one.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{
    roles::UserRole,
    teams::{parse_json, refuse_unenforced},
    AccessError,
};
use crate::store::users::UserRow;

pub const INVITED: &str = "invited";
pub const ACTIVE: &str = "active";

/// `/user/new`'s body (and, with `user_id` naming the user, `/user/update`'s).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserRequest {
    pub user_id: Option<String>,
    pub user_email: Option<String>,
    /// Default `internal_user`.
    pub user_role: Option<String>,
    /// Set now (the user is `active`), or later through an invitation (the user is `invited` until then).
    pub password: Option<String>,
    /// `/user/new`: teams to join as a member.
    pub teams: Option<Vec<String>>,
    pub metadata: Option<Map<String, Value>>,
    /// LiteLLM creates a key with each user unless told not to; tollgate does not (keys belong to teams here):
    /// `true` is refused.
    pub auto_create_key: Option<bool>,
    pub send_invite_email: Option<bool>,
    /// USD per period (`budget_duration`), or for the user's lifetime; binds every key the user owns.
    pub max_budget: Option<Value>,
    pub budget_duration: Option<Value>,
    /// Requests per minute, tokens per minute and requests in flight across every key the user owns.
    pub rpm_limit: Option<Value>,
    pub tpm_limit: Option<Value>,
    pub max_parallel_requests: Option<Value>,
    // Refused until enforced.
    pub models: Option<Value>,
}

impl UserRequest {
    pub fn parse(body: &[u8]) -> Result<UserRequest, AccessError> {
        let request: UserRequest = parse_json(body)?;
        let auto_key = request.auto_create_key.filter(|a| *a).map(Value::Bool);
        let invite = request.send_invite_email.filter(|a| *a).map(Value::Bool);
        refuse_unenforced(
            &[&request.models, &auto_key, &invite],
            &["models", "auto_create_key", "send_invite_email"],
            "users",
        )?;
        if let Some(role) = &request.user_role {
            UserRole::parse(role)?;
        }
        Ok(request)
    }
}

/// The row to store for `/user/new`, given the password's hash (`None`: invited).
pub fn new_user(request: &UserRequest, password_hash: Option<String>, now: i64) -> Result<UserRow, AccessError> {
    let user_id = match request.user_id.as_deref() {
        Some("") => return Err(AccessError::bad_input("user_id", "`user_id` must not be empty")),
        Some(id) => id.to_owned(),
        None => uuid::Uuid::new_v4().to_string(),
    };
    let role = UserRole::parse(request.user_role.as_deref().unwrap_or("internal_user"))?;
    let mut row = UserRow {
        user_id,
        email: request.user_email.clone().filter(|e| !e.is_empty()),
        user_role: role.as_str().to_owned(),
        status: if password_hash.is_some() { ACTIVE } else { INVITED }.to_owned(),
        password_hash,
        max_budget_nanos: None,
        budget_duration: None,
        budget_reset_at: None,
        metadata: Value::Object(request.metadata.clone().unwrap_or_default()),
        created_at: now,
        updated_at: now,
        rpm_limit: None,
        tpm_limit: None,
        max_parallel_requests: None,
    };
    set_budget(&mut row, request, now)?;
    set_limits(&mut row, request)?;
    Ok(row)
}

/// Writes the rate limits `request` sets into `row` (unset ones keep their value), validated as a key's are.
fn set_limits(row: &mut UserRow, request: &UserRequest) -> Result<(), AccessError> {
    let values = [request.rpm_limit.as_ref(), request.tpm_limit.as_ref(), request.max_parallel_requests.as_ref()];
    super::manage::set_rate_limits([&mut row.rpm_limit, &mut row.tpm_limit, &mut row.max_parallel_requests], values)
}

/// Writes the budget `request` sets into `row`; a new `budget_duration` starts a new period now.
fn set_budget(row: &mut UserRow, request: &UserRequest, now: i64) -> Result<(), AccessError> {
    let (max_budget, duration) = (request.max_budget.as_ref(), request.budget_duration.as_ref());
    super::budgets::set_budget(
        (&mut row.max_budget_nanos, &mut row.budget_duration, &mut row.budget_reset_at),
        None,
        max_budget,
        duration,
        now,
    )
}

/// `row` with the fields `request` sets changed (`/user/update`); a new password's hash comes separately.
pub fn updated_user(
    mut row: UserRow,
    request: &UserRequest,
    password_hash: Option<String>,
    now: i64,
) -> Result<UserRow, AccessError> {
    if request.teams.is_some() {
        return Err(AccessError::bad_input(
            "teams",
            "change a user's teams with /team/member_add and /team/member_delete",
        ));
    }
    if let Some(role) = &request.user_role {
        row.user_role = UserRole::parse(role)?.as_str().to_owned();
    }
    set_budget(&mut row, request, now)?;
    set_limits(&mut row, request)?;
    if let Some(email) = &request.user_email {
        row.email = Some(email.clone()).filter(|e| !e.is_empty());
    }
    if let Some(metadata) = &request.metadata {
        row.metadata = Value::Object(metadata.clone());
    }
    if let Some(hash) = password_hash {
        row.password_hash = Some(hash);
        row.status = ACTIVE.to_owned();
    }
    row.updated_at = now;
    Ok(row)
}

/// A user as the management API shows it: never a password or its hash.
#[derive(Debug, Serialize)]
pub struct UserInfo {
    pub user_id: String,
    pub user_email: Option<String>,
    pub user_role: String,
    /// `invited` (no password yet) or `active`.
    pub status: String,
    pub teams: Vec<String>,
    pub metadata: Value,
    /// USD.
    pub max_budget: Option<f64>,
    pub budget_duration: Option<String>,
    /// The end of the current budget period (ISO 8601); null without `budget_duration`.
    pub budget_reset_at: Option<String>,
    /// USD spent by the user's keys in the current budget period (its lifetime without `budget_duration`).
    pub spend: f64,
    /// Shared by every key the user owns; null: no limit.
    pub rpm_limit: Option<i64>,
    pub tpm_limit: Option<i64>,
    pub max_parallel_requests: Option<i64>,
    pub created_at: String,
    pub updated_at: String,
}

impl UserInfo {
    pub fn of(row: &UserRow, teams: Vec<String>) -> UserInfo {
        UserInfo {
            user_id: row.user_id.clone(),
            user_email: row.email.clone(),
            user_role: row.user_role.clone(),
            status: row.status.clone(),
            teams,
            metadata: row.metadata.clone(),
            max_budget: super::budgets::usd(row.max_budget_nanos),
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

/// `POST /login`: `username` (a user id or email, or LiteLLM's `admin` with the master key as password) or
/// `email`, and `password`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Login {
    pub username: Option<String>,
    pub email: Option<String>,
    pub password: String,
}

impl Login {
    pub fn parse(body: &[u8]) -> Result<Login, AccessError> {
        parse_json(body)
    }

    /// Who is signing in, `None` for the master key's `admin` (or no name at all).
    pub fn name(&self) -> Option<&str> {
        self.email.as_deref().or(self.username.as_deref()).filter(|n| !n.is_empty() && *n != "admin")
    }
}

/// `POST /invitation/new`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InvitationRequest {
    pub user_id: String,
}

/// `POST /onboarding/claim_token` (LiteLLM's): the invitation (its id, or the link holding it), the invited
/// user, and the password they choose.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimRequest {
    pub invitation_link: String,
    pub user_id: String,
    pub password: String,
}

impl ClaimRequest {
    /// The invitation id inside `invitation_link` (`...?invitation_id=ID`), or the link itself.
    pub fn invitation_id(&self) -> &str {
        let link = self.invitation_link.trim();
        link.rsplit_once("invitation_id=").map_or(link, |(_, id)| id.split('&').next().unwrap_or(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_users_are_invited_until_they_have_a_password() {
        let request = UserRequest::parse(br#"{"user_email":"a@x","teams":["t"]}"#).unwrap_or_default();
        let row = new_user(&request, None, 5).unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!((row.user_role.as_str(), row.status.as_str()), ("internal_user", INVITED));
        let row = updated_user(row, &UserRequest::default(), Some("$argon2id$x".into()), 6)
            .unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(row.status, ACTIVE);
        let info = serde_json::to_value(UserInfo::of(&row, vec![])).unwrap_or_default();
        assert!(!info.to_string().contains("argon2"), "{info}");
        let bad = UserRequest::parse(br#"{"user_role":"root"}"#).err().and_then(|e| e.param().map(str::to_owned));
        assert_eq!(bad.as_deref(), Some("user_role"));
        let refused = UserRequest::parse(br#"{"auto_create_key":true,"models":["a"]}"#).err().map(|e| e.to_string());
        assert!(refused.is_some_and(|m| m.contains("models, auto_create_key")));
        let limited = UserRequest::parse(br#"{"rpm_limit":3,"max_parallel_requests":2}"#).unwrap_or_default();
        let row = new_user(&limited, None, 5).unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!((row.rpm_limit, row.tpm_limit, row.max_parallel_requests), (Some(3), None, Some(2)));
        let more = UserRequest::parse(br#"{"tpm_limit":100}"#).unwrap_or_default();
        let row = updated_user(row, &more, None, 6).unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!((row.rpm_limit, row.tpm_limit), (Some(3), Some(100)), "unset limits keep their value");
        let info = serde_json::to_value(UserInfo::of(&row, vec![])).unwrap_or_default();
        assert_eq!((info["rpm_limit"].as_i64(), info["max_parallel_requests"].as_i64()), (Some(3), Some(2)));
        let bad = UserRequest::parse(br#"{"rpm_limit":-3}"#).and_then(|r| new_user(&r, None, 5)).err();
        assert_eq!(bad.and_then(|e| e.param().map(str::to_owned)).as_deref(), Some("rpm_limit"));
        let budgeted = UserRequest::parse(br#"{"max_budget":3,"budget_duration":"1d"}"#).unwrap_or_default();
        let row = new_user(&budgeted, None, 5).unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!((row.max_budget_nanos, row.budget_reset_at), (Some(3_000_000_000), Some(86_405)));
        assert!(UserRequest::parse(br#"{"auto_create_key":false}"#).is_ok());
    }

    #[test]
    fn sign_in_names_and_invitation_links() {
        let login = |b: &[u8]| Login::parse(b).ok().map(|l| l.name().map(str::to_owned));
        assert_eq!(login(br#"{"username":"admin","password":"p"}"#), Some(None));
        assert_eq!(login(br#"{"password":"p"}"#), Some(None));
        assert_eq!(login(br#"{"email":"a@x","password":"p"}"#), Some(Some("a@x".into())));
        assert_eq!(login(br#"{"username":"u1","password":"p"}"#), Some(Some("u1".into())));
        let claim =
            |link: &str| ClaimRequest { invitation_link: link.into(), user_id: "u".into(), password: "p".into() };
        assert_eq!(claim("abc").invitation_id(), "abc");
        assert_eq!(claim("/onboarding?invitation_id=abc&x=1").invitation_id(), "abc");
    }
}
