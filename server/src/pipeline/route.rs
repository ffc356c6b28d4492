//! The route stage: serves a request from its model group, retrying failed calls on other deployments and falling
//! back to other groups, as the routing table's settings say (decisions in `routing::fallback`). Only failures
//! before the response started can be recovered: once a call returned a response (its headers, for a stream the
//! first byte) that response is the request's.

use std::{future::Future, sync::Arc};

use super::{hedge, RequestCtx};
use crate::{
    clock,
    error::ApiError,
    llm::{UpstreamError, UpstreamFailure},
    routing::{
        fallback::{self, FallbackKind, Recovery},
        rules::Prompt,
        Deployment, RoutingTable,
    },
};

/// What the caller asked of routing in the request itself (OpenAI-style bodies: `fallbacks`, `disable_fallbacks`),
/// and its prompt, for the rules that read it (context windows, capabilities).
#[derive(Debug, Default)]
pub struct Asked<'a> {
    pub fallbacks: Option<&'a [String]>,
    pub disable_fallbacks: bool,
    pub prompt: Option<&'a dyn Prompt>,
    /// The answer's bound for a budget reservation: the body's `max_tokens` / `max_completion_tokens`; `Some(0)`
    /// where nothing is generated (embeddings, token counts); `None`: the configured default.
    pub max_output: Option<u64>,
    /// For requests without a [`Prompt`]: an upper bound of their input tokens (the body's length).
    pub input_bound: u64,
}

/// Calls `call` (which answers the caller: `R` is the response) on deployments of `model` (and then of its fallback groups) until one answers or nothing is left
/// to try; the error is the last call's.
pub async fn serve<F, Fut, R>(
    ctx: &RequestCtx,
    table: &RoutingTable,
    model: &str,
    asked: Asked<'_>,
    mut call: F,
) -> Result<R, ApiError>
where
    F: FnMut(Arc<Deployment>) -> Fut,
    Fut: Future<Output = Result<R, ApiError>>,
{
    let settings = &table.retries;
    let mut group = model;
    // The fallback groups, decided by the first failure that needs them; `next` is the next one to try.
    let mut plan: Option<Vec<&str>> = None;
    let mut next = 0;
    // Every failed call and unavailable group, for the message when a `fallback_config` chain runs out.
    let mut trail = Trail { chained: table.group(model).is_some_and(|g| g.retry.is_some()), ..Trail::default() };
    loop {
        let error = match serve_group(ctx, table, group, asked.prompt, &mut trail, &mut call).await {
            Ok(response) => return Ok(response),
            Err(error) => error,
        };
        let kind = match fallback::recovery(&error) {
            Recovery::Stop => return Err(error),
            Recovery::Fallback(kind) => kind,
            // Retries exhausted within the group.
            Recovery::Retry => FallbackKind::General,
        };
        if asked.disable_fallbacks {
            return Err(error);
        }
        let groups = plan.get_or_insert_with(|| fallback::fallback_groups(settings, model, kind, asked.fallbacks));
        let Some(next_group) = groups.get(next) else { return Err(trail.exhausted(error)) };
        next += 1;
        tracing::info!(
            request_id = %ctx.request_id,
            from = group,
            to = next_group,
            reason = ?kind,
            "falling back to another model group"
        );
        group = next_group;
        ctx.set_fallback(group);
    }
}

/// One group: the first call, then up to `num_retries` more (or `retry_policy`'s number for the last failure's
/// class; its `fallback_config` retries instead, if it has them), each preferring a deployment not yet tried.
async fn serve_group<F, Fut, R>(
    ctx: &RequestCtx,
    table: &RoutingTable,
    group: &str,
    prompt: Option<&dyn Prompt>,
    trail: &mut Trail,
    call: &mut F,
) -> Result<R, ApiError>
where
    F: FnMut(Arc<Deployment>) -> Fut,
    Fut: Future<Output = Result<R, ApiError>>,
{
    let settings = &table.retries;
    let chained = table.group(group).and_then(|g| g.retry);
    let mut tried: Vec<String> = Vec::new();
    let mut retry = 0;
    loop {
        let picked = table.pick_for(group, prompt, rand::random::<f64>(), clock::monotonic_ms(), &tried);
        let deployment = picked.inspect_err(|e| trail.unavailable(group, e))?.clone();
        tried.push(deployment.id.clone());
        let id = deployment.id.clone();
        let error = match hedge::call(ctx, table, group, prompt, deployment, &mut tried, call).await {
            Ok(response) => return Ok(response),
            Err(error) => error,
        };
        trail.failed(group, &id, &error);
        let retries = chained.map_or_else(|| fallback::retries_for(settings, &error), |c| c.retries);
        if fallback::recovery(&error) != Recovery::Retry || retry >= retries {
            return Err(error);
        }
        retry += 1;
        // The next pick repeats a deployment only when every healthy one was tried.
        let now = clock::monotonic_ms();
        let same = table.repeats_for(group, prompt, now, &tried);
        let upstream_wait = match &error {
            ApiError::Upstream(u) => UpstreamError::retry_after(u),
            _ => None,
        };
        // `fallback_config`'s `retry_delay` is a fixed spacing, as the seed describes it, not a backoff.
        let wait = match chained {
            Some(c) => Some(c.delay),
            None => fallback::retry_delay(settings.retry_after, retry, same, upstream_wait, rand::random()),
        };
        let Some(wait) = wait else { return Err(error) };
        tracing::info!(request_id = %ctx.request_id, retry, wait_ms = wait.as_millis() as u64, "retrying the call");
        if !wait.is_zero() {
            actix_rt::time::sleep(wait).await;
        }
    }
}

/// What a request tried, for the error that ends a `fallback_config` chain.
#[derive(Debug, Default)]
struct Trail {
    /// The model asked for has a `fallback_config` entry: only then is the final error replaced.
    chained: bool,
    /// `group/deployment: failure class`, or `group: none available`, in order.
    entries: Vec<String>,
    calls_failed: bool,
}

impl Trail {
    fn failed(&mut self, group: &str, deployment: &str, error: &ApiError) {
        self.calls_failed = true;
        if !self.chained {
            return;
        }
        let class = match error {
            ApiError::Upstream(u) => match (u.failure, u.code.as_deref()) {
                (UpstreamFailure::Status(s), Some(code)) => format!("{s} {code}"),
                (UpstreamFailure::Status(s), None) => format!("{s}"),
                (UpstreamFailure::Timeout, _) => "timeout".into(),
                (UpstreamFailure::Unreachable, _) => "unreachable".into(),
                (UpstreamFailure::ErrorInBody, _) => "error in a 2xx body".into(),
                (UpstreamFailure::Malformed, _) => "malformed response".into(),
            },
            other => other.code().unwrap_or("failed").to_owned(),
        };
        self.entries.push(format!("{group}/{deployment}: {class}"));
    }

    fn unavailable(&mut self, group: &str, error: &ApiError) {
        if !self.chained {
            return;
        }
        let why = match error {
            ApiError::NoHealthyDeployment { .. } => "none available (cooling down or at rpm/tpm limits)",
            ApiError::ModelNotFound(_) => "no such model group",
            _ => return,
        };
        self.entries.push(format!("{group}: {why}"));
    }

    /// The error a request ends with when nothing is left to try.
    fn exhausted(self, last: ApiError) -> ApiError {
        if !self.chained || self.entries.is_empty() {
            return last;
        }
        let status = if self.calls_failed { 502 } else { 503 };
        ApiError::Exhausted {
            status,
            message: format!("every model group of the fallback chain failed; tried {}", self.entries.join(", ")),
        }
    }
}
