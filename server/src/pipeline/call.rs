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
    peek::Peek,
    relay::{idle_limited, BodyRelay, SseRelay, UpstreamBody},
    settle::Settlement,
    RequestCtx,
};
use crate::{
    error::ApiError,
    lifecycle::InFlight,
    llm::{ChatRequest, EmbeddingsRequest, UpstreamError, UpstreamFailure},
    providers::{
        mock::{MockModel, MockReply},
        openai::{self, OpenAiCompatible},
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
/// Upstream error bodies are read for at most this long (or the deployment's timeout, if shorter): awc gives a
/// response body no deadline of its own.
const ERROR_BODY_DEADLINE: Duration = Duration::from_secs(10);

pub async fn chat(
    ctx: &RequestCtx,
    client: &awc::Client,
    deployment: &Arc<Deployment>,
    req: &ChatRequest<'_>,
    in_flight: InFlight,
) -> Result<HttpResponse, ApiError> {
    let mut settle = Settlement::begin(deployment.clone(), ctx.request_id.clone(), req.stream, in_flight);
    let attempts = ctx.attempt();
    match &deployment.provider {
        Provider::OpenAi(dialect) => {
            let body = dialect.chat_body(req, &deployment.upstream_model);
            let overhead = ctx.overhead_ms();
            let timeout = if req.stream { deployment.stream_timeout } else { deployment.timeout };
            let target = Target { dialect, url: &dialect.chat_url, timeout };
            let upstream = send(ctx, client, target, deployment, body, &mut settle).await?;
            let head = Head { overhead_ms: overhead, attempts };
            Ok(respond(head, deployment, upstream, settle, req.include_usage, timeout))
        }
        Provider::Mock(mock) => {
            let overhead = ctx.overhead_ms();
            let head = Head { overhead_ms: overhead, attempts };
            mock_delay(mock).await;
            let reply = mock
                .chat(req, &ctx.request_id, &deployment.id)
                .inspect_err(|e| settle.fail(e))
                .map_err(ApiError::Upstream)?;
            settle.headers_received();
            Ok(match reply {
                MockReply::Json(body) => complete_json(head, deployment, settle, body),
                MockReply::Stream { events, chunk_delay } => {
                    let body = mock_stream(events, chunk_delay);
                    builder(head, deployment, StatusCode::OK)
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
    let attempts = ctx.attempt();
    match &deployment.provider {
        Provider::OpenAi(dialect) => {
            let body = dialect.embeddings_body(req, &deployment.upstream_model);
            let overhead = ctx.overhead_ms();
            let target = Target { dialect, url: &dialect.embeddings_url, timeout: deployment.timeout };
            let upstream = send(ctx, client, target, deployment, body, &mut settle).await?;
            let head = Head { overhead_ms: overhead, attempts };
            Ok(respond(head, deployment, upstream, settle, false, deployment.timeout))
        }
        Provider::Mock(mock) => {
            let head = Head { overhead_ms: ctx.overhead_ms(), attempts };
            mock_delay(mock).await;
            let body =
                mock.embeddings(req, &deployment.id).inspect_err(|e| settle.fail(e)).map_err(ApiError::Upstream)?;
            settle.headers_received();
            Ok(complete_json(head, deployment, settle, body))
        }
    }
}

type UpstreamResponse = awc::ClientResponse;

/// What the response headers report about the request as a whole.
#[derive(Clone, Copy)]
struct Head {
    /// tollgate's own time before the upstream call.
    overhead_ms: f64,
    /// Upstream calls this request has made, this one included.
    attempts: u32,
}

/// One upstream request's destination and its time limit for the response headers.
struct Target<'a> {
    dialect: &'a OpenAiCompatible,
    url: &'a actix_web::http::Uri,
    timeout: Duration,
}

/// Sends one request; an error status, a timeout or a connection failure comes back as the caller's error.
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
    // An error body that does not arrive in time still leaves the status and headers to report.
    let read = actix_rt::time::timeout(ERROR_BODY_DEADLINE.min(timeout), response.body().limit(MAX_ERROR_BODY));
    let body = read.await.ok().and_then(Result::ok).unwrap_or_default();
    let error = dialect.parse_error(&deployment.id, status.as_u16(), response.headers(), &body);
    settle.fail(&error);
    Err(ApiError::Upstream(Box::new(error)))
}

/// Streams a successful upstream response to the caller; the upstream may pause at most `idle` between chunks.
/// The upstream's `Content-Type` decides how: an event stream goes through [`SseRelay`] (which strips the usage
/// chunk unless `include_usage`), anything else through [`BodyRelay`], whatever the request asked for.
fn respond(
    head: Head,
    deployment: &Deployment,
    upstream: UpstreamResponse,
    settle: Settlement,
    include_usage: bool,
    idle: Duration,
) -> HttpResponse {
    let content_type = upstream
        .headers()
        .get(header::CONTENT_TYPE)
        .cloned()
        .unwrap_or(header::HeaderValue::from_static("application/json"));
    let is_event_stream = content_type.as_bytes().starts_with(b"text/event-stream");
    let length = upstream.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    let mut res = builder(head, deployment, upstream.status());
    res.insert_header((header::CONTENT_TYPE, content_type));
    for (name, value) in openai::provider_rate_limit_headers(upstream.headers()) {
        res.append_header((name, value.clone()));
    }
    let body = idle_limited(upstream.map_err(|e| e.to_string()).boxed_local(), idle);
    match is_event_stream {
        true => {
            res.insert_header((header::CACHE_CONTROL, "no-cache")).streaming(SseRelay::new(body, settle, include_usage))
        }
        // Keeping the upstream's length (instead of chunking) lets clients see a short body as an error.
        false => match length {
            Some(len) => res.body(SizedStream::new(len, BodyRelay::new(body, settle, Some(len)))),
            None => res.streaming(BodyRelay::new(body, settle, None)),
        },
    }
}

/// Response headers every successful call carries.
fn builder(head: Head, deployment: &Deployment, status: StatusCode) -> HttpResponseBuilder {
    let mut res = HttpResponse::build(status);
    res.insert_header((DEPLOYMENT_HEADER, deployment.id.as_str()))
        .insert_header((ATTEMPTS_HEADER, head.attempts))
        .insert_header((OVERHEAD_HEADER, format!("{:.3}", head.overhead_ms)));
    res
}

/// A whole JSON body produced in-process (mock): settle with its usage and send it.
fn complete_json(head: Head, deployment: &Deployment, mut settle: Settlement, body: Bytes) -> HttpResponse {
    if let Some(usage) = Peek::parse(&body).and_then(|mut p| p.take_usage()) {
        settle.set_usage(usage);
    }
    settle.complete();
    builder(head, deployment, StatusCode::OK).content_type("application/json").body(body)
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
