//! ConverseStream events (providers.md 5.5) to canonical events. Frames come from the eventstream framer, named by
//! their `:event-type` (exceptions as `exception:<type>`, unmodelled errors as `error:<code>`).
//!
//! Order on the wire: `messageStart`, per content block (`contentBlockStart`? `contentBlockDelta`+
//! `contentBlockStop`), `messageStop` (the stop reason), `metadata` (usage). So a stream is complete only once both
//! `messageStop` and `metadata` arrived: usage comes last, and a stream cut before it must not look whole.
//!
//! Bedrock gives a stream no id: the decoder makes one (`chatcmpl-<uuid>`). Tool calls are numbered in order of
//! their `contentBlockStart`, never by `contentBlockIndex` (text blocks take indexes too). A tool whose input never
//! got a non-empty fragment gets `{}` when its block stops, so callers always see valid JSON arguments.

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::Value;

use super::reply::{finish, TokenUsage};
use crate::{
    framing::Frame,
    llm::chat::{DecodeError, Event, StreamError},
    providers::codec::StreamDecoder,
};

#[derive(Debug)]
pub(super) struct ConverseStreamDecoder {
    id: String,
    model: String,
    started: bool,
    /// `contentBlockIndex` of each open tool block → (tool index, whether any argument text was sent).
    tools: HashMap<u64, (u32, bool)>,
    next_tool: u32,
    stopped: bool,
    usage_seen: bool,
    /// An exception ended the stream: it was reported as [`Event::Error`], so its end is not also a cut.
    failed: bool,
}

impl ConverseStreamDecoder {
    pub(super) fn new(id: String, model: String) -> Self {
        Self {
            id,
            model,
            started: false,
            tools: HashMap::new(),
            next_tool: 0,
            stopped: false,
            usage_seen: false,
            failed: false,
        }
    }

    fn start(&mut self, out: &mut Vec<Event>) {
        if !self.started {
            self.started = true;
            out.push(Event::Start { id: self.id.clone(), model: self.model.clone() });
        }
    }

    /// `{}` for every open tool block that got no argument text, then forgets the blocks.
    fn close_tools(&mut self, only: Option<u64>, out: &mut Vec<Event>) {
        let mut closing: Vec<(u64, (u32, bool))> = match only {
            Some(block) => self.tools.remove(&block).map(|t| (block, t)).into_iter().collect(),
            None => self.tools.drain().collect(),
        };
        closing.sort_unstable_by_key(|(_, (index, _))| *index);
        for (_, (index, had_args)) in closing {
            if !had_args {
                out.push(Event::ToolArgs { index, fragment: "{}".into() });
            }
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BlockStart {
    content_block_index: u64,
    start: Value,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BlockDelta {
    content_block_index: u64,
    delta: Value,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BlockStop {
    content_block_index: u64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MessageStop {
    stop_reason: String,
}

#[derive(Deserialize)]
struct Metadata {
    usage: Option<TokenUsage>,
}

#[derive(Deserialize)]
struct ExceptionBody {
    #[serde(alias = "Message")]
    message: Option<String>,
}

fn parse<'a, T: Deserialize<'a>>(event: &str, data: &'a [u8]) -> Result<T, DecodeError> {
    serde_json::from_slice(data).map_err(|e| DecodeError::new(format!("Bedrock {event} event: {e}")))
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter().try_fold(v, |v, key| v.get(key))?.as_str()
}

impl StreamDecoder for ConverseStreamDecoder {
    fn frame(&mut self, frame: &Frame, out: &mut Vec<Event>) -> Result<(), DecodeError> {
        let event = frame.event.as_deref().unwrap_or_default();
        let data = &frame.data[..];
        if let Some(kind) = event.strip_prefix("exception:").or_else(|| event.strip_prefix("error:")) {
            let body: ExceptionBody = serde_json::from_slice(data).unwrap_or(ExceptionBody { message: None });
            let message = body.message.unwrap_or_else(|| String::from_utf8_lossy(data).chars().take(500).collect());
            self.start(out);
            self.failed = true;
            out.push(Event::Error(StreamError { kind: kind.to_owned(), message }));
            return Ok(());
        }
        match event {
            "messageStart" => {
                parse::<Value>(event, data)?;
                self.start(out);
            }
            "contentBlockStart" => {
                let start: BlockStart = parse(event, data)?;
                self.start(out);
                if let Some(tool) = start.start.get("toolUse") {
                    let (Some(id), Some(name)) = (str_at(tool, &["toolUseId"]), str_at(tool, &["name"])) else {
                        return Err(DecodeError::new("Bedrock toolUse start without toolUseId or name"));
                    };
                    let index = self.next_tool;
                    self.next_tool += 1;
                    self.tools.insert(start.content_block_index, (index, false));
                    out.push(Event::ToolStart { index, id: id.to_owned(), name: name.to_owned() });
                }
            }
            "contentBlockDelta" => {
                let delta: BlockDelta = parse(event, data)?;
                self.start(out);
                let d = &delta.delta;
                if let Some(text) = str_at(d, &["text"]) {
                    if !text.is_empty() {
                        out.push(Event::Text(text.to_owned()));
                    }
                } else if let Some(input) = d.get("toolUse").map(|t| t.get("input")) {
                    let Some(&mut (index, ref mut had_args)) = self.tools.get_mut(&delta.content_block_index) else {
                        return Err(DecodeError::new("Bedrock toolUse delta for a block that did not start a tool"));
                    };
                    let fragment = match input {
                        Some(Value::String(s)) => s.as_str(),
                        None | Some(Value::Null) => "",
                        Some(_) => return Err(DecodeError::new("Bedrock toolUse delta input is not a string")),
                    };
                    if !fragment.is_empty() {
                        *had_args = true;
                        out.push(Event::ToolArgs { index, fragment: fragment.to_owned() });
                    }
                } else if let Some(reasoning) = d.get("reasoningContent") {
                    if let Some(text) = str_at(reasoning, &["text"]).filter(|t| !t.is_empty()) {
                        out.push(Event::Reasoning(text.to_owned()));
                    }
                    if let Some(sig) = str_at(reasoning, &["signature"]).filter(|s| !s.is_empty()) {
                        out.push(Event::ReasoningSignature(sig.to_owned()));
                    }
                    // `redactedContent` has no canonical event.
                }
                // Newer delta kinds (citation, image, toolResult) have no canonical event.
            }
            "contentBlockStop" => {
                let stop: BlockStop = parse(event, data)?;
                self.close_tools(Some(stop.content_block_index), out);
            }
            "messageStop" => {
                let stop: MessageStop = parse(event, data)?;
                self.start(out);
                self.close_tools(None, out);
                self.stopped = true;
                out.push(Event::Finish(finish(&stop.stop_reason)));
            }
            "metadata" => {
                let meta: Metadata = parse(event, data)?;
                self.start(out);
                if let Some(usage) = meta.usage {
                    self.usage_seen = true;
                    out.push(Event::Usage(usage.canonical()));
                }
            }
            // Event types newer than this decoder carry nothing it could report.
            _ => {}
        }
        Ok(())
    }

    fn end(&mut self, _out: &mut Vec<Event>) -> Result<(), DecodeError> {
        match (self.failed, self.stopped, self.usage_seen) {
            (true, _, _) | (false, true, true) => Ok(()),
            (false, false, _) => Err(DecodeError::new("the Bedrock stream ended before messageStop")),
            (false, true, false) => Err(DecodeError::new("the Bedrock stream ended before its metadata (usage) event")),
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::{
        framing::{
            eventstream::testing::{event, exception},
            Framer, Framing,
        },
        llm::{chat::Finish, Usage},
        providers::codec::StreamReader,
    };

    const USAGE: &str = r#"{"usage":{"inputTokens":11,"outputTokens":7,"totalTokens":26,"cacheReadInputTokens":5,"cacheWriteInputTokens":3},"metrics":{"latencyMs":80}}"#;

    fn usage() -> Usage {
        Usage {
            prompt_tokens: 19,
            completion_tokens: 7,
            cache_read_tokens: 5,
            cache_write_tokens: 3,
            reasoning_tokens: 0,
        }
    }

    fn start() -> Event {
        Event::Start { id: "chatcmpl-test".into(), model: "anthropic.claude".into() }
    }

    /// What frames and decoder make of `chunks`: events, then `Err` text if the framing or the decoder failed or
    /// the stream was cut.
    fn run(chunks: &[&[u8]]) -> (Vec<Event>, Option<String>) {
        let decoder = ConverseStreamDecoder::new("chatcmpl-test".into(), "anthropic.claude".into());
        let (events, end) = StreamReader::decode(Framing::EventStream, Box::new(decoder), chunks.iter().copied());
        (events, end.err())
    }

    fn text_fixture() -> Vec<u8> {
        [
            event("messageStart", r#"{"p":"abcdefgh","role":"assistant"}"#),
            event("contentBlockDelta", r#"{"contentBlockIndex":0,"delta":{"text":"Hello"},"p":"abcdef"}"#),
            event("contentBlockDelta", r#"{"contentBlockIndex":0,"delta":{"text":" there"},"p":"ab"}"#),
            event("contentBlockStop", r#"{"contentBlockIndex":0,"p":"abcdefghijk"}"#),
            event("messageStop", r#"{"p":"abc","stopReason":"end_turn"}"#),
            event("metadata", USAGE),
        ]
        .concat()
    }

    fn tools_fixture() -> Vec<u8> {
        [
            event("messageStart", r#"{"role":"assistant"}"#),
            event("contentBlockDelta", r#"{"contentBlockIndex":0,"delta":{"reasoningContent":{"text":"Two tools."}}}"#),
            event("contentBlockDelta", r#"{"contentBlockIndex":0,"delta":{"reasoningContent":{"signature":"c2ln"}}}"#),
            event("contentBlockStop", r#"{"contentBlockIndex":0}"#),
            event("contentBlockDelta", r#"{"contentBlockIndex":1,"delta":{"text":"Checking."}}"#),
            event("contentBlockStop", r#"{"contentBlockIndex":1}"#),
            event(
                "contentBlockStart",
                r#"{"contentBlockIndex":2,"start":{"toolUse":{"toolUseId":"tooluse_a","name":"get_weather"}}}"#,
            ),
            event("contentBlockDelta", r#"{"contentBlockIndex":2,"delta":{"toolUse":{"input":"{\"city\":"}}}"#),
            event("contentBlockDelta", r#"{"contentBlockIndex":2,"delta":{"toolUse":{"input":"\"Paris\"}"}}}"#),
            event("contentBlockStop", r#"{"contentBlockIndex":2}"#),
            event(
                "contentBlockStart",
                r#"{"contentBlockIndex":3,"start":{"toolUse":{"toolUseId":"tooluse_b","name":"get_time"}}}"#,
            ),
            event("contentBlockDelta", r#"{"contentBlockIndex":3,"delta":{"toolUse":{"input":""}}}"#),
            event("contentBlockStop", r#"{"contentBlockIndex":3}"#),
            event("messageStop", r#"{"stopReason":"tool_use"}"#),
            event("metadata", USAGE),
        ]
        .concat()
    }

    #[test]
    fn text_stream() {
        let (events, end) = run(&[&text_fixture()]);
        assert_eq!(end, None);
        assert_eq!(
            events,
            vec![
                start(),
                Event::Text("Hello".into()),
                Event::Text(" there".into()),
                Event::Finish(Finish::Stop),
                Event::Usage(usage()),
            ]
        );
    }

    #[test]
    fn two_tools_one_without_arguments() {
        let (events, end) = run(&[&tools_fixture()]);
        assert_eq!(end, None);
        assert_eq!(
            events,
            vec![
                start(),
                Event::Reasoning("Two tools.".into()),
                Event::ReasoningSignature("c2ln".into()),
                Event::Text("Checking.".into()),
                Event::ToolStart { index: 0, id: "tooluse_a".into(), name: "get_weather".into() },
                Event::ToolArgs { index: 0, fragment: "{\"city\":".into() },
                Event::ToolArgs { index: 0, fragment: "\"Paris\"}".into() },
                Event::ToolStart { index: 1, id: "tooluse_b".into(), name: "get_time".into() },
                Event::ToolArgs { index: 1, fragment: "{}".into() },
                Event::Finish(Finish::ToolCalls),
                Event::Usage(usage()),
            ]
        );
    }

    #[test]
    fn every_split_gives_the_same_events() {
        for fixture in [text_fixture(), tools_fixture()] {
            let whole = run(&[&fixture]);
            for cut in 0..=fixture.len() {
                assert_eq!(run(&[&fixture[..cut], &fixture[cut..]]), whole, "cut at {cut}");
            }
            for seed in 1..30u64 {
                let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
                let mut cuts: Vec<usize> = (0..4)
                    .map(|_| {
                        state ^= state << 13;
                        state ^= state >> 7;
                        state ^= state << 17;
                        (state % (fixture.len() as u64 + 1)) as usize
                    })
                    .collect();
                cuts.sort_unstable();
                let mut chunks = Vec::new();
                let mut from = 0;
                for c in cuts {
                    chunks.push(&fixture[from..c]);
                    from = c;
                }
                chunks.push(&fixture[from..]);
                assert_eq!(run(&chunks), whole, "seed {seed}");
            }
        }
    }

    #[test]
    fn exceptions_mid_stream_are_error_events() {
        for kind in [
            "throttlingException",
            "modelStreamErrorException",
            "validationException",
            "internalServerException",
            "serviceUnavailableException",
        ] {
            let bytes = [
                event("messageStart", r#"{"role":"assistant"}"#),
                event("contentBlockDelta", r#"{"contentBlockIndex":0,"delta":{"text":"Hel"}}"#),
                exception(kind, r#"{"message":"Too many tokens, please wait before trying again."}"#),
            ]
            .concat();
            let (events, end) = run(&[&bytes]);
            assert_eq!(end, None, "{kind}: the exception is the stream's reported end");
            assert_eq!(
                events,
                vec![
                    start(),
                    Event::Text("Hel".into()),
                    Event::Error(StreamError {
                        kind: kind.into(),
                        message: "Too many tokens, please wait before trying again.".into()
                    }),
                ],
                "{kind}"
            );
        }
    }

    #[test]
    fn cut_and_corrupt_streams_are_errors() {
        let fixture = text_fixture();
        let stop_at = fixture.len() - event("metadata", USAGE).len();
        let cut_message = format!(
            "the stream ended in the middle of an eventstream message ({} bytes of it arrived)",
            event("metadata", USAGE).len() - 3
        );
        let cases: Vec<(&[u8], &str)> = vec![
            (&fixture[..stop_at], "the Bedrock stream ended before its metadata (usage) event"),
            (
                &fixture[..stop_at - event("messageStop", r#"{"p":"abc","stopReason":"end_turn"}"#).len()],
                "the Bedrock stream ended before messageStop",
            ),
            (&fixture[..fixture.len() - 3], &cut_message),
            (b"", "the Bedrock stream ended before messageStop"),
        ];
        for (bytes, want) in cases {
            assert_eq!(run(&[bytes]).1.as_deref(), Some(want), "{} bytes", bytes.len());
        }
        let mut corrupt = fixture.clone();
        corrupt[stop_at - 2] ^= 0xFF;
        assert_eq!(run(&[&corrupt]).1.as_deref(), Some("eventstream message CRC mismatch"));
    }

    #[test]
    fn malformed_payloads_are_decode_errors() {
        let cases = [
            event("contentBlockDelta", r#"{"contentBlockIndex":0,"delta":"#),
            event("messageStop", r#"{"reason":"end_turn"}"#),
            event("metadata", r#"{"usage":{"inputTokens":"many"}}"#),
            event("contentBlockDelta", r#"{"contentBlockIndex":9,"delta":{"toolUse":{"input":"{}"}}}"#),
            event("contentBlockStart", r#"{"contentBlockIndex":1,"start":{"toolUse":{"name":"f"}}}"#),
        ];
        for bytes in cases {
            let mut d = ConverseStreamDecoder::new("i".into(), "m".into());
            let mut framer = Framer::new(Framing::EventStream);
            framer.feed(&bytes);
            let frame = framer.next_frame().ok().flatten().unwrap_or(Frame { event: None, data: Bytes::new() });
            assert!(d.frame(&frame, &mut Vec::new()).is_err(), "{frame:?}");
        }
    }

    #[test]
    fn unknown_events_and_deltas_are_ignored() {
        let bytes = [
            event("messageStart", r#"{"role":"assistant"}"#),
            event("somethingNew", r#"{"x":1}"#),
            event("contentBlockDelta", r#"{"contentBlockIndex":0,"delta":{"citation":{"title":"t"}}}"#),
            event(
                "contentBlockDelta",
                r#"{"contentBlockIndex":0,"delta":{"reasoningContent":{"redactedContent":"cmVk"}}}"#,
            ),
            event("messageStop", r#"{"stopReason":"max_tokens"}"#),
            event("metadata", r#"{"usage":{"inputTokens":3,"outputTokens":4,"totalTokens":7}}"#),
        ]
        .concat();
        let (events, end) = run(&[&bytes]);
        assert_eq!(end, None);
        let usage = Usage { prompt_tokens: 3, completion_tokens: 4, ..Usage::default() };
        assert_eq!(events, vec![start(), Event::Finish(Finish::Length), Event::Usage(usage)]);
    }
}
