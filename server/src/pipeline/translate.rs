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

use super::{relay::UpstreamBody, settle::Settlement};
use crate::{
    framing::Framer,
    llm::chat::Event,
    providers::codec::{StreamDecoder, StreamEncoder},
};

/// The canonical events of one stream, read by a decoder, with the settlement told what they mean.
struct Reader {
    framer: Framer,
    decoder: Box<dyn StreamDecoder>,
    events: Vec<Event>,
}

/// How a stream ended, as its dialect sees it.
enum End {
    Clean,
    Broken(String),
}

impl Reader {
    fn new(framer: Framer, decoder: Box<dyn StreamDecoder>) -> Self {
        Self { framer, decoder, events: Vec::new() }
    }

    /// Feeds upstream bytes; the events they complete are left in `self.events`. `Err` when the bytes cannot be
    /// a stream of this dialect.
    fn feed(&mut self, chunk: &[u8]) -> Result<(), String> {
        self.framer.feed(chunk);
        loop {
            match self.framer.next_frame() {
                Ok(Some(frame)) => self.decoder.frame(&frame, &mut self.events).map_err(|e| e.0)?,
                Ok(None) => return Ok(()),
                Err(e) => return Err(e.0),
            }
        }
    }

    /// The upstream's bytes ended: the last unterminated frame, then the decoder's verdict.
    fn end(&mut self) -> End {
        let last = match self.framer.finish() {
            Ok(Some(frame)) => self.decoder.frame(&frame, &mut self.events).map_err(|e| e.0),
            Ok(None) => Ok(()),
            Err(e) => Err(e.0),
        };
        match last.and_then(|()| self.decoder.end(&mut self.events).map_err(|e| e.0)) {
            Ok(()) => End::Clean,
            Err(why) => End::Broken(why),
        }
    }
}

/// What the books take from each event.
fn account(settle: &mut Settlement, event: &Event) {
    match event {
        Event::Usage(usage) => settle.set_usage(*usage),
        Event::Error(_) => settle.error_in_body(),
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
    upstream: UpstreamBody,
    reader: Reader,
    encoder: Box<dyn StreamEncoder>,
    settle: Settlement,
    finished: bool,
}

impl TranslateRelay {
    pub fn new(
        upstream: UpstreamBody,
        framer: Framer,
        decoder: Box<dyn StreamDecoder>,
        encoder: Box<dyn StreamEncoder>,
        settle: Settlement,
    ) -> Self {
        Self { upstream, reader: Reader::new(framer, decoder), encoder, settle, finished: false }
    }

    /// Encodes the events read so far.
    fn drain(&mut self, out: &mut BytesMut) {
        for event in self.reader.events.drain(..) {
            account(&mut self.settle, &event);
            self.encoder.event(&event, out);
        }
    }

    fn fail(&mut self, why: &str, mut out: BytesMut) -> Bytes {
        self.finished = true;
        self.drain(&mut out);
        let message = broke(&mut self.settle, why);
        self.encoder.fail("upstream_stream_broken", &message, &mut out);
        out.freeze()
    }

    fn end(&mut self) -> Bytes {
        self.finished = true;
        let mut out = BytesMut::new();
        match self.reader.end() {
            End::Clean => {
                self.drain(&mut out);
                self.encoder.end(&mut out);
                self.settle.complete();
                out.freeze()
            }
            End::Broken(why) => self.fail(&why, out),
        }
    }
}

impl Stream for TranslateRelay {
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
                    let fed = this.reader.feed(&chunk);
                    let mut out = BytesMut::new();
                    if let Err(why) = fed {
                        return Poll::Ready(Some(Ok(this.fail(&why, out))));
                    }
                    this.drain(&mut out);
                    if !out.is_empty() {
                        return Poll::Ready(Some(Ok(out.freeze())));
                    }
                }
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Ok(this.fail(&e, BytesMut::new())))),
                Poll::Ready(None) => return Poll::Ready(Some(Ok(this.end()))),
            }
        }
    }
}

pub struct TapRelay {
    upstream: UpstreamBody,
    reader: Reader,
    /// Only for the error event that ends a broken stream.
    encoder: Box<dyn StreamEncoder>,
    settle: Settlement,
    finished: bool,
}

impl TapRelay {
    pub fn new(
        upstream: UpstreamBody,
        framer: Framer,
        decoder: Box<dyn StreamDecoder>,
        encoder: Box<dyn StreamEncoder>,
        settle: Settlement,
    ) -> Self {
        Self { upstream, reader: Reader::new(framer, decoder), encoder, settle, finished: false }
    }

    fn account(&mut self) {
        for event in self.reader.events.drain(..) {
            account(&mut self.settle, &event);
        }
    }

    fn fail(&mut self, why: &str) -> Bytes {
        self.finished = true;
        self.account();
        let message = broke(&mut self.settle, why);
        let mut out = BytesMut::new();
        self.encoder.fail("upstream_stream_broken", &message, &mut out);
        out.freeze()
    }
}

impl Stream for TapRelay {
    type Item = Result<Bytes, actix_web::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.finished {
            return Poll::Ready(None);
        }
        match this.upstream.as_mut().poll_next(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(chunk))) => {
                // A stream that stopped making sense is still the caller's to read; the books say it broke.
                if let Err(why) = this.reader.feed(&chunk) {
                    let mut out = BytesMut::from(&chunk[..]);
                    out.extend_from_slice(&this.fail(&why));
                    return Poll::Ready(Some(Ok(out.freeze())));
                }
                this.account();
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Ok(this.fail(&e)))),
            Poll::Ready(None) => match this.reader.end() {
                End::Clean => {
                    this.finished = true;
                    this.account();
                    this.settle.complete();
                    Poll::Ready(None)
                }
                End::Broken(why) => Poll::Ready(Some(Ok(this.fail(&why)))),
            },
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
