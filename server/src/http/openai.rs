//! OpenAI-compatible routes: chat completions, legacy text completions, embeddings, models. Handlers only wire the pipeline stages
//! together; every decision lives in `pipeline/` and `routing/`.

use std::{future::Future, sync::Arc};

use actix_web::{
    http::header::{HeaderMap, CONTENT_LENGTH},
    web, HttpMessage, HttpRequest, HttpResponse,
};
use bytes::Bytes;
use tollgate_entity::{ModelCard, ModelList};

use super::{request_id, AppState};
use crate::{
    access::{end_users::EndUserCache, Caller},
    clock,
    error::ApiError,
    lifecycle::Lifecycle,
    limits::Limiter,
    llm::{ChatRequest, CompletionRequest, EmbeddingsRequest, Inbound},
    logs::request::RequestLog,
    pipeline::{
        auth, body, budget, call, limit,
        prompt::RequestPrompt,
        route::{self, Asked},
        RequestCtx, TraceContext,
    },
    routing::{Deployment, RoutingTable},
};

/// The request's context; with `export_spans`, its trace context names a span of tollgate's own (random ids),
/// which the request log records for the `otel` callback.
fn context(req: &HttpRequest, id: Arc<str>, export_spans: bool, log: &Arc<RequestLog>) -> RequestCtx {
    let mut ctx = RequestCtx::new(id).with_log(log.clone());
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    let caller = header("traceparent").and_then(|parent| TraceContext::parse(parent, header("tracestate")));
    ctx.trace = if export_spans {
        let trace = TraceContext::exported(caller, rand::random(), rand::random());
        if let Some(span) = trace.sampled_span() {
            log.traced(span);
        }
        Some(trace)
    } else {
        caller
    };
    ctx
}

/// OpenAI's `user` field: the end user a request is made for.
fn end_user(body: &crate::llm::request::RawObject<'_>) -> Option<String> {
    body.get("user").and_then(|raw| serde_json::from_str::<String>(raw.get()).ok())
}

/// The body's bound on the answer's length, for a budget reservation: the first of `fields` that is a whole number.
fn max_output(body: &crate::llm::request::RawObject<'_>, fields: &[&str]) -> Option<u64> {
    fields.iter().find_map(|f| body.get(f).and_then(|raw| serde_json::from_str::<u64>(raw.get()).ok()))
}

/// An address as `Display` writes it; IPv4 (every request's, behind most proxies) without `fmt`'s machinery.
fn ip_text(ip: std::net::IpAddr) -> String {
    let std::net::IpAddr::V4(v4) = ip else { return ip.to_string() };
    let mut text = String::with_capacity(15);
    for (i, octet) in v4.octets().into_iter().enumerate() {
        if i > 0 {
            text.push('.');
        }
        text.push_str(itoa::Buffer::new().format(octet));
    }
    text
}

fn content_length(headers: &HeaderMap) -> Option<usize> {
    headers.get(CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

/// What a proxied request's handler works with: its context, the routing snapshot it started with, the worker's
/// upstream client and the process lifecycle (each call counts as in flight while it streams).
pub(super) struct Proxied<'a> {
    pub ctx: &'a RequestCtx,
    pub caller: Caller,
    pub client: &'a crate::upstream::Client,
    pub table: Arc<RoutingTable>,
    pub life: &'a Arc<Lifecycle>,
    pub limiter: &'a Limiter,
    pub end_users: &'a EndUserCache,
    pub budgets: &'a crate::budgets::Ledger,
    pub budget_default_max_tokens: u64,
}

impl Proxied<'_> {
    /// Serves `model` through retries and fallbacks, `call` making one upstream call per attempt.
    pub(super) async fn route<F, Fut>(&self, model: &str, asked: Asked<'_>, call: F) -> Result<HttpResponse, ApiError>
    where
        F: FnMut(Arc<Deployment>) -> Fut,
        Fut: Future<Output = Result<HttpResponse, ApiError>>,
    {
        self.route_as(model, None, asked, call).await
    }

    /// [`Proxied::route`] for a request naming an end user (OpenAI's `user` field): a blocked one is refused, and
    /// its limits apply beside the key's.
    pub(super) async fn route_as<F, Fut>(
        &self,
        model: &str,
        end_user: Option<&str>,
        asked: Asked<'_>,
        call: F,
    ) -> Result<HttpResponse, ApiError>
    where
        F: FnMut(Arc<Deployment>) -> Fut,
        Fut: Future<Output = Result<HttpResponse, ApiError>>,
    {
        if let Some(log) = self.ctx.log() {
            log.asked(model, end_user);
        }
        self.caller.check_model(model)?;
        let user = match end_user.filter(|u| !u.is_empty()) {
            Some(id) => self.end_users.get(id).await?,
            None => None,
        };
        let reservation = budget::reserve(
            self.budgets,
            &self.caller,
            user.as_deref(),
            &self.table,
            model,
            &asked,
            self.budget_default_max_tokens,
        )
        .await?;
        // From here the request's log record holds the reservation: released and replaced by the real cost when
        // the request ends, however it ends (refused by a rate limit next included).
        budget::hold(self.ctx.log(), reservation);
        let ticket = limit::admit(self.limiter, &self.caller, user.as_deref(), model).await?;
        // The answer's `x-ratelimit-*` headers are added by the request-id middleware, errors included.
        self.ctx.set_ticket(ticket);
        route::serve(self.ctx, &self.table, model, asked, call).await
    }
}

/// Every proxied route: authenticates (before reading a byte of the body), reads the body within the size limit,
/// and hands it to `handle`; the request counts as in flight until it is answered, and each error is logged once,
/// here, at the level its variant defines. Every request, answered or refused, leaves one record in the request
/// log (`logs::request`), handed over when its answer ends.
pub(super) async fn proxied(
    req: &HttpRequest,
    payload: web::Payload,
    state: &AppState,
    client: &crate::upstream::Client,
    handle: impl AsyncFnOnce(&Proxied<'_>, Bytes) -> Result<HttpResponse, ApiError>,
) -> Result<HttpResponse, ApiError> {
    let client_ip = req.peer_addr().map(|a| ip_text(a.ip()));
    let id = request_id::of(req);
    // The id's own millisecond: the log finds a request by its id through the index on its start.
    let started = crate::logs::query::request_started_ms(&id).unwrap_or_else(clock::unix_ms);
    let log = RequestLog::begin(state.logs.clone(), &id, req.path(), started, client_ip);
    let ctx = context(req, id, state.export_spans, &log);
    let _in_flight = state.lifecycle.enter();
    let result = async {
        let caller = auth::caller(req.headers(), state.master_key.as_ref(), &state.keys).await?;
        if let Some(key) = caller.key() {
            let user = key.user_id.clone();
            log.caller(Some(key.hash.hex()), key.alias.clone(), key.team_id.clone(), user);
        }
        let length = content_length(req.headers());
        let bytes = body::read(payload, length, state.max_request_bytes, state.request_body_timeout).await?;
        let table = state.table.load_full();
        let proxied = Proxied {
            ctx: &ctx,
            caller,
            client,
            table,
            life: &state.lifecycle,
            limiter: &state.limiter,
            end_users: &state.end_users,
            budgets: &state.budgets,
            budget_default_max_tokens: state.budget_default_max_tokens,
        };
        handle(&proxied, bytes).await
    };
    let result = result.await.inspect_err(|e| e.log(&ctx.request_id));
    let (status, error) = match &result {
        Ok(response) => (response.status().as_u16(), None),
        Err(e) => {
            let class = e.code().unwrap_or_else(|| e.kind()).to_owned();
            (actix_web::ResponseError::status_code(e).as_u16(), Some((class, e.to_string())))
        }
    };
    log.answered(status, error, ctx.attempts(), ctx.fallback().as_deref());
    // An admitted request's answer, whatever it is, tells a limited caller where it stands.
    if let Some(ticket) = ctx.ticket() {
        req.extensions_mut().insert(ticket.headers);
    }
    result
}

pub async fn chat_completions(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
    client: web::Data<crate::upstream::Client>,
) -> Result<HttpResponse, ApiError> {
    proxied(&req, payload, &state, &client, async |p, bytes| {
        let mut chat = ChatRequest::parse(&bytes)?;
        let user = end_user(&chat.body);
        let max_output = max_output(&chat.body, &["max_completion_tokens", "max_tokens"]);
        let fallbacks = chat.fallbacks.take();
        let disable_fallbacks = chat.disable_fallbacks;
        let model = chat.model.clone();
        let (ctx, client, life, inbound) = (p.ctx, p.client, p.life, &Inbound::OpenAi(chat));
        let prompt = RequestPrompt::new(inbound, bytes.len());
        let asked = Asked {
            fallbacks: fallbacks.as_deref(),
            disable_fallbacks,
            prompt: Some(&prompt),
            max_output,
            input_bound: bytes.len() as u64,
        };
        let call = |d: Arc<Deployment>| async move { call::chat(ctx, client, &d, inbound, None, life).await };
        p.route_as(&model, user.as_deref(), asked, call).await
    })
    .await
}

/// OpenAI's legacy text completions, served by any model (`call::chat` translates where needed).
pub async fn completions(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
    client: web::Data<crate::upstream::Client>,
) -> Result<HttpResponse, ApiError> {
    proxied(&req, payload, &state, &client, async |p, bytes| {
        let completion = CompletionRequest::parse(&bytes)?;
        let user = end_user(&completion.body);
        let max_output = max_output(&completion.body, &["max_tokens"]);
        let model = completion.model.clone();
        let (ctx, client, life, inbound) = (p.ctx, p.client, p.life, &Inbound::Completions(completion));
        let prompt = RequestPrompt::new(inbound, bytes.len());
        let asked = Asked { prompt: Some(&prompt), max_output, input_bound: bytes.len() as u64, ..Asked::default() };
        let call = |d: Arc<Deployment>| async move { call::chat(ctx, client, &d, inbound, None, life).await };
        p.route_as(&model, user.as_deref(), asked, call).await
    })
    .await
}

pub async fn embeddings(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
    client: web::Data<crate::upstream::Client>,
) -> Result<HttpResponse, ApiError> {
    proxied(&req, payload, &state, &client, async |p, bytes| {
        let embed = &EmbeddingsRequest::parse(&bytes)?;
        let user = end_user(&embed.body);
        let (ctx, client, life) = (p.ctx, p.client, p.life);
        let call = |d: Arc<Deployment>| async move { call::embeddings(ctx, client, &d, embed, life).await };
        // Embeddings generate nothing: their input (at most a token per byte) is their cost.
        let asked = Asked { max_output: Some(0), input_bound: bytes.len() as u64, ..Asked::default() };
        p.route_as(&embed.model, user.as_deref(), asked, call).await
    })
    .await
}

fn card(state: &AppState, name: &str) -> ModelCard {
    ModelCard { id: name.to_owned(), object: "model".into(), created: state.started_at, owned_by: "tollgate".into() }
}

/// The model groups the caller may call.
pub async fn models(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let caller = auth::caller(req.headers(), state.master_key.as_ref(), &state.keys)
        .await
        .inspect_err(request_id::log_error(&req))?;
    let table = state.table.load();
    let visible = table.model_names().iter().filter(|name| caller.key().is_none_or(|k| k.allows_model(name)));
    let cards = visible.map(|name| card(&state, name)).collect();
    Ok(HttpResponse::Ok().json(ModelList::new(cards)))
}

/// `GET /v1/models/{model}`: one model group, or 404 `model_not_found` (also for a group the caller's key may not
/// call, as OpenAI answers for models an organization cannot use).
pub async fn model(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let caller = auth::caller(req.headers(), state.master_key.as_ref(), &state.keys)
        .await
        .inspect_err(request_id::log_error(&req))?;
    let allowed = caller.key().is_none_or(|k| k.allows_model(&id));
    match state.table.load().group(&id).filter(|_| allowed) {
        Some(_) => Ok(HttpResponse::Ok().json(card(&state, &id))),
        None => Err(ApiError::ModelNotFound(id.into_inner())).inspect_err(request_id::log_error(&req)),
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    #[test]
    fn client_addresses_read_as_display_writes_them() {
        for ip in ["127.0.0.1", "0.0.0.0", "255.255.255.255", "10.20.3.40", "::1", "2001:db8::8a2e:370:7334"] {
            let parsed: IpAddr = ip.parse().unwrap_or(IpAddr::from([0, 0, 0, 0]));
            assert_eq!(super::ip_text(parsed), parsed.to_string());
            assert_eq!(super::ip_text(parsed), ip);
        }
    }
}
