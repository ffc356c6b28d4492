//! Authentication of callers: the master key, and virtual keys through the key cache.

use actix_web::http::header::HeaderMap;

use crate::{
    access::{cache::KeyCache, token::KeyHash, Caller},
    clock,
    error::ApiError,
    secret::Secret,
};

/// The key a caller sent: `Authorization: Bearer`, then `x-api-key` (Anthropic SDK), then `api-key` (Azure SDK).
pub fn presented_key(headers: &HeaderMap) -> Option<&str> {
    if let Some(v) = headers.get("authorization").and_then(|v| v.to_str().ok()) {
        let v = v.trim();
        let token = v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")).unwrap_or(v);
        return Some(token.trim());
    }
    ["x-api-key", "api-key"].iter().find_map(|h| headers.get(*h)?.to_str().ok()).map(str::trim)
}

/// The caller of a proxied route: the master key, or a virtual key the store knows that is neither blocked nor
/// expired. With no master key configured, tollgate serves openly (and warned about it at start-up), as LiteLLM.
pub async fn caller(headers: &HeaderMap, master_key: Option<&Secret>, keys: &KeyCache) -> Result<Caller, ApiError> {
    let Some(master) = master_key else { return Ok(Caller::Admin) };
    let presented = presented_key(headers).filter(|k| !k.is_empty()).ok_or(ApiError::Unauthorized)?;
    if master.matches(presented) {
        return Ok(Caller::Admin);
    }
    let key = keys.get(KeyHash::of(presented)).await?.ok_or(ApiError::Unauthorized)?;
    key.usable(clock::unix_secs())?;
    Ok(Caller::Key(key))
}

/// Admin routes: the master key only. With no master key configured, tollgate serves openly (and warned about it
/// at start-up).
pub fn authenticate(headers: &HeaderMap, master_key: Option<&Secret>) -> Result<(), ApiError> {
    let Some(master) = master_key else { return Ok(()) };
    match presented_key(headers) {
        Some(key) if master.matches(key) => Ok(()),
        _ => Err(ApiError::Unauthorized),
    }
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::{HeaderName, HeaderValue};

    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.insert(HeaderName::from_static(n), HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn accepts_the_three_header_spellings() {
        let key = Secret::new("sk-master");
        let cases: &[(&[(&str, &str)], bool)] = &[
            (&[("authorization", "Bearer sk-master")], true),
            (&[("authorization", "bearer sk-master")], true),
            (&[("x-api-key", "sk-master")], true),
            (&[("api-key", "sk-master")], true),
            (&[("authorization", "Bearer sk-wrong")], false),
            (&[("authorization", "Bearer sk-wrong"), ("x-api-key", "sk-master")], false),
            (&[], false),
        ];
        for (pairs, ok) in cases {
            assert_eq!(authenticate(&headers(pairs), Some(&key)).is_ok(), *ok, "{pairs:?}");
        }
        assert!(authenticate(&headers(&[]), None).is_ok());
    }
}
