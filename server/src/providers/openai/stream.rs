//! OpenAI's streamed chat (`chat.completion.chunk` events over SSE, ended by `data: [DONE]`), both ways:
//! [`ChunkDecoder`] reads an OpenAI-compatible upstream's stream into canonical events, and [`ChunkEncoder`]
//! renders canonical events from any upstream as exactly what OpenAI would have sent the caller.

use std::sync::atomic::{AtomicU64, Ordering};

use bytes::{BufMut, BytesMut};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::reply::{
    error_text, finish_reason, synthetic_call_id, text_value, usage_json, FinishReason, UsageJson, WireThinkingBlock,
    WireToolCall, WireUsage,
};
use crate::{
    framing::Frame,
    llm::{
        chat::{DecodeError, Event, StreamError},
        Usage,
    },
    providers::codec::{StreamDecoder, StreamEncoder},
};

#[derive(Debug, Deserialize)]
struct WireChunk {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    choices: Option<Vec<WireChoice>>,
    #[serde(default)]
    usage: Option<WireUsage>,
    #[serde(default)]
    error: Option<Value>,
    /// Groq sent stream usage here before it moved to the top level.
    #[serde(default)]
    x_groq: Option<GroqExtra>,
}

#[derive(Debug, Deserialize)]
struct GroqExtra {
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Debug, Deserialize)]
struct WireChoice {
    #[serde(default)]
    index: Option<u32>,
    #[serde(default)]
    delta: Option<WireDelta>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Debug, Deserialize)]
struct WireDelta {
    #[serde(default)]
    content: Option<Value>,
    #[serde(default)]
    reasoning_content: Option<Value>,
    #[serde(default)]
    reasoning: Option<Value>,
    #[serde(default)]
    thinking_blocks: Option<Vec<WireThinkingBlock>>,
    #[serde(default)]
    tool_calls: Option<Vec<WireToolCall>>,
}

/// One upstream stream's state: the reply id (for tool call ids the server did not send), the tool calls seen so
/// far, and whether the stream reached an end OpenAI's format knows.
#[derive(Debug, Default)]
pub struct ChunkDecoder {
    started: bool,
    id: String,
    /// The upstream's tool `index` of each call, in order of first appearance: the position is the canonical index.
    tools: Vec<u32>,
    /// `data: [DONE]` arrived.
    done: bool,
    /// A `finish_reason` arrived: some servers end there without `[DONE]`.
    finished: bool,
    /// The upstream reported an error in the stream: its end, even without `[DONE]`.
    failed: bool,
}

impl ChunkDecoder {
    fn start(&mut self, chunk: &WireChunk, out: &mut Vec<Event>) {
        if !self.started {
            self.started = true;
            self.id = chunk.id.clone().unwrap_or_default();
            out.push(Event::Start { id: self.id.clone(), model: chunk.model.clone().unwrap_or_default() });
        }
    }

    fn tool_deltas(&mut self, calls: Vec<WireToolCall>, out: &mut Vec<Event>) {
        for (position, call) in calls.into_iter().enumerate() {
            // Servers that omit `index` send each call whole, in array order.
            let upstream = call.index.unwrap_or(u32::try_from(self.tools.len() + position).unwrap_or(u32::MAX));
            let (name, arguments) = match call.function {
                Some(f) => (f.name, text_value(f.arguments).unwrap_or_default()),
                None => (None, String::new()),
            };
            let index = match self.tools.iter().position(|&t| t == upstream) {
                Some(i) => i,
                None => {
                    let i = self.tools.len();
                    self.tools.push(upstream);
                    let id = call.id.filter(|id| !id.is_empty()).unwrap_or_else(|| synthetic_call_id(&self.id, i));
                    let index = u32::try_from(i).unwrap_or(u32::MAX);
                    out.push(Event::ToolStart { index, id, name: name.unwrap_or_default() });
                    i
                }
            };
            if !arguments.is_empty() {
                out.push(Event::ToolArgs { index: u32::try_from(index).unwrap_or(u32::MAX), fragment: arguments });
            }
        }
    }
}

impl StreamDecoder for ChunkDecoder {
    fn frame(&mut self, frame: &Frame, out: &mut Vec<Event>) -> Result<(), DecodeError> {
        if self.done || self.failed {
            return Ok(());
        }
        let data = frame.data.trim_ascii();
        if data == b"[DONE]" {
            self.done = true;
            return Ok(());
        }
        let chunk: WireChunk = serde_json::from_slice(data)
            .map_err(|e| DecodeError::new(format!("stream chunk is not valid JSON: {e}")))?;
        if let Some(error) = chunk.error.as_ref().filter(|e| !e.is_null()) {
            let (kind, message) = error_text(error);
            self.failed = true;
            out.push(Event::Error(StreamError { kind: kind.unwrap_or_else(|| "server_error".into()), message }));
            return Ok(());
        }
        self.start(&chunk, out);
        for choice in chunk.choices.into_iter().flatten() {
            // `n` > 1 never crosses dialects (it is unmapped), so only the first choice is the answer.
            if choice.index.unwrap_or(0) != 0 {
                continue;
            }
            if let Some(delta) = choice.delta {
                // `reasoning_content` (DeepSeek, xAI, LiteLLM) or `reasoning` (OpenRouter, newer vLLM): the same text.
                let reasoning = text_value(delta.reasoning_content).or_else(|| text_value(delta.reasoning));
                if let Some(text) = reasoning.filter(|t| !t.is_empty()) {
                    out.push(Event::Reasoning(text));
                }
                // LiteLLM's thinking blocks repeat the reasoning text; only their signatures are new.
                for block in delta.thinking_blocks.into_iter().flatten() {
                    if let Some(signature) = block.signature.filter(|s| !s.is_empty()) {
                        out.push(Event::ReasoningSignature(signature));
                    }
                }
                if let Some(text) = text_value(delta.content).filter(|t| !t.is_empty()) {
                    out.push(Event::Text(text));
                }
                self.tool_deltas(delta.tool_calls.unwrap_or_default(), out);
            }
            if let Some(raw) = choice.finish_reason.as_deref() {
                self.finished = true;
                match finish_reason(raw) {
                    FinishReason::Finish(f) => out.push(Event::Finish(f)),
                    FinishReason::Failed => {
                        self.failed = true;
                        out.push(Event::Error(StreamError {
                            kind: "server_error".into(),
                            message: format!("upstream generation failed (finish_reason `{raw}`)"),
                        }));
                    }
                }
            }
        }
        if let Some(usage) = chunk.usage.or_else(|| chunk.x_groq.and_then(|g| g.usage)) {
            out.push(Event::Usage(Usage::from(usage)));
        }
        Ok(())
    }

    fn end(&mut self, _out: &mut Vec<Event>) -> Result<(), DecodeError> {
        if self.done || self.finished || self.failed {
            Ok(())
        } else {
            Err(DecodeError::new("the stream ended before a finish_reason or `data: [DONE]`"))
        }
    }
}

/// Ids of streams whose upstream never said its own.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Renders canonical events as OpenAI's chunks, for a caller speaking OpenAI to another dialect: the role chunk
/// first, one chunk per event, the finish chunk, the usage chunk (if the caller asked, `include_usage`), and
/// `data: [DONE]`. Usage is held until the end whenever it arrives, since OpenAI sends it last.
#[derive(Debug)]
pub struct ChunkEncoder {
    include_usage: bool,
    created: u64,
    /// `None` until the first chunk (the upstream's id, or a generated one).
    id: Option<String>,
    model: String,
    usage: Option<Usage>,
    /// Ended or failed: nothing more is written.
    closed: bool,
}

#[derive(Serialize)]
struct ChunkJson<'a, D: Serialize> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: &'a [ChoiceJson<D>],
    /// OpenAI sends `"usage": null` on every chunk but the last when usage was asked for, and no key otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<Option<UsageJson>>,
}

#[derive(Serialize)]
struct ChoiceJson<D: Serialize> {
    index: u32,
    delta: D,
    logprobs: (),
    finish_reason: Option<&'static str>,
}

#[derive(Serialize)]
struct RoleDelta {
    role: &'static str,
    content: &'static str,
}

#[derive(Serialize)]
struct ContentDelta<'a> {
    content: &'a str,
}

#[derive(Serialize)]
struct ReasoningDelta<'a> {
    reasoning_content: &'a str,
}

/// LiteLLM's streamed signature: a thinking block with no new text.
#[derive(Serialize)]
struct SignatureDelta<'a> {
    thinking_blocks: [super::reply::ThinkingBlockJson<'a>; 1],
}

#[derive(Serialize)]
struct ToolDelta<T: Serialize> {
    tool_calls: [T; 1],
}

#[derive(Serialize)]
struct ToolStartJson<'a> {
    index: u32,
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    function: super::reply::FunctionJson<'a>,
}

#[derive(Serialize)]
struct ToolArgsJson<'a> {
    index: u32,
    function: ArgsJson<'a>,
}

#[derive(Serialize)]
struct ArgsJson<'a> {
    arguments: &'a str,
}

#[derive(Serialize)]
struct EmptyDelta {}

#[derive(Serialize)]
struct ErrorJson<'a> {
    error: ErrorBody<'a>,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    param: (),
    code: Option<&'a str>,
}

fn put_data(out: &mut BytesMut, json: &impl Serialize) {
    out.put_slice(b"data: ");
    // Serialising these plain structs into a buffer cannot fail.
    let _ = serde_json::to_writer((&mut *out).writer(), json);
    out.put_slice(b"\n\n");
}

impl ChunkEncoder {
    pub fn new(include_usage: bool, created: u64) -> Self {
        Self { include_usage, created, id: None, model: String::new(), usage: None, closed: false }
    }

    /// The role chunk, once, before anything else; with a generated id if the upstream's Start never came.
    fn open(&mut self, out: &mut BytesMut) {
        if self.id.is_some() {
            return;
        }
        self.id = Some(format!("chatcmpl-tollgate-{}", NEXT_ID.fetch_add(1, Ordering::Relaxed)));
        self.chunk(RoleDelta { role: "assistant", content: "" }, None, out);
    }

    fn chunk<D: Serialize>(&self, delta: D, finish_reason: Option<&'static str>, out: &mut BytesMut) {
        let choices = [ChoiceJson { index: 0, delta, logprobs: (), finish_reason }];
        put_data(
            out,
            &ChunkJson {
                id: self.id.as_deref().unwrap_or_default(),
                object: "chat.completion.chunk",
                created: self.created,
                model: &self.model,
                choices: &choices,
                usage: self.include_usage.then_some(None),
            },
        );
    }

    fn error(&mut self, kind: &str, code: Option<&str>, message: &str, out: &mut BytesMut) {
        if self.closed {
            return;
        }
        self.closed = true;
        put_data(out, &ErrorJson { error: ErrorBody { message, kind, param: (), code } });
    }
}

impl StreamEncoder for ChunkEncoder {
    fn event(&mut self, event: &Event, out: &mut BytesMut) {
        if self.closed {
            return;
        }
        match event {
            Event::Start { id, model } if !id.is_empty() => {
                if self.id.is_none() {
                    self.id = Some(id.clone());
                    self.model.clone_from(model);
                    self.chunk(RoleDelta { role: "assistant", content: "" }, None, out);
                }
                return;
            }
            // An upstream that sent no id: keep its model, make up the id.
            Event::Start { model, .. } => {
                if self.id.is_none() {
                    self.model.clone_from(model);
                    self.open(out);
                }
                return;
            }
            Event::Usage(u) => {
                self.usage = Some(*u);
                return;
            }
            Event::Error(e) => {
                self.error(&e.kind, None, &e.message, out);
                return;
            }
            _ => {}
        }
        self.open(out);
        match event {
            Event::Text(t) if !t.is_empty() => self.chunk(ContentDelta { content: t }, None, out),
            Event::Reasoning(t) if !t.is_empty() => self.chunk(ReasoningDelta { reasoning_content: t }, None, out),
            Event::ReasoningSignature(s) => {
                let block = super::reply::ThinkingBlockJson { kind: "thinking", thinking: "", signature: s };
                self.chunk(SignatureDelta { thinking_blocks: [block] }, None, out);
            }
            Event::ToolStart { index, id, name } => {
                let function = super::reply::FunctionJson { name, arguments: "" };
                let call = ToolStartJson { index: *index, id, kind: "function", function };
                self.chunk(ToolDelta { tool_calls: [call] }, None, out);
            }
            Event::ToolArgs { index, fragment } if !fragment.is_empty() => {
                let call = ToolArgsJson { index: *index, function: ArgsJson { arguments: fragment } };
                self.chunk(ToolDelta { tool_calls: [call] }, None, out);
            }
            Event::Finish(f) => self.chunk(EmptyDelta {}, Some(f.openai()), out),
            _ => {}
        }
    }

    fn end(&mut self, out: &mut BytesMut) {
        if self.closed {
            return;
        }
        self.closed = true;
        if self.include_usage {
            if let Some(usage) = &self.usage {
                put_data(
                    out,
                    &ChunkJson::<EmptyDelta> {
                        id: self.id.as_deref().unwrap_or_default(),
                        object: "chat.completion.chunk",
                        created: self.created,
                        model: &self.model,
                        choices: &[],
                        usage: Some(Some(usage_json(usage))),
                    },
                );
            }
        }
        out.put_slice(b"data: [DONE]\n\n");
    }

    fn fail(&mut self, code: &str, message: &str, out: &mut BytesMut) {
        self.error("server_error", Some(code).filter(|c| !c.is_empty()), message, out);
    }
}
