//! Azure OpenAI over real HTTP: OpenAI's dialect spliced through (the caller's bytes, only `model` swapped), to
//! the deployment's URL with a mandatory `api-version` and the key in `api-key`. The fake is the OpenAI one at
//! Azure's paths (it refuses a request without `api-version`, as Azure does), with its own usage: 10 prompt tokens
//! a message, 5 completion tokens.

use serde_json::json;
use tollgate_tests::{
    dialect::{
        assert_broken_streams, assert_errors, assert_settled, assert_text_streams, assert_tool_calls, call, chat,
        deployment, gateway, golden_request, last_request, model, tools_request, usage_numbers, vectors, with,
        ErrorCase, Tokens, UsageNumbers, BROKEN_MODES, UPSTREAM_KEY,
    },
    dialect_b, post, FakeUpstream, Gateway, MASTER_KEY,
};

const PROVIDER: &str = "azure";
/// Two messages in the golden request: 20 prompt tokens, 5 completion tokens.
const USAGE: Tokens = Tokens { prompt: 20, completion: 5, cache_read: 0, cache_write: 0, reasoning: 0 };
const OPENAI_USAGE: UsageNumbers = (Some(20), Some(5), Some(25), None);

fn chat_path(deployment: &str, api_version: &str) -> String {
    format!("/openai/deployments/{deployment}/chat/completions?api-version={api_version}")
}

#[actix_rt::test]
async fn openai_requests_reach_the_deployment_url_with_an_api_key() {
    let fake = FakeUpstream::start();
    let gw = gateway(&fake, PROVIDER, &["normal"]);
    let request = golden_request(&model(PROVIDER, "normal"));
    let r = chat(&gw.url, &request).await;
    assert_eq!(r.status, 200, "{}", r.text);

    let seen = last_request(&fake);
    assert_eq!(seen["path"], chat_path("normal", "2024-10-21"));
    assert_eq!(seen["headers"]["api-key"], UPSTREAM_KEY);
    assert_eq!(seen["headers"].get("authorization"), None, "Azure keys travel in api-key only");
    assert_eq!(seen["body"], with(&request, json!({"model": "normal"})), "the caller's body, model swapped");

    let choice = &r.json["choices"][0];
    assert_eq!(choice["message"]["content"], "Hello from fake upstream");
    assert_eq!(choice["finish_reason"], "stop");
    assert_eq!(usage_numbers(&r.json["usage"]), OPENAI_USAGE, "{}", r.text);
    assert_settled(&r, "completed", USAGE);
}

#[actix_rt::test]
async fn streams_end_with_done_and_carry_usage_only_when_asked() {
    let fake = FakeUpstream::start();
    let gw = gateway(&fake, PROVIDER, &["normal"]);
    assert_text_streams(&gw.url, &model(PROVIDER, "normal"), "Hello from fake upstream", OPENAI_USAGE, USAGE).await;
    // tollgate always asks for usage, for the books, and strips it when the caller did not.
    assert_eq!(last_request(&fake)["body"]["stream_options"], json!({"include_usage": true}));
}

#[actix_rt::test]
async fn tool_calls_pass_through_whole_and_streamed() {
    let fake = FakeUpstream::start();
    let gw = gateway(&fake, PROVIDER, &["tools"]);
    let request = tools_request(&model(PROVIDER, "tools"));
    let want = [call("call_fake_1", "get_weather", json!({"city": "Paris"}))];
    let [_, stream] = assert_tool_calls(&gw.url, &request, &want).await;
    // The caller's tool history and tools, untouched (and the stream's usage asked for).
    let sent = with(&request, json!({"model": "tools", "stream": true, "stream_options": {"include_usage": true}}));
    assert_eq!(last_request(&fake)["body"], sent);
    // Four messages at 10 tokens each.
    assert_settled(&stream, "completed", Tokens { prompt: 40, ..USAGE });
}

#[actix_rt::test]
async fn upstream_errors_become_openai_errors() {
    let fake = FakeUpstream::start();
    let cases: [ErrorCase; 3] = [
        ("error-429", 429, "requests", Some("rate_limit_exceeded"), Some("7")),
        ("context-length", 400, "invalid_request_error", Some("context_length_exceeded"), None),
        // Azure's `content_filter` is OpenAI's content-policy class.
        ("content-filter", 400, "invalid_request_error", Some("content_policy_violation"), None),
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
async fn endpoint_version_and_credential_come_from_config_or_environment() {
    let fake = FakeUpstream::start();
    let base = format!("      api_base: {}\n", fake.url);
    let key = format!("      api_key: {UPSTREAM_KEY}\n");
    let no_env: &[(&str, &str)] = &[];
    let azure_env = [
        ("AZURE_API_BASE", fake.url.as_str()),
        ("AZURE_API_KEY", "azure-env-key-0001"),
        ("AZURE_API_VERSION", "2024-06-01"),
    ];
    // (litellm_params lines, environment, api-version sent, credential header sent, header that must be absent)
    let cases = [
        (format!("{base}{key}"), no_env, "2024-10-21", ("api-key", UPSTREAM_KEY.to_owned()), "authorization"),
        (
            format!("{base}{key}      api_version: 2025-04-01-preview\n"),
            no_env,
            "2025-04-01-preview",
            ("api-key", UPSTREAM_KEY.to_owned()),
            "authorization",
        ),
        (
            format!("{base}      azure_ad_token: entra-token-0001\n"),
            no_env,
            "2024-10-21",
            ("authorization", "Bearer entra-token-0001".to_owned()),
            "api-key",
        ),
        (String::new(), &azure_env, "2024-06-01", ("api-key", "azure-env-key-0001".to_owned()), "authorization"),
    ];
    for (params, env, version, (header, value), absent) in cases {
        let yaml = format!(
            "model_list:\n  - model_name: az\n    litellm_params:\n      model: azure/my-gpt4o\n{params}\
             general_settings:\n  master_key: {MASTER_KEY}\n"
        );
        let gw = Gateway::start_with_env(&yaml, env);
        let r = chat(&gw.url, &golden_request("az")).await;
        assert_eq!(r.status, 200, "{params}: {}", r.text);
        let seen = last_request(&fake);
        assert_eq!(seen["path"], chat_path("my-gpt4o", version), "{params}");
        assert_eq!(seen["headers"][header], value, "{params}");
        assert_eq!(seen["headers"].get(absent), None, "{params}");
    }
}

#[actix_rt::test]
async fn embeddings_reach_the_deployments_embeddings_url() {
    let fake = FakeUpstream::start();
    let gw = Gateway::with_models(&deployment("az-embed", "azure/text-embedding-3-small", &fake.url));
    let body = json!({"model": "az-embed", "input": ["first text here", "second"]});
    let r = post(&gw.url, "/v1/embeddings", Some(MASTER_KEY), body.to_string()).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let seen = last_request(&fake);
    let path = "/openai/deployments/text-embedding-3-small/embeddings?api-version=2024-10-21";
    assert_eq!(seen["path"], path);
    assert_eq!(seen["headers"]["api-key"], UPSTREAM_KEY);
    assert_eq!(seen["body"], with(&body, json!({"model": "text-embedding-3-small"})));

    let direct_body = with(&body, json!({"model": "x"}));
    let direct = post(&fake.url, "/v1/embeddings", None, direct_body.to_string()).await;
    assert_eq!(vectors(&r.json), vectors(&direct.json), "{}", r.text);
    assert_eq!(vectors(&r.json).len(), 2);
    // The fake bills a token a word: 3 + 1.
    assert_eq!(r.json["usage"]["prompt_tokens"], 4, "{}", r.text);
    assert_settled(&r, "completed", Tokens::prompt(4));
}

#[actix_rt::test]
async fn anthropic_callers_get_text_and_tool_calls() {
    let fake = FakeUpstream::start();
    let gw = gateway(&fake, PROVIDER, &["normal", "tools"]);
    let usage = json!({"input_tokens": 10, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
                       "output_tokens": 5});
    let want = json!({"content": [{"type": "text", "text": "Hello from fake upstream"}], "stop_reason": "end_turn", "usage": usage});
    dialect_b::assert_messages(&gw, &dialect_b::hello_messages(&model(PROVIDER, "normal")), &want).await;
    let tool = json!({"type": "tool_use", "name": "get_weather", "input": {"city": "Paris"}});
    let mut usage = usage;
    // The fake counts 10 tokens a message: system, user, assistant and two tool results.
    usage["input_tokens"] = json!(50);
    let want = json!({"content": [tool], "stop_reason": "tool_use", "usage": usage});
    dialect_b::assert_messages(&gw, &dialect_b::tool_messages(&model(PROVIDER, "tools")), &want).await;
    let seen = last_request(&fake);
    assert!(seen["path"].as_str().is_some_and(|p| p.starts_with("/openai/deployments/tools/chat/completions?")));
    assert_eq!(seen["body"]["messages"][0], json!({"role": "system", "content": "You check weather."}));
}
