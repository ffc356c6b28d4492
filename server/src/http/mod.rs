//! HTTP surface: routes, shared state and the app factory. Only this folder (and `error.rs`, which maps errors
//! to responses once) knows actix-web request/response types.

pub mod anthropic;
pub mod customers;
pub mod explain;
pub mod health;
pub mod keys;
pub mod login;
pub mod metrics;
pub mod openai;
pub mod principal;
pub mod reports;
pub mod request_id;
mod spend;
pub mod teams;
pub mod users;

use std::sync::Arc;

use actix_web::{web, HttpRequest, HttpResponse};
use arc_swap::ArcSwap;

use crate::{
    access::cache::KeyCache, actors::router::Router, error::ApiError, lifecycle::Lifecycle, limits::Limiter,
    routing::RoutingTable, secret::Secret,
};

/// State shared by all workers (the awc client is per worker and registered separately).
pub struct AppState {
    pub table: Arc<ArcSwap<RoutingTable>>,
    /// For `POST /config/reload`: the router that swaps tables, and the file it re-reads.
    pub router: actix::Addr<Router>,
    pub reload_source: Option<Arc<(std::path::PathBuf, crate::config::Config)>>,
    pub master_key: Option<Secret>,
    /// Virtual keys, as the request path sees them (and the store behind them, for the management routes).
    pub keys: KeyCache,
    /// The request log's sink: every proxied request hands its record here, without waiting.
    pub logs: crate::logs::LogSink,
    /// End users (the request's `user`), as the request path sees them.
    pub end_users: crate::access::end_users::EndUserCache,
    /// Rate limits: in-process, or shared through Redis.
    pub limiter: Limiter,
    /// Budgets: reservations and spend per budgeted entity; with Redis, leased across replicas.
    pub budgets: crate::budgets::Ledger,
    /// `general_settings.budget_default_max_tokens`.
    pub budget_default_max_tokens: u64,
    /// An `otel` callback exports a span per request: each request gets a span of tollgate's own
    /// (`trace_context`), which upstream calls name as their parent.
    pub export_spans: bool,
    pub max_request_bytes: usize,
    pub request_body_timeout: std::time::Duration,
    pub lifecycle: Arc<Lifecycle>,
    /// Unix seconds of start-up, reported as `created` in `/v1/models`.
    pub started_at: i64,
}

/// Registers every route; used by the server and by in-process tests alike.
pub fn configure(cfg: &mut web::ServiceConfig) {
    for prefix in ["/v1", ""] {
        cfg.route(&format!("{prefix}/chat/completions"), web::post().to(openai::chat_completions))
            .route(&format!("{prefix}/completions"), web::post().to(openai::completions))
            .route(&format!("{prefix}/embeddings"), web::post().to(openai::embeddings))
            .route(&format!("{prefix}/messages"), web::post().to(anthropic::messages))
            .route(&format!("{prefix}/messages/count_tokens"), web::post().to(anthropic::count_tokens))
            .route(&format!("{prefix}/models"), web::get().to(openai::models))
            // Model group names may contain `/` (`openai/gpt-4o`), hence the tail match.
            .route(&format!("{prefix}/models/{{model:.+}}"), web::get().to(openai::model));
    }
    cfg.route("/health", web::get().to(health::health))
        .route("/health/liveliness", web::get().to(health::liveliness))
        .route("/health/liveness", web::get().to(health::liveliness))
        .route("/health/readiness", web::get().to(health::readiness))
        .route("/metrics", web::get().to(metrics::metrics))
        .route("/routing/explain", web::get().to(explain::explain))
        .route("/config/reload", web::post().to(explain::reload));
    keys::configure(cfg);
    teams::configure(cfg);
    users::configure(cfg);
    login::configure(cfg);
    customers::configure(cfg);
    reports::configure(cfg);
}

/// Unknown routes get an OpenAI-shaped 404 rather than an empty body.
pub async fn not_found(req: HttpRequest) -> HttpResponse {
    let message = format!("no route for {} {}", req.method(), req.path());
    let err = ApiError::RouteNotFound(message);
    actix_web::ResponseError::error_response(&err)
}
