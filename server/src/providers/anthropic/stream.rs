//! Messages streams (named SSE events, providers.md 2.8), both ways: [`EventDecoder`] reads Anthropic's events
//! into canonical ones; [`EventEncoder`] writes canonical events as Anthropic's exact event sequence for Anthropic
//! callers, whatever dialect the upstream spoke.
//!
//! Anthropic numbers content blocks of every kind; canonical tool calls are numbered among tool calls only, so
//! each side keeps its own map. A stream is complete only after `message_stop`.

use std::collections::HashMap;

use bytes::BytesMut;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::{
    error::typed_error_body,
    wire::{finish_of, message_id, stop_reason_of, BlockOut, UsageIn, UsageOut},
};
use crate::{
    framing::Frame,
    llm::{
        chat::{DecodeError, Event, Finish, StreamError},
        Usage,
    },
    providers::codec::{StreamDecoder, StreamEncoder},
};

/// One event's data, wide: `type` decides which fields mean something.
#[derive(Deserialize)]
struct EventIn<'a> {
    #[serde(rename = "type")]
    kind: String,
    message: Option<MessageIn>,
    index: Option<u64>,
    /// Read as a [`BlockStart`] only for the block types tollgate knows: others may use the same field names
    /// with other types.
    #[serde(borrow)]
    content_block: Option<&'a RawValue>,
    delta: Option<DeltaIn>,
    usage: Option<UsageIn>,
    error: Option<ErrorIn>,
}

#[derive(Deserialize)]
struct MessageIn {
    #[serde(default)]
    id: String,
    #[serde(default)]
    model: String,
    usage: Option<UsageIn>,
}

#[derive(Deserialize)]
struct BlockKind<'a> {
    #[serde(rename = "type", borrow)]
    kind: std::borrow::Cow<'a, str>,
}

#[derive(Deserialize)]
struct BlockStart {
    id: Option<String>,
    name: Option<String>,
    text: Option<String>,
    thinking: Option<String>,
}

/// A `content_block_delta`'s delta, or a `message_delta`'s (`stop_reason`, `stop_sequence`).
#[derive(Deserialize)]
struct DeltaIn {
    #[serde(rename = "type")]
    kind: Option<String>,
    text: Option<String>,
    thinking: Option<String>,
    signature: Option<String>,
    partial_json: Option<String>,
    stop_reason: Option<String>,
    stop_sequence: Option<String>,
}

#[derive(Deserialize)]
struct ErrorIn {
    #[serde(rename = "type")]
    kind: Option<String>,
    message: Option<String>,
}

/// Anthropic's stream → canonical events. Usage is the input and cache counts of `message_start`, overridden by
/// any `message_delta` repeats, with the last `message_delta`'s cumulative output; it is emitted once, at
/// `message_stop`. A tool call with no argument fragments gets `{}` when its block stops, so no caller ever sees a
/// tool call with empty arguments.
#[derive(Debug, Default)]
pub struct EventDecoder {
    started: bool,
    stopped: bool,
    usage: UsageIn,
    /// Tool calls so far; the next one's canonical index.
    tools: u32,
    /// Anthropic block index → (canonical tool index, whether any argument fragment arrived).
    tool_blocks: HashMap<u64, (u32, bool)>,
}

impl EventDecoder {
    fn require_start(&self, kind: &str) -> Result<(), DecodeError> {
        if self.started {
            Ok(())
        } else {
            Err(DecodeError::new(format!("Anthropic stream sent `{kind}` before `message_start`")))
        }
    }
}

impl StreamDecoder for EventDecoder {
    fn frame(&mut self, frame: &Frame, out: &mut Vec<Event>) -> Result<(), DecodeError> {
        let invalid = |e: serde_json::Error| {
            let name = frame.event.as_deref().unwrap_or("unnamed");
            DecodeError::new(format!("Anthropic stream event `{name}` is not valid: {e}"))
        };
        let event: EventIn<'_> = serde_json::from_slice(&frame.data).map_err(invalid)?;
        if self.stopped && event.kind != "ping" {
            return Err(DecodeError::new(format!("Anthropic stream sent `{}` after `message_stop`", event.kind)));
        }
        match event.kind.as_str() {
            "message_start" => {
                let message = event.message.ok_or_else(|| DecodeError::new("`message_start` without a message"))?;
                self.started = true;
                if let Some(usage) = message.usage {
                    self.usage = usage;
                }
                out.push(Event::Start { id: message.id, model: message.model });
            }
            "content_block_start" => {
                self.require_start(&event.kind)?;
                let raw =
                    event.content_block.ok_or_else(|| DecodeError::new("`content_block_start` without a block"))?;
                let BlockKind { kind } = serde_json::from_str(raw.get()).map_err(invalid)?;
                if !matches!(kind.as_ref(), "text" | "thinking" | "tool_use") {
                    // Server tools, redacted thinking, blocks of future API versions: nothing canonical.
                    return Ok(());
                }
                let block: BlockStart = serde_json::from_str(raw.get()).map_err(invalid)?;
                match kind.as_ref() {
                    "text" => push_text(out, block.text, Event::Text),
                    "thinking" => push_text(out, block.thinking, Event::Reasoning),
                    "tool_use" => {
                        let index = self.tools;
                        self.tools += 1;
                        self.tool_blocks.insert(event.index.unwrap_or(u64::MAX), (index, false));
                        out.push(Event::ToolStart {
                            index,
                            id: block.id.unwrap_or_default(),
                            name: block.name.unwrap_or_default(),
                        });
                    }
                    _ => {}
                }
            }
            "content_block_delta" => {
                self.require_start(&event.kind)?;
                let delta = event.delta.ok_or_else(|| DecodeError::new("`content_block_delta` without a delta"))?;
                match delta.kind.as_deref() {
                    Some("text_delta") => push_text(out, delta.text, Event::Text),
                    Some("thinking_delta") => push_text(out, delta.thinking, Event::Reasoning),
                    Some("signature_delta") => push_text(out, delta.signature, Event::ReasoningSignature),
                    Some("input_json_delta") => {
                        // Fragments of server tools' blocks (not in the map) are not the caller's tool calls.
                        let Some((index, seen)) = event.index.and_then(|i| self.tool_blocks.get_mut(&i)) else {
                            return Ok(());
                        };
                        let fragment = delta.partial_json.unwrap_or_default();
                        if !fragment.is_empty() {
                            *seen = true;
                            out.push(Event::ToolArgs { index: *index, fragment });
                        }
                    }
                    _ => {}
                }
            }
            "content_block_stop" => {
                self.require_start(&event.kind)?;
                if let Some((index, false)) = event.index.and_then(|i| self.tool_blocks.remove(&i)) {
                    out.push(Event::ToolArgs { index, fragment: "{}".to_owned() });
                }
            }
            "message_delta" => {
                self.require_start(&event.kind)?;
                if let Some(reason) = event.delta.as_ref().and_then(|d| d.stop_reason.as_deref()) {
                    let sequence = event.delta.as_ref().and_then(|d| d.stop_sequence.as_deref());
                    out.push(Event::Finish(finish_of(reason, sequence)));
                }
                if let Some(usage) = &event.usage {
                    self.usage.merge(usage);
                }
            }
            "message_stop" => {
                self.require_start(&event.kind)?;
                self.stopped = true;
                out.push(Event::Usage(self.usage.canonical()));
            }
            "error" => {
                let error = event.error.unwrap_or(ErrorIn { kind: None, message: None });
                out.push(Event::Error(StreamError {
                    kind: error.kind.unwrap_or_else(|| "api_error".to_owned()),
                    message: error.message.unwrap_or_else(|| "Anthropic reported an error in the stream".to_owned()),
                }));
            }
            // `ping`, and event types of future API versions, which Anthropic says clients should ignore.
            _ => {}
        }
        Ok(())
    }

    fn end(&mut self, _out: &mut Vec<Event>) -> Result<(), DecodeError> {
        match (self.started, self.stopped) {
            (_, true) => Ok(()),
            (false, false) => Err(DecodeError::new("Anthropic stream ended before `message_start`")),
            (true, false) => Err(DecodeError::new("Anthropic stream ended before `message_stop`")),
        }
    }
}

fn push_text(out: &mut Vec<Event>, text: Option<String>, event: fn(String) -> Event) {
    if let Some(text) = text.filter(|t| !t.is_empty()) {
        out.push(event(text));
    }
}

/// The kind of the content block the encoder has open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    Text,
    Thinking,
    /// A tool call, by canonical index.
    Tool(u32),
}

/// Canonical events → Anthropic's event sequence, with its own block numbering: a text block opens lazily at the
/// first text and closes when another kind of block starts; each tool call is its own block. `message_delta`
/// (stop reason and usage) is written at [`StreamEncoder::end`], because some upstreams (OpenAI) report usage
/// after the finish reason.
#[derive(Debug, Default)]
pub struct EventEncoder {
    started: bool,
    /// An error event was written: the stream is over.
    failed: bool,
    next_block: u32,
    open: Option<(Open, u32)>,
    /// Canonical tool index → block index, for argument fragments of a tool whose block is no longer open.
    tool_blocks: HashMap<u32, u32>,
    called_tools: bool,
    finish: Option<Finish>,
    usage: Option<Usage>,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum EventOut<'a> {
    MessageStart { message: MessageOut<'a> },
    ContentBlockStart { index: u32, content_block: BlockStartOut<'a> },
    ContentBlockDelta { index: u32, delta: DeltaOut<'a> },
    ContentBlockStop { index: u32 },
    MessageDelta { delta: StopOut<'a>, usage: UsageOut },
    MessageStop,
}

impl EventOut<'_> {
    fn name(&self) -> &'static str {
        match self {
            Self::MessageStart { .. } => "message_start",
            Self::ContentBlockStart { .. } => "content_block_start",
            Self::ContentBlockDelta { .. } => "content_block_delta",
            Self::ContentBlockStop { .. } => "content_block_stop",
            Self::MessageDelta { .. } => "message_delta",
            Self::MessageStop => "message_stop",
        }
    }
}

#[derive(Serialize)]
struct MessageOut<'a> {
    id: String,
    #[serde(rename = "type")]
    kind: &'static str,
    role: &'static str,
    model: &'a str,
    content: [(); 0],
    stop_reason: Option<&'static str>,
    stop_sequence: Option<&'static str>,
    usage: UsageOut,
}

/// A block as `content_block_start` announces it: empty, its content follows in deltas.
#[derive(Serialize)]
#[serde(untagged)]
enum BlockStartOut<'a> {
    Block(BlockOut<'a>),
    ToolUse(ToolStartOut<'a>),
}

#[derive(Serialize)]
struct ToolStartOut<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    id: &'a str,
    name: &'a str,
    input: Empty,
}

#[derive(Serialize)]
struct Empty {}

#[derive(Serialize)]
#[serde(tag = "type")]
enum DeltaOut<'a> {
    #[serde(rename = "text_delta")]
    Text { text: &'a str },
    #[serde(rename = "thinking_delta")]
    Thinking { thinking: &'a str },
    #[serde(rename = "signature_delta")]
    Signature { signature: &'a str },
    #[serde(rename = "input_json_delta")]
    InputJson { partial_json: &'a str },
}

#[derive(Serialize)]
struct StopOut<'a> {
    stop_reason: &'static str,
    stop_sequence: Option<&'a str>,
}

fn write(out: &mut BytesMut, event: &EventOut<'_>) {
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(event.name().as_bytes());
    out.extend_from_slice(b"\ndata: ");
    // Plain structs: serialising cannot fail.
    out.extend_from_slice(&serde_json::to_vec(event).unwrap_or_default());
    out.extend_from_slice(b"\n\n");
}

impl EventEncoder {
    fn start(&mut self, id: &str, model: &str, out: &mut BytesMut) {
        self.started = true;
        // What Anthropic sends: the input counts known so far and a provisional output count of 1.
        let mut usage = UsageOut::of(&self.usage.unwrap_or_default());
        usage.output_tokens = 1;
        let message = MessageOut {
            id: message_id(id),
            kind: "message",
            role: "assistant",
            model,
            content: [],
            stop_reason: None,
            stop_sequence: None,
            usage,
        };
        write(out, &EventOut::MessageStart { message });
    }

    /// Events before `Start` break the contract; an Anthropic client still needs a `message_start` first.
    fn ensure_started(&mut self, out: &mut BytesMut) {
        if !self.started {
            self.start("", "", out);
        }
    }

    fn close(&mut self, out: &mut BytesMut) {
        if let Some((_, index)) = self.open.take() {
            write(out, &EventOut::ContentBlockStop { index });
        }
    }

    /// The block of `kind` is open, opening it (and closing another) if needed; returns its index.
    fn open(&mut self, kind: Open, block: BlockStartOut<'_>, out: &mut BytesMut) -> u32 {
        if let Some((open, index)) = self.open {
            if open == kind {
                return index;
            }
        }
        self.close(out);
        let index = self.next_block;
        self.next_block += 1;
        write(out, &EventOut::ContentBlockStart { index, content_block: block });
        self.open = Some((kind, index));
        index
    }

    fn delta(&mut self, index: u32, delta: DeltaOut<'_>, out: &mut BytesMut) {
        write(out, &EventOut::ContentBlockDelta { index, delta });
    }
}

impl StreamEncoder for EventEncoder {
    fn event(&mut self, event: &Event, out: &mut BytesMut) {
        if self.failed {
            return;
        }
        if !matches!(event, Event::Start { .. } | Event::Usage(_) | Event::Finish(_) | Event::Error(_)) {
            self.ensure_started(out);
        }
        match event {
            Event::Start { id, model } => {
                if !self.started {
                    self.start(id, model, out);
                }
            }
            Event::Text(text) if text.is_empty() => {}
            Event::Text(text) => {
                let index = self.open(Open::Text, BlockStartOut::Block(BlockOut::Text { text: "" }), out);
                self.delta(index, DeltaOut::Text { text }, out);
            }
            Event::Reasoning(text) if text.is_empty() => {}
            Event::Reasoning(text) => {
                let block = BlockStartOut::Block(BlockOut::Thinking { thinking: "", signature: "" });
                let index = self.open(Open::Thinking, block, out);
                self.delta(index, DeltaOut::Thinking { thinking: text }, out);
            }
            Event::ReasoningSignature(signature) => {
                let block = BlockStartOut::Block(BlockOut::Thinking { thinking: "", signature: "" });
                let index = self.open(Open::Thinking, block, out);
                self.delta(index, DeltaOut::Signature { signature }, out);
            }
            Event::ToolStart { index: tool, id, name } => {
                self.called_tools = true;
                // A new block even if a call with this index is open: a repeated start is a new call upstream.
                self.close(out);
                let block = BlockStartOut::ToolUse(ToolStartOut { kind: "tool_use", id, name, input: Empty {} });
                let index = self.open(Open::Tool(*tool), block, out);
                self.tool_blocks.insert(*tool, index);
            }
            Event::ToolArgs { fragment, .. } if fragment.is_empty() => {}
            Event::ToolArgs { index: tool, fragment } => {
                // Arguments of a call that never started have no block to go to.
                let Some(&index) = self.tool_blocks.get(tool) else { return };
                self.delta(index, DeltaOut::InputJson { partial_json: fragment }, out);
            }
            Event::Finish(finish) => self.finish = Some(finish.clone()),
            Event::Usage(usage) => self.usage = Some(*usage),
            Event::Error(error) => {
                let kind = anthropic_error_type(&error.kind);
                self.fail_with(kind, &error.message, out);
            }
        }
    }

    fn end(&mut self, out: &mut BytesMut) {
        if self.failed {
            return;
        }
        self.ensure_started(out);
        self.close(out);
        let (stop_reason, stop_sequence) = stop_reason_of(self.finish.as_ref(), self.called_tools);
        let usage = UsageOut::of(&self.usage.unwrap_or_default());
        write(out, &EventOut::MessageDelta { delta: StopOut { stop_reason, stop_sequence }, usage });
        write(out, &EventOut::MessageStop);
        // Whatever comes after the end is not part of this message.
        self.failed = true;
    }

    fn fail(&mut self, code: &str, message: &str, out: &mut BytesMut) {
        if self.failed {
            return;
        }
        let overloaded = matches!(code, "overloaded" | "overloaded_error" | "503" | "529" | "service_unavailable");
        self.fail_with(if overloaded { "overloaded_error" } else { "api_error" }, message, out);
    }
}

impl EventEncoder {
    /// Anthropic's mid-stream error: an `error` event, and nothing after it (no block stops, no `message_stop`).
    fn fail_with(&mut self, kind: &str, message: &str, out: &mut BytesMut) {
        self.failed = true;
        out.extend_from_slice(b"event: error\ndata: ");
        out.extend_from_slice(&typed_error_body(kind, message));
        out.extend_from_slice(b"\n\n");
    }
}

/// An upstream's in-stream error type as one of Anthropic's: Anthropic's own pass through, others become
/// `api_error` (or `overloaded_error` for OpenAI-style server overload).
fn anthropic_error_type(kind: &str) -> &str {
    match kind {
        "invalid_request_error"
        | "authentication_error"
        | "billing_error"
        | "permission_error"
        | "not_found_error"
        | "rate_limit_error"
        | "timeout_error"
        | "api_error"
        | "overloaded_error"
        | "request_too_large" => kind,
        "overloaded" | "server_overloaded" | "service_unavailable" => "overloaded_error",
        _ => "api_error",
    }
}

#[cfg(test)]
#[path = "stream_tests.rs"]
mod tests;
