use bytes::Bytes;
use serde_json::{json, Value};

use super::*;
use crate::{framing::Framing, providers::codec::StreamReader};

// Recorded-shape streams; the fake Anthropic server sends exactly these (`tests/fakes/tests/anthropic.rs`).
const TEXT: &[u8] = include_bytes!("../../../../tests/fixtures/anthropic/text.sse");
const TOOLS: &[u8] = include_bytes!("../../../../tests/fixtures/anthropic/tools.sse");
const THINKING: &[u8] = include_bytes!("../../../../tests/fixtures/anthropic/thinking.sse");
const STREAM_ERROR: &[u8] = include_bytes!("../../../../tests/fixtures/anthropic/stream_error.sse");
const FIXTURES: [(&str, &[u8]); 4] =
    [("text", TEXT), ("tools", TOOLS), ("thinking", THINKING), ("stream_error", STREAM_ERROR)];

type Outcome = (Vec<Event>, Result<(), String>);

/// Feeds `chunks` through the SSE framer and a decoder, as the pipeline does.
fn decode_chunks<'a>(chunks: impl IntoIterator<Item = &'a [u8]>) -> Outcome {
    StreamReader::decode(Framing::Sse, Box::new(EventDecoder::default()), chunks)
}

fn decode(bytes: &[u8]) -> Outcome {
    decode_chunks([bytes])
}

fn start(model: &str) -> Event {
    Event::Start { id: "msg_fake_1".into(), model: model.into() }
}

fn text(t: &str) -> Event {
    Event::Text(t.into())
}

fn args(index: u32, fragment: &str) -> Event {
    Event::ToolArgs { index, fragment: fragment.into() }
}

fn fake_usage(reasoning: u64) -> Event {
    Event::Usage(Usage {
        prompt_tokens: 29,
        completion_tokens: 9,
        cache_read_tokens: 5,
        cache_write_tokens: 3,
        reasoning_tokens: reasoning,
    })
}

#[test]
fn text_stream() {
    let want = vec![
        start("normal"),
        text("Hello"),
        text(" from"),
        text(" fake"),
        text(" upstream"),
        Event::Finish(Finish::Stop),
        fake_usage(0),
    ];
    assert_eq!(decode(TEXT), (want, Ok(())));
}

#[test]
fn two_tool_calls_one_without_arguments() {
    let want = vec![
        start("tools"),
        text("Let me check."),
        Event::ToolStart { index: 0, id: "toolu_fake_1".into(), name: "get_weather".into() },
        args(0, "{\"city\""),
        args(0, ": \"Paris\"}"),
        Event::ToolStart { index: 1, id: "toolu_fake_2".into(), name: "get_time".into() },
        args(1, "{}"),
        Event::Finish(Finish::ToolCalls),
        fake_usage(0),
    ];
    assert_eq!(decode(TOOLS), (want, Ok(())));
}

#[test]
fn thinking_with_signature() {
    let want = vec![
        start("thinking"),
        Event::Reasoning("Let me think".into()),
        Event::Reasoning(" about it.".into()),
        Event::ReasoningSignature("EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds".into()),
        text("Paris."),
        Event::Finish(Finish::Stop),
        fake_usage(4),
    ];
    assert_eq!(decode(THINKING), (want, Ok(())));
}

#[test]
fn in_stream_error_is_an_event_and_the_stream_is_incomplete() {
    let error = Event::Error(StreamError { kind: "overloaded_error".into(), message: "Overloaded".into() });
    let want = vec![start("stream-error"), text("Hello"), error];
    assert_eq!(decode(STREAM_ERROR), (want, Err("Anthropic stream ended before `message_stop`".into())));
}

/// The bytes of `fixture` up to the end of the `n`th event (1-based).
fn first_events(fixture: &[u8], n: usize) -> &[u8] {
    let mut end = 0;
    for _ in 0..n {
        end += fixture[end..].windows(2).position(|w| w == b"\n\n").map_or(0, |p| p + 2);
    }
    &fixture[..end]
}

#[test]
fn a_cut_stream_never_looks_complete() {
    // Closed after a content_block_delta: every event whole, no `message_stop`.
    let cut = first_events(TEXT, 4);
    assert!(cut.ends_with(b"\"text\":\"Hello\"}}\n\n"), "{}", String::from_utf8_lossy(cut));
    let (events, end) = decode(cut);
    assert_eq!(events, vec![start("normal"), text("Hello")]);
    assert_eq!(end, Err("Anthropic stream ended before `message_stop`".into()));
    // Cut in the middle of an event's JSON.
    let mid = &TEXT[..first_events(TEXT, 5).len() - 20];
    assert!(decode(mid).1.is_err());
    // Cut after the finish but before `message_stop`: no usage is claimed either.
    let (events, end) = decode(first_events(TEXT, 9));
    assert_eq!(events.last(), Some(&Event::Finish(Finish::Stop)));
    assert!(end.is_err());
    assert_eq!(decode(b""), (vec![], Err("Anthropic stream ended before `message_start`".into())));
}

#[test]
fn malformed_or_out_of_order_frames_are_errors() {
    let cases: &[&str] = &[
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_d\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"x\"}}\n\n",
        "event: message_start\ndata: {\"type\":\"message_start\"}\n\n",
        "data: [DONE]\n\n",
    ];
    for case in cases {
        assert!(decode(case.as_bytes()).1.is_err(), "{case}");
    }
    let mut after_stop = TEXT.to_vec();
    after_stop.extend_from_slice(b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"x\"}}\n\n");
    assert!(decode(&after_stop).1.is_err());
    // A ping after the end, or an event type from a future API version, is not.
    let mut ping_after = TEXT.to_vec();
    ping_after
        .extend_from_slice(b"event: ping\ndata: {\"type\":\"ping\"}\n\nevent: future\ndata: {\"type\":\"ping\"}\n\n");
    assert_eq!(decode(&ping_after).1, Ok(()));
}

#[test]
fn usage_is_start_input_plus_last_delta_output() {
    let stream = concat!(
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"model\":\"c\",\"usage\":{\"input_tokens\":100,\"cache_read_input_tokens\":2000,\"cache_creation_input_tokens\":0,\"output_tokens\":1}}}\n\n",
        "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":null},\"usage\":{\"output_tokens\":10}}\n\n",
        "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"stop_sequence\",\"stop_sequence\":\"END\"},\"usage\":{\"output_tokens\":50,\"cache_creation_input_tokens\":300}}\n\n",
        "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
    );
    let (events, end) = decode(stream.as_bytes());
    assert_eq!(end, Ok(()));
    assert_eq!(
        events,
        vec![
            Event::Start { id: "m".into(), model: "c".into() },
            Event::Finish(Finish::StopSequence("END".into())),
            Event::Usage(Usage::from_additive(100, 2000, 300, 50)),
        ]
    );
}

#[test]
fn server_tools_neither_take_a_tool_index_nor_leak_arguments() {
    let stream = concat!(
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"model\":\"c\"}}\n\n",
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"server_tool_use\",\"id\":\"srv\",\"name\":{\"odd\":1},\"input\":{}}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"q\\\":1}\"}}\n\n",
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\",\"id\":\"t\",\"name\":\"f\",\"input\":{}}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{}\"}}\n\n",
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":1}\n\n",
        "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
    );
    let (events, end) = decode(stream.as_bytes());
    assert_eq!(end, Ok(()));
    assert_eq!(
        events[1..3],
        [Event::ToolStart { index: 0, id: "t".into(), name: "f".into() }, args(0, "{}")],
        "{events:?}"
    );
    assert_eq!(events.len(), 4);
}

/// A small deterministic generator for the random splits (no dependency, same cases every run).
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 33) as usize) % n.max(1)
    }
}

#[test]
fn any_split_of_the_bytes_decodes_the_same() {
    for (name, fixture) in FIXTURES {
        let whole = decode(fixture);
        for at in 0..=fixture.len() {
            let (a, b) = fixture.split_at(at);
            assert_eq!(decode_chunks([a, b]), whole, "{name} split at {at}");
        }
        let mut rng = Lcg(fixture.len() as u64);
        for round in 0..50 {
            let mut cuts: Vec<usize> = (0..1 + rng.below(12)).map(|_| rng.below(fixture.len() + 1)).collect();
            cuts.sort_unstable();
            let mut pieces = Vec::new();
            let mut from = 0;
            for cut in cuts {
                pieces.push(&fixture[from..cut]);
                from = cut;
            }
            pieces.push(&fixture[from..]);
            assert_eq!(decode_chunks(pieces.iter().copied()), whole, "{name} round {round} {pieces:?}");
        }
    }
}

/// An SSE body as (event name, data JSON) pairs.
fn pairs(sse: &[u8]) -> Vec<(String, Value)> {
    String::from_utf8_lossy(sse)
        .split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|e| {
            let (name, data) = e.split_once('\n').unwrap_or_default();
            let name = name.strip_prefix("event: ").unwrap_or("?").to_owned();
            (name, serde_json::from_str(data.strip_prefix("data: ").unwrap_or_default()).unwrap_or(Value::Null))
        })
        .collect()
}

fn encode(events: &[Event], end: bool) -> Vec<u8> {
    let mut encoder = EventEncoder::default();
    let mut out = BytesMut::new();
    for event in events {
        encoder.event(event, &mut out);
    }
    if end {
        encoder.end(&mut out);
    }
    out.to_vec()
}

/// What tollgate's encoder is expected to give back for a fixture it decoded: the same events without pings and
/// empty argument fragments, `{}` for a tool call that had no arguments, and `message_start` usage of zeros (the
/// input count reaches canonical events only at the end; `message_delta` carries it).
fn expected_round_trip(fixture: &[u8]) -> Vec<(String, Value)> {
    let mut want = Vec::new();
    let mut tool_args_seen = None;
    for (name, mut data) in pairs(fixture) {
        match (name.as_str(), data["delta"]["type"].as_str(), data["content_block"]["type"].as_str()) {
            ("ping", _, _) => continue,
            ("message_start", _, _) => {
                data["message"]["usage"] = json!({"input_tokens":0,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":1});
            }
            ("content_block_start", _, Some("tool_use")) => tool_args_seen = Some(false),
            ("content_block_delta", Some("input_json_delta"), _) => {
                if data["delta"]["partial_json"] == "" {
                    continue;
                }
                tool_args_seen = Some(true);
            }
            ("content_block_stop", _, _) => {
                let argumentless_tool = tool_args_seen.take() == Some(false);
                if argumentless_tool {
                    let index = data["index"].clone();
                    want.push((
                        "content_block_delta".to_owned(),
                        json!({"type":"content_block_delta","index":index,"delta":{"type":"input_json_delta","partial_json":"{}"}}),
                    ));
                }
            }
            _ => {}
        }
        want.push((name, data));
    }
    want
}

#[test]
fn decoding_then_encoding_gives_back_anthropics_events() {
    for (name, fixture) in [("text", TEXT), ("tools", TOOLS), ("stream_error", STREAM_ERROR)] {
        let (events, end) = decode(fixture);
        let again = encode(&events, end.is_ok());
        assert_eq!(pairs(&again), expected_round_trip(fixture), "{name}:\n{}", String::from_utf8_lossy(&again));
        // And the re-encoded stream decodes to the same canonical events.
        assert_eq!(decode(&again), (events, end), "{name}");
    }
    // The thinking fixture reports its reasoning share, which Anthropic's `message_delta` written by tollgate does
    // not repeat: everything else is the same.
    let (events, end) = decode(THINKING);
    let again = encode(&events, true);
    let mut want = expected_round_trip(THINKING);
    if let Some((_, delta)) = want.iter_mut().find(|(n, _)| n == "message_delta") {
        if let Some(usage) = delta["usage"].as_object_mut() {
            usage.remove("output_tokens_details");
        }
    }
    assert_eq!(pairs(&again), want);
    assert_eq!(end, Ok(()));
}

#[test]
fn encodes_an_openai_shaped_stream_with_its_own_block_indexes() {
    let events = [
        Event::Start { id: "chatcmpl-9".into(), model: "gpt-4o".into() },
        Event::Reasoning("hmm".into()),
        Event::Text(String::new()),
        text("Hi"),
        text("!"),
        Event::ToolStart { index: 0, id: "call_a".into(), name: "f".into() },
        args(0, ""),
        args(0, "{\"a\""),
        args(0, ":1}"),
        Event::ToolStart { index: 1, id: "call_b".into(), name: "g".into() },
        args(1, "{}"),
        args(0, " "),
        args(7, "lost"),
        Event::Finish(Finish::ToolCalls),
        Event::Usage(Usage::from_additive(10, 4, 0, 7)),
    ];
    let got = String::from_utf8(encode(&events, true)).unwrap_or_default();
    let want = concat!(
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_chatcmpl-9\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"gpt-4o\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":0,\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":0,\"output_tokens\":1}}}\n\n",
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"thinking\",\"thinking\":\"\",\"signature\":\"\"}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"thinking_delta\",\"thinking\":\"hmm\"}}\n\n",
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"text_delta\",\"text\":\"!\"}}\n\n",
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":1}\n\n",
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":2,\"content_block\":{\"type\":\"tool_use\",\"id\":\"call_a\",\"name\":\"f\",\"input\":{}}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":2,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"a\\\"\"}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":2,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\":1}\"}}\n\n",
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":2}\n\n",
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":3,\"content_block\":{\"type\":\"tool_use\",\"id\":\"call_b\",\"name\":\"g\",\"input\":{}}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":3,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{}\"}}\n\n",
        // A late fragment of an earlier call goes to that call's block.
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":2,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\" \"}}\n\n",
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":3}\n\n",
        "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\",\"stop_sequence\":null},\"usage\":{\"input_tokens\":10,\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":4,\"output_tokens\":7}}\n\n",
        "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
    );
    assert_eq!(got, want);
}

#[test]
fn usage_before_start_fills_message_start_and_stop_reasons_map() {
    let events = [
        Event::Usage(Usage::from_additive(21, 5, 3, 0)),
        Event::Start { id: "msg_x".into(), model: "m".into() },
        text("a"),
        Event::Finish(Finish::StopSequence("END".into())),
    ];
    let got = pairs(&encode(&events, true));
    assert_eq!(got[0].1["message"]["id"], "msg_x");
    assert_eq!(
        got[0].1["message"]["usage"],
        json!({"input_tokens":21,"cache_creation_input_tokens":3,"cache_read_input_tokens":5,"output_tokens":1})
    );
    assert_eq!(got[4].1["delta"], json!({"stop_reason":"stop_sequence","stop_sequence":"END"}));
    // A stream that ends without a finish or any content is still a whole message.
    let got = pairs(&encode(&[], true));
    let names: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["message_start", "message_delta", "message_stop"]);
    assert_eq!(got[1].1["delta"]["stop_reason"], "end_turn");
}

#[test]
fn failures_end_the_stream_with_an_error_event() {
    let mut encoder = EventEncoder::default();
    let mut out = BytesMut::new();
    encoder.event(&Event::Start { id: "msg_1".into(), model: "m".into() }, &mut out);
    encoder.event(&text("Hel"), &mut out);
    encoder.fail("overloaded", "upstream overloaded", &mut out);
    encoder.event(&text("lo"), &mut out);
    encoder.end(&mut out);
    encoder.fail("x", "twice", &mut out);
    let got = pairs(&out);
    let names: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["message_start", "content_block_start", "content_block_delta", "error"]);
    assert_eq!(got[3].1, json!({"type":"error","error":{"type":"overloaded_error","message":"upstream overloaded"}}));

    let cases: &[(&str, &str)] =
        &[("timeout", "api_error"), ("upstream_error", "api_error"), ("529", "overloaded_error")];
    for (code, kind) in cases {
        let mut out = BytesMut::new();
        EventEncoder::default().fail(code, "m", &mut out);
        assert_eq!(
            pairs(&out),
            vec![("error".to_owned(), json!({"type":"error","error":{"type":kind,"message":"m"}}))]
        );
    }
    let upstream_errors: &[(&str, &str)] = &[
        ("overloaded_error", "overloaded_error"),
        ("rate_limit_error", "rate_limit_error"),
        ("server_error", "api_error"),
    ];
    for (upstream, kind) in upstream_errors {
        let error = Event::Error(StreamError { kind: (*upstream).into(), message: "m".into() });
        let got = pairs(&encode(&[error, text("after")], true));
        assert_eq!(got, vec![("error".to_owned(), json!({"type":"error","error":{"type":kind,"message":"m"}}))]);
    }
}

#[test]
fn frames_without_event_names_decode_by_type() {
    let mut decoder = EventDecoder::default();
    let mut events = Vec::new();
    let frame = Frame {
        event: None,
        data: Bytes::from_static(b"{\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"model\":\"c\"}}"),
    };
    assert_eq!(decoder.frame(&frame, &mut events), Ok(()));
    assert_eq!(events, vec![Event::Start { id: "m".into(), model: "c".into() }]);
}
