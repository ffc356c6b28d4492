//! The Gemini API (`gemini/<model>`) behind OpenAI and Anthropic callers, over real HTTP against the fake Gemini
//! API: what the fake received (paths, `x-goog-api-key`, exact bodies), what the caller got (answers, finish
//! reasons, usage, errors, broken streams) and what the books say. The cases Vertex AI shares are in
//! `tollgate_tests::dialect_b::google`.

use serde_json::{json, Value};
use tollgate_tests::{
    dialect_b::{
        self, assert_messages, embed_both_ways, gateway, gemini_model,
        google::{self, method},
        hello_messages, tool_messages, Auth, Books, Target, GEMINI_KEY,
    },
    FakeUpstream, Gateway,
};

const EMBEDDING_MODEL: &str = "text-embedding-004";

/// A gateway with a `g-<mode>` deployment for each of the shared modes, and `g-embed`.
fn setup() -> (FakeUpstream, Gateway) {
    let fake = FakeUpstream::start();
    let mut entries: Vec<String> = google::MODES.iter().map(|m| gemini_model(&format!("g-{m}"), m, &fake)).collect();
    entries.push(gemini_model("g-embed", EMBEDDING_MODEL, &fake));
    let gw = gateway(&entries);
    (fake, gw)
}

fn target<'a>(gw: &'a Gateway, fake: &'a FakeUpstream) -> Target<'a> {
    let auth = Auth::Header { name: "x-goog-api-key", prefix: GEMINI_KEY.into(), not_sent: "authorization" };
    google::target(gw, fake, "g-", |mode, stream| format!("/v1beta/models/{}", method(mode, stream)), auth)
}

#[actix_rt::test]
async fn a_text_request_is_translated_exactly_and_booked_at_the_configured_prices() {
    let (fake, gw) = setup();
    dialect_b::text(&target(&gw, &fake)).await;
}

#[actix_rt::test]
async fn streamed_text_arrives_whole_with_usage_only_when_asked() {
    let (fake, gw) = setup();
    dialect_b::streams(&target(&gw, &fake)).await;
}

#[actix_rt::test]
async fn tool_results_are_named_by_their_call_and_tool_calls_come_back() {
    let (fake, gw) = setup();
    google::tools(&target(&gw, &fake)).await;
}

#[actix_rt::test]
async fn finish_reasons_map_to_openais() {
    let (fake, gw) = setup();
    dialect_b::finishes(&target(&gw, &fake), google::FINISHES).await;
}

#[actix_rt::test]
async fn upstream_errors_keep_their_meaning() {
    let (fake, gw) = setup();
    dialect_b::errors(&target(&gw, &fake), google::ERRORS).await;
}

#[actix_rt::test]
async fn broken_streams_end_with_an_error_chunk() {
    let (fake, gw) = setup();
    dialect_b::broken_streams(&target(&gw, &fake), google::BROKEN).await;
}

#[actix_rt::test]
async fn anthropic_callers_get_text_tool_calls_stop_reasons_and_usage() {
    let (fake, gw) = setup();
    // Anthropic's input count excludes cache reads: 21 prompt tokens, 8 of them cached.
    let usage = json!({"input_tokens": 13, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 8,
                       "output_tokens": 12});
    let texts = [("g-normal", "Hello from fake gemini", "end_turn"), ("g-max-tokens", "Hello from", "max_tokens")];
    for (model, text, stop_reason) in texts {
        let want = json!({"content": [{"type": "text", "text": text}], "stop_reason": stop_reason, "usage": usage});
        assert_messages(&gw, &hello_messages(model), &want).await;
    }
    let tool_use = |name: &str, input: Value| json!({"type": "tool_use", "name": name, "input": input});
    let content = [tool_use("get_weather", json!({"city": "Paris"})), tool_use("get_time", json!({}))];
    let want = json!({"content": content, "stop_reason": "tool_use", "usage": usage});
    assert_messages(&gw, &tool_messages("g-tools"), &want).await;
    // The finished round of the history as Gemini's turns, whole and streamed.
    let mut sent = google::tool_body();
    sent["systemInstruction"] = json!({"parts": [{"text": "You check weather."}]});
    sent["generationConfig"] = json!({"maxOutputTokens": 300});
    let t = target(&gw, &fake);
    for stream in [false, true] {
        assert_eq!(t.received("tools", stream)["body"], sent, "stream {stream}");
    }
}

#[actix_rt::test]
async fn embeddings_go_through_batch_embed_contents_as_floats_or_base64() {
    let (fake, gw) = setup();
    let inputs = ["hello world", "second text"];
    let sent = json!({"requests": inputs.map(|text| json!({"model": format!("models/{EMBEDDING_MODEL}"),
                                                           "content": {"parts": [{"text": text}]}}))});
    let path = format!("/v1beta/models/{EMBEDDING_MODEL}:batchEmbedContents");
    // Gemini reports no token count for embeddings: a counted gap in the books, not $0.
    embed_both_ways(&target(&gw, &fake), "g-embed", &inputs, &path, &sent, Books::Nothing("usage_missing")).await;
}
