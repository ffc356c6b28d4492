//! The budgets a caller is bound by, as the request path needs them ([`Charge`]s): read from the rows of its key,
//! the key's team, user and membership, and its end user, with the spend the store holds for each budget's current
//! period. Also the management API's budget fields (USD, durations, `model_max_budget`) and their validation.
//!
//! A member's budget (`max_budget_in_team`) runs over its team's period (a membership has no duration of its own);
//! without a team period it is for the membership's lifetime.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use super::{period::Period, AccessError};
use crate::{
    budgets::{key_model_id, member_id, nanos_of_usd, usd_of_nanos, Budget, BudgetKind, Charge},
    store::{
        end_users::EndUserRow,
        keys::KeyRow,
        teams::{MembershipRow, TeamRow},
        users::UserRow,
        Store, StoreError,
    },
};

/// A budget from stored columns (`budget_duration` as the user wrote it; an unreadable one counts as none).
pub fn budget(max: Option<i64>, soft: Option<i64>, duration: Option<&str>, reset_at: Option<i64>) -> Budget {
    let nanos = |n: Option<i64>| n.and_then(|n| u64::try_from(n).ok());
    let period = duration.and_then(|d| Period::parse(d).ok());
    Budget { cap: nanos(max), soft: nanos(soft), period, anchor: period.and(reset_at) }
}

/// The budgets of a key's own row: `(the key's, per model group)`.
pub fn key_budgets(row: &KeyRow) -> (Budget, BTreeMap<String, Budget>) {
    let own = budget(row.max_budget_nanos, row.soft_budget_nanos, row.budget_duration.as_deref(), row.budget_reset_at);
    let per_model = row
        .model_max_budget
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(model, v)| {
            let cap = v.get("max_budget").and_then(Value::as_f64).and_then(nanos_of_usd)?;
            let duration = v.get("budget_duration").and_then(Value::as_str);
            let anchor = v.get("budget_reset_at").and_then(Value::as_i64);
            Some((model.clone(), budget(Some(cap), None, duration, anchor)))
        })
        .collect();
    (own, per_model)
}

fn team_budget(team: &TeamRow) -> Budget {
    budget(team.max_budget_nanos, team.soft_budget_nanos, team.budget_duration.as_deref(), team.budget_reset_at)
}

pub fn user_budget(user: &UserRow) -> Budget {
    budget(user.max_budget_nanos, None, user.budget_duration.as_deref(), user.budget_reset_at)
}

pub fn end_user_budget(row: &EndUserRow) -> Budget {
    budget(row.max_budget_nanos, None, row.budget_duration.as_deref(), row.budget_reset_at)
}

/// A member's budget: its cap over its team's period.
pub fn member_budget(member: &MembershipRow, team: Option<&TeamRow>) -> Budget {
    let team = team.map(team_budget).unwrap_or_default();
    Budget { cap: member.max_budget_nanos.and_then(|n| u64::try_from(n).ok()), soft: None, ..team }
}

/// What a key is bound by (besides an end user's budget): its own, its team's, its user's, its membership's
/// budgets (those set), and its budgets per model group.
pub struct KeyCharges {
    pub charges: Vec<Charge>,
    pub per_model: BTreeMap<String, Charge>,
}

/// The charges of a key and the rows around it; `name` is how refusals name the key.
pub fn key_charges(
    row: &KeyRow,
    name: &str,
    team: Option<&TeamRow>,
    user: Option<&UserRow>,
    member: Option<&MembershipRow>,
) -> KeyCharges {
    let charge = |kind, id: String, name: String, budget: Budget| Charge { kind, id, name, budget, stored: None };
    let (own, models) = key_budgets(row);
    let mut charges = Vec::new();
    if own.is_set() {
        charges.push(charge(BudgetKind::Key, row.token_hash.clone(), name.to_owned(), own));
    }
    if let Some(team) = team.filter(|t| team_budget(t).is_set()) {
        let shown = team.team_alias.clone().unwrap_or_else(|| team.team_id.clone());
        charges.push(charge(BudgetKind::Team, team.team_id.clone(), shown, team_budget(team)));
    }
    if let Some(user) = user.filter(|u| user_budget(u).is_set()) {
        charges.push(charge(BudgetKind::User, user.user_id.clone(), user.user_id.clone(), user_budget(user)));
    }
    if let Some(member) = member.filter(|m| m.max_budget_nanos.is_some()) {
        let id = member_id(&member.team_id, &member.user_id);
        let shown = format!("{} in team {}", member.user_id, member.team_id);
        charges.push(charge(BudgetKind::Member, id, shown, member_budget(member, team)));
    }
    let per_model = models
        .into_iter()
        .map(|(model, budget)| {
            let c = charge(
                BudgetKind::KeyModel,
                key_model_id(&row.token_hash, &model),
                format!("{name} for model `{model}`"),
                budget,
            );
            (model, c)
        })
        .collect();
    KeyCharges { charges, per_model }
}

/// Reads the store's spend of the charge's current period at `now` into it.
pub async fn load_spend(store: &Store, charge: &mut Charge, now: i64) -> Result<(), StoreError> {
    let (start, _) = charge.budget.window(now);
    let spent = store.spend(charge.kind, &charge.id, start).await?;
    charge.stored = Some((start, spent));
    Ok(())
}

/// A USD amount field (`max_budget`, `soft_budget`): a number, 0 or more, as nano-dollars.
pub fn usd_field(param: &str, value: Option<&Value>) -> Result<Option<i64>, AccessError> {
    let Some(value) = value.filter(|v| !v.is_null()) else { return Ok(None) };
    value
        .as_f64()
        .and_then(nanos_of_usd)
        .map(Some)
        .ok_or_else(|| AccessError::bad_input(param, format!("`{param}` must be an amount in USD, 0 or more")))
}

/// Writes a key's, team's, user's or end user's `max_budget` (nano-dollars), `soft_budget` (keys and teams: `soft`
/// is its column and field) and `budget_duration` (with its first reset) from a management request's fields,
/// checked in that order; unset ones keep their value, and a new duration starts a new period at `now`.
pub fn set_budget(
    (max_budget_nanos, duration, reset_at): (&mut Option<i64>, &mut Option<String>, &mut Option<i64>),
    soft: Option<(&mut Option<i64>, Option<&Value>)>,
    max_budget: Option<&Value>,
    budget_duration: Option<&Value>,
    now: i64,
) -> Result<(), AccessError> {
    if let Some(n) = usd_field("max_budget", max_budget)? {
        *max_budget_nanos = Some(n);
    }
    if let Some((soft_nanos, soft_budget)) = soft {
        if let Some(n) = usd_field("soft_budget", soft_budget)? {
            *soft_nanos = Some(n);
        }
    }
    if let Some((text, reset)) = duration_field(budget_duration, now)? {
        *duration = Some(text);
        *reset_at = Some(reset);
    }
    Ok(())
}

/// A `budget_duration` field: `(the duration as written, the first reset from now)`.
pub fn duration_field(value: Option<&Value>, now: i64) -> Result<Option<(String, i64)>, AccessError> {
    let Some(value) = value.filter(|v| !v.is_null()) else { return Ok(None) };
    let bad = |m: String| AccessError::bad_input("budget_duration", m);
    let text = value.as_str().ok_or_else(|| bad("`budget_duration` must be a string such as \"30d\"".into()))?;
    let period = Period::parse(text).map_err(|e| bad(e.to_string()))?;
    Ok(Some((text.trim().to_owned(), period.after(now))))
}

/// `model_max_budget` (`{"gpt-4o": {"max_budget": 1.0, "budget_duration": "1d"}}`) as stored: each entry with its
/// first reset (`budget_reset_at`, Unix seconds) added when it has a duration.
pub fn model_max_budget_field(value: Option<&Value>, now: i64) -> Result<Option<Value>, AccessError> {
    let Some(value) = value.filter(|v| !v.is_null()) else { return Ok(None) };
    let bad = || {
        AccessError::bad_input(
            "model_max_budget",
            "`model_max_budget` must map model names to {\"max_budget\": USD, \"budget_duration\": \"1d\"}",
        )
    };
    let entries = value.as_object().ok_or_else(bad)?;
    let mut out = Map::new();
    for (model, entry) in entries {
        if model.trim().is_empty() {
            return Err(bad());
        }
        let cap = usd_field("model_max_budget", entry.get("max_budget"))?.ok_or_else(bad)?;
        let mut stored = json!({ "max_budget": usd_of_nanos(cap) });
        if let Some((text, reset)) = duration_field(entry.get("budget_duration"), now)? {
            stored["budget_duration"] = json!(text);
            stored["budget_reset_at"] = json!(reset);
        }
        out.insert(model.clone(), stored);
    }
    Ok(Some(Value::Object(out)))
}

/// `model_max_budget` as the management API shows it (without the stored reset instants).
pub fn model_max_budget_shown(stored: &Value) -> Value {
    let entries = stored.as_object().into_iter().flatten();
    let shown: Map<String, Value> = entries
        .map(|(model, v)| {
            let mut v = v.clone();
            if let Some(o) = v.as_object_mut() {
                o.remove("budget_reset_at");
            }
            (model.clone(), v)
        })
        .collect();
    Value::Object(shown)
}

/// `max_budget` etc. as USD for answers.
pub fn usd(nanos: Option<i64>) -> Option<f64> {
    nanos.map(usd_of_nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_fields_are_checked_and_converted() {
        assert_eq!(usd_field("max_budget", Some(&json!(1.5))), Ok(Some(1_500_000_000)));
        assert_eq!(usd_field("max_budget", Some(&json!(null))), Ok(None));
        assert!(usd_field("max_budget", Some(&json!(-1))).is_err());
        assert!(usd_field("max_budget", Some(&json!("1"))).is_err());
        assert_eq!(duration_field(Some(&json!("1h")), 100), Ok(Some(("1h".into(), 3_700))));
        assert!(duration_field(Some(&json!("1w")), 100).is_err());
        let stored = model_max_budget_field(Some(&json!({"gpt-4o": {"max_budget": 1.0, "budget_duration": "1d"}})), 10);
        let stored = stored.ok().flatten().unwrap_or_default();
        assert_eq!(stored["gpt-4o"]["budget_reset_at"], 86_410);
        assert_eq!(model_max_budget_shown(&stored), json!({"gpt-4o": {"max_budget": 1.0, "budget_duration": "1d"}}));
        assert!(model_max_budget_field(Some(&json!({"m": {"budget_duration": "1d"}})), 0).is_err());
        assert!(model_max_budget_field(Some(&json!([1])), 0).is_err());
    }

    #[test]
    fn members_run_over_their_teams_period() {
        let b = budget(Some(5), None, Some("1d"), Some(86_400));
        assert_eq!((b.cap, b.period, b.anchor), (Some(5), Some(Period::Seconds(86_400)), Some(86_400)));
        assert_eq!(budget(Some(5), None, Some("nonsense"), Some(9)).anchor, None, "an unreadable duration: lifetime");
    }
}
