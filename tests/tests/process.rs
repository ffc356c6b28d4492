//! The real binary: quickstart, check-config, bad config, SIGTERM drain.

use std::{
    io::{Read, Write},
    net::TcpStream,
    path::PathBuf,
    process::Command,
    time::{Duration, Instant},
};

use serde_json::json;
use tollgate_tests::{blocking_get, chat_body, raw_request, tollgate_bin, GatewayProcess};

fn repo_file(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

fn temp_config(name: &str, yaml: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("tollgate-{name}-{}.yaml", std::process::id()));
    std::fs::write(&path, yaml).expect("write config");
    path
}

/// Starts a streaming request to the `slow` mock model and returns once its response has begun.
fn start_slow_stream(gw: &GatewayProcess) -> TcpStream {
    let host = gw.url.trim_start_matches("http://");
    let mut s = TcpStream::connect(host).expect("connect");
    let body = chat_body("slow", json!({"stream": true}));
    let req = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).expect("write");
    let mut first = [0u8; 12];
    s.read_exact(&mut first).expect("stream started");
    assert_eq!(&first, b"HTTP/1.1 200");
    s
}

#[test]
fn quickstart_serves_mock_chat_and_lists_models() {
    let gw = GatewayProcess::spawn(&repo_file("assets/examples/quickstart.yaml"));
    let auth = [("Authorization", "Bearer sk-tollgate-quickstart"), ("Content-Type", "application/json")];
    let (status, body) =
        raw_request(&format!("{}/v1/chat/completions", gw.url), "POST", &auth, &chat_body("gpt-4o-mini", json!({})))
            .expect("chat");
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["object"], "chat.completion");
    assert!(v["choices"][0]["message"]["content"].as_str().is_some_and(|c| !c.is_empty()));
    assert!(v["usage"]["total_tokens"].as_u64().is_some_and(|t| t > 0));
    let (status, body) = raw_request(&format!("{}/v1/models", gw.url), "GET", &auth, "").expect("models");
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    let ids: Vec<&str> = v["data"].as_array().into_iter().flatten().filter_map(|m| m["id"].as_str()).collect();
    assert_eq!(ids, ["gpt-4o-mini", "echo", "slow", "text-embedding-3-small"]);
}

#[test]
fn check_config_prints_groups_masks_secrets_and_fails_on_errors() {
    let good = temp_config(
        "good",
        "model_list:\n  - model_name: a\n    litellm_params: {model: groq/llama-3.1-8b-instant, api_key: gsk-secret-value-abcdef1234, stream_timeout: 20}\n    colour: blue\nrouter_settings: {hedge_after_ms: {a: 250}}\n",
    );
    let out = Command::new(tollgate_bin()).arg("check-config").arg(&good).output().expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout} {}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("model group `a`") && stdout.contains("https://api.groq.com/openai/v1"), "{stdout}");
    assert!(stdout.contains("****1234") && !stdout.contains("gsk-secret"), "{stdout}");
    assert!(stdout.contains("`model_list[0].colour` is not a known config key"), "{stdout}");
    assert!(stdout.contains("model group `a` (hedged after 250 ms)"), "{stdout}");
    assert!(stdout.contains("timeout 600s, stream_timeout 20s, stream_idle_timeout 20s"), "{stdout}");
    assert!(stdout.contains("upstream connect timeout: 5s"), "{stdout}");
    assert!(stdout.contains("model group `a` has one deployment"), "the hedge has nowhere to go: {stdout}");

    let cases = [
        ("model_list:\n  - model_name: a\n    litellm_params: {model: mock/a, rpm: many}\n", "model_list[0].litellm_params.rpm"),
        ("model_list:\n  - model_name: a\n    litellm_params: {model: openai/x, api_key: os.environ/TOLLGATE_TEST_UNSET_VAR}\n", "TOLLGATE_TEST_UNSET_VAR"),
        ("model_list:\n  - model_name: a\n    litellm_params: {model: sagemaker/x}\n", "not supported yet"),
    ];
    for (i, (yaml, want)) in cases.iter().enumerate() {
        let bad = temp_config(&format!("bad{i}"), yaml);
        let out = Command::new(tollgate_bin()).arg("check-config").arg(&bad).output().expect("run");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{yaml}");
        assert!(stderr.contains(want), "{yaml}: {stderr}");
        // Serving a bad config fails the same way.
        let out = Command::new(tollgate_bin()).arg("--config").arg(&bad).args(["--port", "0"]).output().expect("run");
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains(want));
    }
    let help = Command::new(tollgate_bin()).arg("--help").output().expect("run");
    assert!(String::from_utf8_lossy(&help.stdout).contains("check-config"));
}

#[test]
fn sigterm_turns_readiness_503_finishes_streams_then_exits_zero() {
    let config = temp_config(
        "drain",
        "model_list:\n  - model_name: slow\n    litellm_params: {model: mock/slow, mock_latency_ms: 100}\ntollgate:\n  shutdown_grace_period_seconds: 10\n",
    );
    let mut gw = GatewayProcess::spawn(&config);
    // A stream of ~15 chunks, 100 ms apart.
    let mut s = start_slow_stream(&gw);

    gw.signal("TERM");
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let r = blocking_get(&format!("{}/health/readiness", gw.url));
        if r.as_ref().is_some_and(|(status, _)| *status == 503) {
            assert!(r.is_some_and(|(_, b)| b.contains("draining")));
            break;
        }
        assert!(Instant::now() < deadline, "readiness never turned 503");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut rest = String::new();
    s.read_to_string(&mut rest).expect("stream finishes");
    assert!(rest.contains("data: [DONE]"), "in-flight stream completed: {rest}");
    let status = gw.wait_exit(Duration::from_secs(10), "did not exit after draining");
    assert!(status.success(), "exit {status}: {}", gw.log_text());
}

#[test]
fn post_config_reload_applies_a_good_file_and_refuses_a_bad_one() {
    let path = temp_config(
        "post-reload",
        "model_list:\n  - model_name: before\n    litellm_params: {model: mock/a}\ngeneral_settings: {master_key: sk-admin-0001}\n",
    );
    let gw = GatewayProcess::spawn(&path);
    let auth = [("Authorization", "Bearer sk-admin-0001")];
    let reload = |headers: &[(&str, &str)]| {
        raw_request(&format!("{}/config/reload", gw.url), "POST", headers, "").expect("reload answered")
    };
    let models = || raw_request(&format!("{}/v1/models", gw.url), "GET", &auth, "").map(|(_, b)| b).unwrap_or_default();
    assert_eq!(reload(&[]).0, 401, "admin only");
    std::fs::write(
        &path,
        "model_list:\n  - model_name: after\n    litellm_params: {model: mock/b}\ngeneral_settings: {master_key: sk-admin-0001}\n",
    )
    .expect("rewrite");
    let (status, body) = reload(&auth);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"deployments\":1"), "{body}");
    assert!(models().contains("\"after\"") && !models().contains("\"before\""));
    // A broken file: 400 naming the problem, and the current table keeps serving.
    std::fs::write(&path, "model_list: [").expect("rewrite");
    let (status, body) = reload(&auth);
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("config_invalid") && body.contains("keeps serving"), "{body}");
    assert!(models().contains("\"after\""));
}

#[test]
fn sighup_reloads_the_config_without_restarting() {
    let path = temp_config("reload", "model_list:\n  - model_name: before\n    litellm_params: {model: mock/a}\n");
    let gw = GatewayProcess::spawn(&path);
    let models = || blocking_get(&format!("{}/v1/models", gw.url)).map(|(_, b)| b).unwrap_or_default();
    assert!(models().contains("\"before\""));
    std::fs::write(&path, "model_list:\n  - model_name: after\n    litellm_params: {model: mock/b}\n")
        .expect("rewrite");
    gw.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !models().contains("\"after\"") {
        assert!(Instant::now() < deadline, "reload not applied: {}", gw.log_text());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!models().contains("\"before\""));
    // A broken file keeps the current table.
    std::fs::write(&path, "model_list: [").expect("rewrite");
    gw.signal("HUP");
    std::thread::sleep(Duration::from_millis(300));
    assert!(models().contains("\"after\""), "{}", gw.log_text());
}

#[test]
fn quick_mode_serves_one_model_with_the_key_from_the_environment() {
    let fake = tollgate_tests::FakeUpstream::start();
    let base = format!("{}/v1", fake.url);
    let gw = GatewayProcess::spawn_with(
        &["--model", "openai/normal"],
        &[("OPENAI_API_KEY", "sk-quick-mode-key-1234567"), ("OPENAI_API_BASE", &base)],
    );
    let headers = [("Content-Type", "application/json")];
    let (status, body) =
        raw_request(&format!("{}/v1/chat/completions", gw.url), "POST", &headers, &chat_body("normal", json!({})))
            .expect("chat");
    assert_eq!(status, 200, "{body}");
    assert_eq!(fake.requests()[0]["headers"]["authorization"], "Bearer sk-quick-mode-key-1234567");
    assert!(!gw.log_text().contains("sk-quick-mode-key"), "the key never reaches the logs");
}

#[test]
fn a_second_sigterm_cuts_the_drain_short() {
    let config = temp_config(
        "drain2",
        "model_list:\n  - model_name: slow\n    litellm_params: {model: mock/slow, mock_latency_ms: 100}\ntollgate:\n  shutdown_grace_period_seconds: 60\n",
    );
    let mut gw = GatewayProcess::spawn(&config);
    let mut s = start_slow_stream(&gw);
    gw.signal("TERM");
    std::thread::sleep(Duration::from_millis(200));
    assert!(gw.child.try_wait().expect("wait").is_none(), "still draining after the first SIGTERM");
    gw.signal("TERM");
    let status = gw.wait_exit(Duration::from_secs(3), "a second SIGTERM did not stop it");
    assert!(status.success(), "exit {status}");
    let mut rest = String::new();
    let _ = s.read_to_string(&mut rest);
    assert!(!rest.contains("[DONE]"), "the stream was cut, not finished");
}

/// `litellm_settings.log_level` sets the process's level (when `RUST_LOG` does not), and `json_logs` its format.
#[test]
fn the_configs_log_level_and_format_apply_to_the_process() {
    let quiet =
        "model_list:\n  - {model_name: m, litellm_params: {model: mock/m}}\nlitellm_settings: {log_level: WARNING}\n";
    let gw =
        GatewayProcess::spawn_with(&["--config", &temp_config("quiet", quiet).to_string_lossy()], &[("RUST_LOG", "")]);
    let (status, _) = raw_request(
        &format!("{}/v1/chat/completions", gw.url),
        "POST",
        &[("Content-Type", "application/json")],
        &chat_body("m", json!({})),
    )
    .expect("chat");
    assert_eq!(status, 200);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let log = gw.log_text();
    assert!(
        !log.contains("tollgate listening") && !log.contains("upstream call finished"),
        "INFO lines at WARNING: {log}"
    );
    assert!(log.contains("no general_settings.master_key"), "a warning still shows: {log}");
    let json =
        "model_list:\n  - {model_name: m, litellm_params: {model: mock/m}}\nlitellm_settings: {json_logs: true}\n";
    let gw =
        GatewayProcess::spawn_with(&["--config", &temp_config("json", json).to_string_lossy()], &[("RUST_LOG", "")]);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let log = gw.log_text();
    let listening = log.lines().find(|l| l.contains("tollgate listening")).unwrap_or_default();
    assert!(serde_json::from_str::<serde_json::Value>(listening).is_ok(), "a JSON line: {log}");
}
