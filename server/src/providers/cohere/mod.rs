//! The Cohere v2 dialect: Chat (`POST /v2/chat`, streamed as SSE on the same URL) and Embed (`POST /v2/embed`).
//!
//! Wire format: /work/shared/providers.md section 6 (cohere-python's v2 types). The request encoder is
//! `request.rs`, whole replies and embeddings are read in `reply.rs`, streams in `stream.rs`, error bodies in
//! `error.rs`. Nothing here does I/O: the pipeline sends what [`CohereProvider::chat_request`] builds.
//!
//! Credentials and placement follow LiteLLM: the key is `api_key`, else `COHERE_API_KEY`, else `CO_API_KEY` (the
//! Cohere SDK's name); the base URL is `api_base`, else `COHERE_API_BASE`, else `CO_API_URL` (the SDK's), else
//! `https://api.cohere.com`.

mod error;
mod reply;
mod request;
mod stream;

use actix_web::http::{
    header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION},
    Uri,
};

use super::codec::{CallOptions, Dialect, StreamDecoder, UpstreamRequest};
use crate::{
    config::{ConfigError, DeploymentConfig, EnvLookup},
    framing::Framing,
    llm::{
        chat::{Chat, DecodeError, Reply, Unsupported},
        embed::{EmbedInput, Embeddings},
        UpstreamError,
    },
    secret::Secret,
};

/// The provider name in messages and `Unsupported` refusals.
const PROVIDER: &str = "cohere";
const DEFAULT_BASE: &str = "https://api.cohere.com";
const KEY_VARS: [&str; 2] = ["COHERE_API_KEY", "CO_API_KEY"];
const BASE_VARS: [&str; 2] = ["COHERE_API_BASE", "CO_API_URL"];

#[derive(Debug)]
pub struct CohereProvider {
    /// The deployment's model at Cohere (`command-a-03-2025`); Cohere's replies do not name it, so replies and
    /// streams report this one.
    upstream_model: String,
    /// Where requests go, without the path (`https://api.cohere.com`), for `check-config`.
    base: String,
    chat_url: Uri,
    embed_url: Uri,
    /// `Authorization: Bearer <key>`, marked sensitive so it is never logged. `None` only when an `api_base`
    /// override points at a server that was given no key (a private deployment).
    auth: Option<HeaderValue>,
    /// `extra_headers`, every value marked sensitive (it may hold a credential).
    extra_headers: Vec<(HeaderName, HeaderValue)>,
    /// The key and the long header values: never shown in an error message.
    scrubbed: Vec<Secret>,
}

impl CohereProvider {
    pub fn new(d: &DeploymentConfig, upstream_model: &str, env: &dyn EnvLookup) -> Result<Self, ConfigError> {
        let field = |name: &str| format!("{}.litellm_params.{name}", d.path);
        let base = d
            .api_base
            .clone()
            .or_else(|| BASE_VARS.iter().find_map(|v| env.get(v).filter(|s| !s.trim().is_empty())))
            .unwrap_or_else(|| DEFAULT_BASE.to_owned());
        let base = normalise_base(&base);
        let url = |path: &str| {
            Uri::try_from(format!("{base}{path}"))
                .map_err(|_| ConfigError::invalid(field("api_base"), format!("`{base}` is not a valid URL")))
        };
        let (chat_url, embed_url) = (url("/v2/chat")?, url("/v2/embed")?);
        let key = d
            .api_key
            .clone()
            .or_else(|| KEY_VARS.iter().find_map(|v| env.get(v).filter(|k| !k.is_empty())).map(Secret::new));
        let auth = match &key {
            Some(k) => {
                let mut v = HeaderValue::from_str(&format!("Bearer {}", k.expose())).map_err(|_| {
                    ConfigError::invalid(field("api_key"), "API key contains characters not allowed in an HTTP header")
                })?;
                v.set_sensitive(true);
                Some(v)
            }
            // An `api_base` override means a server of the user's own, which may take no key.
            None if d.api_base.is_some() => None,
            None => {
                return Err(ConfigError::invalid(
                    field("api_key"),
                    "no API key: set `api_key` or the environment variable `COHERE_API_KEY` (or `CO_API_KEY`)",
                ))
            }
        };
        let mut scrubbed: Vec<Secret> = key.into_iter().collect();
        let extra_headers = super::extra_headers::sensitive(d, &mut scrubbed)?;
        Ok(Self { upstream_model: upstream_model.to_owned(), base, chat_url, embed_url, auth, extra_headers, scrubbed })
    }

    /// Authorization and the configured extra headers (content-type is the pipeline's).
    fn headers(&self) -> Vec<(HeaderName, HeaderValue)> {
        let auth = self.auth.iter().map(|v| (AUTHORIZATION, v.clone()));
        auth.chain(self.extra_headers.iter().cloned()).collect()
    }

    fn post(&self, url: &Uri, body: &serde_json::Value) -> UpstreamRequest {
        // Serialising a `Value` cannot fail.
        let body = serde_json::to_vec(body).unwrap_or_default();
        UpstreamRequest { url: url.clone(), headers: self.headers(), body }
    }
}

/// The base URL without a trailing `/` and without a `/v2/chat`, `/v2/embed` or `/v2` suffix: LiteLLM's Cohere
/// `api_base` is sometimes written as the full chat URL, and both forms should reach the same place.
fn normalise_base(base: &str) -> String {
    let mut base = base.trim().trim_end_matches('/');
    for suffix in ["/v2/chat", "/v2/embed", "/v2"] {
        if let Some(stripped) = base.strip_suffix(suffix) {
            base = stripped;
            break;
        }
    }
    base.to_owned()
}

impl Dialect for CohereProvider {
    fn provider(&self) -> &str {
        PROVIDER
    }

    fn chat_request(&self, chat: &Chat, options: CallOptions<'_>) -> Result<UpstreamRequest, Unsupported> {
        let body = request::chat_body(chat, options)?;
        Ok(self.post(&self.chat_url, &body))
    }

    fn framing(&self) -> Framing {
        Framing::Sse
    }

    fn stream_decoder(&self) -> Box<dyn StreamDecoder> {
        Box::new(stream::CohereStream::new(&self.upstream_model))
    }

    fn decode_reply(&self, body: &[u8]) -> Result<Reply, DecodeError> {
        reply::decode_reply(body, &self.upstream_model)
    }

    fn parse_error(&self, deployment: &str, status: u16, headers: &HeaderMap, body: &[u8]) -> UpstreamError {
        error::parse_error(&self.scrubbed, deployment, status, headers, body)
    }

    fn endpoint(&self) -> String {
        self.base.clone()
    }

    fn sends_key(&self) -> bool {
        self.auth.is_some()
    }

    fn embeddings_request(&self, input: &EmbedInput, upstream_model: &str) -> Result<UpstreamRequest, Unsupported> {
        Ok(self.post(&self.embed_url, &request::embed_body(input, upstream_model)))
    }

    fn decode_embeddings(&self, body: &[u8]) -> Result<Embeddings, DecodeError> {
        reply::decode_embeddings(body)
    }
}

#[cfg(test)]
mod tests {
    use std::{collections::BTreeMap, time::Duration};

    use super::*;
    use crate::config::ProviderParams;

    pub(super) fn deployment(api_key: Option<&str>, api_base: Option<&str>) -> DeploymentConfig {
        DeploymentConfig {
            path: "model_list[0]".into(),
            id: "co#0".into(),
            model_name: "co".into(),
            model: "cohere/command-a-03-2025".into(),
            api_key: api_key.map(Secret::new),
            api_base: api_base.map(str::to_owned),
            api_version: None,
            organization: None,
            timeout: Duration::from_secs(60),
            stream_timeout: Duration::from_secs(60),
            stream_idle_timeout: Duration::from_secs(60),
            weight: None,
            rpm: None,
            tpm: None,
            input_cost_per_token: None,
            output_cost_per_token: None,
            base_model: None,
            mock_response: None,
            mock_latency: None,
            extra_headers: BTreeMap::new(),
            drop_params: false,
            provider_params: ProviderParams::default(),
        }
    }

    fn env_of(vars: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name: &str| vars.iter().find(|(n, _)| *n == name).map(|(_, v)| (*v).to_owned())
    }

    #[test]
    fn base_url_and_key_resolution() {
        // (api_key, api_base, env, chat URL or the offending field, sends a key)
        type Case = (Option<&'static str>, Option<&'static str>, &'static [(&'static str, &'static str)]);
        let cases: &[(Case, Result<(&str, bool), &str>)] = &[
            ((Some("k-config"), None, &[]), Ok(("https://api.cohere.com/v2/chat", true))),
            ((None, None, &[("COHERE_API_KEY", "k1")]), Ok(("https://api.cohere.com/v2/chat", true))),
            ((None, None, &[("CO_API_KEY", "k2")]), Ok(("https://api.cohere.com/v2/chat", true))),
            ((None, None, &[]), Err("model_list[0].litellm_params.api_key")),
            ((Some("k"), None, &[("COHERE_API_BASE", "http://a:1/")]), Ok(("http://a:1/v2/chat", true))),
            ((Some("k"), None, &[("CO_API_URL", "http://b:2")]), Ok(("http://b:2/v2/chat", true))),
            (
                (Some("k"), Some("http://c:3/v2/chat"), &[("COHERE_API_BASE", "http://a:1")]),
                Ok(("http://c:3/v2/chat", true)),
            ),
            ((None, Some("http://private:8080/v2"), &[]), Ok(("http://private:8080/v2/chat", false))),
            ((Some("k"), Some("http://bad host"), &[]), Err("model_list[0].litellm_params.api_base")),
            ((Some("bad\nkey"), None, &[]), Err("model_list[0].litellm_params.api_key")),
        ];
        for ((key, base, env), want) in cases {
            let got = CohereProvider::new(&deployment(*key, *base), "command-a", &env_of(env));
            match (got, want) {
                (Ok(p), Ok((url, sends))) => {
                    assert_eq!((p.chat_url.to_string().as_str(), p.sends_key()), (*url, *sends), "{key:?} {base:?}");
                    assert_eq!(p.embed_url.to_string(), url.replace("/v2/chat", "/v2/embed"));
                    assert!(p.auth.iter().all(HeaderValue::is_sensitive));
                }
                (Err(ConfigError::Invalid { path, .. }), Err(field)) => assert_eq!(path, *field, "{key:?} {base:?}"),
                (got, want) => unreachable!("{key:?} {base:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn requests_carry_the_key_and_extra_headers_as_sensitive_values() {
        let mut d = deployment(Some("co-secret-key-123"), None);
        d.extra_headers.insert("X-Client-Name".into(), Secret::new("my-app-client"));
        let p = CohereProvider::new(&d, "command-a", &env_of(&[])).unwrap_or_else(|e| unreachable!("{e}"));
        let chat = Chat { messages: vec![], ..Chat::default() };
        let opts = CallOptions { upstream_model: "command-a", stream: false, drop_params: false };
        let req = p.chat_request(&chat, opts).unwrap_or_else(|e| unreachable!("{e}"));
        let names: Vec<&str> = req.headers.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["authorization", "x-client-name"]);
        assert!(req.headers.iter().all(|(_, v)| v.is_sensitive()));
        assert_eq!(req.headers[0].1.to_str().ok(), Some("Bearer co-secret-key-123"));
        let debug = format!("{p:?}");
        assert!(!debug.contains("co-secret-key-123") && !debug.contains("my-app-client"), "{debug}");
        assert_eq!(p.endpoint(), "https://api.cohere.com");
        assert_eq!((p.provider(), p.framing()), ("cohere", Framing::Sse));
    }
}
