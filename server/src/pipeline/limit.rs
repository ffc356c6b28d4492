//! Rate-limit admission of a request: its key and its end user (the body's `user`; teams and users plug in as
//! further subjects) against the gateway's limiter, once per request, before the first upstream call. In-process
//! this is locks held for a few comparisons; with Redis one script call within its deadline (`limits::redis`).

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
    let key = caller.key().filter(|k| !k.limits.is_empty());
    let user = end_user.filter(|u| !u.limits.is_empty());
    if key.is_none() && user.is_none() {
        return Ok(None);
    }
    let key_id = key.map(|k| k.hash.hex()).unwrap_or_default();
    let mut subjects = Vec::with_capacity(2);
    if let Some(k) = key {
        subjects.push(Subject { kind: EntityKind::Key, id: &key_id, name: k.shown_name(), limits: &k.limits });
    }
    if let Some(u) = user {
        subjects.push(Subject { kind: EntityKind::EndUser, id: &u.id, name: &u.id, limits: &u.limits });
    }
    limiter.admit(&subjects, model).await.map_err(ApiError::RateLimited)
}
