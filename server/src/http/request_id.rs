//! Middleware giving every request an id: stored in the request's extensions for handlers, attached to a
//! `request` tracing span (DEBUG level), and returned as `x-tollgate-request-id` on every response, errors and 404s included.
//! It also adds a rate-limited caller's `x-ratelimit-*` headers, which the proxied handler leaves in the extensions.

use std::{
    future::{ready, Future, Ready},
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use actix_web::{
    dev::{Service, ServiceRequest, ServiceResponse, Transform},
    http::header::{HeaderName, HeaderValue},
    HttpMessage,
};
use tracing::{instrument::Instrumented, Instrument};

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

/// The middleware: `App::wrap(RequestIds)`.
///
/// Why a `Transform` and not `middleware::from_fn`: `from_fn` boxes this middleware's future and, through `Next`,
/// calls the app behind a boxed service that boxes the handler's future once more (actix-service's
/// `ServiceWrapper`), moving it into a new allocation on every request. Here the app's own future (already boxed by
/// actix-web's router) is wrapped as it is.
pub struct RequestIds;

impl<S, B> Transform<S, ServiceRequest> for RequestIds
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
    S::Future: Unpin,
{
    type Response = ServiceResponse<B>;
    type Error = actix_web::Error;
    type Transform = RequestIdService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(RequestIdService { service }))
    }
}

pub struct RequestIdService<S> {
    service: S,
}

impl<S, B> Service<ServiceRequest> for RequestIdService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
    S::Future: Unpin,
{
    type Response = ServiceResponse<B>;
    type Error = actix_web::Error;
    type Future = Tagged<S::Future>;

    actix_web::dev::forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let id = new_id();
        // Why DEBUG: at the default level a span costs its formatting and a registry slot on every request (a few
        // percent of the proxy's CPU); what INFO lines need of it, they carry as a `request_id` field.
        let span = tracing::debug_span!("request", request_id = %id, method = %req.method(), path = %req.path());
        req.extensions_mut().insert(RequestId(id.clone()));
        let inner = span.in_scope(|| self.service.call(req));
        Tagged { inner: inner.instrument(span), id }
    }
}

/// The app's answer to a request, tagged with the request's id (and a rate-limited caller's standing) when it
/// comes.
pub struct Tagged<F> {
    inner: Instrumented<F>,
    id: Arc<str>,
}

impl<F, B> Future for Tagged<F>
where
    F: Future<Output = Result<ServiceResponse<B>, actix_web::Error>> + Unpin,
{
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut res = match Pin::new(&mut self.inner).poll(cx) {
            Poll::Ready(res) => res?,
            Poll::Pending => return Poll::Pending,
        };
        if let Ok(value) = HeaderValue::from_str(&self.id) {
            res.headers_mut().insert(HEADER, value);
        }
        // A rate-limited caller's standing (`pipeline::limit`), on every answer to an admitted request.
        let rate = res.request().extensions().get::<RateHeaders>().copied();
        for (name, value) in rate.iter().flat_map(RateHeaders::pairs) {
            if let Ok(value) = HeaderValue::from_str(&value) {
                res.headers_mut().insert(HeaderName::from_static(name), value);
            }
        }
        Poll::Ready(Ok(res))
    }
}
