//! The shapes the per-dialect tests (`tests/dialect_anthropic.rs`, `dialect_cohere.rs`, `dialect_azure.rs`) share:
//! a priced deployment, an OpenAI chat call, a streamed reply read back into what a client would assemble (text,
//! tool calls, finish reason, usage chunk, error chunk), and the settlement log line checked against the fake's
//! own usage and the configured prices.

use serde_json::{json, Value};

use crate::{logs, post, sse_data, FakeUpstream, Gateway, Reply, MASTER_KEY};

/// USD per prompt token of every [`deployment`], in nano-dollars (`input_cost_per_token: 0.000001`).
const INPUT_NANOS: u64 = 1_000;
/// USD per completion token of every [`deployment`], in nano-dollars (`output_cost_per_token: 0.000002`).
const OUTPUT_NANOS: u64 = 2_000;

/// A `model_list` entry for public model `name` at `litellm_params.model: <model>` (`anthropic/normal`), with
/// `api_base`, a key and exact prices.
pub fn deployment(name: &str, model: &str, api_base: &str) -> String {
    format!(
        "  - model_name: {name}\n    litellm_params:\n      model: {model}\n      api_base: {api_base}\n      \
         api_key: {UPSTREAM_KEY}\n      input_cost_per_token: 0.000001\n      output_cost_per_token: 0.000002\n"
    )
}

/// The key every [`deployment`] sends upstream.
pub const UPSTREAM_KEY: &str = "sk-fake-upstream-key-123456";

/// The public name of `provider`'s deployment of the fake's `mode` in [`gateway`]: `<provider>-<mode>`.
pub fn model(provider: &str, mode: &str) -> String {
    format!("{provider}-{mode}")
}

/// A gateway with one priced deployment per mode: [`model`]`(provider, mode)` is `<provider>/<mode>` at the fake.
pub fn gateway(fake: &FakeUpstream, provider: &str, modes: &[&str]) -> Gateway {
    let entries: String =
        modes.iter().map(|m| deployment(&model(provider, m), &format!("{provider}/{m}"), &fake.url)).collect();
    Gateway::with_models(&entries)
}

/// The last request the fake received.
pub fn last_request(fake: &FakeUpstream) -> Value {
    fake.requests().into_iter().next_back().unwrap_or_default()
}

/// `POST /v1/chat/completions` with the master key.
pub async fn chat(base: &str, body: &Value) -> Reply {
    post(base, "/v1/chat/completions", Some(MASTER_KEY), body.to_string()).await
}

/// `body` with `more`'s fields added (or replaced).
pub fn with(body: &Value, more: Value) -> Value {
    let mut out = body.clone();
    if let (Some(obj), Value::Object(more)) = (out.as_object_mut(), more) {
        obj.extend(more);
    }
    out
}

/// `body` as a stream, with `stream_options.include_usage` as given.
pub fn streamed(body: &Value, include_usage: bool) -> Value {
    with(body, json!({"stream": true, "stream_options": {"include_usage": include_usage}}))
}

/// The request every dialect's golden test sends: a system and a user message, temperature, max_tokens, stop.
pub fn golden_request(model: &str) -> Value {
    json!({
        "model": model,
        "messages": [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Weather?"}],
        "temperature": 0.5,
        "max_tokens": 100,
        "stop": "END",
    })
}

/// A conversation with a tool the model called before, the tool's result, and the next user turn.
pub fn tools_request(model: &str) -> Value {
    json!({
        "model": model,
        "messages": [
            {"role": "user", "content": "Weather in Rome?"},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "call_rome", "type": "function",
                "function": {"name": "get_weather", "arguments": "{\"city\":\"Rome\"}"}}]},
            {"role": "tool", "tool_call_id": "call_rome", "content": "21C"},
            {"role": "user", "content": "And Paris?"}
        ],
        "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Weather by city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}],
    })
}

/// What an OpenAI client assembles from a streamed reply.
#[derive(Debug, Default)]
pub struct Streamed {
    /// `delta.content` of every chunk, joined.
    pub text: String,
    /// Tool calls accumulated by `index`: `{"id","type","function":{"name","arguments"}}`, arguments joined.
    pub tool_calls: Vec<Value>,
    /// The last non-null `finish_reason`.
    pub finish_reason: Option<String>,
    /// Chunks with a non-null `usage` object.
    pub usage_chunks: Vec<Value>,
    /// The `error` object of an error chunk (`data: {"error":{..}}`), if one came.
    pub error: Option<Value>,
    /// The last `data:` payload (`[DONE]` for a stream that ended as OpenAI's do).
    pub last: String,
}

/// Reads an OpenAI SSE body the way a client does.
pub fn read_stream(text: &str) -> Streamed {
    let mut out = Streamed::default();
    for data in sse_data(text) {
        out.last = data.clone();
        let Ok(chunk) = serde_json::from_str::<Value>(&data) else { continue };
        if chunk.get("error").is_some() {
            out.error = Some(chunk["error"].clone());
        }
        if chunk["usage"].is_object() {
            out.usage_chunks.push(chunk["usage"].clone());
        }
        let choice = &chunk["choices"][0];
        if let Some(reason) = choice["finish_reason"].as_str() {
            out.finish_reason = Some(reason.to_owned());
        }
        out.text.push_str(choice["delta"]["content"].as_str().unwrap_or(""));
        for call in choice["delta"]["tool_calls"].as_array().into_iter().flatten() {
            let index = call["index"].as_u64().unwrap_or(u64::MAX) as usize;
            if out.tool_calls.len() <= index {
                out.tool_calls.resize(index + 1, json!({"function": {"arguments": ""}}));
            }
            let acc = &mut out.tool_calls[index];
            for key in ["id", "type"] {
                if let Some(v) = call.get(key).filter(|v| !v.is_null()) {
                    acc[key] = v.clone();
                }
            }
            if let Some(name) = call["function"]["name"].as_str() {
                acc["function"]["name"] = json!(name);
            }
            let args = format!(
                "{}{}",
                acc["function"]["arguments"].as_str().unwrap_or(""),
                call["function"]["arguments"].as_str().unwrap_or("")
            );
            acc["function"]["arguments"] = json!(args);
        }
    }
    out
}

/// The [`Call`]s of OpenAI tool calls, for comparing arguments by meaning.
pub fn calls(tool_calls: &Value) -> Vec<Call> {
    tool_calls
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            let args = c["function"]["arguments"].as_str().unwrap_or("<not a string>");
            (
                c["id"].as_str().unwrap_or("<no id>").to_owned(),
                c["function"]["name"].as_str().unwrap_or("<no name>").to_owned(),
                serde_json::from_str(args).unwrap_or_else(|_| json!(format!("<not JSON: {args:?}>"))),
            )
        })
        .collect()
}

/// A call's token counts as the settlement books them (OpenAI's inclusive form).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tokens {
    pub prompt: u64,
    pub completion: u64,
    pub cache_read: u64,
    pub cache_write: u64,
    pub reasoning: u64,
}

impl Tokens {
    pub const NONE: Tokens = Tokens { prompt: 0, completion: 0, cache_read: 0, cache_write: 0, reasoning: 0 };

    /// Only prompt tokens (embeddings).
    pub fn prompt(prompt: u64) -> Tokens {
        Tokens { prompt, ..Tokens::NONE }
    }

    /// `cost_usd` as the log line prints it: the prices of [`deployment`] times these counts. With only these two
    /// prices configured, cache tokens cost the input price and reasoning tokens the output price.
    pub fn cost(&self) -> String {
        let nanos = self.prompt * INPUT_NANOS + self.completion * OUTPUT_NANOS;
        format!("{}", nanos as f64 / 1e9)
    }
}

/// The settlement log line of `reply`'s call (by its `x-tollgate-request-id`).
pub fn settlement(reply: &Reply) -> Value {
    let id = reply.header("x-tollgate-request-id").unwrap_or_default();
    assert!(!id.is_empty(), "no request id: {}", reply.text);
    logs::finished_call("request_id", id)
}

/// Asserts the call settled as `outcome` with exactly `want` and its cost, accounted `exact`.
pub fn assert_settled(reply: &Reply, outcome: &str, want: Tokens) {
    assert_settled_as(reply, want, outcome, "exact", &want.cost());
}

/// Asserts the call settled as `outcome` with exactly `want`, its cost accounted as `accounting` (`exact`, or a
/// gap's cause) and logged as `cost`.
pub fn assert_settled_as(reply: &Reply, want: Tokens, outcome: &str, accounting: &str, cost: &str) {
    let line = settlement(reply);
    let got = Tokens {
        prompt: line["prompt_tokens"].as_u64().unwrap_or(u64::MAX),
        completion: line["completion_tokens"].as_u64().unwrap_or(u64::MAX),
        cache_read: line["cache_read_tokens"].as_u64().unwrap_or(u64::MAX),
        cache_write: line["cache_write_tokens"].as_u64().unwrap_or(u64::MAX),
        reasoning: line["reasoning_tokens"].as_u64().unwrap_or(u64::MAX),
    };
    assert_eq!(got, want, "{line}");
    let booked = (line["outcome"].as_str(), line["accounting"].as_str(), line["cost_usd"].as_str());
    assert_eq!(booked, (Some(outcome), Some(accounting), Some(cost)), "{line}");
}

/// Asserts an OpenAI client's stream ended with an error chunk (no `[DONE]`) and the call was logged `broken`.
pub fn assert_broken_stream(reply: &Reply) {
    assert_eq!(reply.status, 200, "{}", reply.text);
    let streamed = read_stream(&reply.text);
    let error = streamed.error.unwrap_or_default();
    assert_eq!(error["code"], "upstream_stream_broken", "{}", reply.text);
    assert!(error["message"].as_str().is_some_and(|m| m.contains("broke mid-response")), "{}", reply.text);
    assert!(streamed.last.starts_with("{\"error\""), "the error chunk is the last: {}", reply.text);
    assert!(!reply.text.contains("[DONE]"), "{}", reply.text);
    assert_broken_settlement(reply);
}

/// Asserts the call was logged `broken`, its cost an open gap (the upstream may bill for what it generated),
/// never a silent $0.
pub fn assert_broken_settlement(reply: &Reply) {
    let line = settlement(reply);
    let fields = (line["outcome"].as_str(), line["accounting"].as_str(), line["cost_usd"].as_str());
    assert_eq!(fields, (Some("broken"), Some("cut_before_usage"), Some("unknown")), "{line}");
}

/// Asserts `reply` is OpenAI's error envelope with this status, `code` and `retry-after`.
pub fn assert_openai_error(reply: &Reply, status: u16, code: Option<&str>, retry_after: Option<&str>) {
    assert_eq!(reply.status, status, "{}", reply.text);
    let error = &reply.json["error"];
    let mut keys: Vec<&str> = error.as_object().map(|o| o.keys().map(String::as_str).collect()).unwrap_or_default();
    keys.sort_unstable();
    assert_eq!(keys, ["code", "message", "param", "type"], "{}", reply.text);
    assert_eq!(error["code"], json!(code), "{}", reply.text);
    assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()), "{}", reply.text);
    assert_eq!(reply.header("retry-after"), retry_after, "{}", reply.text);
}

/// `(prompt_tokens, completion_tokens, total_tokens, prompt_tokens_details.cached_tokens)` of an OpenAI usage.
pub fn usage_numbers(usage: &Value) -> UsageNumbers {
    (
        usage["prompt_tokens"].as_u64(),
        usage["completion_tokens"].as_u64(),
        usage["total_tokens"].as_u64(),
        usage["prompt_tokens_details"]["cached_tokens"].as_u64(),
    )
}

/// The vectors of an OpenAI embeddings list as `f32`s, whether sent as floats or as base64 (little-endian `f32`s).
pub fn vectors(list: &Value) -> Vec<Vec<f32>> {
    use base64::Engine;
    let vector = |embedding: &Value| match embedding {
        Value::String(b64) => base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap_or_default()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        other => other.as_array().into_iter().flatten().map(|x| x.as_f64().unwrap_or(f64::NAN) as f32).collect(),
    };
    list["data"].as_array().into_iter().flatten().map(|item| vector(&item["embedding"])).collect()
}

/// `(prompt, completion, total, cached)` of an OpenAI usage, see [`usage_numbers`].
pub type UsageNumbers = (Option<u64>, Option<u64>, Option<u64>, Option<u64>);

/// Streams [`golden_request`] to `model` without and with `include_usage`: the text arrives whole, the stream
/// ends with `finish_reason: stop` and `[DONE]`, the usage chunk (equal to `usage`) comes only when asked, and the
/// books hold `tokens` either way.
pub async fn assert_text_streams(base: &str, model: &str, text: &str, usage: UsageNumbers, tokens: Tokens) {
    for include_usage in [false, true] {
        let r = chat(base, &streamed(&golden_request(model), include_usage)).await;
        assert_eq!((r.status, r.header("content-type")), (200, Some("text/event-stream")), "{}", r.text);
        let s = read_stream(&r.text);
        assert_eq!(s.text, text, "{}", r.text);
        assert_eq!((s.finish_reason.as_deref(), s.last.as_str()), (Some("stop"), "[DONE]"), "{}", r.text);
        let seen: Vec<_> = s.usage_chunks.iter().map(usage_numbers).collect();
        let want = if include_usage { vec![usage] } else { vec![] };
        assert_eq!(seen, want, "include_usage {include_usage}: {}", r.text);
        assert_settled(&r, "completed", tokens);
    }
}

/// Asserts `model`'s `finish_reason` is `want`, whole and streamed; returns both replies.
pub async fn assert_finish_reason(base: &str, model: &str, want: &str) -> [Reply; 2] {
    let whole = chat(base, &golden_request(model)).await;
    assert_eq!(whole.json["choices"][0]["finish_reason"], want, "{model}: {}", whole.text);
    let stream = chat(base, &streamed(&golden_request(model), false)).await;
    assert_eq!(read_stream(&stream.text).finish_reason.as_deref(), Some(want), "{model}: {}", stream.text);
    [whole, stream]
}

/// One upstream error mode and what the OpenAI caller must get: `(mode, status, error.type, error.code,
/// retry-after)`.
pub type ErrorCase<'a> = (&'a str, u16, &'a str, Option<&'a str>, Option<&'a str>);

/// Calls each error mode of `provider`'s [`gateway`] and checks the OpenAI error the caller got.
pub async fn assert_errors(base: &str, provider: &str, cases: &[ErrorCase<'_>]) {
    for (mode, status, kind, code, retry_after) in cases {
        let r = chat(base, &golden_request(&model(provider, mode))).await;
        assert_openai_error(&r, *status, *code, *retry_after);
        assert_eq!(r.error_type(), *kind, "{mode}");
    }
}

/// The fakes' modes that break a stream after its first text piece ("Hello"): the connection closes
/// mid-stream (`cut`), or in the middle of an event's JSON (`cut-json`).
pub const BROKEN_MODES: [&str; 2] = ["cut", "cut-json"];

/// Streams each of [`BROKEN_MODES`] of `provider`'s [`gateway`]: "Hello" arrives, then an error chunk ends the
/// stream (no `[DONE]`), and the call is logged broken.
pub async fn assert_broken_streams(base: &str, provider: &str) {
    for mode in BROKEN_MODES {
        let r = chat(base, &streamed(&golden_request(&model(provider, mode)), true)).await;
        assert_broken_stream(&r);
        assert_eq!(read_stream(&r.text).text, "Hello", "{mode}: what arrived before the break is delivered");
    }
}

/// A tool call as compared: `(id, name, arguments as JSON)`.
pub type Call = (String, String, Value);

/// `(id, name, arguments)` as a [`Call`].
pub fn call(id: &str, name: &str, arguments: Value) -> Call {
    (id.to_owned(), name.to_owned(), arguments)
}

/// Sends `request` whole and streamed: both replies carry exactly `want` (typed `function`; streamed ones
/// assembled by index as a client does) and finish with `tool_calls`. Returns both replies.
pub async fn assert_tool_calls(base: &str, request: &Value, want: &[Call]) -> [Reply; 2] {
    let whole = chat(base, request).await;
    assert_eq!(whole.status, 200, "{}", whole.text);
    let message = &whole.json["choices"][0]["message"];
    assert_eq!(calls(&message["tool_calls"]), want, "{}", whole.text);
    assert!(message["tool_calls"].as_array().into_iter().flatten().all(|c| c["type"] == "function"));
    assert_eq!(whole.json["choices"][0]["finish_reason"], "tool_calls", "{}", whole.text);

    let stream = chat(base, &streamed(request, false)).await;
    let s = read_stream(&stream.text);
    assert_eq!(calls(&Value::Array(s.tool_calls.clone())), want, "{}", stream.text);
    assert!(s.tool_calls.iter().all(|c| c["type"] == "function"), "{:?}", s.tool_calls);
    assert_eq!((s.finish_reason.as_deref(), s.last.as_str()), (Some("tool_calls"), "[DONE]"), "{}", stream.text);
    [whole, stream]
}
