//! Anthropic's Messages API (`POST /v1/messages`, and `POST /v1/messages/count_tokens` where the provider can
//! count), served by any configured model: Anthropic deployments take the
//! caller's bytes as they are, every other provider is reached through the canonical types. Errors are rendered
//! in Anthropic's shape (`{"type":"error","error":{"type","message"}}`), so the `anthropic` SDK raises the
//! exception class that matches the status.

use actix_web::{body::BoxBody, http::StatusCode, web, HttpRequest, HttpResponse, ResponseError};

use super::{openai::proxied, AppState};
use crate::{
    error::ApiError,
    llm::{Inbound, MessagesRequest},
    pipeline::{call, prompt::RequestPrompt, route::Asked},
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

pub async fn messages(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
    client: web::Data<crate::upstream::Client>,
) -> Result<HttpResponse, AnthropicError> {
    let beta = req.headers().get("anthropic-beta");
    let answer = proxied(&req, payload, &state, &client, async |p, bytes| {
        let messages = MessagesRequest::parse(&bytes)?;
        let model = messages.model.clone();
        let max_output = messages.body.get("max_tokens").and_then(|raw| serde_json::from_str::<u64>(raw.get()).ok());
        let (ctx, client, life, inbound) = (p.ctx, p.client, p.life, &Inbound::Anthropic(messages));
        let prompt = RequestPrompt::new(inbound, bytes.len());
        let asked = Asked { prompt: Some(&prompt), max_output, input_bound: bytes.len() as u64, ..Asked::default() };
        p.route(&model, asked, |d| async move { call::chat(ctx, client, &d, inbound, beta, life).await }).await
    });
    Ok(answer.await?)
}

/// `POST /v1/messages/count_tokens`: the input tokens of a Messages body, where the deployment's provider can count
/// them (Anthropic's own endpoint, or the mock's tokenizer); any other provider is a 400 that says so.
pub async fn count_tokens(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
    client: web::Data<crate::upstream::Client>,
) -> Result<HttpResponse, AnthropicError> {
    let beta = req.headers().get("anthropic-beta");
    let answer = proxied(&req, payload, &state, &client, async |p, bytes| {
        let count = &MessagesRequest::parse_count(&bytes)?;
        let (ctx, client, life) = (p.ctx, p.client, p.life);
        // Counting tokens generates nothing.
        let asked = Asked { max_output: Some(0), input_bound: bytes.len() as u64, ..Asked::default() };
        p.route(&count.model, asked, |d| async move { call::count_tokens(ctx, client, &d, count, beta, life).await })
            .await
    });
    Ok(answer.await?)
}
