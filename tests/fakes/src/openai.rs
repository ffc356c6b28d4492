//! A fake OpenAI-compatible server. The request's `model` picks the behaviour (see the crate docs), so one
//! server serves every mode. Bodies and streams follow OpenAI's wire format byte for byte.

use std::{
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use actix_web::{body::SizedStream, http::StatusCode, web, HttpRequest, HttpResponse};
use bytes::Bytes;
use futures_util::{stream, Stream, StreamExt};
use serde_json::{json, Value};

use crate::record::Recorder;

const CREATED: u64 = 1_700_000_000;
const CONTENT_PIECES: [&str; 4] = ["Hello", " from", " fake", " upstream"];
const TOOL_ARGS: [&str; 3] = ["{\"city\"", ":\"Par", "is\"}"];

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/chat/completions", web::post().to(chat))
        .route("/chat/completions", web::post().to(chat))
        .route("/v1/embeddings", web::post().to(embeddings))
        .route("/embeddings", web::post().to(embeddings))
        .route("/v1/models", web::get().to(models))
        .route("/__fake/requests", web::get().to(list_requests))
        .route("/__fake/requests", web::delete().to(clear))
        .route("/__fake/events", web::get().to(list_events))
        .route("/__fake/events", web::delete().to(clear));
}

#[derive(Debug, Clone, PartialEq)]
enum Mode {
    Normal,
    Tools,
    Error(u16),
    Delay(u64),
    Hang,
    SlowStream,
    Stall,
    Reset,
    Echo,
}

fn mode(model: &str) -> Mode {
    if let Some(status) = model.strip_prefix("error-").and_then(|s| s.parse().ok()) {
        return Mode::Error(status);
    }
    if let Some(ms) = model.strip_prefix("delay-").and_then(|s| s.parse().ok()) {
        return Mode::Delay(ms);
    }
    match model {
        "tools" => Mode::Tools,
        "hang" => Mode::Hang,
        "slow-stream" => Mode::SlowStream,
        "stall" => Mode::Stall,
        "reset" => Mode::Reset,
        "echo" => Mode::Echo,
        _ => Mode::Normal,
    }
}

fn headers_json(req: &HttpRequest) -> Value {
    let map: serde_json::Map<String, Value> = req
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), Value::String(v.to_str().unwrap_or("").to_owned())))
        .collect();
    Value::Object(map)
}

fn error_response(status: u16) -> HttpResponse {
    let (kind, code, message) = match status {
        401 => (
            "invalid_request_error",
            json!("invalid_api_key"),
            format!("fake upstream {status}: Incorrect API key provided: sk-fa***key"),
        ),
        404 => ("invalid_request_error", json!("model_not_found"), format!("fake upstream {status}: model not found")),
        429 => ("requests", json!("rate_limit_exceeded"), format!("fake upstream {status}: rate limit reached")),
        s if s >= 500 => ("server_error", Value::Null, format!("fake upstream {status}: internal error")),
        _ => ("invalid_request_error", Value::Null, format!("fake upstream {status}: bad request")),
    };
    let mut res = HttpResponse::build(StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST));
    if status == 429 {
        res.insert_header(("retry-after", "7")).insert_header(("x-ratelimit-remaining-requests", "0"));
    }
    res.json(json!({"error": {"message": message, "type": kind, "param": null, "code": code}}))
}

fn bad_json() -> HttpResponse {
    HttpResponse::BadRequest().json(json!({"error": {"message": "fake upstream 400: body is not valid JSON",
        "type": "invalid_request_error", "param": null, "code": null}}))
}

async fn chat(req: HttpRequest, body: web::Bytes, rec: web::Data<Recorder>) -> HttpResponse {
    let Ok(parsed) = serde_json::from_slice::<Value>(&body) else {
        rec.request(req.path(), headers_json(&req), Value::Null);
        return bad_json();
    };
    let model = parsed["model"].as_str().unwrap_or("normal").to_owned();
    let stream = parsed["stream"].as_bool().unwrap_or(false);
    let include_usage = parsed["stream_options"]["include_usage"].as_bool().unwrap_or(false);
    let messages = parsed["messages"].as_array().map_or(0, Vec::len) as u64;
    let seq = rec.request(req.path(), headers_json(&req), parsed.clone());
    let id = format!("chatcmpl-fake-{seq}");
    let usage = json!({"prompt_tokens": messages * 10, "completion_tokens": 5, "total_tokens": messages * 10 + 5});
    match mode(&model) {
        Mode::Error(status) => return error_response(status),
        Mode::Hang => {
            actix_rt::time::sleep(Duration::from_secs(3600)).await;
            return HttpResponse::GatewayTimeout().finish();
        }
        Mode::Delay(ms) => actix_rt::time::sleep(Duration::from_millis(ms)).await,
        Mode::Echo => {
            let content = String::from_utf8_lossy(&body).into_owned();
            return HttpResponse::Ok().json(completion(
                &id,
                &model,
                json!({"role": "assistant", "content": content, "refusal": null}),
                "stop",
                &usage,
            ));
        }
        Mode::Reset if !stream => {
            let partial = vec![Bytes::from_static(b"{\"id\":\"chatcmpl-")];
            return HttpResponse::Ok().content_type("application/json").body(broken_after(partial));
        }
        _ => {}
    }
    let mode = mode(&model);
    if !stream {
        return match mode {
            Mode::Tools => {
                let message = json!({"role": "assistant", "content": null, "refusal": null, "tool_calls": [
                    {"id": "call_fake_1", "type": "function", "function": {"name": "get_weather", "arguments": TOOL_ARGS.concat()}}]});
                HttpResponse::Ok().json(completion(&id, &model, message, "tool_calls", &usage))
            }
            _ => HttpResponse::Ok()
                .insert_header(("x-ratelimit-remaining-requests", "99"))
                .insert_header(("x-ratelimit-reset-requests", "6m0s"))
                .json(completion(
                    &id,
                    &model,
                    json!({"role": "assistant", "content": CONTENT_PIECES.concat(), "refusal": null}),
                    "stop",
                    &usage,
                )),
        };
    }
    let chunk = Chunker { id: id.clone(), model: model.clone(), include_usage };
    let sse = |events: Vec<Bytes>| {
        HttpResponse::Ok()
            .content_type("text/event-stream")
            .streaming(stream::iter(events.into_iter().map(Ok::<_, std::io::Error>)))
    };
    match mode {
        Mode::Tools => {
            let mut events = vec![chunk.delta(json!({"role": "assistant", "content": null, "refusal": null}), None)];
            events.push(chunk.delta(json!({"tool_calls": [{"index": 0, "id": "call_fake_1", "type": "function", "function": {"name": "get_weather", "arguments": ""}}]}), None));
            for piece in TOOL_ARGS {
                events.push(chunk.delta(json!({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}), None));
            }
            events.push(chunk.delta(json!({}), Some("tool_calls")));
            events.extend(chunk.tail(&usage));
            sse(events)
        }
        Mode::Stall => {
            let events = vec![
                Ok::<_, std::io::Error>(
                    chunk.delta(json!({"role": "assistant", "content": "", "refusal": null}), None),
                ),
                Ok(chunk.delta(json!({"content": "Hello"}), None)),
            ];
            let body = DropGuard {
                inner: Box::pin(stream::iter(events).chain(stream::pending())),
                rec: rec.get_ref().clone(),
                seq,
                finished: false,
            };
            HttpResponse::Ok().content_type("text/event-stream").streaming(body)
        }
        Mode::SlowStream => {
            let head = stream::iter(vec![Ok::<_, std::io::Error>(
                chunk.delta(json!({"role": "assistant", "content": "", "refusal": null}), None),
            )]);
            let ticking = chunk.clone();
            let ticks = stream::iter(0..1200).then(move |_| {
                let c = ticking.clone();
                async move {
                    actix_rt::time::sleep(Duration::from_millis(50)).await;
                    Ok(c.delta(json!({"content": "tick "}), None))
                }
            });
            let tail = stream::iter(
                std::iter::once(chunk.delta(json!({}), Some("stop")))
                    .chain(chunk.tail(&usage))
                    .map(Ok)
                    .collect::<Vec<_>>(),
            );
            let body = DropGuard {
                inner: Box::pin(head.chain(ticks).chain(tail)),
                rec: rec.get_ref().clone(),
                seq,
                finished: false,
            };
            HttpResponse::Ok().content_type("text/event-stream").streaming(body)
        }
        Mode::Reset => {
            let events = vec![
                chunk.delta(json!({"role": "assistant", "content": "", "refusal": null}), None),
                chunk.delta(json!({"content": "Hello"}), None),
            ];
            HttpResponse::Ok().content_type("text/event-stream").body(broken_after(events))
        }
        _ => {
            let mut events = vec![chunk.delta(json!({"role": "assistant", "content": "", "refusal": null}), None)];
            events.extend(CONTENT_PIECES.iter().map(|p| chunk.delta(json!({"content": p}), None)));
            events.push(chunk.delta(json!({}), Some("stop")));
            events.extend(chunk.tail(&usage));
            sse(events)
        }
    }
}

/// Sends `parts` under a `Content-Length` far larger than them, lets them reach the socket, then fails the body
/// so actix aborts the connection: the client sees a transfer cut short, which no framing can mistake for an end.
fn broken_after(parts: Vec<Bytes>) -> SizedStream<impl Stream<Item = Result<Bytes, std::io::Error>>> {
    let sent = stream::iter(parts.into_iter().map(Ok));
    let reset = stream::once(async {
        actix_rt::time::sleep(Duration::from_millis(100)).await;
        Err(std::io::Error::other("fake reset"))
    });
    SizedStream::new(1 << 20, sent.chain(reset))
}

fn completion(id: &str, model: &str, message: Value, finish: &str, usage: &Value) -> Value {
    json!({"id": id, "object": "chat.completion", "created": CREATED, "model": model, "system_fingerprint": "fp_fake",
        "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": finish}], "usage": usage})
}

#[derive(Clone)]
struct Chunker {
    id: String,
    model: String,
    include_usage: bool,
}

impl Chunker {
    fn event(&self, mut chunk: Value) -> Bytes {
        if self.include_usage && chunk.get("usage").is_none() {
            chunk["usage"] = Value::Null;
        }
        Bytes::from(format!("data: {chunk}\n\n"))
    }

    fn delta(&self, delta: Value, finish: Option<&str>) -> Bytes {
        self.event(json!({"id": self.id, "object": "chat.completion.chunk", "created": CREATED, "model": self.model,
            "system_fingerprint": "fp_fake",
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]}))
    }

    /// The usage chunk (only when asked) and `[DONE]`.
    fn tail(&self, usage: &Value) -> Vec<Bytes> {
        let mut out = Vec::new();
        if self.include_usage {
            out.push(self.event(json!({"id": self.id, "object": "chat.completion.chunk", "created": CREATED,
                "model": self.model, "system_fingerprint": "fp_fake", "choices": [], "usage": usage})));
        }
        out.push(Bytes::from_static(b"data: [DONE]\n\n"));
        out
    }
}

/// Records `stream_dropped:<seq>` when the body is dropped before it finished: the client went away.
struct DropGuard {
    inner: Pin<Box<dyn Stream<Item = Result<Bytes, std::io::Error>>>>,
    rec: Recorder,
    seq: u64,
    finished: bool,
}

impl Stream for DropGuard {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let next = self.inner.as_mut().poll_next(cx);
        if let Poll::Ready(None) = next {
            self.finished = true;
        }
        next
    }
}

impl Drop for DropGuard {
    fn drop(&mut self) {
        if !self.finished {
            self.rec.event(format!("stream_dropped:{}", self.seq));
        }
    }
}

async fn embeddings(req: HttpRequest, body: web::Bytes, rec: web::Data<Recorder>) -> HttpResponse {
    let Ok(parsed) = serde_json::from_slice::<Value>(&body) else {
        rec.request(req.path(), headers_json(&req), Value::Null);
        return bad_json();
    };
    rec.request(req.path(), headers_json(&req), parsed.clone());
    let model = parsed["model"].as_str().unwrap_or("normal").to_owned();
    if let Mode::Error(status) = mode(&model) {
        return error_response(status);
    }
    let inputs: Vec<String> = match &parsed["input"] {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items.iter().map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned)).collect(),
        _ => return bad_json(),
    };
    let tokens: usize = inputs.iter().map(|s| s.split_whitespace().count().max(1)).sum();
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(i, text)| {
            let v: Vec<f64> = (0..8u32).map(|d| f64::from((text.len() as u32 + d * 7) % 10) / 10.0).collect();
            json!({"object": "embedding", "index": i, "embedding": v})
        })
        .collect();
    HttpResponse::Ok().json(json!({"object": "list", "model": model, "data": data,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}))
}

async fn models() -> HttpResponse {
    HttpResponse::Ok().json(json!({"object": "list", "data": [{"id": "fake-model", "object": "model", "created": CREATED, "owned_by": "fake"}]}))
}

async fn list_requests(rec: web::Data<Recorder>) -> HttpResponse {
    HttpResponse::Ok().json(rec.requests())
}

async fn list_events(rec: web::Data<Recorder>) -> HttpResponse {
    HttpResponse::Ok().json(rec.events())
}

async fn clear(rec: web::Data<Recorder>) -> HttpResponse {
    rec.clear();
    HttpResponse::NoContent().finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_by_model_name() {
        let cases = [
            ("normal", Mode::Normal),
            ("gpt-4o", Mode::Normal),
            ("tools", Mode::Tools),
            ("error-429", Mode::Error(429)),
            ("delay-300", Mode::Delay(300)),
            ("hang", Mode::Hang),
            ("slow-stream", Mode::SlowStream),
            ("stall", Mode::Stall),
            ("reset", Mode::Reset),
            ("echo", Mode::Echo),
        ];
        for (name, want) in cases {
            assert_eq!(mode(name), want, "{name}");
        }
    }
}
