//! `POST /v1/completions` (OpenAI's legacy text completions) served by any model: the built-in mock, a
//! `text-completion-openai/` deployment (the caller's bytes spliced to the fake's `/v1/completions`), and an
//! Anthropic deployment (the prompt as a chat, the answer as a `text_completion`). Chat callers reach
//! `text-completion-openai/` deployments too, their messages flattened into a prompt. What the fake received, what
//! the client got, streamed and not, and the tokens and cost in the call's log line are all checked.

use serde_json::{json, Value};
use tollgate_tests::{logs, post, post_messages, sse_data, FakeUpstream, Gateway, Reply, MASTER_KEY};

const PRICES: &str = "      input_cost_per_token: 0.000001\n      output_cost_per_token: 0.000002\n";
const UPSTREAM_KEY: &str = "sk-fake-upstream-key-123456";

/// A `model_list` entry for `model` (`provider/mode`) at `api_base`, priced, with `extra` litellm_params lines.
fn deployment(name: &str, model: &str, api_base: &str, extra: &str) -> String {
    format!(
        "  - model_name: {name}\n    litellm_params:\n      model: {model}\n      api_base: {api_base}\n      api_key: {UPSTREAM_KEY}\n{PRICES}{extra}"
    )
}

fn completion_body(model: &str, extra: Value) -> Value {
    let mut body = json!({"model": model, "prompt": "Say hi"});
    if let (Some(obj), Value::Object(more)) = (body.as_object_mut(), extra) {
        obj.extend(more);
    }
    body
}

async fn complete(gw: &Gateway, body: &Value) -> Reply {
    post(&gw.url, "/v1/completions", Some(MASTER_KEY), body.to_string()).await
}

/// The settlement log line of the call that answered `r`.
fn log_line(r: &Reply) -> Value {
    logs::finished_call("request_id", r.header("x-tollgate-request-id").unwrap_or_default())
}

/// (prompt, completion, cache read, cache write) tokens, `accounting` and `cost_usd` of a call's log line.
fn books(r: &Reply) -> (Vec<u64>, String, String) {
    let line = log_line(r);
    let tokens = ["prompt_tokens", "completion_tokens", "cache_read_tokens", "cache_write_tokens"]
        .iter()
        .map(|f| line[*f].as_u64().unwrap_or(u64::MAX))
        .collect();
    let text = |f: &str| line[f].as_str().unwrap_or_default().to_owned();
    (tokens, text("accounting"), text("cost_usd"))
}

/// The `data:` payloads of a `text_completion` stream: the text of its chunks joined, the finish reasons in order,
/// the usage chunk's `usage` (if any), and whether it ended with `[DONE]`.
fn read_stream(r: &Reply) -> (String, Vec<String>, Option<Value>, bool) {
    let data = sse_data(&r.text);
    let chunks: Vec<Value> = data.iter().filter_map(|d| serde_json::from_str(d).ok()).collect();
    for chunk in &chunks {
        assert_eq!(chunk["object"], "text_completion", "{}", r.text);
    }
    let choices = || chunks.iter().flat_map(|c| c["choices"].as_array().cloned().unwrap_or_default());
    let text = choices().filter_map(|c| c["text"].as_str().map(str::to_owned)).collect();
    let finishes = choices().filter_map(|c| c["finish_reason"].as_str().map(str::to_owned)).collect();
    let usage = chunks.iter().find(|c| c["choices"] == json!([])).map(|c| c["usage"].clone());
    (text, finishes, usage, data.last().map(String::as_str) == Some("[DONE]"))
}

/// OpenAI's `usage` object as tollgate renders it for translated calls.
fn usage(prompt: u64, completion: u64, cached: u64) -> Value {
    json!({"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached}, "completion_tokens_details": {"reasoning_tokens": 0}})
}

#[actix_rt::test]
async fn the_mock_answers_text_completions() {
    let gw = Gateway::with_models("  - {model_name: mock-echo, litellm_params: {model: mock/echo}}\n");
    let r = complete(&gw, &completion_body("mock-echo", json!({"prompt": "hi there"}))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.json["id"].as_str().is_some_and(|id| id.starts_with("cmpl-mock-")), "{}", r.text);
    assert!(r.json["created"].as_u64().is_some_and(|t| t > 1_700_000_000));
    let mut rest = r.json.clone();
    for volatile in ["id", "created"] {
        rest.as_object_mut().map(|o| o.remove(volatile));
    }
    // The mock counts about four characters a token, at least one a word, three per message and three more:
    // "hi there" is 3, so the prompt is 3 + 3 + 3.
    assert_eq!(
        rest,
        json!({"object": "text_completion", "model": "mock/echo",
            "choices": [{"text": "hi there", "index": 0, "logprobs": null, "finish_reason": "stop"}],
            "usage": usage(9, 3, 0)})
    );

    for include_usage in [false, true] {
        let extra = json!({"prompt": "hi there", "stream": true, "stream_options": {"include_usage": include_usage}});
        let r = complete(&gw, &completion_body("mock-echo", extra)).await;
        assert_eq!((r.status, r.header("content-type")), (200, Some("text/event-stream")), "{}", r.text);
        let (text, finishes, usage_chunk, done) = read_stream(&r);
        assert_eq!((text.as_str(), finishes, done), ("hi there", vec!["stop".to_owned()], true), "{}", r.text);
        assert_eq!(usage_chunk, include_usage.then(|| usage(9, 3, 0)), "{}", r.text);
    }
}

#[actix_rt::test]
async fn text_completion_openai_deployments_get_the_callers_bytes() {
    let fake = FakeUpstream::start();
    let gw =
        Gateway::with_models(&deployment("instruct", "text-completion-openai/normal", &format!("{}/v1", fake.url), ""));
    // Fields a chat has no place for pass untouched: this deployment speaks `/completions` itself.
    let body = completion_body(
        "instruct",
        json!({"max_tokens": 7, "echo": true, "suffix": "!", "logit_bias": {"50256": -100}}),
    );
    let r = complete(&gw, &body).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let sent = &fake.requests()[0];
    assert_eq!(sent["path"], "/v1/completions");
    assert_eq!(sent["headers"]["authorization"], format!("Bearer {UPSTREAM_KEY}"));
    let mut want = body.clone();
    want["model"] = json!("normal");
    assert_eq!(sent["body"], want);
    assert_eq!(
        r.json,
        json!({"id": "cmpl-fake-1", "object": "text_completion", "created": 1_700_000_000, "model": "normal",
            "system_fingerprint": "fp_fake",
            "choices": [{"text": "Hello from fake upstream", "index": 0, "logprobs": null, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}})
    );
    assert_eq!(books(&r), (vec![10, 5, 0, 0], "exact".into(), "0.00002".into()));

    // Several prompts are the upstream's to answer: one choice each.
    let r = complete(&gw, &completion_body("instruct", json!({"prompt": ["a", "b"]}))).await;
    assert_eq!(
        (r.json["choices"][1]["index"].as_u64(), r.json["usage"]["prompt_tokens"].as_u64()),
        (Some(1), Some(20))
    );
    assert_eq!(books(&r).0, [20, 10, 0, 0]);

    for include_usage in [false, true] {
        let options = if include_usage { json!({"include_usage": true}) } else { json!({"other": 1}) };
        let r = complete(&gw, &completion_body("instruct", json!({"stream": true, "stream_options": options}))).await;
        assert_eq!(r.status, 200, "{}", r.text);
        // The upstream is always asked for usage (the caller's other options kept); the caller sees the usage
        // chunk only if it asked.
        let sent = fake.requests().last().map(|s| s["body"]["stream_options"].clone());
        let asked =
            if include_usage { json!({"include_usage": true}) } else { json!({"other": 1, "include_usage": true}) };
        assert_eq!(sent, Some(asked));
        let (text, finishes, usage_chunk, done) = read_stream(&r);
        assert_eq!((text.as_str(), finishes, done), ("Hello from fake upstream", vec!["stop".to_owned()], true));
        let want = json!({"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15});
        assert_eq!(usage_chunk, include_usage.then_some(want), "{}", r.text);
        assert_eq!(books(&r), (vec![10, 5, 0, 0], "exact".into(), "0.00002".into()));
    }

    let r = complete(&gw, &completion_body("instruct", json!({"prompt": [1, 2, 3]}))).await;
    assert_eq!((r.status, r.json["error"]["param"].as_str()), (400, Some("prompt")), "{}", r.text);
    assert_eq!(fake.requests().len(), 4, "a refused request never reaches the upstream");
}

#[actix_rt::test]
async fn chat_callers_reach_text_completion_deployments_through_a_prompt() {
    let fake = FakeUpstream::start();
    let gw =
        Gateway::with_models(&deployment("instruct", "text-completion-openai/normal", &format!("{}/v1", fake.url), ""));
    let chat = json!({"model": "instruct", "max_tokens": 9, "stop": "\n",
        "messages": [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "Say hi"}]});
    let r = post(&gw.url, "/v1/chat/completions", Some(MASTER_KEY), chat.to_string()).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(fake.requests()[0]["path"], "/v1/completions");
    assert_eq!(
        fake.requests()[0]["body"],
        json!({"model": "normal", "prompt": "System: Be terse.\n\nUser: Say hi\n\nAssistant:", "max_tokens": 9, "stop": ["\n"]})
    );
    assert_eq!(r.json["object"], "chat.completion");
    assert_eq!(r.json["choices"][0]["message"], json!({"role": "assistant", "content": "Hello from fake upstream"}));
    assert_eq!(r.json["choices"][0]["finish_reason"], "stop");
    assert_eq!(books(&r), (vec![10, 5, 0, 0], "exact".into(), "0.00002".into()));

    let mut stream = chat.clone();
    stream["stream"] = json!(true);
    let r = post(&gw.url, "/v1/chat/completions", Some(MASTER_KEY), stream.to_string()).await;
    let chunks: Vec<Value> = sse_data(&r.text).iter().filter_map(|d| serde_json::from_str(d).ok()).collect();
    let text: String = chunks.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
    let finish: Vec<&str> = chunks.iter().filter_map(|c| c["choices"][0]["finish_reason"].as_str()).collect();
    assert_eq!((text.as_str(), finish), ("Hello from fake upstream", vec!["stop"]), "{}", r.text);
    assert_eq!(chunks[0]["object"], "chat.completion.chunk");
    assert_eq!(fake.requests()[1]["body"]["stream_options"], json!({"include_usage": true}));
    assert_eq!(books(&r).0, [10, 5, 0, 0]);

    // An Anthropic caller's lone user message is the prompt as it is.
    let messages = json!({"model": "instruct", "max_tokens": 30, "messages": [{"role": "user", "content": "Say hi"}]});
    let r = post_messages(&gw.url, messages.to_string()).await;
    assert_eq!(r.json["content"], json!([{"type": "text", "text": "Hello from fake upstream"}]), "{}", r.text);
    assert_eq!(fake.requests()[2]["body"], json!({"model": "normal", "prompt": "Say hi", "max_tokens": 30}));

    // Tools have no place in a prompt.
    let tools = json!({"model": "instruct", "messages": [{"role": "user", "content": "x"}],
        "tools": [{"type": "function", "function": {"name": "f"}}]});
    let r = post(&gw.url, "/v1/chat/completions", Some(MASTER_KEY), tools.to_string()).await;
    assert_eq!((r.status, r.json["error"]["param"].as_str()), (400, Some("tools")), "{}", r.text);
    assert_eq!(fake.requests().len(), 3);
}

#[actix_rt::test]
async fn an_anthropic_deployment_serves_text_completions() {
    let fake = FakeUpstream::start();
    let gw = Gateway::with_models(&deployment("claude", "anthropic/normal", &fake.url, ""));
    let body = completion_body("claude", json!({"max_tokens": 50, "temperature": 0.5, "stop": ["END"], "user": "u-1"}));
    let r = complete(&gw, &body).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let sent = &fake.requests()[0];
    assert_eq!(sent["path"], "/v1/messages");
    assert_eq!(sent["body"]["messages"], json!([{"role": "user", "content": [{"type": "text", "text": "Say hi"}]}]));
    let fields = ["model", "max_tokens", "temperature", "stop_sequences", "metadata"].map(|f| sent["body"][f].clone());
    assert_eq!(fields, [json!("normal"), json!(50), json!(0.5), json!(["END"]), json!({"user_id": "u-1"})]);
    // The fake's usage: input 21, cache creation 3, cache read 5, output 9; OpenAI's prompt count includes both
    // kinds of cache tokens.
    let mut want_usage = usage(29, 9, 5);
    want_usage["cache_creation_input_tokens"] = json!(3);
    assert_eq!(
        r.json,
        json!({"id": "cmpl-msg_fake_1", "object": "text_completion", "created": r.json["created"], "model": "normal",
            "choices": [{"text": "Hello from fake upstream", "index": 0, "logprobs": null, "finish_reason": "stop"}],
            "usage": want_usage})
    );
    // 29 input tokens at $1 and 9 output tokens at $2 per million (no cache prices: the input price).
    assert_eq!(books(&r), (vec![29, 9, 5, 3], "exact".into(), "0.000047".into()));

    for include_usage in [false, true] {
        let extra = json!({"max_tokens": 50, "stream": true, "stream_options": {"include_usage": include_usage}});
        let r = complete(&gw, &completion_body("claude", extra)).await;
        assert_eq!((r.status, r.header("content-type")), (200, Some("text/event-stream")), "{}", r.text);
        assert_eq!(fake.requests().last().map(|s| s["body"]["stream"].clone()), Some(json!(true)));
        let (text, finishes, usage_chunk, done) = read_stream(&r);
        assert_eq!((text.as_str(), finishes, done), ("Hello from fake upstream", vec!["stop".to_owned()], true));
        assert_eq!(usage_chunk, include_usage.then(|| want_usage.clone()), "{}", r.text);
        let ids: Vec<Value> = sse_data(&r.text)
            .iter()
            .filter_map(|d| serde_json::from_str::<Value>(d).ok())
            .map(|c| c["id"].clone())
            .collect();
        assert!(ids.iter().all(|id| id.as_str().is_some_and(|id| id.starts_with("cmpl-msg_fake_"))), "{ids:?}");
        assert_eq!(books(&r), (vec![29, 9, 5, 3], "exact".into(), "0.000047".into()));
    }
}

#[actix_rt::test]
async fn what_a_chat_cannot_do_is_refused_unless_dropped() {
    let fake = FakeUpstream::start();
    let models = [
        deployment("strict", "anthropic/normal", &fake.url, ""),
        deployment("lenient", "anthropic/normal", &fake.url, "      drop_params: true\n"),
    ];
    let gw = Gateway::with_models(&models.join(""));
    let cases = [
        (json!({"echo": true}), "echo", "unsupported_parameter"),
        (json!({"logprobs": 0}), "logprobs", "unsupported_parameter"),
        (json!({"suffix": "!"}), "suffix", "unsupported_parameter"),
        (json!({"best_of": 2}), "best_of", "unsupported_parameter"),
        (json!({"n": 2}), "n", "unsupported_parameter"),
        (json!({"logit_bias": {"1": 2}}), "logit_bias", "unsupported_parameter"),
        (json!({"prompt": ["a", "b"]}), "prompt", "invalid_value"),
        (json!({"prompt": [[1, 2]]}), "prompt", "invalid_value"),
        (json!({"echo": "yes"}), "echo", "invalid_value"),
    ];
    for (extra, param, code) in cases {
        let r = complete(&gw, &completion_body("strict", extra.clone())).await;
        assert_eq!(r.status, 400, "{extra}: {}", r.text);
        let error = &r.json["error"];
        assert_eq!((error["param"].as_str(), error["code"].as_str()), (Some(param), Some(code)), "{extra}: {}", r.text);
        if code == "unsupported_parameter" {
            let message = format!(
                "`{param}` is not supported by provider `anthropic`; remove it, or set `drop_params: true` to drop it"
            );
            assert_eq!(error["message"], message);
        }
    }
    assert!(fake.requests().is_empty(), "refused requests never reach the upstream");
    let extra = json!({"echo": true, "best_of": 3, "logprobs": 2, "suffix": "!", "max_tokens": 5});
    let r = complete(&gw, &completion_body("lenient", extra)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let sent = &fake.requests()[0]["body"];
    assert_eq!(sent["max_tokens"], 5);
    for dropped in ["echo", "best_of", "logprobs", "suffix"] {
        assert!(sent.get(dropped).is_none(), "{dropped}: {sent}");
    }
}

#[actix_rt::test]
async fn an_openai_chat_deployment_answers_text_completions_through_chat() {
    let fake = FakeUpstream::start();
    let gw = Gateway::with_models(&deployment("gpt", "openai/normal", &format!("{}/v1", fake.url), ""));
    let r = complete(&gw, &completion_body("gpt", json!({"max_tokens": 12, "seed": 4}))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let sent = &fake.requests()[0];
    assert_eq!(sent["path"], "/v1/chat/completions");
    assert_eq!(
        sent["body"],
        json!({"model": "normal", "messages": [{"role": "user", "content": "Say hi"}], "max_completion_tokens": 12, "seed": 4})
    );
    // The chat completion's id under OpenAI's `cmpl-` prefix.
    assert_eq!(
        r.json,
        json!({"id": "cmpl-fake-1", "object": "text_completion", "created": r.json["created"], "model": "normal",
            "choices": [{"text": "Hello from fake upstream", "index": 0, "logprobs": null, "finish_reason": "stop"}],
            "usage": usage(10, 5, 0)})
    );
    assert_eq!(books(&r), (vec![10, 5, 0, 0], "exact".into(), "0.00002".into()));
    let r = complete(&gw, &completion_body("gpt", json!({"stream": true}))).await;
    let (text, finishes, usage_chunk, done) = read_stream(&r);
    assert_eq!(
        (text.as_str(), finishes, usage_chunk, done),
        ("Hello from fake upstream", vec!["stop".to_owned()], None, true)
    );
    assert_eq!(books(&r).0, [10, 5, 0, 0]);
}
