//! How the upstream frames its response body, over real HTTP with exact bytes (the raw-TCP fake): a close-delimited
//! body (neither `Content-Length` nor chunked, ended by closing the connection, as Python's `http.server` does)
//! is relayed whole, and a body cut short is still reported to the caller whatever its framing.
//! See: issue 12, finding 2 ("close-delimited upstream bodies are lost"); RFC 9112 section 6.3, rule 8.

use std::{
    io::Read,
    time::{Duration, Instant},
};

use serde_json::{json, Value};
use tollgate_tests::{
    chat_body, client, logs, model_at,
    raw::{self, End, RawReply, RawUpstream},
    raw_post, raw_post_open, sse_data, Gateway,
};

const CHAT: &str = "/v1/chat/completions";

const COMPLETION: &str = r#"{"id":"chatcmpl-raw","object":"chat.completion","created":1700000000,"model":"up","choices":[{"index":0,"message":{"role":"assistant","content":"Hello over a closing connection"},"finish_reason":"stop"}],"usage":{"prompt_tokens":7,"completion_tokens":3,"total_tokens":10}}"#;

/// The SSE events of one streamed completion, in order, as the upstream writes them.
fn events() -> Vec<String> {
    let chunk = |choices: &str, usage: &str| {
        format!(
            "data: {{\"id\":\"chatcmpl-raw\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"up\",\"choices\":[{choices}]{usage}}}\n\n"
        )
    };
    vec![
        chunk(r#"{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}"#, ""),
        chunk(r#"{"index":0,"delta":{"content":"Hello"},"finish_reason":null}"#, ""),
        chunk(r#"{"index":0,"delta":{"content":" there"},"finish_reason":null}"#, ""),
        chunk(r#"{"index":0,"delta":{},"finish_reason":"stop"}"#, ""),
        chunk("", r#","usage":{"prompt_tokens":7,"completion_tokens":2,"total_tokens":9}"#),
        "data: [DONE]\n\n".to_owned(),
    ]
}

fn strs(events: &[String]) -> Vec<&str> {
    events.iter().map(String::as_str).collect()
}

/// `data:` payloads as JSON (`[DONE]` stays a string), for comparing parsed values.
fn payloads(text: &str) -> Vec<Value> {
    sse_data(text).into_iter().map(|d| serde_json::from_str(&d).unwrap_or(Value::String(d))).collect()
}

fn stream_body() -> String {
    chat_body("up", json!({"stream": true, "stream_options": {"include_usage": true}}))
}

/// A gateway with one model, `up`, served by `fake`.
fn gateway(fake: &RawUpstream) -> Gateway {
    Gateway::with_models(&model_at("up", "up", &fake.url, ""))
}

/// What the settlement recorded for the call that produced `r`.
fn settled(r: &raw::Response) -> Value {
    logs::finished_call("request_id", r.header("x-tollgate-request-id").expect("request id header"))
}

#[test]
fn close_delimited_json_body_is_relayed_whole_and_its_usage_counted() {
    let (first, rest) = COMPLETION.split_at(60);
    let reply =
        RawReply::close_delimited("200 OK", "application/json", &[first, rest]).paced(Duration::from_millis(50));
    let fake = RawUpstream::start(vec![reply]);
    let gw = gateway(&fake);
    let r = raw_post(&gw.url, CHAT, &chat_body("up", json!({})));
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.complete, "the caller's transfer completed: {}", r.text());
    assert_eq!(r.header("content-type"), Some("application/json"));
    let want: Value = serde_json::from_str(COMPLETION).expect("fixture is JSON");
    assert_eq!(r.json(), want);
    let call = settled(&r);
    assert_eq!(call["outcome"], "completed", "{call}");
    assert_eq!((call["prompt_tokens"].clone(), call["completion_tokens"].clone()), (json!(7), json!(3)), "{call}");
    assert_eq!(fake.requests().len(), 1);
}

#[test]
fn close_delimited_stream_is_relayed_event_by_event_as_it_arrives() {
    let events = events();
    let pause = Duration::from_millis(700);
    // The first two events at once, the rest after a pause: the caller must see the first ones during the pause.
    let pieces = [events[..2].concat(), events[2..].concat()];
    let reply = RawReply::close_delimited("200 OK", "text/event-stream", &strs(&pieces)).paced(pause);
    let fake = RawUpstream::start(vec![reply]);
    let gw = gateway(&fake);
    let mut s = raw_post_open(&gw.url, CHAT, &stream_body());
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&seen).contains("\"Hello\"") {
        let n = s.read(&mut buf).expect("read");
        assert!(n > 0, "ended before the first content: {}", String::from_utf8_lossy(&seen));
        seen.extend_from_slice(&buf[..n]);
    }
    let first_content = Instant::now();
    s.read_to_end(&mut seen).expect("read to the end");
    assert!(
        first_content.elapsed() >= pause / 2,
        "the first events reached the caller before the upstream finished, not at its close"
    );
    let r = raw::parse(&seen);
    assert_eq!(r.status, 200);
    assert!(r.complete, "{}", r.text());
    let want: String = events.concat();
    assert_eq!(payloads(&r.text()), payloads(&want), "every event, in order");
    let call = settled(&r);
    assert_eq!(call["outcome"], "completed", "{call}");
    assert_eq!((call["prompt_tokens"].clone(), call["completion_tokens"].clone()), (json!(7), json!(2)), "{call}");
}

/// Asserts the caller got exactly `delivered` (`data:` payloads) and then tollgate's error event, no `[DONE]`, and
/// that the call was settled as broken.
fn assert_stream_broke(r: &raw::Response, delivered: &[Value]) {
    assert_eq!(r.status, 200, "headers were already sent");
    let got = payloads(&r.text());
    assert_eq!(got[..got.len().saturating_sub(1)], *delivered, "what arrived before the cut: {}", r.text());
    let last = got.last().cloned().unwrap_or_default();
    assert_eq!(last["error"]["code"], "upstream_stream_broken", "{}", r.text());
    assert_eq!(last["error"]["type"], "server_error", "{}", r.text());
    assert!(!r.text().contains("[DONE]"), "{}", r.text());
    assert_eq!(settled(r)["outcome"], "broken");
}

/// Posts a non-streaming chat for `group` (a model name no other test uses) and asserts that the caller saw a
/// broken transfer and that the call was settled as broken. When a JSON body breaks, actix drops what it has not
/// written yet and closes the connection: a body that breaks at once leaves the caller with no response at all,
/// one that breaks later with a response whose framing (chunked, or the upstream's `Content-Length`) never
/// completes. Both are failures a client notices, never a complete-looking document. Returns the response when
/// its head arrived.
fn post_expecting_broken_json(gw: &Gateway, group: &str) -> Option<raw::Response> {
    let bytes = raw::read_to_close(&mut raw_post_open(&gw.url, CHAT, &chat_body(group, json!({}))));
    let r = (!bytes.is_empty()).then(|| raw::parse(&bytes));
    if let Some(r) = &r {
        assert_eq!(r.status, 200, "{group}: headers were already sent");
        assert!(!r.complete, "{group}: a cut body must reach the caller as a broken transfer: {:?}", r.headers);
        assert_eq!(r.json(), Value::Null, "{group}: never a complete document");
    }
    assert_eq!(logs::finished_call("model_group", group)["outcome"], "broken", "{group}");
    r
}

#[test]
fn close_delimited_stream_cut_before_it_finished_ends_with_an_error_event() {
    let events = events();
    // Content arrived, but neither a finish_reason nor [DONE]: the close is a cut, not the end.
    let fake = RawUpstream::start(vec![RawReply::close_delimited("200 OK", "text/event-stream", &strs(&events)[..3])]);
    let gw = gateway(&fake);
    let r = raw_post(&gw.url, CHAT, &stream_body());
    assert!(r.complete, "the stream itself ends cleanly, with the error event: {}", r.text());
    assert_stream_broke(&r, &payloads(&events[..3].concat()));
}

/// Cut JSON bodies split in two pieces, the second one after a pause: the caller's response head and first piece
/// go out during the pause, so the break shows in the caller's framing rather than as a missing response.
const PAUSE: Duration = Duration::from_millis(300);

#[test]
fn close_delimited_json_cut_mid_document_is_a_broken_transfer() {
    let fast = RawReply::close_delimited("200 OK", "application/json", &[&COMPLETION[..80]]);
    let paced = RawReply::close_delimited("200 OK", "application/json", &[&COMPLETION[..40], &COMPLETION[40..80]]);
    let fake = RawUpstream::start(vec![fast, paced.paced(PAUSE)]);
    let groups = ["cut-close-json-fast", "cut-close-json-paced"];
    let gw = Gateway::with_models(&groups.map(|g| model_at(g, "up", &fake.url, "")).concat());
    post_expecting_broken_json(&gw, groups[0]);
    let r = post_expecting_broken_json(&gw, groups[1]).expect("the head went out during the pause");
    assert_eq!(r.header("transfer-encoding"), Some("chunked"), "no length to keep, so the caller gets chunks");
    assert!(r.text().starts_with(&COMPLETION[..40]) && COMPLETION[..80].starts_with(&r.text()), "{}", r.text());
}

#[test]
fn chunked_and_sized_bodies_cut_short_are_still_reported() {
    let events = events();
    // Mid-chunk: three whole chunks, then the first bytes of the fourth (its size line and part of its event).
    let sse = RawReply::chunked("200 OK", "text/event-stream", &strs(&events));
    let framed = |e: &String| format!("{:x}\r\n{e}\r\n", e.len()).len();
    let into_fourth = 20;
    let sse_cut = events[..3].iter().map(framed).sum::<usize>() + into_fourth;
    let halves = [&COMPLETION[..100], &COMPLETION[100..]];
    let chunked = RawReply::chunked("200 OK", "application/json", &halves).paced(PAUSE);
    let chunked_cut = chunked.framed_body_len() / 2;
    let sized = RawReply::sized("200 OK", "application/json", &halves).paced(PAUSE);
    // One reply per connection, in the order of the requests below.
    let fake = RawUpstream::start(vec![
        sse.cut_body_at(sse_cut),
        chunked.cut_body_at(chunked_cut),
        sized.cut_body_at(COMPLETION.len() - 1),
    ]);
    let groups = ["cut-chunked-sse", "cut-chunked-json", "cut-sized-json"];
    let gw = Gateway::with_models(&groups.map(|g| model_at(g, "up", &fake.url, "")).concat());

    let body = chat_body(groups[0], json!({"stream": true, "stream_options": {"include_usage": true}}));
    let r = raw_post(&gw.url, CHAT, &body);
    assert!(r.complete, "the stream itself ends cleanly, with the error event: {}", r.text());
    // The unterminated remainder of the cut event (`data: {"id":"cha`) is not forwarded: a client parsing every
    // event as JSON would fail on it before it read the error event.
    let delivered = payloads(&events[..3].concat());
    assert_stream_broke(&r, &delivered);

    let r = post_expecting_broken_json(&gw, groups[1]).expect("the head went out during the pause");
    assert_eq!(r.header("transfer-encoding"), Some("chunked"));
    assert!(r.text().starts_with(halves[0]), "{}", r.text());

    let r = post_expecting_broken_json(&gw, groups[2]).expect("the head went out during the pause");
    let len = COMPLETION.len().to_string();
    assert_eq!(r.header("content-length"), Some(len.as_str()), "the upstream's length is kept");
    assert!(r.text().starts_with(halves[0]), "{}", r.text());
    assert_eq!(fake.requests().len(), 3);
}

#[test]
fn requests_after_a_close_delimited_response_use_a_new_connection_and_succeed() {
    let json = RawReply::close_delimited("200 OK", "application/json", &[COMPLETION]);
    let sse = RawReply::close_delimited("200 OK", "text/event-stream", &strs(&events()));
    let fake = RawUpstream::start(vec![json.clone(), sse, json]);
    let gw = gateway(&fake);
    let want: Value = serde_json::from_str(COMPLETION).expect("fixture is JSON");
    for round in 0..3 {
        let r = if round == 1 {
            raw_post(&gw.url, CHAT, &stream_body())
        } else {
            raw_post(&gw.url, CHAT, &chat_body("up", json!({})))
        };
        assert_eq!((r.status, r.complete), (200, true), "round {round}: {}", r.text());
        if round == 1 {
            assert_eq!(payloads(&r.text()), payloads(&events().concat()), "round {round}");
        } else {
            assert_eq!(r.json(), want, "round {round}");
        }
        assert_eq!(settled(&r)["outcome"], "completed", "round {round}");
    }
    // The raw fake serves one request per connection: three requests answered means three connections, none reused.
    assert_eq!(fake.requests().len(), 3);
}

/// The patch's limits, straight through awc: statuses that never have a body, a zero `Content-Length` and a
/// response to HEAD end at their head even though the server keeps the connection open.
#[actix_rt::test]
async fn bodiless_responses_do_not_wait_for_the_connection_to_close() {
    let cases = [
        ("POST", "HTTP/1.1 204 No Content\r\n\r\n"),
        ("POST", "HTTP/1.1 304 Not Modified\r\n\r\n"),
        ("POST", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
        ("HEAD", "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n"),
    ];
    for (method, head) in cases {
        let fake = RawUpstream::start(vec![RawReply::head_only(head, End::Hold)]);
        let request = client().request(method.parse().expect("method"), format!("{}/v1/x", fake.url));
        let read = async {
            let mut res = request.send().await.expect("response head");
            res.body().await.expect("body")
        };
        let body = actix_rt::time::timeout(Duration::from_secs(5), read).await;
        assert_eq!(body.ok(), Some(bytes::Bytes::new()), "{method} {head:?}: an empty body, at once");
    }
}

/// The vendored actix-http collects a head's header positions in a list that lives inline up to 16 headers and
/// grows past them (third_party/README.md): heads with more headers than that, on either side, read whole.
#[test]
fn heads_with_many_headers_are_read_whole_on_both_sides() {
    let extra: String = (0..40).map(|i| format!("X-Upstream-{i}: value-{i}\r\n")).collect();
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n{extra}Content-Length: {}\r\n\r\n{COMPLETION}",
        COMPLETION.len()
    );
    let fake = RawUpstream::start(vec![RawReply::head_only(&head, End::Close)]);
    let gw = gateway(&fake);
    let names: Vec<(String, String)> = (0..40).map(|i| (format!("X-Caller-{i}"), format!("value-{i}"))).collect();
    let auth = format!("Bearer {}", tollgate_tests::MASTER_KEY);
    let mut headers: Vec<(&str, &str)> = vec![("Authorization", &auth), ("Content-Type", "application/json")];
    headers.extend(names.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let (status, body) =
        tollgate_tests::raw_request(&format!("{}{CHAT}", gw.url), "POST", &headers, &chat_body("up", json!({})))
            .expect("an answer");
    assert_eq!(status, 200, "{body}");
    let want: Value = serde_json::from_str(COMPLETION).expect("fixture is JSON");
    assert_eq!(serde_json::from_str::<Value>(&body).expect("JSON body"), want);
    let request = fake.requests().into_iter().next().expect("the upstream was called");
    assert!(request.starts_with("POST "), "{request}");
}

/// tollgate's HTTP/1.1 client for `http://` upstreams (server/src/upstream/plain/) keeps connections alive: the
/// next request goes over the previous one's connection, and a connection the server closed while it sat idle
/// is replaced before a request is written to it, so no request fails for it.
#[test]
fn kept_alive_connections_carry_the_next_requests_and_closed_ones_are_replaced() {
    let reply = RawReply::sized("200 OK", "application/json", &[COMPLETION]).held();
    let fake = RawUpstream::keep_alive(reply, 3);
    let gw = gateway(&fake);
    let want: Value = serde_json::from_str(COMPLETION).expect("fixture is JSON");
    for round in 0..7 {
        let r = raw_post(&gw.url, CHAT, &chat_body("up", json!({})));
        assert_eq!((r.status, r.complete), (200, true), "round {round}: {}", r.text());
        assert_eq!(r.json(), want, "round {round}");
        // Time for the server's close after every third answer to reach tollgate before the next request.
        std::thread::sleep(Duration::from_millis(30));
    }
    assert_eq!(fake.requests().len(), 7);
    assert_eq!(fake.connections(), 3, "three requests per connection, then a new one");
}

/// `100 Continue` and `103 Early Hints` heads may come before the answer (RFC 9110 section 15.2): skipped, and the
/// final head and its body are what the caller gets.
#[test]
fn interim_heads_before_the_answer_are_skipped() {
    let head = format!(
        "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n\
         HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{COMPLETION}",
        COMPLETION.len()
    );
    let fake = RawUpstream::start(vec![RawReply::head_only(&head, End::Close)]);
    let gw = gateway(&fake);
    let r = raw_post(&gw.url, CHAT, &chat_body("up", json!({})));
    assert_eq!((r.status, r.complete), (200, true), "{}", r.text());
    assert_eq!(r.json(), serde_json::from_str::<Value>(COMPLETION).expect("fixture is JSON"));
    assert_eq!(settled(&r)["outcome"], "completed");
}

/// A head with both `Transfer-Encoding: chunked` and `Content-Length` is read by its chunks, and its connection
/// is never used again (RFC 9112 section 6.3, rule 3: the framing a request smuggler relies on).
#[test]
fn a_head_framed_both_ways_is_read_by_its_chunks_and_its_connection_closed() {
    let chunked = format!("{:x}\r\n{COMPLETION}\r\n0\r\n\r\n", COMPLETION.len());
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n{chunked}"
    );
    let fake = RawUpstream::keep_alive(RawReply::head_only(&head, End::Hold), 2);
    let gw = gateway(&fake);
    for round in 0..2 {
        let r = raw_post(&gw.url, CHAT, &chat_body("up", json!({})));
        assert_eq!((r.status, r.complete), (200, true), "round {round}: {}", r.text());
        assert_eq!(r.json(), serde_json::from_str::<Value>(COMPLETION).expect("fixture is JSON"), "round {round}");
    }
    assert_eq!(fake.connections(), 2, "the first connection was not reused");
}
