//! Response bodies flowing from the upstream to the caller, chunk by chunk, never buffered whole.
//!
//! [`SseRelay`] forwards a chat stream event by event: it reads usage from the chunks (tollgate always asks the
//! upstream for it), drops the usage-only chunk when the caller did not ask for it, ends every stream with
//! `data: [DONE]`, and turns a broken upstream into an OpenAI error event. [`BodyRelay`] forwards a JSON body
//! and reads its usage at the end. Both own the call's [`Settlement`]: when the caller disconnects, actix drops
//! the body, which drops the upstream response and closes that connection, and the settlement records "cancelled".

use std::{
    pin::Pin,
    task::{Context, Poll},
};

use bytes::{Bytes, BytesMut};
use futures_util::{stream::LocalBoxStream, Stream};
use tollgate_entity::{ErrorBody, ErrorDetail};

use super::{
    settle::Settlement,
    sse::{event_data, SseDecoder},
    usage::Peek,
};

pub type UpstreamBody = LocalBoxStream<'static, Result<Bytes, String>>;

const DONE: &[u8] = b"data: [DONE]\n\n";
/// Non-streaming bodies larger than this are still forwarded, but not parsed for usage.
const MAX_USAGE_SCAN_BYTES: usize = 8 * 1024 * 1024;

pub struct SseRelay {
    upstream: UpstreamBody,
    decoder: SseDecoder,
    settle: Settlement,
    include_usage: bool,
    done: bool,
    finished: bool,
}

impl SseRelay {
    pub fn new(upstream: UpstreamBody, settle: Settlement, include_usage: bool) -> Self {
        Self {
            upstream,
            decoder: SseDecoder::default(),
            settle,
            include_usage,
            done: false,
            finished: false,
        }
    }

    fn forward(&mut self, event: Bytes, out: &mut BytesMut) {
        if self.done {
            return;
        }
        let Some(data) = event_data(&event) else {
            // Comments and keep-alives keep the caller's connection warm too.
            out.extend_from_slice(&event);
            return;
        };
        if data.as_ref() == b"[DONE]" {
            self.done = true;
            out.extend_from_slice(DONE);
            return;
        }
        if let Some(peek) = Peek::parse(&data) {
            if let Some(usage) = peek.usage() {
                self.settle.set_usage(usage);
            }
            if peek.is_usage_only() && !self.include_usage {
                return;
            }
        }
        out.extend_from_slice(&event);
    }

    fn error_event(&self, message: String) -> Bytes {
        let body = ErrorBody {
            error: ErrorDetail {
                message,
                kind: "server_error".into(),
                param: None,
                code: Some("upstream_stream_broken".into()),
            },
        };
        let json = serde_json::to_string(&body).unwrap_or_default();
        Bytes::from(format!("data: {json}\n\n"))
    }
}

impl Stream for SseRelay {
    type Item = Result<Bytes, actix_web::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if this.finished {
                return Poll::Ready(None);
            }
            match this.upstream.as_mut().poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(chunk))) => {
                    this.decoder.feed(&chunk);
                    let mut out = BytesMut::new();
                    while let Some(event) = this.decoder.next_event() {
                        this.forward(event, &mut out);
                    }
                    if !out.is_empty() {
                        return Poll::Ready(Some(Ok(out.freeze())));
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    this.finished = true;
                    this.settle.broken();
                    let d = this.settle.deployment();
                    tracing::error!(deployment = %d.id, error = %e, "upstream stream broke");
                    let message = format!("the upstream stream of deployment `{}` broke mid-response: {e}", d.id);
                    return Poll::Ready(Some(Ok(this.error_event(message))));
                }
                Poll::Ready(None) => {
                    this.finished = true;
                    let mut out = BytesMut::new();
                    if let Some(rest) = this.decoder.finish() {
                        this.forward(rest, &mut out);
                        // An unterminated last event still needs its blank line.
                        if !out.is_empty() && !out.ends_with(b"\n\n") {
                            out.extend_from_slice(b"\n\n");
                        }
                    }
                    if !this.done {
                        out.extend_from_slice(DONE);
                    }
                    this.settle.complete();
                    return Poll::Ready(Some(Ok(out.freeze())));
                }
            }
        }
    }
}

pub struct BodyRelay {
    upstream: UpstreamBody,
    settle: Settlement,
    /// Cheap clones (reference counts) of the chunks already forwarded, for reading usage at the end.
    seen: Vec<Bytes>,
    seen_len: usize,
}

impl BodyRelay {
    pub fn new(upstream: UpstreamBody, settle: Settlement) -> Self {
        Self {
            upstream,
            settle,
            seen: Vec::new(),
            seen_len: 0,
        }
    }

    fn read_usage(&mut self) {
        let peek = match self.seen.as_slice() {
            [one] => Peek::parse(one),
            many => Peek::parse(&many.concat()),
        };
        if let Some(usage) = peek.and_then(|p| p.usage()) {
            self.settle.set_usage(usage);
        }
    }
}

impl Stream for BodyRelay {
    type Item = Result<Bytes, actix_web::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        match this.upstream.as_mut().poll_next(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(chunk))) => {
                this.seen_len += chunk.len();
                if this.seen_len <= MAX_USAGE_SCAN_BYTES {
                    this.seen.push(chunk.clone());
                } else {
                    this.seen.clear();
                }
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(Some(Err(e))) => {
                // Headers (200) are already out; erroring the body makes actix close the connection, so the
                // caller sees a broken transfer instead of a silently truncated JSON document.
                this.settle.broken();
                tracing::error!(deployment = %this.settle.deployment().id, error = %e, "upstream body broke");
                Poll::Ready(Some(Err(actix_web::error::ErrorBadGateway("upstream body broke"))))
            }
            Poll::Ready(None) => {
                if this.seen_len <= MAX_USAGE_SCAN_BYTES {
                    this.read_usage();
                }
                this.settle.complete();
                Poll::Ready(None)
            }
        }
    }
}
