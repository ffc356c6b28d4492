//! The fake Gemini API and Vertex AI over real HTTP: paths, auth, every mode's wire format, the token endpoint.

use std::{
    io::Write,
    net::TcpStream,
    time::{SystemTime, UNIX_EPOCH},
};

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use serde_json::{json, Value};
use tollgate_fakes::{
    raw::{read_response, Response},
    FakeUpstream,
};

const KEY: &str = "AIza-fake-test-key";

fn send(url: &str, path: &str, headers: &[(&str, &str)], content_type: &str, body: &str) -> Response {
    let host = url.trim_start_matches("http://");
    let mut stream = TcpStream::connect(host).expect("connect to the fake");
    let mut head = format!("POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: {content_type}\r\n");
    for (name, value) in headers {
        head += &format!("{name}: {value}\r\n");
    }
    head += &format!("Content-Length: {}\r\nConnection: close\r\n\r\n", body.len());
    stream.write_all(head.as_bytes()).expect("send head");
    stream.write_all(body.as_bytes()).expect("send body");
    read_response(&mut stream)
}

fn gemini(url: &str, model: &str, method: &str, body: &Value) -> Response {
    let path = format!("/v1beta/models/{model}:{method}");
    send(url, &path, &[("x-goog-api-key", KEY)], "application/json", &body.to_string())
}

fn chat() -> Value {
    json!({"systemInstruction": {"parts": [{"text": "Be terse."}]},
           "contents": [{"role": "user", "parts": [{"text": "Hi"}]}]})
}

/// The `data:` payloads of an SSE body, checking Google's `\r\n\r\n` separators on the way.
fn events(r: &Response) -> Vec<Value> {
    let text = r.text();
    assert!(text.ends_with("\r\n\r\n"), "{text:?}");
    text.split("\r\n\r\n")
        .filter(|e| !e.is_empty())
        .map(|e| {
            let data = e.strip_prefix("data: ").unwrap_or_else(|| panic!("a data line: {e:?}"));
            serde_json::from_str(data).unwrap_or_else(|err| panic!("{err}: {data}"))
        })
        .collect()
}

fn usage(candidates: u64) -> Value {
    json!({"promptTokenCount": 21, "candidatesTokenCount": candidates, "thoughtsTokenCount": 5,
           "cachedContentTokenCount": 8, "totalTokenCount": 26 + candidates,
           "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 21}]})
}

fn response(model: &str, seq: u64, parts: Value, finish: Option<&str>, usage: Value) -> Value {
    let mut candidate = json!({"content": {"parts": parts, "role": "model"}, "index": 0});
    if let Some(f) = finish {
        candidate["finishReason"] = json!(f);
    }
    json!({"candidates": [candidate], "usageMetadata": usage, "modelVersion": model, "responseId": format!("fake-gemini-{seq}")})
}

#[test]
fn normal_reply_and_stream_are_exact() {
    let fake = FakeUpstream::start();
    let r = gemini(&fake.url, "normal", "generateContent", &chat());
    assert_eq!((r.status, r.header("content-type")), (200, Some("application/json")));
    assert_eq!(r.json(), response("normal", 1, json!([{"text": "Hello from fake gemini"}]), Some("STOP"), usage(7)));

    let path = "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse";
    let r = send(&fake.url, path, &[("x-goog-api-key", KEY)], "application/json", &chat().to_string());
    assert_eq!((r.status, r.header("content-type"), r.complete), (200, Some("text/event-stream"), true));
    let want: Vec<Value> = [("Hello", None, 2), (" from", None, 4), (" fake", None, 6), (" gemini", Some("STOP"), 7)]
        .into_iter()
        .map(|(t, f, n)| response("gemini-2.5-flash", 2, json!([{"text": t}]), f, usage(n)))
        .collect();
    assert_eq!(events(&r), want);

    // Without alt=sse: one JSON array of the same events.
    let path = "/v1beta/models/normal:streamGenerateContent";
    let r = send(&fake.url, path, &[("x-goog-api-key", KEY)], "application/json", &chat().to_string());
    assert_eq!(r.json().as_array().map(Vec::len), Some(4));

    let seen = fake.requests();
    assert_eq!(seen[1]["path"], "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse");
    assert_eq!(seen[1]["headers"]["x-goog-api-key"], KEY);
    assert_eq!(seen[1]["body"], chat());
}

#[test]
fn tools_thinking_and_finish_modes() {
    let fake = FakeUpstream::start();
    let tools = gemini(&fake.url, "tools", "generateContent", &chat()).json();
    assert_eq!(
        tools["candidates"][0]["content"]["parts"],
        json!([{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": "ZmFrZS1zaWduYXR1cmU="},
               {"functionCall": {"name": "get_time", "args": {}}}])
    );
    assert_eq!(tools["candidates"][0]["finishReason"], "STOP");
    let r = gemini(&fake.url, "tools", "streamGenerateContent", &chat());
    assert_eq!(r.status, 200, "no alt=sse: a JSON array");
    let path = "/v1beta/models/tools:streamGenerateContent?alt=sse";
    let streamed = events(&send(&fake.url, path, &[("x-goog-api-key", KEY)], "application/json", &chat().to_string()));
    assert_eq!(streamed.len(), 2);
    assert_eq!(streamed[1]["candidates"][0]["content"]["parts"][0]["functionCall"]["args"], json!({}));

    let thinking = gemini(&fake.url, "thinking", "generateContent", &chat()).json();
    assert_eq!(thinking["candidates"][0]["content"]["parts"][0]["thought"], true);
    let max = gemini(&fake.url, "max-tokens", "generateContent", &chat()).json();
    assert_eq!(max["candidates"][0]["finishReason"], "MAX_TOKENS");
    let safety = gemini(&fake.url, "safety", "generateContent", &chat()).json();
    assert_eq!(
        (safety["candidates"][0].get("content"), &safety["candidates"][0]["finishReason"]),
        (None, &json!("SAFETY"))
    );
    let blocked = gemini(&fake.url, "blocked", "generateContent", &chat()).json();
    assert_eq!((blocked.get("candidates"), &blocked["promptFeedback"]["blockReason"]), (None, &json!("SAFETY")));
    let echo = gemini(&fake.url, "echo", "generateContent", &chat()).json();
    let echoed: Value =
        serde_json::from_str(echo["candidates"][0]["content"]["parts"][0]["text"].as_str().unwrap_or(""))
            .unwrap_or_default();
    assert_eq!(echoed, chat());
}

#[test]
fn errors_in_googles_shape() {
    let fake = FakeUpstream::start();
    let cases = [
        ("error-400", 400, "INVALID_ARGUMENT"),
        ("error-429", 429, "RESOURCE_EXHAUSTED"),
        ("error-503", 503, "UNAVAILABLE"),
        ("error-context", 400, "INVALID_ARGUMENT"),
        ("stream-error", 503, "UNAVAILABLE"),
    ];
    for (model, status, rpc) in cases {
        let r = gemini(&fake.url, model, "generateContent", &chat());
        let body = r.json();
        assert_eq!(
            (r.status, &body["error"]["status"], &body["error"]["code"]),
            (status, &json!(rpc), &json!(status)),
            "{model}"
        );
    }
    let r = gemini(&fake.url, "error-429", "generateContent", &chat()).json();
    assert_eq!(r["error"]["details"][1]["retryDelay"], "7s");
    let r = gemini(&fake.url, "error-context", "generateContent", &chat()).json();
    assert!(r["error"]["message"].as_str().is_some_and(|m| m.contains("input token count")));

    let path = "/v1beta/models/stream-error:streamGenerateContent?alt=sse";
    let streamed = events(&send(&fake.url, path, &[("x-goog-api-key", KEY)], "application/json", &chat().to_string()));
    assert_eq!(
        streamed[1],
        json!({"error": {"code": 503, "message": "The model is overloaded. Please try again later.", "status": "UNAVAILABLE"}})
    );

    // Auth and request-shape errors.
    let no_key = send(&fake.url, "/v1beta/models/normal:generateContent", &[], "application/json", &chat().to_string());
    assert_eq!((no_key.status, &no_key.json()["error"]["status"]), (403, &json!("PERMISSION_DENIED")));
    let bad = send(
        &fake.url,
        "/v1beta/models/normal:generateContent",
        &[("x-goog-api-key", "bad-key")],
        "application/json",
        &chat().to_string(),
    );
    assert_eq!((bad.status, &bad.json()["error"]["details"][0]["reason"]), (400, &json!("API_KEY_INVALID")));
    let shapes = [
        json!({"contents": [{"role": "assistant", "parts": [{"text": "x"}]}]}),
        json!({"contents": [{"role": "user", "parts": [{"text": "x"}]}], "model": "x"}),
        json!({"contents": [{"role": "user", "parts": [{"text": "x"}]}],
               "tools": [{"functionDeclarations": [{"name": "f", "parameters": {"type": "object", "additionalProperties": false, "properties": {"a": {"type": "string"}}}}]}]}),
        json!({"contents": [{"role": "user", "parts": [{"text": "x"}]}],
               "tools": [{"functionDeclarations": [{"name": "f", "parameters": {"type": "object", "properties": {}}}]}]}),
        json!({"contents": []}),
    ];
    for body in shapes {
        let r = gemini(&fake.url, "normal", "generateContent", &body);
        assert_eq!((r.status, &r.json()["error"]["status"]), (400, &json!("INVALID_ARGUMENT")), "{body}");
    }
    assert_eq!(gemini(&fake.url, "normal", "nope", &chat()).status, 404);
}

#[test]
fn cut_streams_and_bodies() {
    let fake = FakeUpstream::start();
    let path = "/v1beta/models/cut:streamGenerateContent?alt=sse";
    let r = send(&fake.url, path, &[("x-goog-api-key", KEY)], "application/json", &chat().to_string());
    let streamed = events(&r);
    assert_eq!(streamed.len(), 2);
    assert!(streamed.iter().all(|e| e["candidates"][0].get("finishReason").is_none()), "no finishReason: {streamed:?}");

    let path = "/v1beta/models/cut-json:streamGenerateContent?alt=sse";
    let text = send(&fake.url, path, &[("x-goog-api-key", KEY)], "application/json", &chat().to_string()).text();
    let last = text.rsplit("\r\n\r\n").next().unwrap_or_default();
    assert!(last.starts_with("data: {") && serde_json::from_str::<Value>(&last[6..]).is_err(), "{last}");

    let whole = gemini(&fake.url, "cut-json", "generateContent", &chat());
    assert_eq!((whole.status, whole.complete), (200, true));
    assert!(serde_json::from_slice::<Value>(&whole.body).is_err());
    let reset = gemini(&fake.url, "cut", "generateContent", &chat());
    assert!(!reset.complete, "the body is cut short of its length");
}

#[test]
fn embeddings_on_both_apis() {
    let fake = FakeUpstream::start();
    let batch = json!({"requests": [
        {"model": "models/text-embedding-004", "content": {"parts": [{"text": "a"}]}},
        {"model": "models/text-embedding-004", "content": {"parts": [{"text": "b c"}]}, "outputDimensionality": 3}]});
    let r = gemini(&fake.url, "text-embedding-004", "batchEmbedContents", &batch).json();
    let lens: Vec<usize> =
        r["embeddings"].as_array().into_iter().flatten().map(|e| e["values"].as_array().map_or(0, Vec::len)).collect();
    assert_eq!(lens, [8, 3]);
    let token = fetch_token(&fake.url);
    let path = "/v1/projects/p1/locations/us-central1/publishers/google/models/text-embedding-005:predict";
    let auth = format!("Bearer {token}");
    let body = json!({"instances": [{"content": "one two three"}], "parameters": {"outputDimensionality": 4}});
    let r = send(&fake.url, path, &[("authorization", &auth)], "application/json", &body.to_string()).json();
    assert_eq!(r["predictions"][0]["embeddings"]["statistics"]["token_count"], 3);
    assert_eq!(r["predictions"][0]["embeddings"]["values"].as_array().map(Vec::len), Some(4));
}

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(v.to_string())
}

/// A JWT with the right header and claims and a 256-byte signature-shaped segment (the fake does not verify it).
fn assertion(lifetime: u64, scope: &str) -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let claims = json!({"iss": "sa@p1.iam.gserviceaccount.com", "scope": scope,
                        "aud": "https://oauth2.googleapis.com/token", "iat": now, "exp": now + lifetime});
    format!("{}.{}.{}", b64(&json!({"alg": "RS256", "typ": "JWT"})), b64(&claims), URL_SAFE_NO_PAD.encode([7u8; 256]))
}

fn token_request(url: &str, form: &str) -> Response {
    send(url, "/token", &[], "application/x-www-form-urlencoded", form)
}

fn fetch_token(url: &str) -> String {
    let form = format!(
        "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion={}",
        assertion(3600, "https://www.googleapis.com/auth/cloud-platform")
    );
    let r = token_request(url, &form);
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["access_token"].as_str().unwrap_or_default().to_owned()
}

#[test]
fn vertex_wants_a_token_from_the_token_endpoint() {
    let fake = FakeUpstream::start();
    let path = "/v1/projects/p1/locations/europe-west4/publishers/google/models/normal:generateContent";
    let body = chat().to_string();
    let r = send(&fake.url, path, &[("authorization", "Bearer sk-not-a-token")], "application/json", &body);
    assert_eq!((r.status, &r.json()["error"]["status"]), (401, &json!("UNAUTHENTICATED")));

    let token = fetch_token(&fake.url);
    assert!(token.starts_with("ya29.fake-"), "{token}");
    let r = send(&fake.url, path, &[("authorization", &format!("Bearer {token}"))], "application/json", &body);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["candidates"][0]["content"]["parts"][0]["text"], "Hello from fake gemini");
    let stream_path = format!("{}?alt=sse", path.replace(":generateContent", ":streamGenerateContent"));
    let r = send(&fake.url, &stream_path, &[("authorization", &format!("Bearer {token}"))], "application/json", &body);
    assert_eq!(events(&r).len(), 4);

    let token_answer = token_request(
        &fake.url,
        &format!("grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion={}", assertion(3600, "x")),
    );
    assert_eq!(token_answer.status, 400);
    let r = token_request(
        &fake.url,
        &format!(
            "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion={}",
            assertion(7200, "https://www.googleapis.com/auth/cloud-platform")
        ),
    );
    assert_eq!((r.status, &r.json()["error"]), (400, &json!("invalid_grant")));
    let r = token_request(&fake.url, "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=a.b");
    assert_eq!(r.status, 400);
    let r = token_request(&fake.url, "grant_type=refresh_token&client_id=c&client_secret=s&refresh_token=1%2F%2Frt");
    assert_eq!((r.status, &r.json()["token_type"], &r.json()["expires_in"]), (200, &json!("Bearer"), &json!(3600)));
    let recorded = fake.requests();
    let last = recorded.last().cloned().unwrap_or_default();
    assert_eq!((last["path"].as_str(), last["body"]["refresh_token"].as_str()), (Some("/token"), Some("1//rt")));
}
