//! Health. `GET /health/liveliness`: the process answers. `GET /health/readiness`: it wants traffic (503 once
//! draining). Both unauthenticated, for Kubernetes.
//!
//! `GET /health[?model=X]` (master key): every deployment (of group X) as LiteLLM lists them, split into
//! `healthy_endpoints` and `unhealthy_endpoints` by its latest health check (`pipeline::probe`), with latency,
//! last error, when it was checked and its cooldown. Without `background_health_checks` the checks run now,
//! concurrently, each bounded by its deployment's timeout; with them the answer is the workers' latest results
//! (a deployment not checked yet is checked now). `?model=` filters by `provider/model` or else by model group,
//! `?model_id=` by deployment id, as LiteLLM's; a filter matching nothing is a 404. Ids, model names and
//! endpoints only: never a key.

use std::sync::{atomic::Ordering::Relaxed, Arc};

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};
use tollgate_entity::{Readiness, ReadinessStatus};

use super::{request_id, AppState};
use crate::{
    access::roles::Route,
    clock,
    error::ApiError,
    pipeline::probe,
    providers::bedrock::sigv4,
    routing::{
        stats::{HealthCheck, PROBE_DUE, PROBE_RUNNING},
        Deployment,
    },
};

/// LiteLLM's spelling (`liveliness`) and the usual one (`liveness`) both work.
pub async fn liveliness() -> HttpResponse {
    HttpResponse::Ok().json("I'm alive!")
}

pub async fn readiness(state: web::Data<AppState>) -> HttpResponse {
    let draining = state.lifecycle.is_draining();
    let body = Readiness {
        status: if draining { ReadinessStatus::Draining } else { ReadinessStatus::Healthy },
        version: env!("CARGO_PKG_VERSION").to_owned(),
        in_flight_requests: state.lifecycle.in_flight(),
        model_groups: state.table.load().model_names().len(),
    };
    if draining {
        HttpResponse::ServiceUnavailable().json(body)
    } else {
        HttpResponse::Ok().json(body)
    }
}

/// LiteLLM's filters: `model` is a deployment's `provider/model` or else a model group; `model_id` one deployment.
#[derive(Deserialize)]
pub struct HealthQuery {
    model: Option<String>,
    model_id: Option<String>,
}

pub async fn health(
    req: HttpRequest,
    state: web::Data<AppState>,
    client: web::Data<crate::upstream::Client>,
    query: web::Query<HealthQuery>,
) -> Result<HttpResponse, ApiError> {
    super::principal::authorize_proxy_route(&req, &state, Route::Health)
        .await
        .inspect_err(request_id::log_error(&req))?;
    let table = state.table.load_full();
    let all = || table.deployments();
    let deployments: Vec<Arc<Deployment>> = match (&query.model_id, &query.model) {
        (Some(id), _) => all().filter(|d| &d.id == id).cloned().collect(),
        (None, Some(model)) => {
            let by_model: Vec<_> = all().filter(|d| &provider_model(d) == model).cloned().collect();
            if by_model.is_empty() {
                all().filter(|d| &d.model_group == model).cloned().collect()
            } else {
                by_model
            }
        }
        (None, None) => all().cloned().collect(),
    };
    // Unlike LiteLLM's empty lists: a typo must not read as "nothing unhealthy".
    if deployments.is_empty() {
        if let Some(asked) = query.model_id.as_ref().or(query.model.as_ref()) {
            return Err(ApiError::ModelNotFound(asked.clone())).inspect_err(request_id::log_error(&req));
        }
    }
    let due = deployments.iter().filter(|d| !table.background_health_checks || d.stats.health.load().is_none());
    futures_util::future::join_all(due.map(|d| async {
        let result = probe::check(&client, d, &state.lifecycle).await;
        d.stats.health.store(Some(Arc::new(result)));
    }))
    .await;
    let now = clock::monotonic_ms();
    let (mut healthy, mut unhealthy) = (Vec::new(), Vec::new());
    for d in &deployments {
        let check = d.stats.health.load_full();
        let entry = endpoint(d, check.as_deref(), now);
        if check.is_some_and(|c| c.healthy) {
            healthy.push(entry);
        } else {
            unhealthy.push(entry);
        }
    }
    Ok(HttpResponse::Ok().json(json!({
        "healthy_count": healthy.len(),
        "unhealthy_count": unhealthy.len(),
        "healthy_endpoints": healthy,
        "unhealthy_endpoints": unhealthy,
    })))
}

/// One deployment as `GET /health` lists it.
fn endpoint(d: &Deployment, check: Option<&HealthCheck>, now: u64) -> Value {
    let s = &d.stats;
    json!({
        "model_name": d.model_group,
        "model": provider_model(d),
        "api_base": without_userinfo(&d.api_base),
        "id": d.id,
        "health_check": check.map(check_json),
        "cooldown": {
            "cooling_down": s.is_cooling_down(now),
            "seconds_left": s.cooldown_left_secs(now),
            "probe": probe_state(s.probe.load(Relaxed)),
        },
    })
}

/// `provider/model`, as `litellm_params.model` names a deployment.
fn provider_model(d: &Deployment) -> String {
    format!("{}/{}", d.provider.name(), d.upstream_model)
}

/// A health check as `/health` and `/routing/explain` show it.
pub fn check_json(c: &HealthCheck) -> Value {
    json!({
        "healthy": c.healthy,
        "latency_ms": c.latency.as_secs_f64() * 1000.0,
        "error": c.error,
        "checked_at": rfc3339(c.checked_at_unix_ms / 1000),
    })
}

/// The half-open circuit's state, by name.
pub fn probe_state(state: u8) -> &'static str {
    match state {
        PROBE_DUE => "due",
        PROBE_RUNNING => "running",
        _ => "none",
    }
}

/// `2026-11-30T07:20:00Z` for a Unix time.
fn rfc3339(unix: u64) -> String {
    let (stamp, _) = sigv4::amz_timestamp(unix);
    // `YYYYMMDDTHHMMSSZ`, all ASCII.
    let at = |a: usize, b: usize| stamp.get(a..b).unwrap_or("00");
    format!("{}-{}-{}T{}:{}:{}Z", at(0, 4), at(4, 6), at(6, 8), at(9, 11), at(11, 13), at(13, 15))
}

/// An endpoint without `user:password@`, should the config have put credentials in the URL.
fn without_userinfo(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://{}", &rest[at + 1..]),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_lose_their_userinfo() {
        let cases = [
            ("https://api.openai.com/v1", "https://api.openai.com/v1"),
            ("https://user:sk-secret@host:8443/v1", "https://host:8443/v1"),
            ("http://h/v1/a@b", "http://h/v1/a@b"),
            ("(built-in)", "(built-in)"),
        ];
        for (url, want) in cases {
            assert_eq!(without_userinfo(url), want);
        }
    }

    #[test]
    fn check_times_are_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_796_023_200), "2026-11-30T07:20:00Z");
    }
}
