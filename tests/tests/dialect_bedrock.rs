//! AWS Bedrock (`bedrock/<model id>`, the Converse API) behind OpenAI and Anthropic callers, over real HTTP
//! against the fake Bedrock runtime, which verifies SigV4 signatures made with the test access key in full
//! (`sigv4_verified:<seq>`): what the fake received (paths, signatures, exact bodies), what the caller got
//! (answers, finish reasons, usage with Bedrock's additive cache counts made inclusive, errors, broken
//! eventstreams) and what the books say.

use serde_json::{json, Value};
use tollgate_tests::{
    dialect_b::{
        self, assert_messages, assert_messages_end_with_error, assert_unbooked, bedrock_model, embed_both_ways,
        embeddings, gateway, hello_messages, messages, tool_messages, within, Auth, Books, BrokenCase, ErrorCase,
        Target, Tokens,
    },
    FakeUpstream, Gateway,
};

const MODES: &[&str] = &[
    "normal",
    "tools",
    "max-tokens",
    "error-429",
    "error-400",
    "context-too-long",
    "corrupt",
    "cut",
    "throttle-stream",
];
const TITAN: &str = "amazon.titan-embed-text-v2:0";
const COHERE: &str = "cohere.embed-english-v3";

/// The fake's usage (`inputTokens` 11, `cacheReadInputTokens` 5, `cacheWriteInputTokens` 3, `outputTokens` 7)
/// made inclusive: the prompt counts all three inputs.
const TOKENS: Tokens = Tokens { prompt: 19, completion: 7, cache_read: 5, cache_write: 3, reasoning: 0 };

/// A gateway with a `b-<mode>` deployment for each mode, and `b-titan` and `b-cohere` for embeddings.
fn setup() -> (FakeUpstream, Gateway) {
    let fake = FakeUpstream::start();
    let mut entries: Vec<String> = MODES.iter().map(|m| bedrock_model(&format!("b-{m}"), m, &fake)).collect();
    entries.push(bedrock_model("b-titan", TITAN, &fake));
    entries.push(bedrock_model("b-cohere", COHERE, &fake));
    let gw = gateway(&entries);
    (fake, gw)
}

fn target<'a>(gw: &'a Gateway, fake: &'a FakeUpstream) -> Target<'a> {
    Target {
        gw,
        fake,
        prefix: "b-",
        path: |mode, stream| format!("/model/{mode}/{}", if stream { "converse-stream" } else { "converse" }),
        auth: Auth::SigV4,
        text: "Hello from fake upstream",
        // With LiteLLM's top-level `cache_creation_input_tokens`.
        usage: json!({"prompt_tokens": 19, "completion_tokens": 7, "total_tokens": 26,
                      "prompt_tokens_details": {"cached_tokens": 5},
                      "completion_tokens_details": {"reasoning_tokens": 0}, "cache_creation_input_tokens": 3}),
        tokens: TOKENS,
        golden_body: json!({
            "system": [{"text": "Be terse."}],
            "messages": [{"role": "user", "content": [{"text": "Weather in Paris?"}]}],
            "inferenceConfig": {"maxTokens": 64, "temperature": 0.5, "stopSequences": ["END"]},
        }),
    }
}

/// The tool round of `tool_chat` / `tool_messages` (their calls are `<weather>` and `<time>`) as Converse's
/// `toolUse` and `toolResult` blocks, with the tools in `toolConfig`.
fn tool_body(weather: &str, time: &str) -> Value {
    json!({
        "messages": [
            {"role": "user", "content": [{"text": "Weather in Rome, and the time?"}]},
            {"role": "assistant", "content": [
                {"toolUse": {"toolUseId": weather, "name": "get_weather", "input": {"city": "Rome"}}},
                {"toolUse": {"toolUseId": time, "name": "get_time", "input": {}}}]},
            {"role": "user", "content": [
                {"toolResult": {"toolUseId": time, "content": [{"text": "12:00"}]}},
                {"toolResult": {"toolUseId": weather, "content": [{"text": "21C"}]}}]},
        ],
        "toolConfig": {
            "tools": [
                {"toolSpec": {"name": "get_weather", "description": "Weather by city", "inputSchema": {"json":
                    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}},
                {"toolSpec": {"name": "get_time", "description": "Current time", "inputSchema": {"json":
                    {"type": "object", "properties": {}}}}},
            ],
            "toolChoice": {"auto": {}},
        },
    })
}

#[actix_rt::test]
async fn a_text_request_is_signed_translated_exactly_and_booked_at_the_configured_prices() {
    let (fake, gw) = setup();
    dialect_b::text(&target(&gw, &fake)).await;
}

#[actix_rt::test]
async fn streamed_text_arrives_whole_with_usage_only_when_asked() {
    let (fake, gw) = setup();
    dialect_b::streams(&target(&gw, &fake)).await;
}

#[actix_rt::test]
async fn tool_results_keep_their_ids_and_tool_calls_come_back() {
    let (fake, gw) = setup();
    let want = json!({"content": "Checking.", "finish_reason": "tool_calls",
                      "tool_calls": [["get_weather", "{\"city\":\"Paris\"}"], ["get_time", "{}"]]});
    dialect_b::tools(&target(&gw, &fake), &tool_body("call_w1", "call_t1"), &want).await;
}

#[actix_rt::test]
async fn finish_reasons_map_to_openais() {
    let (fake, gw) = setup();
    let cases = [
        ("normal", false, "Hello from fake upstream", "stop"),
        ("normal", true, "Hello from fake upstream", "stop"),
        ("max-tokens", false, "Hello from fake", "length"),
        ("max-tokens", true, "Hello from fake", "length"),
    ];
    dialect_b::finishes(&target(&gw, &fake), &cases).await;
}

#[actix_rt::test]
async fn upstream_errors_keep_their_meaning() {
    let (fake, gw) = setup();
    // Bedrock sends no retry-after, and tollgate makes none up.
    let cases: [ErrorCase; 3] = [
        ("error-429", 429, "rate_limit_error", Some("rate_limit_exceeded"), None),
        ("error-400", 400, "invalid_request_error", None, None),
        ("context-too-long", 400, "invalid_request_error", Some("context_length_exceeded"), None),
    ];
    dialect_b::errors(&target(&gw, &fake), &cases).await;
}

#[actix_rt::test]
async fn broken_eventstreams_end_with_an_error_chunk() {
    let (fake, gw) = setup();
    // Bedrock reports usage only in its last event, so a broken stream leaves the cost unknown, and says so. An
    // exception the upstream sent itself is a failed call, which nobody bills.
    let broken = |mode, message| BrokenCase {
        mode,
        text: "Hello",
        code: Some("upstream_stream_broken"),
        message,
        outcome: "broken",
        books: Books::Nothing("cut_before_usage"),
    };
    let cases = [
        broken("corrupt", "eventstream message CRC mismatch"),
        broken("cut", "the stream ended in the middle of an eventstream message"),
        BrokenCase {
            mode: "throttle-stream",
            text: "Hello",
            code: None,
            message: "Too many tokens, please wait before trying again.",
            outcome: "failed",
            books: Books::Nothing("exact"),
        },
    ];
    dialect_b::broken_streams(&target(&gw, &fake), &cases).await;
    // An Anthropic caller's stream breaks in Anthropic's words.
    let r = within(messages(
        &gw,
        &json!({"model": "b-corrupt", "max_tokens": 50, "stream": true,
                                        "messages": [{"role": "user", "content": "hi"}]}),
    ))
    .await;
    let error = assert_messages_end_with_error(&r);
    assert_eq!(error["error"]["type"], "api_error");
    assert!(error["error"]["message"].as_str().is_some_and(|m| m.contains("CRC mismatch")), "{error}");
    assert_unbooked(&r, "broken", "cut_before_usage");
}

#[actix_rt::test]
async fn anthropic_callers_get_text_tool_calls_stop_reasons_and_usage() {
    let (fake, gw) = setup();
    // Anthropic's counts are Bedrock's: additive cache reads and writes.
    let usage = json!({"input_tokens": 11, "cache_creation_input_tokens": 3, "cache_read_input_tokens": 5,
                       "output_tokens": 7});
    let text = |t: &str| json!({"type": "text", "text": t});
    for (model, said, stop_reason) in
        [("b-normal", "Hello from fake upstream", "end_turn"), ("b-max-tokens", "Hello from fake", "max_tokens")]
    {
        let want = json!({"content": [text(said)], "stop_reason": stop_reason, "usage": usage});
        assert_messages(&gw, &hello_messages(model), &want).await;
    }
    let tool_use = |name: &str, input: Value| json!({"type": "tool_use", "name": name, "input": input});
    let content =
        [text("Checking."), tool_use("get_weather", json!({"city": "Paris"})), tool_use("get_time", json!({}))];
    let want = json!({"content": content, "stop_reason": "tool_use", "usage": usage});
    assert_messages(&gw, &tool_messages("b-tools"), &want).await;
    let mut sent = tool_body("toolu_w1", "toolu_t1");
    sent["system"] = json!([{"text": "You check weather."}]);
    sent["inferenceConfig"] = json!({"maxTokens": 300});
    let t = target(&gw, &fake);
    for stream in [false, true] {
        assert_eq!(t.received("tools", stream)["body"], sent, "stream {stream}");
    }
}

#[actix_rt::test]
async fn embeddings_through_titan_and_cohere_as_floats_or_base64() {
    let (fake, gw) = setup();
    let t = target(&gw, &fake);
    // The model id is one path segment: its `:` percent-encoded.
    let titan = format!("/model/{}/invoke", TITAN.replace(':', "%3A"));
    let sent = json!({"inputText": "hello world"});
    // Titan counts the input's tokens (the fake: one a word).
    embed_both_ways(&t, "b-titan", &["hello world"], &titan, &sent, Books::Exact(Tokens::prompt(2))).await;
    let inputs = ["hello world", "second text"];
    let sent = json!({"texts": inputs, "input_type": "search_document"});
    let cohere = format!("/model/{COHERE}/invoke");
    // Cohere says nothing of tokens in its body: a counted gap in the books, not $0.
    embed_both_ways(&t, "b-cohere", &inputs, &cohere, &sent, Books::Nothing("usage_missing")).await;

    // Titan embeds one text per call: two are refused before any call, naming `input`.
    fake.clear();
    let r = embeddings(&gw, &json!({"model": "b-titan", "input": ["a", "b"]})).await;
    assert_eq!((r.status, r.error_type()), (400, "invalid_request_error"), "{}", r.text);
    assert!(r.json["error"]["param"].as_str().is_some_and(|p| p.starts_with("input")), "{}", r.text);
    assert_eq!(fake.requests(), Vec::<Value>::new());
}
