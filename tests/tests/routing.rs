//! Retries and fallbacks over HTTP: failed calls are retried on other deployments of the group, then other groups
//! serve, as `router_settings` says; requests the caller got wrong are never retried.

use serde_json::{json, Value};
use tollgate_tests::{chat_body, fake_model, post, sse_data, FakeUpstream, Gateway, MASTER_KEY};

fn gateway(models: &[String], router: &str) -> Gateway {
    Gateway::start(&format!(
        "model_list:\n{}router_settings:\n  allowed_fails: 1000\n{router}general_settings:\n  master_key: {MASTER_KEY}\n",
        models.concat()
    ))
}

/// The upstream models the fake was asked for, in order.
fn asked(fake: &FakeUpstream) -> Vec<String> {
    fake.requests().iter().map(|r| r["body"]["model"].as_str().unwrap_or_default().to_owned()).collect()
}

/// Must-show 2 of issue 14: while a healthy deployment exists, 100 of 100 client requests succeed.
#[actix_rt::test]
async fn failed_calls_are_retried_on_the_groups_other_deployments() {
    for failing in ["error-500", "error-429", "reset-before-headers"] {
        let fake = FakeUpstream::start();
        let bad = if failing == "reset-before-headers" {
            // Nobody listens: the connection is refused.
            format!("  - model_name: g\n    litellm_params:\n      model: openai/x\n      api_base: http://127.0.0.1:{}/v1\n      api_key: k\n", tollgate_tests::dead_port())
        } else {
            fake_model("g", failing, &fake, "")
        };
        let gw = gateway(&[bad, fake_model("g", "normal", &fake, "")], "");
        for _ in 0..100 {
            let r = post(&gw.url, "/v1/chat/completions", Some(MASTER_KEY), chat_body("g", json!({}))).await;
            assert_eq!(r.status, 200, "{failing}: {}", r.text);
            let attempts: u32 = r.header("x-tollgate-attempts").and_then(|a| a.parse().ok()).unwrap_or(0);
            assert!((1..=2).contains(&attempts), "{failing}: {attempts}");
            assert_eq!(r.header("x-tollgate-deployment"), Some("g#1"));
            assert!(r.header("x-tollgate-fallback").is_none());
        }
        if failing != "reset-before-headers" {
            assert!(asked(&fake).iter().any(|m| m == failing), "{failing}: the failing deployment was called");
        }
    }
}

#[actix_rt::test]
async fn a_lone_failing_deployment_is_retried_num_retries_times_then_its_error_returns() {
    let fake = FakeUpstream::start();
    let gw = gateway(&[fake_model("g", "error-503", &fake, "")], "  num_retries: 2\n");
    let r = post(&gw.url, "/v1/chat/completions", Some(MASTER_KEY), chat_body("g", json!({}))).await;
    assert_eq!(r.status, 503, "{}", r.text);
    assert_eq!(asked(&fake), ["error-503", "error-503", "error-503"], "the first call and two retries");
}

#[actix_rt::test]
async fn the_callers_mistakes_are_never_retried() {
    let fake = FakeUpstream::start();
    let gw = gateway(
        &[fake_model("g", "error-400", &fake, ""), fake_model("g", "error-400", &fake, "")],
        "  fallbacks: [{g: [h]}]\n",
    );
    let r = post(&gw.url, "/v1/chat/completions", Some(MASTER_KEY), chat_body("g", json!({}))).await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(fake.requests().len(), 1);
}

#[actix_rt::test]
async fn a_failing_group_falls_back_to_the_next_streamed_or_not() {
    let fake = FakeUpstream::start();
    let models = [
        fake_model("a", "error-500", &fake, ""),
        fake_model("b", "error-502", &fake, ""),
        fake_model("c", "normal", &fake, ""),
    ];
    let gw = gateway(&models, "  num_retries: 1\n  fallbacks: [{a: [b, c]}]\n");
    for stream in [false, true] {
        fake.clear();
        let r =
            post(&gw.url, "/v1/chat/completions", Some(MASTER_KEY), chat_body("a", json!({"stream": stream}))).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.header("x-tollgate-fallback"), Some("c"));
        assert_eq!(r.header("x-tollgate-attempts"), Some("5"), "a twice, b twice, then c");
        assert_eq!(asked(&fake), ["error-500", "error-500", "error-502", "error-502", "normal"]);
        if stream {
            assert_eq!(sse_data(&r.text).last().map(String::as_str), Some("[DONE]"));
        }
    }
}

#[actix_rt::test]
async fn default_context_window_and_request_fallbacks() {
    let fake = FakeUpstream::start();
    let models = [
        fake_model("small", "context-length", &fake, ""),
        fake_model("long", "normal", &fake, ""),
        fake_model("spare", "normal", &fake, ""),
        fake_model("down", "error-500", &fake, ""),
    ];
    let router = "  num_retries: 0\n  context_window_fallbacks: [{small: [long]}]\n  default_fallbacks: [spare]\n";
    let gw = gateway(&models, router);
    // (model asked, extra body fields, status, the group that served)
    let cases: [(&str, Value, u16, Option<&str>); 4] = [
        ("small", json!({}), 200, Some("long")),
        ("down", json!({}), 200, Some("spare")),
        ("down", json!({"fallbacks": ["long"]}), 200, Some("long")),
        ("down", json!({"disable_fallbacks": true}), 500, None),
    ];
    for (model, extra, status, served) in cases {
        fake.clear();
        let r = post(&gw.url, "/v1/chat/completions", Some(MASTER_KEY), chat_body(model, extra.clone())).await;
        assert_eq!(r.status, status, "{model} {extra}: {}", r.text);
        assert_eq!(r.header("x-tollgate-fallback"), served, "{model} {extra}");
        for seen in fake.requests() {
            assert!(
                seen["body"].get("fallbacks").is_none() && seen["body"].get("disable_fallbacks").is_none(),
                "routing fields never go upstream"
            );
        }
    }
}

#[actix_rt::test]
async fn routing_explain_shows_each_deployments_health_and_load() {
    let fake = FakeUpstream::start();
    let models = [fake_model("g", "error-500", &fake, "      weight: 3\n"), fake_model("g", "normal", &fake, "")];
    let gw = Gateway::start(&format!(
        "model_list:\n{}router_settings:\n  num_retries: 0\n  allowed_fails: 0\n  cooldown_time: 60\ngeneral_settings:\n  master_key: {MASTER_KEY}\n",
        models.concat()
    ));
    // Until the failing deployment has failed once (and so cools down).
    for _ in 0..30 {
        if post(&gw.url, "/v1/chat/completions", Some(MASTER_KEY), chat_body("g", json!({}))).await.status == 500 {
            break;
        }
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    let explained = loop {
        let r = tollgate_tests::get(&gw.url, "/routing/explain?model=g", Some(MASTER_KEY)).await;
        assert_eq!(r.status, 200, "{}", r.text);
        if r.json["deployments"][0]["available"] == false || std::time::Instant::now() > deadline {
            break r.json;
        }
    };
    let failing = &explained["deployments"][0];
    assert_eq!((failing["id"].as_str(), failing["weight"].as_u64()), (Some("g#0"), Some(3)));
    assert_eq!(failing["available"], false, "{explained}");
    assert!(failing["cooldown_left_seconds"].as_u64().is_some_and(|s| (55..=60).contains(&s)), "{explained}");
    assert_eq!(failing["probe"], "due", "a probe follows the cooldown");
    assert!(failing["failures_total"].as_u64().is_some_and(|f| f >= 1));
    assert_eq!(explained["deployments"][1]["available"], true);
    assert_eq!(explained["num_retries"], 0);
    assert!(!explained.to_string().contains("sk-fake-upstream-key"), "no keys: {explained}");
    let unknown = tollgate_tests::get(&gw.url, "/routing/explain?model=nope", Some(MASTER_KEY)).await;
    assert_eq!(unknown.status, 404);
    let anonymous = tollgate_tests::get(&gw.url, "/routing/explain?model=g", None).await;
    assert_eq!(anonymous.status, 401);
}

#[actix_rt::test]
async fn retry_policy_sets_the_retries_of_each_error_class() {
    let fake = FakeUpstream::start();
    let models = [
        fake_model("lone", "error-500", &fake, ""),
        fake_model("pair", "error-502", &fake, ""),
        fake_model("pair", "normal", &fake, ""),
    ];
    // The failure-rate rule is off (no share of calls is above 100%), so the failing deployment keeps its turn.
    let router = "  num_retries: 1\n  failure_threshold_percent: 1\n  retry_policy: {InternalServerErrorRetries: 3, TimeoutErrorRetries: 0}\n";
    let gw = gateway(&models, router);
    let r = post(&gw.url, "/v1/chat/completions", Some(MASTER_KEY), chat_body("lone", json!({}))).await;
    assert_eq!(r.status, 500, "{}", r.text);
    assert_eq!(asked(&fake), ["error-500"; 4], "the first call and InternalServerErrorRetries, not num_retries");

    let gw = gateway(
        &models,
        "  num_retries: 2\n  failure_threshold_percent: 1\n  retry_policy: {InternalServerErrorRetries: 0}\n",
    );
    let mut statuses = Vec::new();
    for _ in 0..20 {
        statuses
            .push(post(&gw.url, "/v1/chat/completions", Some(MASTER_KEY), chat_body("pair", json!({}))).await.status);
    }
    assert!(statuses.contains(&502), "no retry for the class its policy gives 0: {statuses:?}");
    assert!(statuses.iter().all(|s| [200, 502].contains(s)), "{statuses:?}");
}
