//! Deployment health over real HTTP: a failing deployment is put in cooldown by its worker and traffic moves to
//! the healthy one; with no healthy deployment left the caller gets 503 with `retry-after`; a rate-limited one sits
//! out its `retry-after`, then one probe call goes there before traffic returns.

use std::time::{Duration, Instant};

use serde_json::json;
use tollgate_tests::{chat_body, fake_model, get, post, FakeUpstream, Gateway, MASTER_KEY};

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
            // Reports reach the worker on another thread: give it time to take this one before the next call.
            actix_rt::time::sleep(Duration::from_millis(50)).await;
        }
    }
    // The third failure (more than allowed_fails) makes the worker take the deployment out; on a loaded machine a
    // request may still race the third report once.
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
    // The message says when the first deployment returns, as the header does.
    let message = r.json["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains(&format!("retry in {retry_after}s")), "{message}");
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

/// Must-show 3 of issue 14: a 429 with `retry-after: 2` takes that deployment out for 2 s (no call reaches it,
/// counted at the fake), then exactly one probe call goes there, then traffic again.
#[actix_rt::test]
async fn a_rate_limited_deployment_sits_out_its_retry_after_then_one_probe_then_traffic() {
    let fake = FakeUpstream::start();
    fake.set_switch("limited", "rate-limited-2");
    let gw = Gateway::start(&format!(
        "model_list:\n{}{}router_settings:\n  allowed_fails: 100\n  num_retries: 0\ngeneral_settings:\n  master_key: {MASTER_KEY}\n",
        fake_model("g", "switch-limited", &fake, ""),
        fake_model("g", "normal", &fake, ""),
    ));
    let url = gw.url.clone();
    let send = move || {
        let url = url.clone();
        async move { post(&url, "/v1/chat/completions", Some(MASTER_KEY), chat_body("g", json!({}))).await }
    };
    // Until a call meets the rate limit (each deployment is picked half the time); the caller gets the 429 and
    // its retry-after (num_retries: 0).
    let mut limited = false;
    for _ in 0..50 {
        let r = send().await;
        if r.status == 429 {
            assert_eq!(r.header("retry-after"), Some("2"));
            limited = true;
            break;
        }
        assert_eq!(r.status, 200, "{}", r.text);
    }
    assert!(limited, "one of 50 calls went to the rate-limited deployment");
    // The worker takes the report off its mailbox on another thread: wait until the cooldown is published, so no
    // call below can race it (the 2 s are measured from the 429's arrival at the fake, which came first).
    let deadline = Instant::now() + Duration::from_secs(1);
    while get(&gw.url, "/routing/explain?model=g", Some(MASTER_KEY)).await.json["deployments"][0]["available"] != false
    {
        assert!(Instant::now() < deadline, "the 429 never took the deployment out");
        actix_rt::time::sleep(Duration::from_millis(5)).await;
    }
    // Healthy again, but slow: while the probe runs (400 ms) it is visibly the only call there.
    fake.set_switch("limited", "delay-400");
    // Open loop for 3.5 s: a request every 25 ms, whatever the earlier ones are doing.
    let started = Instant::now();
    let mut calls = Vec::new();
    for i in 0..140 {
        actix_rt::time::sleep_until((started + Duration::from_millis(25 * i)).into()).await;
        calls.push(actix_rt::spawn(send()));
    }
    for call in calls {
        let r = call.await.expect("request task");
        assert_eq!(r.status, 200, "{}", r.text);
    }
    let arrivals: Vec<u64> = fake
        .requests()
        .iter()
        .filter(|r| r["body"]["model"] == "switch-limited")
        .filter_map(|r| r["at_ms"].as_u64())
        .collect();
    // The first call there was the 429; times below are milliseconds after it, at the fake.
    let after: Vec<u64> = arrivals.iter().skip(1).map(|at| at - arrivals[0]).collect();
    assert!(
        after.first().is_some_and(|&probe| (1_900..=3_000).contains(&probe)),
        "nothing for 2 s, then the probe: {after:?}"
    );
    assert!(after.get(1).is_some_and(|&next| next >= after[0] + 390), "exactly one probe until it answered: {after:?}");
    assert!(after.len() >= 4, "traffic again after the probe: {after:?}");
}

/// LiteLLM's `allowed_fails_policy`: a class it names counts against the deployment with its own number, even the
/// caller's mistakes (a 400), which otherwise never take a deployment out.
#[actix_rt::test]
async fn allowed_fails_policy_counts_a_named_class_against_the_deployment() {
    let fake = FakeUpstream::start();
    let models = format!("{}{}", fake_model("g", "error-400", &fake, ""), fake_model("g", "normal", &fake, ""));
    let start = |policy: &str| {
        Gateway::start(&format!(
            "model_list:\n{models}router_settings:\n  num_retries: 0\n  cooldown_time: 60\n{policy}general_settings:\n  master_key: {MASTER_KEY}\n"
        ))
    };
    for (policy, cools) in [("", false), ("  allowed_fails_policy: {BadRequestErrorAllowedFails: 1}\n", true)] {
        let gw = start(policy);
        let mut refused = 0;
        for _ in 0..60 {
            let r = post(&gw.url, "/v1/chat/completions", Some(MASTER_KEY), chat_body("g", json!({}))).await;
            refused += usize::from(r.status == 400);
            if refused == 6 {
                break;
            }
        }
        assert!(refused >= 2, "{policy}: the 400 deployment was called: {refused}");
        let deadline = Instant::now() + Duration::from_secs(1);
        let available = loop {
            let e = get(&gw.url, "/routing/explain?model=g", Some(MASTER_KEY)).await.json;
            let available = e["deployments"][0]["available"] == true;
            if !available || Instant::now() > deadline {
                break available;
            }
            actix_rt::time::sleep(Duration::from_millis(20)).await;
        };
        assert_eq!(available, !cools, "{policy:?}: {refused} bad requests");
    }
}
