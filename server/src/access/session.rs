//! Sign-in sessions and invitations: opaque random tokens the holder keeps (in an HttpOnly cookie, or in an
//! invitation link); the store keeps only their SHA-256. Pure: the caller passes the time.
//!
//! CSRF: a cookie is sent by the browser on any site's request, so a cookie-authenticated write must also carry
//! `x-csrf-token`, which only a page that read `/login`'s answer knows. The CSRF token is derived from the session
//! token (a keyed hash under a fixed label), so nothing more is stored, and it cannot be computed without the
//! session token, which script cannot read (HttpOnly). Bearer-authenticated calls need no CSRF token: a browser
//! never adds an `Authorization` header on its own.

use rand::{distributions::Alphanumeric, rngs::OsRng, Rng};

use super::token::KeyHash;

/// The cookie that holds the session token.
pub const COOKIE: &str = "tollgate_session";
/// The header a cookie-authenticated write must carry.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// How long a session lasts from sign-in.
pub const SESSION_TTL_SECS: i64 = 12 * 3600;
/// How long an invitation can be claimed (LiteLLM's: 7 days).
pub const INVITATION_TTL_SECS: i64 = 7 * 24 * 3600;
/// Random characters of a session token or invitation id: 43 alphanumerics, about 256 bits.
const TOKEN_CHARS: usize = 43;

/// A new session token or invitation id from the OS random source.
pub fn new_token() -> String {
    OsRng.sample_iter(&Alphanumeric).take(TOKEN_CHARS).map(char::from).collect()
}

/// What the store keeps of a token: its SHA-256 in hex.
pub fn token_hash(token: &str) -> String {
    KeyHash::of(token).hex()
}

/// The CSRF token of a session: HMAC-SHA-256 of the session token under a fixed label, hex.
pub fn csrf_token(session_token: &str) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, session_token.as_bytes());
    KeyHash(copy32(ring::hmac::sign(&key, b"tollgate csrf v1").as_ref())).hex()
}

fn copy32(bytes: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.iter_mut().zip(bytes).for_each(|(o, b)| *o = *b);
    out
}

/// Whether a request may go on: reads always; writes (`unsafe_method`) only with the session's CSRF token,
/// compared in constant time.
pub fn csrf_ok(session_token: &str, unsafe_method: bool, presented: Option<&str>) -> bool {
    if !unsafe_method {
        return true;
    }
    let Some(presented) = presented else { return false };
    constant_time_eq(csrf_token(session_token).as_bytes(), presented.trim().as_bytes())
}

/// Equality whose time does not depend on where the first difference is.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Whether something that expires at `expires_at` is still valid at `now` (Unix seconds).
pub fn live(expires_at: i64, now: i64) -> bool {
    now < expires_at
}

/// The `Set-Cookie` value for a session: HttpOnly (no script reads it), SameSite=Strict (no other site's request
/// carries it), Path=/ and Max-Age = the session's life. `Secure` is added when the gateway is reached over HTTPS.
pub fn set_cookie(token: &str, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/; Max-Age={SESSION_TTL_SECS}{secure}")
}

/// The `Set-Cookie` value that ends a session in the browser.
pub fn clear_cookie() -> String {
    format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0")
}

/// The session token in a `Cookie` header, if any.
pub fn from_cookie_header(header: &str) -> Option<&str> {
    header
        .split(';')
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim())
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_only_their_hash_is_kept() {
        let (a, b) = (new_token(), new_token());
        assert_ne!(a, b);
        assert_eq!(a.len(), TOKEN_CHARS);
        assert_eq!(token_hash(&a).len(), 64);
        assert_ne!(token_hash(&a), a);
        assert_eq!(token_hash(&a), token_hash(&a));
    }

    #[test]
    fn sessions_expire_at_their_time() {
        let cases = [(100, 99, true), (100, 100, false), (100, 101, false)];
        for (expires_at, now, ok) in cases {
            assert_eq!(live(expires_at, now), ok, "{expires_at} {now}");
        }
    }

    #[test]
    fn csrf_is_needed_on_writes_only_and_bound_to_the_session() {
        let session = new_token();
        let token = csrf_token(&session);
        assert_ne!(token, csrf_token(&new_token()), "each session has its own");
        assert!(!token.contains(&session));
        let other = csrf_token(&new_token());
        let cases: &[(bool, Option<&str>, bool)] = &[
            (false, None, true),
            (true, None, false),
            (true, Some(""), false),
            (true, Some(&other), false),
            (true, Some(&session), false),
            (true, Some(&token), true),
        ];
        for (unsafe_method, presented, ok) in cases {
            assert_eq!(csrf_ok(&session, *unsafe_method, *presented), *ok, "{unsafe_method} {presented:?}");
        }
    }

    #[test]
    fn cookies_are_http_only_strict_and_parsed_back() {
        let cookie = set_cookie("abc", false);
        for part in ["tollgate_session=abc", "HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=43200"] {
            assert!(cookie.contains(part), "{cookie}");
        }
        assert!(!cookie.contains("Secure"));
        assert!(set_cookie("abc", true).ends_with("; Secure"));
        assert!(clear_cookie().contains("Max-Age=0"));
        assert_eq!(from_cookie_header("a=1; tollgate_session=xyz; b=2"), Some("xyz"));
        assert_eq!(from_cookie_header("tollgate_session="), None);
        assert_eq!(from_cookie_header("other=1"), None);
    }
}
