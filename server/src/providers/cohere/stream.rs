//! v2 chat streams (providers.md 6.4) as canonical events.
//!
//! Each SSE event carries its type both as `event:` and as the data's `type`; the data wins. A stream is
//! `message-start`, then content, plan and tool-call events, then `message-end` with the finish reason and the
//! usage, then EOF (a trailing `data: [DONE]` is tolerated). A stream is complete only once `message-end` has
//! arrived; anything else that ends is cut. Tool calls are numbered from 0 in the order they start, whatever v2's
//! `index` says, and a call that streamed no arguments gets `{}`.

use serde::Deserialize;
use serde_json::Value;

use super::reply::{ending, Ending, WireUsage};
use crate::{
    framing::Frame,
    llm::chat::{DecodeError, Event, StreamError},
    providers::codec::StreamDecoder,
};

/// The error kind of a generation v2 ended with `finish_reason: ERROR` (v2 names no type of its own).
const GENERATION_ERROR: &str = "server_error";

pub(super) struct CohereStream {
    model: String,
    started: bool,
    /// `message-end` arrived: the stream is complete.
    ended: bool,
    /// Tool calls in the order they started; the position is the canonical index.
    tools: Vec<ToolState>,
}

struct ToolState {
    /// v2's own `index` for the call, to find it again in its delta and end events.
    wire_index: Option<u64>,
    /// Bytes of arguments streamed so far.
    args_len: usize,
    closed: bool,
}

/// The fields of any v2 stream event this decoder reads; the rest are ignored.
#[derive(Deserialize)]
struct WireEvent {
    #[serde(rename = "type")]
    kind: Option<String>,
    id: Option<String>,
    index: Option<u64>,
    delta: Option<WireDelta>,
    /// Not a v2 event field: an error object some proxies put in a stream (`{"message": ...}`).
    message: Option<Value>,
}

#[derive(Deserialize)]
struct WireDelta {
    message: Option<DeltaMessage>,
    finish_reason: Option<String>,
    error: Option<String>,
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct DeltaMessage {
    /// An object in `content-start`/`content-delta`; an array (empty) in `message-start`, which is not read.
    content: Option<Value>,
    tool_plan: Option<String>,
    /// One object in `tool-call-start`/`tool-call-delta` (not an array, unlike the whole reply).
    tool_calls: Option<Value>,
}

impl CohereStream {
    pub(super) fn new(model: &str) -> Self {
        Self { model: model.to_owned(), started: false, ended: false, tools: Vec::new() }
    }

    fn start(&mut self, id: Option<String>, out: &mut Vec<Event>) {
        if !self.started {
            self.started = true;
            out.push(Event::Start { id: id.unwrap_or_default(), model: self.model.clone() });
        }
    }

    /// The canonical index of the call v2 numbers `wire_index` (the latest call when v2 gives no index).
    fn tool(&self, wire_index: Option<u64>) -> Result<usize, DecodeError> {
        let found = match wire_index {
            Some(i) => self.tools.iter().rposition(|t| t.wire_index == Some(i)),
            None => self.tools.len().checked_sub(1),
        };
        found.ok_or_else(|| {
            DecodeError::new(format!("Cohere tool-call event for a call that never started ({wire_index:?})"))
        })
    }

    /// Ends a call; one that streamed no arguments gets `{}` so every call's arguments are JSON.
    fn close_tool(&mut self, at: usize, out: &mut Vec<Event>) {
        let Some(t) = self.tools.get_mut(at) else { return };
        if t.closed {
            return;
        }
        t.closed = true;
        if t.args_len == 0 {
            out.push(Event::ToolArgs { index: index_of(at), fragment: "{}".to_owned() });
        }
    }

    fn tool_start(&mut self, ev: WireEvent, out: &mut Vec<Event>) -> Result<(), DecodeError> {
        let call = tool_calls(&ev).ok_or_else(|| DecodeError::new("Cohere tool-call-start without a tool call"))?;
        let name = call
            .pointer("/function/name")
            .and_then(Value::as_str)
            .ok_or_else(|| DecodeError::new("Cohere tool-call-start without a function name"))?;
        let id = call.get("id").and_then(Value::as_str).unwrap_or_default();
        let args = call.pointer("/function/arguments").and_then(Value::as_str).unwrap_or_default();
        let at = self.tools.len();
        out.push(Event::ToolStart { index: index_of(at), id: id.to_owned(), name: name.to_owned() });
        if !args.is_empty() {
            out.push(Event::ToolArgs { index: index_of(at), fragment: args.to_owned() });
        }
        self.tools.push(ToolState { wire_index: ev.index, args_len: args.len(), closed: false });
        Ok(())
    }

    fn tool_delta(&mut self, ev: WireEvent, out: &mut Vec<Event>) -> Result<(), DecodeError> {
        let at = self.tool(ev.index)?;
        let fragment = tool_calls(&ev).and_then(|c| c.pointer("/function/arguments")).and_then(Value::as_str);
        if let (Some(fragment), Some(t)) = (fragment.filter(|f| !f.is_empty()), self.tools.get_mut(at)) {
            t.args_len += fragment.len();
            out.push(Event::ToolArgs { index: index_of(at), fragment: fragment.to_owned() });
        }
        Ok(())
    }

    fn message_end(&mut self, ev: WireEvent, out: &mut Vec<Event>) {
        for at in 0..self.tools.len() {
            self.close_tool(at, out);
        }
        self.ended = true;
        let delta = ev.delta;
        let usage = delta.as_ref().and_then(|d| d.usage.as_ref()).and_then(WireUsage::canonical);
        let error = delta.as_ref().and_then(|d| d.error.clone()).filter(|e| !e.is_empty());
        let outcome = delta.and_then(|d| d.finish_reason).map(|r| ending(&r));
        match (outcome, error) {
            (Some(Ending::Finish(finish)), None) => {
                out.push(Event::Finish(finish));
                out.extend(usage.map(Event::Usage));
            }
            // No finish reason and no error: the generation ended without saying how; usage still counts.
            (None, None) => out.extend(usage.map(Event::Usage)),
            // A failed generation still used (and billed) tokens: usage first, so it is counted, then the error
            // as the stream's last word.
            (Some(Ending::Error), error) | (_, error @ Some(_)) => {
                out.extend(usage.map(Event::Usage));
                let message = error.unwrap_or_else(|| "Cohere ended the generation with finish_reason ERROR".into());
                out.push(Event::Error(StreamError { kind: GENERATION_ERROR.into(), message }));
            }
        }
    }
}

/// Canonical indexes are `u32`; a reply with more tool calls than that is not a real reply.
fn index_of(at: usize) -> u32 {
    u32::try_from(at).unwrap_or(u32::MAX)
}

fn tool_calls(ev: &WireEvent) -> Option<&Value> {
    ev.delta.as_ref()?.message.as_ref()?.tool_calls.as_ref()
}

impl StreamDecoder for CohereStream {
    fn frame(&mut self, frame: &Frame, out: &mut Vec<Event>) -> Result<(), DecodeError> {
        let data = frame.data.trim_ascii();
        if data == b"[DONE]" {
            return Ok(());
        }
        let ev: WireEvent = serde_json::from_slice(data)
            .map_err(|e| DecodeError::new(format!("Cohere stream event is not valid JSON: {e}")))?;
        let kind = match ev.kind.clone().or_else(|| frame.event.clone()) {
            Some(kind) => kind,
            None => {
                // An error object in place of an event: report it in the upstream's words.
                let message = match &ev.message {
                    Some(Value::String(m)) => m.clone(),
                    _ => return Err(DecodeError::new("Cohere stream event without a type")),
                };
                self.start(None, out);
                out.push(Event::Error(StreamError { kind: "upstream_error".into(), message }));
                return Ok(());
            }
        };
        if self.ended {
            // Nothing follows `message-end` in v2; whatever does cannot change the answer.
            return Ok(());
        }
        self.start(if kind == "message-start" { ev.id.clone() } else { None }, out);
        match kind.as_str() {
            "content-start" | "content-delta" => {
                let content = ev.delta.as_ref().and_then(|d| d.message.as_ref()).and_then(|m| m.content.as_ref());
                let text = |field: &str| content.and_then(|c| c.get(field)).and_then(Value::as_str).unwrap_or("");
                if !text("text").is_empty() {
                    out.push(Event::Text(text("text").to_owned()));
                }
                if !text("thinking").is_empty() {
                    out.push(Event::Reasoning(text("thinking").to_owned()));
                }
            }
            // The model's plan before it calls tools: its reasoning, in the caller's terms.
            "tool-plan-delta" => {
                let plan = ev.delta.and_then(|d| d.message).and_then(|m| m.tool_plan).filter(|p| !p.is_empty());
                out.extend(plan.map(Event::Reasoning));
            }
            "tool-call-start" => self.tool_start(ev, out)?,
            "tool-call-delta" => self.tool_delta(ev, out)?,
            "tool-call-end" => {
                let at = self.tool(ev.index)?;
                self.close_tool(at, out);
            }
            "message-end" => self.message_end(ev, out),
            // `message-start` (handled above), `content-end`, citations and `debug` carry nothing canonical; later
            // event types are ignored rather than failing the stream.
            _ => {}
        }
        Ok(())
    }

    fn end(&mut self, out: &mut Vec<Event>) -> Result<(), DecodeError> {
        let _ = out;
        if self.ended {
            Ok(())
        } else if self.started {
            Err(DecodeError::new("the Cohere stream ended before its message-end event (no finish reason, no usage)"))
        } else {
            Err(DecodeError::new("the Cohere stream ended before its message-start event"))
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::{
        framing::Framing,
        llm::{chat::Finish, Usage},
        providers::codec::StreamReader,
    };

    /// One v2 SSE event as the API sends it: `event:` line, `data:` line, blank line.
    fn sse(data: &str) -> String {
        let kind = serde_json::from_str::<Value>(data)
            .ok()
            .and_then(|v| v.get("type").and_then(Value::as_str).map(str::to_owned))
            .unwrap_or_default();
        format!("event: {kind}\ndata: {data}\n\n")
    }

    const START: &str = r#"{"id":"c14c80c3","type":"message-start","delta":{"message":{"role":"assistant","content":[],"tool_plan":"","tool_calls":[],"citations":[]}}}"#;

    fn content_delta(text: &str) -> String {
        format!(
            r#"{{"type":"content-delta","index":0,"delta":{{"message":{{"content":{{"text":{}}}}}}},"logprobs":null}}"#,
            Value::from(text)
        )
    }

    fn message_end(reason: &str, error: &str) -> String {
        format!(
            r#"{{"type":"message-end","id":"c14c80c3","delta":{{"finish_reason":"{reason}","error":{error},"usage":{{"billed_units":{{"input_tokens":13,"output_tokens":7}},"tokens":{{"input_tokens":513,"output_tokens":8}},"cached_tokens":5}}}}}}"#
        )
    }

    fn text_fixture(reason: &str) -> String {
        let mut s = sse(START);
        s += &sse(r#"{"type":"content-start","index":0,"delta":{"message":{"content":{"type":"text","text":""}}}}"#);
        for piece in ["Hel", "lo ", "wörld"] {
            s += &sse(&content_delta(piece));
        }
        s += &sse(r#"{"type":"content-end","index":0}"#);
        s + &sse(&message_end(reason, "null"))
    }

    fn tools_fixture() -> String {
        let mut s = sse(START);
        s += &sse(r#"{"type":"tool-plan-delta","delta":{"message":{"tool_plan":"I will check"}}}"#);
        s += &sse(r#"{"type":"tool-plan-delta","delta":{"message":{"tool_plan":" the weather."}}}"#);
        s += &sse(
            r#"{"type":"tool-call-start","index":0,"delta":{"message":{"tool_calls":{"id":"get_weather_a1","type":"function","function":{"name":"get_weather","arguments":""}}}}}"#,
        );
        for piece in [r#"{\"city\""#, r#":\"Par"#, r#"is\"}"#] {
            s += &sse(&format!(
                r#"{{"type":"tool-call-delta","index":0,"delta":{{"message":{{"tool_calls":{{"function":{{"arguments":"{piece}"}}}}}}}}}}"#
            ));
        }
        s += &sse(r#"{"type":"tool-call-end","index":0}"#);
        // A second call with no arguments at all, which must not be dropped and gets `{}`.
        s += &sse(
            r#"{"type":"tool-call-start","index":1,"delta":{"message":{"tool_calls":{"id":"get_time_b2","type":"function","function":{"name":"get_time","arguments":""}}}}}"#,
        );
        s += &sse(r#"{"type":"tool-call-end","index":1}"#);
        s + &sse(&message_end("TOOL_CALL", "null"))
    }

    fn usage() -> Event {
        Event::Usage(Usage { prompt_tokens: 13, completion_tokens: 7, cache_read_tokens: 5, ..Usage::default() })
    }

    fn start() -> Event {
        Event::Start { id: "c14c80c3".into(), model: "command-a".into() }
    }

    /// Feeds `chunks` through the SSE framer and a fresh decoder: every event, then how the stream ended.
    fn run(chunks: &[&[u8]]) -> (Vec<Event>, Result<(), DecodeError>) {
        let decoder = Box::new(CohereStream::new("command-a"));
        let (events, end) = StreamReader::decode(Framing::Sse, decoder, chunks.iter().copied());
        (events, end.map_err(DecodeError))
    }

    fn whole(s: &str) -> (Vec<Event>, Result<(), DecodeError>) {
        run(&[s.as_bytes()])
    }

    fn text_events(finish: Finish) -> Vec<Event> {
        let mut want = vec![start()];
        want.extend(["Hel", "lo ", "wörld"].map(|t| Event::Text(t.into())));
        want.extend([Event::Finish(finish), usage()]);
        want
    }

    fn tool_events() -> Vec<Event> {
        vec![
            start(),
            Event::Reasoning("I will check".into()),
            Event::Reasoning(" the weather.".into()),
            Event::ToolStart { index: 0, id: "get_weather_a1".into(), name: "get_weather".into() },
            Event::ToolArgs { index: 0, fragment: r#"{"city""#.into() },
            Event::ToolArgs { index: 0, fragment: r#":"Par"#.into() },
            Event::ToolArgs { index: 0, fragment: r#"is"}"#.into() },
            Event::ToolStart { index: 1, id: "get_time_b2".into(), name: "get_time".into() },
            Event::ToolArgs { index: 1, fragment: "{}".into() },
            Event::Finish(Finish::ToolCalls),
            usage(),
        ]
    }

    #[test]
    fn finish_reasons_in_message_end_map_exactly() {
        let cases = [
            ("COMPLETE", Finish::Stop),
            ("STOP_SEQUENCE", Finish::Stop),
            ("MAX_TOKENS", Finish::Length),
            ("TOOL_CALL", Finish::ToolCalls),
            ("ERROR_TOXIC", Finish::ContentFilter),
        ];
        for (reason, finish) in cases {
            let (events, end) = whole(&text_fixture(reason));
            assert_eq!(end, Ok(()), "{reason}");
            assert_eq!(events, text_events(finish), "{reason}");
        }
    }

    #[test]
    fn streamed_usage_is_message_ends_billed_counts() {
        let (events, _) = whole(&text_fixture("COMPLETE"));
        let usages: Vec<&Event> = events.iter().filter(|e| matches!(e, Event::Usage(_))).collect();
        assert_eq!(usages, [&usage()], "exactly one usage, message-end's billed units (13/7, not 513/8)");
    }

    #[test]
    fn two_tool_calls_stream_intact_one_without_arguments() {
        let (events, end) = whole(&tools_fixture());
        assert_eq!(end, Ok(()));
        assert_eq!(events, tool_events());
        // Joined per call, the fragments are the whole arguments.
        let args = |i: u32| -> String {
            events
                .iter()
                .filter_map(|e| match e {
                    Event::ToolArgs { index, fragment } if *index == i => Some(fragment.as_str()),
                    _ => None,
                })
                .collect()
        };
        assert_eq!((args(0).as_str(), args(1).as_str()), (r#"{"city":"Paris"}"#, "{}"));
    }

    #[test]
    fn tool_indexes_count_calls_not_wire_indexes() {
        // v2's index here numbers content blocks after some text: the canonical index still starts at 0.
        let mut s = sse(START);
        s += &sse(&content_delta("Let me check."));
        s += &sse(
            r#"{"type":"tool-call-start","index":3,"delta":{"message":{"tool_calls":{"id":"t1","type":"function","function":{"name":"f","arguments":"{\"a\":1}"}}}}}"#,
        );
        s += &sse(r#"{"type":"tool-call-end","index":3}"#);
        s += &sse(&message_end("TOOL_CALL", "null"));
        let (events, end) = whole(&s);
        assert_eq!(end, Ok(()));
        assert_eq!(
            events[1..4],
            [
                Event::Text("Let me check.".into()),
                Event::ToolStart { index: 0, id: "t1".into(), name: "f".into() },
                Event::ToolArgs { index: 0, fragment: r#"{"a":1}"#.into() },
            ]
        );
        let orphan = sse(START)
            + &sse(
                r#"{"type":"tool-call-delta","index":2,"delta":{"message":{"tool_calls":{"function":{"arguments":"x"}}}}}"#,
            );
        assert!(whole(&orphan).1.is_err_and(|e| e.0.contains("never started")));
    }

    #[test]
    fn thinking_deltas_are_reasoning() {
        let mut s = sse(START);
        s += &sse(
            r#"{"type":"content-start","index":0,"delta":{"message":{"content":{"type":"thinking","thinking":""}}}}"#,
        );
        s += &sse(r#"{"type":"content-delta","index":0,"delta":{"message":{"content":{"thinking":"Let me think"}}}}"#);
        s += &sse(&content_delta("Answer"));
        s += &sse(&message_end("COMPLETE", "null"));
        let (events, _) = whole(&s);
        assert_eq!(events[1..3], [Event::Reasoning("Let me think".into()), Event::Text("Answer".into())]);
    }

    #[test]
    fn an_error_finish_is_an_error_event_after_the_usage() {
        let mut s = sse(START) + &sse(&content_delta("Hel"));
        s += &sse(&message_end("ERROR", r#""internal error during generation""#));
        let (events, end) = whole(&s);
        assert_eq!(end, Ok(()), "the stream itself ended where v2 ends streams");
        assert_eq!(
            events,
            [
                start(),
                Event::Text("Hel".into()),
                usage(),
                Event::Error(StreamError {
                    kind: "server_error".into(),
                    message: "internal error during generation".into()
                }),
            ]
        );
        // ERROR with no text still fails; an error text fails whatever the finish reason says.
        for (reason, error, message) in [
            ("ERROR", "null", "Cohere ended the generation with finish_reason ERROR"),
            ("COMPLETE", r#""boom""#, "boom"),
        ] {
            let (events, _) = whole(&(sse(START) + &sse(&message_end(reason, error))));
            assert_eq!(
                events.last(),
                Some(&Event::Error(StreamError { kind: "server_error".into(), message: message.into() }))
            );
            assert!(!events.iter().any(|e| matches!(e, Event::Finish(_))), "{reason}: no finish on a failure");
        }
        // An error object in place of an event.
        let (events, _) = whole(&(sse(START) + "data: {\"message\":\"overloaded\"}\n\n"));
        assert_eq!(
            events.last(),
            Some(&Event::Error(StreamError { kind: "upstream_error".into(), message: "overloaded".into() }))
        );
    }

    #[test]
    fn cut_streams_never_look_complete() {
        let full = text_fixture("COMPLETE");
        let cut_at_event = full.find("event: message-end").unwrap_or(0);
        let (events, end) = whole(&full[..cut_at_event]);
        assert!(end.as_ref().is_err_and(|e| e.0.contains("message-end")), "{end:?}");
        assert!(!events.iter().any(|e| matches!(e, Event::Finish(_) | Event::Usage(_))));
        // Cut inside the last event's JSON: the framer or the decoder refuses it.
        let (_, end) = whole(&full[..full.len() - 20]);
        assert!(end.is_err());
        // Nothing at all.
        assert!(whole("").1.is_err_and(|e| e.0.contains("message-start")));
        // A tolerated `[DONE]` after message-end changes nothing.
        let (events, end) = whole(&(full.clone() + "data: [DONE]\n\n"));
        assert_eq!((events, end), (text_events(Finish::Stop), Ok(())));
    }

    #[test]
    fn malformed_json_in_a_frame_is_a_decode_error() {
        let mut d = CohereStream::new("m");
        let mut out = Vec::new();
        for data in [&b"{\"type\":"[..], &b"not json"[..], &b"{}"[..]] {
            let frame = Frame { event: None, data: Bytes::from_static(data) };
            assert!(d.frame(&frame, &mut out).is_err(), "{:?}", String::from_utf8_lossy(data));
        }
    }

    #[test]
    fn the_event_name_is_used_when_the_data_has_no_type() {
        let mut d = CohereStream::new("m");
        let mut out = Vec::new();
        let frame = |event: &str, data: &'static str| Frame {
            event: Some(event.into()),
            data: Bytes::from_static(data.as_bytes()),
        };
        let steps = [
            frame("message-start", r#"{"id":"x"}"#),
            frame("content-delta", r#"{"delta":{"message":{"content":{"text":"hi"}}}}"#),
            frame("message-end", r#"{"delta":{"finish_reason":"MAX_TOKENS"}}"#),
        ];
        for f in &steps {
            d.frame(f, &mut out).unwrap_or_else(|e| unreachable!("{e}"));
        }
        assert_eq!(d.end(&mut out), Ok(()));
        assert_eq!(
            out,
            [
                Event::Start { id: "x".into(), model: "m".into() },
                Event::Text("hi".into()),
                Event::Finish(Finish::Length)
            ]
        );
    }

    /// A tiny deterministic generator for the random splits (xorshift64).
    fn next(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    #[test]
    fn any_split_of_the_bytes_gives_the_same_events() {
        // CRLF line endings too, which some proxies produce.
        let crlf = tools_fixture().replace('\n', "\r\n");
        let fixtures = [
            (text_fixture("COMPLETE"), text_events(Finish::Stop)),
            (tools_fixture(), tool_events()),
            (crlf, tool_events()),
        ];
        for (fixture, want) in &fixtures {
            let bytes = fixture.as_bytes();
            assert_eq!(run(&[bytes]), (want.clone(), Ok(())));
            for at in 0..=bytes.len() {
                let (a, b) = bytes.split_at(at);
                assert_eq!(run(&[a, b]), (want.clone(), Ok(())), "split at {at}");
            }
            let mut state = 0x9e37_79b9_7f4a_7c15_u64;
            for round in 0..200 {
                let mut cuts: Vec<usize> =
                    (0..1 + round % 12).map(|_| (next(&mut state) as usize) % bytes.len()).collect();
                cuts.sort_unstable();
                let mut pieces = Vec::new();
                let mut from = 0;
                for cut in cuts {
                    pieces.push(&bytes[from..cut]);
                    from = cut;
                }
                pieces.push(&bytes[from..]);
                assert_eq!(run(&pieces), (want.clone(), Ok(())), "round {round}");
            }
        }
    }
}
