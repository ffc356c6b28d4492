//! The fake Anthropic Messages API over real HTTP: exact streams (the fixtures tollgate's decoder is tested on),
//! whole replies, errors, auth checks and the cut-stream modes.

use std::{io::Write, net::TcpStream};

use serde_json::{json, Value};
use tollgate_fakes::{
    raw::{read_response, Response},
    FakeUpstream,
};

const MESSAGES: &str = "/v1/messages";
const KEY: &str = "x-api-key: sk-ant-test\r\n";
const VERSION: &str = "anthropic-version: 2023-06-01\r\n";

fn send(url: &str, path: &str, headers: &str, body: &str) -> Response {
    let host = url.trim_start_matches("http://");
    let mut stream = TcpStream::connect(host).expect("connect to the fake");
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\n{headers}Content-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).expect("send request");
    read_response(&mut stream)
}

fn body(model: &str, extra: Value) -> String {
    let mut body = json!({"model": model, "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]});
    if let (Some(body), Value::Object(extra)) = (body.as_object_mut(), extra) {
        body.extend(extra);
    }
    body.to_string()
}

fn post(url: &str, model: &str, extra: Value) -> Response {
    send(url, MESSAGES, &format!("{KEY}{VERSION}"), &body(model, extra))
}

#[test]
fn streams_are_exactly_the_fixtures() {
    let cases = [
        ("normal", include_str!("../../fixtures/anthropic/text.sse")),
        ("tools", include_str!("../../fixtures/anthropic/tools.sse")),
        ("thinking", include_str!("../../fixtures/anthropic/thinking.sse")),
        ("stream-error", include_str!("../../fixtures/anthropic/stream_error.sse")),
    ];
    for (model, fixture) in cases {
        // A fresh fake per case: the fixtures are each the first request's (`msg_fake_1`).
        let fake = FakeUpstream::start();
        let r = post(&fake.url, model, json!({"stream": true}));
        assert_eq!(r.status, 200, "{model}");
        assert_eq!(r.header("content-type"), Some("text/event-stream"), "{model}");
        assert!(r.complete, "{model}");
        assert_eq!(r.text(), fixture, "{model}");
    }
}

#[test]
fn whole_replies() {
    let fake = FakeUpstream::start();
    let r = post(&fake.url, "normal", json!({}));
    assert_eq!(r.status, 200);
    assert_eq!(r.header("request-id"), Some("req_fake_1"));
    assert_eq!(r.header("anthropic-ratelimit-requests-remaining"), Some("99"));
    let usage = json!({"input_tokens": 21, "cache_creation_input_tokens": 3, "cache_read_input_tokens": 5, "output_tokens": 9,
        "cache_creation": {"ephemeral_5m_input_tokens": 3, "ephemeral_1h_input_tokens": 0}, "service_tier": "standard"});
    assert_eq!(
        r.json(),
        json!({"id": "msg_fake_1", "type": "message", "role": "assistant", "model": "normal",
            "content": [{"type": "text", "text": "Hello from fake upstream"}],
            "stop_reason": "end_turn", "stop_sequence": null, "usage": usage})
    );
    let r = post(&fake.url, "tools", json!({}));
    assert_eq!(
        r.json()["content"],
        json!([{"type": "text", "text": "Let me check."},
            {"type": "tool_use", "id": "toolu_fake_1", "name": "get_weather", "input": {"city": "Paris"}},
            {"type": "tool_use", "id": "toolu_fake_2", "name": "get_time", "input": {}}])
    );
    assert_eq!(r.json()["stop_reason"], "tool_use");
    let r = post(&fake.url, "thinking", json!({}));
    assert_eq!(r.json()["content"][0]["signature"], "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds");
    assert_eq!(r.json()["usage"]["output_tokens_details"], json!({"thinking_tokens": 4}));
    let r = post(&fake.url, "max-tokens", json!({}));
    assert_eq!(r.json()["stop_reason"], "max_tokens");
    let r = post(&fake.url, "stop-seq", json!({"stop_sequences": ["END", "STOP"]}));
    assert_eq!(
        (r.json()["stop_reason"].clone(), r.json()["stop_sequence"].clone()),
        (json!("stop_sequence"), json!("END"))
    );
    let sent = body("echo", json!({"system": "s"}));
    let r = send(&fake.url, MESSAGES, &format!("{KEY}{VERSION}"), &sent);
    assert_eq!(r.json()["content"][0]["text"], sent.as_str());
}

#[test]
fn errors_in_anthropics_shape() {
    let fake = FakeUpstream::start();
    let r = post(&fake.url, "error-429", json!({}));
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), Some("7"));
    assert_eq!(r.header("anthropic-ratelimit-requests-remaining"), Some("0"));
    assert_eq!(r.json()["type"], "error");
    assert_eq!(r.json()["error"]["type"], "rate_limit_error");
    let r = post(&fake.url, "error-529", json!({"stream": true}));
    assert_eq!(r.status, 529);
    assert_eq!(r.json()["error"], json!({"type": "overloaded_error", "message": "Overloaded"}));
    let r = post(&fake.url, "error-500", json!({}));
    assert_eq!((r.status, r.json()["error"]["type"].clone()), (500, json!("api_error")));
    let r = post(&fake.url, "too-long", json!({}));
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["message"], "prompt is too long: 250000 tokens > 200000 maximum");
    let r = send(&fake.url, MESSAGES, &format!("{KEY}{VERSION}"), r#"{"model":"normal","messages":[]}"#);
    assert_eq!((r.status, r.json()["error"]["message"].clone()), (400, json!("max_tokens: Field required")));
}

#[test]
fn auth_and_version_headers_are_required() {
    let fake = FakeUpstream::start();
    let b = body("normal", json!({}));
    let r = send(&fake.url, MESSAGES, VERSION, &b);
    assert_eq!((r.status, r.json()["error"]["type"].clone()), (401, json!("authentication_error")));
    let r = send(&fake.url, MESSAGES, KEY, &b);
    assert_eq!((r.status, r.json()["error"]["type"].clone()), (400, json!("invalid_request_error")));
    let r = send(&fake.url, MESSAGES, &format!("Authorization: Bearer sk-ant-oauth\r\n{VERSION}"), &b);
    assert_eq!(r.status, 200);
    // Every request is recorded, refused or not, with its headers.
    let seen = fake.requests();
    assert_eq!(seen.len(), 3);
    assert_eq!(seen[0]["path"], MESSAGES);
    assert_eq!(seen[2]["headers"]["anthropic-version"], "2023-06-01");
    assert_eq!(seen[2]["body"]["model"], "normal");
}

#[test]
fn cut_streams_end_without_message_stop() {
    let fake = FakeUpstream::start();
    let r = post(&fake.url, "cut", json!({"stream": true}));
    assert_eq!(r.status, 200);
    assert!(r.complete, "the HTTP body ends cleanly; only the event stream is cut");
    let text = r.text();
    assert!(text.ends_with("\"delta\":{\"type\":\"text_delta\",\"text\":\"Hello\"}}\n\n"), "{text}");
    assert!(!text.contains("message_stop") && !text.contains("message_delta"), "{text}");
    let r = post(&fake.url, "cut-json", json!({"stream": true}));
    assert!(r.text().ends_with("\"delta\":{\"type\":\"text_d"), "{}", r.text());
}

#[test]
fn count_tokens() {
    let fake = FakeUpstream::start();
    let r = send(&fake.url, "/v1/messages/count_tokens", &format!("{KEY}{VERSION}"), r#"{"model":"m","messages":[]}"#);
    assert_eq!((r.status, r.json()), (200, json!({"input_tokens": 21})));
    assert_eq!(fake.requests()[0]["path"], "/v1/messages/count_tokens");
}
