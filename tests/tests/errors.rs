//! Every error case of the gateway core: status code and `error.type`, and the gateway stays healthy after.

use serde_json::json;
use tollgate_tests::{chat_body, dead_port, fake_model, get, post, FakeUpstream, Gateway, MASTER_KEY};

fn gateway(fake: &FakeUpstream) -> Gateway {
    let models = [
        fake_model("ok", "normal", fake, ""),
        fake_model("up-400", "error-400", fake, ""),
        fake_model("up-401", "error-401", fake, ""),
        fake_model("up-404", "error-404", fake, ""),
        fake_model("up-429", "error-429", fake, ""),
        fake_model("up-500", "error-500", fake, ""),
        fake_model("up-hang", "hang", fake, "      timeout: 0.5\n"),
        fake_model("up-hang-stream", "hang", fake, "      timeout: 30\n      stream_timeout: 0.5\n"),
        format!(
            "  - model_name: up-dead\n    litellm_params:\n      model: openai/normal\n      api_base: http://127.0.0.1:{}/v1\n      api_key: sk-dead-upstream-key-98765\n",
            dead_port()
        ),
    ];
    Gateway::start(&format!(
        "model_list:\n{}\ngeneral_settings:\n  master_key: {MASTER_KEY}\n  max_request_size_mb: 0.01\n",
        models.join("")
    ))
}

#[actix_rt::test]
async fn client_errors_have_status_type_and_param() {
    let fake = FakeUpstream::start();
    let gw = gateway(&fake);
    let big = chat_body("ok", json!({"padding": "x".repeat(20_000)}));
    // (case, key, body, status, error.type, error.param or code)
    let cases: Vec<(&str, Option<&str>, String, u16, &str, Option<&str>)> = vec![
        ("malformed json", Some(MASTER_KEY), "{\"model\":".into(), 400, "invalid_request_error", None),
        ("not an object", Some(MASTER_KEY), "[1]".into(), 400, "invalid_request_error", None),
        (
            "missing model",
            Some(MASTER_KEY),
            json!({"messages": [{"role": "user", "content": "x"}]}).to_string(),
            400,
            "invalid_request_error",
            Some("model"),
        ),
        (
            "missing messages",
            Some(MASTER_KEY),
            json!({"model": "ok"}).to_string(),
            400,
            "invalid_request_error",
            Some("messages"),
        ),
        (
            "messages not array",
            Some(MASTER_KEY),
            json!({"model": "ok", "messages": "hi"}).to_string(),
            400,
            "invalid_request_error",
            Some("messages"),
        ),
        (
            "stream not bool",
            Some(MASTER_KEY),
            chat_body("ok", json!({"stream": "yes"})),
            400,
            "invalid_request_error",
            Some("stream"),
        ),
        ("no key", None, chat_body("ok", json!({})), 401, "invalid_request_error", None),
        ("bad key", Some("sk-wrong"), chat_body("ok", json!({})), 401, "invalid_request_error", None),
        ("unknown model", Some(MASTER_KEY), chat_body("gpt-nope", json!({})), 404, "invalid_request_error", None),
        ("too large", Some(MASTER_KEY), big, 413, "invalid_request_error", None),
    ];
    for (case, key, body, status, kind, param) in cases {
        let r = post(&gw.url, "/v1/chat/completions", key, body).await;
        assert_eq!(r.status, status, "{case}: {}", r.text);
        assert_eq!(r.error_type(), kind, "{case}: {}", r.text);
        assert!(r.json["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{case}: {}", r.text);
        if let Some(param) = param {
            assert_eq!(r.json["error"]["param"], param, "{case}: {}", r.text);
        }
        assert!(r.header("x-tollgate-request-id").is_some(), "{case}: request id header");
    }
    let r = post(&gw.url, "/v1/chat/completions", Some(MASTER_KEY), chat_body("gpt-nope", json!({}))).await;
    assert_eq!(r.json["error"]["code"], "model_not_found");
    assert!(!r.text.contains("sk-fake"), "404 lists nothing secret: {}", r.text);
    let r = post(&gw.url, "/v1/embeddings", Some(MASTER_KEY), json!({"model": "ok"}).to_string()).await;
    assert_eq!((r.status, r.json["error"]["param"].as_str()), (400, Some("input")), "{}", r.text);
    assert!(fake.requests().is_empty(), "no bad request reached the upstream");
    let r = post(&gw.url, "/v1/chat/completions", Some(MASTER_KEY), chat_body("ok", json!({}))).await;
    assert_eq!(r.status, 200, "healthy after client errors: {}", r.text);
}

#[actix_rt::test]
async fn upstream_errors_pass_through_with_message_and_retry_after() {
    let fake = FakeUpstream::start();
    let gw = gateway(&fake);
    let cases = [
        ("up-400", 400, "invalid_request_error"),
        ("up-401", 401, "invalid_request_error"),
        ("up-404", 404, "invalid_request_error"),
        ("up-429", 429, "requests"),
        ("up-500", 500, "server_error"),
    ];
    for (model, status, kind) in cases {
        let r = post(&gw.url, "/v1/chat/completions", Some(MASTER_KEY), chat_body(model, json!({}))).await;
        assert_eq!(r.status, status, "{model}: {}", r.text);
        assert_eq!(r.error_type(), kind, "{model}: {}", r.text);
        let message = r.json["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(&format!("fake upstream {status}")), "{model}: upstream message kept: {message}");
        assert!(!r.text.contains("sk-fake-upstream-key"), "{model}: no provider key in the error: {}", r.text);
        assert!(
            r.header("x-tollgate-deployment").is_some_and(|d| d.starts_with(model)),
            "{model}: failing deployment named"
        );
    }
    let r = post(&gw.url, "/v1/chat/completions", Some(MASTER_KEY), chat_body("up-429", json!({}))).await;
    assert_eq!(r.header("retry-after"), Some("7"), "retry-after passed through");
    let r = post(&gw.url, "/v1/chat/completions", Some(MASTER_KEY), chat_body("ok", json!({}))).await;
    assert_eq!(r.status, 200, "healthy after upstream errors: {}", r.text);
}

#[actix_rt::test]
async fn unreachable_upstream_is_502_and_timeout_is_504_naming_the_deployment() {
    let fake = FakeUpstream::start();
    let gw = gateway(&fake);
    let r = post(&gw.url, "/v1/chat/completions", Some(MASTER_KEY), chat_body("up-dead", json!({}))).await;
    assert_eq!((r.status, r.error_type()), (502, "upstream_error"), "{}", r.text);
    assert!(r.text.contains("up-dead#8"), "names the deployment: {}", r.text);
    assert!(!r.text.contains("sk-dead-upstream-key"), "never its key: {}", r.text);

    let started = std::time::Instant::now();
    let r = post(&gw.url, "/v1/chat/completions", Some(MASTER_KEY), chat_body("up-hang", json!({}))).await;
    assert_eq!((r.status, r.error_type()), (504, "timeout_error"), "{}", r.text);
    assert!(r.text.contains("up-hang#6"), "names the deployment: {}", r.text);
    assert!(started.elapsed() < std::time::Duration::from_secs(5), "timeout honoured");

    let r =
        post(&gw.url, "/v1/chat/completions", Some(MASTER_KEY), chat_body("up-hang-stream", json!({"stream": true})))
            .await;
    assert_eq!(
        (r.status, r.error_type()),
        (504, "timeout_error"),
        "streams time out before the first byte too: {}",
        r.text
    );

    let r = get(&gw.url, "/health/readiness", None).await;
    assert_eq!(r.status, 200);
    let r = post(&gw.url, "/v1/chat/completions", Some(MASTER_KEY), chat_body("ok", json!({}))).await;
    assert_eq!(r.status, 200, "healthy after upstream failures: {}", r.text);
}

#[actix_rt::test]
async fn unknown_routes_are_openai_shaped_404s() {
    let gw = Gateway::with_models("  - model_name: m\n    litellm_params: {model: mock/m}\n");
    let r = get(&gw.url, "/v1/nope", Some(MASTER_KEY)).await;
    assert_eq!((r.status, r.error_type()), (404, "invalid_request_error"), "{}", r.text);
    assert!(r.header("x-tollgate-request-id").is_some());
}
