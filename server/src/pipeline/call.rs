//! The call stage: sends the request to the chosen deployment in its dialect and builds the caller's response,
//! streaming the upstream body through a relay. Failures before the first response byte become [`ApiError`]s.

use std::{sync::Arc, time::Duration};

use actix_web::{
    body::SizedStream,
    http::{header, StatusCode},
    HttpResponse, HttpResponseBuilder,
};
use awc::error::SendRequestError;
use bytes::{Bytes, BytesMut};
use futures_util::{stream, StreamExt, TryStreamExt};

use super::{
    peek::Peek,
    relay::{idle_limited, BodyReader, BodyRelay, SseRelay, UpstreamBody},
    settle::Settlement,
    translate::{PassRelay, TapRelay, TranslateRelay},
    RequestCtx,
};
use crate::{
    error::ApiError,
    framing::Framer,
    lifecycle::Lifecycle,
    llm::{
        chat::{DecodeError, Reply},
        EmbeddingsRequest, Inbound, MessagesRequest, RequestError, UpstreamError, UpstreamFailure, Usage,
    },
    providers::{
        anthropic,
        codec::{CallOptions, Dialect, UpstreamRequest},
        errors, inbound,
        mock::{self, MockModel},
        Provider,
    },
    routing::Deployment,
    upstream,
};

const DEPLOYMENT_HEADER: header::HeaderName = header::HeaderName::from_static("x-tollgate-deployment");
const ATTEMPTS_HEADER: header::HeaderName = header::HeaderName::from_static("x-tollgate-attempts");
const OVERHEAD_HEADER: header::HeaderName = header::HeaderName::from_static("x-tollgate-overhead-ms");
const FALLBACK_HEADER: header::HeaderName = header::HeaderName::from_static("x-tollgate-fallback");
const REQUEST_ID_HEADER: header::HeaderName = header::HeaderName::from_static("x-request-id");

/// Upstream error bodies are read up to this size to extract their message.
const MAX_ERROR_BODY: usize = 64 * 1024;
/// 2xx bodies that must be translated before the caller sees them are read whole, up to this size.
const MAX_TRANSLATED_BODY: usize = 32 * 1024 * 1024;
/// Upstream error bodies are read for at most this long (or the deployment's timeout, if shorter): awc gives a
/// response body no deadline of its own.
const ERROR_BODY_DEADLINE: Duration = Duration::from_secs(10);

/// One call of a request to one deployment: what every send, read and answer of the stage shares.
struct Call<'a> {
    ctx: &'a RequestCtx,
    client: &'a awc::Client,
    deployment: &'a Arc<Deployment>,
    /// Time the upstream may keep us waiting for headers, and then between body chunks.
    timeout: Duration,
    stream: bool,
    attempts: u32,
}

impl<'a> Call<'a> {
    fn new(ctx: &'a RequestCtx, client: &'a awc::Client, deployment: &'a Arc<Deployment>, stream: bool) -> Self {
        let timeout = if stream { deployment.stream_timeout } else { deployment.timeout };
        Self { ctx, client, deployment, timeout, stream, attempts: ctx.attempt() }
    }

    fn head(&self) -> Head {
        Head { overhead_ms: self.ctx.overhead_ms(), attempts: self.attempts, fallback: self.ctx.fallback() }
    }

    /// The settlement begins only once the request is sure to go upstream: a request refused before (a field the
    /// provider cannot take) was never a call.
    fn begin(&self, lifecycle: &Arc<Lifecycle>) -> Settlement {
        Settlement::begin(self.deployment.clone(), self.ctx.request_id.clone(), self.stream, lifecycle.enter())
            .with_ticket(self.ctx.ticket())
    }

    /// Begins the settlement and sends `request`; an error answer is read by `dialect`.
    async fn send(
        &self,
        request: UpstreamRequest,
        dialect: &dyn Dialect,
        lifecycle: &Arc<Lifecycle>,
    ) -> Result<(Head, Settlement, UpstreamResponse), ApiError> {
        let mut settle = self.begin(lifecycle);
        let head = self.head();
        let upstream = execute(self, request, dialect, &mut settle).await?;
        Ok((head, settle, upstream))
    }

    /// A whole 2xx body, read (within the timeout and [`MAX_TRANSLATED_BODY`]) and decoded before the caller sees
    /// a byte; a body that cannot be read or decoded is the deployment's failure.
    async fn decode<T>(
        &self,
        mut upstream: UpstreamResponse,
        settle: &mut Settlement,
        decode: impl FnOnce(&[u8]) -> Result<T, DecodeError>,
    ) -> Result<(T, Bytes), ApiError> {
        let read = actix_rt::time::timeout(self.timeout, upstream.body().limit(MAX_TRANSLATED_BODY)).await;
        let body = match read {
            Ok(Ok(body)) => body,
            Ok(Err(e)) => return Err(self.malformed(settle, &format!("could not read the response body: {e}"))),
            Err(_) => {
                let why = format!("the response body did not arrive within {}s", self.timeout.as_secs_f64());
                return Err(self.malformed(settle, &why));
            }
        };
        let decoded = decode(&body).map_err(|e| self.malformed(settle, &e.0))?;
        Ok((decoded, body))
    }

    /// A 2xx response tollgate cannot read: a failure of the deployment, reported once, shown as 502.
    fn malformed(&self, settle: &mut Settlement, why: &str) -> ApiError {
        settle.malformed();
        let id = &self.deployment.id;
        ApiError::Upstream(Box::new(UpstreamError {
            failure: UpstreamFailure::Malformed,
            deployment: id.clone(),
            message: format!("deployment `{id}` sent a response tollgate could not read: {why}"),
            kind: None,
            code: None,
            param: None,
            headers: Vec::new(),
        }))
    }

    /// A whole JSON answer, the call settled with `usage`.
    fn json(&self, head: Head, mut settle: Settlement, usage: Option<Usage>, body: impl Into<Bytes>) -> HttpResponse {
        if let Some(usage) = usage {
            settle.set_usage(usage);
        }
        settle.complete();
        builder(head, self.deployment, StatusCode::OK).content_type("application/json").body(body.into())
    }

    /// The provider cannot take requests yet (its access token is still being fetched): 503, before any call, so
    /// the deployment's health is not blamed.
    fn ready(&self, dialect: &dyn Dialect) -> Result<(), ApiError> {
        let Some(why) = dialect.not_ready() else { return Ok(()) };
        let id = &self.deployment.id;
        Err(ApiError::Upstream(Box::new(UpstreamError {
            failure: UpstreamFailure::Status(503),
            deployment: id.clone(),
            message: format!("deployment `{id}` is not ready: {why}"),
            kind: Some("service_unavailable".into()),
            code: Some("deployment_not_ready".into()),
            param: None,
            headers: vec![("retry-after".into(), "1".into())],
        })))
    }
}

pub async fn chat(
    ctx: &RequestCtx,
    client: &awc::Client,
    deployment: &Arc<Deployment>,
    inbound: &Inbound<'_>,
    beta: Option<&header::HeaderValue>,
    lifecycle: &Arc<Lifecycle>,
) -> Result<HttpResponse, ApiError> {
    let call = Call::new(ctx, client, deployment, inbound.stream());
    let dialect = match (&deployment.provider, inbound) {
        // Same dialect on both sides: the caller's bytes, spliced, and the upstream's bytes relayed.
        (Provider::OpenAi(openai), Inbound::OpenAi(req)) => {
            call.ready(&**openai)?;
            let request = openai.splice_chat(req, &deployment.upstream_model);
            let (head, settle, upstream) = call.send(request, &**openai, lifecycle).await?;
            return Ok(respond(head, deployment, upstream, settle, req.include_usage, call.timeout));
        }
        (Provider::Mock(mock), _) => {
            let chat = inbound::canonical(inbound)?;
            let mut settle = call.begin(lifecycle);
            let head = call.head();
            mock_delay(mock).await;
            let reply = mock
                .chat(&chat, &ctx.request_id, &deployment.id)
                .inspect_err(|e| settle.fail(e))
                .map_err(ApiError::Upstream)?;
            settle.headers_received();
            return Ok(mock_response(head, deployment, inbound, reply, mock.chunk_delay(), settle));
        }
        (Provider::OpenAi(openai), Inbound::Anthropic(_) | Inbound::Completions(_)) => &**openai as &dyn Dialect,
        (Provider::Native(native), _) => &**native,
    };
    call.ready(dialect)?;
    if let Inbound::Anthropic(req) = inbound {
        if let Some(request) = dialect.splice_messages(req, &deployment.upstream_model, beta) {
            let (head, settle, upstream) = call.send(request, dialect, lifecycle).await?;
            return Ok(tap(head, deployment, upstream, dialect, inbound, settle, call.timeout));
        }
    }
    if let Inbound::Completions(req) = inbound {
        if let Some(request) = dialect.splice_completions(req, &deployment.upstream_model) {
            let (head, settle, upstream) = call.send(request, dialect, lifecycle).await?;
            return Ok(respond(head, deployment, upstream, settle, req.include_usage, call.timeout));
        }
    }
    let chat = inbound::canonical(inbound)?;
    let options = CallOptions {
        upstream_model: &deployment.upstream_model,
        stream: call.stream,
        drop_params: deployment.drop_params,
    };
    let request = dialect.chat_request(&chat, options)?;
    let (head, mut settle, upstream) = call.send(request, dialect, lifecycle).await?;
    if call.stream {
        return Ok(translate_stream(head, deployment, upstream, dialect, inbound, settle, call.timeout));
    }
    let (reply, _) = call.decode(upstream, &mut settle, |body| dialect.decode_reply(body)).await?;
    Ok(call.json(head, settle, reply.usage, inbound::encode_reply(inbound, &reply, unix_now())))
}

pub async fn embeddings(
    ctx: &RequestCtx,
    client: &awc::Client,
    deployment: &Arc<Deployment>,
    req: &EmbeddingsRequest<'_>,
    lifecycle: &Arc<Lifecycle>,
) -> Result<HttpResponse, ApiError> {
    let call = Call::new(ctx, client, deployment, false);
    let dialect: &dyn Dialect = match &deployment.provider {
        Provider::OpenAi(openai) => {
            call.ready(&**openai)?;
            let request = openai.splice_embeddings(req, &deployment.upstream_model);
            let (head, settle, upstream) = call.send(request, &**openai, lifecycle).await?;
            return Ok(respond(head, deployment, upstream, settle, false, call.timeout));
        }
        Provider::Mock(mock) => {
            let mut settle = call.begin(lifecycle);
            let head = call.head();
            mock_delay(mock).await;
            let body =
                mock.embeddings(req, &deployment.id).inspect_err(|e| settle.fail(e)).map_err(ApiError::Upstream)?;
            settle.headers_received();
            return Ok(complete_json(head, deployment, settle, body));
        }
        Provider::Native(native) => &**native,
    };
    call.ready(dialect)?;
    let input = inbound::embed_input(req, dialect.provider())?;
    let request = dialect.embeddings_request(&input, &deployment.upstream_model)?;
    let (head, mut settle, upstream) = call.send(request, dialect, lifecycle).await?;
    let (embeddings, _) = call.decode(upstream, &mut settle, |body| dialect.decode_embeddings(body)).await?;
    let usage = embeddings.prompt_tokens.map(|tokens| Usage { prompt_tokens: tokens, ..Usage::default() });
    let out = inbound::render_embeddings(&embeddings, &req.model, inbound::wants_base64(req));
    Ok(call.json(head, settle, usage, out))
}

/// `POST /v1/messages/count_tokens`: counted by the provider's own endpoint (Anthropic), by the mock's tokenizer,
/// or refused naming the provider. Counting is free, so the call settles with zero tokens.
pub async fn count_tokens(
    ctx: &RequestCtx,
    client: &awc::Client,
    deployment: &Arc<Deployment>,
    req: &MessagesRequest<'_>,
    beta: Option<&header::HeaderValue>,
    lifecycle: &Arc<Lifecycle>,
) -> Result<HttpResponse, ApiError> {
    let call = Call::new(ctx, client, deployment, false);
    let dialect: &dyn Dialect = match &deployment.provider {
        Provider::Mock(mock) => {
            let chat = anthropic::decode_request(req)?;
            let tokens = mock.count_tokens(&chat, &deployment.id).map_err(ApiError::Upstream)?;
            let body = anthropic::count_tokens_body(tokens);
            return Ok(builder(call.head(), deployment, StatusCode::OK).content_type("application/json").body(body));
        }
        Provider::OpenAi(openai) => &**openai,
        Provider::Native(native) => &**native,
    };
    call.ready(dialect)?;
    let Some(request) = dialect.count_tokens_request(req, &deployment.upstream_model, beta) else {
        return Err(ApiError::Request(RequestError::InvalidField {
            param: "model",
            message: format!("count_tokens is not supported for provider `{}` yet", dialect.provider()),
        }));
    };
    let (head, mut settle, upstream) = call.send(request, dialect, lifecycle).await?;
    let (_, body) = call.decode(upstream, &mut settle, anthropic::decode_count_tokens).await?;
    Ok(call.json(head, settle, Some(Usage::default()), body))
}

type UpstreamResponse = awc::ClientResponse;

/// What the response headers report about the request as a whole.
#[derive(Clone)]
struct Head {
    /// tollgate's own time before the upstream call.
    overhead_ms: f64,
    /// Upstream calls this request has made, this one included.
    attempts: u32,
    /// The fallback group serving the request, when it is not the one asked for.
    fallback: Option<Arc<str>>,
}

/// Sends one request to its upstream: the one execute step for every provider and endpoint. An error status, a
/// timeout or a connection failure comes back as the caller's error, an error answer read by the provider's
/// dialect.
async fn execute(
    call: &Call<'_>,
    request: UpstreamRequest,
    dialect: &dyn Dialect,
    settle: &mut Settlement,
) -> Result<UpstreamResponse, ApiError> {
    let (deployment, timeout) = (call.deployment, call.timeout);
    let mut builder = call
        .client
        .post(request.url)
        .timeout(timeout)
        .insert_header((header::CONTENT_TYPE, "application/json"))
        .insert_header((REQUEST_ID_HEADER, &*call.ctx.request_id));
    for (name, value) in request.headers {
        builder = builder.insert_header((name, value));
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
    let mut response = match builder.send_body(request.body).await {
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

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The headers of a translated stream response.
fn stream_builder(head: Head, deployment: &Deployment, upstream: &UpstreamResponse) -> HttpResponseBuilder {
    let mut res = builder(head, deployment, StatusCode::OK);
    res.insert_header((header::CONTENT_TYPE, "text/event-stream")).insert_header((header::CACHE_CONTROL, "no-cache"));
    for (name, value) in errors::provider_rate_limit_headers(upstream.headers()) {
        res.append_header((name, value.clone()));
    }
    res
}

/// A stream in the provider's dialect, translated event by event into the caller's.
fn translate_stream(
    head: Head,
    deployment: &Deployment,
    upstream: UpstreamResponse,
    dialect: &dyn Dialect,
    inbound: &Inbound<'_>,
    settle: Settlement,
    idle: Duration,
) -> HttpResponse {
    let mut res = stream_builder(head, deployment, &upstream);
    let body = idle_limited(upstream.map_err(|e| e.to_string()).boxed_local(), idle);
    let relay = TranslateRelay::new(
        body,
        Framer::new(dialect.framing()),
        dialect.stream_decoder(),
        inbound::encoder(inbound, unix_now()),
        settle,
    );
    res.streaming(relay)
}

/// A response already in the caller's dialect (Anthropic to Anthropic): bytes relayed as they are, read on the
/// side for usage and for where the stream ends.
fn tap(
    head: Head,
    deployment: &Deployment,
    upstream: UpstreamResponse,
    dialect: &dyn Dialect,
    inbound: &Inbound<'_>,
    settle: Settlement,
    idle: Duration,
) -> HttpResponse {
    let is_event_stream =
        upstream.headers().get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    let mut res = stream_builder(head, deployment, &upstream);
    let body = idle_limited(upstream.map_err(|e| e.to_string()).boxed_local(), idle);
    if is_event_stream {
        let relay = TapRelay::new(
            body,
            Framer::new(dialect.framing()),
            dialect.stream_decoder(),
            inbound::encoder(inbound, unix_now()),
            settle,
        );
        return res.streaming(relay);
    }
    res.insert_header((header::CONTENT_TYPE, "application/json"));
    res.streaming(BodyRelay::new(body, settle, None, BodyReader::Dialect))
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
    for (name, value) in errors::provider_rate_limit_headers(upstream.headers()) {
        res.append_header((name, value.clone()));
    }
    let body = idle_limited(upstream.map_err(|e| e.to_string()).boxed_local(), idle);
    match is_event_stream {
        true => {
            res.insert_header((header::CACHE_CONTROL, "no-cache")).streaming(SseRelay::new(body, settle, include_usage))
        }
        // Keeping the upstream's length (instead of chunking) lets clients see a short body as an error.
        false => match length {
            Some(len) => res.body(SizedStream::new(len, BodyRelay::new(body, settle, Some(len), BodyReader::OpenAi))),
            None => res.streaming(BodyRelay::new(body, settle, None, BodyReader::OpenAi)),
        },
    }
}

/// Response headers every successful call carries.
fn builder(head: Head, deployment: &Deployment, status: StatusCode) -> HttpResponseBuilder {
    let mut res = HttpResponse::build(status);
    res.insert_header((DEPLOYMENT_HEADER, deployment.id.as_str()))
        .insert_header((ATTEMPTS_HEADER, head.attempts))
        .insert_header((OVERHEAD_HEADER, format!("{:.3}", head.overhead_ms)));
    if let Some(group) = &head.fallback {
        res.insert_header((FALLBACK_HEADER, &**group));
    }
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

/// The mock's reply in the caller's dialect: whole, or as a stream of the events a provider would send.
fn mock_response(
    head: Head,
    deployment: &Deployment,
    inbound: &Inbound<'_>,
    reply: Reply,
    chunk_delay: Option<Duration>,
    mut settle: Settlement,
) -> HttpResponse {
    if let Some(usage) = reply.usage {
        settle.set_usage(usage);
    }
    let created = unix_now();
    if !inbound.stream() {
        settle.complete();
        let body = inbound::encode_reply(inbound, &reply, created);
        return builder(head, deployment, StatusCode::OK).content_type("application/json").body(body);
    }
    let mut encoder = inbound::encoder(inbound, created);
    let mut chunks: Vec<Bytes> = mock::stream_events(&reply)
        .iter()
        .map(|event| {
            let mut out = BytesMut::new();
            encoder.event(event, &mut out);
            out.freeze()
        })
        .filter(|chunk| !chunk.is_empty())
        .collect();
    let mut last = BytesMut::new();
    encoder.end(&mut last);
    chunks.push(last.freeze());
    builder(head, deployment, StatusCode::OK)
        .insert_header((header::CONTENT_TYPE, "text/event-stream"))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .streaming(PassRelay::new(mock_stream(chunks, chunk_delay), settle))
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
