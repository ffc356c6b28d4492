//! Deployment health over real HTTP: a failing deployment is put in cooldown by its worker and traffic moves to
//! the healthy one; with no healthy deployment left the caller gets 503 with `retry-after`.

use std::time::{Duration, Instant};

use serde_json::json;
use tollgate_tests::{chat_body, fake_model, post, FakeUpstream, Gateway, MASTER_KEY};

#[actix_rt::test]
async fn failing_deployment_cools_down_and_traffic_moves_to_the_healthy_one() {
    let fake = FakeUpstream::start();
    let gw = Gateway::start(&format!(
        "model_list:\n{}{}{}router_settings:\n  allowed_fails: 2\n  cooldown_time: 30\n  num_retries: 0\ngeneral_settings:\n  master_key: {MASTER_KEY}\n",
        fake_model("pair", "error-500", &fake, ""),
        fake_model("pair", "normal", &fake, ""),
        fake_model("alone", "error-503", &fake, ""),
    ));
    let mut failures = 0;
    for _ in 0..40 {
        let r = post(&gw.url, "/v1/chat/completions", Some(MASTER_KEY), chat_body("pair", json!({}))).await;
        if r.status == 500 {
            failures += 1;
        }
    }
    // The third failure (more than allowed_fails) makes the worker take the deployment out. Reports reach the
    // worker asynchronously, so a request racing the third report may still fail once more.
    assert!((3..=4).contains(&failures), "{failures} failures before the cooldown");
    let before = fake.requests().len();
    for _ in 0..10 {
        let r = post(&gw.url, "/v1/chat/completions", Some(MASTER_KEY), chat_body("pair", json!({}))).await;
        assert_eq!(r.header("x-tollgate-deployment"), Some("pair#1"), "{}", r.text);
    }
    assert_eq!(fake.requests().len(), before + 10);

    // A group whose only deployment is cooling down answers 503 with retry-after, without calling upstream.
    for _ in 0..3 {
        let r = post(&gw.url, "/v1/chat/completions", Some(MASTER_KEY), chat_body("alone", json!({}))).await;
        assert_eq!(r.status, 503, "{}", r.text);
    }
    let deadline = Instant::now() + Duration::from_secs(2);
    let r = loop {
        let r = post(&gw.url, "/v1/chat/completions", Some(MASTER_KEY), chat_body("alone", json!({}))).await;
        if r.json["error"]["code"] == "no_healthy_deployment" || Instant::now() > deadline {
            break r;
        }
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!((r.status, r.error_type()), (503, "service_unavailable"), "{}", r.text);
    let retry_after: u64 = r.header("retry-after").and_then(|v| v.parse().ok()).unwrap_or(0);
    assert!((1..=30).contains(&retry_after), "retry-after {retry_after}");
}

#[actix_rt::test]
async fn slow_upstream_within_its_timeout_succeeds() {
    let fake = FakeUpstream::start();
    let gw = Gateway::with_models(&fake_model("slow", "delay-300", &fake, "      timeout: 5\n"));
    let started = Instant::now();
    let r = post(&gw.url, "/v1/chat/completions", Some(MASTER_KEY), chat_body("slow", json!({"stream": true}))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert!(r.text.ends_with("data: [DONE]\n\n"));
}

#[actix_rt::test]
async fn a_rate_limited_deployment_sits_out_for_its_retry_after_then_serves_again() {
    let fake = FakeUpstream::start();
    let gw = Gateway::start(&format!(
        "model_list:\n{}{}router_settings:\n  allowed_fails: 100\n  num_retries: 0\ngeneral_settings:\n  master_key: {MASTER_KEY}\n",
        fake_model("g", "rate-limited-1", &fake, ""),
        fake_model("g", "normal", &fake, ""),
    ));
    let send = || post(&gw.url, "/v1/chat/completions", Some(MASTER_KEY), chat_body("g", json!({})));
    // Until a call meets the rate limit (each deployment is picked half the time).
    let mut limited_at = None;
    for _ in 0..50 {
        let r = send().await;
        if r.status == 429 {
            assert_eq!(r.header("retry-after"), Some("1"));
            limited_at = Some(Instant::now());
            break;
        }
    }
    let limited_at = limited_at.expect("one of 50 calls went to the rate-limited deployment");
    // The first 429 takes it out at once (allowed_fails notwithstanding), for the second it asked.
    while limited_at.elapsed() < Duration::from_millis(800) {
        let r = send().await;
        assert_eq!((r.status, r.header("x-tollgate-deployment")), (200, Some("g#1")), "{}", r.text);
    }
    actix_rt::time::sleep(Duration::from_millis(1200).saturating_sub(limited_at.elapsed())).await;
    let mut back = false;
    for _ in 0..30 {
        // The deployment answers 429 again (its errors name no deployment header).
        if send().await.status == 429 {
            back = true;
            break;
        }
    }
    assert!(back, "after its retry-after the deployment gets traffic again");
}
