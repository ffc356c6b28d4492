//! What every dialect's error parsing shares: the caller-facing message (the provider's own words, else the body's
//! text, never a secret of the deployment) and the response headers passed on to the caller.

use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};

use crate::secret::Secret;

/// How much of an error body that is not the provider's JSON reaches the caller.
const MAX_RAW_MESSAGE_CHARS: usize = 500;

/// The message of an error response: `parsed` (the provider's message) if there is one, else the start of the body,
/// else "upstream returned HTTP {status}"; every non-empty `secret` in it replaced by `****` (some providers echo
/// part of the key they were sent).
pub fn message<'s>(
    parsed: Option<String>,
    status: u16,
    body: &[u8],
    secrets: impl IntoIterator<Item = &'s Secret>,
) -> String {
    let mut message = parsed.unwrap_or_else(|| {
        let text = String::from_utf8_lossy(body);
        let text = text.trim();
        if text.is_empty() {
            format!("upstream returned HTTP {status}")
        } else {
            text.chars().take(MAX_RAW_MESSAGE_CHARS).collect()
        }
    });
    for secret in secrets {
        let secret = secret.expose();
        if !secret.is_empty() && message.contains(secret) {
            message = message.replace(secret, "****");
        }
    }
    message
}

/// Headers of an upstream error response that the caller needs to back off correctly.
const BACKOFF_HEADERS: &[&str] = &["retry-after", "retry-after-ms"];
/// Providers' own rate-limit header families.
const RATE_LIMIT_PREFIXES: &[&str] = &["x-ratelimit-", "anthropic-ratelimit-"];

/// The headers of an error response the caller gets: the back-off ones as they are, the provider's rate-limit
/// ones renamed (see [`provider_rate_limit_headers`]), as text.
pub fn passthrough(headers: &HeaderMap) -> Vec<(String, String)> {
    let backoff = headers.iter().filter(|(name, _)| BACKOFF_HEADERS.contains(&name.as_str()));
    backoff
        .map(|(name, value)| (name.clone(), value))
        .chain(provider_rate_limit_headers(headers))
        .filter_map(|(name, value)| Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned())))
        .collect()
}

/// The provider's own rate-limit headers (`x-ratelimit-*`, Anthropic's `anthropic-ratelimit-*`), renamed with
/// LiteLLM's `llm_provider-` prefix so they cannot be mistaken for tollgate's limits, on successes and errors alike.
pub fn provider_rate_limit_headers(headers: &HeaderMap) -> impl Iterator<Item = (HeaderName, &HeaderValue)> {
    headers.iter().filter_map(|(name, value)| {
        let name = name.as_str();
        if !RATE_LIMIT_PREFIXES.iter().any(|p| name.starts_with(p)) {
            return None;
        }
        // OpenAI's six names are renamed without an allocation; other providers' names are built once per response.
        let renamed = match KNOWN_RATE_LIMIT_HEADERS.iter().find(|(raw, _)| *raw == name) {
            Some((_, renamed)) => renamed.clone(),
            None => HeaderName::try_from(format!("llm_provider-{name}")).ok()?,
        };
        Some((renamed, value))
    })
}

const KNOWN_RATE_LIMIT_HEADERS: [(&str, HeaderName); 6] = [
    ("x-ratelimit-limit-requests", HeaderName::from_static("llm_provider-x-ratelimit-limit-requests")),
    ("x-ratelimit-limit-tokens", HeaderName::from_static("llm_provider-x-ratelimit-limit-tokens")),
    ("x-ratelimit-remaining-requests", HeaderName::from_static("llm_provider-x-ratelimit-remaining-requests")),
    ("x-ratelimit-remaining-tokens", HeaderName::from_static("llm_provider-x-ratelimit-remaining-tokens")),
    ("x-ratelimit-reset-requests", HeaderName::from_static("llm_provider-x-ratelimit-reset-requests")),
    ("x-ratelimit-reset-tokens", HeaderName::from_static("llm_provider-x-ratelimit-reset-tokens")),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn back_off_and_rate_limit_headers_pass_renamed() {
        let mut h = HeaderMap::new();
        for (n, v) in [
            ("retry-after", "7"),
            ("x-ratelimit-remaining-requests", "0"),
            ("anthropic-ratelimit-tokens-remaining", "10"),
            ("x-request-id", "r"),
        ] {
            h.insert(HeaderName::from_static(n), HeaderValue::from_static(v));
        }
        let mut got = passthrough(&h);
        got.sort();
        let want = [
            ("llm_provider-anthropic-ratelimit-tokens-remaining", "10"),
            ("llm_provider-x-ratelimit-remaining-requests", "0"),
            ("retry-after", "7"),
        ];
        assert_eq!(got, want.map(|(n, v)| (n.to_owned(), v.to_owned())));
    }

    #[test]
    fn messages_fall_back_to_the_body_and_never_show_a_secret() {
        let key = Secret::new("sk-secret-123");
        let cases: &[(Option<&str>, &[u8], &str)] = &[
            (Some("bad key sk-secret-123"), b"", "bad key ****"),
            (None, b"  plain text sk-secret-123 ", "plain text ****"),
            (None, b"", "upstream returned HTTP 502"),
        ];
        for (parsed, body, want) in cases {
            assert_eq!(message(parsed.map(str::to_owned), 502, body, [&key]), *want);
        }
        let long = vec![b'x'; 2000];
        assert_eq!(message(None, 500, &long, []).len(), MAX_RAW_MESSAGE_CHARS);
        assert_eq!(message(Some("kept".into()), 500, b"", [&Secret::new("")]), "kept");
    }
}
