//! Azure OpenAI over real HTTP: OpenAI's dialect spliced through (the caller's bytes, only `model` swapped), to
//! the deployment's URL with a mandatory `api-version` and the key in `api-key`. The fake is the OpenAI one at
//! Azure's paths (it refuses a request without `api-version`, as Azure does), with its own usage: 10 prompt tokens
//! a message, 5 completion tokens.

use serde_json::{json, Value};
use tollgate_tests::{
    dialect::{
        assert_broken_stream, assert_openai_error, assert_settled, calls, chat, deployment, golden_request,
        read_stream, tools_request, usage_numbers, vectors, with, Tokens, UPSTREAM_KEY,
    },
    post, FakeUpstream, Gateway, MASTER_KEY,
};

/// Two messages in the golden request: 20 prompt tokens, 5 completion tokens.
const USAGE: Tokens = Tokens { prompt: 20, completion: 5, cache_read: 0, cache_write: 0 };

/// A gateway where model `az-<mode>` is `azure/<mode>` (the deployment name picks the fake's mode).
fn gateway(fake: &FakeUpstream, modes: &[&str]) -> Gateway {
    let models: String =
        modes.iter().map(|m| deployment(&format!("az-{m}"), &format!("azure/{m}"), &fake.url, "")).collect();
    Gateway::with_models(&models)
}

fn streamed(body: &Value, include_usage: bool) -> Value {
    with(body, json!({"stream": true, "stream_options": {"include_usage": include_usage}}))
}

fn chat_path(deployment: &str, api_version: &str) -> String {
    format!("/openai/deployments/{deployment}/chat/completions?api-version={api_version}")
}

/// The last request the fake received.
fn last_seen(fake: &FakeUpstream) -> Value {
    fake.requests().into_iter().next_back().unwrap_or_default()
}

#[actix_rt::test]
async fn openai_requests_reach_the_deployment_url_with_an_api_key() {
    let fake = FakeUpstream::start();
    let gw = gateway(&fake, &["normal"]);
    let request = golden_request("az-normal");
    let r = chat(&gw.url, &request).await;
    assert_eq!(r.status, 200, "{}", r.text);

    let seen = last_seen(&fake);
    assert_eq!(seen["path"], chat_path("normal", "2024-10-21"));
    assert_eq!(seen["headers"]["api-key"], UPSTREAM_KEY);
    assert_eq!(seen["headers"].get("authorization"), None, "Azure keys travel in api-key only");
    assert_eq!(seen["body"], with(&request, json!({"model": "normal"})), "the caller's body, model swapped");

    let choice = &r.json["choices"][0];
    assert_eq!(choice["message"]["content"], "Hello from fake upstream");
    assert_eq!(choice["finish_reason"], "stop");
    assert_eq!(usage_numbers(&r.json["usage"]), (Some(20), Some(5), Some(25), None), "{}", r.text);
    assert_settled(&r, "completed", USAGE);
}

#[actix_rt::test]
async fn streams_end_with_done_and_carry_usage_only_when_asked() {
    let fake = FakeUpstream::start();
    let gw = gateway(&fake, &["normal"]);
    for include_usage in [false, true] {
        let r = chat(&gw.url, &streamed(&golden_request("az-normal"), include_usage)).await;
        assert_eq!((r.status, r.header("content-type")), (200, Some("text/event-stream")), "{}", r.text);
        // tollgate always asks for usage, for the books, and strips it when the caller did not.
        assert_eq!(last_seen(&fake)["body"]["stream_options"], json!({"include_usage": true}));
        let s = read_stream(&r.text);
        assert_eq!(s.text, "Hello from fake upstream");
        assert_eq!((s.finish_reason.as_deref(), s.last.as_str()), (Some("stop"), "[DONE]"));
        let usage: Vec<_> = s.usage_chunks.iter().map(usage_numbers).collect();
        let want = if include_usage { vec![(Some(20), Some(5), Some(25), None)] } else { vec![] };
        assert_eq!(usage, want, "include_usage {include_usage}: {}", r.text);
        assert_settled(&r, "completed", USAGE);
    }
}

#[actix_rt::test]
async fn tool_calls_pass_through_whole_and_streamed() {
    let fake = FakeUpstream::start();
    let gw = gateway(&fake, &["tools"]);
    let request = tools_request("az-tools");
    let want = vec![("call_fake_1".to_owned(), "get_weather".to_owned(), json!({"city": "Paris"}))];

    let r = chat(&gw.url, &request).await;
    assert_eq!(last_seen(&fake)["body"], with(&request, json!({"model": "tools"})));
    assert_eq!(calls(&r.json["choices"][0]["message"]["tool_calls"]), want, "{}", r.text);
    assert_eq!(r.json["choices"][0]["finish_reason"], "tool_calls");

    let r = chat(&gw.url, &streamed(&request, false)).await;
    let s = read_stream(&r.text);
    assert_eq!(calls(&Value::Array(s.tool_calls.clone())), want, "{}", r.text);
    assert_eq!((s.finish_reason.as_deref(), s.last.as_str()), (Some("tool_calls"), "[DONE]"));
    // Four messages at 10 tokens each.
    assert_settled(&r, "completed", Tokens { prompt: 40, ..USAGE });
}

#[actix_rt::test]
async fn upstream_errors_become_openai_errors() {
    let fake = FakeUpstream::start();
    // (mode, status, type, code, retry-after)
    let cases = [
        ("error-429", 429, "requests", "rate_limit_exceeded", Some("7")),
        ("context-length", 400, "invalid_request_error", "context_length_exceeded", None),
        // Azure's `content_filter` is OpenAI's content-policy class.
        ("content-filter", 400, "invalid_request_error", "content_policy_violation", None),
    ];
    let gw = gateway(&fake, &cases.map(|c| c.0));
    for (mode, status, kind, code, retry_after) in cases {
        let r = chat(&gw.url, &golden_request(&format!("az-{mode}"))).await;
        assert_openai_error(&r, status, Some(code), retry_after);
        assert_eq!(r.error_type(), kind, "{mode}");
    }
}

#[actix_rt::test]
async fn a_broken_stream_ends_with_an_openai_error_chunk() {
    let fake = FakeUpstream::start();
    let gw = gateway(&fake, &["cut", "cut-json"]);
    for mode in ["cut", "cut-json"] {
        let r = chat(&gw.url, &streamed(&golden_request(&format!("az-{mode}")), true)).await;
        assert_broken_stream(&r);
        assert_eq!(read_stream(&r.text).text, "Hello", "{mode}: what arrived before the break is delivered");
    }
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
        let seen = last_seen(&fake);
        assert_eq!(seen["path"], chat_path("my-gpt4o", version), "{params}");
        assert_eq!(seen["headers"][header], value, "{params}");
        assert_eq!(seen["headers"].get(absent), None, "{params}");
    }
}

#[actix_rt::test]
async fn embeddings_reach_the_deployments_embeddings_url() {
    let fake = FakeUpstream::start();
    let gw = Gateway::with_models(&deployment("az-embed", "azure/text-embedding-3-small", &fake.url, ""));
    let body = json!({"model": "az-embed", "input": ["first text here", "second"]});
    let r = post(&gw.url, "/v1/embeddings", Some(MASTER_KEY), body.to_string()).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let seen = last_seen(&fake);
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
    assert_settled(&r, "completed", Tokens { prompt: 4, completion: 0, cache_read: 0, cache_write: 0 });
}
