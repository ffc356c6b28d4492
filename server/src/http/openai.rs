//! OpenAI-compatible routes: chat completions, legacy text completions, embeddings, models. Handlers only wire the pipeline stages
//! together; every decision lives in `pipeline/` and `routing/`.

use actix_web::{
    http::header::{HeaderMap, CONTENT_LENGTH},
    web, HttpRequest, HttpResponse,
};
use bytes::Bytes;
use tollgate_entity::{ModelCard, ModelList};

use super::{request_id, AppState};
use crate::{
    error::ApiError,
    llm::{ChatRequest, CompletionRequest, EmbeddingsRequest, Inbound},
    pipeline::{
        auth, body, call,
        route::{self, Asked},
        RequestCtx,
    },
};

pub(super) fn context(req: &HttpRequest) -> RequestCtx {
    RequestCtx::new(request_id::of(req))
}

fn content_length(headers: &HeaderMap) -> Option<usize> {
    headers.get(CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

/// Authenticates before reading a byte of the body, then reads it within the size limit.
pub(super) async fn authenticated_body(
    req: &HttpRequest,
    payload: web::Payload,
    state: &AppState,
) -> Result<Bytes, ApiError> {
    auth::authenticate(req.headers(), state.master_key.as_ref())?;
    body::read(payload, content_length(req.headers()), state.max_request_bytes, state.request_body_timeout).await
}

/// The proxied OpenAI routes differ only in how the body is read and which call they make.
enum Endpoint {
    Chat,
    /// OpenAI's legacy text completions, served by any model (`call::chat` translates where needed).
    Completions,
    Embeddings,
}

async fn proxy(
    endpoint: Endpoint,
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
    client: web::Data<awc::Client>,
) -> Result<HttpResponse, ApiError> {
    let ctx = context(&req);
    // The request counts as in flight while it is routed (and each call while it streams).
    let _in_flight = state.lifecycle.enter();
    let table = state.table.load_full();
    let life = &state.lifecycle;
    // The calls borrow what the request owns: `async move` closures below move only these references.
    let (ctx, client) = (&ctx, &client);
    let result = async {
        let bytes = authenticated_body(&req, payload, &state).await?;
        match endpoint {
            Endpoint::Chat => {
                let mut chat = ChatRequest::parse(&bytes)?;
                let fallbacks = chat.fallbacks.take();
                let asked = Asked { fallbacks: fallbacks.as_deref(), disable_fallbacks: chat.disable_fallbacks };
                let model = chat.model.clone();
                let inbound = &Inbound::OpenAi(chat);
                route::serve(ctx, &table, &model, asked, |d| async move {
                    call::chat(ctx, client, &d, inbound, None, life).await
                })
                .await
            }
            Endpoint::Completions => {
                let completion = CompletionRequest::parse(&bytes)?;
                let model = completion.model.clone();
                let inbound = &Inbound::Completions(completion);
                route::serve(ctx, &table, &model, Asked::default(), |d| async move {
                    call::chat(ctx, client, &d, inbound, None, life).await
                })
                .await
            }
            Endpoint::Embeddings => {
                let embed = &EmbeddingsRequest::parse(&bytes)?;
                route::serve(ctx, &table, &embed.model, Asked::default(), |d| async move {
                    call::embeddings(ctx, client, &d, embed, life).await
                })
                .await
            }
        }
    };
    // Each error is logged once, here, at the level its variant defines.
    result.await.inspect_err(|e| e.log(&ctx.request_id))
}

pub async fn chat_completions(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
    client: web::Data<awc::Client>,
) -> Result<HttpResponse, ApiError> {
    proxy(Endpoint::Chat, req, payload, state, client).await
}

pub async fn completions(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
    client: web::Data<awc::Client>,
) -> Result<HttpResponse, ApiError> {
    proxy(Endpoint::Completions, req, payload, state, client).await
}

pub async fn embeddings(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
    client: web::Data<awc::Client>,
) -> Result<HttpResponse, ApiError> {
    proxy(Endpoint::Embeddings, req, payload, state, client).await
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
