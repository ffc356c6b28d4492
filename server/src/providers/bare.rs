//! Bare model names (`gpt-4`, `claude-3-opus-20240229`, `command`) resolved to a provider, as LiteLLM does: by the
//! vendored catalog's `litellm_provider` field, then by the model families whose names say who serves them.
//! Anything else is an error that names the prefixes to use.

use std::{collections::HashMap, sync::OnceLock};

use serde::Deserialize;

const VENDORED_CATALOG: &str = include_str!("../../../assets/model_prices.json");

#[derive(Deserialize)]
struct Entry {
    #[serde(default)]
    litellm_provider: Option<String>,
}

/// Catalog names without a `/`, to their provider prefix.
fn catalog() -> &'static HashMap<String, &'static str> {
    static NAMES: OnceLock<HashMap<String, &'static str>> = OnceLock::new();
    NAMES.get_or_init(|| {
        let all: HashMap<String, Entry> = serde_json::from_str(VENDORED_CATALOG).unwrap_or_default();
        all.into_iter()
            .filter(|(name, _)| !name.contains('/'))
            .filter_map(|(name, e)| Some((name, prefix_of(e.litellm_provider.as_deref()?)?)))
            .collect()
    })
}

/// The catalog's provider names (`cohere_chat`, `vertex_ai-language-models`, ...) as config prefixes.
fn prefix_of(litellm_provider: &str) -> Option<&'static str> {
    Some(match litellm_provider {
        "openai" => "openai",
        "text-completion-openai" => "text-completion-openai",
        "anthropic" => "anthropic",
        "cohere" | "cohere_chat" => "cohere",
        "gemini" => "gemini",
        p if p.starts_with("vertex_ai") => "vertex_ai",
        "bedrock" | "bedrock_converse" => "bedrock",
        "deepseek" => "deepseek",
        "together_ai" => "together_ai",
        "fireworks_ai" => "fireworks_ai",
        _ => return None,
    })
}

/// Name families the catalog no longer lists (retired models) but whose provider the name says.
const FAMILIES: &[(&str, &str)] = &[
    ("gpt-", "openai"),
    ("chatgpt-", "openai"),
    ("o1", "openai"),
    ("o3", "openai"),
    ("o4", "openai"),
    ("text-embedding-", "openai"),
    ("claude-", "anthropic"),
    ("command", "cohere"),
    ("embed-", "cohere"),
    ("gemini-", "gemini"),
];

/// The provider prefix for a bare model name.
pub fn provider_of(model: &str) -> Result<&'static str, String> {
    if let Some(p) = catalog().get(model) {
        return Ok(p);
    }
    FAMILIES.iter().find(|(family, _)| model.starts_with(family)).map(|(_, p)| *p).ok_or_else(|| {
        format!(
            "cannot tell which provider serves `{model}`; write it as `<provider>/{model}`, e.g. `openai/`, \
             `anthropic/`, `gemini/`, `vertex_ai/`, `bedrock/`, `cohere/`, `azure/`, or `hosted_vllm/` with an \
             `api_base` for an OpenAI-compatible server"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_names_resolve_like_litellm() {
        let cases = [
            ("gpt-4", Ok("openai")),
            ("gpt-4o-mini", Ok("openai")),
            ("claude-3-opus-20240229", Ok("anthropic")),
            ("claude-sonnet-4-5", Ok("anthropic")),
            ("command", Ok("cohere")),
            ("command-r-08-2024", Ok("cohere")),
            // The catalog lists bare Gemini names under Vertex AI, and LiteLLM routes them there too.
            ("gemini-2.5-pro", Ok("vertex_ai")),
            ("gemini-9-future", Ok("gemini")),
            ("text-embedding-3-small", Ok("openai")),
        ];
        for (name, want) in cases {
            assert_eq!(provider_of(name), want.map_err(|_: ()| String::new()), "{name}");
        }
        let unknown = provider_of("llama-3-70b").err().unwrap_or_default();
        assert!(unknown.contains("hosted_vllm/") && unknown.contains("`llama-3-70b`"), "{unknown}");
    }
}
