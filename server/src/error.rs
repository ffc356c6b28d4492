//! Errors at the two phase borders: [`InitError`] (start-up, aborts) and [`ApiError`] (per request, becomes an
//! OpenAI-shaped response).
//!
//! Every request error knows its status, its `error.type`/`code`, and its log level through exhaustive matches,
//! so adding a variant forces a decision for each. This is the only place that turns errors into HTTP.

use actix_web::{http::StatusCode, HttpResponse, ResponseError};
use tollgate_entity::{ErrorBody, ErrorDetail};

pub use crate::llm::{UpstreamError, UpstreamFailure};
use crate::{
    access::AccessError,
    config::ConfigError,
    limits::Refusal,
    llm::{chat::Unsupported, RequestError},
    store::StoreError,
};

#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot bind {addr}: {source}")]
    Bind { addr: String, source: std::io::Error },
    #[error("server failed: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot open the request log's journal or file at {path}: {source}")]
    Journal { path: String, source: std::io::Error },
    #[error(transparent)]
    SharedState(#[from] crate::shared_state::SharedStateError),
    #[error(
        "general_settings.master_key is the publicly known example `sk-1234` and tollgate would listen on an \
             address other hosts can reach: set a secret master key, listen on 127.0.0.1 (--host), or pass \
             --allow-example-master-key"
    )]
    ExampleMasterKey,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Request(#[from] RequestError),
    #[error(transparent)]
    Unsupported(#[from] Unsupported),
    #[error("could not read the request body: {0}")]
    BadBody(String),
    #[error("the request body did not arrive within {secs}s")]
    BodyTimeout { secs: f64 },
    #[error("request body is larger than the limit of {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("missing or invalid API key; pass it as `Authorization: Bearer <key>`")]
    Unauthorized,
    #[error("the model `{0}` does not exist or you do not have access to it")]
    ModelNotFound(String),
    #[error("{0}")]
    RouteNotFound(String),
    #[error("config reload failed, the current configuration keeps serving: {0}")]
    ReloadFailed(String),
    #[error("every deployment of model `{model}` is cooling down after failures or at its rpm/tpm limit for this minute; retry in {retry_after_secs}s")]
    NoHealthyDeployment { model: String, retry_after_secs: u64 },
    /// A virtual key refused, or a management request that cannot be done.
    #[error(transparent)]
    Access(#[from] AccessError),
    /// Over a rate limit (boxed: it carries the headers of the answer).
    #[error("{0}")]
    RateLimited(Box<Refusal>),
    /// A budget has no room for the request's maximum cost; `now` (Unix seconds) dates `retry-after`.
    #[error("{exceeded}")]
    BudgetExceeded { exceeded: Box<crate::budgets::Exceeded>, now: i64 },
    #[error("the prompt has {tokens} tokens (counted with an OpenAI tokenizer), more than any deployment of model `{model}` accepts: the largest context window is {window} tokens")]
    ContextWindowExceeded { model: String, tokens: u64, window: u64 },
    /// A `fallback_config` chain ran out: the message names every group and deployment tried and how each failed.
    /// 502 when calls failed, 503 when nothing was available to call.
    #[error("{message}")]
    Exhausted { status: u16, message: String },
    #[error("{}", .0.message)]
    /// Boxed: upstream errors carry headers and texts, and `Result<_, ApiError>` is on every hot-path call.
    Upstream(Box<UpstreamError>),
}

impl ApiError {
    /// `error.type` in the body.
    pub fn kind(&self) -> &str {
        match self {
            Self::Request(_)
            | Self::Unsupported(_)
            | Self::BadBody(_)
            | Self::BodyTimeout { .. }
            | Self::PayloadTooLarge { .. }
            | Self::Unauthorized
            | Self::ModelNotFound(_)
            | Self::RouteNotFound(_)
            | Self::ReloadFailed(_)
            | Self::ContextWindowExceeded { .. } => "invalid_request_error",
            Self::NoHealthyDeployment { .. } => "service_unavailable",
            Self::Access(a) => a.kind(),
            Self::RateLimited(_) => "rate_limit_error",
            Self::BudgetExceeded { .. } => "budget_exceeded",
            Self::Exhausted { status, .. } => {
                if *status == 503 {
                    "service_unavailable"
                } else {
                    "upstream_error"
                }
            }
            Self::Upstream(u) => match (&u.kind, u.failure) {
                (Some(kind), _) => kind,
                (None, UpstreamFailure::Timeout) => "timeout_error",
                (None, UpstreamFailure::Unreachable | UpstreamFailure::ErrorInBody | UpstreamFailure::Malformed) => {
                    "upstream_error"
                }
                (None, UpstreamFailure::Status(s)) if s >= 500 => "server_error",
                (None, UpstreamFailure::Status(_)) => "invalid_request_error",
            },
        }
    }

    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Request(RequestError::MalformedJson(_)) => Some("invalid_json"),
            Self::Request(RequestError::TooDeep) => Some("nesting_too_deep"),
            Self::Request(RequestError::InvalidField { .. }) => Some("invalid_value"),
            Self::Unsupported(_) => Some("unsupported_parameter"),
            Self::BadBody(_) => None,
            Self::BodyTimeout { .. } => Some("request_timeout"),
            Self::PayloadTooLarge { .. } => Some("request_too_large"),
            Self::Unauthorized => Some("invalid_api_key"),
            Self::ModelNotFound(_) => Some("model_not_found"),
            Self::RouteNotFound(_) => Some("not_found"),
            Self::ReloadFailed(_) => Some("config_invalid"),
            Self::NoHealthyDeployment { .. } => Some("no_healthy_deployment"),
            Self::Access(a) => Some(a.code()),
            Self::RateLimited(r) => Some(r.code()),
            Self::BudgetExceeded { .. } => Some("budget_exceeded"),
            Self::ContextWindowExceeded { .. } => Some("context_length_exceeded"),
            Self::Exhausted { .. } => Some("fallbacks_exhausted"),
            Self::Upstream(u) => match (&u.code, u.failure) {
                (Some(code), _) => Some(code),
                (None, UpstreamFailure::Timeout) => Some("upstream_timeout"),
                (None, UpstreamFailure::Unreachable) => Some("upstream_unreachable"),
                (None, UpstreamFailure::ErrorInBody) => Some("upstream_error_in_body"),
                (None, UpstreamFailure::Malformed) => Some("upstream_malformed_response"),
                (None, UpstreamFailure::Status(_)) => None,
            },
        }
    }

    pub fn param(&self) -> Option<&str> {
        match self {
            Self::Request(RequestError::InvalidField { param, .. }) => Some(param),
            Self::Unsupported(u) => Some(&u.param),
            Self::Upstream(u) => u.param.as_deref(),
            Self::Access(a) => a.param(),
            Self::ContextWindowExceeded { .. } => Some("messages"),
            Self::Request(RequestError::MalformedJson(_) | RequestError::TooDeep)
            | Self::Exhausted { .. }
            | Self::BadBody(_)
            | Self::BodyTimeout { .. }
            | Self::PayloadTooLarge { .. }
            | Self::Unauthorized
            | Self::ModelNotFound(_)
            | Self::RouteNotFound(_)
            | Self::ReloadFailed(_)
            | Self::RateLimited(_)
            | Self::BudgetExceeded { .. }
            | Self::NoHealthyDeployment { .. } => None,
        }
    }

    /// Client mistakes are WARN, faults of upstreams or of tollgate are ERROR.
    pub fn level(&self) -> tracing::Level {
        match self {
            Self::Request(_)
            | Self::Unsupported(_)
            | Self::BadBody(_)
            | Self::BodyTimeout { .. }
            | Self::PayloadTooLarge { .. }
            | Self::Unauthorized
            | Self::ModelNotFound(_)
            | Self::RouteNotFound(_)
            | Self::ReloadFailed(_)
            | Self::RateLimited(_)
            | Self::BudgetExceeded { .. }
            | Self::ContextWindowExceeded { .. } => tracing::Level::WARN,
            Self::Upstream(u) if !u.failure.counts_against_deployment() => tracing::Level::WARN,
            Self::Access(a) if !a.is_fault() => tracing::Level::WARN,
            Self::Access(_) => tracing::Level::ERROR,
            Self::NoHealthyDeployment { .. } | Self::Exhausted { .. } | Self::Upstream(_) => tracing::Level::ERROR,
        }
    }

    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: ErrorDetail {
                message: self.to_string(),
                kind: self.kind().to_owned(),
                param: self.param().map(str::to_owned),
                code: self.code().map(str::to_owned),
            },
        }
    }

    /// Logs the error once, at its level, with structured fields and the request's id.
    pub fn log(&self, request_id: &str) {
        let status = self.status_code().as_u16();
        let (kind, message) = (self.kind(), self.to_string());
        match self.level() {
            tracing::Level::ERROR => tracing::error!(request_id, status, kind, %message, "request failed"),
            _ => tracing::warn!(request_id, status, kind, %message, "request rejected"),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        let code = match self {
            Self::Request(_)
            | Self::Unsupported(_)
            | Self::BadBody(_)
            | Self::ReloadFailed(_)
            | Self::ContextWindowExceeded { .. } => 400,
            Self::Exhausted { status, .. } => *status,
            Self::BodyTimeout { .. } => 408,
            Self::PayloadTooLarge { .. } => 413,
            Self::Unauthorized => 401,
            Self::ModelNotFound(_) | Self::RouteNotFound(_) => 404,
            Self::NoHealthyDeployment { .. } => 503,
            Self::Access(a) => a.status(),
            Self::RateLimited(_) | Self::BudgetExceeded { .. } => 429,
            Self::Upstream(u) => match u.failure {
                UpstreamFailure::Status(s) => s,
                UpstreamFailure::Timeout => 504,
                UpstreamFailure::Unreachable | UpstreamFailure::ErrorInBody | UpstreamFailure::Malformed => 502,
            },
        };
        StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_GATEWAY)
    }

    fn error_response(&self) -> HttpResponse {
        let mut res = HttpResponse::build(self.status_code());
        match self {
            Self::Upstream(u) => {
                for (name, value) in &u.headers {
                    res.insert_header((name.as_str(), value.as_str()));
                }
                // Which deployment failed (the last call's, after retries): an id from the config, no secret.
                res.insert_header(("x-tollgate-deployment", u.deployment.as_str()));
            }
            Self::NoHealthyDeployment { retry_after_secs, .. } => {
                res.insert_header(("retry-after", retry_after_secs.to_string()));
            }
            Self::RateLimited(r) => {
                res.insert_header(("retry-after", r.retry_after_secs().to_string()));
                for (name, value) in r.headers.pairs() {
                    res.insert_header((name, value));
                }
            }
            Self::BudgetExceeded { exceeded, now } => {
                // Retrying cannot help before the budget resets: SDKs honour this header and do not retry; a
                // periodic budget says when it resets, a lifetime one says nothing.
                res.insert_header(("x-should-retry", "false"));
                if let Some(secs) = exceeded.retry_after_secs(*now) {
                    res.insert_header(("retry-after", secs.to_string()));
                }
            }
            Self::Access(AccessError::StoreUnavailable) => {
                res.insert_header(("retry-after", "1"));
            }
            _ => {}
        }
        res.json(self.body())
    }
}
