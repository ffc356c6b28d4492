//! The fake Anthropic Messages API: `POST /v1/messages` and `POST /v1/messages/count_tokens`, in Anthropic's exact
//! wire format (named SSE events for streams, `{"type":"error","error":{..}}` for errors). Every request is
//! recorded. A request needs an API key (`x-api-key` or `Authorization: Bearer`, as the 2.x SDK sends it; else
//! 401 `authentication_error`) and an `anthropic-version` header (else 400 `invalid_request_error`), like the
//! real API. The `model` picks the behaviour:
//!
//! | model          | behaviour                                                                                |
//! |----------------|------------------------------------------------------------------------------------------|
//! | `normal`/other | "Hello from fake upstream" (4 text deltas), `end_turn`                                   |
//! | `tools`        | a text block and two `tool_use` blocks (`get_weather` {"city":"Paris"}, `get_time` {})   |
//! | `thinking`     | a `thinking` block with a signature, then text; `output_tokens_details.thinking_tokens` 4|
//! | `echo`         | the request body it received, as the text                                                |
//! | `max-tokens`   | `stop_reason: max_tokens`                                                                |
//! | `stop-seq`     | `stop_reason: stop_sequence`, the request's first `stop_sequences` entry (else `###`)    |
//! | `too-long`     | 400 "prompt is too long: 250000 tokens > 200000 maximum"                                 |
//! | `error-<N>`    | HTTP N with Anthropic's error body (529 `overloaded_error`, 429 adds `retry-after: 7`)   |
//! | `stream-error` | streams: one text delta, then an `error` event (`overloaded_error`) and the end          |
//! | `cut`          | streams: one text delta, then the body ends (no `message_stop`)                          |
//! | `cut-json`     | streams: one text delta, then an event cut in the middle of its JSON, then the end       |
//! | `delay-<ms>`   | waits, then `normal`; `hang` never answers                                               |
//!
//! Usage is fixed and distinct per field: input 21, cache creation 3, cache read 5, output 9. Message ids are
//! `msg_fake_<seq>`, tool ids `toolu_fake_1` and `toolu_fake_2`. Streams carry `ping` events; the complete streams
//! of `normal`, `tools`, `thinking` and `stream-error` for the first request are `tests/fixtures/anthropic/*.sse`.
//! `count_tokens` answers `{"input_tokens":21}`.

use std::time::Duration;

use actix_web::{
    http::{
        header::{HeaderName, HeaderValue},
        StatusCode,
    },
    web, HttpRequest, HttpResponse,
};
use bytes::Bytes;
use serde_json::{json, Value};

use crate::{
    mode::Mode,
    openai::{headers_json, pieces},
    record::Recorder,
    sse,
};

const TEXT_PIECES: [&str; 4] = ["Hello", " from", " fake", " upstream"];
pub const INPUT_TOKENS: u64 = 21;
pub const CACHE_CREATION: u64 = 3;
pub const CACHE_READ: u64 = 5;
pub const OUTPUT_TOKENS: u64 = 9;
const THINKING_TOKENS: u64 = 4;
const TOOL_TEXT: &str = "Let me check.";
const WEATHER_PIECES: [&str; 3] = ["", "{\"city\"", ": \"Paris\"}"];
const THINKING_PIECES: [&str; 2] = ["Let me think", " about it."];
const SIGNATURE: &str = "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds";
const THINKING_ANSWER: &str = "Paris.";
const TOO_LONG: &str = "prompt is too long: 250000 tokens > 200000 maximum";
const HANG: Duration = Duration::from_secs(3600);

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/messages", web::post().to(messages))
        .route("/v1/messages/count_tokens", web::post().to(count_tokens));
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Behaviour {
    Normal,
    Tools,
    Thinking,
    Echo,
    MaxTokens,
    StopSeq,
    TooLong,
    Error(u16),
    StreamError,
    Cut,
    CutJson,
    Delay(u64),
    Hang,
    /// `stream-<N>`: N text pieces (`w0 `, `w1 `, …), streamed one write per event, as the OpenAI fake's
    /// `stream-<N>`: the benchmark's translated-stream row compares the two.
    Pieces(u32),
}

impl Behaviour {
    fn of(model: &str) -> Behaviour {
        match model {
            "thinking" => Behaviour::Thinking,
            "max-tokens" => Behaviour::MaxTokens,
            "stop-seq" => Behaviour::StopSeq,
            "too-long" => Behaviour::TooLong,
            "stream-error" => Behaviour::StreamError,
            "cut" => Behaviour::Cut,
            "cut-json" => Behaviour::CutJson,
            _ => match Mode::from_model(model) {
                Mode::Tools => Behaviour::Tools,
                Mode::Echo => Behaviour::Echo,
                Mode::Error(status) => Behaviour::Error(status),
                Mode::Delay(ms) => Behaviour::Delay(ms),
                Mode::Hang => Behaviour::Hang,
                Mode::Pieces(n) => Behaviour::Pieces(n),
                _ => Behaviour::Normal,
            },
        }
    }
}

fn error(status: u16, kind: &str, message: &str, seq: u64) -> HttpResponse {
    let http = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    let body =
        json!({"type": "error", "error": {"type": kind, "message": message}, "request_id": format!("req_fake_{seq}")});
    HttpResponse::build(http).insert_header(("request-id", format!("req_fake_{seq}"))).json(body)
}

/// What `error-<status>` answers: Anthropic's error type for that status.
fn error_mode(status: u16, seq: u64) -> HttpResponse {
    let (kind, message) = match status {
        400 => ("invalid_request_error", "fake upstream 400: bad request"),
        401 => ("authentication_error", "invalid x-api-key"),
        403 => ("permission_error", "fake upstream 403: not allowed"),
        404 => ("not_found_error", "fake upstream 404: model not found"),
        413 => ("request_too_large", "fake upstream 413: request too large"),
        429 => ("rate_limit_error", "fake upstream 429: rate limit reached"),
        529 => ("overloaded_error", "Overloaded"),
        500..=599 => ("api_error", "Internal server error"),
        _ => ("invalid_request_error", "fake upstream: bad request"),
    };
    let mut response = error(status, kind, message, seq);
    if status == 429 {
        let headers = response.headers_mut();
        for (name, value) in [
            ("retry-after", "7"),
            ("anthropic-ratelimit-requests-remaining", "0"),
            ("anthropic-ratelimit-requests-reset", "2026-01-01T00:00:07Z"),
        ] {
            headers.insert(HeaderName::from_static(name), HeaderValue::from_static(value));
        }
    }
    response
}

/// 401 without a key, 400 without `anthropic-version`, as Anthropic answers them.
fn refuse_unauthenticated(req: &HttpRequest, seq: u64) -> Option<HttpResponse> {
    let headers = req.headers();
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.strip_prefix("Bearer ").is_some_and(|k| !k.trim().is_empty()));
    let key = headers.get("x-api-key").is_some_and(|v| !v.is_empty());
    if !key && !bearer {
        return Some(error(401, "authentication_error", "x-api-key header is required", seq));
    }
    if headers.get("anthropic-version").is_none() {
        return Some(error(400, "invalid_request_error", "anthropic-version: header is required", seq));
    }
    None
}

async fn count_tokens(req: HttpRequest, body: web::Bytes, rec: web::Data<Recorder>) -> HttpResponse {
    let parsed = serde_json::from_slice::<Value>(&body).unwrap_or(Value::Null);
    let seq = rec.request(req.path(), headers_json(&req), parsed.clone());
    if let Some(refused) = refuse_unauthenticated(&req, seq) {
        return refused;
    }
    if !parsed.is_object() {
        return error(400, "invalid_request_error", "fake upstream 400: body is not a JSON object", seq);
    }
    HttpResponse::Ok().json(json!({"input_tokens": INPUT_TOKENS}))
}

async fn messages(req: HttpRequest, body: web::Bytes, rec: web::Data<Recorder>) -> HttpResponse {
    let parsed = serde_json::from_slice::<Value>(&body).unwrap_or(Value::Null);
    let seq = rec.request(req.path(), headers_json(&req), parsed.clone());
    if let Some(refused) = refuse_unauthenticated(&req, seq) {
        return refused;
    }
    if !parsed.is_object() {
        return error(400, "invalid_request_error", "fake upstream 400: body is not a JSON object", seq);
    }
    if parsed.get("max_tokens").and_then(Value::as_u64).is_none() {
        return error(400, "invalid_request_error", "max_tokens: Field required", seq);
    }
    let model = parsed["model"].as_str().unwrap_or_default().to_owned();
    let stream = parsed["stream"].as_bool() == Some(true);
    let mut behaviour = Behaviour::of(&model);
    match behaviour {
        Behaviour::Error(status) => return error_mode(status, seq),
        Behaviour::TooLong => return error(400, "invalid_request_error", TOO_LONG, seq),
        Behaviour::Hang => {
            actix_rt::time::sleep(HANG).await;
            return HttpResponse::GatewayTimeout().finish();
        }
        Behaviour::Delay(ms) => {
            actix_rt::time::sleep(Duration::from_millis(ms)).await;
            behaviour = Behaviour::Normal;
        }
        _ => {}
    }
    let stop_sequence = parsed["stop_sequences"][0].as_str().unwrap_or("###").to_owned();
    let reply = Reply {
        id: format!("msg_fake_{seq}"),
        model,
        behaviour,
        echo: String::from_utf8_lossy(&body).into_owned(),
        stop_sequence,
    };
    let mut response = match (stream, reply.behaviour) {
        (true, Behaviour::Pieces(_)) => sse::sse_flushed(reply.events()),
        (true, _) => sse::sse(reply.events()),
        (false, _) => HttpResponse::Ok().json(reply.whole()),
    };
    let headers = response.headers_mut();
    if let Ok(id) = HeaderValue::from_str(&format!("req_fake_{seq}")) {
        headers.insert(HeaderName::from_static("request-id"), id);
    }
    headers.insert(HeaderName::from_static("anthropic-ratelimit-requests-remaining"), HeaderValue::from_static("99"));
    response
}

/// One reply, whole or streamed.
struct Reply {
    id: String,
    model: String,
    behaviour: Behaviour,
    echo: String,
    stop_sequence: String,
}

/// The final usage, in Anthropic's field order (as text: `json!` would sort the keys).
fn usage(thinking: bool) -> String {
    let details = if thinking {
        format!(r#","output_tokens_details":{{"thinking_tokens":{THINKING_TOKENS}}}"#)
    } else {
        String::new()
    };
    format!(
        r#"{{"input_tokens":{INPUT_TOKENS},"cache_creation_input_tokens":{CACHE_CREATION},"cache_read_input_tokens":{CACHE_READ},"output_tokens":{OUTPUT_TOKENS}{details}}}"#
    )
}

/// A JSON string literal.
fn s(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_default()
}

fn event(name: &str, data: &str) -> Bytes {
    Bytes::from(format!("event: {name}\ndata: {data}\n\n"))
}

fn ping() -> Bytes {
    event("ping", r#"{"type":"ping"}"#)
}

fn block_start(index: usize, block: &str) -> Bytes {
    event(
        "content_block_start",
        &format!(r#"{{"type":"content_block_start","index":{index},"content_block":{block}}}"#),
    )
}

fn delta(index: usize, delta: &str) -> Bytes {
    event("content_block_delta", &format!(r#"{{"type":"content_block_delta","index":{index},"delta":{delta}}}"#))
}

fn text_delta(index: usize, text: &str) -> Bytes {
    delta(index, &format!(r#"{{"type":"text_delta","text":{}}}"#, s(text)))
}

fn block_stop(index: usize) -> Bytes {
    event("content_block_stop", &format!(r#"{{"type":"content_block_stop","index":{index}}}"#))
}

impl Reply {
    /// (stop_reason, stop_sequence) of this behaviour.
    fn stop(&self) -> (&'static str, Option<&str>) {
        match self.behaviour {
            Behaviour::Tools => ("tool_use", None),
            Behaviour::MaxTokens => ("max_tokens", None),
            Behaviour::StopSeq => ("stop_sequence", Some(&self.stop_sequence)),
            _ => ("end_turn", None),
        }
    }

    fn text(&self) -> String {
        match self.behaviour {
            Behaviour::Echo => self.echo.clone(),
            Behaviour::Pieces(n) => pieces(n).concat(),
            _ => TEXT_PIECES.concat(),
        }
    }

    /// The non-streaming Messages response.
    fn whole(&self) -> Value {
        let content = match self.behaviour {
            Behaviour::Tools => json!([
                {"type": "text", "text": TOOL_TEXT},
                {"type": "tool_use", "id": "toolu_fake_1", "name": "get_weather", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "toolu_fake_2", "name": "get_time", "input": {}},
            ]),
            Behaviour::Thinking => json!([
                {"type": "thinking", "thinking": THINKING_PIECES.concat(), "signature": SIGNATURE},
                {"type": "text", "text": THINKING_ANSWER},
            ]),
            _ => json!([{"type": "text", "text": self.text()}]),
        };
        let (stop_reason, stop_sequence) = self.stop();
        let mut usage: Value = serde_json::from_str(&usage(self.behaviour == Behaviour::Thinking)).unwrap_or_default();
        usage["cache_creation"] = json!({"ephemeral_5m_input_tokens": CACHE_CREATION, "ephemeral_1h_input_tokens": 0});
        usage["service_tier"] = json!("standard");
        json!({"id": self.id, "type": "message", "role": "assistant", "model": self.model, "content": content,
            "stop_reason": stop_reason, "stop_sequence": stop_sequence, "usage": usage})
    }

    /// The streamed response's events, in Anthropic's order and field order.
    fn events(&self) -> Vec<Bytes> {
        let start = format!(
            r#"{{"type":"message_start","message":{{"id":{},"type":"message","role":"assistant","model":{},"content":[],"stop_reason":null,"stop_sequence":null,"usage":{{"input_tokens":{INPUT_TOKENS},"cache_creation_input_tokens":{CACHE_CREATION},"cache_read_input_tokens":{CACHE_READ},"output_tokens":1}}}}}}"#,
            s(&self.id),
            s(&self.model)
        );
        let mut events = vec![event("message_start", &start)];
        match self.behaviour {
            Behaviour::Tools => {
                events.push(block_start(0, r#"{"type":"text","text":""}"#));
                events.push(text_delta(0, TOOL_TEXT));
                events.push(block_stop(0));
                events
                    .push(block_start(1, r#"{"type":"tool_use","id":"toolu_fake_1","name":"get_weather","input":{}}"#));
                for (i, piece) in WEATHER_PIECES.iter().enumerate() {
                    if i == 1 {
                        events.push(ping());
                    }
                    events.push(delta(1, &format!(r#"{{"type":"input_json_delta","partial_json":{}}}"#, s(piece))));
                }
                events.push(block_stop(1));
                events.push(block_start(2, r#"{"type":"tool_use","id":"toolu_fake_2","name":"get_time","input":{}}"#));
                events.push(delta(2, r#"{"type":"input_json_delta","partial_json":""}"#));
                events.push(block_stop(2));
            }
            Behaviour::Thinking => {
                events.push(block_start(0, r#"{"type":"thinking","thinking":"","signature":""}"#));
                events.push(ping());
                for piece in THINKING_PIECES {
                    events.push(delta(0, &format!(r#"{{"type":"thinking_delta","thinking":{}}}"#, s(piece))));
                }
                events.push(delta(0, &format!(r#"{{"type":"signature_delta","signature":{}}}"#, s(SIGNATURE))));
                events.push(block_stop(0));
                events.push(block_start(1, r#"{"type":"text","text":""}"#));
                events.push(text_delta(1, THINKING_ANSWER));
                events.push(block_stop(1));
            }
            Behaviour::StreamError | Behaviour::Cut | Behaviour::CutJson => {
                events.push(block_start(0, r#"{"type":"text","text":""}"#));
                events.push(ping());
                events.push(text_delta(0, TEXT_PIECES[0]));
                match self.behaviour {
                    Behaviour::StreamError => events.push(event(
                        "error",
                        r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
                    )),
                    Behaviour::CutJson => events.push(Bytes::from_static(
                        b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_d",
                    )),
                    _ => {}
                }
                return events;
            }
            Behaviour::Echo => {
                events.push(block_start(0, r#"{"type":"text","text":""}"#));
                events.push(text_delta(0, &self.echo));
                events.push(block_stop(0));
            }
            Behaviour::Pieces(n) => {
                events.push(block_start(0, r#"{"type":"text","text":""}"#));
                events.extend(pieces(n).iter().map(|piece| text_delta(0, piece)));
                events.push(block_stop(0));
            }
            _ => {
                events.push(block_start(0, r#"{"type":"text","text":""}"#));
                events.push(ping());
                for piece in TEXT_PIECES {
                    events.push(text_delta(0, piece));
                }
                events.push(block_stop(0));
            }
        }
        let (stop_reason, stop_sequence) = self.stop();
        let message_delta = json!({"stop_reason": stop_reason, "stop_sequence": stop_sequence});
        events.push(event(
            "message_delta",
            &format!(
                r#"{{"type":"message_delta","delta":{{"stop_reason":{},"stop_sequence":{}}},"usage":{}}}"#,
                message_delta["stop_reason"],
                message_delta["stop_sequence"],
                usage(self.behaviour == Behaviour::Thinking)
            ),
        ));
        events.push(event("message_stop", r#"{"type":"message_stop"}"#));
        events
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn behaviours_by_model_name() {
        let cases = [
            ("normal", Behaviour::Normal),
            ("claude-sonnet-4-5", Behaviour::Normal),
            ("tools", Behaviour::Tools),
            ("thinking", Behaviour::Thinking),
            ("echo", Behaviour::Echo),
            ("max-tokens", Behaviour::MaxTokens),
            ("stop-seq", Behaviour::StopSeq),
            ("too-long", Behaviour::TooLong),
            ("error-529", Behaviour::Error(529)),
            ("stream-error", Behaviour::StreamError),
            ("cut", Behaviour::Cut),
            ("cut-json", Behaviour::CutJson),
            ("delay-5", Behaviour::Delay(5)),
            ("hang", Behaviour::Hang),
            ("stream-3", Behaviour::Pieces(3)),
        ];
        for (model, want) in cases {
            assert_eq!(Behaviour::of(model), want, "{model}");
        }
    }

    #[test]
    fn weather_pieces_join_to_the_input() {
        let joined = WEATHER_PIECES.concat();
        assert_eq!(serde_json::from_str::<Value>(&joined).ok(), Some(json!({"city": "Paris"})));
    }
}
