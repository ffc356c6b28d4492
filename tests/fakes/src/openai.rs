//! The fake OpenAI-compatible endpoints: chat completions, embeddings and models (legacy text
//! completions are in `completions.rs`). The request's `model` picks the behaviour (see [`crate::mode`]), so one server serves every mode; bodies follow OpenAI's wire format.
//!
//! Azure OpenAI's paths are served too: `/openai/deployments/{deployment}/chat/completions` and
//! `/openai/deployments/{deployment}/embeddings`, which answer like the OpenAI paths (the body's `model` still
//! picks the mode) but, like Azure, refuse a request without the `api-version` query parameter with a 400.
//! Requests are recorded with their query string in `path`.

use std::time::Duration;

use actix_web::{http::StatusCode, web, HttpRequest, HttpResponse};
use bytes::Bytes;
use futures_util::{stream, StreamExt};
use serde_json::Value;

use crate::{
    accounting, agent, completions,
    mode::Mode,
    record::Recorder,
    sse::{self, Chunks},
    wire::{
        Completion, Embedding, EmbeddingList, EmbeddingUsage, ErrorBody, ErrorDetail, Function, Message, ToolCall,
        Usage, MODELS,
    },
};

pub(crate) const CONTENT_PIECES: [&str; 4] = ["Hello", " from", " fake", " upstream"];
const CONTENT: &str = "Hello from fake upstream";
const TOOL_ARGS_PIECES: [&str; 3] = ["{\"city\"", ":\"Par", "is\"}"];
const TOOL_ARGS: &str = "{\"city\":\"Paris\"}";
const TOOL_CALL_ID: &str = "call_fake_1";
const TOOL_NAME: &str = "get_weather";
/// `slow-stream` sends one tick per interval, for at most a minute.
const TICK_INTERVAL: Duration = Duration::from_millis(50);
const TICKS: u32 = 1200;
const HANG: Duration = Duration::from_secs(3600);
/// `trickle` sends its answer in this many pieces, one per interval.
const TRICKLE_PIECES: usize = 20;
const TRICKLE_INTERVAL: Duration = Duration::from_millis(100);
const CONTEXT_LENGTH: &str =
    "This model's maximum context length is 128000 tokens. However, your messages resulted in \
                              250000 tokens. Please reduce the length of the messages.";
const CONTENT_FILTERED: &str = "The response was filtered due to the prompt triggering Azure OpenAI's content \
                                management policy. Please modify your prompt and retry.";

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/chat/completions", web::post().to(chat))
        .route("/chat/completions", web::post().to(chat))
        .route("/v1/completions", web::post().to(completions::completions))
        .route("/completions", web::post().to(completions::completions))
        .route("/v1/embeddings", web::post().to(embeddings))
        .route("/embeddings", web::post().to(embeddings))
        .route("/v1/models", web::get().to(models))
        .route("/openai/deployments/{deployment}/chat/completions", web::post().to(azure_chat))
        .route("/openai/deployments/{deployment}/embeddings", web::post().to(azure_embeddings));
}

/// The request's path with its query string, as recorded.
fn target(req: &HttpRequest) -> &str {
    req.uri().path_and_query().map_or(req.path(), |pq| pq.as_str())
}

/// Azure's answer to a request without `api-version` (recorded like any other request); `None` when it has one.
fn refuse_without_api_version(req: &HttpRequest, rec: &Recorder) -> Option<HttpResponse> {
    let has_version =
        req.query_string().split('&').any(|pair| pair.strip_prefix("api-version=").is_some_and(|v| !v.is_empty()));
    if has_version {
        return None;
    }
    rec.request(target(req), headers_json(req), Value::Null);
    Some(HttpResponse::BadRequest().json(serde_json::json!({"error": {"code": "BadRequest",
        "message": "Missing required query parameter: api-version"}})))
}

async fn azure_chat(req: HttpRequest, body: web::Bytes, rec: web::Data<Recorder>) -> HttpResponse {
    match refuse_without_api_version(&req, &rec) {
        Some(refused) => refused,
        None => chat(req, body, rec).await,
    }
}

async fn azure_embeddings(req: HttpRequest, body: web::Bytes, rec: web::Data<Recorder>) -> HttpResponse {
    match refuse_without_api_version(&req, &rec) {
        Some(refused) => refused,
        None => embeddings(req, body, rec).await,
    }
}

/// The request's headers as a JSON object with lower-case names (repeated headers joined with `, `).
/// The modes chat and embeddings share: an error answers at once, a hang never ends, a delay waits and then
/// lets the caller answer normally (`None`).
pub(crate) async fn error_hang_or_delay(mode: Mode) -> Option<HttpResponse> {
    match mode {
        Mode::Error(status) => Some(error_mode(status)),
        Mode::RateLimited(secs) => Some(
            HttpResponse::TooManyRequests()
                .insert_header(("retry-after", secs.to_string()))
                .json(ErrorBody {
                    error: ErrorDetail {
                        message: "fake upstream 429: rate limit reached",
                        kind: "requests",
                        param: None,
                        code: Some("rate_limit_exceeded"),
                    },
                }),
        ),
        Mode::ContextLength => Some(error(
            StatusCode::BAD_REQUEST,
            CONTEXT_LENGTH,
            "invalid_request_error",
            Some("context_length_exceeded"),
        )),
        Mode::ContentFilter => Some(HttpResponse::BadRequest().json(serde_json::json!({"error": {
            "message": CONTENT_FILTERED, "type": null, "param": "prompt", "code": "content_filter", "status": 400,
            "innererror": {"code": "ResponsibleAIPolicyViolation", "content_filter_result": {
                "hate": {"filtered": true, "severity": "high"}, "self_harm": {"filtered": false, "severity": "safe"},
                "sexual": {"filtered": false, "severity": "safe"}, "violence": {"filtered": false, "severity": "safe"}}}}}))),
        Mode::Hang => {
            actix_rt::time::sleep(HANG).await;
            Some(HttpResponse::GatewayTimeout().finish())
        }
        Mode::StalledError => {
            let start = stream::iter([Ok::<_, std::io::Error>(Bytes::from_static(b"{\"error\":{\"message\":"))]);
            let body = start.chain(stream::pending());
            Some(HttpResponse::ServiceUnavailable().content_type("application/json").streaming(body))
        }
        Mode::Delay(ms) => {
            actix_rt::time::sleep(Duration::from_millis(ms)).await;
            None
        }
        _ => None,
    }
}

pub(crate) fn headers_json(req: &HttpRequest) -> Value {
    let mut map = serde_json::Map::new();
    for (name, value) in req.headers() {
        let value = String::from_utf8_lossy(value.as_bytes());
        match map.get_mut(name.as_str()) {
            Some(Value::String(seen)) => {
                seen.push_str(", ");
                seen.push_str(&value);
            }
            _ => {
                map.insert(name.as_str().to_owned(), Value::String(value.into_owned()));
            }
        }
    }
    Value::Object(map)
}

fn error(status: StatusCode, message: &str, kind: &str, code: Option<&str>) -> HttpResponse {
    HttpResponse::build(status).json(ErrorBody { error: ErrorDetail { message, kind, param: None, code } })
}

/// What `error-<status>` answers: an OpenAI error body of the usual type and code for `status`.
fn error_mode(status: u16) -> HttpResponse {
    let message = |what: &str| format!("fake upstream {status}: {what}");
    let http = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    match status {
        401 => error(
            http,
            &message("Incorrect API key provided: sk-fa***key"),
            "invalid_request_error",
            Some("invalid_api_key"),
        ),
        404 => error(http, &message("model not found"), "invalid_request_error", Some("model_not_found")),
        429 => {
            let body = ErrorBody {
                error: ErrorDetail {
                    message: &message("rate limit reached"),
                    kind: "requests",
                    param: None,
                    code: Some("rate_limit_exceeded"),
                },
            };
            HttpResponse::build(http)
                .insert_header(("retry-after", "7"))
                .insert_header(("x-ratelimit-remaining-requests", "0"))
                .json(body)
        }
        s if s >= 500 => error(http, &message("internal error"), "server_error", None),
        _ => error(http, &message("bad request"), "invalid_request_error", None),
    }
}

pub(crate) fn bad_request(what: &str) -> HttpResponse {
    error(StatusCode::BAD_REQUEST, &format!("fake upstream 400: {what}"), "invalid_request_error", None)
}

async fn chat(req: HttpRequest, body: web::Bytes, rec: web::Data<Recorder>) -> HttpResponse {
    let Ok(parsed) = serde_json::from_slice::<Value>(&body) else {
        rec.request(target(&req), headers_json(&req), Value::Null);
        return bad_request("body is not valid JSON");
    };
    let model = parsed["model"].as_str().unwrap_or_default().to_owned();
    let stream = parsed["stream"].as_bool() == Some(true);
    let include_usage = parsed["stream_options"]["include_usage"].as_bool() == Some(true);
    let mut usage = Usage::for_messages(parsed["messages"].as_array().map_or(0, Vec::len) as u64);
    let seq = rec.request(target(&req), headers_json(&req), parsed.clone());
    let id = format!("chatcmpl-fake-{seq}");
    if let Some(reply) = accounting::reply(&model, &parsed, &id) {
        return reply;
    }
    if let Some(reply) = agent::reply(&model, &parsed, &id) {
        return reply;
    }
    let mode = Mode::from_model(&rec.mode_of(&model));
    let mut watch =
        matches!(mode, Mode::Hang | Mode::Delay(_)).then(|| Waiting { rec: rec.get_ref().clone(), seq, over: false });
    if let Mode::Pieces(n) = mode {
        usage = usage.with_completion_tokens(u64::from(n));
    }
    let early = error_hang_or_delay(mode).await;
    if let Some(w) = &mut watch {
        w.over = true;
    }
    if let Some(early) = early {
        return early;
    }
    if let Some(reply) = slow_start(mode, stream, &id, &model, usage, &rec, seq) {
        return reply;
    }
    if stream {
        streamed(mode, Chunks::new(id, model, include_usage), usage, &body, &rec, seq)
    } else {
        whole(mode, &id, &model, usage, &body)
    }
}

/// Records `wait_dropped:<seq>` when a `hang` or `delay-*` request is dropped before its wait is over: the client
/// closed the connection before any response byte.
struct Waiting {
    rec: Recorder,
    seq: u64,
    over: bool,
}

impl Drop for Waiting {
    fn drop(&mut self) {
        if !self.over {
            self.rec.event(format!("wait_dropped:{}", self.seq));
        }
    }
}

/// The modes about an answer's start (for timeouts and time to first token): 200 headers and then nothing,
/// nothing at all, only keep-alives, the answer late, or a whole answer that trickles in. `None` for the others.
fn slow_start(
    mode: Mode,
    stream: bool,
    id: &str,
    model: &str,
    usage: Usage,
    rec: &Recorder,
    seq: u64,
) -> Option<HttpResponse> {
    let content_type = if stream { "text/event-stream" } else { "application/json" };
    let body: sse::BodyStream = match mode {
        Mode::LateFirst(ms) => {
            let whole = match stream {
                true => {
                    let chunks = Chunks::new(id.to_owned(), model.to_owned(), false);
                    let mut events = vec![chunks.role(Some(""))];
                    events.extend(CONTENT_PIECES.iter().map(|piece| chunks.content(piece)));
                    events.push(chunks.finish("stop"));
                    events.extend(chunks.tail(usage));
                    events.concat()
                }
                false => {
                    let text = Message { role: "assistant", content: Some(CONTENT), refusal: None, tool_calls: None };
                    serde_json::to_vec(&Completion::new(id, model, text, "stop", usage)).ok()?
                }
            };
            Box::pin(stream::once(async move {
                actix_rt::time::sleep(Duration::from_millis(ms)).await;
                Ok(Bytes::from(whole))
            }))
        }
        Mode::NoFirstChunk => Box::pin(stream::pending()),
        Mode::EmptyBody => Box::pin(stream::empty()),
        Mode::KeepaliveOnly => Box::pin(stream::iter(0..TICKS).then(|_| async {
            actix_rt::time::sleep(TICK_INTERVAL).await;
            Ok(Bytes::from_static(b": keep-alive\n\n"))
        })),
        Mode::Trickle => {
            let text = Message { role: "assistant", content: Some(CONTENT), refusal: None, tool_calls: None };
            let whole = Bytes::from(serde_json::to_vec(&Completion::new(id, model, text, "stop", usage)).ok()?);
            let step = whole.len().div_ceil(TRICKLE_PIECES);
            let pieces: Vec<Bytes> =
                (0..whole.len()).step_by(step).map(|at| whole.slice(at..(at + step).min(whole.len()))).collect();
            Box::pin(stream::iter(pieces).then(|piece| async move {
                actix_rt::time::sleep(TRICKLE_INTERVAL).await;
                Ok(piece)
            }))
        }
        _ => return None,
    };
    Some(HttpResponse::Ok().content_type(content_type).streaming(sse::watched(body, rec.clone(), seq)))
}

/// A non-streaming answer.
fn whole(mode: Mode, id: &str, model: &str, usage: Usage, body: &[u8]) -> HttpResponse {
    let text = |content| Message { role: "assistant", content: Some(content), refusal: None, tool_calls: None };
    match mode {
        Mode::Tools => {
            let call = ToolCall {
                index: None,
                id: Some(TOOL_CALL_ID),
                kind: Some("function"),
                function: Function { name: Some(TOOL_NAME), arguments: TOOL_ARGS },
            };
            let message = Message { role: "assistant", content: None, refusal: None, tool_calls: Some([call]) };
            HttpResponse::Ok().json(Completion::new(id, model, message, "tool_calls", usage))
        }
        Mode::Echo => {
            let echoed = String::from_utf8_lossy(body);
            HttpResponse::Ok().json(Completion::new(id, model, text(&echoed), "stop", usage))
        }
        Mode::Pieces(n) => {
            HttpResponse::Ok().json(Completion::new(id, model, text(&pieces(n).concat()), "stop", usage))
        }
        Mode::Reset => HttpResponse::Ok()
            .content_type("application/json")
            .body(sse::broken_after(vec![Bytes::from_static(b"{\"id\":\"chatcmpl-")])),
        _ => HttpResponse::Ok()
            .insert_header(("x-ratelimit-remaining-requests", "99"))
            .insert_header(("x-ratelimit-reset-requests", "6m0s"))
            .json(Completion::new(id, model, text(CONTENT), "stop", usage)),
    }
}

/// A streaming (SSE) answer.
fn streamed(mode: Mode, chunks: Chunks, usage: Usage, body: &[u8], rec: &Recorder, seq: u64) -> HttpResponse {
    match mode {
        Mode::Tools => {
            let header = ToolCall {
                index: Some(0),
                id: Some(TOOL_CALL_ID),
                kind: Some("function"),
                function: Function { name: Some(TOOL_NAME), arguments: "" },
            };
            let mut events = vec![chunks.role(None), chunks.tool_call(header)];
            events.extend(TOOL_ARGS_PIECES.iter().map(|piece| {
                chunks.tool_call(ToolCall {
                    index: Some(0),
                    id: None,
                    kind: None,
                    function: Function { name: None, arguments: piece },
                })
            }));
            events.push(chunks.finish("tool_calls"));
            events.extend(chunks.tail(usage));
            sse::sse(events)
        }
        Mode::Echo => {
            let mut events = vec![chunks.role(Some("")), chunks.content(&String::from_utf8_lossy(body))];
            events.push(chunks.finish("stop"));
            events.extend(chunks.tail(usage));
            sse::sse(events)
        }
        Mode::SlowStream => {
            let head = stream::iter([Ok(chunks.role(Some("")))]);
            let tick = chunks.content("tick ");
            let ticks = stream::iter(0..TICKS).then(move |_| {
                let tick = tick.clone();
                async move {
                    actix_rt::time::sleep(TICK_INTERVAL).await;
                    Ok(tick)
                }
            });
            let tail: Vec<_> = std::iter::once(chunks.finish("stop")).chain(chunks.tail(usage)).map(Ok).collect();
            let body = head.chain(ticks).chain(stream::iter(tail));
            sse::sse_stream(sse::watched(Box::pin(body), rec.clone(), seq))
        }
        Mode::Stall => {
            let sent = stream::iter([Ok(chunks.role(Some(""))), Ok(chunks.content("Hello"))]);
            sse::sse_stream(sse::watched(Box::pin(sent.chain(stream::pending())), rec.clone(), seq))
        }
        Mode::Pieces(n) => {
            let mut events = vec![chunks.role(Some(""))];
            events.extend(pieces(n).iter().map(|piece| chunks.content(piece)));
            events.push(chunks.finish("stop"));
            events.extend(chunks.tail(usage));
            sse::sse_flushed(events)
        }
        Mode::Cut | Mode::CutJson => {
            let mut events = vec![chunks.role(Some("")), chunks.content(CONTENT_PIECES[0])];
            if mode == Mode::CutJson {
                let next = chunks.content(CONTENT_PIECES[1]);
                events.push(next.slice(..next.len() / 2));
            }
            sse::sse(events)
        }
        Mode::Reset => HttpResponse::Ok()
            .content_type("text/event-stream")
            .body(sse::broken_after(vec![chunks.role(Some("")), chunks.content("Hello")])),
        _ => {
            let mut events = vec![chunks.role(Some(""))];
            events.extend(CONTENT_PIECES.iter().map(|piece| chunks.content(piece)));
            events.push(chunks.finish("stop"));
            events.extend(chunks.tail(usage));
            sse::sse(events)
        }
    }
}

/// The content pieces of `stream-<n>`: `w0 `, `w1 `, ….
pub(crate) fn pieces(n: u32) -> Vec<String> {
    (0..n).map(|i| format!("w{i} ")).collect()
}

async fn embeddings(req: HttpRequest, body: web::Bytes, rec: web::Data<Recorder>) -> HttpResponse {
    let Ok(parsed) = serde_json::from_slice::<Value>(&body) else {
        rec.request(target(&req), headers_json(&req), Value::Null);
        return bad_request("body is not valid JSON");
    };
    let model = parsed["model"].as_str().unwrap_or_default().to_owned();
    let inputs = embedding_inputs(&parsed["input"]);
    rec.request(target(&req), headers_json(&req), parsed);
    if let Some(early) = error_hang_or_delay(Mode::from_model(&rec.mode_of(&model))).await {
        return early;
    }
    let Some(inputs) = inputs else {
        return bad_request("'input' must be a string, an array of strings or an array of token arrays");
    };
    let tokens: u64 = inputs.iter().map(|text| text.split_whitespace().count().max(1) as u64).sum();
    let data = inputs
        .iter()
        .enumerate()
        .map(|(index, text)| Embedding { object: "embedding", index, embedding: embed(text) })
        .collect();
    HttpResponse::Ok().json(EmbeddingList {
        object: "list",
        model: &model,
        data,
        usage: EmbeddingUsage { prompt_tokens: tokens, total_tokens: tokens },
    })
}

/// The texts to embed: a string, an array of strings, an array of token ids (one input) or an array of token
/// arrays (token ids are embedded as their JSON text).
fn embedding_inputs(input: &Value) -> Option<Vec<String>> {
    match input {
        Value::String(text) => Some(vec![text.clone()]),
        Value::Array(items) if !items.is_empty() && items.iter().all(Value::is_number) => Some(vec![input.to_string()]),
        Value::Array(items) if !items.is_empty() => items
            .iter()
            .map(|item| match item {
                Value::String(text) => Some(text.clone()),
                Value::Array(_) => Some(item.to_string()),
                _ => None,
            })
            .collect(),
        _ => None,
    }
}

/// Eight deterministic values in [-1, 1] with four decimals, derived from the text (FNV-1a, then splitmix64 per
/// dimension).
pub fn embed(text: &str) -> [f64; 8] {
    let seed = text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    std::array::from_fn(|dim| {
        let mut z = seed.wrapping_add((dim as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        // An integer over 10 000, so the value prints as at most four decimals.
        f64::from((z % 20_001) as i32 - 10_000) / 10_000.0
    })
}

async fn models() -> HttpResponse {
    HttpResponse::Ok().content_type("application/json").body(MODELS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_argument_pieces_join_to_the_whole_arguments() {
        assert_eq!(TOOL_ARGS_PIECES.concat(), TOOL_ARGS);
        assert_eq!(CONTENT_PIECES.concat(), CONTENT);
    }

    #[test]
    fn embeddings_are_deterministic_and_differ_by_text() {
        assert_eq!(embed("hello"), embed("hello"));
        assert_ne!(embed("hello"), embed("hellp"));
        assert!(embed("x").iter().all(|v| (-1.0..=1.0).contains(v)));
    }

    #[test]
    fn embedding_inputs_accept_every_openai_shape() {
        let texts = |v: Value| embedding_inputs(&v);
        assert_eq!(texts(serde_json::json!("a b")), Some(vec!["a b".to_owned()]));
        assert_eq!(texts(serde_json::json!(["a", "b"])), Some(vec!["a".to_owned(), "b".to_owned()]));
        assert_eq!(texts(serde_json::json!([1, 2])), Some(vec!["[1,2]".to_owned()]));
        assert_eq!(texts(serde_json::json!([[1], [2]])), Some(vec!["[1]".to_owned(), "[2]".to_owned()]));
        assert_eq!(texts(serde_json::json!(null)), None);
        assert_eq!(texts(serde_json::json!([])), None);
        assert_eq!(texts(serde_json::json!([{}])), None);
    }
}
