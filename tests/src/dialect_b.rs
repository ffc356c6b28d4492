//! Shared by the dialect tests of Gemini, Vertex AI and Bedrock (`tests/tests/dialect_{gemini,vertex,bedrock}.rs`):
//! deployments pointing at the fakes of `tollgate-fakes`, the requests the tests send, and the checks every file
//! repeats (what the caller's stream says, what the settlement line books, what an embedding decodes to).
//!
//! Prices are per deployment ([`PRICES`]), so every call is priced exactly and `cost_usd` can be checked against
//! [`Tokens::cost`].

use base64::{engine::general_purpose::STANDARD, Engine as _};
use serde_json::{json, Value};
use tollgate_fakes::bedrock::sigv4;

pub mod google;

use crate::{logs, post, post_messages, sse_data, sse_events, FakeUpstream, Gateway, Reply, MASTER_KEY};

/// Per-token prices of every deployment made here (USD).
pub const INPUT_PRICE: f64 = 0.000_001;
pub const OUTPUT_PRICE: f64 = 0.000_002;
const PRICES: &str = "      input_cost_per_token: 0.000001\n      output_cost_per_token: 0.000002\n";

/// The Vertex AI project and location of [`vertex_model`] deployments.
pub const VERTEX_PROJECT: &str = "proj-test";
pub const VERTEX_LOCATION: &str = "us-central1";
/// The service account of [`vertex_model`] deployments.
pub const VERTEX_CLIENT_EMAIL: &str = "gateway@proj-test.iam.gserviceaccount.com";
/// A test-only RSA key (it guards nothing), the one the server's own Vertex tests sign with.
const TEST_KEY: &str = include_str!("../../server/src/providers/gemini/test_key.pem");

/// The Gemini API key of [`gemini_model`] deployments.
pub const GEMINI_KEY: &str = "AIza-fake-gemini-key-123";

/// A `model_list` entry: `name` served by `gemini/<mode>` at the fake's Gemini API.
pub fn gemini_model(name: &str, mode: &str, fake: &FakeUpstream) -> String {
    entry(name, &format!("gemini/{mode}"), &format!("{}/v1beta", fake.url), &format!("      api_key: {GEMINI_KEY}\n"))
}

/// A `model_list` entry: `name` served by `vertex_ai/<mode>` at the fake, with service-account credentials whose
/// `token_uri` is `token_uri`.
pub fn vertex_model(name: &str, mode: &str, fake: &FakeUpstream, token_uri: &str) -> String {
    let credentials = json!({
        "type": "service_account",
        "project_id": "proj-from-file",
        "private_key_id": "kid-1",
        "private_key": TEST_KEY,
        "client_email": VERTEX_CLIENT_EMAIL,
        "client_id": "123",
        "token_uri": token_uri,
    });
    // A JSON string is a valid YAML double-quoted scalar.
    let credentials = Value::String(credentials.to_string());
    let params = format!(
        "      vertex_project: {VERTEX_PROJECT}\n      vertex_location: {VERTEX_LOCATION}\n      vertex_credentials: {credentials}\n"
    );
    entry(name, &format!("vertex_ai/{mode}"), &fake.url, &params)
}

/// A `model_list` entry: `name` served by `bedrock/<model_id>` at the fake, signed with the access key the fake
/// verifies signatures of.
pub fn bedrock_model(name: &str, model_id: &str, fake: &FakeUpstream) -> String {
    let params = format!(
        "      aws_access_key_id: {}\n      aws_secret_access_key: {}\n      aws_region_name: us-east-1\n",
        sigv4::ACCESS_KEY_ID,
        sigv4::SECRET_ACCESS_KEY
    );
    entry(name, &format!("bedrock/{model_id}"), &fake.url, &params)
}

fn entry(name: &str, model: &str, api_base: &str, params: &str) -> String {
    format!(
        "  - model_name: {name}\n    litellm_params:\n      model: {model}\n      api_base: {api_base}\n{params}{PRICES}"
    )
}

/// A gateway serving these `model_list` entries. Failures never put a deployment in cooldown here: the error
/// and broken-stream cases call the same deployment several times.
pub fn gateway(entries: &[String]) -> Gateway {
    Gateway::start(&format!(
        "model_list:\n{}router_settings:\n  allowed_fails: 1000\ngeneral_settings:\n  master_key: {MASTER_KEY}\n",
        entries.concat()
    ))
}

/// A chat request with every field the golden request checks cover: a system message, a user message,
/// `temperature`, `max_tokens` and `stop`.
pub fn golden_chat(model: &str) -> Value {
    json!({
        "model": model,
        "messages": [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "Weather in Paris?"}],
        "temperature": 0.5,
        "max_tokens": 64,
        "stop": ["END"],
    })
}

/// A chat request with two tools and a finished round of both: the calls (`call_w1` to `get_weather`,
/// `call_t1` to `get_time`) and their results in the other order, so a result's function name can only come
/// from its call id.
pub fn tool_chat(model: &str) -> Value {
    json!({
        "model": model,
        "messages": [
            {"role": "user", "content": "Weather in Rome, and the time?"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_w1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Rome\"}"}},
                {"id": "call_t1", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "call_t1", "content": "12:00"},
            {"role": "tool", "tool_call_id": "call_w1", "content": "21C"},
        ],
        "tools": [
            {"type": "function", "function": {"name": "get_weather", "description": "Weather by city",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}},
            {"type": "function", "function": {"name": "get_time", "description": "Current time",
                "parameters": {"type": "object", "properties": {}}}},
        ],
    })
}

/// The same conversation as [`tool_chat`] from an Anthropic caller (`toolu_w1`, `toolu_t1`).
pub fn tool_messages(model: &str) -> Value {
    json!({
        "model": model,
        "max_tokens": 300,
        "system": "You check weather.",
        "tools": [
            {"name": "get_weather", "description": "Weather by city",
             "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}},
            {"name": "get_time", "description": "Current time", "input_schema": {"type": "object", "properties": {}}},
        ],
        "messages": [
            {"role": "user", "content": "Weather in Rome, and the time?"},
            {"role": "assistant", "content": [
                {"type": "tool_use", "id": "toolu_w1", "name": "get_weather", "input": {"city": "Rome"}},
                {"type": "tool_use", "id": "toolu_t1", "name": "get_time", "input": {}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_t1", "content": "12:00"},
                {"type": "tool_result", "tool_use_id": "toolu_w1", "content": "21C"}]},
        ],
    })
}

/// A simple Anthropic Messages request.
pub fn hello_messages(model: &str) -> Value {
    json!({"model": model, "max_tokens": 256, "messages": [{"role": "user", "content": "hi there"}]})
}

/// `body` with `stream: true` (and `stream_options.include_usage` when `include_usage`).
pub fn streamed(body: &Value, include_usage: bool) -> Value {
    let mut body = body.clone();
    body["stream"] = json!(true);
    if include_usage {
        body["stream_options"] = json!({"include_usage": true});
    }
    body
}

/// `POST /v1/chat/completions`.
pub async fn chat(gw: &Gateway, body: &Value) -> Reply {
    post(&gw.url, "/v1/chat/completions", Some(MASTER_KEY), body.to_string()).await
}

/// `POST /v1/messages` as the `anthropic` SDK sends it.
pub async fn messages(gw: &Gateway, body: &Value) -> Reply {
    post_messages(&gw.url, body.to_string()).await
}

/// `POST /v1/embeddings`.
pub async fn embeddings(gw: &Gateway, body: &Value) -> Reply {
    post(&gw.url, "/v1/embeddings", Some(MASTER_KEY), body.to_string()).await
}

/// The one request the fake received at `path` (query included); fails unless there is exactly one.
pub fn received(fake: &FakeUpstream, path: &str) -> Value {
    let mut found: Vec<Value> = fake.requests().into_iter().filter(|r| r["path"] == path).collect();
    let all: Vec<Value> = fake.requests().iter().map(|r| r["path"].clone()).collect();
    assert_eq!(found.len(), 1, "requests at {path}; all paths: {all:?}");
    found.remove(0)
}

/// Awaits `call`, failing the test if it takes longer than 10 s: a broken upstream stream must end the caller's
/// stream, never leave it hanging.
pub async fn within<T>(call: impl std::future::Future<Output = T>) -> T {
    actix_rt::time::timeout(std::time::Duration::from_secs(10), call).await.expect("the response ended in time")
}

/// The JSON chunks of an OpenAI stream (`[DONE]` left out).
pub fn chunks(r: &Reply) -> Vec<Value> {
    sse_data(&r.text).iter().filter(|d| *d != "[DONE]").map(|d| serde_json::from_str(d).unwrap_or(Value::Null)).collect()
}

fn is_stream(r: &Reply) -> bool {
    r.header("content-type").is_some_and(|t| t.starts_with("text/event-stream"))
}

/// What an OpenAI chat reply says, whole or streamed alike: `{"content", "tool_calls": [[name, arguments]],
/// "finish_reason"}`, with the content deltas and the argument fragments of a stream joined. A whole reply's
/// `null` content reads as `""`.
pub fn answer(r: &Reply) -> Value {
    assert_eq!(r.status, 200, "{}", r.text);
    if !is_stream(r) {
        let choice = &r.json["choices"][0];
        let calls = choice["message"]["tool_calls"].as_array().cloned().unwrap_or_default();
        let calls: Vec<Value> = calls.iter().map(|c| json!([c["function"]["name"], c["function"]["arguments"]])).collect();
        let content = choice["message"]["content"].as_str().unwrap_or_default();
        return json!({"content": content, "tool_calls": calls, "finish_reason": choice["finish_reason"]});
    }
    let mut content = String::new();
    let mut calls: Vec<(String, String)> = Vec::new();
    let mut finish = Value::Null;
    for chunk in chunks(r) {
        let choice = &chunk["choices"][0];
        content.push_str(choice["delta"]["content"].as_str().unwrap_or_default());
        for call in choice["delta"]["tool_calls"].as_array().into_iter().flatten() {
            let index = call["index"].as_u64().and_then(|i| usize::try_from(i).ok()).unwrap_or(usize::MAX);
            if index == calls.len() {
                calls.push(Default::default());
            }
            let Some((name, args)) = calls.get_mut(index) else { panic!("tool call {index} out of order: {}", r.text) };
            name.push_str(call["function"]["name"].as_str().unwrap_or_default());
            args.push_str(call["function"]["arguments"].as_str().unwrap_or_default());
        }
        if !choice["finish_reason"].is_null() {
            finish = choice["finish_reason"].clone();
        }
    }
    json!({"content": content, "tool_calls": calls, "finish_reason": finish})
}

/// The tool call ids of a whole OpenAI reply.
pub fn tool_call_ids(r: &Reply) -> Vec<String> {
    let calls = r.json["choices"][0]["message"]["tool_calls"].as_array().cloned().unwrap_or_default();
    calls.iter().map(|c| c["id"].as_str().unwrap_or_default().to_owned()).collect()
}

/// The usage objects of an OpenAI stream's chunks (at most one is expected), or of a whole reply.
pub fn usages(r: &Reply) -> Vec<Value> {
    if !is_stream(r) {
        return vec![r.json["usage"].clone()];
    }
    chunks(r).into_iter().filter_map(|c| c.get("usage").filter(|u| !u.is_null()).cloned()).collect()
}

/// What an Anthropic Messages reply says, whole or streamed alike: `{"content": [blocks], "stop_reason",
/// "usage"}`, a stream's blocks assembled from their deltas. Tool ids are left out (Gemini's are made per reply);
/// each must be present.
pub fn message(r: &Reply) -> Value {
    assert_eq!(r.status, 200, "{}", r.text);
    let mut content: Vec<Value>;
    let (stop_reason, usage);
    if is_stream(r) {
        content = Vec::new();
        let mut partial: Vec<String> = Vec::new();
        let mut delta = Value::Null;
        for (name, data) in sse_events(&r.text) {
            match name.as_str() {
                "content_block_start" => {
                    content.push(data["content_block"].clone());
                    partial.push(String::new());
                }
                "content_block_delta" => {
                    let (Some(block), Some(json)) = (content.last_mut(), partial.last_mut()) else { continue };
                    match data["delta"]["type"].as_str() {
                        Some("text_delta") => {
                            let text = format!("{}{}", block["text"].as_str().unwrap_or_default(), data["delta"]["text"].as_str().unwrap_or_default());
                            block["text"] = json!(text);
                        }
                        Some("input_json_delta") => json.push_str(data["delta"]["partial_json"].as_str().unwrap_or_default()),
                        _ => {}
                    }
                }
                "message_delta" => delta = data,
                _ => {}
            }
        }
        for (block, json) in content.iter_mut().zip(partial) {
            if !json.is_empty() {
                block["input"] = serde_json::from_str(&json).unwrap_or(Value::Null);
            }
        }
        (stop_reason, usage) = (delta["delta"]["stop_reason"].clone(), delta["usage"].clone());
    } else {
        content = r.json["content"].as_array().cloned().unwrap_or_default();
        (stop_reason, usage) = (r.json["stop_reason"].clone(), r.json["usage"].clone());
    }
    for block in content.iter_mut().filter(|b| b["type"] == "tool_use") {
        let id = block.as_object_mut().and_then(|b| b.remove("id"));
        assert!(id.as_ref().and_then(Value::as_str).is_some_and(|id| !id.is_empty()), "tool_use without an id: {}", r.text);
    }
    json!({"content": content, "stop_reason": stop_reason, "usage": usage})
}

/// An Anthropic caller's request, whole and then streamed: both replies say `want` (see [`message`]).
pub async fn assert_messages(gw: &Gateway, body: &Value, want: &Value) {
    for stream in [false, true] {
        let mut body = body.clone();
        body["stream"] = json!(stream);
        let r = messages(gw, &body).await;
        assert_eq!(&message(&r), want, "stream {stream}: {}", r.text);
    }
}

/// An OpenAI stream that ended as a stream must not: its last event is an error chunk, and there is no `[DONE]`.
/// Returns the error object.
pub fn assert_ends_with_error(r: &Reply) -> Value {
    assert_eq!(r.status, 200, "{}", r.text);
    let data = sse_data(&r.text);
    assert!(!data.iter().any(|d| d == "[DONE]"), "no [DONE] after a broken stream: {}", r.text);
    let last: Value = data.last().and_then(|d| serde_json::from_str(d).ok()).unwrap_or_default();
    assert!(last["error"]["message"].is_string(), "the last event is an error: {}", r.text);
    last["error"].clone()
}

/// An Anthropic stream that ended as a stream must not: `event: error` last, no `message_stop`. Returns the
/// error event's data.
pub fn assert_messages_end_with_error(r: &Reply) -> Value {
    assert_eq!(r.status, 200, "{}", r.text);
    let events = sse_events(&r.text);
    assert!(!events.iter().any(|(name, _)| name == "message_stop"), "{}", r.text);
    let (name, data) = events.last().cloned().unwrap_or_default();
    assert_eq!((name.as_str(), data["type"].as_str()), ("error", Some("error")), "{}", r.text);
    data
}

/// Token counts as the settlement books them (OpenAI's inclusive form).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tokens {
    pub prompt: u64,
    pub completion: u64,
    pub cache_read: u64,
    pub cache_write: u64,
    pub reasoning: u64,
}

impl Tokens {
    /// The cost at [`INPUT_PRICE`] and [`OUTPUT_PRICE`], as the log line prints it. With only these two prices
    /// configured, cache tokens cost the input price and reasoning tokens the output price.
    pub fn cost(&self) -> String {
        let usd = self.prompt as f64 * INPUT_PRICE + self.completion as f64 * OUTPUT_PRICE;
        let nanos = (usd * 1e9).round();
        format!("{}", nanos / 1e9)
    }

    /// This usage in OpenAI's `usage` object.
    pub fn openai_usage(&self) -> Value {
        json!({
            "prompt_tokens": self.prompt,
            "completion_tokens": self.completion,
            "total_tokens": self.prompt + self.completion,
        })
    }
}

/// The settlement line of the call that answered `r`.
pub fn settlement(r: &Reply) -> Value {
    let id = r.header("x-tollgate-request-id").unwrap_or_default().to_owned();
    assert!(!id.is_empty(), "no request id: {}", r.text);
    logs::finished_call("request_id", &id)
}

/// The settlement of `r` booked `tokens` at exactly the configured prices, and ended as `outcome`.
pub fn assert_booked(r: &Reply, tokens: Tokens, outcome: &str) {
    let line = settlement(r);
    let got = Tokens {
        prompt: line["prompt_tokens"].as_u64().unwrap_or(u64::MAX),
        completion: line["completion_tokens"].as_u64().unwrap_or(u64::MAX),
        cache_read: line["cache_read_tokens"].as_u64().unwrap_or(u64::MAX),
        cache_write: line["cache_write_tokens"].as_u64().unwrap_or(u64::MAX),
        reasoning: line["reasoning_tokens"].as_u64().unwrap_or(u64::MAX),
    };
    assert_eq!(got, tokens, "{line}");
    let booked = (line["outcome"].as_str(), line["accounting"].as_str(), line["cost_usd"].as_str());
    assert_eq!(booked, (Some(outcome), Some("exact"), Some(tokens.cost().as_str())), "{line}");
}

/// The vectors of an OpenAI embeddings response, floats or base64 (little-endian f32s) alike.
pub fn vectors(r: &Reply) -> Vec<Vec<f32>> {
    let data = r.json["data"].as_array().cloned().unwrap_or_default();
    data.iter()
        .map(|d| match &d["embedding"] {
            Value::String(b64) => {
                let bytes = STANDARD.decode(b64).unwrap_or_default();
                bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
            }
            floats => floats.as_array().into_iter().flatten().map(|x| x.as_f64().unwrap_or(f64::NAN) as f32).collect(),
        })
        .collect()
}

/// The vector the fakes give `text` (every fake derives it the same way), as f32s.
pub fn fake_vector(text: &str) -> Vec<f32> {
    tollgate_fakes::openai::embed(text).iter().map(|x| *x as f32).collect()
}
