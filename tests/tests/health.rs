//! Deployment health checks over HTTP: `GET /health` (master key) in LiteLLM's shape, probing each deployment
//! with a cheap call in its own dialect (a 1-token chat, or one short embedding) through the same call stage as
//! callers' requests; background health checks (`general_settings.background_health_checks`) that take an
//! unhealthy deployment out before callers hit it; the results in `/metrics` and `/routing/explain`.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tollgate_tests::{chat_body, fake_model, get, logs, metric, post, FakeUpstream, Gateway, MASTER_KEY};

/// The ids of a `/health` list.
fn ids(list: &Value) -> Vec<&str> {
    list.as_array().into_iter().flatten().filter_map(|e| e["id"].as_str()).collect()
}

/// The requests the fake got for `model`.
fn seen(fake: &FakeUpstream, model: &str) -> Vec<Value> {
    fake.requests().into_iter().filter(|r| r["body"]["model"] == model).collect()
}

#[actix_rt::test]
async fn get_health_probes_every_deployment_now_in_its_own_dialect_and_shows_no_key() {
    let fake = FakeUpstream::start();
    let gw = Gateway::start(&format!(
        "model_list:\n{}{}{}  - model_name: hc-mock\n    litellm_params: {{model: mock/m}}\nrouter_settings:\n  cooldown_time: 60\ngeneral_settings:\n  master_key: {MASTER_KEY}\n",
        fake_model("g", "normal", &fake, ""),
        fake_model("g", "error-500", &fake, ""),
        fake_model("e", "embed-model", &fake, "    model_info: {mode: embedding}\n"),
    ));
    assert_eq!(get(&gw.url, "/health", None).await.status, 401, "admin only");
    let r = get(&gw.url, "/health", Some(MASTER_KEY)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let h = &r.json;
    assert_eq!((h["healthy_count"].as_u64(), h["unhealthy_count"].as_u64()), (Some(3), Some(1)), "{h}");
    assert_eq!(ids(&h["healthy_endpoints"]), ["g#0", "e#2", "hc-mock#3"]);
    assert_eq!(ids(&h["unhealthy_endpoints"]), ["g#1"]);
    let ok = &h["healthy_endpoints"][0];
    assert_eq!((ok["model_name"].as_str(), ok["model"].as_str()), (Some("g"), Some("openai/normal")));
    assert_eq!(ok["api_base"].as_str(), Some(format!("{}/v1", fake.url).as_str()));
    assert!(ok["health_check"]["latency_ms"].as_f64().is_some_and(|ms| ms > 0.0), "{ok}");
    assert!(ok["health_check"]["checked_at"].as_str().is_some_and(|t| t.ends_with('Z')), "{ok}");
    assert_eq!(ok["health_check"]["error"], Value::Null);
    let bad = &h["unhealthy_endpoints"][0];
    assert!(bad["health_check"]["error"].as_str().is_some_and(|e| e.contains("500")), "{bad}");
    assert!(!r.text.contains("sk-fake-upstream-key"), "no key in /health: {}", r.text);

    // Each probe is a cheap call in the deployment's dialect, seen by the upstream like any call.
    let chat = seen(&fake, "normal");
    assert_eq!(chat.len(), 1);
    assert_eq!(
        (chat[0]["body"]["max_tokens"].as_u64(), chat[0]["path"].as_str()),
        (Some(1), Some("/v1/chat/completions"))
    );
    assert_eq!(chat[0]["headers"]["authorization"], "Bearer sk-fake-upstream-key-123456", "authenticated as any call");
    let embed = seen(&fake, "embed-model");
    assert_eq!((embed.len(), embed[0]["path"].as_str()), (1, Some("/v1/embeddings")));
    // Settled and logged like any call, tagged as a health check.
    let line = logs::finished_call("model_group", "hc-mock");
    assert_eq!((line["health_check"].as_bool(), line["outcome"].as_str()), (Some(true), Some("completed")), "{line}");

    // A failed probe counts against the deployment: it is taken out before a caller meets the 500.
    // (The report reaches the worker's circuit a moment after the check's answer.)
    let deadline = Instant::now() + Duration::from_secs(2);
    let explained = loop {
        let e = get(&gw.url, "/routing/explain?model=g", Some(MASTER_KEY)).await.json;
        if e["deployments"][1]["available"] == false || Instant::now() > deadline {
            break e;
        }
        actix_rt::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(explained["deployments"][1]["health_check"]["healthy"], false, "{explained}");
    assert_eq!(explained["deployments"][1]["available"], false, "{explained}");
    for _ in 0..10 {
        let r = post(&gw.url, "/v1/chat/completions", Some(MASTER_KEY), chat_body("g", json!({}))).await;
        assert_eq!((r.status, r.header("x-tollgate-deployment")), (200, Some("g#0")), "{}", r.text);
    }
    let healthy = ["tollgate_deployment_health_check_healthy", "tollgate_deployment_health_check_latency_seconds"];
    assert_eq!(metric(&gw.url, healthy[0], &["deployment=\"g#1\""]).await, Some(0.0));
    assert_eq!(metric(&gw.url, healthy[0], &["deployment=\"g#0\""]).await, Some(1.0));
    assert!(metric(&gw.url, healthy[1], &["deployment=\"e#2\""]).await.is_some_and(|s| s > 0.0));

    let only = get(&gw.url, "/health?model=e", Some(MASTER_KEY)).await.json;
    assert_eq!((ids(&only["healthy_endpoints"]), only["unhealthy_count"].as_u64()), (vec!["e#2"], Some(0)));
    let by_model = get(&gw.url, "/health?model=openai/error-500", Some(MASTER_KEY)).await.json;
    assert_eq!((by_model["healthy_count"].as_u64(), ids(&by_model["unhealthy_endpoints"])), (Some(0), vec!["g#1"]));
    let by_id = get(&gw.url, "/health?model_id=g%230", Some(MASTER_KEY)).await.json;
    assert_eq!((ids(&by_id["healthy_endpoints"]), by_id["unhealthy_count"].as_u64()), (vec!["g#0"], Some(0)));
    assert_eq!(get(&gw.url, "/health?model=nope", Some(MASTER_KEY)).await.status, 404);
    assert_eq!(get(&gw.url, "/health?model_id=nope", Some(MASTER_KEY)).await.status, 404);
    assert_eq!(get(&gw.url, "/health/liveliness", None).await.status, 200, "probes stay open");
    assert_eq!(get(&gw.url, "/health/readiness", None).await.status, 200);
}

#[actix_rt::test]
async fn background_health_checks_take_an_unhealthy_deployment_out_before_callers_hit_it() {
    let fake = FakeUpstream::start();
    fake.set_switch("bg", "error-503");
    let gw = Gateway::start(&format!(
        "model_list:\n{}{}router_settings:\n  cooldown_time: 30\n  num_retries: 0\ngeneral_settings:\n  master_key: {MASTER_KEY}\n  background_health_checks: true\n  health_check_interval: 1\n",
        fake_model("g", "switch-bg", &fake, ""),
        fake_model("g", "normal", &fake, ""),
    ));
    // The workers check at start, then every second; the failure reaches the worker's circuit a moment after.
    let deadline = Instant::now() + Duration::from_secs(5);
    let health = loop {
        let h = get(&gw.url, "/health", Some(MASTER_KEY)).await.json;
        let out = h["unhealthy_endpoints"][0]["cooldown"]["cooling_down"] == true;
        if (h["unhealthy_count"] == 1 && out) || Instant::now() > deadline {
            break h;
        }
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(ids(&health["unhealthy_endpoints"]), ["g#0"], "{health}");
    assert_eq!(health["unhealthy_endpoints"][0]["cooldown"]["cooling_down"], true, "{health}");
    for _ in 0..20 {
        let r = post(&gw.url, "/v1/chat/completions", Some(MASTER_KEY), chat_body("g", json!({}))).await;
        assert_eq!((r.status, r.header("x-tollgate-deployment")), (200, Some("g#1")), "{}", r.text);
    }
    let to_bg = seen(&fake, "switch-bg");
    assert!(!to_bg.is_empty() && to_bg.iter().all(|r| r["body"]["max_tokens"] == 1), "only health checks went there");

    // With background checks, GET /health answers from the latest results: it calls nobody.
    // Probing when asked would make 6 calls for three requests; background checks make 2 a second.
    let before = fake.requests().len();
    for _ in 0..3 {
        assert_eq!(get(&gw.url, "/health", Some(MASTER_KEY)).await.status, 200);
    }
    let after = fake.requests().len();
    assert!(after <= before + 4, "only background checks meanwhile: {before} -> {after}");

    // Healthy again: the next check says so, but the cooldown runs its course (a call probes after it).
    fake.set_switch("bg", "normal");
    let deadline = Instant::now() + Duration::from_secs(5);
    let health = loop {
        let h = get(&gw.url, "/health", Some(MASTER_KEY)).await.json;
        if h["healthy_count"] == 2 || Instant::now() > deadline {
            break h;
        }
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    };
    let back = health["healthy_endpoints"].as_array().and_then(|l| l.iter().find(|e| e["id"] == "g#0"));
    assert!(back.is_some_and(|e| e["cooldown"]["cooling_down"] == true), "{health}");
    let r = post(&gw.url, "/v1/chat/completions", Some(MASTER_KEY), chat_body("g", json!({}))).await;
    assert_eq!(r.header("x-tollgate-deployment"), Some("g#1"), "still out until its cooldown ends");
}
