//! Routing strategies over HTTP (`router_settings.routing_strategy`, `litellm_params.order`, `rpm`): which
//! deployment of a group serves, read from `x-tollgate-deployment`.
//!
//! The per-minute counts run on the process's monotonic clock, which starts with the first gateway of this test
//! binary; the binary finishes well within its first minute, so a cap's minute never ends mid-test.

use std::time::{Duration, Instant};

use serde_json::json;
use tollgate_tests::{chat_body, fake_model, metric, post, wait_metric, FakeUpstream, Gateway, Reply, MASTER_KEY};

fn gateway(models: &[String], router: &str) -> Gateway {
    Gateway::start(&format!(
        "model_list:\n{}router_settings:\n  num_retries: 0\n{router}general_settings:\n  master_key: {MASTER_KEY}\n",
        models.concat()
    ))
}

fn mock(group: &str, model: &str, extra: &str) -> String {
    format!("  - model_name: {group}\n    litellm_params:\n      model: mock/{model}\n{extra}")
}

async fn chat(gw: &Gateway, group: &str) -> Reply {
    post(&gw.url, "/v1/chat/completions", Some(MASTER_KEY), chat_body(group, json!({}))).await
}

/// The deployment that served, or the status when the call failed.
async fn served(gw: &Gateway, group: &str) -> String {
    let r = chat(gw, group).await;
    match (r.status, r.header("x-tollgate-deployment")) {
        (200, Some(d)) => d.to_owned(),
        (status, _) => format!("status {status}: {}", r.text),
    }
}

#[actix_rt::test]
async fn simple_shuffle_follows_the_weights() {
    let gw = gateway(&[mock("w", "a", "      weight: 3\n"), mock("w", "b", "      weight: 1\n")], "");
    let mut first = 0;
    for _ in 0..2000 {
        match served(&gw, "w").await.as_str() {
            "w#0" => first += 1,
            "w#1" => {}
            other => panic!("{other}"),
        }
    }
    let share = f64::from(first) / 2000.0;
    assert!((0.71..=0.79).contains(&share), "weight 3 of 4 served {share}");
}

#[actix_rt::test]
async fn the_lowest_order_serves_while_it_is_available_then_the_next() {
    let fake = FakeUpstream::start();
    let models = [
        fake_model("t", "normal", &fake, "      order: 2\n      weight: 100\n"),
        fake_model("t", "normal", &fake, "      order: 1\n"),
        fake_model("c", "error-500", &fake, "      order: 1\n"),
        fake_model("c", "normal", &fake, "      order: 2\n"),
    ];
    let gw = gateway(&models, "  allowed_fails: 0\n  cooldown_time: 60\n");
    for _ in 0..30 {
        assert_eq!(served(&gw, "t").await, "t#1", "order 1 serves while available, whatever the weights");
    }
    // Ids count over the whole model_list: `c` is c#2 (order 1, failing) and c#3 (order 2).
    // The order-1 deployment of `c` takes the first call and fails it; over allowed_fails, its worker cools it down.
    let r = chat(&gw, "c").await;
    assert_eq!(r.status, 500, "{}", r.text);
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut failed_again = 0;
    // The failure report reaches the worker asynchronously: a call racing it may still go to order 1.
    while served(&gw, "c").await != "c#3" {
        failed_again += 1;
        assert!(Instant::now() < deadline, "order 2 never took over ({failed_again} more failures)");
    }
    // Under load (the whole suite in parallel) the report may take a few calls to land; it must land.
    assert!(failed_again <= 5, "{failed_again} calls went to a cooling deployment");
    for _ in 0..20 {
        assert_eq!(served(&gw, "c").await, "c#3", "order 2 serves while order 1 cools down");
    }
}

#[actix_rt::test]
async fn latency_based_routing_prefers_the_faster_deployment() {
    let fake = FakeUpstream::start();
    let gw = gateway(
        &[fake_model("l", "delay-200", &fake, ""), fake_model("l", "delay-20", &fake, "")],
        "  routing_strategy: latency-based-routing\n",
    );
    // Warm-up: deployments without a latency sample are tried first, so both get measured.
    let url = gw.url.clone();
    let samples = |d: &'static str| {
        let url = url.clone();
        async move {
            let label = format!("deployment=\"{d}\"");
            metric(&url, "tollgate_deployment_latency_samples_total", &[&label]).await.unwrap_or(0.0)
        }
    };
    let mut tries = 0;
    while samples("l#0").await == 0.0 || samples("l#1").await == 0.0 {
        let _ = served(&gw, "l").await;
        tries += 1;
        assert!(tries < 10, "a deployment never got a latency sample");
    }
    let mut fast = 0;
    for _ in 0..200 {
        if served(&gw, "l").await == "l#1" {
            fast += 1;
        }
    }
    assert!(fast >= 180, "the delay-20 deployment served {fast} of 200");
}

#[actix_rt::test]
async fn usage_based_routing_stops_at_the_rpm_cap() {
    let gw =
        gateway(&[mock("u", "a", "      rpm: 5\n"), mock("u", "b", "")], "  routing_strategy: usage-based-routing\n");
    let mut capped = 0;
    let mut order = Vec::new();
    for _ in 0..30 {
        let d = served(&gw, "u").await;
        if d == "u#0" {
            capped += 1;
        }
        assert!(d == "u#0" || d == "u#1", "{d}");
        order.push(d);
    }
    assert_eq!(capped, 5, "rpm 5 takes five calls in the minute: {order:?}");
    // The other deployment has no cap: it keeps serving.
    assert!(order[20..].iter().all(|d| d == "u#1"), "{order:?}");
}

#[actix_rt::test]
async fn the_only_capped_deployment_makes_the_caller_wait_for_the_next_minute() {
    let gw = gateway(&[mock("r", "a", "      rpm: 2\n")], "");
    for _ in 0..2 {
        assert_eq!(served(&gw, "r").await, "r#0");
    }
    let r = chat(&gw, "r").await;
    assert_eq!((r.status, r.json["error"]["code"].as_str()), (503, Some("no_healthy_deployment")), "{}", r.text);
    let retry_after: u64 = r.header("retry-after").and_then(|v| v.parse().ok()).unwrap_or(0);
    assert!((1..=60).contains(&retry_after), "retry-after {retry_after}");
}

#[actix_rt::test]
async fn least_busy_prefers_the_idle_deployment() {
    let fake = FakeUpstream::start();
    // Weights alone would send nearly everything to the slow deployment.
    let gw = gateway(
        &[fake_model("b", "delay-3000", &fake, "      weight: 1000\n"), fake_model("b", "normal", &fake, "")],
        "  routing_strategy: least-busy\n",
    );
    // Start a slow call; while both are idle the weights choose, so retry the rare start on the fast one.
    let in_flight = [r#"deployment="b#0""#];
    let slow = loop {
        let url = gw.url.clone();
        let call = actix_rt::spawn(async move {
            post(&url, "/v1/chat/completions", Some(MASTER_KEY), chat_body("b", json!({}))).await
        });
        if wait_metric(&gw.url, "tollgate_deployment_in_flight", &in_flight, 1.0).await == Some(1.0) {
            break call;
        }
        let _ = call.await;
    };
    for _ in 0..10 {
        assert_eq!(served(&gw, "b").await, "b#1", "the idle deployment serves while the other is busy");
    }
    let r = slow.await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.header("x-tollgate-deployment"), Some("b#0"), "{}", r.text);
}
