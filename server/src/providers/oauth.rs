//! OAuth access tokens that a deployment's worker fetches and refreshes (Vertex AI service accounts, Azure Entra
//! client credentials), held in a cell the request path reads without a lock.

use std::{sync::Arc, time::Duration};

use actix_web::http::header::HeaderValue;
use arc_swap::ArcSwapOption;
use serde::Deserialize;

use crate::secret::Secret;

/// A token's assumed lifetime when the endpoint does not say (RFC 6749 5.1 makes `expires_in` optional).
const DEFAULT_LIFETIME_SECS: u64 = 3600;
/// Renew this long before expiry (when the token lives long enough for that to leave most of its life).
const REFRESH_MARGIN_SECS: u64 = 300;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("signing the token assertion failed")]
    Sign,
    #[error("the token response is not JSON with an `access_token`: {0}")]
    Malformed(String),
    #[error("the token endpoint refused: {0}")]
    Refused(String),
    #[error("the token type is `{0}`, not Bearer")]
    NotBearer(String),
}

/// The current access token, replaced whole by each refresh and read without a lock.
#[derive(Default)]
pub struct TokenCell {
    current: ArcSwapOption<Token>,
}

pub struct Token {
    /// `Bearer <token>`, marked sensitive.
    pub header: HeaderValue,
    /// The bare token, to scrub from error messages.
    pub secret: Secret,
    pub expires_at_unix: u64,
}

impl std::fmt::Debug for TokenCell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let expires = self.current.load().as_ref().map(|t| t.expires_at_unix);
        f.debug_struct("TokenCell").field("expires_at_unix", &expires).finish_non_exhaustive()
    }
}

impl TokenCell {
    pub fn get(&self) -> Option<Arc<Token>> {
        self.current.load_full()
    }

    /// Reads a token endpoint's answer and installs the token; returns how long until it should be renewed.
    pub fn install(&self, body: &[u8], now_unix: u64) -> Result<Duration, TokenError> {
        #[derive(Deserialize)]
        struct Answer {
            access_token: Option<String>,
            expires_in: Option<u64>,
            token_type: Option<String>,
            error: Option<String>,
            error_description: Option<String>,
        }
        let a: Answer = serde_json::from_slice(body).map_err(|e| TokenError::Malformed(e.to_string()))?;
        if let Some(error) = a.error {
            let detail = a.error_description.map(|d| format!("{error}: {d}")).unwrap_or(error);
            return Err(TokenError::Refused(detail));
        }
        let token =
            a.access_token.filter(|t| !t.is_empty()).ok_or_else(|| TokenError::Malformed("no access_token".into()))?;
        if let Some(kind) = a.token_type.filter(|k| !k.eq_ignore_ascii_case("bearer")) {
            return Err(TokenError::NotBearer(kind));
        }
        let mut header = HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| TokenError::Malformed("access_token is not a valid header value".into()))?;
        header.set_sensitive(true);
        // RFC 6749 5.1 makes `expires_in` optional; Google always sends it. Without it, assume the usual hour.
        let lifetime = a.expires_in.unwrap_or(DEFAULT_LIFETIME_SECS);
        self.current.store(Some(Arc::new(Token {
            header,
            secret: Secret::new(token),
            expires_at_unix: now_unix.saturating_add(lifetime),
        })));
        let refresh_in = if lifetime > 2 * REFRESH_MARGIN_SECS { lifetime - REFRESH_MARGIN_SECS } else { lifetime / 2 };
        Ok(Duration::from_secs(refresh_in.max(1)))
    }
}
