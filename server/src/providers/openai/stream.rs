//! OpenAI's streamed chat (`chat.completion.chunk` events over SSE, ended by `data: [DONE]`), both ways:
//! [`ChunkDecoder`] reads an OpenAI-compatible upstream's stream into canonical events, and [`ChunkEncoder`]
//! renders canonical events from any upstream as exactly what OpenAI would have sent the caller.

use std::{
    collections::HashMap,
    sync::atomic::{AtomicU64, Ordering},
};

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
    /// A `text_completion` chunk's text (OpenAI's legacy completions), where a chat chunk has `delta`.
    #[serde(default)]
    text: Option<Value>,
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
    /// Canonical index of each upstream tool `index`: calls are numbered in order of first appearance.
    tools: HashMap<u32, u32>,
    /// Tool calls so far, counting those sent whole without an `index` (Mistral, Ollama), which no later fragment
    /// can continue.
    tool_count: u32,
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
        for call in calls {
            let (name, arguments) = match call.function {
                Some(f) => (f.name, text_value(f.arguments).unwrap_or_default()),
                None => (None, String::new()),
            };
            let known = call.index.and_then(|upstream| self.tools.get(&upstream).copied());
            let index = match known {
                Some(i) => i,
                None => {
                    let i = self.tool_count;
                    self.tool_count = self.tool_count.saturating_add(1);
                    if let Some(upstream) = call.index {
                        self.tools.insert(upstream, i);
                    }
                    let id = call.id.filter(|id| !id.is_empty()).unwrap_or_else(|| synthetic_call_id(&self.id, i));
                    out.push(Event::ToolStart { index: i, id, name: name.unwrap_or_default() });
                    i
                }
            };
            if !arguments.is_empty() {
                out.push(Event::ToolArgs { index, fragment: arguments });
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
            if let Some(text) = text_value(choice.text).filter(|t| !t.is_empty()) {
                out.push(Event::Text(text));
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
pub(super) static NEXT_ID: AtomicU64 = AtomicU64::new(1);

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
pub(super) struct ErrorJson<'a> {
    pub(super) error: ErrorBody<'a>,
}

#[derive(Serialize)]
pub(super) struct ErrorBody<'a> {
    pub(super) message: &'a str,
    #[serde(rename = "type")]
    pub(super) kind: &'a str,
    pub(super) param: (),
    pub(super) code: Option<&'a str>,
}

pub(super) fn put_data(out: &mut BytesMut, json: &impl Serialize) {
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
            if let Some(usage) = self.usage {
                self.open(out);
                put_data(
                    out,
                    &ChunkJson::<EmptyDelta> {
                        id: self.id.as_deref().unwrap_or_default(),
                        object: "chat.completion.chunk",
                        created: self.created,
                        model: &self.model,
                        choices: &[],
                        usage: Some(Some(usage_json(&usage))),
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

#[cfg(test)]
mod tests {
    use rand::{rngs::StdRng, Rng, SeedableRng};

    use super::*;
    use crate::{framing::Framing, llm::chat::Finish, providers::codec::StreamReader};

    /// Feeds `pieces` through the SSE framer and a fresh decoder: the events, and how the stream ended.
    fn decode(pieces: &[&[u8]]) -> (Vec<Event>, Result<(), String>) {
        StreamReader::decode(Framing::Sse, Box::new(ChunkDecoder::default()), pieces.iter().copied())
    }

    fn usage(prompt: u64, completion: u64, read: u64, write: u64, reasoning: u64) -> Usage {
        Usage {
            prompt_tokens: prompt,
            completion_tokens: completion,
            cache_read_tokens: read,
            cache_write_tokens: write,
            reasoning_tokens: reasoning,
        }
    }

    fn start(id: &str, model: &str) -> Event {
        Event::Start { id: id.into(), model: model.into() }
    }

    fn text(t: &str) -> Event {
        Event::Text(t.into())
    }

    fn tool_start(index: u32, id: &str, name: &str) -> Event {
        Event::ToolStart { index, id: id.into(), name: name.into() }
    }

    fn tool_args(index: u32, fragment: &str) -> Event {
        Event::ToolArgs { index, fragment: fragment.into() }
    }

    /// Recorded shape of an OpenAI text stream with `include_usage` (CRLF keep-alive comment added).
    const TEXT: &str = concat!(
        "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"system_fingerprint\":\"fp\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\",\"refusal\":null},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n\n",
        ": keep-alive\r\n\r\n",
        "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null,\"obfuscation\":\"xx\"}\n\n",
        "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo \\u00e9\\n\"},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n\n",
        "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{},\"logprobs\":null,\"finish_reason\":\"stop\"}],\"usage\":null}\n\n",
        "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":2,\"total_tokens\":11,\"prompt_tokens_details\":{\"cached_tokens\":4,\"audio_tokens\":0},\"completion_tokens_details\":{\"reasoning_tokens\":0}}}\n\n",
        "data: [DONE]\n\n",
    );

    /// Two parallel tool calls (the second without arguments), with reasoning first (DeepSeek's field).
    const TOOLS: &str = concat!(
        "data: {\"id\":\"chatcmpl-2\",\"object\":\"chat.completion.chunk\",\"created\":2,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":null,\"reasoning_content\":\"Need \"},\"finish_reason\":null}]}\n\n",
        "data: {\"id\":\"chatcmpl-2\",\"object\":\"chat.completion.chunk\",\"created\":2,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"reasoning_content\":\"tools.\"},\"finish_reason\":null}]}\n\n",
        "data: {\"id\":\"chatcmpl-2\",\"object\":\"chat.completion.chunk\",\"created\":2,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"call_1\",\"type\":\"function\",\"function\":{\"name\":\"weather\",\"arguments\":\"\"}}]},\"finish_reason\":null}]}\n\n",
        "data: {\"id\":\"chatcmpl-2\",\"object\":\"chat.completion.chunk\",\"created\":2,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\"city\\\":\"}}]},\"finish_reason\":null}]}\n\n",
        "data: {\"id\":\"chatcmpl-2\",\"object\":\"chat.completion.chunk\",\"created\":2,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"\\\"Paris\\\"}\"}}]},\"finish_reason\":null}]}\n\n",
        "data: {\"id\":\"chatcmpl-2\",\"object\":\"chat.completion.chunk\",\"created\":2,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":1,\"id\":\"call_2\",\"type\":\"function\",\"function\":{\"name\":\"time\",\"arguments\":\"\"}}]},\"finish_reason\":null}]}\n\n",
        "data: {\"id\":\"chatcmpl-2\",\"object\":\"chat.completion.chunk\",\"created\":2,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\n",
        "data: {\"id\":\"chatcmpl-2\",\"object\":\"chat.completion.chunk\",\"created\":2,\"model\":\"m\",\"choices\":[],\"usage\":{\"prompt_tokens\":100,\"completion_tokens\":30,\"total_tokens\":130,\"completion_tokens_details\":{\"reasoning_tokens\":12}}}\n\n",
        "data: [DONE]\n\n",
    );

    /// An error after the 200: the shape OpenAI documents, which ends the stream.
    const ERROR: &str = concat!(
        "data: {\"id\":\"chatcmpl-3\",\"object\":\"chat.completion.chunk\",\"created\":3,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"},\"finish_reason\":null}]}\n\n",
        "data: {\"error\":{\"message\":\"The server had an error\",\"type\":\"server_error\",\"param\":null,\"code\":null}}\n\n",
    );

    fn text_events() -> Vec<Event> {
        vec![
            start("chatcmpl-1", "gpt-4o"),
            text("Hel"),
            text("lo é\n"),
            Event::Finish(Finish::Stop),
            Event::Usage(usage(9, 2, 4, 0, 0)),
        ]
    }

    fn tool_events() -> Vec<Event> {
        vec![
            start("chatcmpl-2", "m"),
            Event::Reasoning("Need ".into()),
            Event::Reasoning("tools.".into()),
            tool_start(0, "call_1", "weather"),
            tool_args(0, "{\"city\":"),
            tool_args(0, "\"Paris\"}"),
            tool_start(1, "call_2", "time"),
            Event::Finish(Finish::ToolCalls),
            Event::Usage(usage(100, 30, 0, 0, 12)),
        ]
    }

    fn error_events() -> Vec<Event> {
        vec![
            start("chatcmpl-3", "m"),
            text("Hi"),
            Event::Error(StreamError { kind: "server_error".into(), message: "The server had an error".into() }),
        ]
    }

    #[test]
    fn decodes_recorded_streams() {
        let cases: Vec<(&str, Vec<Event>)> =
            vec![(TEXT, text_events()), (TOOLS, tool_events()), (ERROR, error_events())];
        for (fixture, want) in cases {
            assert_eq!(decode(&[fixture.as_bytes()]), (want, Ok(())), "{fixture}");
        }
    }

    #[test]
    fn every_split_gives_the_same_events() {
        let mut rng = StdRng::seed_from_u64(13);
        for fixture in [TEXT, TOOLS, ERROR] {
            let bytes = fixture.as_bytes();
            let whole = decode(&[bytes]);
            for at in 0..=bytes.len() {
                let (a, b) = bytes.split_at(at);
                assert_eq!(decode(&[a, b]), whole, "split at {at}");
            }
            for _ in 0..50 {
                let mut cuts: Vec<usize> = (0..rng.gen_range(2..12)).map(|_| rng.gen_range(0..=bytes.len())).collect();
                cuts.sort_unstable();
                let mut pieces = Vec::new();
                let mut from = 0;
                for cut in cuts {
                    pieces.push(&bytes[from..cut]);
                    from = cut;
                }
                pieces.push(&bytes[from..]);
                assert_eq!(decode(&pieces), whole, "pieces {:?}", pieces.iter().map(|p| p.len()).collect::<Vec<_>>());
            }
        }
    }

    #[test]
    fn cut_streams_never_look_complete() {
        let done = TEXT.find("data: [DONE]").unwrap_or(0);
        let finish = TEXT.find("data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{},").unwrap_or(0);
        let cases: Vec<(&str, bool)> = vec![
            // Before the finish chunk: cut.
            (&TEXT[..finish], false),
            // In the middle of a chunk's JSON: cut.
            (&TEXT[..finish + 40], false),
            // After the finish but before [DONE]: some servers end here.
            (&TEXT[..done], true),
            (TEXT, true),
            ("", false),
            // Only [DONE], no `\n\n` after it.
            ("data: [DONE]", true),
        ];
        for (bytes, complete) in cases {
            let (_, end) = decode(&[bytes.as_bytes()]);
            assert_eq!(end.is_ok(), complete, "{bytes:?}: {end:?}");
        }
        assert!(
            decode(&[b"data: {\"id\":\"x\",\"choices\":[{\"delta\":{\"content\":1,}}]}\n\n"]).1.is_err(),
            "bad JSON"
        );
    }

    #[test]
    fn decodes_what_compatible_servers_send() {
        let chunk = |body: &str| format!("data: {body}\n\n");
        let cases: Vec<(Vec<String>, Vec<Event>)> = vec![
            // Upstream tool indexes that do not start at 0, a whole call in one delta without index or id
            // (Mistral, Ollama), arguments as an object.
            (
                vec![
                    chunk(
                        r#"{"id":"r","model":"m","choices":[{"index":0,"delta":{"tool_calls":[{"index":3,"id":"a","function":{"name":"f","arguments":"{}"}}]}}]}"#,
                    ),
                    chunk(
                        r#"{"id":"r","model":"m","choices":[{"index":0,"delta":{"tool_calls":[{"index":7,"id":"b","function":{"name":"g"}}]}}]}"#,
                    ),
                    chunk(
                        r#"{"id":"r","model":"m","choices":[{"index":0,"delta":{"tool_calls":[{"index":3,"function":{"arguments":""}},{"index":7,"function":{"arguments":"[1]"}}]}}]}"#,
                    ),
                    chunk(
                        r#"{"id":"r","model":"m","choices":[{"index":0,"delta":{"tool_calls":[{"function":{"name":"h","arguments":{"k":1}}}]},"finish_reason":"tool_calls"}]}"#,
                    ),
                ],
                vec![
                    start("r", "m"),
                    tool_start(0, "a", "f"),
                    tool_args(0, "{}"),
                    tool_start(1, "b", "g"),
                    tool_args(1, "[1]"),
                    tool_start(2, "call_r_2", "h"),
                    tool_args(2, r#"{"k":1}"#),
                    Event::Finish(Finish::ToolCalls),
                ],
            ),
            // OpenRouter's `reasoning`, LiteLLM's signature block, usage on a content chunk (Mistral) and in
            // `x_groq`, choices other than the first ignored, finish words of other servers.
            (
                vec![
                    chunk(
                        r#"{"id":"o","model":"m","choices":[{"index":0,"delta":{"reasoning":"r"}},{"index":1,"delta":{"content":"other"}}]}"#,
                    ),
                    chunk(
                        r#"{"id":"o","model":"m","choices":[{"index":0,"delta":{"reasoning_content":"","thinking_blocks":[{"type":"thinking","thinking":"","signature":"sig"}]}}]}"#,
                    ),
                    chunk(
                        r#"{"id":"o","model":"m","choices":[{"index":0,"delta":{"content":"a"},"finish_reason":"eos"}],"usage":{"prompt_tokens":3,"completion_tokens":1}}"#,
                    ),
                    chunk(
                        r#"{"id":"o","model":"m","choices":[],"x_groq":{"id":"req","usage":{"prompt_tokens":3,"completion_tokens":2}}}"#,
                    ),
                ],
                vec![
                    start("o", "m"),
                    Event::Reasoning("r".into()),
                    Event::ReasoningSignature("sig".into()),
                    text("a"),
                    Event::Finish(Finish::Stop),
                    Event::Usage(usage(3, 1, 0, 0, 0)),
                    Event::Usage(usage(3, 2, 0, 0, 0)),
                ],
            ),
            // OpenRouter's mid-stream error: an error object next to `finish_reason: "error"`.
            (
                vec![
                    chunk(r#"{"id":"e","model":"m","choices":[{"index":0,"delta":{"content":"x"}}]}"#),
                    chunk(
                        r#"{"id":"e","model":"m","error":{"code":502,"message":"Provider disconnected"},"choices":[{"index":0,"delta":{},"finish_reason":"error"}]}"#,
                    ),
                ],
                vec![
                    start("e", "m"),
                    text("x"),
                    Event::Error(StreamError { kind: "server_error".into(), message: "Provider disconnected".into() }),
                ],
            ),
            (
                vec![chunk(
                    r#"{"id":"d","model":"m","choices":[{"index":0,"delta":{},"finish_reason":"insufficient_system_resource"}]}"#,
                )],
                vec![
                    start("d", "m"),
                    Event::Error(StreamError {
                        kind: "server_error".into(),
                        message: "upstream generation failed (finish_reason `insufficient_system_resource`)".into(),
                    }),
                ],
            ),
        ];
        for (chunks, want) in cases {
            let bytes = chunks.concat();
            assert_eq!(decode(&[bytes.as_bytes()]), (want, Ok(())), "{bytes}");
        }
    }

    fn encode(events: &[Event], include_usage: bool) -> String {
        let mut encoder = ChunkEncoder::new(include_usage, 1700000000);
        let mut out = BytesMut::new();
        for e in events {
            encoder.event(e, &mut out);
        }
        encoder.end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    }

    #[test]
    fn encodes_exactly_what_openai_sends() {
        let events = [
            start("msg_1", "claude"),
            Event::Usage(usage(10, 1, 0, 0, 0)),
            text("Hi"),
            tool_start(0, "toolu_1", "f"),
            tool_args(0, "{\"a\":1}"),
            Event::Finish(Finish::ToolCalls),
            Event::Usage(usage(10, 5, 2, 3, 0)),
        ];
        let head = r#"{"id":"msg_1","object":"chat.completion.chunk","created":1700000000,"model":"claude","choices":[{"index":0,"delta":"#;
        let want = [
            format!("data: {head}{{\"role\":\"assistant\",\"content\":\"\"}},\"logprobs\":null,\"finish_reason\":null}}],\"usage\":null}}\n\n"),
            format!("data: {head}{{\"content\":\"Hi\"}},\"logprobs\":null,\"finish_reason\":null}}],\"usage\":null}}\n\n"),
            format!("data: {head}{{\"tool_calls\":[{{\"index\":0,\"id\":\"toolu_1\",\"type\":\"function\",\"function\":{{\"name\":\"f\",\"arguments\":\"\"}}}}]}},\"logprobs\":null,\"finish_reason\":null}}],\"usage\":null}}\n\n"),
            format!("data: {head}{{\"tool_calls\":[{{\"index\":0,\"function\":{{\"arguments\":\"{{\\\"a\\\":1}}\"}}}}]}},\"logprobs\":null,\"finish_reason\":null}}],\"usage\":null}}\n\n"),
            format!("data: {head}{{}},\"logprobs\":null,\"finish_reason\":\"tool_calls\"}}],\"usage\":null}}\n\n"),
            "data: {\"id\":\"msg_1\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"claude\",\"choices\":[],\"usage\":{\"prompt_tokens\":10,\"completion_tokens\":5,\"total_tokens\":15,\"prompt_tokens_details\":{\"cached_tokens\":2},\"completion_tokens_details\":{\"reasoning_tokens\":0},\"cache_creation_input_tokens\":3}}\n\n".to_owned(),
            "data: [DONE]\n\n".to_owned(),
        ];
        assert_eq!(encode(&events, true), want.concat());
        // Without `include_usage`: no usage key on any chunk, no usage chunk.
        let want = concat!(
            "data: {\"id\":\"msg_1\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"claude\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"logprobs\":null,\"finish_reason\":null}]}\n\n",
            "data: {\"id\":\"msg_1\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"claude\",\"choices\":[{\"index\":0,\"delta\":{\"reasoning_content\":\"r\"},\"logprobs\":null,\"finish_reason\":null}]}\n\n",
            "data: {\"id\":\"msg_1\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"claude\",\"choices\":[{\"index\":0,\"delta\":{\"thinking_blocks\":[{\"type\":\"thinking\",\"thinking\":\"\",\"signature\":\"s\"}]},\"logprobs\":null,\"finish_reason\":null}]}\n\n",
            "data: {\"id\":\"msg_1\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"claude\",\"choices\":[{\"index\":0,\"delta\":{},\"logprobs\":null,\"finish_reason\":\"stop\"}]}\n\n",
            "data: [DONE]\n\n",
        );
        let events = [
            start("msg_1", "claude"),
            Event::Reasoning("r".into()),
            Event::ReasoningSignature("s".into()),
            text(""),
            Event::Finish(Finish::StopSequence("END".into())),
            Event::Usage(usage(1, 1, 0, 0, 0)),
        ];
        assert_eq!(encode(&events, false), want);
    }

    #[test]
    fn failures_end_the_stream_in_openai_words() {
        let mut encoder = ChunkEncoder::new(true, 5);
        let mut out = BytesMut::new();
        encoder.event(&start("msg_2", "claude"), &mut out);
        out.clear();
        encoder.fail("upstream_cut", "the upstream stream ended early", &mut out);
        encoder.event(&text("late"), &mut out);
        encoder.end(&mut out);
        assert_eq!(
            String::from_utf8_lossy(&out),
            "data: {\"error\":{\"message\":\"the upstream stream ended early\",\"type\":\"server_error\",\"param\":null,\"code\":\"upstream_cut\"}}\n\n",
            "nothing after the error, not even [DONE]"
        );
        let mut encoder = ChunkEncoder::new(false, 5);
        let mut out = BytesMut::new();
        let overloaded = StreamError { kind: "overloaded_error".into(), message: "Overloaded".into() };
        encoder.event(&Event::Error(overloaded), &mut out);
        encoder.end(&mut out);
        assert_eq!(
            String::from_utf8_lossy(&out),
            "data: {\"error\":{\"message\":\"Overloaded\",\"type\":\"overloaded_error\",\"param\":null,\"code\":null}}\n\n"
        );
    }

    #[test]
    fn streams_without_a_start_still_get_valid_chunks() {
        let out = encode(&[text("a"), Event::Finish(Finish::Stop)], false);
        let chunks: Vec<Value> = out
            .split("\n\n")
            .filter_map(|e| e.strip_prefix("data: "))
            .filter(|d| *d != "[DONE]")
            .map(|d| serde_json::from_str(d).unwrap_or_default())
            .collect();
        assert_eq!(chunks.len(), 3);
        let id = chunks[0]["id"].as_str().unwrap_or_default();
        assert!(id.starts_with("chatcmpl-tollgate-"), "{id}");
        assert!(chunks.iter().all(|c| c["id"] == id && c["object"] == "chat.completion.chunk"));
        assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
        assert!(out.ends_with("data: [DONE]\n\n"));
        let usage_only = encode(&[Event::Usage(usage(1, 0, 0, 0, 0))], true);
        let ids: Vec<&str> =
            usage_only.match_indices("\"id\":\"chatcmpl-tollgate-").map(|(at, _)| &usage_only[at..at + 25]).collect();
        assert_eq!(ids.len(), 2, "role chunk and usage chunk: {usage_only}");
        assert_eq!(ids[0], ids[1]);
        let other = encode(&[start("", "m"), text("a")], false);
        assert!(other.contains("\"id\":\"chatcmpl-tollgate-") && !other.contains(&format!("\"id\":\"{id}\"")));
    }

    #[test]
    fn encoded_streams_decode_to_the_same_events() {
        let sequences: Vec<Vec<Event>> = vec![
            text_events(),
            tool_events(),
            vec![
                start("msg_9", "claude"),
                Event::Reasoning("thinking".into()),
                Event::ReasoningSignature("sig".into()),
                text("Answer: "),
                text("42"),
                tool_start(0, "toolu_a", "lookup"),
                tool_args(0, "{\"q\":"),
                tool_args(0, "\"x\"}"),
                tool_start(1, "toolu_b", "now"),
                Event::Finish(Finish::ToolCalls),
                Event::Usage(usage(500, 80, 100, 50, 20)),
            ],
            vec![start("c", "m"), text("cut short"), Event::Finish(Finish::Length)],
            vec![start("f", "m"), Event::Finish(Finish::ContentFilter), Event::Usage(usage(7, 0, 0, 0, 0))],
        ];
        for events in sequences {
            let bytes = encode(&events, true);
            let (decoded, end) = decode(&[bytes.as_bytes()]);
            assert_eq!(end, Ok(()));
            assert_eq!(decoded, events, "{bytes}");
        }
    }
}
