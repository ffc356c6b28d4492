//! OpenAI-compatible routes: chat completions, legacy text completions, embeddings, models. Handlers only wire the pipeline stages
//! together; every decision lives in `pipeline/` and `routing/`.

use std::{future::Future, sync::Arc};

use actix_web::{
    http::header::{HeaderMap, CONTENT_LENGTH},
    web, HttpRequest, HttpResponse,
};
use bytes::Bytes;
use tollgate_entity::{ModelCard, ModelList};

use super::{request_id, AppState};
use crate::{
    error::ApiError,
    lifecycle::Lifecycle,
    llm::{ChatRequest, CompletionRequest, EmbeddingsRequest, Inbound},
    pipeline::{
        auth, body, call,
        prompt::RequestPrompt,
        route::{self, Asked},
        RequestCtx,
    },
    routing::{Deployment, RoutingTable},
};

fn context(req: &HttpRequest) -> RequestCtx {
    RequestCtx::new(request_id::of(req))
}

fn content_length(headers: &HeaderMap) -> Option<usize> {
    headers.get(CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

/// Authenticates before reading a byte of the body, then reads it within the size limit.
async fn authenticated_body(req: &HttpRequest, payload: web::Payload, state: &AppState) -> Result<Bytes, ApiError> {
    auth::authenticate(req.headers(), state.master_key.as_ref())?;
    body::read(payload, content_length(req.headers()), state.max_request_bytes, state.request_body_timeout).await
}

/// What a proxied request's handler works with: its context, the routing snapshot it started with, the worker's
/// upstream client and the process lifecycle (each call counts as in flight while it streams).
pub(super) struct Proxied<'a> {
    pub ctx: &'a RequestCtx,
    pub client: &'a awc::Client,
    pub table: Arc<RoutingTable>,
    pub life: &'a Arc<Lifecycle>,
}

impl Proxied<'_> {
    /// Serves `model` through retries and fallbacks, `call` making one upstream call per attempt.
    pub(super) async fn route<F, Fut>(&self, model: &str, asked: Asked<'_>, call: F) -> Result<HttpResponse, ApiError>
    where
        F: FnMut(Arc<Deployment>) -> Fut,
        Fut: Future<Output = Result<HttpResponse, ApiError>>,
    {
        route::serve(self.ctx, &self.table, model, asked, call).await
    }
}

/// Every proxied route: authenticates, reads the body, and hands it to `handle`; the request counts as in flight
/// until it is answered, and each error is logged once, here, at the level its variant defines.
pub(super) async fn proxied(
    req: &HttpRequest,
    payload: web::Payload,
    state: &AppState,
    client: &awc::Client,
    handle: impl AsyncFnOnce(&Proxied<'_>, Bytes) -> Result<HttpResponse, ApiError>,
) -> Result<HttpResponse, ApiError> {
    let ctx = context(req);
    let _in_flight = state.lifecycle.enter();
    let proxied = Proxied { ctx: &ctx, client, table: state.table.load_full(), life: &state.lifecycle };
    let result = async {
        let bytes = authenticated_body(req, payload, state).await?;
        handle(&proxied, bytes).await
    };
    result.await.inspect_err(|e| e.log(&ctx.request_id))
}

pub async fn chat_completions(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
    client: web::Data<awc::Client>,
) -> Result<HttpResponse, ApiError> {
    proxied(&req, payload, &state, &client, async |p, bytes| {
        let mut chat = ChatRequest::parse(&bytes)?;
        let fallbacks = chat.fallbacks.take();
        let disable_fallbacks = chat.disable_fallbacks;
        let model = chat.model.clone();
        let (ctx, client, life, inbound) = (p.ctx, p.client, p.life, &Inbound::OpenAi(chat));
        let prompt = RequestPrompt::new(inbound, bytes.len());
        let asked = Asked { fallbacks: fallbacks.as_deref(), disable_fallbacks, prompt: Some(&prompt) };
        p.route(&model, asked, |d| async move { call::chat(ctx, client, &d, inbound, None, life).await }).await
    })
    .await
}

/// OpenAI's legacy text completions, served by any model (`call::chat` translates where needed).
pub async fn completions(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
    client: web::Data<awc::Client>,
) -> Result<HttpResponse, ApiError> {
    proxied(&req, payload, &state, &client, async |p, bytes| {
        let completion = CompletionRequest::parse(&bytes)?;
        let model = completion.model.clone();
        let (ctx, client, life, inbound) = (p.ctx, p.client, p.life, &Inbound::Completions(completion));
        let prompt = RequestPrompt::new(inbound, bytes.len());
        let asked = Asked { prompt: Some(&prompt), ..Asked::default() };
        p.route(&model, asked, |d| async move { call::chat(ctx, client, &d, inbound, None, life).await }).await
    })
    .await
}

pub async fn embeddings(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
    client: web::Data<awc::Client>,
) -> Result<HttpResponse, ApiError> {
    proxied(&req, payload, &state, &client, async |p, bytes| {
        let embed = &EmbeddingsRequest::parse(&bytes)?;
        let (ctx, client, life) = (p.ctx, p.client, p.life);
        p.route(&embed.model, Asked::default(), |d| async move { call::embeddings(ctx, client, &d, embed, life).await })
            .await
    })
    .await
}

fn card(state: &AppState, name: &str) -> ModelCard {
    ModelCard { id: name.to_owned(), object: "model".into(), created: state.started_at, owned_by: "tollgate".into() }
}

pub async fn models(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    auth::authenticate(req.headers(), state.master_key.as_ref()).inspect_err(request_id::log_error(&req))?;
    let cards = state.table.load().model_names().iter().map(|name| card(&state, name)).collect();
    Ok(HttpResponse::Ok().json(ModelList::new(cards)))
}

/// `GET /v1/models/{model}`: one model group, or 404 `model_not_found`.
pub async fn model(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    auth::authenticate(req.headers(), state.master_key.as_ref()).inspect_err(request_id::log_error(&req))?;
    match state.table.load().group(&id) {
        Some(_) => Ok(HttpResponse::Ok().json(card(&state, &id))),
        None => Err(ApiError::ModelNotFound(id.into_inner())).inspect_err(request_id::log_error(&req)),
    }
}
