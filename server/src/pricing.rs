//! Prices and cost: per-token USD prices from the vendored LiteLLM catalog (`assets/model_prices.json`) or a
//! newer file, overridden per deployment by `input_cost_per_token` / `output_cost_per_token`. Money leaves this
//! module as integer nano-dollars.

use std::{collections::HashMap, sync::OnceLock};

use serde::Deserialize;

use crate::pipeline::usage::Usage;

const VENDORED_CATALOG: &str = include_str!("../../assets/model_prices.json");

#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize)]
pub struct Prices {
    #[serde(default)]
    pub input_cost_per_token: f64,
    #[serde(default)]
    pub output_cost_per_token: f64,
    /// Price of cached input tokens; `None` bills them at the input price.
    #[serde(default)]
    pub cache_read_input_token_cost: Option<f64>,
}

impl Prices {
    /// OpenAI-style usage, where cached tokens are a subset of prompt tokens.
    pub fn cost_nanos(&self, u: Usage) -> u64 {
        let cached = u.cached_tokens.min(u.prompt_tokens);
        let usd = (u.prompt_tokens - cached) as f64 * self.input_cost_per_token
            + cached as f64 * self.cache_read_input_token_cost.unwrap_or(self.input_cost_per_token)
            + u.completion_tokens as f64 * self.output_cost_per_token;
        (usd * 1e9).round().max(0.0) as u64
    }
}

pub type Catalog = HashMap<String, Prices>;

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("cannot read price catalog {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("price catalog {path} is not valid: {source}")]
    Parse { path: String, source: serde_json::Error },
}

/// The compiled-in catalog, parsed once per process on first use.
pub fn vendored() -> &'static Catalog {
    static CATALOG: OnceLock<Catalog> = OnceLock::new();
    CATALOG.get_or_init(|| parse(VENDORED_CATALOG).unwrap_or_default())
}

pub fn load(path: &str) -> Result<Catalog, CatalogError> {
    let text = std::fs::read_to_string(path).map_err(|source| CatalogError::Read { path: path.into(), source })?;
    parse(&text).map_err(|source| CatalogError::Parse { path: path.into(), source })
}

fn parse(text: &str) -> Result<Catalog, serde_json::Error> {
    // Entries that are not price objects (LiteLLM's `sample_spec` has strings in numeric fields) are skipped.
    let raw: HashMap<String, serde_json::Value> = serde_json::from_str(text)?;
    Ok(raw.into_iter().filter_map(|(k, v)| Some((k, serde_json::from_value(v).ok()?))).collect())
}

/// Catalog prices for `provider/model`, trying LiteLLM's key spellings, then the per-deployment overrides.
pub fn resolve(catalog: &Catalog, provider: &str, model: &str, input: Option<f64>, output: Option<f64>) -> Prices {
    let base = catalog.get(&format!("{provider}/{model}")).or_else(|| catalog.get(model)).copied().unwrap_or_default();
    Prices {
        input_cost_per_token: input.unwrap_or(base.input_cost_per_token),
        output_cost_per_token: output.unwrap_or(base.output_cost_per_token),
        cache_read_input_token_cost: if input.is_some() { None } else { base.cache_read_input_token_cost },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vendored_catalog_has_known_prices() {
        let c = vendored();
        assert!(c.len() > 4000, "{}", c.len());
        let p = resolve(c, "openai", "gpt-4o-mini", None, None);
        assert_eq!(p.input_cost_per_token, 1.5e-7);
        assert_eq!(p.output_cost_per_token, 6e-7);
        let groq = resolve(c, "groq", "openai/gpt-oss-20b", None, None);
        assert!(groq.input_cost_per_token > 0.0, "provider-prefixed keys are found");
    }

    #[test]
    fn costs_in_nano_dollars() {
        let p = Prices {
            input_cost_per_token: 1.5e-7,
            output_cost_per_token: 6e-7,
            cache_read_input_token_cost: Some(7.5e-8),
        };
        let cases = [
            (Usage { prompt_tokens: 0, completion_tokens: 0, cached_tokens: 0 }, 0),
            (Usage { prompt_tokens: 1000, completion_tokens: 0, cached_tokens: 0 }, 150_000),
            (Usage { prompt_tokens: 1000, completion_tokens: 100, cached_tokens: 0 }, 210_000),
            (Usage { prompt_tokens: 1000, completion_tokens: 0, cached_tokens: 400 }, 120_000),
            (Usage { prompt_tokens: 10, completion_tokens: 0, cached_tokens: 50 }, 750),
        ];
        for (usage, want) in cases {
            assert_eq!(p.cost_nanos(usage), want, "{usage:?}");
        }
    }

    #[test]
    fn overrides_win() {
        let p = resolve(vendored(), "openai", "gpt-4o-mini", Some(1e-6), None);
        assert_eq!(
            (p.input_cost_per_token, p.output_cost_per_token, p.cache_read_input_token_cost),
            (1e-6, 6e-7, None)
        );
        assert_eq!(resolve(vendored(), "mock", "x", None, None), Prices::default());
    }
}
