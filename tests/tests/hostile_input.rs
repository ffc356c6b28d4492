//! Hostile input is normal input (issue 12, findings 1, 3, 4 and 6): bodies sized to make parsing slow, nested
//! to exhaust a stack, delivered too slowly, or abandoned while tollgate waits for the upstream.

use std::{
    io::{Read, Write},
    net::TcpStream,
    time::{Duration, Instant},
};

use serde_json::json;
use tollgate_tests::{chat_body, fake_model, post, wait_metric, FakeUpstream, Gateway, MASTER_KEY};

#[actix_rt::test]
async fn a_body_with_300k_keys_is_parsed_in_linear_time() {
    // About 3.5 MB. With a quadratic duplicate-key check this kept a worker busy for minutes; the test client's
    // 30 s timeout turns that into a failure.
    let mut body = String::from(r#"{"model":"nope","messages":[{"role":"user","content":"hi"}]"#);
    for i in 0..300_000 {
        body.push_str(&format!(r#","k{i}":1"#));
    }
    body.push('}');
    let gw = Gateway::with_models("  - {model_name: m, litellm_params: {model: mock/x}}\n");
    let r = post(&gw.url, "/v1/chat/completions", Some(MASTER_KEY), body).await;
    assert_eq!((r.status, r.json["error"]["code"].as_str()), (404, Some("model_not_found")), "{}", r.text);
}

#[actix_rt::test]
async fn deep_nesting_is_a_clear_400() {
    let gw = Gateway::with_models("  - {model_name: m, litellm_params: {model: mock/x}}\n");
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let body = format!(r#"{{"model":"m","messages":[{{"role":"user","content":{deep}}}]}}"#);
    let r = post(&gw.url, "/v1/chat/completions", Some(MASTER_KEY), body).await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(r.json["error"]["code"], "nesting_too_deep");
    assert_eq!(r.json["error"]["type"], "invalid_request_error");
}

/// A gateway whose callers have half a second to deliver a request body.
fn impatient_gateway() -> Gateway {
    Gateway::start(&format!(
        "model_list:\n  - {{model_name: m, litellm_params: {{model: mock/x}}}}\ngeneral_settings:\n  master_key: {MASTER_KEY}\ntollgate:\n  request_body_timeout_seconds: 0.5\n"
    ))
}

/// Sends request headers declaring `content_length` and the first 9 bytes of a body, then nothing more; returns
/// the first bytes of the reply and how long they took.
async fn send_head_then_stall(gw: &Gateway, content_length: u64) -> (String, Duration) {
    let host = gw.url.trim_start_matches("http://").to_owned();
    actix_rt::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(&host).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
        let head = format!(
            "POST /v1/chat/completions HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {MASTER_KEY}\r\nContent-Type: application/json\r\nContent-Length: {content_length}\r\n\r\n{{\"model\":"
        );
        s.write_all(head.as_bytes()).expect("write");
        let started = Instant::now();
        let mut buf = [0u8; 4096];
        let n = s.read(&mut buf).expect("read");
        (String::from_utf8_lossy(&buf[..n]).into_owned(), started.elapsed())
    })
    .await
    .expect("client thread")
}

#[actix_rt::test]
async fn a_declared_length_over_the_limit_is_refused_before_the_body() {
    let (reply, waited) = send_head_then_stall(&impatient_gateway(), 1_000_000_000).await;
    assert!(reply.starts_with("HTTP/1.1 413"), "{reply}");
    assert!(waited < Duration::from_millis(400), "answered before the body deadline: {waited:?}");
}

#[actix_rt::test]
async fn a_body_that_stops_arriving_gets_408_at_the_deadline() {
    let (reply, waited) = send_head_then_stall(&impatient_gateway(), 100).await;
    assert!(reply.starts_with("HTTP/1.1 408"), "{reply}");
    assert!(reply.contains("request_timeout"), "{reply}");
    assert!(waited >= Duration::from_millis(400) && waited < Duration::from_secs(5), "{waited:?}");
}

/// Sends a chat request on a raw socket, waits `linger`, then closes the socket; returns when it closed.
fn send_and_leave(url: &str, body: &str, linger: Duration, read_first: bool) -> Instant {
    let host = url.trim_start_matches("http://");
    let mut s = TcpStream::connect(host).expect("connect");
    let req = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {MASTER_KEY}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).expect("write");
    if read_first {
        let mut buf = [0u8; 1024];
        let n = s.read(&mut buf).expect("read");
        assert!(n > 0);
    }
    std::thread::sleep(linger);
    drop(s);
    Instant::now()
}

#[actix_rt::test]
async fn a_client_that_leaves_before_the_first_byte_cancels_the_upstream_call() {
    let fake = FakeUpstream::start();
    let gw = Gateway::with_models(&fake_model("hang", "hang", &fake, ""));
    for stream in [false, true] {
        let url = gw.url.clone();
        let body = chat_body("hang", json!({"stream": stream}));
        let left_at =
            actix_rt::task::spawn_blocking(move || send_and_leave(&url, &body, Duration::from_millis(300), false))
                .await
                .expect("client thread");
        let want = if stream { 2 } else { 1 };
        loop {
            let dropped = fake.events().iter().filter(|e| e.starts_with("wait_dropped")).count();
            if dropped == want {
                break;
            }
            assert!(
                left_at.elapsed() < Duration::from_secs(1),
                "stream={stream}: upstream still waited on 1 s after the client left"
            );
            actix_rt::time::sleep(Duration::from_millis(20)).await;
        }
        let in_flight = wait_metric(&gw.url, "tollgate_in_flight_requests", &[], 0.0).await;
        assert_eq!(in_flight, Some(0.0), "the request left no in-flight slot behind");
    }
}

#[actix_rt::test]
async fn provider_rate_limit_headers_are_prefixed_on_errors_too() {
    let fake = FakeUpstream::start();
    let gw = Gateway::with_models(
        &[fake_model("limited", "error-429", &fake, ""), fake_model("ok", "normal", &fake, "")].join(""),
    );
    let r = post(&gw.url, "/v1/chat/completions", Some(MASTER_KEY), chat_body("limited", json!({}))).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.header("llm_provider-x-ratelimit-remaining-requests"), Some("0"));
    assert_eq!(r.header("x-ratelimit-remaining-requests"), None, "raw provider limits would collide with tollgate's");
    assert_eq!(r.header("retry-after"), Some("7"));
    let r = post(&gw.url, "/v1/chat/completions", Some(MASTER_KEY), chat_body("ok", json!({}))).await;
    assert_eq!(r.header("llm_provider-x-ratelimit-remaining-requests"), Some("99"));
    assert_eq!(r.header("x-tollgate-attempts"), Some("1"), "one upstream call was made");
}

#[actix_rt::test]
async fn an_upstream_error_body_that_never_ends_is_read_within_the_timeout() {
    let fake = FakeUpstream::start();
    let gw = Gateway::with_models(&fake_model("stalled", "stalled-error", &fake, "      timeout: 1\n"));
    let started = Instant::now();
    let r = post(&gw.url, "/v1/chat/completions", Some(MASTER_KEY), chat_body("stalled", json!({}))).await;
    assert_eq!(r.status, 503, "the upstream's status stands: {}", r.text);
    assert_eq!(r.json["error"]["message"], "upstream returned HTTP 503", "{}", r.text);
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
}
