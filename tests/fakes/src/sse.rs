//! Streaming bodies: OpenAI SSE framing (`data: <json>\n\n` … `data: [DONE]\n\n`), a stream wrapper that records
//! `stream_dropped:<seq>` when the client goes away mid-stream, and a body that breaks the connection on purpose.

use std::{
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use actix_web::{body::SizedStream, HttpResponse};
use bytes::Bytes;
use futures_util::{stream, Stream, StreamExt};

use crate::{
    record::Recorder,
    wire::{Chunk, ChunkChoice, Delta, ToolCall, Usage, CREATED, FINGERPRINT},
};

pub(crate) type BodyStream = Pin<Box<dyn Stream<Item = Result<Bytes, std::io::Error>>>>;

const DONE: &[u8] = b"data: [DONE]\n\n";

/// Builds the SSE events of one streamed completion (all share `id`, `created` and `model`).
#[derive(Clone)]
pub(crate) struct Chunks {
    id: String,
    model: String,
    include_usage: bool,
}

impl Chunks {
    pub(crate) fn new(id: String, model: String, include_usage: bool) -> Chunks {
        Chunks { id, model, include_usage }
    }

    fn event(&self, choices: Vec<ChunkChoice<'_>>, usage: Option<Usage>) -> Bytes {
        let chunk = Chunk {
            id: &self.id,
            object: "chat.completion.chunk",
            created: CREATED,
            model: &self.model,
            system_fingerprint: FINGERPRINT,
            choices,
            usage: self.include_usage.then_some(usage),
        };
        let mut out = b"data: ".to_vec();
        // Serialising these plain structs cannot fail.
        let _ = serde_json::to_writer(&mut out, &chunk);
        out.extend_from_slice(b"\n\n");
        Bytes::from(out)
    }

    pub(crate) fn delta(&self, delta: Delta<'_>, finish_reason: Option<&str>) -> Bytes {
        self.event(vec![ChunkChoice { index: 0, delta, logprobs: None, finish_reason }], None)
    }

    /// The first chunk: `{"role":"assistant","content":<content>,"refusal":null}`.
    pub(crate) fn role(&self, content: Option<&str>) -> Bytes {
        self.delta(
            Delta { role: Some("assistant"), content: Some(content), refusal: Some(None), ..Delta::default() },
            None,
        )
    }

    pub(crate) fn content(&self, text: &str) -> Bytes {
        self.delta(Delta { content: Some(Some(text)), ..Delta::default() }, None)
    }

    pub(crate) fn tool_call(&self, call: ToolCall<'_>) -> Bytes {
        self.delta(Delta { tool_calls: Some([call]), ..Delta::default() }, None)
    }

    /// The chunk with an empty delta and the finish reason.
    pub(crate) fn finish(&self, reason: &str) -> Bytes {
        self.delta(Delta::default(), Some(reason))
    }

    /// The usage chunk (only when the client asked for it) and `[DONE]`.
    pub(crate) fn tail(&self, usage: Usage) -> Vec<Bytes> {
        let mut out = Vec::with_capacity(2);
        if self.include_usage {
            out.push(self.event(Vec::new(), Some(usage)));
        }
        out.push(Bytes::from_static(DONE));
        out
    }
}

/// A complete SSE response from ready-made events.
pub(crate) fn sse(events: Vec<Bytes>) -> HttpResponse {
    sse_stream(Box::pin(stream::iter(events.into_iter().map(Ok))))
}

/// An SSE response that sends each event in its own write, back to back: the body yields to the runtime before
/// every event, so actix flushes what it has (the head, then one event at a time), as an LLM server flushes
/// each token as it is generated, only without waiting between them.
pub(crate) fn sse_flushed(events: Vec<Bytes>) -> HttpResponse {
    sse_stream(Box::pin(stream::iter(events).then(|event| async move {
        tokio::task::yield_now().await;
        Ok(event)
    })))
}

pub(crate) fn sse_stream(body: BodyStream) -> HttpResponse {
    HttpResponse::Ok().content_type("text/event-stream").streaming(body)
}

/// Wraps `inner` so that dropping it before its end records `stream_dropped:<seq>`: the client went away.
pub(crate) fn watched(inner: BodyStream, rec: Recorder, seq: u64) -> BodyStream {
    Box::pin(Watched { inner, rec, seq, finished: false })
}

struct Watched {
    inner: BodyStream,
    rec: Recorder,
    seq: u64,
    finished: bool,
}

impl Stream for Watched {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let next = self.inner.as_mut().poll_next(cx);
        if let Poll::Ready(None) = next {
            self.finished = true;
        }
        next
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        if !self.finished {
            self.rec.event(format!("stream_dropped:{}", self.seq));
        }
    }
}

/// Sends `parts`, lets them reach the socket, then fails the body so actix aborts the connection. The body is
/// declared with a `Content-Length` far larger than `parts`: HTTP clients such as awc report a chunked body cut at
/// a chunk boundary as a clean end, whereas a short fixed-length body is unmistakably broken.
pub(crate) fn broken_after(parts: Vec<Bytes>) -> SizedStream<impl Stream<Item = Result<Bytes, std::io::Error>>> {
    let sent = stream::iter(parts.into_iter().map(Ok));
    let reset = stream::once(async {
        actix_rt::time::sleep(Duration::from_millis(100)).await;
        Err(std::io::Error::other("fake upstream reset"))
    });
    SizedStream::new(1 << 20, sent.chain(reset))
}
