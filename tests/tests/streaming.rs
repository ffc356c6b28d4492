//! Streams under stress: the caller disconnecting, the upstream breaking mid-stream.

use std::{
    io::{Read, Write},
    net::TcpStream,
    time::{Duration, Instant},
};

use serde_json::json;
use tollgate_tests::{chat_body, fake_model, post, sse_data, FakeUpstream, Gateway, MASTER_KEY};

#[actix_rt::test]
async fn client_disconnect_mid_stream_closes_the_upstream_within_a_second() {
    let fake = FakeUpstream::start();
    let gw = Gateway::with_models(&fake_model("slow", "slow-stream", &fake, ""));
    let url = gw.url.clone();
    let disconnected_at = actix_rt::task::spawn_blocking(move || {
        let host = url.trim_start_matches("http://");
        let mut s = TcpStream::connect(host).expect("connect");
        let body = chat_body("slow", json!({"stream": true}));
        let req = format!(
            "POST /v1/chat/completions HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {MASTER_KEY}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        s.write_all(req.as_bytes()).expect("write");
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        while String::from_utf8_lossy(&seen).matches("tick").count() < 3 {
            let n = s.read(&mut buf).expect("read");
            assert!(n > 0, "stream ended early");
            seen.extend_from_slice(&buf[..n]);
        }
        drop(s);
        Instant::now()
    })
    .await
    .expect("client thread");
    loop {
        if fake.events().iter().any(|e| e.starts_with("stream_dropped")) {
            break;
        }
        assert!(
            disconnected_at.elapsed() < Duration::from_secs(1),
            "upstream still streaming 1 s after the client left"
        );
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
}

#[actix_rt::test]
async fn upstream_reset_mid_stream_becomes_an_openai_error_event() {
    let fake = FakeUpstream::start();
    let gw = Gateway::with_models(
        &[fake_model("reset", "reset", &fake, ""), fake_model("ok", "normal", &fake, "")].join(""),
    );
    let r = post(&gw.url, "/v1/chat/completions", Some(MASTER_KEY), chat_body("reset", json!({"stream": true}))).await;
    assert_eq!(r.status, 200, "headers were already sent");
    let data = sse_data(&r.text);
    let last: serde_json::Value = data.last().and_then(|d| serde_json::from_str(d).ok()).unwrap_or_default();
    assert_eq!(last["error"]["type"], "server_error", "{}", r.text);
    assert!(last["error"]["message"].as_str().is_some_and(|m| m.contains("reset#0")), "{}", r.text);
    assert!(data.len() >= 2, "the chunks before the break were delivered: {}", r.text);
    let r = post(&gw.url, "/v1/chat/completions", Some(MASTER_KEY), chat_body("ok", json!({}))).await;
    assert_eq!(r.status, 200);
}

#[actix_rt::test]
async fn stalled_upstream_stream_ends_with_an_error_after_the_idle_limit() {
    let fake = FakeUpstream::start();
    // `stream_idle_timeout` defaults to `stream_timeout` (docs/routing.md).
    let gw = Gateway::with_models(&fake_model("stall", "stall", &fake, "      stream_timeout: 0.5\n"));
    let started = Instant::now();
    let r = post(&gw.url, "/v1/chat/completions", Some(MASTER_KEY), chat_body("stall", json!({"stream": true}))).await;
    assert_eq!(r.status, 200);
    assert!(started.elapsed() < Duration::from_secs(5), "not held forever");
    let data = sse_data(&r.text);
    assert!(data.iter().any(|d| d.contains("Hello")), "chunks before the stall arrive: {}", r.text);
    let last: serde_json::Value = data.last().and_then(|d| serde_json::from_str(d).ok()).unwrap_or_default();
    assert!(last["error"]["message"].as_str().is_some_and(|m| m.contains("no data from the upstream")), "{}", r.text);
    // The relay, and with it the upstream response, is released: nothing is left in flight.
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        let r = tollgate_tests::get(&gw.url, "/health/readiness", None).await;
        if r.json["in_flight_requests"] == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "still in flight: {}", r.text);
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
}
