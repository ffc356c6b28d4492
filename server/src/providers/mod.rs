//! Providers: one module per wire dialect behind a closed enum, so the compiler lists every place a new
//! provider must be handled. `catalog.rs` holds the data-driven presets of OpenAI-compatible providers.
//!
//! Contract: providers build requests and interpret responses; they never send anything themselves.

pub mod anthropic;
pub mod bare;
pub mod bedrock;
pub mod catalog;
pub mod codec;
pub mod cohere;
pub mod errors;
pub mod extra_headers;
pub mod gemini;
pub mod inbound;
pub mod mock;
pub mod oauth;
pub mod openai;

use std::sync::Arc;

use crate::{
    config::{ConfigError, DeploymentConfig, EnvLookup},
    secret::Secret,
};
use catalog::Lookup;
use codec::Dialect;
use mock::MockModel;
use openai::OpenAiCompatible;

#[derive(Debug)]
pub enum Provider {
    /// Boxed: it carries URLs and headers, and deployments of every kind sit side by side in the table.
    /// Spliced as raw bytes for OpenAI callers, through the canonical types for others.
    OpenAi(Arc<OpenAiCompatible>),
    /// A provider with its own wire dialect, always spoken through the canonical types.
    Native(Arc<dyn Dialect>),
    Mock(MockModel),
}

impl Provider {
    /// Resolves `litellm_params.model` (`provider/model`, or a bare name the catalog knows) to a provider and
    /// the upstream model name.
    pub fn resolve(d: &DeploymentConfig, env: &dyn EnvLookup) -> Result<(Self, String), ConfigError> {
        let path = format!("{}.litellm_params.model", d.path);
        let (prefix, upstream) = match d.model.split_once('/') {
            Some((p, m)) if !m.is_empty() => (p, m),
            Some(_) => return Err(ConfigError::invalid(path, "model name after the provider prefix is empty")),
            None => (bare::provider_of(&d.model).map_err(|m| ConfigError::invalid(&path, m))?, d.model.as_str()),
        };
        let native = |dialect: Result<Arc<dyn Dialect>, ConfigError>| Ok((Self::Native(dialect?), upstream.to_owned()));
        match prefix {
            "mock" => {
                let m = MockModel::new(upstream, d.mock_response.clone(), d.mock_latency);
                return Ok((Self::Mock(m), upstream.to_owned()));
            }
            "anthropic" => {
                return native(anthropic::AnthropicProvider::new(d, upstream, env).map(|p| Arc::new(p) as _))
            }
            "cohere" | "cohere_chat" => {
                return native(cohere::CohereProvider::new(d, upstream, env).map(|p| Arc::new(p) as _))
            }
            "bedrock" | "bedrock_converse" => {
                return native(bedrock::BedrockProvider::new(d, upstream, env).map(|p| Arc::new(p) as _))
            }
            "gemini" => return native(gemini::GeminiProvider::new(d, upstream, env).map(|p| Arc::new(p) as _)),
            "vertex_ai" => {
                return native(gemini::GeminiProvider::new_vertex(d, upstream, env).map(|p| Arc::new(p) as _))
            }
            _ => {}
        }
        // `custom/`, `custom_openai/` and `vllm/` are LiteLLM's names for "an OpenAI-compatible server at api_base".
        let preset_name = match prefix {
            "custom" | "custom_openai" | "azure" | "text-completion-openai" => "openai",
            "vllm" => "hosted_vllm",
            p => p,
        };
        let vllm_base = || env.get("HOSTED_VLLM_API_BASE").is_some();
        let needs_base = match prefix {
            "custom" | "custom_openai" => true,
            "vllm" | "hosted_vllm" => !vllm_base(),
            _ => false,
        };
        if needs_base && d.api_base.is_none() {
            return Err(ConfigError::invalid(
                format!("{}.litellm_params.api_base", d.path),
                format!("`{prefix}/` models need an `api_base`"),
            ));
        }
        let preset = match catalog::lookup(preset_name) {
            Lookup::Found(p) => p,
            Lookup::NotSupportedYet => {
                return Err(ConfigError::invalid(path, format!("provider `{prefix}` is not supported yet")))
            }
            Lookup::Unknown => {
                return Err(ConfigError::invalid(
                    path,
                    format!("unknown provider `{prefix}`; for any OpenAI-compatible server use `openai/<model>` with `api_base`"),
                ))
            }
        };
        let azure = match prefix {
            "azure" => Some(azure_settings(d, upstream, env)?),
            _ => None,
        };
        let (azure_base, azure) = match azure {
            Some((base, a)) => (Some(base), Some(a)),
            None => (None, None),
        };
        let api_key = match &azure {
            Some(_) => d
                .api_key
                .clone()
                .or_else(|| first_env(env, &["AZURE_API_KEY", "AZURE_OPENAI_API_KEY"]).map(Secret::new)),
            None => d.api_key.clone(),
        };
        let is_azure = azure.is_some();
        let settings = openai::Settings {
            provider: prefix,
            preset,
            api_base: azure_base.as_deref().or(d.api_base.as_deref()),
            api_key,
            organization: d.organization.as_deref(),
            extra_headers: &d.extra_headers,
            azure,
        };
        let dialect = OpenAiCompatible::new(settings, env).map_err(|e| {
            let field = match e {
                openai::BuildError::MissingKey(_) | openai::BuildError::BadKey => "api_key",
                openai::BuildError::BadHeader(_) => "extra_headers",
                openai::BuildError::BadUrl(_) => "api_base",
            };
            ConfigError::invalid(format!("{}.litellm_params.{field}", d.path), e.to_string())
        })?;
        if is_azure && !dialect.sends_key() {
            return Err(ConfigError::invalid(
                format!("{}.litellm_params.api_key", d.path),
                "no Azure credential: set `api_key` (or AZURE_API_KEY), `azure_ad_token`, or Microsoft Entra client \
                 credentials (`tenant_id`, `client_id`, `client_secret`)",
            ));
        }
        if prefix == "text-completion-openai" {
            // Its API is `/completions`: chat callers cross dialects to reach it.
            return Ok((Self::Native(Arc::new(openai::TextCompletion(dialect))), upstream.to_owned()));
        }
        Ok((Self::OpenAi(Arc::new(dialect)), upstream.to_owned()))
    }

    /// The provider's dialect when its worker has something to do for it (fetch and refresh an access token).
    pub fn needs_worker(&self) -> Option<Arc<dyn Dialect>> {
        match self {
            Self::Native(d) if d.token_request(0).is_some() => Some(d.clone()),
            Self::OpenAi(o) if o.token_request(0).is_some() => Some(o.clone()),
            _ => None,
        }
    }

    /// The provider as a canonical dialect; `None` for the in-process mock.
    pub fn dialect(&self) -> Option<&dyn Dialect> {
        match self {
            Self::OpenAi(o) => Some(&**o),
            Self::Native(d) => Some(&**d),
            Self::Mock(_) => None,
        }
    }

    pub fn name(&self) -> &str {
        match self {
            Self::OpenAi(o) => &o.provider,
            Self::Native(d) => d.provider(),
            Self::Mock(_) => "mock",
        }
    }

    /// The host an API key would travel to unencrypted (`http://` to a non-loopback host), if any.
    pub fn cleartext_key_host(&self) -> Option<String> {
        match self {
            Self::OpenAi(o) => crate::upstream::key_in_cleartext(&o.chat_url, o.sends_key())
                .then(|| o.chat_url.host().unwrap_or("").to_owned()),
            Self::Native(d) => {
                let endpoint = d.endpoint();
                let uri = endpoint.parse::<actix_web::http::Uri>().ok()?;
                crate::upstream::key_in_cleartext(&uri, d.sends_key()).then(|| host_of(&endpoint).to_owned())
            }
            Self::Mock(_) => None,
        }
    }

    /// Where requests go, for `check-config` (no secrets in it).
    pub fn endpoint(&self) -> String {
        match self {
            Self::OpenAi(o) => o.chat_url.to_string().trim_end_matches("/chat/completions").to_owned(),
            Self::Native(d) => d.endpoint(),
            Self::Mock(_) => "(built-in)".to_owned(),
        }
    }
}

/// The host part of an `http(s)://host[:port]/...` URL, borrowed from it.
fn host_of(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or(rest);
    authority.rsplit_once(':').map_or(authority, |(h, _)| h)
}

fn first_env(env: &dyn EnvLookup, names: &[&str]) -> Option<String> {
    names.iter().find_map(|n| env.get(n)).filter(|v| !v.is_empty())
}

/// Azure's endpoint (`api_base`, `AZURE_API_BASE`, `AZURE_OPENAI_ENDPOINT`), `api-version` (`api_version`,
/// `AZURE_API_VERSION`, `OPENAI_API_VERSION`, else the latest GA) and Entra token (`azure_ad_token`,
/// `AZURE_AD_TOKEN`). Entra client credentials need a token refresh tollgate does not do yet: refused by name.
fn azure_settings<'a>(
    d: &'a DeploymentConfig,
    deployment: &'a str,
    env: &dyn EnvLookup,
) -> Result<(String, openai::Azure<'a>), ConfigError> {
    let field = |name: &str| format!("{}.litellm_params.{name}", d.path);
    let p = &d.provider_params;
    let client_credentials = match (&p.tenant_id, &p.client_id, &p.client_secret) {
        (None, None, None) => None,
        (Some(tenant), Some(client_id), Some(secret)) => {
            // The Azure SDKs' variable moves the authority (sovereign clouds, tests).
            let authority = first_env(env, &["AZURE_AUTHORITY_HOST"]).unwrap_or_else(|| AZURE_AUTHORITY.to_owned());
            let token_url = format!("{}/{tenant}/oauth2/v2.0/token", authority.trim_end_matches('/'));
            let form = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("grant_type", "client_credentials")
                .append_pair("client_id", client_id)
                .append_pair("client_secret", secret.expose())
                .append_pair("scope", AZURE_SCOPE)
                .finish();
            Some(openai::Entra::ClientCredentials { token_url, form: Secret::new(form) })
        }
        _ => {
            return Err(ConfigError::invalid(
                field("tenant_id"),
                "Microsoft Entra client credentials need all of `tenant_id`, `client_id` and `client_secret`",
            ))
        }
    };
    let base = d.api_base.clone().or_else(|| first_env(env, &["AZURE_API_BASE", "AZURE_OPENAI_ENDPOINT"])).ok_or_else(
        || {
            ConfigError::invalid(
                field("api_base"),
                "`azure/` models need an `api_base` (or AZURE_API_BASE): https://<resource>.openai.azure.com",
            )
        },
    )?;
    let api_version = d
        .api_version
        .clone()
        .or_else(|| first_env(env, &["AZURE_API_VERSION", "OPENAI_API_VERSION"]))
        .unwrap_or_else(|| openai::AZURE_DEFAULT_API_VERSION.to_owned());
    let token =
        d.provider_params.azure_ad_token.clone().or_else(|| first_env(env, &["AZURE_AD_TOKEN"]).map(Secret::new));
    let entra = token.map(openai::Entra::Token).or(client_credentials);
    Ok((base, openai::Azure { deployment, api_version, entra }))
}

const AZURE_AUTHORITY: &str = "https://login.microsoftonline.com";
const AZURE_SCOPE: &str = "https://cognitiveservices.azure.com/.default";
