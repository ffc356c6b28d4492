//! Google Gemini, through the Gemini API (`gemini/<model>`, generativelanguage.googleapis.com) or Vertex AI
//! (`vertex_ai/<model>`, `{location}-aiplatform.googleapis.com`): one wire format, two ways to address and
//! authenticate (providers.md section 3).
//!
//! - Gemini API: `{base}/models/{model}:generateContent`, `:streamGenerateContent?alt=sse`,
//!   `:batchEmbedContents`; the key goes in the `x-goog-api-key` header (sensitive), never in the URL, so it
//!   cannot reach a log line that prints URLs.
//! - Vertex AI: `.../v1/projects/{project}/locations/{location}/publishers/google/models/{model}:...`, embeddings
//!   by `:predict`; `Authorization: Bearer <OAuth token>`. The token comes from the credentials (`auth.rs`) by a
//!   request this module builds ([`GeminiProvider::token_refresh`]) and someone else sends; its answer is
//!   installed with [`GeminiProvider::install_token`] and read by every request without a lock.
//!
//! Contract: request building and response reading only. The one piece of I/O is reading a credentials file in
//! [`GeminiProvider::new_vertex`], which runs at config load.

mod auth;
mod embed;
mod error;
mod reply;
mod request;
mod schema;
mod stream;

use std::time::Duration;

use actix_web::http::{
    header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION},
    Uri,
};
pub use auth::{TokenError, TokenRequest};

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

const GEMINI_BASE: &str = "https://generativelanguage.googleapis.com/v1beta";
/// LiteLLM's default Vertex location.
const DEFAULT_LOCATION: &str = "us-central1";
static API_KEY_HEADER: HeaderName = HeaderName::from_static("x-goog-api-key");

#[derive(Debug)]
pub struct GeminiProvider {
    /// `gemini` or `vertex_ai`.
    provider: &'static str,
    /// The deployment's upstream model, whose URLs are built once here.
    model: String,
    /// Everything before `:<method>` of a request URL for some model.
    models_base: String,
    urls: Urls,
    auth: Auth,
    /// The key and the configured header values: never shown in an error message.
    scrubbed: Vec<Secret>,
    /// `extra_headers`, every value marked sensitive (it may hold a credential).
    extra_headers: Vec<(HeaderName, HeaderValue)>,
}

#[derive(Debug, Clone)]
struct Urls {
    generate: Uri,
    stream: Uri,
    embed: Uri,
}

#[derive(Debug)]
enum Auth {
    /// `x-goog-api-key`, sensitive; `None` when an `api_base` proxy needs no key.
    ApiKey(Option<HeaderValue>),
    Vertex {
        credentials: auth::Credentials,
        token: auth::TokenCell,
    },
}

impl GeminiProvider {
    /// `gemini/<model>`: base `api_base`, else `GEMINI_API_BASE`, else Google's; key `api_key`, else
    /// `GEMINI_API_KEY`, else `GOOGLE_API_KEY` (LiteLLM's order).
    pub fn new(d: &DeploymentConfig, upstream_model: &str, env: &dyn EnvLookup) -> Result<Self, ConfigError> {
        let var = |name: &str| env.get(name).filter(|v| !v.is_empty());
        let base = d.api_base.clone().or_else(|| var("GEMINI_API_BASE")).unwrap_or_else(|| GEMINI_BASE.to_owned());
        let key =
            d.api_key.clone().or_else(|| var("GEMINI_API_KEY").or_else(|| var("GOOGLE_API_KEY")).map(Secret::new));
        let key = match key {
            Some(key) => {
                let mut v = HeaderValue::from_str(key.expose()).map_err(|_| {
                    invalid(d, "api_key", "the API key contains characters not allowed in an HTTP header")
                })?;
                v.set_sensitive(true);
                Some((key, v))
            }
            // A proxy at `api_base` may add the key itself.
            None if d.api_base.is_some() => None,
            None => {
                return Err(invalid(
                    d,
                    "api_key",
                    "no API key: set `api_key` or the environment variable `GEMINI_API_KEY` (or `GOOGLE_API_KEY`)",
                ))
            }
        };
        let models_base = format!("{}/models", base.trim_end_matches('/'));
        let mut provider = Self::build(d, "gemini", upstream_model, models_base, Auth::ApiKey(None))?;
        if let Some((secret, header)) = key {
            provider.scrubbed.push(secret);
            provider.auth = Auth::ApiKey(Some(header));
        }
        Ok(provider)
    }

    /// `vertex_ai/<model>`: project from `vertex_project`, `VERTEXAI_PROJECT` or the credentials; location from
    /// `vertex_location`, `VERTEXAI_LOCATION`, else `us-central1`; credentials from `vertex_credentials` (the
    /// JSON itself, or the path of a file holding it) or the file `GOOGLE_APPLICATION_CREDENTIALS` names.
    /// `api_base` replaces the scheme and host.
    pub fn new_vertex(d: &DeploymentConfig, upstream_model: &str, env: &dyn EnvLookup) -> Result<Self, ConfigError> {
        let var = |name: &str| env.get(name).filter(|v| !v.is_empty());
        let p = &d.provider_params;
        let json =
            match (&p.vertex_credentials, var("GOOGLE_APPLICATION_CREDENTIALS")) {
                (Some(c), _) if c.expose().trim_start().starts_with('{') => c.expose().to_owned(),
                (Some(path), _) => read_credentials(d, path.expose(), "`vertex_credentials`")?,
                (None, Some(path)) => read_credentials(d, &path, "GOOGLE_APPLICATION_CREDENTIALS")?,
                (None, None) => return Err(invalid(
                    d,
                    "vertex_credentials",
                    "no Vertex AI credentials: set `vertex_credentials` (service-account JSON or its file path) or \
                     the environment variable GOOGLE_APPLICATION_CREDENTIALS; credentials from the metadata server \
                     are not supported",
                )),
            };
        let (credentials, file_project) =
            auth::Credentials::parse(&json).map_err(|e| invalid(d, "vertex_credentials", e.to_string()))?;
        let project = p
            .vertex_project
            .clone()
            .or_else(|| var("VERTEXAI_PROJECT"))
            .or(file_project)
            .ok_or_else(|| invalid(d, "vertex_project", "no project: set `vertex_project` or VERTEXAI_PROJECT"))?;
        let location =
            p.vertex_location.clone().or_else(|| var("VERTEXAI_LOCATION")).unwrap_or_else(|| DEFAULT_LOCATION.into());
        for (field, what, value) in
            [("vertex_project", "project", &project), ("vertex_location", "location", &location)]
        {
            // Both go into the URL's path and host.
            if value.is_empty() || !value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
                return Err(invalid(d, field, format!("`{value}` is not a valid Google Cloud {what}")));
            }
        }
        let host = match (&d.api_base, location.as_str()) {
            (Some(base), _) => base.trim_end_matches('/').to_owned(),
            (None, "global") => "https://aiplatform.googleapis.com".to_owned(),
            (None, multi @ ("us" | "eu")) => format!("https://aiplatform.{multi}.rep.googleapis.com"),
            (None, region) => format!("https://{region}-aiplatform.googleapis.com"),
        };
        let models_base = format!("{host}/v1/projects/{project}/locations/{location}/publishers/google/models");
        let auth = Auth::Vertex { credentials, token: auth::TokenCell::default() };
        Self::build(d, "vertex_ai", upstream_model, models_base, auth)
    }

    fn build(
        d: &DeploymentConfig,
        provider: &'static str,
        model: &str,
        models_base: String,
        auth: Auth,
    ) -> Result<Self, ConfigError> {
        let urls = Urls::new(provider, &models_base, model).ok_or_else(|| {
            let field = if d.api_base.is_some() { "api_base" } else { "model" };
            invalid(d, field, format!("`{models_base}/{model}` is not a valid URL"))
        })?;
        let mut scrubbed = Vec::new();
        let extra_headers = super::extra_headers::sensitive(d, &mut scrubbed)?;
        Ok(Self { provider, model: model.to_owned(), models_base, urls, auth, scrubbed, extra_headers })
    }

    /// Vertex AI: the request that fetches a fresh access token, signed at `now_unix` (seconds since the epoch;
    /// the caller's clock, so this stays pure). `None` for the Gemini API, which needs no token. Send it before
    /// the first call and again when [`GeminiProvider::install_token`] says.
    pub fn token_refresh(&self, now_unix: u64) -> Option<Result<TokenRequest, TokenError>> {
        match &self.auth {
            Auth::Vertex { credentials, .. } => Some(credentials.token_request(now_unix)),
            Auth::ApiKey(_) => None,
        }
    }

    /// Vertex AI: installs the token endpoint's answer (a 200 body; an error body is read as a refusal) received
    /// at `now_unix`, and says how soon to refresh it. A failed refresh keeps the previous token.
    pub fn install_token(&self, response_body: &[u8], now_unix: u64) -> Result<Duration, TokenError> {
        match &self.auth {
            Auth::Vertex { token, .. } => token.install(response_body, now_unix),
            Auth::ApiKey(_) => Err(TokenError::Refused("the Gemini API takes no access token".into())),
        }
    }

    /// When the current Vertex AI token expires (seconds since the epoch), if there is one.
    #[cfg(test)]
    pub fn token_expires_at(&self) -> Option<u64> {
        match &self.auth {
            Auth::Vertex { token, .. } => token.get().map(|t| t.expires_at_unix),
            Auth::ApiKey(_) => None,
        }
    }

    /// The credential header of a request, or why there is none yet.
    fn auth_header(&self) -> Result<Option<(HeaderName, HeaderValue)>, Unsupported> {
        match &self.auth {
            Auth::ApiKey(key) => Ok(key.clone().map(|v| (API_KEY_HEADER.clone(), v))),
            Auth::Vertex { token, .. } => match token.get() {
                Some(t) => Ok(Some((AUTHORIZATION, t.header.clone()))),
                // Why: the Dialect signature can only refuse with `Unsupported`; this names the cause.
                None => Err(Unsupported {
                    param: "vertex_credentials (token not yet fetched)".into(),
                    provider: self.provider,
                }),
            },
        }
    }

    fn request(&self, url: Uri, body: &serde_json::Value) -> Result<UpstreamRequest, Unsupported> {
        let mut headers = Vec::with_capacity(1 + self.extra_headers.len());
        headers.extend(self.auth_header()?);
        headers.extend(self.extra_headers.iter().cloned());
        // Serialising a `Value` cannot fail (its keys are strings).
        Ok(UpstreamRequest { url, headers, body: serde_json::to_vec(body).unwrap_or_default() })
    }

    /// The URLs for `model`: the ones built at start-up for the deployment's model, else built now.
    fn urls_for(&self, model: &str) -> Result<std::borrow::Cow<'_, Urls>, Unsupported> {
        if model == self.model {
            return Ok(std::borrow::Cow::Borrowed(&self.urls));
        }
        Urls::new(self.provider, &self.models_base, model)
            .map(std::borrow::Cow::Owned)
            .ok_or_else(|| Unsupported { param: "model".into(), provider: self.provider })
    }

    fn is_vertex(&self) -> bool {
        matches!(self.auth, Auth::Vertex { .. })
    }
}

impl Urls {
    fn new(provider: &str, models_base: &str, model: &str) -> Option<Self> {
        let at = |method: &str| Uri::try_from(format!("{models_base}/{model}:{method}")).ok();
        let embed = if provider == "vertex_ai" { "predict" } else { "batchEmbedContents" };
        Some(Self { generate: at("generateContent")?, stream: at("streamGenerateContent?alt=sse")?, embed: at(embed)? })
    }
}

fn invalid(d: &DeploymentConfig, field: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::invalid(format!("{}.litellm_params.{field}", d.path), message)
}

/// The credentials file at `path` (named by `source` in errors; the path is shown, the content never).
fn read_credentials(d: &DeploymentConfig, path: &str, source: &str) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|e| {
        invalid(d, "vertex_credentials", format!("cannot read the credentials file {path} ({source}): {e}"))
    })
}

impl Dialect for GeminiProvider {
    fn not_ready(&self) -> Option<String> {
        match &self.auth {
            Auth::Vertex { token, .. } if token.get().is_none() => {
                Some("waiting for a Vertex AI access token (the deployment's worker fetches it)".into())
            }
            _ => None,
        }
    }

    fn token_request(&self, now_unix: u64) -> Option<Result<TokenRequest, String>> {
        self.token_refresh(now_unix).map(|r| r.map_err(|e| e.to_string()))
    }

    fn install_token(&self, body: &[u8], now_unix: u64) -> Result<Duration, String> {
        GeminiProvider::install_token(self, body, now_unix).map_err(|e| e.to_string())
    }

    fn provider(&self) -> &str {
        self.provider
    }

    fn chat_request(&self, chat: &Chat, options: CallOptions<'_>) -> Result<UpstreamRequest, Unsupported> {
        let mut check = ParamCheck::new(self.provider, options.drop_params, chat);
        let body = request::encode(chat, &mut check);
        check.finish()?;
        let urls = self.urls_for(options.upstream_model)?;
        let url = if options.stream { urls.stream.clone() } else { urls.generate.clone() };
        self.request(url, &body)
    }

    fn framing(&self) -> Framing {
        Framing::Sse
    }

    fn stream_decoder(&self) -> Box<dyn StreamDecoder> {
        Box::new(stream::Decoder::new(&self.model))
    }

    fn decode_reply(&self, body: &[u8]) -> Result<Reply, DecodeError> {
        reply::decode(body, &self.model)
    }

    fn parse_error(&self, deployment: &str, status: u16, headers: &HeaderMap, body: &[u8]) -> UpstreamError {
        let token = match &self.auth {
            Auth::Vertex { token, .. } => token.get().map(|t| t.secret.clone()),
            Auth::ApiKey(_) => None,
        };
        let mut scrubbed = self.scrubbed.clone();
        scrubbed.extend(token);
        error::parse(deployment, status, headers, body, &scrubbed)
    }

    fn endpoint(&self) -> String {
        format!("{}/{}", self.models_base, self.model)
    }

    fn sends_key(&self) -> bool {
        match &self.auth {
            Auth::ApiKey(key) => key.is_some(),
            Auth::Vertex { .. } => true,
        }
    }

    fn embeddings_request(&self, input: &EmbedInput, upstream_model: &str) -> Result<UpstreamRequest, Unsupported> {
        let urls = self.urls_for(upstream_model)?;
        let body = if self.is_vertex() { embed::vertex_body(input) } else { embed::gemini_body(input, upstream_model) };
        self.request(urls.embed.clone(), &body)
    }

    fn decode_embeddings(&self, body: &[u8]) -> Result<Embeddings, DecodeError> {
        if self.is_vertex() {
            embed::decode_vertex(body)
        } else {
            embed::decode_gemini(body)
        }
    }
}

#[cfg(test)]
mod tests;
