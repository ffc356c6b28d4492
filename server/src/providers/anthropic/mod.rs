//! Anthropic's Messages API (`POST /v1/messages`), in both directions.
//!
//! Outbound, tollgate calls Anthropic: [`AnthropicProvider`] turns a canonical [`Chat`] into a Messages body
//! (`request.rs`), reads replies (`reply.rs`), streams (`stream.rs`, [`EventDecoder`]) and errors (`error.rs`).
//! An Anthropic caller going to an Anthropic upstream is not translated at all: [`AnthropicProvider::splice_request`]
//! forwards the caller's bytes with only `model` replaced.
//!
//! Inbound, tollgate serves `/v1/messages` to Anthropic clients (Claude Code, the `anthropic` SDK) in front of any
//! upstream: [`decode_request`] reads the caller's body into a canonical [`Chat`], [`encode_reply`] and
//! [`EventEncoder`] write the upstream's answer back in Anthropic's exact shapes, and [`error_body`] its error
//! envelope. The HTTP handler that uses them lives in `http/`, not here.
//!
//! Contract: pure code; nothing here sends a request or reads the process environment (`EnvLookup` is injected).

mod error;
mod inbound;
mod reply;
mod request;
mod stream;
mod wire;

use actix_web::http::{
    header::{HeaderMap, HeaderName, HeaderValue},
    Uri,
};

pub use self::{
    error::error_body,
    inbound::decode_request,
    reply::encode_reply,
    stream::{EventDecoder, EventEncoder},
};
use super::codec::{CallOptions, Dialect, StreamDecoder, UpstreamRequest};
use crate::{
    config::{ConfigError, DeploymentConfig, EnvLookup},
    framing::Framing,
    llm::{
        chat::{Chat, DecodeError, Reply, Unsupported},
        request::{write_json_string, Edit},
        MessagesRequest, UpstreamError,
    },
    secret::Secret,
};

const DEFAULT_BASE: &str = "https://api.anthropic.com";
/// The environment variables that move the base URL, in LiteLLM's order of precedence.
const BASE_ENV: [&str; 2] = ["ANTHROPIC_API_BASE", "ANTHROPIC_BASE_URL"];
const KEY_ENV: &str = "ANTHROPIC_API_KEY";
/// The API version every outbound request pins: the request and response shapes in this module are this
/// version's. (The 2.x SDK sends a newer value; spliced requests keep whatever the caller's body means.)
pub const ANTHROPIC_VERSION: &str = "2023-06-01";
const MESSAGES_PATH: &str = "/v1/messages";
/// Fields of a Messages body that only steer generation: `count_tokens` takes the rest of the body and refuses
/// these ("Extra inputs are not permitted"), so a caller may send its whole `/v1/messages` body to be counted.
const GENERATION_ONLY: &[&str] =
    &["max_tokens", "stream", "temperature", "top_p", "top_k", "stop_sequences", "metadata", "service_tier"];

static X_API_KEY: HeaderName = HeaderName::from_static("x-api-key");
static VERSION_HEADER: HeaderName = HeaderName::from_static("anthropic-version");
static BETA_HEADER: HeaderName = HeaderName::from_static("anthropic-beta");

#[derive(Debug)]
pub struct AnthropicProvider {
    /// `<base>/v1/messages`, parsed once.
    pub messages_url: Uri,
    /// `<base>/v1/messages/count_tokens`, parsed once.
    pub count_tokens_url: Uri,
    /// `x-api-key`, marked sensitive.
    api_key: HeaderValue,
    /// `extra_headers`, every value marked sensitive (it may hold a credential).
    extra_headers: Vec<(HeaderName, HeaderValue)>,
    /// The key and the configured header values (8 characters or longer): never shown in an error message.
    scrubbed: Vec<Secret>,
}

impl AnthropicProvider {
    /// `upstream_model` is not needed to build the provider (every request names its model); it is taken so every
    /// dialect is built the same way.
    pub fn new(d: &DeploymentConfig, upstream_model: &str, env: &dyn EnvLookup) -> Result<Self, ConfigError> {
        let _ = upstream_model;
        let field = |name: &str| format!("{}.litellm_params.{name}", d.path);
        let base = d
            .api_base
            .clone()
            .or_else(|| BASE_ENV.iter().find_map(|v| env.get(v).filter(|b| !b.trim().is_empty())))
            .unwrap_or_else(|| DEFAULT_BASE.to_owned());
        let bad_base = || ConfigError::invalid(field("api_base"), format!("`{base}` is not a valid URL"));
        let messages_url = messages_url(&base).ok_or_else(bad_base)?;
        let count_tokens_url = Uri::try_from(format!("{messages_url}/count_tokens")).map_err(|_| bad_base())?;
        // An empty key (an unset variable interpolated into the config) is no key, as in LiteLLM (`api_key or
        // env`): the environment's is used, or the deployment is refused now rather than failing every call.
        let present = |k: &Secret| !k.expose().trim().is_empty();
        let key = d
            .api_key
            .clone()
            .filter(present)
            .or_else(|| env.get(KEY_ENV).map(Secret::new).filter(present))
            .ok_or_else(|| {
                ConfigError::invalid(
                    field("api_key"),
                    format!("no API key: set `api_key` or the environment variable `{KEY_ENV}`"),
                )
            })?;
        let mut api_key = HeaderValue::from_str(key.expose()).map_err(|_| {
            ConfigError::invalid(field("api_key"), "API key contains characters not allowed in an HTTP header")
        })?;
        api_key.set_sensitive(true);
        let mut scrubbed = vec![key];
        let extra_headers = super::extra_headers::sensitive(d, &mut scrubbed)?;
        Ok(Self { messages_url, count_tokens_url, api_key, extra_headers, scrubbed })
    }

    /// Headers every request carries besides `content-type`: the key, the pinned version, `extra_headers`
    /// (which may override the version or add `anthropic-beta`).
    fn headers(&self, beta: Option<&HeaderValue>) -> Vec<(HeaderName, HeaderValue)> {
        let mut out = Vec::with_capacity(3 + self.extra_headers.len());
        out.push((X_API_KEY.clone(), self.api_key.clone()));
        let configured = |name: &HeaderName| self.extra_headers.iter().find(|(n, _)| n == name).map(|(_, v)| v);
        if configured(&VERSION_HEADER).is_none() {
            out.push((VERSION_HEADER.clone(), HeaderValue::from_static(ANTHROPIC_VERSION)));
        }
        // A caller's betas and the deployment's configured betas both apply: one comma-separated header.
        let merged_beta = match (beta, configured(&BETA_HEADER)) {
            (Some(caller), Some(ours)) => {
                let mut joined = ours.as_bytes().to_vec();
                joined.push(b',');
                joined.extend_from_slice(caller.as_bytes());
                HeaderValue::from_bytes(&joined).ok()
            }
            (Some(caller), None) => Some(caller.clone()),
            (None, _) => None,
        };
        for (name, value) in &self.extra_headers {
            if *name == BETA_HEADER && merged_beta.is_some() {
                continue;
            }
            out.push((name.clone(), value.clone()));
        }
        if let Some(beta) = merged_beta {
            out.push((BETA_HEADER.clone(), beta));
        }
        out
    }

    /// An Anthropic caller's request for an Anthropic upstream: the caller's bytes with only `model` replaced
    /// (so fields tollgate does not know, `cache_control`, thinking blocks and betas pass untouched). `beta` is the
    /// caller's `anthropic-beta` header, which the body may depend on.
    pub fn splice_request(
        &self,
        req: &MessagesRequest<'_>,
        upstream_model: &str,
        beta: Option<&HeaderValue>,
    ) -> UpstreamRequest {
        let body = spliced(req, upstream_model, &[]);
        UpstreamRequest { url: self.messages_url.clone(), headers: self.headers(beta), body }
    }

    /// A caller's `count_tokens` body (or whole Messages body) for Anthropic's `count_tokens`: the caller's bytes,
    /// `model` replaced and the [`GENERATION_ONLY`] fields left out.
    pub fn count_tokens_request(
        &self,
        req: &MessagesRequest<'_>,
        upstream_model: &str,
        beta: Option<&HeaderValue>,
    ) -> UpstreamRequest {
        let body = spliced(req, upstream_model, GENERATION_ONLY);
        UpstreamRequest { url: self.count_tokens_url.clone(), headers: self.headers(beta), body }
    }
}

/// The caller's body with `model` replaced and the `dropped` fields left out; every other byte as it came.
fn spliced(req: &MessagesRequest<'_>, upstream_model: &str, dropped: &[&str]) -> Vec<u8> {
    let mut model = Vec::with_capacity(upstream_model.len() + 2);
    write_json_string(&mut model, upstream_model);
    let model = String::from_utf8(model).unwrap_or_default();
    req.body.write(
        req.body.fields.iter().map(|(_, v)| v.get().len() + 8).sum(),
        |key| match key {
            "model" => Edit::Replace(model.clone()),
            k if dropped.contains(&k) => Edit::Drop,
            _ => Edit::Keep,
        },
        &[],
    )
}

/// `count_tokens`' answer, `{"input_tokens": N}`.
pub fn count_tokens_body(input_tokens: u64) -> Vec<u8> {
    format!(r#"{{"input_tokens":{input_tokens}}}"#).into_bytes()
}

/// The count in an upstream's `count_tokens` answer; an answer without one is not a count.
pub fn decode_count_tokens(body: &[u8]) -> Result<u64, DecodeError> {
    #[derive(serde::Deserialize)]
    struct Count {
        input_tokens: u64,
    }
    serde_json::from_slice::<Count>(body)
        .map(|c| c.input_tokens)
        .map_err(|e| DecodeError::new(format!("count_tokens answer without `input_tokens`: {e}")))
}

/// `<base>/v1/messages`. Like LiteLLM, a base that already ends in `/v1/messages` is taken as it is; a base ending
/// in `/v1` (a common way of writing Anthropic-compatible servers' URLs) gets only `/messages`.
fn messages_url(base: &str) -> Option<Uri> {
    let base = base.trim().trim_end_matches('/');
    let url = if base.ends_with(MESSAGES_PATH) {
        base.to_owned()
    } else if base.ends_with("/v1") {
        format!("{base}/messages")
    } else {
        format!("{base}{MESSAGES_PATH}")
    };
    let uri = Uri::try_from(url.as_str()).ok()?;
    (uri.scheme().is_some() && uri.host().is_some()).then_some(uri)
}

impl Dialect for AnthropicProvider {
    fn provider(&self) -> &str {
        "anthropic"
    }

    fn splice_messages(
        &self,
        req: &MessagesRequest<'_>,
        upstream_model: &str,
        beta: Option<&HeaderValue>,
    ) -> Option<UpstreamRequest> {
        Some(self.splice_request(req, upstream_model, beta))
    }

    fn count_tokens_request(
        &self,
        req: &MessagesRequest<'_>,
        upstream_model: &str,
        beta: Option<&HeaderValue>,
    ) -> Option<UpstreamRequest> {
        Some(AnthropicProvider::count_tokens_request(self, req, upstream_model, beta))
    }

    fn chat_request(&self, chat: &Chat, options: CallOptions<'_>) -> Result<UpstreamRequest, Unsupported> {
        let body = request::encode(chat, options)?;
        Ok(UpstreamRequest { url: self.messages_url.clone(), headers: self.headers(None), body })
    }

    fn framing(&self) -> Framing {
        Framing::Sse
    }

    fn stream_decoder(&self) -> Box<dyn StreamDecoder> {
        Box::new(EventDecoder::default())
    }

    fn decode_reply(&self, body: &[u8]) -> Result<Reply, DecodeError> {
        reply::decode(body)
    }

    fn parse_error(&self, deployment: &str, status: u16, headers: &HeaderMap, body: &[u8]) -> UpstreamError {
        error::parse(deployment, status, headers, body, &self.scrubbed)
    }

    fn endpoint(&self) -> String {
        self.messages_url.to_string().trim_end_matches(MESSAGES_PATH).to_owned()
    }

    fn sends_key(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use std::{collections::BTreeMap, time::Duration};

    use super::*;
    use crate::config::ProviderParams;

    pub(super) fn deployment(
        api_key: Option<&str>,
        api_base: Option<&str>,
        extra: &[(&str, &str)],
    ) -> DeploymentConfig {
        DeploymentConfig {
            path: "model_list[0]".into(),
            id: "claude#0".into(),
            model_name: "claude".into(),
            model: "anthropic/claude-sonnet-4-5".into(),
            api_key: api_key.map(Secret::new),
            api_base: api_base.map(str::to_owned),
            api_version: None,
            organization: None,
            timeout: Duration::from_secs(600),
            stream_timeout: Duration::from_secs(600),
            stream_idle_timeout: Duration::from_secs(600),
            weight: None,
            rpm: None,
            tpm: None,
            input_cost_per_token: None,
            output_cost_per_token: None,
            base_model: None,
            mock_response: None,
            mock_latency: None,
            extra_headers: extra.iter().map(|(n, v)| ((*n).to_owned(), Secret::new(*v))).collect::<BTreeMap<_, _>>(),
            drop_params: false,
            provider_params: ProviderParams::default(),
        }
    }

    pub(super) fn provider() -> AnthropicProvider {
        let env = |_: &str| None;
        AnthropicProvider::new(&deployment(Some("sk-ant-test-key-0001"), None, &[]), "claude-sonnet-4-5", &env)
            .unwrap_or_else(|e| unreachable!("{e}"))
    }

    fn header<'a>(headers: &'a [(HeaderName, HeaderValue)], name: &str) -> Vec<&'a str> {
        headers.iter().filter(|(n, _)| n == name).map(|(_, v)| v.to_str().unwrap_or("?")).collect()
    }

    #[test]
    fn base_url_and_key_come_from_config_then_environment() {
        let env = |name: &str| match name {
            "ANTHROPIC_BASE_URL" => Some("http://127.0.0.1:9/".to_owned()),
            "ANTHROPIC_API_KEY" => Some("sk-ant-env".to_owned()),
            _ => None,
        };
        let none = |_: &str| None;
        let only_api_base = |name: &str| (name == "ANTHROPIC_API_BASE").then(|| "https://proxy.example/v1".to_owned());
        let cases: &[(Option<&str>, Option<&str>, &dyn EnvLookup, Result<&str, &str>)] = &[
            (Some("k"), None, &none, Ok("https://api.anthropic.com/v1/messages")),
            (Some("k"), Some("https://gw.example/anthropic/"), &env, Ok("https://gw.example/anthropic/v1/messages")),
            (Some("k"), Some("https://gw.example/v1/messages"), &none, Ok("https://gw.example/v1/messages")),
            (None, None, &env, Ok("http://127.0.0.1:9/v1/messages")),
            (Some("k"), None, &only_api_base, Ok("https://proxy.example/v1/messages")),
            (None, None, &none, Err("`model_list[0].litellm_params.api_key`: no API key: set `api_key` or the environment variable `ANTHROPIC_API_KEY`")),
            (Some(""), None, &env, Ok("http://127.0.0.1:9/v1/messages")),
            (Some(" "), None, &none, Err("`model_list[0].litellm_params.api_key`: no API key: set `api_key` or the environment variable `ANTHROPIC_API_KEY`")),
            (Some("k"), Some("not a url"), &none, Err("`model_list[0].litellm_params.api_base`: `not a url` is not a valid URL")),
        ];
        for (key, base, env, want) in cases {
            let got = AnthropicProvider::new(&deployment(*key, *base, &[]), "m", *env)
                .map(|p| p.messages_url.to_string())
                .map_err(|e| e.to_string());
            assert_eq!(got.as_ref().map(String::as_str).map_err(String::as_str), *want, "key {key:?} base {base:?}");
        }
        let p = provider();
        assert_eq!(p.endpoint(), "https://api.anthropic.com");
        assert!(p.sends_key());
    }

    #[test]
    fn requests_carry_key_version_and_sensitive_extra_headers() {
        let env = |_: &str| None;
        let d = deployment(
            Some("sk-ant-key-value-0001"),
            None,
            &[("X-Upstream-Token", "tok-very-secret-42"), ("X-Title", "app")],
        );
        let p = AnthropicProvider::new(&d, "m", &env).unwrap_or_else(|e| unreachable!("{e}"));
        let chat = Chat {
            messages: vec![crate::llm::chat::Message {
                role: crate::llm::chat::Role::User,
                parts: vec![crate::llm::chat::Part::Text("hi".into())],
            }],
            ..Chat::default()
        };
        let options = CallOptions { upstream_model: "claude-x", stream: false, drop_params: false };
        let req = p.chat_request(&chat, options).unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(req.url.to_string(), "https://api.anthropic.com/v1/messages");
        assert_eq!(header(&req.headers, "x-api-key"), ["sk-ant-key-value-0001"]);
        assert_eq!(header(&req.headers, "anthropic-version"), [ANTHROPIC_VERSION]);
        assert_eq!(header(&req.headers, "x-title"), ["app"]);
        let secret_ones = ["x-api-key", "x-upstream-token", "x-title"];
        assert!(req.headers.iter().filter(|(n, _)| secret_ones.contains(&n.as_str())).all(|(_, v)| v.is_sensitive()));
        let debug = format!("{p:?}");
        assert!(!debug.contains("tok-very-secret-42") && !debug.contains("sk-ant-key-value-0001"), "{debug}");
        let body = r#"{"type":"error","error":{"type":"authentication_error","message":"bad token tok-very-secret-42 for key sk-ant-key-value-0001 in app"}}"#;
        let e = p.parse_error("d#0", 401, &HeaderMap::new(), body.as_bytes());
        assert_eq!(e.message, "bad token **** for key **** in app", "short values are not secrets");
    }

    #[test]
    fn splice_replaces_only_the_model_and_merges_betas() {
        let env = |_: &str| None;
        let d = deployment(Some("sk-ant-k"), None, &[("anthropic-beta", "ours-2025-01-01")]);
        let p = AnthropicProvider::new(&d, "m", &env).unwrap_or_else(|e| unreachable!("{e}"));
        let body = r#"{"model":"claude","max_tokens":10,"messages":[{"role":"user","content":[{"type":"text","text":"hi","cache_control":{"type":"ephemeral"}}]}],"future_field":{"a":1}}"#;
        let req = MessagesRequest::parse(body.as_bytes()).unwrap_or_else(|e| unreachable!("{e}"));
        let beta = HeaderValue::from_static("interleaved-thinking-2025-05-14");
        let out = p.splice_request(&req, "claude-sonnet-4-5-20250929", Some(&beta));
        assert_eq!(
            String::from_utf8_lossy(&out.body),
            body.replace(r#""model":"claude""#, r#""model":"claude-sonnet-4-5-20250929""#)
        );
        assert_eq!(header(&out.headers, "anthropic-beta"), ["ours-2025-01-01,interleaved-thinking-2025-05-14"]);
        assert_eq!(header(&out.headers, "anthropic-version"), [ANTHROPIC_VERSION]);
        let out = provider().splice_request(&req, "m", None);
        assert!(header(&out.headers, "anthropic-beta").is_empty());
        let out = provider().splice_request(&req, "m", Some(&beta));
        assert_eq!(header(&out.headers, "anthropic-beta"), ["interleaved-thinking-2025-05-14"]);
    }

    #[test]
    fn count_tokens_takes_the_body_without_generation_fields() {
        let body = r#"{"model":"claude","max_tokens":10,"stream":true,"temperature":0.2,"system":"s","messages":[{"role":"user","content":"hi"}],"tools":[],"future_field":1}"#;
        let req = MessagesRequest::parse_count(body.as_bytes()).unwrap_or_else(|e| unreachable!("{e}"));
        let beta = HeaderValue::from_static("token-counting-2024-11-01");
        let out = provider().count_tokens_request(&req, "claude-sonnet-4-5", Some(&beta));
        assert_eq!(out.url.to_string(), "https://api.anthropic.com/v1/messages/count_tokens");
        assert_eq!(
            String::from_utf8_lossy(&out.body),
            r#"{"model":"claude-sonnet-4-5","system":"s","messages":[{"role":"user","content":"hi"}],"tools":[],"future_field":1}"#
        );
        assert_eq!(header(&out.headers, "anthropic-beta"), ["token-counting-2024-11-01"]);
        assert_eq!(header(&out.headers, "x-api-key"), ["sk-ant-test-key-0001"]);
        assert_eq!(decode_count_tokens(br#"{"input_tokens":21}"#), Ok(21));
        assert!(decode_count_tokens(br#"{"tokens":21}"#).is_err());
        assert_eq!(count_tokens_body(7), br#"{"input_tokens":7}"#);
    }
}
