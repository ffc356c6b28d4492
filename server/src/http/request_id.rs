//! Middleware giving every request an id: stored in the request's extensions for handlers, attached to a
//! `request` tracing span (DEBUG level), and returned as `x-tollgate-request-id` on every response, errors and 404s included.
//! It also adds a rate-limited caller's `x-ratelimit-*` headers, which the proxied handler leaves in the extensions.

use std::{future::Future, pin::Pin, sync::Arc};

use actix_web::{
    body::MessageBody,
    dev::{ServiceRequest, ServiceResponse},
    http::header::{HeaderName, HeaderValue},
    middleware::Next,
    HttpMessage,
};
use tracing::Instrument;

use crate::limits::RateHeaders;

pub const HEADER: HeaderName = HeaderName::from_static("x-tollgate-request-id");

/// The id of the current request, as handlers read it from the extensions.
#[derive(Debug, Clone)]
pub struct RequestId(pub Arc<str>);

/// Time-ordered (UUID v7): the request log's index on request ids grows at its end instead of at random pages.
pub fn new_id() -> Arc<str> {
    let mut buf = uuid::Uuid::encode_buffer();
    Arc::from(&*uuid::Uuid::now_v7().simple().encode_lower(&mut buf))
}

/// The id the middleware gave `req` (a fresh one if it did not run, as in some unit tests).
pub fn of(req: &actix_web::HttpRequest) -> Arc<str> {
    req.extensions().get::<RequestId>().map(|r| r.0.clone()).unwrap_or_else(new_id)
}

/// Logs a request's error once, naming the request (see [`ApiError::log`](crate::error::ApiError::log)).
pub fn log_error(req: &actix_web::HttpRequest) -> impl Fn(&crate::error::ApiError) + '_ {
    move |e| e.log(&of(req))
}

pub fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Pin<Box<dyn Future<Output = Result<ServiceResponse<impl MessageBody>, actix_web::Error>>>> {
    let id = new_id();
    // Why DEBUG: at the default level a span costs its formatting and a registry slot on every request (a few
    // percent of the proxy's CPU); what INFO lines need of it, they carry as a `request_id` field.
    let span = tracing::debug_span!("request", request_id = %id, method = %req.method(), path = %req.path());
    req.extensions_mut().insert(RequestId(id.clone()));
    Box::pin(
        async move {
            let mut res = next.call(req).await?;
            if let Ok(value) = HeaderValue::from_str(&id) {
                res.headers_mut().insert(HEADER, value);
            }
            // A rate-limited caller's standing (`pipeline::limit`), on every answer to an admitted request.
            let rate = res.request().extensions().get::<RateHeaders>().copied();
            for (name, value) in rate.iter().flat_map(RateHeaders::pairs) {
                if let Ok(value) = HeaderValue::from_str(&value) {
                    res.headers_mut().insert(HeaderName::from_static(name), value);
                }
            }
            Ok(res)
        }
        .instrument(span),
    )
}
