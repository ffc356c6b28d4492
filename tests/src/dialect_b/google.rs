//! The checks the Gemini API and Vertex AI share: one wire format (Google's `generateContent`), two ways to
//! address and authenticate. `tests/tests/dialect_gemini.rs` and `dialect_vertex.rs` run each of them over their
//! own deployments, named `<prefix><mode>` after the fake's modes ([`MODES`]); what differs (the path, the auth
//! header) is in [`Google`].

use serde_json::{json, Value};

use super::{
    answer, assert_booked, assert_ends_with_error, chat, golden_chat, received, streamed, tool_call_ids, tool_chat,
    usages, within, Tokens,
};
use crate::{sse_data, FakeUpstream, Gateway};

/// The fake's modes the shared checks use; a gateway under test has a deployment `<prefix><mode>` for each.
pub const MODES: &[&str] =
    &["normal", "tools", "max-tokens", "safety", "blocked", "error-429", "error-context", "cut", "cut-json", "stream-error"];

/// The fake's usage (`promptTokenCount` 21 with 8 cached, `candidatesTokenCount` 7, `thoughtsTokenCount` 5) in
/// OpenAI's inclusive form: completion = candidates + thoughts.
pub const TOKENS: Tokens = Tokens { prompt: 21, completion: 12, cache_read: 8, cache_write: 0, reasoning: 5 };

/// The thought signature the fake puts on its first function call.
const SIGNATURE: &str = "ZmFrZS1zaWduYXR1cmU=";

/// The deployments of one way to reach Google's dialect.
pub struct Google<'a> {
    pub gw: &'a Gateway,
    pub fake: &'a FakeUpstream,
    /// Deployments are named `<prefix><mode>`.
    pub prefix: &'a str,
    /// The fake's path up to the model name (`/v1beta/models/`, or Vertex's `/v1/projects/.../models/`).
    pub models_path: String,
    /// The header that must carry the credential, and how its value must start.
    pub auth: (&'static str, String),
    /// The other way of authenticating, which must not be sent.
    pub not_sent: &'static str,
}

impl Google<'_> {
    pub fn model(&self, mode: &str) -> String {
        format!("{}{mode}", self.prefix)
    }

    /// The one request the fake received for `mode` (streamed or not), its credential checked.
    pub fn received(&self, mode: &str, stream: bool) -> Value {
        let method = if stream { "streamGenerateContent?alt=sse" } else { "generateContent" };
        let request = received(self.fake, &format!("{}{mode}:{method}", self.models_path));
        let (name, value) = &self.auth;
        let sent = request["headers"][name].as_str().unwrap_or_default();
        assert!(sent.starts_with(value.as_str()), "`{name}: {sent}` should start with {value}: {request}");
        assert!(request["headers"].get(self.not_sent).is_none(), "{request}");
        request
    }
}

/// [`golden_chat`] as a `generateContent` body.
pub fn golden_body() -> Value {
    json!({
        "systemInstruction": {"parts": [{"text": "Be terse."}]},
        "contents": [{"role": "user", "parts": [{"text": "Weather in Paris?"}]}],
        "generationConfig": {"temperature": 0.5, "maxOutputTokens": 64, "stopSequences": ["END"]},
    })
}

/// [`tool_chat`]'s turns and tools as Gemini's: each `functionResponse` named after its call's function, the
/// parameterless tool declared without `parameters` (Gemini refuses an object schema with no properties).
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

/// [`TOKENS`] in OpenAI's `usage`.
pub fn openai_usage() -> Value {
    json!({"prompt_tokens": 21, "completion_tokens": 12, "total_tokens": 33,
           "prompt_tokens_details": {"cached_tokens": 8}, "completion_tokens_details": {"reasoning_tokens": 5}})
}

/// A text request, whole: the path, credential and exact body the fake received; the answer, its usage, and the
/// settlement at the configured prices.
pub async fn text(t: &Google<'_>) {
    let r = chat(t.gw, &golden_chat(&t.model("normal"))).await;
    assert_eq!(answer(&r), json!({"content": "Hello from fake gemini", "tool_calls": [], "finish_reason": "stop"}));
    assert_eq!(r.json["object"], "chat.completion");
    assert_eq!(usages(&r), [openai_usage()]);
    assert_eq!(t.received("normal", false)["body"], golden_body());
    assert_booked(&r, TOKENS, "completed");
}

/// A text request, streamed with and without `include_usage`: the same body at the streaming path, the pieces
/// joined, `[DONE]` last, a usage chunk only when asked for, and the books exact either way.
pub async fn streams(t: &Google<'_>) {
    for include_usage in [false, true] {
        t.fake.clear();
        let r = chat(t.gw, &streamed(&golden_chat(&t.model("normal")), include_usage)).await;
        assert_eq!(answer(&r), json!({"content": "Hello from fake gemini", "tool_calls": [], "finish_reason": "stop"}));
        assert_eq!(sse_data(&r.text).last().map(String::as_str), Some("[DONE]"), "{}", r.text);
        let want = if include_usage { vec![openai_usage()] } else { vec![] };
        assert_eq!(usages(&r), want, "include_usage {include_usage}: {}", r.text);
        assert_eq!(t.received("normal", true)["body"], golden_body());
        assert_booked(&r, TOKENS, "completed");
    }
}

/// Tools with a finished round in the history, whole and streamed: results named by their call ids, both calls
/// back (the parameterless one as `{}`), `tool_calls` as the finish; then the calls go back with their results
/// and the first one carries its thought signature home.
pub async fn tools(t: &Google<'_>) {
    let want = json!({"content": "", "finish_reason": "tool_calls",
                      "tool_calls": [["get_weather", "{\"city\":\"Paris\"}"], ["get_time", "{}"]]});
    for stream in [false, true] {
        let body = if stream { streamed(&tool_chat(&t.model("tools")), false) } else { tool_chat(&t.model("tools")) };
        let r = chat(t.gw, &body).await;
        assert_eq!(answer(&r), want, "stream {stream}: {}", r.text);
        assert_eq!(t.received("tools", stream)["body"], tool_body(), "stream {stream}");
        if stream {
            continue;
        }
        let ids = tool_call_ids(&r);
        let follow_up = json!({"model": t.model("normal"), "messages": [
            {"role": "user", "content": "Weather in Paris, and the time?"},
            r.json["choices"][0]["message"],
            {"role": "tool", "tool_call_id": ids[0], "content": "18C"},
            {"role": "tool", "tool_call_id": ids[1], "content": "09:30"},
        ]});
        assert_eq!(chat(t.gw, &follow_up).await.status, 200);
        let sent = t.received("normal", false)["body"]["contents"].as_array().cloned().unwrap_or_default();
        let turns = json!([
            {"role": "model", "parts": [
                {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": SIGNATURE},
                {"functionCall": {"name": "get_time", "args": {}}}]},
            {"role": "user", "parts": [
                {"functionResponse": {"name": "get_weather", "response": {"content": "18C"}}},
                {"functionResponse": {"name": "get_time", "response": {"content": "09:30"}}}]},
        ]);
        assert_eq!(json!(sent.get(1..)), turns, "ids {ids:?}");
    }
}

/// Finish reasons, whole and streamed: MAX_TOKENS is `length`; SAFETY (after some text, when streamed) and a
/// blocked prompt are `content_filter`.
pub async fn finishes(t: &Google<'_>) {
    let cases = [
        ("max-tokens", false, "Hello from", "length"),
        ("max-tokens", true, "Hello from", "length"),
        ("safety", false, "", "content_filter"),
        ("safety", true, "Hello", "content_filter"),
        ("blocked", false, "", "content_filter"),
        ("blocked", true, "", "content_filter"),
    ];
    for (mode, stream, content, finish) in cases {
        let body = if stream { streamed(&golden_chat(&t.model(mode)), false) } else { golden_chat(&t.model(mode)) };
        let r = chat(t.gw, &body).await;
        let want = json!({"content": content, "tool_calls": [], "finish_reason": finish});
        assert_eq!(answer(&r), want, "{mode} stream {stream}: {}", r.text);
    }
}

/// Upstream errors in OpenAI's shape, whole and streamed: quota exhaustion is 429 with RetryInfo's delay as
/// `retry-after`; an input over the context window is 400 `context_length_exceeded`.
pub async fn errors(t: &Google<'_>) {
    let cases = [
        ("error-429", 429, "rate_limit_error", "rate_limit_exceeded", Some("7")),
        ("error-context", 400, "invalid_request_error", "context_length_exceeded", None),
    ];
    for ((mode, status, kind, code, retry_after), stream) in cases.into_iter().flat_map(|c| [(c, false), (c, true)]) {
        let body = if stream { streamed(&golden_chat(&t.model(mode)), false) } else { golden_chat(&t.model(mode)) };
        let r = chat(t.gw, &body).await;
        let got = (r.status, r.error_type(), r.json["error"]["code"].as_str(), r.header("retry-after"));
        assert_eq!(got, (status, kind, Some(code), retry_after), "{mode} stream {stream}: {}", r.text);
    }
}

/// Streams that end as Google's must not: closed before a finishReason (`cut`), closed mid-JSON (`cut-json`), or
/// an error event (`stream-error`). Each ends the caller's stream with an error chunk and no `[DONE]`, after the
/// text that came first; the books keep Google's running counts so far. A broken stream is `broken`; an error
/// the upstream reported itself is `failed`.
pub async fn broken_streams(t: &Google<'_>) {
    let so_far = |candidates: u64| Tokens { completion: candidates + TOKENS.reasoning, ..TOKENS };
    let cases = [
        ("cut", "Hello from", Some("upstream_stream_broken"), "ended before a finishReason", "broken", so_far(4)),
        ("cut-json", "Hello", Some("upstream_stream_broken"), "in the middle of an event", "broken", so_far(2)),
        ("stream-error", "Hello", None, "The model is overloaded", "failed", so_far(2)),
    ];
    for (mode, text, code, message, outcome, tokens) in cases {
        let r = within(chat(t.gw, &streamed(&golden_chat(&t.model(mode)), true))).await;
        let error = assert_ends_with_error(&r);
        assert_eq!(answer(&r)["content"], text, "{mode}: {}", r.text);
        assert_eq!(error["code"].as_str(), code, "{mode}: {error}");
        assert!(error["message"].as_str().is_some_and(|m| m.contains(message)), "{mode}: {error}");
        assert_booked(&r, tokens, outcome);
    }
}
