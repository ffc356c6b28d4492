//! Response bodies flowing from the upstream to the caller, chunk by chunk, never buffered whole.
//!
//! [`SseRelay`] forwards a chat stream event by event: it reads usage from the chunks (tollgate always asks the
//! upstream for it), drops the usage-only chunk when the caller did not ask for it, ends every stream with
//! `data: [DONE]`, and turns a broken upstream into an OpenAI error event. [`BodyRelay`] forwards a JSON body
//! and reads its usage at the end. Both own the call's [`Settlement`]: when the caller disconnects, actix drops
//! the body, which drops the upstream response and closes that connection, and the settlement records "cancelled".

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use bytes::{Bytes, BytesMut};
use futures_util::{stream::LocalBoxStream, Stream};
use tollgate_entity::{ErrorBody, ErrorDetail};

use super::{peek::Peek, settle::Settlement};
use crate::{
    framing::sse::{data_is_whole, event_data, SseDecoder},
    routing::stats::AccountingGap,
};

pub type UpstreamBody = LocalBoxStream<'static, Result<Bytes, String>>;

/// Ends `body` with an error when the upstream sends nothing for `idle`: a stalled upstream must not hold the
/// caller (and a graceful shutdown) forever. Same meaning as LiteLLM's `timeout`, which httpx applies per read.
pub fn idle_limited(body: UpstreamBody, idle: Duration) -> UpstreamBody {
    Box::pin(IdleLimited { body, idle, timer: None, data_since_armed: false, expired: false })
}

struct IdleLimited {
    body: UpstreamBody,
    idle: Duration,
    /// Armed lazily on the first wait: a small body that arrives whole never touches the timer wheel.
    timer: Option<Pin<Box<actix_rt::time::Sleep>>>,
    /// Data arrived since the timer was last set, so the next wait starts a fresh `idle` period.
    data_since_armed: bool,
    expired: bool,
}

impl Stream for IdleLimited {
    type Item = Result<Bytes, String>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.expired {
            return Poll::Ready(None);
        }
        if let Poll::Ready(item) = this.body.as_mut().poll_next(cx) {
            this.data_since_armed = true;
            return Poll::Ready(item);
        }
        let idle = this.idle;
        let timer = match &mut this.timer {
            Some(timer) => {
                if this.data_since_armed {
                    timer.as_mut().reset(actix_rt::time::Instant::now() + idle);
                }
                timer
            }
            None => this.timer.insert(Box::pin(actix_rt::time::sleep(idle))),
        };
        this.data_since_armed = false;
        match timer.as_mut().poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(()) => {
                this.expired = true;
                Poll::Ready(Some(Err(format!("no data from the upstream for {}s", idle.as_secs_f64()))))
            }
        }
    }
}

/// What a relay of an event stream does with the upstream's bytes; [`Relayed`] drives it as the caller's body.
pub trait StreamRelay {
    /// The caller's bytes for one upstream chunk (empty: nothing to send yet), or the stream's last bytes.
    fn chunk(&mut self, chunk: Bytes) -> Step;
    /// The upstream broke (a read error, an idle timeout): the stream's last bytes.
    fn broke(&mut self, why: &str) -> Bytes;
    /// The upstream's body ended: the stream's last bytes, if any.
    fn end(&mut self) -> Option<Bytes>;
}

/// What one upstream chunk gives the caller.
pub enum Step {
    Send(Bytes),
    /// The stream is over after these bytes (it stopped making sense, and they end it with an error event).
    Last(Bytes),
}

/// An upstream body relayed through a [`StreamRelay`]; fused once the relay has said its last.
pub struct Relayed<R> {
    upstream: UpstreamBody,
    relay: R,
    finished: bool,
}

impl<R> Relayed<R> {
    pub fn new(upstream: UpstreamBody, relay: R) -> Self {
        Self { upstream, relay, finished: false }
    }
}

impl<R: StreamRelay + Unpin> Stream for Relayed<R> {
    type Item = Result<Bytes, actix_web::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if this.finished {
                return Poll::Ready(None);
            }
            let last = match this.upstream.as_mut().poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(chunk))) => match this.relay.chunk(chunk) {
                    Step::Send(out) if out.is_empty() => continue,
                    Step::Send(out) => return Poll::Ready(Some(Ok(out))),
                    Step::Last(out) => Some(out),
                },
                Poll::Ready(Some(Err(e))) => Some(this.relay.broke(&e)),
                Poll::Ready(None) => this.relay.end(),
            };
            this.finished = true;
            return Poll::Ready(last.filter(|b| !b.is_empty()).map(Ok));
        }
    }
}

const DONE: &[u8] = b"data: [DONE]\n\n";
/// Non-streaming bodies larger than this are still forwarded, but not parsed for usage (counted as
/// [`AccountingGap::BodyTooLargeForUsage`]).
const MAX_USAGE_SCAN_BYTES: usize = 8 * 1024 * 1024;

pub struct SseRelay {
    decoder: SseDecoder,
    settle: Settlement,
    include_usage: bool,
    /// `data: [DONE]` arrived.
    done: bool,
    /// A chunk carried a `finish_reason`.
    finish_seen: bool,
    /// A chunk carried usage.
    usage_seen: bool,
}

impl SseRelay {
    pub fn new(upstream: UpstreamBody, settle: Settlement, include_usage: bool) -> Relayed<Self> {
        let relay = Self {
            decoder: SseDecoder::default(),
            settle,
            include_usage,
            done: false,
            finish_seen: false,
            usage_seen: false,
        };
        Relayed::new(upstream, relay)
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
        if let Some(mut peek) = Peek::parse(&data) {
            if peek.is_error() {
                self.settle.error_in_body();
            }
            self.settle.peeked(&peek);
            let usage_only = peek.is_usage_only();
            if let Some(usage) = peek.take_usage() {
                self.settle.set_usage(usage);
                self.usage_seen = true;
            }
            self.finish_seen |= peek.finishes();
            if usage_only && !self.include_usage {
                return;
            }
        }
        out.extend_from_slice(&event);
    }

    /// Records the break and returns the OpenAI error event that tells the caller.
    fn broke_with(&mut self, cause: &dyn std::fmt::Display) -> Bytes {
        self.settle.broken();
        let d = self.settle.deployment();
        tracing::error!(request_id = self.settle.request_id(), deployment = %d.id, error = %cause, "upstream stream broke");
        let message = format!("the upstream stream of deployment `{}` broke mid-response: {cause}", d.id);
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

    fn finish(&mut self) -> Bytes {
        let mut out = BytesMut::new();
        if let Some(rest) = self.decoder.finish() {
            // A whole event the upstream did not terminate (`data: [DONE]` at EOF) is forwarded with its blank
            // line; a fragment of an event cut mid-way is not: a client parsing every event would fail on it
            // before it read the error event that follows.
            if event_is_whole(&rest) {
                self.forward(rest, &mut out);
                if !out.is_empty() && !out.ends_with(b"\n\n") {
                    out.extend_from_slice(b"\n\n");
                }
            }
        }
        // Why: awc reports a connection closed mid-body as a clean end of the body, so a stream that stops
        // before `[DONE]` and before any choice finished is taken as cut short, not as complete.
        if !self.done && !self.finish_seen {
            out.extend_from_slice(&self.broke_with(&"the connection closed before the stream finished"));
            return out.freeze();
        }
        if !self.done {
            // The choices finished but the connection closed before `[DONE]`: the content is whole, but the
            // usage chunk that follows the finish never came.
            if !self.usage_seen {
                self.settle.usage_gap(AccountingGap::StreamEndedBeforeUsage);
            }
            out.extend_from_slice(DONE);
        }
        self.settle.complete();
        out.freeze()
    }
}

/// An unterminated event whose data is `[DONE]` or a complete JSON document (or which has no data: a comment).
fn event_is_whole(event: &[u8]) -> bool {
    event_data(event).is_none_or(|data| data_is_whole(&data))
}

impl StreamRelay for SseRelay {
    fn chunk(&mut self, chunk: Bytes) -> Step {
        self.decoder.feed(&chunk);
        let mut out = BytesMut::new();
        while let Some(event) = self.decoder.next_event() {
            self.forward(event, &mut out);
        }
        Step::Send(out.freeze())
    }

    fn broke(&mut self, why: &str) -> Bytes {
        self.broke_with(&why)
    }

    fn end(&mut self) -> Option<Bytes> {
        Some(self.finish())
    }
}

/// How a relayed JSON body is read for usage at its end.
#[derive(Debug, Clone, Copy)]
pub enum BodyReader {
    /// OpenAI's shape, peeked at (only usage and an error object are decoded).
    OpenAi,
    /// The deployment's own dialect (a body relayed to a caller of the same dialect, such as Anthropic's).
    Dialect,
}

pub struct BodyRelay {
    upstream: UpstreamBody,
    settle: Settlement,
    reader: BodyReader,
    /// The upstream's `Content-Length`, when it sent one.
    expected_len: Option<u64>,
    /// Cheap clones (reference counts) of the chunks already forwarded, for reading usage at the end.
    seen: Vec<Bytes>,
    seen_len: usize,
    /// Ended or broke: the stream is fused.
    finished: bool,
}

impl BodyRelay {
    pub fn new(upstream: UpstreamBody, settle: Settlement, expected_len: Option<u64>, reader: BodyReader) -> Self {
        Self { upstream, settle, reader, expected_len, seen: Vec::new(), seen_len: 0, finished: false }
    }

    /// Reads usage from the complete body; `false` when the body is not a whole JSON document.
    fn read_usage(&mut self) -> bool {
        let joined;
        let body: &[u8] = match self.seen.as_slice() {
            [one] => one,
            many => {
                joined = many.concat();
                &joined
            }
        };
        if let BodyReader::Dialect = self.reader {
            let Some(dialect) = self.settle.deployment().provider.dialect() else { return false };
            return match dialect.decode_reply(body) {
                Ok(reply) => {
                    self.settle.read_reply(&reply);
                    if let Some(usage) = reply.usage {
                        self.settle.set_usage(usage);
                    }
                    true
                }
                Err(_) => false,
            };
        }
        let peek = Peek::parse(body);
        let Some(mut peek) = peek else { return false };
        if peek.is_error() {
            self.settle.error_in_body();
        }
        self.settle.peeked(&peek);
        if let Some(usage) = peek.take_usage() {
            self.settle.set_usage(usage);
        }
        true
    }

    fn broke(&mut self, cause: &dyn std::fmt::Display) -> Poll<Option<Result<Bytes, actix_web::Error>>> {
        // The status (200) is decided; erroring the body makes actix close the connection, dropping what it has
        // not written yet (when the upstream breaks at once, that is the whole response), so the caller sees a
        // broken transfer or no response, never a silently truncated JSON document (tests/upstream_framing.rs).
        self.finished = true;
        self.settle.broken();
        tracing::error!(
            request_id = self.settle.request_id(),
            deployment = %self.settle.deployment().id,
            error = %cause,
            "upstream body broke"
        );
        Poll::Ready(Some(Err(actix_web::error::ErrorBadGateway("upstream body broke"))))
    }
}

impl Stream for BodyRelay {
    type Item = Result<Bytes, actix_web::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.finished {
            return Poll::Ready(None);
        }
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
            Poll::Ready(Some(Err(e))) => this.broke(&e),
            Poll::Ready(None) => {
                // Why: awc reports a connection closed mid-body as a clean end, so check length and shape. A
                // close-delimited body (no length) ends that way by design: only its shape can tell a cut.
                if this.expected_len.is_some_and(|len| len != this.seen_len as u64) {
                    return this.broke(&"body shorter than its Content-Length");
                }
                if this.seen_len > MAX_USAGE_SCAN_BYTES {
                    this.settle.usage_gap(AccountingGap::BodyTooLargeForUsage);
                } else if !this.read_usage() {
                    return this.broke(&"body is not a complete JSON document");
                }
                this.finished = true;
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

    type Deployment = Arc<crate::routing::Deployment>;

    fn deployment() -> Deployment {
        let env = |_: &str| None;
        let yaml = "model_list:\n  - {model_name: m, litellm_params: {model: mock/m, input_cost_per_token: 0.000001, output_cost_per_token: 0.000002}}\n";
        let config = Config::load_str(yaml, &env).unwrap_or_else(|e| unreachable!("{e}"));
        let table = RoutingTable::build(&config, &env, crate::pricing::vendored(), |_, _, _| None)
            .unwrap_or_else(|e| unreachable!("{e}"));
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

    fn text(out: Vec<Result<Bytes, actix_web::Error>>) -> String {
        out.into_iter().map(|r| r.map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default()).collect()
    }

    async fn relay_sse(chunks: &[&str], fail: bool, include_usage: bool) -> (String, Deployment) {
        let d = deployment();
        let life = Arc::new(Lifecycle::default());
        let settle = Settlement::begin(d.clone(), Arc::from("rid"), true, life.enter());
        let out = SseRelay::new(upstream(chunks, fail), settle, include_usage).collect().await;
        assert_eq!(life.in_flight(), 0, "the in-flight guard is released with the stream");
        (text(out), d)
    }

    const CONTENT: &str = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"}}]}\n\n";
    const FINISH: &str = "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n";
    const USAGE: &str = "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":10,\"completion_tokens\":5}}\n\n";
    const DONE_EVENT: &str = "data: [DONE]\n\n";

    #[actix_rt::test]
    async fn sse_relay_cases() {
        // (upstream chunks, caller asked for usage, expected caller bytes)
        let cases: &[(&[&str], bool, String)] = &[
            (&[CONTENT, FINISH, USAGE, DONE_EVENT], true, format!("{CONTENT}{FINISH}{USAGE}{DONE_EVENT}")),
            (&[CONTENT, FINISH, USAGE, DONE_EVENT], false, format!("{CONTENT}{FINISH}{DONE_EVENT}")),
            (&[&CONTENT[..10], &CONTENT[10..], FINISH, USAGE], false, format!("{CONTENT}{FINISH}{DONE_EVENT}")),
            (&[": keep-alive\n\n", CONTENT, "data: [DONE]"], false, format!(": keep-alive\n\n{CONTENT}{DONE_EVENT}")),
            (&[CONTENT, DONE_EVENT, CONTENT], false, format!("{CONTENT}{DONE_EVENT}")),
            (&[CONTENT, FINISH], false, format!("{CONTENT}{FINISH}{DONE_EVENT}")),
        ];
        for (chunks, include_usage, want) in cases {
            let (got, _) = relay_sse(chunks, false, *include_usage).await;
            assert_eq!(&got, want, "chunks {chunks:?} include_usage {include_usage}");
        }
    }

    #[actix_rt::test]
    async fn sse_relay_counts_usage_and_cost_even_when_stripped() {
        let (_, d) = relay_sse(&[CONTENT, FINISH, USAGE, DONE_EVENT], false, false).await;
        assert_eq!(d.stats.prompt_tokens.load(Relaxed), 10);
        assert_eq!(d.stats.completion_tokens.load(Relaxed), 5);
        assert_eq!(d.stats.spend_nanos.load(Relaxed), 20_000, "10 * $1e-6 + 5 * $2e-6");
        assert_eq!(d.stats.in_flight.load(Relaxed), 0);
        assert_eq!(d.stats.failures.load(Relaxed), 0);
    }

    #[actix_rt::test]
    async fn sse_relay_turns_a_broken_upstream_into_an_error_event() {
        // An upstream error, and a clean end before any choice finished (how awc reports a cut connection).
        for fail in [true, false] {
            let (got, d) = relay_sse(&[CONTENT], fail, false).await;
            let last = got.trim_end().rsplit("\n\n").next().unwrap_or_default();
            let v: serde_json::Value = serde_json::from_str(last.trim_start_matches("data: ")).unwrap_or_default();
            assert_eq!(v["error"]["type"], "server_error", "fail={fail}: {got}");
            assert!(got.starts_with(CONTENT), "what arrived before the break is delivered");
            assert!(!got.contains("[DONE]"), "fail={fail}: {got}");
            assert_eq!(d.stats.failures.load(Relaxed), 1);
        }
    }

    #[actix_rt::test]
    async fn idle_limit_ends_a_stalled_stream_with_an_error() {
        let stalled = stream::iter(vec![Ok(Bytes::from_static(b"a"))]).chain(stream::pending()).boxed_local();
        let started = std::time::Instant::now();
        let items: Vec<_> = idle_limited(stalled, Duration::from_millis(100)).collect().await;
        assert_eq!(items.len(), 2);
        assert!(items[1].as_ref().is_err_and(|e| e.contains("no data from the upstream")));
        assert!(started.elapsed() >= Duration::from_millis(100));
        let steady = stream::iter((0..5).map(|_| Ok(Bytes::from_static(b"x")))).boxed_local();
        assert!(idle_limited(steady, Duration::from_millis(100)).all(|r| async move { r.is_ok() }).await);
    }

    #[actix_rt::test]
    async fn body_relay_forwards_bytes_and_reads_usage_across_chunks() {
        let d = deployment();
        let life = Arc::new(Lifecycle::default());
        let body = r#"{"id":"x","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4}}"#;
        let settle = Settlement::begin(d.clone(), Arc::from("rid"), false, life.enter());
        let len = Some(body.len() as u64);
        let out = BodyRelay::new(upstream(&[&body[..20], &body[20..]], false), settle, len, BodyReader::OpenAi)
            .collect()
            .await;
        assert_eq!(text(out), body);
        assert_eq!((d.stats.prompt_tokens.load(Relaxed), d.stats.completion_tokens.load(Relaxed)), (3, 4));

        // An upstream error; a clean end short of Content-Length; a clean end mid-document (awc's reports
        // of a cut connection). Each errors the body so actix closes the caller's connection.
        for (fail, expected_len) in [(true, None), (false, len), (false, None)] {
            let settle = Settlement::begin(d.clone(), Arc::from("rid"), false, life.enter());
            let out: Vec<_> = BodyRelay::new(upstream(&[&body[..20]], fail), settle, expected_len, BodyReader::OpenAi)
                .collect()
                .await;
            assert!(out.last().is_some_and(Result::is_err), "fail={fail} length {expected_len:?}");
        }
        assert_eq!(d.stats.failures.load(Relaxed), 3);
    }
}
