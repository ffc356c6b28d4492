//! Upstreams over real HTTPS: certificate verification against a CA made at test time, CA bundles from the config
//! or the environment, `ssl_verify: false`, the HTTPS proxy (`CONNECT` tunnel) and `NO_PROXY`.
//!
//! Every gateway gets its settings as config + an injected environment (`Gateway::start_with_env`), never through
//! the process environment, so these tests run in parallel with each other and with the rest.

use serde_json::json;
use tollgate_tests::{
    chat_body, fake_model, post, sse_data, tollgate_bin, ConnectProxy, FakeUpstream, Gateway, SeenConnect, TestCa,
    MASTER_KEY,
};

const UPSTREAM_KEY: &str = "sk-fake-upstream-key-123456";

/// A gateway with one model `chat` on `fake`, extra top-level YAML `settings`, and `env` as its environment.
fn gateway(fake: &FakeUpstream, settings: &str, env: &[(&str, &str)]) -> Gateway {
    let yaml = format!(
        "model_list:\n{}{settings}general_settings:\n  master_key: {MASTER_KEY}\n",
        fake_model("chat", "normal", fake, "")
    );
    Gateway::start_with_env(&yaml, env)
}

fn ssl_verify(value: &str) -> String {
    format!("litellm_settings:\n  ssl_verify: {value}\n")
}

/// `127.0.0.1:PORT` of an `https://` fake, as a `CONNECT` names it.
fn authority(fake: &FakeUpstream) -> String {
    fake.url.trim_start_matches("https://").to_owned()
}

async fn assert_chat_works(gw: &Gateway) {
    let r = post(&gw.url, "/v1/chat/completions", Some(MASTER_KEY), chat_body("chat", json!({}))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["object"], "chat.completion");
    assert_eq!(r.json["choices"][0]["message"]["content"], "Hello from fake upstream");
}

#[actix_rt::test]
async fn a_trusted_ca_bundle_serves_chat_and_streams_over_https() {
    let (fake, ca) = FakeUpstream::start_tls();
    let bundle = ca.write_pem();
    let gw = gateway(&fake, &ssl_verify(&bundle.display().to_string()), &[]);
    assert_chat_works(&gw).await;

    let body = chat_body("chat", json!({"stream": true, "stream_options": {"include_usage": true}}));
    let r = post(&gw.url, "/v1/chat/completions", Some(MASTER_KEY), body).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let data = sse_data(&r.text);
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"), "{}", r.text);
    let content: String = data
        .iter()
        .filter_map(|d| serde_json::from_str::<serde_json::Value>(d).ok())
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(content, "Hello from fake upstream");
    let usage = data.iter().rev().nth(1).and_then(|d| serde_json::from_str::<serde_json::Value>(d).ok());
    assert!(usage.is_some_and(|u| u["usage"]["total_tokens"].is_u64()), "{}", r.text);

    let seen = fake.requests();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0]["headers"]["authorization"], format!("Bearer {UPSTREAM_KEY}"), "the key went over TLS");
}

#[actix_rt::test]
async fn ssl_cert_file_and_requests_ca_bundle_name_the_bundle_too() {
    let (fake, ca) = FakeUpstream::start_tls();
    let bundle = ca.write_pem().display().to_string();
    for var in ["SSL_CERT_FILE", "REQUESTS_CA_BUNDLE"] {
        let gw = gateway(&fake, "", &[(var, &bundle)]);
        assert_chat_works(&gw).await;
    }
}

#[actix_rt::test]
async fn an_untrusted_certificate_is_a_502_naming_certificate_verification() {
    let (fake, _ca) = FakeUpstream::start_tls();
    // Built-in roots, and a bundle with another CA (a bundle replaces the built-in roots, it does not add to them).
    let other_ca = TestCa::new("some other CA");
    let other = other_ca.write_pem().display().to_string();
    for (settings, env) in [(String::new(), vec![]), (String::new(), vec![("SSL_CERT_FILE", other.as_str())])] {
        let gw = gateway(&fake, &settings, &env);
        let r = post(&gw.url, "/v1/chat/completions", Some(MASTER_KEY), chat_body("chat", json!({}))).await;
        assert_eq!(r.status, 502, "{}", r.text);
        assert_eq!(r.error_type(), "upstream_error");
        assert_eq!(r.json["error"]["code"], "upstream_unreachable");
        let message = r.json["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.starts_with("deployment `chat#0` is unreachable: TLS certificate verification failed"),
            "{message}"
        );
        assert!(message.contains("ssl_verify") && message.contains("SSL_CERT_FILE"), "says how to fix it: {message}");
        assert!(!r.text.contains(UPSTREAM_KEY), "{}", r.text);
    }
    assert!(fake.requests().is_empty(), "nothing was sent to an unverified upstream");
}

#[actix_rt::test]
async fn ssl_verify_false_accepts_any_certificate() {
    let (fake, _ca) = FakeUpstream::start_tls();
    assert_chat_works(&gateway(&fake, &ssl_verify("false"), &[])).await;
    // The environment's SSL_VERIFY overrides the file, as in LiteLLM.
    assert_chat_works(&gateway(&fake, &ssl_verify("true"), &[("SSL_VERIFY", "False")])).await;
}

#[actix_rt::test]
async fn https_upstreams_go_through_the_proxy_with_its_credentials() {
    let (fake, ca) = FakeUpstream::start_tls();
    let bundle = ca.write_pem().display().to_string();
    let proxy = ConnectProxy::start();
    let gw = gateway(&fake, &ssl_verify(&bundle), &[("HTTPS_PROXY", &proxy.url)]);
    assert_chat_works(&gw).await;
    assert_eq!(proxy.connects(), vec![SeenConnect { target: authority(&fake), authorization: None }]);

    // Credentials in the URL (percent-encoded) become `Proxy-Authorization: Basic`.
    let proxy = ConnectProxy::start();
    let with_auth = proxy.url.replace("http://", "http://user:p%40ss@");
    let gw = gateway(&fake, &ssl_verify(&bundle), &[("https_proxy", &with_auth)]);
    assert_chat_works(&gw).await;
    let seen = proxy.connects();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].authorization.as_deref(), Some("Basic dXNlcjpwQHNz"), "base64 of user:p@ss");
}

#[actix_rt::test]
async fn no_proxy_and_plain_http_upstreams_go_direct() {
    let (fake, ca) = FakeUpstream::start_tls();
    let bundle = ca.write_pem().display().to_string();
    let proxy = ConnectProxy::start();
    for no_proxy in ["127.0.0.1", "localhost,127.0.0.0/8", "*"] {
        let env = [("HTTPS_PROXY", proxy.url.as_str()), ("NO_PROXY", no_proxy)];
        assert_chat_works(&gateway(&fake, &ssl_verify(&bundle), &env)).await;
    }
    let plain = FakeUpstream::start();
    assert_chat_works(&gateway(&plain, "", &[("HTTPS_PROXY", &proxy.url)])).await;
    assert_eq!(proxy.connects(), vec![], "no CONNECT for NO_PROXY hosts or http:// upstreams");
}

#[actix_rt::test]
async fn a_proxy_refusing_the_tunnel_is_a_502_naming_the_proxy_not_its_password() {
    let (fake, ca) = FakeUpstream::start_tls();
    let bundle = ca.write_pem().display().to_string();
    let proxy = ConnectProxy::refusing("407 Proxy Authentication Required");
    let with_auth = proxy.url.replace("http://", "http://user:hunter2@");
    let gw = gateway(&fake, &ssl_verify(&bundle), &[("HTTPS_PROXY", &with_auth)]);
    let r = post(&gw.url, "/v1/chat/completions", Some(MASTER_KEY), chat_body("chat", json!({}))).await;
    assert_eq!(r.status, 502, "{}", r.text);
    let message = r.json["error"]["message"].as_str().unwrap_or_default();
    let proxy_addr = proxy.url.trim_start_matches("http://");
    assert!(
        message.contains(&format!(
            "HTTPS proxy {proxy_addr} could not open a tunnel to {}: the proxy answered `407 Proxy Authentication Required`",
            authority(&fake)
        )),
        "{message}"
    );
    assert!(!r.text.contains("hunter2") && !r.text.contains("dXNlcjpodW50ZXIy"), "{}", r.text);
    assert!(fake.requests().is_empty());
}

#[test]
fn check_config_reports_trust_and_proxy_and_rejects_a_bad_bundle() {
    let dir = std::env::temp_dir().join(format!("tollgate-tls-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("config.yaml");
    std::fs::write(
        &file,
        "model_list:\n  - model_name: vllm\n    litellm_params: {model: hosted_vllm/llama, api_base: \"http://10.1.2.3:8000/v1\", api_key: sk-cluster-key-0000000000}\n",
    )
    .expect("write config");
    let ca = TestCa::default();
    let bundle = ca.write_pem().display().to_string();
    let run = |env: &[(&str, &str)]| {
        let out = std::process::Command::new(tollgate_bin())
            .arg("check-config")
            .arg(&file)
            .env_clear()
            .envs(env.iter().copied())
            .output()
            .expect("run check-config");
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        (out.status.success(), text)
    };

    let (ok, text) = run(&[("SSL_CERT_FILE", &bundle), ("HTTPS_PROXY", "http://user:hunter2@proxy.internal:3128")]);
    assert!(ok, "{text}");
    assert!(text.contains(&format!("upstream TLS: only the CAs in `{bundle}` (from SSL_CERT_FILE)")), "{text}");
    assert!(text.contains("HTTPS proxy: proxy.internal:3128 (with credentials) for https:// upstreams"), "{text}");
    assert!(text.contains("warning: deployment `vllm#0` sends its API key over plain http:// to `10.1.2.3`"), "{text}");
    assert!(!text.contains("hunter2") && !text.contains("sk-cluster-key"), "{text}");

    let (ok, text) = run(&[("SSL_CERT_FILE", "/nonexistent/ca.pem")]);
    assert!(!ok, "{text}");
    assert!(text.contains("`SSL_CERT_FILE`: cannot read CA bundle `/nonexistent/ca.pem`"), "{text}");

    let (ok, text) = run(&[("HTTPS_PROXY", "socks5://user:hunter2@proxy:1080")]);
    assert!(!ok && text.contains("`HTTPS_PROXY`") && !text.contains("hunter2"), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_reload_that_changes_tls_settings_says_a_restart_is_needed() {
    let path = std::env::temp_dir().join(format!("tollgate-tls-reload-{}.yaml", std::process::id()));
    let models = "model_list:\n  - model_name: m\n    litellm_params: {model: mock/m}\n";
    std::fs::write(&path, models).expect("write config");
    let gw = tollgate_tests::GatewayProcess::spawn(&path);
    assert!(gw.log_text().contains("upstream TLS: "), "start-up names the trust: {}", gw.log_text());
    std::fs::write(&path, format!("{models}{}", ssl_verify("false"))).expect("rewrite config");
    gw.signal("HUP");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !gw.log_text().contains("takes effect only after a restart") {
        assert!(std::time::Instant::now() < deadline, "no restart warning: {}", gw.log_text());
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let _ = std::fs::remove_file(&path);
}
