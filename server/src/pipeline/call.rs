//! The call stage: sends the request to the chosen deployment in its dialect and builds the caller's response,
//! streaming the upstream body through a relay. The response is held until the upstream's first event (for a
//! whole answer, its first byte) arrived, so every failure before it (error status, timeout, a body that ends or
//! breaks first) is an [`ApiError`] routing can still recover from.
//!
//! Limits (docs/routing.md): a non-streaming call has `timeout` for all of it; a streaming call has
//! `stream_timeout` to its first event, then `stream_idle_timeout` between chunks; connecting is bounded by the
//! client (`router_settings.connect_timeout`, `upstream::Upstream::client`, `upstream::plain`).

use std::{cell::Cell, sync::Arc, time::Duration};

use actix_rt::time::Instant;
use actix_web::{
    body::SizedStream,
    http::{
        header::{self, HeaderName, HeaderValue},
        StatusCode,
    },
    HttpResponse, HttpResponseBuilder,
};
use bytes::{Bytes, BytesMut};
use futures_util::{stream, StreamExt};

use super::{
    peek::Peek,
    prime::{self, NoFirstEvent},
    relay::{idle_limited, BodyReader, BodyRelay, SseRelay, UpstreamBody},
    settle::{Millis, Settlement},
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
const COST_HEADER: header::HeaderName = header::HeaderName::from_static("x-tollgate-response-cost");
const FALLBACK_HEADER: header::HeaderName = header::HeaderName::from_static("x-tollgate-fallback");
const HEDGED_HEADER: header::HeaderName = header::HeaderName::from_static("x-tollgate-hedged");
const REQUEST_ID_HEADER: header::HeaderName = header::HeaderName::from_static("x-request-id");
const TRACEPARENT: header::HeaderName = header::HeaderName::from_static("traceparent");
const TRACESTATE: header::HeaderName = header::HeaderName::from_static("tracestate");

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
    client: &'a upstream::Client,
    deployment: &'a Arc<Deployment>,
    stream: bool,
    /// When the call began: its first-byte deadline (and a whole answer's) counts from here.
    started: Instant,
    /// tollgate's own time before the upstream call, taken when the settlement begins.
    overhead_ms: Cell<f64>,
}

impl<'a> Call<'a> {
    fn new(ctx: &'a RequestCtx, client: &'a upstream::Client, deployment: &'a Arc<Deployment>, stream: bool) -> Self {
        ctx.attempt();
        Self { ctx, client, deployment, stream, started: Instant::now(), overhead_ms: Cell::new(ctx.overhead_ms()) }
    }

    /// The time from the call's start to its first byte: the first event of a stream (`stream_timeout`), all of a
    /// whole answer (`timeout`).
    fn limit(&self) -> Duration {
        if self.stream {
            self.deployment.stream_timeout
        } else {
            self.deployment.timeout
        }
    }

    fn deadline(&self) -> Instant {
        self.started + self.limit()
    }

    /// Read when the response is built, after the upstream's first event: a hedged call started meanwhile counts.
    fn head(&self) -> Head {
        Head {
            overhead_ms: self.overhead_ms.get(),
            attempts: self.ctx.attempts(),
            fallback: self.ctx.fallback(),
            hedged: self.ctx.hedged(),
        }
    }

    /// The settlement begins only once the request is sure to go upstream: a request refused before (a field the
    /// provider cannot take) was never a call.
    fn begin(&self, lifecycle: &Arc<Lifecycle>) -> Settlement {
        self.overhead_ms.set(self.ctx.overhead_ms());
        let mut settle =
            Settlement::begin(self.deployment.clone(), self.ctx.request_id.clone(), self.stream, lifecycle.enter())
                .overhead_ms(self.overhead_ms.get())
                .health_check(self.ctx.health_check)
                .log(self.ctx.log().cloned())
                .with_ticket(self.ctx.ticket());
        settle.watch_race(self.ctx.race_lost());
        settle
    }

    /// Begins the settlement and sends `request`; an error answer is read by `dialect`.
    async fn send(
        &self,
        request: UpstreamRequest,
        dialect: &dyn Dialect,
        lifecycle: &Arc<Lifecycle>,
    ) -> Result<(Settlement, UpstreamResponse), ApiError> {
        let mut settle = self.begin(lifecycle);
        let upstream = execute(self, request, dialect, &mut settle).await?;
        Ok((settle, upstream))
    }

    /// The 2xx body to relay, once its first event arrived (before the caller sees a byte), with the limits on
    /// the rest: the whole answer's deadline, or the idle limit between stream chunks.
    async fn first_event(
        &self,
        upstream: &mut UpstreamResponse,
        settle: &mut Settlement,
    ) -> Result<UpstreamBody, ApiError> {
        let body = upstream.take_body();
        let deadline = self.deadline();
        let body = match prime::first_event(body, is_event_stream(upstream.headers()), deadline).await {
            Ok(body) => body,
            Err(why) => return Err(self.abandon(settle, why)),
        };
        settle.first_event();
        Ok(match self.stream {
            true => idle_limited(body, self.deployment.stream_idle_timeout),
            false => prime::deadline_limited(body, deadline, self.limit().as_secs_f64()),
        })
    }

    /// A 2xx answer given up before its first event: the deployment's failure, settled (its connection closes as
    /// the body is dropped) and left to routing to retry.
    fn abandon(&self, settle: &mut Settlement, why: NoFirstEvent) -> ApiError {
        let (id, secs) = (&self.deployment.id, self.limit().as_secs_f64());
        let first = if self.stream { "first event" } else { "first byte" };
        let (failure, message) = match why {
            NoFirstEvent::TimedOut if self.stream => (
                UpstreamFailure::Timeout,
                format!("deployment `{id}` sent no first event within {secs}s (stream_timeout)"),
            ),
            NoFirstEvent::TimedOut => {
                (UpstreamFailure::Timeout, format!("deployment `{id}` did not answer within {secs}s (timeout)"))
            }
            NoFirstEvent::Ended => {
                (UpstreamFailure::Unreachable, format!("deployment `{id}` ended its response before its {first}"))
            }
            NoFirstEvent::Broke(e) => {
                (UpstreamFailure::Unreachable, format!("deployment `{id}`'s response broke before its {first}: {e}"))
            }
        };
        let error = UpstreamError {
            failure,
            deployment: id.clone(),
            message,
            kind: None,
            code: None,
            param: None,
            headers: Vec::new(),
        };
        settle.abandon(&error);
        ApiError::Upstream(Box::new(error))
    }

    /// A whole 2xx body, read (by the call's deadline and within [`MAX_TRANSLATED_BODY`]) and decoded before the
    /// caller sees a byte; a body that cannot be read or decoded is the deployment's failure.
    async fn decode<T>(
        &self,
        mut upstream: UpstreamResponse,
        settle: &mut Settlement,
        decode: impl FnOnce(&[u8]) -> Result<T, DecodeError>,
    ) -> Result<(T, Bytes), ApiError> {
        let left = self.deadline().saturating_duration_since(Instant::now());
        let read = actix_rt::time::timeout(left, upstream.read_body(MAX_TRANSLATED_BODY)).await;
        let body = match read {
            Ok(Ok(body)) => body,
            Ok(Err(e)) => return Err(self.malformed(settle, &format!("could not read the response body: {e}"))),
            Err(_) => return Err(self.abandon(settle, NoFirstEvent::TimedOut)),
        };
        let decoded = decode(&body).map_err(|e| self.malformed(settle, &e.0))?;
        Ok((decoded, body))
    }

    /// A relayed 2xx answer in the caller's own dialect (OpenAI shapes), once its first event arrived.
    async fn respond(
        &self,
        mut upstream: UpstreamResponse,
        mut settle: Settlement,
        include_usage: bool,
    ) -> Result<HttpResponse, ApiError> {
        let body = self.first_event(&mut upstream, &mut settle).await?;
        Ok(respond(self.head(), self.deployment, &upstream, body, settle, include_usage))
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
    fn json(&self, mut settle: Settlement, usage: Option<Usage>, body: impl Into<Bytes>) -> HttpResponse {
        if let Some(usage) = usage {
            settle.set_usage(usage);
        }
        settle.complete();
        let mut res = builder(self.head(), self.deployment, StatusCode::OK);
        cost_header(&mut res, self.deployment, usage);
        res.content_type("application/json").body(body.into())
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
    client: &upstream::Client,
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
            let (settle, upstream) = call.send(request, &**openai, lifecycle).await?;
            return call.respond(upstream, settle, req.include_usage).await;
        }
        (Provider::Mock(mock), _) => {
            let chat = inbound::canonical(inbound)?;
            let mut settle = call.begin(lifecycle);
            mock_delay(mock).await;
            let reply = mock
                .chat(&chat, &ctx.request_id, &deployment.id)
                .inspect_err(|e| settle.fail(e))
                .map_err(ApiError::Upstream)?;
            settle.headers_received();
            return Ok(mock_response(call.head(), deployment, inbound, reply, mock.chunk_delay(), settle));
        }
        (Provider::OpenAi(openai), Inbound::Anthropic(_) | Inbound::Completions(_)) => &**openai as &dyn Dialect,
        (Provider::Native(native), _) => &**native,
    };
    call.ready(dialect)?;
    if let Inbound::Anthropic(req) = inbound {
        if let Some(request) = dialect.splice_messages(req, &deployment.upstream_model, beta) {
            let (mut settle, mut upstream) = call.send(request, dialect, lifecycle).await?;
            let body = call.first_event(&mut upstream, &mut settle).await?;
            return Ok(tap(call.head(), deployment, &upstream, body, dialect, inbound, settle));
        }
    }
    if let Inbound::Completions(req) = inbound {
        if let Some(request) = dialect.splice_completions(req, &deployment.upstream_model) {
            let (settle, upstream) = call.send(request, dialect, lifecycle).await?;
            return call.respond(upstream, settle, req.include_usage).await;
        }
    }
    let chat = inbound::canonical(inbound)?;
    let options = CallOptions {
        upstream_model: &deployment.upstream_model,
        stream: call.stream,
        drop_params: deployment.drop_params,
    };
    let request = dialect.chat_request(&chat, options)?;
    let (mut settle, mut upstream) = call.send(request, dialect, lifecycle).await?;
    if call.stream {
        let body = call.first_event(&mut upstream, &mut settle).await?;
        return Ok(translate_stream(call.head(), deployment, &upstream, body, dialect, inbound, settle));
    }
    let (reply, _) = call.decode(upstream, &mut settle, |body| dialect.decode_reply(body)).await?;
    settle.read_reply(&reply);
    Ok(call.json(settle, reply.usage, inbound::encode_reply(inbound, &reply, unix_now())))
}

pub async fn embeddings(
    ctx: &RequestCtx,
    client: &upstream::Client,
    deployment: &Arc<Deployment>,
    req: &EmbeddingsRequest<'_>,
    lifecycle: &Arc<Lifecycle>,
) -> Result<HttpResponse, ApiError> {
    let call = Call::new(ctx, client, deployment, false);
    let dialect: &dyn Dialect = match &deployment.provider {
        Provider::OpenAi(openai) => {
            call.ready(&**openai)?;
            let request = openai.splice_embeddings(req, &deployment.upstream_model);
            let (settle, upstream) = call.send(request, &**openai, lifecycle).await?;
            return call.respond(upstream, settle, false).await;
        }
        Provider::Mock(mock) => {
            let mut settle = call.begin(lifecycle);
            mock_delay(mock).await;
            let body =
                mock.embeddings(req, &deployment.id).inspect_err(|e| settle.fail(e)).map_err(ApiError::Upstream)?;
            settle.headers_received();
            return Ok(complete_json(call.head(), deployment, settle, body));
        }
        Provider::Native(native) => &**native,
    };
    call.ready(dialect)?;
    let input = inbound::embed_input(req, dialect.provider())?;
    let request = dialect.embeddings_request(&input, &deployment.upstream_model)?;
    let (mut settle, upstream) = call.send(request, dialect, lifecycle).await?;
    let (embeddings, _) = call.decode(upstream, &mut settle, |body| dialect.decode_embeddings(body)).await?;
    let usage = embeddings.prompt_tokens.map(|tokens| Usage { prompt_tokens: tokens, ..Usage::default() });
    let out = inbound::render_embeddings(&embeddings, &req.model, inbound::wants_base64(req));
    Ok(call.json(settle, usage, out))
}

/// `POST /v1/messages/count_tokens`: counted by the provider's own endpoint (Anthropic), by the mock's tokenizer,
/// or refused naming the provider. Counting is free, so the call settles with zero tokens.
pub async fn count_tokens(
    ctx: &RequestCtx,
    client: &upstream::Client,
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
    let (mut settle, upstream) = call.send(request, dialect, lifecycle).await?;
    let (_, body) = call.decode(upstream, &mut settle, anthropic::decode_count_tokens).await?;
    Ok(call.json(settle, Some(Usage::default()), body))
}

type UpstreamResponse = upstream::Response;

/// What the response headers report about the request as a whole.
#[derive(Clone)]
struct Head {
    /// tollgate's own time before the upstream call.
    overhead_ms: f64,
    /// Upstream calls this request has made, this one included.
    attempts: u32,
    /// The fallback group serving the request, when it is not the one asked for.
    fallback: Option<Arc<str>>,
    /// A hedged call was sent for this request (`pipeline::hedge`).
    hedged: bool,
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
    let (deployment, timeout) = (call.deployment, call.limit());
    let headers = request_headers(call, request.headers);
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
    let mut response = match call.client.post(&request.url, &headers, request.body, timeout).await {
        Ok(r) => r,
        Err(upstream::SendError::Timeout) => {
            let (secs, key) = (timeout.as_secs_f64(), if call.stream { "stream_timeout" } else { "timeout" });
            let message = format!("deployment `{}` did not respond within {secs}s ({key})", deployment.id);
            return Err(fail(settle, UpstreamFailure::Timeout, message));
        }
        Err(upstream::SendError::ConnectTimeout) => {
            let message = format!(
                "deployment `{}` could not be connected to within router_settings.connect_timeout",
                deployment.id
            );
            return Err(fail(settle, UpstreamFailure::Timeout, message));
        }
        Err(upstream::SendError::Failed(why)) => {
            let message = format!("deployment `{}` is unreachable: {why}", deployment.id);
            return Err(fail(settle, UpstreamFailure::Unreachable, message));
        }
    };
    settle.headers_received();
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    // An error body that does not arrive in time still leaves the status and headers to report.
    let read = actix_rt::time::timeout(ERROR_BODY_DEADLINE.min(timeout), response.read_body(MAX_ERROR_BODY));
    let body = read.await.ok().and_then(Result::ok).unwrap_or_default();
    let error = dialect.parse_error(&deployment.id, status.as_u16(), response.headers(), &body);
    settle.fail(&error);
    Err(ApiError::Upstream(Box::new(error)))
}

/// Every upstream request's headers: its content type, request id and trace context, then the provider's own
/// (which replace any of the first by name, as the provider's dialect decides).
fn request_headers(call: &Call<'_>, provider: Vec<(HeaderName, HeaderValue)>) -> Vec<(HeaderName, HeaderValue)> {
    let mut headers = Vec::with_capacity(4 + provider.len());
    headers.push((header::CONTENT_TYPE, HeaderValue::from_static("application/json")));
    if let Ok(id) = HeaderValue::from_str(&call.ctx.request_id) {
        headers.push((REQUEST_ID_HEADER, id));
    }
    if let Some(trace) = &call.ctx.trace {
        if let Ok(parent) = HeaderValue::from_str(&trace.traceparent) {
            headers.push((TRACEPARENT, parent));
        }
        if let Some(state) = trace.tracestate.as_deref().and_then(|s| HeaderValue::from_str(s).ok()) {
            headers.push((TRACESTATE, state));
        }
    }
    for (name, value) in provider {
        match headers.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = value,
            None => headers.push((name, value)),
        }
    }
    if !headers.iter().any(|(n, _)| *n == header::USER_AGENT) {
        headers.push((header::USER_AGENT, HeaderValue::from_static(upstream::USER_AGENT)));
    }
    headers
}

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn is_event_stream(headers: &header::HeaderMap) -> bool {
    headers.get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"))
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
    upstream: &UpstreamResponse,
    body: UpstreamBody,
    dialect: &dyn Dialect,
    inbound: &Inbound<'_>,
    settle: Settlement,
) -> HttpResponse {
    let mut res = stream_builder(head, deployment, upstream);
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
    upstream: &UpstreamResponse,
    body: UpstreamBody,
    dialect: &dyn Dialect,
    inbound: &Inbound<'_>,
    settle: Settlement,
) -> HttpResponse {
    let mut res = stream_builder(head, deployment, upstream);
    if is_event_stream(upstream.headers()) {
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

/// Streams a successful upstream response (`body`, already limited) to the caller. The upstream's `Content-Type`
/// decides how: an event stream goes through [`SseRelay`] (which strips the usage chunk unless `include_usage`),
/// anything else through [`BodyRelay`], whatever the request asked for.
fn respond(
    head: Head,
    deployment: &Deployment,
    upstream: &UpstreamResponse,
    body: UpstreamBody,
    settle: Settlement,
    include_usage: bool,
) -> HttpResponse {
    let content_type = upstream
        .headers()
        .get(header::CONTENT_TYPE)
        .cloned()
        .unwrap_or(header::HeaderValue::from_static("application/json"));
    let is_event_stream = content_type.as_bytes().starts_with(b"text/event-stream");
    let length = upstream.content_length();
    let mut res = builder(head, deployment, upstream.status());
    res.insert_header((header::CONTENT_TYPE, content_type));
    for (name, value) in errors::provider_rate_limit_headers(upstream.headers()) {
        res.append_header((name, value.clone()));
    }
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
        .insert_header((OVERHEAD_HEADER, Millis::of_ms(head.overhead_ms).text()));
    if let Some(group) = &head.fallback {
        res.insert_header((FALLBACK_HEADER, &**group));
    }
    if head.hedged {
        res.insert_header((HEDGED_HEADER, "true"));
    }
    res
}

/// `x-tollgate-response-cost`: the call's cost in USD, on answers tollgate has whole (and so their usage) before
/// their headers go out: translated answers, embeddings, the mock. A relayed body or a stream sends its headers
/// before its usage arrives, so it carries none (its cost is in the request log and the spend routes).
fn cost_header(res: &mut HttpResponseBuilder, deployment: &Deployment, usage: Option<Usage>) {
    if let Some(nanos) = usage.and_then(|u| deployment.pricing.cost_nanos(u)) {
        res.insert_header((COST_HEADER, (nanos as f64 / 1e9).to_string()));
    }
}

/// A whole JSON body produced in-process (mock): settle with its usage and send it.
fn complete_json(head: Head, deployment: &Deployment, mut settle: Settlement, body: Bytes) -> HttpResponse {
    let usage = Peek::parse(&body).and_then(|mut p| {
        settle.peeked(&p);
        p.take_usage()
    });
    if let Some(usage) = usage {
        settle.set_usage(usage);
    }
    settle.complete();
    let mut res = builder(head, deployment, StatusCode::OK);
    cost_header(&mut res, deployment, usage);
    res.content_type("application/json").body(body)
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
    settle.read_reply(&reply);
    if let Some(usage) = reply.usage {
        settle.set_usage(usage);
    }
    let created = unix_now();
    if !inbound.stream() {
        settle.complete();
        let body = inbound::encode_reply(inbound, &reply, created);
        let mut res = builder(head, deployment, StatusCode::OK);
        cost_header(&mut res, deployment, reply.usage);
        return res.content_type("application/json").body(body);
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
