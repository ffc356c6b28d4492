//! Health checks: one cheap call to a deployment through the same call stage as a caller's request (so it is
//! signed, authenticated, settled and logged like any call, its log line tagged `health_check`): a 1-token chat
//! (`max_tokens: 1`), or for an embedding deployment one short embedding. The caller of [`check`] publishes the
//! result (the deployment's worker in the background, or `GET /health`); a failed check reports its failure to
//! the worker through the settlement, like any call.

use std::{
    sync::{atomic::AtomicU64, atomic::Ordering::Relaxed, Arc},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use bytes::Bytes;

use super::{call, RequestCtx};
use crate::{
    error::ApiError,
    lifecycle::Lifecycle,
    llm::{ChatRequest, EmbeddingsRequest, Inbound},
    routing::{stats::HealthCheck, Deployment},
};

/// LiteLLM's default health check timeout: a check ends by then even when the deployment's own timeout is longer.
pub const MAX_CHECK_TIME: Duration = Duration::from_secs(60);
/// Checks' answers are read up to this size (a 1-token answer is far smaller).
const MAX_ANSWER: usize = 1024 * 1024;

/// Runs one health check of `deployment`, bounded by its timeout (at most [`MAX_CHECK_TIME`]).
pub async fn check(
    client: &crate::upstream::Client,
    deployment: &Arc<Deployment>,
    lifecycle: &Arc<Lifecycle>,
) -> HealthCheck {
    static COUNT: AtomicU64 = AtomicU64::new(0);
    let n = COUNT.fetch_add(1, Relaxed) + 1;
    let ctx = RequestCtx::health_check(Arc::from(format!("health-check-{n}")));
    let limit = deployment.timeout.min(MAX_CHECK_TIME);
    let started = Instant::now();
    let outcome = match actix_rt::time::timeout(limit, call_once(&ctx, client, deployment, lifecycle)).await {
        Ok(outcome) => outcome,
        Err(_) => Err(format!(
            "deployment `{}` did not answer the health check within {}s",
            deployment.id,
            limit.as_secs_f64()
        )),
    };
    let checked_at_unix_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
    HealthCheck { healthy: outcome.is_ok(), latency: started.elapsed(), error: outcome.err(), checked_at_unix_ms }
}

/// The check's request and its whole answer: `Err` with the message a caller would have got.
async fn call_once(
    ctx: &RequestCtx,
    client: &crate::upstream::Client,
    deployment: &Arc<Deployment>,
    lifecycle: &Arc<Lifecycle>,
) -> Result<(), String> {
    let model = &deployment.model_group;
    let response = if deployment.embedding {
        let body = serde_json::json!({"model": model, "input": "ping"}).to_string();
        let request = EmbeddingsRequest::parse(body.as_bytes()).map_err(|e| e.to_string())?;
        call::embeddings(ctx, client, deployment, &request, lifecycle).await
    } else {
        let body =
            serde_json::json!({"model": model, "messages": [{"role": "user", "content": "ping"}], "max_tokens": 1})
                .to_string();
        let request = ChatRequest::parse(body.as_bytes()).map_err(|e| e.to_string())?;
        call::chat(ctx, client, deployment, &Inbound::OpenAi(request), None, lifecycle).await
    };
    let response = response.map_err(|e: ApiError| e.to_string())?;
    let status = response.status();
    // Reading the answer to its end completes the call (its settlement, usage and cost).
    let body: Bytes = actix_web::body::to_bytes_limited(response.into_body(), MAX_ANSWER)
        .await
        .map_err(|_| "the health check's answer was larger than 1 MiB".to_owned())?
        .map_err(|e| format!("the health check's answer broke off: {e}"))?;
    if !status.is_success() {
        return Err(format!("the health check was answered with HTTP {status}"));
    }
    // An error object in a 2xx answer (the call's settlement counted it as a failure too).
    match serde_json::from_slice::<serde_json::Value>(&body) {
        Ok(answer) => match answer.get("error") {
            Some(error) if !error.is_null() => {
                Err(error["message"].as_str().unwrap_or("error object in a 2xx answer").to_owned())
            }
            _ => Ok(()),
        },
        Err(_) => Ok(()),
    }
}
