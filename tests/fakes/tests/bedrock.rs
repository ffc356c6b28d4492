//! The fake Bedrock runtime over real HTTP: SigV4 checked, Converse bodies, eventstream streams with valid CRCs
//! (and the modes that break them on purpose), AWS error types, embeddings.

use std::{io::Write, net::TcpStream};

use serde_json::{json, Value};
use tollgate_fakes::{
    bedrock::{
        eventstream::{decode_all, Decoded},
        sigv4,
    },
    raw::{read_response, Response},
    FakeUpstream,
};

const DATE: &str = "20250115T123456Z";

#[derive(Clone, Copy)]
enum Auth<'a> {
    /// Signed with the fake's known key.
    Signed,
    /// Signed, then the signature's last hex digit changed.
    Tampered,
    Header(&'a str),
    None,
}

fn call(fake: &FakeUpstream, path: &str, body: &str, auth: Auth<'_>) -> Response {
    let host = fake.url.trim_start_matches("http://");
    let authorization = match auth {
        Auth::Signed => Some(sigv4::authorization(path, host, DATE, body.as_bytes())),
        Auth::Tampered => {
            let mut a = sigv4::authorization(path, host, DATE, body.as_bytes());
            let last = if a.ends_with('0') { "1" } else { "0" };
            a.replace_range(a.len() - 1.., last);
            Some(a)
        }
        Auth::Header(h) => Some(h.to_owned()),
        Auth::None => None,
    };
    let auth_line = authorization.map(|a| format!("Authorization: {a}\r\n")).unwrap_or_default();
    let mut stream = TcpStream::connect(host).expect("connect to the fake");
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nX-Amz-Date: {DATE}\r\n{auth_line}Content-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).expect("send request");
    read_response(&mut stream)
}

const HI: &str = r#"{"messages":[{"role":"user","content":[{"text":"Hi"}]}]}"#;

fn converse(model: &str) -> String {
    format!("/model/{model}/converse")
}

fn stream_path(model: &str) -> String {
    format!("/model/{model}/converse-stream")
}

fn usage() -> Value {
    json!({"inputTokens": 11, "outputTokens": 7, "totalTokens": 26, "cacheReadInputTokens": 5, "cacheWriteInputTokens": 3})
}

/// `(event type or exception:<type>, payload without the padding field)` of each message.
fn events(messages: &[Decoded]) -> Vec<(String, Value)> {
    messages
        .iter()
        .map(|m| {
            let name = match m.header(":message-type") {
                Some("exception") => format!("exception:{}", m.header(":exception-type").unwrap_or_default()),
                _ => m.header(":event-type").unwrap_or_default().to_owned(),
            };
            let mut payload = m.payload_json();
            if let Some(obj) = payload.as_object_mut() {
                obj.remove("p");
            }
            (name, payload)
        })
        .collect()
}

#[test]
fn signed_converse_is_verified_recorded_and_answered() {
    let fake = FakeUpstream::start();
    let path = converse("anthropic.claude-3-5-sonnet-20240620-v1%3A0");
    let r = call(&fake, &path, HI, Auth::Signed);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json(),
        json!({
            "output": {"message": {"role": "assistant", "content": [{"text": "Hello from fake upstream"}]}},
            "stopReason": "end_turn",
            "usage": usage(),
            "metrics": {"latencyMs": 42}
        })
    );
    let recorded = fake.requests();
    assert_eq!(recorded[0]["path"], path);
    assert_eq!(recorded[0]["body"], serde_json::from_str::<Value>(HI).unwrap_or_default());
    assert!(recorded[0]["headers"]["authorization"]
        .as_str()
        .is_some_and(|a| a.starts_with("AWS4-HMAC-SHA256 Credential=")));
    assert_eq!(fake.events(), ["sigv4_verified:1"]);
}

#[test]
fn bad_or_missing_auth_is_refused_as_aws_does() {
    let fake = FakeUpstream::start();
    let path = converse("normal");
    let wrong_service = format!(
        "AWS4-HMAC-SHA256 Credential=AKIDOTHER/20250115/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-date, \
         Signature={}",
        "0".repeat(64)
    );
    let cases: &[(Auth<'_>, &str)] = &[
        (Auth::Tampered, "InvalidSignatureException"),
        (Auth::None, "MissingAuthenticationTokenException"),
        (Auth::Header("AWS4-HMAC-SHA256 garbage"), "IncompleteSignatureException"),
        (Auth::Header(&wrong_service), "InvalidSignatureException"),
    ];
    for (auth, error_type) in cases {
        let r = call(&fake, &path, HI, *auth);
        assert_eq!(r.status, 403, "{error_type}");
        assert!(
            r.header("x-amzn-errortype").is_some_and(|t| t.starts_with(&format!("{error_type}:"))),
            "{:?}",
            r.headers
        );
        assert!(r.json()["message"].is_string());
    }
    // Another access key (the fake cannot know its secret) and a Bedrock API key are accepted on their shape.
    let other = format!(
        "AWS4-HMAC-SHA256 Credential=AKIDOTHER/20250115/us-east-1/bedrock/aws4_request, SignedHeaders=host;x-amz-date, Signature={}",
        "a".repeat(64)
    );
    assert_eq!(call(&fake, &path, HI, Auth::Header(&other)).status, 200);
    assert_eq!(call(&fake, &path, HI, Auth::Header("Bearer bedrock-api-key")).status, 200);
    assert!(fake.events().is_empty(), "nothing was verified in full: {:?}", fake.events());
}

#[test]
fn normal_and_tool_streams_are_valid_eventstream() {
    let fake = FakeUpstream::start();
    let r = call(&fake, &stream_path("normal"), HI, Auth::Signed);
    assert_eq!((r.status, r.header("content-type")), (200, Some("application/vnd.amazon.eventstream")));
    assert!(r.complete);
    let messages = decode_all(&r.body).unwrap_or_else(|(_, e)| panic!("{e}"));
    assert!(messages.iter().all(|m| m.header(":content-type") == Some("application/json")));
    let mut want = vec![("messageStart".to_owned(), json!({"role": "assistant"}))];
    for piece in ["Hello", " from", " fake", " upstream"] {
        want.push(("contentBlockDelta".into(), json!({"contentBlockIndex": 0, "delta": {"text": piece}})));
    }
    want.push(("contentBlockStop".into(), json!({"contentBlockIndex": 0})));
    want.push(("messageStop".into(), json!({"stopReason": "end_turn"})));
    want.push(("metadata".into(), json!({"usage": usage(), "metrics": {"latencyMs": 42}})));
    assert_eq!(events(&messages), want);
    assert!(messages[1].payload_json()["p"].is_string(), "payloads carry the padding field");

    let r = call(&fake, &stream_path("tools"), HI, Auth::Signed);
    let messages = decode_all(&r.body).unwrap_or_else(|(_, e)| panic!("{e}"));
    let got = events(&messages);
    let names: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "messageStart",
            "contentBlockDelta",
            "contentBlockStop",
            "contentBlockStart",
            "contentBlockDelta",
            "contentBlockDelta",
            "contentBlockDelta",
            "contentBlockStop",
            "contentBlockStart",
            "contentBlockStop",
            "messageStop",
            "metadata"
        ]
    );
    assert_eq!(got[3].1["start"]["toolUse"], json!({"toolUseId": "tooluse_fake_1", "name": "get_weather"}));
    let args: String = got[4..7].iter().filter_map(|(_, p)| p["delta"]["toolUse"]["input"].as_str()).collect();
    assert_eq!(args, r#"{"city":"Paris"}"#);
    assert_eq!(got[8].1["start"]["toolUse"], json!({"toolUseId": "tooluse_fake_2", "name": "get_time"}));
    assert_eq!(got[10].1, json!({"stopReason": "tool_use"}));

    let r = call(&fake, &converse("tools"), HI, Auth::Signed);
    assert_eq!(r.json()["stopReason"], "tool_use");
    assert_eq!(r.json()["output"]["message"]["content"][2]["toolUse"]["input"], json!({}));
}

#[test]
fn broken_streams_break_as_documented() {
    let fake = FakeUpstream::start();
    let r = call(&fake, &stream_path("throttle-stream"), HI, Auth::Signed);
    let messages = decode_all(&r.body).unwrap_or_else(|(_, e)| panic!("{e}"));
    let last = events(&messages).pop().unwrap_or_default();
    assert_eq!(
        last,
        (
            "exception:throttlingException".into(),
            json!({"message": "Too many tokens, please wait before trying again."})
        )
    );

    let r = call(&fake, &stream_path("corrupt"), HI, Auth::Signed);
    assert!(r.complete);
    assert_eq!(decode_all(&r.body).map_err(|(ok, e)| (ok.len(), e)), Err((2, "message CRC mismatch".into())));

    let r = call(&fake, &stream_path("cut"), HI, Auth::Signed);
    assert!(r.complete, "the HTTP body ends cleanly; only the eventstream is cut");
    assert!(matches!(decode_all(&r.body), Err((ok, e)) if ok.len() == 2 && e.contains("bytes left")));

    let r = call(&fake, &stream_path("max-tokens"), HI, Auth::Signed);
    let messages = decode_all(&r.body).unwrap_or_else(|(_, e)| panic!("{e}"));
    assert_eq!(
        events(&messages).iter().find(|(n, _)| n == "messageStop").map(|(_, p)| p.clone()),
        Some(json!({"stopReason": "max_tokens"}))
    );
}

#[test]
fn error_modes_carry_aws_error_types() {
    let fake = FakeUpstream::start();
    let cases = [
        ("error-400", 400, "ValidationException"),
        ("error-403", 403, "AccessDeniedException"),
        ("error-404", 404, "ResourceNotFoundException"),
        ("error-429", 429, "ThrottlingException"),
        ("error-500", 500, "InternalServerException"),
        ("error-503", 503, "ServiceUnavailableException"),
        ("context-too-long", 400, "ValidationException"),
    ];
    for (model, status, error_type) in cases {
        for path in [converse(model), stream_path(model)] {
            let r = call(&fake, &path, HI, Auth::Signed);
            assert_eq!(r.status, status, "{path}");
            assert_eq!(
                r.header("x-amzn-errortype"),
                Some(format!("{error_type}:http://internal.amazon.com/coral/com.amazon.bedrock/").as_str()),
                "{path}"
            );
        }
    }
    let r = call(&fake, &converse("context-too-long"), HI, Auth::Signed);
    assert_eq!(r.json(), json!({"message": "Input is too long for requested model."}));
    let r = call(&fake, &converse("echo"), HI, Auth::Signed);
    assert_eq!(r.json()["output"]["message"]["content"][0]["text"], HI);
}

#[test]
fn embeddings_of_both_families() {
    let fake = FakeUpstream::start();
    let r = call(&fake, "/model/amazon.titan-embed-text-v2%3A0/invoke", r#"{"inputText":"hello world"}"#, Auth::Signed);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["inputTextTokenCount"], 2);
    assert_eq!(r.json()["embedding"].as_array().map(Vec::len), Some(8));
    let r = call(
        &fake,
        "/model/cohere.embed-english-v3/invoke",
        r#"{"texts":["a","b"],"input_type":"search_document"}"#,
        Auth::Signed,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["embeddings"].as_array().map(Vec::len), Some(2));
    assert_eq!(r.json()["response_type"], "embeddings_floats");
    let r = call(&fake, "/model/error-429/invoke", r#"{"inputText":"x"}"#, Auth::Signed);
    assert_eq!(r.status, 429);
    assert_eq!(fake.events().len(), 3, "{:?}", fake.events());
}
