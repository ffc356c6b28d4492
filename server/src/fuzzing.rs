//! The surface the fuzz targets in `fuzz/` drive (`scripts/fuzz.sh`); compiled only with the `fuzzing` feature,
//! which the binary never turns on (`scripts/test.sh` lints and unit-tests this module with it).
//!
//! Contract: each function feeds arbitrary input to one parser of the gateway and checks properties that must
//! hold for every input. A broken property comes back as `Err` with a description (the fuzz target turns it into
//! a crash); a panic inside is a bug of the code under test. Only functions over bytes and strings are exported,
//! so the modules they reach stay crate-private. Slowness is caught by the fuzzer's timeout, not here.

use std::collections::HashSet;

use serde_json::{Map, Value};

use crate::{
    config::Config,
    framing::{
        eventstream::EventStreamDecoder,
        sse::{event_data, SseDecoder},
        Frame,
    },
    llm::{
        request::{Edit, RawObject, MAX_DEPTH},
        ChatRequest, CompletionRequest, EmbeddingsRequest, RequestError,
    },
    logs::{
        codec,
        journal::{self, frames, written_len},
    },
    pipeline::peek::Peek,
    pricing,
    routing::table::RoutingTable,
    upstream::plain,
};

/// Reads an upstream's response body or stream chunk as the relays do (`pipeline/peek/`): the same usage, model,
/// finish reasons and verdicts as serde_json's derive of those fields, or none from both.
pub fn response_peek(json: &[u8]) -> Result<(), String> {
    crate::pipeline::peek::agrees_with_serde(json)
}

/// Reads an upstream's HTTP/1.1 response, arriving in `chunks`, as `upstream/plain/` does (head, then the body by
/// its framing, then the close):
/// - the outcome (status, framing and body, or the error) is the same whatever the chunking;
/// - a `Content-Length` body read whole has exactly that length.
pub fn upstream_response(chunks: &[&[u8]]) -> Result<(), String> {
    let whole = chunks.concat();
    let split = plain::read_chunks(chunks);
    let at_once = plain::read_chunks(&[&whole]);
    if split != at_once {
        return Err(format!("chunked reading gave {split:?}, reading at once {at_once:?}"));
    }
    if let Ok((_, plain::Framing::Length(n), body)) = &split {
        if body.len() as u64 != *n {
            return Err(format!("a Content-Length: {n} body read whole has {} bytes", body.len()));
        }
    }
    Ok(())
}

/// Parses `body` as `POST /v1/chat/completions` does and checks it against serde_json's own reading:
/// - an accepted body is a JSON object with distinct keys, nested at most [`MAX_DEPTH`] deep, and `RawObject::write`
///   gives it back (as a parsed value) both unedited and with `model` and `stream_options` rewritten as the
///   OpenAI dialect does;
/// - a body refused as too deep is either not JSON or deeper than [`MAX_DEPTH`]; one refused as malformed is not
///   a JSON object, or repeats a key;
/// - where serde_json cannot make a value of well-formed JSON (a lone surrogate escape, a number beyond `f64`),
///   an accepted body still writes back to the same keys and raw values;
/// - `ChatRequest` agrees with the value: the decoded `model`, `stream` and `include_usage` are the value's, and a
///   field named in a refusal is indeed missing or of the wrong type.
pub fn parse_chat(body: &[u8]) -> Result<(), String> {
    let (reading, raw) = read_checked(body)?;
    let object = reading.object();
    match (ChatRequest::parse(body), raw) {
        (Err(chat), Err(raw)) if chat != raw => {
            Err(format!("ChatRequest refused with {chat:?}, RawObject with {raw:?}"))
        }
        (Err(_), Err(_)) => Ok(()),
        (Ok(_), Err(raw)) => Err(format!("ChatRequest accepted a body RawObject refused ({raw:?})")),
        (Ok(chat), Ok(_)) => object.map_or(Ok(()), |object| check_accepted_chat(&chat, object)),
        (Err(RequestError::InvalidField { param, message }), Ok(_)) => {
            object.map_or(Ok(()), |object| check_refused_field(object, param, &message))
        }
        (Err(other), Ok(_)) => Err(format!("ChatRequest refused a body RawObject accepted with {other:?}")),
    }
}

/// Parses `body` as `POST /v1/embeddings` does; the same checks as [`parse_chat`] for the body, and `model` and
/// `input` agree with serde_json's reading.
pub fn parse_embeddings(body: &[u8]) -> Result<(), String> {
    let (reading, raw) = read_checked(body)?;
    let object = reading.object();
    match (EmbeddingsRequest::parse(body), raw) {
        (Err(e), Err(raw)) if e != raw => Err(format!("EmbeddingsRequest refused with {e:?}, RawObject with {raw:?}")),
        (Err(_), Err(_)) => Ok(()),
        (Ok(_), Err(raw)) => Err(format!("EmbeddingsRequest accepted a body RawObject refused ({raw:?})")),
        (Ok(request), Ok(_)) => {
            let Some(object) = object else { return Ok(()) };
            if object.get("model").and_then(Value::as_str) != Some(request.model.as_str()) {
                return Err(format!("decoded model {:?} is not the body's", request.model));
            }
            match object.get("input") {
                Some(Value::String(_) | Value::Array(_)) => Ok(()),
                other => Err(format!("accepted `input` {other:?}")),
            }
        }
        (Err(RequestError::InvalidField { param, message }), Ok(_)) => {
            let Some(object) = object else { return Ok(()) };
            let wrong = match param {
                "model" => !is_model(object.get("model")),
                "input" => !matches!(object.get("input"), Some(Value::String(_) | Value::Array(_))),
                _ => false,
            };
            if wrong {
                Ok(())
            } else {
                Err(format!("refused `{param}` ({message}) although the body's value is fine"))
            }
        }
        (Err(other), Ok(_)) => Err(format!("EmbeddingsRequest refused a body RawObject accepted with {other:?}")),
    }
}

/// Parses `body` as `POST /v1/completions` does; the same checks as [`parse_chat`] for the body, and the decoded
/// `model`, `stream`, `include_usage` and prompts agree with serde_json's reading. A refusal of `prompt` is of a
/// prompt that is missing, or neither a string nor a non-empty array of strings.
pub fn parse_completion(body: &[u8]) -> Result<(), String> {
    let (reading, raw) = read_checked(body)?;
    let object = reading.object();
    match (CompletionRequest::parse(body), raw) {
        (Err(e), Err(raw)) if e != raw => Err(format!("CompletionRequest refused with {e:?}, RawObject with {raw:?}")),
        (Err(_), Err(_)) => Ok(()),
        (Ok(_), Err(raw)) => Err(format!("CompletionRequest accepted a body RawObject refused ({raw:?})")),
        (Ok(request), Ok(_)) => object.map_or(Ok(()), |object| check_accepted_completion(&request, object)),
        (Err(RequestError::InvalidField { param: "prompt", message }), Ok(_)) => match object.map(prompts_of) {
            Some(Some(prompts)) => Err(format!("refused `prompt` ({message}) although the body's is {prompts:?}")),
            _ => Ok(()),
        },
        (Err(RequestError::InvalidField { param, message }), Ok(_)) => {
            object.map_or(Ok(()), |object| check_refused_field(object, param, &message))
        }
        (Err(other), Ok(_)) => Err(format!("CompletionRequest refused a body RawObject accepted with {other:?}")),
    }
}

/// A completions `prompt` as the gateway takes it: a string, or a non-empty array of strings.
fn prompts_of(object: &Map<String, Value>) -> Option<Vec<String>> {
    match object.get("prompt")? {
        Value::String(s) => Some(vec![s.clone()]),
        Value::Array(items) if !items.is_empty() => items.iter().map(|i| i.as_str().map(str::to_owned)).collect(),
        _ => None,
    }
}

fn check_accepted_completion(request: &CompletionRequest<'_>, object: &Map<String, Value>) -> Result<(), String> {
    if !is_model(object.get("model")) || object.get("model").and_then(Value::as_str) != Some(request.model.as_str()) {
        return Err(format!("decoded model {:?}, body has {:?}", request.model, object.get("model")));
    }
    if prompts_of(object).as_ref() != Some(&request.prompts) {
        return Err(format!("decoded prompts {:?}, body has {:?}", request.prompts, object.get("prompt")));
    }
    if stream_flag(object) != Some(request.stream) || (request.include_usage && !request.stream) {
        return Err(format!("decoded stream {}, body has {:?}", request.stream, object.get("stream")));
    }
    Ok(())
}

/// serde_json's own reading of a body, the reference the parser is checked against.
enum Reading {
    Value(Value),
    /// Well-formed JSON that serde_json still will not turn into a value: a lone UTF-16 surrogate escape (RFC 8259
    /// allows it; serde_json reports `\ud800` without a low half as an unexpected end of the escape) or a number
    /// beyond `f64`. The gateway forwards such bytes as they are (they are the upstream's to judge), so
    /// only the checks that need no value apply.
    Unreadable,
    NotJson,
}

impl Reading {
    /// The body as a JSON object, when serde_json read it as one.
    fn object(&self) -> Option<&Map<String, Value>> {
        match self {
            Reading::Value(Value::Object(object)) => Some(object),
            _ => None,
        }
    }
}

/// serde_json's reading of `body` and the gateway's `RawObject`, already checked against each other.
fn read_checked(body: &[u8]) -> Result<(Reading, Result<RawObject<'_>, RequestError>), String> {
    let reading = read(body);
    let raw = RawObject::parse(body);
    check_raw_object(body, &raw, &reading)?;
    Ok((reading, raw))
}

fn read(body: &[u8]) -> Reading {
    match serde_json::from_slice(body) {
        Ok(value) => Reading::Value(value),
        Err(e) => {
            let message = e.to_string();
            let tolerated = ["surrogate", "unexpected end of hex escape", "number out of range"];
            if tolerated.iter().any(|t| message.contains(t)) {
                Reading::Unreadable
            } else {
                Reading::NotJson
            }
        }
    }
}

fn check_raw_object(body: &[u8], raw: &Result<RawObject<'_>, RequestError>, reading: &Reading) -> Result<(), String> {
    match (raw, reading) {
        (Ok(_), Reading::NotJson) => Err("RawObject accepted a body that is not JSON".into()),
        (Ok(_), Reading::Value(value)) if !value.is_object() => Err("RawObject accepted a JSON non-object".into()),
        (Ok(object), _) => {
            // Unedited, the body comes back with the same keys and the same raw values, in order.
            let kept = object.write(body.len(), |_| Edit::Keep, &[]);
            let again = RawObject::parse(&kept).map_err(|e| format!("written back, the body is refused: {e}"))?;
            let pairs = |o: &RawObject<'_>| -> Vec<(String, String)> {
                o.fields.iter().map(|(k, v)| (k.to_string(), v.get().to_owned())).collect()
            };
            if pairs(object) != pairs(&again) {
                return Err(format!("written back, the body reads differently: {}", String::from_utf8_lossy(&kept)));
            }
            let Reading::Value(value) = reading else { return Ok(()) };
            check_accepted_object(body, object, value)
        }
        (Err(RequestError::TooDeep), Reading::Value(value)) if depth_of(value) <= MAX_DEPTH => {
            Err(format!("refused as too deep a body nested {} deep (limit {MAX_DEPTH})", depth_of(value)))
        }
        (Err(RequestError::MalformedJson(message)), Reading::Value(Value::Object(_)))
            if !message.contains("duplicate field") =>
        {
            Err(format!("refused a JSON object as malformed: {message}"))
        }
        (Err(e @ RequestError::InvalidField { .. }), _) => Err(format!("RawObject::parse judged a field: {e:?}")),
        (Err(_), _) => Ok(()),
    }
}

/// An accepted body against serde_json's value of it: distinct keys, bounded depth, and the rewrites the OpenAI
/// dialect makes give the value back with just those fields changed.
fn check_accepted_object(body: &[u8], object: &RawObject<'_>, value: &Value) -> Result<(), String> {
    let Value::Object(map) = value else {
        return Err("RawObject accepted a JSON non-object".into());
    };
    if map.len() != object.fields.len() {
        return Err(format!("{} fields but {} distinct keys: a duplicate got through", object.fields.len(), map.len()));
    }
    let depth = depth_of(value);
    if depth > MAX_DEPTH {
        return Err(format!("accepted a body nested {depth} deep (limit {MAX_DEPTH})"));
    }
    let kept = object.write(body.len(), |_| Edit::Keep, &[]);
    same_value("written back unedited", &kept, value)?;
    // Another model name, usage always requested on streams.
    let rewritten = object.write(
        body.len(),
        |key| match key {
            "model" => Edit::Replace("\"upstream-model\"".into()),
            "stream_options" => Edit::Drop,
            _ => Edit::Keep,
        },
        &[("stream_options", r#"{"include_usage":true}"#)],
    );
    let mut expected = map.clone();
    if expected.contains_key("model") {
        expected.insert("model".into(), Value::from("upstream-model"));
    }
    expected.insert("stream_options".into(), serde_json::json!({"include_usage": true}));
    same_value("rewritten", &rewritten, &Value::Object(expected))
}

fn same_value(what: &str, written: &[u8], expected: &Value) -> Result<(), String> {
    let reparsed: Value = serde_json::from_slice(written)
        .map_err(|e| format!("{what}: not JSON ({e}): {}", String::from_utf8_lossy(written)))?;
    if &reparsed == expected {
        Ok(())
    } else {
        Err(format!("{what}: {reparsed} differs from {expected}"))
    }
}

/// Levels of arrays and objects; a scalar is 0. Recursion is bounded by serde_json's own limit of 128.
fn depth_of(value: &Value) -> usize {
    match value {
        Value::Array(items) => 1 + items.iter().map(depth_of).max().unwrap_or(0),
        Value::Object(map) => 1 + map.values().map(depth_of).max().unwrap_or(0),
        _ => 0,
    }
}

fn is_model(value: Option<&Value>) -> bool {
    matches!(value, Some(Value::String(m)) if !m.trim().is_empty())
}

/// `stream` as the gateway reads it: absent or `null` is false; `None` for anything but a boolean.
fn stream_flag(object: &Map<String, Value>) -> Option<bool> {
    match object.get("stream") {
        None | Some(Value::Null) => Some(false),
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => None,
    }
}

fn check_accepted_chat(chat: &ChatRequest<'_>, object: &Map<String, Value>) -> Result<(), String> {
    if !is_model(object.get("model")) || object.get("model").and_then(Value::as_str) != Some(chat.model.as_str()) {
        return Err(format!("decoded model {:?}, body has {:?}", chat.model, object.get("model")));
    }
    if !matches!(object.get("messages"), Some(Value::Array(m)) if !m.is_empty()) {
        return Err(format!("accepted messages {:?}", object.get("messages")));
    }
    if stream_flag(object) != Some(chat.stream) {
        return Err(format!("decoded stream {}, body has {:?}", chat.stream, object.get("stream")));
    }
    let include_usage =
        object.get("stream_options").and_then(|o| o.get("include_usage")).and_then(Value::as_bool).unwrap_or(false);
    if include_usage != chat.include_usage || (chat.include_usage && !chat.stream) {
        return Err(format!(
            "decoded include_usage {}, body has {:?}",
            chat.include_usage,
            object.get("stream_options")
        ));
    }
    Ok(())
}

/// A refusal naming `param` must be about a field whose value really is missing or wrong.
fn check_refused_field(object: &Map<String, Value>, param: &str, message: &str) -> Result<(), String> {
    let wrong = match param {
        "model" => !is_model(object.get("model")),
        "messages" => !matches!(object.get("messages"), Some(Value::Array(m)) if !m.is_empty()),
        "stream" => stream_flag(object).is_none(),
        // Anything present but `null` can be refused: not an object, a bad `include_usage`, a repeated key
        // (which serde_json's value hides), or options without `stream: true`.
        "stream_options" => !matches!(object.get("stream_options"), None | Some(Value::Null)),
        _ => false,
    };
    if wrong {
        Ok(())
    } else {
        Err(format!("refused `{param}` ({message}) although the body's value is fine"))
    }
}

/// Frames a stream that arrives in `chunks` as the SSE relay does (feed each chunk, take every whole event, then
/// `finish`), reads each event's data and peeks at it as JSON, and checks the framing:
/// - the events and the remainder are the same however the bytes are chunked (as given, whole, byte by byte);
/// - the input is `D0 E0 D1 E1 … Dk Ek T`: each `Di` is only CR and LF bytes (the blank lines between events,
///   which the decoder drops), each event `Ei` ends with a blank line (`\n\n` or `\n\r\n`) and holds no other, and
///   `T` is what `finish` returns, holding no blank line, or, when `finish` returns nothing, only ASCII whitespace;
/// - an event has data exactly when one of its lines starts with `data:`.
pub fn sse_frames(chunks: &[&[u8]]) -> Result<(), String> {
    let input = chunks.concat();
    let framed = frame(chunks.iter().copied());
    if frame(std::iter::once(input.as_slice())) != framed {
        return Err("framing the stream whole differs from framing it in the given chunks".into());
    }
    if frame(input.chunks(1)) != framed {
        return Err("framing the stream byte by byte differs from framing it in the given chunks".into());
    }
    let (events, rest) = framed;
    let mut at = 0;
    for (i, event) in events.iter().enumerate() {
        check_event(event).map_err(|e| format!("event {i} {:?}: {e}", String::from_utf8_lossy(event)))?;
        at = find_after_blank_lines(&input, at, event)
            .ok_or_else(|| format!("event {i} is not the input's next bytes after blank lines"))?;
        check_data(event).map_err(|e| format!("event {i}: {e}"))?;
    }
    let tail = &input[at..];
    match rest {
        Some(rest) => {
            let cut = tail.len().checked_sub(rest.len()).ok_or("the remainder is longer than the unframed input")?;
            if &tail[cut..] != rest.as_slice() || !only_line_breaks(&tail[..cut]) {
                return Err("the remainder is not the input's last bytes after blank lines".into());
            }
            if blank_line_at_or_after(&rest).is_some() {
                return Err(format!("the remainder {:?} holds a blank line", String::from_utf8_lossy(&rest)));
            }
            check_data(&rest).map_err(|e| format!("remainder: {e}"))
        }
        None if tail.iter().all(u8::is_ascii_whitespace) => Ok(()),
        None => Err(format!("dropped a tail that is not whitespace: {:?}", String::from_utf8_lossy(tail))),
    }
}

/// Frames an AWS eventstream (Bedrock's ConverseStream) arriving in `chunks` as a stream relay does (feed each
/// chunk, take every whole message, then `finish` until it is done) and checks:
/// - the frames and the outcome (a clean end, or the framing error) are the same however the bytes are chunked
///   (as given, whole, byte by byte);
/// - a broken framer stays broken: after an error, every later call errs too;
/// - a clean end means the input is exactly a run of messages: walking the input by each prelude's total length
///   lands on its end after as many messages as there are frames.
pub fn eventstream_frames(chunks: &[&[u8]]) -> Result<(), String> {
    let input = chunks.concat();
    let framed = eventstream_framed(chunks.iter().copied())?;
    if eventstream_framed(std::iter::once(input.as_slice()))? != framed {
        return Err("framing the stream whole differs from framing it in the given chunks".into());
    }
    if eventstream_framed(input.chunks(1))? != framed {
        return Err("framing the stream byte by byte differs from framing it in the given chunks".into());
    }
    let (frames, error) = framed;
    let mut at = 0usize;
    let mut messages = 0usize;
    while let Some(prelude) = input.get(at..at + 4) {
        let total = u32::from_be_bytes([prelude[0], prelude[1], prelude[2], prelude[3]]) as usize;
        if total < 16 {
            break;
        }
        at = at.saturating_add(total);
        messages += 1;
    }
    match error {
        None if at != input.len() || messages != frames.len() => Err(format!(
            "a clean end after {} frames, but the input walks as {messages} messages ending at {at} of {}",
            frames.len(),
            input.len()
        )),
        None => Ok(()),
        Some(_) if frames.len() > messages => {
            Err(format!("{} frames from an input holding at most {messages} messages", frames.len()))
        }
        Some(_) => Ok(()),
    }
}

type EventStreamFramed = (Vec<Frame>, Option<String>);

fn eventstream_framed<'a>(chunks: impl Iterator<Item = &'a [u8]>) -> Result<EventStreamFramed, String> {
    let mut decoder = EventStreamDecoder::default();
    let mut frames = Vec::new();
    let mut error = None;
    'feeding: for chunk in chunks {
        decoder.feed(chunk);
        loop {
            match decoder.next_frame() {
                Ok(Some(frame)) => frames.push(frame),
                Ok(None) => break,
                Err(e) => {
                    error = Some(e.0);
                    break 'feeding;
                }
            }
        }
    }
    while error.is_none() {
        match decoder.finish() {
            Ok(Some(frame)) => frames.push(frame),
            Ok(None) => return Ok((frames, None)),
            Err(e) => error = Some(e.0),
        }
    }
    decoder.feed(b"\0\0\0\x10");
    if decoder.next_frame().is_ok() || decoder.finish().is_ok() {
        return Err("the framer recovered after an error".into());
    }
    Ok((frames, error))
}

type Framed = (Vec<Vec<u8>>, Option<Vec<u8>>);

fn frame<'a>(chunks: impl Iterator<Item = &'a [u8]>) -> Framed {
    let mut decoder = SseDecoder::default();
    let mut events = Vec::new();
    for chunk in chunks {
        decoder.feed(chunk);
        while let Some(event) = decoder.next_event() {
            events.push(event.to_vec());
        }
    }
    (events, decoder.finish().map(|rest| rest.to_vec()))
}

fn only_line_breaks(bytes: &[u8]) -> bool {
    bytes.iter().all(|&b| b == b'\n' || b == b'\r')
}

fn is_blank(line: &[u8]) -> bool {
    line.is_empty() || line == b"\r"
}

/// The end (after its `\n`) of the first blank line in `bytes`, counting lines from the start of `bytes`.
fn blank_line_at_or_after(bytes: &[u8]) -> Option<usize> {
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'\n' {
            if is_blank(&bytes[start..i]) {
                return Some(i + 1);
            }
            start = i + 1;
        }
    }
    None
}

fn check_event(event: &[u8]) -> Result<(), &'static str> {
    if only_line_breaks(event) {
        return Err("an event of blank lines only");
    }
    if !(event.ends_with(b"\n\n") || event.ends_with(b"\n\r\n")) {
        return Err("does not end with a blank line");
    }
    if blank_line_at_or_after(event) != Some(event.len()) {
        return Err("holds a blank line before its end");
    }
    Ok(())
}

/// Where `event` ends in `input`, given that it starts at `from` or after CR/LF bytes that end with a LF (whole
/// blank lines). Candidates are `from` and the positions after each LF of the run, so the search stays linear.
fn find_after_blank_lines(input: &[u8], from: usize, event: &[u8]) -> Option<usize> {
    let mut start = from;
    loop {
        if input.get(start..)?.starts_with(event) {
            return Some(start + event.len());
        }
        let next_lf = start + input.get(start..)?.iter().position(|&b| b == b'\n')?;
        if !only_line_breaks(&input[start..next_lf]) {
            return None;
        }
        start = next_lf + 1;
    }
}

fn check_data(event: &[u8]) -> Result<(), String> {
    let has_data_line = event.split(|&b| b == b'\n').any(|line| line.starts_with(b"data:"));
    let data = event_data(event);
    if data.is_some() != has_data_line {
        return Err(format!("event_data is {data:?} but a data line is there: {has_data_line}"));
    }
    if let Some(mut peek) = data.as_deref().and_then(Peek::parse) {
        let usage = peek.take_usage();
        let _ = (usage, peek.finishes(), peek.is_usage_only(), peek.is_error());
    }
    Ok(())
}

/// Loads `yaml` as `tollgate --config` does (in the made-up environment of `fuzz_env`), then builds the routing
/// table from it with the vendored price catalog and picks a deployment of every group. A loaded config must hold what validation promises: non-empty names, non-zero timeouts,
/// distinct deployment ids, warnings that name a path; a picked deployment belongs to the group asked for (or, for
/// a model several names serve by `router.weights`, to one of those names).
pub fn load_config(yaml: &str) -> Result<(), String> {
    let env = fuzz_env;
    let Ok(config) = Config::load_str(yaml, &env) else {
        return Ok(());
    };
    check_config(&config)?;
    let _ = format!("{config:?}");
    let Ok(table) = RoutingTable::build(&config, &env, pricing::vendored(), |_, _, _| None) else {
        return Ok(());
    };
    for name in table.model_names() {
        for roll in [0.0, 0.5, 0.999_999] {
            if let Ok(picked) = table.pick(name, roll, 0, &[]) {
                // A model several weighted names serve (`router.weights`) is served by their deployments.
                let shared =
                    config.router.rules.weights.contains_key(&picked.model_group) && picked.upstream_model == *name;
                if &picked.model_group != name && !shared {
                    return Err(format!("picked `{}` of group `{}` for `{name}`", picked.id, picked.model_group));
                }
            }
        }
    }
    Ok(())
}

/// Every variable is set unless its name contains `MISSING`; base URLs (`OPENAI_API_BASE`) to a URL.
fn fuzz_env(name: &str) -> Option<String> {
    match name {
        _ if name.contains("MISSING") => None,
        // Where the store and Redis are: a made-up value is not a URL, and these are not what the target fuzzes.
        "DATABASE_URL" | "REDIS_URL" | "REDIS_HOST" | "REDIS_PORT" | "REDIS_PASSWORD" => None,
        _ if name.ends_with("_BASE") => Some(format!("http://127.0.0.1:9/{name}")),
        // A variable that must be a URL of a kind: the store's, as an operator sets it.
        _ if name.ends_with("_URL") => Some(format!("sqlite://fuzz-{name}.db?mode=rwc")),
        _ => Some(format!("fuzz-value-of-{name}")),
    }
}

fn check_config(config: &Config) -> Result<(), String> {
    let mut ids = HashSet::new();
    for d in &config.deployments {
        if d.model_name.trim().is_empty() || d.model.trim().is_empty() {
            return Err(format!("{}: empty model_name or model", d.path));
        }
        if d.timeout.is_zero() || d.stream_timeout.is_zero() {
            return Err(format!("{}: zero timeout", d.path));
        }
        if !ids.insert(d.id.as_str()) {
            return Err(format!("duplicate deployment id {}", d.id));
        }
        if let Some(key) = &d.api_key {
            let _ = key.masked();
        }
    }
    if config.router.cooldown_time.is_zero() || config.shutdown_grace.is_zero() || config.request_body_timeout.is_zero()
    {
        return Err("a zero duration got through".into());
    }
    if config.health_checks.background_interval.is_some_and(|i| i.is_zero()) {
        return Err("a zero health_check_interval got through".into());
    }
    let r = &config.router;
    if !(r.failure_threshold > 0.0 && r.failure_threshold <= 1.0) || r.failure_threshold_minimum_requests == 0 {
        return Err(format!("a failure threshold outside (0, 1] or below one call got through: {r:?}"));
    }
    if let Some(warning) = config.warnings.iter().find(|w| !w.contains('`')) {
        return Err(format!("a warning names no path: {warning}"));
    }
    Ok(())
}

/// Reads `bytes` as a journal file of frames, as the log writer reads a segment (and `Journal::open` a killed
/// process's active file) and checks:
/// - the frames found in the file cut where `Journal::open` cuts a leftover active file are the same, torn ones
///   included;
/// - a frame's record that decodes encodes to bytes that decode to the same record (the codec loses nothing).
pub fn journal_file(bytes: &[u8]) -> Result<(), String> {
    let read = |b: &[u8]| -> Vec<Option<Vec<u8>>> {
        frames(b)
            .map(|f| match f {
                journal::Frame::Record(payload) => Some(payload.to_vec()),
                journal::Frame::Torn => None,
            })
            .collect()
    };
    let whole = read(bytes);
    let cut = written_len(bytes);
    if cut > bytes.len() {
        return Err(format!("cut at {cut}, beyond the file's {} bytes", bytes.len()));
    }
    let kept = read(&bytes[..cut]);
    if kept != whole {
        return Err(format!("cutting at {cut} changed the frames: {} before, {} after", whole.len(), kept.len()));
    }
    for payload in whole.iter().flatten() {
        if let Ok(record) = codec::decode(payload) {
            let mut again = Vec::new();
            codec::encode(&record, &mut again);
            if codec::decode(&again).as_ref() != Ok(&record) {
                return Err(format!("{record:?} does not survive encoding"));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_seeds_and_edge_cases_hold() {
        let nested =
            |depth: usize| format!(r#"{{"model":"m","messages":[{}{}]}}"#, "[".repeat(depth), "]".repeat(depth));
        let bodies: Vec<Vec<u8>> = vec![
            include_bytes!("../../fuzz/corpus/request_parser/seed-chat-tools.json").to_vec(),
            include_bytes!("../../fuzz/corpus/request_parser/seed-chat-minimal.json").to_vec(),
            include_bytes!("../../fuzz/corpus/request_parser/seed-embeddings.json").to_vec(),
            include_bytes!("../../fuzz/corpus/request_parser/seed-unreadable-values.json").to_vec(),
            br#"{"model":"m","messages":[{}],"model":"n"}"#.to_vec(),
            br#"{"model":" ","messages":[{}],"stream":true,"stream_options":{"include_usage":1}}"#.to_vec(),
            br#"{"model":"m","messages":[{}],"stream_options":{"include_usage":true}}"#.to_vec(),
            b"[1]".to_vec(),
            b"{".to_vec(),
            Vec::new(),
            nested(MAX_DEPTH - 2).into_bytes(),
            nested(MAX_DEPTH - 1).into_bytes(),
            nested(200).into_bytes(),
            include_bytes!("../../fuzz/corpus/request_parser/seed-completion.json").to_vec(),
            br#"{"model":"m","prompt":["a",[1,2]],"stream":true}"#.to_vec(),
            br#"{"model":"m","prompt":"\ud800"}"#.to_vec(),
            br#"{"model":"m","prompt":[]}"#.to_vec(),
        ];
        for body in &bodies {
            let shown = String::from_utf8_lossy(body);
            assert_eq!(parse_chat(body), Ok(()), "{shown}");
            assert_eq!(parse_embeddings(body), Ok(()), "{shown}");
            assert_eq!(parse_completion(body), Ok(()), "{shown}");
        }
    }

    #[test]
    fn journal_seeds_and_edge_cases_hold() {
        let seed = include_bytes!("../../fuzz/corpus/journal_file/seed-two-records.bin");
        let mut torn = seed.to_vec();
        torn.extend_from_slice(&[40, 0, 0, 0, 1, 2, 3]);
        let mut flipped = seed.to_vec();
        flipped[12] ^= 0x40;
        let cases: Vec<Vec<u8>> =
            vec![seed.to_vec(), torn, flipped, [seed.as_slice(), &[0; 64]].concat(), Vec::new(), vec![0; 9], vec![1]];
        for bytes in &cases {
            assert_eq!(journal_file(bytes), Ok(()), "{bytes:?}");
        }
        let records =
            frames(seed).filter(|f| matches!(f, journal::Frame::Record(p) if codec::decode(p).is_ok())).count();
        assert_eq!(records, 2, "the seed holds two whole records");
    }

    #[test]
    fn sse_seeds_and_edge_cases_hold_in_any_chunking() {
        let streams: &[&[u8]] = &[
            include_bytes!("../../fuzz/corpus/sse_framer/seed-openai-stream.txt"),
            include_bytes!("../../fuzz/corpus/sse_framer/seed-crlf-comments.txt"),
            b"\r\r\n\ndata: a\n\n",
            b"\r\r\r\n\n\r\r\r\rx\n\n \t",
            b"data: a\r\n\r",
            b"\n\n\n",
            b"",
        ];
        for stream in streams {
            for size in [1, 2, 3, 7, 64] {
                let chunks: Vec<&[u8]> = stream.chunks(size).collect();
                assert_eq!(sse_frames(&chunks), Ok(()), "{:?} in chunks of {size}", String::from_utf8_lossy(stream));
            }
        }
    }

    #[test]
    fn upstream_response_seeds_and_edge_cases_hold_in_any_chunking() {
        let responses: &[&[u8]] = &[
            include_bytes!("../../fuzz/corpus/upstream_response/seed-sized.txt"),
            include_bytes!("../../fuzz/corpus/upstream_response/seed-chunked.txt"),
            include_bytes!("../../fuzz/corpus/upstream_response/seed-close-delimited.txt"),
            b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\nshort",
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhel",
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n",
            b"HTTP/1.1 204 No Content\r\n\r\nextra",
            b"NOT HTTP\r\n\r\n",
            b"",
        ];
        for response in responses {
            let response: Vec<u8> = response.iter().copied().filter(|&b| b != 0xFF).collect();
            for size in [1, 2, 3, 7, 64] {
                let chunks: Vec<&[u8]> = response.chunks(size).collect();
                let text = String::from_utf8_lossy(&response);
                assert_eq!(upstream_response(&chunks), Ok(()), "{text:?} in chunks of {size}");
            }
        }
        let seed: Vec<u8> = responses[1].iter().copied().filter(|&b| b != 0xFF).collect();
        let read = plain::read_chunks(&[&seed]).map(|(status, _, body)| (status, body));
        assert_eq!(read, Ok((200, b"data: [DONE]\n".to_vec())), "the chunked seed is a whole response");
    }

    #[test]
    fn eventstream_seeds_and_edge_cases_hold_in_any_chunking() {
        let seed = include_bytes!("../../fuzz/corpus/eventstream_framer/seed-converse-stream.bin");
        let stream = &seed[1..];
        let mut broken = stream.to_vec();
        broken[40] ^= 1;
        let streams: &[&[u8]] = &[stream, &stream[..stream.len() - 5], &broken, &[0, 0, 0, 16], b""];
        for stream in streams {
            for size in [1, 2, 3, 7, 64] {
                let chunks: Vec<&[u8]> = stream.chunks(size).collect();
                assert_eq!(eventstream_frames(&chunks), Ok(()), "{stream:?} in chunks of {size}");
            }
        }
        let whole = eventstream_framed(std::iter::once(stream)).unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!((whole.0.len(), whole.1), (6, None), "the seed is a whole stream of six messages");
    }

    #[test]
    fn the_framing_checks_are_not_vacuous() {
        assert!(check_event(b"data: a\n").is_err());
        assert!(check_event(b"data: a\n\ndata: b\n\n").is_err());
        assert!(check_event(b"\r\r\n\n").is_err());
        assert_eq!(find_after_blank_lines(b"\n\r\ndata: a\n\n", 0, b"data: a\n\n"), Some(12));
        assert_eq!(find_after_blank_lines(b"x\ndata: a\n\n", 0, b"data: a\n\n"), None);
        let refused = RawObject::parse(b"[1]");
        assert!(check_raw_object(b"{}", &RawObject::parse(b"{}"), &Reading::NotJson).is_err());
        assert!(check_raw_object(b"[1]", &refused, &Reading::Value(serde_json::json!({"a": 1}))).is_err());
    }

    #[test]
    fn config_seeds_load_and_hold() {
        let seeds = [
            include_str!("../../fuzz/corpus/config_loader/seed-quickstart.yaml"),
            include_str!("../../fuzz/corpus/config_loader/seed-litellm.yaml"),
            include_str!("../../fuzz/corpus/config_loader/seed-routing.yaml"),
            include_str!("../../fuzz/corpus/config_loader/seed-health.yaml"),
        ];
        for yaml in seeds {
            // Seeds that load all the way reach the routing table and the picks.
            let config = Config::load_str(yaml, &fuzz_env).unwrap_or_else(|e| unreachable!("{e}"));
            let table = RoutingTable::build(&config, &fuzz_env, pricing::vendored(), |_, _, _| None);
            assert!(table.as_ref().is_ok(), "{:?}", table.err());
        }
        for yaml in seeds.into_iter().chain([
            "",
            "model_list: [{model_name: a, litellm_params: {model: mock/a, rpm: 18446744073709551615}}]",
            "model_list: [{model_name: a, litellm_params: {model: mock/a, rpm: 18446744073709551615}}, {model_name: a, litellm_params: {model: mock/b, rpm: 2}}]",
            "model_list: [{model_name: a, litellm_params: {model: mock/m, weight: 4294967295}}, {model_name: b, litellm_params: {model: mock/m}}]\nrouter: {type: weighted_round_robin, weights: {a: 1e300, b: 1e-300}}",
        ]) {
            assert_eq!(load_config(yaml), Ok(()), "{yaml}");
        }
    }
}
