//! Wire framings of streamed responses: Server-Sent Events (`sse.rs`), JSON lines (`jsonl.rs`), and AWS
//! eventstream (`eventstream.rs`, binary, with CRCs). Each turns a byte stream, cut anywhere, into whole
//! [`Frame`]s, and tells a clean end from a truncated one.
//!
//! Contract: pure and incremental (no I/O, no clock, no runtime types); imports no other module of the crate
//! (`scripts/check_layering.py`). Work is linear in the bytes fed: a frame is scanned once.

pub mod eventstream;
pub mod jsonl;
pub mod sse;

use bytes::Bytes;

/// One message of a stream: its event name (SSE `event:`, eventstream `:event-type`) and its payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub event: Option<String>,
    pub data: Bytes,
}

/// The stream's bytes ended in the middle of a frame, or broke the framing's rules.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FrameError(pub String);

/// How a dialect frames its streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    Sse,
    JsonLines,
    /// AWS `application/vnd.amazon.eventstream` (Bedrock).
    EventStream,
}

/// A framer for one stream.
#[derive(Debug)]
pub enum Framer {
    Sse(sse::SseDecoder),
    JsonLines(jsonl::LineDecoder),
    EventStream(eventstream::EventStreamDecoder),
}

impl Framer {
    pub fn new(framing: Framing) -> Self {
        match framing {
            Framing::Sse => Self::Sse(sse::SseDecoder::default()),
            Framing::JsonLines => Self::JsonLines(jsonl::LineDecoder::default()),
            Framing::EventStream => Self::EventStream(eventstream::EventStreamDecoder::default()),
        }
    }

    pub fn feed(&mut self, bytes: &[u8]) {
        match self {
            Self::Sse(d) => d.feed(bytes),
            Self::JsonLines(d) => d.feed(bytes),
            Self::EventStream(d) => d.feed(bytes),
        }
    }

    /// The next whole frame. SSE comments and data-less events are skipped.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        match self {
            Self::Sse(d) => loop {
                let Some(event) = d.next_event() else { return Ok(None) };
                if let Some(frame) = sse::frame_of(&event) {
                    return Ok(Some(frame));
                }
            },
            Self::JsonLines(d) => Ok(d.next_line().map(|data| Frame { event: None, data })),
            Self::EventStream(d) => d.next_frame(),
        }
    }

    /// How many of the bytes fed are not part of a whole frame yet (the start of the next one): a relay that
    /// forwards the upstream's bytes as they are holds these back, so a stream cut mid-frame never passes half a
    /// frame on.
    pub fn buffered(&self) -> usize {
        match self {
            Self::Sse(d) => d.buffered(),
            Self::JsonLines(d) => d.buffered(),
            Self::EventStream(d) => d.buffered(),
        }
    }

    /// The stream ended: the last frame if it was whole but unterminated, or an error if bytes of an incomplete
    /// frame are left.
    pub fn finish(&mut self) -> Result<Option<Frame>, FrameError> {
        match self {
            Self::Sse(d) => match d.finish() {
                None => Ok(None),
                Some(rest) => match sse::frame_of(&rest) {
                    // An unterminated last event is whole only if its data is (a JSON document or `[DONE]`).
                    Some(frame) if sse::data_is_whole(&frame.data) => Ok(Some(frame)),
                    Some(_) => Err(FrameError("the stream ended in the middle of an event".into())),
                    None => Ok(None),
                },
            },
            Self::JsonLines(d) => match d.finish() {
                None => Ok(None),
                Some(rest) if sse::data_is_whole(&rest) => Ok(Some(Frame { event: None, data: rest })),
                Some(_) => Err(FrameError("the stream ended in the middle of a line".into())),
            },
            Self::EventStream(d) => d.finish(),
        }
    }
}
