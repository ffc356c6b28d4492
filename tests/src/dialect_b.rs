//! Shared by the dialect tests of Gemini, Vertex AI and Bedrock (`tests/tests/dialect_{gemini,vertex,bedrock}.rs`):
//! deployments pointing at the fakes of `tollgate-fakes`, the requests the tests send, and the checks every file
//! repeats. A dialect under test is a [`Target`]; the checks of an OpenAI caller ([`text`], [`streams`],
//! [`tools`], [`finishes`], [`errors`], [`broken_streams`]) run over it with the dialect's own tables of cases.
//! What Gemini and Vertex AI share is in [`google`].
//!
//! Every deployment is priced like [`crate::dialect::deployment`], so `cost_usd` is checked against
//! [`Tokens::cost`].

use serde_json::{json, Value};
use tollgate_fakes::bedrock::sigv4;

pub use crate::dialect::{settlement, Tokens};
use crate::{dialect::assert_settled_as, post, post_messages, sse_data, FakeUpstream, Gateway, Reply, MASTER_KEY};

pub mod google;
mod read;

pub use read::{answer, assert_ends_with_error, assert_messages_end_with_error, fake_vector, message, usages, vectors};

/// The per-token prices of every deployment made here: those of [`crate::dialect::deployment`], so
/// [`Tokens::cost`] prices both modules' calls.
const PRICES: &str = "      input_cost_per_token: 0.000001\n      output_cost_per_token: 0.000002\n";

/// The Vertex AI project and location of [`vertex_model`] deployments.
pub const VERTEX_PROJECT: &str = "proj-test";
pub const VERTEX_LOCATION: &str = "us-central1";
/// The service account of [`vertex_model`] deployments.
pub const VERTEX_CLIENT_EMAIL: &str = "gateway@proj-test.iam.gserviceaccount.com";
/// A test-only RSA key (it guards nothing), the one the server's own Vertex tests sign with.
const TEST_KEY: &str = include_str!("../../server/src/providers/gemini/test_key.pem");

/// The Gemini API key of [`gemini_model`] deployments.
pub const GEMINI_KEY: &str = "AIza-fake-gemini-key-123";

/// A `model_list` entry: `name` served by `gemini/<mode>` at the fake's Gemini API.
pub fn gemini_model(name: &str, mode: &str, fake: &FakeUpstream) -> String {
    entry(name, &format!("gemini/{mode}"), &format!("{}/v1beta", fake.url), &format!("      api_key: {GEMINI_KEY}\n"))
}

/// A `model_list` entry: `name` served by `vertex_ai/<mode>` at the fake, with service-account credentials whose
/// `token_uri` is `token_uri`.
pub fn vertex_model(name: &str, mode: &str, fake: &FakeUpstream, token_uri: &str) -> String {
    let credentials = json!({
        "type": "service_account",
        "project_id": "proj-from-file",
        "private_key_id": "kid-1",
        "private_key": TEST_KEY,
        "client_email": VERTEX_CLIENT_EMAIL,
        "client_id": "123",
        "token_uri": token_uri,
    });
    // A JSON string is a valid YAML double-quoted scalar.
    let credentials = Value::String(credentials.to_string());
    let params = format!(
        "      vertex_project: {VERTEX_PROJECT}\n      vertex_location: {VERTEX_LOCATION}\n      \
         vertex_credentials: {credentials}\n"
    );
    entry(name, &format!("vertex_ai/{mode}"), &fake.url, &params)
}

/// A `model_list` entry: `name` served by `bedrock/<model_id>` at the fake, signed with the access key the fake
/// verifies signatures of.
pub fn bedrock_model(name: &str, model_id: &str, fake: &FakeUpstream) -> String {
    let params = format!(
        "      aws_access_key_id: {}\n      aws_secret_access_key: {}\n      aws_region_name: us-east-1\n",
        sigv4::ACCESS_KEY_ID,
        sigv4::SECRET_ACCESS_KEY
    );
    entry(name, &format!("bedrock/{model_id}"), &fake.url, &params)
}

fn entry(name: &str, model: &str, api_base: &str, params: &str) -> String {
    format!(
        "  - model_name: {name}\n    litellm_params:\n      model: {model}\n      api_base: {api_base}\n{params}\
             {PRICES}"
    )
}

/// A gateway serving these `model_list` entries. Failures never put a deployment in cooldown here: the error
/// and broken-stream cases call the same deployment several times.
pub fn gateway(entries: &[String]) -> Gateway {
    Gateway::start(&format!(
        "model_list:\n{}router_settings:\n  allowed_fails: 1000\ngeneral_settings:\n  master_key: {MASTER_KEY}\n",
        entries.concat()
    ))
}

/// A chat request with every field the golden request checks cover: a system message, a user message,
/// `temperature`, `max_tokens` and `stop`.
pub fn golden_chat(model: &str) -> Value {
    json!({
        "model": model,
        "messages": [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "Weather in Paris?"}],
        "temperature": 0.5,
        "max_tokens": 64,
        "stop": ["END"],
    })
}

/// A chat request with two tools and a finished round of both: the calls (`call_w1` to `get_weather`,
/// `call_t1` to `get_time`) and their results in the other order, so a result's function name can only come
/// from its call id.
pub fn tool_chat(model: &str) -> Value {
    json!({
        "model": model,
        "messages": [
            {"role": "user", "content": "Weather in Rome, and the time?"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_w1", "type": "function",
                 "function": {"name": "get_weather", "arguments": "{\"city\":\"Rome\"}"}},
                {"id": "call_t1", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "call_t1", "content": "12:00"},
            {"role": "tool", "tool_call_id": "call_w1", "content": "21C"},
        ],
        "tools": [
            {"type": "function", "function": {"name": "get_weather", "description": "Weather by city",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}},
            {"type": "function", "function": {"name": "get_time", "description": "Current time",
                "parameters": {"type": "object", "properties": {}}}},
        ],
    })
}

/// The same conversation as [`tool_chat`] from an Anthropic caller (`toolu_w1`, `toolu_t1`).
pub fn tool_messages(model: &str) -> Value {
    json!({
        "model": model,
        "max_tokens": 300,
        "system": "You check weather.",
        "tools": [
            {"name": "get_weather", "description": "Weather by city",
             "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}},
            {"name": "get_time", "description": "Current time", "input_schema": {"type": "object", "properties": {}}},
        ],
        "messages": [
            {"role": "user", "content": "Weather in Rome, and the time?"},
            {"role": "assistant", "content": [
                {"type": "tool_use", "id": "toolu_w1", "name": "get_weather", "input": {"city": "Rome"}},
                {"type": "tool_use", "id": "toolu_t1", "name": "get_time", "input": {}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_t1", "content": "12:00"},
                {"type": "tool_result", "tool_use_id": "toolu_w1", "content": "21C"}]},
        ],
    })
}

/// A simple Anthropic Messages request.
pub fn hello_messages(model: &str) -> Value {
    json!({"model": model, "max_tokens": 256, "messages": [{"role": "user", "content": "hi there"}]})
}

/// `body` with `stream: true` (and `stream_options.include_usage` when `include_usage`).
pub fn streamed(body: &Value, include_usage: bool) -> Value {
    let mut body = body.clone();
    body["stream"] = json!(true);
    if include_usage {
        body["stream_options"] = json!({"include_usage": true});
    }
    body
}

/// `POST /v1/chat/completions`.
pub async fn chat(gw: &Gateway, body: &Value) -> Reply {
    post(&gw.url, "/v1/chat/completions", Some(MASTER_KEY), body.to_string()).await
}

/// `POST /v1/messages` as the `anthropic` SDK sends it.
pub async fn messages(gw: &Gateway, body: &Value) -> Reply {
    post_messages(&gw.url, body.to_string()).await
}

/// `POST /v1/embeddings`.
pub async fn embeddings(gw: &Gateway, body: &Value) -> Reply {
    post(&gw.url, "/v1/embeddings", Some(MASTER_KEY), body.to_string()).await
}

/// The one request the fake received at `path` (query included); fails unless there is exactly one.
pub fn received(fake: &FakeUpstream, path: &str) -> Value {
    let mut found: Vec<Value> = fake.requests().into_iter().filter(|r| r["path"] == path).collect();
    let all: Vec<Value> = fake.requests().iter().map(|r| r["path"].clone()).collect();
    assert_eq!(found.len(), 1, "requests at {path}; all paths: {all:?}");
    found.remove(0)
}

/// Awaits `call`, failing the test if it takes longer than 10 s: a broken upstream stream must end the caller's
/// stream, never leave it hanging.
pub async fn within<T>(call: impl std::future::Future<Output = T>) -> T {
    actix_rt::time::timeout(std::time::Duration::from_secs(10), call).await.expect("the response ended in time")
}

/// An Anthropic caller's request, whole and then streamed: both replies say `want` (see [`message`]).
pub async fn assert_messages(gw: &Gateway, body: &Value, want: &Value) {
    for stream in [false, true] {
        let mut body = body.clone();
        body["stream"] = json!(stream);
        let r = messages(gw, &body).await;
        assert_eq!(&message(&r), want, "stream {stream}: {}", r.text);
    }
}

/// The settlement of `r` booked `tokens` at exactly the configured prices, and ended as `outcome`.
pub fn assert_booked(r: &Reply, tokens: Tokens, outcome: &str) {
    assert_settled_as(r, tokens, outcome, "exact", &tokens.cost());
}

/// The settlement of `r` booked no tokens, ended as `outcome`, and says why its cost is what it is
/// (`accounting`: `exact` for a call nobody bills, else the gap's cause, with `cost_usd` "unknown").
pub fn assert_unbooked(r: &Reply, outcome: &str, accounting: &str) {
    let cost = if accounting == "exact" { "0" } else { "unknown" };
    assert_settled_as(r, Tokens::NONE, outcome, accounting, cost);
}

/// How a dialect authenticates, as the fake must see it.
pub enum Auth {
    /// This header's value starts with `prefix`; the header `not_sent` is absent.
    Header { name: &'static str, prefix: String, not_sent: &'static str },
    /// SigV4 with the fake's test access key, verified by the fake in full (`sigv4_verified:<seq>`).
    SigV4,
}

/// A dialect under test: a gateway whose deployments `<prefix><mode>` point at the fake's modes, and what that
/// dialect's fake receives and answers.
pub struct Target<'a> {
    pub gw: &'a Gateway,
    pub fake: &'a FakeUpstream,
    pub prefix: &'a str,
    /// The fake's path for a mode, whole or streamed.
    pub path: fn(&str, bool) -> String,
    pub auth: Auth,
    /// What the `normal` mode says.
    pub text: &'a str,
    /// The fake's usage in OpenAI's `usage`, and as the books count it.
    pub usage: Value,
    pub tokens: Tokens,
    /// [`golden_chat`] in the dialect.
    pub golden_body: Value,
}

impl Target<'_> {
    pub fn model(&self, mode: &str) -> String {
        format!("{}{mode}", self.prefix)
    }

    /// [`golden_chat`] to the `mode` deployment, whole or streamed (without `include_usage`).
    pub fn request(&self, mode: &str, stream: bool) -> Value {
        let body = golden_chat(&self.model(mode));
        if stream {
            streamed(&body, false)
        } else {
            body
        }
    }

    /// The one request the fake received for `mode` (whole or streamed), its credential checked.
    pub fn received(&self, mode: &str, stream: bool) -> Value {
        self.received_at(&(self.path)(mode, stream))
    }

    /// The one request the fake received at `path`, its credential checked.
    pub fn received_at(&self, path: &str) -> Value {
        let request = received(self.fake, path);
        let headers = &request["headers"];
        match &self.auth {
            Auth::Header { name, prefix, not_sent } => {
                let sent = headers[name].as_str().unwrap_or_default();
                assert!(sent.starts_with(prefix.as_str()), "`{name}: {sent}` should start with {prefix}: {request}");
                assert!(headers.get(not_sent).is_none(), "{request}");
            }
            Auth::SigV4 => {
                let auth = headers["authorization"].as_str().unwrap_or_default();
                let credential = format!("AWS4-HMAC-SHA256 Credential={}/", sigv4::ACCESS_KEY_ID);
                assert!(auth.starts_with(&credential), "{request}");
                let scope = "/us-east-1/bedrock/aws4_request, SignedHeaders=host;x-amz-date, Signature=";
                assert!(auth.contains(scope), "{auth}");
                let date = headers["x-amz-date"].as_str().unwrap_or_default();
                assert!(date.len() == 16 && date.ends_with('Z'), "{request}");
                let verified = format!("sigv4_verified:{}", request["seq"]);
                assert!(self.fake.events().contains(&verified), "{verified} not in {:?}", self.fake.events());
            }
        }
        request
    }

    fn says(&self, text: &str) -> Value {
        json!({"content": text, "tool_calls": [], "finish_reason": "stop"})
    }
}

/// A text request, whole: the path, credential and exact body the fake received; the answer, its usage, and the
/// settlement at the configured prices.
pub async fn text(t: &Target<'_>) {
    let r = chat(t.gw, &t.request("normal", false)).await;
    assert_eq!(answer(&r), t.says(t.text));
    assert_eq!(r.json["object"], "chat.completion");
    assert_eq!(usages(&r), std::slice::from_ref(&t.usage));
    assert_eq!(t.received("normal", false)["body"], t.golden_body);
    assert_booked(&r, t.tokens, "completed");
}

/// A text request, streamed with and without `include_usage`: the same body at the streaming path, the pieces
/// joined, `[DONE]` last, a usage chunk only when asked for, and the books exact either way.
pub async fn streams(t: &Target<'_>) {
    for include_usage in [false, true] {
        t.fake.clear();
        let r = chat(t.gw, &streamed(&golden_chat(&t.model("normal")), include_usage)).await;
        assert_eq!(answer(&r), t.says(t.text));
        assert_eq!(sse_data(&r.text).last().map(String::as_str), Some("[DONE]"), "{}", r.text);
        let want = if include_usage { vec![t.usage.clone()] } else { vec![] };
        assert_eq!(usages(&r), want, "include_usage {include_usage}: {}", r.text);
        assert_eq!(t.received("normal", true)["body"], t.golden_body);
        assert_booked(&r, t.tokens, "completed");
    }
}

/// [`tool_chat`] to the `tools` mode, whole and streamed: the fake received `sent` both times, and both answers
/// are `want` (see [`answer`]). Returns the whole reply.
pub async fn tools(t: &Target<'_>, sent: &Value, want: &Value) -> Reply {
    let r = chat(t.gw, &streamed(&tool_chat(&t.model("tools")), false)).await;
    assert_eq!(&answer(&r), want, "streamed: {}", r.text);
    assert_eq!(&t.received("tools", true)["body"], sent, "streamed");
    let r = chat(t.gw, &tool_chat(&t.model("tools"))).await;
    assert_eq!(&answer(&r), want, "{}", r.text);
    assert_eq!(&t.received("tools", false)["body"], sent);
    r
}

/// Each `(mode, streamed, content, finish_reason)`.
pub async fn finishes(t: &Target<'_>, cases: &[(&str, bool, &str, &str)]) {
    for &(mode, stream, content, finish) in cases {
        let r = chat(t.gw, &t.request(mode, stream)).await;
        let want = json!({"content": content, "tool_calls": [], "finish_reason": finish});
        assert_eq!(answer(&r), want, "{mode} stream {stream}: {}", r.text);
    }
}

/// An upstream error as the caller sees it: `(mode, status, error.type, error.code, retry-after)`.
pub type ErrorCase<'a> = (&'a str, u16, &'a str, Option<&'a str>, Option<&'a str>);

/// Each upstream error, whole and streamed (a stream that fails before its first byte is a plain error).
pub async fn errors(t: &Target<'_>, cases: &[ErrorCase<'_>]) {
    for (&(mode, status, kind, code, retry_after), stream) in cases.iter().flat_map(|c| [(c, false), (c, true)]) {
        let r = chat(t.gw, &t.request(mode, stream)).await;
        let got = (r.status, r.error_type(), r.json["error"]["code"].as_str(), r.header("retry-after"));
        assert_eq!(got, (status, kind, code, retry_after), "{mode} stream {stream}: {}", r.text);
    }
}

/// What the books hold after a call.
#[derive(Debug, Clone, Copy)]
pub enum Books<'a> {
    /// These counts at the configured prices.
    Exact(Tokens),
    /// No tokens, and this `accounting` (`exact` for a call nobody bills, else the gap's cause).
    Nothing(&'a str),
}

/// A stream that ends as its dialect says it must not.
pub struct BrokenCase<'a> {
    pub mode: &'a str,
    /// The text the caller got before the error.
    pub text: &'a str,
    /// The error chunk's `code`, and a part of its message.
    pub code: Option<&'a str>,
    pub message: &'a str,
    /// The settlement's outcome: `broken`, or `failed` when the upstream reported the error itself.
    pub outcome: &'a str,
    pub books: Books<'a>,
}

/// Each broken stream (asked with `include_usage`) ends the caller's stream with an error chunk and no `[DONE]`,
/// in time, after the text that came first; its settlement says what happened and what it cost.
pub async fn broken_streams(t: &Target<'_>, cases: &[BrokenCase<'_>]) {
    for case in cases {
        let mode = case.mode;
        let r = within(chat(t.gw, &streamed(&golden_chat(&t.model(mode)), true))).await;
        let error = assert_ends_with_error(&r);
        assert_eq!(answer(&r)["content"], case.text, "{mode}: {}", r.text);
        assert_eq!(error["code"].as_str(), case.code, "{mode}: {error}");
        assert!(error["message"].as_str().is_some_and(|m| m.contains(case.message)), "{mode}: {error}");
        match case.books {
            Books::Exact(tokens) => assert_booked(&r, tokens, case.outcome),
            Books::Nothing(accounting) => assert_unbooked(&r, case.outcome, accounting),
        }
    }
}

/// `inputs` embedded by the deployment `model`, as floats and as base64: both decode to the fake's vectors; the
/// fake received `sent` at `path` each time; the usage and the books are `books` (a prompt count, or none).
pub async fn embed_both_ways(t: &Target<'_>, model: &str, inputs: &[&str], path: &str, sent: &Value, books: Books<'_>) {
    let tokens = match books {
        Books::Exact(tokens) => tokens.prompt,
        Books::Nothing(_) => 0,
    };
    for format in ["float", "base64"] {
        t.fake.clear();
        let r = embeddings(t.gw, &json!({"model": model, "input": inputs, "encoding_format": format})).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let want: Vec<Vec<f32>> = inputs.iter().map(|text| fake_vector(text)).collect();
        assert_eq!(vectors(&r), want, "{model} {format}: {}", r.text);
        assert_eq!(r.json["usage"], json!({"prompt_tokens": tokens, "total_tokens": tokens}), "{}", r.text);
        assert_eq!(&t.received_at(path)["body"], sent, "{model} {format}");
        match books {
            Books::Exact(tokens) => assert_booked(&r, tokens, "completed"),
            Books::Nothing(accounting) => assert_unbooked(&r, "completed", accounting),
        }
    }
}
