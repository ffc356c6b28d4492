//! The call stage: sends the request to the chosen deployment in its dialect and builds the caller's response,
//! streaming the upstream body through a relay. Failures before the first response byte become [`ApiError`]s.

use std::{sync::Arc, time::Duration};

use actix_web::{
    body::SizedStream,
    http::{header, StatusCode},
    HttpResponse, HttpResponseBuilder,
};
use awc::error::SendRequestError;
use bytes::Bytes;
use futures_util::{stream, StreamExt, TryStreamExt};

use super::{
    relay::{idle_limited, BodyRelay, SseRelay, UpstreamBody},
    request::{ChatRequest, EmbeddingsRequest},
    settle::Settlement,
    usage::Peek,
    RequestCtx,
};
use crate::{
    error::{ApiError, UpstreamError, UpstreamFailure},
    lifecycle::InFlight,
    providers::{
        mock::{MockModel, MockReply},
        openai::OpenAiCompatible,
        Provider,
    },
    routing::Deployment,
    upstream,
};

const DEPLOYMENT_HEADER: header::HeaderName = header::HeaderName::from_static("x-tollgate-deployment");
const ATTEMPTS_HEADER: header::HeaderName = header::HeaderName::from_static("x-tollgate-attempts");
const OVERHEAD_HEADER: header::HeaderName = header::HeaderName::from_static("x-tollgate-overhead-ms");
const REQUEST_ID_HEADER: header::HeaderName = header::HeaderName::from_static("x-request-id");

/// Upstream error bodies are read up to this size to extract their message.
const MAX_ERROR_BODY: usize = 64 * 1024;

pub async fn chat(
    ctx: &RequestCtx,
    client: &awc::Client,
    deployment: &Arc<Deployment>,
    req: &ChatRequest<'_>,
    in_flight: InFlight,
) -> Result<HttpResponse, ApiError> {
    let mut settle = Settlement::begin(deployment.clone(), ctx.request_id.clone(), req.stream, in_flight);
    match &deployment.provider {
        Provider::OpenAi(dialect) => {
            let body = dialect.chat_body(req, &deployment.upstream_model);
            let overhead = ctx.overhead_ms();
            let timeout = if req.stream { deployment.stream_timeout } else { deployment.timeout };
            let target = Target { dialect, url: &dialect.chat_url, timeout };
            let upstream = send(ctx, client, target, deployment, body, &mut settle).await?;
            Ok(respond(overhead, deployment, upstream, settle, req.stream.then_some(req.include_usage), timeout))
        }
        Provider::Mock(mock) => {
            let overhead = ctx.overhead_ms();
            mock_delay(mock).await;
            let reply = mock
                .chat(req, &ctx.request_id, &deployment.id)
                .inspect_err(|e| settle.fail(e))
                .map_err(ApiError::Upstream)?;
            settle.headers_received();
            Ok(match reply {
                MockReply::Json(body) => complete_json(overhead, deployment, settle, body),
                MockReply::Stream { events, chunk_delay } => {
                    let body = mock_stream(events, chunk_delay);
                    builder(overhead, deployment, StatusCode::OK)
                        .insert_header((header::CONTENT_TYPE, "text/event-stream"))
                        .insert_header((header::CACHE_CONTROL, "no-cache"))
                        .streaming(SseRelay::new(body, settle, req.include_usage))
                }
            })
        }
    }
}

pub async fn embeddings(
    ctx: &RequestCtx,
    client: &awc::Client,
    deployment: &Arc<Deployment>,
    req: &EmbeddingsRequest<'_>,
    in_flight: InFlight,
) -> Result<HttpResponse, ApiError> {
    let mut settle = Settlement::begin(deployment.clone(), ctx.request_id.clone(), false, in_flight);
    match &deployment.provider {
        Provider::OpenAi(dialect) => {
            let body = dialect.embeddings_body(req, &deployment.upstream_model);
            let overhead = ctx.overhead_ms();
            let target = Target { dialect, url: &dialect.embeddings_url, timeout: deployment.timeout };
            let upstream = send(ctx, client, target, deployment, body, &mut settle).await?;
            Ok(respond(overhead, deployment, upstream, settle, None, deployment.timeout))
        }
        Provider::Mock(mock) => {
            let overhead = ctx.overhead_ms();
            mock_delay(mock).await;
            let body =
                mock.embeddings(req, &deployment.id).inspect_err(|e| settle.fail(e)).map_err(ApiError::Upstream)?;
            settle.headers_received();
            Ok(complete_json(overhead, deployment, settle, body))
        }
    }
}

type UpstreamResponse = awc::ClientResponse;

/// Sends one request; an error status, a timeout or a connection failure comes back as the caller's error.
/// One upstream request's destination and its time limit for the response headers.
struct Target<'a> {
    dialect: &'a OpenAiCompatible,
    url: &'a actix_web::http::Uri,
    timeout: Duration,
}

async fn send(
    ctx: &RequestCtx,
    client: &awc::Client,
    Target { dialect, url, timeout }: Target<'_>,
    deployment: &Deployment,
    body: Vec<u8>,
    settle: &mut Settlement,
) -> Result<UpstreamResponse, ApiError> {
    let mut request = client
        .post(url.clone())
        .timeout(timeout)
        .insert_header((header::CONTENT_TYPE, "application/json"))
        .insert_header((REQUEST_ID_HEADER, &*ctx.request_id));
    for (name, value) in dialect.headers() {
        request = request.insert_header((name.clone(), value.clone()));
    }
    let fail = |settle: &mut Settlement, failure, message: String| {
        let error = UpstreamError {
            failure,
            deployment: deployment.id.clone(),
            message,
            kind: None,
            code: None,
            param: None,
            headers: Vec::new(),
        };
        settle.fail(&error);
        ApiError::Upstream(Box::new(error))
    };
    let mut response = match request.send_body(body).await {
        Ok(r) => r,
        Err(SendRequestError::Timeout) => {
            let secs = timeout.as_secs_f64();
            let message = format!("deployment `{}` did not respond within {secs}s", deployment.id);
            return Err(fail(settle, UpstreamFailure::Timeout, message));
        }
        Err(e) => {
            let message = format!("deployment `{}` is unreachable: {}", deployment.id, upstream::connect_failure(&e));
            return Err(fail(settle, UpstreamFailure::Unreachable, message));
        }
    };
    settle.headers_received();
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let body = response.body().limit(MAX_ERROR_BODY).await.unwrap_or_default();
    let error = dialect.parse_error(&deployment.id, status.as_u16(), response.headers(), &body);
    settle.fail(&error);
    Err(ApiError::Upstream(Box::new(error)))
}

/// Streams a successful upstream response to the caller. `stream_usage` is `Some(include_usage)` for SSE; the
/// upstream may pause at most `idle` between chunks.
fn respond(
    overhead_ms: f64,
    deployment: &Deployment,
    upstream: UpstreamResponse,
    settle: Settlement,
    stream_usage: Option<bool>,
    idle: Duration,
) -> HttpResponse {
    let content_type = upstream
        .headers()
        .get(header::CONTENT_TYPE)
        .cloned()
        .unwrap_or(header::HeaderValue::from_static("application/json"));
    let length = upstream.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    let mut res = builder(overhead_ms, deployment, upstream.status());
    res.insert_header((header::CONTENT_TYPE, content_type));
    // The provider's own rate-limit state, under LiteLLM's `llm_provider-` prefix so it cannot be mistaken for
    // tollgate's limits.
    for (name, value) in upstream.headers().iter().filter(|(n, _)| n.as_str().starts_with("x-ratelimit-")) {
        if let Ok(name) = header::HeaderName::try_from(format!("llm_provider-{name}")) {
            res.append_header((name, value.clone()));
        }
    }
    let body = idle_limited(upstream.map_err(|e| e.to_string()).boxed_local(), idle);
    match stream_usage {
        Some(include_usage) => {
            res.insert_header((header::CACHE_CONTROL, "no-cache")).streaming(SseRelay::new(body, settle, include_usage))
        }
        // Keeping the upstream's length (instead of chunking) lets clients see a short body as an error.
        None => match length {
            Some(len) => res.body(SizedStream::new(len, BodyRelay::new(body, settle, Some(len)))),
            None => res.streaming(BodyRelay::new(body, settle, None)),
        },
    }
}

/// Response headers every successful call carries. `overhead_ms` is tollgate's own time before the upstream call.
fn builder(overhead_ms: f64, deployment: &Deployment, status: StatusCode) -> HttpResponseBuilder {
    let mut res = HttpResponse::build(status);
    res.insert_header((DEPLOYMENT_HEADER, deployment.id.as_str()))
        .insert_header((ATTEMPTS_HEADER, header::HeaderValue::from_static("1")))
        .insert_header((OVERHEAD_HEADER, format!("{overhead_ms:.3}")));
    res
}

/// A whole JSON body produced in-process (mock): settle with its usage and send it.
fn complete_json(overhead_ms: f64, deployment: &Deployment, mut settle: Settlement, body: Bytes) -> HttpResponse {
    if let Some(usage) = Peek::parse(&body).and_then(|p| p.usage()) {
        settle.set_usage(usage);
    }
    settle.complete();
    builder(overhead_ms, deployment, StatusCode::OK).content_type("application/json").body(body)
}

async fn mock_delay(mock: &MockModel) {
    if let Some(latency) = mock.latency() {
        actix_rt::time::sleep(latency).await;
    }
}

fn mock_stream(events: Vec<Bytes>, chunk_delay: Option<Duration>) -> UpstreamBody {
    let events = stream::iter(events.into_iter().map(Ok::<_, String>));
    match chunk_delay {
        None => events.boxed_local(),
        Some(delay) => events
            .then(move |e| async move {
                actix_rt::time::sleep(delay).await;
                e
            })
            .boxed_local(),
    }
}
