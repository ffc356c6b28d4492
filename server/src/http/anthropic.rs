//! Anthropic's Messages API (`POST /v1/messages`, and `POST /v1/messages/count_tokens` where the provider can
//! count), served by any configured model: Anthropic deployments take the
//! caller's bytes as they are, every other provider is reached through the canonical types. Errors are rendered
//! in Anthropic's shape (`{"type":"error","error":{"type","message"}}`), so the `anthropic` SDK raises the
//! exception class that matches the status.

use actix_web::{body::BoxBody, http::StatusCode, web, HttpRequest, HttpResponse, ResponseError};

use super::{
    openai::{authenticated_body, context},
    AppState,
};
use crate::{
    error::ApiError,
    llm::{Inbound, MessagesRequest},
    pipeline::{
        call,
        route::{self, Asked},
    },
    providers::anthropic,
};

/// An [`ApiError`] as Anthropic renders it: same status and headers, Anthropic's error body.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct AnthropicError(#[from] ApiError);

impl ResponseError for AnthropicError {
    fn status_code(&self) -> StatusCode {
        self.0.status_code()
    }

    fn error_response(&self) -> HttpResponse {
        let res = self.0.error_response();
        let body = anthropic::error_body(self.status_code().as_u16(), &self.0.to_string());
        res.set_body(BoxBody::new(body))
    }
}

/// The two Anthropic routes differ only in how the body is read and which call they make.
enum Endpoint {
    Messages,
    CountTokens,
}

async fn serve(
    endpoint: Endpoint,
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
    client: web::Data<awc::Client>,
) -> Result<HttpResponse, AnthropicError> {
    let ctx = context(&req);
    let _in_flight = state.lifecycle.enter();
    let table = state.table.load_full();
    let life = &state.lifecycle;
    // The calls borrow what the request owns: `async move` closures below move only these references.
    let (ctx, client) = (&ctx, &client);
    let result = async {
        let bytes = authenticated_body(&req, payload, &state).await?;
        let beta = req.headers().get("anthropic-beta");
        match endpoint {
            Endpoint::Messages => {
                let messages = MessagesRequest::parse(&bytes)?;
                let model = messages.model.clone();
                let inbound = &Inbound::Anthropic(messages);
                route::serve(ctx, &table, &model, Asked::default(), |d| async move {
                    call::chat(ctx, client, &d, inbound, beta, life).await
                })
                .await
            }
            Endpoint::CountTokens => {
                let count = &MessagesRequest::parse_count(&bytes)?;
                route::serve(ctx, &table, &count.model, Asked::default(), |d| async move {
                    call::count_tokens(ctx, client, &d, count, beta, life).await
                })
                .await
            }
        }
    };
    // Each error is logged once, here, at the level its variant defines.
    Ok(result.await.inspect_err(|e| e.log(&ctx.request_id))?)
}

pub async fn messages(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
    client: web::Data<awc::Client>,
) -> Result<HttpResponse, AnthropicError> {
    serve(Endpoint::Messages, req, payload, state, client).await
}

/// `POST /v1/messages/count_tokens`: the input tokens of a Messages body, where the deployment's provider can count
/// them (Anthropic's own endpoint, or the mock's tokenizer); any other provider is a 400 that says so.
pub async fn count_tokens(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
    client: web::Data<awc::Client>,
) -> Result<HttpResponse, AnthropicError> {
    serve(Endpoint::CountTokens, req, payload, state, client).await
}
