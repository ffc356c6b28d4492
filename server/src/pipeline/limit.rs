//! Rate-limit admission of a request: its key, the key's team, the key's owner (user) and its end user (the
//! body's `user`) against the gateway's limiter, once per request, before the first upstream call, all or nothing.
//! In-process this is locks held for a few comparisons; with Redis one script call within its deadline
//! (`limits::redis`).

use std::sync::Arc;

use crate::{
    access::{end_users::EndUserRecord, AccessError, Caller},
    error::ApiError,
    limits::{EntityKind, Limiter, Subject, Ticket},
};

/// Refuses a blocked end user; else admits the request to `model`, or refuses it (429) naming the limit. `None`:
/// nothing limits this request.
pub async fn admit(
    limiter: &Limiter,
    caller: &Caller,
    end_user: Option<&EndUserRecord>,
    model: &str,
) -> Result<Option<Arc<Ticket>>, ApiError> {
    if let Some(user) = end_user.filter(|u| u.blocked) {
        return Err(AccessError::EndUserBlocked { id: user.id.clone() }.into());
    }
    let key = caller.key();
    let own = key.filter(|k| !k.limits.is_empty());
    let team = key.and_then(|k| k.team.as_ref()).filter(|t| !t.limits.is_empty());
    let owner = key.filter(|k| !k.user_limits.is_empty()).and_then(|k| Some((k.user_id.as_deref()?, &k.user_limits)));
    let end_user = end_user.filter(|u| !u.limits.is_empty());
    if own.is_none() && team.is_none() && owner.is_none() && end_user.is_none() {
        return Ok(None);
    }
    let key_id = own.map(|k| k.hash.hex()).unwrap_or_default();
    let mut subjects = Vec::with_capacity(4);
    if let Some(k) = own {
        subjects.push(Subject { kind: EntityKind::Key, id: &key_id, name: k.shown_name(), limits: &k.limits });
    }
    if let Some(t) = team {
        subjects.push(Subject { kind: EntityKind::Team, id: &t.team_id, name: &t.name, limits: &t.limits });
    }
    if let Some((id, limits)) = owner {
        subjects.push(Subject { kind: EntityKind::User, id, name: id, limits });
    }
    if let Some(u) = end_user {
        subjects.push(Subject { kind: EntityKind::EndUser, id: &u.id, name: &u.id, limits: &u.limits });
    }
    limiter.admit(&subjects, model).await.map_err(ApiError::RateLimited)
}
