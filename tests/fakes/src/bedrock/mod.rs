//! The fake AWS Bedrock runtime: `POST /model/{modelId}/converse`, `/model/{modelId}/converse-stream` (binary
//! eventstream with real CRCs) and `/model/{modelId}/invoke` (Titan and Cohere embeddings), as
//! `bedrock-runtime.{region}.amazonaws.com` answers them.
//!
//! Auth: every request needs `Authorization`, either SigV4 (`AWS4-HMAC-SHA256 Credential=...`, checked for shape;
//! signed with [`sigv4::ACCESS_KEY_ID`] it is verified in full against [`sigv4::SECRET_ACCESS_KEY`] and recorded
//! as the event `sigv4_verified:<seq>`) or a Bedrock API key (`Bearer ...`). Otherwise: 403 with AWS's error type.
//! The request time is not checked against the clock.
//!
//! The model id (percent-decoded) picks the behaviour; any other id is `normal`:
//!
//! | model id          | behaviour                                                                               |
//! |-------------------|-----------------------------------------------------------------------------------------|
//! | `normal`/other    | "Hello from fake upstream" (streamed as four text deltas), `end_turn`                  |
//! | `tools`           | "Checking.", then `get_weather` `{"city":"Paris"}` (streamed in 3 fragments) and `get_time` with empty input (no delta at all), `tool_use` |
//! | `max-tokens`      | "Hello from fake", `max_tokens`                                                        |
//! | `echo`            | the text is the request body it received                                               |
//! | `error-<N>`       | HTTP N, `{"message"}` and `x-amzn-errortype` of Bedrock's type for N (400 Validation, 403 AccessDenied, 404 ResourceNotFound, 408 ModelTimeout, 424 ModelError, 429 Throttling, 500 InternalServer, 503 ServiceUnavailable) |
//! | `context-too-long`| HTTP 400 `ValidationException` "Input is too long for requested model."               |
//! | `delay-<ms>`      | waits, then `normal`                                                                   |
//! | `throttle-stream` | streams a start and one delta, then a `throttlingException` exception message, and ends |
//! | `corrupt`         | streams a start and one delta, then a message with a wrong CRC, then the rest           |
//! | `cut`             | streams a start and one delta, then half a message, and ends the body cleanly (mid-message) |
//!
//! Usage is fixed and distinct per field: `inputTokens` 11, `outputTokens` 7, `cacheReadInputTokens` 5,
//! `cacheWriteInputTokens` 3, `totalTokens` 26. Stream payloads carry the `p` padding field real ones have.
//! Non-chat modes on `/invoke`: `error-<N>` and `delay-<ms>`; a model id containing `cohere.embed` answers as
//! Cohere (`{texts}` → `embeddings`), any other as Titan (`{inputText}` → `embedding`, `inputTextTokenCount`).

pub mod eventstream;
pub mod sigv4;

use std::time::Duration;

use actix_web::{http::StatusCode, web, HttpRequest, HttpResponse};
use bytes::Bytes;
use futures_util::stream;
use serde_json::{json, Value};

use crate::record::Recorder;
use eventstream::{event, exception};

const CONTENT_PIECES: [&str; 4] = ["Hello", " from", " fake", " upstream"];
const TOOL_ARGS_PIECES: [&str; 3] = ["{\"city\"", ":\"Par", "is\"}"];
const EVENTSTREAM: &str = "application/vnd.amazon.eventstream";
const ERROR_TYPE_SUFFIX: &str = ":http://internal.amazon.com/coral/com.amazon.bedrock/";

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/model/{model_id}/converse", web::post().to(converse))
        .route("/model/{model_id}/converse-stream", web::post().to(converse_stream))
        .route("/model/{model_id}/invoke", web::post().to(invoke));
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Normal,
    Tools,
    MaxTokens,
    Echo,
    Error(u16),
    ContextTooLong,
    Delay(u64),
    ThrottleStream,
    Corrupt,
    Cut,
}

impl Mode {
    fn from_model(model: &str) -> Mode {
        if let Some(status) = model.strip_prefix("error-").and_then(|s| s.parse().ok()) {
            return Mode::Error(status);
        }
        if let Some(ms) = model.strip_prefix("delay-").and_then(|s| s.parse().ok()) {
            return Mode::Delay(ms);
        }
        match model {
            "tools" => Mode::Tools,
            "max-tokens" => Mode::MaxTokens,
            "echo" => Mode::Echo,
            "context-too-long" => Mode::ContextTooLong,
            "throttle-stream" => Mode::ThrottleStream,
            "corrupt" => Mode::Corrupt,
            "cut" => Mode::Cut,
            _ => Mode::Normal,
        }
    }
}

/// The model id of `/model/{id}/...` as sent, percent-decoded.
fn model_id(req: &HttpRequest) -> String {
    let path = req.uri().path();
    let raw = path.strip_prefix("/model/").and_then(|rest| rest.rsplit_once('/')).map_or("", |(id, _)| id);
    percent_decode(raw)
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn headers_json(req: &HttpRequest) -> Value {
    let mut map = serde_json::Map::new();
    for (name, value) in req.headers() {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        match map.get_mut(name.as_str()) {
            Some(Value::String(seen)) => {
                seen.push_str(", ");
                seen.push_str(&value);
            }
            _ => {
                map.insert(name.as_str().to_owned(), Value::String(value));
            }
        }
    }
    Value::Object(map)
}

/// An AWS error response: status, `x-amzn-errortype` and `{"message"}`.
fn aws_error(status: u16, error_type: &str, message: &str) -> HttpResponse {
    HttpResponse::build(StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST))
        .insert_header(("x-amzn-errortype", format!("{error_type}{ERROR_TYPE_SUFFIX}")))
        .insert_header(("x-amzn-requestid", "fake-request-id"))
        .json(json!({ "message": message }))
}

/// What `error-<status>` answers: Bedrock's error type for that status.
fn error_mode(status: u16) -> HttpResponse {
    let (error_type, message) = match status {
        400 => ("ValidationException", "Malformed input request, please reformat your input and try again."),
        403 => ("AccessDeniedException", "You don't have access to the model with the specified model ID."),
        404 => {
            ("ResourceNotFoundException", "Could not resolve the foundation model from the provided model identifier.")
        }
        408 => ("ModelTimeoutException", "Model has timed out in processing the request."),
        424 => ("ModelErrorException", "The model encountered an error processing the request."),
        429 => ("ThrottlingException", "Too many requests, please wait before trying again."),
        503 => ("ServiceUnavailableException", "Bedrock is unable to process your request."),
        s if s >= 500 => ("InternalServerException", "The server encountered an internal error."),
        _ => ("ValidationException", "fake upstream error"),
    };
    aws_error(status, error_type, message)
}

/// Checks `Authorization`; `Ok(true)` when the SigV4 signature was verified in full.
fn check_auth(req: &HttpRequest, body: &[u8]) -> Result<bool, Box<HttpResponse>> {
    let Some(value) = req.headers().get("authorization").and_then(|v| v.to_str().ok()) else {
        return Err(Box::new(aws_error(403, "MissingAuthenticationTokenException", "Missing Authentication Token")));
    };
    if value.starts_with("Bearer ") && value.len() > "Bearer ".len() {
        return Ok(false);
    }
    let Some(auth) = sigv4::parse_authorization(value) else {
        return Err(Box::new(aws_error(
            403,
            "IncompleteSignatureException",
            "Authorization header requires 'Credential', 'Signature' and 'SignedHeaders'.",
        )));
    };
    let invalid = |why: &str| Box::new(aws_error(403, "InvalidSignatureException", why));
    if auth.scope.split('/').nth(2) != Some("bedrock") {
        return Err(invalid("Credential should be scoped to correct service: 'bedrock'."));
    }
    if !auth.signed_headers.contains(&"host") {
        return Err(invalid("'Host' must be a 'SignedHeader' in the AWS Authorization."));
    }
    let Some(amz_date) = req.headers().get("x-amz-date").and_then(|v| v.to_str().ok()) else {
        return Err(invalid("Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."));
    };
    if auth.access_key_id != sigv4::ACCESS_KEY_ID {
        return Ok(false);
    }
    let mut signed = Vec::with_capacity(auth.signed_headers.len());
    for name in &auth.signed_headers {
        let Some(v) = req.headers().get(*name).and_then(|v| v.to_str().ok()) else {
            return Err(invalid(&format!("signed header {name} is missing")));
        };
        signed.push((*name, v));
    }
    let s = sigv4::Signing {
        method: req.method().as_str(),
        path: req.uri().path(),
        query: req.uri().query().unwrap_or(""),
        headers: &signed,
        body,
        scope: auth.scope,
        amz_date,
    };
    if sigv4::signature(&s, sigv4::SECRET_ACCESS_KEY) != auth.signature {
        return Err(invalid(
            "The request signature we calculated does not match the signature you provided. Check your AWS Secret \
             Access Key and signing method. Consult the service documentation for details.",
        ));
    }
    Ok(true)
}

/// Records the request, checks its auth, and runs the modes every endpoint shares; `Err` is the answer.
async fn admit(req: &HttpRequest, body: &[u8], rec: &Recorder) -> Result<(Mode, Value), Box<HttpResponse>> {
    let parsed = serde_json::from_slice::<Value>(body).unwrap_or(Value::Null);
    let seq = rec.request(req.path(), headers_json(req), parsed.clone());
    if check_auth(req, body)? {
        rec.event(format!("sigv4_verified:{seq}"));
    }
    if parsed.is_null() {
        return Err(Box::new(aws_error(400, "ValidationException", "Malformed input request: body is not valid JSON")));
    }
    let mode = Mode::from_model(&model_id(req));
    match mode {
        Mode::Error(status) => Err(Box::new(error_mode(status))),
        Mode::ContextTooLong => {
            Err(Box::new(aws_error(400, "ValidationException", "Input is too long for requested model.")))
        }
        Mode::Delay(ms) => {
            actix_rt::time::sleep(Duration::from_millis(ms)).await;
            Ok((Mode::Normal, parsed))
        }
        mode => Ok((mode, parsed)),
    }
}

fn usage() -> Value {
    json!({"inputTokens": 11, "outputTokens": 7, "totalTokens": 26, "cacheReadInputTokens": 5, "cacheWriteInputTokens": 3})
}

async fn converse(req: HttpRequest, body: web::Bytes, rec: web::Data<Recorder>) -> HttpResponse {
    let mode = match admit(&req, &body, &rec).await {
        Ok((mode, _)) => mode,
        Err(answer) => return *answer,
    };
    let (content, stop) = match mode {
        Mode::Tools => (
            json!([
                {"text": "Checking."},
                {"toolUse": {"toolUseId": "tooluse_fake_1", "name": "get_weather", "input": {"city": "Paris"}}},
                {"toolUse": {"toolUseId": "tooluse_fake_2", "name": "get_time", "input": {}}}
            ]),
            "tool_use",
        ),
        Mode::MaxTokens => (json!([{"text": "Hello from fake"}]), "max_tokens"),
        Mode::Echo => (json!([{"text": String::from_utf8_lossy(&body)}]), "end_turn"),
        _ => (json!([{"text": CONTENT_PIECES.concat()}]), "end_turn"),
    };
    HttpResponse::Ok().insert_header(("x-amzn-requestid", "fake-request-id")).json(json!({
        "output": {"message": {"role": "assistant", "content": content}},
        "stopReason": stop,
        "usage": usage(),
        "metrics": {"latencyMs": 42}
    }))
}

fn delta(index: u32, delta: Value) -> Vec<u8> {
    event("contentBlockDelta", &json!({"contentBlockIndex": index, "delta": delta, "p": "abcdefghij"}).to_string())
}

fn text_deltas(index: u32, pieces: &[&str]) -> Vec<Vec<u8>> {
    pieces.iter().map(|p| delta(index, json!({ "text": p }))).collect()
}

fn stop_and_metadata(stop: &str) -> [Vec<u8>; 2] {
    [
        event("messageStop", &json!({"stopReason": stop, "p": "abcd"}).to_string()),
        event(
            "metadata",
            &json!({"usage": usage(), "metrics": {"latencyMs": 42}, "p": "abcdefghijklmnopq"}).to_string(),
        ),
    ]
}

/// The messages of a stream, in order (each is sent as its own body chunk).
fn stream_messages(mode: Mode, body: &[u8]) -> Vec<Vec<u8>> {
    let start = event("messageStart", r#"{"p":"abcdefghijklmn","role":"assistant"}"#);
    let block_stop = |i: u32| event("contentBlockStop", &json!({"contentBlockIndex": i, "p": "abc"}).to_string());
    let mut out = vec![start];
    match mode {
        Mode::Tools => {
            out.extend(text_deltas(0, &["Checking."]));
            out.push(block_stop(0));
            let tool_start = |i: u32, id: &str, name: &str| {
                let start =
                    json!({"contentBlockIndex": i, "start": {"toolUse": {"toolUseId": id, "name": name}}, "p": "ab"});
                event("contentBlockStart", &start.to_string())
            };
            out.push(tool_start(1, "tooluse_fake_1", "get_weather"));
            out.extend(TOOL_ARGS_PIECES.iter().map(|piece| delta(1, json!({"toolUse": {"input": piece}}))));
            out.push(block_stop(1));
            out.push(tool_start(2, "tooluse_fake_2", "get_time"));
            out.push(block_stop(2));
            out.extend(stop_and_metadata("tool_use"));
        }
        Mode::MaxTokens => {
            out.extend(text_deltas(0, &CONTENT_PIECES[..3]));
            out.push(block_stop(0));
            out.extend(stop_and_metadata("max_tokens"));
        }
        Mode::Echo => {
            out.extend(text_deltas(0, &[&String::from_utf8_lossy(body)]));
            out.push(block_stop(0));
            out.extend(stop_and_metadata("end_turn"));
        }
        Mode::ThrottleStream => {
            out.extend(text_deltas(0, &CONTENT_PIECES[..1]));
            out.push(exception(
                "throttlingException",
                r#"{"message":"Too many tokens, please wait before trying again."}"#,
            ));
        }
        Mode::Corrupt => {
            out.extend(text_deltas(0, &CONTENT_PIECES[..1]));
            let mut bad = delta(0, json!({"text": CONTENT_PIECES[1]}));
            if let Some(last) = bad.last_mut() {
                *last ^= 0xFF;
            }
            out.push(bad);
            out.extend(text_deltas(0, &CONTENT_PIECES[2..]));
            out.push(block_stop(0));
            out.extend(stop_and_metadata("end_turn"));
        }
        Mode::Cut => {
            out.extend(text_deltas(0, &CONTENT_PIECES[..1]));
            let next = delta(0, json!({"text": CONTENT_PIECES[1]}));
            out.push(next[..next.len() / 2].to_vec());
        }
        _ => {
            out.extend(text_deltas(0, &CONTENT_PIECES));
            out.push(block_stop(0));
            out.extend(stop_and_metadata("end_turn"));
        }
    }
    out
}

async fn converse_stream(req: HttpRequest, body: web::Bytes, rec: web::Data<Recorder>) -> HttpResponse {
    let mode = match admit(&req, &body, &rec).await {
        Ok((mode, _)) => mode,
        Err(answer) => return *answer,
    };
    let messages = stream_messages(mode, &body);
    HttpResponse::Ok()
        .content_type(EVENTSTREAM)
        .insert_header(("x-amzn-requestid", "fake-request-id"))
        .streaming(stream::iter(messages.into_iter().map(|m| Ok::<_, std::io::Error>(Bytes::from(m)))))
}

async fn invoke(req: HttpRequest, body: web::Bytes, rec: web::Data<Recorder>) -> HttpResponse {
    let parsed = match admit(&req, &body, &rec).await {
        Ok((_, parsed)) => parsed,
        Err(answer) => return *answer,
    };
    let tokens = |text: &str| text.split_whitespace().count().max(1) as u64;
    if model_id(&req).contains("cohere.embed") {
        let Some(texts) = parsed["texts"].as_array().filter(|t| !t.is_empty()) else {
            return aws_error(400, "ValidationException", "Malformed input request: #: required key [texts] not found");
        };
        let texts: Vec<&str> = texts.iter().filter_map(Value::as_str).collect();
        let embeddings: Vec<[f64; 8]> = texts.iter().map(|t| embed(t)).collect();
        return HttpResponse::Ok().json(json!({
            "id": "fake-embed-id", "embeddings": embeddings, "response_type": "embeddings_floats", "texts": texts
        }));
    }
    let Some(text) = parsed["inputText"].as_str() else {
        return aws_error(400, "ValidationException", "Malformed input request: #: required key [inputText] not found");
    };
    HttpResponse::Ok().json(json!({"embedding": embed(text), "inputTextTokenCount": tokens(text)}))
}

/// Eight deterministic values in [-1, 1] with four decimals, derived from the text (as the OpenAI fake's).
fn embed(text: &str) -> [f64; 8] {
    let seed = text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    std::array::from_fn(|dim| {
        let mut z = seed.wrapping_add((dim as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        f64::from((z % 20_001) as i32 - 10_000) / 10_000.0
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_by_model_id() {
        let cases = [
            ("anthropic.claude-3-5-sonnet-20240620-v1:0", Mode::Normal),
            ("tools", Mode::Tools),
            ("max-tokens", Mode::MaxTokens),
            ("echo", Mode::Echo),
            ("error-429", Mode::Error(429)),
            ("context-too-long", Mode::ContextTooLong),
            ("delay-20", Mode::Delay(20)),
            ("throttle-stream", Mode::ThrottleStream),
            ("corrupt", Mode::Corrupt),
            ("cut", Mode::Cut),
        ];
        for (model, want) in cases {
            assert_eq!(Mode::from_model(model), want, "{model}");
        }
        assert_eq!(percent_decode("us.anthropic.x-v1%3A0"), "us.anthropic.x-v1:0");
        assert_eq!(percent_decode("arn%3Aaws%2Fx%zz%"), "arn:aws/x%zz%");
    }

    #[test]
    fn streams_are_valid_eventstream_except_where_broken_on_purpose() {
        for mode in [Mode::Normal, Mode::Tools, Mode::MaxTokens, Mode::Echo, Mode::ThrottleStream] {
            let bytes = stream_messages(mode, b"{}").concat();
            assert!(eventstream::decode_all(&bytes).is_ok(), "{mode:?}");
        }
        let corrupt = stream_messages(Mode::Corrupt, b"{}").concat();
        assert_eq!(
            eventstream::decode_all(&corrupt).map_err(|(ok, e)| (ok.len(), e)),
            Err((2, "message CRC mismatch".into()))
        );
        let cut = stream_messages(Mode::Cut, b"{}").concat();
        assert!(matches!(eventstream::decode_all(&cut), Err((ok, _)) if ok.len() == 2));
    }
}
