//! The four upstream limits over HTTP (docs/routing.md): `timeout` (all of a non-streaming call), `stream_timeout`
//! (a stream's start to its first event), `stream_idle_timeout` (pauses between stream chunks) and
//! `router_settings.connect_timeout`. Each test uses a fake that trips exactly one of them, and checks outcomes
//! (which deployment served, what the fake saw cut, what the settlement logged) rather than milliseconds; the
//! limits are short and the fakes' stalls long, so a loaded machine only makes them slower, never wrong.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tollgate_tests::{
    chat_body, fake_model, logs, metric, post, raw_post, sse_data, FakeUpstream, Gateway, Reply, MASTER_KEY,
};

fn gateway(models: &[String], router: &str) -> Gateway {
    Gateway::start(&format!(
        "model_list:\n{}router_settings:\n  allowed_fails: 1000\n{router}general_settings:\n  master_key: {MASTER_KEY}\n",
        models.concat()
    ))
}

/// A deployment of `group` at the fake, in priority tier `order` (the lower tier is tried first), with extra
/// `litellm_params` lines.
fn deployment(group: &str, mode: &str, fake: &FakeUpstream, order: u32, params: &str) -> String {
    fake_model(group, mode, fake, &format!("      order: {order}\n{params}"))
}

/// Waits (up to 5 s) until the fake saw the connection of its request for upstream model `model` closed before
/// the body ended (`stream_dropped:<seq>`).
async fn saw_cut(fake: &FakeUpstream, model: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let seqs: Vec<u64> =
            fake.requests().iter().filter(|r| r["body"]["model"] == model).filter_map(|r| r["seq"].as_u64()).collect();
        let events = fake.events();
        if !seqs.is_empty() && seqs.iter().all(|s| events.contains(&format!("stream_dropped:{s}"))) {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The settlement lines of the reply's request, oldest first.
fn calls(r: &Reply, count: usize) -> Vec<Value> {
    logs::finished_calls(r.header("x-tollgate-request-id").unwrap_or_default(), count)
}

fn assert_clean_stream(r: &Reply) {
    assert_eq!(r.status, 200, "{}", r.text);
    let data = sse_data(&r.text);
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"), "{}", r.text);
    assert!(r.text.contains("Hello") && !r.text.contains("\"error\""), "{}", r.text);
}

#[actix_rt::test]
async fn a_stream_without_a_first_event_in_time_is_retried_on_another_deployment() {
    // Headers and then nothing; only keep-alive comments (not an event); a body that ends at once.
    for silent in ["no-first-chunk", "keepalive-only", "empty-body"] {
        let fake = FakeUpstream::start();
        let gw = gateway(
            &[
                deployment("g", silent, &fake, 1, "      stream_timeout: 0.5\n"),
                deployment("g", "normal", &fake, 2, ""),
            ],
            "",
        );
        let r = post(&gw.url, "/v1/chat/completions", Some(MASTER_KEY), chat_body("g", json!({"stream": true}))).await;
        assert_clean_stream(&r);
        assert_eq!(r.header("x-tollgate-deployment"), Some("g#1"), "{silent}");
        assert_eq!(r.header("x-tollgate-attempts"), Some("2"), "{silent}");
        let lines = calls(&r, 2);
        assert_eq!((lines[0]["deployment"].as_str(), lines[0]["outcome"].as_str()), (Some("g#0"), Some("failed")));
        // 200 headers came: the upstream may have generated tokens nobody counted.
        assert_eq!(lines[0]["accounting"], "cut_before_usage", "{silent}");
        assert_eq!(lines[1]["outcome"], "completed");
        if silent != "empty-body" {
            assert!(saw_cut(&fake, silent).await, "{silent}: the abandoned upstream saw its connection closed");
        }
    }
}

#[actix_rt::test]
async fn a_group_whose_calls_time_out_falls_back_to_the_next_group_streamed_or_not() {
    let fake = FakeUpstream::start();
    let models = [
        deployment("a", "no-first-chunk", &fake, 1, "      timeout: 0.5\n      stream_timeout: 0.5\n"),
        deployment("b", "normal", &fake, 1, ""),
    ];
    let gw = gateway(&models, "  num_retries: 0\n  fallbacks: [{a: [b]}]\n");
    for stream in [true, false] {
        fake.clear();
        let r =
            post(&gw.url, "/v1/chat/completions", Some(MASTER_KEY), chat_body("a", json!({"stream": stream}))).await;
        assert_eq!(r.status, 200, "stream={stream}: {}", r.text);
        assert_eq!(r.header("x-tollgate-fallback"), Some("b"));
        assert_eq!(r.header("x-tollgate-attempts"), Some("2"));
        if stream {
            assert_clean_stream(&r);
        } else {
            assert_eq!(r.json["choices"][0]["message"]["content"], "Hello from fake upstream");
        }
        let lines = calls(&r, 2);
        assert_eq!((lines[0]["deployment"].as_str(), lines[0]["outcome"].as_str()), (Some("a#0"), Some("failed")));
        assert!(saw_cut(&fake, "no-first-chunk").await, "stream={stream}: a's connection was closed");
    }
}

#[actix_rt::test]
async fn timeout_bounds_a_whole_answer_however_steadily_it_trickles() {
    let fake = FakeUpstream::start();
    // No answer at all within `timeout`: retried on the other deployment.
    let gw = gateway(
        &[
            deployment("g", "delay-5000", &fake, 1, "      timeout: 0.5\n"),
            deployment("g", "normal", &fake, 2, "      timeout: 0.5\n"),
        ],
        "",
    );
    let r = post(&gw.url, "/v1/chat/completions", Some(MASTER_KEY), chat_body("g", json!({}))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!((r.header("x-tollgate-deployment"), r.header("x-tollgate-attempts")), (Some("g#1"), Some("2")));
    assert_eq!(calls(&r, 2)[0]["outcome"], "failed");

    // A body that arrives a piece every 100 ms for 2 s: each pause is short, the whole is not. Once it started it
    // is the caller's, so the caller sees a cut transfer, and the upstream its connection closed.
    let gw = gateway(&[deployment("t", "trickle", &fake, 1, "      timeout: 1\n")], "");
    let r = raw_post(&gw.url, "/v1/chat/completions", &chat_body("t", json!({})));
    assert_eq!(r.status, 200);
    assert!(!r.complete, "cut short, not a whole answer: {}", String::from_utf8_lossy(&r.body));
    assert!(saw_cut(&fake, "trickle").await, "the trickling upstream was cut off at the deadline");
    let line = logs::finished_call("model_group", "t");
    assert_eq!(line["outcome"], "broken");
}

#[actix_rt::test]
async fn stream_idle_timeout_bounds_the_pauses_after_the_first_event_only() {
    let fake = FakeUpstream::start();
    // `stall` sends two chunks at once, then nothing: the first event came in time, the pause after it is too long.
    let params = "      stream_timeout: 60\n      stream_idle_timeout: 0.3\n";
    let gw = gateway(&[deployment("s", "stall", &fake, 1, params)], "");
    let started = Instant::now();
    let r = post(&gw.url, "/v1/chat/completions", Some(MASTER_KEY), chat_body("s", json!({"stream": true}))).await;
    assert!(started.elapsed() < Duration::from_secs(30), "ended by the idle limit, not the first-token one");
    assert_eq!(r.status, 200);
    let data = sse_data(&r.text);
    assert!(r.text.contains("Hello"), "what came before the pause is delivered: {}", r.text);
    let last: Value = serde_json::from_str(data.last().map_or("", String::as_str)).unwrap_or_default();
    assert_eq!(last["error"]["code"], "upstream_stream_broken", "{}", r.text);
    assert!(last["error"]["message"].as_str().is_some_and(|m| m.contains("no data from the upstream for 0.3s")));
    assert!(saw_cut(&fake, "stall").await);
    assert_eq!(logs::finished_call("model_group", "s")["outcome"], "broken");
}

#[actix_rt::test]
async fn connect_timeout_bounds_connecting_and_is_retried_elsewhere() {
    // A listener whose accept queue is full (backlog 0, one connection waiting that nobody accepts): the kernel
    // drops further SYNs, so connecting hangs, as to a host that does not answer.
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.bind("127.0.0.1:0".parse().expect("addr")).expect("bind");
    let listener = socket.listen(0).expect("listen");
    let addr = listener.local_addr().expect("addr");
    let _filler = std::net::TcpStream::connect(addr).expect("the one queued connection");
    let fake = FakeUpstream::start();
    let silent = format!(
        "  - model_name: c\n    litellm_params:\n      model: openai/x\n      api_base: http://{addr}/v1\n      api_key: k\n      order: 1\n"
    );
    let gw = gateway(&[silent.clone(), deployment("c", "normal", &fake, 2, "")], "  connect_timeout: 0.3\n");
    let r = post(&gw.url, "/v1/chat/completions", Some(MASTER_KEY), chat_body("c", json!({}))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!((r.header("x-tollgate-deployment"), r.header("x-tollgate-attempts")), (Some("c#1"), Some("2")));

    // Alone, the deployment's error names the limit that expired (awc's default would wait 5 s and say less).
    let gw = gateway(&[silent], "  num_retries: 0\n  connect_timeout: 0.3\n");
    let r = post(&gw.url, "/v1/chat/completions", Some(MASTER_KEY), chat_body("c", json!({}))).await;
    assert_eq!(r.status, 504, "{}", r.text);
    let message = r.json["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("router_settings.connect_timeout"), "{message}");
    drop(listener);
}

#[actix_rt::test]
async fn a_streams_latency_is_its_time_to_first_event_not_to_headers() {
    let fake = FakeUpstream::start();
    // Headers at once, the first event 300 ms later: latency routing must see 300 ms, not the headers' ~0 ms.
    let gw = gateway(&[deployment("late", "late-first-300", &fake, 1, "      stream_timeout: 5\n")], "");
    let r = post(&gw.url, "/v1/chat/completions", Some(MASTER_KEY), chat_body("late", json!({"stream": true}))).await;
    assert_clean_stream(&r);
    let _ = logs::finished_call("model_group", "late");
    let latency = metric(&gw.url, "tollgate_deployment_latency_ewma_seconds", &["deployment=\"late#0\""]).await;
    assert!(latency.is_some_and(|s| s >= 0.3), "{latency:?}");
}
