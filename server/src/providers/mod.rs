//! Providers: one module per wire dialect behind a closed enum, so the compiler lists every place a new
//! provider must be handled. `catalog.rs` holds the data-driven presets of OpenAI-compatible providers.
//!
//! Contract: providers build requests and interpret responses; they never send anything themselves.

pub mod catalog;
pub mod codec;
pub mod gemini;
pub mod mock;
pub mod openai;

use crate::config::{ConfigError, DeploymentConfig, EnvLookup};
use catalog::Lookup;
use mock::MockModel;
use openai::OpenAiCompatible;

#[derive(Debug)]
pub enum Provider {
    /// Boxed: it carries URLs and headers, and deployments of both kinds sit side by side in the table.
    OpenAi(Box<OpenAiCompatible>),
    Mock(MockModel),
}

impl Provider {
    /// Resolves `litellm_params.model` (`provider/model`) to a provider and the upstream model name.
    pub fn resolve(d: &DeploymentConfig, env: &dyn EnvLookup) -> Result<(Self, String), ConfigError> {
        let path = format!("{}.litellm_params.model", d.path);
        let (prefix, upstream) = match d.model.split_once('/') {
            Some((p, m)) if !m.is_empty() => (p, m),
            Some(_) => return Err(ConfigError::invalid(path, "model name after the provider prefix is empty")),
            // LiteLLM treats a bare model name as OpenAI's.
            None => ("openai", d.model.as_str()),
        };
        if prefix == "mock" {
            let m = MockModel::new(upstream, d.mock_response.clone(), d.mock_latency);
            return Ok((Self::Mock(m), upstream.to_owned()));
        }
        // `custom/` and `custom_openai/` are LiteLLM's names for "any OpenAI-compatible server at api_base".
        let preset_name = if matches!(prefix, "custom" | "custom_openai") { "openai" } else { prefix };
        if preset_name != prefix && d.api_base.is_none() {
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
        let settings = openai::Settings {
            provider: prefix,
            preset,
            api_base: d.api_base.as_deref(),
            api_key: d.api_key.clone(),
            organization: d.organization.as_deref(),
            extra_headers: &d.extra_headers,
        };
        let dialect = OpenAiCompatible::new(settings, env).map_err(|e| {
            let field = match e {
                openai::BuildError::MissingKey(_) | openai::BuildError::BadKey => "api_key",
                openai::BuildError::BadHeader(_) => "extra_headers",
                openai::BuildError::BadUrl(_) => "api_base",
            };
            ConfigError::invalid(format!("{}.litellm_params.{field}", d.path), e.to_string())
        })?;
        Ok((Self::OpenAi(Box::new(dialect)), upstream.to_owned()))
    }

    pub fn name(&self) -> &str {
        match self {
            Self::OpenAi(o) => &o.provider,
            Self::Mock(_) => "mock",
        }
    }

    /// The host an API key would travel to unencrypted (`http://` to a non-loopback host), if any.
    pub fn cleartext_key_host(&self) -> Option<&str> {
        match self {
            Self::OpenAi(o) => {
                crate::upstream::key_in_cleartext(&o.chat_url, o.sends_key()).then(|| o.chat_url.host().unwrap_or(""))
            }
            Self::Mock(_) => None,
        }
    }

    /// Where requests go, for `check-config` (no secrets in it).
    pub fn endpoint(&self) -> String {
        match self {
            Self::OpenAi(o) => o.chat_url.to_string().trim_end_matches("/chat/completions").to_owned(),
            Self::Mock(_) => "(built-in)".to_owned(),
        }
    }
}
