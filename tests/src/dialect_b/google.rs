//! What the Gemini API and Vertex AI share: one wire format (Google's `generateContent`), two ways to address and
//! authenticate. `tests/tests/dialect_gemini.rs` and `dialect_vertex.rs` each build a [`target`] over their own
//! deployments (named `<prefix><mode>` after the fake's [`MODES`]) and run the checks of the parent module with
//! the tables here.

use serde_json::{json, Value};

use super::{chat, Auth, Books, BrokenCase, ErrorCase, Target, Tokens};
use crate::{FakeUpstream, Gateway};

/// The fake's modes the checks use; a gateway under test has a deployment `<prefix><mode>` for each.
pub const MODES: &[&str] = &[
    "normal",
    "tools",
    "max-tokens",
    "safety",
    "blocked",
    "error-429",
    "error-context",
    "cut",
    "cut-json",
    "stream-error",
];

/// The fake's usage (`promptTokenCount` 21 with 8 cached, `candidatesTokenCount` 7, `thoughtsTokenCount` 5) in
/// OpenAI's inclusive form: completion = candidates + thoughts.
pub const TOKENS: Tokens = Tokens { prompt: 21, completion: 12, cache_read: 8, cache_write: 0, reasoning: 5 };

/// The thought signature the fake puts on its first function call.
const SIGNATURE: &str = "ZmFrZS1zaWduYXR1cmU=";

/// MAX_TOKENS is `length`; SAFETY (after some text, when streamed) and a blocked prompt are `content_filter`.
pub const FINISHES: &[(&str, bool, &str, &str)] = &[
    ("max-tokens", false, "Hello from", "length"),
    ("max-tokens", true, "Hello from", "length"),
    ("safety", false, "", "content_filter"),
    ("safety", true, "Hello", "content_filter"),
    ("blocked", false, "", "content_filter"),
    ("blocked", true, "", "content_filter"),
];

/// Quota exhaustion is 429 with RetryInfo's delay as `retry-after`; an input over the context window is 400
/// `context_length_exceeded`.
pub const ERRORS: &[ErrorCase<'static>] = &[
    ("error-429", 429, "rate_limit_error", Some("rate_limit_exceeded"), Some("7")),
    ("error-context", 400, "invalid_request_error", Some("context_length_exceeded"), None),
];

/// Google's usage so far after `candidates` output tokens: the books keep the running counts of a stream that
/// broke, whichever way it broke.
const fn so_far(candidates: u64) -> Tokens {
    Tokens { completion: candidates + TOKENS.reasoning, ..TOKENS }
}

/// Closed before a finishReason (`cut`), closed mid-JSON (`cut-json`), or an error event (`stream-error`, a
/// failure the upstream reported itself).
pub const BROKEN: &[BrokenCase<'static>] = &[
    BrokenCase {
        mode: "cut",
        text: "Hello from",
        code: Some("upstream_stream_broken"),
        message: "the Gemini stream ended before a finishReason",
        outcome: "broken",
        books: Books::Exact(so_far(4)),
    },
    BrokenCase {
        mode: "cut-json",
        text: "Hello",
        code: Some("upstream_stream_broken"),
        message: "the stream ended in the middle of an event",
        outcome: "broken",
        books: Books::Exact(so_far(2)),
    },
    BrokenCase {
        mode: "stream-error",
        text: "Hello",
        code: None,
        message: "The model is overloaded. Please try again later.",
        outcome: "failed",
        books: Books::Exact(so_far(2)),
    },
];

/// A Google-dialect target: deployments `<prefix><mode>`, the fake's paths by `path` (see [`method`]), and
/// `auth`.
pub fn target<'a>(
    gw: &'a Gateway,
    fake: &'a FakeUpstream,
    prefix: &'a str,
    path: fn(&str, bool) -> String,
    auth: Auth,
) -> Target<'a> {
    Target {
        gw,
        fake,
        prefix,
        path,
        auth,
        text: "Hello from fake gemini",
        usage: json!({"prompt_tokens": 21, "completion_tokens": 12, "total_tokens": 33,
                      "prompt_tokens_details": {"cached_tokens": 8},
                      "completion_tokens_details": {"reasoning_tokens": 5}}),
        tokens: TOKENS,
        golden_body: json!({
            "systemInstruction": {"parts": [{"text": "Be terse."}]},
            "contents": [{"role": "user", "parts": [{"text": "Weather in Paris?"}]}],
            "generationConfig": {"temperature": 0.5, "maxOutputTokens": 64, "stopSequences": ["END"]},
        }),
    }
}

/// `<model>:generateContent`, or `:streamGenerateContent?alt=sse`.
pub fn method(model: &str, stream: bool) -> String {
    if stream {
        format!("{model}:streamGenerateContent?alt=sse")
    } else {
        format!("{model}:generateContent")
    }
}

/// [`super::tool_chat`]'s turns and tools as Gemini's: each `functionResponse` named after its call's function,
/// the parameterless tool declared without `parameters` (Gemini refuses an object schema with no properties).
pub fn tool_body() -> Value {
    json!({
        "contents": [
            {"role": "user", "parts": [{"text": "Weather in Rome, and the time?"}]},
            {"role": "model", "parts": [
                {"functionCall": {"name": "get_weather", "args": {"city": "Rome"}}},
                {"functionCall": {"name": "get_time", "args": {}}}]},
            {"role": "user", "parts": [
                {"functionResponse": {"name": "get_time", "response": {"content": "12:00"}}},
                {"functionResponse": {"name": "get_weather", "response": {"content": "21C"}}}]},
        ],
        "tools": [{"functionDeclarations": [
            {"name": "get_weather", "description": "Weather by city",
             "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}},
            {"name": "get_time", "description": "Current time"},
        ]}],
    })
}

/// Tools with a finished round in the history, whole and streamed: both calls come back (the parameterless one
/// as `{}`) with `tool_calls` as the finish. Then the calls go back with their results: each result is named
/// after its call, and the first call carries its thought signature home (it rides in the call's id).
pub async fn tools(t: &Target<'_>) {
    let want = json!({"content": "", "finish_reason": "tool_calls",
                      "tool_calls": [["get_weather", "{\"city\":\"Paris\"}"], ["get_time", "{}"]]});
    let r = super::tools(t, &tool_body(), &want).await;
    let calls = r.json["choices"][0]["message"]["tool_calls"].clone();
    let follow_up = json!({"model": t.model("normal"), "messages": [
        {"role": "user", "content": "Weather in Paris, and the time?"},
        {"role": "assistant", "content": null, "tool_calls": calls},
        {"role": "tool", "tool_call_id": calls[0]["id"], "content": "18C"},
        {"role": "tool", "tool_call_id": calls[1]["id"], "content": "09:30"},
    ]});
    assert_eq!(chat(t.gw, &follow_up).await.status, 200);
    let sent = t.received("normal", false)["body"]["contents"].clone();
    let turns = json!([
        {"role": "user", "parts": [{"text": "Weather in Paris, and the time?"}]},
        {"role": "model", "parts": [
            {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": SIGNATURE},
            {"functionCall": {"name": "get_time", "args": {}}}]},
        {"role": "user", "parts": [
            {"functionResponse": {"name": "get_weather", "response": {"content": "18C"}}},
            {"functionResponse": {"name": "get_time", "response": {"content": "09:30"}}}]},
    ]);
    assert_eq!(sent, turns, "calls {calls}");
}
