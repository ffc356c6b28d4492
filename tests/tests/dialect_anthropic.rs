//! The Anthropic dialect over real HTTP: OpenAI callers translated to `POST /v1/messages` and back, Anthropic
//! callers spliced through untouched. Each test checks what the fake received, what the caller got, and the
//! settlement's log line against the fake's own usage (its module doc: input 21, cache creation 3, cache read 5,
//! output 9).

use serde_json::{json, Value};
use tollgate_tests::{
    dialect::{
        assert_broken_settlement, assert_broken_streams, assert_errors, assert_finish_reason, assert_settled,
        assert_text_streams, assert_tool_calls, call, chat, gateway, golden_request, last_request, model, read_stream,
        tools_request, usage_numbers, with, ErrorCase, Tokens, UsageNumbers, BROKEN_MODES, UPSTREAM_KEY,
    },
    post_with, sse_events, FakeUpstream, Gateway, MASTER_KEY,
};

const PROVIDER: &str = "anthropic";
/// The fake's usage in OpenAI's inclusive form: 21 + 3 + 5 prompt tokens, of which 5 read from the cache.
const USAGE: Tokens = Tokens { prompt: 29, completion: 9, cache_read: 5, cache_write: 3, reasoning: 0 };
/// `(prompt, completion, total, cached)` as an OpenAI client reads them.
const OPENAI_USAGE: UsageNumbers = (Some(29), Some(9), Some(38), Some(5));

/// What [`golden_request`] becomes; `max_tokens` is the caller's, `stop` a list.
fn golden_body() -> Value {
    json!({
        "model": "normal",
        "system": "You are terse.",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Weather?"}]}],
        "max_tokens": 100,
        "stop_sequences": ["END"],
        "temperature": 0.5,
    })
}

#[actix_rt::test]
async fn openai_text_is_translated_to_messages_and_back() {
    let fake = FakeUpstream::start();
    let gw = gateway(&fake, PROVIDER, &["normal"]);
    let r = chat(&gw.url, &golden_request(&model(PROVIDER, "normal"))).await;
    assert_eq!(r.status, 200, "{}", r.text);

    let seen = last_request(&fake);
    assert_eq!(seen["path"], "/v1/messages");
    let headers = &seen["headers"];
    assert_eq!(headers["x-api-key"], UPSTREAM_KEY);
    assert_eq!(headers["anthropic-version"], "2023-06-01");
    assert_eq!(headers.get("authorization"), None, "the key travels in x-api-key only");
    assert_eq!(seen["body"], golden_body());

    assert_eq!(r.json["object"], "chat.completion");
    let choice = &r.json["choices"][0];
    assert_eq!(choice["message"]["role"], "assistant");
    assert_eq!(choice["message"]["content"], "Hello from fake upstream");
    assert_eq!(choice["finish_reason"], "stop");
    assert_eq!(usage_numbers(&r.json["usage"]), OPENAI_USAGE, "{}", r.text);
    assert_settled(&r, "completed", USAGE);
}

#[actix_rt::test]
async fn openai_streams_end_with_done_and_carry_usage_only_when_asked() {
    let fake = FakeUpstream::start();
    let gw = gateway(&fake, PROVIDER, &["normal"]);
    assert_text_streams(&gw.url, &model(PROVIDER, "normal"), "Hello from fake upstream", OPENAI_USAGE, USAGE).await;
    let want = with(&golden_body(), json!({"stream": true}));
    assert_eq!(last_request(&fake)["body"], want, "no stream_options: Anthropic streams always carry usage");
}

#[actix_rt::test]
async fn tool_calls_and_results_travel_both_ways() {
    let fake = FakeUpstream::start();
    let gw = gateway(&fake, PROVIDER, &["tools"]);
    // The second call streams an empty argument fragment: a client must still assemble `{}`.
    let want =
        [call("toolu_fake_1", "get_weather", json!({"city": "Paris"})), call("toolu_fake_2", "get_time", json!({}))];
    let [whole, stream] = assert_tool_calls(&gw.url, &tools_request(&model(PROVIDER, "tools")), &want).await;
    assert_eq!(whole.json["choices"][0]["message"]["content"], "Let me check.");
    assert_eq!(read_stream(&stream.text).text, "Let me check.");
    assert_settled(&stream, "completed", USAGE);

    let sent = json!({
        "model": "tools",
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "Weather in Rome?"}]},
            {"role": "assistant", "content": [
                {"type": "tool_use", "id": "call_rome", "name": "get_weather", "input": {"city": "Rome"}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "call_rome", "content": "21C"},
                {"type": "text", "text": "And Paris?"}]},
        ],
        "max_tokens": 4096,
        "tools": [{"name": "get_weather", "description": "Weather by city", "input_schema":
            {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}],
    });
    assert_eq!(fake.requests()[0]["body"], sent);
}

#[actix_rt::test]
async fn stop_reasons_become_openai_finish_reasons() {
    let fake = FakeUpstream::start();
    let cases = [("normal", "stop"), ("max-tokens", "length"), ("stop-seq", "stop"), ("tools", "tool_calls")];
    let gw = gateway(&fake, PROVIDER, &cases.map(|(mode, _)| mode));
    for (mode, want) in cases {
        assert_finish_reason(&gw.url, &model(PROVIDER, mode), want).await;
    }
}

#[actix_rt::test]
async fn upstream_errors_become_openai_errors() {
    let fake = FakeUpstream::start();
    let cases: [ErrorCase; 3] = [
        ("error-429", 429, "rate_limit_error", None, Some("7")),
        ("error-529", 503, "overloaded_error", Some("overloaded"), None),
        ("too-long", 400, "invalid_request_error", Some("context_length_exceeded"), None),
    ];
    let gw = gateway(&fake, PROVIDER, &cases.map(|c| c.0));
    assert_errors(&gw.url, PROVIDER, &cases).await;
}

#[actix_rt::test]
async fn a_broken_stream_ends_with_an_openai_error_chunk() {
    let fake = FakeUpstream::start();
    let gw = gateway(&fake, PROVIDER, &BROKEN_MODES);
    assert_broken_streams(&gw.url, PROVIDER).await;
}

/// The headers the `anthropic` SDK sends, with betas.
const BETA: &str = "prompt-caching-2024-07-31,interleaved-thinking-2025-05-14";

async fn post_anthropic(url: &str, key: &str, body: &Value) -> tollgate_tests::Reply {
    let headers = [("x-api-key", key), ("anthropic-version", "2023-06-01"), ("anthropic-beta", BETA)];
    post_with(url, "/v1/messages", &headers, body.to_string()).await
}

/// The same request sent to the fake directly, its message id renamed to the gateway's call's: the bytes the
/// gateway's caller must have received.
async fn direct_bytes(fake: &FakeUpstream, body: &Value, via_gateway: &Value) -> String {
    let direct = post_anthropic(&fake.url, "sk-direct", body).await;
    let seq = |r: &Value| r["seq"].as_u64().unwrap_or_default();
    let last = last_request(fake);
    direct.text.replace(&format!("msg_fake_{}", seq(&last)), &format!("msg_fake_{}", seq(via_gateway)))
}

fn messages_request(model: &str) -> Value {
    json!({
        "model": model,
        "max_tokens": 300,
        "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": [
            {"type": "text", "text": "Hi", "cache_control": {"type": "ephemeral", "ttl": "1h"}}]}],
        "metadata": {"user_id": "u-1"},
        "x_field_tollgate_does_not_know": {"nested": [1, 2.50, "three"]},
    })
}

#[actix_rt::test]
async fn anthropic_callers_are_spliced_through_byte_for_byte() {
    let fake = FakeUpstream::start();
    let gw = gateway(&fake, PROVIDER, &["normal"]);
    for stream in [false, true] {
        let body = with(&messages_request(&model(PROVIDER, "normal")), json!({"stream": stream}));
        let r = post_anthropic(&gw.url, MASTER_KEY, &body).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let seen = last_request(&fake);
        assert_eq!(seen["body"], with(&body, json!({"model": "normal"})), "only the model changes");
        assert_eq!(seen["headers"]["anthropic-beta"], BETA);
        assert_eq!(seen["headers"]["x-api-key"], UPSTREAM_KEY);
        let want_type = if stream { "text/event-stream" } else { "application/json" };
        assert_eq!(r.header("content-type"), Some(want_type));
        let direct = direct_bytes(&fake, &with(&body, json!({"model": "normal"})), &seen).await;
        assert_eq!(r.text, direct, "the fake's bytes, as they were (stream {stream})");
        assert_settled(&r, "completed", USAGE);
    }
}

#[actix_rt::test]
async fn a_broken_anthropic_stream_ends_with_an_anthropic_error_event() {
    let fake = FakeUpstream::start();
    let gw = gateway(&fake, PROVIDER, &BROKEN_MODES);
    for mode in BROKEN_MODES {
        let body = with(&messages_request(&model(PROVIDER, mode)), json!({"stream": true}));
        let r = post_anthropic(&gw.url, MASTER_KEY, &body).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let events = sse_events(&r.text);
        let (name, data) = events.last().cloned().unwrap_or_default();
        assert_eq!((name.as_str(), &data["type"]), ("error", &json!("error")), "{mode}: {}", r.text);
        assert!(data["error"]["message"].as_str().is_some_and(|m| m.contains("broke mid-response")), "{}", r.text);
        // Every event before the error is whole and is the fake's.
        let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).filter(|n| *n != "ping").collect();
        assert_eq!(names, ["message_start", "content_block_start", "content_block_delta", "error"], "{mode}");
        assert!(events.iter().all(|(_, d)| d.is_object()), "{mode}: no event is cut: {}", r.text);
        assert_broken_settlement(&r);
    }
}

#[actix_rt::test]
async fn a_parameter_anthropic_cannot_take_is_refused_by_name_unless_dropped() {
    let fake = FakeUpstream::start();
    let entry = |name: &str, extra: &str| {
        format!(
            "  - model_name: {name}\n    litellm_params:\n      model: anthropic/normal\n      api_base: {}\n      \
             api_key: {UPSTREAM_KEY}\n{extra}",
            fake.url
        )
    };
    let strict = Gateway::with_models(&[entry("strict", ""), entry("lenient", "      drop_params: true\n")].concat());
    let body = |model: &str| json!({"model": model, "seed": 7, "messages": [{"role": "user", "content": "hi"}]});
    let r = chat(&strict.url, &body("strict")).await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(
        (r.json["error"]["param"].as_str(), r.json["error"]["code"].as_str()),
        (Some("seed"), Some("unsupported_parameter"))
    );
    assert!(fake.requests().is_empty(), "a refused request never reaches the upstream");
    let r = chat(&strict.url, &body("lenient")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(last_request(&fake)["body"].get("seed").is_none(), "dropped, not sent");
    // The global setting (LiteLLM's `litellm_settings.drop_params`) applies to every deployment.
    let global = Gateway::start(&format!(
        "model_list:\n{}litellm_settings:\n  drop_params: true\ngeneral_settings:\n  master_key: {MASTER_KEY}\n",
        entry("strict", "")
    ));
    let r = chat(&global.url, &body("strict")).await;
    assert_eq!(r.status, 200, "{}", r.text);
}
