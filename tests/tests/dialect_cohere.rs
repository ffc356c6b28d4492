//! The Cohere v2 dialect over real HTTP: OpenAI callers translated to `POST /v2/chat` and `POST /v2/embed` and
//! back. Each test checks what the fake received, what the caller got, and the settlement's log line against the
//! fake's own usage (its module doc: billed 13 in / 7 out, 5 cached; `max-tokens` 2 out, `tools` 21 out; the
//! processed counts 513 / 8 must not be the ones counted).

use serde_json::{json, Value};
use tollgate_tests::{
    dialect::{
        assert_broken_streams, assert_errors, assert_finish_reason, assert_settled, assert_text_streams,
        assert_tool_calls, call, chat, deployment, gateway, golden_request, last_request, model, read_stream, streamed,
        tools_request, usage_numbers, vectors, ErrorCase, Tokens, UsageNumbers, BROKEN_MODES, UPSTREAM_KEY,
    },
    dialect_b, post, FakeUpstream, Gateway, MASTER_KEY,
};

const PROVIDER: &str = "cohere";
/// `normal`'s billed units as an OpenAI client reads them: `(prompt, completion, total, cached)`.
const OPENAI_USAGE: UsageNumbers = (Some(13), Some(7), Some(20), Some(5));

/// Billed units in OpenAI's form: Cohere's cached count is part of the billed input.
fn usage(completion: u64) -> Tokens {
    Tokens { prompt: 13, completion, cache_read: 5, cache_write: 0, reasoning: 0 }
}

/// What [`golden_request`] becomes; `stream` is always stated (v2 streams only when asked).
fn golden_body(stream: bool) -> Value {
    json!({
        "model": "normal",
        "messages": [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Weather?"}],
        "max_tokens": 100,
        "temperature": 0.5,
        "stop_sequences": ["END"],
        "stream": stream,
    })
}

#[actix_rt::test]
async fn openai_text_is_translated_to_v2_chat_and_back() {
    let fake = FakeUpstream::start();
    let gw = gateway(&fake, PROVIDER, &["normal"]);
    let r = chat(&gw.url, &golden_request(&model(PROVIDER, "normal"))).await;
    assert_eq!(r.status, 200, "{}", r.text);

    let seen = last_request(&fake);
    assert_eq!(seen["path"], "/v2/chat");
    assert_eq!(seen["headers"]["authorization"], format!("Bearer {UPSTREAM_KEY}"));
    assert_eq!(seen["body"], golden_body(false));

    assert_eq!(r.json["object"], "chat.completion");
    let choice = &r.json["choices"][0];
    assert_eq!(choice["message"]["content"], "Hello from fake cohere");
    assert_eq!(choice["finish_reason"], "stop");
    assert_eq!(usage_numbers(&r.json["usage"]), OPENAI_USAGE, "billed units, not processed tokens: {}", r.text);
    assert_settled(&r, "completed", usage(7));
}

#[actix_rt::test]
async fn openai_streams_end_with_done_and_carry_usage_only_when_asked() {
    let fake = FakeUpstream::start();
    let gw = gateway(&fake, PROVIDER, &["normal"]);
    assert_text_streams(&gw.url, &model(PROVIDER, "normal"), "Hello from fake cohere", OPENAI_USAGE, usage(7)).await;
    let sent = last_request(&fake)["body"].clone();
    assert_eq!(sent, golden_body(true), "no stream_options: v2 always reports usage at message-end");
}

#[actix_rt::test]
async fn tool_calls_and_results_travel_as_v2_tool_messages() {
    let fake = FakeUpstream::start();
    let gw = gateway(&fake, PROVIDER, &["tools"]);
    // The second call streams no argument fragment at all: a client must still assemble `{}`.
    let want = [
        call("get_weather_fake1", "get_weather", json!({"city": "Paris"})),
        call("get_time_fake2", "get_time", json!({})),
    ];
    let replies = assert_tool_calls(&gw.url, &tools_request(&model(PROVIDER, "tools")), &want).await;
    for r in &replies {
        assert_settled(r, "completed", usage(21));
    }
    let sent = json!({
        "model": "tools",
        "messages": [
            {"role": "user", "content": "Weather in Rome?"},
            {"role": "assistant", "tool_calls": [{"id": "call_rome", "type": "function",
                "function": {"name": "get_weather", "arguments": "{\"city\":\"Rome\"}"}}]},
            {"role": "tool", "tool_call_id": "call_rome", "content": "21C"},
            {"role": "user", "content": "And Paris?"},
        ],
        "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Weather by city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}],
        "stream": false,
    });
    assert_eq!(fake.requests()[0]["body"], sent);
}

/// LiteLLM maps `MAX_TOKENS` to `stop` and drops `TOOL_CALL`; OpenAI clients need `length` and `tool_calls`.
#[actix_rt::test]
async fn finish_reasons_become_openai_finish_reasons() {
    let fake = FakeUpstream::start();
    // (mode, finish_reason, billed output tokens)
    let cases = [("normal", "stop", 7), ("max-tokens", "length", 2), ("tools", "tool_calls", 21)];
    let gw = gateway(&fake, PROVIDER, &cases.map(|c| c.0));
    for (mode, want, completion) in cases {
        for r in assert_finish_reason(&gw.url, &model(PROVIDER, mode), want).await {
            assert_settled(&r, "completed", usage(completion));
        }
    }
}

#[actix_rt::test]
async fn upstream_errors_become_openai_errors() {
    let fake = FakeUpstream::start();
    let cases: [ErrorCase; 3] = [
        ("error-429", 429, "rate_limit_error", Some("rate_limit_exceeded"), Some("7")),
        ("too-many-tokens", 400, "invalid_request_error", Some("context_length_exceeded"), None),
        ("blocked", 400, "invalid_request_error", Some("content_policy_violation"), None),
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

#[actix_rt::test]
async fn an_error_at_message_end_is_an_error_chunk_not_a_stop() {
    let fake = FakeUpstream::start();
    let gw = gateway(&fake, PROVIDER, &["stream-error"]);
    let r = chat(&gw.url, &streamed(&golden_request(&model(PROVIDER, "stream-error")), true)).await;
    let s = read_stream(&r.text);
    assert_eq!(s.text, "Hel");
    let message = s.error.as_ref().and_then(|e| e["message"].as_str()).unwrap_or_default();
    assert!(message.contains("fake cohere: internal error during generation"), "{}", r.text);
    assert_eq!(s.finish_reason, None, "{}", r.text);
    assert!(s.last.starts_with("{\"error\"") && !r.text.contains("[DONE]"), "{}", r.text);
    // Cohere billed what it generated before the error; the call failed, and its cost is still exact.
    assert_settled(&r, "failed", usage(1));
}

#[actix_rt::test]
async fn embeddings_come_back_as_the_fakes_vectors_in_either_encoding() {
    let fake = FakeUpstream::start();
    let gw = Gateway::with_models(&deployment("co-embed", "cohere/embed-english-v3.0", &fake.url));
    let texts = ["first text here", "second"];
    let direct = post(&fake.url, "/v2/embed", None, json!({"model": "x", "texts": texts}).to_string()).await;
    let want: Vec<Vec<f32>> = direct.json["embeddings"]["float"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|v| v.as_array().into_iter().flatten().map(|x| x.as_f64().unwrap_or(f64::NAN) as f32).collect())
        .collect();
    assert_eq!(want.len(), 2, "{}", direct.text);

    for encoding in ["float", "base64"] {
        let body = json!({"model": "co-embed", "input": texts, "encoding_format": encoding});
        let r = post(&gw.url, "/v1/embeddings", Some(MASTER_KEY), body.to_string()).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let seen = last_request(&fake);
        assert_eq!(seen["path"], "/v2/embed");
        let sent = json!({"model": "embed-english-v3.0", "texts": texts, "input_type": "search_document",
            "embedding_types": ["float"]});
        assert_eq!(seen["body"], sent);
        assert_eq!(vectors(&r.json), want, "{encoding}: {}", r.text);
        let is_text = r.json["data"][0]["embedding"].is_string();
        assert_eq!(is_text, encoding == "base64", "{}", r.text);
        // The fake bills a token a word: 3 + 1.
        assert_eq!(r.json["usage"], json!({"prompt_tokens": 4, "total_tokens": 4}), "{}", r.text);
        assert_settled(&r, "completed", Tokens::prompt(4));
    }
}

#[actix_rt::test]
async fn anthropic_callers_get_text_tool_calls_stop_reasons_and_usage() {
    let fake = FakeUpstream::start();
    let gw = gateway(&fake, PROVIDER, &["normal", "max-tokens", "tools"]);
    // Billed units 13 in (5 of them cached: Anthropic's input count leaves cache reads out), 7 out.
    let usage = |output: u64| json!({"input_tokens": 8, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 5, "output_tokens": output});
    let cases = [("normal", "Hello from fake cohere", "end_turn", 7), ("max-tokens", "Hello from", "max_tokens", 2)];
    for (mode, text, stop_reason, output) in cases {
        let want =
            json!({"content": [{"type": "text", "text": text}], "stop_reason": stop_reason, "usage": usage(output)});
        dialect_b::assert_messages(&gw, &dialect_b::hello_messages(&model(PROVIDER, mode)), &want).await;
    }
    let tool_use = |name: &str, input: Value| json!({"type": "tool_use", "name": name, "input": input});
    // Cohere's tool plan is the model's reasoning: a thinking block (unsigned: Cohere signs nothing).
    let content = [
        json!({"type": "thinking", "thinking": "I will check the weather.", "signature": ""}),
        tool_use("get_weather", json!({"city": "Paris"})),
        tool_use("get_time", json!({})),
    ];
    let want = json!({"content": content, "stop_reason": "tool_use", "usage": usage(21)});
    dialect_b::assert_messages(&gw, &dialect_b::tool_messages(&model(PROVIDER, "tools")), &want).await;
}
