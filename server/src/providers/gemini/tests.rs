//! The provider end to end without a network: construction from config, request building (URLs, headers,
//! tokens), whole replies, and streams through the real SSE framer, split at every byte.

use serde_json::{json, Value};

use super::*;
use crate::{
    config::Config,
    llm::{
        chat::{Event, Finish, Message, Part, Role, StreamError, ToolCall},
        Usage,
    },
    providers::codec::StreamReader,
};

fn deployment(params: Value, env: &dyn EnvLookup) -> Result<DeploymentConfig, ConfigError> {
    let config = json!({"model_list": [{"model_name": "g", "litellm_params": params}]});
    let yaml = serde_yaml::to_string(&config).unwrap_or_else(|e| unreachable!("{e}"));
    let mut config = Config::load_str(&yaml, env)?;
    Ok(config.deployments.remove(0))
}

fn no_env(_: &str) -> Option<String> {
    None
}

fn gemini(params: Value, env: &dyn EnvLookup) -> Result<GeminiProvider, ConfigError> {
    let d = deployment(params, env)?;
    let model = d.model.split_once('/').map(|(_, m)| m.to_owned()).unwrap_or_default();
    GeminiProvider::new(&d, &model, env)
}

fn vertex(params: Value, env: &dyn EnvLookup) -> Result<GeminiProvider, ConfigError> {
    let d = deployment(params, env)?;
    let model = d.model.split_once('/').map(|(_, m)| m.to_owned()).unwrap_or_default();
    GeminiProvider::new_vertex(&d, &model, env)
}

fn hi() -> Chat {
    Chat { messages: vec![Message { role: Role::User, parts: vec![Part::Text("Hi".into())] }], ..Chat::default() }
}

fn options(stream: bool) -> CallOptions<'static> {
    CallOptions { upstream_model: "gemini-2.5-flash", stream, drop_params: false }
}

fn header<'a>(req: &'a UpstreamRequest, name: &str) -> Option<&'a HeaderValue> {
    req.headers.iter().find(|(n, _)| n.as_str() == name).map(|(_, v)| v)
}

fn error_text(e: ConfigError) -> String {
    e.to_string()
}

#[test]
fn gemini_base_and_key_come_from_config_then_environment() {
    let env = |name: &str| match name {
        "GEMINI_API_KEY" => Some("AIza-from-env-gemini".to_owned()),
        "GOOGLE_API_KEY" => Some("AIza-from-env-google".to_owned()),
        "GEMINI_API_BASE" => Some("https://proxy.example/v1beta/".to_owned()),
        _ => None,
    };
    let google_only = |name: &str| (name == "GOOGLE_API_KEY").then(|| "AIza-google-only".to_owned());
    let cases: Vec<(Value, &dyn EnvLookup, Result<(&str, Option<&str>), &str>)> = vec![
        (
            json!({"model": "gemini/gemini-2.5-flash", "api_key": "AIza-config-key"}),
            &no_env,
            Ok((
                "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent",
                Some("AIza-config-key"),
            )),
        ),
        (
            json!({"model": "gemini/gemini-2.5-flash"}),
            &env,
            Ok(("https://proxy.example/v1beta/models/gemini-2.5-flash:generateContent", Some("AIza-from-env-gemini"))),
        ),
        (
            json!({"model": "gemini/gemini-2.5-flash"}),
            &google_only,
            Ok((
                "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent",
                Some("AIza-google-only"),
            )),
        ),
        (
            json!({"model": "gemini/gemini-2.5-flash", "api_base": "http://127.0.0.1:9/v1beta"}),
            &no_env,
            Ok(("http://127.0.0.1:9/v1beta/models/gemini-2.5-flash:generateContent", None)),
        ),
        (json!({"model": "gemini/gemini-2.5-flash"}), &no_env, Err("model_list[0].litellm_params.api_key")),
        (json!({"model": "gemini/gemini 2.5"}), &google_only, Err("model_list[0].litellm_params.model")),
    ];
    for (params, env, want) in cases {
        let got = gemini(params.clone(), env).and_then(|p| {
            let req = p.chat_request(&hi(), CallOptions { upstream_model: &p.model.clone(), ..options(false) });
            let req = req.map_err(|e| ConfigError::invalid("unexpected", e.to_string()))?;
            let key = header(&req, "x-goog-api-key").and_then(|v| v.to_str().ok()).map(str::to_owned);
            assert!(header(&req, "x-goog-api-key").is_none_or(HeaderValue::is_sensitive));
            assert!(!req.url.to_string().contains("key="), "the key never goes in the URL");
            Ok((req.url.to_string(), key))
        });
        match (got, want) {
            (Ok((url, key)), Ok((want_url, want_key))) => {
                assert_eq!((url.as_str(), key.as_deref()), (want_url, want_key))
            }
            (Err(e), Err(path)) => assert!(error_text(e).contains(path), "{params}"),
            (got, want) => unreachable!("{params}: got {got:?}, want {want:?}"),
        }
    }
}

#[test]
fn gemini_requests_urls_headers_and_secrets() {
    let env = no_env;
    let p = gemini(
        json!({"model": "gemini/gemini-2.5-flash", "api_key": "AIza-config-key-0001",
               "extra_headers": {"X-Trace-Token": "trace-secret-42", "X-App": "app"}}),
        &env,
    )
    .unwrap_or_else(|e| unreachable!("{e}"));
    assert_eq!((p.provider(), p.framing(), p.sends_key()), ("gemini", Framing::Sse, true));
    assert_eq!(p.endpoint(), "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash");
    let req = p.chat_request(&hi(), options(true)).unwrap_or_else(|e| unreachable!("{e}"));
    assert_eq!(
        req.url.to_string(),
        "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    );
    let names: Vec<&str> = req.headers.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["x-goog-api-key", "x-app", "x-trace-token"]);
    assert!(req.headers.iter().all(|(_, v)| v.is_sensitive()));
    let body: Value = serde_json::from_slice(&req.body).unwrap_or_default();
    assert_eq!(body, json!({"contents": [{"role": "user", "parts": [{"text": "Hi"}]}]}));
    // Another model than the deployment's gets its own URL.
    let other = CallOptions { upstream_model: "gemini-2.0-flash", ..options(false) };
    let req = p.chat_request(&hi(), other).unwrap_or_else(|e| unreachable!("{e}"));
    assert_eq!(req.url.path(), "/v1beta/models/gemini-2.0-flash:generateContent");
    let debug = format!("{p:?}");
    assert!(!debug.contains("AIza-config-key-0001") && !debug.contains("trace-secret-42"), "{debug}");
    let e = p.parse_error(
        "g#0",
        400,
        &HeaderMap::new(),
        br#"{"error":{"code":400,"message":"key AIza-config-key-0001 trace-secret-42 app","status":"INVALID_ARGUMENT"}}"#,
    );
    assert_eq!(e.message, "key **** **** app");
    // Refused parameters name the provider.
    let chat = Chat { user: Some("u".into()), ..hi() };
    let refused = p.chat_request(&chat, options(false)).err();
    assert_eq!(refused, Some(Unsupported { param: "user".into(), provider: "gemini" }));
    assert!(p.token_refresh(0).is_none());
    assert!(p.install_token(b"{}", 0).is_err());
}

#[test]
fn gemini_embeddings() {
    let p = gemini(json!({"model": "gemini/text-embedding-004", "api_key": "k"}), &no_env)
        .unwrap_or_else(|e| unreachable!("{e}"));
    let input = EmbedInput { texts: vec!["a".into()], dimensions: None };
    let req = p.embeddings_request(&input, "text-embedding-004").unwrap_or_else(|e| unreachable!("{e}"));
    assert_eq!(req.url.path(), "/v1beta/models/text-embedding-004:batchEmbedContents");
    let body: Value = serde_json::from_slice(&req.body).unwrap_or_default();
    assert_eq!(body["requests"][0]["model"], "models/text-embedding-004");
    let got = p.decode_embeddings(br#"{"embeddings":[{"values":[0.5]}]}"#);
    assert_eq!(got, Ok(Embeddings { vectors: vec![vec![0.5]], prompt_tokens: None }));
}

fn credentials(token_uri: &str) -> String {
    auth::tests::service_account_json(token_uri)
}

#[test]
fn vertex_placement_from_config_environment_and_credentials() {
    let creds = credentials("https://oauth2.googleapis.com/token");
    let env = |name: &str| match name {
        "VERTEXAI_PROJECT" => Some("env-proj".to_owned()),
        "VERTEXAI_LOCATION" => Some("asia-northeast1".to_owned()),
        _ => None,
    };
    let base = "/publishers/google/models/gemini-2.5-pro";
    let cases: Vec<(Value, &dyn EnvLookup, &str)> = vec![
        (
            json!({"vertex_project": "p1", "vertex_location": "europe-west4"}),
            &no_env,
            "https://europe-west4-aiplatform.googleapis.com/v1/projects/p1/locations/europe-west4",
        ),
        (
            json!({}),
            &env,
            "https://asia-northeast1-aiplatform.googleapis.com/v1/projects/env-proj/locations/asia-northeast1",
        ),
        (
            json!({}),
            &no_env,
            "https://us-central1-aiplatform.googleapis.com/v1/projects/proj-from-file/locations/us-central1",
        ),
        (
            json!({"vertex_location": "global"}),
            &no_env,
            "https://aiplatform.googleapis.com/v1/projects/proj-from-file/locations/global",
        ),
        (
            json!({"vertex_location": "eu"}),
            &no_env,
            "https://aiplatform.eu.rep.googleapis.com/v1/projects/proj-from-file/locations/eu",
        ),
        (
            json!({"vertex_location": "us-east5", "api_base": "http://127.0.0.1:9/"}),
            &no_env,
            "http://127.0.0.1:9/v1/projects/proj-from-file/locations/us-east5",
        ),
    ];
    for (mut params, env, want) in cases {
        params["model"] = json!("vertex_ai/gemini-2.5-pro");
        params["vertex_credentials"] = json!(creds);
        let p = vertex(params.clone(), env).unwrap_or_else(|e| unreachable!("{params}: {e}"));
        assert_eq!(p.endpoint(), format!("{want}{base}"), "{params}");
        assert_eq!(p.urls.generate.to_string(), format!("{want}{base}:generateContent"));
        assert_eq!(p.urls.stream.to_string(), format!("{want}{base}:streamGenerateContent?alt=sse"));
        assert_eq!(p.urls.embed.to_string(), format!("{want}{base}:predict"));
    }
}

#[test]
fn vertex_credentials_from_a_file_or_the_environment_and_errors() {
    let dir = std::env::temp_dir().join(format!("tollgate-gemini-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| unreachable!("{e}"));
    let file = dir.join("sa.json");
    std::fs::write(&file, credentials("https://oauth2.googleapis.com/token")).unwrap_or_else(|e| unreachable!("{e}"));
    let path = file.display().to_string();
    let adc = |name: &str| (name == "GOOGLE_APPLICATION_CREDENTIALS").then(|| path.clone());
    let model = json!("vertex_ai/gemini-2.5-pro");
    assert!(vertex(json!({"model": model, "vertex_credentials": path}), &no_env).is_ok());
    assert!(vertex(json!({"model": model}), &adc).is_ok());
    let cases: Vec<(Value, &str)> = vec![
        (json!({"model": model}), "litellm_params.vertex_credentials`: no Vertex AI credentials"),
        (
            json!({"model": model, "vertex_credentials": "/nonexistent/sa.json"}),
            "cannot read the credentials file /nonexistent/sa.json",
        ),
        (
            json!({"model": model, "vertex_credentials": "{\"type\":\"service_account\"}"}),
            "credentials lack `client_email`",
        ),
        (
            json!({"model": model, "vertex_credentials": r#"{"type":"authorized_user","client_id":"c","client_secret":"s","refresh_token":"r"}"#}),
            "litellm_params.vertex_project`: no project",
        ),
        (
            json!({"model": model, "vertex_credentials": credentials("x"), "vertex_location": "us-central1/../x"}),
            "not a valid Google Cloud location",
        ),
        (json!({"model": model, "vertex_credentials": credentials("not a url")}), "`token_uri` is not a valid URL"),
    ];
    for (params, want) in cases {
        let got = vertex(params.clone(), &no_env).err().map(error_text).unwrap_or_default();
        assert!(got.contains(want), "{params}: {got}");
        assert!(!got.contains("BEGIN PRIVATE KEY"), "{got}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn vertex_requests_wait_for_a_token_then_carry_it() {
    let p = vertex(
        json!({"model": "vertex_ai/gemini-2.5-pro", "vertex_project": "p1",
               "vertex_credentials": credentials("https://oauth2.googleapis.com/token")}),
        &no_env,
    )
    .unwrap_or_else(|e| unreachable!("{e}"));
    let options = CallOptions { upstream_model: "gemini-2.5-pro", stream: false, drop_params: false };
    assert_eq!((p.provider(), p.sends_key(), p.token_expires_at()), ("vertex_ai", true, None));
    let err = p.chat_request(&hi(), options).err();
    assert_eq!(err.map(|e| e.param), Some("vertex_credentials (token not yet fetched)".to_owned()));
    let refresh =
        p.token_refresh(1_700_000_000).and_then(Result::ok).unwrap_or_else(|| unreachable!("a token request"));
    assert_eq!(refresh.url.to_string(), "https://oauth2.googleapis.com/token");
    assert!(String::from_utf8_lossy(&refresh.body)
        .starts_with("grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=ey"));
    let renew = p.install_token(
        br#"{"access_token":"ya29.token-value-1","expires_in":3599,"token_type":"Bearer"}"#,
        1_700_000_000,
    );
    assert_eq!(renew, Ok(Duration::from_secs(3299)));
    assert_eq!(p.token_expires_at(), Some(1_700_003_599));
    let req = p.chat_request(&hi(), options).unwrap_or_else(|e| unreachable!("{e}"));
    let auth = header(&req, "authorization").unwrap_or_else(|| unreachable!("authorization header"));
    assert_eq!((auth.to_str().ok(), auth.is_sensitive()), (Some("Bearer ya29.token-value-1"), true));
    assert!(header(&req, "x-goog-api-key").is_none());
    assert!(!format!("{p:?}").contains("ya29"));
    let e = p.parse_error(
        "v#0",
        401,
        &HeaderMap::new(),
        br#"{"error":{"code":401,"message":"bad ya29.token-value-1","status":"UNAUTHENTICATED"}}"#,
    );
    assert_eq!((e.message.as_str(), e.kind.as_deref()), ("bad ****", Some("authentication_error")));
    // Embeddings go to `:predict`.
    let input = EmbedInput { texts: vec!["a".into()], dimensions: Some(4) };
    let req = p.embeddings_request(&input, "text-embedding-005").unwrap_or_else(|e| unreachable!("{e}"));
    assert_eq!(
        req.url.path(),
        "/v1/projects/p1/locations/us-central1/publishers/google/models/text-embedding-005:predict"
    );
    let body: Value = serde_json::from_slice(&req.body).unwrap_or_default();
    assert_eq!(body, json!({"instances": [{"content": "a"}], "parameters": {"outputDimensionality": 4}}));
    let got = p.decode_embeddings(br#"{"predictions":[{"embeddings":{"values":[1],"statistics":{"token_count":1}}}]}"#);
    assert_eq!(got.map(|e| e.prompt_tokens), Ok(Some(1)));
}

// ---- whole replies ----

fn usage(prompt: u64, completion: u64, cached: u64, reasoning: u64) -> Usage {
    Usage {
        prompt_tokens: prompt,
        completion_tokens: completion,
        cache_read_tokens: cached,
        cache_write_tokens: 0,
        reasoning_tokens: reasoning,
    }
}

const USAGE_JSON: &str = r#"{"promptTokenCount":21,"candidatesTokenCount":7,"thoughtsTokenCount":5,"cachedContentTokenCount":8,"totalTokenCount":33}"#;

fn candidate_reply(parts: &str, finish: &str) -> String {
    format!(
        r#"{{"candidates":[{{"content":{{"role":"model","parts":{parts}}},"finishReason":"{finish}","index":0}}],"usageMetadata":{USAGE_JSON},"modelVersion":"gemini-2.5-flash-001","responseId":"resp-1"}}"#
    )
}

#[test]
fn replies_decode_parts_finish_reasons_and_usage() {
    let text = r#"[{"text":"Hello"},{"text":" there"}]"#;
    let cases: Vec<(String, Vec<Part>, Option<Finish>)> = vec![
        (candidate_reply(text, "STOP"), vec![Part::Text("Hello there".into())], Some(Finish::Stop)),
        (candidate_reply(text, "MAX_TOKENS"), vec![Part::Text("Hello there".into())], Some(Finish::Length)),
        (candidate_reply("[]", "SAFETY"), vec![], Some(Finish::ContentFilter)),
        (candidate_reply("[]", "RECITATION"), vec![], Some(Finish::ContentFilter)),
        (candidate_reply("[]", "PROHIBITED_CONTENT"), vec![], Some(Finish::ContentFilter)),
        (candidate_reply("[]", "SPII"), vec![], Some(Finish::ContentFilter)),
        (candidate_reply("[]", "BLOCKLIST"), vec![], Some(Finish::ContentFilter)),
        (candidate_reply(text, "MALFORMED_FUNCTION_CALL"), vec![Part::Text("Hello there".into())], Some(Finish::Stop)),
        (candidate_reply(text, "SOMETHING_NEW"), vec![Part::Text("Hello there".into())], Some(Finish::Stop)),
        (
            candidate_reply(
                r#"[{"text":"Let me think.","thought":true},{"text":"Checking.","thoughtSignature":"sig-text"},
                    {"functionCall":{"name":"get_weather","args":{"city":"Paris"}},"thoughtSignature":"sig-call"},
                    {"functionCall":{"name":"get_time"}},
                    {"functionCall":{"name":"lookup","args":{},"id":"own-id"}}]"#,
                "STOP",
            ),
            vec![
                Part::Reasoning { text: "Let me think.".into(), signature: Some("sig-text".into()) },
                Part::Text("Checking.".into()),
                Part::ToolCall(ToolCall {
                    id: "call_resp1_0__thought__sig-call".into(),
                    name: "get_weather".into(),
                    arguments: r#"{"city":"Paris"}"#.into(),
                }),
                Part::ToolCall(ToolCall { id: "call_resp1_1".into(), name: "get_time".into(), arguments: "{}".into() }),
                Part::ToolCall(ToolCall { id: "own-id".into(), name: "lookup".into(), arguments: "{}".into() }),
            ],
            Some(Finish::ToolCalls),
        ),
        (
            candidate_reply(r#"[{"functionCall":{"name":"f","args":{"a":1}}}]"#, "MAX_TOKENS"),
            vec![Part::ToolCall(ToolCall {
                id: "call_resp1_0".into(),
                name: "f".into(),
                arguments: r#"{"a":1}"#.into(),
            })],
            Some(Finish::Length),
        ),
    ];
    for (body, parts, finish) in cases {
        let reply = reply::decode(body.as_bytes(), "dep-model").unwrap_or_else(|e| unreachable!("{body}: {e}"));
        assert_eq!(reply.parts, parts, "{body}");
        assert_eq!(reply.finish, finish, "{body}");
        assert_eq!((reply.id.as_str(), reply.model.as_str()), ("resp-1", "gemini-2.5-flash-001"));
        assert_eq!(reply.usage, Some(usage(21, 12, 8, 5)), "completion = candidates + thoughts");
    }
}

#[test]
fn blocked_prompts_odd_usage_and_bad_bodies() {
    let blocked = br#"{"promptFeedback":{"blockReason":"PROHIBITED_CONTENT"},"usageMetadata":{"promptTokenCount":9,"totalTokenCount":9}}"#;
    let reply = reply::decode(blocked, "dep-model").unwrap_or_else(|e| unreachable!("{e}"));
    assert_eq!(
        (reply.parts.len(), reply.finish, reply.usage, reply.model.as_str(), reply.id.as_str()),
        (0, Some(Finish::ContentFilter), Some(usage(9, 0, 0, 0)), "dep-model", "")
    );
    // Tool-use prompt tokens are input.
    let tool_use = br#"{"candidates":[{"content":{"parts":[{"text":"x"}]},"finishReason":"STOP"}],"usageMetadata":{"promptTokenCount":10,"toolUsePromptTokenCount":4,"candidatesTokenCount":2}}"#;
    assert_eq!(reply::decode(tool_use, "m").map(|r| r.usage), Ok(Some(usage(14, 2, 0, 0))));
    for bad in
        [&b"{"[..], b"[]", br#"{"candidates":[]}"#, br#"{"error":{"code":500,"message":"boom","status":"INTERNAL"}}"#]
    {
        assert!(reply::decode(bad, "m").is_err(), "{}", String::from_utf8_lossy(bad));
    }
}

// ---- streams ----

/// Recorded-shape events (`\r\n` line endings, as Google sends them).
fn sse(events: &[&str]) -> Vec<u8> {
    events.iter().map(|e| format!("data: {e}\r\n\r\n")).collect::<String>().into_bytes()
}

fn text_stream() -> Vec<u8> {
    sse(&[
        r#"{"candidates": [{"content": {"parts": [{"text": "Hello"}],"role": "model"},"index": 0}],"usageMetadata": {"promptTokenCount": 21,"candidatesTokenCount": 1,"totalTokenCount": 22,"cachedContentTokenCount": 8},"modelVersion": "gemini-2.5-flash","responseId": "r-1"}"#,
        r#"{"candidates": [{"content": {"parts": [{"text": " wörld"}],"role": "model"},"index": 0}],"modelVersion": "gemini-2.5-flash","responseId": "r-1"}"#,
        r#"{"candidates": [{"content": {"parts": [{"text": "!"}],"role": "model"},"finishReason": "STOP","index": 0}],"usageMetadata": {"promptTokenCount": 21,"candidatesTokenCount": 7,"totalTokenCount": 33,"cachedContentTokenCount": 8,"thoughtsTokenCount": 5,"promptTokensDetails": [{"modality": "TEXT","tokenCount": 21}]},"modelVersion": "gemini-2.5-flash","responseId": "r-1"}"#,
    ])
}

fn tools_stream() -> Vec<u8> {
    sse(&[
        r#"{"candidates": [{"content": {"parts": [{"text": "Weighing it.","thought": true}],"role": "model"},"index": 0}],"usageMetadata": {"promptTokenCount": 30,"totalTokenCount": 30},"modelVersion": "gemini-2.5-pro","responseId": "r-2"}"#,
        r#"{"candidates": [{"content": {"parts": [{"functionCall": {"name": "get_weather","args": {"city": "Paris"}},"thoughtSignature": "c2ln"}],"role": "model"},"index": 0}],"modelVersion": "gemini-2.5-pro","responseId": "r-2"}"#,
        r#"{"candidates": [{"content": {"parts": [{"functionCall": {"name": "get_time","args": {}}}],"role": "model"},"finishReason": "STOP","index": 0}],"modelVersion": "gemini-2.5-pro","responseId": "r-2"}"#,
        r#"{"candidates": [{"content": {"role": "model"},"finishReason": "STOP","index": 0}],"usageMetadata": {"promptTokenCount": 30,"candidatesTokenCount": 12,"thoughtsTokenCount": 40,"totalTokenCount": 82},"modelVersion": "gemini-2.5-pro","responseId": "r-2"}"#,
    ])
}

fn error_stream() -> Vec<u8> {
    sse(&[
        r#"{"candidates": [{"content": {"parts": [{"text": "Hel"}],"role": "model"},"index": 0}],"usageMetadata": {"promptTokenCount": 5,"candidatesTokenCount": 1},"modelVersion": "gemini-2.5-flash","responseId": "r-3"}"#,
        r#"{"error": {"code": 503,"message": "The model is overloaded. Please try again later.","status": "UNAVAILABLE"}}"#,
    ])
}

fn cut_stream() -> Vec<u8> {
    let mut bytes = text_stream();
    let last = bytes.windows(6).rposition(|w| w == b"data: ").unwrap_or_else(|| unreachable!("events"));
    bytes.truncate(last);
    bytes
}

/// Framer and decoder over `chunks`, as the pipeline runs them: events, then the end (or the first failure).
fn run(chunks: &[&[u8]]) -> (Vec<Event>, Result<(), String>) {
    StreamReader::decode(Framing::Sse, Box::new(stream::Decoder::new("dep-model")), chunks.iter().copied())
}

fn start(id: &str, model: &str) -> Event {
    Event::Start { id: id.into(), model: model.into() }
}

#[test]
fn stream_fixtures_decode_to_canonical_events() {
    let cases: Vec<(&str, Vec<u8>, Vec<Event>, Result<(), String>)> = vec![
        (
            "text",
            text_stream(),
            vec![
                start("r-1", "gemini-2.5-flash"),
                Event::Usage(usage(21, 1, 8, 0)),
                Event::Text("Hello".into()),
                Event::Text(" wörld".into()),
                Event::Usage(usage(21, 12, 8, 5)),
                Event::Text("!".into()),
                Event::Finish(Finish::Stop),
            ],
            Ok(()),
        ),
        (
            "two tools, one without arguments",
            tools_stream(),
            vec![
                start("r-2", "gemini-2.5-pro"),
                Event::Usage(usage(30, 0, 0, 0)),
                Event::Reasoning("Weighing it.".into()),
                Event::ToolStart { index: 0, id: "call_r2_0__thought__c2ln".into(), name: "get_weather".into() },
                Event::ToolArgs { index: 0, fragment: r#"{"city":"Paris"}"#.into() },
                Event::ToolStart { index: 1, id: "call_r2_1".into(), name: "get_time".into() },
                Event::ToolArgs { index: 1, fragment: "{}".into() },
                Event::Usage(usage(30, 52, 0, 40)),
                Event::Finish(Finish::ToolCalls),
            ],
            Ok(()),
        ),
        (
            "in-stream error",
            error_stream(),
            vec![
                start("r-3", "gemini-2.5-flash"),
                Event::Usage(usage(5, 1, 0, 0)),
                Event::Text("Hel".into()),
                Event::Error(StreamError {
                    kind: "UNAVAILABLE".into(),
                    message: "The model is overloaded. Please try again later.".into(),
                }),
            ],
            Ok(()),
        ),
        (
            "cut after whole events",
            cut_stream(),
            vec![
                start("r-1", "gemini-2.5-flash"),
                Event::Usage(usage(21, 1, 8, 0)),
                Event::Text("Hello".into()),
                Event::Text(" wörld".into()),
            ],
            Err("the Gemini stream ended before a finishReason".into()),
        ),
        (
            "blocked prompt",
            sse(&[
                r#"{"promptFeedback": {"blockReason": "SAFETY"},"usageMetadata": {"promptTokenCount": 4},"responseId": "r-4"}"#,
            ]),
            vec![start("r-4", "dep-model"), Event::Usage(usage(4, 0, 0, 0)), Event::Finish(Finish::ContentFilter)],
            Ok(()),
        ),
        (
            "safety stop",
            sse(&[
                r#"{"candidates": [{"content": {"parts": [{"text": "Sure"}]}}],"responseId": "r-5"}"#,
                r#"{"candidates": [{"finishReason": "SAFETY","safetyRatings": [{"category": "HARM_CATEGORY_HARASSMENT","probability": "HIGH","blocked": true}]}],"responseId": "r-5"}"#,
            ]),
            vec![start("r-5", "dep-model"), Event::Text("Sure".into()), Event::Finish(Finish::ContentFilter)],
            Ok(()),
        ),
        ("empty body", Vec::new(), vec![], Err("the Gemini stream ended before its first event".into())),
    ];
    for (name, bytes, events, end) in cases {
        assert_eq!(run(&[&bytes]), (events, end), "{name}");
    }
}

#[test]
fn a_stream_cut_mid_json_or_malformed_is_an_error() {
    let whole = text_stream();
    let cut = &whole[..whole.len() - 20];
    let (events, end) = run(&[cut]);
    assert!(end.is_err(), "{events:?}");
    assert!(!events.iter().any(|e| matches!(e, Event::Finish(_))), "a cut stream never finishes: {events:?}");
    // The counts Google sent before the cut are still read: the pipeline books them whichever way it broke.
    let last_usage = events.iter().rev().find_map(|e| if let Event::Usage(u) = e { Some(*u) } else { None });
    assert_eq!(last_usage, Some(usage(21, 1, 8, 0)), "{events:?}");
    let (_, end) = run(&[b"data: {\"candidates\": [\n\n"]);
    assert!(end.is_err_and(|e| e.contains("not a Gemini GenerateContentResponse")));
    let (_, end) = run(&[b"data: [1, 2]\n\n"]);
    assert!(end.is_err());
}

#[test]
fn every_split_of_every_fixture_gives_the_same_events() {
    for bytes in [text_stream(), tools_stream(), error_stream(), cut_stream()] {
        let whole = run(&[&bytes]);
        for at in 0..=bytes.len() {
            let (a, b) = bytes.split_at(at);
            assert_eq!(run(&[a, b]), whole, "split at {at}");
        }
        // A few random multi-splits (fixed seed, so failures reproduce).
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64 ^ bytes.len() as u64;
        for _ in 0..50 {
            let mut cuts: Vec<usize> = (0..6)
                .map(|_| {
                    seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
                    (seed >> 33) as usize % (bytes.len() + 1)
                })
                .collect();
            cuts.sort_unstable();
            let mut pieces = Vec::new();
            let mut from = 0;
            for cut in cuts {
                pieces.push(&bytes[from..cut]);
                from = cut;
            }
            pieces.push(&bytes[from..]);
            assert_eq!(run(&pieces), whole, "cuts {pieces:?}");
        }
    }
}
