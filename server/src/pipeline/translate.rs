//! Streams that cross dialects, and streams read on the side.
//!
//! [`TranslateRelay`]: upstream bytes → framer (SSE, JSON lines, eventstream) → the provider's decoder →
//! canonical events → the caller's encoder. The accounting tap sits on the canonical events, so usage, finish and
//! in-stream errors are read the same way whatever the provider. A stream that stops where its dialect says it
//! must not (no `message_stop`, a frame cut mid-way, bad JSON, a failed CRC) ends with an error event in the
//! caller's dialect, never silently.
//!
//! [`TapRelay`]: the caller and the provider speak the same dialect (Anthropic to Anthropic): the upstream's bytes
//! go through as they are, and the same framer and decoder read them on the side for the books.
//!
//! [`PassRelay`]: bytes made in-process (the mock), already in the caller's dialect and already accounted.

use std::{
    pin::Pin,
    task::{Context, Poll},
};

use bytes::{Bytes, BytesMut};
use futures_util::Stream;

use super::{
    relay::{Relayed, Step, StreamRelay, UpstreamBody},
    settle::Settlement,
};
use crate::{
    framing::Framer,
    llm::chat::Event,
    providers::codec::{StreamDecoder, StreamEncoder, StreamReader},
};

/// What the books take from each event.
fn account(settle: &mut Settlement, event: &Event) {
    match event {
        Event::Usage(usage) => settle.set_usage(*usage),
        Event::Error(_) => settle.error_in_body(),
        Event::Start { model, .. } => settle.answered_by(model),
        Event::Finish(finish) => settle.finished_because(finish.openai()),
        _ => {}
    }
}

fn broke(settle: &mut Settlement, why: &str) -> String {
    settle.broken();
    let d = settle.deployment();
    tracing::error!(request_id = settle.request_id(), deployment = %d.id, error = %why, "upstream stream broke");
    format!("the upstream stream of deployment `{}` broke mid-response: {why}", d.id)
}

pub struct TranslateRelay {
    reader: StreamReader,
    encoder: Box<dyn StreamEncoder>,
    settle: Settlement,
}

impl TranslateRelay {
    pub fn new(
        upstream: UpstreamBody,
        framer: Framer,
        decoder: Box<dyn StreamDecoder>,
        encoder: Box<dyn StreamEncoder>,
        settle: Settlement,
    ) -> Relayed<Self> {
        Relayed::new(upstream, Self { reader: StreamReader::new(framer, decoder), encoder, settle })
    }

    /// Encodes the events read so far.
    fn drain(&mut self, out: &mut BytesMut) {
        for event in self.reader.events.drain(..) {
            account(&mut self.settle, &event);
            self.encoder.event(&event, out);
        }
    }

    fn fail(&mut self, why: &str, mut out: BytesMut) -> Bytes {
        self.drain(&mut out);
        let message = broke(&mut self.settle, why);
        self.encoder.fail("upstream_stream_broken", &message, &mut out);
        out.freeze()
    }

    fn finish(&mut self) -> Bytes {
        let mut out = BytesMut::new();
        match self.reader.end() {
            Ok(()) => {
                self.drain(&mut out);
                self.encoder.end(&mut out);
                self.settle.complete();
                out.freeze()
            }
            Err(why) => self.fail(&why, out),
        }
    }
}

impl StreamRelay for TranslateRelay {
    fn chunk(&mut self, chunk: Bytes) -> Step {
        let fed = self.reader.feed(&chunk);
        let mut out = BytesMut::new();
        if let Err(why) = fed {
            return Step::Last(self.fail(&why, out));
        }
        self.drain(&mut out);
        Step::Send(out.freeze())
    }

    fn broke(&mut self, why: &str) -> Bytes {
        self.fail(why, BytesMut::new())
    }

    fn end(&mut self) -> Option<Bytes> {
        Some(self.finish())
    }
}

pub struct TapRelay {
    reader: StreamReader,
    /// Only for the error event that ends a broken stream.
    encoder: Box<dyn StreamEncoder>,
    settle: Settlement,
    /// Upstream bytes of a frame that is not whole yet, held back until it is: a stream cut mid-event must not
    /// pass half an event on, or the caller's parser fails on it before it reads the error event that follows.
    held: BytesMut,
}

impl TapRelay {
    pub fn new(
        upstream: UpstreamBody,
        framer: Framer,
        decoder: Box<dyn StreamDecoder>,
        encoder: Box<dyn StreamEncoder>,
        settle: Settlement,
    ) -> Relayed<Self> {
        let reader = StreamReader::new(framer, decoder);
        Relayed::new(upstream, Self { reader, encoder, settle, held: BytesMut::new() })
    }

    fn account(&mut self) {
        for event in self.reader.events.drain(..) {
            account(&mut self.settle, &event);
        }
    }

    /// The bytes of whole frames among those held and `chunk` (already fed to the reader); the rest stays held.
    /// A chunk that ends where a frame ends, the usual case, goes through without a copy.
    fn whole_frames(&mut self, chunk: Bytes) -> Bytes {
        let incomplete = self.reader.buffered();
        if self.held.is_empty() {
            let end = chunk.len().saturating_sub(incomplete);
            self.held.extend_from_slice(&chunk[end..]);
            return chunk.slice(..end);
        }
        self.held.extend_from_slice(&chunk);
        let end = self.held.len().saturating_sub(incomplete);
        self.held.split_to(end).freeze()
    }

    /// Ends the stream with an error event; an incomplete frame held back is dropped.
    fn fail(&mut self, why: &str, mut out: BytesMut) -> Bytes {
        self.held.clear();
        self.account();
        let message = broke(&mut self.settle, why);
        self.encoder.fail("upstream_stream_broken", &message, &mut out);
        out.freeze()
    }
}

impl StreamRelay for TapRelay {
    fn chunk(&mut self, chunk: Bytes) -> Step {
        let fed = self.reader.feed(&chunk);
        let whole = self.whole_frames(chunk);
        // A stream that stopped making sense is still the caller's to read; the books say it broke.
        if let Err(why) = fed {
            return Step::Last(self.fail(&why, BytesMut::from(&whole[..])));
        }
        self.account();
        Step::Send(whole)
    }

    fn broke(&mut self, why: &str) -> Bytes {
        self.fail(why, BytesMut::new())
    }

    fn end(&mut self) -> Option<Bytes> {
        match self.reader.end() {
            Ok(()) => {
                self.account();
                self.settle.complete();
                // A last frame the upstream did not terminate, but whole.
                Some(self.held.split().freeze())
            }
            Err(why) => Some(self.fail(&why, BytesMut::new())),
        }
    }
}

pub struct PassRelay {
    body: UpstreamBody,
    settle: Settlement,
}

impl PassRelay {
    pub fn new(body: UpstreamBody, settle: Settlement) -> Self {
        Self { body, settle }
    }
}

impl Stream for PassRelay {
    type Item = Result<Bytes, actix_web::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        match this.body.as_mut().poll_next(cx) {
            Poll::Ready(None) => {
                this.settle.complete();
                Poll::Ready(None)
            }
            Poll::Ready(Some(item)) => Poll::Ready(Some(Ok(item.unwrap_or_default()))),
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use futures_util::{stream, StreamExt};

    use super::*;
    use crate::{
        config::Config,
        framing::Framing,
        lifecycle::Lifecycle,
        providers::anthropic::{EventDecoder, EventEncoder},
        routing::RoutingTable,
    };

    const EVENTS: [&str; 6] = [
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"m\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":3,\"output_tokens\":1}}}\n\n",
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hello\"}}\n\n",
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
        "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":2}}\n\n",
        "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
    ];

    /// What a [`TapRelay`] passes on of `bytes`, cut into chunks of `size` (then a connection error if `reset`).
    async fn tap(bytes: &str, size: usize, reset: bool) -> String {
        let env = |_: &str| None;
        let yaml = "model_list:\n  - {model_name: c, litellm_params: {model: anthropic/m, api_key: sk-ant-test}}\n";
        let config = Config::load_str(yaml, &env).unwrap_or_else(|e| unreachable!("{e}"));
        let table = RoutingTable::build(&config, &env, crate::pricing::vendored(), |_, _, _| None)
            .unwrap_or_else(|e| unreachable!("{e}"));
        let d = table.deployments().next().cloned().unwrap_or_else(|| unreachable!());
        let life = Arc::new(Lifecycle::default());
        let mut items: Vec<Result<Bytes, String>> =
            bytes.as_bytes().chunks(size).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
        if reset {
            items.push(Err("connection reset".into()));
        }
        let settle = Settlement::begin(d, Arc::from("rid"), true, life.enter());
        let relay = TapRelay::new(
            stream::iter(items).boxed_local(),
            Framer::new(Framing::Sse),
            Box::new(EventDecoder::default()),
            Box::new(EventEncoder::default()),
            settle,
        );
        let out: Vec<_> = relay.collect().await;
        out.into_iter().map(|r| r.map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default()).collect()
    }

    #[actix_rt::test]
    async fn a_whole_stream_passes_as_it_is_however_it_is_chunked() {
        let whole = EVENTS.concat();
        for size in [1, 7, 64, whole.len()] {
            assert_eq!(tap(&whole, size, false).await, whole, "chunks of {size}");
        }
        // A last event the upstream did not terminate is passed on at the end.
        let unterminated = whole.trim_end();
        assert_eq!(tap(unterminated, 16, false).await, unterminated);
    }

    #[actix_rt::test]
    async fn a_stream_cut_mid_event_passes_whole_events_then_an_error_event() {
        let head = EVENTS[..3].concat();
        let cut = format!("{head}{}", &EVENTS[3][..20]);
        for (size, reset) in [(1, false), (13, false), (cut.len(), false), (13, true)] {
            let out = tap(&cut, size, reset).await;
            let rest = out.strip_prefix(&head).unwrap_or_else(|| unreachable!("chunks of {size}: {out}"));
            assert!(rest.starts_with("event: error\ndata: {\"type\":\"error\""), "chunks of {size}: {out}");
            assert_eq!(rest.matches("\n\n").count(), 1, "one event, nothing of the cut one: {out}");
        }
    }
}
