//! The seed article's routing dialect over HTTP: `router.weights` splitting a model several names serve,
//! `fallback_config` retrying with its delay and then following `fallback_to`, context-window routing, and the
//! runnable example `assets/examples/routing.yaml`.

use serde_json::json;
use tollgate_tests::{chat_body, get, post, FakeUpstream, Gateway, MASTER_KEY};

/// A `model_list` entry as the seed writes it (a bare model name, `api_base`, `metadata`), served by `fake`;
/// the fake's behaviour is picked by `model`.
fn entry(name: &str, model: &str, fake: &FakeUpstream, metadata: &str, extra: &str) -> String {
    format!(
        "  - model_name: {name}\n    litellm_params:\n      model: {model}\n      api_base: {}/v1\n      api_key: sk-fake-upstream-key-123456\n      metadata: {metadata}\n{extra}",
        fake.url
    )
}

fn gateway(entries: &[String], rest: &str) -> Gateway {
    Gateway::start(&format!("model_list:\n{}{rest}general_settings:\n  master_key: {MASTER_KEY}\n", entries.concat()))
}

/// The upstream models the fake was asked for, in order, and when (ms).
fn asked(fake: &FakeUpstream) -> Vec<(String, u64)> {
    fake.requests()
        .iter()
        .map(|r| (r["body"]["model"].as_str().unwrap_or_default().to_owned(), r["at_ms"].as_u64().unwrap_or(0)))
        .collect()
}

fn deployment(r: &tollgate_tests::Reply) -> String {
    r.header("x-tollgate-deployment").unwrap_or_default().to_owned()
}

#[actix_rt::test]
async fn regional_weights_split_the_shared_model_sixty_forty_and_a_region_by_name_stays_there() {
    let fake = FakeUpstream::start();
    let meta = "{cost: 0.03, latency: 800, max_tokens: 8192, capabilities: [function-calling, code]}";
    let gw = gateway(
        &[entry("gpt-4-us", "gpt-4", &fake, meta, ""), entry("gpt-4-eu", "gpt-4", &fake, meta, "")],
        "router:\n  type: weighted_round_robin\n  weights: {gpt-4-us: 0.6, gpt-4-eu: 0.4}\n",
    );
    let models = get(&gw.url, "/v1/models", Some(MASTER_KEY)).await;
    let ids: Vec<&str> =
        models.json["data"].as_array().into_iter().flatten().filter_map(|m| m["id"].as_str()).collect();
    assert_eq!(ids, ["gpt-4-us", "gpt-4-eu", "gpt-4"], "the shared model is listed too");
    let total = 2_000;
    let mut us = 0;
    for _ in 0..total {
        let r = post(&gw.url, "/v1/chat/completions", Some(MASTER_KEY), chat_body("gpt-4", json!({}))).await;
        assert_eq!(r.status, 200, "{}", r.text);
        match deployment(&r).as_str() {
            "gpt-4-us#0" => us += 1,
            "gpt-4-eu#1" => {}
            other => unreachable!("served by {other}"),
        }
    }
    let share = f64::from(us) / f64::from(total);
    assert!((share - 0.6).abs() <= 0.04, "us served {share:.3} of gpt-4");
    for _ in 0..100 {
        let r = post(&gw.url, "/v1/chat/completions", Some(MASTER_KEY), chat_body("gpt-4-eu", json!({}))).await;
        assert_eq!((r.status, deployment(&r)), (200, "gpt-4-eu#1".to_owned()), "{}", r.text);
    }
    let upstream: Vec<String> = asked(&fake).into_iter().map(|(m, _)| m).collect();
    assert!(upstream.iter().all(|m| m == "gpt-4"), "every region is called with its own model");
}

/// The seed's chain with three groups whose upstream behaviour is `modes`, and `retry_delay`.
fn chain(fake: &FakeUpstream, modes: [&str; 3], retry_delay: &str) -> Gateway {
    let entries = [
        entry("gpt-4-us", &format!("openai/{}", modes[0]), fake, "{cost: 0.03}", ""),
        entry("gpt-4-eu", &format!("openai/{}", modes[1]), fake, "{cost: 0.03}", ""),
        entry("claude-long", &format!("openai/{}", modes[2]), fake, "{cost: 0.015, max_tokens: 200000}", ""),
    ];
    gateway(
        &entries,
        &format!(
            "router_settings:\n  num_retries: 0\n  allowed_fails: 1000\nfallback_config:\n  - model_name: gpt-4-us\n    fallback_to: [gpt-4-eu, claude-long]\n    retry_attempts: 3\n    retry_delay: {retry_delay}\n"
        ),
    )
}

#[actix_rt::test]
async fn fallback_config_retries_the_primary_at_its_delay_then_follows_fallback_to_in_order() {
    let fake = FakeUpstream::start();
    let gw = chain(&fake, ["error-500", "error-503", "normal"], "1");
    let r = post(&gw.url, "/v1/chat/completions", Some(MASTER_KEY), chat_body("gpt-4-us", json!({}))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("x-tollgate-fallback"), Some("claude-long"));
    assert_eq!(r.header("x-tollgate-attempts"), Some("6"), "the primary 1 + 3 times, then eu, then claude-long");
    let calls = asked(&fake);
    let models: Vec<&str> = calls.iter().map(|(m, _)| m.as_str()).collect();
    assert_eq!(models, ["error-500", "error-500", "error-500", "error-500", "error-503", "normal"]);
    // retry_delay: 1 spaces the primary's calls a second apart: never sooner, and (with a margin for a loaded
    // machine) well before the 2 s a doubled delay would take.
    for pair in calls[..4].windows(2) {
        let gap = pair[1].1.saturating_sub(pair[0].1);
        assert!((950..1_900).contains(&gap), "primary calls {gap} ms apart: {calls:?}");
    }
    let to_fallback = calls[4].1.saturating_sub(calls[3].1);
    assert!(to_fallback < 900, "the fallback follows at once, not after another delay: {to_fallback} ms");
}

#[actix_rt::test]
async fn a_chain_that_runs_out_answers_a_5xx_naming_every_group_and_deployment_tried() {
    let fake = FakeUpstream::start();
    let gw = chain(&fake, ["error-500", "error-503", "error-429"], "0.05");
    let r = post(&gw.url, "/v1/chat/completions", Some(MASTER_KEY), chat_body("gpt-4-us", json!({}))).await;
    assert_eq!(r.status, 502, "{}", r.text);
    assert_eq!(fake.requests().len(), 6, "the primary 1 + 3 times, then eu, then claude-long");
    assert_eq!(r.json["error"]["code"], "fallbacks_exhausted");
    let message = r.json["error"]["message"].as_str().unwrap_or_default();
    let want = "tried gpt-4-us/gpt-4-us#0: 500, gpt-4-us/gpt-4-us#0: 500, gpt-4-us/gpt-4-us#0: 500, \
                gpt-4-us/gpt-4-us#0: 500, gpt-4-eu/gpt-4-eu#1: 503, claude-long/claude-long#2: 429";
    assert!(message.contains(want), "{message}");
    assert!(!r.text.contains("sk-fake-upstream-key"), "no keys in errors: {}", r.text);

    // Nothing available anywhere (every deployment at an rpm of 0): a 503 that says so, and no call.
    let fake = FakeUpstream::start();
    let capped = |name: &str| entry(name, "openai/normal", &fake, "{}", "      rpm: 0\n");
    let gw = gateway(
        &[capped("a"), capped("b")],
        "fallback_config:\n  - {model_name: a, fallback_to: [b], retry_attempts: 1, retry_delay: 0}\n",
    );
    let r = post(&gw.url, "/v1/chat/completions", Some(MASTER_KEY), chat_body("a", json!({}))).await;
    assert_eq!(r.status, 503, "{}", r.text);
    let message = r.json["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("tried a: none available") && message.contains("b: none available"), "{message}");
    assert!(fake.requests().is_empty());
}

/// A chat request whose one user message is `words` words long (about that many tokens, two per "hello world").
fn prompt(model: &str, words: usize) -> String {
    let text = "hello world ".repeat(words / 2);
    json!({"model": model, "messages": [{"role": "user", "content": text}]}).to_string()
}

#[actix_rt::test]
async fn a_prompt_goes_to_a_deployment_whose_context_window_fits_it() {
    let fake = FakeUpstream::start();
    let gw = gateway(
        &[
            entry("g", "openai/small-window", &fake, "{max_tokens: 1000}", ""),
            entry("g", "openai/large-window", &fake, "{max_tokens: 20000, capabilities: [long-context]}", ""),
        ],
        "router_settings:\n  enable_pre_call_checks: true\n",
    );
    for _ in 0..20 {
        let r = post(&gw.url, "/v1/chat/completions", Some(MASTER_KEY), prompt("g", 5_000)).await;
        assert_eq!((r.status, deployment(&r)), (200, "g#1".to_owned()), "{}", r.text);
    }
    let mut served = std::collections::BTreeSet::new();
    for _ in 0..60 {
        let r = post(&gw.url, "/v1/chat/completions", Some(MASTER_KEY), prompt("g", 10)).await;
        assert_eq!(r.status, 200, "{}", r.text);
        served.insert(deployment(&r));
    }
    assert_eq!(served.len(), 2, "a short prompt may go to either: {served:?}");
    fake.clear();
    let r = post(&gw.url, "/v1/chat/completions", Some(MASTER_KEY), prompt("g", 30_000)).await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(r.json["error"]["code"], "context_length_exceeded");
    assert_eq!(r.json["error"]["param"], "messages");
    let message = r.json["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("the prompt has 30") && message.contains("20000 tokens"), "{message}");
    assert!(fake.requests().is_empty(), "no call for a prompt nothing can take");
}

#[actix_rt::test]
async fn a_prompt_over_every_window_follows_context_window_fallbacks() {
    let fake = FakeUpstream::start();
    let gw = gateway(
        &[
            entry("short", "openai/small-window", &fake, "{max_tokens: 1000}", ""),
            entry("short", "openai/small-window-2", &fake, "{max_tokens: 2000}", ""),
            entry("long", "openai/large-window", &fake, "{max_tokens: 20000}", ""),
        ],
        "router_settings:\n  enable_pre_call_checks: true\n  context_window_fallbacks: [{short: [long]}]\n",
    );
    let r = post(&gw.url, "/v1/chat/completions", Some(MASTER_KEY), prompt("short", 5_000)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("x-tollgate-fallback"), Some("long"));
    assert_eq!(r.header("x-tollgate-attempts"), Some("1"), "the small windows were never called");
}

#[actix_rt::test]
async fn the_routing_example_runs_unchanged() {
    let yaml = include_str!("../../assets/examples/routing.yaml");
    let gw = Gateway::start(yaml);
    let key = Some("sk-tollgate-routing");
    let mut seen = std::collections::BTreeMap::<String, u32>::new();
    for _ in 0..10 {
        let r = post(&gw.url, "/v1/chat/completions", key, chat_body("gpt-4", json!({}))).await;
        assert_eq!(r.status, 200, "{}", r.text);
        *seen.entry(deployment(&r)).or_default() += 1;
    }
    assert_eq!(seen.get("gpt-4-us#0"), Some(&6), "{seen:?}");
    assert_eq!(seen.get("gpt-4-eu#1"), Some(&4), "{seen:?}");
    let r = post(&gw.url, "/v1/chat/completions", key, chat_body("gpt-4-eu", json!({}))).await;
    assert_eq!(r.json["choices"][0]["message"]["content"], "Hello from gpt-4-eu (mock).");
    // 12,000 tokens: over gpt-4-us's 8,192 window; its chain's claude-long (200,000) serves.
    let r = post(&gw.url, "/v1/chat/completions", key, prompt("gpt-4-us", 12_000)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("x-tollgate-fallback"), Some("claude-long"));
}

#[actix_rt::test]
async fn capability_based_routing_sends_images_and_tools_where_they_are_supported() {
    let fake = FakeUpstream::start();
    let gw = gateway(
        &[
            entry("g", "openai/plain", &fake, "{}", ""),
            entry("g", "openai/fn-calling", &fake, "{capabilities: [function-calling]}", ""),
            entry("g", "openai/eyes", &fake, "{}", "    model_info: {supports_vision: true}\n"),
        ],
        "router:\n  type: capability-based\n",
    );
    let tools = json!({"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]});
    let image = json!({"messages": [{"role": "user", "content": [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
    ]}]});
    for _ in 0..20 {
        let r = post(&gw.url, "/v1/chat/completions", Some(MASTER_KEY), chat_body("g", tools.clone())).await;
        assert_eq!((r.status, deployment(&r)), (200, "g#1".to_owned()), "{}", r.text);
        let r = post(&gw.url, "/v1/chat/completions", Some(MASTER_KEY), chat_body("g", image.clone())).await;
        assert_eq!((r.status, deployment(&r)), (200, "g#2".to_owned()), "{}", r.text);
    }
    let mut served = std::collections::BTreeSet::new();
    for _ in 0..60 {
        served.insert(deployment(
            &post(&gw.url, "/v1/chat/completions", Some(MASTER_KEY), chat_body("g", json!({}))).await,
        ));
    }
    assert_eq!(served.len(), 3, "a plain request may go anywhere: {served:?}");
}
