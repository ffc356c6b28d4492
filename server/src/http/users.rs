//! The user management routes, LiteLLM's paths and shapes: `/user/new`, `/user/update`, `/user/delete`,
//! `/user/info`, `/user/list`. Who may call them is `access::roles`'s table (a user may read itself). Passwords
//! are hashed off the async workers and never answered.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::{
    keys::{logged, read},
    principal::{authorize, store_error},
    spend, AppState,
};
use crate::{
    access::{
        manage::KeyInfo,
        password,
        roles::{Route, TeamRole},
        teams,
        users::{self, UserInfo, UserRequest},
        AccessError,
    },
    clock,
    error::ApiError,
    store::users::UserRow,
};

const DEFAULT_PAGE_SIZE: u64 = 25;
const MAX_PAGE_SIZE: u64 = 100;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/user/new", web::post().to(new))
        .route("/user/update", web::post().to(update))
        .route("/user/delete", web::post().to(delete))
        .route("/user/info", web::get().to(info))
        .route("/user/list", web::get().to(list));
}

fn not_found(user_id: &str) -> ApiError {
    AccessError::NotFound(format!("no user {user_id}")).into()
}

/// The argon2id hash of `password`, computed on the blocking pool (it takes tens of milliseconds on purpose).
pub(super) async fn hash_password(password: String) -> Result<String, ApiError> {
    password::check_strength(&password)?;
    web::block(move || password::hash(&password))
        .await
        .map_err(|_| AccessError::Internal("the password hashing thread failed"))?
        .map_err(ApiError::from)
}

async fn user_info(state: &AppState, row: &UserRow) -> Result<UserInfo, ApiError> {
    let store = state.keys.store();
    let teams = store.memberships_of(&row.user_id).await.map_err(store_error)?.into_iter().map(|m| m.team_id).collect();
    let mut info = UserInfo::of(row, teams);
    let budget = crate::access::budgets::user_budget(row);
    let (spend, reset) = spend::current(state, crate::budgets::BudgetKind::User, &row.user_id, &budget).await?;
    info.spend = spend;
    info.budget_reset_at = reset;
    Ok(info)
}

async fn new(req: HttpRequest, payload: web::Payload, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    logged(&req, async || {
        let (principal, _, bytes) = read(&req, payload, &state, Route::UserNew).await?;
        let mut request = UserRequest::parse(&bytes)?;
        let hash = match request.password.take() {
            Some(p) => Some(hash_password(p).await?),
            None => None,
        };
        let now = clock::unix_secs();
        let row = users::new_user(&request, hash, now)?;
        let store = state.keys.store();
        if store.user_by_id(&row.user_id).await.map_err(store_error)?.is_some() {
            return Err(AccessError::bad_input("user_id", format!("user {} already exists", row.user_id)).into());
        }
        if let Some(email) = &row.email {
            if store.user_by_email(email).await.map_err(store_error)?.is_some() {
                return Err(AccessError::bad_input("user_email", "a user with this email already exists").into());
            }
        }
        for team in request.teams.iter().flatten() {
            if store.team_by_id(team).await.map_err(store_error)?.is_none() {
                return Err(AccessError::bad_input("teams", format!("no team {team}")).into());
            }
        }
        let row = store.insert_user(row).await.map_err(store_error)?;
        for team in request.teams.iter().flatten() {
            let membership = teams::membership(team, &row.user_id, TeamRole::Member, None, now);
            store.put_membership(membership).await.map_err(store_error)?;
        }
        tracing::info!(user = %row.user_id, role = %row.user_role, by = %principal.name(), "user created");
        Ok(HttpResponse::Ok().json(user_info(&state, &row).await?))
    })
    .await
}

async fn update(req: HttpRequest, payload: web::Payload, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    logged(&req, async || {
        let (principal, _, bytes) = read(&req, payload, &state, Route::UserUpdate).await?;
        let mut request = UserRequest::parse(&bytes)?;
        let store = state.keys.store();
        let row = match (request.user_id.as_deref(), request.user_email.as_deref()) {
            (Some(id), _) => store.user_by_id(id).await.map_err(store_error)?.ok_or_else(|| not_found(id))?,
            (None, Some(email)) => {
                store.user_by_email(email).await.map_err(store_error)?.ok_or_else(|| not_found(email))?
            }
            (None, None) => {
                return Err(AccessError::bad_input("user_id", "`user_id` or `user_email` is required").into())
            }
        };
        let hash = match request.password.take() {
            Some(p) => Some(hash_password(p).await?),
            None => None,
        };
        let ends_sessions = hash.is_some() || request.user_role.as_deref().is_some_and(|r| r != row.user_role);
        let row = users::updated_user(row, &request, hash, clock::unix_secs())?;
        let row = store.update_user(row).await.map_err(store_error)?.ok_or_else(|| not_found(""))?;
        // The user's budget and rate limits ride on its keys' cache entries: they apply from the next request.
        state.keys.invalidate_user(&row.user_id);
        if ends_sessions {
            // A new password or role must not leave a session opened under the old one.
            store.delete_user_sessions(&row.user_id).await.map_err(store_error)?;
        }
        tracing::info!(user = %row.user_id, by = %principal.name(), "user updated");
        Ok(HttpResponse::Ok().json(user_info(&state, &row).await?))
    })
    .await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeleteRequest {
    user_ids: Vec<String>,
}

async fn delete(req: HttpRequest, payload: web::Payload, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    logged(&req, async || {
        let (principal, _, bytes) = read(&req, payload, &state, Route::UserDelete).await?;
        let request: DeleteRequest = teams::parse_json(&bytes)?;
        let deleted = state.keys.store().delete_users(&request.user_ids).await.map_err(store_error)?;
        for user in &deleted {
            // Their keys stay (owned by nobody), no longer bound by the user's budget or limits.
            state.keys.invalidate_user(user);
        }
        if deleted.is_empty() {
            return Err(AccessError::NotFound("none of the named users exists".into()).into());
        }
        tracing::info!(count = deleted.len(), by = %principal.name(), "users deleted");
        Ok(HttpResponse::Ok().json(json!({ "deleted_users": deleted })))
    })
    .await
}

#[derive(Debug, Deserialize)]
struct InfoQuery {
    user_id: Option<String>,
}

/// `/user/info?user_id=`: the user, their keys and teams; without `user_id`, the caller itself.
async fn info(
    req: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<InfoQuery>,
) -> Result<HttpResponse, ApiError> {
    logged(&req, async || {
        let (principal, scope) = authorize(&req, &state, Route::UserInfo).await?;
        let user_id = query
            .user_id
            .as_deref()
            .or(principal.user_id.as_deref())
            .ok_or_else(|| AccessError::bad_input("user_id", "`user_id` is required"))?;
        if !principal.reaches(scope, None, Some(user_id)) {
            return Err(not_found(user_id));
        }
        let store = state.keys.store();
        let row = store.user_by_id(user_id).await.map_err(store_error)?.ok_or_else(|| not_found(user_id))?;
        let keys: Vec<KeyInfo> = store.user_keys(user_id).await.map_err(store_error)?.iter().map(KeyInfo::of).collect();
        let info = user_info(&state, &row).await?;
        Ok(HttpResponse::Ok().json(json!({
            "user_id": user_id,
            "user_info": info,
            "keys": keys,
            "teams": info.teams,
        })))
    })
    .await
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    page: Option<u64>,
    page_size: Option<u64>,
    role: Option<String>,
}

async fn list(
    req: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    logged(&req, async || {
        authorize(&req, &state, Route::UserList).await?;
        let page = query.page.unwrap_or(1).max(1);
        let size = query.page_size.unwrap_or(DEFAULT_PAGE_SIZE).clamp(1, MAX_PAGE_SIZE);
        let store = state.keys.store();
        let (rows, total) = store.list_users(query.role.as_deref(), page, size).await.map_err(store_error)?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            out.push(user_info(&state, row).await?);
        }
        Ok(HttpResponse::Ok().json(json!({
            "users": out,
            "total": total,
            "page": page,
            "page_size": size,
            "total_pages": total.div_ceil(size),
        })))
    })
    .await
}
