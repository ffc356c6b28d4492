//! Who calls a management route, and whether the role table lets them: the master key as a bearer token, or a
//! signed-in session's cookie (whose writes must carry the session's CSRF token). A virtual key is not a
//! management credential.
//!
//! Management routes are not the request path: a session costs a few store reads per call.

use actix_web::{http::Method, HttpRequest};

use super::AppState;
use crate::{
    access::{
        roles::{self, Principal, Route, Scope, TeamRole, UserRole},
        session, teams, users, AccessError,
    },
    clock,
    error::ApiError,
    pipeline::auth,
    store::StoreError,
};

/// The store failed: logged here with its cause, answered as 503 without it.
pub fn store_error(e: StoreError) -> ApiError {
    tracing::error!(error = %e, "management: store error");
    ApiError::Access(AccessError::StoreUnavailable)
}

/// The session token of the request's cookie, if any.
pub fn session_token(req: &HttpRequest) -> Option<String> {
    let header = req.headers().get("cookie")?.to_str().ok()?;
    session::from_cookie_header(header).map(str::to_owned)
}

/// The caller of a management route. With no master key configured, management is off: an open gateway has no
/// keys, teams or users to manage.
pub async fn principal(req: &HttpRequest, state: &AppState) -> Result<Principal, ApiError> {
    let Some(master) = state.master_key.as_ref() else {
        return Err(AccessError::Forbidden(
            "management needs general_settings.master_key: set one to create and manage keys, teams and users".into(),
        )
        .into());
    };
    if let Some(presented) = auth::presented_key(req.headers()) {
        return if master.matches(presented) { Ok(Principal::master()) } else { Err(ApiError::Unauthorized) };
    }
    let Some(token) = session_token(req) else { return Err(ApiError::Unauthorized) };
    let store = state.keys.store();
    let now = clock::unix_secs();
    let found = store.session_by_hash(&session::token_hash(&token)).await.map_err(store_error)?;
    let Some(row) = found.filter(|s| session::live(s.expires_at, now)) else { return Err(ApiError::Unauthorized) };
    let unsafe_method = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    let csrf = req.headers().get(session::CSRF_HEADER).and_then(|v| v.to_str().ok());
    if !session::csrf_ok(&token, unsafe_method, csrf) {
        return Err(AccessError::CsrfInvalid.into());
    }
    let Some(user_id) = row.user_id else { return Ok(Principal::master()) };
    let user = store.user_by_id(&user_id).await.map_err(store_error)?;
    let Some(user) = user.filter(|u| u.status == users::ACTIVE) else { return Err(ApiError::Unauthorized) };
    let role = UserRole::parse(&user.user_role).map_err(|_| AccessError::Internal("a stored user role is unknown"))?;
    let memberships = store.memberships_of(&user_id).await.map_err(store_error)?;
    let teams: Vec<(String, TeamRole)> =
        memberships.iter().map(|m| (m.team_id.clone(), teams::stored_role(m))).collect();
    Ok(Principal { user_id: Some(user_id), role, teams })
}

/// The caller, if the role table lets them call `route`, and the scope they may act in.
pub async fn authorize(req: &HttpRequest, state: &AppState, route: Route) -> Result<(Principal, Scope), ApiError> {
    let principal = principal(req, state).await?;
    let scope = roles::authorize(&principal, route)?;
    Ok((principal, scope))
}

/// Admin routes of the proxy itself (`/routing/explain`, `/config/reload`): the role table when a master key is
/// configured; open, as every route, when none is.
pub async fn authorize_proxy_route(req: &HttpRequest, state: &AppState, route: Route) -> Result<(), ApiError> {
    if state.master_key.is_none() {
        return Ok(());
    }
    authorize(req, state, route).await.map(|_| ())
}
