//! The OpenAI dialect, spoken by OpenAI itself and by every OpenAI-compatible server (presets in `catalog.rs`).
//!
//! Requests are the caller's bytes with the model swapped in, parameters renamed as the preset says, and usage
//! always requested on streams. Nothing here does I/O: the pipeline sends what these functions build.
//!
//! Requests that cross dialects take the canonical path instead: `request.rs` and `encode.rs` (OpenAI body to
//! `Chat` and back), `reply.rs` and `stream.rs` (OpenAI replies and chunks to canonical replies and events and
//! back, `text_completion` ones included), and `dialect.rs` (`impl Dialect`, embeddings). OpenAI's legacy text
//! completions: `completions.rs` serves `/v1/completions` callers from any chat model, and `text_completion.rs` is
//! the `text-completion-openai/` dialect, a server whose API is `/completions`.

pub mod completions;
mod dialect;
pub mod encode;
pub mod reply;
pub mod request;
pub mod stream;
mod text_completion;

use crate::providers::errors;
use actix_web::http::{
    header::{HeaderMap, HeaderName, HeaderValue},
    Uri,
};
use serde::Deserialize;
use serde_json::Value;

use super::{
    catalog::{AuthStyle, Preset},
    codec::UpstreamRequest,
    oauth::TokenCell,
};
use crate::{
    llm::{
        request::{write_json_string, Edit, RawObject, ROUTING_FIELDS},
        ChatRequest, CompletionRequest, EmbeddingsRequest, UpstreamError, UpstreamFailure,
    },
    secret::Secret,
};
pub use text_completion::TextCompletion;

#[derive(Debug)]
pub struct OpenAiCompatible {
    /// Provider name from the config prefix (`openai`, `groq`, ...).
    pub provider: String,
    /// Parsed once here, not per request.
    pub chat_url: Uri,
    pub embeddings_url: Uri,
    /// OpenAI's legacy text completions (`/completions`), which `text-completion-openai/` deployments speak.
    pub completions_url: Uri,
    /// Pre-built credential header (`Authorization: Bearer …`, Azure's `api-key`), marked sensitive so it is never
    /// logged.
    auth: Option<(HeaderName, HeaderValue)>,
    /// Azure with Entra client credentials: the token comes from here, fetched by the deployment's worker.
    pub(super) entra_client: Option<Box<EntraClient>>,
    /// The key and the configured header values: never shown in an error message.
    scrubbed: Vec<Secret>,
    /// `extra_headers` and the organization, every value marked sensitive (it may hold a credential).
    extra_headers: Vec<(HeaderName, HeaderValue)>,
    param_mappings: Vec<(String, String)>,
    content_list_to_string: bool,
    /// Ask for `stream_options.include_usage` on streams; off for servers that reject unknown fields.
    stream_usage: bool,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BuildError {
    #[error("no API key: set `api_key` or the environment variable `{0}`")]
    MissingKey(String),
    #[error("API key contains characters not allowed in an HTTP header")]
    BadKey,
    #[error("header `{0}` is not a valid HTTP header")]
    BadHeader(String),
    #[error("`{0}` is not a valid URL")]
    BadUrl(String),
}

pub struct Settings<'a> {
    pub provider: &'a str,
    pub preset: &'a Preset,
    pub api_base: Option<&'a str>,
    pub api_key: Option<Secret>,
    pub organization: Option<&'a str>,
    pub extra_headers: &'a std::collections::BTreeMap<String, Secret>,
    /// Azure OpenAI's deployment URLs and `api-key` header instead of OpenAI's.
    pub azure: Option<Azure<'a>>,
}

/// Azure OpenAI (`azure/<deployment>`): the deployment in the URL, a mandatory `api-version`, and the key in an
/// `api-key` header, or a Microsoft Entra token as a bearer.
pub struct Azure<'a> {
    pub deployment: &'a str,
    pub api_version: String,
    pub entra: Option<Entra>,
}

/// How an Azure deployment gets a Microsoft Entra ID token.
pub enum Entra {
    /// A token given in the config (`azure_ad_token`), used as it is.
    Token(Secret),
    /// An app's client credentials: the deployment's worker posts `form` to `token_url` for a token (scope
    /// `https://cognitiveservices.azure.com/.default`) and refreshes it before it expires.
    ClientCredentials { token_url: String, form: Secret },
}

/// A client-credentials token source and its current token.
#[derive(Debug)]
pub(super) struct EntraClient {
    pub token_url: Uri,
    /// The form body: it holds the client secret.
    pub form: Secret,
    pub token: TokenCell,
}

/// Azure's latest GA inference `api-version` in providers.md; newer ones are set by `api_version`.
pub const AZURE_DEFAULT_API_VERSION: &str = "2024-10-21";

impl OpenAiCompatible {
    pub fn new(s: Settings<'_>, env: &dyn crate::config::EnvLookup) -> Result<Self, BuildError> {
        let base = s
            .api_base
            .map(str::to_owned)
            .or_else(|| s.preset.api_base_env.iter().chain(&s.preset.api_base_env_also).find_map(|v| env.get(v)))
            .unwrap_or_else(|| s.preset.base_url.clone());
        let base = base.trim_end_matches('/');
        let key = s.api_key.or_else(|| s.preset.api_key_env.as_deref().and_then(|v| env.get(v)).map(Secret::new));
        let key = match (s.preset.auth, key) {
            (AuthStyle::None, _) => None,
            (AuthStyle::Optional, key) => key,
            (AuthStyle::Bearer, Some(key)) => Some(key),
            // An `api_base` override means a self-hosted compatible server, which often needs no key.
            (AuthStyle::Bearer, None) if s.api_base.is_some() => None,
            (AuthStyle::Bearer, None) => {
                return Err(BuildError::MissingKey(s.preset.api_key_env.clone().unwrap_or_else(|| "api_key".into())))
            }
        };
        let bearer = |k: &Secret| {
            let mut v = HeaderValue::from_str(&format!("Bearer {}", k.expose())).map_err(|_| BuildError::BadKey)?;
            v.set_sensitive(true);
            Ok::<_, BuildError>((actix_web::http::header::AUTHORIZATION, v))
        };
        let entra_client = match s.azure.as_ref().and_then(|a| a.entra.as_ref()) {
            Some(Entra::ClientCredentials { token_url, form }) => Some(Box::new(EntraClient {
                token_url: Uri::try_from(token_url.as_str()).map_err(|_| BuildError::BadUrl(token_url.clone()))?,
                form: form.clone(),
                token: TokenCell::default(),
            })),
            _ => None,
        };
        let auth = match (&s.azure, &key) {
            (Some(Azure { entra: Some(Entra::Token(token)), .. }), _) => Some(bearer(token)?),
            (Some(Azure { entra: Some(Entra::ClientCredentials { .. }), .. }), _) => None,
            (Some(_), Some(k)) => {
                let mut v = HeaderValue::from_str(k.expose()).map_err(|_| BuildError::BadKey)?;
                v.set_sensitive(true);
                Some((HeaderName::from_static("api-key"), v))
            }
            (None, Some(k)) => Some(bearer(k)?),
            (_, None) => None,
        };
        let url = |path: &str| match &s.azure {
            Some(a) => {
                endpoint(base, &format!("openai/deployments/{}/{path}?api-version={}", a.deployment, a.api_version))
            }
            None => endpoint(base, path),
        };
        let (chat_url, embeddings_url, completions_url) =
            (url("chat/completions")?, url("embeddings")?, url("completions")?);
        let mut extra_headers = Vec::new();
        let entra = match s.azure.as_ref().and_then(|a| a.entra.as_ref()) {
            Some(Entra::Token(token)) => Some(token.clone()),
            _ => None,
        };
        let mut scrubbed: Vec<Secret> = key.iter().chain(&entra).filter(|k| !k.expose().is_empty()).cloned().collect();
        if let Some(org) = s.organization {
            let v = HeaderValue::from_str(org).map_err(|_| BuildError::BadHeader("OpenAI-Organization".into()))?;
            extra_headers.push((HeaderName::from_static("openai-organization"), v));
        }
        for (name, value) in s.extra_headers {
            let n = HeaderName::from_bytes(name.as_bytes()).map_err(|_| BuildError::BadHeader(name.clone()))?;
            let mut v = HeaderValue::from_str(value.expose()).map_err(|_| BuildError::BadHeader(name.clone()))?;
            v.set_sensitive(true);
            extra_headers.push((n, v));
            if value.expose().len() >= super::extra_headers::MIN_SCRUBBED_LEN {
                scrubbed.push(value.clone());
            }
        }
        Ok(Self {
            provider: s.provider.to_owned(),
            chat_url,
            embeddings_url,
            completions_url,
            auth,
            entra_client,
            scrubbed,
            extra_headers,
            param_mappings: s.preset.param_mappings.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            content_list_to_string: s.preset.special_handling.convert_content_list_to_string,
            stream_usage: s.preset.stream_usage,
        })
    }

    /// Whether requests carry an API key (`Authorization`), for the plain-HTTP check at start-up.
    pub fn sends_key(&self) -> bool {
        self.auth.is_some() || self.entra_client.is_some()
    }

    /// Headers every upstream request carries (besides `content-type`): the credential (a fetched Entra token
    /// as it is now) and the extra headers.
    pub fn headers(&self) -> Vec<(HeaderName, HeaderValue)> {
        let fetched = self.entra_client.as_ref().and_then(|e| e.token.get());
        let fetched = fetched.map(|t| (actix_web::http::header::AUTHORIZATION, t.header.clone()));
        self.auth.iter().cloned().chain(fetched).chain(self.extra_headers.iter().cloned()).collect()
    }

    /// The caller's OpenAI request as this deployment takes it (see [`Self::chat_body`]).
    pub fn splice_chat(&self, req: &ChatRequest<'_>, upstream_model: &str) -> UpstreamRequest {
        self.request(&self.chat_url, self.chat_body(req, upstream_model))
    }

    pub fn splice_embeddings(&self, req: &EmbeddingsRequest<'_>, upstream_model: &str) -> UpstreamRequest {
        self.request(&self.embeddings_url, self.embeddings_body(req, upstream_model))
    }

    fn request(&self, url: &Uri, body: Vec<u8>) -> UpstreamRequest {
        UpstreamRequest { url: url.clone(), headers: self.headers(), body }
    }

    /// The caller's text-completions request for this deployment's `/completions` (see [`Self::splice_body`]).
    pub fn splice_completions(&self, req: &CompletionRequest<'_>, upstream_model: &str) -> UpstreamRequest {
        self.request(&self.completions_url, self.splice_body(&req.body, req.stream, upstream_model, None))
    }

    pub fn chat_body(&self, req: &ChatRequest<'_>, upstream_model: &str) -> Vec<u8> {
        self.splice_body(&req.body, req.stream, upstream_model, Some(req.messages.get()))
    }

    /// The caller's body with the upstream model spliced in, parameters renamed as the preset says, usage asked
    /// for on streams (if the server takes `stream_options`), and `messages` (chat only) flattened to text for
    /// text-only servers.
    fn splice_body(&self, body: &RawObject<'_>, stream: bool, upstream_model: &str, messages: Option<&str>) -> Vec<u8> {
        let model = json_string(upstream_model);
        let mut has_stream_options = false;
        let out = body.write(
            body.fields.len() * 32,
            |key| {
                if key == "model" {
                    return Edit::Replace(model.clone());
                }
                // The caller's routing fields are for tollgate: providers would refuse them as unknown.
                if ROUTING_FIELDS.contains(&key) {
                    return Edit::Drop;
                }
                if key == "stream_options" && stream && self.stream_usage {
                    has_stream_options = true;
                    return Edit::Replace(with_usage(body.get(key).map(|v| v.get())));
                }
                if key == "messages" && self.content_list_to_string {
                    if let Some(flat) = messages.and_then(flatten_text_content) {
                        return Edit::Replace(flat);
                    }
                }
                match self.param_mappings.iter().find(|(from, _)| from == key) {
                    Some((_, to)) => Edit::Rename(to),
                    None => Edit::Keep,
                }
            },
            &[],
        );
        if stream && self.stream_usage && !has_stream_options {
            return append_field(out, "stream_options", r#"{"include_usage":true}"#);
        }
        out
    }

    pub fn embeddings_body(&self, req: &EmbeddingsRequest<'_>, upstream_model: &str) -> Vec<u8> {
        let model = json_string(upstream_model);
        req.body.write(
            req.input.get().len() + 64,
            |key| {
                if key == "model" {
                    Edit::Replace(model.clone())
                } else {
                    Edit::Keep
                }
            },
            &[],
        )
    }

    /// Turns an upstream error response into the caller's error, keeping the upstream's message and class but
    /// never the deployment's key (some providers echo part of it).
    pub fn parse_error(&self, deployment: &str, status: u16, headers: &HeaderMap, body: &[u8]) -> UpstreamError {
        let parsed = parse_error_body(body);
        let fetched = self.entra_client.as_ref().and_then(|e| e.token.get());
        let secrets = self.scrubbed.iter().chain(fetched.as_ref().map(|t| &t.secret));
        let message = errors::message(parsed.message, status, body, secrets);
        let passthrough = errors::passthrough(headers);
        // Azure names a content-filter refusal `content_filter`; OpenAI's class for it is a content-policy error.
        let code = match parsed.code {
            Some(c) if c == "content_filter" => Some("content_policy_violation".to_owned()),
            other => other,
        };
        UpstreamError {
            failure: UpstreamFailure::Status(status),
            deployment: deployment.to_owned(),
            message,
            kind: parsed.kind,
            code,
            param: parsed.param,
            headers: passthrough,
        }
    }
}

fn endpoint(base: &str, path: &str) -> Result<Uri, BuildError> {
    let url = format!("{base}/{path}");
    Uri::try_from(url.as_str()).map_err(|_| BuildError::BadUrl(base.to_owned()))
}

fn json_string(s: &str) -> String {
    let mut out = Vec::with_capacity(s.len() + 2);
    write_json_string(&mut out, s);
    String::from_utf8(out).unwrap_or_default()
}

fn append_field(mut body: Vec<u8>, key: &str, raw: &str) -> Vec<u8> {
    if body.last() == Some(&b'}') {
        body.pop();
        if body.len() > 1 {
            body.push(b',');
        }
        write_json_string(&mut body, key);
        body.push(b':');
        body.extend_from_slice(raw.as_bytes());
        body.push(b'}');
    }
    body
}

/// The caller's `stream_options` with `include_usage` forced on (other options kept).
fn with_usage(raw: Option<&str>) -> String {
    let mut options: serde_json::Map<String, Value> =
        raw.and_then(|r| serde_json::from_str(r).ok()).unwrap_or_default();
    options.insert("include_usage".into(), Value::Bool(true));
    Value::Object(options).to_string()
}

/// Joins all-text content arrays into strings; `None` when no message needed it.
fn flatten_text_content(messages: &str) -> Option<String> {
    let mut list: Vec<Value> = serde_json::from_str(messages).ok()?;
    let mut changed = false;
    for msg in &mut list {
        let Some(Value::Array(parts)) = msg.get("content") else {
            continue;
        };
        let texts: Option<Vec<&str>> = parts
            .iter()
            .map(|p| (p.get("type")?.as_str()? == "text").then(|| p.get("text")?.as_str()).flatten())
            .collect();
        if let Some(texts) = texts {
            let joined = texts.join("\n");
            if let Some(obj) = msg.as_object_mut() {
                obj.insert("content".into(), Value::String(joined));
                changed = true;
            }
        }
    }
    changed.then(|| Value::Array(list).to_string())
}

#[derive(Default)]
struct ParsedError {
    message: Option<String>,
    kind: Option<String>,
    code: Option<String>,
    param: Option<String>,
}

/// Reads the error shapes OpenAI-compatible servers use: `{"error":{...}}`, `{"error":"text"}`,
/// `{"object":"error","message":..}` (vLLM, Mistral) and FastAPI's `{"detail":..}`.
fn parse_error_body(body: &[u8]) -> ParsedError {
    #[derive(Deserialize)]
    struct Envelope {
        error: Option<Value>,
        message: Option<Value>,
        detail: Option<Value>,
        #[serde(rename = "type")]
        kind: Option<Value>,
        code: Option<Value>,
        param: Option<Value>,
    }
    fn text(v: Option<&Value>) -> Option<String> {
        match v? {
            Value::String(s) => Some(s.clone()),
            Value::Null => None,
            Value::Number(n) => Some(n.to_string()),
            other => Some(other.to_string()),
        }
    }
    let Ok(env) = serde_json::from_slice::<Envelope>(body.trim_ascii_start()) else {
        return ParsedError::default();
    };
    match env.error {
        Some(Value::Object(e)) => ParsedError {
            message: text(e.get("message")),
            kind: text(e.get("type")),
            code: text(e.get("code")),
            param: text(e.get("param")),
        },
        Some(Value::String(s)) => ParsedError { message: Some(s), ..Default::default() },
        _ => ParsedError {
            message: text(env.message.as_ref()).or_else(|| text(env.detail.as_ref())),
            kind: text(env.kind.as_ref()),
            code: text(env.code.as_ref()),
            param: text(env.param.as_ref()),
        },
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap};

    use super::*;
    use crate::providers::catalog::SpecialHandling;

    fn preset(auth: AuthStyle, mappings: &[(&str, &str)], flatten: bool) -> Preset {
        Preset {
            base_url: "https://api.example.com/v1/".into(),
            api_key_env: Some("EXAMPLE_KEY".into()),
            api_base_env: None,
            api_base_env_also: Vec::new(),
            auth,
            param_mappings: mappings.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect::<HashMap<_, _>>(),
            special_handling: SpecialHandling { convert_content_list_to_string: flatten },
            stream_usage: true,
        }
    }

    fn build(p: &Preset, key: Option<&str>, base: Option<&str>) -> Result<OpenAiCompatible, BuildError> {
        let extra = BTreeMap::new();
        let env = |name: &str| (name == "EXAMPLE_KEY").then(|| "sk-from-env-123456".to_owned());
        OpenAiCompatible::new(
            Settings {
                provider: "example",
                preset: p,
                api_base: base,
                api_key: key.map(Secret::new),
                organization: None,
                extra_headers: &extra,
                azure: None,
            },
            &env,
        )
    }

    #[test]
    fn key_resolution_by_auth_style() {
        let bearer = preset(AuthStyle::Bearer, &[], false);
        let none = preset(AuthStyle::None, &[], false);
        let mut no_env = preset(AuthStyle::Bearer, &[], false);
        no_env.api_key_env = Some("UNSET_VAR".into());
        let cases: &[(&Preset, Option<&str>, Option<&str>, Result<bool, BuildError>)] = &[
            (&bearer, Some("sk-config"), None, Ok(true)),
            (&bearer, None, None, Ok(true)),
            (&none, Some("sk-config"), None, Ok(false)),
            (&no_env, None, None, Err(BuildError::MissingKey("UNSET_VAR".into()))),
            (&no_env, None, Some("http://localhost:8000/v1"), Ok(false)),
        ];
        for (p, key, base, want) in cases {
            let got = build(p, *key, *base).map(|o| o.auth.is_some());
            assert_eq!(&got, want, "key {key:?} base {base:?}");
        }
        let o = build(&bearer, None, None).unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(o.chat_url.to_string(), "https://api.example.com/v1/chat/completions");
        assert!(o.auth.as_ref().is_some_and(|(_, v)| v.is_sensitive()));
    }

    #[test]
    fn chat_body_rewrites_model_params_and_usage() {
        let p = preset(AuthStyle::Bearer, &[("max_completion_tokens", "max_tokens")], true);
        let o = build(&p, Some("k"), None).unwrap_or_else(|e| unreachable!("{e}"));
        let cases = [
            (
                r#"{"model":"g","messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}],"max_completion_tokens":3,"foo":1}"#,
                serde_json::json!({"model":"up","messages":[{"role":"user","content":"a\nb"}],"max_tokens":3,"foo":1}),
            ),
            (
                r#"{"model":"g","messages":[{"role":"user","content":"x"}],"stream":true}"#,
                serde_json::json!({"model":"up","messages":[{"role":"user","content":"x"}],"stream":true,"stream_options":{"include_usage":true}}),
            ),
            (
                r#"{"model":"g","messages":[{"role":"user","content":"x"}],"stream":true,"stream_options":{"include_usage":false,"other":1}}"#,
                serde_json::json!({"model":"up","messages":[{"role":"user","content":"x"}],"stream":true,"stream_options":{"include_usage":true,"other":1}}),
            ),
        ];
        for (input, want) in cases {
            let req = ChatRequest::parse(input.as_bytes()).unwrap_or_else(|e| unreachable!("{e}"));
            let got: Value = serde_json::from_slice(&o.chat_body(&req, "up")).unwrap_or_default();
            assert_eq!(got, want, "input {input}");
        }
    }

    #[test]
    fn rate_limit_headers_get_the_provider_prefix() {
        let mut headers = HeaderMap::new();
        for (name, value) in [("x-ratelimit-remaining-tokens", "9"), ("x-ratelimit-custom", "1"), ("retry-after", "2")]
        {
            headers.insert(HeaderName::from_static(name), HeaderValue::from_static(value));
        }
        let mut renamed: Vec<String> =
            errors::provider_rate_limit_headers(&headers).map(|(n, _)| n.to_string()).collect();
        renamed.sort();
        assert_eq!(renamed, ["llm_provider-x-ratelimit-custom", "llm_provider-x-ratelimit-remaining-tokens"]);
    }

    #[test]
    fn extra_header_values_are_sensitive_and_scrubbed() {
        let p = preset(AuthStyle::Bearer, &[], false);
        let extra = BTreeMap::from([
            ("X-Upstream-Token".to_owned(), Secret::new("tok-very-secret-42")),
            ("X-Title".to_owned(), Secret::new("app")),
        ]);
        let env = |_: &str| None;
        let settings = Settings {
            provider: "example",
            preset: &p,
            api_base: None,
            api_key: Some(Secret::new("sk-key-value-0001")),
            organization: None,
            extra_headers: &extra,
            azure: None,
        };
        let o = OpenAiCompatible::new(settings, &env).unwrap_or_else(|e| unreachable!("{e}"));
        assert!(o.headers().iter().all(|(_, v)| v.is_sensitive()));
        let debug = format!("{o:?}");
        assert!(!debug.contains("tok-very-secret-42") && !debug.contains("sk-key-value-0001"), "{debug}");
        let body = r#"{"error":{"message":"bad token tok-very-secret-42 for key sk-key-value-0001 in app"}}"#;
        let e = o.parse_error("d#0", 401, &HeaderMap::new(), body.as_bytes());
        assert_eq!(e.message, "bad token **** for key **** in app", "short values are not secrets");
    }

    #[test]
    fn error_bodies_of_every_shape() {
        let p = preset(AuthStyle::Bearer, &[], false);
        let o = build(&p, Some("sk-secret-key-value"), None).unwrap_or_else(|e| unreachable!("{e}"));
        let cases: &[(&str, &str, Option<&str>, Option<&str>)] = &[
            (
                r#"{"error":{"message":"bad","type":"invalid_request_error","param":"x","code":"c"}}"#,
                "bad",
                Some("invalid_request_error"),
                Some("c"),
            ),
            (r#"{"error":"model 'x' not found"}"#, "model 'x' not found", None, None),
            (
                r#"{"object":"error","message":"too long","type":"BadRequestError","code":400}"#,
                "too long",
                Some("BadRequestError"),
                Some("400"),
            ),
            (r#"{"detail":"Not Found"}"#, "Not Found", None, None),
            (
                r#"{"error":{"message":"Incorrect API key provided: sk-secret-key-value"}}"#,
                "Incorrect API key provided: ****",
                None,
                None,
            ),
            ("<html>bad gateway</html>", "<html>bad gateway</html>", None, None),
            ("", "upstream returned HTTP 418", None, None),
        ];
        for (body, message, kind, code) in cases {
            let e = o.parse_error("d#0", 418, &HeaderMap::new(), body.as_bytes());
            assert_eq!((e.message.as_str(), e.kind.as_deref(), e.code.as_deref()), (*message, *kind, *code), "{body}");
        }
    }
}
