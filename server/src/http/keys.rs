//! The key management routes, LiteLLM's paths and shapes: `/key/generate`, `/key/update`, `/key/delete`,
//! `/key/info`, `/key/list`, `/key/regenerate` (and `/key/{key}/regenerate`), `/key/block`, `/key/unblock`.
//!
//! Role rule of this slice: every route needs the master key (proxy admin); team and member roles arrive with
//! teams and users. With no master key configured the routes refuse: an open gateway has no keys to manage.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::{request_id, AppState};
use crate::{
    access::{
        manage::{self, CreatedKey, KeyInfo, KeyRefs, KeyRequest},
        token::KeyHash,
        AccessError,
    },
    clock,
    error::ApiError,
    pipeline::{auth, body},
    store::{keys::KeyFilter, StoreError},
};

/// Management bodies are small JSON documents.
const MAX_BODY: usize = 1024 * 1024;
/// Who the audit columns (`created_by`, `updated_by`) name for the master key.
const ADMIN: &str = "proxy_admin";
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

/// The store failed: logged here with its cause, answered as 503 without it.
fn store_error(e: StoreError) -> ApiError {
    tracing::error!(error = %e, "key management: store error");
    ApiError::Access(AccessError::StoreUnavailable)
}

pub(super) fn admin(req: &HttpRequest, state: &AppState) -> Result<(), ApiError> {
    if state.master_key.is_none() {
        return Err(AccessError::Forbidden(
            "key management needs general_settings.master_key: set one to create and manage virtual keys".into(),
        )
        .into());
    }
    auth::authenticate(req.headers(), state.master_key.as_ref())
}

/// A management request's body, once the caller is known to be an admin.
pub(super) async fn admin_body(
    req: &HttpRequest,
    payload: web::Payload,
    state: &AppState,
) -> Result<web::Bytes, ApiError> {
    read(req, payload, state).await
}

async fn read(req: &HttpRequest, payload: web::Payload, state: &AppState) -> Result<web::Bytes, ApiError> {
    admin(req, state)?;
    let length = req.headers().get("content-length").and_then(|v| v.to_str().ok()?.parse().ok());
    body::read(payload, length, MAX_BODY, state.request_body_timeout).await
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
async fn logged(
    req: &HttpRequest,
    work: impl AsyncFnOnce() -> Result<HttpResponse, ApiError>,
) -> Result<HttpResponse, ApiError> {
    work().await.inspect_err(request_id::log_error(req))
}

async fn generate(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    logged(&req, async || {
        let request = KeyRequest::parse(&read(&req, payload, &state).await?)?;
        let (value, row) = manage::new_key(request, ADMIN, clock::unix_secs())?;
        let store = state.keys.store();
        if store.key_by_hash(&row.token_hash).await.map_err(store_error)?.is_some() {
            return Err(AccessError::bad_input("key", "a key with this value already exists").into());
        }
        let row = store.insert_key(row).await.map_err(store_error)?;
        tracing::info!(key = %row.key_name, alias = ?row.key_alias, "virtual key created");
        Ok(HttpResponse::Ok().json(CreatedKey { key: value, info: KeyInfo::of(&row) }))
    })
    .await
}

async fn update(req: HttpRequest, payload: web::Payload, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    logged(&req, async || {
        let mut request = KeyRequest::parse(&read(&req, payload, &state).await?)?;
        let reference = request.key.take().ok_or_else(|| AccessError::bad_input("key", "`key` is required"))?;
        let hash = KeyHash::from_reference(&reference);
        let store = state.keys.store();
        let row = store.key_by_hash(&hash.hex()).await.map_err(store_error)?.ok_or_else(|| not_found(&reference))?;
        let row = manage::updated(row, request, ADMIN, clock::unix_secs())?;
        let row = store.update_key(row).await.map_err(store_error)?.ok_or_else(|| not_found(&reference))?;
        state.keys.invalidate(&hash);
        Ok(HttpResponse::Ok().json(KeyInfo::of(&row)))
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
        let refs = KeyRefs::parse(&read(&req, payload, &state).await?)?;
        let reference = refs.one()?;
        let hash = KeyHash::from_reference(reference);
        let store = state.keys.store();
        let mut row = store.key_by_hash(&hash.hex()).await.map_err(store_error)?.ok_or_else(|| not_found(reference))?;
        row.blocked = blocked;
        row.updated_by = Some(ADMIN.to_owned());
        row.updated_at = clock::unix_secs();
        let row = store.update_key(row).await.map_err(store_error)?.ok_or_else(|| not_found(reference))?;
        state.keys.invalidate(&hash);
        tracing::info!(key = %row.key_name, blocked, "virtual key blocked state changed");
        Ok(HttpResponse::Ok().json(KeyInfo::of(&row)))
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
        let refs = KeyRefs::parse(&read(&req, payload, &state).await?)?;
        if refs.keys.is_empty() && refs.key_aliases.is_empty() {
            return Err(AccessError::bad_input("keys", "name the keys to delete in `keys` or `key_aliases`").into());
        }
        let store = state.keys.store();
        let mut hashes: Vec<String> = refs.keys.iter().map(|k| KeyHash::from_reference(k).hex()).collect();
        for alias in &refs.key_aliases {
            hashes.extend(store.key_hashes_by_alias(alias).await.map_err(store_error)?);
        }
        let deleted = store.delete_keys(&hashes).await.map_err(store_error)?;
        for hash in deleted.iter().filter_map(|h| KeyHash::from_hex(h)) {
            state.keys.invalidate(&hash);
        }
        if deleted.is_empty() {
            return Err(AccessError::NotFound("none of the named keys exists".into()).into());
        }
        tracing::info!(count = deleted.len(), "virtual keys deleted");
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
        admin(&req, &state)?;
        let reference = query.key.as_deref().ok_or_else(|| AccessError::bad_input("key", "`key` is required"))?;
        let hash = KeyHash::from_reference(reference);
        let row = state.keys.store().key_by_hash(&hash.hex()).await.map_err(store_error)?;
        let row = row.ok_or_else(|| not_found(reference))?;
        Ok(HttpResponse::Ok().json(json!({ "key": row.token_hash, "info": KeyInfo::of(&row) })))
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
        admin(&req, &state)?;
        let page = query.page.unwrap_or(1).max(1);
        let size = query.size.unwrap_or(DEFAULT_PAGE_SIZE).clamp(1, MAX_PAGE_SIZE);
        let filter = KeyFilter {
            user_id: query.user_id.clone(),
            team_id: query.team_id.clone(),
            key_alias: query.key_alias.clone(),
        };
        let (rows, total) = state.keys.store().list_keys(&filter, page, size).await.map_err(store_error)?;
        let keys: Vec<serde_json::Value> = if query.return_full_object {
            rows.iter().map(|r| serde_json::to_value(KeyInfo::of(r)).unwrap_or_default()).collect()
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

async fn regenerate_key(req: &HttpRequest, state: &AppState, mut refs: KeyRefs) -> Result<HttpResponse, ApiError> {
    let new_key = refs.new_key.take();
    let reference = refs.one()?;
    let hash = KeyHash::from_reference(reference);
    let store = state.keys.store();
    let row = store.key_by_hash(&hash.hex()).await.map_err(store_error)?.ok_or_else(|| not_found(reference))?;
    let (value, new_row) = manage::regenerated(row, new_key, ADMIN, clock::unix_secs())?;
    if store.key_by_hash(&new_row.token_hash).await.map_err(store_error)?.is_some() {
        return Err(AccessError::bad_input("new_key", "a key with this value already exists").into());
    }
    let row =
        store.replace_key(&hash.hex(), new_row).await.map_err(store_error)?.ok_or_else(|| not_found(reference))?;
    state.keys.invalidate(&hash);
    tracing::info!(key = %row.key_name, request_id = %request_id::of(req), "virtual key regenerated");
    Ok(HttpResponse::Ok().json(CreatedKey { key: value, info: KeyInfo::of(&row) }))
}

async fn regenerate(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    logged(&req, async || {
        let refs = KeyRefs::parse(&read(&req, payload, &state).await?)?;
        regenerate_key(&req, &state, refs).await
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
        let mut refs = KeyRefs::parse(&read(&req, payload, &state).await?)?;
        refs.key = Some(key.into_inner());
        regenerate_key(&req, &state, refs).await
    })
    .await
}
