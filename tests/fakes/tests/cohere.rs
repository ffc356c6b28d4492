//! Every mode of the fake Cohere v2 upstream over real HTTP: bodies, event sequences and usage as Cohere sends them.

#[expect(unused_imports, reason = "the shared support module re-exports `parse`, which these tests do not need")]
mod support;

use serde_json::{json, Value};
use support::post;
use tollgate_fakes::FakeUpstream;

const CHAT: &str = "/v2/chat";

fn chat(model: &str, stream: bool) -> String {
    json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": "hi"}]}).to_string()
}

/// The SSE events of a body as `(event name, data)`; checks each event's name repeats its data's `type`. A
/// trailing fragment with no blank line after it comes back as `("", raw text)`.
fn events(body: &str) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    let mut rest = body;
    while let Some(end) = rest.find("\n\n") {
        let block = &rest[..end];
        rest = &rest[end + 2..];
        let name = block.lines().find_map(|l| l.strip_prefix("event: ")).unwrap_or_default().to_owned();
        let data = block.lines().find_map(|l| l.strip_prefix("data: ")).unwrap_or_default();
        let data: Value = serde_json::from_str(data).unwrap_or_else(|e| panic!("event data {data:?}: {e}"));
        assert_eq!(data["type"], name.as_str(), "the event name repeats the data's type");
        out.push((name, data));
    }
    if !rest.is_empty() {
        out.push((String::new(), Value::String(rest.to_owned())));
    }
    out
}

fn names(events: &[(String, Value)]) -> Vec<&str> {
    events.iter().map(|(n, _)| n.as_str()).collect()
}

const USAGE: &str = r#"{"billed_units":{"input_tokens":13,"output_tokens":7},"tokens":{"input_tokens":513,"output_tokens":8},"cached_tokens":5}"#;

fn usage() -> Value {
    serde_json::from_str(USAGE).unwrap_or_default()
}

#[test]
fn normal_reply_and_stream() {
    let fake = FakeUpstream::start();
    let r = post(&fake.url, CHAT, &chat("command-a-03-2025", false));
    assert_eq!((r.status, r.header("content-type")), (200, Some("application/json")));
    assert_eq!(
        r.json(),
        json!({"id": "fake-cohere-1", "finish_reason": "COMPLETE",
            "message": {"role": "assistant", "content": [{"type": "text", "text": "Hello from fake cohere"}]},
            "usage": usage()})
    );

    let r = post(&fake.url, CHAT, &chat("normal", true));
    assert_eq!((r.status, r.header("content-type"), r.complete), (200, Some("text/event-stream"), true));
    let evs = events(&r.text());
    assert_eq!(
        names(&evs),
        [
            "message-start",
            "content-start",
            "content-delta",
            "content-delta",
            "content-delta",
            "content-delta",
            "content-end",
            "message-end"
        ]
    );
    assert_eq!(evs[0].1["id"], "fake-cohere-2");
    assert_eq!(evs[0].1["delta"]["message"]["role"], "assistant");
    let text: String = evs.iter().filter_map(|(_, d)| d["delta"]["message"]["content"]["text"].as_str()).collect();
    assert_eq!(text, "Hello from fake cohere");
    assert_eq!(evs[7].1["delta"], json!({"finish_reason": "COMPLETE", "error": null, "usage": usage()}));
}

#[test]
fn tools_whole_and_streamed() {
    let fake = FakeUpstream::start();
    let r = post(&fake.url, CHAT, &chat("tools", false));
    let reply = r.json();
    assert_eq!(reply["finish_reason"], "TOOL_CALL");
    assert_eq!(reply["message"]["tool_plan"], "I will check the weather.");
    assert_eq!(
        reply["message"]["tool_calls"],
        json!([
            {"id": "get_weather_fake1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
            {"id": "get_time_fake2", "type": "function", "function": {"name": "get_time", "arguments": "{}"}},
        ])
    );
    assert_eq!(reply["usage"]["billed_units"]["output_tokens"], 21);

    let r = post(&fake.url, CHAT, &chat("tools", true));
    let evs = events(&r.text());
    assert_eq!(
        names(&evs),
        [
            "message-start",
            "tool-plan-delta",
            "tool-plan-delta",
            "tool-call-start",
            "tool-call-delta",
            "tool-call-delta",
            "tool-call-delta",
            "tool-call-end",
            "tool-call-start",
            "tool-call-end",
            "message-end",
        ]
    );
    let plan: String = evs.iter().filter_map(|(_, d)| d["delta"]["message"]["tool_plan"].as_str()).collect();
    assert_eq!(plan, "I will check the weather.");
    assert_eq!(evs[3].1["delta"]["message"]["tool_calls"]["function"]["name"], "get_weather");
    assert_eq!(evs[8].1["index"], 1);
    assert_eq!(evs[8].1["delta"]["message"]["tool_calls"]["id"], "get_time_fake2");
    let args: String = evs[4..7]
        .iter()
        .filter_map(|(_, d)| d["delta"]["message"]["tool_calls"]["function"]["arguments"].as_str())
        .collect();
    assert_eq!(args, r#"{"city":"Paris"}"#);
    assert_eq!(evs[10].1["delta"]["finish_reason"], "TOOL_CALL");
}

#[test]
fn max_tokens_and_stream_error() {
    let fake = FakeUpstream::start();
    let r = post(&fake.url, CHAT, &chat("max-tokens", false));
    assert_eq!(
        (r.json()["finish_reason"].clone(), r.json()["message"]["content"][0]["text"].clone()),
        (json!("MAX_TOKENS"), json!("Hello from"))
    );
    let evs = events(&post(&fake.url, CHAT, &chat("max-tokens", true)).text());
    assert_eq!(evs.last().map(|(_, d)| d["delta"]["finish_reason"].clone()), Some(json!("MAX_TOKENS")));

    assert_eq!(post(&fake.url, CHAT, &chat("stream-error", false)).json()["finish_reason"], "ERROR");
    let r = post(&fake.url, CHAT, &chat("stream-error", true));
    assert!(r.complete);
    let evs = events(&r.text());
    assert_eq!(names(&evs), ["message-start", "content-start", "content-delta", "message-end"]);
    let end = &evs[3].1["delta"];
    assert_eq!(
        (end["finish_reason"].as_str(), end["error"].as_str()),
        (Some("ERROR"), Some("fake cohere: internal error during generation"))
    );
    assert_eq!(end["usage"]["billed_units"]["output_tokens"], 1, "a failed generation still reports usage");
}

#[test]
fn cut_streams_end_the_body_without_message_end() {
    let fake = FakeUpstream::start();
    let r = post(&fake.url, CHAT, &chat("cut", true));
    assert!(r.complete, "the HTTP body ends cleanly: only the dialect can tell the stream was cut");
    assert_eq!(names(&events(&r.text())), ["message-start", "content-start", "content-delta"]);

    let r = post(&fake.url, CHAT, &chat("cut-json", true));
    let evs = events(&r.text());
    assert_eq!(names(&evs), ["message-start", "content-start", "content-delta", ""]);
    let tail = evs[3].1.as_str().unwrap_or_default();
    assert!(tail.starts_with("event: content-delta\ndata: {") && !tail.ends_with('\n'), "{tail:?}");

    let r = post(&fake.url, CHAT, &chat("cut", false));
    assert!(r.complete && serde_json::from_slice::<Value>(&r.body).is_err(), "{}", r.text());
}

#[test]
fn echo_returns_the_request_body() {
    let fake = FakeUpstream::start();
    let body = chat("echo", false);
    assert_eq!(post(&fake.url, CHAT, &body).json()["message"]["content"][0]["text"], body.as_str());
    let body = chat("echo", true);
    let evs = events(&post(&fake.url, CHAT, &body).text());
    assert_eq!(evs[2].1["delta"]["message"]["content"]["text"], body.as_str());
}

#[test]
fn errors_are_cohere_bodies() {
    let fake = FakeUpstream::start();
    let cases: &[(&str, u16, &str)] = &[
        ("error-400", 400, "fake cohere 400: invalid request"),
        ("error-401", 401, "fake cohere 401: invalid api token"),
        ("error-429", 429, "fake cohere 429: You are using a Trial key"),
        ("error-500", 500, "fake cohere 500: internal server error"),
        ("too-many-tokens", 400, "too many tokens: size limit exceeded"),
        ("blocked", 400, "blocked output: please adjust your prompt"),
    ];
    for (model, status, message) in cases {
        for stream in [false, true] {
            let r = post(&fake.url, CHAT, &chat(model, stream));
            assert_eq!(r.status, *status, "{model}");
            assert_eq!(r.json()["id"], "fake-error-id");
            let got = r.json()["message"].as_str().unwrap_or_default().to_owned();
            assert!(got.starts_with(message), "{model}: {got}");
            assert_eq!(r.header("retry-after"), (*status == 429).then_some("7"), "{model}");
        }
    }
}

#[test]
fn embed_returns_float_vectors_and_billed_tokens() {
    let fake = FakeUpstream::start();
    let body = json!({"model": "embed-v4.0", "texts": ["hello world", "x"], "input_type": "search_document",
        "embedding_types": ["float"], "output_dimension": 256});
    let r = post(&fake.url, "/v2/embed", &body.to_string());
    assert_eq!(r.status, 200);
    let v = r.json();
    let vectors = v["embeddings"]["float"].as_array().cloned().unwrap_or_default();
    assert_eq!(vectors.len(), 2);
    assert!(vectors.iter().all(|e| e.as_array().is_some_and(|a| a.len() == 8)));
    assert_ne!(vectors[0], vectors[1]);
    assert_eq!(v["meta"]["billed_units"]["input_tokens"], 3);
    assert_eq!(
        (v["texts"].clone(), v["response_type"].clone()),
        (json!(["hello world", "x"]), json!("embeddings_by_type"))
    );
    // Same text, same vector.
    let again = post(&fake.url, "/v2/embed", &body.to_string()).json();
    assert_eq!(again["embeddings"], v["embeddings"]);
    let r = post(&fake.url, "/v2/embed", &json!({"model": "error-503", "texts": ["a"]}).to_string());
    assert_eq!(r.status, 503);
}

#[test]
fn requests_are_recorded_with_path_headers_and_body() {
    let fake = FakeUpstream::start();
    post(&fake.url, CHAT, &chat("normal", true));
    post(&fake.url, "/v2/embed", &json!({"model": "embed-v4.0", "texts": ["a"]}).to_string());
    post(&fake.url, CHAT, "not json");
    let seen = fake.requests();
    assert_eq!(seen.len(), 3);
    assert_eq!((seen[0]["path"].as_str(), seen[0]["body"]["stream"].as_bool()), (Some(CHAT), Some(true)));
    assert_eq!(seen[0]["headers"]["authorization"], "Bearer sk-test");
    assert_eq!(seen[1]["path"], "/v2/embed");
    assert_eq!((seen[2]["path"].as_str(), seen[2]["body"].is_null()), (Some(CHAT), true));
}
