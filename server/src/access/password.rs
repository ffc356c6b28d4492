//! Passwords of signed-in users: argon2id (the `argon2` crate's defaults, OWASP's minimum: 19 MiB, 2 passes),
//! stored as a PHC string with its own salt and parameters. Never stored, logged or answered in clear.
//!
//! Hashing costs tens of milliseconds of CPU on purpose: callers run it off the async workers
//! (`actix_web::web::block`).

use std::sync::LazyLock;

use argon2::{
    password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString},
    Argon2,
};

use super::AccessError;

/// Shorter passwords are refused.
pub const MIN_LENGTH: usize = 8;
/// Longer ones too: hashing cost grows with the input, and nobody types more.
pub const MAX_LENGTH: usize = 1024;

/// Refuses passwords outside [`MIN_LENGTH`]..=[`MAX_LENGTH`] characters.
pub fn check_strength(password: &str) -> Result<(), AccessError> {
    let n = password.chars().count();
    if !(MIN_LENGTH..=MAX_LENGTH).contains(&n) {
        return Err(AccessError::bad_input(
            "password",
            format!("a password must have {MIN_LENGTH} to {MAX_LENGTH} characters"),
        ));
    }
    Ok(())
}

/// The argon2id PHC string of `password`, with a fresh salt from the OS random source.
pub fn hash(password: &str) -> Result<String, AccessError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|_| AccessError::Internal("could not hash the password"))
}

/// Whether `password` matches the PHC string `phc`; `None` (no password set yet) never matches, but costs the
/// same time as a real check, so a sign-in attempt does not tell which users exist or have a password.
pub fn verify(password: &str, phc: Option<&str>) -> bool {
    static DUMMY: LazyLock<String> = LazyLock::new(|| hash("tollgate-no-password-set").unwrap_or_default());
    let (phc, real) = match phc {
        Some(p) => (p, true),
        None => (DUMMY.as_str(), false),
    };
    let Ok(parsed) = PasswordHash::new(phc) else { return false };
    Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok() && real
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argon2id_round_trip_with_fresh_salts() {
        let a = hash("correct horse").unwrap_or_default();
        let b = hash("correct horse").unwrap_or_default();
        assert!(a.starts_with("$argon2id$"), "{a}");
        assert_ne!(a, b, "each hash has its own salt");
        assert!(!a.contains("correct horse"));
        assert!(verify("correct horse", Some(&a)));
        assert!(verify("correct horse", Some(&b)));
        assert!(!verify("correct horsf", Some(&a)));
        assert!(!verify("correct horse", None), "no password set: nothing matches");
        assert!(!verify("tollgate-no-password-set", None), "not even the dummy's own");
        assert!(!verify("x", Some("not a phc string")));
    }

    #[test]
    fn strength_bounds() {
        let cases = [("", false), ("1234567", false), ("12345678", true), (&*"x".repeat(1025), false)];
        for (password, ok) in cases {
            assert_eq!(check_strength(password).is_ok(), ok, "{}", password.len());
        }
    }
}
