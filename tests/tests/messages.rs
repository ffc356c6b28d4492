//! `POST /v1/messages` (Anthropic's Messages API) served by providers of other dialects: the built-in mock and an
//! OpenAI-compatible fake. What the fake received and what the caller got are both checked.

use serde_json::{json, Value};
use tollgate_tests::{fake_model, logs, post_messages, post_with, sse_events, FakeUpstream, Gateway, MASTER_KEY};

fn messages_body(model: &str, extra: Value) -> String {
    let mut body = json!({"model": model, "max_tokens": 256, "messages": [{"role": "user", "content": "hi there"}]});
    if let (Some(obj), Value::Object(more)) = (body.as_object_mut(), extra) {
        obj.extend(more);
    }
    body.to_string()
}

fn names(events: &[(String, Value)]) -> Vec<&str> {
    events.iter().map(|(n, _)| n.as_str()).filter(|n| *n != "ping").collect()
}

#[actix_rt::test]
async fn the_mock_answers_in_anthropics_dialect() {
    let gw = Gateway::with_models("  - {model_name: claude-mock, litellm_params: {model: mock/echo}}\n");
    let r = post_messages(&gw.url, messages_body("claude-mock", json!({"system": "be terse"}))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["type"], "message");
    assert_eq!(r.json["role"], "assistant");
    assert_eq!(r.json["content"], json!([{"type": "text", "text": "hi there"}]));
    assert_eq!(r.json["stop_reason"], "end_turn");
    assert!(r.json["usage"]["input_tokens"].as_u64().unwrap_or(0) > 0, "{}", r.text);
    // The mock counts about four characters a token, at least one a word: "hi" 1, "there" 2.
    assert_eq!(r.json["usage"]["output_tokens"], 3);

    let r = post_messages(&gw.url, messages_body("claude-mock", json!({"stream": true}))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    let events = sse_events(&r.text);
    assert_eq!(
        names(&events),
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ],
        "{}",
        r.text
    );
    let text: String = events.iter().filter_map(|(_, d)| d["delta"]["text"].as_str()).collect();
    assert_eq!(text, "hi there");
    let delta = &events.iter().find(|(n, _)| n == "message_delta").map(|(_, d)| d.clone()).unwrap_or_default();
    assert_eq!(delta["delta"]["stop_reason"], "end_turn");
    assert_eq!(delta["usage"]["output_tokens"], 3);
}

#[actix_rt::test]
async fn an_openai_upstream_serves_anthropic_callers_with_tools() {
    let fake = FakeUpstream::start();
    let gw = Gateway::with_models(&fake_model("claude-via-openai", "tools", &fake, ""));
    let body = json!({
        "model": "claude-via-openai",
        "max_tokens": 300,
        "system": [{"type": "text", "text": "You check weather."}],
        "tools": [{"name": "get_weather", "description": "Weather by city",
                   "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}],
        "tool_choice": {"type": "any"},
        "messages": [
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Rome"}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "21C"}, {"type": "text", "text": "And Paris?"}]}
        ]
    });
    let r = post_messages(&gw.url, body.to_string()).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["stop_reason"], "tool_use", "{}", r.text);
    let tool = &r.json["content"][0];
    assert_eq!((tool["type"].as_str(), tool["name"].as_str()), (Some("tool_use"), Some("get_weather")), "{}", r.text);
    assert_eq!(tool["input"], json!({"city": "Paris"}));

    // What the OpenAI-dialect upstream received: the system message first, the tool call and its result in
    // OpenAI's roles, the tool in OpenAI's shape, `any` as `required`.
    let sent = &fake.requests()[0]["body"];
    assert_eq!(sent["messages"][0], json!({"role": "system", "content": "You check weather."}));
    assert_eq!(sent["messages"][2]["tool_calls"][0]["function"]["arguments"], "{\"city\":\"Rome\"}");
    assert_eq!(sent["messages"][3]["role"], "tool");
    assert_eq!(sent["messages"][3]["tool_call_id"], "toolu_1");
    assert_eq!(sent["messages"][4]["role"], "user");
    assert_eq!(sent["tools"][0]["function"]["name"], "get_weather");
    assert_eq!(sent["tool_choice"], "required");
    assert_eq!(sent["max_tokens"].as_u64().or(sent["max_completion_tokens"].as_u64()), Some(300));

    let mut stream = body.clone();
    stream["stream"] = json!(true);
    let r = post_messages(&gw.url, stream.to_string()).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let events = sse_events(&r.text);
    let start = events.iter().find(|(n, d)| n == "content_block_start" && d["content_block"]["type"] == "tool_use");
    assert_eq!(start.map(|(_, d)| d["content_block"]["name"].clone()), Some(json!("get_weather")), "{}", r.text);
    let args: String = events.iter().filter_map(|(_, d)| d["delta"]["partial_json"].as_str()).collect();
    assert_eq!(serde_json::from_str::<Value>(&args).unwrap_or_default(), json!({"city": "Paris"}));
    let delta = events.iter().find(|(n, _)| n == "message_delta").map(|(_, d)| d.clone()).unwrap_or_default();
    assert_eq!(delta["delta"]["stop_reason"], "tool_use");
    assert_eq!(names(&events).last(), Some(&"message_stop"));
    // The upstream was asked for usage on the stream, so the books hold its counts.
    assert_eq!(fake.requests()[1]["body"]["stream_options"], json!({"include_usage": true}));
}

#[actix_rt::test]
async fn token_counts_from_an_openai_upstream_reach_anthropic_callers_and_the_books() {
    let fake = FakeUpstream::start();
    let prices = "      input_cost_per_token: 0.000001\n      output_cost_per_token: 0.000002\n";
    let gw = Gateway::with_models(&fake_model("c", "normal", &fake, prices));
    for stream in [false, true] {
        let r = post_messages(&gw.url, messages_body("c", json!({"stream": stream}))).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let usage = if stream {
            sse_events(&r.text).into_iter().find(|(n, _)| n == "message_delta").map(|(_, d)| d["usage"].clone())
        } else {
            Some(r.json["usage"].clone())
        };
        // The OpenAI fake reports 10 prompt tokens per message and 5 completion tokens.
        let usage = usage.unwrap_or_default();
        assert_eq!(
            (usage["input_tokens"].as_u64(), usage["output_tokens"].as_u64()),
            (Some(10), Some(5)),
            "{}",
            r.text
        );
        let id = r.header("x-tollgate-request-id").unwrap_or_default().to_owned();
        let line = logs::finished_call("request_id", &id);
        assert_eq!((line["prompt_tokens"].as_u64(), line["completion_tokens"].as_u64()), (Some(10), Some(5)));
        assert_eq!((line["accounting"].as_str(), line["cost_usd"].as_str()), (Some("exact"), Some("0.00002")));
    }
}

#[actix_rt::test]
async fn errors_come_back_in_anthropics_shape() {
    let fake = FakeUpstream::start();
    let gw = Gateway::with_models(&fake_model("limited", "error-429", &fake, ""));
    let cases = [
        (messages_body("limited", json!({})), 429, "rate_limit_error"),
        (messages_body("nope", json!({})), 404, "not_found_error"),
        (
            json!({"model": "limited", "messages": [{"role": "user", "content": "x"}]}).to_string(),
            400,
            "invalid_request_error",
        ),
        ("{not json".to_owned(), 400, "invalid_request_error"),
    ];
    for (body, status, kind) in cases {
        let r = post_messages(&gw.url, body.clone()).await;
        assert_eq!(r.status, status, "{body}: {}", r.text);
        assert_eq!(r.json["type"], "error", "{}", r.text);
        assert_eq!(r.json["error"]["type"], kind, "{}", r.text);
        assert!(r.json["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    let limited = post_messages(&gw.url, messages_body("limited", json!({}))).await;
    assert_eq!(limited.header("retry-after"), Some("7"));
    let unauthorized =
        post_with(&gw.url, "/v1/messages", &[("x-api-key", "sk-wrong")], messages_body("limited", json!({}))).await;
    assert_eq!((unauthorized.status, unauthorized.json["error"]["type"].as_str()), (401, Some("authentication_error")));
    let bearer = post_with(
        &gw.url,
        "/v1/messages",
        &[("authorization", &format!("Bearer {MASTER_KEY}"))],
        messages_body("limited", json!({})),
    )
    .await;
    assert_eq!(bearer.status, 429, "Bearer auth is accepted too");
}

#[actix_rt::test]
async fn an_openai_stream_that_breaks_ends_with_an_anthropic_error_event() {
    let fake = FakeUpstream::start();
    let gw = Gateway::with_models(&fake_model("c", "reset", &fake, ""));
    let r = post_messages(&gw.url, messages_body("c", json!({"stream": true}))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let events = sse_events(&r.text);
    let last = events.last().cloned().unwrap_or_default();
    assert_eq!(last.0, "error", "{}", r.text);
    assert_eq!(last.1["type"], "error");
    assert!(last.1["error"]["message"].as_str().is_some_and(|m| m.contains("broke")), "{}", r.text);
}

/// POSTs to `/v1/messages/count_tokens` as the `anthropic` SDK does, with these headers besides `content-type`.
async fn count(gw: &Gateway, headers: &[(&str, &str)], body: &Value) -> tollgate_tests::Reply {
    post_with(&gw.url, "/v1/messages/count_tokens", headers, body.to_string()).await
}

const SDK_HEADERS: [(&str, &str); 2] = [("x-api-key", MASTER_KEY), ("anthropic-version", "2023-06-01")];

#[actix_rt::test]
async fn the_mock_counts_tokens_as_its_replies_do() {
    let gw = Gateway::with_models("  - {model_name: claude-mock, litellm_params: {model: mock/echo}}\n");
    let body =
        json!({"model": "claude-mock", "system": "be terse", "messages": [{"role": "user", "content": "hi there"}]});
    let r = count(&gw, &SDK_HEADERS, &body).await;
    assert_eq!((r.status, r.header("content-type")), (200, Some("application/json")), "{}", r.text);
    // "be terse" and "hi there" are 3 tokens each, 3 more per text and 3 for the reply: 15.
    assert_eq!(r.json, json!({"input_tokens": 15}));
    // The same body, sent to be answered, reports the same input count.
    let mut messages = body.clone();
    messages["max_tokens"] = json!(16);
    let answered = post_messages(&gw.url, messages.to_string()).await;
    assert_eq!(answered.json["usage"]["input_tokens"], 15, "{}", answered.text);
}

#[actix_rt::test]
async fn anthropic_deployments_count_at_the_upstream() {
    let fake = FakeUpstream::start();
    let entry = format!(
        "  - model_name: claude\n    litellm_params:\n      model: anthropic/normal\n      api_base: {}\n      api_key: sk-ant-upstream-key-0001\n",
        fake.url
    );
    let gw = Gateway::with_models(&entry);
    // A whole Messages body, as some clients send it: the fields only generation takes are left out upstream.
    let body = json!({"model": "claude", "max_tokens": 100, "stream": true, "temperature": 0.3,
        "system": [{"type": "text", "text": "be terse", "cache_control": {"type": "ephemeral"}}],
        "tools": [{"name": "get_weather", "input_schema": {"type": "object"}}],
        "messages": [{"role": "user", "content": "hi there"}]});
    let beta = ("anthropic-beta", "token-efficient-tools-2025-02-19");
    let r = count(&gw, &[SDK_HEADERS[0], SDK_HEADERS[1], beta], &body).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json, json!({"input_tokens": 21}));
    let sent = &fake.requests()[0];
    assert_eq!(sent["path"], "/v1/messages/count_tokens");
    assert_eq!(
        sent["body"],
        json!({"model": "normal", "system": body["system"], "tools": body["tools"], "messages": body["messages"]})
    );
    let headers = ["x-api-key", "anthropic-version", "anthropic-beta"].map(|h| sent["headers"][h].clone());
    assert_eq!(headers, [json!("sk-ant-upstream-key-0001"), json!("2023-06-01"), json!(beta.1)]);
    // Counting is free: the call is in the books with no tokens, exactly.
    let line = logs::finished_call("request_id", r.header("x-tollgate-request-id").unwrap_or_default());
    let books = ["prompt_tokens", "completion_tokens", "accounting", "cost_usd", "outcome"].map(|f| line[f].clone());
    assert_eq!(books, [json!(0), json!(0), json!("exact"), json!("0"), json!("completed")]);
}

#[actix_rt::test]
async fn count_tokens_elsewhere_is_refused_and_needs_the_key() {
    let fake = FakeUpstream::start();
    let gw = Gateway::with_models(&fake_model("gpt", "normal", &fake, ""));
    let body = json!({"model": "gpt", "messages": [{"role": "user", "content": "hi"}]});
    let cases: [(&[(&str, &str)], u16, Value); 4] = [
        (
            &SDK_HEADERS,
            400,
            json!({"type": "error", "error": {"type": "invalid_request_error",
                "message": "count_tokens is not supported for provider `openai` yet"}}),
        ),
        (
            &[("anthropic-version", "2023-06-01")],
            401,
            json!({"type": "error", "error": {"type": "authentication_error",
                "message": "missing or invalid API key; pass it as `Authorization: Bearer <key>`"}}),
        ),
        (
            &[("x-api-key", "sk-wrong")],
            401,
            json!({"type": "error", "error": {"type": "authentication_error",
                "message": "missing or invalid API key; pass it as `Authorization: Bearer <key>`"}}),
        ),
        (
            &[("authorization", "Bearer sk-test-master")],
            400,
            json!({"type": "error", "error": {"type": "invalid_request_error",
                "message": "count_tokens is not supported for provider `openai` yet"}}),
        ),
    ];
    for (headers, status, want) in cases {
        let r = count(&gw, headers, &body).await;
        assert_eq!((r.status, &r.json), (status, &want), "{headers:?}: {}", r.text);
    }
    let unknown =
        count(&gw, &SDK_HEADERS, &json!({"model": "nope", "messages": [{"role": "user", "content": "x"}]})).await;
    assert_eq!((unknown.status, unknown.json["error"]["type"].as_str()), (404, Some("not_found_error")));
    assert!(fake.requests().is_empty(), "nothing reached the upstream");
}
