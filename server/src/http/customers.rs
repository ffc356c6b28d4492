//! End users, LiteLLM's `/customer/*` routes and shapes: `/customer/new`, `/customer/info?end_user_id=`,
//! `/customer/update`, `/customer/delete`, `/customer/list`, `/customer/block`, `/customer/unblock`.
//!
//! Role rules: `access::roles` (proxy admins; viewers read). A change drops the end user from this
//! process's cache at once; other replicas see it within the cache TTL (`general_settings.user_api_key_cache_ttl`).

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::{
    keys::{logged, read},
    principal::store_error,
    AppState,
};
use crate::{
    access::{
        budgets::end_user_budget as end_users_budget,
        end_users::{self, CustomerInfo, CustomerRefs, CustomerRequest},
        roles::Route,
        AccessError,
    },
    budgets::BudgetKind,
    clock,
    error::ApiError,
    store::end_users::EndUserRow,
};

const DEFAULT_PAGE_SIZE: u64 = 25;
const MAX_PAGE_SIZE: u64 = 100;

pub fn configure(cfg: &mut web::ServiceConfig) {
    for prefix in ["/customer", "/end_user"] {
        cfg.route(&format!("{prefix}/new"), web::post().to(new))
            .route(&format!("{prefix}/info"), web::get().to(info))
            .route(&format!("{prefix}/update"), web::post().to(update))
            .route(&format!("{prefix}/delete"), web::post().to(delete))
            .route(&format!("{prefix}/list"), web::get().to(list))
            .route(&format!("{prefix}/block"), web::post().to(block))
            .route(&format!("{prefix}/unblock"), web::post().to(unblock));
    }
}

/// An end user as the routes show it, with its spend.
async fn customer_info(state: &AppState, row: &EndUserRow) -> Result<CustomerInfo, ApiError> {
    let mut info = CustomerInfo::of(row);
    let budget = end_users_budget(row);
    let (spend, reset) = super::spend::current(state, BudgetKind::EndUser, &row.user_id, &budget).await?;
    info.spend = spend;
    info.budget_reset_at = reset;
    Ok(info)
}

fn not_found(id: &str) -> ApiError {
    AccessError::NotFound(format!("no end user `{id}`")).into()
}

async fn new(req: HttpRequest, payload: web::Payload, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    logged(&req, async || {
        let request = CustomerRequest::parse(&read(&req, payload, &state, Route::CustomerNew).await?.2)?;
        let row = end_users::new_end_user(&request, clock::unix_secs())?;
        let store = state.keys.store();
        if store.end_user(&row.user_id).await.map_err(store_error)?.is_some() {
            return Err(AccessError::bad_input("user_id", format!("the end user `{}` exists", row.user_id)).into());
        }
        let row = store.insert_end_user(row).await.map_err(store_error)?;
        state.end_users.invalidate(&row.user_id);
        Ok(HttpResponse::Ok().json(customer_info(&state, &row).await?))
    })
    .await
}

async fn update(req: HttpRequest, payload: web::Payload, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    logged(&req, async || {
        let request = CustomerRequest::parse(&read(&req, payload, &state, Route::CustomerUpdate).await?.2)?;
        let id = request.id()?;
        let store = state.keys.store();
        let mut row = store.end_user(id).await.map_err(store_error)?.ok_or_else(|| not_found(id))?;
        end_users::apply(&mut row, &request, clock::unix_secs())?;
        let row = store.update_end_user(row).await.map_err(store_error)?.ok_or_else(|| not_found(id))?;
        state.end_users.invalidate(id);
        Ok(HttpResponse::Ok().json(customer_info(&state, &row).await?))
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
        let refs = CustomerRefs::parse(
            &read(&req, payload, &state, if blocked { Route::CustomerBlock } else { Route::CustomerUnblock }).await?.2,
        )?;
        let store = state.keys.store();
        let mut changed = Vec::new();
        for id in &refs.user_ids {
            let mut row = store.end_user(id).await.map_err(store_error)?.ok_or_else(|| not_found(id))?;
            row.blocked = blocked;
            store.update_end_user(row).await.map_err(store_error)?;
            state.end_users.invalidate(id);
            changed.push(id.clone());
        }
        Ok(HttpResponse::Ok().json(json!({ "blocked": blocked, "user_ids": changed })))
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
        let refs = CustomerRefs::parse(&read(&req, payload, &state, Route::CustomerDelete).await?.2)?;
        let deleted = state.keys.store().delete_end_users(&refs.user_ids).await.map_err(store_error)?;
        for id in &refs.user_ids {
            state.end_users.invalidate(id);
        }
        if deleted.is_empty() {
            return Err(AccessError::NotFound("none of the named end users exists".into()).into());
        }
        Ok(HttpResponse::Ok().json(json!({ "deleted_customers": deleted })))
    })
    .await
}

#[derive(Debug, Deserialize)]
struct InfoQuery {
    end_user_id: Option<String>,
}

async fn info(
    req: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<InfoQuery>,
) -> Result<HttpResponse, ApiError> {
    logged(&req, async || {
        super::principal::authorize(&req, &state, Route::CustomerInfo).await?;
        let id = query
            .end_user_id
            .as_deref()
            .ok_or_else(|| AccessError::bad_input("end_user_id", "`end_user_id` is required"))?;
        let row = state.keys.store().end_user(id).await.map_err(store_error)?.ok_or_else(|| not_found(id))?;
        Ok(HttpResponse::Ok().json(customer_info(&state, &row).await?))
    })
    .await
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    page: Option<u64>,
    size: Option<u64>,
}

/// LiteLLM answers a plain list; so does this, one page at a time (`page`, `size`: our extension).
async fn list(
    req: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    logged(&req, async || {
        super::principal::authorize(&req, &state, Route::CustomerList).await?;
        let page = query.page.unwrap_or(1).max(1);
        let size = query.size.unwrap_or(DEFAULT_PAGE_SIZE).clamp(1, MAX_PAGE_SIZE);
        let (rows, _) = state.keys.store().list_end_users(page, size).await.map_err(store_error)?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            out.push(customer_info(&state, row).await?);
        }
        Ok(HttpResponse::Ok().json(out))
    })
    .await
}
