//! The fake Cohere v2 endpoints: `POST /v2/chat` (whole, or SSE when the body says `"stream": true`) and
//! `POST /v2/embed`, in Cohere's wire format (providers.md section 6). The request's `model` picks the behaviour:
//!
//! | model             | behaviour                                                                              |
//! |-------------------|----------------------------------------------------------------------------------------|
//! | `normal`/other    | "Hello from fake cohere", streamed as message-start, content-start, 4 content-deltas,  |
//! |                   | content-end, message-end (`COMPLETE`)                                                  |
//! | `tools`           | tool plan, then `get_weather` `{"city":"Paris"}` and `get_time` with no arguments;     |
//! |                   | streamed as tool-plan-delta ×2, then tool-call-start/delta…/end per call (`TOOL_CALL`) |
//! | `max-tokens`      | "Hello from" and `finish_reason: MAX_TOKENS`                                           |
//! | `stream-error`    | "Hel", then `finish_reason: ERROR` with `delta.error` (whole: `ERROR`, no error text)  |
//! | `cut`             | streamed: message-start, content-start, one content-delta, then the body ends cleanly  |
//! |                   | (no message-end); whole: a JSON body that stops half-way                               |
//! | `cut-json`        | streamed: as `cut`, then half of a content-delta's JSON, and the body ends             |
//! | `echo`            | content = the request body it received                                                 |
//! | `error-<N>`       | HTTP N with Cohere's `{"id","message"}` (429 adds `retry-after: 7`)                    |
//! | `too-many-tokens` | HTTP 400 `too many tokens: ...` (Cohere's context-window overflow)                     |
//! | `blocked`         | HTTP 400 `blocked output: ...` (Cohere's safety filter)                                |
//! | `delay-<ms>`      | waits, then `normal`; `hang` never answers                                             |
//!
//! Usage is fixed and distinct so tests can tell which count was read: billed units 13 in / 7 out, processed
//! tokens 513 in / 8 out, 5 cached (`max-tokens`: 2 out billed; `tools`: 21 out billed). Embeddings honour
//! `error-<N>`, `delay-<ms>` and `hang`, return the OpenAI fake's deterministic 8-dimensional vectors as
//! `embeddings.float`, and bill one input token per word. Every request is recorded like the OpenAI fake's.

use std::time::Duration;

use actix_web::{http::StatusCode, web, HttpRequest, HttpResponse};
use bytes::Bytes;
use serde_json::{json, Value};

use crate::{
    mode::Mode,
    openai::{embed, headers_json},
    record::Recorder,
    sse,
};

const CONTENT_PIECES: [&str; 4] = ["Hello", " from", " fake", " cohere"];
const PLAN_PIECES: [&str; 2] = ["I will check", " the weather."];
const TOOL_ARGS_PIECES: [&str; 3] = ["{\"city\"", ":\"Par", "is\"}"];
const WEATHER_ID: &str = "get_weather_fake1";
const TIME_ID: &str = "get_time_fake2";
const STREAM_ERROR: &str = "fake cohere: internal error during generation";
const HANG: Duration = Duration::from_secs(3600);

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/v2/chat", web::post().to(chat)).route("/v2/embed", web::post().to(embed_texts));
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CohereMode {
    Normal,
    Tools,
    MaxTokens,
    StreamError,
    Cut,
    CutJson,
    Echo,
    Error(u16),
    TooManyTokens,
    Blocked,
    Delay(u64),
    Hang,
}

impl CohereMode {
    fn from_model(model: &str) -> Self {
        match model {
            "max-tokens" => return Self::MaxTokens,
            "stream-error" => return Self::StreamError,
            "cut" => return Self::Cut,
            "cut-json" => return Self::CutJson,
            "too-many-tokens" => return Self::TooManyTokens,
            "blocked" => return Self::Blocked,
            _ => {}
        }
        // The shared modes that mean something here; the OpenAI fake's transport modes answer like `normal`.
        match Mode::from_model(model) {
            Mode::Tools => Self::Tools,
            Mode::Echo => Self::Echo,
            Mode::Error(status) => Self::Error(status),
            Mode::Delay(ms) => Self::Delay(ms),
            Mode::Hang => Self::Hang,
            _ => Self::Normal,
        }
    }
}

/// Cohere's error body.
fn error(status: u16, message: &str) -> HttpResponse {
    let http = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    let mut res = HttpResponse::build(http);
    if status == 429 {
        res.insert_header(("retry-after", "7"));
    }
    res.json(json!({"id": "fake-error-id", "message": message}))
}

fn error_message(status: u16) -> String {
    let what = match status {
        401 => "invalid api token",
        404 => "model 'x' not found, make sure the correct model ID was used and that you have access to the model.",
        429 => "You are using a Trial key, which is limited to 10 API calls / minute.",
        s if s >= 500 => "internal server error, this has been reported to our developers.",
        _ => "invalid request: fake upstream",
    };
    format!("fake cohere {status}: {what}")
}

/// The answers every endpoint shares: errors at once, a hang never ends, a delay waits and then lets the caller
/// answer normally (`None`).
async fn early(mode: CohereMode) -> Option<HttpResponse> {
    match mode {
        CohereMode::Error(status) => Some(error(status, &error_message(status))),
        CohereMode::TooManyTokens => Some(error(
            400,
            "too many tokens: size limit exceeded by 1234 tokens. Try using shorter or fewer inputs, or setting prompt_truncation='AUTO'.",
        )),
        CohereMode::Blocked => Some(error(
            400,
            "blocked output: please adjust your prompt and try again, as this generation may be a potential violation of our Usage Guidelines.",
        )),
        CohereMode::Hang => {
            actix_rt::time::sleep(HANG).await;
            Some(HttpResponse::GatewayTimeout().finish())
        }
        CohereMode::Delay(ms) => {
            actix_rt::time::sleep(Duration::from_millis(ms)).await;
            None
        }
        _ => None,
    }
}

/// Billed units differ from processed tokens on purpose: a test can tell which one was counted.
fn usage(billed_output: u64) -> Value {
    json!({
        "billed_units": {"input_tokens": 13, "output_tokens": billed_output},
        "tokens": {"input_tokens": 513, "output_tokens": billed_output + 1},
        "cached_tokens": 5,
    })
}

async fn chat(req: HttpRequest, body: web::Bytes, rec: web::Data<Recorder>) -> HttpResponse {
    let Ok(parsed) = serde_json::from_slice::<Value>(&body) else {
        rec.request(req.path(), headers_json(&req), Value::Null);
        return error(400, "invalid request: body is not valid JSON");
    };
    let model = parsed["model"].as_str().unwrap_or_default().to_owned();
    let stream = parsed["stream"].as_bool() == Some(true);
    let seq = rec.request(req.path(), headers_json(&req), parsed);
    let mode = CohereMode::from_model(&model);
    if let Some(answer) = early(mode).await {
        return answer;
    }
    let id = format!("fake-cohere-{seq}");
    if stream {
        streamed(mode, &id, &body)
    } else {
        whole(mode, &id, &body)
    }
}

fn text_reply(id: &str, text: &str, finish: &str, usage: Value) -> Value {
    json!({
        "id": id,
        "finish_reason": finish,
        "message": {"role": "assistant", "content": [{"type": "text", "text": text}]},
        "usage": usage,
    })
}

fn whole(mode: CohereMode, id: &str, body: &[u8]) -> HttpResponse {
    let reply = match mode {
        CohereMode::Tools => json!({
            "id": id,
            "finish_reason": "TOOL_CALL",
            "message": {
                "role": "assistant",
                "tool_plan": PLAN_PIECES.concat(),
                "tool_calls": [
                    {"id": WEATHER_ID, "type": "function",
                        "function": {"name": "get_weather", "arguments": TOOL_ARGS_PIECES.concat()}},
                    {"id": TIME_ID, "type": "function", "function": {"name": "get_time", "arguments": "{}"}},
                ],
            },
            "usage": usage(21),
        }),
        CohereMode::MaxTokens => text_reply(id, &CONTENT_PIECES[..2].concat(), "MAX_TOKENS", usage(2)),
        CohereMode::StreamError => text_reply(id, "Hel", "ERROR", usage(1)),
        CohereMode::Echo => text_reply(id, &String::from_utf8_lossy(body), "COMPLETE", usage(7)),
        CohereMode::Cut | CohereMode::CutJson => {
            let full = text_reply(id, &CONTENT_PIECES.concat(), "COMPLETE", usage(7)).to_string();
            let half = full.get(..full.len() / 2).unwrap_or_default().to_owned();
            return HttpResponse::Ok().content_type("application/json").body(half);
        }
        _ => text_reply(id, &CONTENT_PIECES.concat(), "COMPLETE", usage(7)),
    };
    HttpResponse::Ok().json(reply)
}

/// One v2 SSE event: `event: <type>` and the data (which repeats the type), then a blank line.
fn event(data: &Value) -> Bytes {
    let kind = data["type"].as_str().unwrap_or_default();
    Bytes::from(format!("event: {kind}\ndata: {data}\n\n"))
}

fn message_start(id: &str) -> Bytes {
    event(&json!({"id": id, "type": "message-start",
        "delta": {"message": {"role": "assistant", "content": [], "tool_plan": "", "tool_calls": [], "citations": []}}}))
}

fn content_start() -> Bytes {
    event(&json!({"type": "content-start", "index": 0,
        "delta": {"message": {"content": {"type": "text", "text": ""}}}}))
}

fn content_delta(text: &str) -> Bytes {
    event(&json!({"type": "content-delta", "index": 0, "delta": {"message": {"content": {"text": text}}}}))
}

fn content_end() -> Bytes {
    event(&json!({"type": "content-end", "index": 0}))
}

fn message_end(id: &str, finish: &str, error: Option<&str>, usage: Value) -> Bytes {
    event(&json!({"type": "message-end", "id": id,
        "delta": {"finish_reason": finish, "error": error, "usage": usage}}))
}

fn text_stream(id: &str, pieces: &[&str], finish: &str, usage: Value) -> Vec<Bytes> {
    let mut events = vec![message_start(id), content_start()];
    events.extend(pieces.iter().map(|p| content_delta(p)));
    events.push(content_end());
    events.push(message_end(id, finish, None, usage));
    events
}

fn tool_call_start(index: u32, id: &str, name: &str) -> Bytes {
    event(&json!({"type": "tool-call-start", "index": index, "delta": {"message": {"tool_calls":
        {"id": id, "type": "function", "function": {"name": name, "arguments": ""}}}}}))
}

fn tool_call_delta(index: u32, fragment: &str) -> Bytes {
    event(&json!({"type": "tool-call-delta", "index": index,
        "delta": {"message": {"tool_calls": {"function": {"arguments": fragment}}}}}))
}

fn tool_call_end(index: u32) -> Bytes {
    event(&json!({"type": "tool-call-end", "index": index}))
}

fn streamed(mode: CohereMode, id: &str, body: &[u8]) -> HttpResponse {
    let events = match mode {
        CohereMode::Tools => {
            let mut events = vec![message_start(id)];
            events.extend(
                PLAN_PIECES
                    .iter()
                    .map(|p| event(&json!({"type": "tool-plan-delta", "delta": {"message": {"tool_plan": p}}}))),
            );
            events.push(tool_call_start(0, WEATHER_ID, "get_weather"));
            events.extend(TOOL_ARGS_PIECES.iter().map(|p| tool_call_delta(0, p)));
            events.push(tool_call_end(0));
            // The second call streams no argument fragment at all.
            events.push(tool_call_start(1, TIME_ID, "get_time"));
            events.push(tool_call_end(1));
            events.push(message_end(id, "TOOL_CALL", None, usage(21)));
            events
        }
        CohereMode::MaxTokens => text_stream(id, &CONTENT_PIECES[..2], "MAX_TOKENS", usage(2)),
        CohereMode::StreamError => {
            vec![
                message_start(id),
                content_start(),
                content_delta("Hel"),
                message_end(id, "ERROR", Some(STREAM_ERROR), usage(1)),
            ]
        }
        CohereMode::Cut => vec![message_start(id), content_start(), content_delta(CONTENT_PIECES[0])],
        CohereMode::CutJson => {
            let next = content_delta(CONTENT_PIECES[1]);
            let half = next.slice(..next.len() / 2);
            vec![message_start(id), content_start(), content_delta(CONTENT_PIECES[0]), half]
        }
        CohereMode::Echo => text_stream(id, &[&String::from_utf8_lossy(body)], "COMPLETE", usage(7)),
        _ => text_stream(id, &CONTENT_PIECES, "COMPLETE", usage(7)),
    };
    sse::sse(events)
}

async fn embed_texts(req: HttpRequest, body: web::Bytes, rec: web::Data<Recorder>) -> HttpResponse {
    let Ok(parsed) = serde_json::from_slice::<Value>(&body) else {
        rec.request(req.path(), headers_json(&req), Value::Null);
        return error(400, "invalid request: body is not valid JSON");
    };
    let model = parsed["model"].as_str().unwrap_or_default().to_owned();
    let texts: Option<Vec<String>> =
        parsed["texts"].as_array().map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect());
    let seq = rec.request(req.path(), headers_json(&req), parsed);
    if let Some(answer) = early(CohereMode::from_model(&model)).await {
        return answer;
    }
    let Some(texts) = texts.filter(|t| !t.is_empty()) else {
        return error(400, "invalid request: texts must be a non-empty list of strings");
    };
    let tokens: u64 = texts.iter().map(|t| t.split_whitespace().count().max(1) as u64).sum();
    let vectors: Vec<[f64; 8]> = texts.iter().map(|t| embed(t)).collect();
    HttpResponse::Ok().json(json!({
        "id": format!("fake-embed-{seq}"),
        "embeddings": {"float": vectors},
        "texts": texts,
        "meta": {"api_version": {"version": "2"}, "billed_units": {"input_tokens": tokens}},
        "response_type": "embeddings_by_type",
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_by_model_name() {
        let cases = [
            ("normal", CohereMode::Normal),
            ("command-a-03-2025", CohereMode::Normal),
            ("tools", CohereMode::Tools),
            ("max-tokens", CohereMode::MaxTokens),
            ("stream-error", CohereMode::StreamError),
            ("cut", CohereMode::Cut),
            ("cut-json", CohereMode::CutJson),
            ("echo", CohereMode::Echo),
            ("error-429", CohereMode::Error(429)),
            ("too-many-tokens", CohereMode::TooManyTokens),
            ("blocked", CohereMode::Blocked),
            ("delay-5", CohereMode::Delay(5)),
            ("hang", CohereMode::Hang),
            ("reset", CohereMode::Normal),
        ];
        for (name, want) in cases {
            assert_eq!(CohereMode::from_model(name), want, "{name}");
        }
    }
}
