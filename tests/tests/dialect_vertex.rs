//! Vertex AI (`vertex_ai/<model>`) behind OpenAI callers, over real HTTP against the fake Vertex AI and its OAuth
//! token endpoint. The deployment's worker exchanges a service-account JWT for an access token before the first
//! call (until then the deployment answers 503 `deployment_not_ready`); every call carries that token. The
//! request and response checks are the Gemini API's (`tollgate_tests::dialect_b::google`), run here over
//! Vertex's URLs and auth.

use std::time::{Duration, Instant};

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use serde_json::{json, Value};
use tollgate_tests::{
    dead_port,
    dialect_b::{
        self, answer, chat, embed_both_ways, embeddings, gateway, golden_chat,
        google::{self, method},
        received, streamed, vertex_model, Auth, Books, Target, Tokens, VERTEX_CLIENT_EMAIL, VERTEX_LOCATION,
        VERTEX_PROJECT,
    },
    FakeUpstream, Gateway, Reply,
};

const EMBEDDING_MODEL: &str = "text-embedding-005";

fn models_path() -> String {
    format!("/v1/projects/{VERTEX_PROJECT}/locations/{VERTEX_LOCATION}/publishers/google/models/")
}

/// Sends `golden_chat(model)` until the deployment has its token (at most 5 s); every answer before that must be
/// 503 `deployment_not_ready` with `retry-after: 1`. Returns the first other answer (whatever the upstream said)
/// and how many waits it took.
async fn first_ready_answer(gw: &Gateway, model: &str) -> (Reply, usize) {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut waits = 0;
    loop {
        let r = chat(gw, &golden_chat(model)).await;
        if r.json["error"]["code"] != "deployment_not_ready" {
            return (r, waits);
        }
        assert_eq!((r.status, r.header("retry-after")), (503, Some("1")), "{}", r.text);
        assert!(Instant::now() < deadline, "{model} never got its token: {}", r.text);
        waits += 1;
        actix_rt::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A gateway with a `v-<mode>` deployment for each of the shared modes and `v-embed`, each with its token;
/// the fake's record is cleared once they all have one.
async fn setup() -> (FakeUpstream, Gateway) {
    let fake = FakeUpstream::start();
    let token_uri = format!("{}/token", fake.url);
    let mut entries: Vec<String> =
        google::MODES.iter().map(|m| vertex_model(&format!("v-{m}"), m, &fake, &token_uri)).collect();
    entries.push(vertex_model("v-embed", EMBEDDING_MODEL, &fake, &token_uri));
    let gw = gateway(&entries);
    for mode in google::MODES.iter().chain(&["embed"]) {
        first_ready_answer(&gw, &format!("v-{mode}")).await;
    }
    fake.clear();
    (fake, gw)
}

fn target<'a>(gw: &'a Gateway, fake: &'a FakeUpstream) -> Target<'a> {
    let auth = Auth::Header { name: "authorization", prefix: "Bearer ya29.fake-".into(), not_sent: "x-goog-api-key" };
    google::target(gw, fake, "v-", |mode, stream| format!("{}{}", models_path(), method(mode, stream)), auth)
}

/// The JSON of one base64url segment of a JWT.
fn jwt_part(segment: &str) -> Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(segment).unwrap_or_default()).unwrap_or_default()
}

#[actix_rt::test]
async fn the_first_request_waits_for_the_service_account_token_then_carries_it() {
    let fake = FakeUpstream::start();
    let token_uri = format!("{}/token", fake.url);
    let gw = gateway(&[vertex_model("vertex", "normal", &fake, &token_uri)]);
    let (r, waits) = first_ready_answer(&gw, "vertex").await;
    assert_eq!(answer(&r), json!({"content": "Hello from fake gemini", "tool_calls": [], "finish_reason": "stop"}));

    // One token request: a JWT bearer grant whose assertion is the service account's RS256-signed claims.
    let token = received(&fake, "/token");
    assert_eq!(token["body"]["grant_type"], "urn:ietf:params:oauth:grant-type:jwt-bearer");
    let assertion = token["body"]["assertion"].as_str().unwrap_or_default();
    let parts: Vec<&str> = assertion.split('.').collect();
    assert_eq!(parts.len(), 3, "{assertion}");
    assert_eq!(jwt_part(parts[0])["alg"], "RS256");
    assert_eq!(jwt_part(parts[0])["kid"], "kid-1");
    let claims = jwt_part(parts[1]);
    assert_eq!(
        (&claims["iss"], &claims["aud"], &claims["scope"]),
        (&json!(VERTEX_CLIENT_EMAIL), &json!(token_uri), &json!("https://www.googleapis.com/auth/cloud-platform"))
    );
    let lifetime = claims["exp"].as_u64().zip(claims["iat"].as_u64()).map(|(exp, iat)| exp - iat);
    assert_eq!(lifetime, Some(3600), "{claims}");
    // A 2048-bit RSA signature is 256 bytes.
    assert_eq!(URL_SAFE_NO_PAD.decode(parts[2]).map(|s| s.len()), Ok(256));

    // The chat call carries the token the endpoint gave (`ya29.fake-<its seq>`); the waits before it never left
    // the gateway.
    let call = received(&fake, &format!("{}normal:generateContent", models_path()));
    assert_eq!(call["headers"]["authorization"], format!("Bearer ya29.fake-{}", token["seq"]));
    assert_eq!(call["body"], target(&gw, &fake).golden_body);
    assert_eq!(fake.requests().len(), 2, "{waits} waits, then one token request and one call");
}

#[actix_rt::test]
async fn without_a_token_the_deployment_answers_503_and_calls_nothing() {
    let fake = FakeUpstream::start();
    let unreachable = format!("http://127.0.0.1:{}/token", dead_port());
    let gw = gateway(&[vertex_model("vertex", "normal", &fake, &unreachable)]);
    for stream in [false, true] {
        let body = if stream { streamed(&golden_chat("vertex"), false) } else { golden_chat("vertex") };
        let r = chat(&gw, &body).await;
        let got = (r.status, r.json["error"]["code"].as_str(), r.header("retry-after"));
        assert_eq!(got, (503, Some("deployment_not_ready"), Some("1")), "{}", r.text);
    }
    let r = embeddings(&gw, &json!({"model": "vertex", "input": "hello"})).await;
    assert_eq!((r.status, r.json["error"]["code"].as_str()), (503, Some("deployment_not_ready")), "{}", r.text);
    assert_eq!(fake.requests(), Vec::<Value>::new());
}

#[actix_rt::test]
async fn a_text_request_is_translated_exactly_and_booked_at_the_configured_prices() {
    let (fake, gw) = setup().await;
    dialect_b::text(&target(&gw, &fake)).await;
}

#[actix_rt::test]
async fn streamed_text_arrives_whole_with_usage_only_when_asked() {
    let (fake, gw) = setup().await;
    dialect_b::streams(&target(&gw, &fake)).await;
}

#[actix_rt::test]
async fn tool_results_are_named_by_their_call_and_tool_calls_come_back() {
    let (fake, gw) = setup().await;
    google::tools(&target(&gw, &fake)).await;
}

#[actix_rt::test]
async fn finish_reasons_map_to_openais() {
    let (fake, gw) = setup().await;
    dialect_b::finishes(&target(&gw, &fake), google::FINISHES).await;
}

#[actix_rt::test]
async fn upstream_errors_keep_their_meaning() {
    let (fake, gw) = setup().await;
    dialect_b::errors(&target(&gw, &fake), google::ERRORS).await;
}

#[actix_rt::test]
async fn broken_streams_end_with_an_error_chunk() {
    let (fake, gw) = setup().await;
    dialect_b::broken_streams(&target(&gw, &fake), google::BROKEN).await;
}

#[actix_rt::test]
async fn embeddings_go_through_predict_as_floats_or_base64_and_are_booked() {
    let (fake, gw) = setup().await;
    let inputs = ["hello world", "second text"];
    let sent = json!({"instances": inputs.map(|text| json!({"content": text}))});
    let path = format!("{}{EMBEDDING_MODEL}:predict", models_path());
    // The fake counts a token a word: 2 + 2.
    embed_both_ways(&target(&gw, &fake), "v-embed", &inputs, &path, &sent, Books::Exact(Tokens::prompt(4))).await;
}

#[actix_rt::test]
async fn anthropic_callers_get_text_and_tool_calls() {
    let (_fake, gw) = setup().await;
    // As the Gemini API's: 21 prompt tokens, 8 of them cached (left out of Anthropic's input count), 12 out.
    let usage = json!({"input_tokens": 13, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 8,
                       "output_tokens": 12});
    let want = json!({"content": [{"type": "text", "text": "Hello from fake gemini"}], "stop_reason": "end_turn",
                      "usage": usage});
    dialect_b::assert_messages(&gw, &dialect_b::hello_messages("v-normal"), &want).await;
    let tool_use = |name: &str, input: Value| json!({"type": "tool_use", "name": name, "input": input});
    let content = [tool_use("get_weather", json!({"city": "Paris"})), tool_use("get_time", json!({}))];
    let want = json!({"content": content, "stop_reason": "tool_use", "usage": usage});
    dialect_b::assert_messages(&gw, &dialect_b::tool_messages("v-tools"), &want).await;
}
