//! Data-driven presets for OpenAI-compatible providers: base URL, key variable, auth style and parameter quirks.
//!
//! The table is the union of LiteLLM's `openai_compatible_providers.json` and tollgate's own
//! `provider_presets.json` (ours wins on a name clash), both compiled into the binary from `assets/`.
//! Adding a provider of this kind is a JSON edit, never a new module.

use std::{collections::HashMap, sync::OnceLock};

use serde::Deserialize;

const LITELLM_PRESETS: &str = include_str!("../../../assets/openai_compatible_providers.json");
const TOLLGATE_PRESETS: &str = include_str!("../../../assets/provider_presets.json");

/// How the provider wants its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum AuthStyle {
    /// `Authorization: Bearer <key>`; a missing key is a config error.
    #[default]
    Bearer,
    /// Bearer when a key is configured, nothing otherwise (vLLM, LM Studio).
    Optional,
    /// Never send a key (Ollama).
    None,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Preset {
    pub base_url: String,
    pub api_key_env: Option<String>,
    pub api_base_env: Option<String>,
    /// More variables that move the base URL, read after `api_base_env` (the OpenAI SDK's `OPENAI_BASE_URL`).
    #[serde(default)]
    pub api_base_env_also: Vec<String>,
    #[serde(default)]
    pub auth: AuthStyle,
    /// OpenAI parameter name -> the provider's name for it (e.g. `max_completion_tokens` -> `max_tokens`).
    #[serde(default)]
    pub param_mappings: HashMap<String, String>,
    #[serde(default)]
    pub special_handling: SpecialHandling,
    /// The server accepts `stream_options: {"include_usage": true}`, so tollgate asks for the usage chunk on every
    /// stream. `false` for servers that reject unknown fields (they may still report usage on their own; the
    /// relay reads it wherever it comes).
    #[serde(default = "yes")]
    pub stream_usage: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct SpecialHandling {
    /// Text-only providers reject content arrays: send `[{type:text,text:a},{..b}]` as `"a\nb"`.
    #[serde(default)]
    pub convert_content_list_to_string: bool,
}

/// Providers LiteLLM supports through a native (non-OpenAI) dialect that tollgate has no adapter for yet.
const NATIVE_NOT_YET: &[&str] =
    &["azure_ai", "vertex_ai_beta", "sagemaker", "huggingface", "replicate", "watsonx", "ollama_chat"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup<'a> {
    Found(&'a Preset),
    NotSupportedYet,
    Unknown,
}

pub fn lookup(provider: &str) -> Lookup<'static> {
    match presets().get(provider) {
        Some(p) => Lookup::Found(p),
        None if NATIVE_NOT_YET.contains(&provider) => Lookup::NotSupportedYet,
        None => Lookup::Unknown,
    }
}

/// The provider's name with the table's lifetime, for errors that must name it (`Unsupported::provider`).
pub fn static_name(provider: &str) -> Option<&'static str> {
    presets().get_key_value(provider).map(|(name, _)| name.as_str())
}

impl PartialEq for Preset {
    fn eq(&self, other: &Self) -> bool {
        self.base_url == other.base_url
    }
}
impl Eq for Preset {}

fn presets() -> &'static HashMap<String, Preset> {
    static PRESETS: OnceLock<HashMap<String, Preset>> = OnceLock::new();
    PRESETS.get_or_init(|| {
        // Both files are compiled in and covered by `every_compiled_in_preset_parses`; an empty table here
        // would only mean a broken build, and every lookup would then say "unknown provider".
        let mut all: HashMap<String, Preset> = serde_json::from_str(LITELLM_PRESETS).unwrap_or_default();
        let ours: HashMap<String, Preset> = serde_json::from_str(TOLLGATE_PRESETS).unwrap_or_default();
        all.extend(ours);
        all
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_compiled_in_preset_parses() {
        let litellm: HashMap<String, Preset> = serde_json::from_str(LITELLM_PRESETS).unwrap_or_default();
        let ours: HashMap<String, Preset> = serde_json::from_str(TOLLGATE_PRESETS).unwrap_or_default();
        assert_eq!(litellm.len(), 41);
        assert_eq!(ours.len(), 14);
    }

    #[test]
    fn looks_up_providers() {
        let required = [
            "openai",
            "mistral",
            "groq",
            "together_ai",
            "deepseek",
            "fireworks_ai",
            "openrouter",
            "xai",
            "perplexity",
            "cerebras",
            "deepinfra",
            "ollama",
            "hosted_vllm",
            "lm_studio",
            "publicai",
            "veniceai",
        ];
        for name in required {
            assert!(matches!(lookup(name), Lookup::Found(_)), "{name}");
        }
        assert_eq!(lookup("sagemaker"), Lookup::NotSupportedYet);
        assert_eq!(lookup("no-such-provider"), Lookup::Unknown);
        let Lookup::Found(groq) = lookup("groq") else { unreachable!() };
        assert_eq!(groq.base_url, "https://api.groq.com/openai/v1");
        let Lookup::Found(ollama) = lookup("ollama") else { unreachable!() };
        assert_eq!(ollama.auth, AuthStyle::None);
        let Lookup::Found(publicai) = lookup("publicai") else { unreachable!() };
        assert!(publicai.special_handling.convert_content_list_to_string);
        assert_eq!(publicai.param_mappings.get("max_completion_tokens").map(String::as_str), Some("max_tokens"));
    }
}
