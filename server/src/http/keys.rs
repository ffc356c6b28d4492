//! The key management routes, LiteLLM's paths and shapes: `/key/generate`, `/key/update`, `/key/delete`,
//! `/key/info`, `/key/list`, `/key/regenerate` (and `/key/{key}/regenerate`), `/key/block`, `/key/unblock`.
//!
//! Who may call them is `access::roles`'s table: proxy admins everything, viewers reads, team members the keys of
//! their own teams (team admins also block them). A key outside the caller's scope is answered exactly as a key
//! that does not exist (404), so its existence is not revealed. A key in a team names only the team's models.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::{
    principal::{authorize, store_error},
    request_id, spend, AppState,
};
use crate::{
    access::{
        manage::{self, CreatedKey, KeyRefs, KeyRequest},
        roles::{Principal, Route, Scope},
        string_list, teams,
        token::KeyHash,
        AccessError,
    },
    clock,
    error::ApiError,
    pipeline::body,
    store::keys::{KeyFilter, KeyRow},
};

/// Management bodies are small JSON documents.
pub(super) const MAX_BODY: usize = 1024 * 1024;
const DEFAULT_PAGE_SIZE: u64 = 10;
const MAX_PAGE_SIZE: u64 = 100;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/key/generate", web::post().to(generate))
        .route("/key/update", web::post().to(update))
        .route("/key/delete", web::post().to(delete))
        .route("/key/info", web::get().to(info))
        .route("/key/list", web::get().to(list))
        .route("/key/regenerate", web::post().to(regenerate))
        .route("/key/{key}/regenerate", web::post().to(regenerate_path))
        .route("/key/block", web::post().to(block))
        .route("/key/unblock", web::post().to(unblock));
}

/// Authorizes `route`, then reads the body within the size limit.
pub(super) async fn read(
    req: &HttpRequest,
    payload: web::Payload,
    state: &AppState,
    route: Route,
) -> Result<(Principal, Scope, web::Bytes), ApiError> {
    let (principal, scope) = authorize(req, state, route).await?;
    let length = req.headers().get("content-length").and_then(|v| v.to_str().ok()?.parse().ok());
    let bytes = body::read(payload, length, MAX_BODY, state.request_body_timeout).await?;
    Ok((principal, scope, bytes))
}

fn not_found(reference: &str) -> ApiError {
    // Names the key only by its display form: a mistyped key value must not be echoed whole.
    let shown = if KeyHash::from_hex(reference).is_some() {
        reference.to_owned()
    } else {
        crate::access::token::display_name(reference)
    };
    AccessError::NotFound(format!("no key {shown}")).into()
}

/// Runs `work`, logging its error once with the request's id.
pub(super) async fn logged(
    req: &HttpRequest,
    work: impl AsyncFnOnce() -> Result<HttpResponse, ApiError>,
) -> Result<HttpResponse, ApiError> {
    work().await.inspect_err(request_id::log_error(req))
}

/// The key `reference` names, if it exists and is within the caller's scope (else 404, either way).
async fn reachable_key(
    state: &AppState,
    principal: &Principal,
    scope: Scope,
    reference: &str,
) -> Result<KeyRow, ApiError> {
    let hash = KeyHash::from_reference(reference);
    let row = state.keys.store().key_by_hash(&hash.hex()).await.map_err(store_error)?;
    let row = row.ok_or_else(|| not_found(reference))?;
    if principal.reaches(scope, row.team_id.as_deref(), row.user_id.as_deref()) {
        return Ok(row);
    }
    if principal.reaches(Scope::OwnTeams, row.team_id.as_deref(), None) {
        // A key the caller can see (their team's) but not change this way: say why.
        return Err(AccessError::Forbidden("only the team's admins may do this to its keys".into()).into());
    }
    Err(not_found(reference))
}

/// Members give keys to themselves only: a `user_id` naming someone else is refused.
fn check_owner(principal: &Principal, scope: Scope, requested: Option<&str>) -> Result<(), ApiError> {
    if scope != Scope::All && requested.is_some() && requested != principal.user_id.as_deref() {
        return Err(
            AccessError::Forbidden("members create and change keys for themselves only (`user_id`)".into()).into()
        );
    }
    Ok(())
}

/// A key's team as the caller may set it: within their scope, the team existing, the models within the team's.
async fn check_team(state: &AppState, principal: &Principal, scope: Scope, row: &KeyRow) -> Result<(), ApiError> {
    if scope != Scope::All {
        let Some(team_id) = row.team_id.as_deref() else {
            return Err(AccessError::bad_input("team_id", "members create keys in a team: set `team_id`").into());
        };
        if !principal.reaches(scope, Some(team_id), None) {
            return Err(AccessError::Forbidden(format!("you are not a member of team {team_id}")).into());
        }
    }
    let Some(team_id) = row.team_id.as_deref() else { return Ok(()) };
    let team = state.keys.store().team_by_id(team_id).await.map_err(store_error)?;
    let team = team.ok_or_else(|| AccessError::bad_input("team_id", format!("no team {team_id}")))?;
    teams::models_within_team(team_id, &string_list(&row.models), &string_list(&team.models))?;
    if scope != Scope::All {
        // Members stay within their team's limits; a proxy admin may give a key more (the team's budget still
        // binds it at request time).
        teams::limits_within_team(team_id, &teams::Limits::of_key(row), &teams::Limits::of_team(&team))?;
    }
    Ok(())
}

async fn generate(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    logged(&req, async || {
        let (principal, scope, bytes) = read(&req, payload, &state, Route::KeyGenerate).await?;
        let mut request = KeyRequest::parse(&bytes)?;
        check_owner(&principal, scope, request.user_id.as_deref())?;
        if scope != Scope::All && request.user_id.is_none() {
            request.user_id = principal.user_id.clone();
        }
        let (value, row) = manage::new_key(request, principal.name(), clock::unix_secs())?;
        check_team(&state, &principal, scope, &row).await?;
        let store = state.keys.store();
        if store.key_by_hash(&row.token_hash).await.map_err(store_error)?.is_some() {
            return Err(AccessError::bad_input("key", "a key with this value already exists").into());
        }
        let row = store.insert_key(row).await.map_err(store_error)?;
        tracing::info!(key = %row.key_name, alias = ?row.key_alias, team = ?row.team_id, by = %principal.name(),
            "virtual key created");
        Ok(HttpResponse::Ok().json(CreatedKey { key: value, info: spend::key_info(&state, &row).await? }))
    })
    .await
}

async fn update(req: HttpRequest, payload: web::Payload, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    logged(&req, async || {
        let (principal, scope, bytes) = read(&req, payload, &state, Route::KeyUpdate).await?;
        let mut request = KeyRequest::parse(&bytes)?;
        let reference = request.key.take().ok_or_else(|| AccessError::bad_input("key", "`key` is required"))?;
        check_owner(&principal, scope, request.user_id.as_deref())?;
        let row = reachable_key(&state, &principal, scope, &reference).await?;
        let hash = KeyHash::from_reference(&reference);
        // Only a change of models, team or budget is checked against the team: a key made before its team was
        // narrowed can still be renamed or blocked.
        let regrants = request.models.is_some() || request.team_id.is_some() || request.max_budget.is_some();
        let row = manage::updated(row, request, principal.name(), clock::unix_secs())?;
        if regrants {
            check_team(&state, &principal, scope, &row).await?;
        }
        let store = state.keys.store();
        let row = store.update_key(row).await.map_err(store_error)?.ok_or_else(|| not_found(&reference))?;
        state.keys.invalidate(&hash);
        Ok(HttpResponse::Ok().json(spend::key_info(&state, &row).await?))
    })
    .await
}

async fn set_blocked(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
    blocked: bool,
) -> Result<HttpResponse, ApiError> {
    logged(&req, async || {
        let route = if blocked { Route::KeyBlock } else { Route::KeyUnblock };
        let (principal, scope, bytes) = read(&req, payload, &state, route).await?;
        let refs = KeyRefs::parse(&bytes)?;
        let reference = refs.one()?;
        let mut row = reachable_key(&state, &principal, scope, reference).await?;
        row.blocked = blocked;
        row.updated_by = Some(principal.name().to_owned());
        row.updated_at = clock::unix_secs();
        let row = state.keys.store().update_key(row).await.map_err(store_error)?.ok_or_else(|| not_found(reference))?;
        state.keys.invalidate(&KeyHash::from_reference(reference));
        tracing::info!(key = %row.key_name, blocked, by = %principal.name(), "virtual key blocked state changed");
        Ok(HttpResponse::Ok().json(spend::key_info(&state, &row).await?))
    })
    .await
}

async fn block(req: HttpRequest, payload: web::Payload, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    set_blocked(req, payload, state, true).await
}

async fn unblock(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    set_blocked(req, payload, state, false).await
}

async fn delete(req: HttpRequest, payload: web::Payload, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    logged(&req, async || {
        let (principal, scope, bytes) = read(&req, payload, &state, Route::KeyDelete).await?;
        let refs = KeyRefs::parse(&bytes)?;
        if refs.keys.is_empty() && refs.key_aliases.is_empty() {
            return Err(AccessError::bad_input("keys", "name the keys to delete in `keys` or `key_aliases`").into());
        }
        let store = state.keys.store();
        let mut hashes: Vec<String> = refs.keys.iter().map(|k| KeyHash::from_reference(k).hex()).collect();
        for alias in &refs.key_aliases {
            hashes.extend(store.key_hashes_by_alias(alias).await.map_err(store_error)?);
        }
        if scope != Scope::All {
            // Keys outside the caller's scope are left alone and not reported: as if they did not exist.
            let mut reachable = Vec::with_capacity(hashes.len());
            for hash in hashes {
                let row = store.key_by_hash(&hash).await.map_err(store_error)?;
                if row.is_some_and(|r| principal.reaches(scope, r.team_id.as_deref(), r.user_id.as_deref())) {
                    reachable.push(hash);
                }
            }
            hashes = reachable;
        }
        let deleted = store.delete_keys(&hashes).await.map_err(store_error)?;
        for hash in deleted.iter().filter_map(|h| KeyHash::from_hex(h)) {
            state.keys.invalidate(&hash);
        }
        if deleted.is_empty() {
            return Err(AccessError::NotFound("none of the named keys exists".into()).into());
        }
        tracing::info!(count = deleted.len(), by = %principal.name(), "virtual keys deleted");
        Ok(HttpResponse::Ok().json(json!({ "deleted_keys": deleted })))
    })
    .await
}

#[derive(Debug, Deserialize)]
struct InfoQuery {
    key: Option<String>,
}

async fn info(
    req: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<InfoQuery>,
) -> Result<HttpResponse, ApiError> {
    logged(&req, async || {
        let (principal, scope) = authorize(&req, &state, Route::KeyInfo).await?;
        let reference = query.key.as_deref().ok_or_else(|| AccessError::bad_input("key", "`key` is required"))?;
        let row = reachable_key(&state, &principal, scope, reference).await?;
        Ok(HttpResponse::Ok().json(json!({ "key": row.token_hash, "info": spend::key_info(&state, &row).await? })))
    })
    .await
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    page: Option<u64>,
    size: Option<u64>,
    user_id: Option<String>,
    team_id: Option<String>,
    key_alias: Option<String>,
    /// LiteLLM lists hashes unless asked for whole objects.
    #[serde(default)]
    return_full_object: bool,
}

async fn list(
    req: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    logged(&req, async || {
        let (principal, scope) = authorize(&req, &state, Route::KeyList).await?;
        let page = query.page.unwrap_or(1).max(1);
        let size = query.size.unwrap_or(DEFAULT_PAGE_SIZE).clamp(1, MAX_PAGE_SIZE);
        let filter = KeyFilter {
            user_id: query.user_id.clone(),
            team_id: query.team_id.clone(),
            key_alias: query.key_alias.clone(),
            // Members see the keys of their own teams only: the filter, not a check per row, so pages stay full.
            team_ids: principal.visible_teams(scope),
        };
        let (rows, total) = state.keys.store().list_keys(&filter, page, size).await.map_err(store_error)?;
        let keys: Vec<serde_json::Value> = if query.return_full_object {
            let mut full = Vec::with_capacity(rows.len());
            for row in &rows {
                full.push(serde_json::to_value(spend::key_info(&state, row).await?).unwrap_or_default());
            }
            full
        } else {
            rows.iter().map(|r| json!(r.token_hash)).collect()
        };
        Ok(HttpResponse::Ok().json(json!({
            "keys": keys,
            "total_count": total,
            "current_page": page,
            "total_pages": total.div_ceil(size),
        })))
    })
    .await
}

async fn regenerate_key(
    req: &HttpRequest,
    state: &AppState,
    route_body: web::Bytes,
    path_key: Option<String>,
    principal: Principal,
    scope: Scope,
) -> Result<HttpResponse, ApiError> {
    let mut refs = KeyRefs::parse(&route_body)?;
    if path_key.is_some() {
        refs.key = path_key;
    }
    let new_key = refs.new_key.take();
    let reference = refs.one()?;
    let row = reachable_key(state, &principal, scope, reference).await?;
    let hash = KeyHash::from_reference(reference);
    let store = state.keys.store();
    let (value, new_row) = manage::regenerated(row, new_key, principal.name(), clock::unix_secs())?;
    if store.key_by_hash(&new_row.token_hash).await.map_err(store_error)?.is_some() {
        return Err(AccessError::bad_input("new_key", "a key with this value already exists").into());
    }
    let row =
        store.replace_key(&hash.hex(), new_row).await.map_err(store_error)?.ok_or_else(|| not_found(reference))?;
    state.keys.invalidate(&hash);
    // Its spend moved to the new hash in the store; this process's account under the old hash is dropped, so the
    // next request loads the moved spend.
    state.budgets.forget(crate::budgets::BudgetKind::Key, &hash.hex());
    tracing::info!(key = %row.key_name, request_id = %request_id::of(req), by = %principal.name(),
        "virtual key regenerated");
    Ok(HttpResponse::Ok().json(CreatedKey { key: value, info: spend::key_info(state, &row).await? }))
}

async fn regenerate(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    logged(&req, async || {
        let (principal, scope, bytes) = read(&req, payload, &state, Route::KeyRegenerate).await?;
        regenerate_key(&req, &state, bytes, None, principal, scope).await
    })
    .await
}

/// `POST /key/{key}/regenerate`, optionally with `{"new_key": ...}`.
async fn regenerate_path(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
    key: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    logged(&req, async || {
        let (principal, scope, bytes) = read(&req, payload, &state, Route::KeyRegenerate).await?;
        regenerate_key(&req, &state, bytes, Some(key.into_inner()), principal, scope).await
    })
    .await
}
