//! Money is never silently $0 (issue 12, finding 5) and the upstream's framing decides the relay (finding 6):
//! each way a call's cost can go uncounted is counted per cause in `GET /metrics`, and usage with cache and
//! reasoning tokens is priced by the catalog's own fields.

use serde_json::json;
use tollgate_tests::{chat_body, fake_model, post, sse_data, wait_metric, FakeUpstream, Gateway, MASTER_KEY};

const GAPS: &str = "tollgate_deployment_accounting_gaps_total";

fn gap(cause: &str) -> String {
    format!("cause=\"{cause}\"")
}

fn dep(name: &str) -> String {
    format!("deployment=\"{name}#")
}

/// `tollgate_deployment_tokens_total` of deployment `name` and token `kind`, once it reads `want`.
async fn tokens(gw: &Gateway, name: &str, kind: &str, want: f64) -> Option<f64> {
    let labels = [dep(name), format!("kind=\"{kind}\"")];
    let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
    wait_metric(&gw.url, "tollgate_deployment_tokens_total", &labels, want).await
}

async fn chat(gw: &Gateway, model: &str, stream: bool) -> tollgate_tests::Reply {
    let extra = if stream { json!({"stream": true}) } else { json!({}) };
    post(&gw.url, "/v1/chat/completions", Some(MASTER_KEY), chat_body(model, extra)).await
}

#[actix_rt::test]
async fn an_error_object_in_a_200_counts_as_a_failure() {
    let fake = FakeUpstream::start();
    let gw = Gateway::with_models(
        &[fake_model("whole", "error-in-200", &fake, ""), fake_model("streamed", "error-in-200", &fake, "")].join(""),
    );
    let r = chat(&gw, "whole", false).await;
    assert_eq!((r.status, r.json["error"]["message"].as_str()), (200, Some("overloaded, try later")));
    let r = chat(&gw, "streamed", true).await;
    assert!(sse_data(&r.text).iter().any(|d| d.contains("overloaded mid-stream")), "{}", r.text);
    for name in ["whole", "streamed"] {
        let failures = wait_metric(&gw.url, "tollgate_deployment_failures_total", &[&dep(name)], 1.0).await;
        assert_eq!(failures, Some(1.0), "{name}");
    }
}

#[actix_rt::test]
async fn missing_usage_is_a_counted_gap_not_zero() {
    let fake = FakeUpstream::start();
    let models = [
        fake_model("whole", "no-usage", &fake, ""),
        fake_model("streamed", "no-usage", &fake, ""),
        fake_model("cut", "cut-after-finish", &fake, ""),
    ];
    let gw = Gateway::with_models(&models.join(""));
    assert_eq!(chat(&gw, "whole", false).await.status, 200);
    assert_eq!(chat(&gw, "streamed", true).await.status, 200);
    let cut = chat(&gw, "cut", true).await;
    let data = sse_data(&cut.text);
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"), "the content was whole: {}", cut.text);
    assert!(data.iter().any(|d| d.contains("\"finish_reason\":\"stop\"")));
    for (name, cause) in
        [("whole", "usage_missing"), ("streamed", "usage_missing"), ("cut", "stream_ended_before_usage")]
    {
        assert_eq!(wait_metric(&gw.url, GAPS, &[&dep(name), &gap(cause)], 1.0).await, Some(1.0), "{name}");
    }
    // A call that completed is not a failure for having no usage.
    assert_eq!(wait_metric(&gw.url, "tollgate_deployment_failures_total", &[&dep("cut")], 0.0).await, Some(0.0));
}

#[actix_rt::test]
async fn a_model_without_a_price_counts_tokens_and_an_unpriced_call() {
    let fake = FakeUpstream::start();
    // `normal` is in no price catalog and the deployment sets no prices.
    let gw = Gateway::with_models(&fake_model("free", "normal", &fake, ""));
    assert_eq!(chat(&gw, "free", false).await.status, 200);
    assert_eq!(wait_metric(&gw.url, GAPS, &[&dep("free"), &gap("unpriced")], 1.0).await, Some(1.0));
    assert_eq!(tokens(&gw, "free", "prompt", 10.0).await, Some(10.0));
}

#[actix_rt::test]
async fn cache_and_reasoning_tokens_are_priced_by_the_catalog_fields() {
    let fake = FakeUpstream::start();
    let dir = std::env::temp_dir().join(format!("tollgate-prices-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let catalog = dir.join("prices.json");
    let prices = json!({"cache-usage": {"input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6,
        "cache_read_input_token_cost": 1e-7, "output_cost_per_reasoning_token": 4e-6}});
    std::fs::write(&catalog, prices.to_string()).expect("write catalog");
    let gw = Gateway::start(&format!(
        "model_list:\n{}{}general_settings:\n  master_key: {MASTER_KEY}\ntollgate:\n  price_catalog: {}\n",
        fake_model("whole", "cache-usage", &fake, ""),
        fake_model("streamed", "cache-usage", &fake, ""),
        catalog.display()
    ));
    assert_eq!(chat(&gw, "whole", false).await.status, 200);
    // Streamed without `include_usage`: tollgate asks the upstream for usage anyway and strips the chunk.
    let streamed = chat(&gw, "streamed", true).await;
    assert!(!sse_data(&streamed.text).iter().any(|d| d.contains("\"usage\":{")), "{}", streamed.text);
    // 400 uncached x $1e-6 + 600 cached x $1e-7 + 100 visible x $2e-6 + 400 reasoning x $4e-6 = $0.00226
    for name in ["whole", "streamed"] {
        let spend = wait_metric(&gw.url, "tollgate_deployment_spend_usd_total", &[&dep(name)], 0.00226).await;
        assert_eq!(spend, Some(0.00226), "{name}");
        for (kind, want) in [("cache_read", 600.0), ("reasoning", 400.0), ("prompt", 1000.0)] {
            assert_eq!(tokens(&gw, name, kind, want).await, Some(want), "{name} {kind}");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[actix_rt::test]
async fn a_body_too_large_to_scan_is_forwarded_and_counted() {
    let fake = FakeUpstream::start();
    let gw = Gateway::with_models(&fake_model("big", "echo", &fake, ""));
    // `echo` answers with the request body as content: a 9 MiB request makes a reply over the 8 MiB scan limit.
    let body = chat_body("big", json!({"padding": "x".repeat(9 * 1024 * 1024)}));
    let r = post(&gw.url, "/v1/chat/completions", Some(MASTER_KEY), body).await;
    assert_eq!(r.status, 200);
    assert!(r.json["choices"][0]["message"]["content"].as_str().is_some_and(|c| c.len() > 9 * 1024 * 1024));
    let got = wait_metric(&gw.url, GAPS, &[&dep("big"), &gap("body_too_large_for_usage")], 1.0).await;
    assert_eq!(got, Some(1.0));
}

#[actix_rt::test]
async fn strict_servers_get_no_stream_options_and_usage_is_still_read() {
    let fake = FakeUpstream::start();
    let mistral = format!(
        "  - model_name: mistral\n    litellm_params:\n      model: mistral/strict\n      api_base: {}/v1\n      api_key: sk-fake-upstream-key-123456\n",
        fake.url
    );
    let gw = Gateway::with_models(&[mistral, fake_model("openai-strict", "strict", &fake, "")].join(""));
    let r = chat(&gw, "mistral", true).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(sse_data(&r.text).last().map(String::as_str), Some("[DONE]"));
    let sent = fake.requests().into_iter().next_back().expect("request recorded");
    assert!(sent["body"].get("stream_options").is_none(), "{sent}");
    assert_eq!(tokens(&gw, "mistral", "prompt", 10.0).await, Some(10.0), "usage from the finish chunk");
    // The same strict server behind the plain OpenAI preset: the forced field is refused, as the preset predicts.
    let r = chat(&gw, "openai-strict", true).await;
    assert_eq!(r.status, 422, "{}", r.text);
}

#[actix_rt::test]
async fn the_upstream_content_type_decides_the_relay() {
    let fake = FakeUpstream::start();
    let gw = Gateway::with_models(&fake_model("json", "json-for-stream", &fake, ""));
    let r = chat(&gw, "json", true).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.json["choices"][0]["message"]["content"], "Hello", "the JSON body arrives whole: {}", r.text);
    assert_eq!(tokens(&gw, "json", "completion", 5.0).await, Some(5.0));
}

/// `x-tollgate-response-cost` is the call's cost in USD where the whole answer is known before its headers (the
/// mock, which is free, and translated answers); a relayed body or a stream sends its headers before its usage and
/// carries none, and an unpriced model gets none rather than a false $0.
#[actix_rt::test]
async fn the_response_cost_header_is_the_calls_cost_where_the_answer_is_whole() {
    let fake = FakeUpstream::start();
    let gw = Gateway::start(&format!(
        "model_list:
  - {{model_name: priced, litellm_params: {{model: mock/a, input_cost_per_token: 0.000002, output_cost_per_token: 0.001}}}}
  - {{model_name: free, litellm_params: {{model: mock/b}}}}
{1}  - {{model_name: translated, litellm_params: {{model: anthropic/normal, api_base: {0}, api_key: sk-ant-test-key-123456, input_cost_per_token: 0.000002, output_cost_per_token: 0.001}}}}
  - {{model_name: unpriced, litellm_params: {{model: anthropic/normal, api_base: {0}, api_key: sk-ant-test-key-123456}}}}
general_settings:
  master_key: {MASTER_KEY}
",
        fake.url,
        fake_model("relayed", "normal", &fake, "      input_cost_per_token: 0.000002\n      output_cost_per_token: 0.001\n"),
    ));
    // The mock's whole answer, and an Anthropic answer translated whole (its cache tokens priced at the input price,
    // as no cache price is set).
    for model in ["priced", "translated"] {
        let r = chat(&gw, model, false).await;
        assert_eq!(r.status, 200, "{model}: {}", r.text);
        let usage = |k: &str| r.json["usage"][k].as_f64().unwrap_or(-1.0);
        let want = usage("prompt_tokens") * 0.000002 + usage("completion_tokens") * 0.001;
        let got: f64 = r.header("x-tollgate-response-cost").and_then(|v| v.parse().ok()).unwrap_or(-1.0);
        assert!(want > 0.0 && (got - want).abs() < 1e-9, "{model}: header {got}, usage says {want}");
    }
    let cases =
        [("priced", true, None), ("unpriced", false, None), ("relayed", false, None), ("free", false, Some("0"))];
    for (model, stream, want) in cases {
        let r = chat(&gw, model, stream).await;
        assert_eq!(r.status, 200, "{model}: {}", r.text);
        assert_eq!(r.header("x-tollgate-response-cost"), want, "{model} stream={stream}");
    }
}
