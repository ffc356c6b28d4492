//! The seed's first config (`assets/examples/first_config.yaml`: `gpt-4`, `claude-3-opus-20240229`, `command`,
//! `vllm/meta-llama/…`, keys as `${VAR}`, base URLs from the providers' environment variables) starts as the real
//! binary and serves each model from the right dialect's fake; and quick mode takes a bare name like LiteLLM's
//! `litellm --model gpt-4`.

use serde_json::json;
use tollgate_tests::{chat_body, raw_request, FakeUpstream, GatewayProcess};

fn example() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/examples/first_config.yaml")
}

#[test]
fn the_first_config_serves_each_model_in_its_providers_dialect() {
    let fake = FakeUpstream::start();
    let openai_base = format!("{}/v1", fake.url);
    let file = example().to_string_lossy().into_owned();
    let gw = GatewayProcess::spawn_with(
        &["--config", &file],
        &[
            ("OPENAI_API_KEY", "sk-openai-key-0001"),
            ("ANTHROPIC_API_KEY", "sk-ant-key-0002"),
            ("COHERE_API_KEY", "co-key-0003"),
            ("OPENAI_BASE_URL", &openai_base),
            ("ANTHROPIC_BASE_URL", &fake.url),
            ("COHERE_API_BASE", &fake.url),
            ("VLLM_API_BASE", &openai_base),
        ],
    );
    // (public model, path the fake must see, its upstream model, auth header and value, the fake's text)
    let cases = [
        (
            "gpt-4",
            "/v1/chat/completions",
            "gpt-4",
            "authorization",
            "Bearer sk-openai-key-0001",
            "Hello from fake upstream",
        ),
        (
            "claude-3-opus",
            "/v1/messages",
            "claude-3-opus-20240229",
            "x-api-key",
            "sk-ant-key-0002",
            "Hello from fake upstream",
        ),
        ("command", "/v2/chat", "command", "authorization", "Bearer co-key-0003", "Hello from fake cohere"),
        (
            "llama-3-8b",
            "/v1/chat/completions",
            "meta-llama/Meta-Llama-3-8B-Instruct",
            "",
            "",
            "Hello from fake upstream",
        ),
    ];
    let headers = [("Content-Type", "application/json")];
    for (model, path, upstream_model, auth, key, text) in cases {
        fake.clear();
        let url = format!("{}/v1/chat/completions", gw.url);
        let (status, body) = raw_request(&url, "POST", &headers, &chat_body(model, json!({}))).expect("chat");
        assert_eq!(status, 200, "{model}: {body}");
        let reply: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        assert_eq!(reply["choices"][0]["message"]["content"], text, "{model}: {body}");
        let seen = fake.requests();
        assert_eq!(seen.len(), 1, "{model}: {seen:?}");
        assert_eq!((seen[0]["path"].as_str(), seen[0]["body"]["model"].as_str()), (Some(path), Some(upstream_model)));
        if !auth.is_empty() {
            assert_eq!(seen[0]["headers"][auth], key, "{model}");
        }
    }
    assert!(!gw.log_text().contains("sk-ant-key-0002"), "keys never reach the logs");
}

#[test]
fn quick_mode_takes_a_bare_model_name_like_litellm() {
    let fake = FakeUpstream::start();
    let base = format!("{}/v1", fake.url);
    let gw = GatewayProcess::spawn_with(
        &["--model", "gpt-4"],
        &[("OPENAI_API_KEY", "sk-quick-bare-1234567"), ("OPENAI_BASE_URL", &base)],
    );
    let headers = [("Content-Type", "application/json")];
    let url = format!("{}/v1/chat/completions", gw.url);
    let (status, body) = raw_request(&url, "POST", &headers, &chat_body("gpt-4", json!({}))).expect("chat");
    assert_eq!(status, 200, "{body}");
    assert_eq!(fake.requests()[0]["body"]["model"], "gpt-4");
}

#[test]
fn an_unknown_bare_name_names_the_prefixes_to_use() {
    let dir = std::env::temp_dir().join(format!("tollgate-seed-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("bad.yaml");
    std::fs::write(&file, "model_list:\n  - {model_name: x, litellm_params: {model: llama-3-70b}}\n").expect("write");
    let out = std::process::Command::new(tollgate_tests::tollgate_bin())
        .arg("check-config")
        .arg(&file)
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("model_list[0].litellm_params.model") && stderr.contains("`anthropic/`"), "{stderr}");
}
