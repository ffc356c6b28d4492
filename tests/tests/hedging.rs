//! Hedged requests over HTTP (`router_settings.hedge_after_ms`): a call with no first byte after the delay gets a
//! twin on another deployment of the group; the first answer serves, the other call is cancelled (its upstream
//! sees the connection closed) and both are settled. `order` tiers make the first pick deterministic: the lower
//! tier is called first, the hedge goes to the only other deployment.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tollgate_tests::{chat_body, fake_model, logs, post, sse_data, FakeUpstream, Gateway, Reply, MASTER_KEY};

fn gateway(first: &str, second: &str, fake: &FakeUpstream, hedge_ms: u64) -> Gateway {
    Gateway::start(&format!(
        "model_list:\n{}{}router_settings:\n  allowed_fails: 1000\n  hedge_after_ms: {{h: {hedge_ms}}}\ngeneral_settings:\n  master_key: {MASTER_KEY}\n",
        fake_model("h", first, fake, "      order: 1\n"),
        fake_model("h", second, fake, "      order: 2\n"),
    ))
}

/// Waits (up to 5 s) until the fake recorded `<what>:<seq>` for every request it got for upstream model `model`
/// (`wait_dropped`: cut before any response byte; `stream_dropped`: cut mid-body).
async fn saw_every(fake: &FakeUpstream, model: &str, what: &str, at_least: usize) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let seqs: Vec<u64> =
            fake.requests().iter().filter(|r| r["body"]["model"] == model).filter_map(|r| r["seq"].as_u64()).collect();
        let events = fake.events();
        if seqs.len() >= at_least && seqs.iter().all(|s| events.contains(&format!("{what}:{s}"))) {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
}

fn calls(r: &Reply, count: usize) -> Vec<Value> {
    logs::finished_calls(r.header("x-tollgate-request-id").unwrap_or_default(), count)
}

#[actix_rt::test]
async fn a_stalled_call_is_hedged_and_the_fast_answer_serves() {
    let fake = FakeUpstream::start();
    // The first deployment stalls for 10 s; every request must be answered by the hedge long before.
    let gw = gateway("delay-10000", "normal", &fake, 100);
    let started = Instant::now();
    for _ in 0..10 {
        let r = post(&gw.url, "/v1/chat/completions", Some(MASTER_KEY), chat_body("h", json!({}))).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.json["choices"][0]["message"]["content"], "Hello from fake upstream");
        assert_eq!(r.header("x-tollgate-deployment"), Some("h#1"));
        assert_eq!(r.header("x-tollgate-hedged"), Some("true"));
        assert_eq!(r.header("x-tollgate-attempts"), Some("2"), "both calls count");
        let lines = calls(&r, 2);
        let by = |id: &str| lines.iter().find(|l| l["deployment"] == id).cloned().unwrap_or_default();
        assert_eq!(by("h#1")["outcome"], "completed");
        assert_eq!(by("h#0")["outcome"], "cancelled");
        assert_eq!(by("h#0")["accounting"], "hedge_cancelled", "the loser had the request: it may bill");
    }
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "ten requests in less than one stall: {:?}",
        started.elapsed()
    );
    assert!(saw_every(&fake, "delay-10000", "wait_dropped", 10).await, "each stalled call's connection was closed");
}

#[actix_rt::test]
async fn a_stream_without_a_first_event_is_hedged_and_the_loser_cut() {
    let fake = FakeUpstream::start();
    let gw = gateway("no-first-chunk", "normal", &fake, 100);
    let r = post(&gw.url, "/v1/chat/completions", Some(MASTER_KEY), chat_body("h", json!({"stream": true}))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(sse_data(&r.text).last().map(String::as_str), Some("[DONE]"), "{}", r.text);
    assert!(!r.text.contains("\"error\""), "{}", r.text);
    assert_eq!((r.header("x-tollgate-deployment"), r.header("x-tollgate-hedged")), (Some("h#1"), Some("true")));
    assert!(saw_every(&fake, "no-first-chunk", "stream_dropped", 1).await);
    assert_eq!(calls(&r, 2).len(), 2);
}

#[actix_rt::test]
async fn a_quick_first_answer_is_not_hedged() {
    let fake = FakeUpstream::start();
    let gw = gateway("normal", "delay-5000", &fake, 3000);
    for _ in 0..5 {
        let r = post(&gw.url, "/v1/chat/completions", Some(MASTER_KEY), chat_body("h", json!({}))).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!((r.header("x-tollgate-deployment"), r.header("x-tollgate-attempts")), (Some("h#0"), Some("1")));
        assert_eq!(r.header("x-tollgate-hedged"), None);
    }
    assert!(fake.requests().iter().all(|r| r["body"]["model"] == "normal"), "the second deployment was never called");
}

#[actix_rt::test]
async fn a_failed_hedge_leaves_the_first_call_running() {
    let fake = FakeUpstream::start();
    // The hedge fails at once; the first call, slow but healthy, still serves.
    let gw = gateway("delay-400", "error-500", &fake, 50);
    let r = post(&gw.url, "/v1/chat/completions", Some(MASTER_KEY), chat_body("h", json!({}))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("x-tollgate-deployment"), Some("h#0"));
    assert_eq!((r.header("x-tollgate-hedged"), r.header("x-tollgate-attempts")), (Some("true"), Some("2")));
    let lines = calls(&r, 2);
    let outcomes: Vec<_> = lines.iter().map(|l| (l["deployment"].clone(), l["outcome"].clone())).collect();
    assert!(outcomes.contains(&(json!("h#1"), json!("failed"))), "{outcomes:?}");
    assert!(outcomes.contains(&(json!("h#0"), json!("completed"))), "{outcomes:?}");
}

#[actix_rt::test]
async fn when_both_calls_fail_the_last_error_goes_to_the_usual_retry_path() {
    let fake = FakeUpstream::start();
    // The first call times out at 1.5 s, long after the hedge (at 50 ms) failed; with no retries left the caller
    // gets the last failure, and both calls were made and settled.
    let gw = Gateway::start(&format!(
        "model_list:\n{}{}router_settings:\n  num_retries: 0\n  allowed_fails: 1000\n  hedge_after_ms: {{h: 50}}\ngeneral_settings:\n  master_key: {MASTER_KEY}\n",
        fake_model("h", "delay-5000", &fake, "      order: 1\n      timeout: 1.5\n"),
        fake_model("h", "error-502", &fake, "      order: 2\n"),
    ));
    let r = post(&gw.url, "/v1/chat/completions", Some(MASTER_KEY), chat_body("h", json!({}))).await;
    assert_eq!(r.status, 504, "the first call's timeout, the last to fail: {}", r.text);
    let asked: Vec<Value> = fake.requests().iter().map(|r| r["body"]["model"].clone()).collect();
    assert_eq!(asked, [json!("delay-5000"), json!("error-502")]);
    assert!(calls(&r, 2).iter().all(|l| l["outcome"] == "failed"));
}
