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

#[cfg(test)]
mod tests {
    use std::sync::{atomic::Ordering::Relaxed, Arc};

    use futures_util::{stream, StreamExt};

    use super::*;
    use crate::{config::Config, lifecycle::Lifecycle, routing::RoutingTable};

    fn deployment() -> Arc<crate::routing::Deployment> {
        let env = |_: &str| None;
        let yaml = "model_list:\n  - {model_name: m, litellm_params: {model: mock/m, input_cost_per_token: 0.000001, output_cost_per_token: 0.000002}}\n";
        let config = Config::load_str(yaml, &env).unwrap_or_else(|e| unreachable!("{e}"));
        let table = RoutingTable::build(&config, &env, |_, _| None).unwrap_or_else(|e| unreachable!("{e}"));
        let first = table.deployments().next().cloned();
        first.unwrap_or_else(|| unreachable!())
    }

    fn upstream(chunks: &[&str], fail: bool) -> UpstreamBody {
        let mut items: Vec<Result<Bytes, String>> = chunks.iter().map(|c| Ok(Bytes::from(c.to_string()))).collect();
        if fail {
            items.push(Err("connection reset".into()));
        }
        stream::iter(items).boxed_local()
    }

    async fn relay_sse(chunks: &[&str], fail: bool, include_usage: bool) -> (String, Arc<crate::routing::Deployment>) {
        let d = deployment();
        let life = Arc::new(Lifecycle::default());
        let settle = Settlement::begin(d.clone(), Arc::from("rid"), true, life.enter());
        let out: Vec<_> = SseRelay::new(upstream(chunks, fail), settle, include_usage)
            .collect()
            .await;
        let text = out
            .into_iter()
            .map(|r| r.map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default())
            .collect();
        assert_eq!(life.in_flight(), 0, "the in-flight guard is released with the stream");
        (text, d)
    }

    const CONTENT: &str = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"}}]}\n\n";
    const USAGE: &str = "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":10,\"completion_tokens\":5}}\n\n";

    #[actix_rt::test]
    async fn sse_relay_cases() {
        // (upstream chunks, upstream breaks, caller asked for usage, expected caller bytes)
        let cases: &[(&[&str], bool, bool, String)] = &[
            (
                &[CONTENT, USAGE, "data: [DONE]\n\n"],
                false,
                true,
                format!("{CONTENT}{USAGE}data: [DONE]\n\n"),
            ),
            (
                &[CONTENT, USAGE, "data: [DONE]\n\n"],
                false,
                false,
                format!("{CONTENT}data: [DONE]\n\n"),
            ),
            (
                &[&CONTENT[..10], &CONTENT[10..], USAGE],
                false,
                false,
                format!("{CONTENT}data: [DONE]\n\n"),
            ),
            (
                &[": keep-alive\n\n", CONTENT, "data: [DONE]"],
                false,
                false,
                format!(": keep-alive\n\n{CONTENT}data: [DONE]\n\n"),
            ),
            (
                &[CONTENT, "data: [DONE]\n\n", CONTENT],
                false,
                false,
                format!("{CONTENT}data: [DONE]\n\n"),
            ),
        ];
        for (chunks, fail, include_usage, want) in cases {
            let (got, _) = relay_sse(chunks, *fail, *include_usage).await;
            assert_eq!(&got, want, "chunks {chunks:?} include_usage {include_usage}");
        }
    }

    #[actix_rt::test]
    async fn sse_relay_counts_usage_and_cost_even_when_stripped() {
        let (_, d) = relay_sse(&[CONTENT, USAGE, "data: [DONE]\n\n"], false, false).await;
        assert_eq!(d.stats.prompt_tokens.load(Relaxed), 10);
        assert_eq!(d.stats.completion_tokens.load(Relaxed), 5);
        assert_eq!(d.stats.spend_nanos.load(Relaxed), 20_000, "10 * $1e-6 + 5 * $2e-6");
        assert_eq!(d.stats.in_flight.load(Relaxed), 0);
    }

    #[actix_rt::test]
    async fn sse_relay_turns_a_broken_upstream_into_an_error_event() {
        let (got, d) = relay_sse(&[CONTENT], true, false).await;
        let last = got.trim_end().rsplit("\n\n").next().unwrap_or_default();
        let v: serde_json::Value = serde_json::from_str(last.trim_start_matches("data: ")).unwrap_or_default();
        assert_eq!(v["error"]["type"], "server_error", "{got}");
        assert!(got.starts_with(CONTENT));
        assert!(!got.contains("[DONE]"));
        assert_eq!(d.stats.failures.load(Relaxed), 1);
    }

    #[actix_rt::test]
    async fn body_relay_forwards_bytes_and_reads_usage_across_chunks() {
        let d = deployment();
        let life = Arc::new(Lifecycle::default());
        let settle = Settlement::begin(d.clone(), Arc::from("rid"), false, life.enter());
        let body = r#"{"id":"x","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4}}"#;
        let out: Vec<_> = BodyRelay::new(upstream(&[&body[..20], &body[20..]], false), settle)
            .collect()
            .await;
        let text: String = out
            .into_iter()
            .map(|r| r.map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default())
            .collect();
        assert_eq!(text, body);
        assert_eq!(
            (
                d.stats.prompt_tokens.load(Relaxed),
                d.stats.completion_tokens.load(Relaxed)
            ),
            (3, 4)
        );

        let settle = Settlement::begin(d.clone(), Arc::from("rid"), false, life.enter());
        let out: Vec<_> = BodyRelay::new(upstream(&[&body[..20]], true), settle).collect().await;
        assert!(
            out.last().is_some_and(Result::is_err),
            "a broken body errors so the connection closes"
        );
    }
}
