//! The seed's `key_settings:`: virtual keys declared in the config file, each with its rate limits and budget.
//!
//! ```yaml
//! key_settings:
//!   - api_key: sk-team-a-...          # os.environ/VAR and ${VAR} work here too
//!     rate_limit: {requests_per_minute: 60, tokens_per_minute: 100000}
//!     budget: {monthly_limit: 100}
//! ```
//!
//! The gateway stores each key hashed at start-up (an upsert by hash, so a restart or a changed limit rewrites
//! it) and enforces it like a generated key. `budget.monthly_limit` is the key's `max_budget` (USD) over calendar
//! months (`budget_duration: "1mo"`) resetting on the first of each month at 00:00 UTC.

use serde::Deserialize;

use super::ConfigError;
use crate::secret::Secret;

#[derive(Debug, Deserialize)]
pub struct RawKeySetting {
    pub api_key: Option<String>,
    pub rate_limit: Option<RawRateLimit>,
    pub budget: Option<RawBudget>,
}

#[derive(Debug, Deserialize)]
pub struct RawRateLimit {
    pub requests_per_minute: Option<u64>,
    pub tokens_per_minute: Option<u64>,
}

#[derive(Debug, Deserialize)]
pub struct RawBudget {
    /// US dollars per calendar month.
    pub monthly_limit: Option<f64>,
}

/// A key the config declares.
#[derive(Debug, Clone, PartialEq)]
pub struct DeclaredKey {
    /// `key_settings[i]`, for messages.
    pub path: String,
    pub api_key: Secret,
    pub rpm: Option<u64>,
    pub tpm: Option<u64>,
    /// `budget.monthly_limit`, USD per calendar month.
    pub monthly_budget: Option<f64>,
}

pub(super) fn resolve(raw: &[RawKeySetting], _warnings: &mut Vec<String>) -> Result<Vec<DeclaredKey>, ConfigError> {
    let mut keys: Vec<DeclaredKey> = Vec::with_capacity(raw.len());
    for (i, entry) in raw.iter().enumerate() {
        let path = format!("key_settings[{i}]");
        let key = entry.api_key.as_deref().map(str::trim).unwrap_or("");
        if key.len() < 8 || key.chars().any(char::is_whitespace) {
            return Err(ConfigError::invalid(
                format!("{path}.api_key"),
                "must be a key of at least 8 characters without spaces",
            ));
        }
        if keys.iter().any(|k| k.api_key.expose() == key) {
            return Err(ConfigError::invalid(format!("{path}.api_key"), "the same key is declared twice"));
        }
        if let Some(limit) = entry.budget.as_ref().and_then(|b| b.monthly_limit) {
            if !(limit.is_finite() && limit >= 0.0) {
                return Err(ConfigError::invalid(format!("{path}.budget.monthly_limit"), "must be dollars, 0 or more"));
            }
        }
        let rate = entry.rate_limit.as_ref();
        keys.push(DeclaredKey {
            path,
            api_key: Secret::new(key),
            rpm: rate.and_then(|r| r.requests_per_minute),
            tpm: rate.and_then(|r| r.tokens_per_minute),
            monthly_budget: entry.budget.as_ref().and_then(|b| b.monthly_limit),
        });
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(key: &str, rpm: Option<u64>, budget: Option<f64>) -> RawKeySetting {
        RawKeySetting {
            api_key: Some(key.to_owned()),
            rate_limit: Some(RawRateLimit { requests_per_minute: rpm, tokens_per_minute: None }),
            budget: budget.map(|b| RawBudget { monthly_limit: Some(b) }),
        }
    }

    #[test]
    fn declared_keys_are_checked_with_their_budgets() {
        let mut warnings = Vec::new();
        let keys = resolve(&[entry("sk-team-a-key", Some(60), Some(100.0))], &mut warnings);
        let keys = keys.unwrap_or_default();
        assert_eq!(keys.first().map(|k| (k.rpm, k.path.as_str())), Some((Some(60), "key_settings[0]")));
        assert_eq!(keys.first().and_then(|k| k.monthly_budget), Some(100.0));
        assert!(warnings.is_empty(), "{warnings:?}");
        let cases = [
            (vec![entry("short", None, None)], "key_settings[0].api_key"),
            (vec![entry("sk-aaaaaaaa", None, None), entry("sk-aaaaaaaa", None, None)], "key_settings[1].api_key"),
            (vec![entry("sk-aaaaaaaa", None, Some(-1.0))], "key_settings[0].budget.monthly_limit"),
        ];
        for (raw, path) in cases {
            let err = resolve(&raw, &mut Vec::new()).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(err.contains(path), "{err}");
            assert!(!err.contains("sk-aaaaaaaa"), "a key value never appears in an error: {err}");
        }
    }
}
