//! Prices and cost: per-token USD prices from the vendored LiteLLM catalog (`assets/model_prices.json`) or a
//! newer file, overridden per deployment by `input_cost_per_token` / `output_cost_per_token`. Money leaves this
//! module as integer nano-dollars. A model the catalog does not know is [`Pricing::Unpriced`], never a silent $0.

use std::{collections::HashMap, sync::OnceLock};

use serde::Deserialize;

use crate::llm::Usage;

const VENDORED_CATALOG: &str = include_str!("../../assets/model_prices.json");

#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize)]
pub struct Prices {
    #[serde(default)]
    pub input_cost_per_token: f64,
    #[serde(default)]
    pub output_cost_per_token: f64,
    /// Price of input tokens read from the prompt cache; `None` bills them at the input price.
    #[serde(default)]
    pub cache_read_input_token_cost: Option<f64>,
    /// Price of input tokens written to the prompt cache; `None` bills them at the input price.
    #[serde(default)]
    pub cache_creation_input_token_cost: Option<f64>,
    /// Price of reasoning tokens; `None` bills them at the output price.
    #[serde(default)]
    pub output_cost_per_reasoning_token: Option<f64>,
}

impl Prices {
    /// Each kind of token at its own price, by the catalog's own fields (see [`Usage`] for the accounting).
    pub fn cost_nanos(&self, u: Usage) -> u64 {
        let cache_read = u.cache_read_tokens.min(u.prompt_tokens);
        let cache_write = u.cache_write_tokens.min(u.prompt_tokens - cache_read);
        let reasoning = u.reasoning_tokens.min(u.completion_tokens);
        let usd = u.uncached_prompt_tokens() as f64 * self.input_cost_per_token
            + cache_read as f64 * self.cache_read_input_token_cost.unwrap_or(self.input_cost_per_token)
            + cache_write as f64 * self.cache_creation_input_token_cost.unwrap_or(self.input_cost_per_token)
            + u.visible_completion_tokens() as f64 * self.output_cost_per_token
            + reasoning as f64 * self.output_cost_per_reasoning_token.unwrap_or(self.output_cost_per_token);
        (usd * 1e9).round().max(0.0) as u64
    }
}

/// A deployment's prices, or the fact that nobody knows them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pricing {
    Priced(Prices),
    /// Neither the catalog nor the deployment's config has a price: calls are counted as unpriced, not as $0.
    Unpriced,
}

impl Pricing {
    /// `None` when unpriced, unless there is nothing to price: no tokens cost nothing at any price (a
    /// `count_tokens` call).
    pub fn cost_nanos(&self, u: Usage) -> Option<u64> {
        match self {
            Self::Priced(p) => Some(p.cost_nanos(u)),
            Self::Unpriced if u == Usage::default() => Some(0),
            Self::Unpriced => None,
        }
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

/// The catalog a config names (`tollgate.price_catalog`), else the vendored one. Reads the file: call it where I/O
/// belongs (start-up, reload, `check-config`), never on the request path.
pub fn configured(path: Option<&str>) -> Result<std::borrow::Cow<'static, Catalog>, crate::config::ConfigError> {
    match path {
        Some(path) => load(path)
            .map(std::borrow::Cow::Owned)
            .map_err(|e| crate::config::ConfigError::invalid("tollgate.price_catalog", e.to_string())),
        None => Ok(std::borrow::Cow::Borrowed(vendored())),
    }
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

/// The vendored catalog's `max_input_tokens` for `provider/model` (LiteLLM's key spellings, as [`resolve`]): the
/// context window routing uses when the config gives none. Parsed once per process on first use.
pub fn context_window(provider: &str, model: &str) -> Option<u64> {
    static WINDOWS: OnceLock<HashMap<String, u64>> = OnceLock::new();
    let windows = WINDOWS.get_or_init(|| {
        #[derive(Deserialize)]
        struct Entry {
            max_input_tokens: Option<u64>,
        }
        let raw: HashMap<String, serde_json::Value> = serde_json::from_str(VENDORED_CATALOG).unwrap_or_default();
        raw.into_iter()
            .filter_map(|(k, v)| Some((k, serde_json::from_value::<Entry>(v).ok()?.max_input_tokens?)))
            .collect()
    });
    windows.get(&format!("{provider}/{model}")).or_else(|| windows.get(model)).copied()
}

/// The vendored catalog's `max_output_tokens` for `provider/model` (as [`context_window`]): the longest answer
/// the model gives, which bounds a budget reservation. Parsed once per process on first use.
pub fn max_output_tokens(provider: &str, model: &str) -> Option<u64> {
    static OUTPUTS: OnceLock<HashMap<String, u64>> = OnceLock::new();
    let outputs = OUTPUTS.get_or_init(|| {
        #[derive(Deserialize)]
        struct Entry {
            max_output_tokens: Option<u64>,
        }
        let raw: HashMap<String, serde_json::Value> = serde_json::from_str(VENDORED_CATALOG).unwrap_or_default();
        raw.into_iter()
            .filter_map(|(k, v)| Some((k, serde_json::from_value::<Entry>(v).ok()?.max_output_tokens?)))
            .collect()
    });
    outputs.get(&format!("{provider}/{model}")).or_else(|| outputs.get(model)).copied()
}

/// Catalog prices for `provider/model`, trying LiteLLM's key spellings, then the per-deployment overrides. Both
/// overrides given make a price without the catalog; one alone needs the catalog for the other.
pub fn resolve(catalog: &Catalog, provider: &str, model: &str, input: Option<f64>, output: Option<f64>) -> Pricing {
    let base = catalog.get(&format!("{provider}/{model}")).or_else(|| catalog.get(model)).copied();
    let base = match (base, input, output) {
        (Some(base), _, _) => base,
        (None, Some(_), Some(_)) => Prices::default(),
        (None, _, _) => return Pricing::Unpriced,
    };
    // An overridden input price makes the catalog's cache prices meaningless relative to it.
    let catalog_cache = |price: Option<f64>| if input.is_some() { None } else { price };
    Pricing::Priced(Prices {
        input_cost_per_token: input.unwrap_or(base.input_cost_per_token),
        output_cost_per_token: output.unwrap_or(base.output_cost_per_token),
        cache_read_input_token_cost: catalog_cache(base.cache_read_input_token_cost),
        cache_creation_input_token_cost: catalog_cache(base.cache_creation_input_token_cost),
        output_cost_per_reasoning_token: if output.is_some() { None } else { base.output_cost_per_reasoning_token },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn priced(p: Pricing) -> Prices {
        match p {
            Pricing::Priced(p) => p,
            Pricing::Unpriced => unreachable!("expected a price"),
        }
    }

    #[test]
    fn vendored_catalog_has_context_windows() {
        assert_eq!(context_window("openai", "gpt-4"), Some(8192));
        assert_eq!(context_window("openai", "gpt-4o"), Some(128_000));
        assert_eq!(context_window("mock", "no-such-model"), None);
    }

    #[test]
    fn vendored_catalog_has_known_prices() {
        let c = vendored();
        assert!(c.len() > 4000, "{}", c.len());
        let p = priced(resolve(c, "openai", "gpt-4o-mini", None, None));
        assert_eq!(p.input_cost_per_token, 1.5e-7);
        assert_eq!(p.output_cost_per_token, 6e-7);
        let groq = priced(resolve(c, "groq", "openai/gpt-oss-20b", None, None));
        assert!(groq.input_cost_per_token > 0.0, "provider-prefixed keys are found");
        let claude = priced(resolve(c, "anthropic", "claude-sonnet-4-5", None, None));
        assert_eq!(
            (claude.cache_read_input_token_cost, claude.cache_creation_input_token_cost),
            (Some(3e-7), Some(3.75e-6))
        );
    }

    fn usage(prompt: u64, completion: u64, read: u64, write: u64, reasoning: u64) -> Usage {
        Usage {
            prompt_tokens: prompt,
            completion_tokens: completion,
            cache_read_tokens: read,
            cache_write_tokens: write,
            reasoning_tokens: reasoning,
        }
    }

    #[test]
    fn costs_in_nano_dollars() {
        let p = Prices {
            input_cost_per_token: 1.5e-7,
            output_cost_per_token: 6e-7,
            cache_read_input_token_cost: Some(7.5e-8),
            cache_creation_input_token_cost: Some(3e-7),
            output_cost_per_reasoning_token: Some(1.2e-6),
        };
        let cases = [
            (usage(0, 0, 0, 0, 0), 0),
            (usage(1000, 0, 0, 0, 0), 150_000),
            (usage(1000, 100, 0, 0, 0), 210_000),
            (usage(1000, 0, 400, 0, 0), 120_000),
            (usage(10, 0, 50, 0, 0), 750),
            (usage(1000, 0, 400, 100, 0), 135_000),
            (usage(0, 100, 0, 0, 40), 36_000 + 48_000),
            // Anthropic's additive report, converted: 100 plain + 2000 read + 300 written.
            (Usage::from_additive(100, 2000, 300, 0), 15_000 + 150_000 + 90_000),
        ];
        for (usage, want) in cases {
            assert_eq!(p.cost_nanos(usage), want, "{usage:?}");
        }
        let plain = Prices { input_cost_per_token: 1e-6, output_cost_per_token: 2e-6, ..Prices::default() };
        assert_eq!(plain.cost_nanos(usage(100, 10, 50, 20, 5)), 120_000, "no cache or reasoning prices: base prices");
    }

    #[test]
    fn overrides_win_and_unknown_models_are_unpriced() {
        let p = priced(resolve(vendored(), "openai", "gpt-4o-mini", Some(1e-6), None));
        assert_eq!(
            (p.input_cost_per_token, p.output_cost_per_token, p.cache_read_input_token_cost),
            (1e-6, 6e-7, None)
        );
        assert_eq!(Pricing::Unpriced.cost_nanos(usage(0, 0, 0, 0, 0)), Some(0), "no tokens cost nothing");
        assert_eq!(Pricing::Unpriced.cost_nanos(usage(0, 1, 0, 0, 0)), None);
        let cases = [
            (None, None, Pricing::Unpriced),
            (Some(1e-6), None, Pricing::Unpriced),
            (
                Some(1e-6),
                Some(2e-6),
                Pricing::Priced(Prices {
                    input_cost_per_token: 1e-6,
                    output_cost_per_token: 2e-6,
                    ..Prices::default()
                }),
            ),
            (Some(0.0), Some(0.0), Pricing::Priced(Prices::default())),
        ];
        for (input, output, want) in cases {
            assert_eq!(resolve(vendored(), "mock", "x", input, output), want, "{input:?} {output:?}");
        }
    }
}
