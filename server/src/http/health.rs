//! Kubernetes probes. Liveliness: the process answers. Readiness: it wants traffic (503 once draining).

use actix_web::{web, HttpResponse};
use tollgate_entity::{Readiness, ReadinessStatus};

use super::AppState;

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
