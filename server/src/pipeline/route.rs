//! The route stage: serves a request from its model group, retrying failed calls on other deployments and falling
//! back to other groups, as the routing table's settings say (decisions in `routing::fallback`). Only failures
//! before the response started can be recovered: once a call returned a response (its headers, for a stream the
//! first byte) that response is the request's.

use std::{future::Future, sync::Arc};

use super::RequestCtx;
use crate::{
    clock,
    error::ApiError,
    llm::UpstreamError,
    routing::{
        fallback::{self, FallbackKind, Recovery},
        Deployment, RoutingTable,
    },
};

/// What the caller asked of routing in the request itself (OpenAI-style bodies: `fallbacks`, `disable_fallbacks`).
#[derive(Debug, Default)]
pub struct Asked<'a> {
    pub fallbacks: Option<&'a [String]>,
    pub disable_fallbacks: bool,
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
    loop {
        let error = match serve_group(ctx, table, group, &mut call).await {
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
        let Some(next_group) = groups.get(next) else { return Err(error) };
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
/// class), each preferring a deployment not yet tried.
async fn serve_group<F, Fut, R>(
    ctx: &RequestCtx,
    table: &RoutingTable,
    group: &str,
    call: &mut F,
) -> Result<R, ApiError>
where
    F: FnMut(Arc<Deployment>) -> Fut,
    Fut: Future<Output = Result<R, ApiError>>,
{
    let settings = &table.retries;
    let mut tried: Vec<String> = Vec::new();
    let mut retry = 0;
    loop {
        let deployment = table.pick(group, rand::random::<f64>(), clock::monotonic_ms(), &tried)?.clone();
        tried.push(deployment.id.clone());
        let error = match call(deployment).await {
            Ok(response) => return Ok(response),
            Err(error) => error,
        };
        if fallback::recovery(&error) != Recovery::Retry || retry >= fallback::retries_for(settings, &error) {
            return Err(error);
        }
        retry += 1;
        // The next pick repeats a deployment only when every healthy one was tried.
        let now = clock::monotonic_ms();
        let same = table.repeats(group, now, &tried);
        let upstream_wait = match &error {
            ApiError::Upstream(u) => UpstreamError::retry_after(u),
            _ => None,
        };
        let Some(wait) = fallback::retry_delay(settings.retry_after, retry, same, upstream_wait, rand::random()) else {
            return Err(error);
        };
        tracing::info!(request_id = %ctx.request_id, retry, wait_ms = wait.as_millis() as u64, "retrying the call");
        if !wait.is_zero() {
            actix_rt::time::sleep(wait).await;
        }
    }
}
