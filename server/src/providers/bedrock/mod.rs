//! AWS Bedrock through the Converse API (providers.md section 5): `POST /model/{modelId}/converse`, and
//! `/converse-stream` for streams, whose bodies are binary AWS eventstream messages (`framing/eventstream.rs`);
//! embeddings through `/model/{modelId}/invoke` (Titan and Cohere bodies, `embed.rs`).
//!
//! Requests are signed with SigV4 (`sigv4.rs`, service `bedrock`) over the exact body bytes, at the moment the
//! request is built; or, with a Bedrock API key, carry `Authorization: Bearer`. Nothing here does I/O: credentials
//! come from the config or the injected environment, never from AWS profiles, instance metadata or STS (a
//! deployment configured with `aws_profile_name` or `aws_role_name` alone has no credentials here).
//!
//! Where things are configured (LiteLLM's names):
//! - region: `aws_region_name`, else `AWS_REGION_NAME`, `AWS_REGION`, `AWS_DEFAULT_REGION`, else the region of a
//!   model given as an ARN; none is an error (no silent default region).
//! - credentials: `api_key` (a Bedrock API key, Bearer); else `aws_access_key_id` + `aws_secret_access_key`
//!   (+ `aws_session_token`); else `AWS_BEARER_TOKEN_BEDROCK`; else `AWS_ACCESS_KEY_ID` + `AWS_SECRET_ACCESS_KEY`
//!   (+ `AWS_SESSION_TOKEN`). A session token is only taken from where its keys came from.
//! - endpoint: `https://bedrock-runtime.{region}.amazonaws.com`, moved by `api_base` or `AWS_BEDROCK_RUNTIME_ENDPOINT`.
//! - model: the id after `bedrock/` (`bedrock/converse/<id>` is accepted too); its `:` and, in ARNs, `/` are
//!   percent-encoded as one path segment.

mod embed;
mod error;
mod reply;
mod request;
pub mod sigv4;
mod stream;

use std::time::{SystemTime, UNIX_EPOCH};

use actix_web::http::{
    header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION, HOST},
    Uri,
};

use super::codec::{CallOptions, Dialect, StreamDecoder, UpstreamRequest};
use crate::{
    config::{ConfigError, DeploymentConfig, EnvLookup},
    framing::Framing,
    llm::{
        chat::{Chat, DecodeError, ParamCheck, Reply, Unsupported},
        embed::{EmbedInput, Embeddings},
        UpstreamError,
    },
    secret::Secret,
};
use sigv4::Credentials;

const PROVIDER: &str = "bedrock";
const SERVICE: &str = "bedrock";

#[derive(Debug)]
enum Auth {
    SigV4(Credentials),
    /// A Bedrock API key, already `Bearer <key>` and marked sensitive.
    Bearer(HeaderValue),
}

#[derive(Debug)]
pub struct BedrockProvider {
    /// Scheme, authority and any path prefix, without a trailing slash.
    base: String,
    /// The `Host` header, sent explicitly so that what is signed is what is sent (awc's own rule: the port only
    /// when it is not 80 or 443).
    host: HeaderValue,
    region: String,
    /// The model id as configured (after `bedrock/`), for replies and stream starts.
    model: String,
    auth: Auth,
    /// Credentials and configured header values: never shown in an error message.
    scrubbed: Vec<Secret>,
    /// `extra_headers`, every value marked sensitive; sent unsigned.
    extra_headers: Vec<(HeaderName, HeaderValue)>,
}

/// Reads a variable, treating an empty value as unset.
fn var(env: &dyn EnvLookup, name: &str) -> Option<String> {
    env.get(name).filter(|v| !v.trim().is_empty())
}

/// The model id to send: the configured name without LiteLLM's `converse/` route prefix.
fn model_id(upstream_model: &str) -> &str {
    upstream_model.strip_prefix("converse/").unwrap_or(upstream_model)
}

impl BedrockProvider {
    pub fn new(d: &DeploymentConfig, upstream_model: &str, env: &dyn EnvLookup) -> Result<Self, ConfigError> {
        let field = |name: &str| format!("{}.litellm_params.{name}", d.path);
        let p = &d.provider_params;
        if upstream_model.starts_with("invoke/") {
            return Err(ConfigError::invalid(
                field("model"),
                "`bedrock/invoke/` models are not supported: tollgate speaks Bedrock's Converse API; use \
                 `bedrock/<model id>` or `bedrock/converse/<model id>`",
            ));
        }
        let model = model_id(upstream_model);
        if model.is_empty() {
            return Err(ConfigError::invalid(field("model"), "the Bedrock model id is empty"));
        }

        let arn_region = model.strip_prefix("arn:").and_then(|arn| arn.split(':').nth(2)).filter(|r| !r.is_empty());
        let region = p
            .aws_region_name
            .clone()
            .filter(|r| !r.trim().is_empty())
            .or_else(|| ["AWS_REGION_NAME", "AWS_REGION", "AWS_DEFAULT_REGION"].iter().find_map(|n| var(env, n)))
            .or_else(|| arn_region.map(str::to_owned))
            .ok_or_else(|| {
                ConfigError::invalid(
                    field("aws_region_name"),
                    "no AWS region: set `aws_region_name` or the environment variable AWS_REGION (or AWS_REGION_NAME, \
                     AWS_DEFAULT_REGION)",
                )
            })?;
        let region = region.trim().to_owned();
        if !region.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
            return Err(ConfigError::invalid(
                field("aws_region_name"),
                format!("`{region}` is not an AWS region name"),
            ));
        }

        let (auth, mut scrubbed) = credentials(d, env)?;
        let base = d
            .api_base
            .clone()
            .or_else(|| var(env, "AWS_BEDROCK_RUNTIME_ENDPOINT"))
            .unwrap_or_else(|| format!("https://bedrock-runtime.{region}.amazonaws.com"));
        let base = base.trim().trim_end_matches('/').to_owned();
        let bad_base = || ConfigError::invalid(field("api_base"), format!("`{base}` is not a valid http(s) URL"));
        let uri = Uri::try_from(base.as_str()).map_err(|_| bad_base())?;
        let (Some(scheme), Some(host)) = (uri.scheme_str(), uri.host()) else { return Err(bad_base()) };
        if !matches!(scheme, "http" | "https") || uri.query().is_some() {
            return Err(bad_base());
        }
        let host = match uri.port_u16() {
            None | Some(80) | Some(443) => host.to_owned(),
            Some(port) => format!("{host}:{port}"),
        };
        let host = HeaderValue::from_str(&host).map_err(|_| bad_base())?;

        let extra_headers = super::extra_headers::sensitive(d, &mut scrubbed)?;
        Ok(Self { base, host, region, model: model.to_owned(), auth, scrubbed, extra_headers })
    }

    /// `POST {base}{path}` with `body`, signed for `time` (seconds since the epoch).
    fn request(&self, path: &str, body: Vec<u8>, time: u64) -> Result<UpstreamRequest, Unsupported> {
        let url = format!("{}{path}", self.base);
        let url = Uri::try_from(url.as_str()).map_err(|_| Unsupported { param: "model".into(), provider: PROVIDER })?;
        let mut headers = vec![(HOST, self.host.clone())];
        match &self.auth {
            Auth::Bearer(value) => headers.push((AUTHORIZATION, value.clone())),
            Auth::SigV4(credentials) => {
                let host = self.host.to_str().unwrap_or_default();
                let req = sigv4::Request {
                    method: "POST",
                    host,
                    path: url.path(),
                    query: url.query().unwrap_or(""),
                    body: &body,
                };
                let scope = sigv4::Scope { region: &self.region, service: SERVICE, time };
                let signed = sigv4::sign(&req, credentials, &scope);
                // Every part was checked to fit a header when the deployment was loaded.
                let value = |s: &str| {
                    HeaderValue::from_str(s).map_err(|_| Unsupported { param: "model".into(), provider: PROVIDER })
                };
                headers.push((HeaderName::from_static("x-amz-date"), value(&signed.amz_date)?));
                let mut authorization = value(&signed.authorization)?;
                authorization.set_sensitive(true);
                headers.push((AUTHORIZATION, authorization));
                if let Some(token) = &signed.security_token {
                    let mut token = value(token)?;
                    token.set_sensitive(true);
                    headers.push((HeaderName::from_static("x-amz-security-token"), token));
                }
            }
        }
        headers.extend(self.extra_headers.iter().cloned());
        Ok(UpstreamRequest { url, headers, body })
    }

    fn chat_request_at(
        &self,
        chat: &Chat,
        options: CallOptions<'_>,
        time: u64,
    ) -> Result<UpstreamRequest, Unsupported> {
        let model = model_id(options.upstream_model);
        let mut check = ParamCheck::new(PROVIDER, options.drop_params, chat);
        let body = request::converse_body(chat, model, &mut check);
        check.finish()?;
        let action = if options.stream { "converse-stream" } else { "converse" };
        let path = format!("/model/{}/{action}", sigv4::uri_encode(model));
        self.request(&path, body.to_string().into_bytes(), time)
    }

    fn embeddings_request_at(
        &self,
        input: &EmbedInput,
        upstream_model: &str,
        time: u64,
    ) -> Result<UpstreamRequest, Unsupported> {
        let model = model_id(upstream_model);
        let body = embed::body(input, model)?;
        let path = format!("/model/{}/invoke", sigv4::uri_encode(model));
        self.request(&path, body.to_string().into_bytes(), time)
    }
}

/// The deployment's auth and the secrets to scrub from error messages.
fn credentials(d: &DeploymentConfig, env: &dyn EnvLookup) -> Result<(Auth, Vec<Secret>), ConfigError> {
    let field = |name: &str| format!("{}.litellm_params.{name}", d.path);
    let p = &d.provider_params;
    let bearer = |key: Secret, name: &str| {
        let mut v = HeaderValue::from_str(&format!("Bearer {}", key.expose())).map_err(|_| {
            ConfigError::invalid(field(name), "the Bedrock API key contains characters not allowed in an HTTP header")
        })?;
        v.set_sensitive(true);
        Ok::<_, ConfigError>((Auth::Bearer(v), vec![key]))
    };
    if let Some(key) = d.api_key.clone().filter(|k| !k.expose().is_empty()) {
        return bearer(key, "api_key");
    }
    let sigv4 = |id: Secret, secret: Secret, token: Option<Secret>| {
        let scrubbed = [Some(&id), Some(&secret), token.as_ref()].into_iter().flatten().cloned().collect();
        (Auth::SigV4(Credentials { access_key_id: id, secret_access_key: secret, session_token: token }), scrubbed)
    };
    // The key id and the token travel in headers: refuse values no header can carry now, not at request time.
    let header_safe = |value: &Secret, name: &str| match HeaderValue::from_str(value.expose()) {
        Ok(_) => Ok(()),
        Err(_) => Err(ConfigError::invalid(field(name), "contains characters not allowed in an HTTP header")),
    };
    let nonempty = |s: &Option<Secret>| s.clone().filter(|s| !s.expose().is_empty());
    match (nonempty(&p.aws_access_key_id), nonempty(&p.aws_secret_access_key)) {
        (Some(id), Some(secret)) => {
            let token = nonempty(&p.aws_session_token);
            header_safe(&id, "aws_access_key_id")?;
            if let Some(t) = &token {
                header_safe(t, "aws_session_token")?;
            }
            return Ok(sigv4(id, secret, token));
        }
        (Some(_), None) => {
            return Err(ConfigError::invalid(
                field("aws_secret_access_key"),
                "`aws_access_key_id` is set without `aws_secret_access_key`",
            ))
        }
        (None, Some(_)) => {
            return Err(ConfigError::invalid(
                field("aws_access_key_id"),
                "`aws_secret_access_key` is set without `aws_access_key_id`",
            ))
        }
        (None, None) => {}
    }
    if let Some(key) = var(env, "AWS_BEARER_TOKEN_BEDROCK") {
        return bearer(Secret::new(key), "api_key");
    }
    let from_env = |name: &str| var(env, name).map(Secret::new);
    match (from_env("AWS_ACCESS_KEY_ID"), from_env("AWS_SECRET_ACCESS_KEY")) {
        (Some(id), Some(secret)) => {
            let token = from_env("AWS_SESSION_TOKEN");
            header_safe(&id, "aws_access_key_id")?;
            if let Some(t) = &token {
                header_safe(t, "aws_session_token")?;
            }
            Ok(sigv4(id, secret, token))
        }
        _ => Err(ConfigError::invalid(
            field("aws_access_key_id"),
            "no AWS credentials: set `aws_access_key_id` and `aws_secret_access_key` (or the environment variables \
             AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY), or a Bedrock API key (`api_key` or AWS_BEARER_TOKEN_BEDROCK)",
        )),
    }
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Bedrock gives replies and streams no id; callers expect one in OpenAI's shape.
fn new_id() -> String {
    format!("chatcmpl-{}", uuid::Uuid::new_v4().simple())
}

impl Dialect for BedrockProvider {
    fn provider(&self) -> &str {
        PROVIDER
    }

    fn chat_request(&self, chat: &Chat, options: CallOptions<'_>) -> Result<UpstreamRequest, Unsupported> {
        self.chat_request_at(chat, options, unix_now())
    }

    fn framing(&self) -> Framing {
        Framing::EventStream
    }

    fn stream_decoder(&self) -> Box<dyn StreamDecoder> {
        Box::new(stream::ConverseStreamDecoder::new(new_id(), self.model.clone()))
    }

    fn decode_reply(&self, body: &[u8]) -> Result<Reply, DecodeError> {
        reply::decode(body, new_id(), &self.model)
    }

    fn parse_error(&self, deployment: &str, status: u16, headers: &HeaderMap, body: &[u8]) -> UpstreamError {
        error::parse(deployment, status, headers, body, &self.scrubbed)
    }

    fn endpoint(&self) -> String {
        self.base.clone()
    }

    fn sends_key(&self) -> bool {
        true
    }

    fn embeddings_request(&self, input: &EmbedInput, upstream_model: &str) -> Result<UpstreamRequest, Unsupported> {
        self.embeddings_request_at(input, upstream_model, unix_now())
    }

    fn decode_embeddings(&self, body: &[u8]) -> Result<Embeddings, DecodeError> {
        embed::decode(body)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;
    use crate::{
        config::Config,
        llm::chat::{Message, Part, Role},
    };

    /// The deployment of a one-entry config with these `litellm_params` (besides `model`).
    fn deployment(model: &str, params: &str) -> DeploymentConfig {
        let yaml = format!("model_list:\n  - model_name: m\n    litellm_params:\n      model: {model}\n{params}");
        let no_env = |_: &str| None;
        let config = Config::load_str(&yaml, &no_env).unwrap_or_else(|e| unreachable!("{e}"));
        config.deployments.into_iter().next().unwrap_or_else(|| unreachable!("one deployment"))
    }

    fn build(model: &str, params: &str, env: &[(&str, &str)]) -> Result<BedrockProvider, String> {
        let d = deployment(&format!("bedrock/{model}"), params);
        let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let lookup = move |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        BedrockProvider::new(&d, model, &lookup).map_err(|e| e.to_string())
    }

    const KEYS: &str =
        "      aws_access_key_id: AKIDEXAMPLE\n      aws_secret_access_key: wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY\n";
    const CLAUDE: &str = "us.anthropic.claude-sonnet-4-5-20250929-v1:0";
    /// 2025-01-15T12:34:56Z.
    const TIME: u64 = 1_736_944_496;

    fn hi() -> Chat {
        Chat { messages: vec![Message { role: Role::User, parts: vec![Part::Text("Hi".into())] }], ..Chat::default() }
    }

    fn header<'a>(req: &'a UpstreamRequest, name: &str) -> Option<&'a str> {
        req.headers.iter().find(|(n, _)| n.as_str() == name).and_then(|(_, v)| v.to_str().ok())
    }

    #[test]
    fn region_credentials_and_endpoint_resolution() {
        let region = "      aws_region_name: eu-west-3\n";
        type Case<'a> = (&'a str, String, &'a [(&'a str, &'a str)], Result<(&'a str, &'a str), &'a str>);
        let cases: &[Case<'_>] = &[
            (CLAUDE, format!("{KEYS}{region}"), &[], Ok(("https://bedrock-runtime.eu-west-3.amazonaws.com", "sigv4"))),
            (
                CLAUDE,
                KEYS.into(),
                &[("AWS_REGION", "us-west-2")],
                Ok(("https://bedrock-runtime.us-west-2.amazonaws.com", "sigv4")),
            ),
            (
                CLAUDE,
                KEYS.into(),
                &[("AWS_DEFAULT_REGION", "ap-south-1"), ("AWS_REGION_NAME", "ca-central-1")],
                Ok(("https://bedrock-runtime.ca-central-1.amazonaws.com", "sigv4")),
            ),
            (
                "arn:aws:bedrock:eu-central-1:123456789012:inference-profile/eu.anthropic.claude-3-haiku-20240307-v1:0",
                KEYS.into(),
                &[],
                Ok(("https://bedrock-runtime.eu-central-1.amazonaws.com", "sigv4")),
            ),
            (
                CLAUDE,
                region.into(),
                &[("AWS_ACCESS_KEY_ID", "AKIDENV"), ("AWS_SECRET_ACCESS_KEY", "secret-from-env")],
                Ok(("https://bedrock-runtime.eu-west-3.amazonaws.com", "sigv4")),
            ),
            (
                CLAUDE,
                format!("{region}      api_key: bedrock-api-key-1\n"),
                &[],
                Ok(("https://bedrock-runtime.eu-west-3.amazonaws.com", "bearer")),
            ),
            (
                CLAUDE,
                region.into(),
                &[
                    ("AWS_BEARER_TOKEN_BEDROCK", "bedrock-api-key-2"),
                    ("AWS_ACCESS_KEY_ID", "A"),
                    ("AWS_SECRET_ACCESS_KEY", "S"),
                ],
                Ok(("https://bedrock-runtime.eu-west-3.amazonaws.com", "bearer")),
            ),
            (
                CLAUDE,
                format!("{KEYS}{region}      api_base: http://127.0.0.1:9999/\n"),
                &[],
                Ok(("http://127.0.0.1:9999", "sigv4")),
            ),
            (
                CLAUDE,
                format!("{KEYS}{region}"),
                &[("AWS_BEDROCK_RUNTIME_ENDPOINT", "https://vpce-1.bedrock-runtime.eu-west-3.vpce.amazonaws.com")],
                Ok(("https://vpce-1.bedrock-runtime.eu-west-3.vpce.amazonaws.com", "sigv4")),
            ),
            (CLAUDE, KEYS.into(), &[], Err("`model_list[0].litellm_params.aws_region_name`: no AWS region")),
            (
                CLAUDE,
                format!("{KEYS}      aws_region_name: US East\n"),
                &[],
                Err("`model_list[0].litellm_params.aws_region_name`: `US East` is not an AWS region name"),
            ),
            (
                CLAUDE,
                region.into(),
                &[],
                Err("`model_list[0].litellm_params.aws_access_key_id`: no AWS credentials: set `aws_access_key_id`"),
            ),
            (
                CLAUDE,
                format!("{region}      aws_access_key_id: AKID\n"),
                &[],
                Err("`model_list[0].litellm_params.aws_secret_access_key`: `aws_access_key_id` is set without"),
            ),
            (
                CLAUDE,
                region.into(),
                &[("AWS_ACCESS_KEY_ID", "AKIDENV")],
                Err("`model_list[0].litellm_params.aws_access_key_id`: no AWS credentials"),
            ),
            (
                CLAUDE,
                format!("{KEYS}{region}"),
                &[("AWS_BEDROCK_RUNTIME_ENDPOINT", "ftp://x")],
                Err("`model_list[0].litellm_params.api_base`: `ftp://x` is not a valid http(s) URL"),
            ),
            (
                CLAUDE,
                format!("{KEYS}{region}      aws_session_token: \"tok\\nen\"\n"),
                &[],
                Err("`model_list[0].litellm_params.aws_session_token`: contains characters not allowed"),
            ),
            (
                "invoke/anthropic.claude-v2",
                format!("{KEYS}{region}"),
                &[],
                Err("`model_list[0].litellm_params.model`: `bedrock/invoke/` models are not supported"),
            ),
        ];
        for (model, params, env, want) in cases {
            let got = build(model, params, env).map(|p| {
                let auth = match p.auth {
                    Auth::SigV4(_) => "sigv4",
                    Auth::Bearer(_) => "bearer",
                };
                (p.endpoint(), auth)
            });
            match (got, want) {
                (Ok((endpoint, auth)), Ok((want_endpoint, want_auth))) => {
                    assert_eq!((endpoint.as_str(), auth), (*want_endpoint, *want_auth), "{params} {env:?}")
                }
                (Err(e), Err(prefix)) => assert!(e.starts_with(prefix), "{e}\nwanted {prefix}"),
                (got, want) => unreachable!("{params} {env:?}: got {got:?}, wanted {want:?}"),
            }
        }
    }

    #[test]
    fn chat_requests_are_signed_over_the_final_body() {
        let p = build(CLAUDE, &format!("{KEYS}      aws_region_name: us-east-1\n"), &[])
            .unwrap_or_else(|e| unreachable!("{e}"));
        let options = CallOptions { upstream_model: CLAUDE, stream: false, drop_params: false };
        let req = p.chat_request_at(&hi(), options, TIME).unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(
            req.url.to_string(),
            "https://bedrock-runtime.us-east-1.amazonaws.com/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/converse"
        );
        assert_eq!(String::from_utf8_lossy(&req.body), r#"{"messages":[{"content":[{"text":"Hi"}],"role":"user"}]}"#);
        assert_eq!(header(&req, "host"), Some("bedrock-runtime.us-east-1.amazonaws.com"));
        assert_eq!(header(&req, "x-amz-date"), Some("20250115T123456Z"));
        // Computed by botocore 1.43 (`SigV4Auth(creds, "bedrock", "us-east-1")`) for this URL and body.
        assert_eq!(
            header(&req, "authorization"),
            Some(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20250115/us-east-1/bedrock/aws4_request, \
                 SignedHeaders=host;x-amz-date, Signature=5983e82ade7cbba6d0291575d3f6e3ace56f1bd60f7685c9c34f37f806053cae"
            )
        );
        assert!(req.headers.iter().filter(|(n, _)| n == AUTHORIZATION).all(|(_, v)| v.is_sensitive()));
        assert_eq!(header(&req, "x-amz-security-token"), None);

        let stream = CallOptions { stream: true, ..options };
        let req = p.chat_request_at(&hi(), stream, TIME).unwrap_or_else(|e| unreachable!("{e}"));
        assert!(req.url.path().ends_with("%3A0/converse-stream"), "{}", req.url);
        // The route prefix LiteLLM accepts is not part of the model id.
        let converse = CallOptions { upstream_model: "converse/meta.llama3-1-8b-instruct-v1:0", ..options };
        let req = p.chat_request_at(&hi(), converse, TIME).unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(req.url.path(), "/model/meta.llama3-1-8b-instruct-v1%3A0/converse");
        // Unsupported parameters refuse the request before anything is signed.
        let seeded = Chat { seed: Some(7), ..hi() };
        assert_eq!(p.chat_request_at(&seeded, options, TIME).map(|_| ()).map_err(|e| e.param), Err("seed".into()));
    }

    #[test]
    fn session_tokens_bearer_keys_and_extra_headers() {
        let params = format!(
            "{KEYS}      aws_session_token: FQoGZXIvYXdzEXAMPLETOKEN\n      aws_region_name: us-east-1\n      \
             api_base: http://127.0.0.1:8080\n      extra_headers:\n        X-Team: research-team-42\n"
        );
        let p = build("amazon.titan-embed-text-v2:0", &params, &[]).unwrap_or_else(|e| unreachable!("{e}"));
        let input = EmbedInput { texts: vec!["hello".into()], dimensions: None };
        let req = p
            .embeddings_request_at(&input, "amazon.titan-embed-text-v2:0", TIME)
            .unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(req.url.to_string(), "http://127.0.0.1:8080/model/amazon.titan-embed-text-v2%3A0/invoke");
        assert_eq!(serde_json::from_slice::<Value>(&req.body).ok(), Some(json!({"inputText": "hello"})));
        assert_eq!(header(&req, "host"), Some("127.0.0.1:8080"));
        assert_eq!(header(&req, "x-amz-security-token"), Some("FQoGZXIvYXdzEXAMPLETOKEN"));
        assert_eq!(header(&req, "x-team"), Some("research-team-42"));
        let auth = header(&req, "authorization").unwrap_or_default();
        assert!(auth.contains("SignedHeaders=host;x-amz-date;x-amz-security-token, Signature="), "{auth}");
        for name in ["authorization", "x-amz-security-token", "x-team"] {
            assert!(req.headers.iter().filter(|(n, _)| n.as_str() == name).all(|(_, v)| v.is_sensitive()), "{name}");
        }
        let e = p.parse_error(
            "d",
            403,
            &HeaderMap::new(),
            br#"{"message":"token FQoGZXIvYXdzEXAMPLETOKEN for research-team-42"}"#,
        );
        assert_eq!(e.message, "token **** for ****");
        assert!(!format!("{p:?}").contains("EXAMPLEKEY"));

        let p = build(CLAUDE, "      aws_region_name: us-east-1\n      api_key: bedrock-api-key-1\n", &[])
            .unwrap_or_else(|e| unreachable!("{e}"));
        let options = CallOptions { upstream_model: CLAUDE, stream: false, drop_params: false };
        let req = p.chat_request_at(&hi(), options, TIME).unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(header(&req, "authorization"), Some("Bearer bedrock-api-key-1"));
        assert_eq!(header(&req, "x-amz-date"), None);
    }

    #[test]
    fn dialect_surface() {
        let p = build(CLAUDE, &format!("{KEYS}      aws_region_name: us-east-1\n"), &[])
            .unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!((p.provider(), p.framing(), p.sends_key()), ("bedrock", Framing::EventStream, true));
        let body = br#"{"output":{"message":{"role":"assistant","content":[{"text":"Hi"}]}},"stopReason":"end_turn","usage":{"inputTokens":1,"outputTokens":2,"totalTokens":3}}"#;
        let reply = p.decode_reply(body).unwrap_or_else(|e| unreachable!("{e}"));
        assert!(reply.id.starts_with("chatcmpl-") && reply.id.len() > 20, "{}", reply.id);
        assert_eq!(reply.model, CLAUDE);
        let mut out = Vec::new();
        let mut decoder = p.stream_decoder();
        let frame = crate::framing::Frame {
            event: Some("messageStart".into()),
            data: bytes::Bytes::from_static(b"{\"role\":\"assistant\"}"),
        };
        decoder.frame(&frame, &mut out).unwrap_or_else(|e| unreachable!("{e}"));
        assert!(matches!(&out[..], [crate::llm::chat::Event::Start { model, .. }] if model == CLAUDE), "{out:?}");
        assert!(decoder.end(&mut out).is_err(), "a stream that only started is cut");
    }
}
