//! Signing in and onboarding: `POST /login` (a user's email or id and password, or LiteLLM's `admin` with the
//! master key) opens a session: an HttpOnly, SameSite=Strict cookie with an opaque random token (stored hashed,
//! expiring) and, in the answer, the CSRF token its writes must carry in `x-csrf-token`. `POST /logout` ends it.
//! `POST /invitation/new` (proxy admins) makes a one-time invitation; `POST /onboarding/claim_token` (LiteLLM's
//! route) lets the invited user set a password with it, once, then sign in.

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

use super::{
    keys::{logged, read, MAX_BODY},
    principal::{session_token, store_error},
    users::hash_password,
    AppState,
};
use crate::{
    access::{
        password, period,
        roles::{Route, UserRole},
        session,
        teams::parse_json,
        users::{self, ClaimRequest, InvitationRequest, Login, UserInfo},
        AccessError,
    },
    clock,
    error::ApiError,
    pipeline::body,
    store::users::{InvitationRow, SessionRow},
};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/login", web::post().to(login))
        .route("/logout", web::post().to(logout))
        .route("/invitation/new", web::post().to(invitation_new))
        .route("/onboarding/claim_token", web::post().to(claim_token));
}

fn management_on(state: &AppState) -> Result<(), ApiError> {
    match state.master_key {
        Some(_) => Ok(()),
        None => Err(AccessError::Forbidden(
            "signing in needs general_settings.master_key: management is off on an open gateway".into(),
        )
        .into()),
    }
}

async fn body_of(req: &HttpRequest, payload: web::Payload, state: &AppState) -> Result<web::Bytes, ApiError> {
    let length = req.headers().get("content-length").and_then(|v| v.to_str().ok()?.parse().ok());
    body::read(payload, length, MAX_BODY, state.request_body_timeout).await
}

async fn login(req: HttpRequest, payload: web::Payload, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    logged(&req, async || {
        management_on(&state)?;
        let login = Login::parse(&body_of(&req, payload, &state).await?)?;
        let store = state.keys.store();
        let (user_id, role) = match login.name() {
            None => {
                let master = state.master_key.as_ref().ok_or(AccessError::BadCredentials)?;
                if !master.matches(&login.password) {
                    return Err(AccessError::BadCredentials.into());
                }
                (None, UserRole::ProxyAdmin.as_str().to_owned())
            }
            Some(name) => {
                let user = match store.user_by_email(name).await.map_err(store_error)? {
                    Some(user) => Some(user),
                    None => store.user_by_id(name).await.map_err(store_error)?,
                };
                let phc = user.as_ref().and_then(|u| u.password_hash.clone());
                let password = login.password;
                // Checked (or a dummy hash checked) whether or not the user exists: the time tells nothing.
                let ok = web::block(move || password::verify(&password, phc.as_deref())).await.unwrap_or(false);
                match user.filter(|u| ok && u.status == users::ACTIVE) {
                    Some(u) => (Some(u.user_id), u.user_role),
                    None => return Err(AccessError::BadCredentials.into()),
                }
            }
        };
        let now = clock::unix_secs();
        store.delete_expired_sessions(now).await.map_err(store_error)?;
        let token = session::new_token();
        let expires_at = now + session::SESSION_TTL_SECS;
        let row = SessionRow {
            token_hash: session::token_hash(&token),
            user_id: user_id.clone(),
            expires_at,
            created_at: now,
        };
        store.insert_session(row).await.map_err(store_error)?;
        tracing::info!(user = user_id.as_deref().unwrap_or("proxy_admin"), "signed in");
        let secure = req.connection_info().scheme() == "https";
        Ok(HttpResponse::Ok().insert_header(("set-cookie", session::set_cookie(&token, secure))).json(json!({
            "user_id": user_id.as_deref().unwrap_or("admin"),
            "user_role": role,
            "csrf_token": session::csrf_token(&token),
            "expires_at": period::iso8601(expires_at),
        })))
    })
    .await
}

async fn logout(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    logged(&req, async || {
        if let Some(token) = session_token(&req) {
            state.keys.store().delete_session(&session::token_hash(&token)).await.map_err(store_error)?;
        }
        Ok(HttpResponse::Ok()
            .insert_header(("set-cookie", session::clear_cookie()))
            .json(json!({"status": "signed out"})))
    })
    .await
}

async fn invitation_new(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    logged(&req, async || {
        let (principal, _, bytes) = read(&req, payload, &state, Route::InvitationNew).await?;
        let request: InvitationRequest = parse_json(&bytes)?;
        let store = state.keys.store();
        if store.user_by_id(&request.user_id).await.map_err(store_error)?.is_none() {
            return Err(AccessError::bad_input("user_id", format!("no user {}", request.user_id)).into());
        }
        let id = session::new_token();
        let now = clock::unix_secs();
        let row = InvitationRow {
            id_hash: session::token_hash(&id),
            user_id: request.user_id.clone(),
            expires_at: now + session::INVITATION_TTL_SECS,
            accepted_at: None,
            created_by: Some(principal.name().to_owned()),
            created_at: now,
        };
        store.insert_invitation(row.clone()).await.map_err(store_error)?;
        tracing::info!(user = %row.user_id, by = %principal.name(), "invitation created");
        // The id is shown this once: the store keeps its hash.
        Ok(HttpResponse::Ok().json(json!({
            "id": id,
            "user_id": row.user_id,
            "is_accepted": false,
            "accepted_at": null,
            "expires_at": period::iso8601(row.expires_at),
            "created_at": period::iso8601(now),
            "created_by": row.created_by,
            "updated_at": period::iso8601(now),
            "updated_by": row.created_by,
            "link": format!("/onboarding?invitation_id={id}"),
        })))
    })
    .await
}

async fn claim_token(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    logged(&req, async || {
        management_on(&state)?;
        let claim: ClaimRequest = parse_json(&body_of(&req, payload, &state).await?)?;
        let refused = || -> ApiError {
            AccessError::bad_input("invitation_link", "this invitation is unknown, expired or already used").into()
        };
        let store = state.keys.store();
        let id_hash = session::token_hash(claim.invitation_id());
        let now = clock::unix_secs();
        let invitation = store.invitation_by_hash(&id_hash).await.map_err(store_error)?;
        let Some(invitation) = invitation
            .filter(|i| i.accepted_at.is_none() && session::live(i.expires_at, now) && i.user_id == claim.user_id)
        else {
            return Err(refused());
        };
        let user = store.user_by_id(&invitation.user_id).await.map_err(store_error)?.ok_or_else(refused)?;
        let hash = hash_password(claim.password).await?;
        let user = users::updated_user(user, &users::UserRequest::default(), Some(hash), now)?;
        if !store.claim_invitation(&id_hash, now, user.clone()).await.map_err(store_error)? {
            return Err(refused());
        }
        store.delete_user_sessions(&user.user_id).await.map_err(store_error)?;
        tracing::info!(user = %user.user_id, "invitation claimed: password set");
        Ok(HttpResponse::Ok().json(UserInfo::of(&user, Vec::new())))
    })
    .await
}
