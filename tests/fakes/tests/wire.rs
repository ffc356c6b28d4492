//! Every mode of the fake OpenAI upstream over real HTTP, checked byte for byte where the wire format matters.

mod support;

use std::{
    io::{ErrorKind, Read},
    time::{Duration, Instant},
};

use serde_json::{json, Value};
use support::{parse, post, request, send};
use tollgate_fakes::FakeUpstream;

const CHAT: &str = "/v1/chat/completions";

fn chat(model: &str, extra: Value) -> String {
    let mut body =
        json!({"model": model, "messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "hi"}]});
    if let (Some(body), Value::Object(extra)) = (body.as_object_mut(), extra) {
        body.extend(extra);
    }
    body.to_string()
}

/// One SSE event of a chunk of `chatcmpl-fake-<seq>`; `usage` is the raw text after `"choices":[..]` (e.g. `,"usage":null`).
fn chunk(model: &str, choices: &str, usage: &str) -> String {
    format!(
        "data: {{\"id\":\"chatcmpl-fake-1\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"{model}\",\
         \"system_fingerprint\":\"fp_fake\",\"choices\":[{choices}]{usage}}}\n\n"
    )
}

fn delta(delta: &str, finish: &str) -> String {
    format!("{{\"index\":0,\"delta\":{delta},\"logprobs\":null,\"finish_reason\":{finish}}}")
}

const ROLE: &str = r#"{"role":"assistant","content":"","refusal":null}"#;
const DONE: &str = "data: [DONE]\n\n";
const USAGE: &str = r#","usage":{"prompt_tokens":20,"completion_tokens":5,"total_tokens":25}"#;

fn normal_stream(model: &str, usage: &str) -> String {
    let mut want = chunk(model, &delta(ROLE, "null"), usage);
    for piece in ["Hello", " from", " fake", " upstream"] {
        want += &chunk(model, &delta(&format!(r#"{{"content":"{piece}"}}"#), "null"), usage);
    }
    want + &chunk(model, &delta("{}", "\"stop\""), usage)
}

#[test]
fn normal_completion_is_exact() {
    let fake = FakeUpstream::start();
    let r = post(&fake.url, CHAT, &chat("normal", json!({})));
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(
        r.text(),
        r#"{"id":"chatcmpl-fake-1","object":"chat.completion","created":1700000000,"model":"normal","system_fingerprint":"fp_fake","choices":[{"index":0,"message":{"role":"assistant","content":"Hello from fake upstream","refusal":null},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":20,"completion_tokens":5,"total_tokens":25}}"#
    );
    // Unknown models behave like `normal`, under either path.
    let r = post(&fake.url, "/chat/completions", &chat("gpt-4o", json!({})));
    assert_eq!(r.json()["choices"][0]["message"]["content"], "Hello from fake upstream");
    assert_eq!(r.json()["id"], "chatcmpl-fake-2");
    assert_eq!(r.json()["model"], "gpt-4o");
}

#[test]
fn normal_stream_is_exact_and_has_no_usage_unless_asked() {
    let fake = FakeUpstream::start();
    let r = post(&fake.url, CHAT, &chat("normal", json!({"stream": true})));
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    assert!(r.complete);
    assert_eq!(r.text(), normal_stream("normal", "") + DONE);

    let r = post(&fake.url, CHAT, &chat("normal", json!({"stream": true, "stream_options": {"include_usage": false}})));
    assert!(!r.text().contains("usage"), "{}", r.text());
}

#[test]
fn include_usage_adds_null_usage_everywhere_and_a_final_usage_chunk() {
    let fake = FakeUpstream::start();
    let body = chat("normal", json!({"stream": true, "stream_options": {"include_usage": true}}));
    let r = post(&fake.url, CHAT, &body);
    let want = normal_stream("normal", ",\"usage\":null") + &chunk("normal", "", USAGE) + DONE;
    assert_eq!(r.text(), want);
}

#[test]
fn stream_n_streams_n_pieces_back_to_back() {
    let fake = FakeUpstream::start();
    let r =
        post(&fake.url, CHAT, &chat("stream-20", json!({"stream": true, "stream_options": {"include_usage": true}})));
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    assert!(r.complete);
    let u = ",\"usage\":null";
    let mut want = chunk("stream-20", &delta(ROLE, "null"), u);
    for i in 0..20 {
        want += &chunk("stream-20", &delta(&format!(r#"{{"content":"w{i} "}}"#), "null"), u);
    }
    want += &chunk("stream-20", &delta("{}", "\"stop\""), u);
    want += &chunk("stream-20", "", r#","usage":{"prompt_tokens":20,"completion_tokens":20,"total_tokens":40}"#);
    want += DONE;
    assert_eq!(r.text(), want);

    // Not streaming: the pieces joined, and the usage to match.
    let r = post(&fake.url, CHAT, &chat("stream-3", json!({})));
    let v = r.json();
    assert_eq!(v["choices"][0]["message"]["content"], "w0 w1 w2 ");
    assert_eq!(v["usage"], json!({"prompt_tokens": 20, "completion_tokens": 3, "total_tokens": 23}));
}

#[test]
fn tool_calls_whole_and_streamed() {
    let fake = FakeUpstream::start();
    let r = post(&fake.url, CHAT, &chat("tools", json!({})));
    let v = r.json();
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(v["choices"][0]["message"]["content"], Value::Null);
    assert_eq!(
        v["choices"][0]["message"]["tool_calls"],
        json!([{"id":"call_fake_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}])
    );
    assert!(r.text().contains(r#""tool_calls":[{"id":"call_fake_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]"#));

    fake.clear();
    let r = post(&fake.url, CHAT, &chat("tools", json!({"stream": true, "stream_options": {"include_usage": true}})));
    let u = ",\"usage\":null";
    let call = |c: &str| chunk("tools", &delta(&format!(r#"{{"tool_calls":[{c}]}}"#), "null"), u);
    let mut want = chunk("tools", &delta(r#"{"role":"assistant","content":null,"refusal":null}"#, "null"), u);
    want +=
        &call(r#"{"index":0,"id":"call_fake_1","type":"function","function":{"name":"get_weather","arguments":""}}"#);
    for piece in [r#"{\"city\""#, r#":\"Par"#, r#"is\"}"#] {
        want += &call(&format!(r#"{{"index":0,"function":{{"arguments":"{piece}"}}}}"#));
    }
    want += &chunk("tools", &delta("{}", "\"tool_calls\""), u);
    want += &chunk("tools", "", USAGE);
    want += DONE;
    assert_eq!(r.text().replace("chatcmpl-fake-2", "chatcmpl-fake-1"), want);
}

#[test]
fn error_modes_answer_with_openai_error_bodies() {
    let fake = FakeUpstream::start();
    let cases = [
        (400, "invalid_request_error", Value::Null),
        (401, "invalid_request_error", json!("invalid_api_key")),
        (404, "invalid_request_error", json!("model_not_found")),
        (429, "requests", json!("rate_limit_exceeded")),
        (500, "server_error", Value::Null),
        (503, "server_error", Value::Null),
    ];
    for (status, kind, code) in cases {
        for path in [CHAT, "/v1/embeddings"] {
            let r = post(&fake.url, path, &json!({"model": format!("error-{status}"), "input": "x"}).to_string());
            assert_eq!(r.status, status, "{path}");
            assert_eq!(r.header("content-type"), Some("application/json"));
            let e = &r.json()["error"];
            assert_eq!(e.as_object().map(|o| o.len()), Some(4), "{}", r.text());
            assert_eq!(e["type"], kind);
            assert_eq!(e["code"], code);
            assert_eq!(e["param"], Value::Null);
            assert!(e["message"].as_str().unwrap_or("").contains(&format!("fake upstream {status}")), "{}", r.text());
            let limited = status == 429;
            assert_eq!(r.header("retry-after"), limited.then_some("7"));
            assert_eq!(r.header("x-ratelimit-remaining-requests"), limited.then_some("0"));
        }
    }
    let r = post(&fake.url, CHAT, &chat("error-401", json!({"stream": true})));
    assert!(r.json()["error"]["message"].as_str().unwrap_or("").contains("Incorrect API key provided: sk-fa***key"));
}

#[test]
fn malformed_json_is_a_400_and_still_recorded() {
    let fake = FakeUpstream::start();
    let r = post(&fake.url, CHAT, "{not json");
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["type"], "invalid_request_error");
    let r = post(&fake.url, "/embeddings", "");
    assert_eq!(r.status, 400);
    let seen = fake.requests();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0]["body"], Value::Null);
    assert_eq!(seen[1]["path"], "/embeddings");
}

#[test]
fn delay_waits_then_answers_normally() {
    let fake = FakeUpstream::start();
    let started = Instant::now();
    let r = post(&fake.url, CHAT, &chat("delay-300", json!({})));
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(r.json()["choices"][0]["message"]["content"], "Hello from fake upstream");

    let started = Instant::now();
    let r = post(&fake.url, CHAT, &chat("delay-200", json!({"stream": true})));
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert!(r.complete && r.text().ends_with(DONE));
}

#[test]
fn hang_never_answers() {
    let fake = FakeUpstream::start();
    let mut s = send(&fake.url, "POST", CHAT, Some(&chat("hang", json!({}))));
    s.set_read_timeout(Some(Duration::from_millis(500))).expect("timeout");
    let mut buf = [0u8; 64];
    let err = s.read(&mut buf).expect_err("no bytes while hanging");
    assert!(matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut), "{err}");
    assert_eq!(fake.requests().len(), 1, "the request was accepted and recorded");
}

#[test]
fn slow_stream_records_when_the_client_goes_away() {
    let fake = FakeUpstream::start();
    let mut s = send(&fake.url, "POST", CHAT, Some(&chat("slow-stream", json!({"stream": true}))));
    s.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    let started = Instant::now();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while String::from_utf8_lossy(&seen).matches("tick ").count() < 3 {
        let n = s.read(&mut buf).expect("read");
        assert!(n > 0, "stream ended early");
        seen.extend_from_slice(&buf[..n]);
    }
    assert!(started.elapsed() >= Duration::from_millis(100), "ticks are 50 ms apart");
    assert!(fake.events().is_empty());
    drop(s);
    let left = Instant::now();
    while !fake.events().contains(&"stream_dropped:1".to_owned()) {
        assert!(left.elapsed() < Duration::from_secs(2), "no stream_dropped event: {:?}", fake.events());
        std::thread::sleep(Duration::from_millis(20));
    }
    let over_http = request(&fake.url, "GET", "/__fake/events", None).json();
    assert_eq!(over_http, json!(["stream_dropped:1"]));
    assert_eq!(request(&fake.url, "DELETE", "/__fake/events", None).status, 204);
    assert!(fake.events().is_empty());

    // Not streaming, it is just `normal`.
    let r = post(&fake.url, CHAT, &chat("slow-stream", json!({})));
    assert_eq!(r.json()["choices"][0]["message"]["content"], "Hello from fake upstream");
}

#[test]
fn stall_sends_two_chunks_then_nothing() {
    let fake = FakeUpstream::start();
    let mut s = send(&fake.url, "POST", CHAT, Some(&chat("stall", json!({"stream": true}))));
    s.set_read_timeout(Some(Duration::from_millis(700))).expect("timeout");
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    let err = loop {
        match s.read(&mut buf) {
            Ok(n) => {
                assert!(n > 0, "the stall must not end the stream");
                raw.extend_from_slice(&buf[..n]);
            }
            Err(e) => break e,
        }
    };
    assert!(matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut), "{err}");
    let r = parse(&raw);
    assert!(!r.complete);
    let want = chunk("stall", &delta(ROLE, "null"), "") + &chunk("stall", &delta(r#"{"content":"Hello"}"#, "null"), "");
    assert_eq!(r.text(), want);
}

#[test]
fn reset_breaks_the_transfer_mid_body() {
    let fake = FakeUpstream::start();
    let r = post(&fake.url, CHAT, &chat("reset", json!({"stream": true})));
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    assert!(!r.complete, "the client must see a broken transfer, not a clean end");
    let want = chunk("reset", &delta(ROLE, "null"), "") + &chunk("reset", &delta(r#"{"content":"Hello"}"#, "null"), "");
    assert_eq!(r.text(), want, "the chunks before the reset arrive");

    let r = post(&fake.url, CHAT, &chat("reset", json!({})));
    assert_eq!(r.status, 200);
    assert!(!r.complete);
    assert_eq!(r.text(), r#"{"id":"chatcmpl-"#);
}

#[test]
fn echo_returns_the_request_body_it_received() {
    let fake = FakeUpstream::start();
    let body = r#"{"model":"echo","messages":[{"role":"user","content":"hi"}],"x_custom":{"z":1,"a":[2]}}"#;
    let r = post(&fake.url, CHAT, body);
    assert_eq!(r.json()["choices"][0]["message"]["content"], body);

    let streamed = body.replace("\"echo\",", "\"echo\",\"stream\":true,");
    let r = post(&fake.url, CHAT, &streamed);
    assert!(r.complete && r.text().ends_with(DONE));
    let content: String = r
        .text()
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(content, streamed);
}

#[test]
fn embeddings_are_deterministic_per_input() {
    let fake = FakeUpstream::start();
    let r =
        post(&fake.url, "/v1/embeddings", &json!({"model": "embed", "input": ["first text", "second"]}).to_string());
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(v["object"], "list");
    assert_eq!(v["model"], "embed");
    assert_eq!(v["usage"], json!({"prompt_tokens": 3, "total_tokens": 3}));
    let data = v["data"].as_array().cloned().unwrap_or_default();
    assert_eq!(data.len(), 2);
    for (i, item) in data.iter().enumerate() {
        assert_eq!(item["object"], "embedding");
        assert_eq!(item["index"], i);
        assert_eq!(item["embedding"].as_array().map(Vec::len), Some(8));
    }
    assert_ne!(data[0]["embedding"], data[1]["embedding"]);
    let again = post(&fake.url, "/embeddings", &json!({"model": "embed", "input": "second"}).to_string()).json();
    assert_eq!(again["data"][0]["embedding"], data[1]["embedding"]);
    assert!(r
        .text()
        .starts_with(r#"{"object":"list","model":"embed","data":[{"object":"embedding","index":0,"embedding":["#));

    let r = post(&fake.url, "/v1/embeddings", &json!({"model": "embed"}).to_string());
    assert_eq!(r.status, 400);
}

#[test]
fn models_list_is_exact() {
    let fake = FakeUpstream::start();
    let r = request(&fake.url, "GET", "/v1/models", None);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(
        r.text(),
        r#"{"object":"list","data":[{"id":"fake-model","object":"model","created":1700000000,"owned_by":"fake"}]}"#
    );
}

#[test]
fn requests_are_recorded_and_cleared() {
    let fake = FakeUpstream::start();
    post(&fake.url, CHAT, &chat("normal", json!({})));
    post(&fake.url, "/v1/embeddings", &json!({"model": "e", "input": "x"}).to_string());
    request(&fake.url, "GET", "/v1/models", None);
    let seen = fake.requests();
    assert_eq!(seen.len(), 2, "only chat and embeddings are recorded");
    assert_eq!(seen[0]["seq"], 1);
    assert_eq!(seen[0]["path"], CHAT);
    assert_eq!(seen[0]["headers"]["authorization"], "Bearer sk-test");
    assert_eq!(seen[0]["headers"]["x-custom-header"], "Mixed");
    assert_eq!(seen[0]["body"]["messages"][1]["content"], "hi");
    assert_eq!(seen[1]["seq"], 2);
    assert_eq!(request(&fake.url, "GET", "/__fake/requests", None).json(), Value::Array(seen));

    assert_eq!(request(&fake.url, "DELETE", "/__fake/requests", None).status, 204);
    assert!(fake.requests().is_empty());
    post(&fake.url, CHAT, &chat("normal", json!({})));
    assert_eq!(fake.requests()[0]["seq"], 3, "sequence numbers keep counting");
    fake.clear();
    assert!(fake.requests().is_empty());
}

#[test]
fn switches_flip_a_model_between_modes_over_http() {
    let fake = FakeUpstream::start();
    assert_eq!(post(&fake.url, CHAT, &chat("switch-a", json!({}))).status, 200, "normal until set");
    assert_eq!(request(&fake.url, "PUT", "/__fake/switch/a", Some("rate-limited-2")).status, 204);
    let r = post(&fake.url, CHAT, &chat("switch-a", json!({})));
    assert_eq!((r.status, r.header("retry-after")), (429, Some("2")));
    assert_eq!(post(&fake.url, "/v1/embeddings", &json!({"model": "switch-a", "input": "x"}).to_string()).status, 429);
    fake.set_switch("a", "normal");
    assert_eq!(post(&fake.url, CHAT, &chat("switch-a", json!({}))).status, 200);
    let seen = fake.requests();
    assert_eq!(seen.len(), 4);
    assert!(seen.windows(2).all(|w| w[0]["at_ms"].as_u64() <= w[1]["at_ms"].as_u64()), "arrival times in order");
}

#[test]
fn cut_and_cut_json_end_the_stream_early() {
    let fake = FakeUpstream::start();
    let head = |model: &str| {
        chunk(model, &delta(ROLE, "null"), "") + &chunk(model, &delta(r#"{"content":"Hello"}"#, "null"), "")
    };
    let r = post(&fake.url, CHAT, &chat("cut", json!({"stream": true})));
    assert!(r.complete, "the body ends cleanly, only too early");
    assert_eq!(r.text(), head("cut"));

    // A fresh fake, so the chunk ids are `chatcmpl-fake-1` again.
    let fake = FakeUpstream::start();
    let r = post(&fake.url, CHAT, &chat("cut-json", json!({"stream": true})));
    assert!(r.complete);
    let next = chunk("cut-json", &delta(r#"{"content":" from"}"#, "null"), "");
    let want = head("cut-json") + &next[..next.len() / 2];
    assert_eq!(r.text(), want, "ends half-way through a chunk's JSON");
}

#[test]
fn context_length_and_content_filter_errors() {
    let fake = FakeUpstream::start();
    let r = post(&fake.url, CHAT, &chat("context-length", json!({})));
    assert_eq!(r.status, 400);
    let e = &r.json()["error"];
    assert_eq!(
        (e["type"].as_str(), e["code"].as_str()),
        (Some("invalid_request_error"), Some("context_length_exceeded"))
    );
    assert!(e["message"].as_str().is_some_and(|m| m.starts_with("This model's maximum context length is 128000")));

    let r = post(&fake.url, CHAT, &chat("content-filter", json!({})));
    assert_eq!(r.status, 400);
    let e = &r.json()["error"];
    assert_eq!(
        (e["code"].as_str(), e["param"].as_str(), &e["type"]),
        (Some("content_filter"), Some("prompt"), &Value::Null)
    );
    assert_eq!(e["innererror"]["code"], "ResponsibleAIPolicyViolation");
}

#[test]
fn azure_paths_need_an_api_version_and_are_recorded_with_it() {
    let fake = FakeUpstream::start();
    let chat_path = "/openai/deployments/dep-1/chat/completions";
    let r = post(&fake.url, &format!("{chat_path}?api-version=2024-10-21"), &chat("normal", json!({})));
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["choices"][0]["message"]["content"], "Hello from fake upstream");
    let embed_path = "/openai/deployments/dep-1/embeddings?api-version=2024-10-21";
    let r = post(&fake.url, embed_path, &json!({"model": "e", "input": "x"}).to_string());
    assert_eq!(r.json()["data"][0]["embedding"].as_array().map(Vec::len), Some(8));
    for path in [chat_path.to_owned(), format!("{chat_path}?api-version="), format!("{chat_path}?other=1")] {
        let r = post(&fake.url, &path, &chat("normal", json!({})));
        assert_eq!(r.status, 400, "{path}");
        assert_eq!(r.json()["error"]["message"], "Missing required query parameter: api-version");
    }
    let paths: Vec<Value> = fake.requests().iter().map(|r| r["path"].clone()).collect();
    assert_eq!(
        paths,
        [
            json!(format!("{chat_path}?api-version=2024-10-21")),
            json!(embed_path),
            json!(chat_path),
            json!(format!("{chat_path}?api-version=")),
            json!(format!("{chat_path}?other=1")),
        ]
    );
}

#[test]
fn text_completions_are_exact() {
    let fake = FakeUpstream::start();
    let completion = |extra: Value| {
        let mut body = json!({"model": "gpt-3.5-turbo-instruct", "prompt": "Say hi"});
        if let (Some(body), Value::Object(extra)) = (body.as_object_mut(), extra) {
            body.extend(extra);
        }
        post(&fake.url, "/v1/completions", &body.to_string())
    };
    let head = r#"{"id":"cmpl-fake-SEQ","object":"text_completion","created":1700000000,"model":"gpt-3.5-turbo-instruct","system_fingerprint":"fp_fake","choices":["#;
    let head = |seq: u32| head.replace("SEQ", &seq.to_string());
    let r = completion(json!({}));
    assert_eq!((r.status, r.header("content-type")), (200, Some("application/json")));
    assert_eq!(
        r.text(),
        head(1)
            + r#"{"text":"Hello from fake upstream","index":0,"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":10,"completion_tokens":5,"total_tokens":15}}"#
    );
    let r = completion(json!({"prompt": ["a", "b"]}));
    let indexes: Vec<Value> =
        r.json()["choices"].as_array().into_iter().flatten().map(|c| c["index"].clone()).collect();
    assert_eq!((indexes, r.json()["usage"]["total_tokens"].clone()), (vec![json!(0), json!(1)], json!(30)));

    let event = |seq: u32, choices: &str, usage: &str| format!("data: {}{choices}]{usage}}}\n\n", head(seq));
    let choice =
        |text: &str, finish: &str| format!(r#"{{"text":"{text}","index":0,"logprobs":null,"finish_reason":{finish}}}"#);
    let stream = |seq: u32, usage: &str| {
        let mut want: String =
            ["Hello", " from", " fake", " upstream"].iter().map(|p| event(seq, &choice(p, "null"), usage)).collect();
        want += &event(seq, &choice("", "\"stop\""), usage);
        want
    };
    let r = completion(json!({"stream": true}));
    assert_eq!((r.status, r.header("content-type")), (200, Some("text/event-stream")));
    assert_eq!(r.text(), stream(3, "") + DONE);
    let r = completion(json!({"stream": true, "stream_options": {"include_usage": true}}));
    let usage = event(4, "", r#","usage":{"prompt_tokens":10,"completion_tokens":5,"total_tokens":15}"#);
    assert_eq!(r.text(), stream(4, r#","usage":null"#) + &usage + DONE);

    let r = post(&fake.url, "/completions", &json!({"model": "error-429", "prompt": "x"}).to_string());
    assert_eq!((r.status, r.header("retry-after")), (429, Some("7")));
    let r = completion(json!({"prompt": 5}));
    assert_eq!(r.status, 400);
    let seen = fake.requests();
    assert_eq!(
        (seen.len(), seen[0]["path"].as_str(), seen[4]["path"].as_str()),
        (6, Some("/v1/completions"), Some("/completions"))
    );
}
