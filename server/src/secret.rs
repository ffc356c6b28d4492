//! A string that must never reach a log, an error message or a response: provider keys, the master key.

use std::fmt;

/// Debug and Display print a mask; the value is only reachable through `expose`, which is easy to grep for.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// `sk-…abcd`-style hint for humans comparing keys (`check-config`); shows at most the last 4 characters of a
    /// long key and nothing of a short one.
    pub fn masked(&self) -> String {
        let chars: Vec<char> = self.0.chars().collect();
        if chars.len() < 16 {
            return "****".into();
        }
        let tail: String = chars[chars.len() - 4..].iter().collect();
        format!("****{tail}")
    }

    /// Compares in time independent of where the first difference is, so a caller cannot guess a key byte by byte.
    pub fn matches(&self, candidate: &str) -> bool {
        let (a, b) = (self.0.as_bytes(), candidate.as_bytes());
        if a.len() != b.len() {
            return false;
        }
        a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(****)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("****")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_prints_the_value() {
        let s = Secret::new("sk-very-secret-value-1234");
        assert!(!format!("{s:?} {s}").contains("secret"));
        assert_eq!(s.masked(), "****1234");
        assert_eq!(Secret::new("short").masked(), "****");
    }

    #[test]
    fn matches_only_the_exact_value() {
        let s = Secret::new("sk-1234");
        assert!(s.matches("sk-1234"));
        assert!(!s.matches("sk-1235"));
        assert!(!s.matches("sk-123"));
        assert!(!s.matches(""));
    }
}
