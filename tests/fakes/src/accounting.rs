//! Modes about the money and the framing of a success: bodies that make usage hard to count, servers with strict
//! schemas, and answers whose `Content-Type` is not what the request asked for. Selected by `model` like the
//! modes in `mode.rs`; [`reply`] answers `None` for every other model.
//!
//! | model              | behaviour                                                                             |
//! |--------------------|---------------------------------------------------------------------------------------|
//! | `error-in-200`     | HTTP 200 whose body is an error object; streamed: an error event, then `[DONE]`       |
//! | `no-usage`         | a normal answer with no usage anywhere, even when asked                               |
//! | `cut-after-finish` | streams content and the finish chunk, then ends the body (no usage, no `[DONE]`)      |
//! | `strict`           | 422 `extra_forbidden` for any field outside its schema (`stream_options` included);   |
//! |                    | streams carry usage in the finish chunk unasked, as Mistral does                      |
//! | `cache-usage`      | usage with 600 of 1000 prompt tokens cached and 400 of 500 completion tokens reasoning|
//! | `json-for-stream`  | a `chat.completion` JSON body even when the request asked for a stream                |

use actix_web::HttpResponse;
use bytes::Bytes;
use serde_json::{json, Value};

/// Fields the `strict` mode accepts, Mistral's chat schema in short.
const STRICT_FIELDS: &[&str] = &["model", "messages", "stream", "max_tokens", "temperature", "top_p", "random_seed"];

pub(crate) fn reply(model: &str, request: &Value, id: &str) -> Option<HttpResponse> {
    let stream = request["stream"].as_bool() == Some(true);
    let asked_usage = request["stream_options"]["include_usage"].as_bool() == Some(true);
    let plain_usage = json!({"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15});
    Some(match (model, stream) {
        ("error-in-200", false) => HttpResponse::Ok()
            .json(json!({"error": {"message": "overloaded, try later", "type": "server_error", "code": null}})),
        ("error-in-200", true) => events(vec![
            chunk(id, model, json!([{"index": 0, "delta": {"role": "assistant", "content": "Hel"}}]), None),
            Bytes::from_static(
                b"data: {\"error\":{\"message\":\"overloaded mid-stream\",\"type\":\"server_error\"}}\n\n",
            ),
            Bytes::from_static(b"data: [DONE]\n\n"),
        ]),
        ("no-usage", false) => HttpResponse::Ok().json(completion(id, model, None)),
        ("no-usage", true) => events(content_events(id, model, None, true)),
        ("cut-after-finish", true) => events(content_events(id, model, None, false)),
        ("strict", _) => {
            let extra: Vec<&str> = request
                .as_object()
                .map(|o| o.keys().map(String::as_str).filter(|k| !STRICT_FIELDS.contains(k)).collect())
                .unwrap_or_default();
            if let Some(field) = extra.first() {
                let detail = json!({"detail": [{"type": "extra_forbidden", "loc": ["body", field],
                    "msg": "Extra inputs are not permitted", "input": request[*field]}]});
                return Some(HttpResponse::UnprocessableEntity().json(detail));
            }
            match stream {
                false => HttpResponse::Ok().json(completion(id, model, Some(plain_usage))),
                true => events(content_events(id, model, Some(("finish", plain_usage)), true)),
            }
        }
        ("cache-usage", _) => {
            let usage = json!({"prompt_tokens": 1000, "completion_tokens": 500, "total_tokens": 1500,
                "prompt_tokens_details": {"cached_tokens": 600, "audio_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": 400, "audio_tokens": 0}});
            match stream {
                false => HttpResponse::Ok().json(completion(id, model, Some(usage))),
                true if asked_usage => events(content_events(id, model, Some(("tail", usage)), true)),
                true => events(content_events(id, model, None, true)),
            }
        }
        ("json-for-stream", _) => HttpResponse::Ok().json(completion(id, model, Some(plain_usage))),
        _ => return None,
    })
}

fn completion(id: &str, model: &str, usage: Option<Value>) -> Value {
    let mut body = json!({"id": id, "object": "chat.completion", "created": 1_700_000_000, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello", "refusal": null},
            "logprobs": null, "finish_reason": "stop"}]});
    if let Some(usage) = usage {
        body["usage"] = usage;
    }
    body
}

fn chunk(id: &str, model: &str, choices: Value, usage: Option<Value>) -> Bytes {
    let mut c = json!({"id": id, "object": "chat.completion.chunk", "created": 1_700_000_000, "model": model,
        "choices": choices});
    if let Some(usage) = usage {
        c["usage"] = usage;
    }
    Bytes::from(format!("data: {c}\n\n"))
}

/// Role+content, the finish chunk, then (if `done`) `[DONE]`. `usage` goes into the finish chunk or a usage-only
/// tail chunk, as `("finish" | "tail", usage)` says.
fn content_events(id: &str, model: &str, usage: Option<(&str, Value)>, done: bool) -> Vec<Bytes> {
    let (in_finish, in_tail) = match usage {
        Some(("finish", u)) => (Some(u), None),
        Some((_, u)) => (None, Some(u)),
        None => (None, None),
    };
    let mut out = vec![
        chunk(id, model, json!([{"index": 0, "delta": {"role": "assistant", "content": "Hel"}}]), None),
        chunk(id, model, json!([{"index": 0, "delta": {"content": "lo"}}]), None),
        chunk(id, model, json!([{"index": 0, "delta": {}, "finish_reason": "stop"}]), in_finish),
    ];
    if let Some(u) = in_tail {
        out.push(chunk(id, model, json!([]), Some(u)));
    }
    if done {
        out.push(Bytes::from_static(b"data: [DONE]\n\n"));
    }
    out
}

fn events(events: Vec<Bytes>) -> HttpResponse {
    crate::sse::sse(events)
}
