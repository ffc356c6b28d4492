//! Who may call: virtual keys (generated, stored hashed, cached for the request path) beside the master key, and
//! the refusals a caller can get. `token.rs` makes and hashes key values, `period.rs` reads durations, `cache.rs`
//! is the request path's view of the store's keys.
//!
//! Contract: a cached key costs a hash-map read under a read lock (atomics, never held across an await); only a
//! miss waits, single-flight and within a deadline (`cache.rs`).

pub mod budgets;
pub mod cache;
pub mod declared;
pub mod end_users;
pub mod manage;
pub mod password;
pub mod period;
pub mod roles;
pub mod session;
pub mod teams;
pub mod token;
pub mod users;

use std::sync::Arc;

use serde_json::Value;

use self::token::KeyHash;
use crate::{
    limits::Limits,
    store::{keys::KeyRow, teams::TeamRow, users::UserRow},
};

/// LiteLLM's value in a key's `models` that means every model.
pub const ALL_MODELS: &str = "all-proxy-models";

/// What the request path knows of a virtual key.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyRecord {
    pub hash: KeyHash,
    /// `sk-...abcd`: safe to log and show.
    pub name: String,
    pub alias: Option<String>,
    pub user_id: Option<String>,
    pub team_id: Option<String>,
    /// Model groups the key may call; empty (or [`ALL_MODELS`]) means all.
    pub models: Vec<String>,
    /// Unix seconds.
    pub expires_at: Option<i64>,
    pub blocked: bool,
    /// `rpm_limit`, `tpm_limit`, `max_parallel_requests`, `model_rpm_limit`, `model_tpm_limit`.
    pub limits: Limits,
    /// What the request path needs of the key's team (loaded with the key, dropped with it on a team change).
    pub team: Option<TeamGrant>,
    /// The rate limits of the key's owner (`user_id`), shared by every key the user owns; empty without an owner
    /// (or when the owner's row is gone). Loaded with the key, dropped with it on a user change.
    pub user_limits: Limits,
    /// The budgets the key is bound by (its own, its team's, its user's, its membership's), with the stored spend
    /// of their current periods at load.
    pub budgets: Vec<crate::budgets::Charge>,
    /// The key's budgets per model group (`model_max_budget`).
    pub model_budgets: std::collections::BTreeMap<String, crate::budgets::Charge>,
}

/// A team as the request path sees it through one of its keys.
#[derive(Debug, Clone, PartialEq)]
pub struct TeamGrant {
    pub team_id: String,
    /// Model groups the team may call; empty (or [`ALL_MODELS`]) means all.
    pub models: Vec<String>,
    pub blocked: bool,
    /// How limit refusals name the team: its alias, else its id.
    pub name: String,
    /// The team's `rpm_limit`, `tpm_limit`, `max_parallel_requests`, shared by every key of the team.
    pub limits: Limits,
}

impl TeamGrant {
    pub fn from_row(row: &TeamRow) -> TeamGrant {
        TeamGrant {
            team_id: row.team_id.clone(),
            models: string_list(&row.models),
            blocked: row.blocked,
            name: row.team_alias.clone().filter(|a| !a.is_empty()).unwrap_or_else(|| row.team_id.clone()),
            limits: entity_limits(row.rpm_limit, row.tpm_limit, row.max_parallel_requests),
        }
    }
}

/// The limits a team, user or end user row stores (negative values, never stored by the API, count as none).
pub fn entity_limits(rpm: Option<i64>, tpm: Option<i64>, max_parallel: Option<i64>) -> Limits {
    let count = |n: Option<i64>| n.and_then(|n| u64::try_from(n).ok());
    Limits { rpm: count(rpm), tpm: count(tpm), max_parallel: count(max_parallel), ..Limits::default() }
}

/// Whether a model list (empty or holding [`ALL_MODELS`]: every model) lets `model` through.
pub fn list_allows(models: &[String], model: &str) -> bool {
    models.is_empty() || models.iter().any(|m| m == model || m == ALL_MODELS)
}

impl KeyRecord {
    /// The request path's record of a key row, its team's row and its owner's row. A key whose team row is
    /// missing (deleted between two reads) gets a blocked grant: it must not outlive its team's restrictions.
    pub fn from_rows(row: &KeyRow, team: Option<&TeamRow>, owner: Option<&UserRow>) -> Option<KeyRecord> {
        let grant = match (&row.team_id, team) {
            (None, _) => None,
            (Some(_), Some(t)) => Some(TeamGrant::from_row(t)),
            (Some(id), None) => Some(TeamGrant {
                team_id: id.clone(),
                models: Vec::new(),
                blocked: true,
                name: id.clone(),
                limits: Limits::default(),
            }),
        };
        let mut record = KeyRecord::from_row(row)?;
        record.team = grant;
        if let Some(user) = owner.filter(|u| row.user_id.as_deref() == Some(u.user_id.as_str())) {
            record.user_limits = entity_limits(user.rpm_limit, user.tpm_limit, user.max_parallel_requests);
        }
        Some(record)
    }

    pub fn from_row(row: &KeyRow) -> Option<KeyRecord> {
        Some(KeyRecord {
            hash: KeyHash::from_hex(&row.token_hash)?,
            name: row.key_name.clone(),
            alias: row.key_alias.clone(),
            user_id: row.user_id.clone(),
            team_id: row.team_id.clone(),
            models: string_list(&row.models),
            expires_at: row.expires_at,
            blocked: row.blocked,
            team: None,
            user_limits: Limits::default(),
            budgets: Vec::new(),
            model_budgets: std::collections::BTreeMap::new(),
            limits: Limits {
                rpm: row.rpm_limit.and_then(|n| u64::try_from(n).ok()),
                tpm: row.tpm_limit.and_then(|n| u64::try_from(n).ok()),
                max_parallel: row.max_parallel_requests.and_then(|n| u64::try_from(n).ok()),
                model_rpm: count_map(&row.model_rpm_limit),
                model_tpm: count_map(&row.model_tpm_limit),
            },
        })
    }

    /// How limit refusals name the key: its alias when it has one, else `sk-...abcd`.
    pub fn shown_name(&self) -> &str {
        self.alias.as_deref().unwrap_or(&self.name)
    }

    /// Whether the key may be used at `now` (Unix seconds): not blocked, not expired, its team not blocked.
    pub fn usable(&self, now: i64) -> Result<(), AccessError> {
        if self.blocked {
            return Err(AccessError::KeyBlocked { name: self.name.clone() });
        }
        if let Some(team) = self.team.as_ref().filter(|t| t.blocked) {
            return Err(AccessError::TeamBlocked { name: self.name.clone(), team_id: team.team_id.clone() });
        }
        match self.expires_at {
            Some(at) if at <= now => Err(AccessError::KeyExpired { name: self.name.clone(), at }),
            _ => Ok(()),
        }
    }

    /// The key's models ∩ its team's models.
    pub fn allows_model(&self, model: &str) -> bool {
        list_allows(&self.models, model) && self.team.as_ref().is_none_or(|t| list_allows(&t.models, model))
    }

    /// [`KeyRecord::allows_model`] as the refusal a caller gets.
    pub fn check_model(&self, model: &str) -> Result<(), AccessError> {
        if self.allows_model(model) {
            Ok(())
        } else {
            Err(AccessError::ModelNotAllowed { name: self.name.clone(), model: model.to_owned() })
        }
    }
}

/// A JSON array of strings as a list (anything else: empty).
pub fn string_list(value: &Value) -> Vec<String> {
    value.as_array().into_iter().flatten().filter_map(|v| v.as_str().map(str::to_owned)).collect()
}

/// A JSON object of non-negative integers (`{"gpt-4o": 10}`) as a map; other entries are skipped (the
/// management API stores only valid ones).
pub fn count_map(value: &Value) -> std::collections::BTreeMap<String, u64> {
    let entries = value.as_object().into_iter().flatten();
    entries.filter_map(|(k, v)| Some((k.clone(), v.as_u64()?))).collect()
}

/// The caller of a proxied request.
#[derive(Debug, Clone)]
pub enum Caller {
    /// The master key, or anyone when no master key is configured.
    Admin,
    Key(Arc<KeyRecord>),
}

impl Caller {
    pub fn key(&self) -> Option<&KeyRecord> {
        match self {
            Caller::Admin => None,
            Caller::Key(k) => Some(k),
        }
    }

    /// Refuses `model` when the caller's key may not call it.
    pub fn check_model(&self, model: &str) -> Result<(), AccessError> {
        self.key().map_or(Ok(()), |k| k.check_model(model))
    }
}

/// Why a caller was refused, or a management request could not be done.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AccessError {
    #[error("the API key {name} has expired (at {}); ask for a new key", period::iso8601(*at))]
    KeyExpired { name: String, at: i64 },
    #[error("the API key {name} is blocked; an admin can unblock it")]
    KeyBlocked { name: String },
    #[error("the team {team_id} of the API key {name} is blocked; a proxy admin can unblock it")]
    TeamBlocked { name: String, team_id: String },
    #[error("the end user `{id}` (the request's `user`) is blocked; an admin can unblock it")]
    EndUserBlocked { id: String },
    #[error("the API key {name} may not call model `{model}`")]
    ModelNotAllowed { name: String, model: String },
    #[error("the key store could not be reached in time to check this API key; retry shortly")]
    StoreUnavailable,
    #[error("{message}")]
    BadInput { param: Option<String>, message: String },
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotSupportedYet(String),
    /// A cookie-authenticated write without its session's `x-csrf-token`.
    #[error("this request needs the x-csrf-token header /login answered with (cookie-authenticated writes)")]
    CsrfInvalid,
    /// Sign-in refused: wrong name or password (which one is not said).
    #[error("invalid username or password")]
    BadCredentials,
    #[error("internal error: {0}")]
    Internal(&'static str),
}

impl AccessError {
    pub fn bad_input(param: &str, message: impl Into<String>) -> AccessError {
        AccessError::BadInput { param: Some(param.to_owned()), message: message.into() }
    }

    pub fn status(&self) -> u16 {
        match self {
            Self::KeyExpired { .. } | Self::BadCredentials => 401,
            Self::KeyBlocked { .. }
            | Self::TeamBlocked { .. }
            | Self::EndUserBlocked { .. }
            | Self::ModelNotAllowed { .. }
            | Self::Forbidden(_)
            | Self::CsrfInvalid => 403,
            Self::Internal(_) => 500,
            Self::StoreUnavailable => 503,
            Self::BadInput { .. } | Self::NotSupportedYet(_) => 400,
            Self::NotFound(_) => 404,
        }
    }

    /// `error.type`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::KeyExpired { .. } | Self::BadCredentials => "authentication_error",
            Self::KeyBlocked { .. }
            | Self::TeamBlocked { .. }
            | Self::EndUserBlocked { .. }
            | Self::ModelNotAllowed { .. }
            | Self::Forbidden(_)
            | Self::CsrfInvalid => "permission_error",
            Self::Internal(_) => "internal_error",
            Self::StoreUnavailable => "service_unavailable",
            Self::BadInput { .. } | Self::NotSupportedYet(_) | Self::NotFound(_) => "invalid_request_error",
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::KeyExpired { .. } => "key_expired",
            Self::KeyBlocked { .. } => "key_blocked",
            Self::TeamBlocked { .. } => "team_blocked",
            Self::CsrfInvalid => "csrf_token_invalid",
            Self::BadCredentials => "invalid_credentials",
            Self::Internal(_) => "internal_error",
            Self::EndUserBlocked { .. } => "end_user_blocked",
            Self::ModelNotAllowed { .. } => "model_not_allowed",
            Self::StoreUnavailable => "store_unavailable",
            Self::BadInput { .. } => "invalid_value",
            Self::NotFound(_) => "not_found",
            Self::Forbidden(_) => "forbidden",
            Self::NotSupportedYet(_) => "not_supported_yet",
        }
    }

    pub fn param(&self) -> Option<&str> {
        match self {
            Self::BadInput { param, .. } => param.as_deref(),
            _ => None,
        }
    }

    /// A store outage is ours (ERROR); every other refusal is the caller's (WARN).
    pub fn is_fault(&self) -> bool {
        matches!(self, Self::StoreUnavailable | Self::Internal(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(models: &[&str], expires_at: Option<i64>, blocked: bool) -> KeyRecord {
        KeyRecord {
            hash: KeyHash::of("sk-x"),
            name: "sk-...abcd".into(),
            alias: None,
            user_id: None,
            team_id: None,
            models: models.iter().map(|m| (*m).to_owned()).collect(),
            expires_at,
            blocked,
            team: None,
            user_limits: Limits::default(),
            budgets: Vec::new(),
            model_budgets: Default::default(),
            limits: Limits::default(),
        }
    }

    #[test]
    fn a_key_is_usable_unless_blocked_or_expired() {
        assert_eq!(key(&[], None, false).usable(100), Ok(()));
        assert_eq!(key(&[], Some(101), false).usable(100), Ok(()));
        assert!(matches!(key(&[], Some(100), false).usable(100), Err(AccessError::KeyExpired { at: 100, .. })));
        assert!(matches!(key(&[], None, true).usable(100), Err(AccessError::KeyBlocked { .. })));
    }

    #[test]
    fn models_restrict_unless_empty_or_all() {
        let cases: &[(&[&str], &str, bool)] = &[
            (&[], "gpt-4o", true),
            (&["gpt-4o"], "gpt-4o", true),
            (&["gpt-4o"], "claude", false),
            (&[ALL_MODELS], "claude", true),
        ];
        for (models, model, ok) in cases {
            assert_eq!(key(models, None, false).allows_model(model), *ok, "{models:?} {model}");
        }
        let refused = key(&["a"], None, false).check_model("b").err().map(|e| (e.status(), e.code()));
        assert_eq!(refused, Some((403, "model_not_allowed")));
    }

    #[test]
    fn a_team_key_calls_the_intersection_and_stops_with_its_team() {
        let team = |models: &[&str], blocked| TeamGrant {
            team_id: "t".into(),
            models: models.iter().map(|m| (*m).to_owned()).collect(),
            blocked,
            name: "t".into(),
            limits: Limits::default(),
        };
        let in_team = |key_models: &[&str], t: TeamGrant| KeyRecord { team: Some(t), ..key(key_models, None, false) };
        let cases: &[(&[&str], &[&str], &str, bool)] = &[
            (&[], &[], "x", true),
            (&[], &["a", "b"], "a", true),
            (&[], &["a", "b"], "c", false),
            (&["a", "c"], &["a", "b"], "a", true),
            (&["a", "c"], &["a", "b"], "c", false),
            (&["a", "c"], &["a", "b"], "b", false),
            (&[ALL_MODELS], &["a"], "b", false),
            (&["a"], &[ALL_MODELS], "a", true),
        ];
        for (key_models, team_models, model, ok) in cases {
            let k = in_team(key_models, team(team_models, false));
            assert_eq!(k.allows_model(model), *ok, "{key_models:?} ∩ {team_models:?} {model}");
        }
        let blocked = in_team(&[], team(&[], true)).usable(0).err().map(|e| (e.status(), e.code()));
        assert_eq!(blocked, Some((403, "team_blocked")));
    }
}
