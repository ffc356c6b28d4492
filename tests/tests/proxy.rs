//! Proxying OpenAI requests to an OpenAI-compatible upstream over real HTTP: bodies, streams, usage, headers.

use serde_json::{json, Value};
use tollgate_tests::{chat_body, fake_model, get, post, sse_data, FakeUpstream, Gateway, MASTER_KEY};

fn gateway(fake: &FakeUpstream) -> Gateway {
    Gateway::with_models(
        &[
            fake_model("chat", "normal", fake, ""),
            fake_model("tools", "tools", fake, ""),
            fake_model("echo", "echo", fake, ""),
            fake_model("embed", "normal", fake, ""),
        ]
        .join(""),
    )
}

fn chunks(text: &str) -> Vec<Value> {
    sse_data(text).iter().filter(|d| *d != "[DONE]").map(|d| serde_json::from_str(d).unwrap_or(Value::Null)).collect()
}

#[actix_rt::test]
async fn non_streaming_chat_is_proxied_with_the_upstream_model_and_key() {
    let fake = FakeUpstream::start();
    let gw = gateway(&fake);
    let body =
        r#"{"model":"echo","messages":[{"role":"user","content":"hi"}],"x_custom":{"nested":[1,2]},"temperature":0.5}"#;
    let r = post(&gw.url, "/v1/chat/completions", Some(MASTER_KEY), body).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["object"], "chat.completion");
    let forwarded: Value =
        serde_json::from_str(r.json["choices"][0]["message"]["content"].as_str().unwrap_or("")).unwrap_or(Value::Null);
    assert_eq!(
        forwarded,
        json!({"model":"echo","messages":[{"role":"user","content":"hi"}],"x_custom":{"nested":[1,2]},"temperature":0.5}),
        "unknown fields pass through untouched, model rewritten to the upstream name"
    );
    let seen = fake.requests();
    let headers = &seen[0]["headers"];
    assert_eq!(headers["authorization"], "Bearer sk-fake-upstream-key-123456");
    assert_eq!(seen[0]["path"], "/v1/chat/completions");
    assert_eq!(r.header("x-tollgate-deployment"), Some("echo#2"));
    assert!(r.header("x-tollgate-request-id").is_some_and(|id| id.len() == 32));
    assert!(r.header("x-tollgate-overhead-ms").is_some_and(|v| v.parse::<f64>().is_ok()));
    assert_eq!(
        headers["x-request-id"],
        r.header("x-tollgate-request-id").unwrap_or_default(),
        "request id sent upstream"
    );
}

#[actix_rt::test]
async fn streaming_keeps_openai_chunks_and_usage_only_when_asked() {
    let fake = FakeUpstream::start();
    let gw = gateway(&fake);

    let r = post(
        &gw.url,
        "/v1/chat/completions",
        Some(MASTER_KEY),
        chat_body("chat", json!({"stream": true, "stream_options": {"include_usage": true}})),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    assert_eq!(sse_data(&r.text).last().map(String::as_str), Some("[DONE]"));
    let c = chunks(&r.text);
    let content: String = c.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
    assert_eq!(content, "Hello from fake upstream");
    let last = c.last().cloned().unwrap_or_default();
    assert_eq!(last["choices"], json!([]));
    assert_eq!(last["usage"], json!({"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}));

    let r = post(&gw.url, "/v1/chat/completions", Some(MASTER_KEY), chat_body("chat", json!({"stream": true}))).await;
    let c = chunks(&r.text);
    assert!(c.iter().all(|c| c["choices"] != json!([])), "usage chunk stripped when not asked: {}", r.text);
    assert!(c.iter().all(|c| c["usage"].is_null()), "{}", r.text);
    assert_eq!(c.iter().filter_map(|c| c["choices"][0]["finish_reason"].as_str()).collect::<Vec<_>>(), ["stop"]);
    assert_eq!(sse_data(&r.text).last().map(String::as_str), Some("[DONE]"));

    // The upstream was always asked for usage, so the gateway can count tokens either way.
    let seen = fake.requests();
    assert!(seen.iter().all(|r| r["body"]["stream_options"]["include_usage"] == true), "{seen:?}");
}

#[actix_rt::test]
async fn streamed_tool_call_deltas_arrive_intact() {
    let fake = FakeUpstream::start();
    let gw = gateway(&fake);
    let r = post(&gw.url, "/v1/chat/completions", Some(MASTER_KEY), chat_body("tools", json!({"stream": true}))).await;
    let c = chunks(&r.text);
    let mut name = String::new();
    let mut args = String::new();
    for chunk in &c {
        for call in chunk["choices"][0]["delta"]["tool_calls"].as_array().into_iter().flatten() {
            name.push_str(call["function"]["name"].as_str().unwrap_or(""));
            args.push_str(call["function"]["arguments"].as_str().unwrap_or(""));
        }
    }
    assert_eq!(name, "get_weather");
    assert_eq!(serde_json::from_str::<Value>(&args).ok(), Some(json!({"city": "Paris"})));
    assert_eq!(c.iter().filter_map(|c| c["choices"][0]["finish_reason"].as_str()).next_back(), Some("tool_calls"));
}

#[actix_rt::test]
async fn embeddings_and_models() {
    let fake = FakeUpstream::start();
    let gw = gateway(&fake);
    let r =
        post(&gw.url, "/v1/embeddings", Some(MASTER_KEY), json!({"model": "embed", "input": ["a", "b"]}).to_string())
            .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["data"].as_array().map(Vec::len), Some(2));
    assert_eq!(fake.requests()[0]["body"]["model"], "normal");

    for path in ["/v1/models", "/models"] {
        let r = get(&gw.url, path, Some(MASTER_KEY)).await;
        assert_eq!(r.status, 200);
        let ids: Vec<&str> = r.json["data"].as_array().into_iter().flatten().filter_map(|m| m["id"].as_str()).collect();
        assert_eq!(ids, ["chat", "tools", "echo", "embed"]);
        assert!(!r.text.contains("normal") && !r.text.contains("sk-"), "no upstream names or keys: {}", r.text);
    }
    let r = post(&gw.url, "/chat/completions", Some(MASTER_KEY), chat_body("chat", json!({}))).await;
    assert_eq!(r.status, 200, "unversioned route works too");

    let r = post(&gw.url, "/v1/chat/completions", Some(MASTER_KEY), chat_body("chat", json!({}))).await;
    assert_eq!(r.header("llm_provider-x-ratelimit-remaining-requests"), Some("99"), "provider limits forwarded");
    assert_eq!(r.header("llm_provider-x-ratelimit-reset-requests"), Some("6m0s"));
    assert_eq!(r.header("x-ratelimit-remaining-requests"), None, "never as tollgate's own");

    let r = get(&gw.url, "/v1/models/tools", Some(MASTER_KEY)).await;
    assert_eq!((r.status, r.json["id"].as_str(), r.json["object"].as_str()), (200, Some("tools"), Some("model")));
    let r = get(&gw.url, "/v1/models/nope", Some(MASTER_KEY)).await;
    assert_eq!((r.status, r.json["error"]["code"].as_str()), (404, Some("model_not_found")), "{}", r.text);
    let r = get(&gw.url, "/v1/models/tools", None).await;
    assert_eq!(r.status, 401);
}

#[actix_rt::test]
async fn load_balances_a_group_by_weight() {
    let fake = FakeUpstream::start();
    let gw = Gateway::with_models(
        &[fake_model("lb", "echo", &fake, "      weight: 1\n"), fake_model("lb", "normal", &fake, "      weight: 3\n")]
            .join(""),
    );
    let mut counts = std::collections::HashMap::new();
    for _ in 0..200 {
        let r = post(&gw.url, "/v1/chat/completions", Some(MASTER_KEY), chat_body("lb", json!({}))).await;
        *counts.entry(r.header("x-tollgate-deployment").unwrap_or("?").to_owned()).or_insert(0) += 1;
    }
    let heavy = counts.get("lb#1").copied().unwrap_or(0);
    assert!((110..=190).contains(&heavy), "weight 3 of 4 should get ~150 of 200: {counts:?}");
}

#[actix_rt::test]
async fn open_mode_without_master_key_serves_anyone() {
    let gw = Gateway::start("model_list:\n  - model_name: m\n    litellm_params: {model: mock/m}\n");
    let r = post(&gw.url, "/v1/chat/completions", None, chat_body("m", json!({}))).await;
    assert_eq!(r.status, 200, "{}", r.text);
}

/// The caller's W3C trace context goes upstream unchanged (a provider's traces join the caller's); an invalid
/// `traceparent` is not forwarded, nor its `tracestate`.
#[actix_rt::test]
async fn a_valid_traceparent_and_its_tracestate_are_forwarded_upstream() {
    let fake = FakeUpstream::start();
    let gw = gateway(&fake);
    let body = r#"{"model":"echo","messages":[{"role":"user","content":"hi"}]}"#;
    let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let auth = format!("Bearer {MASTER_KEY}");
    let sent = [("Authorization", auth.as_str()), ("traceparent", parent), ("tracestate", "congo=t61rcWkgMzE")];
    let r = tollgate_tests::post_with(&gw.url, "/v1/chat/completions", &sent, body).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let bad = [("Authorization", auth.as_str()), ("traceparent", "00-zz-00-01"), ("tracestate", "a=b")];
    let r = tollgate_tests::post_with(&gw.url, "/v1/chat/completions", &bad, body).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let seen = fake.requests();
    assert_eq!(seen[0]["headers"]["traceparent"], parent);
    assert_eq!(seen[0]["headers"]["tracestate"], "congo=t61rcWkgMzE");
    assert!(seen[1]["headers"].get("traceparent").is_none(), "{}", seen[1]["headers"]);
    assert!(seen[1]["headers"].get("tracestate").is_none(), "{}", seen[1]["headers"]);
}
