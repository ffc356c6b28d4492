//! Routing administration (proxy admins; `/routing/explain` also viewers: `access::roles`). `POST /config/reload` re-reads the config file, as SIGHUP does: 200 with
//! the deployments now served and any warnings, or 400 with the error while the current table keeps serving.
//!
//! `GET /routing/explain?model=X` (master key): how the routing table sees a model group right now — each
//! deployment's weight, tier, caps, health (cooldown, probe, latest health check), load, latency average and usage
//! this minute. Ids,
//! providers and model names only: no keys or endpoints with credentials.

use std::sync::atomic::Ordering::Relaxed;

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::{
    health::{check_json, probe_state},
    request_id, AppState,
};
use crate::{access::roles::Route, actors::router::reload_from_file, clock, error::ApiError};

#[derive(Deserialize)]
pub struct Query {
    model: String,
}

pub async fn explain(
    req: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<Query>,
) -> Result<HttpResponse, ApiError> {
    super::principal::authorize_proxy_route(&req, &state, Route::RoutingExplain)
        .await
        .inspect_err(request_id::log_error(&req))?;
    let table = state.table.load();
    let group = table
        .group(&query.model)
        .ok_or_else(|| ApiError::ModelNotFound(query.model.clone()))
        .inspect_err(request_id::log_error(&req))?;
    let now = clock::monotonic_ms();
    let deployments: Vec<_> = group
        .deployments
        .iter()
        .zip(&group.weights)
        .map(|(d, weight)| {
            let s = &d.stats;
            let (minute_requests, minute_tokens) = s.minute_usage(now);
            let probe = probe_state(s.probe.load(Relaxed));
            json!({
                "id": d.id,
                "provider": d.provider.name(),
                "upstream_model": d.upstream_model,
                // Its weight in this group: a model several names serve splits by `router.weights`.
                "weight": weight,
                "order": d.order,
                "rpm": d.rpm,
                "tpm": d.tpm,
                "available": s.admits(now),
                "cooldown_left_seconds": s.cooldown_left_secs(now),
                "probe": probe,
                "in_flight": s.in_flight.load(Relaxed),
                "latency_ewma_ms": s.latency().map(|secs| secs * 1000.0),
                "minute_requests": minute_requests,
                "minute_tokens": minute_tokens,
                "requests_total": s.requests.load(Relaxed),
                "failures_total": s.failures.load(Relaxed),
                "health_check": s.health.load().as_deref().map(check_json),
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({
        "model": query.model,
        "strategy": format!("{:?}", table.strategy),
        "num_retries": table.retries.num_retries,
        "fallbacks": table.retries.fallbacks.get(&query.model),
        "deployments": deployments,
    })))
}

pub async fn reload(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    super::principal::authorize_proxy_route(&req, &state, Route::ConfigReload)
        .await
        .inspect_err(request_id::log_error(&req))?;
    match reload_from_file(&state.router, state.reload_source.as_deref()).await {
        Ok(done) => {
            tracing::info!(deployments = done.deployments, "config reloaded (POST /config/reload)");
            Ok(HttpResponse::Ok().json(json!({"status": "reloaded", "deployments": done.deployments,
                "warnings": done.warnings})))
        }
        Err(message) => {
            tracing::error!(error = %message, "config reload failed; keeping the current routing table");
            Err(ApiError::ReloadFailed(message))
        }
    }
}
